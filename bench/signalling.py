#!/usr/bin/env python3
"""Signalling load benchmark: SIPp calls through vrgw and through Sippy B2BUA, side by side.

For each system under test (SUT) the harness starts the SUT, then climbs a ladder of call
rates. Each step starts a SIPp callee (the "station", bench/sipp/uas.xml) and a SIPp caller
(bench/sipp/uac.xml) that places N calls through the SUT at the step's rate, and reads the
SUT's CPU time from /proc/PID/stat around the step. The figure to compare is the SUT's CPU
time per call: SIPp runs on the same cores, so the achieved rate also measures SIPp and the
rest of the machine.

Run from the project root with the project venv:
    .venv/bin/python bench/signalling.py --help
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import dataclasses
import enum
import errno
import json
import logging
import os
import platform
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = ROOT / ".venv" / "bin"
SCENARIO_DIR = ROOT / "bench" / "sipp"
DEFAULT_RESULTS_DIR = ROOT / "bench" / "results"
DEFAULT_DIALPLAN = ROOT / "dialplans" / "loadtest.yaml"

DEFAULT_RATES = (50, 100, 200, 300, 400, 600, 800, 1000, 1500, 2000)
SUT_NAMES = ("vrgw", "sippy")
# The service dialled by the caller: loadtest.yaml routes sip:bench@... to the station.
SERVICE = "bench"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PR_SET_PDEATHSIG = 1

log = logging.getLogger("bench.signalling")


class BenchError(Exception):
    """A precondition failed or a peer misbehaved; the message says which and what to do."""


class UacScenario(enum.Enum):
    """Which SIPp caller scenario drives the calls."""

    # bench/sipp/uac.xml: ignores a 180 that arrives after the 200 (legal UDP reordering).
    TOLERANT = "tolerant"
    # SIPp's built-in "uac": a late 180 fails the call.
    BUILTIN = "builtin"


@dataclass(frozen=True)
class Ports:
    """The UDP ports of one run (127.0.0.1 only), and the SUT's HTTP port (vrgw)."""

    sut: int
    uas: int
    uac: int
    http: int


@dataclass(frozen=True)
class BenchConfig:
    """Everything one run needs; built from the command line."""

    suts: tuple[str, ...]
    rates: tuple[int, ...]
    calls: int
    reference_rate: int
    warmup_calls: int
    hold_ms: int
    ports: Ports
    saturation: float
    min_rate_ratio: float
    uac_scenario: UacScenario
    recv_timeout_ms: int
    idle_seconds: float
    step_gap_seconds: float
    results_dir: Path
    dialplan: Path
    vrgw_args: tuple[str, ...]
    keep_work_dir: bool
    # CPUs of the SUT and of SIPp (None: both float over every core, as the scheduler likes)
    sut_cpus: frozenset[int] | None = None
    sipp_cpus: frozenset[int] | None = None
    rounds: int = 3  # measurements at the reference rate per SUT, interleaved across SUTs


@dataclass(frozen=True)
class SippStats:
    """What one SIPp run reports in its -trace_stat file (last, cumulative row)."""

    created: int
    successful: int
    failed: int
    elapsed_s: float
    retransmissions: int
    response_time_ms: float


@dataclass(frozen=True)
class StepResult:
    """One rung of the rate ladder, measured on one SUT."""

    offered_rate: int
    calls: int
    successful: int
    failed: int
    callee_failed: int
    achieved_rate: float
    wall_s: float
    sut_cpu_ms: float
    cpu_ms_per_call: float | None
    cpu_ms_per_call_net_of_idle: float | None
    calls_per_cpu_s: float | None
    sut_core_load: float
    sipp_cpu_ms: float
    retransmissions: int
    response_time_ms: float
    late_or_missing_180: int
    uac_exit_code: int
    uas_exit_code: int

    @property
    def clean(self) -> bool:
        """True when every call succeeded on both the caller and the callee leg."""
        return self.failed == 0 and self.callee_failed == 0 and self.successful == self.calls


@dataclass(frozen=True)
class SutResult:
    """The ladder of one SUT and the figures drawn from it."""

    name: str
    command: tuple[str, ...]
    version: str | None
    idle_cpu_ms_per_s: float
    steps: tuple[StepResult, ...]
    stop_reason: str
    # the reference-rate step of the ladder, then one per later round (a fresh SUT each)
    reference_rounds: tuple[StepResult, ...] = ()

    def max_clean(self) -> StepResult | None:
        """The clean step with the highest achieved rate, if any."""
        clean = [s for s in self.steps if s.clean]
        return max(clean, key=lambda s: s.achieved_rate) if clean else None

    def at_rate(self, rate: int) -> StepResult | None:
        """The step run at the given offered rate, if the ladder reached it."""
        return next((s for s in self.steps if s.offered_rate == rate), None)


# --------------------------------------------------------------------------------------
# Processes: every child gets its own process group and dies with the harness.


def _die_with_parent() -> None:
    """Runs in the child before exec: SIGKILL it if the harness dies without cleaning up."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _child_setup(cpus: frozenset[int] | None) -> Callable[[], None]:
    """What a child runs before exec: die with the harness, and stay on its CPUs if told.

    The affinity is set before exec so that every thread the program starts inherits it
    (Sippy starts several).
    """

    def setup() -> None:
        _die_with_parent()
        if cpus is not None:
            os.sched_setaffinity(0, cpus)

    return setup


class ProcessRegistry:
    """Starts children in their own process groups and guarantees they are all killed."""

    def __init__(self) -> None:
        self._procs: list[tuple[subprocess.Popen[bytes], float]] = []

    def start(
        self,
        argv: Sequence[str],
        *,
        cwd: Path,
        stdout: TextIO | int,
        stderr: TextIO | int,
        env: dict[str, str] | None = None,
        grace_s: float = 2.0,
        cpus: frozenset[int] | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start argv; grace_s is how long SIGTERM is given before SIGKILL at stop time."""
        log.debug("starting %s", " ".join(argv))
        proc = subprocess.Popen(
            list(argv),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            env=env,
            start_new_session=True,
            preexec_fn=_child_setup(cpus),
        )
        self._procs.append((proc, grace_s))
        return proc

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        """SIGTERM the child's process group, then SIGKILL it after the grace period."""
        grace = next((g for p, g in self._procs if p is proc), 2.0)
        self._procs = [(p, g) for p, g in self._procs if p is not proc]
        _kill_group(proc, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=grace)
        # Even when the leader is gone, helpers it forked may still hold the group.
        _kill_group(proc, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)

    def stop_all(self) -> None:
        """Stop every child still registered, newest first."""
        while self._procs:
            self.stop(self._procs[-1][0])


def _kill_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    """Signal the process group led by proc; a group already gone is not an error."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def _raise_on_signal(signum: int, frame: FrameType | None) -> None:
    """Signals unwind the stack like Ctrl-C, so every finally block runs."""
    raise KeyboardInterrupt(f"signal {signum}")


# --------------------------------------------------------------------------------------
# /proc readings


def _stat_fields(pid: int) -> list[str]:
    """Fields of /proc/PID/stat after the command name (which may hold spaces)."""
    raw = Path(f"/proc/{pid}/stat").read_text()
    return raw[raw.rindex(")") + 2 :].split()


def process_tree_ticks(root_pid: int) -> int:
    """CPU clock ticks (user+system) of root_pid, its live descendants and reaped children."""
    children: dict[int, list[int]] = {}
    ticks: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        try:
            fields = _stat_fields(pid)
        except (FileNotFoundError, ProcessLookupError, ValueError):
            continue  # exited while we were scanning
        # fields[1] = ppid; [11..14] = utime, stime, cutime, cstime (proc(5), 1-based 14-17)
        children.setdefault(int(fields[1]), []).append(pid)
        ticks[pid] = sum(int(f) for f in fields[11:15])
    if root_pid not in ticks:
        raise BenchError(f"process {root_pid} is gone")
    total, todo = 0, [root_pid]
    while todo:
        pid = todo.pop()
        total += ticks.get(pid, 0)
        todo.extend(children.get(pid, ()))
    return total


def udp_port_bound(port: int) -> bool:
    """True when some socket is bound to this local UDP port (IPv4 or IPv6)."""
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        with contextlib.suppress(FileNotFoundError):
            for line in Path(table).read_text().splitlines()[1:]:
                local = line.split()[1]
                if int(local.rsplit(":", 1)[1], 16) == port:
                    return True
    return False


def check_ports_free(udp_ports: Sequence[int], tcp_ports: Sequence[int]) -> None:
    """Fail with a clear message when another program holds one of our ports."""
    busy: list[str] = []
    for kind, ports in ((socket.SOCK_DGRAM, udp_ports), (socket.SOCK_STREAM, tcp_ports)):
        for port in (p for p in ports if p > 0):  # vrgw takes --http-port -1 for "off"
            with socket.socket(socket.AF_INET, kind) as sock:
                try:
                    sock.bind(("127.0.0.1", port))
                except OSError as exc:
                    if exc.errno != errno.EADDRINUSE:
                        raise
                    busy.append(f"{'udp' if kind == socket.SOCK_DGRAM else 'tcp'}/{port}")
    if busy:
        raise BenchError(
            f"ports already in use on 127.0.0.1: {', '.join(busy)}; stop what holds them "
            "or pick others with --sut-port/--uas-port/--uac-port/--http-port"
        )


def wait_for_udp_port(
    proc: subprocess.Popen[bytes], port: int, what: str, log_file: Path, timeout_s: float = 20.0
) -> None:
    """Wait until proc has bound the UDP port; fail early if it exits."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(
                f"{what} exited with code {proc.returncode} before binding udp/{port}; "
                f"its output ends with:\n{tail(log_file)}"
            )
        if udp_port_bound(port):
            return
        time.sleep(0.05)
    raise BenchError(f"{what} did not bind udp/{port} within {timeout_s:.0f} s")


def wait_until_quiet(
    pid: int, window_s: float = 0.5, max_load: float = 0.1, timeout_s: float = 20.0
) -> None:
    """Wait until the process tree uses under max_load of a core over one window."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        before = process_tree_ticks(pid)
        time.sleep(window_s)
        if (process_tree_ticks(pid) - before) / CLOCK_TICKS < max_load * window_s:
            return
    log.warning("process %d still busy after %.0f s; measuring anyway", pid, timeout_s)


def tail(path: Path, lines: int = 20) -> str:
    """The last lines of a log file, for error messages."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no output)"


# --------------------------------------------------------------------------------------
# SIPp output files


def parse_sipp_stats(path: Path) -> SippStats:
    """Read the cumulative counters from the last row of a SIPp -trace_stat file."""
    if not path.exists():
        raise BenchError(f"SIPp wrote no statistics file {path}")
    lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
    if len(lines) < 2:
        raise BenchError(f"SIPp statistics file {path} has no data row")
    row = dict(zip(lines[0].split(";"), lines[-1].split(";"), strict=False))

    def count(name: str) -> int:
        return int(row[name])

    # Time stamps read "date<TAB>time<TAB>epoch"; the epoch has microseconds.
    elapsed = float(row["CurrentTime"].split("\t")[-1]) - float(row["StartTime"].split("\t")[-1])
    return SippStats(
        created=count("TotalCallCreated"),
        successful=count("SuccessfulCall(C)"),
        failed=count("FailedCall(C)"),
        elapsed_s=elapsed,
        retransmissions=count("Retransmissions(C)"),
        response_time_ms=_sipp_duration_ms(row.get("ResponseTime1(C)", "")),
    )


def _sipp_duration_ms(text: str) -> float:
    """SIPp durations read HH:MM:SS:microseconds."""
    parts = text.split(":")
    if len(parts) != 4:
        return 0.0
    hours, minutes, seconds, micros = (int(p) for p in parts)
    return (hours * 3600 + minutes * 60 + seconds) * 1000 + micros / 1000


def late_or_missing_180(work_dir: Path) -> int:
    """Calls answered whose 180 did not arrive before the 200, from the -trace_counts file."""
    files = sorted(work_dir.glob("*_counts.csv"))
    if not files:
        return 0
    lines = [ln for ln in files[-1].read_text().splitlines() if ln.strip()]
    if len(lines) < 2:
        return 0
    row = dict(zip(lines[0].split(";"), lines[-1].split(";"), strict=False))
    # Columns are named <index>_<message>_<counter>; the first 200 is the INVITE's.
    ringing = next((int(v) for k, v in row.items() if k.endswith("_180_Recv")), 0)
    answered = next((int(v) for k, v in row.items() if k.endswith("_200_Recv")), 0)
    return max(answered - ringing, 0)


def sipp_version(sipp: str) -> str:
    """The version banner of the sipp binary."""
    out = subprocess.run([sipp, "-v"], capture_output=True, text=True, check=False).stdout
    return next((ln.strip() for ln in out.splitlines() if "SIPp" in ln), "unknown")


# --------------------------------------------------------------------------------------
# Systems under test


@dataclass(frozen=True)
class SutSpec:
    """How to start one SUT and how long it gets to stop on SIGTERM."""

    name: str
    argv: tuple[str, ...]
    env: dict[str, str]
    grace_s: float
    version: str | None
    tcp_ports: tuple[int, ...]


def sut_spec(name: str, config: BenchConfig, work_dir: Path) -> SutSpec:
    """Build the command line of a SUT, failing clearly when it is not installed."""
    ports = config.ports
    env = dict(os.environ)
    if name == "sippy":
        exe = VENV_BIN / "b2bua"
        if not exe.exists():
            raise BenchError(f"Sippy B2BUA not found at {exe}: install the 'sippy' package")
        argv: tuple[str, ...] = (
            str(exe),
            "--foreground=on",
            "--auth_enable=off",
            "--acct_enable=off",
            "--sip_address=127.0.0.1",
            f"--sip_port={ports.sut}",
            f"--static_route=127.0.0.1:{ports.uas}",
            "--logfile=/dev/null",
            # Its command socket defaults to /var/run/b2bua.sock, shared by every instance.
            f"--b2bua_socket={work_dir / 'b2bua.sock'}",
        )
        # Sippy logs every SIP message to stderr by default: benchmark it without that cost.
        env["SIPLOG_BEND"] = "none"
        # It lingers after SIGTERM (graceful call teardown): SIGKILL follows quickly.
        return SutSpec(name, argv, env, 0.5, _dist_version("sippy"), ())
    if name == "vrgw":
        exe = VENV_BIN / "vrgw"
        cli = ROOT / "gateway" / "cli.py"
        if not exe.exists() or not cli.exists():
            raise BenchError(
                f"vrgw not found ({exe} and {cli} must exist): install the project "
                "(.venv/bin/pip install -e .) or run with --sut sippy"
            )
        if not config.dialplan.exists():
            raise BenchError(f"vrgw dialplan {config.dialplan} not found (see --dialplan)")
        if f":{ports.uas}" not in config.dialplan.read_text():
            log.warning(
                "%s does not mention port %d: its station address must match --uas-port",
                config.dialplan,
                ports.uas,
            )
        argv = (
            str(exe),
            "run",
            "--dialplan",
            str(config.dialplan),
            "--sip-host",
            "127.0.0.1",
            "--sip-port",
            str(ports.sut),
            "--http-port",
            str(ports.http),
            "--h323-port",
            "0",
            "--ras-port",
            "0",
            # No per-call log lines, like Sippy above; a later --vrgw-arg may override it.
            "--log-level",
            "WARNING",
            *config.vrgw_args,
        )
        # vrgw listens on TCP too, on the SIP port, unless told --no-tcp.
        tcp = (ports.http,) if "--no-tcp" in config.vrgw_args else (ports.http, ports.sut)
        return SutSpec(name, argv, env, 5.0, _dist_version("visio-relais-gateway"), tcp)
    raise BenchError(f"unknown SUT {name!r}; choose from {', '.join(SUT_NAMES)}")


def _dist_version(dist: str) -> str | None:
    """Installed version of a distribution in the running interpreter, if any."""
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


# --------------------------------------------------------------------------------------
# The ladder


class Bench:
    """Runs the ladder on each SUT; owns every child process through one registry."""

    def __init__(self, config: BenchConfig, sipp: str, work_dir: Path) -> None:
        self.config = config
        self.sipp = sipp
        self.work_dir = work_dir
        self.procs = ProcessRegistry()

    def run(self) -> list[SutResult]:
        """Measure every SUT in turn; children are killed whatever happens."""
        specs = [sut_spec(name, self.config, self.work_dir / name) for name in self.config.suts]
        results = []
        ref_rate = self.config.reference_rate
        try:
            for spec in specs:
                results.append(self._run_sut(spec, self.config.rates))
            rounds = {r.name: [s for s in r.steps if s.offered_rate == ref_rate] for r in results}
            # Later rounds measure the reference rate again, SUT after SUT, each time on a
            # freshly started SUT: the machine's drift then weighs on every SUT alike.
            for n in range(1, self.config.rounds):
                for spec in specs:
                    log.info(
                        "%s: round %d of %d at %d calls/s",
                        spec.name,
                        n + 1,
                        self.config.rounds,
                        ref_rate,
                    )
                    again = self._run_sut(spec, (ref_rate,), sub=f"round{n + 1}")
                    rounds[spec.name].extend(again.steps)
        finally:
            self.procs.stop_all()
        return [dataclasses.replace(r, reference_rounds=tuple(rounds[r.name])) for r in results]

    def _run_sut(self, spec: SutSpec, rates: Sequence[int], sub: str = "") -> SutResult:
        ports = self.config.ports
        check_ports_free((ports.sut, ports.uas, ports.uac), spec.tcp_ports)
        sut_dir = self.work_dir / spec.name / sub if sub else self.work_dir / spec.name
        sut_dir.mkdir(parents=True, exist_ok=True)
        log_path = sut_dir / "sut.log"
        log.info("%s: starting %s", spec.name, " ".join(spec.argv))
        with log_path.open("w") as sut_log:
            proc = self.procs.start(
                spec.argv,
                cwd=sut_dir,
                stdout=sut_log,
                stderr=subprocess.STDOUT,
                env=spec.env,
                grace_s=spec.grace_s,
                cpus=self.config.sut_cpus,
            )
        try:
            wait_for_udp_port(proc, ports.sut, spec.name, log_path)
            # A SUT may bind its SIP port before it has finished starting (imports, HTTP).
            wait_until_quiet(proc.pid)
            idle = self._idle_cpu(proc)
            log.info("%s: idle CPU %.1f ms/s", spec.name, idle)
            if self.config.warmup_calls:
                log.info(
                    "%s: warm-up, %d calls at %d calls/s",
                    spec.name,
                    self.config.warmup_calls,
                    self.config.rates[0],
                )
                self._step(
                    proc,
                    spec,
                    self.config.rates[0],
                    self.config.warmup_calls,
                    sut_dir / "warmup",
                    idle,
                )
            steps: list[StepResult] = []
            stop_reason = "ladder completed"
            for rate in rates:
                time.sleep(self.config.step_gap_seconds)
                step = self._step(proc, spec, rate, self.config.calls, sut_dir / f"r{rate}", idle)
                steps.append(step)
                log.info(
                    "%s @ %d calls/s: %.1f achieved, %d/%d ok, %d failed (+%d callee), "
                    "%s ms CPU/call, core load %.0f%%",
                    spec.name,
                    rate,
                    step.achieved_rate,
                    step.successful,
                    step.calls,
                    step.failed,
                    step.callee_failed,
                    _fmt(step.cpu_ms_per_call, 2),
                    step.sut_core_load * 100,
                )
                reason = self._stop_reason(step)
                if reason:
                    stop_reason = reason
                    break
        finally:
            self.procs.stop(proc)
        return SutResult(spec.name, spec.argv, spec.version, idle, tuple(steps), stop_reason)

    def _stop_reason(self, step: StepResult) -> str | None:
        rate = step.offered_rate
        if not step.clean:
            return f"failed calls at {rate} calls/s"
        if step.sut_core_load >= self.config.saturation:
            return f"SUT saturated a core at {rate} calls/s ({step.sut_core_load:.0%})"
        if step.achieved_rate < self.config.min_rate_ratio * rate:
            return (
                f"achieved {step.achieved_rate:.0f} of {rate} calls/s offered "
                "(SUT or SIPp cannot keep up)"
            )
        return None

    def _idle_cpu(self, proc: subprocess.Popen[bytes]) -> float:
        """CPU ms per second the SUT burns with no traffic (timers, housekeeping)."""
        if self.config.idle_seconds <= 0:
            return 0.0
        before, t0 = process_tree_ticks(proc.pid), time.monotonic()
        time.sleep(self.config.idle_seconds)
        after, t1 = process_tree_ticks(proc.pid), time.monotonic()
        return (after - before) * 1000 / CLOCK_TICKS / (t1 - t0)

    def _step(
        self,
        sut: subprocess.Popen[bytes],
        spec: SutSpec,
        rate: int,
        calls: int,
        step_dir: Path,
        idle_ms_per_s: float,
    ) -> StepResult:
        """One rung: a fresh callee for exactly `calls` calls, then the caller at `rate`."""
        cfg = self.config
        ports = cfg.ports
        step_dir.mkdir(parents=True, exist_ok=True)
        check_ports_free((ports.uas, ports.uac), ())
        # SIPp's own deadline: the calls at this rate, plus room for retransmissions.
        deadline_s = int(calls / rate + cfg.hold_ms / 1000 + cfg.recv_timeout_ms / 1000) + 30
        common = [
            "-i",
            "127.0.0.1",
            "-m",
            str(calls),
            "-nostdin",
            "-recv_timeout",
            str(cfg.recv_timeout_ms),
            "-timeout",
            str(deadline_s),
            "-timeout_error",
            "-trace_err",
            "-trace_stat",
            "-fd",
            "1",
        ]
        uas_dir, uac_dir = step_dir / "uas", step_dir / "uac"
        uas_dir.mkdir(exist_ok=True)
        uac_dir.mkdir(exist_ok=True)
        uas_argv = [
            self.sipp,
            "-sf",
            str(SCENARIO_DIR / "uas.xml"),
            "-p",
            str(ports.uas),
            *common,
            "-stf",
            str(uas_dir / "stats.csv"),
            "-error_file",
            str(uas_dir / "errors.log"),
        ]
        scenario = (
            ["-sn", "uac"]
            if cfg.uac_scenario is UacScenario.BUILTIN
            else ["-sf", str(SCENARIO_DIR / "uac.xml")]
        )
        uac_argv = [
            self.sipp,
            *scenario,
            "-s",
            SERVICE,
            f"127.0.0.1:{ports.sut}",
            "-p",
            str(ports.uac),
            "-r",
            str(rate),
            "-d",
            str(cfg.hold_ms),
            *common,
            "-stf",
            str(uac_dir / "stats.csv"),
            "-error_file",
            str(uac_dir / "errors.log"),
            "-trace_counts",
        ]

        children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        with (uas_dir / "out.log").open("w") as uas_out:
            uas = self.procs.start(
                uas_argv, cwd=uas_dir, stdout=subprocess.DEVNULL, stderr=uas_out, cpus=cfg.sipp_cpus
            )
        try:
            wait_for_udp_port(uas, ports.uas, "SIPp uas", uas_dir / "out.log")
            ticks_before, t0 = process_tree_ticks(sut.pid), time.monotonic()
            with (uac_dir / "out.log").open("w") as uac_out:
                uac = self.procs.start(
                    uac_argv,
                    cwd=uac_dir,
                    stdout=uac_out,
                    stderr=subprocess.STDOUT,
                    cpus=cfg.sipp_cpus,
                )
            try:
                uac_rc = uac.wait(timeout=deadline_s + 30)
            finally:
                self.procs.stop(uac)
            try:
                # Every callee leg ends with the SUT's BYE: the uas exits once all are done.
                uas_rc = uas.wait(timeout=cfg.recv_timeout_ms / 1000 + 10)
            except subprocess.TimeoutExpired:
                uas_rc = -1
            ticks = process_tree_ticks(sut.pid) - ticks_before
            wall = time.monotonic() - t0
        finally:
            self.procs.stop(uas)
        if sut.poll() is not None:
            raise BenchError(
                f"{spec.name} died during the {rate} calls/s step "
                f"(exit code {sut.returncode}); see {step_dir.parent / 'sut.log'}"
            )
        children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
        sipp_cpu_s = (
            children_after.ru_utime
            + children_after.ru_stime
            - children_before.ru_utime
            - children_before.ru_stime
        )

        if uac_rc not in (0, 1, 99):
            raise BenchError(
                f"SIPp uac failed with exit code {uac_rc}:\n{tail(uac_dir / 'out.log')}"
            )
        caller = parse_sipp_stats(uac_dir / "stats.csv")
        try:
            callee_ok = parse_sipp_stats(uas_dir / "stats.csv").successful
        except BenchError:
            callee_ok = 0
        # Calls either side never finished (stuck, or cut by SIPp's deadline) count as failed.
        failed = max(calls - caller.successful, caller.failed)
        callee_failed = calls - callee_ok
        cpu_ms = ticks * 1000 / CLOCK_TICKS
        ok = caller.successful
        net_ms = max(cpu_ms - idle_ms_per_s * wall, 0.0)
        return StepResult(
            offered_rate=rate,
            calls=calls,
            successful=ok,
            failed=failed,
            callee_failed=max(callee_failed, 0),
            achieved_rate=ok / caller.elapsed_s if caller.elapsed_s > 0 else 0.0,
            wall_s=wall,
            sut_cpu_ms=cpu_ms,
            cpu_ms_per_call=cpu_ms / ok if ok else None,
            cpu_ms_per_call_net_of_idle=net_ms / ok if ok else None,
            calls_per_cpu_s=ok / (cpu_ms / 1000) if ok and cpu_ms > 0 else None,
            sut_core_load=cpu_ms / 1000 / wall if wall > 0 else 0.0,
            sipp_cpu_ms=sipp_cpu_s * 1000,
            retransmissions=caller.retransmissions,
            response_time_ms=caller.response_time_ms,
            late_or_missing_180=late_or_missing_180(uac_dir),
            uac_exit_code=uac_rc,
            uas_exit_code=uas_rc,
        )


# --------------------------------------------------------------------------------------
# Report


CAVEATS = (
    "SIPp caller and callee run on the same machine as the SUT and compete with it for "
    "the CPU cores; the achieved rate measures the whole machine, the SUT CPU time per "
    "call (from /proc/PID/stat, the SUT process and its children) is the comparable figure.",
    "CPU times come in clock ticks of 1/{hz} s: a step needs a few hundred calls for a "
    "precise per-call figure.",
    "Sippy runs with SIPLOG_BEND=none (no per-message log), its fastest configuration.",
    "Calls have no media: this measures signalling only.",
)


def build_report(
    config: BenchConfig, results: list[SutResult], started: datetime, sipp: str
) -> dict[str, Any]:
    """The JSON document of one run."""
    by_name = {r.name: r for r in results}
    ref: dict[str, dict[str, Any] | None] = {}
    for r in results:
        measured = [s.cpu_ms_per_call for s in r.reference_rounds if s.cpu_ms_per_call]
        if not measured:
            ref[r.name] = None
            continue
        median = statistics.median(measured)
        ref[r.name] = {
            "rate": config.reference_rate,
            "cpu_ms_per_call": median,  # the median over the rounds
            "calls_per_cpu_s": 1000.0 / median,
            "clean": all(s.clean for s in r.reference_rounds),
            "rounds_cpu_ms_per_call": measured,
        }
    ratio = None
    if "vrgw" in by_name and "sippy" in by_name:
        v, s = ref.get("vrgw"), ref.get("sippy")
        if v and s and v["calls_per_cpu_s"] and s["calls_per_cpu_s"]:
            ratio = v["calls_per_cpu_s"] / s["calls_per_cpu_s"]
    return {
        "benchmark": "signalling",
        "started": started.isoformat(),
        "host": {
            "cpus": os.cpu_count(),
            "load_average_at_start": os.getloadavg(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "sipp": sipp_version(sipp),
            "clock_ticks_per_s": CLOCK_TICKS,
        },
        "config": {
            **{
                k: v
                for k, v in dataclasses.asdict(config).items()
                if k
                not in ("ports", "results_dir", "dialplan", "uac_scenario", "sut_cpus", "sipp_cpus")
            },
            "sut_cpus": sorted(config.sut_cpus) if config.sut_cpus is not None else None,
            "sipp_cpus": sorted(config.sipp_cpus) if config.sipp_cpus is not None else None,
            "ports": dataclasses.asdict(config.ports),
            "dialplan": str(config.dialplan),
            "uac_scenario": config.uac_scenario.value,
        },
        "suts": {
            r.name: {
                "command": list(r.command),
                "version": r.version,
                "idle_cpu_ms_per_s": r.idle_cpu_ms_per_s,
                "stop_reason": r.stop_reason,
                "max_clean_rate": _max_clean_json(r),
                "reference": ref[r.name],
                "steps": [{**dataclasses.asdict(s), "clean": s.clean} for s in r.steps],
            }
            for r in results
        },
        "comparison": {
            "reference_rate": config.reference_rate,
            "vrgw_over_sippy_calls_per_cpu_s": ratio,
        },
        "caveats": [c.format(hz=CLOCK_TICKS) for c in CAVEATS],
    }


def _max_clean_json(result: SutResult) -> dict[str, float] | None:
    step = result.max_clean()
    if step is None:
        return None
    return {"offered": step.offered_rate, "achieved": round(step.achieved_rate, 1)}


def _fmt(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def markdown(report: dict[str, Any]) -> str:
    """The run as Markdown tables, for the README."""
    host = report["host"]
    cfg = report["config"]
    if cfg["sut_cpus"] is not None:
        cores = (
            f"the SUT pinned to CPU {','.join(map(str, cfg['sut_cpus']))}, SIPp to CPU "
            f"{','.join(map(str, cfg['sipp_cpus']))}"
        )
    else:
        cores = f"{host['cpus']} CPU cores shared by SIPp and the SUT"
    out = [
        f"### Signalling benchmark, {report['started'][:19]} UTC",
        "",
        f"SIPp caller -> SUT -> SIPp callee on 127.0.0.1, {cfg['calls']} calls "
        f"per step, scenario `{cfg['uac_scenario']}`; {cores} (load average at start "
        f"{host['load_average_at_start'][0]:.2f}). **SUT CPU ms per call is the comparable "
        "figure**; achieved rates also measure SIPp and the machine.",
        "",
        "| SUT | offered calls/s | achieved calls/s | ok | failed (caller+callee) "
        "| SUT CPU ms/call | net of idle | calls per CPU s | SUT core load | SIPp CPU ms/call "
        "| late 180 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, sut in report["suts"].items():
        for s in sut["steps"]:
            sipp_per_call = s["sipp_cpu_ms"] / s["successful"] if s["successful"] else None
            out.append(
                f"| {name} | {s['offered_rate']} | {s['achieved_rate']:.1f} | {s['successful']} "
                f"| {s['failed']}+{s['callee_failed']} | {_fmt(s['cpu_ms_per_call'], 2)} "
                f"| {_fmt(s['cpu_ms_per_call_net_of_idle'], 2)} "
                f"| {_fmt(s['calls_per_cpu_s'], 0)} | {s['sut_core_load']:.0%} "
                f"| {_fmt(sipp_per_call, 2)} | {s['late_or_missing_180']} |"
            )
    ref_rate = report["comparison"]["reference_rate"]
    out += [
        "",
        f"| SUT | version | max clean rate (offered / achieved) | CPU ms/call @{ref_rate} "
        f"| calls per CPU s @{ref_rate} | idle CPU ms/s | stopped because |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for name, sut in report["suts"].items():
        best = sut["max_clean_rate"]
        ref = sut["reference"] or {}
        best_text = f"{best['offered']} / {best['achieved']}" if best else "none"
        out.append(
            f"| {name} | {sut['version'] or '-'} | {best_text} "
            f"| {_fmt(ref.get('cpu_ms_per_call'), 2)} | {_fmt(ref.get('calls_per_cpu_s'), 0)} "
            f"| {sut['idle_cpu_ms_per_s']:.1f} | {sut['stop_reason']} |"
        )
    rounds = {
        name: (sut["reference"] or {}).get("rounds_cpu_ms_per_call") or []
        for name, sut in report["suts"].items()
    }
    if any(len(r) > 1 for r in rounds.values()):
        out += [
            "",
            f"CPU ms per call at {ref_rate} calls/s, round by round (the ladder's step, "
            "then a freshly started SUT per round, SUTs interleaved; the summary above "
            "takes the median):",
            "",
        ]
        out += [f"- {name}: {', '.join(f'{v:.2f}' for v in r)}" for name, r in rounds.items()]
    ratio = report["comparison"]["vrgw_over_sippy_calls_per_cpu_s"]
    if ratio is not None:
        out += [
            "",
            f"vrgw / sippy, calls per CPU second at {ref_rate} calls/s (medians): **{ratio:.2f}**",
        ]
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------------------
# Command line


def _rates(text: str) -> tuple[int, ...]:
    rates = tuple(int(r) for r in text.split(",") if r.strip())
    if not rates or any(r <= 0 for r in rates):
        raise argparse.ArgumentTypeError("rates are positive integers, comma-separated")
    return rates


def _suts(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in SUT_NAMES]
    if not names or unknown:
        raise argparse.ArgumentTypeError(f"choose from {', '.join(SUT_NAMES)}")
    return names


def parse_args(argv: Sequence[str] | None) -> BenchConfig:
    """Build the run configuration from the command line."""
    p = argparse.ArgumentParser(
        description="SIPp signalling load against vrgw and Sippy B2BUA, side by side: "
        "rate ladder, SUT CPU time per call, JSON + Markdown report.",
    )
    p.add_argument(
        "--sut",
        type=_suts,
        default=SUT_NAMES,
        help="systems under test, comma-separated (default: vrgw,sippy)",
    )
    p.add_argument(
        "--rates",
        type=_rates,
        default=DEFAULT_RATES,
        help="offered call rates of the ladder, calls/s (default: %(default)s)",
    )
    p.add_argument("--calls", type=int, default=1000, help="calls per step (default: 1000)")
    p.add_argument(
        "--reference-rate",
        type=int,
        default=100,
        help="moderate rate measured on every SUT and compared (added to the "
        "ladder if missing; default: 100)",
    )
    p.add_argument(
        "--warmup-calls",
        type=int,
        default=100,
        help="unrecorded calls at the first rate before the ladder (default: 100)",
    )
    p.add_argument(
        "--hold-ms", type=int, default=0, help="time between ACK and BYE, SIPp -d (default: 0)"
    )
    p.add_argument("--sut-port", type=int, default=5060)
    p.add_argument(
        "--uas-port",
        type=int,
        default=5070,
        help="SIPp callee port; vrgw's dialplan must route there (default: 5070)",
    )
    p.add_argument("--uac-port", type=int, default=5061)
    p.add_argument("--http-port", type=int, default=8080, help="vrgw HTTP port (default: 8080)")
    p.add_argument(
        "--saturation",
        type=float,
        default=0.9,
        help="stop when the SUT uses this fraction of one core (default: 0.9)",
    )
    p.add_argument(
        "--min-rate-ratio",
        type=float,
        default=0.9,
        help="stop when achieved/offered falls below this (default: 0.9)",
    )
    p.add_argument(
        "--uac-scenario",
        choices=[s.value for s in UacScenario],
        default=UacScenario.TOLERANT.value,
        help="tolerant: bench/sipp/uac.xml, a 180 after the 200 is ignored; "
        "builtin: SIPp's uac, it fails the call (default: tolerant)",
    )
    p.add_argument(
        "--recv-timeout-ms",
        type=int,
        default=5000,
        help="SIPp -recv_timeout: a call waiting longer fails (default: 5000)",
    )
    p.add_argument(
        "--idle-seconds",
        type=float,
        default=2.0,
        help="idle CPU measurement before the ladder (default: 2)",
    )
    p.add_argument(
        "--step-gap", type=float, default=1.0, help="seconds of rest between steps (default: 1)"
    )
    p.add_argument("--results-dir", type=Path, default=DEFAULT_RESULTS_DIR)
    p.add_argument(
        "--dialplan",
        type=Path,
        default=DEFAULT_DIALPLAN,
        help="vrgw dialplan routing sip:bench@... to 127.0.0.1:<uas-port>",
    )
    p.add_argument(
        "--vrgw-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra argument for `vrgw run` (repeatable)",
    )
    p.add_argument(
        "--keep-work-dir", action="store_true", help="keep SIPp and SUT logs (kept anyway on error)"
    )
    p.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="measurements at the reference rate per SUT: the ladder's step, then "
        "rounds-1 more on a freshly started SUT, SUTs interleaved; the "
        "comparison uses the medians (default: 3)",
    )
    p.add_argument(
        "--no-pin",
        action="store_true",
        help="let the scheduler move the SUT and SIPp over every core (default: "
        "with 2 or more usable CPUs, the SUT runs on the last one, SIPp on "
        "the others, so the load generator never competes with what it loads)",
    )
    p.add_argument("-v", "--verbose", action="store_true")
    a = p.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if a.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    if a.calls <= 0:
        p.error("--calls must be positive")
    rates = tuple(sorted(set(a.rates) | {a.reference_rate}))
    ports = Ports(sut=a.sut_port, uas=a.uas_port, uac=a.uac_port, http=a.http_port)
    if len({ports.sut, ports.uas, ports.uac}) != 3:
        p.error("--sut-port, --uas-port and --uac-port must differ")
    return BenchConfig(
        suts=a.sut,
        rates=rates,
        calls=a.calls,
        reference_rate=a.reference_rate,
        warmup_calls=a.warmup_calls,
        hold_ms=a.hold_ms,
        ports=ports,
        saturation=a.saturation,
        min_rate_ratio=a.min_rate_ratio,
        uac_scenario=UacScenario(a.uac_scenario),
        recv_timeout_ms=a.recv_timeout_ms,
        idle_seconds=a.idle_seconds,
        step_gap_seconds=a.step_gap,
        results_dir=a.results_dir,
        dialplan=a.dialplan,
        vrgw_args=tuple(a.vrgw_arg),
        keep_work_dir=a.keep_work_dir,
        rounds=max(1, a.rounds),
        **_pinning(not a.no_pin),
    )


def _pinning(pin: bool) -> dict[str, frozenset[int] | None]:
    """CPU sets of the SUT and SIPp: the last usable CPU for the SUT, the rest for SIPp."""
    usable = sorted(os.sched_getaffinity(0))
    if not pin or len(usable) < 2:
        return {"sut_cpus": None, "sipp_cpus": None}
    return {"sut_cpus": frozenset(usable[-1:]), "sipp_cpus": frozenset(usable[:-1])}


@contextlib.contextmanager
def _signals_unwind() -> Iterator[None]:
    """Turn SIGINT, SIGTERM and SIGHUP into KeyboardInterrupt for the duration of the run."""
    # SIGINT too: a shell starts background jobs with it ignored, and Python keeps that.
    handled = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {s: signal.signal(s, _raise_on_signal) for s in handled}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; 0 on success, 1 on a bench error, 130 when interrupted."""
    config = parse_args(argv)
    sipp = shutil.which("sipp")
    if sipp is None:
        log.error("sipp not found on PATH: install the Debian package sip-tester")
        return 1
    started = datetime.now(UTC)
    work_dir = Path(tempfile.mkdtemp(prefix="vrgw-bench-"))
    keep = config.keep_work_dir
    try:
        with _signals_unwind():
            results = Bench(config, sipp, work_dir).run()
        report = build_report(config, results, started, sipp)
        config.results_dir.mkdir(parents=True, exist_ok=True)
        out = config.results_dir / f"signalling-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
        out.write_text(json.dumps(report, indent=2) + "\n")
        log.info("results written to %s", out)
        sys.stdout.write(markdown(report))
        return 0
    except BenchError as exc:
        keep = True
        log.error("%s", exc)
        return 1
    except KeyboardInterrupt:
        keep = True
        log.error("interrupted; every child process was stopped")
        return 130
    finally:
        if keep:
            log.info("logs kept in %s", work_dir)
        else:
            shutil.rmtree(work_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
