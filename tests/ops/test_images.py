"""The daemons' Dockerfiles, built on the local Docker engine from a base made offline
(scripts/build-base-image.sh: this machine's glibc in a FROM-scratch image) and the
locally built binaries (scripts/build-images.sh --profile debug), then run: the
scheduler starts as a non-root user with a read-only root filesystem and no
capabilities and answers /healthz and /readyz; the agent probes simulated devices.
"""

import json
import pathlib
import socket
import subprocess
import time
import urllib.request
import uuid

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
TAG = "ops-test"
BASE = "berth-test/cc-base:latest"


def run(*cmd, check=True, timeout=900):
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    if check and out.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    return out


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except OSError:
        return None, ""


@pytest.fixture(scope="module")
def images():
    run("scripts/build-base-image.sh")
    run("scripts/build-images.sh", "--profile", "debug", "--base", BASE, "--tag", TAG)
    return f"berth/berth-scheduler:{TAG}", f"berth/berth-agent:{TAG}"


def test_the_images_are_built_on_the_given_base(images):
    base_layers = json.loads(run("docker", "image", "inspect", BASE).stdout)[0]["RootFS"]["Layers"]
    for image in images:
        info = json.loads(run("docker", "image", "inspect", image).stdout)[0]
        assert info["RootFS"]["Layers"][: len(base_layers)] == base_layers, image
        assert info["Config"]["Labels"]["org.opencontainers.image.version"]
    scheduler = json.loads(run("docker", "image", "inspect", images[0]).stdout)[0]["Config"]
    assert scheduler["User"] == "65532:65532"
    assert scheduler["Entrypoint"] == ["/usr/local/bin/berth-scheduler"]


def test_the_scheduler_image_starts_hardened_and_answers_health(images):
    http = free_port()
    grpc = free_port()
    web = free_port()
    name = f"berth-ops-test-{uuid.uuid4().hex[:8]}"
    # Hardened as the Helm chart runs it: read-only root, no capabilities, no new
    # privileges; the data directory on a tmpfs owned by the image's user. Host network
    # and loopback addresses, so nothing is published off this machine.
    run(
        "docker", "run", "-d", "--name", name, "--network", "host",
        "--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
        "--tmpfs", "/var/lib/berth:rw,uid=65532,gid=65532,mode=0700",
        "-e", "BERTH_SIGNING_KEY=" + uuid.uuid4().hex + uuid.uuid4().hex,
        images[0],
        f"--grpc-addr=127.0.0.1:{grpc}", f"--http-addr=127.0.0.1:{http}",
        f"--web-addr=127.0.0.1:{web}",
    )
    try:
        deadline = time.monotonic() + 60
        while get(f"http://127.0.0.1:{http}/readyz")[0] != 200:
            state = json.loads(run("docker", "inspect", name).stdout)[0]["State"]
            assert state["Running"], "the scheduler container exited:\n" + run("docker", "logs", name).stderr
            assert time.monotonic() < deadline, run("docker", "logs", name).stderr
            time.sleep(0.2)
        assert get(f"http://127.0.0.1:{http}/healthz") == (200, "ok\n")
        status, metrics = get(f"http://127.0.0.1:{http}/metrics")
        assert status == 200 and "berth_ready 1" in metrics
        pid = json.loads(run("docker", "inspect", name).stdout)[0]["State"]["Pid"]
        proc = dict(
            line.split(":", 1) for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines()
        )
        assert proc["Uid"].split() == ["65532"] * 4, proc["Uid"]
        assert proc["Gid"].split() == ["65532"] * 4, proc["Gid"]
        assert int(proc["CapEff"].strip(), 16) == 0
        assert proc["NoNewPrivs"].strip() == "1"
    finally:
        run("docker", "rm", "-f", name, check=False)


def test_the_agent_image_runs_and_probes_devices(images):
    out = run("docker", "run", "--rm", "--network", "none", images[1], "probe", "--devices", "sim:2:sim-gpu", "-o", "json")
    report = json.loads(out.stdout)
    assert [d["class"] for d in report["devices"]] == ["sim-gpu", "sim-gpu"], report
    config = json.loads(run("docker", "image", "inspect", images[1]).stdout)[0]["Config"]
    assert "NVIDIA_DRIVER_CAPABILITIES=utility" in config["Env"]
