#!/usr/bin/env python3
"""Longer coverage-guided fuzzing of the gateway's decoders (issue 13, acceptance 8).

Runs each target of ``tests/fuzz/targets.py`` under atheris for ``--seconds`` (default
600 per target), one after the other, from a corpus seeded with the real captures of
``shared/vectors/`` (read at run time) and kept between runs in ``--corpus``
(default ``bench/results/fuzz-corpus/``, outside version control), so that a later run
starts from the coverage an earlier one reached. A crash (an exception other than the
module's own error type) leaves its input in ``--artifacts`` and makes the command exit
1; turn each such input into a regression test in ``tests/fuzz/test_regressions.py``
with the bytes as a literal, then fix the decoder.

    nice -n 10 .venv/bin/python bench/fuzz.py                        # every target, 10 min each
    nice -n 10 .venv/bin/python bench/fuzz.py --targets sip,sdp --seconds 120
    nice -n 10 .venv/bin/python bench/fuzz.py --jobs 2                # two targets at once
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "fuzz"))

import corpus  # noqa: E402

DEFAULT_CORPUS = ROOT / "bench" / "results" / "fuzz-corpus"
DEFAULT_ARTIFACTS = ROOT / "bench" / "results" / "fuzz-crashes"


def run_target(target: str, seconds: int, corpus_root: Path, artifacts: Path) -> dict[str, Any]:
    """Fuzz one target for ``seconds``; return its libFuzzer figures and any crash file."""
    folder = corpus_root / target
    seeded = corpus.write_corpus(target, folder)  # seeds again: new captures join in
    artifacts.mkdir(parents=True, exist_ok=True)
    before = set(artifacts.iterdir())
    started = time.monotonic()
    cmd = corpus.fuzz_command(target, folder, artifacts, seconds=seconds, seed=int(time.time()))
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 300)
    stats = dict(re.findall(r"stat::(\w+):\s+(\d+)", result.stderr))
    cov = re.findall(r"cov: (\d+) ft: (\d+) corp: (\d+)", result.stderr)
    crashes = sorted(str(p) for p in set(artifacts.iterdir()) - before)
    return {
        "target": target,
        "seconds": round(time.monotonic() - started, 1),
        "seeds": seeded,
        "exit_code": result.returncode,
        "executions": int(stats.get("number_of_executed_units", 0)),
        "coverage": int(cov[-1][0]) if cov else None,
        "features": int(cov[-1][1]) if cov else None,
        "corpus": int(cov[-1][2]) if cov else None,
        "crashes": crashes,
        "output_tail": result.stderr[-3000:] if result.returncode else "",
    }


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--targets", default=",".join(corpus.TARGET_NAMES))
    p.add_argument("--seconds", type=int, default=600, help="per target (default 600)")
    p.add_argument("--jobs", type=int, default=1, help="targets fuzzed at once")
    p.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    p.add_argument("--artifacts", type=Path, default=DEFAULT_ARTIFACTS)
    p.add_argument("--report", type=Path, default=None, help="JSON report (default: none)")
    a = p.parse_args(argv)
    names = [t for t in a.targets.split(",") if t]
    unknown = set(names) - set(corpus.TARGET_NAMES)
    if unknown:
        p.error(f"unknown targets: {', '.join(sorted(unknown))}")
    with ThreadPoolExecutor(max_workers=max(1, a.jobs)) as pool:
        results = list(pool.map(lambda t: run_target(t, a.seconds, a.corpus, a.artifacts), names))
    for r in results:
        state = "CRASH" if r["exit_code"] else "ok"
        print(
            f"{r['target']:9} {state:5} {r['executions']:>9} runs in {r['seconds']:>6} s, "
            f"cov {r['coverage']} ft {r['features']} corpus {r['corpus']} "
            f"(seeds {r['seeds']}) {' '.join(r['crashes'])}"
        )
        if r["exit_code"]:
            print(r["output_tail"])
    if a.report is not None:
        report = {"finished": datetime.now(UTC).isoformat(timespec="seconds"), "runs": results}
        a.report.write_text(json.dumps(report, indent=2) + "\n")
    return 1 if any(r["exit_code"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
