//! Builds the stand-in `libnvidia-ml.so.1` (`fake_nvml.c`) with gcc, one copy per
//! scenario, for the tests that load it through the real nvml-wrapper path.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Builds the fake library with `defines` (e.g. `FAKE_XID=79`) into a fresh directory;
/// the library lives as long as the directory.
pub fn build(defines: &[&str]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let lib = dir.path().join("libnvidia-ml.so.1");
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fake_nvml/fake_nvml.c");
    let status = Command::new("gcc")
        .args(["-shared", "-fPIC", "-O1", "-o"])
        .arg(&lib)
        .args(defines.iter().map(|d| format!("-D{d}")))
        .arg(&source)
        .status()
        .expect("gcc must be installed to build the fake NVML library");
    assert!(status.success(), "gcc failed on {}", source.display());
    (dir, lib)
}
