//! The validated model layer.
//!
//! Wire messages are checked here, once, and turned into domain values that the
//! scheduler can trust. A failed check is a [`FieldError`] naming the field and the
//! reason, which becomes `INVALID_ARGUMENT` on the wire.

use crate::time::{UnixMs, dur_to_ms, ts_to_ms};
use crate::v1;
use berth_i18n::api::{Msg, Text};
use berth_i18n::text;
use std::collections::BTreeMap;
use std::fmt;

/// The longest booking window or job runtime accepted at all (policy may be stricter).
pub const MAX_SPAN_MS: i64 = 366 * 24 * crate::time::HOUR_MS;
/// The most devices one request may ask for.
pub const MAX_COUNT: u32 = 4096;
/// Default maximum runtime of a job: one hour.
pub const DEFAULT_MAX_RUNTIME_MS: i64 = crate::time::HOUR_MS;
/// How far in the past a requested start may lie (client clock skew, `--start now`).
pub const START_SLACK_MS: i64 = 5 * 60 * 1000;
/// How far ahead a booking may start (a budget's horizon may be stricter).
pub const MAX_LEAD_MS: i64 = 3 * 366 * 24 * crate::time::HOUR_MS;
/// Default cap on a job's spec size: its environment and command together, 64 KiB.
pub const DEFAULT_MAX_SPEC_BYTES: usize = 64 * 1024;
/// Most environment variables one job may set.
pub const MAX_ENV_VARS: usize = 256;
/// Most command arguments one job may give.
pub const MAX_COMMAND_ARGS: usize = 4096;
/// Longest job name, in bytes.
pub const MAX_JOB_NAME_LEN: usize = 128;
/// Most datasets one job may mount.
pub const MAX_DATASETS: usize = 32;
/// Environment variables Berth sets itself; a job may not set them.
pub const RESERVED_ENV: &[&str] = &[
    "BERTH_DEVICES",
    "BERTH_JOB_ID",
    "CUDA_VISIBLE_DEVICES",
    "NVIDIA_VISIBLE_DEVICES",
];

/// A request field that failed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The field, as named in the API (`count`, `start`, `env.FOO`).
    pub field: String,
    /// Why it was refused, in words a user can act on: a catalogue message, worded in the
    /// reader's language when it is shown.
    pub reason: Text,
}

impl FieldError {
    /// A new error for `field`.
    pub fn new(field: impl Into<String>, reason: impl Into<Text>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid {}: {}", self.field, self.reason)
    }
}

impl std::error::Error for FieldError {}

impl From<FieldError> for tonic::Status {
    fn from(e: FieldError) -> Self {
        tonic::Status::invalid_argument(e.to_string())
    }
}

/// Checks a name (site, class, node, org, user): 1 to 63 characters of lower-case
/// letters, digits, `-`, `_` and `.`, starting with a letter or digit.
pub fn name(field: &str, value: &str) -> Result<String, FieldError> {
    if value.is_empty() {
        return Err(FieldError::new(field, Msg::MustNotBeEmpty));
    }
    if value.len() > 63 {
        return Err(FieldError::new(field, text!(AtMostCharacters, max = 63)));
    }
    let first_ok = value
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let rest_ok = value
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'));
    if !first_ok || !rest_ok {
        return Err(FieldError::new(
            field,
            text!(NameCharacters, value = ?value),
        ));
    }
    Ok(value.to_owned())
}

/// Refuses control characters (ESC, BEL, NUL, ...; newlines and tabs too) and Unicode
/// direction overrides in a one-line text a terminal will show, such as a job's name:
/// they could rewrite what a reader sees.
pub fn no_control_characters(field: &str, value: &str) -> Result<(), FieldError> {
    match value.char_indices().find(|&(_, c)| is_unsafe_char(c)) {
        Some((at, c)) => Err(FieldError::new(
            field,
            text!(ControlCharacter, found = c.escape_unicode(), at),
        )),
        None => Ok(()),
    }
}

/// Control characters (C0, DEL, C1) and the Unicode bidirectional controls.
pub fn is_unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Like [`name`], but an empty value means "not given".
pub fn optional_name(field: &str, value: &str) -> Result<Option<String>, FieldError> {
    if value.is_empty() {
        Ok(None)
    } else {
        name(field, value).map(Some)
    }
}

/// An optional object id: `None` when empty.
pub fn optional_id(field: &str, value: &str) -> Result<Option<String>, FieldError> {
    if value.is_empty() {
        Ok(None)
    } else {
        id(field, value).map(Some)
    }
}

/// Checks an object id (a UUID) and returns it in canonical lower-case form.
pub fn id(field: &str, value: &str) -> Result<String, FieldError> {
    if value.is_empty() {
        return Err(FieldError::new(field, Msg::MustNotBeEmpty));
    }
    uuid::Uuid::parse_str(value)
        .map(|u| u.hyphenated().to_string())
        .map_err(|_| FieldError::new(field, text!(NotAnId, value = ?value)))
}

/// Converts a role from the wire; unspecified becomes `default`.
pub fn role(field: &str, value: i32, default: Role) -> Result<Role, FieldError> {
    match v1::Role::try_from(value) {
        Ok(v1::Role::Unspecified) => Ok(default),
        Ok(v1::Role::User) => Ok(Role::User),
        Ok(v1::Role::OrgAdmin) => Ok(Role::OrgAdmin),
        Ok(v1::Role::Admin) => Ok(Role::Admin),
        Ok(v1::Role::Agent) => Err(FieldError::new(field, Msg::NotAUserRole)),
        Err(_) => Err(FieldError::new(field, text!(UnknownRole, value))),
    }
}

/// What a caller may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// A member of one organisation.
    User,
    /// A member who also manages the organisation's users.
    OrgAdmin,
    /// Centre staff: sees and manages everything.
    Admin,
    /// A node agent, for its own node only.
    Agent,
}

impl Role {
    /// The name stored in the database and in tokens.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::OrgAdmin => "org-admin",
            Role::Admin => "admin",
            Role::Agent => "agent",
        }
    }

    /// Parses a stored role name.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "user" => Some(Role::User),
            "org-admin" => Some(Role::OrgAdmin),
            "admin" => Some(Role::Admin),
            "agent" => Some(Role::Agent),
            _ => None,
        }
    }

    /// The wire value.
    pub fn to_proto(self) -> v1::Role {
        match self {
            Role::User => v1::Role::User,
            Role::OrgAdmin => v1::Role::OrgAdmin,
            Role::Admin => v1::Role::Admin,
            Role::Agent => v1::Role::Agent,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

fn count(field: &str, value: u32) -> Result<u32, FieldError> {
    if value == 0 {
        return Err(FieldError::new(field, Msg::AtLeastOne));
    }
    if value > MAX_COUNT {
        return Err(FieldError::new(field, text!(AtMost, max = MAX_COUNT)));
    }
    Ok(value)
}

/// A checked booking request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReservationSpec {
    /// Device class to book.
    pub class: String,
    /// Number of devices.
    pub count: u32,
    /// Restrict to this site.
    pub site: Option<String>,
    /// Window start (inclusive), never before `now`.
    pub start: UnixMs,
    /// Window end (exclusive), after `start`.
    pub end: UnixMs,
    /// The project to charge (`None`: the user's default).
    pub project: Option<String>,
}

impl ReservationSpec {
    /// Validates a booking request against the current time. A start up to
    /// [`START_SLACK_MS`] in the past is taken as "now".
    pub fn from_request(
        req: &v1::CreateReservationRequest,
        now: UnixMs,
    ) -> Result<Self, FieldError> {
        let class = name("class", &req.class)?;
        let count = count("count", req.count)?;
        let site = optional_name("site", &req.site)?;
        let start = req
            .start
            .as_ref()
            .map(ts_to_ms)
            .ok_or_else(|| FieldError::new("start", Msg::IsRequired))?;
        let end = req
            .end
            .as_ref()
            .map(ts_to_ms)
            .ok_or_else(|| FieldError::new("end", Msg::IsRequired))?;
        if end <= start {
            return Err(FieldError::new("end", Msg::AfterStart));
        }
        if start < now - START_SLACK_MS {
            return Err(FieldError::new("start", Msg::IsInThePast));
        }
        let start = start.max(now);
        if end <= start {
            return Err(FieldError::new("end", Msg::IsInThePast));
        }
        if start - now > MAX_LEAD_MS {
            return Err(FieldError::new(
                "start",
                text!(
                    TooFarAhead,
                    days = MAX_LEAD_MS / (24 * crate::time::HOUR_MS)
                ),
            ));
        }
        if end - start > MAX_SPAN_MS {
            return Err(FieldError::new("end", Msg::AtMost366Days));
        }
        Ok(Self {
            class,
            count,
            site,
            start,
            end,
            project: optional_id("project", &req.project)?,
        })
    }
}

/// Where a job runs: in a reservation, or queued for a class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobTarget {
    /// Inside this reservation's devices and window.
    Reservation(String),
    /// Queued for free devices of this class.
    Class(String),
}

/// A checked job submission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobSpec {
    /// Optional human name.
    pub name: String,
    /// Reservation or class.
    pub target: JobTarget,
    /// Number of devices.
    pub count: u32,
    /// Container image (the process runtime ignores it).
    pub image: String,
    /// Command and arguments.
    pub command: Vec<String>,
    /// Extra environment.
    pub env: BTreeMap<String, String>,
    /// Longest the job may run, milliseconds.
    pub max_runtime_ms: i64,
    /// Admin-approved datasets: (name, read-write).
    pub datasets: Vec<(String, bool)>,
    /// Network mode: `bridge` or `none`.
    pub network: String,
    /// Priority within the org's queue.
    pub priority: i32,
    /// Preemptible work.
    pub preemptible: bool,
    /// Number of nodes (`count` devices on each).
    pub nodes: u32,
    /// The project to charge (`None`: the user's default).
    pub project: Option<String>,
}

/// Limits on a submission that the centre may tune.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubmitLimits {
    /// Cap on [`spec_size`]: a job's environment and command together, in bytes.
    pub max_spec_bytes: usize,
}

impl Default for SubmitLimits {
    fn default() -> Self {
        Self {
            max_spec_bytes: DEFAULT_MAX_SPEC_BYTES,
        }
    }
}

/// The size of a job's environment and command as the job's process receives them:
/// `KEY=VALUE` and each argument, each with its terminating NUL.
pub fn spec_size<'a>(
    env: impl IntoIterator<Item = (&'a String, &'a String)>,
    command: &[String],
) -> (usize, usize) {
    let env_bytes = env.into_iter().map(|(k, v)| k.len() + v.len() + 2).sum();
    let command_bytes = command.iter().map(|a| a.len() + 1).sum();
    (env_bytes, command_bytes)
}

/// Whether `k` is a variable name a job may use: a letter or `_`, then letters,
/// digits and `_` (so never `=`, NUL or a space).
pub fn is_env_name(k: &str) -> bool {
    k.chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Highest and lowest job priority.
pub const MAX_PRIORITY: i32 = 1000;
/// Most nodes one job may span.
pub const MAX_NODES: u32 = 64;

impl JobSpec {
    /// Validates a submission with the default [`SubmitLimits`].
    pub fn from_request(req: &v1::SubmitJobRequest) -> Result<Self, FieldError> {
        Self::from_request_with(req, &SubmitLimits::default())
    }

    /// Validates a submission against `limits`.
    pub fn from_request_with(
        req: &v1::SubmitJobRequest,
        limits: &SubmitLimits,
    ) -> Result<Self, FieldError> {
        let target = match (req.reservation_id.is_empty(), req.class.is_empty()) {
            (false, true) => JobTarget::Reservation(id("reservation_id", &req.reservation_id)?),
            (true, false) => JobTarget::Class(name("class", &req.class)?),
            (false, false) => {
                return Err(FieldError::new("reservation_id", Msg::ReservationOrClass));
            }
            (true, true) => {
                return Err(FieldError::new("class", Msg::ReservationOrClassNeeded));
            }
        };
        if req.name.len() > MAX_JOB_NAME_LEN {
            return Err(FieldError::new(
                "name",
                text!(AtMostCharacters, max = MAX_JOB_NAME_LEN),
            ));
        }
        no_control_characters("name", &req.name)?;
        let count = count("count", req.count)?;
        let image = req.image.trim();
        crate::image::check(image).map_err(|reason| FieldError::new("image", reason))?;
        if req.command.len() > MAX_COMMAND_ARGS {
            return Err(FieldError::new(
                "command",
                text!(TooManyArguments, max = MAX_COMMAND_ARGS),
            ));
        }
        if req.command.iter().any(|a| a.contains('\0')) {
            return Err(FieldError::new("command", Msg::NoNul));
        }
        if req.env.len() > MAX_ENV_VARS {
            return Err(FieldError::new(
                "env",
                text!(TooManyVariables, max = MAX_ENV_VARS),
            ));
        }
        let mut env = BTreeMap::new();
        for (k, v) in &req.env {
            if !is_env_name(k) {
                // Not `env.{k}`: the field must stay printable whatever the key holds.
                return Err(FieldError::new("env", text!(NotAVariableName, name = ?k)));
            }
            if RESERVED_ENV.contains(&k.as_str()) {
                return Err(FieldError::new(format!("env.{k}"), Msg::SetByBerth));
            }
            if v.contains('\0') {
                return Err(FieldError::new(format!("env.{k}"), Msg::NoNul));
            }
            env.insert(k.clone(), v.clone());
        }
        let (env_bytes, command_bytes) = spec_size(&env, &req.command);
        if env_bytes + command_bytes > limits.max_spec_bytes {
            let field = if env_bytes >= command_bytes {
                "env"
            } else {
                "command"
            };
            return Err(FieldError::new(
                field,
                text!(
                    SpecTooLarge,
                    env_bytes,
                    command_bytes,
                    max = limits.max_spec_bytes
                ),
            ));
        }
        if req.privileged {
            return Err(FieldError::new("privileged", Msg::NeverPrivileged));
        }
        if let Some(cap) = req.cap_add.first() {
            return Err(FieldError::new(
                "cap_add",
                text!(NoCapabilities, cap = ?cap),
            ));
        }
        if let Some(m) = req.host_mounts.first() {
            return Err(FieldError::new(
                "host_mounts",
                text!(NoHostPaths, path = ?m),
            ));
        }
        let network = match req.network.as_str() {
            "" | "bridge" => "bridge".to_owned(),
            "none" => "none".to_owned(),
            "host" => {
                return Err(FieldError::new("network", Msg::NoHostNetwork));
            }
            other => {
                return Err(FieldError::new(
                    "network",
                    text!(NotANetworkMode, mode = ?other),
                ));
            }
        };
        if req.datasets.len() > MAX_DATASETS {
            return Err(FieldError::new(
                "datasets",
                text!(TooManyDatasets, max = MAX_DATASETS),
            ));
        }
        let mut datasets = Vec::new();
        for d in &req.datasets {
            let n = name("datasets.name", &d.name)?;
            if datasets.iter().any(|(x, _): &(String, bool)| *x == n) {
                return Err(FieldError::new(
                    "datasets.name",
                    text!(GivenTwice, name = ?n),
                ));
            }
            datasets.push((n, d.read_write));
        }
        let max_runtime_ms = match &req.max_runtime {
            None => DEFAULT_MAX_RUNTIME_MS,
            Some(d) => {
                let ms = dur_to_ms(d);
                if ms <= 0 {
                    return Err(FieldError::new("max_runtime", Msg::MustBePositive));
                }
                if ms > MAX_SPAN_MS {
                    return Err(FieldError::new("max_runtime", Msg::AtMost366DaysSpan));
                }
                ms
            }
        };
        if !(-MAX_PRIORITY..=MAX_PRIORITY).contains(&req.priority) {
            return Err(FieldError::new(
                "priority",
                text!(PriorityRange, max = MAX_PRIORITY),
            ));
        }
        let nodes = match req.nodes {
            0 => 1,
            n if n > MAX_NODES => {
                return Err(FieldError::new("nodes", text!(AtMost, max = MAX_NODES)));
            }
            n => n,
        };
        if let JobTarget::Reservation(_) = target {
            if req.preemptible {
                return Err(FieldError::new(
                    "preemptible",
                    Msg::ReservationNotPreemptible,
                ));
            }
            if nodes > 1 {
                return Err(FieldError::new("nodes", Msg::ReservationOneNode));
            }
        }
        Ok(Self {
            name: req.name.clone(),
            target,
            count,
            image: image.to_owned(),
            command: req.command.clone(),
            env,
            max_runtime_ms,
            datasets,
            network,
            priority: req.priority,
            preemptible: req.preemptible,
            nodes,
            project: optional_id("project", &req.project)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::{ms_to_dur, ms_to_ts};

    fn booking(count: u32, start: i64, end: i64) -> v1::CreateReservationRequest {
        v1::CreateReservationRequest {
            class: "h100".into(),
            count,
            start: Some(ms_to_ts(start)),
            end: Some(ms_to_ts(end)),
            site: String::new(),
            project: String::new(),
        }
    }

    #[test]
    fn names_are_checked() {
        assert!(name("org", "acme-ai").is_ok());
        assert_eq!(name("org", "").unwrap_err().field, "org");
        assert!(name("org", "Acme").is_err());
        assert!(name("org", "-x").is_err());
        assert!(name("org", &"a".repeat(64)).is_err());
    }

    #[test]
    fn booking_validation_names_the_field() {
        let now = 1_000_000_000;
        let h = crate::time::HOUR_MS;
        assert_eq!(
            ReservationSpec::from_request(&booking(0, now, now + h), now)
                .unwrap_err()
                .field,
            "count"
        );
        assert_eq!(
            ReservationSpec::from_request(&booking(1, now + h, now), now)
                .unwrap_err()
                .field,
            "end"
        );
        assert_eq!(
            ReservationSpec::from_request(&booking(1, now, now), now)
                .unwrap_err()
                .field,
            "end"
        );
        assert_eq!(
            ReservationSpec::from_request(&booking(1, now - 2 * h, now + h), now)
                .unwrap_err()
                .field,
            "start"
        );
        let ok = ReservationSpec::from_request(&booking(2, now - 1000, now + h), now).unwrap();
        assert_eq!((ok.start, ok.end, ok.count), (now, now + h, 2));
        let mut no_start = booking(1, now, now + h);
        no_start.start = None;
        assert_eq!(
            ReservationSpec::from_request(&no_start, now)
                .unwrap_err()
                .field,
            "start"
        );
    }

    #[test]
    fn job_validation_names_the_field() {
        let base = v1::SubmitJobRequest {
            class: "h100".into(),
            count: 1,
            image: "busybox".into(),
            command: vec!["true".into()],
            ..Default::default()
        };
        assert!(JobSpec::from_request(&base).is_ok());
        let mut r = base.clone();
        r.count = 0;
        assert_eq!(JobSpec::from_request(&r).unwrap_err().field, "count");
        for bad in [
            "a\u{1b}[2Jb",
            "bell\u{7}",
            "nul\u{0}",
            "two\nlines",
            "\u{202e}txt",
        ] {
            let mut r = base.clone();
            r.name = bad.into();
            let e = JobSpec::from_request(&r).unwrap_err();
            assert_eq!(e.field, "name", "{bad:?}");
            assert!(e.reason.to_string().contains("control characters"), "{e}");
        }
        let mut r = base.clone();
        r.name = "학습-run 1".into();
        assert!(JobSpec::from_request(&r).is_ok());
        let mut r = base.clone();
        r.max_runtime = Some(ms_to_dur(-1000));
        assert_eq!(JobSpec::from_request(&r).unwrap_err().field, "max_runtime");
        let mut r = base.clone();
        r.env.insert("CUDA_VISIBLE_DEVICES".into(), "all".into());
        assert_eq!(
            JobSpec::from_request(&r).unwrap_err().field,
            "env.CUDA_VISIBLE_DEVICES"
        );
        let mut r = base.clone();
        r.reservation_id = "nope".into();
        assert_eq!(
            JobSpec::from_request(&r).unwrap_err().field,
            "reservation_id"
        );
        let mut r = base.clone();
        r.privileged = true;
        assert_eq!(JobSpec::from_request(&r).unwrap_err().field, "privileged");
        let mut r = base.clone();
        r.host_mounts.push("/etc:/etc".into());
        assert_eq!(JobSpec::from_request(&r).unwrap_err().field, "host_mounts");
        let mut r = base.clone();
        r.cap_add.push("SYS_ADMIN".into());
        assert_eq!(JobSpec::from_request(&r).unwrap_err().field, "cap_add");
        let mut r = base.clone();
        r.network = "host".into();
        assert_eq!(JobSpec::from_request(&r).unwrap_err().field, "network");
        let mut r = base.clone();
        r.datasets.push(v1::DatasetMount {
            name: "imagenet".into(),
            read_write: false,
        });
        assert_eq!(
            JobSpec::from_request(&r).unwrap().datasets,
            vec![("imagenet".to_owned(), false)]
        );
        let mut r = base.clone();
        r.priority = 1001;
        assert_eq!(JobSpec::from_request(&r).unwrap_err().field, "priority");
        r.priority = -1000;
        assert_eq!(JobSpec::from_request(&r).unwrap().priority, -1000);
        let mut r = base.clone();
        r.nodes = 65;
        assert_eq!(JobSpec::from_request(&r).unwrap_err().field, "nodes");
        r.nodes = 0;
        assert_eq!(
            JobSpec::from_request(&r).unwrap().nodes,
            1,
            "0 means one node"
        );
        let mut r = base;
        r.class.clear();
        r.reservation_id = "7f1d7f7e-9a65-4a39-a0e6-2f1b6a0f3b11".into();
        assert!(matches!(
            JobSpec::from_request(&r).unwrap().target,
            JobTarget::Reservation(_)
        ));
        r.preemptible = true;
        assert_eq!(JobSpec::from_request(&r).unwrap_err().field, "preemptible");
        r.preemptible = false;
        r.nodes = 2;
        assert_eq!(JobSpec::from_request(&r).unwrap_err().field, "nodes");
    }

    fn job() -> v1::SubmitJobRequest {
        v1::SubmitJobRequest {
            class: "h100".into(),
            count: 1,
            image: "busybox".into(),
            command: vec!["true".into()],
            ..Default::default()
        }
    }

    #[test]
    fn images_that_look_like_flags_are_refused() {
        for bad in [
            "--privileged",
            "-v",
            "--volume=/:/host",
            "busybox --privileged",
        ] {
            let mut r = job();
            r.image = bad.into();
            let e = JobSpec::from_request(&r).unwrap_err();
            assert_eq!(e.field, "image", "{bad}");
        }
        let mut r = job();
        r.image = "registry.example:5000/team/trainer:v2".into();
        assert!(JobSpec::from_request(&r).is_ok());
    }

    #[test]
    fn a_job_spec_is_capped_at_64_kib_of_env_and_command() {
        // 2 + 1 bytes of "A=" and NUL, "true" and its NUL: exactly at the limit.
        let mut r = job();
        r.env
            .insert("A".into(), "x".repeat(DEFAULT_MAX_SPEC_BYTES - 3 - 5));
        assert!(JobSpec::from_request(&r).is_ok());
        r.env.insert("B".into(), String::new());
        let e = JobSpec::from_request(&r).unwrap_err();
        assert_eq!(e.field, "env");
        assert!(
            e.reason.to_string().contains("the limit of 65536 bytes"),
            "{e}"
        );
        let mut r = job();
        r.command = vec!["y".repeat(70_000)];
        assert_eq!(JobSpec::from_request(&r).unwrap_err().field, "command");
        let tight = SubmitLimits { max_spec_bytes: 4 };
        assert_eq!(
            JobSpec::from_request_with(&job(), &tight)
                .unwrap_err()
                .field,
            "command"
        );
    }

    /// Found by fuzzing (`fuzz/fuzz_targets/validate.rs`): a refusal echoed the raw key,
    /// capability or path, so a submission could put terminal escapes in the error.
    #[test]
    fn refusals_are_safe_to_print() {
        let mut r = job();
        r.env.insert("A=B\u{1b}[2J".into(), "x".into());
        let e = JobSpec::from_request(&r).unwrap_err();
        assert_eq!(e.field, "env");
        assert!(
            e.reason
                .to_string()
                .starts_with(r#""A=B\u{1b}[2J" is not a valid"#),
            "{e}"
        );
        let mut r = job();
        r.cap_add.push("\u{1b}[31mSYS_ADMIN".into());
        let e = JobSpec::from_request(&r).unwrap_err().to_string();
        assert!(!e.chars().any(char::is_control), "{e:?}");
        let mut r = job();
        r.host_mounts.push("/etc:/x\u{7}".into());
        let e = JobSpec::from_request(&r).unwrap_err().to_string();
        assert!(!e.chars().any(char::is_control), "{e:?}");
    }

    #[test]
    fn absurd_counts_and_spans_are_refused_naming_the_field() {
        let now = 1_780_000_000_000;
        let h = crate::time::HOUR_MS;
        let far = now + MAX_LEAD_MS + h;
        let e = ReservationSpec::from_request(&booking(1, far, far + h), now).unwrap_err();
        assert_eq!(e.field, "start");
        assert!(e.reason.to_string().contains("1098 days"), "{e}");
        assert!(ReservationSpec::from_request(&booking(1, now + h, now + 2 * h), now).is_ok());
        assert_eq!(
            ReservationSpec::from_request(&booking(1, now, now + MAX_SPAN_MS + 1), now)
                .unwrap_err()
                .field,
            "end"
        );
        assert_eq!(
            ReservationSpec::from_request(&booking(MAX_COUNT + 1, now, now + h), now)
                .unwrap_err()
                .field,
            "count"
        );
        let mut r = job();
        r.max_runtime = Some(crate::time::ms_to_dur(MAX_SPAN_MS + 1));
        assert_eq!(JobSpec::from_request(&r).unwrap_err().field, "max_runtime");
        r.max_runtime = Some(prost_types::Duration {
            seconds: i64::MAX,
            nanos: 999_999_999,
        });
        assert_eq!(JobSpec::from_request(&r).unwrap_err().field, "max_runtime");
        let mut r = job();
        r.count = u32::MAX;
        assert_eq!(JobSpec::from_request(&r).unwrap_err().field, "count");
    }
}
