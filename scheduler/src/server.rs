//! Starting the scheduler: store, engine, gRPC and HTTP listeners, scheduling loop.

use crate::auth::{Authenticator, Keys};
use crate::engine::{Engine, Policy};
use crate::metrics::Metrics;
use crate::rpc_metrics::RpcMetricsLayer;
use crate::service::*;
use crate::store::{self, Store};
use crate::tls::{AgentGate, PlaintextRefused, TlsFiles};
use berth_proto::v1;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Everything the scheduler needs to start.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// gRPC listen address (port 0 picks a free port).
    pub grpc_addr: SocketAddr,
    /// HTTP listen address for `/metrics`, `/healthz`, `/readyz`.
    pub http_addr: SocketAddr,
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
    /// Written once listening: `{"grpc": "...", "http": "..."}`.
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
}

impl ServerConfig {
    /// A development configuration: SQLite and a generated key in `data_dir`, an
    /// admin token in `data_dir/admin.token`, listening on 127.0.0.1:7070 and :7071.
    pub fn dev(data_dir: PathBuf) -> Self {
        ServerConfig {
            grpc_addr: SocketAddr::from(([127, 0, 0, 1], 7070)),
            http_addr: SocketAddr::from(([127, 0, 0, 1], 7071)),
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
    /// The bootstrap admin token, when one was asked for.
    pub admin_token: Option<String>,
    /// The engine (for in-process use and tests).
    pub engine: Arc<Engine>,
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl RunningServer {
    /// Stops accepting requests, finishes in-flight ones and stops the loop.
    pub async fn shutdown(self) {
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

/// Starts the scheduler.
pub async fn start(config: ServerConfig) -> Result<RunningServer, StartError> {
    let tls = match &config.tls {
        Some(files) => Some(files.server_config()?),
        None => {
            crate::tls::check_plaintext(config.grpc_addr, config.insecure_plaintext)?;
            None
        }
    };
    std::fs::create_dir_all(&config.data_dir).map_err(io(&config.data_dir))?;
    let key = signing_key(&config)?;
    let url = config.database_url.clone().unwrap_or_else(|| {
        format!(
            "sqlite://{}?mode=rwc",
            config.data_dir.join("berth.db").display()
        )
    });
    let store = store::open(&url).await?;
    let metrics = Arc::new(Metrics::new()?);
    store.register_metrics(&metrics.registry)?;
    let store: Arc<dyn Store> = Arc::new(store);
    let engine = Arc::new(
        Engine::load(
            store,
            Keys::from_secret(&key),
            metrics.clone(),
            config.policy.clone(),
        )
        .await?,
    );

    let admin_token = match &config.bootstrap_admin_token_file {
        None => None,
        Some(path) => {
            let existing = std::fs::read_to_string(path)
                .ok()
                .map(|s| s.trim().to_owned());
            match engine.bootstrap_admin(existing.as_deref()).await? {
                Some(token) => {
                    write_secret(path, &token)?;
                    tracing::info!(path = %path.display(), "wrote a new admin token");
                    Some(token)
                }
                None => existing,
            }
        }
    };

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
    let grpc_addr = grpc.local_addr().map_err(io(Path::new("grpc listener")))?;
    let http_addr = http.local_addr().map_err(io(Path::new("http listener")))?;
    let shutdown = CancellationToken::new();
    let mut tasks = Vec::new();

    let auth = Authenticator {
        keys: engine.keys.clone(),
        index: engine.auth.clone(),
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
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = tls {
        builder = builder
            .tls_config(tls)
            .map_err(|e| StartError::TlsSetup(tls_setup_error(&e)))?;
    }
    let e = &engine;
    let router = builder
        .layer(RpcMetricsLayer(metrics.clone()))
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(v1::identity_server::IdentityServer::with_interceptor(
            IdentityService(e.clone()),
            auth.clone(),
        ))
        .add_service(v1::capacity_server::CapacityServer::with_interceptor(
            CapacityService(e.clone()),
            auth.clone(),
        ))
        .add_service(
            v1::reservations_server::ReservationsServer::with_interceptor(
                ReservationsService(e.clone()),
                auth.clone(),
            ),
        )
        .add_service(v1::jobs_server::JobsServer::with_interceptor(
            JobsService(e.clone()),
            auth.clone(),
        ))
        .add_service(v1::usage_server::UsageServer::with_interceptor(
            UsageService(e.clone()),
            auth.clone(),
        ))
        .add_service(v1::admin_server::AdminServer::with_interceptor(
            AdminService(e.clone()),
            auth.clone(),
        ))
        .add_service(v1::agent_server::AgentServer::with_interceptor(
            AgentService(e.clone()),
            agent_gate,
        ));
    let stop = shutdown.clone();
    tasks.push(tokio::spawn(async move {
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(grpc);
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

    let stop = shutdown.clone();
    let looped = engine.clone();
    let tick = config.tick;
    tasks.push(tokio::spawn(async move {
        loop {
            if let Err(e) = looped.pass().await {
                tracing::error!(error = %e, "scheduling pass failed");
            }
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(tick) => {}
                _ = looped.wake.notified() => {}
            }
        }
    }));

    if let Some(path) = &config.addr_file {
        let json = format!("{{\"grpc\":\"{grpc_addr}\",\"http\":\"{http_addr}\"}}\n");
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, json).map_err(io(&tmp))?;
        std::fs::rename(&tmp, path).map_err(io(path))?;
    }
    tracing::info!(
        %grpc_addr,
        %http_addr,
        tls = config.tls.is_some(),
        agent_client_certificates = config.tls.as_ref().is_some_and(|t| t.agent_ca.is_some()),
        "berth-scheduler listening"
    );
    Ok(RunningServer {
        grpc_addr,
        http_addr,
        admin_token,
        engine,
        shutdown,
        tasks,
    })
}
