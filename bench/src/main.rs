//! `berth-bench`: a load generator that speaks Berth's public gRPC API, to measure a running
//! scheduler as its clients see it.
//!
//! ```text
//! berth-bench submit    --server URL --connections 16 --count 20000
//! berth-bench reserve   --server URL --connections 16 --count 5000
//! berth-bench list      --server URL --connections 16 --count 2000 --page-size 500
//! berth-bench get       --server URL --connections 16 --count 20000
//! berth-bench heartbeat --server URL --connections 16 --count 10000 --duration 30s
//! berth-bench list      --server URL --connections 2 --count 100000 --rate 50 --time-limit 10s
//! ```
//! `--rate` paces the requests (an open loop at that many per second in all) instead of
//! sending them back to back; `--time-limit` stops a run early, so a background flood can
//! be given a long `--count` and still end with its summary.
//! Each prints the rate, p50, p90, p99 and max latency (`--output json` for scripts).

mod ops;
mod page;
mod stats;

use clap::{Parser, Subcommand, ValueEnum};
use std::time::Duration;

/// Load generator for a Berth scheduler.
#[derive(Debug, Parser)]
#[command(name = "berth-bench", version)]
pub struct Cli {
    #[command(subcommand)]
    op: Op,
    #[command(flatten)]
    common: Common,
}

/// Flags every operation takes.
#[derive(Debug, Clone, clap::Args)]
pub struct Common {
    /// The scheduler's gRPC URL.
    #[arg(
        long,
        global = true,
        env = "BERTH_SERVER",
        default_value = "http://127.0.0.1:7070"
    )]
    pub server: String,
    /// A bearer token (an admin's for `heartbeat`, which creates a join token).
    #[arg(long, global = true, env = "BERTH_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// HTTP/2 connections to spread the load over.
    #[arg(long, global = true, default_value_t = 16)]
    pub connections: usize,
    /// Requests in flight on each connection at once.
    #[arg(long, global = true, default_value_t = 1)]
    pub per_connection: usize,
    /// Requests to make (for `heartbeat`: agents to simulate).
    #[arg(long, global = true, default_value_t = 10_000)]
    pub count: usize,
    /// Device class to book, queue for or report.
    #[arg(long, global = true, default_value = "sim-gpu")]
    pub class: String,
    /// Requests per second in all, each sent at its own time (0: back to back).
    #[arg(long, global = true, default_value_t = 0.0)]
    pub rate: f64,
    /// Stop sending new requests after this long (with --count as an upper bound).
    #[arg(long, global = true, value_parser = parse_duration)]
    pub time_limit: Option<Duration>,
    /// The scheduler's process id: report the CPU it used during the run.
    #[arg(long, global = true)]
    pub pid: Option<u32>,
    /// `table` for people, `json` for scripts.
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// One aligned line per run.
    Table,
    /// One JSON object per run.
    Json,
}

#[derive(Debug, Subcommand)]
enum Op {
    /// Queue jobs (they stay pending when the class is busy).
    Submit {
        /// Devices each job asks for.
        #[arg(long, default_value_t = 1)]
        devices: u32,
        /// Max runtime of each job.
        #[arg(long, default_value = "1h", value_parser = parse_duration)]
        max_runtime: Duration,
        /// Image of each job (never pulled by the bench itself).
        #[arg(long, default_value = "busybox")]
        image: String,
        /// Bytes of environment each job carries (one variable), to make listings heavy.
        #[arg(long, default_value_t = 0)]
        env_bytes: usize,
    },
    /// Book devices, one short window after another.
    Reserve {
        /// Devices each booking asks for.
        #[arg(long, default_value_t = 1)]
        devices: u32,
        /// Length of each booking.
        #[arg(long, default_value = "10m", value_parser = parse_duration)]
        length: Duration,
        /// How far ahead the first window starts.
        #[arg(long, default_value = "1h", value_parser = parse_duration)]
        ahead: Duration,
    },
    /// List jobs a page at a time (finished ones too).
    List {
        /// Jobs per page.
        #[arg(long, default_value_t = 500)]
        page_size: u32,
        /// Decode every job of each page (by default each page's jobs are counted
        /// without decoding their fields, so that the load generator leaves the CPU to
        /// the server).
        #[arg(long)]
        decode: bool,
    },
    /// Read single jobs by id (ids taken from a first listing).
    Get,
    /// Simulate agents: each joins with 8 devices and heartbeats every interval from then
    /// on; the measure begins one interval after the last has joined.
    Heartbeat {
        /// Time between an agent's heartbeats.
        #[arg(long, default_value = "5s", value_parser = parse_duration)]
        interval: Duration,
        /// How long to measure, from one interval after the last agent joined.
        #[arg(long, default_value = "30s", value_parser = parse_duration)]
        duration: Duration,
        /// Site of the simulated nodes (default: the first site).
        #[arg(long)]
        site: Option<String>,
        /// Send the inventory in full in every heartbeat, with no digest, as agents did
        /// before inventory digests (to compare).
        #[arg(long)]
        full_inventory: bool,
        /// One `Heartbeat` call per heartbeat, as agents did before heartbeat streams
        /// (to compare); by default each agent keeps one `Heartbeats` stream.
        #[arg(long)]
        calls: bool,
    },
}

/// Parses `500ms`, `15s`, `2m`, `1h`.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 15s or 500ms"))?;
    let ms = match unit {
        "ms" => n,
        "s" | "" => n * 1000,
        "m" => n * 60_000,
        "h" => n * 3_600_000,
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (use ms, s, m or h)")),
    };
    Ok(Duration::from_millis(ms))
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let c = &cli.common;
    let result = match &cli.op {
        Op::Submit {
            devices,
            max_runtime,
            image,
            env_bytes,
        } => ops::submit(c, *devices, *max_runtime, image, *env_bytes).await,
        Op::Reserve {
            devices,
            length,
            ahead,
        } => ops::reserve(c, *devices, *length, *ahead).await,
        Op::List { page_size, decode } => ops::list(c, *page_size, *decode).await,
        Op::Get => ops::get(c).await,
        Op::Heartbeat {
            interval,
            duration,
            site,
            full_inventory,
            calls,
        } => {
            let inventory = if *full_inventory {
                ops::Inventory::Full
            } else {
                ops::Inventory::Digest
            };
            let transport = if *calls {
                ops::Transport::Calls
            } else {
                ops::Transport::Stream
            };
            let agents = ops::Agents {
                interval: *interval,
                inventory,
                transport,
            };
            ops::heartbeat(c, agents, *duration, site.as_deref()).await
        }
    };
    match result {
        Ok(summary) => {
            match c.output {
                Output::Json => match serde_json::to_string(&summary) {
                    Ok(s) => println!("{s}"),
                    Err(e) => eprintln!("error: {e}"),
                },
                Output::Table => {
                    println!(
                        "{:<10} {:>5} {:>8} {:>6} {:>10} {:>8} {:>8} {:>8} {:>8}{}{}",
                        "op",
                        "conns",
                        "ok",
                        "errors",
                        "rate/s",
                        "p50 ms",
                        "p90 ms",
                        "p99 ms",
                        "max ms",
                        if summary.server_cpu_percent.is_some() {
                            "  server cpu"
                        } else {
                            ""
                        },
                        if summary.bench_cpu_percent.is_some() {
                            "   bench cpu"
                        } else {
                            ""
                        }
                    );
                    println!(
                        "{:<10} {:>5} {:>8} {:>6} {:>10.1} {:>8.2} {:>8.2} {:>8.2} {:>8.2}{}{}",
                        summary.op,
                        summary.connections,
                        summary.ok,
                        summary.errors,
                        summary.rate,
                        summary.p50_ms,
                        summary.p90_ms,
                        summary.p99_ms,
                        summary.max_ms,
                        summary
                            .server_cpu_percent
                            .map_or(String::new(), |p| format!("  {p:>9.1}%")),
                        summary
                            .bench_cpu_percent
                            .map_or(String::new(), |p| format!("  {p:>9.1}%"))
                    );
                    if let Some(e) = &summary.first_error {
                        eprintln!("first error: {e}");
                    }
                }
            }
            if summary.errors > 0 {
                std::process::ExitCode::from(1)
            } else {
                std::process::ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::from(1)
        }
    }
}
