"""Media load benchmark: N audio+video calls through each media engine, ramped to its limit.

``python -m bench.media`` (from the project root, with the project's venv) measures, in
one run, the built-in relay (:class:`gateway.media.relay.RelayEngine`), the same relay in
worker processes (:class:`gateway.media.workers.WorkerRelayEngine`, ``builtin-workers``),
a minimal C relay on ``recvmmsg``/``sendmmsg`` compiled now (``bench/media_relay.c``, the
reference for what this machine can do) and rtpengine in userspace mode. Each engine runs
in its own process pinned to one core (``builtin-workers``: its processes on both cores);
the load generator (``bench/media_load.c``) holds both ends of every call and is pinned
to the other core. An engine's CPU time is that of its whole process tree.

Every call sends, each way, G.711-sized audio (50 packets/s of 172 bytes) and video
(``--video-pps``, 40 to 200 packets/s of 1,200 bytes). Each step sends for a few seconds
and reports what the receiving ends measured: loss (distinct sequence numbers), one-way
delay through the relay (send time in the payload, kernel receive timestamp) and the
delay added to a direct path measured at the start, interarrival jitter (RFC 3550 A.8),
checksums of every payload, and what the engine's process spent: CPU time per relayed
packet (``/proc/PID/task/*/schedstat``) and resident memory per call. N grows until loss
exceeds 0.1 % or the added p99 delay 5 ms; a step that breaks a limit, or that other
processes disturbed on the engine's core, is run again. Then ``perf stat`` (or ``strace
-c``) counts the engine's system calls per packet at the lightest and the reference load.

Writes ``bench/results/media-<timestamp>.json`` and ``.png`` and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.media_engines import (
    ENGINE_NAMES,
    PORTS,
    BuiltinEngine,
    CallPorts,
    Engine,
    EngineMissing,
    start_engine,
)
from bench.media_load import LoadGenerator, Profile
from bench.media_system import (
    ROOT,
    BenchError,
    core_busy_seconds,
    cpu_seconds,
    cpus,
    load_average,
    parse_perf_counts,
    parse_perf_dso_shares,
    parse_strace_summary,
    process_tree,
    tracepoint_exists,
    tree_cpu_seconds,
    tree_rss_bytes,
)

DEFAULT_RESULTS_DIR = ROOT / "bench" / "results"
FULL_STEPS = (10, 25, 50, 100, 150, 200, 250, 300, 400, 500, 600, 800)
QUICK_STEPS = (2, 5)
REFERENCE_CALLS = 100  # the comparison table's load
LOSS_LIMIT = 0.001  # 0.1 %
ADDED_P99_LIMIT_US = 5000.0
GENERATOR_PACE = 0.98  # below this share of the packets due, the generator fell behind
# A step is run again (up to Config.attempts times in all) when it broke a limit or when
# other processes took more than this share of the engine's core meanwhile: their
# processes delay the engine's packets and change how many it finds per wake-up, hence
# its CPU per packet. The attempt they disturbed least is kept, the others summarised.
QUIET_SHARE = 0.10
ATTEMPT_SUMMARY = (
    "loss_ratio",
    "latency_p99_us",
    "cpu_us_per_packet",
    "engine_core_others",
    "generator_core_others",
)

log = logging.getLogger("bench.media")


@dataclass(frozen=True)
class Config:
    """One run's settings, from the command line."""

    engines: tuple[str, ...]
    steps: tuple[int, ...]
    profile: Profile
    duration: float
    drain: float
    baseline_calls: int
    reference_calls: int
    syscalls: bool
    results_dir: Path
    plot: bool
    nice: int = 0  # of the engine's process (negative: favoured on a shared core)
    attempts: int = 3  # at most, per step
    ports: range = PORTS  # the engines' relay ports


def _step_record(
    calls: int,
    profile: Profile,
    gen: dict[str, Any],
    cpu_s: float,
    rss: int,
    rss_base: int,
    baseline: dict[str, Any],
) -> dict[str, Any]:
    """The figures of one step, from the generator's report and the engine's process."""
    duration = float(gen["duration_s"])
    sent, received = int(gen["sent"]), int(gen["received"])
    loss = (sent - received) / sent if sent else 0.0
    return {
        "calls": calls,
        "streams": 2 * calls,
        "offered_pps": calls * profile.packets_per_call(),
        **{k: gen[k] for k in gen if k not in ("step", "duration_s")},
        "duration_s": duration,
        "relayed_pps": received / duration,
        "loss_ratio": loss,
        "added_latency_p50_us": gen["latency_p50_us"] - baseline["latency_p50_us"],
        "added_latency_p99_us": gen["latency_p99_us"] - baseline["latency_p99_us"],
        "engine_cpu_s": cpu_s,
        "engine_core_load": cpu_s / duration,
        "cpu_us_per_packet": cpu_s * 1e6 / received if received else None,
        "engine_rss_bytes": rss,
        "memory_per_call_bytes": (rss - rss_base) / calls if calls else None,
    }


def _verdict(step: dict[str, Any], profile: Profile, duration: float) -> str | None:
    """Why the ramp stops after this step, or None to go on."""
    due = step["calls"] * profile.packets_per_call() * duration
    if step["sent"] < GENERATOR_PACE * due:
        return (
            f"the load generator sent {step['sent']} of {due:.0f} packets due: its core "
            "is full, the engine's limit is above this load"
        )
    if step["loss_ratio"] > LOSS_LIMIT:
        return f"loss {100 * step['loss_ratio']:.2f} % > {100 * LOSS_LIMIT:.1f} %"
    if step["added_latency_p99_us"] > ADDED_P99_LIMIT_US:
        return f"added latency p99 {step['added_latency_p99_us'] / 1000:.1f} ms > 5 ms"
    return None


def _progress(name: str, s: dict[str, Any]) -> None:
    cpu = s["cpu_us_per_packet"]
    log.info(
        "%-9s %4d calls  %7.0f pkt/s relayed  loss %6.3f %%  latency p50 %6.0f us "
        "p99 %6.0f us  jitter %5.1f us  CPU %s us/pkt (core %3.0f %%)  %s kB/call",
        name,
        s["calls"],
        s["relayed_pps"],
        100 * s["loss_ratio"],
        s["latency_p50_us"],
        s["latency_p99_us"],
        s["jitter_mean_us"],
        f"{cpu:5.2f}" if cpu is not None else "  -  ",
        100 * s["engine_core_load"],
        f"{s['memory_per_call_bytes'] / 1024:.1f}"
        if s["memory_per_call_bytes"] is not None
        else "-",
    )


def measure_baseline(gen: LoadGenerator, cfg: Config) -> dict[str, Any]:
    """The direct path: each side's packets sent straight to the other side's socket."""
    streams = 2 * cfg.baseline_calls
    gen.ensure_streams(streams)
    for s in range(streams):
        a, b = gen.ports[s]
        gen.target(s, b, a)
    result = gen.run(0, streams, cfg.profile, cfg.duration, cfg.drain)
    log.info(
        "direct path, %d calls: latency p50 %.0f us, p99 %.0f us, loss %d of %d",
        cfg.baseline_calls,
        result["latency_p50_us"],
        result["latency_p99_us"],
        result["lost"],
        result["sent"],
    )
    return result


def _add_calls(engine: Engine, gen: LoadGenerator, have: int, want: int) -> None:
    gen.ensure_streams(2 * want)
    calls = [CallPorts(gen.ports[2 * i], gen.ports[2 * i + 1]) for i in range(have, want)]
    for i, relay in enumerate(engine.add_calls(have, calls), start=have):
        gen.target(2 * i, *relay.audio)
        gen.target(2 * i + 1, *relay.video)


RECEIVE_CALLS = ("recvfrom", "recvmsg", "recvmmsg")
COUNTED_CALLS = (
    *RECEIVE_CALLS,
    "sendto",
    "sendmsg",
    "sendmmsg",
    "epoll_wait",
    "epoll_pwait",
    "epoll_pwait2",
    "read",
    "write",
    "futex",
)


def profile_syscalls(
    engine: Engine, gen: LoadGenerator, calls: int, step_id: int, cfg: Config
) -> dict[str, Any]:
    """Count the engine's system calls per packet sent to it during one more step.

    ``perf stat`` on the kernel's system-call tracepoints counts in the kernel, at little
    cost, every call, every failed one and each receive that found nothing (EAGAIN, a
    ``BlockingIOError`` in Python); without perf, ``strace -c -f``, which slows every
    call down (counts only).
    """
    if shutil.which("perf") and tracepoint_exists("raw_syscalls:sys_enter"):
        return _perf_syscalls(engine, gen, calls, step_id, cfg)
    if shutil.which("strace"):
        return _strace_syscalls(engine, gen, calls, step_id, cfg)
    raise EngineMissing("neither perf (linux-perf) nor strace is installed")


def _per_packet(
    tool: str,
    calls: int,
    gen_result: dict[str, Any],
    total: int,
    failed: int,
    eagain: int | None,
    by_call: dict[str, tuple[int, int | None]],
) -> dict[str, Any]:
    # Per packet offered to the engine (sent by the generator): a packet lost after the
    # engine sent it on still cost the engine its system calls.
    offered = int(gen_result["sent"])
    per = (lambda n: n / offered) if offered else (lambda n: None)
    return {
        "tool": tool,
        "calls": calls,
        "sent": offered,
        "relayed": int(gen_result["received"]),
        "loss_ratio": gen_result["lost"] / offered if offered else 0.0,
        "syscalls_per_packet": per(total),
        "failed_syscalls_per_packet": per(failed),
        "eagain_receives_per_packet": per(eagain) if eagain is not None else None,
        "by_call": {
            name: {"calls": n, "errors": e, "per_packet": per(n)}
            for name, (n, e) in sorted(by_call.items(), key=lambda kv: -kv[1][0])
            if n
        },
    }


def _perf_syscalls(
    engine: Engine, gen: LoadGenerator, calls: int, step_id: int, cfg: Config
) -> dict[str, Any]:
    events = ["-e", "raw_syscalls:sys_enter", "-e", "raw_syscalls:sys_exit", "--filter", "ret < 0"]
    for name in COUNTED_CALLS:
        if tracepoint_exists(f"syscalls:sys_enter_{name}"):
            events += ["-e", f"syscalls:sys_enter_{name}"]
    for name in RECEIVE_CALLS:
        if tracepoint_exists(f"syscalls:sys_exit_{name}"):
            events += ["-e", f"syscalls:sys_exit_{name}", "--filter", "ret == -11"]
    window = cfg.duration + cfg.drain + 1.0
    pids = ",".join(map(str, process_tree(engine.pid)))  # with its worker processes
    with tempfile.TemporaryDirectory() as tmp:
        samples = Path(tmp) / "perf.data"
        perf = subprocess.Popen(
            ["perf", "stat", "-x,", *events, "-p", pids, "--", "sleep", f"{window}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        # where the engine's CPU time goes, by binary: kernel, interpreter, libraries
        record = subprocess.Popen(
            [
                *("perf", "record", "-q", "-F", "1999", "-p", pids),
                *("-o", str(samples), "--", "sleep", f"{window}"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(0.3)  # counting before the first packet
        gen_result = gen.run(step_id, 2 * calls, cfg.profile, cfg.duration, cfg.drain)
        _, err = perf.communicate(timeout=window + 30)
        record.wait(timeout=window + 30)
        report = subprocess.run(
            ["perf", "report", "-i", str(samples), "--stdio", "--sort", "dso", "-q"],
            capture_output=True,
            text=True,
            check=False,
        )
    counts = parse_perf_counts(err)
    if "raw_syscalls:sys_enter" not in counts:
        raise BenchError(f"perf stat counted nothing: {err[-1000:]}")
    eagain = sum(counts.get(f"syscalls:sys_exit_{n}", 0) for n in RECEIVE_CALLS)
    by_call: dict[str, tuple[int, int | None]] = {
        n: (counts.get(f"syscalls:sys_enter_{n}", 0), None) for n in COUNTED_CALLS
    }
    for n in RECEIVE_CALLS:
        calls_n, _ = by_call[n]
        by_call[n] = (calls_n, counts.get(f"syscalls:sys_exit_{n}", 0))
    result = _per_packet(
        "perf stat",
        calls,
        gen_result,
        counts["raw_syscalls:sys_enter"],
        counts.get("raw_syscalls:sys_exit", 0),
        eagain,
        by_call,
    )
    result["cpu_by_binary"] = parse_perf_dso_shares(report.stdout)
    return result


def _strace_syscalls(
    engine: Engine, gen: LoadGenerator, calls: int, step_id: int, cfg: Config
) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile("r", suffix=".strace") as out:
        tracer = subprocess.Popen(
            [
                *("strace", "-c", "-f", "-o", out.name),
                *(arg for pid in process_tree(engine.pid) for arg in ("-p", str(pid))),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(0.5)  # attached to every thread
        gen_result = gen.run(step_id, 2 * calls, cfg.profile, cfg.duration, 1.0)
        tracer.send_signal(signal.SIGINT)
        tracer.wait(timeout=30)
        rows = parse_strace_summary(Path(out.name).read_text())
    return _per_packet(
        "strace -c (slows the engine: counts only)",
        calls,
        gen_result,
        sum(r.calls for r in rows),
        sum(r.errors for r in rows),
        None,
        {r.name: (r.calls, r.errors) for r in rows},
    )


class _StepIds:
    """Step numbers written in the payloads, so a late packet of an earlier step is
    counted stale, never received."""

    def __init__(self) -> None:
        self._next = 1

    def take(self) -> int:
        value = self._next
        self._next += 1
        return value


def _measure_step(
    engine: Engine,
    gen: LoadGenerator,
    calls: int,
    step_id: int,
    cfg: Config,
    rss_base: int,
    baseline: dict[str, Any],
) -> dict[str, Any]:
    before = engine.counters(calls) if isinstance(engine, BuiltinEngine) else None
    rss = tree_rss_bytes(engine.pid)
    gen_cpu = gen.cpu
    cores = engine.cores

    def engine_busy() -> float:
        return sum(core_busy_seconds(core) for core in cores)

    busy0, cpu0 = engine_busy(), tree_cpu_seconds(engine.pid)
    gen_busy0, gen_cpu0 = core_busy_seconds(gen_cpu), cpu_seconds(gen.pid)
    gen_result = gen.run(step_id, 2 * calls, cfg.profile, cfg.duration, cfg.drain)
    cpu_s = tree_cpu_seconds(engine.pid) - cpu0
    busy = engine_busy() - busy0
    gen_cpu_s = cpu_seconds(gen.pid) - gen_cpu0
    gen_busy = core_busy_seconds(gen_cpu) - gen_busy0
    step = _step_record(calls, cfg.profile, gen_result, cpu_s, rss, rss_base, baseline)
    # What other processes took from each core meanwhile (/proc/stat counts in ticks: a
    # share under a tick or two is noise); the generator's core also does the kernel's
    # work of delivering the packets it sends. An engine that shares the generator's
    # core (builtin-workers) does not count the generator as a disturbance.
    window = cfg.duration + cfg.drain
    shared = gen_cpu_s if gen_cpu in cores else 0.0
    step["engine_core_others"] = max(0.0, busy - cpu_s - shared) / window
    step["generator_core_load"] = gen_cpu_s / window
    step["generator_core_others"] = max(0.0, gen_busy - gen_cpu_s) / window
    if isinstance(engine, BuiltinEngine) and before is not None:
        after = engine.counters(calls)
        # what the engine itself counted receiving: the generator's figures cross-checked
        step["engine_counted_rtp"] = after["rtp_packets"] - before["rtp_packets"]
        step["gc"] = {k: after[k] for k in ("gc_collections", "gc_total_ms", "gc_longest_ms")}
    return step


def run_engine(
    name: str, gen: LoadGenerator, engine_cpu: int, cfg: Config, baseline: dict[str, Any]
) -> dict[str, Any]:
    """Ramp one engine; its steps, where it stopped and, if asked, its system calls.

    A step that breaks a limit, or that other processes disturbed, is run again (see
    :data:`QUIET_SHARE`) before the ramp goes on or stops.
    """
    try:
        engine = start_engine(name, engine_cpu, cfg.nice, spare=gen.cpu, ports=cfg.ports)
    except EngineMissing as exc:
        log.warning("%s: missing (%s)", name, exc)
        return {"name": name, "status": "missing", "reason": str(exc), "steps": []}
    result: dict[str, Any] = {
        "name": name,
        "status": "measured",
        "version": engine.version,
        "setup": engine.setup,
        "steps": [],
    }
    ids = _StepIds()
    try:
        time.sleep(0.3)  # let it settle after starting
        rss_base = tree_rss_bytes(engine.pid)
        result["rss_base_bytes"] = rss_base
        have = 0
        stop: str | None = None
        for calls in cfg.steps:
            _add_calls(engine, gen, have, calls)
            have = calls
            attempts: list[dict[str, Any]] = []
            while True:
                step = _measure_step(engine, gen, calls, ids.take(), cfg, rss_base, baseline)
                _progress(name, step)
                attempts.append(step)
                stop = _verdict(step, cfg.profile, cfg.duration)
                busy = step["engine_core_others"] > QUIET_SHARE
                if (stop is None and not busy) or len(attempts) == cfg.attempts:
                    break
                if stop is not None and stop.startswith("the load generator"):
                    break
                log.info(
                    "%-9s %4d calls: %s; once more",
                    name,
                    calls,
                    stop or f"others took {100 * step['engine_core_others']:.0f} % of its core",
                )
            # one attempt within the limits shows the engine carries the load; among
            # those (or else among all), the one that others disturbed least
            passed = [a for a in attempts if _verdict(a, cfg.profile, cfg.duration) is None]
            step = min(passed or attempts, key=lambda a: a["engine_core_others"])
            stop = _verdict(step, cfg.profile, cfg.duration)
            step["attempts"] = [
                {k: a[k] for k in ATTEMPT_SUMMARY} for a in attempts if a is not step
            ]
            result["steps"].append(step)
            if stop is not None:
                break
        clean = [s for s in result["steps"] if _verdict(s, cfg.profile, cfg.duration) is None]
        result["max_clean_calls"] = clean[-1]["calls"] if clean else None
        result["max_clean_pps"] = clean[-1]["relayed_pps"] if clean else None
        result["stopped_because"] = stop or f"not reached by the last step ({have} calls)"
        if cfg.syscalls:
            # at the lightest load (about one packet per wake-up) and at the reference one
            loads = sorted({min(cfg.steps[0], have), min(cfg.reference_calls, have)})
            result["syscalls"] = []
            for calls in loads:
                try:
                    sc = profile_syscalls(engine, gen, calls, ids.take(), cfg)
                except EngineMissing as exc:
                    log.warning("%s: system calls not counted: %s", name, exc)
                    break
                result["syscalls"].append(sc)
                log.info(
                    "%-9s %s at %d calls: %.2f system calls per packet, %.2f failed, "
                    "EAGAIN receives %s (%s)",
                    name,
                    sc["tool"],
                    calls,
                    sc["syscalls_per_packet"] or 0,
                    sc["failed_syscalls_per_packet"] or 0,
                    "-"
                    if sc["eagain_receives_per_packet"] is None
                    else f"{sc['eagain_receives_per_packet']:.2f}",
                    ", ".join(
                        f"{n} {v['per_packet']:.2f}" for n, v in list(sc["by_call"].items())[:6]
                    ),
                )
    except BenchError as exc:
        log.error("%s: failed: %s", name, exc)
        result["status"] = "failed"
        result["reason"] = str(exc)
    finally:
        engine.close()
    return result


def reference_step(engine: dict[str, Any], calls: int) -> dict[str, Any] | None:
    """The engine's step at ``calls`` calls (or the largest below it)."""
    below = [s for s in engine["steps"] if s["calls"] <= calls]
    return below[-1] if below else None


def markdown(report: dict[str, Any]) -> str:
    """The results as Markdown: the comparison table, then every step."""
    prof = report["profile"]
    ref = report["reference_calls"]
    lines = [
        f"#### Media benchmark, {report['started']}",
        "",
        f"Each call: audio {prof['audio_pps']} packets/s of {prof['audio_size']} bytes and "
        f"video {prof['video_pps']} packets/s of {prof['video_size']} bytes, each way, "
        f"{report['duration_s']:g} s per step; engine pinned to CPU {report['engine_cpu']} "
        "(builtin-workers: its processes on every core, the generator's too), "
        f"load generator to CPU {report['generator_cpu']} (load average at start "
        f"{report['load_average']:.2f}, engine niceness {report['nice']}). Direct path: "
        "latency p50 "
        f"{report['baseline']['latency_p50_us']:.0f} us, p99 "
        f"{report['baseline']['latency_p99_us']:.0f} us.",
        "",
        f"| engine | CPU us/packet @{ref} calls | relayed pkt/s @{ref} | loss @{ref} "
        f"| added p50/p99 @{ref} (us) | max clean calls (pkt/s) | stopped because "
        "| syscalls/packet (failed) |",
        "|---|---:|---:|---:|---:|---:|---|---:|",
    ]
    for e in report["engines"]:
        if e["status"] != "measured":
            lines.append(f"| {e['name']} | {e['status']}: {e.get('reason', '')} | | | | | | |")
            continue
        s = reference_step(e, ref)
        profiles = e.get("syscalls") or []
        sc = profiles[-1] if profiles else None
        sys_text = (
            f"{sc['syscalls_per_packet']:.2f} ({sc['failed_syscalls_per_packet']:.2f})"
            if sc and sc["syscalls_per_packet"] is not None
            else "-"
        )
        clean = (
            f"{e['max_clean_calls']} ({e['max_clean_pps']:.0f})"
            if e["max_clean_calls"] is not None
            else "none"
        )
        if s is None:
            lines.append(f"| {e['name']} | - | - | - | - | {clean} | {e['stopped_because']} | - |")
            continue
        at = "" if s["calls"] == ref else f" (at {s['calls']})"
        cpu = "-" if s["cpu_us_per_packet"] is None else f"{s['cpu_us_per_packet']:.2f}"
        lines.append(
            f"| {e['name']} | {cpu}{at} | {s['relayed_pps']:.0f} "
            f"| {100 * s['loss_ratio']:.3f} % | {s['added_latency_p50_us']:.0f} / "
            f"{s['added_latency_p99_us']:.0f} | {clean} | {e['stopped_because']} | {sys_text} |"
        )
    lines += [
        "",
        "| engine | calls | relayed pkt/s | loss | latency p50/p99 (us) | added p50/p99 (us) "
        "| jitter mean/max (us) | CPU us/packet | engine core (others) | memory/call (kB) "
        "| generator core (others) | generator lag p99 (us) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for e in report["engines"]:
        for s in e["steps"]:
            mem = s["memory_per_call_bytes"]
            lines.append(
                f"| {e['name']} | {s['calls']} | {s['relayed_pps']:.0f} "
                f"| {100 * s['loss_ratio']:.3f} % "
                f"| {s['latency_p50_us']:.0f} / {s['latency_p99_us']:.0f} "
                f"| {s['added_latency_p50_us']:.0f} / {s['added_latency_p99_us']:.0f} "
                f"| {s['jitter_mean_us']:.1f} / {s['jitter_max_us']:.1f} "
                f"| {s['cpu_us_per_packet']:.2f} | {100 * s['engine_core_load']:.0f} % "
                f"({100 * s['engine_core_others']:.0f} %) "
                f"| {mem / 1024:.1f} | {100 * s['generator_core_load']:.0f} % "
                f"({100 * s['generator_core_others']:.0f} %) | {s['send_lag_p99_us']:.0f} |"
                if s["cpu_us_per_packet"] is not None and mem is not None
                else f"| {e['name']} | {s['calls']} | nothing relayed | | | | | | | | | |"
            )
    profiled = [(e, sc) for e in report["engines"] for sc in e.get("syscalls") or []]
    if profiled:
        lines += [
            "",
            "| engine | calls | counted by | system calls/packet | failed | EAGAIN receives "
            "| per packet, by call | loss meanwhile | CPU samples by binary |",
            "|---|---:|---|---:|---:|---:|---|---:|---|",
        ]
        for e, sc in profiled:
            if sc["syscalls_per_packet"] is None:
                continue
            eagain = sc["eagain_receives_per_packet"]
            shares = list((sc.get("cpu_by_binary") or {}).items())
            top = ", ".join(
                f"{n} {v['per_packet']:.2f}" for n, v in list(sc["by_call"].items())[:5]
            )
            lines.append(
                f"| {e['name']} | {sc['calls']} | {sc['tool']} "
                f"| {sc['syscalls_per_packet']:.2f} | {sc['failed_syscalls_per_packet']:.2f} "
                f"| {'-' if eagain is None else f'{eagain:.2f}'} | {top} "
                f"| {100 * sc['loss_ratio']:.2f} % "
                f"| {', '.join(f'{b} {v:.0f} %' for b, v in shares[:4]) or '-'} |"
            )
    return "\n".join(lines) + "\n"


def run(cfg: Config) -> tuple[dict[str, Any], Path]:
    """Run every engine; the report and the path of its JSON file."""
    gen_cpu, engine_cpu = cpus()
    os.sched_setaffinity(0, {gen_cpu})  # the harness keeps off the engine's core
    started = datetime.now(UTC)
    log.info(
        "engines on CPU %d, load generator and harness on CPU %d; load average %.2f",
        engine_cpu,
        gen_cpu,
        load_average(),
    )
    gen = LoadGenerator(gen_cpu)
    try:
        baseline = measure_baseline(gen, cfg)
        engines = [run_engine(name, gen, engine_cpu, cfg, baseline) for name in cfg.engines]
    finally:
        gen.close()
    report: dict[str, Any] = {
        "started": started.strftime("%Y-%m-%dT%H:%M:%S UTC"),
        "engine_cpu": engine_cpu,
        "generator_cpu": gen_cpu,
        "load_average": load_average(),
        "profile": asdict(cfg.profile),
        "duration_s": cfg.duration,
        "drain_s": cfg.drain,
        "steps": list(cfg.steps),
        "reference_calls": cfg.reference_calls,
        "nice": cfg.nice,
        "limits": {"loss_ratio": LOSS_LIMIT, "added_latency_p99_us": ADDED_P99_LIMIT_US},
        "baseline": {"calls": cfg.baseline_calls, **baseline},
        "engines": engines,
    }
    cfg.results_dir.mkdir(parents=True, exist_ok=True)
    stem = cfg.results_dir / f"media-{started.strftime('%Y%m%dT%H%M%SZ')}"
    json_path = stem.with_suffix(".json")
    if cfg.plot:
        from bench.media_plot import plot

        report["plot"] = str(plot(report, stem.with_suffix(".png")))
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    return report, json_path


def _positive_ints(text: str) -> tuple[int, ...]:
    values = tuple(int(v) for v in text.split(","))
    if not values or min(values) < 1 or list(values) != sorted(set(values)):
        raise argparse.ArgumentTypeError("increasing positive integers, comma-separated")
    return values


def _port_range(text: str) -> range:
    """``LOW-HIGH``, both included: an even first port and room for a few calls."""
    try:
        low, high = (int(part) for part in text.split("-"))
    except ValueError:
        raise argparse.ArgumentTypeError("LOW-HIGH, e.g. 10000-19999") from None
    if not 1024 <= low < high <= 65535 or low % 2 or high - low < 63:
        raise argparse.ArgumentTypeError("an even LOW from 1024, at least 64 ports, HIGH <= 65535")
    return range(low, high + 1)


def parse_args(argv: Sequence[str] | None) -> Config:
    """The run's configuration from the command line."""
    p = argparse.ArgumentParser(prog="python -m bench.media", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="a few seconds, small N (CI)")
    p.add_argument("--engines", default=",".join(ENGINE_NAMES), help="comma-separated")
    p.add_argument("--steps", type=_positive_ints, help="calls per step, comma-separated")
    p.add_argument("--video-pps", type=int, default=None, help="40-200 (default 200, quick 40)")
    p.add_argument("--duration", type=float, default=None, help="seconds of load per step")
    p.add_argument("--reference-calls", type=int, default=REFERENCE_CALLS)
    p.add_argument(
        "--syscalls",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="count system calls per packet with strace (default: full mode)",
    )
    p.add_argument(
        "--nice",
        type=int,
        default=0,
        help="niceness of the engine, e.g. -10 (root) when others share its core",
    )
    p.add_argument(
        "--attempts", type=int, default=3, help="runs of a disturbed step at most (1: no retry)"
    )
    p.add_argument(
        "--ports",
        type=_port_range,
        default=PORTS,
        help=f"LOW-HIGH: the engines' relay ports (default {PORTS.start}-{PORTS.stop - 1})",
    )
    p.add_argument("--no-plot", action="store_true")
    p.add_argument("--results-dir", type=Path, default=DEFAULT_RESULTS_DIR)
    a = p.parse_args(argv)
    engines = tuple(e for e in a.engines.split(",") if e)
    unknown = set(engines) - set(ENGINE_NAMES)
    if unknown:
        p.error(f"unknown engines {sorted(unknown)}: choose among {', '.join(ENGINE_NAMES)}")
    video_pps = a.video_pps if a.video_pps is not None else (40 if a.quick else 200)
    if not 0 <= video_pps <= 1000:
        p.error("--video-pps must be 0-1000")
    steps = a.steps or (QUICK_STEPS if a.quick else FULL_STEPS)
    return Config(
        engines=engines,
        steps=steps,
        profile=Profile(video_pps=video_pps),
        duration=a.duration or (1.0 if a.quick else 3.0),
        drain=0.2 if a.quick else 0.3,
        baseline_calls=min(steps[0], 10),
        reference_calls=min(a.reference_calls, steps[-1]),
        syscalls=a.syscalls if a.syscalls is not None else not a.quick,
        results_dir=a.results_dir,
        plot=not a.no_plot,
        nice=a.nice,
        attempts=max(1, a.attempts),
        ports=a.ports,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; 0 when every engine that is installed was measured."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    cfg = parse_args(argv)
    try:
        report, path = run(cfg)
    except BenchError as exc:
        log.error("%s", exc)
        return 2
    log.info("results written to %s", path)
    sys.stdout.write(markdown(report))
    return 1 if any(e["status"] == "failed" for e in report["engines"]) else 0


if __name__ == "__main__":
    sys.exit(main())
