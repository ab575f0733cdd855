"""Random identifiers for tags, branches and Call-IDs (RFC 3261 19.3, 8.1.1.4, 8.1.1.7).

They must be unique and cryptographically random. The bytes come from ``os.urandom``
(the kernel's CSPRNG, as :mod:`secrets` uses) drawn a few kilobytes at a time, so that a
call, which needs about ten identifiers, does not pay a system call for each.
"""

from __future__ import annotations

import os

_POOL_SIZE = 4096


class _Pool:
    __slots__ = ("data", "pos")

    def __init__(self) -> None:
        self.data = b""
        self.pos = 0

    def hex(self, nbytes: int) -> str:
        end = self.pos + nbytes
        if end > len(self.data):
            self.data = os.urandom(_POOL_SIZE)
            self.pos, end = 0, nbytes
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk.hex()


_pool = _Pool()


def random_hex(nbytes: int) -> str:
    """``2 * nbytes`` hexadecimal digits of fresh randomness (never handed out twice)."""
    return _pool.hex(nbytes)


def _after_fork() -> None:
    # A forked child must not hand out the same identifiers as its parent.
    _pool.data = b""
    _pool.pos = 0


os.register_at_fork(after_in_child=_after_fork)
