//! The simulation: the centre, the queue and the bookings, advanced a minute at a time.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};
use std::time::Instant;

use berth_scheduler::core::{
    Accounts, Ask, Budget, Cluster, Decision, Guest, IdleAction, IdleBooked, IdlePolicy, IdleState,
    Period, PlanInput, PlanPolicy, QueuedJob, Request, Usage, Wait, decay, plan,
};

use super::*;
use crate::traffic::*;

/// Knobs of one run.
#[derive(Debug, Clone)]
pub(crate) struct SimConfig {
    pub(crate) nodes: u32,
    pub(crate) devices: u32,
    pub(crate) days: u32,
    pub(crate) plan: PlanPolicy,
    pub(crate) half_life_ms: i64,
    pub(crate) idle: IdlePolicy,
    pub(crate) pass_every: i64,
    /// Check device exclusivity every minute (`--check`).
    pub(crate) check: bool,
}

/// Why a running job was stopped before it finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StopCause {
    /// A waiting regular job needed its devices (decided by `plan`).
    ForJob,
    /// A booking started on the devices it borrowed.
    BookingStart,
}

/// A job's current run.
#[derive(Debug, Clone)]
pub(crate) struct Run {
    pub(crate) start: i64,
    /// When it must stop (the placement's end).
    pub(crate) until: i64,
    pub(crate) devices: Vec<String>,
    /// Preemptible: holds no claim.
    pub(crate) guest: bool,
    /// Started on a booking's idle devices.
    pub(crate) on_idle_booking: bool,
}

/// A submitted job and where it stands.
#[derive(Debug, Clone)]
pub(crate) struct JobState {
    pub(crate) spec: JobSpec,
    pub(crate) submitted: i64,
    pub(crate) first_start: Option<i64>,
    pub(crate) run: Option<Run>,
    pub(crate) done: bool,
    /// Bumped at every start, so stale end events are ignored.
    pub(crate) epoch: u32,
}

/// A confirmed booking and where it stands.
#[derive(Debug, Clone)]
pub(crate) struct BookingState {
    pub(crate) spec: BookingSpec,
    pub(crate) devices: Vec<String>,
    pub(crate) idle: IdleState,
    pub(crate) active: bool,
    pub(crate) reclaimed_at: Option<i64>,
}

/// Something due at an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Event {
    JobEnd { job: usize, epoch: u32 },
    BookingStart(usize),
    BookingEnd(usize),
}

/// Raw counters, in device-milliseconds unless named otherwise.
#[derive(Debug, Clone, Default)]
pub(crate) struct Counters {
    pub(crate) job_used: i128,
    pub(crate) guest_on_idle: i128,
    pub(crate) booked_used: i128,
    pub(crate) booked_idle: i128,
    pub(crate) reclaimed: i128,
    pub(crate) preempted_lost: i128,
    pub(crate) reclaims: u64,
    pub(crate) warnings: u64,
    pub(crate) completed: u64,
    pub(crate) bookings_made: u64,
    pub(crate) bookings_refused: u64,
    pub(crate) preempt_for_job: u64,
    pub(crate) preempt_booking: u64,
    /// Preemptions of runs younger than 15 minutes (churn).
    pub(crate) preempt_young: u64,
    pub(crate) limit_waits: u64,
    pub(crate) passes: u64,
    pub(crate) plan_us: Vec<f64>,
}

/// The simulated centre and everything in flight.
pub(crate) struct Sim {
    pub(crate) cfg: SimConfig,
    pub(crate) orgs: Vec<OrgSpec>,
    pub(crate) weights: BTreeMap<String, f64>,
    pub(crate) cluster: Cluster,
    pub(crate) accounts: Accounts,
    pub(crate) node_of: HashMap<String, String>,
    pub(crate) events: BinaryHeap<Reverse<(i64, u64, Event)>>,
    pub(crate) seq: u64,
    pub(crate) jobs: Vec<JobState>,
    pub(crate) pending: Vec<QueuedJob<'static>>,
    pub(crate) bookings: Vec<BookingState>,
    /// Active bookings, in start order.
    pub(crate) active: Vec<usize>,
    pub(crate) guests: BTreeMap<usize, Guest>,
    pub(crate) guest_of_device: HashMap<String, usize>,
    /// Decayed usage per org (device-ms), and devices each org holds right now.
    pub(crate) usage: Vec<f64>,
    pub(crate) holding: Vec<i64>,
    /// Device-ms run by each org's queued jobs.
    pub(crate) org_used: Vec<i128>,
    /// Owners whose claims ended, to drop from the calendar (their claims lie in the past).
    pub(crate) ended_owners: Vec<String>,
    pub(crate) dirty: bool,
    pub(crate) counters: Counters,
}

/// The job id used in the core for job `i`.
pub(crate) fn job_id(i: usize) -> String {
    format!("j{i}")
}

/// The job index of a core job id.
pub(crate) fn job_index(id: &str) -> Option<usize> {
    id.strip_prefix('j')?.parse().ok()
}

impl Sim {
    /// A centre of `nodes` x `devices`, each org with a budget that limits concurrency (a
    /// quarter of the centre), booking length (72 h) and horizon (14 days), no hour limit.
    pub(crate) fn new(cfg: SimConfig, orgs: Vec<OrgSpec>) -> Self {
        let mut cluster = Cluster::new();
        let mut node_of = HashMap::new();
        for n in 0..cfg.nodes {
            let node = format!("node-{n:04}");
            cluster.upsert_node(&node, "busan-ifc", true);
            for d in 0..cfg.devices {
                let uuid = format!("GPU-{n:04}-{d}");
                cluster.upsert_device(&uuid, &node, CLASS, true);
                node_of.insert(uuid, node.clone());
            }
        }
        let mut accounts = Accounts::new();
        let cap = (cfg.nodes * cfg.devices / 4).max(32);
        for o in &orgs {
            let budget = Budget {
                period: Period::Month,
                allowance_ms: None,
                max_devices: Some(cap),
                max_booking_ms: Some(72 * HOUR),
                horizon_ms: Some(14 * DAY),
                expires_ms: None,
            };
            accounts.set_budget(&o.name, CLASS, budget);
        }
        let weights = orgs.iter().map(|o| (o.name.clone(), o.weight)).collect();
        let n = orgs.len();
        Sim {
            cfg,
            orgs,
            weights,
            cluster,
            accounts,
            node_of,
            events: BinaryHeap::new(),
            seq: 0,
            jobs: Vec::new(),
            pending: Vec::new(),
            bookings: Vec::new(),
            active: Vec::new(),
            guests: BTreeMap::new(),
            guest_of_device: HashMap::new(),
            usage: vec![0.0; n],
            holding: vec![0; n],
            org_used: vec![0; n],
            ended_owners: Vec::new(),
            dirty: false,
            counters: Counters::default(),
        }
    }

    pub(crate) fn end_ms(&self) -> i64 {
        START + i64::from(self.cfg.days) * DAY
    }

    pub(crate) fn schedule(&mut self, at: i64, e: Event) {
        self.seq += 1;
        self.events.push(Reverse((at, self.seq, e)));
    }

    /// Runs the whole month over `arrivals` (in time order).
    /// With `--check`, fails naming the first device held twice.
    pub(crate) fn run(&mut self, arrivals: &[(i64, Arrival)]) -> Result<(), String> {
        let minutes = i64::from(self.cfg.days) * 24 * 60;
        let mut next = 0;
        let mut last_pass = i64::MIN / 2;
        for m in 0..minutes {
            let now = START + m * MINUTE;
            self.process_events(now);
            while next < arrivals.len() && arrivals[next].0 <= now {
                self.arrive(arrivals[next].0, &arrivals[next].1);
                next += 1;
            }
            self.sample_idle(now);
            let due = self.dirty || m - last_pass >= MAX_PASS_GAP_MIN;
            if m % self.cfg.pass_every == 0 && due && !self.pending.is_empty() {
                self.pass(now);
                last_pass = m;
                self.dirty = false;
            }
            self.accrue_usage();
            if self.cfg.check {
                self.check_exclusive(now)?;
            }
            if m % 60 == 0 {
                for o in std::mem::take(&mut self.ended_owners) {
                    self.cluster.remove_claims(&o);
                }
            }
        }
        self.process_events(self.end_ms());
        Ok(())
    }

    /// Every device held right now by a running job or by an active booking its owner uses;
    /// an error naming the first device held twice.
    pub(crate) fn check_exclusive(&self, now: i64) -> Result<(), String> {
        let mut holder: HashMap<&str, String> = HashMap::new();
        let runs = self
            .jobs
            .iter()
            .enumerate()
            .filter_map(|(i, j)| Some((job_id(i), j.run.as_ref()?)));
        let used = self
            .active
            .iter()
            .map(|&b| (format!("b{b}"), &self.bookings[b]))
            .filter(|(_, bk)| bk.spec.used);
        let held = runs
            .map(|(id, r)| (id, &r.devices))
            .chain(used.map(|(id, bk)| (id, &bk.devices)));
        for (id, devices) in held {
            for d in devices {
                if let Some(other) = holder.insert(d, id.clone()) {
                    let describe = |id: &str| match job_index(id) {
                        Some(i) => format!("{id} {:?} {:?}", self.jobs[i].run, self.jobs[i].spec),
                        None => id.to_owned(),
                    };
                    return Err(format!(
                        "at {now} ms device {d} is held by {} and {}",
                        describe(&other),
                        describe(&id)
                    ));
                }
            }
        }
        Ok(())
    }

    /// Adds a minute of holdings to every org's decayed usage.
    pub(crate) fn accrue_usage(&mut self) {
        let factor = decay(1.0, MINUTE, self.cfg.half_life_ms);
        for (u, &h) in self.usage.iter_mut().zip(&self.holding) {
            *u = *u * factor + (h * MINUTE) as f64;
        }
    }

    /// Handles every event due by `now`, in time order.
    pub(crate) fn process_events(&mut self, now: i64) {
        while let Some(&Reverse((at, _, e))) = self.events.peek() {
            if at > now {
                break;
            }
            self.events.pop();
            match e {
                Event::JobEnd { job, epoch } => self.end_job(job, epoch, at),
                Event::BookingStart(b) => self.start_booking(b, at),
                Event::BookingEnd(b) => self.end_booking(b, at),
            }
            self.dirty = true;
        }
    }

    /// A job is submitted, or a booking requested.
    pub(crate) fn arrive(&mut self, at: i64, a: &Arrival) {
        match a {
            Arrival::Job(spec) => {
                let i = self.jobs.len();
                self.jobs.push(JobState {
                    spec: spec.clone(),
                    submitted: at,
                    first_start: None,
                    run: None,
                    done: false,
                    epoch: 0,
                });
                self.pending.push(self.queued(i));
                self.dirty = true;
            }
            Arrival::Booking(spec) => self.book(at, spec),
        }
    }

    /// The core's view of job `i` waiting.
    pub(crate) fn queued(&self, i: usize) -> QueuedJob<'static> {
        let j = &self.jobs[i];
        QueuedJob {
            id: job_id(i).into(),
            org: self.orgs[j.spec.org].name.clone().into(),
            class: CLASS.into(),
            count: j.spec.count,
            nodes: j.spec.nodes,
            runtime_ms: j.spec.max_ms,
            priority: j.spec.priority,
            submitted_ms: j.submitted,
            preemptible: j.spec.preemptible,
            rate: 1.0,
            project: None,
        }
    }

    /// Books as the user would: the window asked for, else up to three later ones 4 h apart.
    pub(crate) fn book(&mut self, now: i64, spec: &BookingSpec) {
        let org = self.orgs[spec.org].name.clone();
        for shift in 0..4 {
            let (start, end) = (spec.start + shift * 4 * HOUR, spec.end + shift * 4 * HOUR);
            let ask = Ask {
                org: &org,
                class: CLASS,
                rate: 1.0,
                devices: spec.count,
                start,
                end,
                now,
                capped: true,
                project: None,
            };
            let Ok(charge) = self.accounts.admit(&ask) else {
                continue;
            };
            let req = Request {
                class: CLASS.to_owned(),
                count: spec.count,
                site: None,
                start,
                end,
            };
            let Ok(devices) = self.cluster.find_devices(&req) else {
                continue;
            };
            let b = self.bookings.len();
            let id = format!("b{b}");
            if self.cluster.add_claim(&id, &devices, start, end).is_err() {
                continue;
            }
            if let Some(c) = charge {
                self.accounts
                    .add_charged(&org, &c.key, c.period_start, c.amount_ms);
            }
            self.accounts.hold(&org, CLASS, &id, start, end, spec.count);
            self.bookings.push(BookingState {
                spec: BookingSpec {
                    start,
                    end,
                    ..spec.clone()
                },
                devices,
                idle: IdleState::default(),
                active: false,
                reclaimed_at: None,
            });
            self.schedule(start, Event::BookingStart(b));
            self.schedule(end, Event::BookingEnd(b));
            self.counters.bookings_made += 1;
            return;
        }
        self.counters.bookings_refused += 1;
    }

    /// A booking's window opens: guests borrowing its devices leave.
    pub(crate) fn start_booking(&mut self, b: usize, at: i64) {
        let mut victims: Vec<usize> = self.bookings[b]
            .devices
            .iter()
            .filter_map(|d| self.guest_of_device.get(d).copied())
            .collect();
        victims.sort_unstable();
        victims.dedup();
        for v in victims {
            self.stop(v, at, StopCause::BookingStart);
        }
        let bk = &mut self.bookings[b];
        bk.active = true;
        self.holding[bk.spec.org] += i64::from(bk.spec.count);
        self.active.push(b);
    }

    /// A booking's window closes (unless it was reclaimed before).
    pub(crate) fn end_booking(&mut self, b: usize, at: i64) {
        let bk = &mut self.bookings[b];
        if !bk.active {
            return;
        }
        bk.active = false;
        let held = i128::from(bk.spec.count) * i128::from(at - bk.spec.start);
        if bk.spec.used {
            self.counters.booked_used += held;
        } else {
            self.counters.booked_idle += held;
        }
        self.holding[bk.spec.org] -= i64::from(bk.spec.count);
        let org = self.orgs[bk.spec.org].name.clone();
        self.accounts
            .release(&org, CLASS, &format!("b{b}"), i64::MIN);
        self.active.retain(|&x| x != b);
        self.ended_owners.push(format!("b{b}"));
    }

    /// Samples every active booking: a used one is busy, an unused one idle.
    pub(crate) fn sample_idle(&mut self, now: i64) {
        if !self.cfg.idle.enabled() {
            return;
        }
        let mut reclaim = Vec::new();
        for &b in &self.active {
            let bk = &mut self.bookings[b];
            let (state, action) = self.cfg.idle.step(bk.idle, Some(bk.spec.used), now);
            bk.idle = state;
            match action {
                IdleAction::Warn { .. } => self.counters.warnings += 1,
                IdleAction::Reclaim => reclaim.push(b),
                IdleAction::None | IdleAction::Cleared => {}
            }
        }
        for b in reclaim {
            self.reclaim(b, now);
        }
    }

    /// Reclaims an idle booking at `now`: its claims end, the rest of its window is refunded.
    pub(crate) fn reclaim(&mut self, b: usize, now: i64) {
        let id = format!("b{b}");
        self.cluster.truncate_claims(&id, now);
        let bk = &mut self.bookings[b];
        bk.active = false;
        bk.reclaimed_at = Some(now);
        let count = i128::from(bk.spec.count);
        self.counters.booked_idle += count * i128::from(now - bk.spec.start);
        self.counters.reclaimed += count * i128::from(bk.spec.end - now);
        self.counters.reclaims += 1;
        self.holding[bk.spec.org] -= i64::from(bk.spec.count);
        let org = self.orgs[bk.spec.org].name.clone();
        let refund = i64::from(bk.spec.count) * (bk.spec.end - now);
        if let Some(key) = self.accounts.key_for(&org, CLASS).map(str::to_owned) {
            let (period_start, _) = Period::Month.bounds(bk.spec.start);
            self.accounts.add_refunded(&org, &key, period_start, refund);
        }
        self.accounts.release(&org, CLASS, &id, i64::MIN);
        self.active.retain(|&x| x != b);
        self.ended_owners.push(id);
        self.dirty = true;
    }

    /// The booked-but-idle devices preemptible jobs may borrow now.
    pub(crate) fn idle_booked(&self) -> Vec<IdleBooked> {
        let mut out = Vec::new();
        for &b in &self.active {
            let bk = &self.bookings[b];
            if bk.spec.used {
                continue;
            }
            for d in &bk.devices {
                out.push(IdleBooked {
                    device: d.clone(),
                    class: CLASS.to_owned(),
                    node: self.node_of.get(d).cloned().unwrap_or_default(),
                    until: bk.spec.end,
                });
            }
        }
        out
    }

    /// One queue pass at `now` (one call of `plan`, which places regular jobs before
    /// preemptible ones), and its decisions applied.
    pub(crate) fn pass(&mut self, now: i64) {
        let mut usage = Usage::new(now, self.cfg.half_life_ms);
        for (o, &u) in self.orgs.iter().zip(&self.usage) {
            usage.add(&o.name, u, now);
        }
        let mut started = HashSet::new();
        let jobs = self.pending.clone();
        let mut took = 0.0;
        if !jobs.is_empty() {
            let (decisions, us) = self.plan_once(now, &jobs, &usage);
            took = us;
            self.apply(now, decisions, &mut started);
        }
        self.counters.plan_us.push(took);
        self.counters.passes += 1;
        self.pending.retain(|j| !started.contains(&*j.id));
    }

    /// Calls `plan` once over `jobs`; returns its decisions and the microseconds it took.
    pub(crate) fn plan_once(
        &mut self,
        now: i64,
        jobs: &[QueuedJob],
        usage: &Usage,
    ) -> (Vec<Decision>, f64) {
        let guests: Vec<Guest> = self.guests.values().cloned().collect();
        let idle = self.idle_booked();
        let input = PlanInput {
            now,
            jobs,
            weights: &self.weights,
            usage,
            guests: &guests,
            idle_booked: &idle,
            policy: &self.cfg.plan,
        };
        let t0 = Instant::now();
        let decisions = plan(&mut self.cluster, &mut self.accounts, &input);
        (decisions, t0.elapsed().as_secs_f64() * 1e6)
    }

    /// Applies a pass's decisions; records the ids of the jobs started in `started`.
    pub(crate) fn apply(
        &mut self,
        now: i64,
        decisions: Vec<Decision>,
        started: &mut HashSet<String>,
    ) {
        let idle_devices: HashSet<String> =
            self.idle_booked().into_iter().map(|d| d.device).collect();
        for d in decisions {
            match d {
                Decision::Place(p) => {
                    let Some(i) = job_index(&p.job) else { continue };
                    let on_idle = p.devices.iter().any(|d| idle_devices.contains(d));
                    let run = Run {
                        start: p.start,
                        until: p.end,
                        devices: p.devices,
                        guest: !p.claim,
                        on_idle_booking: on_idle,
                    };
                    self.start_job(i, run);
                    started.insert(p.job);
                }
                Decision::Preempt { job, .. } => {
                    if let Some(i) = job_index(&job) {
                        self.stop(i, now, StopCause::ForJob);
                    }
                }
                Decision::Wait {
                    why: Wait::Limit(_),
                    ..
                } => self.counters.limit_waits += 1,
                Decision::Wait { .. } => {}
            }
        }
    }

    /// Starts job `i` on `run` and schedules its end (its work is done before `run.until`).
    pub(crate) fn start_job(&mut self, i: usize, run: Run) {
        let j = &mut self.jobs[i];
        j.epoch += 1;
        j.first_start.get_or_insert(run.start);
        let end = run.start + j.spec.run_ms;
        debug_assert!(end <= run.until, "a run outlasts its placement");
        let epoch = j.epoch;
        let org = j.spec.org;
        self.holding[org] += i64::from(j.spec.devices());
        if run.guest {
            for d in &run.devices {
                self.guest_of_device.insert(d.clone(), i);
            }
            let guest = Guest {
                job: job_id(i),
                class: CLASS.to_owned(),
                devices: run.devices.clone(),
                started_ms: run.start,
            };
            self.guests.insert(i, guest);
        }
        self.jobs[i].run = Some(run);
        self.schedule(end, Event::JobEnd { job: i, epoch });
    }

    /// Takes job `i` off its devices at `at`; returns its run. Counts the device-time used.
    pub(crate) fn take_off(&mut self, i: usize, at: i64) -> Option<Run> {
        let run = self.jobs[i].run.take()?;
        let spec = &self.jobs[i].spec;
        let used = i128::from(spec.devices()) * i128::from(at - run.start);
        self.counters.job_used += used;
        self.org_used[spec.org] += used;
        if run.on_idle_booking {
            self.counters.guest_on_idle += used;
        }
        self.holding[spec.org] -= i64::from(spec.devices());
        let org = self.orgs[spec.org].name.clone();
        if run.guest {
            self.guests.remove(&i);
            for d in &run.devices {
                self.guest_of_device.remove(d);
            }
        } else {
            let id = job_id(i);
            self.cluster.truncate_claims(&id, at);
            self.accounts.release(&org, CLASS, &id, i64::MIN);
            self.ended_owners.push(id);
        }
        // Refund what was charged for the time it did not run.
        if let Some(key) = self.accounts.key_for(&org, CLASS).map(str::to_owned) {
            let (period_start, _) = Period::Month.bounds(run.start);
            let refund = i64::from(spec.devices()) * (run.until - at);
            self.accounts.add_refunded(&org, &key, period_start, refund);
        }
        Some(run)
    }

    /// A job's end event: it finished (a run still current ends only when its work is done,
    /// as every placement lasts the job's max runtime).
    pub(crate) fn end_job(&mut self, i: usize, epoch: u32, at: i64) {
        if self.jobs[i].epoch != epoch {
            return;
        }
        let Some(run) = self.take_off(i, at) else {
            return;
        };
        debug_assert!(at - run.start >= self.jobs[i].spec.run_ms, "ended early");
        self.jobs[i].done = true;
        self.counters.completed += 1;
    }

    /// Stops a running job before it finished, and queues it again.
    pub(crate) fn stop(&mut self, i: usize, at: i64, cause: StopCause) {
        if let Some(run) = self.take_off(i, at) {
            self.requeue(i, &run, at, cause);
        }
    }

    /// Puts a stopped job back in the queue (it restarts from scratch, keeping its seniority).
    pub(crate) fn requeue(&mut self, i: usize, run: &Run, at: i64, cause: StopCause) {
        let lost = i128::from(self.jobs[i].spec.devices()) * i128::from(at - run.start);
        self.counters.preempted_lost += lost;
        if at - run.start <= 15 * MINUTE {
            self.counters.preempt_young += 1;
        }
        match cause {
            StopCause::ForJob => self.counters.preempt_for_job += 1,
            StopCause::BookingStart => self.counters.preempt_booking += 1,
        }
        self.pending.push(self.queued(i));
        self.dirty = true;
    }

    /// Closes the books at the end of the month: running work and active bookings count up
    /// to the end.
    pub(crate) fn finish(&mut self) {
        let end = self.end_ms();
        let running: Vec<usize> = (0..self.jobs.len())
            .filter(|&i| self.jobs[i].run.is_some())
            .collect();
        for i in running {
            self.take_off(i, end);
        }
        for b in std::mem::take(&mut self.active) {
            let bk = &self.bookings[b];
            self.holding[bk.spec.org] -= i64::from(bk.spec.count);
            let held = i128::from(bk.spec.count) * i128::from(end - bk.spec.start);
            if bk.spec.used {
                self.counters.booked_used += held;
            } else {
                self.counters.booked_idle += held;
            }
        }
    }
}
