//! Hostile specs at submit: the real scheduler binary, called over real gRPC as a hostile
//! tenant would call it (not through `berth`, which refuses some of these itself).
//!
//! Every case must be refused with `INVALID_ARGUMENT` and a message naming the field,
//! holding no control character (it reaches terminals), and nothing may be created.
//! What the node does with specs that get past a scheduler is proved against the real
//! Docker engine in node-agent/tests/hostile_docker.rs.

mod common;

use berth_proto::time::{ms_to_dur, ms_to_ts, now_ms};
use berth_proto::v1::jobs_client::JobsClient;
use berth_proto::v1::reservations_client::ReservationsClient;
use berth_proto::v1::{
    CreateReservationRequest, DatasetMount, ListJobsRequest, ListReservationsRequest,
    SubmitJobRequest,
};
use common::Centre;
use tonic::Code;
use tonic::transport::Channel;

const CLASS: &str = "gpu";
const DAY_MS: i64 = 24 * 3_600_000;

fn authorized<T>(token: &str, message: T) -> tonic::Request<T> {
    let mut req = tonic::Request::new(message);
    req.metadata_mut().insert(
        berth_proto::AUTHORIZATION,
        format!("Bearer {token}").parse().expect("header"),
    );
    req
}

fn job() -> SubmitJobRequest {
    SubmitJobRequest {
        class: CLASS.into(),
        count: 1,
        image: "berth-test/busybox:latest".into(),
        command: vec!["true".into()],
        ..Default::default()
    }
}

/// `(what, the hostile request, the field its refusal must name)`.
fn job_cases() -> Vec<(&'static str, SubmitJobRequest, &'static str)> {
    let with = |f: &dyn Fn(&mut SubmitJobRequest)| {
        let mut r = job();
        f(&mut r);
        r
    };
    let env = |k: &str, v: &str| {
        let (k, v) = (k.to_owned(), v.to_owned());
        with(&move |r: &mut SubmitJobRequest| {
            r.env.insert(k.clone(), v.clone());
        })
    };
    vec![
        ("privileged", with(&|r| r.privileged = true), "privileged"),
        (
            "extra capability",
            with(&|r| r.cap_add.push("SYS_ADMIN".into())),
            "cap_add",
        ),
        (
            "capability holding an escape",
            with(&|r| r.cap_add.push("\u{1b}[2JSYS_ADMIN".into())),
            "cap_add",
        ),
        (
            "host root",
            with(&|r| r.host_mounts.push("/:/host".into())),
            "host_mounts",
        ),
        (
            "Docker socket",
            with(&|r| {
                r.host_mounts
                    .push("/var/run/docker.sock:/var/run/docker.sock".into())
            }),
            "host_mounts",
        ),
        (
            "GPU device path under /dev",
            with(&|r| r.host_mounts.push("/dev/nvidia0:/dev/nvidia0".into())),
            "host_mounts",
        ),
        (
            "NPU device path under /dev",
            with(&|r| r.host_mounts.push("/dev/rbln0:/dev/rbln0".into())),
            "host_mounts",
        ),
        (
            "host network",
            with(&|r| r.network = "host".into()),
            "network",
        ),
        (
            "another container's network",
            with(&|r| r.network = "container:berth-x".into()),
            "network",
        ),
        (
            "NVIDIA_VISIBLE_DEVICES=all",
            env("NVIDIA_VISIBLE_DEVICES", "all"),
            "env.NVIDIA_VISIBLE_DEVICES",
        ),
        (
            "CUDA_VISIBLE_DEVICES of other devices",
            env("CUDA_VISIBLE_DEVICES", "0,1,2,3"),
            "env.CUDA_VISIBLE_DEVICES",
        ),
        (
            "BERTH_DEVICES",
            env("BERTH_DEVICES", "GPU-x"),
            "env.BERTH_DEVICES",
        ),
        (
            "a name holding '=' that would shadow a forced variable",
            env("NVIDIA_VISIBLE_DEVICES=all", ""),
            "env",
        ),
        ("a name holding NUL", env("A\0B", "x"), "env"),
        ("an empty name", env("", "x"), "env"),
        (
            "a name holding an escape",
            env("X\u{1b}]0;pwned\u{7}", "x"),
            "env",
        ),
        ("a value holding NUL", env("FOO", "a\0b"), "env.FOO"),
        (
            "257 variables",
            with(&|r| {
                for i in 0..257 {
                    r.env.insert(format!("V{i}"), String::new());
                }
            }),
            "env",
        ),
        (
            "a 70 KiB variable (over the 64 KiB spec cap)",
            env("BIG", &"x".repeat(70 * 1024)),
            "env",
        ),
        (
            "40 variables of 2 KiB (80 KiB together)",
            with(&|r| {
                for i in 0..40 {
                    r.env.insert(format!("V{i}"), "y".repeat(2048));
                }
            }),
            "env",
        ),
        (
            "a 70 KiB command",
            with(&|r| r.command = vec!["sh".into(), "-c".into(), "z".repeat(70 * 1024)]),
            "command",
        ),
        (
            "4097 arguments",
            with(&|r| r.command = vec![String::new(); 4097]),
            "command",
        ),
        (
            "an argument holding NUL",
            with(&|r| r.command.push("a\0b".into())),
            "command",
        ),
        ("no devices", with(&|r| r.count = 0), "count"),
        ("4097 devices", with(&|r| r.count = 4097), "count"),
        ("u32::MAX devices", with(&|r| r.count = u32::MAX), "count"),
        ("65 nodes", with(&|r| r.nodes = 65), "nodes"),
        (
            "a 400-day runtime",
            with(&|r| r.max_runtime = Some(ms_to_dur(400 * DAY_MS))),
            "max_runtime",
        ),
        (
            "a negative runtime",
            with(&|r| r.max_runtime = Some(ms_to_dur(-1000))),
            "max_runtime",
        ),
        (
            "an overflowing runtime",
            with(&|r| {
                r.max_runtime = Some(prost_types::Duration {
                    seconds: i64::MAX,
                    nanos: 999_999_999,
                })
            }),
            "max_runtime",
        ),
        (
            "priority i32::MAX",
            with(&|r| r.priority = i32::MAX),
            "priority",
        ),
        (
            "image --privileged",
            with(&|r| r.image = "--privileged".into()),
            "image",
        ),
        ("image -v", with(&|r| r.image = "-v".into()), "image"),
        (
            "image --volume=/:/host",
            with(&|r| r.image = "--volume=/:/host".into()),
            "image",
        ),
        (
            "image with a flag after it",
            with(&|r| r.image = "busybox --privileged".into()),
            "image",
        ),
        (
            "upper-case image",
            with(&|r| r.image = "Busybox".into()),
            "image",
        ),
        ("empty image", with(&|r| r.image = String::new()), "image"),
        (
            "33 datasets",
            with(&|r| {
                r.datasets = (0..33)
                    .map(|i| DatasetMount {
                        name: format!("d{i}"),
                        read_write: false,
                    })
                    .collect()
            }),
            "datasets",
        ),
        (
            "a dataset named like a path",
            with(&|r| {
                r.datasets.push(DatasetMount {
                    name: "../../etc".into(),
                    read_write: true,
                })
            }),
            "datasets.name",
        ),
        (
            "a 129-character name",
            with(&|r| r.name = "n".repeat(129)),
            "name",
        ),
    ]
}

fn reservation_cases(now: i64) -> Vec<(&'static str, CreateReservationRequest, &'static str)> {
    let booking = |count: u32, start: i64, end: i64| CreateReservationRequest {
        class: CLASS.into(),
        count,
        start: Some(ms_to_ts(start)),
        end: Some(ms_to_ts(end)),
        site: String::new(),
        project: String::new(),
    };
    let hour = 3_600_000;
    vec![
        (
            "no devices",
            booking(0, now + hour, now + 2 * hour),
            "count",
        ),
        (
            "4097 devices",
            booking(4097, now + hour, now + 2 * hour),
            "count",
        ),
        (
            "a start 5 years ahead",
            booking(1, now + 5 * 365 * DAY_MS, now + 5 * 365 * DAY_MS + hour),
            "start",
        ),
        (
            "a start at the end of time",
            booking(1, i64::MAX - hour, i64::MAX),
            "start",
        ),
        (
            "a 400-day window",
            booking(1, now + hour, now + hour + 400 * DAY_MS),
            "end",
        ),
        (
            "a start a day ago",
            booking(1, now - DAY_MS, now + hour),
            "start",
        ),
        (
            "an end before the start",
            booking(1, now + 2 * hour, now + hour),
            "end",
        ),
    ]
}

fn check_refusal(what: &str, result: Result<impl std::fmt::Debug, tonic::Status>, field: &str) {
    let status = result.expect_err(what);
    assert_eq!(status.code(), Code::InvalidArgument, "{what}: {status:?}");
    let message = status.message();
    assert!(
        message.starts_with(&format!("invalid {field}: ")),
        "{what}: the refusal names {field}: {message:?}"
    );
    assert!(
        !message.chars().any(char::is_control),
        "{what}: the refusal is safe to print: {message:?}"
    );
}

#[test]
fn hostile_specs_are_refused_at_submit_naming_the_field() {
    let mut centre = Centre::start();
    centre.site_and_class("site-h", CLASS);
    centre.start_agent("hostile-node", "site-h", CLASS, 2);
    centre.admin(&["admin", "orgs", "create", "org-h"]);
    let token = centre.user("org-h", "mallory");
    let endpoint = format!("http://{}", centre.grpc);

    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let channel = Channel::from_shared(endpoint)
            .expect("endpoint")
            .connect()
            .await
            .expect("connect to the scheduler");
        let mut jobs = JobsClient::new(channel.clone());
        let mut reservations = ReservationsClient::new(channel);

        // The base requests are fine: only the hostile part is refused.
        let ok = jobs.submit_job(authorized(&token, job())).await;
        let ok = ok.expect("the base job is accepted").into_inner();

        let cases = job_cases();
        for (what, req, field) in &cases {
            check_refusal(
                what,
                jobs.submit_job(authorized(&token, req.clone())).await,
                field,
            );
        }
        let now = now_ms();
        let bookings = reservation_cases(now);
        for (what, req, field) in &bookings {
            let result = reservations
                .create_reservation(authorized(&token, req.clone()))
                .await;
            check_refusal(what, result, field);
        }

        let listed = jobs
            .list_jobs(authorized(
                &token,
                ListJobsRequest {
                    all: true,
                    ..Default::default()
                },
            ))
            .await
            .expect("list jobs")
            .into_inner();
        let ids: Vec<&str> = listed.jobs.iter().map(|j| j.id.as_str()).collect();
        assert_eq!(ids, [ok.id.as_str()], "only the base job was ever created");
        let booked = reservations
            .list_reservations(authorized(
                &token,
                ListReservationsRequest {
                    all: true,
                    ..Default::default()
                },
            ))
            .await
            .expect("list reservations")
            .into_inner();
        assert!(booked.reservations.is_empty(), "nothing was booked");
        eprintln!(
            "hostile specs: {} job and {} booking cases refused at submit",
            cases.len(),
            bookings.len()
        );
    });
}
