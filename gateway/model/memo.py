"""The one cache of parsed values, shared by the SIP stack and the SDP model.

A SIP call repeats itself: the same Request-URI, From and To addresses, CSeq values,
header names, Via sent-by and SDP ``c=`` lines come back in every message of a call and
of the calls after it. Each parser whose results are worth keeping wraps its pure parse
function in a :class:`Memo`; every such cache follows the same rules, written once here.

It lives in the bottom layer (it imports nothing of the gateway) because the SDP model
uses it as well as ``gateway.sip``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

V = TypeVar("V")


class Memo(dict[str, V]):
    """What a pure parse gave for each short text seen lately: ``memo[text]`` parses once.

    The rules, the same for every cache of the stack:

    - a text of at most ``max_len`` characters is kept, a longer one is parsed each time
      (a peer cannot fill the memo with long junk);
    - at most ``size`` texts are kept: a full memo is emptied before it takes the next one
      (cheaper per lookup than an LRU, and what a call reuses comes back within a few
      calls of a clearing);
    - errors are never kept, so a malformed text raises each time, as a cold parse would;
    - values are shared by every caller that asks for the same text, so they must be
      immutable (frozen dataclasses with immutable fields, tuples, strings).

    It is a ``dict`` whose ``__missing__`` parses: ``memo[text]`` is the parsed value.
    Modules export the bound ``memo.__getitem__`` as their parse function (``parse_uri =
    URI_MEMO.__getitem__``): a hit is then one call in C, no Python frame.
    """

    __slots__ = ("_max_len", "_parse", "_size")

    def __init__(self, parse: Callable[[str], V], *, max_len: int = 256, size: int = 4096) -> None:
        super().__init__()
        self._parse = parse
        self._max_len = max_len
        self._size = size

    def __missing__(self, text: str) -> V:
        value = self._parse(text)
        if len(text) <= self._max_len:
            self.seed(text, value)
        return value

    def seed(self, text: str, value: V) -> None:
        """Keep ``value`` as what ``text`` parses to; the caller vouches that it is."""
        if len(self) >= self._size:
            self.clear()
        self[text] = value
