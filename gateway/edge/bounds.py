"""Bounds on the stream connections one listener holds, per source address and in total.

RFC 3261 26.3.2.4 asks a SIP server to protect itself against denial of service; H.323
says nothing of the kind for its TCP ports (H.225.0 7.1, H.245 on its own connection),
and the same attack works there: a source that opens connections and never closes
them holds a descriptor and a buffer each. A listener asks :meth:`ConnectionBounds.admit`
for each accepted connection (before reading a byte from it), and calls
:meth:`ConnectionBounds.release` once it is gone. A refusal is counted by bound, and
worth one log line per source per ``log_interval`` seconds (a flood must not flood the
log as well). Sans-IO: the time comes in from the caller.
"""

from __future__ import annotations

from gateway.model.recent import RecentTable

PER_SOURCE = "connections_per_source"
TOTAL = "connections_total"
LOG_INTERVAL = 60.0  # seconds between two log lines about one refused source


class ConnectionBounds:
    """Open connections counted per source address and in total; 0 lifts a bound.

    The per-source counts hold only sources with a connection open, so their table is
    bounded by ``total`` (or by the descriptors of the process when ``total`` is 0);
    the sources whose refusal was logged lately are at most ``max_tracked``.
    """

    __slots__ = (
        "_logged",
        "_open",
        "_per_source",
        "log_interval",
        "per_source",
        "refused",
        "total",
    )

    def __init__(
        self,
        per_source: int,
        total: int,
        *,
        log_interval: float = LOG_INTERVAL,
        max_tracked: int = 10_000,
    ) -> None:
        self.per_source = per_source
        self.total = total
        self.log_interval = log_interval
        self.refused: dict[str, int] = {PER_SOURCE: 0, TOTAL: 0}
        self._per_source: dict[str, int] = {}
        self._open = 0
        self._logged: RecentTable[str, float] = RecentTable(max_tracked)

    @property
    def open(self) -> int:
        """Connections admitted and not released yet."""
        return self._open

    def held(self, source: str) -> int:
        """Connections ``source`` holds open now."""
        return self._per_source.get(source, 0)

    def admit(self, source: str) -> str | None:
        """Count a new connection from ``source``; None, or the bound it would break
        (:data:`PER_SOURCE` or :data:`TOTAL`), in which case it is not counted and the
        caller closes it."""
        if self.total and self._open >= self.total:
            self.refused[TOTAL] += 1
            return TOTAL
        held = self._per_source.get(source, 0)
        if self.per_source and held >= self.per_source:
            self.refused[PER_SOURCE] += 1
            return PER_SOURCE
        self._per_source[source] = held + 1
        self._open += 1
        return None

    def release(self, source: str) -> None:
        """A connection :meth:`admit` counted is closed."""
        held = self._per_source.get(source, 0)
        if held <= 0:
            return  # never counted (or released twice): nothing to give back
        self._open -= 1
        if held > 1:
            self._per_source[source] = held - 1
        else:
            del self._per_source[source]

    def should_log(self, source: str, now: float) -> bool:
        """Whether a refusal of ``source`` at ``now`` deserves a log line (the first
        one, then one per ``log_interval``)."""
        last = self._logged.get(source)
        if last is not None and now - last < self.log_interval:
            return False
        self._logged.pop(source)
        self._logged.add(source, now)
        return True
