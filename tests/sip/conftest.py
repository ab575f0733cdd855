"""Shared fixtures of the SIP tests: the captured messages of ``vectors.py``.

tests/sip is not a package, so the helper module is loaded under a name no other test
directory can shadow (``sip_vectors``) and the test modules import it by that name.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest


def _load_helper() -> None:
    if "sip_vectors" in sys.modules:
        return
    spec = importlib.util.spec_from_file_location(
        "sip_vectors", Path(__file__).with_name("vectors.py")
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["sip_vectors"] = module
    spec.loader.exec_module(module)


_load_helper()

import sip_vectors  # noqa: E402


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run any test that asks for ``sip_vector`` once per captured message."""
    if "sip_vector" in metafunc.fixturenames:
        vectors = sip_vectors.load_vectors()
        metafunc.parametrize("sip_vector", vectors, ids=[v.id for v in vectors])
