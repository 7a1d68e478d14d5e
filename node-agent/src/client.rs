//! The connection to the scheduler: the node credential, joining, and the agent RPCs.
//!
//! The credential lives in `<state_dir>/credential` (mode 0600). Without one the
//! agent joins with its join token. Every other call carries
//! `authorization: Bearer <credential>`; when the scheduler answers UNAUTHENTICATED
//! and a join token is configured, the agent joins again (once, however many calls
//! failed together) and retries the call.
//!
//! Several schedulers may be given (`--server a,b`): the agent talks to one at a time and
//! follows the leader. A standby answers UNAVAILABLE naming the leader (`berth-leader`
//! metadata); an unreachable scheduler is skipped for the next one. Either way the call is
//! retried on the scheduler it moved to.
//!
//! Heartbeats go on one long-lived stream (`Heartbeats`), one request and its reply at a
//! time. When the stream fails or cannot be opened, that heartbeat goes as a call (which
//! rejoins or follows the leader as above) and so do the next ones for a while, before a
//! stream is tried again; a scheduler without streams gets calls only.
//!
//! Times cross here in the scheduler's clock: the client learns how far the host's clock
//! is from it on each heartbeat reply and translates both ways ([`crate::clock`]).

use crate::clock::{self, ClockOffset};
use crate::error::AgentError;
use crate::logs::{LogTransport, PushError};
use async_trait::async_trait;
use berth_proto::tls::ClientTls;
use berth_proto::v1::agent_client::AgentClient;
use berth_proto::v1::{
    HeartbeatRequest, HeartbeatResponse, JoinRequest, LogChunk, ObservedJob, PushLogsRequest,
};
use std::future::Future;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request, Response, Status};

/// Time limit of calls other than the heartbeat.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Extra time a heartbeat may take beyond the wait the scheduler may hold it.
const HEARTBEAT_SLACK: Duration = Duration::from_secs(15);
/// After a heartbeat stream fails (or cannot be opened), heartbeats go as calls this
/// long before a stream is tried again.
const STREAM_RETRY: Duration = Duration::from_secs(30);

/// A failed call.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    /// Worth retrying later: unreachable, overloaded, timed out, credential refused.
    #[error("{}", describe(.0))]
    Transient(Status),
    /// The scheduler refused the request itself; retrying the same will not help.
    #[error("{}", describe(.0))]
    Rejected(Status),
}

fn describe(s: &Status) -> String {
    match berth_proto::tls::explain(s) {
        Some(tls) => format!("{:?}: {}: {tls}", s.code(), s.message()),
        None => format!("{:?}: {}", s.code(), s.message()),
    }
}

impl CallError {
    fn from_status(status: Status) -> Self {
        match status.code() {
            Code::InvalidArgument
            | Code::NotFound
            | Code::AlreadyExists
            | Code::PermissionDenied
            | Code::FailedPrecondition
            | Code::OutOfRange => CallError::Rejected(status),
            _ => CallError::Transient(status),
        }
    }
}

/// What the agent tells the scheduler when it joins (the token is added per join).
#[derive(Debug, Clone, Default)]
pub struct JoinInfo {
    /// Join token, if configured.
    pub token: Option<String>,
    /// The request without its token.
    pub request: JoinRequest,
}

/// A cheap-to-clone handle on the scheduler's agent service.
#[derive(Clone)]
pub struct SchedulerClient {
    inner: Arc<Inner>,
}

struct Inner {
    /// The schedulers this agent knows, and which one it talks to now.
    servers: RwLock<Servers>,
    tls: ClientTls,
    credential_path: PathBuf,
    credential: RwLock<Option<String>>,
    join: JoinInfo,
    rejoin: tokio::sync::Mutex<()>,
    /// The scheduler's clock minus the host's.
    clock: ClockOffset,
    /// The heartbeat stream.
    beats: tokio::sync::Mutex<Beats>,
}

/// The heartbeat stream to the scheduler in use, when one is open, and when to try one.
#[derive(Default)]
struct Beats {
    open: Option<OpenBeats>,
    /// No stream is tried before this (after one failed).
    not_before: Option<tokio::time::Instant>,
    /// Schedulers (by address) that have no heartbeat streams: calls only with them.
    unsupported: Vec<tonic::codegen::http::Uri>,
}

/// An open heartbeat stream.
struct OpenBeats {
    /// The scheduler it is open to (its index in [`Servers::list`]) and the credential it
    /// was opened with: it is given up once either changes.
    server: usize,
    credential: Option<String>,
    requests: futures::channel::mpsc::Sender<HeartbeatRequest>,
    replies: tonic::Streaming<HeartbeatResponse>,
    /// A request went out whose reply was not read (the heartbeat was dropped midway):
    /// the next reply would be that one's, so the stream is given up.
    unanswered: bool,
}

/// Normalises a server address (`host:port` gets `http://`), checks it, and sets up TLS
/// for an `https://` one.
pub fn endpoint(server: &str, tls: &ClientTls) -> Result<Endpoint, AgentError> {
    let url = if server.contains("://") {
        server.to_owned()
    } else {
        format!("http://{server}")
    };
    let endpoint = Endpoint::from_shared(url)
        .map_err(|e| AgentError::Config(format!("server address {server:?}: {e}")))?;
    let endpoint = tls
        .apply(endpoint)
        .map_err(|e| AgentError::Config(e.to_string()))?;
    Ok(endpoint
        .connect_timeout(Duration::from_secs(5))
        .tcp_keepalive(Some(Duration::from_secs(30)))
        .http2_keep_alive_interval(Duration::from_secs(20))
        .keep_alive_timeout(Duration::from_secs(10))
        .keep_alive_while_idle(true))
}

/// One scheduler: its address and a lazily connected client.
#[derive(Clone)]
struct Server {
    uri: tonic::codegen::http::Uri,
    client: AgentClient<Channel>,
}

/// The known schedulers and the one in use.
struct Servers {
    list: Vec<Server>,
    current: usize,
}

impl Servers {
    fn now(&self) -> (usize, Server) {
        (self.current, self.list[self.current].clone())
    }
}

/// Opens a heartbeat stream to `server` with `credential`: where its requests go, where
/// its replies come from. No deadline: the stream lasts as long as both ends keep it.
async fn open_stream(
    server: &Server,
    credential: Option<&str>,
) -> Result<
    (
        futures::channel::mpsc::Sender<HeartbeatRequest>,
        tonic::Streaming<HeartbeatResponse>,
    ),
    Status,
> {
    let (requests, outbound) = futures::channel::mpsc::channel(0);
    let mut request = Request::new(outbound);
    if let Some(c) = credential {
        let value = format!("Bearer {c}")
            .parse()
            .map_err(|_| Status::internal("credential is not valid metadata"))?;
        request
            .metadata_mut()
            .insert(berth_proto::AUTHORIZATION, value);
    }
    let replies = tokio::time::timeout(CALL_TIMEOUT, server.client.clone().heartbeats(request))
        .await
        .map_err(|_| Status::deadline_exceeded("opening the heartbeat stream timed out"))??
        .into_inner();
    Ok((requests, replies))
}

/// Whether a failed call means "try another scheduler": this one is a standby, is
/// stopping, or cannot be reached.
fn elsewhere(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::Unavailable | Code::Unknown | Code::Cancelled
    )
}

impl SchedulerClient {
    /// A client for `servers` (one URL, or several separated by commas; connecting lazily,
    /// over TLS for `https://`), keeping its credential in `state_dir`.
    pub fn new(
        servers: &str,
        tls: &ClientTls,
        state_dir: &Path,
        join: JoinInfo,
    ) -> Result<Self, AgentError> {
        let list = servers
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                let endpoint = endpoint(s, tls)?;
                Ok(Server {
                    uri: endpoint.uri().clone(),
                    client: AgentClient::new(endpoint.connect_lazy()),
                })
            })
            .collect::<Result<Vec<_>, AgentError>>()?;
        if list.is_empty() {
            return Err(AgentError::Config(
                "no scheduler address given (--server)".into(),
            ));
        }
        Ok(Self {
            inner: Arc::new(Inner {
                servers: RwLock::new(Servers { list, current: 0 }),
                tls: tls.clone(),
                credential_path: state_dir.join("credential"),
                credential: RwLock::new(None),
                join,
                rejoin: tokio::sync::Mutex::new(()),
                clock: ClockOffset::default(),
                beats: tokio::sync::Mutex::default(),
            }),
        })
    }

    /// The scheduler in use.
    fn server(&self) -> (usize, Server) {
        self.inner
            .servers
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .now()
    }

    /// Moves off scheduler `failed` after `status`: to the leader it named, else to the
    /// next one. Returns whether there is somewhere else to try.
    fn move_on(&self, failed: usize, status: &Status) -> bool {
        let named = status
            .metadata()
            .get("berth-leader")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let mut servers = self
            .inner
            .servers
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if servers.current != failed {
            return true; // another call already moved
        }
        if let Some(url) = named {
            let known = servers
                .list
                .iter()
                .position(|s| s.uri.to_string().trim_end_matches('/') == url.trim_end_matches('/'));
            let index = match known {
                Some(i) => i,
                None => match endpoint(&url, &self.inner.tls) {
                    Ok(e) => {
                        servers.list.push(Server {
                            uri: e.uri().clone(),
                            client: AgentClient::new(e.connect_lazy()),
                        });
                        servers.list.len() - 1
                    }
                    Err(_) => (failed + 1) % servers.list.len(),
                },
            };
            tracing::info!(leader = %url, "following the leader");
            servers.current = index;
            return index != failed;
        }
        if servers.list.len() > 1 {
            servers.current = (failed + 1) % servers.list.len();
            tracing::info!(server = %servers.list[servers.current].uri, "trying the next scheduler");
            return true;
        }
        false
    }

    fn credential(&self) -> Option<String> {
        self.inner
            .credential
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn set_credential(&self, credential: String) {
        *self
            .inner
            .credential
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Some(credential);
    }

    /// How many times one call may move to another scheduler.
    fn hops(&self) -> usize {
        self.inner
            .servers
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .list
            .len()
            + 1
    }

    /// Loads the stored credential; returns whether there was one.
    pub async fn load_credential(&self) -> Result<bool, AgentError> {
        let path = &self.inner.credential_path;
        match tokio::fs::read_to_string(path).await {
            Ok(text) => {
                let credential = text.trim().to_owned();
                if credential.is_empty() {
                    return Ok(false);
                }
                if !credential.bytes().all(|b| b.is_ascii_graphic()) {
                    return Err(AgentError::Config(format!(
                        "{} does not hold a valid credential",
                        path.display()
                    )));
                }
                self.set_credential(credential);
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(AgentError::state(path, e)),
        }
    }

    /// Whether a join token is configured.
    pub fn can_join(&self) -> bool {
        self.inner.join.token.is_some()
    }

    /// The path of the stored credential.
    pub fn credential_path(&self) -> &Path {
        &self.inner.credential_path
    }

    /// Joins with the join token and stores the credential it returns.
    pub async fn join(&self) -> Result<(), CallError> {
        let Some(token) = self.inner.join.token.clone() else {
            return Err(CallError::Rejected(Status::unauthenticated(
                "no join token configured",
            )));
        };
        let mut request = Request::new(JoinRequest {
            join_token: token,
            ..self.inner.join.request.clone()
        });
        request.set_timeout(CALL_TIMEOUT);
        let mut hops = 0;
        let response = loop {
            let (index, server) = self.server();
            let mut req = Request::new(request.get_ref().clone());
            req.set_timeout(CALL_TIMEOUT);
            match server.client.clone().join(req).await {
                Ok(r) => break r.into_inner(),
                // A bad join token will not get better by retrying.
                Err(s) if s.code() == Code::Unauthenticated => return Err(CallError::Rejected(s)),
                Err(s) if elsewhere(&s) && hops < self.hops() && self.move_on(index, &s) => {
                    hops += 1;
                }
                Err(s) => return Err(CallError::from_status(self.explained(&server, s).await)),
            }
        };
        let credential = response.credential.trim().to_owned();
        if credential.is_empty() || !credential.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(CallError::Rejected(Status::internal(
                "the scheduler returned an unusable credential",
            )));
        }
        if !response.node.is_empty() && response.node != self.inner.join.request.node {
            tracing::warn!(asked = %self.inner.join.request.node, got = %response.node, "scheduler registered the node under another name");
        }
        if let Err(error) = save_credential(&self.inner.credential_path, &credential).await {
            // Still usable for this run; the next start will join again.
            tracing::warn!(%error, "cannot store the node credential");
        }
        self.set_credential(credential);
        tracing::info!(node = %self.inner.join.request.node, "joined the scheduler");
        Ok(())
    }

    /// Joins again after `rejected` was refused, unless another call already did.
    async fn rejoin(&self, rejected: Option<&str>) -> Result<(), CallError> {
        let _guard = self.inner.rejoin.lock().await;
        if self.credential().as_deref() != rejected {
            return Ok(());
        }
        if !self.can_join() {
            return Err(CallError::Transient(Status::unauthenticated(
                "the scheduler refused the node credential and no join token is configured to get a new one",
            )));
        }
        tracing::info!("the scheduler refused the node credential; joining again");
        self.join().await
    }

    /// A connection failure with the TLS problem behind it spelled out, when the error
    /// does not say and a fresh handshake shows one (a refused client certificate
    /// surfaces after the TLS 1.3 handshake, as a dropped connection).
    async fn explained(&self, server: &Server, status: Status) -> Status {
        let connection_level = matches!(
            status.code(),
            Code::Cancelled | Code::Unknown | Code::Unavailable
        );
        if !connection_level || berth_proto::tls::explain(&status).is_some() {
            return status;
        }
        match self.inner.tls.diagnose(&server.uri).await {
            Some(why) => Status::unavailable(format!("{}: {why}", status.message())),
            None => status,
        }
    }

    /// Runs one authenticated call, re-joining once on UNAUTHENTICATED.
    async fn call<M, R, F, Fut>(&self, msg: M, timeout: Duration, f: F) -> Result<R, CallError>
    where
        M: Clone,
        F: Fn(AgentClient<Channel>, Request<M>) -> Fut,
        Fut: Future<Output = Result<Response<R>, Status>>,
    {
        let mut rejoined = false;
        let mut hops = 0;
        loop {
            let (index, server) = self.server();
            let credential = self.credential();
            let mut request = Request::new(msg.clone());
            request.set_timeout(timeout);
            if let Some(c) = &credential {
                let value = format!("Bearer {c}").parse().map_err(|_| {
                    CallError::Rejected(Status::internal("credential is not valid metadata"))
                })?;
                request
                    .metadata_mut()
                    .insert(berth_proto::AUTHORIZATION, value);
            }
            match f(server.client.clone(), request).await {
                Ok(response) => return Ok(response.into_inner()),
                Err(s) if s.code() == Code::Unauthenticated && !rejoined => {
                    rejoined = true;
                    // Auth trouble is never a reason to drop a report or log chunks.
                    if let Err(e) = self.rejoin(credential.as_deref()).await {
                        let (CallError::Transient(status) | CallError::Rejected(status)) = e;
                        return Err(CallError::Transient(status));
                    }
                }
                Err(s) if s.code() == Code::Unauthenticated => {
                    return Err(CallError::Transient(s));
                }
                Err(s) if elsewhere(&s) && hops < self.hops() && self.move_on(index, &s) => {
                    hops += 1;
                }
                Err(s) => return Err(CallError::from_status(self.explained(&server, s).await)),
            }
        }
    }

    /// Sends a heartbeat; the scheduler may hold it up to the request's `wait`. The
    /// reply's deadlines come back in the host's clock.
    pub async fn heartbeat(
        &self,
        mut request: HeartbeatRequest,
        wait: Duration,
    ) -> Result<HeartbeatResponse, CallError> {
        clock::request_to_scheduler(&mut request, self.inner.clock.get());
        let mut reply = match self.beat_on_stream(&request, wait).await {
            Some(reply) => reply,
            // No stream, or it failed: a call, which also rejoins or follows the leader
            // when that is what the failure called for.
            None => {
                self.call(request, wait + HEARTBEAT_SLACK, |mut c, r| async move {
                    c.heartbeat(r).await
                })
                .await?
            }
        };
        if let Some(now) = &reply.now {
            let (scheduler, host) = (
                berth_proto::time::ts_to_ms(now),
                berth_proto::time::now_ms(),
            );
            let before = self.inner.clock.observe(scheduler, host);
            let offset = self.inner.clock.get();
            if (offset - before).abs() >= clock::NOTABLE_MS {
                tracing::warn!(
                    offset_ms = offset,
                    "the scheduler's clock differs from this host's; protocol times are translated"
                );
            }
        }
        clock::reply_to_host(&mut reply, self.inner.clock.get());
        Ok(reply)
    }

    /// Sends a heartbeat on the stream, opening one first when none is open; `None` when
    /// it should go as a call instead: no stream could be opened, or it failed (and is
    /// given up, to be tried again after [`STREAM_RETRY`]).
    async fn beat_on_stream(
        &self,
        request: &HeartbeatRequest,
        wait: Duration,
    ) -> Option<HeartbeatResponse> {
        let mut beats = self.inner.beats.lock().await;
        let (index, server) = self.server();
        let credential = self.credential();
        if beats.open.as_ref().is_some_and(|open| {
            open.server != index || open.credential != credential || open.unanswered
        }) {
            beats.open = None;
        }
        if beats.open.is_none() {
            let now = tokio::time::Instant::now();
            if beats.unsupported.contains(&server.uri) || beats.not_before.is_some_and(|t| now < t)
            {
                return None;
            }
            match open_stream(&server, credential.as_deref()).await {
                Ok((requests, replies)) => {
                    tracing::debug!(server = %server.uri, "heartbeat stream open");
                    beats.open = Some(OpenBeats {
                        server: index,
                        credential,
                        requests,
                        replies,
                        unanswered: false,
                    });
                }
                Err(status) if status.code() == Code::Unimplemented => {
                    tracing::info!(server = %server.uri, "the scheduler has no heartbeat streams; heartbeats go as calls");
                    beats.unsupported.push(server.uri.clone());
                    return None;
                }
                Err(status) => {
                    tracing::debug!(status = %describe(&status), "no heartbeat stream; heartbeats go as calls for now");
                    beats.not_before = Some(now + STREAM_RETRY);
                    return None;
                }
            }
        }
        let open = beats.open.as_mut()?;
        open.unanswered = true;
        let exchange = async {
            use futures::SinkExt;
            open.requests
                .send(request.clone())
                .await
                .map_err(|_| Status::unavailable("the heartbeat stream closed"))?;
            open.replies.message().await
        };
        let reply = tokio::time::timeout(wait + HEARTBEAT_SLACK, exchange).await;
        match reply {
            Ok(Ok(Some(reply))) => {
                open.unanswered = false;
                Some(reply)
            }
            failed => {
                let why = match failed {
                    Ok(Err(status)) => describe(&status),
                    Ok(Ok(None)) => "the scheduler ended it".to_owned(),
                    _ => "no reply in time".to_owned(),
                };
                tracing::info!(%why, "the heartbeat stream failed; heartbeats go as calls for now");
                beats.open = None;
                beats.not_before = Some(tokio::time::Instant::now() + STREAM_RETRY);
                None
            }
        }
    }

    /// Reports a job's state change.
    pub async fn report_job(&self, mut job: ObservedJob) -> Result<(), CallError> {
        clock::job_to_scheduler(&mut job, self.inner.clock.get());
        self.call(job, CALL_TIMEOUT, |mut c, r| async move {
            c.report_job(r).await
        })
        .await
        .map(|_| ())
    }

    /// Ships log chunks of one job; returns the highest seq stored.
    pub async fn push_logs(
        &self,
        job_id: &str,
        mut chunks: Vec<LogChunk>,
    ) -> Result<u64, CallError> {
        clock::chunks_to_scheduler(&mut chunks, self.inner.clock.get());
        let request = PushLogsRequest {
            job_id: job_id.to_owned(),
            chunks,
        };
        self.call(request, CALL_TIMEOUT, |mut c, r| async move {
            c.push_logs(r).await
        })
        .await
        .map(|r| r.stored_seq)
    }
}

#[async_trait]
impl LogTransport for SchedulerClient {
    async fn push(&self, job_id: &str, chunks: Vec<LogChunk>) -> Result<u64, PushError> {
        self.push_logs(job_id, chunks).await.map_err(|e| match e {
            CallError::Transient(_) => PushError::Retry(e.to_string()),
            CallError::Rejected(_) => PushError::Rejected(e.to_string()),
        })
    }
}

/// Writes the credential readable by its owner only, atomically.
async fn save_credential(path: &Path, credential: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        tokio::fs::create_dir_all(dir).await?;
    }
    let tmp = path.with_extension("tmp");
    let _ = tokio::fs::remove_file(&tmp).await;
    let mut options = tokio::fs::OpenOptions::new();
    options.write(true).create_new(true).mode(0o600);
    let mut file = options.open(&tmp).await?;
    tokio::io::AsyncWriteExt::write_all(&mut file, credential.as_bytes()).await?;
    file.sync_all().await?;
    drop(file);
    tokio::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)).await?;
    tokio::fs::rename(&tmp, path).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        let plain = ClientTls::default();
        assert!(endpoint("http://127.0.0.1:7070", &plain).is_ok());
        assert!(endpoint("127.0.0.1:7070", &plain).is_ok());
        assert_eq!(
            endpoint("127.0.0.1:7070", &plain)
                .unwrap()
                .uri()
                .to_string(),
            "http://127.0.0.1:7070/"
        );
        assert!(matches!(
            endpoint("http://bad host", &plain),
            Err(AgentError::Config(_))
        ));
        let missing_ca = ClientTls {
            ca_cert: Some("/nonexistent/ca.pem".into()),
            identity: None,
        };
        let Err(AgentError::Config(e)) = endpoint("https://127.0.0.1:7070", &missing_ca) else {
            panic!("a missing CA file is a configuration error");
        };
        assert!(e.starts_with("--ca-cert /nonexistent/ca.pem"), "{e}");
    }

    #[test]
    fn classifies_statuses() {
        for code in [
            Code::InvalidArgument,
            Code::NotFound,
            Code::PermissionDenied,
        ] {
            assert!(matches!(
                CallError::from_status(Status::new(code, "x")),
                CallError::Rejected(_)
            ));
        }
        for code in [
            Code::Unavailable,
            Code::DeadlineExceeded,
            Code::Internal,
            Code::Unknown,
            Code::ResourceExhausted,
        ] {
            assert!(matches!(
                CallError::from_status(Status::new(code, "x")),
                CallError::Transient(_)
            ));
        }
    }

    #[tokio::test]
    async fn credentials_are_stored_owner_only_and_loaded() {
        let dir = tempfile::tempdir().unwrap();
        let client = SchedulerClient::new(
            "http://127.0.0.1:1",
            &ClientTls::default(),
            dir.path(),
            JoinInfo::default(),
        )
        .unwrap();
        assert!(!client.load_credential().await.unwrap());
        save_credential(client.credential_path(), "secret-1")
            .await
            .unwrap();
        save_credential(client.credential_path(), "secret-2")
            .await
            .unwrap();
        let mode = std::fs::metadata(client.credential_path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(client.load_credential().await.unwrap());
        assert_eq!(client.credential().as_deref(), Some("secret-2"));
        std::fs::write(client.credential_path(), "bad\u{1}cred").unwrap();
        assert!(client.load_credential().await.is_err());
    }
}
