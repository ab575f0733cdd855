"""Processes of the media benchmark: C programs compiled at run time, cores, CPU time, memory.

The engine under test and the load generator each run in a process of their own, pinned
to a core of their own (``os.sched_setaffinity``), so that the CPU time read from
``/proc`` for the engine is the engine's alone.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class BenchError(Exception):
    """A precondition of the benchmark failed; the message says which."""


def cache_dir() -> Path:
    """Where compiled helpers are kept between runs (``$XDG_CACHE_HOME/vrgw-bench``)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    path = Path(base) / "vrgw-bench"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        path = Path(tempfile.gettempdir()) / f"vrgw-bench-{os.getuid()}"
        path.mkdir(parents=True, exist_ok=True)
    return path


def compile_c(source: Path, *, libraries: tuple[str, ...] = ()) -> Path:
    """Compile ``source`` with gcc -O2 into the cache, once per content of the file."""
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:16]
    binary = cache_dir() / f"{source.stem}-{digest}"
    if binary.exists():
        return binary
    gcc = shutil.which("gcc")
    if gcc is None:
        raise BenchError("gcc not found: install Debian's gcc (scripts/install --test)")
    partial = binary.with_suffix(f".{os.getpid()}.tmp")
    flags = [f"-l{lib}" for lib in libraries]
    run = subprocess.run(
        [gcc, "-O2", "-Wall", "-o", str(partial), str(source), *flags],
        capture_output=True,
        text=True,
        check=False,
    )
    if run.returncode != 0:
        raise BenchError(f"gcc failed on {source.name}:\n{run.stderr[-2000:]}")
    partial.replace(binary)
    return binary


def cpus() -> tuple[int, int]:
    """(generator core, engine core): two different cores this process may use."""
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < 2:
        raise BenchError(f"needs two cores to pin the engine apart from the load, has {allowed}")
    return allowed[0], allowed[1]


def pinned(cpu: int | frozenset[int], nice: int = 0) -> Callable[[], None]:
    """A ``preexec_fn`` that pins the child (and every thread and process it starts) to
    ``cpu`` (one core, or a set of them).

    A negative ``nice`` (root only) makes the scheduler favour it over other processes
    that share the core, as on a shared machine; 0 leaves its priority alone.
    """
    cores = {cpu} if isinstance(cpu, int) else set(cpu)

    def pin() -> None:
        os.sched_setaffinity(0, cores)
        if nice:
            os.nice(nice)

    return pin


def cpu_seconds(pid: int) -> float:
    """CPU time of every thread of ``pid`` so far, in seconds.

    ``/proc/PID/task/*/schedstat`` counts nanoseconds on the CPU (user and system); the
    tick-granular ``/proc/PID/stat`` is the fallback.
    """
    total_ns = 0
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{task}/schedstat") as f:
                    total_ns += int(f.read().split()[0])
            except (FileNotFoundError, ProcessLookupError):
                continue  # a thread that ended meanwhile
        if total_ns:
            return total_ns / 1e9
    except FileNotFoundError:
        pass
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def process_tree(pid: int) -> list[int]:
    """``pid`` and its live descendants (the built-in engine's worker processes), from
    the parent pids of ``/proc/*/stat``."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (FileNotFoundError, ProcessLookupError, ValueError, IndexError):
            continue  # ended meanwhile
        children.setdefault(ppid, []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, ()))
    return tree


def tree_cpu_seconds(pid: int) -> float:
    """CPU time so far of ``pid`` and of its live descendants, each as
    :func:`cpu_seconds` reads it: an engine's worker processes count as the engine."""
    total = 0.0
    for member in process_tree(pid):
        try:
            total += cpu_seconds(member)
        except (FileNotFoundError, ProcessLookupError):
            if member == pid:
                raise
    return total


def tree_rss_bytes(pid: int) -> int:
    """Resident memory of ``pid`` and its live descendants (shared pages counted in each)."""
    total = 0
    for member in process_tree(pid):
        try:
            total += rss_bytes(member)
        except (FileNotFoundError, ProcessLookupError):
            if member == pid:
                raise
    return total


def rss_bytes(pid: int) -> int:
    """Resident set size of ``pid`` (``VmRSS`` of ``/proc/PID/status``)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def load_average() -> float:
    """The one-minute load average, printed so a busy machine is seen in the results."""
    return os.getloadavg()[0]


@dataclass(frozen=True)
class SyscallCount:
    """One row of ``strace -c``: calls and failed calls of one system call."""

    name: str
    calls: int
    errors: int


_STRACE_ROW = re.compile(
    r"^\s*(?P<pct>[\d.]+)\s+(?P<seconds>[\d.]+)\s+(?P<usecs>\d+)\s+(?P<calls>\d+)\s+"
    r"(?P<errors>\d+)?\s*(?P<name>[a-z_0-9]+)\s*$"
)


def parse_strace_summary(text: str) -> list[SyscallCount]:
    """The rows of an ``strace -c`` summary table (the ``total`` row left out)."""
    rows: list[SyscallCount] = []
    for line in text.splitlines():
        m = _STRACE_ROW.match(line)
        if m is None or m["name"] == "total":
            continue
        rows.append(SyscallCount(m["name"], int(m["calls"]), int(m["errors"] or 0)))
    return rows


def core_busy_seconds(cpu: int) -> float:
    """Time core ``cpu`` spent on anything but idle so far (``/proc/stat``), in seconds.

    Less the engine's own CPU time over a step, it is what other processes (other users
    of a shared machine, the host stealing the core) took from the engine's core.
    """
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith(f"cpu{cpu} "):
                v = [int(x) for x in line.split()[1:]]
                return (sum(v[:8]) - v[3] - v[4]) / CLOCK_TICKS
    raise BenchError(f"no cpu{cpu} line in /proc/stat")


def tracepoint_exists(name: str) -> bool:
    """Whether the kernel has the tracepoint ``group:event`` (for ``perf stat -e``)."""
    group, event = name.split(":")
    return any(
        Path(base, "events", group, event).exists()
        for base in ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")
    )


def parse_perf_counts(text: str) -> dict[str, int]:
    """Counts by event from ``perf stat -x,`` output (events not counted are left out)."""
    counts: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split(",")
        if len(parts) >= 3 and parts[0].strip().isdigit():
            counts[parts[2]] = counts.get(parts[2], 0) + int(parts[0])
    return counts


def parse_perf_dso_shares(text: str) -> dict[str, float]:
    """Percent of samples by binary from ``perf report --sort dso -q``, largest first."""
    shares: dict[str, float] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].endswith("%"):
            try:
                shares[" ".join(parts[1:])] = float(parts[0].rstrip("%"))
            except ValueError:
                continue
    return dict(sorted(shares.items(), key=lambda kv: -kv[1]))
