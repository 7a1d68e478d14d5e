//! TLS on the gRPC listener: the scheduler's certificate and key, the rule that gRPC
//! never leaves loopback in plaintext, and client certificates for agents.
//!
//! With `--agent-ca FILE`, the TLS layer asks every client for a certificate but lets
//! clients without one in (users' CLIs have none); a certificate that is presented must
//! be signed by that CA, or the handshake fails. The agent service then refuses every
//! call, `Join` included, that came without a verified client certificate. The node
//! credential is still required on top: the certificate proves the caller is one of the
//! centre's machines, the credential which node it speaks for.

use crate::auth::Authenticator;
use berth_proto::tls::{TlsError, read_certificates, read_identity};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use tonic::transport::ServerTlsConfig;

/// How long a client may take over the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The files TLS is served with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain (PEM), leaf first (`--tls-cert`).
    pub cert: PathBuf,
    /// Its private key (PEM) (`--tls-key`).
    pub key: PathBuf,
    /// CA whose certificates agents must present (`--agent-ca`); `None`: not asked.
    pub agent_ca: Option<PathBuf>,
}

impl TlsFiles {
    /// Reads and checks the files into the listener's TLS settings.
    pub fn server_config(&self) -> Result<ServerTlsConfig, TlsError> {
        let identity = read_identity("--tls-cert", &self.cert, "--tls-key", &self.key)?;
        let mut config = ServerTlsConfig::new()
            .identity(identity)
            .timeout(HANDSHAKE_TIMEOUT);
        if let Some(ca) = &self.agent_ca {
            config = config
                .client_ca_root(read_certificates("--agent-ca", ca)?)
                .client_auth_optional(true);
        }
        Ok(config)
    }
}

/// Why gRPC may not be served in plaintext on `addr`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "refusing to serve {0} in plaintext on {1}, which is not a loopback address: user tokens and node credentials would cross the network readable. Pass --tls-cert FILE and --tls-key FILE, or --insecure-plaintext when TLS ends in front of the scheduler (a proxy or service mesh)"
)]
pub struct PlaintextRefused(pub Listener, pub SocketAddr);

/// What a listening address serves, for the plaintext rule's messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    /// The gRPC API (`--grpc-addr`).
    Grpc,
    /// The web portal (`--web-addr`): its session cookies and sign-in links are credentials.
    Portal,
}

impl std::fmt::Display for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Listener::Grpc => "gRPC",
            Listener::Portal => "the web portal (--web-addr)",
        })
    }
}

/// Checks the plaintext rule: without TLS, gRPC listens on loopback only, unless
/// `insecure_plaintext` says otherwise (which is logged as a warning at every start).
pub fn check_plaintext(
    listener: Listener,
    addr: SocketAddr,
    insecure_plaintext: bool,
) -> Result<(), PlaintextRefused> {
    if insecure_plaintext {
        tracing::warn!(
            %addr,
            "--insecure-plaintext: {listener} is served without TLS; user tokens and node credentials cross the network readable unless TLS ends in front of the scheduler"
        );
        return Ok(());
    }
    if addr.ip().is_loopback() {
        Ok(())
    } else {
        Err(PlaintextRefused(listener, addr))
    }
}

/// The agent service's interceptor: when agents must present client certificates,
/// refuses calls without a verified one, then authenticates the bearer token.
#[derive(Clone)]
pub struct AgentGate {
    /// Whether a verified client certificate is required (`--agent-ca`).
    pub require_client_cert: bool,
    /// The bearer-token check that follows.
    pub auth: Authenticator,
}

impl tonic::service::Interceptor for AgentGate {
    fn call(&mut self, req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if self.require_client_cert && !has_client_certificate(&req) {
            return Err(tonic::Status::permission_denied(berth_i18n::t(
                crate::lang::current(),
                berth_i18n::api::Msg::AgentNeedsClientCert,
            )));
        }
        self.auth.call(req)
    }
}

/// True when the connection presented a client certificate. The TLS layer has already
/// verified it against the agent CA; an unverifiable one never gets this far.
fn has_client_certificate<T>(req: &tonic::Request<T>) -> bool {
    req.peer_certs().is_some_and(|certs| !certs.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plaintext_is_refused_off_loopback_unless_asked_for() {
        let loopback: SocketAddr = "127.0.0.1:7070".parse().unwrap();
        let loopback6: SocketAddr = "[::1]:7070".parse().unwrap();
        let any: SocketAddr = "0.0.0.0:7070".parse().unwrap();
        let lan: SocketAddr = "10.1.2.3:7070".parse().unwrap();
        let grpc = Listener::Grpc;
        assert_eq!(check_plaintext(grpc, loopback, false), Ok(()));
        assert_eq!(check_plaintext(grpc, loopback6, false), Ok(()));
        assert_eq!(
            check_plaintext(grpc, any, false),
            Err(PlaintextRefused(grpc, any))
        );
        assert_eq!(
            check_plaintext(Listener::Portal, lan, false),
            Err(PlaintextRefused(Listener::Portal, lan))
        );
        assert_eq!(check_plaintext(grpc, lan, true), Ok(()));
        let text = PlaintextRefused(grpc, any).to_string();
        assert!(
            text.contains("0.0.0.0:7070")
                && text.contains("--tls-cert")
                && text.contains("--insecure-plaintext"),
            "{text}"
        );
    }

    #[test]
    fn calls_without_a_client_certificate_have_none() {
        assert!(!has_client_certificate(&tonic::Request::new(())));
    }
}
