"""Event-loop calls whose declared types uvloop does not keep.

A module compiled by mypyc (scripts/build-core) checks at run time that a call returns
what its declaration says, even when the result is thrown away; these calls declare
what uvloop really returns. No I/O here: the loop is handed in.
"""

from __future__ import annotations

from typing import Protocol


class Readers(Protocol):
    """The part of an event loop that watches descriptors (asyncio's or uvloop's)."""

    def remove_reader(self, fd: int, /) -> object:
        """Stop watching ``fd``: asyncio returns a bool, uvloop None."""


def stop_reading(loop: Readers, fd: int) -> None:
    """``loop.remove_reader(fd)``. Called directly, a compiled caller would expect the
    bool of typeshed's declaration and refuse uvloop's None with a TypeError."""
    loop.remove_reader(fd)


__all__ = ["Readers", "stop_reading"]
