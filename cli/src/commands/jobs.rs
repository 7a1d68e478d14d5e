//! `berth submit`, `berth jobs [show]`, `berth logs`, `berth cancel`.

use super::evidence::{self, EvidenceView};
use super::{Ctx, dash, job_finished, job_state, opt};
use crate::client::{Api, Svc};
use crate::error::{Error, tr, trf};
use crate::output::{self, Details, Format, Table};
use crate::safe::Escaper;
use crate::timefmt;
use berth_i18n::cli::Msg;
use berth_proto::time::{dur_to_ms, ms_to_dur};
use berth_proto::v1::{self, jobs_client::JobsClient};
use serde::Serialize;
use std::collections::HashMap;
use std::io::Write;
use std::time::Duration;

/// `berth submit` flags.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("target").required(true).args(["reservation", "class"])))]
pub struct SubmitArgs {
    /// Run inside this reservation's devices and window.
    #[arg(long, value_name = "ID")]
    pub reservation: Option<String>,
    /// Queue for free devices of this class instead.
    #[arg(long)]
    pub class: Option<String>,
    /// Charge this project's grant (default: your default project, `berth projects use`).
    #[arg(long, value_name = "ID")]
    pub project: Option<String>,
    /// Number of devices (on each node).
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub count: u32,
    /// Number of nodes, `--count` devices on each, started together or not at all.
    #[arg(long, default_value_t = 1, value_name = "M")]
    pub nodes: u32,
    /// Priority among your organisation's own queued jobs (-1000..1000; higher first).
    #[arg(
        long,
        default_value_t = 0,
        allow_negative_numbers = true,
        value_name = "N"
    )]
    pub priority: i32,
    /// Run as preemptible work: may use booked-but-idle devices, and is stopped and
    /// requeued when their owner needs them.
    #[arg(long)]
    pub preemptible: bool,
    /// Container image (the process runtime ignores it).
    #[arg(long, env = "BERTH_IMAGE", default_value = "busybox")]
    pub image: String,
    /// Longest the job may run (default 1h): 8h, 90m, 1h30m.
    #[arg(long, allow_hyphen_values = true, value_name = "DURATION")]
    pub max_runtime: Option<String>,
    /// Environment variable for the job; repeatable.
    #[arg(long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Mount an admin-approved dataset by name (read-only; NAME:rw for read-write where allowed).
    #[arg(long = "dataset", value_name = "NAME[:rw]")]
    pub datasets: Vec<String>,
    /// Network mode: bridge (default) or none.
    #[arg(long)]
    pub network: Option<String>,
    /// Ask for privileged mode (always refused by the scheduler; devices need no privileges).
    #[arg(long, hide = true)]
    pub privileged: bool,
    /// Ask for an extra capability (always refused).
    #[arg(long = "cap-add", value_name = "CAP", hide = true)]
    pub cap_add: Vec<String>,
    /// Ask for a host bind mount SRC:DST (always refused; use --dataset).
    #[arg(long = "mount", value_name = "SRC:DST", hide = true)]
    pub host_mounts: Vec<String>,
    /// A name to recognise the job by.
    #[arg(long)]
    pub name: Option<String>,
    /// Follow the job's logs and exit with its exit code.
    #[arg(long)]
    pub wait: bool,
    /// Command and arguments, after `--`.
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

/// `berth jobs` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum JobsCmd {
    /// Show one job.
    Show {
        /// Job id.
        id: String,
    },
    /// Cancel a job (same as `berth cancel`).
    Cancel {
        /// Job id.
        id: String,
    },
}

/// A job as printed in JSON.
#[derive(Debug, Serialize)]
pub struct JobView {
    pub id: String,
    pub name: Option<String>,
    pub state: &'static str,
    pub org: String,
    pub user: String,
    pub class: String,
    pub count: u32,
    pub image: String,
    pub command: Vec<String>,
    pub max_runtime: Option<String>,
    pub reservation_id: Option<String>,
    pub node: Option<String>,
    pub devices: Vec<String>,
    pub exit_code: Option<i32>,
    pub reason: Option<String>,
    pub created_at: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub estimated_start: Option<String>,
    pub priority: i32,
    pub preemptible: bool,
    pub nodes: u32,
    pub charged_hours: f64,
    pub requeued_from: Option<String>,
    pub project: Option<String>,
    pub charged_project: Option<String>,
    #[serde(flatten)]
    pub evidence: EvidenceView,
}

impl From<&v1::Job> for JobView {
    fn from(j: &v1::Job) -> Self {
        Self {
            id: j.id.clone(),
            name: opt(&j.name),
            state: job_state(j.state),
            org: j.org.clone(),
            user: j.user.clone(),
            class: j.class.clone(),
            count: j.count,
            image: j.image.clone(),
            command: j.command.clone(),
            max_runtime: j
                .max_runtime
                .as_ref()
                .map(|d| timefmt::format_duration(dur_to_ms(d))),
            reservation_id: opt(&j.reservation_id),
            node: opt(&j.node),
            devices: j.devices.clone(),
            exit_code: j.exit_code,
            reason: opt(&j.reason),
            created_at: timefmt::ts_rfc3339(j.created_at.as_ref()),
            started_at: timefmt::ts_rfc3339(j.started_at.as_ref()),
            finished_at: timefmt::ts_rfc3339(j.finished_at.as_ref()),
            estimated_start: timefmt::ts_rfc3339(j.estimated_start.as_ref()),
            priority: j.priority,
            preemptible: j.preemptible,
            nodes: j.nodes.max(1),
            charged_hours: j.charged_hours,
            requeued_from: opt(&j.requeued_from),
            project: opt(&j.project),
            charged_project: opt(&j.charged_project),
            evidence: EvidenceView::of(j.evidence.as_ref()),
        }
    }
}

/// Key/value details of one job.
pub fn details(j: &v1::Job) -> Details {
    let mut d = Details::new()
        .field("ID", &j.id)
        .field("Name", dash(&j.name))
        .field("State", job_state(j.state))
        .field("Reason", &j.reason)
        .field(
            "Exit code",
            j.exit_code
                .map_or_else(|| "-".to_owned(), |c| c.to_string()),
        )
        .field("Org", &j.org)
        .field("User", &j.user)
        .field("Class", &j.class)
        .field("Count", j.count.to_string())
        .field("Nodes", j.nodes.max(1).to_string())
        .field("Priority", j.priority.to_string())
        .field("Preemptible", if j.preemptible { "yes" } else { "no" })
        .field("Charged hours", format!("{:.2}", j.charged_hours))
        .field("Project", dash(&j.project))
        .field("Paid by", dash(&j.charged_project))
        .field("Utilisation", evidence::util_cell(j.evidence.as_ref()))
        .field("Peak memory", evidence::memory_cell(j.evidence.as_ref()))
        .field("Energy", evidence::energy_cell(j.evidence.as_ref()))
        .field("Requeued from", dash(&j.requeued_from))
        .field("Reservation", dash(&j.reservation_id))
        .field("Node", dash(&j.node))
        .field(
            "Devices",
            if j.devices.is_empty() {
                "-".to_owned()
            } else {
                j.devices.join("\n")
            },
        )
        .field("Image", &j.image)
        .field("Command", shell_join(&j.command))
        .field(
            "Max runtime",
            j.max_runtime.as_ref().map_or_else(
                || "-".to_owned(),
                |d| timefmt::format_duration(dur_to_ms(d)),
            ),
        )
        .field("Created", timefmt::ts_local(j.created_at.as_ref()))
        .field("Started", timefmt::ts_local(j.started_at.as_ref()))
        .field("Finished", timefmt::ts_local(j.finished_at.as_ref()));
    if j.estimated_start.is_some() {
        d = d.field(
            "Estimated start",
            timefmt::ts_local(j.estimated_start.as_ref()),
        );
    }
    d
}

/// Prints one job.
pub fn print_one(j: &v1::Job, format: Format) -> Result<(), Error> {
    match format {
        Format::Json => output::json(&JobView::from(j)),
        _ => details(j).print(format),
    }
}

/// The listing table.
pub fn table(jobs: &[v1::Job]) -> Table {
    let mut t = Table::new([
        "id", "name", "state", "class", "count", "prio", "node", "exit", "created", "reason",
    ]);
    for j in jobs {
        t.row([
            j.id.clone(),
            dash(&j.name),
            job_state(j.state).to_owned(),
            j.class.clone(),
            count(j),
            prio(j),
            dash(&j.node),
            j.exit_code
                .map_or_else(|| "-".to_owned(), |c| c.to_string()),
            timefmt::ts_local(j.created_at.as_ref()),
            j.reason.clone(),
        ]);
    }
    t
}

/// `2`, or `2x3` for 2 devices on each of 3 nodes.
fn count(j: &v1::Job) -> String {
    if j.nodes > 1 {
        format!("{}x{}", j.count, j.nodes)
    } else {
        j.count.to_string()
    }
}

/// The priority, with a `p` mark for preemptible jobs: `0`, `-5p`.
fn prio(j: &v1::Job) -> String {
    format!("{}{}", j.priority, if j.preemptible { "p" } else { "" })
}

/// Quotes arguments for display the way a POSIX shell would read them back.
pub fn shell_join(args: &[String]) -> String {
    args.iter()
        .map(|a| {
            let plain = !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
            if plain {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', r#"'\''"#))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Parses repeated `--env KEY=VALUE` flags.
pub fn parse_env(pairs: &[String]) -> Result<HashMap<String, String>, Error> {
    let mut env = HashMap::new();
    for pair in pairs {
        match pair.split_once('=') {
            Some((k, v)) if !k.is_empty() => {
                env.insert(k.to_owned(), v.to_owned());
            }
            _ => return Err(Error::invalid("--env", pair, tr(Msg::ExpectedKeyValue))),
        }
    }
    Ok(env)
}

/// Builds the submission from the flags.
pub fn request(args: &SubmitArgs) -> Result<v1::SubmitJobRequest, Error> {
    let max_runtime = args
        .max_runtime
        .as_deref()
        .map(|v| timefmt::positive_duration_flag("--max-runtime", v))
        .transpose()?;
    Ok(v1::SubmitJobRequest {
        name: args.name.clone().unwrap_or_default(),
        reservation_id: args.reservation.clone().unwrap_or_default(),
        class: args.class.clone().unwrap_or_default(),
        count: args.count,
        image: args.image.clone(),
        command: args.command.clone(),
        env: parse_env(&args.env)?,
        max_runtime: max_runtime.map(ms_to_dur),
        datasets: parse_datasets(&args.datasets)?,
        privileged: args.privileged,
        cap_add: args.cap_add.clone(),
        host_mounts: args.host_mounts.clone(),
        network: args.network.clone().unwrap_or_default(),
        priority: args.priority,
        preemptible: args.preemptible,
        nodes: args.nodes,
        project: args.project.clone().unwrap_or_default(),
    })
}

/// Parses repeated `--dataset NAME[:rw|:ro]` flags.
pub fn parse_datasets(values: &[String]) -> Result<Vec<v1::DatasetMount>, Error> {
    values
        .iter()
        .map(|v| {
            let (name, read_write) = match v.rsplit_once(':') {
                Some((n, "rw")) => (n, true),
                Some((n, "ro")) => (n, false),
                Some(_) => {
                    return Err(Error::invalid("--dataset", v, tr(Msg::DatasetFormat)));
                }
                None => (v.as_str(), false),
            };
            Ok(v1::DatasetMount {
                name: name.to_owned(),
                read_write,
            })
        })
        .collect()
}

/// `berth submit`; returns the process exit code.
pub async fn submit(ctx: &Ctx, args: &SubmitArgs) -> Result<u8, Error> {
    let req = request(args)?;
    let api = ctx.api().await?;
    let job = api.jobs().submit_job(req).await?.into_inner();
    let state = job_state(job.state);
    let why = if job.reason.is_empty() {
        String::new()
    } else {
        format!(": {}", job.reason)
    };
    if args.wait {
        output::note(trf(
            Msg::JobSubmittedWaiting,
            &[("id", &job.id), ("state", &state), ("why", &why)],
        ));
        return wait(&api, &job.id).await;
    }
    match ctx.format {
        Format::Json => output::json(&JobView::from(&job))?,
        _ => {
            output::note(trf(
                Msg::JobSubmitted,
                &[("state", &state), ("why", &why), ("id", &job.id)],
            ));
            output::emit(&format!("{}\n", job.id))?;
        }
    }
    Ok(0)
}

/// Follows a job to its end, then turns its outcome into an exit code.
async fn wait(api: &Api, id: &str) -> Result<u8, Error> {
    let mut sink = LogSink::new(false);
    let job = tokio::select! {
        job = follow(api, id, &mut sink) => job?,
        _ = tokio::signal::ctrl_c() => {
            output::note(trf(Msg::StoppedFollowing, &[("id", &id)]));
            return Ok(130);
        }
    };
    exit_code(&job)
}

/// The exit code `berth submit --wait` ends with for a finished job.
pub fn exit_code(job: &v1::Job) -> Result<u8, Error> {
    let state = job_state(job.state);
    match job.exit_code {
        Some(code) => {
            if code != 0 {
                let why = if job.reason.is_empty() {
                    String::new()
                } else {
                    format!(": {}", job.reason)
                };
                output::note(trf(
                    Msg::JobExited,
                    &[
                        ("id", &job.id),
                        ("state", &state),
                        ("code", &code),
                        ("why", &why),
                    ],
                ));
            }
            Ok(u8::try_from(code).unwrap_or(1))
        }
        None if job.state == v1::JobState::Succeeded as i32 => Ok(0),
        None => {
            let why = if job.reason.is_empty() {
                tr(Msg::NoReasonGiven).to_owned()
            } else {
                job.reason.clone()
            };
            Err(Error::Other(trf(
                Msg::JobEndedWithoutCode,
                &[("id", &job.id), ("state", &state), ("why", &why)],
            )))
        }
    }
}

/// Where a job's output goes: its stdout to ours, its stderr to ours. Each is written
/// as the job's own bytes when it is not a terminal (a file, a pipe) or with `--raw`;
/// on a terminal, control characters other than newline and tab are shown escaped.
pub struct LogSink {
    stdout: Option<Escaper>,
    stderr: Option<Escaper>,
}

impl LogSink {
    /// Raw where `raw` says so or the stream is not a terminal, escaped elsewhere.
    pub fn new(raw: bool) -> Self {
        use std::io::IsTerminal;
        let escaper = |terminal: bool| (!raw && terminal).then(Escaper::default);
        Self {
            stdout: escaper(std::io::stdout().is_terminal()),
            stderr: escaper(std::io::stderr().is_terminal()),
        }
    }

    /// Writes one chunk to its stream.
    fn write(&mut self, chunk: &v1::LogChunk) -> Result<(), Error> {
        let to_stderr = chunk.stream == v1::log_chunk::Stream::Stderr as i32;
        let escaper = if to_stderr {
            self.stderr.as_mut()
        } else {
            self.stdout.as_mut()
        };
        match escaper {
            Some(e) => put(to_stderr, e.push(&chunk.data).as_bytes()),
            None => put(to_stderr, &chunk.data),
        }
    }

    /// Writes the escaped rest of a character cut off at the end of the output.
    fn finish(&mut self) -> Result<(), Error> {
        if let Some(e) = self.stdout.as_mut() {
            put(false, e.finish().as_bytes())?;
        }
        if let Some(e) = self.stderr.as_mut() {
            put(true, e.finish().as_bytes())?;
        }
        Ok(())
    }
}

/// Writes bytes to stdout or stderr. A closed pipe (`berth logs ID | head`) is not an error.
fn put(to_stderr: bool, bytes: &[u8]) -> Result<(), Error> {
    if bytes.is_empty() {
        return Ok(());
    }
    let result = if to_stderr {
        let mut err = std::io::stderr().lock();
        err.write_all(bytes).and_then(|()| err.flush())
    } else {
        let mut out = std::io::stdout().lock();
        out.write_all(bytes).and_then(|()| out.flush())
    };
    match result {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(Error::io(tr(Msg::WritingLogs), e))
        }
        _ => Ok(()),
    }
}

/// The last log seq seen of each part of a job (one part unless it is multi-node): where a
/// reconnecting reader resumes, and how it drops chunks it has already written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Seen(Vec<u64>);

impl Seen {
    /// Records `seq`; false when its part had already got that far (a repeat).
    fn record(&mut self, seq: u64) -> bool {
        if seq == 0 {
            return true;
        }
        let part = usize::try_from(seq / berth_proto::LOG_PART_SEQ_SPAN).unwrap_or(usize::MAX);
        if part >= 1024 {
            return true; // not a part's range: nothing to resume by
        }
        if self.0.len() <= part {
            self.0.resize(part + 1, 0);
        }
        let last = &mut self.0[part];
        if seq <= *last {
            return false;
        }
        *last = seq;
        true
    }

    /// The request that resumes after what was seen.
    fn request(&self, id: &str, follow: bool) -> v1::StreamLogsRequest {
        v1::StreamLogsRequest {
            job_id: id.to_owned(),
            follow,
            after_seq: self.0.first().copied().unwrap_or(0),
            after_part_seqs: self.0.clone(),
        }
    }
}

/// Streams chunks not yet seen until the server ends the stream.
async fn stream_once(
    client: &mut JobsClient<Svc>,
    id: &str,
    follow: bool,
    seen: &mut Seen,
    sink: &mut LogSink,
) -> Result<(), Error> {
    let mut stream = client
        .stream_logs(seen.request(id, follow))
        .await?
        .into_inner();
    while let Some(chunk) = stream.message().await? {
        if seen.record(chunk.seq) {
            sink.write(&chunk)?;
        }
    }
    Ok(())
}

/// A failure worth reconnecting after (the connection dropped, the server restarted).
fn transient(e: &Error) -> bool {
    matches!(e, Error::Rpc(s) if matches!(s.code(), tonic::Code::Unavailable | tonic::Code::Unknown))
}

/// Streams a job's logs until it has finished and returns its final state.
async fn follow(api: &Api, id: &str, sink: &mut LogSink) -> Result<v1::Job, Error> {
    const MAX_RETRIES: u32 = 30;
    let mut client = api.jobs();
    let mut seen = Seen::default();
    let mut retries = 0;
    loop {
        let step = async {
            stream_once(&mut client, id, true, &mut seen, sink).await?;
            let job = client
                .get_job(v1::GetJobRequest { id: id.to_owned() })
                .await?
                .into_inner();
            Ok::<_, Error>(job)
        };
        match step.await {
            Ok(job) if job_finished(job.state) => {
                // Chunks stored after the stream closed.
                stream_once(&mut client, id, false, &mut seen, sink).await?;
                sink.finish()?;
                return Ok(job);
            }
            // The stream ended before the job did: resume after the last chunk seen.
            Ok(_) => retries = 0,
            Err(e) if transient(&e) && retries < MAX_RETRIES => retries += 1,
            Err(e) => return Err(e),
        }
        tokio::time::sleep(Duration::from_millis(200 * u64::from(retries.clamp(1, 10)))).await;
    }
}

/// `berth logs ID [-f] [--raw]`.
pub async fn logs(ctx: &Ctx, id: &str, follow_logs: bool, raw: bool) -> Result<(), Error> {
    let api = ctx.api().await?;
    let mut sink = LogSink::new(raw);
    if follow_logs {
        follow(&api, id, &mut sink).await.map(drop)
    } else {
        stream_once(&mut api.jobs(), id, false, &mut Seen::default(), &mut sink).await?;
        sink.finish()
    }
}

/// `berth jobs [--all] [--limit N] [filters]` and its subcommands.
pub async fn jobs(
    ctx: &Ctx,
    all: bool,
    list: &crate::paging::ListArgs,
    cmd: Option<&JobsCmd>,
) -> Result<(), Error> {
    match cmd {
        Some(JobsCmd::Show { id }) => {
            let job = ctx
                .api()
                .await?
                .jobs()
                .get_job(v1::GetJobRequest { id: id.clone() })
                .await?
                .into_inner();
            print_one(&job, ctx.format)
        }
        Some(JobsCmd::Cancel { id }) => cancel(ctx, id).await,
        None => {
            let client = ctx.api().await?.jobs();
            let base = v1::ListJobsRequest {
                all,
                states: list.job_states()?,
                user: list.user.clone().unwrap_or_default(),
                class: list.class.clone().unwrap_or_default(),
                since: list.since()?,
                ..Default::default()
            };
            let (jobs, more) =
                crate::paging::collect(list.limit(ctx.format), |page_size, page_token| {
                    let req = v1::ListJobsRequest {
                        page_size,
                        page_token,
                        ..base.clone()
                    };
                    let mut client = client.clone();
                    async move {
                        let r = client.list_jobs(req).await?.into_inner();
                        Ok((r.jobs, r.next_page_token))
                    }
                })
                .await?;
            if ctx.format == Format::Json {
                let views: Vec<JobView> = jobs.iter().map(Into::into).collect();
                return output::json(&views);
            }
            table(&jobs).print(ctx.format, tr(Msg::EmptyJobs))?;
            crate::paging::note_more(more, jobs.len(), "jobs");
            Ok(())
        }
    }
}

/// `berth cancel ID`.
pub async fn cancel(ctx: &Ctx, id: &str) -> Result<(), Error> {
    let job = ctx
        .api()
        .await?
        .jobs()
        .cancel_job(v1::CancelJobRequest { id: id.to_owned() })
        .await?
        .into_inner();
    if ctx.format == Format::Table {
        output::note(trf(
            Msg::JobIs,
            &[("id", &job.id), ("state", &job_state(job.state))],
        ));
    }
    print_one(&job, ctx.format)
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_proto::time::ms_to_ts;
    use serde_json::json;

    #[test]
    fn seen_tracks_each_part_of_a_multi_node_job() {
        let span = berth_proto::LOG_PART_SEQ_SPAN;
        let mut seen = Seen::default();
        // Part 1's chunk arrives before part 0's: both are new.
        assert!(seen.record(span + 1));
        assert!(seen.record(1));
        assert!(seen.record(2));
        // Repeats after a reconnect are dropped, per part.
        assert!(!seen.record(1));
        assert!(!seen.record(span + 1));
        assert!(seen.record(span + 2));
        let req = seen.request("j", true);
        assert_eq!(req.after_part_seqs, vec![2, span + 2]);
        assert_eq!(req.after_seq, 2);
        // A fresh reader asks for everything.
        let fresh = Seen::default().request("j", false);
        assert_eq!((fresh.after_seq, fresh.after_part_seqs.len()), (0, 0));
    }

    fn sample() -> v1::Job {
        v1::Job {
            id: "5f0c0000-0000-4000-8000-000000000002".into(),
            name: String::new(),
            org: "acme".into(),
            user: "alice".into(),
            class: "h100".into(),
            count: 2,
            image: "busybox".into(),
            command: vec!["sh".into(), "-c".into(), "exit 7".into()],
            env: Default::default(),
            max_runtime: Some(ms_to_dur(3_600_000)),
            reservation_id: "0b6c7d1e-0000-4000-8000-000000000001".into(),
            state: v1::JobState::Failed as i32,
            reason: "exited with code 7".into(),
            node: "node-1".into(),
            devices: vec!["GPU-a".into(), "GPU-b".into()],
            exit_code: Some(7),
            created_at: Some(ms_to_ts(1_796_083_200_000)),
            started_at: Some(ms_to_ts(1_796_083_201_000)),
            finished_at: Some(ms_to_ts(1_796_083_202_000)),
            estimated_start: None,
            datasets: vec![],
            network: "bridge".into(),
            priority: -5,
            preemptible: true,
            nodes: 1,
            charged_hours: 0.5,
            requeued_from: String::new(),
            evidence: None,
            project: String::new(),
            charged_project: String::new(),
        }
    }

    #[test]
    fn job_json_has_the_fixed_shape() {
        let v = serde_json::to_value(JobView::from(&sample())).unwrap();
        assert_eq!(
            v,
            json!({
                "id": "5f0c0000-0000-4000-8000-000000000002",
                "name": null,
                "state": "failed",
                "org": "acme",
                "user": "alice",
                "class": "h100",
                "count": 2,
                "image": "busybox",
                "command": ["sh", "-c", "exit 7"],
                "max_runtime": "1h",
                "reservation_id": "0b6c7d1e-0000-4000-8000-000000000001",
                "node": "node-1",
                "devices": ["GPU-a", "GPU-b"],
                "exit_code": 7,
                "reason": "exited with code 7",
                "created_at": "2026-12-01T00:00:00Z",
                "started_at": "2026-12-01T00:00:01Z",
                "finished_at": "2026-12-01T00:00:02Z",
                "estimated_start": null,
                "priority": -5,
                "preemptible": true,
                "nodes": 1,
                "charged_hours": 0.5,
                "requeued_from": null,
                "project": null,
                "charged_project": null,
                "mean_utilization_percent": null,
                "peak_memory_bytes": null,
                "energy_wh": null,
                "mean_sm_active": null,
                "mean_tensor_active": null,
                "utilization_source": null
            })
        );
    }

    #[test]
    fn pending_job_json_has_nulls_where_nothing_is_known() {
        let j = v1::Job {
            id: "j".into(),
            state: v1::JobState::Pending as i32,
            reason: "waiting for 2 free h100".into(),
            estimated_start: Some(ms_to_ts(1_796_083_200_000)),
            ..Default::default()
        };
        let v = serde_json::to_value(JobView::from(&j)).unwrap();
        assert_eq!(v["state"], "pending");
        assert_eq!(v["reservation_id"], json!(null));
        assert_eq!(v["node"], json!(null));
        assert_eq!(v["exit_code"], json!(null));
        assert_eq!(v["devices"], json!([]));
        assert_eq!(v["reason"], "waiting for 2 free h100");
        assert_eq!(v["estimated_start"], "2026-12-01T00:00:00Z");
        let timed_out = v1::Job {
            state: v1::JobState::TimedOut as i32,
            ..j
        };
        assert_eq!(JobView::from(&timed_out).state, "timed-out");
    }

    #[test]
    fn exit_codes_follow_the_job() {
        assert_eq!(exit_code(&sample()).unwrap(), 7);
        let ok = v1::Job {
            state: v1::JobState::Succeeded as i32,
            exit_code: None,
            ..sample()
        };
        assert_eq!(exit_code(&ok).unwrap(), 0);
        let cancelled = v1::Job {
            state: v1::JobState::Cancelled as i32,
            exit_code: None,
            reason: "cancelled by alice".into(),
            ..sample()
        };
        let e = exit_code(&cancelled).unwrap_err().to_string();
        assert!(
            e.contains("cancelled") && e.contains("cancelled by alice"),
            "{e}"
        );
        let signalled = v1::Job {
            exit_code: Some(-9),
            ..sample()
        };
        assert_eq!(exit_code(&signalled).unwrap(), 1);
    }

    #[test]
    fn env_flags_need_a_key_and_an_equals_sign() {
        let env = parse_env(&["A=1".into(), "B=x=y".into(), "C=".into()]).unwrap();
        assert_eq!(env["A"], "1");
        assert_eq!(env["B"], "x=y");
        assert_eq!(env["C"], "");
        let e = parse_env(&["FOO".into()]).unwrap_err().to_string();
        assert_eq!(e, r#"invalid --env "FOO": expected KEY=VALUE"#);
        assert!(parse_env(&["=v".into()]).is_err());
    }

    #[test]
    fn commands_display_shell_quoted() {
        let cmd: Vec<String> = ["sh", "-c", "echo hi; exit 7", "it's"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(shell_join(&cmd), r#"sh -c 'echo hi; exit 7' 'it'\''s'"#);
    }

    #[test]
    fn listing_table_shows_exit_codes() {
        let text = table(&[sample()]).render();
        assert!(text.lines().nth(1).unwrap().contains("failed"), "{text}");
        assert!(text.contains(" 7 "), "{text}");
    }

    #[test]
    fn listing_table_shows_priority_and_shape() {
        let multi = v1::Job {
            nodes: 3,
            priority: 10,
            preemptible: false,
            ..sample()
        };
        let text = table(&[sample(), multi]).render();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].contains("COUNT  PRIO  NODE"), "{text}");
        assert!(lines[1].contains(" 2      -5p   node-1"), "{text}");
        assert!(lines[2].contains(" 2x3    10    node-1"), "{text}");
    }

    #[test]
    fn requeued_jobs_name_their_predecessor() {
        let j = v1::Job {
            requeued_from: "j0".into(),
            ..sample()
        };
        let v = serde_json::to_value(JobView::from(&j)).unwrap();
        assert_eq!(v["requeued_from"], "j0");
        let text = details(&j).render();
        assert!(text.contains("Requeued from:  j0"), "{text}");
        assert!(text.contains("Preemptible:    yes"), "{text}");
    }
}
