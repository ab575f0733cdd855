"""Test harness: project paths, a real gateway process, a dumpcap capture on loopback.

A module of its own (not conftest.py): several test folders have a conftest, and
``from conftest import`` would pick whichever was imported first.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import json
import multiprocessing
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import forked_gateway
import pytest
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parent.parent


def _shared_dir() -> Path:
    """The project's ``shared/`` folder (real captures, read in place and never copied).

    It sits beside the checkout. A fresh clone made elsewhere (``git clone . "$(mktemp -d)"``,
    as CI does) finds it beside the local repository it was cloned from; ``VRGW_SHARED``
    names it outright. When none exists the loaders report the first place looked at.
    """
    candidates = [Path(env)] if (env := os.environ.get("VRGW_SHARED")) else []
    candidates.append(ROOT.parent / "shared")
    origin = subprocess.run(
        ["git", "-C", str(ROOT), "config", "--get", "remote.origin.url"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    origin = origin.removeprefix("file://")
    if origin and "://" not in origin and not re.match(r"[^/]+:", origin):  # a local path
        candidates.append((ROOT / origin).resolve().parent / "shared")
    return next((c for c in candidates if (c / "vectors").is_dir()), candidates[0])


VECTORS = _shared_dir() / "vectors"
H323_PEERS_BUILDER = _shared_dir() / "peers" / "h323" / "build-h323-peers"


@functools.cache
def h323_peers() -> Path:
    """The folder holding ``bin/simple`` (H323Plus) and ``bin/gnugk`` (GNU Gatekeeper).

    ``scripts/test`` builds them once into a cache before pytest runs (``shared/peers/
    h323/build-h323-peers``, minutes the first time); here the builder only finds that
    build again by the sources' checksum and prints where it is.
    """
    if env := os.environ.get("VRGW_H323_PEERS"):
        return Path(env)
    out = subprocess.run(
        [str(H323_PEERS_BUILDER)], capture_output=True, text=True, check=False, timeout=1800
    )
    if out.returncode != 0:
        raise RuntimeError(f"build-h323-peers failed:\n{out.stdout[-2000:]}{out.stderr[-2000:]}")
    folder = Path(out.stdout.strip().splitlines()[-1])
    if not (folder / "bin" / "simple").exists():
        raise RuntimeError(f"build-h323-peers printed {folder}, which has no bin/simple")
    return folder


sys.path.insert(0, str(ROOT / "tests" / "peers"))

# SIP timer T1 of the gateways tests start (vrgw run --sip-t1). A finished UDP transaction
# lingers 64*T1 (Timers H, J, L, M: 32 s at the RFC's 500 ms), and most interop tests end
# by waiting for the gateway to hold none: at 50 ms that wait is 3.2 s. The peers (SIPp,
# pjsua2) keep their RFC timers.
TEST_T1 = 0.05
RFC_T1 = 0.5  # RFC 3261 17.1.1.1, for tests that count messages on the wire
# On top of the longest timer: the poll interval, the 50 ms timer grid, a loaded machine.
IDLE_SLACK = 8.0


def batch(command: list[str]) -> list[str]:
    """``command`` at the lowest CPU priority (nice(1), 19): for CPU-bound work that keeps
    no real time (a C compiler, a fuzzer), so that the real-time tests running beside it
    on other workers (announcements, media timing, transaction timers) get the cores first
    and the batch work takes what they leave."""
    return ["nice", "-n", "19", *command]


def ports_free(
    ports: Iterable[int], kinds: Iterable[int] = (socket.SOCK_DGRAM, socket.SOCK_STREAM)
) -> bool:
    """Whether every port can be bound on 127.0.0.1 right now, for each socket kind."""
    kinds = tuple(kinds)
    try:
        for port in ports:
            for kind in kinds:
                with socket.socket(socket.AF_INET, kind) as s:
                    s.bind(("127.0.0.1", port))
    except OSError:
        return False
    return True


# The ports tests hand to their peers (and the RTP ports of pjsua2 agents, peers.py):
# below the relays' 20000-29999 (the example dialplan's range) and below the kernel's ephemeral
# range (32768-60999 here), where every bind to port 0 lands, so no process binding
# port 0 can take one between its picking and its peer's bind. Each pytest-xdist worker
# draws from its own slice: a port one picked was free to the kernel until its peer
# bound it, and another worker's pick had taken it (baresip then could not bind).
# A pytest run inside a test (the compiled core's) is given its parent's slice as
# VRGW_TEST_PORTS=FIRST-STOP, to share out among its own workers.
TEST_PORTS = range(10000, 20000)


def _worker_ports() -> range:
    """This process's slice of the test ports (all of them outside xdist)."""
    first, _, stop = os.environ.get("VRGW_TEST_PORTS", "").partition("-")
    ports = range(int(first), int(stop)) if stop else TEST_PORTS
    workers = max(1, int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))
    index = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")) % workers
    size = len(ports) // workers
    return range(ports.start + index * size, ports.start + (index + 1) * size)


_PORTS = _worker_ports()


def worker_ports() -> str:
    """This worker's slice as VRGW_TEST_PORTS takes it, for a pytest run a test starts."""
    return f"{_PORTS.start}-{_PORTS.stop}"


_next_port = _PORTS.start


def free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1 right now, from this worker's slice
    (a peer may open either on the number it is given)."""
    return free_ports(1)


def rtp_ports(count: int) -> tuple[int, int]:
    """The first and last of ``count`` consecutive ports of this worker's slice for media
    (a relay's ``port_min`` and ``port_max``, a pjsua agent's RTP ports), the first even
    for RTP/RTCP pairs."""
    first = free_ports(count, even=True)
    return first, first + count - 1


# tshark's answers about files that do not change (the real captures of shared/vectors,
# its own tables), kept for every process of the run and the runs after it.
_CACHE_HOME = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
TSHARK_CACHE = _CACHE_HOME / "vrgw-tests" / "tshark"


@functools.cache
def _tshark_identity() -> str:
    """The installed tshark (path, size and time of its program and dissector library):
    an upgrade of Debian's tshark replaces both, so its cached answers are not used."""
    program = Path(shutil.which("tshark") or "tshark").resolve()
    parts = [program]
    for pattern in ("/usr/lib/*/libwireshark.so.*", "/usr/lib/libwireshark.so.*"):
        parts += sorted(Path("/").glob(pattern.lstrip("/")))
    return "|".join(f"{p}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in parts if p.exists())


def tshark_output(*args: str, capture: Path | None = None, timeout: float = 120) -> bytes:
    """What ``tshark [-r capture] args...`` prints, run once for a given tshark, capture
    content and arguments, then read from TSHARK_CACHE.

    Each worker reads the same real captures (the SIP and H.323 vectors, the fuzzers'
    seeds, the SDP bodies), and a tshark start costs about 0.3 s of CPU loading its
    dissectors: measured with process accounting, 313 tshark runs took 14 % of the
    suite's CPU on six workers. For captures a test makes itself, run tshark directly.
    """
    command = ["tshark", *(["-r", str(capture)] if capture is not None else []), *args]
    key = hashlib.sha256(_tshark_identity().encode())
    key.update("\0".join(command).encode())
    if capture is not None:
        key.update(capture.read_bytes())
    cached = TSHARK_CACHE / key.hexdigest()
    with contextlib.suppress(FileNotFoundError):
        return cached.read_bytes()
    TSHARK_CACHE.mkdir(parents=True, exist_ok=True)
    # The workers all collect at once and ask for the same captures: one runs tshark,
    # the others wait for its answer (measured over a CI run that started with an empty
    # cache: 210 tshark runs without the lock, 149 with it, for 34 answers kept).
    with open(cached.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with contextlib.suppress(FileNotFoundError):
            return cached.read_bytes()
        out = subprocess.run(command, capture_output=True, check=True, timeout=timeout).stdout
        partial = cached.with_name(f"{cached.name}.{os.getpid()}")
        partial.write_bytes(out)
        partial.replace(cached)  # atomic: a reader without the lock gets all or nothing
    return out


@functools.cache
def _dissected_ports() -> frozenset[int]:
    """The UDP and TCP ports tshark decodes by number (``tshark -G decodes``).

    Its SIP dissector finds SIP on other ports by heuristics, which a protocol registered
    for the port overrides: a gateway given 17500 had its SIP read as Dropbox LAN sync,
    and a test looking for its 480s in the capture found none.
    """
    out = tshark_output("-G", "decodes").decode()
    rows = (line.split("\t") for line in out.splitlines())
    return frozenset(
        int(row[1])
        for row in rows
        if len(row) >= 2 and row[0] in ("udp.port", "tcp.port") and row[1].isdigit()
    )


def free_ports(count: int, *, even: bool = False) -> int:
    """The first of ``count`` consecutive ports free for UDP and TCP, from this worker's
    slice, in turn: a port is handed out again only after the slice has wrapped around.
    ``even``: the first is even (RFC 3550 11: RTP on an even port, RTCP on the next).
    Ports tshark would decode as another protocol are passed over: a range that holds one,
    or a port in use, is tried again from the port after it."""
    global _next_port
    decoded = _dissected_ports()
    first, scanned = _next_port, 0
    while scanned <= len(_PORTS):
        if even and first & 1:
            first, scanned = first + 1, scanned + 1
        if first + count > _PORTS.stop:
            first, scanned = _PORTS.start, scanned + _PORTS.stop - first
            continue
        ports = range(first, first + count)
        unusable = [p for p in ports if p in decoded or not ports_free((p,))]
        if not unusable:
            _next_port = first + count
            return first
        skip = unusable[-1] + 1 - first
        first, scanned = first + skip, scanned + skip
    raise RuntimeError(f"no {count} free ports in {_PORTS}")


# Test gateways are forked from a fork server (multiprocessing's, one per pytest worker)
# that has imported the gateway: a start then costs about 0.2 s of CPU instead of 1.05 s
# for a new interpreter (measured), and the suite starts about 90 of them. The imports
# are those of `python -m gateway run`, the holidays' country tables included (their
# registry imports all of them at the first lookup, which every start makes). A fork
# server, not a fork of the worker: it holds none of the worker's sockets, threads or
# state, only the imports. `start_gateway(command=True)` runs the command itself. A
# script (not pytest) that starts gateways through the harness keeps its own code under
# `if __name__ == "__main__":`, as multiprocessing asks: each fork imports it again.
# The admin API and what comes with it are imported by a gateway as it starts (app.py
# imports gateway.http.api only when the gateway has an HTTP port; uvicorn imports its
# protocol modules by name and FastAPI pydantic.v1 for a compatibility check): preloaded
# too, a forked start takes 0.18-0.23 CPU-s instead of 0.42-0.55 (measured from /proc).
_FORKS = multiprocessing.get_context("forkserver")
_FORKS.set_forkserver_preload(
    [
        "gateway.cli",
        "gateway.app",
        "gateway.http.api",
        "holidays.countries",
        "uvicorn.protocols.http.auto",
        "uvicorn.protocols.websockets.auto",
        "pydantic.v1",
    ]
)


class ForkedProcess:
    """A forked test gateway behind the ``subprocess.Popen`` methods the tests use."""

    def __init__(self, process: multiprocessing.process.BaseProcess) -> None:
        self._process = process

    @property
    def pid(self) -> int:
        assert self._process.pid is not None
        return self._process.pid

    @property
    def returncode(self) -> int | None:
        """The exit code, or minus the signal that ended it, as Popen's."""
        return self._process.exitcode

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        self._process.join(timeout)
        code = self._process.exitcode
        if code is None:
            raise subprocess.TimeoutExpired(f"forked gateway {self.pid}", timeout or 0.0)
        return code

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class GatewayNotAnswering(TimeoutError):
    """The gateway's admin API did not answer in time; the message says where it was."""


@dataclass
class GatewayProcess:
    """A running ``vrgw run`` on loopback ports, with its HTTP API at hand."""

    proc: subprocess.Popen[bytes] | ForkedProcess
    sip_port: int
    http_port: int
    log_path: Path
    dialplan: Path
    sip_t1: float = RFC_T1
    env: dict[str, str] = field(default_factory=dict)

    def http(self, path: str, method: str = "GET") -> Any:
        req = urllib.request.Request(f"http://127.0.0.1:{self.http_port}{path}", method=method)
        body = self._answer(req)
        return json.loads(body) if body.startswith((b"{", b"[")) else body.decode()

    def http_json(self, path: str, method: str, body: object) -> Any:
        """Send a JSON body (PUT /api/v1/clock, ...) and decode the JSON answer."""
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.http_port}{path}",
            data=json.dumps(body).encode(),
            method=method,
            headers={"Content-Type": "application/json"},
        )
        return json.loads(self._answer(req))

    def _answer(self, req: urllib.request.Request) -> bytes:
        """The body of the API's answer to ``req``. A gateway that takes more than 5 s
        to answer fails with where it stood: its process state and, after a SIGUSR1
        (the gateway writes its threads' stacks to its log), the end of its log."""
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                body: bytes = resp.read()
                return body
        except (TimeoutError, urllib.error.URLError) as exc:  # an HTTPError's reason is text
            timed_out = isinstance(exc, TimeoutError) or isinstance(exc.reason, TimeoutError)
            if not timed_out or self.proc.poll() is not None:
                raise
            raise GatewayNotAnswering(
                f"{req.get_method()} {req.full_url}: {exc}\n{self.stall_report()}"
            ) from exc

    def stall_report(self) -> str:
        """The process's scheduler state and the stacks it writes on SIGUSR1, with the
        last lines of its log before them."""
        pid = self.proc.pid
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            wchan = Path(f"/proc/{pid}/wchan").read_text()
        except OSError as exc:
            state, wchan = "?", str(exc)
        self.proc.send_signal(signal.SIGUSR1)
        time.sleep(0.5)
        tail = "\n".join(self.log().splitlines()[-80:])
        return f"gateway {pid}: state {state}, kernel wait {wchan or '-'}\n{tail}"

    def status(self) -> dict[str, Any]:
        result: dict[str, Any] = self.http("/api/v1/status")
        return result

    def metric(self, name: str, **labels: str) -> float | None:
        """One sample of ``/metrics`` (parsed as Prometheus text), None when absent."""
        for family in text_string_to_metric_families(self.http("/metrics")):
            for sample in family.samples:
                wanted = all(sample.labels.get(k) == v for k, v in labels.items())
                if sample.name == name and wanted:
                    return float(sample.value)
        return None

    def relaying_call(self, packets: int) -> dict[str, Any] | None:
        """A connected call whose first stream carried ``packets`` RTP packets both ways
        (the relay's own counters, ``/api/v1/calls``), or None."""
        for call in self.http("/api/v1/calls")["active"]:
            media = call["media"]
            if call["state"] == "connected" and media and media["streams"]:
                stream = media["streams"][0]
                if min(stream[d]["rtp_packets"] for d in ("a_to_b", "b_to_a")) > packets:
                    return dict(call)
        return None

    def idle_within(self) -> float:
        """How long after its last message the gateway may rightly hold transactions.

        UDP transactions linger 64*T1 once done (Timers D, H, J, L, M, RFC 3261 17 and
        RFC 6026) and T4 = 10*T1 in Timers I and K.
        """
        return 64 * self.sip_t1 + IDLE_SLACK

    def wait_idle(self, timeout: float | None = None) -> dict[str, Any]:
        """Wait until no call, transaction, dialog or relay port is left; return the status.

        It returns as soon as the gateway is idle; after ``timeout`` (default: the
        gateway's own :meth:`idle_within`) it returns what is still held, for the caller
        to fail on.
        """
        deadline = time.monotonic() + (self.idle_within() if timeout is None else timeout)
        status = self.status()
        while time.monotonic() < deadline:
            status = self.status()
            if not any(
                status[k]
                for k in (
                    "calls",
                    "transactions",
                    "dialogs",
                    "media_sessions",
                    "media_ports_in_use",
                )
            ):
                return status
            time.sleep(0.2)
        return status

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_gateway(
    tmp_path: Path,
    dialplan: Path,
    *,
    sip_port: int | None = None,
    extra: list[str] | None = None,
    env: dict[str, str] | None = None,
    sip_t1: float = TEST_T1,
    command: bool = False,
) -> GatewayProcess:
    """Start ``vrgw run`` and wait for its health check.

    The gateway runs on ``sip_t1`` (:data:`TEST_T1` unless a test needs the RFC's). It is
    forked from the worker's fork server (:data:`_FORKS`), or with ``command`` started
    as ``python -m gateway run``, a new interpreter, as a user starts it.
    """
    sip_port = sip_port or free_port()
    http_port = free_port()
    log_path = tmp_path / f"vrgw-{sip_port}.log"
    argv = [
        "run",
        "--dialplan",
        str(dialplan),
        "--sip-port",
        str(sip_port),
        "--http-port",
        str(http_port),
        "--sip-t1",
        str(sip_t1),
        "--h323-port",
        "0",  # free ports: tests run side by side
        "--ras-port",
        "0",
        # each gateway its own call records (a later one given the same file reads them)
        "--records",
        str(tmp_path / f"records-{sip_port}.sqlite"),
        *(extra or []),
    ]
    full_env = {**os.environ, **(env or {})}
    proc: subprocess.Popen[bytes] | ForkedProcess
    if command:
        with log_path.open("wb") as log_file:
            proc = subprocess.Popen(
                [sys.executable, "-m", "gateway", *argv],
                cwd=ROOT,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env=full_env,
                start_new_session=True,
            )
    else:
        log_path.write_bytes(b"")  # there to read at once, whatever the fork reaches
        # daemon: a worker that ends with one still running stops it rather than wait
        forked = _FORKS.Process(
            target=forked_gateway.run,
            args=(argv, str(log_path), full_env, str(ROOT)),
            name=f"vrgw-{sip_port}",
            daemon=True,
        )
        forked.start()
        proc = ForkedProcess(forked)
    gw = GatewayProcess(proc, sip_port, http_port, log_path, dialplan, sip_t1)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log = gw.log()
            if "address already in use" in log:  # picked free, taken before the bind: by whom
                log += "".join(_holders(port) for port in (sip_port, http_port))
            raise RuntimeError(f"gateway exited {proc.returncode}:\n{log}")
        try:
            gw.http("/healthz")
            return gw
        except OSError:
            time.sleep(0.1)
    stop_gateway(gw)
    raise RuntimeError(f"gateway did not come up:\n{gw.log()}")


def _holders(port: int) -> str:
    """The sockets on ``port`` now, with their processes (``ss``), for a report."""
    try:
        found = subprocess.run(
            ["ss", "-Htuanp", f"( sport = :{port} )"], capture_output=True, text=True, check=False
        )
    except OSError as exc:  # no iproute2: the report goes without
        return f"\nsockets on port {port}: ss: {exc}"
    return f"\nsockets on port {port} now:\n{found.stdout.strip() or found.stderr.strip()}"


def records_file(gw: GatewayProcess) -> Path:
    """The SQLite file of a gateway's call records (one per gateway, by its SIP port)."""
    return gw.log_path.parent / f"records-{gw.sip_port}.sqlite"


def stop_gateway(gw: GatewayProcess) -> int:
    """SIGTERM, then SIGKILL if it lingers; returns the exit code."""
    if gw.proc.poll() is None:
        gw.proc.send_signal(signal.SIGTERM)
        try:
            gw.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(gw.proc.pid, signal.SIGKILL)
            gw.proc.wait()
    return gw.proc.returncode


@pytest.fixture
def gateway_factory(tmp_path: Path) -> Iterator[Any]:
    """Start gateways on demand; every one is stopped (and must stop cleanly) at the end."""
    started: list[GatewayProcess] = []

    def factory(dialplan: Path, **kwargs: Any) -> GatewayProcess:
        gw = start_gateway(tmp_path, dialplan, **kwargs)
        started.append(gw)
        return gw

    yield factory
    for gw in started:
        code = stop_gateway(gw)
        assert code == 0, f"gateway exited with {code}:\n{gw.log()[-4000:]}"
        assert "Traceback" not in gw.log(), gw.log()[-4000:]


def explain(**parts: object) -> str:
    """An assertion message of named parts (a peer's output, the gateway's log tail), one
    section each, as text: pytest shortens the repr of any other message object to a
    line, and a CI run's failure report is often its only record of the cause."""
    return "\n".join(f"--- {name} ---\n{text}" for name, text in parts.items())


def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``predicate`` every 0.1 s until it gives something true; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@dataclass
class Capture:
    """A dumpcap capture on loopback, read back with tshark's dissectors."""

    proc: subprocess.Popen[bytes]
    path: Path

    def stop(self) -> None:
        """Stop the capture once it has written what it holds; a capture that will not
        stop fails the test rather than leave a file cut short to be read as evidence."""
        if self.proc.poll() is None:
            time.sleep(0.5)  # let the last packets reach the ring buffer
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise RuntimeError(f"dumpcap did not stop within 30 s: {self.path}") from None

    def fields(
        self,
        display_filter: str,
        *names: str,
        decode_as: list[str] | None = None,
        first_only: bool = False,
    ) -> list[list[str]]:
        """Rows of the given fields for the packets matching a display filter
        (``first_only``: a field's first occurrence in a packet, not all of them)."""
        cmd = ["tshark", "-n", "-r", str(self.path), "-Y", display_filter, "-T", "fields"]
        if first_only:
            cmd += ["-E", "occurrence=f"]
        for d in decode_as or []:
            cmd += ["-d", d]
        for n in names:
            cmd += ["-e", n]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=120).stdout
        return [line.split("\t") for line in out.splitlines() if line]

    def problems(self, decode_as: list[str] | None = None, display_filter: str = "") -> list[str]:
        """Expert-info entries of severity error (malformed packets among them)."""
        flt = "_ws.expert.severity >= 8388608 || _ws.malformed"  # error (0x00800000) and up
        if display_filter:
            flt = f"({display_filter}) && ({flt})"
        cmd = ["tshark", "-n", "-r", str(self.path), "-Y", flt]
        for d in decode_as or []:
            cmd += ["-d", d]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=120).stdout
        return out.splitlines()


_captures: list[Capture] = []


@pytest.fixture(autouse=True)
def _stop_captures() -> Iterator[None]:
    """Whatever a test does, no capture it started outlives it."""
    yield
    while _captures:
        _captures.pop().stop()


def _capturing(pid: int) -> bool:
    """Whether dumpcap ``pid`` holds a packet socket bound to every protocol (ETH_P_ALL,
    in /proc/net/packet) and sleeps (in its capture loop, past the filter's set-up)."""
    try:
        sockets = {os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")}
        rows = [line.split() for line in Path("/proc/net/packet").read_text().splitlines()[1:]]
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    bound = any(row[3] == "0003" and f"socket:[{row[8]}]" in sockets for row in rows)
    return bound and state == "S"


def start_capture(path: Path, ports: list[int], *, interface: str = "lo") -> Capture:
    """Capture traffic on the given UDP/TCP ports (every port when none is given) of
    ``interface`` (loopback unless a test made its own) into ``path``.

    dumpcap (tshark's capture engine, from the same package) writes the file itself: a
    tshark in front of it loads every dissector first and relays the stop, and under a
    loaded six-worker run one such capture stopped with no packet written at all.
    """
    bpf = ["-f", " or ".join(f"port {p}" for p in ports)] if ports else []
    proc = subprocess.Popen(
        ["dumpcap", "-q", "-i", interface, *bpf, "-w", str(path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    # dumpcap says "Capturing on 'Loopback: lo'" (or the interface's name) on stderr
    # *before* it opens its packet socket and sets the filter (strace shows the write
    # first): a test that sent at once lost its packets when dumpcap was slow to go on (a
    # nine-worker run's capture held none of a whole call). It captures once it has a
    # packet socket bound to every protocol and sleeps in its capture loop.
    deadline = time.monotonic() + 20
    assert proc.stderr is not None
    os.set_blocking(proc.stderr.fileno(), False)
    seen = b""
    while time.monotonic() < deadline:
        chunk = proc.stderr.read() or b""
        seen += chunk
        if b"Capturing on" in seen and _capturing(proc.pid):
            break
        if proc.poll() is not None:
            raise RuntimeError(f"dumpcap failed: {seen.decode(errors='replace')}")
        time.sleep(0.02)
    else:
        proc.kill()
        raise RuntimeError(f"dumpcap did not start capturing: {seen.decode(errors='replace')}")
    capture = Capture(proc, path)
    _captures.append(capture)
    return capture


def dialplan_variant(tmp_path: Path, source: Path, name: str, edits: list[tuple[str, str]]) -> Path:
    """A copy of a dialplan (and its secrets file) with text edits, each applied once."""
    text = source.read_text()
    for old, new in edits:
        assert text.count(old) == 1, f"edit target not unique in {source.name}: {old!r}"
        text = text.replace(old, new)
    folder = tmp_path / "dialplans"
    folder.mkdir(exist_ok=True)
    secrets = source.with_suffix(".secrets")
    if secrets.exists():
        shutil.copy(secrets, folder / secrets.name)
    path = folder / f"{name}.yaml"
    path.write_text(text)
    return path


LOADTEST = ROOT / "dialplans" / "loadtest.yaml"
# The station address in loadtest.yaml, where bench/ runs SIPp's uas. A test moves it to
# a free port of its own, so that two runs on one host never share a station.
LOADTEST_STATION = 'address: "127.0.0.1:5070"'


def loadtest_variant(
    tmp_path: Path, name: str, station_port: int, edits: list[tuple[str, str]] | None = None
) -> Path:
    """A copy of loadtest.yaml with its station on ``station_port`` (and more edits)."""
    station = (LOADTEST_STATION, f'address: "127.0.0.1:{station_port}"')
    return dialplan_variant(tmp_path, LOADTEST, name, [station, *(edits or [])])


@contextlib.contextmanager
def sipp_station(
    port: int, cwd: Path, *, host: str = "127.0.0.1", extra: Iterable[str] = ()
) -> Iterator[subprocess.Popen[bytes]]:
    """SIPp's built-in ``uas`` answering every call on ``host:port`` while the block runs.

    SIPp has no "ready" signal: a short pause lets it bind before the first INVITE.
    """
    assert shutil.which("sipp"), "SIPp is missing: run scripts/install --test (sip-tester)"
    uas = subprocess.Popen(
        ["sipp", "-sn", "uas", "-i", host, "-p", str(port), "-nostdin", *extra],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=cwd,
    )
    try:
        time.sleep(0.3)
        yield uas
    finally:
        uas.send_signal(signal.SIGTERM)
        try:
            uas.wait(timeout=5)
        except subprocess.TimeoutExpired:
            uas.kill()
            uas.wait()


def sipp_calls(
    target: str,
    service: str,
    calls: int,
    cwd: Path,
    *,
    source: str = "127.0.0.1",
    rate: float | None = None,
    timeout: float = 20.0,
    recv_timeout: float = 5.0,
    extra: Iterable[str] = (),
) -> subprocess.CompletedProcess[str]:
    """SIPp's built-in ``uac`` placing ``calls`` calls to ``service`` at ``target``
    (host:port) from ``source``, at ``rate`` a second (default: all within a second);
    SIPp's exit code is 0 only when every call completed within ``timeout`` seconds, no
    answer having taken longer than ``recv_timeout``."""
    assert shutil.which("sipp"), "SIPp is missing: run scripts/install --test (sip-tester)"
    return subprocess.run(
        [
            *("sipp", "-sn", "uac", "-s", service, target, "-i", source),
            *("-p", str(free_port()), "-m", str(calls), "-r", str(rate or calls), "-nostdin"),
            *("-timeout", f"{timeout:.0f}s", "-timeout_error"),
            *("-recv_timeout", str(int(recv_timeout * 1000))),
            *extra,
        ],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout * 2,
        check=False,
    )


EXAMPLE_DOMAIN = "visio.manche.example"  # the domain of dialplans/example.yaml


def example_secrets() -> dict[str, str]:
    """The demo logins and passwords of ``dialplans/example.secrets``."""
    out = {}
    for line in (ROOT / "dialplans" / "example.secrets").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, value = line.partition(":")
            out[name.strip()] = value.strip()
    return out


def pjsua_account(
    user: str, role: str, registrar: str, domain: str = EXAMPLE_DOMAIN, **extra: Any
) -> dict[str, Any]:
    """A pjsua2 agent's account (tests/peers/pjagent.py) for a login of the example
    dialplan, registering at ``registrar`` (a SIP URI) with its demo password."""
    return {
        "id": role,
        "uri": f"sip:{user}@{domain}",
        "registrar": registrar,
        "register": True,
        "username": user,
        "password": example_secrets()[user],
        "realm": "*",
        "role": role,
        **extra,
    }
