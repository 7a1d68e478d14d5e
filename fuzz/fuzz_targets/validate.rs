//! Request validation (`proto/src/model.rs`, `proto/src/image.rs`): every `from_request`
//! conversion, on requests decoded from raw bytes and on structured ones.
//!
//! Invariants: validation is deterministic; an accepted spec satisfies every documented
//! limit and is a fixed point (a request rebuilt from it validates to the same spec); a
//! refusal names a known field, and its message holds no control character (it is shown
//! on terminals); the image grammar agrees with the distribution project's own regex.

#![no_main]

use arbitrary::{Result, Unstructured};
use berth_fuzz::{
    BAD_IMAGES, ENV_KEYS, GOOD_IMAGES, GOOD_NAMES, edgy_i64, edgy_u32, pick, pick_long,
};
use berth_proto::image;
use berth_proto::model::{
    self, FieldError, JobSpec, JobTarget, MAX_COMMAND_ARGS, MAX_COUNT, MAX_DATASETS, MAX_ENV_VARS,
    MAX_JOB_NAME_LEN, MAX_LEAD_MS, MAX_NODES, MAX_PRIORITY, MAX_SPAN_MS, RESERVED_ENV,
    ReservationSpec, SubmitLimits,
};
use berth_proto::time::{ms_to_dur, ms_to_ts};
use berth_proto::v1::{CreateReservationRequest, DatasetMount, SubmitJobRequest};
use libfuzzer_sys::fuzz_target;
use prost::Message;
use std::sync::LazyLock;

/// `ReferenceRegexp` of github.com/distribution/reference (regexp.go), anchored, with
/// `\w` spelled out as ASCII (Go's RE2 `\w` is ASCII-only).
static REFERENCE: LazyLock<regex::Regex> = LazyLock::new(|| {
    let alnum = "[a-z0-9]+";
    let separator = "(?:[._]|__|[-]+)";
    let path_component = format!("{alnum}(?:{separator}{alnum})*");
    let domain_component = "(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
    let domain_name = format!("{domain_component}(?:\\.{domain_component})*");
    let host = format!("(?:{domain_name}|\\[(?:[a-fA-F0-9:]+)\\])");
    let domain_and_port = format!("{host}(?::[0-9]+)?");
    let name = format!("(?:{domain_and_port}/)?{path_component}(?:/{path_component})*");
    let tag = "[0-9A-Za-z_][0-9A-Za-z_.-]{0,127}";
    let digest = "[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}";
    regex::Regex::new(&format!("^({name})(?::{tag})?(?:@{digest})?$")).expect("regex")
});

/// Realistic clocks: from the epoch to the year 2100 (a real `now` is never outside).
const NOW_RANGE: std::ops::RangeInclusive<i64> = 0..=4_102_444_800_000;
const NOW: i64 = 1_780_000_000_000;

fuzz_target!(|data: &[u8]| {
    let _ = run(data);
});

fn run(data: &[u8]) -> Result<()> {
    let mut u = Unstructured::new(data);
    match u.int_in_range(0..=5u8)? {
        0 => {
            let limits = limits(&mut u)?;
            if let Ok(req) = SubmitJobRequest::decode(u.take_rest()) {
                check_submit(&req, &limits);
            }
        }
        1 => {
            let limits = limits(&mut u)?;
            let req = arb_submit(&mut u)?;
            check_submit(&req, &limits);
        }
        2 => {
            let now = u.int_in_range(NOW_RANGE)?;
            if let Ok(req) = CreateReservationRequest::decode(u.take_rest()) {
                check_reservation(&req, now);
            }
        }
        3 => {
            let now = edgy_i64(&mut u, &[NOW])?.clamp(*NOW_RANGE.start(), *NOW_RANGE.end());
            let req = arb_reservation(&mut u, now)?;
            check_reservation(&req, now);
        }
        4 => {
            let mut reference = pick(&mut u, GOOD_IMAGES)?;
            // Splice arbitrary text in, so near-misses of real references are common.
            if u.arbitrary()? {
                let insert: String = u.arbitrary()?;
                let at = u.int_in_range(0..=reference.len())?;
                if reference.is_char_boundary(at) {
                    reference.insert_str(at, &insert);
                }
            }
            check_image(&reference);
        }
        _ => {
            let text: String = u.arbitrary()?;
            check_image(&text);
            check_names(&text);
        }
    }
    Ok(())
}

fn limits(u: &mut Unstructured<'_>) -> Result<SubmitLimits> {
    Ok(if u.arbitrary()? {
        SubmitLimits::default()
    } else {
        SubmitLimits {
            max_spec_bytes: u.int_in_range(0..=200_000)?,
        }
    })
}

fn arb_submit(u: &mut Unstructured<'_>) -> Result<SubmitJobRequest> {
    let mut req = SubmitJobRequest {
        name: pick_long(u, &["", "train", "n\u{1b}[31m", "x"], 140)?,
        count: edgy_u32(u, &[0, 1, 2, 8, MAX_COUNT, MAX_COUNT + 1, u32::MAX])?,
        image: pick(u, &[GOOD_IMAGES, BAD_IMAGES].concat())?,
        priority: edgy_i64(u, &[0, i64::from(MAX_PRIORITY), -i64::from(MAX_PRIORITY)])? as i32,
        preemptible: u.arbitrary()?,
        nodes: edgy_u32(u, &[0, 1, 2, MAX_NODES, MAX_NODES + 1])?,
        network: pick(u, &["", "bridge", "none", "host", "container:x"])?,
        privileged: u.ratio(1, 8)?,
        project: pick(u, PROJECTS)?,
        ..Default::default()
    };
    match u.int_in_range(0..=3u8)? {
        0 => req.class = pick(u, GOOD_NAMES)?,
        1 => req.reservation_id = pick(u, &["7f1d7f7e-9a65-4a39-a0e6-2f1b6a0f3b11", "nope"])?,
        2 => {
            req.class = pick(u, GOOD_NAMES)?;
            req.reservation_id = "7f1d7f7e-9a65-4a39-a0e6-2f1b6a0f3b11".into();
        }
        _ => {}
    }
    for _ in 0..u.int_in_range(0..=6u8)? {
        req.command
            .push(pick_long(u, &["sh", "-c", "echo hi", "a\0b", "x"], 9000)?);
    }
    if u.ratio(1, 50)? {
        req.command = vec![String::new(); MAX_COMMAND_ARGS + u.int_in_range(0..=1)?];
    }
    for _ in 0..u.int_in_range(0..=8u8)? {
        let k = pick(u, ENV_KEYS)?;
        let v = pick_long(u, &["v", "all", "0,1", "a\0b", "\u{1b}]0;x\u{7}"], 20_000)?;
        req.env.insert(k, v);
    }
    if u.ratio(1, 50)? {
        for i in 0..MAX_ENV_VARS + u.int_in_range(0..=1)? {
            req.env.insert(format!("V{i}"), String::new());
        }
    }
    if u.arbitrary()? {
        req.max_runtime = Some(prost_types::Duration {
            seconds: edgy_i64(u, &[0, 1, 3600, MAX_SPAN_MS / 1000, i64::MAX, i64::MIN])?,
            nanos: u.arbitrary()?,
        });
    }
    for _ in 0..u.int_in_range(0..=3u8)? {
        req.datasets.push(DatasetMount {
            name: pick(u, &[GOOD_NAMES, &["../x", "Imagenet"]].concat())?,
            read_write: u.arbitrary()?,
        });
    }
    if u.ratio(1, 50)? {
        req.datasets = (0..=MAX_DATASETS)
            .map(|i| DatasetMount {
                name: format!("d{i}"),
                read_write: false,
            })
            .collect();
    }
    if u.ratio(1, 8)? {
        req.cap_add.push(pick(u, &["SYS_ADMIN", "\u{1b}[2J"])?);
    }
    if u.ratio(1, 8)? {
        req.host_mounts.push(pick(
            u,
            &["/etc:/etc", "/dev/nvidia0:/dev/nvidia0", "\u{1b}[2J:/x"],
        )?);
    }
    Ok(req)
}

fn arb_reservation(u: &mut Unstructured<'_>, now: i64) -> Result<CreateReservationRequest> {
    let hour = 3_600_000;
    let at = |u: &mut Unstructured<'_>| -> Result<Option<prost_types::Timestamp>> {
        Ok(if u.ratio(1, 16)? {
            None
        } else {
            let ms = edgy_i64(
                u,
                &[
                    now,
                    now - 5 * 60 * 1000,
                    now + hour,
                    now + MAX_SPAN_MS,
                    now + MAX_LEAD_MS,
                    now + MAX_LEAD_MS + MAX_SPAN_MS,
                    i64::MAX,
                    i64::MIN,
                ],
            )?;
            let mut ts = ms_to_ts(ms);
            if u.ratio(1, 8)? {
                ts.nanos = u.arbitrary()?;
            }
            Some(ts)
        })
    };
    Ok(CreateReservationRequest {
        class: pick(u, GOOD_NAMES)?,
        count: edgy_u32(u, &[0, 1, MAX_COUNT, MAX_COUNT + 1])?,
        start: at(u)?,
        end: at(u)?,
        site: pick(u, &["", "site-a", "Site"])?,
        project: pick(u, PROJECTS)?,
    })
}

/// Projects a request may name: none, an id, the same id in capitals, and not an id.
const PROJECTS: &[&str] = &[
    "",
    "0b6c7d1e-0000-4000-8000-000000000001",
    "0B6C7D1E-0000-4000-8000-000000000001",
    "p-1",
    "\u{1b}[2J",
];

/// Fields a job submission may be refused on.
const JOB_FIELDS: &[&str] = &[
    "project",
    "name",
    "reservation_id",
    "class",
    "count",
    "image",
    "command",
    "env",
    "privileged",
    "cap_add",
    "host_mounts",
    "network",
    "datasets",
    "datasets.name",
    "max_runtime",
    "priority",
    "nodes",
    "preemptible",
];

fn check_refusal(e: &FieldError, known: &[&str]) {
    let field_ok = known.contains(&e.field.as_str())
        || e.field.strip_prefix("env.").is_some_and(model::is_env_name);
    assert!(field_ok, "unknown field in {e:?}");
    assert!(!e.reason.to_string().is_empty(), "{e:?}");
    let text = e.to_string();
    assert!(
        text.starts_with(&format!("invalid {}: ", e.field)),
        "{text}"
    );
    assert!(
        !text.chars().any(char::is_control),
        "a refusal must be safe to print on a terminal: {text:?}"
    );
}

fn check_submit(req: &SubmitJobRequest, limits: &SubmitLimits) {
    let result = JobSpec::from_request_with(req, limits);
    assert_eq!(
        result,
        JobSpec::from_request_with(req, limits),
        "deterministic"
    );
    let spec = match result {
        Ok(spec) => spec,
        Err(e) => return check_refusal(&e, JOB_FIELDS),
    };
    assert!((1..=MAX_COUNT).contains(&spec.count), "{spec:?}");
    assert_eq!(image::check(&spec.image), Ok(()));
    assert!(!spec.image.starts_with('-'));
    assert!(spec.name.len() <= MAX_JOB_NAME_LEN);
    assert!(spec.command.len() <= MAX_COMMAND_ARGS);
    assert!(!spec.command.iter().any(|a| a.contains('\0')));
    assert!(spec.env.len() <= MAX_ENV_VARS);
    for (k, v) in &spec.env {
        assert!(model::is_env_name(k), "{k:?}");
        assert!(!k.contains('='));
        assert!(!RESERVED_ENV.contains(&k.as_str()), "{k}");
        assert!(!v.contains('\0'));
    }
    let (env_bytes, command_bytes) = model::spec_size(&spec.env, &spec.command);
    assert!(env_bytes + command_bytes <= limits.max_spec_bytes);
    assert!((1..=MAX_SPAN_MS).contains(&spec.max_runtime_ms));
    assert!((-MAX_PRIORITY..=MAX_PRIORITY).contains(&spec.priority));
    assert!((1..=MAX_NODES).contains(&spec.nodes));
    assert!(spec.datasets.len() <= MAX_DATASETS);
    for (i, (name, _)) in spec.datasets.iter().enumerate() {
        assert!(model::name("d", name).is_ok(), "{name:?}");
        assert!(!spec.datasets[..i].iter().any(|(n, _)| n == name), "unique");
    }
    assert!(spec.network == "bridge" || spec.network == "none");
    assert!(!req.privileged && req.cap_add.is_empty() && req.host_mounts.is_empty());
    match &spec.target {
        JobTarget::Reservation(id) => {
            assert_eq!(model::id("id", id).as_ref(), Ok(id), "canonical id");
            assert!(!spec.preemptible && spec.nodes == 1);
        }
        JobTarget::Class(class) => assert!(model::name("class", class).is_ok()),
    }
    // A fixed point: the request the spec describes validates to the spec itself.
    let rebuilt = SubmitJobRequest {
        name: spec.name.clone(),
        reservation_id: match &spec.target {
            JobTarget::Reservation(id) => id.clone(),
            JobTarget::Class(_) => String::new(),
        },
        class: match &spec.target {
            JobTarget::Class(c) => c.clone(),
            JobTarget::Reservation(_) => String::new(),
        },
        count: spec.count,
        image: spec.image.clone(),
        command: spec.command.clone(),
        env: spec.env.clone().into_iter().collect(),
        max_runtime: Some(ms_to_dur(spec.max_runtime_ms)),
        datasets: spec
            .datasets
            .iter()
            .map(|(name, read_write)| DatasetMount {
                name: name.clone(),
                read_write: *read_write,
            })
            .collect(),
        network: spec.network.clone(),
        priority: spec.priority,
        preemptible: spec.preemptible,
        nodes: spec.nodes,
        project: spec.project.clone().unwrap_or_default(),
        ..Default::default()
    };
    assert_eq!(
        JobSpec::from_request_with(&rebuilt, limits).as_ref(),
        Ok(&spec)
    );
}

fn check_reservation(req: &CreateReservationRequest, now: i64) {
    let result = ReservationSpec::from_request(req, now);
    assert_eq!(
        result,
        ReservationSpec::from_request(req, now),
        "deterministic"
    );
    match result {
        Err(e) => check_refusal(&e, &["class", "count", "site", "start", "end", "project"]),
        Ok(spec) => {
            assert!(spec.start >= now, "{spec:?} now {now}");
            assert!(spec.start < spec.end, "{spec:?}");
            assert!(spec.end - spec.start <= MAX_SPAN_MS, "{spec:?}");
            assert!(spec.start - now <= MAX_LEAD_MS, "{spec:?}");
            assert!((1..=MAX_COUNT).contains(&spec.count));
            assert!(model::name("class", &spec.class).is_ok());
            if let Some(site) = &spec.site {
                assert!(model::name("site", site).is_ok());
            }
            if let Some(p) = &spec.project {
                assert_eq!(model::id("project", p).as_ref(), Ok(p), "canonical");
            }
        }
    }
}

fn check_image(reference: &str) {
    let ours = image::check(reference);
    let oracle = REFERENCE
        .captures(reference)
        .is_some_and(|c| c[1].len() <= image::MAX_NAME_LEN)
        && reference.len() <= image::MAX_REFERENCE_LEN;
    assert_eq!(ours.is_ok(), oracle, "{reference:?}: {ours:?}");
    if let Err(reason) = ours {
        let reason = reason.to_string();
        assert!(!reason.chars().any(char::is_control), "{reason:?}");
    }
}

fn check_names(text: &str) {
    if let Ok(n) = model::name("f", text) {
        assert_eq!(n, text);
        assert!((1..=63).contains(&n.len()));
        assert!(n.bytes().all(|c| c.is_ascii_lowercase()
            || c.is_ascii_digit()
            || matches!(c, b'-' | b'_' | b'.')));
    }
    if let Ok(id) = model::id("f", text) {
        assert_eq!(model::id("f", &id).as_ref(), Ok(&id), "canonical");
        assert_eq!(id.len(), 36);
    }
    for e in [model::name("f", text), model::id("f", text)]
        .into_iter()
        .filter_map(Result::err)
    {
        check_refusal(&e, &["f"]);
    }
}
