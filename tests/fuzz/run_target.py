"""Run one fuzz target of ``targets.py`` under atheris (libFuzzer inside CPython).

    python tests/fuzz/run_target.py TARGET [libFuzzer options] [CORPUS_DIR ...]

The target's own modules are imported inside ``atheris.instrument_imports`` so that
libFuzzer sees their branch coverage, and so is the third-party decoder under them
whose branches are the protocol's: pycrate's PER runtime (``pycrate_asn1rt``: the
H.225.0 and H.245 decoding is mostly there) or PyYAML. pycrate's generated type
definitions, pydantic and the other targets' modules are left out, which keeps the
start fast. An exception that escapes
a target is a crash: atheris prints its traceback, writes the input to
``-artifact_prefix`` and the process exits with a non-zero code.
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

HERE = Path(__file__).resolve().parent
GATEWAY = HERE.parents[1] / "gateway"

# What each target instruments: its own modules and the third-party decoder under them;
# the rest is imported plainly. Measured: a second or less to start, but 4 s for the
# H.323 targets, most of it atheris rewriting pycrate's PER runtime (17,000 lines).
INSTRUMENTED = {
    "sip": ["gateway.sip", "gateway.model"],
    "sdp": ["gateway.model"],
    "q931": ["gateway.h323", "pycrate_asn1rt"],
    "h245": ["gateway.h323", "pycrate_asn1rt"],
    "ras": ["gateway.h323", "pycrate_asn1rt"],
    "tpkt": ["gateway.h323"],
    "rtp": ["gateway.media"],
    "dialplan": ["gateway.dialplan", "yaml"],
    "selfcheck": ["targets"],
}


def is_own(module: str, own: list[str]) -> bool:
    """Whether ``module`` is one of ``own`` or inside one of them."""
    return any(module == name or module.startswith(f"{name}.") for name in own)


def _outside(own: list[str]) -> list[str]:
    """The gateway's modules that are not the target's own.

    Workaround (atheris 2.3): ``instrument_imports(include=...)`` keeps only the first part
    of each name (``gateway.h323`` instruments all of ``gateway``), and ``exclude`` takes
    exact module names; the gateway's other modules are named here from its source tree,
    so that a target's coverage is its own decoder's and its start does not rewrite the
    bytecode of every module ``targets`` imports.
    """
    root = GATEWAY.parent
    names = [
        ".".join(path.relative_to(root).with_suffix("").parts).removesuffix(".__init__")
        for path in GATEWAY.rglob("*.py")
    ]
    return [name for name in names if not is_own(name, own)]


def main() -> None:
    name = sys.argv[1] if len(sys.argv) > 1 else ""
    if name not in INSTRUMENTED:
        sys.exit(f"usage: run_target.py {{{','.join(INSTRUMENTED)}}} [libFuzzer args]")
    sys.path.insert(0, str(HERE))  # targets.py, beside this file
    own = INSTRUMENTED[name]
    with atheris.instrument_imports(include=own, exclude=_outside(own)):
        import targets
    target = targets.TARGETS[name]
    atheris.Setup([sys.argv[0], *sys.argv[2:]], target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
