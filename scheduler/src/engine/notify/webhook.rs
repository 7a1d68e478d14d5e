//! Webhook posts: one JSON `POST` over HTTP/1.1 (`Connection: close`), over TLS for
//! `https://`. Hand-written on tokio and tokio-rustls, which the scheduler already has:
//! the dependency tree holds no HTTP client (hyper is built server-only), and one request
//! with a status line to read back needs no more.

use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// Most bytes of a response head read back.
const MAX_HEAD: usize = 16 * 1024;

/// Where a webhook URL points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Target {
    /// `https://`.
    pub tls: bool,
    /// Host name or IP address (an IPv6 address without brackets).
    pub host: String,
    pub port: u16,
    /// Path and query, at least `/`.
    pub path: String,
}

impl Target {
    /// Parses an `http://` or `https://` URL with a host.
    pub fn parse(url: &str) -> Result<Self, String> {
        let (tls, rest) = if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else {
            return Err("not http:// or https://".into());
        };
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.contains('@') || authority.is_empty() {
            return Err("no host".into());
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6.split_once(']').ok_or("bad IPv6 address")?;
            (h, after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        let port = match port {
            Some(p) => p.parse::<u16>().map_err(|_| "bad port")?,
            None if tls => 443,
            None => 80,
        };
        if host.is_empty()
            || port == 0
            || host
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || "/\\#".contains(c))
            || path.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err("bad host or path".into());
        }
        let path = if path.starts_with('?') {
            format!("/{path}")
        } else {
            path.to_owned()
        };
        Ok(Target {
            tls,
            host: host.to_owned(),
            port,
            path,
        })
    }

    /// The `Host` header's value.
    fn host_header(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        match (self.tls, self.port) {
            (true, 443) | (false, 80) => host,
            _ => format!("{host}:{}", self.port),
        }
    }
}

/// Posts `body` (JSON) to `url`; `Ok` on a 2xx answer, else why not.
pub(super) async fn post(
    url: &str,
    body: &[u8],
    tls: &Arc<rustls::ClientConfig>,
) -> Result<(), String> {
    let target = Target::parse(url)?;
    let tcp = TcpStream::connect((target.host.as_str(), target.port))
        .await
        .map_err(|e| format!("connect to {}:{}: {e}", target.host, target.port))?;
    let _ = tcp.set_nodelay(true);
    if target.tls {
        let name = rustls::pki_types::ServerName::try_from(target.host.clone())
            .map_err(|e| format!("bad TLS name {}: {e}", target.host))?;
        let stream = tokio_rustls::TlsConnector::from(tls.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS: {e}"))?;
        exchange(stream, &target, body).await
    } else {
        exchange(tcp, &target, body).await
    }
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    target: &Target,
    body: &[u8],
) -> Result<(), String> {
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: berth-scheduler\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        target.path,
        target.host_header(),
        body.len()
    );
    let io = |e: std::io::Error| format!("HTTP: {e}");
    s.write_all(head.as_bytes()).await.map_err(io)?;
    s.write_all(body).await.map_err(io)?;
    s.flush().await.map_err(io)?;
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    // The status line is all that matters; read until it is complete.
    while !buf.contains(&b'\n') && buf.len() < MAX_HEAD {
        let n = s.read(&mut chunk).await.map_err(io)?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let line = String::from_utf8_lossy(&buf);
    let line = line.lines().next().unwrap_or_default();
    let code = line
        .strip_prefix("HTTP/1.")
        .and_then(|r| r.get(2..5))
        .and_then(|c| c.parse::<u16>().ok())
        .ok_or_else(|| {
            format!(
                "not an HTTP answer: {:?}",
                line.chars().take(60).collect::<String>()
            )
        })?;
    if (200..300).contains(&code) {
        Ok(())
    } else {
        Err(format!("HTTP {code}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_into_host_port_and_path() {
        let t = Target::parse("https://hooks.example.kr/services/a?b=c").unwrap();
        assert_eq!(
            (t.tls, t.host.as_str(), t.port, t.path.as_str()),
            (true, "hooks.example.kr", 443, "/services/a?b=c")
        );
        assert_eq!(t.host_header(), "hooks.example.kr");
        let t = Target::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!((t.port, t.path.as_str()), (8080, "/"));
        assert_eq!(t.host_header(), "127.0.0.1:8080");
        let t = Target::parse("http://[::1]:9000/x").unwrap();
        assert_eq!(
            (t.host.as_str(), t.host_header()),
            ("::1", "[::1]:9000".into())
        );
        for bad in [
            "ftp://x",
            "http://",
            "http://u:p@x/",
            "http://x:99999/",
            "http://a b/",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
    }
}
