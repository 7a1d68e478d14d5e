//! A small W3C WebDriver client for Debian's `chromedriver` and `chromium`, written on
//! the standard library's TCP and `serde_json` alone: the protocol is a handful of
//! JSON-over-HTTP/1.1 calls, so a WebDriver crate (and its HTTP, TLS and async stacks)
//! would cost more build time than it saves. Missing browsers fail the test loudly.

#![allow(dead_code)]

use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The W3C element reference key.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// An HTTP/1.1 answer.
#[derive(Debug)]
pub struct HttpReply {
    /// Status code.
    pub status: u16,
    /// Headers, names in lower case.
    pub headers: Vec<(String, String)>,
    /// Body (de-chunked).
    pub body: String,
}

impl HttpReply {
    /// The first header named `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request with `Connection: close`.
pub fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> std::io::Result<HttpReply> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(120)))?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes())?;
    // Read the head, then exactly the body the head announces (chromedriver keeps the
    // connection open even when asked to close it).
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let head_end = loop {
        if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = s.read(&mut buf)?;
        if n == 0 {
            return Err(std::io::Error::other(
                "the connection closed before the head",
            ));
        }
        raw.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&raw[..head_end]).into_owned();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line in {head:?}")))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = raw[head_end + 4..].to_vec();
    let length = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok());
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
    loop {
        let complete = match length {
            Some(n) => body.len() >= n,
            None if chunked => body.ends_with(b"0\r\n\r\n"),
            None => false,
        };
        if complete {
            break;
        }
        let n = s.read(&mut buf)?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&buf[..n]);
    }
    if let Some(n) = length {
        body.truncate(n);
    }
    let body = String::from_utf8_lossy(&body).into_owned();
    let body = if chunked { dechunk(&body) } else { body };
    Ok(HttpReply {
        status,
        headers,
        body,
    })
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// Decodes standard base64 (screenshots).
pub fn base64_decode(s: &str) -> Vec<u8> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for v in s.bytes().filter_map(value) {
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

/// Finds a program on `PATH`.
fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// A running `chromedriver`.
pub struct Driver {
    child: Child,
    addr: String,
    chromium: PathBuf,
}

impl Driver {
    /// Starts `chromedriver` on a free port; fails loudly when Debian's `chromium` or
    /// `chromium-driver` is not installed.
    pub fn start() -> Driver {
        let missing = |what: &str| {
            panic!(
                "{what} is missing: the portal's browser tests need Debian's `chromium` and \
                 `chromium-driver` (apt-get install chromium chromium-driver fonts-noto-cjk; \
                 .ci/run installs them)"
            )
        };
        let driver = which("chromedriver").unwrap_or_else(|| missing("chromedriver"));
        let chromium = which("chromium").unwrap_or_else(|| missing("chromium"));
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
            l.local_addr().expect("port").port()
        };
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let d = Driver {
            child,
            addr: format!("127.0.0.1:{port}"),
            chromium,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = http(&d.addr, "GET", "/status", &[], "")
                && serde_json::from_str::<Value>(&r.body).is_ok_and(|v| v["value"]["ready"] == true)
            {
                return d;
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not become ready"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A new headless browser whose language is `lang` (`en-US`, `ko-KR`), with its own
    /// profile (cookies are not shared between sessions).
    pub fn session(&self, lang: &str) -> Session {
        let primary = lang.split('-').next().unwrap_or(lang);
        let caps = json!({
            "capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {
                    "binary": self.chromium,
                    "args": [
                        "--headless=new", "--no-sandbox", "--disable-gpu",
                        "--disable-dev-shm-usage", "--window-size=1280,900",
                        "--hide-scrollbars", "--force-device-scale-factor=1",
                        format!("--lang={lang}")
                    ],
                    "prefs": {"intl.accept_languages": format!("{lang},{primary}")}
                }
            }}
        });
        let v = call(&self.addr, "POST", "/session", &caps);
        let id = v["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session id in {v}"))
            .to_owned();
        Session {
            addr: self.addr.clone(),
            id,
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[track_caller]
fn call(addr: &str, method: &str, path: &str, body: &Value) -> Value {
    let body = if method == "GET" || method == "DELETE" {
        String::new()
    } else {
        body.to_string()
    };
    let r = http(
        addr,
        method,
        path,
        &[("Content-Type", "application/json")],
        &body,
    )
    .unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}"));
    let v: Value = serde_json::from_str(&r.body)
        .unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}: {}", r.body));
    assert!(
        r.status == 200,
        "WebDriver {method} {path} answered {}: {}",
        r.status,
        v["value"]["message"]
    );
    v["value"].clone()
}

/// One browser.
pub struct Session {
    addr: String,
    id: String,
}

/// An element of the page.
#[derive(Debug, Clone)]
pub struct Element(String);

impl Session {
    #[track_caller]
    fn cmd(&self, method: &str, path: &str, body: Value) -> Value {
        call(
            &self.addr,
            method,
            &format!("/session/{}{path}", self.id),
            &body,
        )
    }

    /// Opens `url` and waits for the page to load.
    #[track_caller]
    pub fn goto(&self, url: &str) {
        self.cmd("POST", "/url", json!({ "url": url }));
    }

    /// The current URL.
    pub fn url(&self) -> String {
        self.cmd("GET", "/url", json!({}))
            .as_str()
            .unwrap_or("")
            .to_owned()
    }

    /// The page's title.
    pub fn title(&self) -> String {
        self.cmd("GET", "/title", json!({}))
            .as_str()
            .unwrap_or("")
            .to_owned()
    }

    /// The page's markup.
    pub fn source(&self) -> String {
        self.cmd("GET", "/source", json!({}))
            .as_str()
            .unwrap_or("")
            .to_owned()
    }

    /// Every element matching a CSS selector.
    pub fn find_all(&self, css: &str) -> Vec<Element> {
        let v = self.cmd(
            "POST",
            "/elements",
            json!({ "using": "css selector", "value": css }),
        );
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e[ELEMENT].as_str().map(|s| Element(s.to_owned())))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The first element matching a CSS selector, waiting up to ten seconds for it (a
    /// page may still be loading after a click); fails the test when there is none.
    #[track_caller]
    pub fn find(&self, css: &str) -> Element {
        let end = Instant::now() + Duration::from_secs(10);
        let mut found = self.find_all(css).into_iter().next();
        while found.is_none() && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(100));
            found = self.find_all(css).into_iter().next();
        }
        found.unwrap_or_else(|| {
            let page = self.source();
            let page = &page[..page.len().min(3000)];
            panic!("no element {css:?} on {}:\n{page}", self.url())
        })
    }

    /// Clicks an element (and waits for a navigation it starts).
    #[track_caller]
    pub fn click(&self, e: &Element) {
        self.cmd("POST", &format!("/element/{}/click", e.0), json!({}));
    }

    /// Empties an input.
    #[track_caller]
    pub fn clear(&self, e: &Element) {
        self.cmd("POST", &format!("/element/{}/clear", e.0), json!({}));
    }

    /// Types into an element.
    #[track_caller]
    pub fn type_into(&self, e: &Element, text: &str) {
        self.cmd(
            "POST",
            &format!("/element/{}/value", e.0),
            json!({ "text": text }),
        );
    }

    /// An element's visible text.
    pub fn text(&self, e: &Element) -> String {
        self.cmd("GET", &format!("/element/{}/text", e.0), json!({}))
            .as_str()
            .unwrap_or("")
            .to_owned()
    }

    /// An element's property (`value`, `href`).
    pub fn property(&self, e: &Element, name: &str) -> String {
        let v = self.cmd(
            "GET",
            &format!("/element/{}/property/{name}", e.0),
            json!({}),
        );
        v.as_str().map_or_else(|| v.to_string(), str::to_owned)
    }

    /// The element that has the keyboard focus.
    pub fn active(&self) -> Element {
        let v = self.cmd("GET", "/element/active", json!({}));
        Element(v[ELEMENT].as_str().unwrap_or("").to_owned())
    }

    /// Presses keys on the focused element (`\u{E004}` is Tab).
    #[track_caller]
    pub fn keys(&self, keys: &str) {
        let actions: Vec<Value> = keys
            .chars()
            .flat_map(|c| {
                [
                    json!({"type": "keyDown", "value": c.to_string()}),
                    json!({"type": "keyUp", "value": c.to_string()}),
                ]
            })
            .collect();
        self.cmd(
            "POST",
            "/actions",
            json!({"actions": [{"type": "key", "id": "keyboard", "actions": actions}]}),
        );
        self.cmd("DELETE", "/actions", json!({}));
    }

    /// Runs a script in the page and returns its value.
    #[track_caller]
    pub fn script(&self, script: &str) -> Value {
        self.cmd(
            "POST",
            "/execute/sync",
            json!({ "script": script, "args": [] }),
        )
    }

    /// The value of a cookie (HttpOnly ones too).
    pub fn cookie(&self, name: &str) -> Option<Value> {
        let v = self.cmd("GET", "/cookie", json!({}));
        v.as_array()?.iter().find(|c| c["name"] == name).cloned()
    }

    /// Sets the window's size.
    #[track_caller]
    pub fn resize(&self, width: u32, height: u32) {
        self.cmd(
            "POST",
            "/window/rect",
            json!({ "width": width, "height": height }),
        );
    }

    /// A PNG of the viewport.
    #[track_caller]
    pub fn screenshot(&self) -> Vec<u8> {
        let v = self.cmd("GET", "/screenshot", json!({}));
        let png = base64_decode(v.as_str().unwrap_or(""));
        assert!(png.starts_with(b"\x89PNG"), "the screenshot is not a PNG");
        png
    }

    /// Polls `check` until it holds, for at most `deadline`.
    #[track_caller]
    pub fn wait_for(
        &self,
        what: &str,
        deadline: Duration,
        mut check: impl FnMut(&Session) -> bool,
    ) {
        let end = Instant::now() + deadline;
        while !check(self) {
            assert!(
                Instant::now() < end,
                "timed out waiting for {what} on {}",
                self.url()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = http(
            &self.addr,
            "DELETE",
            &format!("/session/{}", self.id),
            &[],
            "",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_decodes() {
        assert_eq!(base64_decode("aGVsbG8="), b"hello");
        assert_eq!(base64_decode("iVBORw=="), b"\x89PNG");
    }
}
