"""Pytest hooks for the whole suite; the helpers themselves live in harness.py."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import _stop_captures, gateway_factory  # noqa: F401 - fixtures
