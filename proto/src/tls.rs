//! TLS for Berth's gRPC connections, shared by the scheduler, the agent and the CLI:
//! rustls with the ring provider only (no OpenSSL, no C++ build).
//!
//! - PEM files are read and checked here, so a bad file fails at start with the flag
//!   and the file named, never later in a handshake.
//! - [`ClientTls`] turns an `https://` URL into an endpoint that verifies the server
//!   against the system's CAs (Debian's `ca-certificates`, `/etc/ssl/certs`; the
//!   `SSL_CERT_FILE` and `SSL_CERT_DIR` variables override where they are looked for)
//!   or, with `--ca-cert FILE`, against that file's CAs only; an agent may also present
//!   a client certificate.
//! - [`explain`] finds the TLS failure behind a connection error and says it in plain
//!   words: an unknown CA, an expired certificate, a certificate for another host name.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, TrustAnchor, UnixTime};
use rustls::{AlertDescription, CertificateError};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

/// How long a TLS handshake may take before the connection attempt fails.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A TLS setting that cannot be used. Each names the flag and the file concerned.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("{flag} {}: {source}", path.display())]
    Read {
        /// The flag that named the file (`--ca-cert`, `--tls-key`, ...).
        flag: &'static str,
        /// The file.
        path: PathBuf,
        /// Why it could not be read.
        source: std::io::Error,
    },
    /// A file was read but does not hold what it should.
    #[error("{flag} {}: {reason}", path.display())]
    Invalid {
        /// The flag that named the file.
        flag: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// `https://` without `--ca-cert`, and the system has no CA certificates.
    #[error(
        "no trusted CA certificates found on this system ({0}): install Debian's ca-certificates package, or pass the centre's CA with --ca-cert FILE"
    )]
    NoSystemRoots(String),
    /// The settings do not fit together (a CA or client certificate for a plain URL).
    #[error("{0}")]
    Mismatch(String),
}

/// A file's bytes, or a [`TlsError::Read`] naming it.
fn read(flag: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        flag,
        path: path.to_owned(),
        source,
    })
}

fn invalid(flag: &'static str, path: &Path, reason: impl Into<String>) -> TlsError {
    TlsError::Invalid {
        flag,
        path: path.to_owned(),
        reason: reason.into(),
    }
}

/// Parses the certificates of a PEM file; at least one is required.
fn certificates(
    flag: &'static str,
    path: &Path,
    pem: &[u8],
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(flag, path, format!("not a valid PEM file ({e})")))?;
    if certs.is_empty() {
        return Err(invalid(
            flag,
            path,
            "holds no certificate (expected a PEM block -----BEGIN CERTIFICATE-----)",
        ));
    }
    Ok(certs)
}

/// Reads a PEM file of one or more certificates (a server's chain, or trusted CAs).
pub fn read_certificates(flag: &'static str, path: &Path) -> Result<Certificate, TlsError> {
    let pem = read(flag, path)?;
    certificates(flag, path, &pem)?;
    Ok(Certificate::from_pem(pem))
}

/// Reads a certificate chain and its private key (PKCS#8, PKCS#1 or SEC1 PEM).
pub fn read_identity(
    cert_flag: &'static str,
    cert_path: &Path,
    key_flag: &'static str,
    key_path: &Path,
) -> Result<Identity, TlsError> {
    let cert = read(cert_flag, cert_path)?;
    certificates(cert_flag, cert_path, &cert)?;
    let key = read(key_flag, key_path)?;
    PrivateKeyDer::from_pem_slice(&key).map_err(|e| {
        invalid(
            key_flag,
            key_path,
            match e {
                rustls::pki_types::pem::Error::NoItemsFound => {
                    "holds no private key (expected a PEM block such as -----BEGIN PRIVATE KEY-----)"
                        .to_owned()
                }
                e => format!("not a valid PEM private key ({e})"),
            },
        )
    })?;
    Ok(Identity::from_pem(cert, key))
}

/// The system's trusted CAs, as rustls-native-certs finds them (Debian:
/// `/etc/ssl/certs/ca-certificates.crt`, from the `ca-certificates` package).
fn system_roots() -> Result<Vec<TrustAnchor<'static>>, TlsError> {
    let found = rustls_native_certs::load_native_certs();
    let anchors: Vec<TrustAnchor<'static>> = found
        .certs
        .iter()
        .filter_map(|c| webpki::anchor_from_trusted_cert(c).ok())
        .map(|a| a.to_owned())
        .collect();
    if anchors.is_empty() {
        let why = if found.errors.is_empty() {
            "none found".to_owned()
        } else {
            found
                .errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        };
        return Err(TlsError::NoSystemRoots(why));
    }
    Ok(anchors)
}

/// How a client connects: which CAs it trusts and which certificate it presents.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientTls {
    /// Trust only the CAs in this PEM file instead of the system's (`--ca-cert`).
    pub ca_cert: Option<PathBuf>,
    /// A client certificate and its key to present (`--tls-client-cert`, `--tls-client-key`).
    pub identity: Option<(PathBuf, PathBuf)>,
}

impl ClientTls {
    /// Adds TLS to `endpoint` when its URL is `https://`. A CA or client certificate
    /// given for a plain `http://` URL is refused rather than silently ignored.
    pub fn apply(&self, endpoint: Endpoint) -> Result<Endpoint, TlsError> {
        let https = endpoint.uri().scheme_str() == Some("https");
        if !https {
            if self.ca_cert.is_some() || self.identity.is_some() {
                return Err(TlsError::Mismatch(format!(
                    "--ca-cert and client certificates are for https:// servers, but the server URL is {}",
                    endpoint.uri()
                )));
            }
            return Ok(endpoint);
        }
        let mut config = ClientTlsConfig::new().timeout(HANDSHAKE_TIMEOUT);
        config = match &self.ca_cert {
            Some(path) => config.ca_certificate(read_certificates("--ca-cert", path)?),
            None => config.trust_anchors(system_roots()?),
        };
        if let Some((cert, key)) = &self.identity {
            config = config.identity(read_identity(
                "--tls-client-cert",
                cert,
                "--tls-client-key",
                key,
            )?);
        }
        let uri = endpoint.uri().clone();
        endpoint.tls_config(config).map_err(|e| {
            let why = explain(&e).unwrap_or_else(|| error_chain(&e));
            TlsError::Mismatch(format!("cannot set up TLS for {uri}: {why}"))
        })
    }
}

impl ClientTls {
    /// Finds out why calls to the `https://` server at `uri` fail when the error itself
    /// does not say: connects once with the same settings, completes the handshake and
    /// waits for the server's first bytes. With TLS 1.3 a server refuses a client
    /// certificate only after the client has finished its handshake, so the refusal
    /// (an alert) reaches the first read, not the call that failed. Returns the TLS
    /// problem in plain words, or `None` when there is none to see.
    pub async fn diagnose(&self, uri: &tonic::codegen::http::Uri) -> Option<String> {
        use tokio::io::AsyncReadExt;
        if uri.scheme_str() != Some("https") {
            return None;
        }
        let host = uri.host()?.trim_start_matches('[').trim_end_matches(']');
        let port = uri.port_u16().unwrap_or(443);
        let config = match self.rustls_config() {
            Ok(config) => config,
            Err(e) => return Some(e.to_string()),
        };
        let name = ServerName::try_from(host.to_owned()).ok()?;
        let attempt = async {
            let tcp = tokio::net::TcpStream::connect((host, port)).await?;
            let mut tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
                .connect(name, tcp)
                .await?;
            // An HTTP/2 server speaks first (its SETTINGS); a refusal arrives as an alert.
            let mut first = [0u8; 1];
            tls.read(&mut first).await.map(drop)
        };
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, attempt).await {
            Ok(Err(e)) => explain(&e),
            Ok(Ok(())) | Err(_) => None,
        }
    }

    /// The rustls client settings these files describe, as tonic builds them too.
    fn rustls_config(&self) -> Result<rustls::ClientConfig, TlsError> {
        let mut roots = rustls::RootCertStore::empty();
        match &self.ca_cert {
            Some(path) => {
                let pem = read("--ca-cert", path)?;
                roots.add_parsable_certificates(certificates("--ca-cert", path, &pem)?);
            }
            None => roots.extend(system_roots()?),
        }
        // The process's provider: ring, the only one built in.
        let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
        let mut config = match &self.identity {
            None => builder.with_no_client_auth(),
            Some((cert_path, key_path)) => {
                let cert = read("--tls-client-cert", cert_path)?;
                let certs = certificates("--tls-client-cert", cert_path, &cert)?;
                let key = read("--tls-client-key", key_path)?;
                let key = PrivateKeyDer::from_pem_slice(&key).map_err(|e| {
                    invalid(
                        "--tls-client-key",
                        key_path,
                        format!("not a valid PEM private key ({e})"),
                    )
                })?;
                builder
                    .with_client_auth_cert(certs, key)
                    .map_err(|e| invalid("--tls-client-key", key_path, describe(&e)))?
            }
        };
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(config)
    }
}

/// The TLS failure behind a connection or call error, in plain words; `None` when the
/// error has nothing to do with TLS. Walks the error's sources, looking into I/O errors
/// too (rustls reports handshake failures through them).
pub fn explain(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(r) = e.downcast_ref::<rustls::Error>() {
            return Some(describe(r));
        }
        if let Some(r) = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            return Some(describe(r));
        }
        next = e.source();
    }
    None
}

/// An error and its sources on one line (`a: b: c`), skipping repeats.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// A rustls error as a sentence a user can act on.
pub fn describe(error: &rustls::Error) -> String {
    match error {
        rustls::Error::InvalidCertificate(c) => server_certificate(c),
        rustls::Error::AlertReceived(alert) => match alert {
            AlertDescription::CertificateRequired => {
                "the server requires a client certificate: pass --tls-client-cert and --tls-client-key".to_owned()
            }
            AlertDescription::BadCertificate
            | AlertDescription::UnknownCA
            | AlertDescription::CertificateUnknown
            | AlertDescription::CertificateExpired
            | AlertDescription::CertificateRevoked
            | AlertDescription::UnsupportedCertificate
            | AlertDescription::AccessDenied => format!(
                "the server refused this client's certificate (TLS alert {alert:?}): it must be signed by the CA the server trusts for clients, and be current"
            ),
            other => format!("the server ended the TLS handshake (TLS alert {other:?})"),
        },
        rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateHandshakeMessage { .. } | rustls::Error::InappropriateMessage { .. } => {
            "the server did not answer in TLS: it may serve plain gRPC (then use an http:// URL)".to_owned()
        }
        rustls::Error::InconsistentKeys(_) => {
            "the private key does not belong to the certificate".to_owned()
        }
        other => format!("TLS failed: {other}"),
    }
}

fn server_certificate(error: &CertificateError) -> String {
    let what = "the server's TLS certificate";
    match error {
        CertificateError::UnknownIssuer => format!(
            "{what} is signed by an unknown certificate authority (unknown CA): pass the centre's CA certificate with --ca-cert FILE, or ask the centre for a certificate from a CA this system trusts"
        ),
        CertificateError::Expired => format!("{what} has expired"),
        CertificateError::ExpiredContext { not_after, .. } => {
            format!("{what} has expired: it was valid until {}", utc(*not_after))
        }
        CertificateError::NotValidYet => {
            format!("{what} is not valid yet: check this machine's clock")
        }
        CertificateError::NotValidYetContext { not_before, .. } => format!(
            "{what} is not valid yet (only from {}): check this machine's clock",
            utc(*not_before)
        ),
        CertificateError::NotValidForName => {
            format!("{what} is for another host name (wrong host name)")
        }
        CertificateError::NotValidForNameContext {
            expected,
            presented,
        } => format!(
            "{what} is for another host name (wrong host name): it does not name {}, only {}",
            server_name(expected),
            if presented.is_empty() {
                "no host names at all".to_owned()
            } else {
                presented
                    .iter()
                    .map(|p| presented_name(p))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        ),
        CertificateError::Revoked => format!("{what} has been revoked"),
        CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
            format!(
                "{what} is not meant for a TLS server (its extended key usage does not allow it)"
            )
        }
        CertificateError::BadSignature => {
            format!("{what} is not correctly signed by its issuer")
        }
        other => format!("{what} was refused: {other}"),
    }
}

/// A name as rustls presents it (`DnsName("a.example")`, `IpAddress(10.0.0.1)`) without
/// the wrapping.
fn presented_name(p: &str) -> &str {
    match p.split_once('(') {
        Some((_, inner)) if inner.ends_with(')') => inner[..inner.len() - 1].trim_matches('"'),
        _ => p,
    }
}

fn server_name(name: &ServerName<'_>) -> String {
    match name {
        ServerName::DnsName(d) => d.as_ref().to_owned(),
        ServerName::IpAddress(ip) => std::net::IpAddr::from(*ip).to_string(),
        other => format!("{other:?}"),
    }
}

/// `2026-01-31 12:00:00 UTC`.
fn utc(t: UnixTime) -> String {
    let secs = t.as_secs();
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// Year, month, day of a count of days since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_utc_calendar_dates() {
        assert_eq!(
            utc(UnixTime::since_unix_epoch(Duration::ZERO)),
            "1970-01-01 00:00:00 UTC"
        );
        assert_eq!(
            utc(UnixTime::since_unix_epoch(Duration::from_secs(
                1_796_083_200 + 3_723
            ))),
            "2026-12-01 01:02:03 UTC"
        );
        assert_eq!(
            utc(UnixTime::since_unix_epoch(Duration::from_secs(951_782_400))),
            "2000-02-29 00:00:00 UTC"
        );
    }

    #[test]
    fn certificate_failures_are_named_in_plain_words() {
        let unknown = rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer);
        assert!(describe(&unknown).contains("unknown CA"));
        let expired = rustls::Error::InvalidCertificate(CertificateError::ExpiredContext {
            time: UnixTime::since_unix_epoch(Duration::from_secs(1_796_083_200)),
            not_after: UnixTime::since_unix_epoch(Duration::from_secs(1_764_547_200)),
        });
        assert_eq!(
            describe(&expired),
            "the server's TLS certificate has expired: it was valid until 2025-12-01 00:00:00 UTC"
        );
        let wrong = rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext {
            expected: ServerName::try_from("berth.example").unwrap(),
            presented: vec![
                "DnsName(\"other.example\")".into(),
                "IpAddress(10.0.0.1)".into(),
            ],
        });
        assert_eq!(
            describe(&wrong),
            "the server's TLS certificate is for another host name (wrong host name): it does not name berth.example, only other.example, 10.0.0.1"
        );
        let refused = rustls::Error::AlertReceived(AlertDescription::UnknownCA);
        assert!(describe(&refused).contains("refused this client's certificate"));
    }

    #[test]
    fn explain_finds_rustls_errors_inside_io_errors() {
        let io = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer),
        );
        assert!(explain(&io).unwrap().contains("unknown CA"));
        let plain = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(explain(&plain), None);
    }

    #[test]
    fn bad_files_name_the_flag_and_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let e = read_certificates("--ca-cert", &missing)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("--ca-cert ") && e.contains("missing.pem"),
            "{e}"
        );
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let e = read_certificates("--ca-cert", &empty)
            .unwrap_err()
            .to_string();
        assert!(e.contains("holds no certificate"), "{e}");
        let e = read_identity("--tls-cert", &empty, "--tls-key", &empty)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("--tls-cert "), "{e}");
    }

    #[test]
    fn plain_urls_refuse_tls_settings() {
        let endpoint = Endpoint::from_static("http://127.0.0.1:7070");
        assert!(ClientTls::default().apply(endpoint.clone()).is_ok());
        let tls = ClientTls {
            ca_cert: Some("/x/ca.pem".into()),
            identity: None,
        };
        let e = tls.apply(endpoint).unwrap_err().to_string();
        assert!(e.contains("https://"), "{e}");
    }
}
