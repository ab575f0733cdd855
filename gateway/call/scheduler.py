"""The one scheduler the call layer runs on: the time, timers, and steps that await.

The controller, the legs and the station monitor never reach for an event loop; they
are handed a :class:`Scheduler`. The gateway gives them :class:`LoopScheduler` (the
asyncio loop and the gateway's clock); tests give them a fake clock that moves only
when told, so that a queue timeout or a ring-out runs in microseconds and in order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

Step = Coroutine[Any, Any, None]


class Timer(Protocol):
    """A scheduled callback that may still be called off."""

    def cancel(self) -> None:
        """Call it off; harmless once it ran."""


class Scheduler(Protocol):
    """Time, timers and background steps for the call layer."""

    def now(self) -> float:
        """Wall-clock time in epoch seconds (schedules, call records)."""

    def call_later(self, delay: float, callback: Callable[..., object], *args: Any) -> Timer:
        """Run ``callback(*args)`` after ``delay`` seconds."""

    def spawn(self, step: Step) -> None:
        """Run a step that awaits (the media engine, the store) to its end."""


class LoopScheduler:
    """The asyncio loop as a :class:`Scheduler`, with the gateway's (adjustable) clock.

    The gateway is built before its loop runs, so the loop is taken on first use; from
    then on ``call_later`` is the loop's own method and tasks are the loop's own.
    """

    call_later: Callable[..., Timer]

    def __init__(
        self, clock: Callable[[], float], loop: asyncio.AbstractEventLoop | None = None
    ) -> None:
        self.now = clock
        self._loop = loop
        self._tasks: set[asyncio.Task[None]] = set()
        self.call_later = self._first_call_later
        if loop is not None:
            self._bind(loop)

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The loop it runs on."""
        if self._loop is None:
            self._bind(asyncio.get_running_loop())
        assert self._loop is not None
        return self._loop

    def _bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.call_later = loop.call_later

    def _first_call_later(self, delay: float, callback: Callable[..., object], *args: Any) -> Timer:
        return self.loop.call_later(delay, callback, *args)

    def spawn(self, step: Step) -> None:
        """A task of its own, kept referenced until done.

        A step that fails is reported by asyncio itself ("Task exception was never
        retrieved", through the loop's exception handler, logged at error level).
        """
        task = self.loop.create_task(step)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait for the steps under way (shutdown)."""
        while self._tasks:
            await asyncio.wait(list(self._tasks))
