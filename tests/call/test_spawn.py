"""SipUserAgent.spawn: call steps start eagerly and a task carries on only when they wait."""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace

import pytest

from gateway.call.sip_ua import SipUserAgent


def bare_ua() -> SipUserAgent:
    """Just what spawn uses: the task set and the endpoint's loop."""
    ua = SipUserAgent.__new__(SipUserAgent)
    ua._tasks = set()
    ua.endpoint = SimpleNamespace(loop=asyncio.get_running_loop())  # type: ignore[assignment]
    return ua


async def test_a_step_that_never_waits_runs_inside_the_call_and_leaves_no_task() -> None:
    ua = bare_ua()
    seen: list[str] = []

    async def step() -> None:
        seen.append("ran")

    ua.spawn(step())
    assert seen == ["ran"] and not ua._tasks


async def test_a_waiting_step_resumes_with_the_result_or_the_error() -> None:
    ua = bare_ua()
    loop = asyncio.get_running_loop()
    seen: list[object] = []
    ok: asyncio.Future[int] = loop.create_future()
    bad: asyncio.Future[int] = loop.create_future()

    async def step(fut: asyncio.Future[int]) -> None:
        seen.append("before")
        try:
            seen.append(await fut)
        except ValueError as exc:
            seen.append(f"error {exc}")
        await asyncio.sleep(0)  # a bare yield is carried on too
        await asyncio.sleep(0.01)
        seen.append("after")

    ua.spawn(step(ok))
    assert seen == ["before"] and len(ua._tasks) == 1  # ran up to its first wait
    ok.set_result(5)
    ua.spawn(step(bad))
    bad.set_exception(ValueError("no port"))
    await asyncio.sleep(0.1)
    assert seen == ["before", "before", 5, "error no port", "after", "after"]
    assert not ua._tasks


async def test_cancelling_the_carrying_task_cancels_the_step() -> None:
    ua = bare_ua()
    seen: list[str] = []

    async def step() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise
        finally:
            seen.append("cleaned up")

    ua.spawn(step())
    await asyncio.sleep(0)  # the task has taken the step over
    (task,) = ua._tasks
    task.cancel()
    await asyncio.sleep(0.01)
    assert task.cancelled() and seen == ["cancelled", "cleaned up"] and not ua._tasks
    # Cancelled before its first turn: the step's cleanup still runs.
    ua.spawn(step())
    (early,) = ua._tasks
    early.cancel()
    await asyncio.sleep(0.01)
    assert seen[-1] == "cleaned up" and not ua._tasks


async def test_a_failing_step_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    ua = bare_ua()
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[None] = loop.create_future()

    async def fails_at_once() -> None:
        raise RuntimeError("bug now")

    async def fails_later() -> None:
        await fut
        raise RuntimeError("bug later")

    with caplog.at_level(logging.ERROR):
        ua.spawn(fails_at_once())
        ua.spawn(fails_later())
        fut.set_result(None)
        await asyncio.sleep(0.01)
    messages = [r.getMessage() for r in caplog.records]
    assert messages == ["call step failed", "task failed"] and not ua._tasks
