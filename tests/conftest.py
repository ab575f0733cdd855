"""Pytest hooks for the whole suite; the helpers themselves live in harness.py."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import _stop_captures, gateway_factory  # noqa: F401 - fixtures


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked ``long`` run first, one to a worker: pytest-xdist (as scripts/test runs
    the suite, with ``--maxschedchunk 1``) hands each worker two tests to begin with, so
    each long test is followed by a short one and no worker starts with two long ones in
    a row. The tests marked ``batch`` go among those of ``tests/interop``; the order of
    everything else is kept."""
    long = [item for item in items if item.get_closest_marker("long") is not None]
    rest = [item for item in items if item.get_closest_marker("long") is None]
    items[:] = []
    for first in long:
        items.append(first)
        if rest:
            items.append(rest.pop(0))
    items.extend(_with_batch_among_interop(rest))


def _with_batch_among_interop(items: list[pytest.Item]) -> list[pytest.Item]:
    """``items`` with those marked ``batch`` (CPU-bound, at nice 19) moved among the tests
    of ``tests/interop``, one every so many, evenly: those mostly wait on peers and
    timers, and the batch work takes the cores they leave idle instead of competing with
    the in-process tests."""
    batch = [item for item in items if item.get_closest_marker("batch") is not None]
    rest = [item for item in items if item.get_closest_marker("batch") is None]
    interop = [
        i
        for i, item in enumerate(rest)
        if item.path.relative_to(item.config.rootpath).parts[:2] == ("tests", "interop")
    ]
    if not batch or not interop:
        return items
    step = len(interop) / len(batch)
    places = {interop[int(k * step)]: item for k, item in enumerate(batch)}
    merged: list[pytest.Item] = []
    for i, item in enumerate(rest):
        merged.append(item)
        if i in places:
            merged.append(places[i])
    return merged
