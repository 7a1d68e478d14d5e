//! The local centre itself: the scheduler and an agent in this process (built with the
//! `local` feature only).

use super::UpArgs;
use crate::client::Api;
use crate::config::{self, Config};
use crate::error::{Error, chain};
use crate::output;
use berth_i18n::cli::Msg;
use berth_proto::tls::ClientTls;
use berth_proto::v1;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const SITE: &str = "local";
const CLASS: &str = "sim-gpu";
const NODE: &str = "local-0";
const DEVICES: &str = "sim:8:sim-gpu";

fn default_data_dir() -> Result<PathBuf, Error> {
    let var = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    match (var("XDG_DATA_HOME"), var("HOME")) {
        (Some(dir), _) => Ok(dir.join("berth")),
        (None, Some(home)) => Ok(home.join(".local").join("share").join("berth")),
        (None, None) => Err(Error::Other(crate::error::tr(Msg::NoDataDir).into())),
    }
}

/// The address a client on this machine dials for a listener on `addr`.
fn dial_addr(addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        let loopback = match addr {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        };
        SocketAddr::new(loopback, addr.port())
    } else {
        addr
    }
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new("info,sqlx=warn,sea_orm=warn,h2=warn,hyper=warn,tower=warn")
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Ignores "already exists": `berth up` is run again on the same data.
fn created<T>(r: Result<tonic::Response<T>, tonic::Status>) -> Result<(), Error> {
    match r {
        Ok(_) => Ok(()),
        Err(s) if s.code() == tonic::Code::AlreadyExists => Ok(()),
        Err(s) => Err(s.into()),
    }
}

/// Creates the site and class (once) and a join token for the agent.
async fn prepare(api: &Api) -> Result<String, Error> {
    let mut admin = api.admin();
    created(
        admin
            .create_site(v1::CreateSiteRequest {
                name: SITE.into(),
                description: "this machine (berth up)".into(),
            })
            .await,
    )?;
    created(
        admin
            .create_class(v1::CreateClassRequest {
                name: CLASS.into(),
                description: "simulated GPU (berth up)".into(),
                vendor: "sim".into(),
            })
            .await,
    )?;
    let join = admin
        .create_join_token(v1::CreateJoinTokenRequest::default())
        .await?
        .into_inner();
    Ok(join.token)
}

/// Waits (bounded) until the agent's node is ready, so the tour works when printed.
async fn node_ready(api: &Api) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut capacity = api.capacity();
    while tokio::time::Instant::now() < deadline {
        if let Ok(resp) = capacity.list_nodes(v1::ListNodesRequest::default()).await {
            let ready = resp.into_inner().nodes.iter().any(|n| {
                n.name == NODE && n.state == v1::NodeState::Ready as i32 && !n.devices.is_empty()
            });
            if ready {
                return true;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

fn read_admin_token(data_dir: &Path) -> Result<String, Error> {
    let path = data_dir.join("admin.token");
    std::fs::read_to_string(&path)
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            Error::Other(crate::error::trf(
                Msg::NoAdminToken,
                &[("path", &path.display())],
            ))
        })
}

/// The agent's runtime: `docker` when a Docker engine answers, else `process`.
async fn pick_runtime() -> &'static str {
    if berth_agent::runtime::docker::engine_answers(Duration::from_secs(2)).await {
        "docker"
    } else {
        "process"
    }
}

fn tour(
    server: &str,
    web: &str,
    http: SocketAddr,
    agent_metrics: SocketAddr,
    data_dir: &Path,
    config_path: &Path,
    runtime: &str,
) -> String {
    use crate::error::{tr, trf};
    let jobs = if runtime == "docker" {
        tr(Msg::TourDocker)
    } else {
        tr(Msg::TourProcess)
    };
    // Containers need an image the engine has (or can pull); the repo builds a tiny one.
    let (image, image_note) = if runtime == "docker" {
        (
            " --image berth-test/busybox",
            format!("\n  {}", tr(Msg::TourImageNote)),
        )
    } else {
        ("", String::new())
    };
    let up = trf(Msg::TourUp, &[("node", &NODE), ("class", &CLASS)]);
    format!(
        "\n{up}\n\
         \n  runtime  {runtime} ({jobs})\
         \n  portal   {web} ({portal})\
         \n  gRPC     {server}\
         \n  HTTP     http://{http}/metrics, /healthz, /readyz\
         \n  agent    http://{agent_metrics}/metrics ({agent})\
         \n  data     {data}\
         \n  config   {config} ({config_note})\
         \n\n{try_it}\
         \n  berth nodes\
         \n  berth availability --class {CLASS}\
         \n  berth reserve --class {CLASS} --count 2 --start now --duration 1h\
         \n  berth submit --reservation <ID> --count 2{image} --wait -- sh -c 'echo hello from $BERTH_DEVICES'\
         \n  berth submit --class {CLASS}{image} --wait -- sh -c 'echo queued job'{image_note}\
         \n  berth jobs --all\
         \n  berth usage\
         \n\n{stop}\n",
        portal = tr(Msg::TourPortal),
        agent = tr(Msg::TourAgent),
        config_note = tr(Msg::TourConfig),
        try_it = tr(Msg::TourTry),
        stop = tr(Msg::TourStop),
        data = data_dir.display(),
        config = config_path.display(),
    )
}

/// Writes the CLI config for this centre. A config for another server (a real centre
/// the user logged in to) is kept beside it as `<file>.before-up` first.
fn point_cli_here(path: &Path, server: &str, token: String) -> Result<(), Error> {
    let language = config::load(path).ok().and_then(|c| c.language);
    let new = Config {
        server: Some(server.to_owned()),
        token: Some(token),
        ca_cert: None,
        language,
    };
    if let Ok(old) = config::load(path)
        && old.token.is_some()
        && old.server.as_deref() != Some(server)
    {
        let mut backup = path.as_os_str().to_owned();
        backup.push(".before-up");
        let backup = PathBuf::from(backup);
        config::save(&backup, &old)?;
        output::note(crate::error::trf(
            Msg::ConfigKept,
            &[
                (
                    "server",
                    &old.server.as_deref().unwrap_or(config::DEFAULT_SERVER),
                ),
                ("path", &backup.display()),
            ],
        ));
    }
    config::save(path, &new)
}

async fn interrupted() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// `berth up`.
pub(super) async fn run(args: &UpArgs) -> Result<(), Error> {
    init_tracing();
    let data_dir = match &args.data_dir {
        Some(d) => d.clone(),
        None => default_data_dir()?,
    };
    let mut config = berth_scheduler::server::ServerConfig::dev(data_dir.clone());
    config.grpc_addr = args.grpc_addr;
    config.http_addr = args.http_addr;
    config.web_addr = Some(args.web_addr);
    if let (Some(url), Some(from)) = (&args.smtp_url, &args.smtp_from) {
        config.notify.smtp = Some(
            berth_scheduler::engine::notify::SmtpConfig::new(url, from)
                .map_err(|reason| Error::invalid("--smtp-url", url, reason))?,
        );
    }
    let server = berth_scheduler::server::start(config).await.map_err(|e| {
        Error::Other(crate::error::trf(
            Msg::CannotStartScheduler,
            &[("reason", &chain(&e))],
        ))
    })?;
    let server_url = format!("http://{}", dial_addr(server.grpc_addr));
    let http_addr = dial_addr(server.http_addr);
    let web_url = server
        .web_addr
        .map(|a| format!("http://{}", dial_addr(a)))
        .unwrap_or_default();
    let admin_token = match server.admin_token.clone() {
        Some(t) => Ok(t),
        None => read_admin_token(&data_dir),
    };

    let stop = CancellationToken::new();
    let result = async {
        let admin_token = admin_token?;
        // Loopback and plaintext, always: nothing leaves this machine.
        let api = Api::connect(&server_url, &admin_token, &ClientTls::default()).await?;
        let join_token = prepare(&api).await?;

        let mut agent = berth_agent::AgentConfig::new(
            server_url.clone(),
            NODE.to_owned(),
            SITE.to_owned(),
            data_dir.join("agent"),
        );
        agent.join_token = Some(join_token);
        agent.devices = DEVICES.to_owned();
        agent.metrics_addr = Some(args.agent_metrics_addr);
        let runtime = pick_runtime().await;
        agent.runtime = runtime.to_owned();
        // A local centre runs local images only: no surprise downloads from a registry.
        agent.pull_images = false;
        let mut agent_task = tokio::spawn(berth_agent::run(agent, stop.clone()));

        let config_path = config::path()?;
        point_cli_here(&config_path, &server_url, admin_token)?;

        let interrupted_early = tokio::select! {
            ready = node_ready(&api) => {
                if !ready {
                    output::note(crate::error::trf(Msg::NodeNotReady, &[("node", &NODE)]));
                }
                output::note(tour(
                    &server_url,
                    &web_url,
                    http_addr,
                    dial_addr(args.agent_metrics_addr),
                    &data_dir,
                    &config_path,
                    runtime,
                ));
                false
            }
            _ = interrupted() => true,
            r = &mut agent_task => return agent_ended(r),
        };
        if !interrupted_early {
            tokio::select! {
                _ = interrupted() => {}
                r = &mut agent_task => return agent_ended(r),
            }
        }
        output::note(crate::error::tr(Msg::Stopping));
        stop.cancel();
        agent_ended(agent_task.await)
    }
    .await;
    stop.cancel();
    server.shutdown().await;
    if result.is_ok() {
        output::note(crate::error::tr(Msg::StoppedKept));
    }
    result
}

fn agent_ended<E: std::error::Error + 'static>(
    r: Result<Result<(), E>, tokio::task::JoinError>,
) -> Result<(), Error> {
    match r {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(Error::Other(crate::error::trf(
            Msg::AgentStopped,
            &[("reason", &chain(&e))],
        ))),
        Err(e) => Err(Error::Other(crate::error::trf(
            Msg::AgentStopped,
            &[("reason", &e)],
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unspecified_listen_addresses_are_dialled_on_loopback() {
        let a: SocketAddr = "0.0.0.0:7070".parse().unwrap();
        assert_eq!(dial_addr(a).to_string(), "127.0.0.1:7070");
        let a: SocketAddr = "10.0.0.1:1".parse().unwrap();
        assert_eq!(dial_addr(a), a);
    }

    #[test]
    fn the_agent_metrics_port_is_fixed() {
        use super::super::{AGENT_METRICS_ADDR, fixed_port};
        assert_eq!(
            AGENT_METRICS_ADDR,
            berth_agent::metrics::DEFAULT_METRICS_ADDR
        );
        assert_eq!(
            fixed_port("0.0.0.0:9400").unwrap(),
            "0.0.0.0:9400".parse().unwrap()
        );
        assert!(
            fixed_port("127.0.0.1:0")
                .unwrap_err()
                .contains("fixed port")
        );
        assert!(fixed_port("localhost").unwrap_err().contains("HOST:PORT"));
    }

    #[test]
    fn another_servers_config_is_kept_aside() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        let real = Config {
            server: Some("https://centre.example:7070".into()),
            token: Some("real".into()),
            ca_cert: Some("/etc/berth/ca.pem".into()),
            language: None,
        };
        config::save(&path, &real).unwrap();
        point_cli_here(&path, "http://127.0.0.1:7070", "local".into()).unwrap();
        assert_eq!(config::load(&path).unwrap().token.as_deref(), Some("local"));
        let backup = dir.path().join("config.json.before-up");
        assert_eq!(config::load(&backup).unwrap(), real);

        // Running `berth up` again does not overwrite the backup with the local config.
        point_cli_here(&path, "http://127.0.0.1:7070", "local2".into()).unwrap();
        assert_eq!(config::load(&backup).unwrap(), real);
    }

    #[test]
    fn the_tour_names_the_class_and_the_config() {
        let t = tour(
            "http://127.0.0.1:7070",
            "http://127.0.0.1:7072",
            "127.0.0.1:7071".parse().unwrap(),
            "127.0.0.1:9400".parse().unwrap(),
            Path::new("/d"),
            Path::new("/c/config.json"),
            "docker",
        );
        assert!(t.contains("berth reserve --class sim-gpu --count 2 --start now --duration 1h"));
        assert!(t.contains("/c/config.json"));
        assert!(t.contains("portal   http://127.0.0.1:7072"));
        assert!(t.contains("agent    http://127.0.0.1:9400/metrics"));
        assert!(t.contains("runtime  docker (jobs run in hardened containers"));
    }
}
