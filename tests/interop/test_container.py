"""Acceptance: the Dockerfile builds with podman on a Debian base made here, the container
starts, reports healthy, and a SIPp call crosses the gateway inside it.

No image registry is reachable: the base image ``debian:bookworm-slim`` is made from
Debian's packages with ``mmdebstrap`` and imported under that name. On these virtual
machines podman needs runc and the cgroupfs manager (../shared/PEERS.md). A machine
without podman skips this test, saying so; ``scripts/install --test`` installs it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import ROOT, free_port, loadtest_variant, sipp_calls, sipp_station, wait_for

pytestmark = [
    pytest.mark.interop,
    pytest.mark.long,  # an image build: about a minute, more on a cold machine
    pytest.mark.skipif(
        shutil.which("podman") is None or shutil.which("mmdebstrap") is None,
        reason="podman and mmdebstrap are missing (scripts/install --test installs them)",
    ),
]

BASE = "docker.io/library/debian:bookworm-slim"
DEPS = "localhost/vrgw-test-deps"
PODMAN = ["podman", "--runtime", "/usr/sbin/runc", "--cgroup-manager=cgroupfs"]
LIMITS = ["--ulimit", "nofile=20000:20000", "--ulimit", "nproc=4096:4096"]
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")


def podman(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*PODMAN, *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def ensure_base_image(workdir: Path) -> None:
    """The Debian base, made from Debian's packages unless podman already has it."""
    if podman("image", "exists", BASE).returncode == 0:
        return
    rootfs = workdir / "rootfs.tar"
    made = subprocess.run(
        ["mmdebstrap", "--variant=minbase", "bookworm", str(rootfs)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert made.returncode == 0, made.stderr[-3000:]
    imported = podman("import", str(rootfs), BASE)
    assert imported.returncode == 0, imported.stderr
    rootfs.unlink()


def build(*args: str) -> None:
    command = ["build", "--format", "docker", "--network", "host", *LIMITS, *args]
    if HOST_CA.exists():  # a network that inspects TLS: pip inside the build needs its CA
        command += [
            "-v",
            f"{HOST_CA}:/run/build-ca.crt:ro",
            "--build-arg",
            "BUILD_CA=/run/build-ca.crt",
        ]
    built = podman(*command, str(ROOT), timeout=900)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]


def image_id(name: str) -> str:
    return podman("image", "inspect", "--format", "{{.Id}}", name).stdout.strip()


@pytest.fixture
def image(tmp_path: Path) -> Iterator[str]:
    """The Dockerfile's image, built whole; its dependencies stage stays tagged between
    runs (as a developer's podman keeps it), so a run after a change of the sources
    rebuilds only the layers that hold them. The dependencies image of an older
    dependency list (the stage copies only pyproject.toml's [project] dependencies) is
    removed once replaced."""
    ensure_base_image(tmp_path)
    before = image_id(DEPS)
    build("--target", "deps", "-t", DEPS)
    if before and before != image_id(DEPS):
        podman("rmi", before)  # refused while another run's image still stands on it
    tag = f"localhost/vrgw-test-{uuid.uuid4().hex[:8]}"
    build("-t", tag)
    yield tag
    podman("rmi", "--force", tag)


def test_the_container_builds_runs_healthy_and_carries_a_call(image: str, tmp_path: Path) -> None:
    inspect = podman(
        "image", "inspect", "--format", "{{.Config.User}} {{.Config.Healthcheck.Test}}", image
    )
    user, _, check = inspect.stdout.strip().partition(" ")
    assert user == "vrgw" and "healthz" in check, inspect.stdout  # non-root, health on /healthz

    # The dialplan and its folder readable by the container's own user.
    uas_port = free_port()
    conf = tmp_path / "etc-vrgw"
    conf.mkdir()
    shutil.copy(loadtest_variant(tmp_path, "container", uas_port), conf / "dialplan.yaml")
    os.chmod(conf, 0o755)
    os.chmod(conf / "dialplan.yaml", 0o644)
    sip_port, http_port = free_port(), free_port()
    name = f"vrgw-{uuid.uuid4().hex[:8]}"
    started = podman(
        "run", "--detach", "--name", name, "--network", "host", *LIMITS,
        "-v", f"{conf}:/etc/vrgw:ro", "-e", f"VRGW_HTTP_PORT={http_port}", image,
        "--dialplan", "/etc/vrgw/dialplan.yaml", "--sip-host", "127.0.0.1",
        "--sip-port", str(sip_port), "--h323-port", "0", "--ras-port", "0",
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    try:
        # The image's own HEALTHCHECK (on /healthz) says healthy.
        def healthy() -> bool:
            return podman("healthcheck", "run", name).returncode == 0

        wait_for(healthy, 60, "the container's health check")
        with sipp_station(uas_port, tmp_path):
            call = sipp_calls(
                f"127.0.0.1:{sip_port}", "bench", 1, tmp_path, timeout=30, recv_timeout=10
            )
        logs = podman("logs", name).stdout + podman("logs", name).stderr
        assert call.returncode == 0, call.stderr[-2000:] + logs[-3000:]
        assert "ended (completed, station bench-uas" in logs, logs[-3000:]
    finally:
        stopped = podman("stop", "--time", "10", name)
        exit_code = podman("inspect", "--format", "{{.State.ExitCode}}", name).stdout.strip()
        podman("rm", "--force", name)
    assert stopped.returncode == 0 and exit_code == "0", (stopped.stderr, exit_code)
