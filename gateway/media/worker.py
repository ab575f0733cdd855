"""One worker process of :class:`gateway.media.workers.WorkerRelayEngine`.

Started by the engine as ``python -c "from gateway.media.worker import main; main()"``
with one end of a socketpair; it runs an ordinary :class:`~gateway.media.relay.RelayEngine`
on its own uvloop, on its own slice of the media port range, and answers the control
frames of :mod:`gateway.media.workers` one at a time, in order. One thread: the relay's
packet path and the control channel share the loop, as in the gateway's own process.

Its log records go to the parent over the same channel and are logged there, through
the gateway's own handlers (one stream, one format). It ignores SIGINT, SIGTERM and
SIGHUP (the gateway's to act on), and ends on a ``quit`` request, when the control
socket closes (the parent closed it or died) and, on Linux, when the parent dies
(``PR_SET_PDEATHSIG``), whatever it is doing then.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import socket
import sys
from typing import Any

import uvloop

from gateway.media.engine import MediaError
from gateway.media.relay import RelayEngine
from gateway.media.workers import (
    COUNTERS_INTERVAL,
    Counters,
    Request,
    read_frame,
    write_frame,
)
from gateway.model.events import Dtmf, FastUpdate, Side
from gateway.model.sdp import SessionDescription

logger = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1  # prctl(2)


def die_with_parent(parent: int) -> None:
    """Have the kernel kill this process when its parent dies (Linux ``prctl``); exit now
    if the parent is already gone (it died before the request was made)."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            logger.warning("prctl(PR_SET_PDEATHSIG) failed: errno %d", ctypes.get_errno())
    if os.getppid() != parent:
        raise SystemExit(0)


class _ForwardHandler(logging.Handler):
    """Sends each log record to the parent as a ``log`` frame (standard error until the
    channel is up, and after it is gone)."""

    def __init__(self) -> None:
        super().__init__()
        self.writer: asyncio.StreamWriter | None = None
        self._fallback = logging.StreamHandler()

    def emit(self, record: logging.LogRecord) -> None:
        writer = self.writer
        if writer is None or writer.is_closing():
            self._fallback.handle(record)
            return
        try:
            fields = dict(record.__dict__)
            fields["msg"] = record.getMessage()
            fields["args"] = None
            if record.exc_info:
                fields["exc_text"] = logging.Formatter().formatException(record.exc_info)
            fields["exc_info"] = None
            write_frame(writer, ("log", fields))
        except Exception:
            self.handleError(record)


class _Server:
    """The control channel's far end: requests in, replies and pushes out."""

    def __init__(
        self, engine: RelayEngine, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.engine = engine
        self.reader = reader
        self.writer = writer
        engine.set_timeout_handler(self._timed_out)
        engine.set_event_handler(self._media_event)

    def counters(self) -> Counters:
        e = self.engine
        return Counters(e.ports_in_use, e.ports_idle, e.session_count, e.send_errors)

    def _push(self, message: tuple[Any, ...]) -> None:
        if not self.writer.is_closing():
            write_frame(self.writer, message)

    def _timed_out(self, call_id: str) -> None:
        self._push(("timeout", call_id))

    def _media_event(self, call_id: str, side: Side, event: Dtmf | FastUpdate) -> None:
        self._push(("event", call_id, side, event))

    async def _push_counters(self) -> None:
        """What changes between requests (the pool quieting down, send errors)."""
        last = self.counters()
        while True:
            await asyncio.sleep(COUNTERS_INTERVAL)
            now = self.counters()
            if now != last:
                self._push(("counters", now))
                last = now

    async def serve(self) -> None:
        """Answer requests until ``quit`` or the end of the control channel."""
        self._push(("ready", self.counters()))
        pusher = asyncio.get_running_loop().create_task(self._push_counters())
        try:
            while True:
                try:
                    request: Request = await read_frame(self.reader)
                except (asyncio.IncompleteReadError, ConnectionError):
                    return  # the parent closed its end, or is gone
                request_id, op, call_id, args = request
                if op == "quit":
                    await self.engine.close()
                    self._push(("reply", request_id, None, None, self.counters()))
                    await self.writer.drain()
                    return
                value: Any = None
                error: tuple[str, str | None] | None = None
                try:
                    value = await self._handle(op, call_id, args)
                except MediaError as exc:
                    cause = exc.__cause__
                    error = (str(exc), f"{type(cause).__name__}: {cause}" if cause else None)
                except Exception as exc:  # a bug: logged here, a MediaError for the caller
                    logger.exception("media worker: %s of call %s failed", op, call_id)
                    error = (f"call {call_id}: {op} failed in the media worker", repr(exc))
                self._push(("reply", request_id, value, error, self.counters()))
                await self.writer.drain()
        finally:
            pusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pusher

    async def _handle(self, op: str, call_id: str, args: tuple[Any, ...]) -> Any:
        engine = self.engine
        if op in ("offer", "answer"):
            sdp_text, side = args
            sdp = SessionDescription.parse(sdp_text)
            method = engine.offer if op == "offer" else engine.answer
            out = await method(call_id, sdp, from_side=side)
            return out.serialize()
        if op == "delete":
            return await engine.delete(call_id)
        if op == "stats":
            return await engine.stats(call_id)
        if op == "play":
            prompt, side = args
            await engine.play(call_id, prompt, to_side=side)
            return None
        if op == "stop_playing":
            await engine.stop_playing(call_id)
            return None
        if op == "request_keyframe":
            (side,) = args
            return await engine.request_keyframe(call_id, to_side=side)
        raise MediaError(f"unknown media worker request {op!r}")


async def serve(
    sock: socket.socket, engine: RelayEngine, logs: _ForwardHandler | None = None
) -> None:
    """Run ``engine`` under the control of the peer of ``sock`` until it lets go."""
    reader, writer = await asyncio.open_connection(sock=sock)
    if logs is not None:
        logs.writer = writer
    await engine.start()
    try:
        await _Server(engine, reader, writer).serve()
    finally:
        await engine.close()
        if logs is not None:
            logs.writer = None
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


def main(argv: list[str] | None = None) -> None:
    """Entry point: the engine's settings and the control socket's descriptor."""
    p = argparse.ArgumentParser(prog="vrgw media worker")
    p.add_argument("--fd", type=int, required=True)
    p.add_argument("--parent", type=int, required=True)
    p.add_argument("--index", type=int, required=True)
    p.add_argument("--bind", required=True)
    p.add_argument("--advertise", default=None)
    p.add_argument("--port-min", type=int, required=True)
    p.add_argument("--port-max", type=int, required=True)
    p.add_argument("--timeout", type=float, required=True)
    p.add_argument("--log-level", type=int, default=logging.INFO)
    args = p.parse_args(argv)
    die_with_parent(args.parent)
    logs = _ForwardHandler()
    root = logging.getLogger()
    root.addHandler(logs)
    root.setLevel(args.log_level)
    # Signals for the gateway (a terminal's Ctrl-C or hang-up reaches the whole process
    # group, a service manager's stop every process of the unit) are the parent's to act
    # on: it ends the calls, then stops its workers; if it dies, so do they (above).
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)
    sock = socket.socket(fileno=args.fd)
    engine = RelayEngine(
        bind_host=args.bind,
        advertise_host=args.advertise,
        port_min=args.port_min,
        port_max=args.port_max,
        timeout=args.timeout,
    )
    uvloop.run(serve(sock, engine, logs))


__all__ = ["die_with_parent", "main", "serve"]
