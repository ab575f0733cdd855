"""Pytest hooks for the whole suite; the helpers themselves live in harness.py."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import _stop_captures, gateway_factory  # noqa: F401 - fixtures


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked ``long`` run first, so that under ``-n 2`` (pytest-xdist, as
    scripts/test runs the suite) the longest one overlaps the rest instead of ending
    the run alone on one worker. The order of everything else is kept."""
    items.sort(key=lambda item: item.get_closest_marker("long") is None)
