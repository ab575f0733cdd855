"""The gateway's wall clock for schedules and queues, settable in tests only.

Opening hours, queue deadlines and wrap-up times read :meth:`Clock.now`. A gateway
started with ``--test-clock`` lets the admin API move this clock (``PUT
/api/v1/clock``), so that tests can put a real running gateway on a Sunday or just
before a partner opens without waiting for the calendar. SIP and media timers keep the
event loop's monotonic clock whatever this one says.
"""

from __future__ import annotations

import time


class Clock:
    """Epoch seconds: the system time plus an offset that only a test clock may change."""

    def __init__(self, *, adjustable: bool = False) -> None:
        self.adjustable = adjustable
        self.offset = 0.0

    def now(self) -> float:
        """Seconds since the epoch, as the schedules see them."""
        return time.time() + self.offset

    def set(self, epoch: float) -> None:
        """Jump to ``epoch`` (the clock then runs on from there)."""
        if not self.adjustable:
            raise PermissionError("the clock can only be set with --test-clock")
        self.offset = epoch - time.time()
