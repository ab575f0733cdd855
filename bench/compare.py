#!/usr/bin/env python3
"""Compare the CPU per call of two versions of the gateway, loaded side by side.

Runs of ``bench/signalling.py`` one after the other differ by up to 15 % on a shared
machine with the same code, which hides the few percent a change is worth. Here both
versions run at the same time, pinned to the same core, each behind its own SIPp caller
and callee: whatever the machine does, it does to both. The figure is the ratio of their
CPU milliseconds per call, round by round (the two swap their ports each round); it
varied by about 1 % from round to round here.

    .venv/bin/python bench/compare.py --base HEAD~1        # HEAD~1 against the work tree
    .venv/bin/python bench/compare.py --base v1 --head v2 --rounds 6 --calls 3000

A revision is exported with ``git archive``; ``--head`` defaults to the work tree as it
is. Each gateway runs from its own copy of ``gateway/`` with the project venv's
libraries (``python -S``, so that the venv's editable install of this checkout does not
take precedence), on that copy's ``dialplans/loadtest.yaml``.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from signalling import (
    CLOCK_TICKS,
    ROOT,
    SCENARIO_DIR,
    SERVICE,
    VENV_BIN,
    BenchError,
    ProcessRegistry,
    _pinning,
    _signals_unwind,
    check_ports_free,
    parse_sipp_stats,
    process_tree_ticks,
    wait_for_udp_port,
)

log = logging.getLogger("compare")

STATION = "127.0.0.1:5070"  # where dialplans/loadtest.yaml routes the service "bench"


@dataclass(frozen=True)
class Slot:
    """The ports of one side: the gateway, its SIPp callee and caller, its HTTP port."""

    sip: int
    uas: int
    uac: int
    http: int


@dataclass(frozen=True)
class Version:
    """One version of the gateway, unpacked: what it is called and where it lives."""

    label: str
    tree: Path


def export(rev: str | None, dest: Path) -> Version:
    """The work tree (``rev`` None), a directory holding ``gateway/`` and ``dialplans/``
    (a copy built with ``scripts/build-core``, say), or ``rev`` unpacked from git."""
    if rev is None:
        return Version("work tree", ROOT)
    if (Path(rev) / "gateway").is_dir():
        return Version(rev, Path(rev).resolve())
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", rev, "gateway", "dialplans"],
        capture_output=True,
        check=False,
    )
    if archive.returncode != 0:
        raise BenchError(f"git archive {rev}: {archive.stderr.decode().strip()}")
    dest.mkdir(parents=True)
    tar_path = dest / "tree.tar"
    tar_path.write_bytes(archive.stdout)
    with tarfile.open(tar_path) as tar:
        tar.extractall(dest, filter="data")
    tar_path.unlink()
    return Version(rev, dest)


def gateway_env(version: Version) -> dict[str, str]:
    """Environment that imports ``gateway`` from the version's tree, libraries from the venv."""
    env = dict(os.environ)
    paths = sysconfig.get_paths()
    libs = dict.fromkeys([paths["purelib"], paths["platlib"]])
    env["PYTHONPATH"] = os.pathsep.join([str(version.tree), *libs])
    return env


def check_import(version: Version) -> None:
    """Fail unless ``python -S`` really takes ``gateway`` from the version's tree."""
    out = subprocess.run(
        [str(VENV_BIN / "python"), "-S", "-c", "import gateway; print(gateway.__file__)"],
        env=gateway_env(version),
        cwd=version.tree,  # as the gateway runs: the current directory comes first
        capture_output=True,
        text=True,
        check=False,
    )
    where = Path(out.stdout.strip()).resolve() if out.returncode == 0 else None
    if where is None or version.tree.resolve() not in where.parents:
        raise BenchError(f"{version.label}: gateway imported from {where}: {out.stderr[-500:]}")


def dialplan_for(version: Version, slot: Slot, work: Path) -> Path:
    """The version's own loadtest dialplan, its station moved to the slot's SIPp callee."""
    text = (version.tree / "dialplans" / "loadtest.yaml").read_text()
    if STATION not in text:
        raise BenchError(f"{version.label}: dialplans/loadtest.yaml has no station {STATION}")
    path = work / f"loadtest-{slot.uas}.yaml"
    path.write_text(text.replace(STATION, f"127.0.0.1:{slot.uas}"))
    return path


def one_round(
    procs: ProcessRegistry,
    pairs: Sequence[tuple[Version, Slot]],
    rate: int,
    calls: int,
    work: Path,
    cpus: dict[str, frozenset[int] | None],
) -> list[float]:
    """Load every (version, slot) pair at once; return each one's CPU ms per call."""
    sipp = shutil.which("sipp") or "sipp"
    started = []
    for version, slot in pairs:
        log_path = work / f"sut-{slot.sip}.log"
        argv = [
            str(VENV_BIN / "python"), "-S", "-m", "gateway", "run",
            "--dialplan", str(dialplan_for(version, slot, work)),
            "--sip-host", "127.0.0.1", "--sip-port", str(slot.sip),
            "--http-port", str(slot.http), "--log-level", "WARNING",
        ]  # fmt: skip
        cli = (version.tree / "gateway" / "cli.py").read_text()
        for flag in ("--h323-port", "--ras-port"):  # two versions side by side: not
            if flag in cli:  # both on 1720 and 1719
                argv += [flag, "0"]
        with log_path.open("w") as out:
            sut = procs.start(
                argv,
                cwd=version.tree,
                stdout=out,
                stderr=out,
                env=gateway_env(version),
                cpus=cpus["sut_cpus"],
            )
        started.append((sut, log_path))
    for (sut, log_path), (_, slot) in zip(started, pairs, strict=True):
        wait_for_udp_port(sut, slot.sip, "gateway", log_path)
    common = ["-i", "127.0.0.1", "-nostdin", "-recv_timeout", "5000", "-timeout_error"]
    callees = []
    for _, slot in pairs:
        uas_dir = work / f"uas-{slot.uas}"
        uas_dir.mkdir(exist_ok=True)
        argv = [sipp, "-sf", str(SCENARIO_DIR / "uas.xml"), "-p", str(slot.uas), *common]
        with (uas_dir / "out.log").open("w") as out:
            uas = procs.start(
                [*argv, "-m", str(calls + 100)],  # the warm-up calls and the measured ones
                cwd=uas_dir,
                stdout=subprocess.DEVNULL,
                stderr=out,
                cpus=cpus["sipp_cpus"],
            )
        wait_for_udp_port(uas, slot.uas, "SIPp callee", uas_dir / "out.log")
        callees.append(uas)

    def callers(count: int, tag: str) -> list[tuple[subprocess.Popen[bytes], Path]]:
        out = []
        for _, slot in pairs:
            uac_dir = work / f"uac-{slot.uac}-{tag}"
            uac_dir.mkdir(exist_ok=True)
            argv = [
                sipp, "-sf", str(SCENARIO_DIR / "uac.xml"), "-s", SERVICE,
                f"127.0.0.1:{slot.sip}", "-p", str(slot.uac), "-r", str(rate),
                "-m", str(count), *common, "-trace_stat", "-stf", str(uac_dir / "stats.csv"),
            ]  # fmt: skip
            uac = procs.start(
                argv,
                cwd=uac_dir,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                cpus=cpus["sipp_cpus"],
            )
            out.append((uac, uac_dir / "stats.csv"))
        return out

    for uac, _ in callers(100, "warmup"):  # warm both up, unmeasured
        uac.wait()
    time.sleep(0.5)
    before = [process_tree_ticks(sut.pid) for sut, _ in started]
    running = callers(calls, "measured")
    for uac, _ in running:
        uac.wait()
    after = [process_tree_ticks(sut.pid) for sut, _ in started]
    for (uac, stats), (version, _) in zip(running, pairs, strict=True):
        failed = parse_sipp_stats(stats).failed if stats.exists() else calls
        if uac.returncode != 0 or failed:
            raise BenchError(f"{version.label}: {failed} failed calls (SIPp exit {uac.returncode})")
    for proc in [*callees, *(sut for sut, _ in started)]:
        procs.stop(proc)
    return [(b - a) * 1000 / CLOCK_TICKS / calls for a, b in zip(before, after, strict=True)]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the rounds and print the per-round ratio head / base."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base", required=True, help="git revision measured against")
    p.add_argument("--head", help="git revision or directory to measure (default: the work tree)")
    p.add_argument("--rate", type=int, default=100, help="calls/s for each side (default 100)")
    p.add_argument("--calls", type=int, default=2000, help="measured calls per round and side")
    p.add_argument("--rounds", type=int, default=4, help="rounds, ports swapped each time")
    p.add_argument(
        "--port-base",
        type=int,
        default=5060,
        help="first side: SIP on P, callee P+10, caller P+1, HTTP P+20; second side: P+100...",
    )
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    pb = a.port_base
    slots = tuple(Slot(pb + d, pb + d + 10, pb + d + 1, pb + d + 20) for d in (0, 100))
    procs = ProcessRegistry()
    with tempfile.TemporaryDirectory(prefix="vrgw-compare-") as tmp, _signals_unwind():
        work = Path(tmp)
        try:
            check_ports_free(
                [p for s in slots for p in (s.sip, s.uas, s.uac)], [s.http for s in slots]
            )
            base = export(a.base, work / "base")
            head = export(a.head, work / "head")
            for version in (base, head):
                check_import(version)
            cpus = _pinning(True)  # both gateways on the last CPU, SIPp on the others
            figures: dict[str, list[float]] = {"base": [], "head": []}
            for n in range(a.rounds):
                order = [("base", base), ("head", head)]
                if n % 2:
                    order.reverse()
                round_dir = work / f"round{n + 1}"
                round_dir.mkdir()
                ms = one_round(
                    procs,
                    [(v, s) for (_, v), s in zip(order, slots, strict=True)],
                    a.rate,
                    a.calls,
                    round_dir,
                    cpus,
                )
                for (name, _), value in zip(order, ms, strict=True):
                    figures[name].append(value)
                log.info(
                    "round %d: base %.3f, head %.3f ms/call",
                    n + 1,
                    figures["base"][-1],
                    figures["head"][-1],
                )
        except BenchError as exc:
            print(f"compare: {exc}", file=sys.stderr)
            return 1
        finally:
            procs.stop_all()
    ratios = [h / b for b, h in zip(figures["base"], figures["head"], strict=True)]
    print(f"base {base.label}: CPU ms per call {', '.join(f'{x:.3f}' for x in figures['base'])}")
    print(f"head {head.label}: CPU ms per call {', '.join(f'{x:.3f}' for x in figures['head'])}")
    print(f"head / base, round by round: {', '.join(f'{r:.3f}' for r in ratios)}")
    print(f"head / base, median: {statistics.median(ratios):.3f} at {a.rate} calls/s each")
    return 0


if __name__ == "__main__":
    sys.exit(main())
