"""Bounded coverage-guided fuzzing of every decoder (issue 13, acceptance 8).

Each target of ``targets.py`` runs under atheris (libFuzzer) in a subprocess, over a
corpus seeded from the real captures of ``shared/vectors/`` (written to the test's own
temporary folder, never to the repository), for a few thousand inputs: a few seconds
each. A target fails the test when an input makes its decoder raise anything but the
module's own error type (or breaks a round trip): the test prints the traceback atheris
gave and the input, which then becomes a literal in ``test_regressions.py``. The longer
run is ``bench/fuzz.py``.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from harness import batch

from .corpus import TARGET_NAMES, fuzz_command, write_corpus

# Inputs per target in the suite. The dialplan loader runs PyYAML's pure-Python composer
# and pydantic for each input (about 10 ms for the 5 kB example) and the H.323 decoders
# pycrate: fewer for them.
RUNS = {"dialplan": 1000, "q931": 1500, "h245": 1500, "ras": 1500}
DEFAULT_RUNS = 3000


def _crash_report(result: subprocess.CompletedProcess[str], artifacts: Path) -> str:
    inputs = [f"{p.name}: {p.read_bytes()!r}" for p in sorted(artifacts.iterdir())]
    # atheris prints the Python traceback on stdout, libFuzzer its report on stderr
    output = f"{result.stdout[-3000:]}\n{result.stderr[-2000:]}"
    return f"{output}\ncrashing inputs:\n" + "\n".join(inputs)


@pytest.mark.batch
@pytest.mark.parametrize("target", TARGET_NAMES)
def test_decoder_keeps_its_contract_under_fuzzing(target: str, tmp_path: Path) -> None:
    pytest.importorskip(
        "atheris", reason="atheris is one of the test extras: pip install -e .[test]"
    )
    corpus, artifacts = tmp_path / "corpus", tmp_path / "crashes"
    artifacts.mkdir()
    seeded = write_corpus(target, corpus)
    assert seeded > 0
    runs = RUNS.get(target, DEFAULT_RUNS)
    result = subprocess.run(
        batch(fuzz_command(target, corpus, artifacts, runs=runs, seed=13)),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, _crash_report(result, artifacts)
    # libFuzzer's own count: the runs asked for, or a few more (it counts some seed
    # inputs again when it reduces the corpus), never fewer
    done = re.search(r"Done (\d+) runs", result.stderr)
    assert done is not None and int(done.group(1)) >= runs, result.stderr[-2000:]
    assert not list(artifacts.iterdir()), _crash_report(result, artifacts)
    # Only the target's own modules carry coverage counters (atheris names each one it
    # rewrites): the others' branches would only blur what the fuzzer sees, and
    # rewriting all of the gateway cost each start a second or more.
    from .run_target import INSTRUMENTED, is_own

    own = INSTRUMENTED[target]
    rewritten = re.findall(r"^INFO: Instrumenting (\S+)$", result.stderr, re.MULTILINE)
    assert rewritten, result.stderr[-2000:]
    stray = [module for module in rewritten if not is_own(module, own)]
    assert not stray, f"{target} instruments {stray} besides {own}"


def test_a_broken_contract_is_reported_with_its_input(tmp_path: Path) -> None:
    """The harness can fail: a target that raises outside its contract is a crash, and
    the input that did it is kept."""
    pytest.importorskip(
        "atheris", reason="atheris is one of the test extras: pip install -e .[test]"
    )
    corpus, artifacts = tmp_path / "corpus", tmp_path / "crashes"
    corpus.mkdir()
    artifacts.mkdir()
    (corpus / "seed").write_bytes(b"crash here")
    result = subprocess.run(
        fuzz_command("selfcheck", corpus, artifacts, runs=100),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "KeyError: 'a decoder raised outside its contract'" in result.stdout, result.stdout
    crashes = list(artifacts.iterdir())
    assert [p.read_bytes() for p in crashes] == [b"crash here"], crashes
