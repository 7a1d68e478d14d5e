//! Starting the scheduler: store, engine, gRPC and HTTP listeners, scheduling loop.

use crate::auth::{Authenticator, Keys};
use crate::engine::{Engine, Policy};
use crate::gate::LeaderGateLayer;
use crate::metrics::Metrics;
use crate::overload::{Limits as InFlight, OverloadLayer};
use crate::rpc_metrics::RpcMetricsLayer;
use crate::service::*;
use crate::store::{self, Candidate, Lease, Store};
use crate::tls::{AgentGate, PlaintextRefused, TlsFiles};
use berth_proto::v1;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// At most one giving back of freed memory per this long (after passes that planned a large
/// queue; see [`crate::memory`]).
const TRIM_EVERY: Duration = Duration::from_secs(5);

/// Everything the scheduler needs to start.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// gRPC listen address (port 0 picks a free port).
    pub grpc_addr: SocketAddr,
    /// HTTP listen address for `/metrics`, `/healthz`, `/readyz`.
    pub http_addr: SocketAddr,
    /// Listen address of the web portal; `None`: no portal.
    pub web_addr: Option<SocketAddr>,
    /// How users reach the portal, for sign-in links (default `http://<web_addr>`).
    pub web_url: Option<String>,
    /// Database URL; `None` means SQLite at `<data_dir>/berth.db`.
    pub database_url: Option<String>,
    /// Where the SQLite database and dev-mode files live.
    pub data_dir: PathBuf,
    /// The JWT signing secret. Required unless `dev`.
    pub signing_key: Option<Vec<u8>>,
    /// Development mode: a signing key is generated and kept in the data dir.
    pub dev: bool,
    /// Makes sure an admin exists and keeps a valid admin token in this file.
    pub bootstrap_admin_token_file: Option<PathBuf>,
    /// Written once listening: `{"grpc": "...", "http": "...", "web": "..."}` (`web`
    /// empty without a portal).
    pub addr_file: Option<PathBuf>,
    /// TLS for the gRPC listener; `None`: plaintext, on loopback only unless
    /// `insecure_plaintext`.
    pub tls: Option<TlsFiles>,
    /// Serve plaintext gRPC off loopback anyway (TLS ends in front of the scheduler);
    /// logged as a warning at every start.
    pub insecure_plaintext: bool,
    /// Timings and limits.
    pub policy: Policy,
    /// Interval of the scheduling pass when nothing wakes it earlier.
    pub tick: Duration,
    /// Interval of the retention sweep.
    pub retention_interval: Duration,
    /// What one request may cost the server.
    pub limits: Limits,
    /// How clients reach this scheduler (standbys tell clients where the leader is);
    /// default `http://<grpc_addr>`.
    pub advertise_url: Option<String>,
    /// CA (PEM) that verifies other schedulers' `https://` addresses when a standby
    /// relays calls to the leader (default: the system's CAs).
    pub peer_ca: Option<PathBuf>,
    /// How long the leader's lease lasts on a shared PostgreSQL database; it is renewed
    /// every fifth of that, and a standby takes over within one lease of the leader's end.
    pub ha_lease: Duration,
    /// How notifications are delivered (the SMTP relay, timeouts, retries).
    pub notify: crate::engine::notify::NotifyConfig,
}

/// What one request may cost the server: time, size, and room among the others.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Longest a request may take (the client's `grpc-timeout` applies when shorter).
    pub deadline: Duration,
    /// Largest message either way, in bytes.
    pub max_message_bytes: usize,
    /// Requests in flight at once before new ones are refused.
    pub in_flight: InFlight,
    /// Calls per second (and burst) of each organisation's users together.
    pub per_org: crate::ratelimit::Rate,
    /// Calls per second (and burst) of each node's agent.
    pub per_node: crate::ratelimit::Rate,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            deadline: Duration::from_secs(30),
            max_message_bytes: 4 * 1024 * 1024,
            in_flight: InFlight::default(),
            per_org: crate::ratelimit::Rate {
                per_second: 500.0,
                burst: 1000.0,
            },
            per_node: crate::ratelimit::Rate {
                per_second: 100.0,
                burst: 400.0,
            },
        }
    }
}

impl ServerConfig {
    /// A development configuration: SQLite and a generated key in `data_dir`, an
    /// admin token in `data_dir/admin.token`, listening on 127.0.0.1:7070 and :7071.
    pub fn dev(data_dir: PathBuf) -> Self {
        ServerConfig {
            grpc_addr: SocketAddr::from(([127, 0, 0, 1], 7070)),
            http_addr: SocketAddr::from(([127, 0, 0, 1], 7071)),
            web_addr: None,
            web_url: None,
            database_url: None,
            bootstrap_admin_token_file: Some(data_dir.join("admin.token")),
            data_dir,
            signing_key: None,
            dev: true,
            addr_file: None,
            tls: None,
            insecure_plaintext: false,
            policy: Policy::default(),
            tick: Duration::from_millis(500),
            retention_interval: Duration::from_secs(600),
            limits: Limits::default(),
            advertise_url: None,
            peer_ca: None,
            ha_lease: Duration::from_secs(10),
            notify: crate::engine::notify::NotifyConfig::default(),
        }
    }
}

/// Why the scheduler could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// No signing key and not in dev mode.
    #[error(
        "no signing key: pass --signing-key-file or set BERTH_SIGNING_KEY (at least 32 bytes), or use --dev for development"
    )]
    NoSigningKey,
    /// The signing key is too short.
    #[error("the signing key must be at least 32 bytes")]
    WeakSigningKey,
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// The database could not be opened or migrated.
    #[error("database: {0}")]
    Store(#[from] store::StoreError),
    /// The state could not be loaded.
    #[error("loading state: {0}")]
    Engine(#[from] crate::error::Error),
    /// Metrics registration failed.
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// Another scheduler already runs on this SQLite database.
    #[error(
        "another berth-scheduler already runs on the SQLite database {}: the embedded SQLite \
         default runs a single scheduler. To run several (one leads, the others stand by), \
         give them all one PostgreSQL database with --database-url postgres://...",
        path.display()
    )]
    SecondOnSqlite {
        /// The database file.
        path: PathBuf,
    },
    /// Plaintext gRPC on a non-loopback address without `--insecure-plaintext`.
    #[error(transparent)]
    Plaintext(#[from] PlaintextRefused),
    /// A TLS file is missing or unusable.
    #[error("TLS: {0}")]
    Tls(#[from] berth_proto::tls::TlsError),
    /// The gRPC server refused the TLS settings.
    #[error("TLS: {0}")]
    TlsSetup(String),
}

/// How this scheduler verifies the others it relays calls to, checked at start: a
/// missing or unusable `--peer-ca`, or one given for `http://` schedulers, would otherwise
/// turn every relayed call into `UNAVAILABLE` later.
fn peer_tls(config: &ServerConfig) -> Result<berth_proto::tls::ClientTls, StartError> {
    let tls = berth_proto::tls::ClientTls {
        ca_cert: config.peer_ca.clone(),
        identity: None,
    };
    if config.peer_ca.is_some() {
        if let Some(url) = config.advertise_url.as_deref()
            && !url.starts_with("https://")
        {
            return Err(StartError::TlsSetup(format!(
                "--peer-ca verifies https:// schedulers, but --advertise-url is {url}"
            )));
        }
        let probe = tonic::transport::Endpoint::from_static("https://berth-peer.invalid");
        tls.apply(probe)
            .map_err(|e| StartError::TlsSetup(format!("--peer-ca: {e}")))?;
    }
    Ok(tls)
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StartError + '_ {
    move |source| StartError::Io {
        path: path.to_owned(),
        source,
    }
}

/// A running scheduler.
pub struct RunningServer {
    /// Where gRPC listens.
    pub grpc_addr: SocketAddr,
    /// Where HTTP listens.
    pub http_addr: SocketAddr,
    /// Where the web portal listens, if it does.
    pub web_addr: Option<SocketAddr>,
    /// The bootstrap admin token, when one was asked for.
    pub admin_token: Option<String>,
    /// The engine (for in-process use and tests).
    pub engine: Arc<Engine>,
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
    /// Held while the scheduler runs on a SQLite file (one scheduler per file).
    sqlite_lock: Option<std::fs::File>,
}

impl RunningServer {
    /// Stops accepting requests, finishes in-flight ones and stops the loop.
    pub async fn shutdown(self) {
        self.engine.refuse_writes(Some(berth_i18n::text!(Stopping)));
        self.shutdown.cancel();
        for t in self.tasks {
            let _ = t.await;
        }
    }

    /// A token that stops the server when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }
}

/// After each pass the loop rests this many times as long as the pass took (at most a
/// tick): a pass takes at most 1 / (1 + this) of a core from the API.
const PASS_REST_RATIO: u32 = 2;

fn signing_key(config: &ServerConfig) -> Result<Vec<u8>, StartError> {
    if let Some(k) = &config.signing_key {
        return if k.len() < 32 {
            Err(StartError::WeakSigningKey)
        } else {
            Ok(k.clone())
        };
    }
    if !config.dev {
        return Err(StartError::NoSigningKey);
    }
    let path = config.data_dir.join("signing.key");
    match std::fs::read_to_string(&path) {
        Ok(s) if s.trim().len() >= 32 => Ok(s.trim().as_bytes().to_vec()),
        Ok(_) | Err(_) => {
            let key = crate::auth::random_secret("");
            write_secret(&path, &key)?;
            tracing::info!(path = %path.display(), "dev mode: generated a signing key");
            Ok(key.into_bytes())
        }
    }
}

/// Writes a secret file readable only by its owner.
fn write_secret(path: &Path, contents: &str) -> Result<(), StartError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io(&tmp))?;
    f.write_all(contents.as_bytes()).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

/// The reflection service's builder: the Berth API, health, and both reflection
/// versions, so that v1 and v1alpha clients see the same list of what is served.
fn reflection_builder() -> tonic_reflection::server::Builder<'static> {
    use tonic_reflection::pb::{v1, v1alpha};
    tonic_reflection::server::Builder::configure()
        .include_reflection_service(false)
        .register_encoded_file_descriptor_set(berth_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(v1::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(v1alpha::FILE_DESCRIPTOR_SET)
}

/// Why tonic refused the TLS settings, in plain words where rustls says why.
fn tls_setup_error(e: &tonic::transport::Error) -> String {
    berth_proto::tls::explain(e).unwrap_or_else(|| berth_proto::tls::error_chain(e))
}

/// The TLS settings of the gRPC listener; plaintext only on loopback unless the operator
/// says otherwise.
fn tls_settings(
    config: &ServerConfig,
) -> Result<Option<tonic::transport::ServerTlsConfig>, StartError> {
    match &config.tls {
        Some(files) => Ok(Some(files.server_config()?)),
        None => {
            crate::tls::check_plaintext(
                crate::tls::Listener::Grpc,
                config.grpc_addr,
                config.insecure_plaintext,
            )?;
            Ok(None)
        }
    }
}

/// Starts the scheduler.
pub async fn start(config: ServerConfig) -> Result<RunningServer, StartError> {
    // Refused before the database is opened: no plaintext off loopback, no bad TLS files.
    tls_settings(&config)?;
    std::fs::create_dir_all(&config.data_dir).map_err(io(&config.data_dir))?;
    let url = config.database_url.clone().unwrap_or_else(|| {
        format!(
            "sqlite://{}?mode=rwc",
            config.data_dir.join("berth.db").display()
        )
    });
    // The embedded SQLite database runs one scheduler: a second one on the same file is
    // refused, saying so, instead of quietly sharing it.
    let sqlite_lock = match sqlite_file(&url) {
        Some(path) => Some(lock_sqlite(&path)?),
        None => None,
    };
    let store = store::open(&url).await?;
    let metrics = Arc::new(Metrics::new()?);
    store.register_metrics(&metrics.registry)?;
    let store = Arc::new(store);
    let lease: Option<Arc<dyn Lease>> =
        (store.backend() == sea_orm::DbBackend::Postgres).then(|| store.clone() as Arc<dyn Lease>);
    let mut server = start_on(config, store, lease, metrics).await?;
    server.sqlite_lock = sqlite_lock;
    Ok(server)
}

/// The file of a `sqlite://PATH?...` URL (`None` for in-memory databases and PostgreSQL).
fn sqlite_file(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && !path.contains(":memory:")).then(|| PathBuf::from(path))
}

/// Holds an exclusive lock beside a SQLite database for as long as the scheduler runs.
fn lock_sqlite(db: &Path) -> Result<std::fs::File, StartError> {
    let path = db.with_extension("db.lock");
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io(&path))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(StartError::SecondOnSqlite {
            path: db.to_owned(),
        }),
        Err(std::fs::TryLockError::Error(e)) => Err(StartError::Io { path, source: e }),
    }
}

/// Starts the scheduler on a store opened by the caller (tests wrap the real store to
/// inject failures), with metrics the store may already be registered on.
pub async fn start_on(
    config: ServerConfig,
    store: Arc<dyn Store>,
    lease: Option<Arc<dyn Lease>>,
    metrics: Arc<Metrics>,
) -> Result<RunningServer, StartError> {
    let tls = tls_settings(&config)?;
    let peer_tls = peer_tls(&config)?;
    let portal_tls = match (&config.tls, config.web_addr) {
        (Some(files), Some(_)) => Some(crate::portal::tls::server_config(files)?),
        (None, Some(addr)) => {
            // Session cookies and sign-in links are credentials too.
            crate::tls::check_plaintext(
                crate::tls::Listener::Portal,
                addr,
                config.insecure_plaintext,
            )?;
            None
        }
        _ => None,
    };
    std::fs::create_dir_all(&config.data_dir).map_err(io(&config.data_dir))?;
    let key = signing_key(&config)?;
    let grpc = TcpListener::bind(config.grpc_addr)
        .await
        .map_err(|e| StartError::Io {
            path: PathBuf::from(config.grpc_addr.to_string()),
            source: e,
        })?;
    let http = TcpListener::bind(config.http_addr)
        .await
        .map_err(|e| StartError::Io {
            path: PathBuf::from(config.http_addr.to_string()),
            source: e,
        })?;
    let web = match config.web_addr {
        Some(addr) => Some(TcpListener::bind(addr).await.map_err(|e| StartError::Io {
            path: PathBuf::from(addr.to_string()),
            source: e,
        })?),
        None => None,
    };
    let grpc_addr = grpc.local_addr().map_err(io(Path::new("grpc listener")))?;
    let http_addr = http.local_addr().map_err(io(Path::new("http listener")))?;
    let web_addr = match &web {
        Some(l) => Some(l.local_addr().map_err(io(Path::new("web listener")))?),
        None => None,
    };
    let me = Candidate {
        id: format!(
            "{}-{}",
            hostname(),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        ),
        address: config
            .advertise_url
            .clone()
            .unwrap_or_else(|| format!("http://{grpc_addr}")),
        started_ms: berth_proto::time::now_ms(),
    };
    let engine = Arc::new(
        Engine::load(
            store,
            Keys::from_secret(&key),
            metrics.clone(),
            config.policy.clone(),
            lease.clone().map(|l| (l, me.clone())),
        )
        .await?,
    );
    // The writer lives as long as the engine; it is not one of the tasks shutdown waits
    // for, so requests still in flight at shutdown get their answers.
    drop(engine.spawn_writer());

    // The bootstrap admin is made by whoever leads: at once alone, or when this scheduler
    // wins the lease (the first campaign runs before the server answers anything).
    let admin_token = Arc::new(std::sync::Mutex::new(None::<String>));
    let bootstrap = {
        let (engine, file, out) = (
            engine.clone(),
            config.bootstrap_admin_token_file.clone(),
            admin_token.clone(),
        );
        move || {
            let (engine, file, out) = (engine.clone(), file.clone(), out.clone());
            async move {
                let Some(path) = file else { return };
                match bootstrap_admin(&engine, &path).await {
                    Ok(token) => *out.lock().unwrap_or_else(|e| e.into_inner()) = token,
                    Err(e) => tracing::error!(error = %e, "could not bootstrap the admin"),
                }
            }
        }
    };
    let lease_ms = config.ha_lease.as_millis() as i64;
    match &lease {
        None => bootstrap().await,
        Some(l) => engine.campaign_once(&**l, lease_ms, &bootstrap).await,
    }
    let admin_token = admin_token
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    if lease.is_none() && config.bootstrap_admin_token_file.is_some() && admin_token.is_none() {
        return Err(StartError::Engine(crate::error::Error::Internal(
            "the bootstrap admin could not be made".into(),
        )));
    }

    let shutdown = CancellationToken::new();
    let mut tasks = Vec::new();

    let auth = Authenticator {
        keys: engine.keys.clone(),
        index: engine.auth.clone(),
        limits: Arc::new(crate::auth::Limits {
            orgs: crate::ratelimit::RateLimiter::new(config.limits.per_org),
            nodes: crate::ratelimit::RateLimiter::new(config.limits.per_node),
        }),
    };
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<v1::jobs_server::JobsServer<JobsService>>()
        .await;
    health
        .set_serving::<v1::reservations_server::ReservationsServer<ReservationsService>>()
        .await;
    health
        .set_serving::<v1::agent_server::AgentServer<AgentService>>()
        .await;
    let reflection_error =
        |e| StartError::Engine(crate::error::Error::Internal(format!("reflection: {e}")));
    // v1 for current tools; v1alpha for Python's grpcio-reflection and older tools.
    let reflection_v1 = reflection_builder().build_v1().map_err(reflection_error)?;
    let reflection_v1alpha = reflection_builder()
        .build_v1alpha()
        .map_err(reflection_error)?;
    let agent_gate = AgentGate {
        require_client_cert: config.tls.as_ref().is_some_and(|t| t.agent_ca.is_some()),
        auth: auth.clone(),
    };
    let mut builder = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(20)))
        .timeout(config.limits.deadline);
    if let Some(tls) = tls {
        builder = builder
            .tls_config(tls)
            .map_err(|e| StartError::TlsSetup(tls_setup_error(&e)))?;
    }
    let e = &engine;
    // Every service refuses messages over the limit, both ways, with a clear status.
    macro_rules! service {
        ($($server:ident)::+, $svc:expr, $gate:expr) => {
            tonic::service::interceptor::InterceptedService::new(
                v1::$($server)::+::new($svc)
                    .max_decoding_message_size(config.limits.max_message_bytes)
                    .max_encoding_message_size(config.limits.max_message_bytes),
                $gate,
            )
        };
    }
    let router = builder
        .layer(RpcMetricsLayer(metrics.clone()))
        .layer(crate::lang::LangLayer)
        .layer(OverloadLayer::new(config.limits.in_flight))
        .layer(LeaderGateLayer::new(
            engine.clone(),
            peer_tls,
            agent_gate.require_client_cert,
        ))
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(service!(
            identity_server::IdentityServer,
            IdentityService(e.clone()),
            auth.clone()
        ))
        .add_service(service!(
            capacity_server::CapacityServer,
            CapacityService(e.clone()),
            auth.clone()
        ))
        .add_service(service!(
            reservations_server::ReservationsServer,
            ReservationsService(e.clone()),
            auth.clone()
        ))
        .add_service(tonic::service::interceptor::InterceptedService::new(
            crate::service::JobsRoutes::new(e.clone(), config.limits.max_message_bytes),
            auth.clone(),
        ))
        .add_service(service!(
            usage_server::UsageServer,
            UsageService(e.clone()),
            auth.clone()
        ))
        .add_service(service!(
            notifications_server::NotificationsServer,
            NotificationsService(e.clone()),
            auth.clone()
        ))
        .add_service(service!(
            admin_server::AdminServer,
            AdminService(e.clone()),
            auth.clone()
        ))
        .add_service(service!(
            projects_server::ProjectsServer,
            ProjectsService(e.clone()),
            auth.clone()
        ))
        .add_service(service!(
            billing_server::BillingServer,
            BillingService(e.clone()),
            auth.clone()
        ))
        .add_service(service!(
            agent_server::AgentServer,
            AgentService {
                engine: e.clone(),
                auth: auth.clone(),
                stopping: shutdown.clone(),
            },
            agent_gate
        ));
    let stop = shutdown.clone();
    tasks.push(tokio::spawn(async move {
        // No Nagle: a small answer must not wait for the client's delayed ACK.
        let incoming = tonic::transport::server::TcpIncoming::from(grpc)
            .with_nodelay(Some(true))
            .with_keepalive(Some(Duration::from_secs(60)));
        if let Err(e) = router
            .serve_with_incoming_shutdown(incoming, stop.cancelled_owned())
            .await
        {
            tracing::error!(error = %e, "gRPC server failed");
        }
    }));

    let stop = shutdown.clone();
    let app = crate::http::router(engine.clone());
    tasks.push(tokio::spawn(async move {
        if let Err(e) = axum::serve(http, app)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await
        {
            tracing::error!(error = %e, "HTTP server failed");
        }
    }));

    if let (Some(listener), Some(addr)) = (web, web_addr) {
        // The portal serves TLS with the scheduler's certificate whenever gRPC does, and
        // its session cookie is then `Secure`.
        let portal = crate::portal::PortalConfig {
            tls: portal_tls.is_some(),
        };
        let scheme = if portal.tls { "https" } else { "http" };
        let url = config
            .web_url
            .clone()
            .unwrap_or_else(|| format!("{scheme}://{}", dial_addr(addr)));
        engine.set_web_url(url.trim_end_matches('/').to_owned());
        let app = crate::portal::router(engine.clone(), portal);
        match portal_tls {
            Some(tls) => {
                let listener =
                    crate::portal::tls::TlsListener::new(listener, tls, shutdown.clone())
                        .map_err(io(Path::new("web listener")))?;
                tasks.push(tokio::spawn(crate::portal::serve(
                    listener,
                    app,
                    shutdown.clone(),
                )));
            }
            None => tasks.push(tokio::spawn(crate::portal::serve(
                listener,
                app,
                shutdown.clone(),
            ))),
        }
    }

    let stop = shutdown.clone();
    let looped = engine.clone();
    let tick = config.tick;
    crate::memory::tune();
    tasks.push(tokio::spawn(async move {
        let mut trimmer = crate::memory::Trimmer::new(TRIM_EVERY);
        loop {
            let started = tokio::time::Instant::now();
            if looped.leads() {
                match looped.pass().await {
                    Ok(report) => trimmer.after_pass(report.planned, &looped.metrics).await,
                    Err(e) => tracing::error!(error = %e, "scheduling pass failed"),
                }
            }
            // Every submit asks for a pass, so under a stream of requests passes would run
            // back to back and take a whole core from the API. After each pass, rest
            // twice as long as it took (at most a tick): a pass has at most a third of a
            // core, a small queue still gets its pass within a few milliseconds, and a
            // kick that came meanwhile is kept for after the rest.
            let rest = (started.elapsed() * PASS_REST_RATIO).min(tick);
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(rest) => {}
            }
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(tick.saturating_sub(rest)) => {}
                _ = looped.wake.notified() => {}
            }
        }
    }));

    // The notification sender: its own task, so no delivery ever waits in a request or
    // a pass; it sends only while this scheduler leads.
    tasks.push(tokio::spawn(crate::engine::notify::sender::run(
        engine.clone(),
        config.notify.clone(),
        shutdown.clone(),
    )));

    let stop = shutdown.clone();
    let sweeper = engine.clone();
    let every = config.retention_interval;
    tasks.push(tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(every) => {}
            }
            if sweeper.leads()
                && let Err(e) = sweeper.sweep_retention().await
            {
                tracing::warn!(error = %e, "retention sweep failed; retrying later");
            }
        }
    }));

    if let Some(lease) = lease {
        let stop = shutdown.clone();
        let campaigner = engine.clone();
        tasks.push(tokio::spawn(async move {
            campaigner.campaign(lease, lease_ms, bootstrap, stop).await;
        }));
    }

    if let Some(path) = &config.addr_file {
        let web = web_addr.map_or_else(String::new, |a| a.to_string());
        let json =
            format!("{{\"grpc\":\"{grpc_addr}\",\"http\":\"{http_addr}\",\"web\":\"{web}\"}}\n");
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, json).map_err(io(&tmp))?;
        std::fs::rename(&tmp, path).map_err(io(path))?;
    }
    tracing::info!(
        %grpc_addr,
        %http_addr,
        web_addr = ?web_addr,
        tls = config.tls.is_some(),
        agent_client_certificates = config.tls.as_ref().is_some_and(|t| t.agent_ca.is_some()),
        "berth-scheduler listening"
    );
    Ok(RunningServer {
        grpc_addr,
        http_addr,
        web_addr,
        admin_token,
        engine,
        shutdown,
        tasks,
        sqlite_lock: None,
    })
}

/// Makes sure a centre admin exists with a valid token in `path` (mode 0600); returns the
/// token.
async fn bootstrap_admin(engine: &Engine, path: &Path) -> Result<Option<String>, StartError> {
    let existing = std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_owned());
    match engine.bootstrap_admin(existing.as_deref()).await? {
        Some(token) => {
            write_secret(path, &token)?;
            tracing::info!(path = %path.display(), "wrote a new admin token");
            Ok(Some(token))
        }
        None => Ok(existing),
    }
}

/// The address a client on this machine dials for a listener on `addr` (loopback for
/// an unspecified address).
fn dial_addr(addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        let loopback: std::net::IpAddr = match addr {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        };
        SocketAddr::new(loopback, addr.port())
    } else {
        addr
    }
}

/// This machine's name, for scheduler ids (`unknown` when it cannot be read).
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}
