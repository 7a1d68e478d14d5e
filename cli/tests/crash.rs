//! Nothing acknowledged is lost: the scheduler is killed with SIGKILL while 16 clients
//! submit jobs and book devices as fast as they can, then started again on the same
//! database; every job and booking it acknowledged is there, and no device is booked twice.
//! Twenty rounds (`BERTH_CRASH_ROUNDS`), each killing at a random moment drawn from a seed
//! that the test prints (`BERTH_CRASH_SEED` replays a run). On SQLite, and on PostgreSQL
//! with `BERTH_E2E_DB=postgres` (as `make test` runs it too).

mod common;

use berth_proto::v1;
use common::{Centre, CentreOptions};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tonic::Request;
use tonic::transport::Channel;

const CLASS: &str = "crash-gpu";
const CLIENTS: usize = 16;

/// What the clients were told succeeded.
#[derive(Default)]
struct Acked {
    jobs: BTreeSet<String>,
    reservations: BTreeSet<String>,
}

fn authed<T>(msg: T, token: &str) -> Request<T> {
    let mut r = Request::new(msg);
    r.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("token header"),
    );
    r
}

fn ts(ms: i64) -> prost_types::Timestamp {
    berth_proto::time::ms_to_ts(ms)
}

/// One client: alternately submits a job and books a one-device window of its own lane,
/// until the server goes away. Records every success.
async fn client(url: String, token: String, lane: usize, acked: Arc<Mutex<Acked>>) {
    let Ok(channel) = Channel::from_shared(url).expect("url").connect().await else {
        return;
    };
    let mut jobs = v1::jobs_client::JobsClient::new(channel.clone());
    let mut res = v1::reservations_client::ReservationsClient::new(channel);
    // Each client books its own run of short windows far ahead; clients share devices,
    // so the scheduler must keep them apart.
    let first = berth_proto::time::now_ms() + 3_600_000 + lane as i64 * 7_919;
    for i in 0.. {
        let submitted = jobs
            .submit_job(authed(
                v1::SubmitJobRequest {
                    class: CLASS.into(),
                    count: 1,
                    image: "busybox".into(),
                    command: vec!["sleep".into(), "3600".into()],
                    name: format!("crash-{lane}-{i}"),
                    ..Default::default()
                },
                &token,
            ))
            .await;
        match submitted {
            Ok(j) => {
                acked.lock().expect("acked").jobs.insert(j.into_inner().id);
            }
            Err(_) => return,
        }
        let start = first + i * 60_000;
        let booked = res
            .create_reservation(authed(
                v1::CreateReservationRequest {
                    class: CLASS.into(),
                    count: 1,
                    start: Some(ts(start)),
                    end: Some(ts(start + 90_000)),
                    site: String::new(),
                    project: String::new(),
                },
                &token,
            ))
            .await;
        match booked {
            Ok(r) => {
                acked
                    .lock()
                    .expect("acked")
                    .reservations
                    .insert(r.into_inner().id);
            }
            Err(s) if s.code() == tonic::Code::ResourceExhausted => {}
            Err(_) => return,
        }
    }
}

/// Every reservation the server has, live and ended, through the pages.
async fn all_reservations(url: &str, token: &str) -> Vec<v1::Reservation> {
    let channel = Channel::from_shared(url.to_owned())
        .expect("url")
        .connect()
        .await
        .expect("connect after restart");
    let mut client = v1::reservations_client::ReservationsClient::new(channel);
    let mut out = Vec::new();
    let mut token_page = String::new();
    loop {
        let page = client
            .list_reservations(authed(
                v1::ListReservationsRequest {
                    all: true,
                    page_size: 777,
                    page_token: token_page,
                    ..Default::default()
                },
                token,
            ))
            .await
            .expect("list reservations")
            .into_inner();
        out.extend(page.reservations);
        if page.next_page_token.is_empty() {
            return out;
        }
        token_page = page.next_page_token;
    }
}

/// Checks that every acknowledged object is there and that no device holds two live
/// bookings whose windows overlap.
async fn check(url: &str, token: &str, acked: &Acked) {
    let channel = Channel::from_shared(url.to_owned())
        .expect("url")
        .connect()
        .await
        .expect("connect after restart");
    let mut jobs = v1::jobs_client::JobsClient::new(channel);
    let mut listed_jobs = BTreeSet::new();
    let mut page_token = String::new();
    loop {
        let page = jobs
            .list_jobs(authed(
                v1::ListJobsRequest {
                    all: true,
                    page_size: 5_000,
                    page_token,
                    ..Default::default()
                },
                token,
            ))
            .await
            .expect("list jobs after the restart")
            .into_inner();
        for j in page.jobs {
            assert!(
                listed_jobs.insert(j.id.clone()),
                "job {} listed twice",
                j.id
            );
        }
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    if let Some(gone) = acked.jobs.difference(&listed_jobs).next() {
        panic!("acknowledged job {gone} is gone after the restart");
    }
    // And by id, a sample (the newest), as a client that kept the id would ask.
    for id in acked.jobs.iter().rev().take(50) {
        let j = jobs
            .get_job(authed(v1::GetJobRequest { id: id.clone() }, token))
            .await
            .unwrap_or_else(|e| panic!("acknowledged job {id} is gone after the restart: {e}"));
        assert_eq!(j.get_ref().id, *id);
    }
    let listed = all_reservations(url, token).await;
    let by_id: BTreeMap<&str, &v1::Reservation> =
        listed.iter().map(|r| (r.id.as_str(), r)).collect();
    for id in &acked.reservations {
        let r = by_id
            .get(id.as_str())
            .unwrap_or_else(|| panic!("acknowledged reservation {id} is gone after the restart"));
        assert!(
            r.state == v1::ReservationState::Confirmed as i32,
            "reservation {id} should still be confirmed: {r:?}"
        );
        assert_eq!(r.devices.len(), 1, "{r:?}");
    }
    let mut windows: BTreeMap<&str, Vec<(i64, i64, &str)>> = BTreeMap::new();
    for r in listed
        .iter()
        .filter(|r| r.state != v1::ReservationState::Cancelled as i32)
    {
        let start = berth_proto::time::ts_to_ms(r.start.as_ref().expect("start"));
        let end = berth_proto::time::ts_to_ms(r.end.as_ref().expect("end"));
        for d in &r.devices {
            windows.entry(d).or_default().push((start, end, &r.id));
        }
    }
    for (device, mut w) in windows {
        w.sort();
        for pair in w.windows(2) {
            assert!(
                pair[0].1 <= pair[1].0,
                "device {device} is booked twice: {:?} and {:?}",
                pair[0],
                pair[1]
            );
        }
    }
}

#[test]
fn a_scheduler_killed_under_load_keeps_everything_it_acknowledged() {
    let rounds: usize = std::env::var("BERTH_CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let seed: u64 = std::env::var("BERTH_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("clock")
                .as_nanos() as u64
        });
    eprintln!("BERTH_CRASH_SEED={seed} (set it to replay these timings)");
    let mut timings = Timings(seed | 1);
    // Per-tenant rate limits off: the clients are one org, and the load is the point.
    let mut centre = Centre::start_with(CentreOptions {
        scheduler_args: vec!["--org-rate".into(), "0".into()],
        ..CentreOptions::default()
    });
    centre.site_and_class("s1", CLASS);
    centre.start_agent("crash-0", "s1", CLASS, 4);
    centre.admin(&["admin", "orgs", "create", "crashers"]);
    let token = centre.user("crashers", "carol");
    let url = centre.server_url();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let acked = Arc::new(Mutex::new(Acked::default()));
    for round in 0..rounds {
        let at_start = acked.lock().expect("acked").jobs.len();
        let tasks: Vec<_> = (0..CLIENTS)
            .map(|lane| {
                rt.spawn(client(
                    url.clone(),
                    token.clone(),
                    round * CLIENTS + lane,
                    acked.clone(),
                ))
            })
            .collect();
        // Kill at a random moment: just after the clients connect, mid-stream, or later.
        let wait = Duration::from_millis(timings.between(150, 1_500));
        std::thread::sleep(wait);
        centre.restart_scheduler();
        rt.block_on(async {
            for t in tasks {
                let _ = t.await;
            }
        });
        let a = acked.lock().expect("acked");
        assert!(
            a.jobs.len() > at_start,
            "round {round}: the clients got nothing acknowledged before the kill"
        );
        rt.block_on(check(&url, &token, &a));
        eprintln!(
            "round {round}: killed after {wait:?}; {} jobs and {} bookings acknowledged so far, all there",
            a.jobs.len(),
            a.reservations.len()
        );
    }
}

/// Kill timings from a seed (xorshift64*): random per run, replayable from the seed.
struct Timings(u64);

impl Timings {
    /// A number of milliseconds in `lo..hi`.
    fn between(&mut self, lo: u64, hi: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        lo + self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % (hi - lo)
    }
}
