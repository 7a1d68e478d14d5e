//! Shared helpers of Berth's fuzz targets: structure-aware generators that mix values
//! the code accepts with hostile ones, so that each run reaches both the refusals and
//! the accepted paths whose invariants the targets check.

use arbitrary::{Result, Unstructured};

/// Names that pass `model::name`.
pub const GOOD_NAMES: &[&str] = &["h100", "sim-gpu", "a", "acme-ai", "site_1.b", "0x"];
/// Images that pass the reference grammar.
pub const GOOD_IMAGES: &[&str] = &[
    "busybox",
    "berth-test/busybox:latest",
    "registry.example:5000/team/trainer:v2",
    "nvcr.io/nvidia/pytorch:24.05-py3",
    "busybox@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
];
/// Images, flags and near-misses a hostile or careless user might give.
pub const BAD_IMAGES: &[&str] = &[
    "--privileged",
    "-v",
    "--volume=/:/host",
    "busybox --privileged",
    "Busybox",
    "a//b",
    "../etc",
    "img:",
    "",
    " busybox",
];
/// Environment variable names: ordinary, reserved by Berth, and malformed.
pub const ENV_KEYS: &[&str] = &[
    "FOO",
    "_X1",
    "NVIDIA_VISIBLE_DEVICES",
    "CUDA_VISIBLE_DEVICES",
    "BERTH_DEVICES",
    "BERTH_JOB_ID",
    "NVIDIA_VISIBLE_DEVICES=all",
    "CUDA_VISIBLE_DEVICES=0",
    "A=B",
    "",
    "1X",
    "A B",
    "A\0B",
    "nvidia_visible_devices",
    "LD_PRELOAD",
];
/// Device UUIDs jobs and nodes draw from, so that they overlap.
pub const DEVICES: &[&str] = &[
    "GPU-a",
    "GPU-b",
    "npu-0",
    "npu-1",
    "sim-0",
    "sim-1",
    "",
    "GPU-a,GPU-b",
    "all",
];
/// Job ids: valid UUIDs, other valid ids, and unsafe ones.
pub const JOB_IDS: &[&str] = &[
    "7f1d7f7e-9a65-4a39-a0e6-2f1b6a0f3b11",
    "0b6f6c7e-3c1a-4c1e-9d0a-1b2c3d4e5f60",
    "job_1",
    "j2",
    "../etc",
    "a/b",
    "",
    ".",
];

/// A string: often one of `pool`, else arbitrary (any UTF-8, including control characters).
pub fn pick(u: &mut Unstructured<'_>, pool: &[&str]) -> Result<String> {
    if u.ratio(3, 4)? {
        Ok((*u.choose(pool)?).to_owned())
    } else {
        u.arbitrary()
    }
}

/// A string built from `pool` that may also be long: a pool entry repeated up to `max` times.
pub fn pick_long(u: &mut Unstructured<'_>, pool: &[&str], max: usize) -> Result<String> {
    let base = pick(u, pool)?;
    let times = u.int_in_range(1..=max.max(1))?;
    Ok(base.repeat(times))
}

/// A u32 biased towards the edges that validation cares about.
pub fn edgy_u32(u: &mut Unstructured<'_>, edges: &[u32]) -> Result<u32> {
    if u.ratio(2, 3)? {
        Ok(*u.choose(edges)?)
    } else {
        u.arbitrary()
    }
}

/// An i64 biased towards the edges that validation cares about.
pub fn edgy_i64(u: &mut Unstructured<'_>, edges: &[i64]) -> Result<i64> {
    if u.ratio(2, 3)? {
        let base = *u.choose(edges)?;
        let nudge: i8 = u.arbitrary()?;
        Ok(base.saturating_add(i64::from(nudge)))
    } else {
        u.arbitrary()
    }
}
