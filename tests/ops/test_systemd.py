"""The bare-metal systemd units: `systemd-analyze verify` accepts them without a single
warning (in a scratch root holding the system's own units and the built binaries at
their install paths), and `systemd-analyze security` rates their exposure low.
"""

import pathlib
import shutil
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
UNITS = ROOT / "deploy" / "systemd"
# Exposure ceilings (systemd-analyze security, 0-10 scaled by 10): the scheduler needs
# nothing of the host; the agent needs the devices and the Docker socket.
THRESHOLDS = {"berth-scheduler.service": 20, "berth-agent.service": 35}


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    assert shutil.which("systemd-analyze"), "systemd-analyze is missing: apt-get install systemd"
    root = tmp_path_factory.mktemp("systemd-root")
    # The system's own units (targets the ours depend on), as systemd-analyze resolves
    # units under --root.
    system = pathlib.Path("/usr/lib/systemd/system")
    assert system.is_dir(), "no /usr/lib/systemd/system: apt-get install systemd"
    shutil.copytree(system, root / "usr/lib/systemd/system", symlinks=True)
    (root / "etc/systemd/system").mkdir(parents=True)
    for unit in THRESHOLDS:
        shutil.copy(UNITS / unit, root / "etc/systemd/system" / unit)
    bin_dir = root / "usr/local/bin"
    bin_dir.mkdir(parents=True)
    for binary in ["berth-scheduler", "berth-agent"]:
        built = ROOT / "target" / "debug" / binary
        assert built.exists(), f"{built} is missing: cargo build -p berth-scheduler -p berth-agent"
        shutil.copy(built, bin_dir / binary)
    return root


@pytest.mark.parametrize("unit", sorted(THRESHOLDS))
def test_the_unit_verifies_without_warnings(root, unit):
    out = subprocess.run(
        ["systemd-analyze", "verify", f"--root={root}", unit], capture_output=True, text=True
    )
    assert out.returncode == 0 and out.stdout + out.stderr == "", out.stdout + out.stderr


def test_a_broken_unit_is_caught(root, tmp_path):
    """The check above can fail: a misspelt directive is reported."""
    broken = root / "etc/systemd/system/berth-broken.service"
    text = (UNITS / "berth-scheduler.service").read_text().replace("ProtectSystem=", "ProtectSytem=")
    broken.write_text(text)
    try:
        out = subprocess.run(
            ["systemd-analyze", "verify", f"--root={root}", broken.name], capture_output=True, text=True
        )
        assert "Unknown key 'ProtectSytem'" in out.stdout + out.stderr
    finally:
        broken.unlink()


@pytest.mark.parametrize("unit", sorted(THRESHOLDS))
def test_the_units_exposure_is_low(root, unit):
    out = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", f"--root={root}",
         f"--threshold={THRESHOLDS[unit]}", "--no-pager", unit],
        capture_output=True, text=True,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr


def test_the_scheduler_keeps_its_secrets_in_credentials():
    text = (UNITS / "berth-scheduler.service").read_text()
    for needle in [
        "LoadCredential=signing.key:/etc/berth/signing.key",
        "--signing-key-file=${CREDENTIALS_DIRECTORY}/signing.key",
        "DynamicUser=yes",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
    ]:
        assert needle in text
