//! A small SMTP client on tokio: `EHLO`, `MAIL FROM`, `RCPT TO`, `DATA` (dot-stuffed),
//! `QUIT`, over plain TCP (`smtp://`, the centre's relay on its own network) or implicit
//! TLS (`smtps://`, port 465 by default) with tokio-rustls. No AUTH and no STARTTLS:
//! the scheduler hands mail to a relay it is allowed to use. Hand-written rather than
//! `lettre` because one plain-text mail per delivery needs only these five commands,
//! and the scheduler already has tokio and rustls; `lettre` would add its own MIME,
//! address and connection-pool code to a build that must stay lean.
//!
//! The subject is an RFC 2047 encoded-word when it is not ASCII; the body is UTF-8 in
//! base64, so no line of it can start with a dot or exceed the line limit (dot-stuffing
//! still applies to every line written, as the protocol requires).

use super::sender::SmtpConfig;
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// One mail to send.
pub(super) struct Mail<'a> {
    pub to: &'a str,
    pub subject: &'a str,
    pub body: &'a str,
}

/// Where the SMTP server is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    /// Implicit TLS (`smtps://`).
    pub tls: bool,
    pub host: String,
    pub port: u16,
}

impl Server {
    /// Parses `smtp://host[:port]` (25) or `smtps://host[:port]` (465).
    pub fn parse(url: &str) -> Result<Self, String> {
        let (tls, rest) = if let Some(r) = url.strip_prefix("smtps://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("smtp://") {
            (false, r)
        } else {
            return Err(format!(
                "{url:?} is not smtp://HOST[:PORT] or smtps://HOST[:PORT]"
            ));
        };
        let rest = rest.trim_end_matches('/');
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (
                h.trim_start_matches('[').trim_end_matches(']'),
                p.parse::<u16>()
                    .map_err(|_| format!("{url:?}: bad port {p:?}"))?,
            ),
            _ => (rest, if tls { 465 } else { 25 }),
        };
        if host.is_empty() || host.contains(['/', '@', ' ']) {
            return Err(format!("{url:?}: bad host"));
        }
        Ok(Server {
            tls,
            host: host.to_owned(),
            port,
        })
    }
}

/// Sends one mail; `Err` says which step failed and what the server answered.
pub(super) async fn send(
    config: &SmtpConfig,
    mail: &Mail<'_>,
    tls: &Arc<rustls::ClientConfig>,
) -> Result<(), String> {
    let s = &config.server;
    let tcp = TcpStream::connect((s.host.as_str(), s.port))
        .await
        .map_err(|e| format!("connect to SMTP {}:{}: {e}", s.host, s.port))?;
    let _ = tcp.set_nodelay(true);
    if s.tls {
        let name = rustls::pki_types::ServerName::try_from(s.host.clone())
            .map_err(|e| format!("bad TLS name {}: {e}", s.host))?;
        let stream = tokio_rustls::TlsConnector::from(tls.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| format!("SMTP TLS: {e}"))?;
        session(stream, &config.from, mail).await
    } else {
        session(tcp, &config.from, mail).await
    }
}

/// Reads one reply (all lines of a multi-line one); returns its code and last text.
async fn reply<S: AsyncRead + Unpin>(r: &mut BufReader<S>) -> Result<(u16, String), String> {
    loop {
        let mut line = String::new();
        let n = r
            .read_line(&mut line)
            .await
            .map_err(|e| format!("SMTP read: {e}"))?;
        if n == 0 {
            return Err("SMTP server closed the connection".into());
        }
        let line = line.trim_end();
        let code = line
            .get(..3)
            .and_then(|c| c.parse::<u16>().ok())
            .ok_or_else(|| format!("not an SMTP reply: {line:?}"))?;
        if line.as_bytes().get(3) != Some(&b'-') {
            return Ok((code, line.to_owned()));
        }
    }
}

/// Sends `command` (unless empty) and expects a reply in `ok`.
async fn step<S: AsyncRead + AsyncWrite + Unpin>(
    r: &mut BufReader<S>,
    command: &str,
    ok: &[u16],
) -> Result<(), String> {
    if !command.is_empty() {
        let w = r.get_mut();
        w.write_all(command.as_bytes())
            .await
            .map_err(|e| format!("SMTP write: {e}"))?;
        w.flush().await.map_err(|e| format!("SMTP write: {e}"))?;
    }
    let (code, text) = reply(r).await?;
    if ok.contains(&code) {
        Ok(())
    } else {
        let what = command.split_whitespace().next().unwrap_or("greeting");
        Err(format!("SMTP {what}: {text}"))
    }
}

async fn session<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    from: &str,
    mail: &Mail<'_>,
) -> Result<(), String> {
    let mut r = BufReader::new(stream);
    step(&mut r, "", &[220]).await?;
    step(&mut r, "EHLO berth-scheduler\r\n", &[250]).await?;
    step(&mut r, &format!("MAIL FROM:<{from}>\r\n"), &[250]).await?;
    step(&mut r, &format!("RCPT TO:<{}>\r\n", mail.to), &[250, 251]).await?;
    step(&mut r, "DATA\r\n", &[354]).await?;
    let data = dot_stuff(&message(from, mail));
    let w = r.get_mut();
    w.write_all(data.as_bytes())
        .await
        .map_err(|e| format!("SMTP write: {e}"))?;
    step(&mut r, ".\r\n", &[250]).await?;
    // The mail is accepted; a failed goodbye changes nothing.
    let _ = step(&mut r, "QUIT\r\n", &[221]).await;
    Ok(())
}

/// The message: headers and a base64 UTF-8 body, lines ending in CRLF.
fn message(from: &str, mail: &Mail<'_>) -> String {
    let date = chrono::Utc::now().to_rfc2822();
    let id = uuid::Uuid::new_v4().simple();
    let domain = from.rsplit_once('@').map_or("berth", |(_, d)| d);
    let mut m = format!(
        "From: {from}\r\nTo: {}\r\nSubject: {}\r\nDate: {date}\r\nMessage-ID: <{id}@{domain}>\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n",
        mail.to,
        encode_header(mail.subject)
    );
    let body = base64(mail.body.as_bytes());
    for line in body.as_bytes().chunks(76) {
        m.push_str(std::str::from_utf8(line).unwrap_or_default());
        m.push_str("\r\n");
    }
    m
}

/// A header value as it is when ASCII, else as RFC 2047 encoded-words of at most 45
/// bytes each (whole characters), so no header line grows past the limit.
fn encode_header(value: &str) -> String {
    let value: String = value.chars().filter(|c| !c.is_control()).collect();
    if value.is_ascii() {
        return value;
    }
    let mut words = Vec::new();
    let mut part = String::new();
    for c in value.chars() {
        if part.len() + c.len_utf8() > 45 {
            words.push(format!("=?UTF-8?B?{}?=", base64(part.as_bytes())));
            part.clear();
        }
        part.push(c);
    }
    if !part.is_empty() {
        words.push(format!("=?UTF-8?B?{}?=", base64(part.as_bytes())));
    }
    words.join("\r\n ")
}

/// Dot-stuffing (RFC 5321 4.5.2): a line that starts with `.` gets another.
fn dot_stuff(data: &str) -> String {
    let mut out = String::with_capacity(data.len() + 8);
    for line in data.split_inclusive("\r\n") {
        if line.starts_with('.') {
            out.push('.');
        }
        out.push_str(line);
    }
    if !out.ends_with("\r\n") {
        out.push_str("\r\n");
    }
    out
}

/// Standard base64 with padding.
fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ABC[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_standard_vectors() {
        for (plain, enc) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), enc);
        }
    }

    #[test]
    fn lines_starting_with_a_dot_are_stuffed() {
        assert_eq!(dot_stuff("a\r\n.b\r\n..c\r\n"), "a\r\n..b\r\n...c\r\n");
        assert_eq!(dot_stuff(".\r\nx"), "..\r\nx\r\n");
    }

    #[test]
    fn non_ascii_subjects_are_encoded_words_and_ascii_stays() {
        assert_eq!(encode_header("Job j1 ended"), "Job j1 ended");
        let ko = encode_header("작업 j1이(가) 끝났습니다: failed. 종료 코드 3으로 끝났습니다");
        assert!(ko.starts_with("=?UTF-8?B?"), "{ko}");
        assert!(ko.lines().all(|l| l.len() < 78), "{ko}");
        assert!(!encode_header("a\r\nBcc: x").contains('\n'));
    }

    #[test]
    fn server_urls_parse() {
        let s = Server::parse("smtp://127.0.0.1:2525").unwrap();
        assert_eq!((s.tls, s.host.as_str(), s.port), (false, "127.0.0.1", 2525));
        let s = Server::parse("smtps://mail.example.kr").unwrap();
        assert_eq!((s.tls, s.port), (true, 465));
        assert_eq!(Server::parse("smtp://mx").unwrap().port, 25);
        for bad in ["mail.example.kr", "http://x", "smtp://", "smtp://x:port"] {
            assert!(Server::parse(bad).is_err(), "{bad}");
        }
    }
}
