"""A real rtpengine (Debian ``rtpengine-daemon``) for tests, in userspace mode on loopback.

No kernel module (``--table=-1``), no root-only feature: its ng listener and its RTP
port range are free ports of 127.0.0.1, found at start, and its log goes to a file the
test can show when something fails.
"""

from __future__ import annotations

import random
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from harness import free_port, free_ports, ports_free

PING = b"vrgw-test-ping d7:command4:pinge"


@dataclass
class Rtpengine:
    """A running rtpengine: its ng address, its port range and its log."""

    proc: subprocess.Popen[bytes]
    ng_port: int
    port_min: int
    port_max: int
    log_path: Path

    @property
    def ng_address(self) -> str:
        return f"127.0.0.1:{self.ng_port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def free_range(size: int, window: tuple[int, int]) -> int:
    """The first port of ``size`` consecutive UDP ports free on 127.0.0.1 (even), inside
    ``window`` (elsewhere, tests take their ports from harness.free_ports)."""
    for _ in range(200):
        base = random.randrange(window[0], window[1] - size) & ~1
        if ports_free(range(base, base + size), [socket.SOCK_DGRAM]):
            return base
    raise RuntimeError(f"no {size} consecutive free UDP ports")


def start_rtpengine(
    workdir: Path,
    *,
    ports: int = 100,
    timeout: int = 60,
    window: tuple[int, int] | None = None,
) -> Rtpengine:
    """Start ``rtpengine`` in the foreground and wait until it answers an ng ping.

    ``timeout`` is its ``--timeout``: seconds without RTP before it drops a call; its
    RTP ports are taken inside ``window``, or from this worker's slice of the test
    ports (harness.free_ports) when none is given.
    A missing binary fails the test with the package to install.
    """
    binary = shutil.which("rtpengine")
    if binary is None:
        raise RuntimeError(
            "rtpengine not found: install Debian's rtpengine-daemon (scripts/install --test)"
        )
    workdir.mkdir(parents=True, exist_ok=True)
    ng_port = free_port()
    port_min = free_ports(ports, even=True) if window is None else free_range(ports, window)
    log_path = workdir / f"rtpengine-{ng_port}.log"
    cmd = [
        binary,
        "--config-file=none",
        "--table=-1",
        "--interface=127.0.0.1",
        f"--listen-ng=127.0.0.1:{ng_port}",
        f"--port-min={port_min}",
        f"--port-max={port_min + ports - 1}",
        f"--timeout={timeout}",
        "--foreground",
        "--log-stderr",
        "--log-level=6",
        f"--pidfile={workdir / f'rtpengine-{ng_port}.pid'}",
    ]
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(
            cmd, cwd=workdir, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True
        )
    daemon = Rtpengine(proc, ng_port, port_min, port_min + ports - 1, log_path)
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.settimeout(0.2)
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"rtpengine exited {proc.returncode}:\n{daemon.log()}")
            probe.sendto(PING, ("127.0.0.1", ng_port))
            try:
                if b"pong" in probe.recv(1000):
                    return daemon
            except OSError:
                time.sleep(0.1)
    finally:
        probe.close()
    daemon.stop()
    raise RuntimeError(f"rtpengine did not answer on {daemon.ng_address}:\n{daemon.log()}")
