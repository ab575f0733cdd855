"""The optional compiled core (scripts/build-core, mypyc) passes the core's own tests.

The build runs on a copy of the sources, so this checkout stays pure Python, and without
the C compiler's optimisation and debug information (``--quick``: the same C code, in
less of the compiler's time; what it does is checked here, how fast it runs is bench/'s
business); the SIP, model, controller, desk, media relay, SIP transport and dialplan
tests, and the records tests that go through them, then run against the copy, after a
check that they really import the extension modules (a compiled module also checks the
classes of its arguments at run time, which a fake of the wrong kind would trip). Left
to the main run: the tests of what stays interpreted and compiles nothing of its own,
the rtpengine daemon's client and the wheel's packaging (the two catalogue tests that
build a wheel: the catalogue's loader stays interpreted).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from harness import ROOT, VECTORS, batch, worker_ports

pytestmark = [pytest.mark.interop, pytest.mark.long]  # runs a C compiler for a minute


def test_core_compiled_with_mypyc_passes_its_tests(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    # Neither extension modules nor bytecode: the main run's other workers write
    # __pycache__ files (a temporary name, then a rename) while this copies, and a file
    # that vanishes mid-copy failed the whole test in a CI run.
    skip = shutil.ignore_patterns("*.so", "__pycache__")
    for part in ("gateway", "scripts", "tests", "codecs", "dialplans"):
        shutil.copytree(ROOT / part, tree / part, ignore=skip)
    for name in ("pyproject.toml", "README.md"):  # the wheel test of tests/model builds one
        shutil.copy(ROOT / name, tree / name)
    (tree / ".venv").symlink_to(ROOT / ".venv")
    build = subprocess.run(
        batch([str(tree / "scripts" / "build-core"), "--quick"]),
        cwd=tree,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    compiled = sorted(p.name for p in (tree / "gateway" / "sip").glob("*.so"))
    assert any(name.startswith("transaction.") for name in compiled), compiled
    libs = [p for p in sys.path if p.endswith("site-packages")]
    probe = (
        "import gateway.sip.transaction as t, gateway.model.sdp as s, gateway.call.b2bua as b, "
        "gateway.partners.desk as d, gateway.media.forwarding as f, "
        "gateway.edge.sip_transport as e, gateway.metrics as m, gateway.dialplan.model as p, "
        "gateway.logs as g, gateway.clock as c, gateway.state.records as r; "
        "files = [x.__file__ for x in (t, s, b, d, f, e, m, p, g, c, r)]; "
        "assert all(f.endswith('.so') for f in files), files"
    )
    env = {
        "PYTHONPATH": ":".join([str(tree), *libs]),
        "PATH": "/usr/bin:/bin",
        "VRGW_SHARED": str(VECTORS.parent),  # the real captures the SIP tests read
        "VRGW_TEST_PORTS": worker_ports(),  # the main run's other workers use the rest
    }
    check = subprocess.run(
        [sys.executable, "-S", "-c", probe], cwd=tree, env=env, capture_output=True, text=True
    )
    assert check.returncode == 0, check.stderr
    run = subprocess.run(
        [
            sys.executable,
            "-S",
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            # One process: two xdist workers took 54 CPU-s against 38 (each collects and
            # imports everything), and the suite around this test keeps both cores busy;
            # its wall time grows by about 20 s, still well inside the suite's.
            "-p",
            "no:xdist",
            "tests/sip",
            "tests/model",
            "tests/call",
            "tests/partners",
            "tests/media",
            "tests/edge",
            "tests/state",
            "tests/dialplan/test_dialplan_loader.py",
            "tests/test_ua_policies.py",
            "-k",
            "not rtpengine and not test_the_wheel_ships_the_catalogue_as_shared_data"
            " and not test_the_installed_loader_finds_the_catalogue_under_sys_prefix",
        ],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout[-4000:]
    assert " passed" in run.stdout.splitlines()[-1]
