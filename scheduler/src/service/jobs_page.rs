//! A page of jobs written to the wire straight from the committed rows: the bytes of a
//! `berth.v1.ListJobsResponse`, without first building a `v1::Job` (and a copy of each of
//! its strings) for every one of up to 5,000 jobs.
//!
//! Each field is listed once, in [`job`], over a [`Sink`] that either counts the bytes
//! (a length-delimited field needs its length before its body) or writes them. A test
//! decodes the bytes with the generated types and compares them with
//! [`crate::convert::job_with`].

use crate::convert::{self, ReasonText, Reasons};
use crate::engine::{JobView, Listed};
use berth_proto::time::{ms_to_dur, ms_to_ts};
use berth_proto::v1;
use prost::encoding::{WireType, encode_varint, encoded_len_varint, key_len};

/// A page of jobs, ready to write: each job with its reason and its encoded length.
#[derive(Debug)]
pub struct JobsPage {
    jobs: Vec<Entry>,
    next_page_token: String,
    len: usize,
}

#[derive(Debug)]
struct Entry {
    view: JobView,
    reason: ReasonText,
    len: usize,
}

impl JobsPage {
    /// The page of `listed`, each pending reason put in words once for the page.
    pub fn new(listed: Listed<JobView>) -> Self {
        let mut reasons = Reasons::default();
        let jobs: Vec<Entry> = listed
            .items
            .into_iter()
            .map(|view| {
                let reason = convert::job_reason(&view.row, view.hint.as_ref(), &mut reasons);
                let len = counted(|c| job(c, &view, &reason));
                Entry { view, reason, len }
            })
            .collect();
        let mut page = JobsPage {
            jobs,
            next_page_token: listed.next_page_token,
            len: 0,
        };
        page.len = counted(|c| page.fields(c));
        page
    }

    /// The number of bytes [`JobsPage::write`] writes.
    pub fn encoded_len(&self) -> usize {
        self.len
    }

    /// Writes the page as a `berth.v1.ListJobsResponse`.
    pub fn write(&self, buf: &mut Vec<u8>) {
        self.fields(&mut Write(buf));
    }

    /// The same page as a generated message (for callers in this process).
    pub fn to_proto(&self) -> v1::ListJobsResponse {
        let mut reasons = Reasons::default();
        v1::ListJobsResponse {
            jobs: self
                .jobs
                .iter()
                .map(|e| e.view.to_proto_with(&mut reasons))
                .collect(),
            next_page_token: self.next_page_token.clone(),
        }
    }

    fn fields(&self, s: &mut impl Sink) {
        for e in &self.jobs {
            s.delimited(1, e.len, |s| job(s, &e.view, &e.reason));
        }
        s.str(2, &self.next_page_token);
    }
}

/// One `berth.v1.Job`'s fields, in the order of the generated encoder.
fn job(s: &mut impl Sink, v: &JobView, reason: &ReasonText) {
    let r = &*v.row;
    s.str(1, &r.id);
    s.str(2, &r.name);
    s.str(3, &r.org);
    s.str(4, &r.user_name);
    s.str(5, &r.class);
    s.uint(6, r.count.max(0) as u64);
    s.str(7, &r.image);
    for c in &r.command {
        s.always_str(8, c);
    }
    for (k, val) in &r.env {
        let len = counted(|c| map_entry(c, k, val));
        s.delimited(9, len, |s| map_entry(s, k, val));
    }
    s.message(10, &ms_to_dur(r.max_runtime_ms));
    s.str(11, r.reservation_id.as_deref().unwrap_or_default());
    s.int(12, r.state.to_proto() as i32);
    s.str(13, reason.of(r));
    s.str(14, r.node.as_deref().unwrap_or_default());
    for d in &r.devices {
        s.always_str(15, d);
    }
    if let Some(code) = r.exit_code {
        s.always_int(16, code);
    }
    s.message(17, &ms_to_ts(r.created_ms));
    if let Some(t) = r.started_ms {
        s.message(18, &ms_to_ts(t));
    }
    if let Some(t) = r.finished_ms {
        s.message(19, &ms_to_ts(t));
    }
    if let Some(t) = convert::estimated_start(r, v.hint.as_ref()) {
        s.message(20, &ms_to_ts(t));
    }
    for (name, rw) in &r.datasets {
        let len = counted(|c| dataset(c, name, *rw));
        s.delimited(21, len, |s| dataset(s, name, *rw));
    }
    s.str(22, &r.network);
    s.int(23, r.priority);
    s.uint(24, u64::from(r.preemptible));
    s.uint(25, r.nodes.max(1) as u64);
    s.double(26, convert::hours(r.charge.amount_ms));
    s.str(27, r.requeued_from.as_deref().unwrap_or_default());
    if let Some(e) = r.evidence.as_deref().or(v.running.as_ref()) {
        s.message(28, &e.to_proto());
    }
    s.str(29, r.project.as_deref().unwrap_or_default());
    s.str(30, r.charge.project.as_deref().unwrap_or_default());
}

/// An entry of `map<string, string>`.
fn map_entry(s: &mut impl Sink, key: &str, value: &str) {
    s.str(1, key);
    s.str(2, value);
}

/// A `berth.v1.DatasetMount`.
fn dataset(s: &mut impl Sink, name: &str, read_write: bool) {
    s.str(1, name);
    s.uint(2, u64::from(read_write));
}

/// The bytes `fields` writes.
fn counted(fields: impl FnOnce(&mut Count)) -> usize {
    let mut c = Count(0);
    fields(&mut c);
    c.0
}

/// Where a message's fields go: counted ([`Count`]) or written ([`Write`]). Scalars at
/// their default value are left out, as proto3 does.
trait Sink {
    /// A length-delimited field of `len` bytes that `body` writes.
    fn delimited(&mut self, tag: u32, len: usize, body: impl FnOnce(&mut Self));
    /// Bytes inside a length-delimited field.
    fn raw(&mut self, bytes: &[u8]);
    /// A varint field, even at zero.
    fn always_varint(&mut self, tag: u32, v: u64);
    /// A 64-bit field.
    fn fixed64(&mut self, tag: u32, bits: u64);
    /// A nested generated message.
    fn message(&mut self, tag: u32, m: &impl prost::Message);

    /// A string, even empty (an element of a repeated field).
    fn always_str(&mut self, tag: u32, v: &str) {
        self.delimited(tag, v.len(), |s| s.raw(v.as_bytes()));
    }
    /// A string, left out when empty.
    fn str(&mut self, tag: u32, v: &str) {
        if !v.is_empty() {
            self.always_str(tag, v);
        }
    }
    /// An unsigned integer or a bool, left out at zero.
    fn uint(&mut self, tag: u32, v: u64) {
        if v != 0 {
            self.always_varint(tag, v);
        }
    }
    /// An `int32` or an enum, even at zero (negative values take ten bytes).
    fn always_int(&mut self, tag: u32, v: i32) {
        self.always_varint(tag, i64::from(v) as u64);
    }
    /// An `int32` or an enum, left out at zero.
    fn int(&mut self, tag: u32, v: i32) {
        if v != 0 {
            self.always_int(tag, v);
        }
    }
    /// A `double`, left out at zero.
    fn double(&mut self, tag: u32, v: f64) {
        if v != 0.0 {
            self.fixed64(tag, v.to_bits());
        }
    }
}

/// Counts the bytes a message's fields take.
struct Count(usize);

impl Sink for Count {
    fn delimited(&mut self, tag: u32, len: usize, _body: impl FnOnce(&mut Self)) {
        self.0 += key_len(tag) + encoded_len_varint(len as u64) + len;
    }
    fn raw(&mut self, bytes: &[u8]) {
        self.0 += bytes.len();
    }
    fn always_varint(&mut self, tag: u32, v: u64) {
        self.0 += key_len(tag) + encoded_len_varint(v);
    }
    fn fixed64(&mut self, tag: u32, _bits: u64) {
        self.0 += key_len(tag) + 8;
    }
    fn message(&mut self, tag: u32, m: &impl prost::Message) {
        self.0 += prost::encoding::message::encoded_len(tag, m);
    }
}

/// Writes a message's fields.
struct Write<'b>(&'b mut Vec<u8>);

impl Write<'_> {
    fn key(&mut self, tag: u32, wire: WireType) {
        self.varint(u64::from(tag << 3 | wire as u32));
    }

    /// Most varints here (keys, lengths of short strings, small numbers) are one byte.
    fn varint(&mut self, v: u64) {
        if v < 0x80 {
            self.0.push(v as u8);
        } else {
            encode_varint(v, self.0);
        }
    }
}

impl Sink for Write<'_> {
    fn delimited(&mut self, tag: u32, len: usize, body: impl FnOnce(&mut Self)) {
        self.key(tag, WireType::LengthDelimited);
        self.varint(len as u64);
        body(self);
    }
    fn raw(&mut self, bytes: &[u8]) {
        self.0.extend_from_slice(bytes);
    }
    fn always_varint(&mut self, tag: u32, v: u64) {
        self.key(tag, WireType::Varint);
        self.varint(v);
    }
    fn fixed64(&mut self, tag: u32, bits: u64) {
        self.key(tag, WireType::SixtyFourBit);
        self.0.extend_from_slice(&bits.to_le_bytes());
    }
    fn message(&mut self, tag: u32, m: &impl prost::Message) {
        prost::encoding::message::encode(tag, m, self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::Wait;
    use crate::engine::{Hint, PendingWhy};
    use crate::store::{Evidence, JobState, Stop, StopCause};
    use berth_proto::evidence::{EnergySource, UtilizationSource};
    use prost::Message;
    use std::sync::Arc;

    fn row(id: &str, state: JobState) -> crate::store::JobRow {
        crate::store::testing::job(id, "h100", state, 1_764_000_000_123)
    }

    fn evidence() -> Evidence {
        Evidence {
            mean_utilization_percent: 61.5,
            utilization_source: UtilizationSource::SmActive,
            peak_memory_bytes: 80 << 30,
            energy_wh: 12.25,
            energy_source: Some(EnergySource::Counter),
            mean_sm_active: Some(0.0),
            mean_tensor_active: None,
            samples: 7,
            covered_seconds: 0.0,
            devices: 2,
        }
    }

    /// Jobs in every shape the wire shows: each optional field set and unset, values
    /// at zero and negative, strings empty inside repeated fields, several env entries.
    fn views() -> Vec<JobView> {
        let waiting = Arc::new(PendingWhy::Queue(Wait::NoDevices {
            class: "h100".into(),
            count: 8,
            nodes: 1,
            next_free: Some(1_764_000_600_000),
        }));
        let hint = |why: &Arc<PendingWhy>, at| Hint {
            why: why.clone(),
            estimated_start: at,
        };
        let mut pending = row("j-pending", JobState::Pending);
        pending.name = "train".into();
        pending.command = vec!["python".into(), String::new(), "-c".into()];
        pending.env = [("A", "1"), ("B", ""), ("", "x")]
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        pending.priority = -3;
        pending.count = 0;
        pending.nodes = 0;
        pending.project = Some("p1".into());
        pending.datasets = vec![("imagenet".into(), false), ("scratch".into(), true)];
        let mut same_wait = row("j-pending-2", JobState::Pending);
        same_wait.created_ms = -1_500;
        let mut booked = row("j-booked", JobState::Pending);
        booked.reservation_id = Some("r-1".into());
        let mut stopping = row("j-stopping", JobState::Running);
        stopping.node = Some("n1".into());
        stopping.devices = vec!["GPU-a".into(), "GPU-b".into()];
        stopping.started_ms = Some(1_764_000_100_000);
        stopping.stop = Some(Stop {
            cause: StopCause::Cancelled,
            reason: "cancelled by alice".into(),
        });
        stopping.preemptible = true;
        let mut failed = row("j-failed", JobState::Failed);
        failed.exit_code = Some(-9);
        failed.reason = "exited with 137".into();
        failed.finished_ms = Some(1_764_000_200_999);
        failed.evidence = Some(Box::new(evidence()));
        failed.charge.amount_ms = 5_400_000;
        failed.charge.project = Some("grant-7".into());
        failed.requeued_from = Some("j-0".into());
        let mut done = row("j-done", JobState::Succeeded);
        done.exit_code = Some(0);
        let running = row("j-running", JobState::Running);
        let mut views = vec![
            JobView::new(
                Arc::new(pending),
                Some(hint(&waiting, Some(1_764_000_600_000))),
            ),
            JobView::new(Arc::new(same_wait), Some(hint(&waiting, None))),
            JobView::new(
                Arc::new(booked),
                Some(hint(
                    &Arc::new(PendingWhy::ReservationBusy { count: 2 }),
                    None,
                )),
            ),
            JobView::new(Arc::new(stopping), None),
            JobView::new(Arc::new(failed), None),
            JobView::new(Arc::new(done), None),
            JobView::new(Arc::new(running), None),
        ];
        views[6].running = Some(evidence());
        views
    }

    fn page(items: Vec<JobView>, token: &str) -> JobsPage {
        JobsPage::new(Listed {
            items,
            next_page_token: token.into(),
        })
    }

    /// The bytes written decode, with the generated types, to the message the generated
    /// encoder would have sent; their length is the one given for the size limits.
    #[test]
    fn a_page_reads_back_as_the_generated_message() {
        for (items, token) in [
            (views(), "next-page"),
            (views(), ""),
            (Vec::new(), "t"),
            (Vec::new(), ""),
        ] {
            let page = page(items, token);
            let mut bytes = Vec::new();
            page.write(&mut bytes);
            assert_eq!(bytes.len(), page.encoded_len());
            let read = v1::ListJobsResponse::decode(&bytes[..]).expect("decodes");
            let expected = page.to_proto();
            assert_eq!(read, expected);
            // Without maps, whose order the generated encoder does not fix, the bytes
            // are the generated encoder's own.
            let mut plain = expected.clone();
            plain.jobs.iter_mut().for_each(|j| j.env.clear());
            let mut without_env = Vec::new();
            let stripped = page_without_env(&page);
            stripped.write(&mut without_env);
            assert_eq!(without_env, plain.encode_to_vec());
        }
    }

    fn page_without_env(page: &JobsPage) -> JobsPage {
        let items = page
            .jobs
            .iter()
            .map(|e| {
                let mut row = (*e.view.row).clone();
                row.env.clear();
                let mut v = JobView::new(Arc::new(row), e.view.hint.clone());
                v.running = e.view.running.clone();
                v
            })
            .collect();
        JobsPage::new(Listed {
            items,
            next_page_token: page.next_page_token.clone(),
        })
    }

    #[test]
    fn each_reason_reads_as_the_job_shows_it() {
        let page = page(views(), "");
        let jobs = v1::ListJobsResponse::decode(&*{
            let mut b = Vec::new();
            page.write(&mut b);
            b
        })
        .expect("decodes")
        .jobs;
        assert_eq!(jobs[0].reason, jobs[1].reason, "one wait, one text");
        assert!(jobs[0].reason.contains("h100"), "{}", jobs[0].reason);
        assert_eq!(jobs[3].reason, "stopping (cancelled): cancelled by alice");
        assert_eq!(jobs[4].reason, "exited with 137");
        assert_eq!(jobs[4].exit_code, Some(-9));
        assert_eq!(jobs[5].exit_code, Some(0));
        assert_eq!(jobs[0].priority, -3);
        assert_eq!(jobs[0].nodes, 1);
        assert_eq!(jobs[0].command, ["python", "", "-c"]);
        assert_eq!(jobs[0].env.len(), 3);
        assert!(jobs[0].estimated_start.is_some());
        assert!(jobs[1].estimated_start.is_none());
        assert_eq!(
            jobs[6].evidence.as_ref().map(|e| e.samples),
            Some(7),
            "a running job shows its evidence so far"
        );
    }
}
