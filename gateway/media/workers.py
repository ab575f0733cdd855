"""The built-in relay on every core: one :class:`~gateway.media.relay.RelayEngine` per
worker process, driven from the gateway's loop.

The gateway's process runs SIP, H.323, HTTP and the controller on one asyncio loop; with
the relay in the same loop, media can never use a second core. :class:`WorkerRelayEngine`
starts N worker processes (:mod:`gateway.media.worker`), each an ordinary relay on its
own uvloop and on its own slice of the media port range (even-aligned, so RTP stays on
an even port and RTCP on the next, RFC 3550 11). A call's session lives on one worker:
its first offer places it on the worker holding the fewest calls, and every later
request for that call goes there (sticky per call id).

Control is one socketpair per worker and a small framed protocol: a 4-byte big-endian
length, then a pickled tuple (our own child process: nothing untrusted crosses it).
Descriptions cross as SDP text (RFC 8866), which the memoised parser reads back faster
than pickle rebuilds the objects (23 us against 42 us a round trip, a third the size);
counters and events cross as the engine's own dataclasses. Requests to a worker are
answered in order; each reply carries the worker's counters (ports in use and idle,
sessions, send errors), which :attr:`ports_in_use` and the others read synchronously,
and a worker pushes them when they change between requests. Media timeouts and the
digits and key-frame requests a relay ends in band come back as pushes and run the
handlers given here; so do the workers' log records, logged here through the gateway's
own handlers.

A worker that dies takes its calls' media with it: their requests raise
:class:`~gateway.media.engine.MediaError` (the cause chained), the timeout handler runs
for each of them so that the controller ends them, the death is logged with the exit
status, and a new worker is started on the same ports for later calls. Workers die with
the gateway (``PR_SET_PDEATHSIG``, and the end of the control socket) and are reaped by
:meth:`WorkerRelayEngine.close`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import pickle
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple

from gateway.media.engine import (
    MediaError,
    MediaEventHandler,
    SessionStats,
    TimeoutHandler,
)
from gateway.media.relay import RelayEngine
from gateway.model.events import Side
from gateway.model.sdp import SessionDescription

logger = logging.getLogger(__name__)

_LENGTH = struct.Struct("!I")
FRAME_MAX = 1 << 24  # no control message comes near: a larger length is a broken channel
COUNTERS_INTERVAL = 1.0  # seconds between a worker's pushes of counters that changed
START_TIMEOUT = 20.0  # seconds a new worker has to say it is ready
STOP_TIMEOUT = 5.0  # seconds a worker has to close its relay and exit before SIGKILL
RESTART_BACKOFF = 1.0  # a worker that died young is restarted after this long

# (request id, operation, call id, arguments)
Request = tuple[int, str, str, tuple[Any, ...]]


class Counters(NamedTuple):
    """A worker's gauges, sent with each reply and pushed when they change."""

    ports_in_use: int = 0
    ports_idle: int = 0
    sessions: int = 0
    send_errors: int = 0


class WorkerError(Exception):
    """What went wrong inside a worker or with its process: the ``__cause__`` of the
    :class:`MediaError` raised here."""


def write_frame(writer: asyncio.StreamWriter, message: object) -> None:
    """Send one control message: its length, then its pickle."""
    body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    writer.write(_LENGTH.pack(len(body)) + body)


async def read_frame(reader: asyncio.StreamReader) -> Any:
    """Read one control message (``IncompleteReadError`` at the end of the channel)."""
    (length,) = _LENGTH.unpack(await reader.readexactly(_LENGTH.size))
    if length > FRAME_MAX:
        raise ConnectionError(f"control frame of {length} bytes")
    return pickle.loads(await reader.readexactly(length))


def port_slices(port_min: int, port_max: int, count: int) -> list[tuple[int, int]]:
    """Split ``[port_min, port_max]`` into ``count`` disjoint ranges of whole even/odd
    pairs (RFC 3550 11), as equal as can be."""
    first = port_min + (port_min % 2)
    pairs = (port_max - first + 1) // 2
    if count < 1 or pairs < count:
        raise ValueError(
            f"port range {port_min}-{port_max} holds {max(pairs, 0)} RTP/RTCP pairs: "
            f"too few for {count} media workers"
        )
    slices = []
    start = first
    for i in range(count):
        share = pairs // count + (1 if i < pairs % count else 0)
        slices.append((start, start + 2 * share - 1))
        start += 2 * share
    return slices


class _Worker:
    """One worker process, its control channel and what the parent knows of it."""

    def __init__(self, index: int, port_min: int, port_max: int) -> None:
        self.index = index
        self.port_min = port_min
        self.port_max = port_max
        self.proc: subprocess.Popen[bytes] | None = None
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.listener: asyncio.Task[None] | None = None
        self.ready: asyncio.Future[None] | None = None
        self.pending: dict[int, asyncio.Future[tuple[Any, tuple[str, str | None] | None]]] = {}
        self.counters = Counters()
        self.calls: set[str] = set()  # call ids placed here
        self.started = 0.0
        self.ready_once = False
        self.death: WorkerError | None = None  # set once the worker is gone

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def alive(self) -> bool:
        return self.death is None and self.ready is not None and self.ready.done()

    def describe(self) -> str:
        return f"media worker {self.index} (pid {self.pid}, ports {self.port_min}-{self.port_max})"


class WorkerRelayEngine:
    """The built-in :class:`~gateway.media.engine.MediaEngine` spread over ``workers``
    processes, each a :class:`~gateway.media.relay.RelayEngine` on a slice of
    ``[port_min, port_max]``; the other settings are the relay's."""

    def __init__(
        self,
        *,
        workers: int = 2,
        bind_host: str = "127.0.0.1",
        advertise_host: str | None = None,
        port_min: int = 20000,
        port_max: int = 29999,
        timeout: float = 60.0,
    ) -> None:
        self.bind_host = bind_host
        self.advertise_host = advertise_host
        self.port_min = port_min
        self.port_max = port_max
        self.timeout = timeout
        self._ranges = port_slices(port_min, port_max, workers)
        # The relay's own checks of its settings (an IP address to bind, an address to
        # advertise for a wildcard), here rather than in a worker that would not start.
        RelayEngine(
            bind_host=bind_host,
            advertise_host=advertise_host,
            port_min=self._ranges[0][0],
            port_max=self._ranges[0][1],
            timeout=timeout,
        )
        self._slots = self._fresh_slots()
        self._calls: dict[str, _Worker] = {}
        self._ids = itertools.count(1)
        self._handler: TimeoutHandler | None = None
        self._event_handler: MediaEventHandler | None = None
        self._closing = False
        self._restarts: set[asyncio.Task[None]] = set()
        self._gone_send_errors = 0  # counted by workers that are gone

    # --- MediaEngine protocol ----------------------------------------------------------

    async def start(self) -> None:
        """Start every worker and wait until each is ready."""
        self._closing = False
        if any(w.proc is not None for w in self._slots):  # started before, then closed
            self._slots = self._fresh_slots()
        try:
            await asyncio.gather(*(self._spawn(w) for w in self._slots))
        except MediaError:
            await self.close()
            raise

    async def close(self) -> None:
        """Ask every worker to close its relay and exit; kill those that linger; reap all."""
        self._closing = True
        for task in list(self._restarts):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await asyncio.gather(*(self._stop(w) for w in self._slots))
        self._calls.clear()

    async def offer(
        self, call_id: str, sdp: SessionDescription, *, from_side: Side
    ) -> SessionDescription:
        """Relay an offer on the call's worker (RFC 3264 5); the first places the call."""
        worker = self._calls.get(call_id)
        placed = worker is None
        if worker is None:
            worker = await self._place()
            self._calls[call_id] = worker
            worker.calls.add(call_id)
        try:
            out = await self._request(worker, "offer", call_id, sdp.serialize(), from_side)
        except MediaError:
            if placed:  # a failed first offer leaves no session behind (see MediaEngine)
                self._forget(call_id)
            raise
        return self._parse(call_id, out)

    async def answer(
        self, call_id: str, sdp: SessionDescription, *, from_side: Side
    ) -> SessionDescription:
        """Relay an answer on the call's worker (RFC 3264 6)."""
        # A call never offered: any worker says so, as the relay does.
        worker = self._calls.get(call_id) or await self._place()
        out = await self._request(worker, "answer", call_id, sdp.serialize(), from_side)
        return self._parse(call_id, out)

    async def delete(self, call_id: str) -> SessionStats | None:
        """Release the call on its worker; its final counters (``None`` if unknown)."""
        worker = self._calls.get(call_id)
        if worker is None:
            return None
        try:
            result: SessionStats | None = await self._request(worker, "delete", call_id)
        finally:
            self._forget(call_id)  # gone either way: released, or with its worker
        return result

    async def stats(self, call_id: str) -> SessionStats | None:
        """A live call's counters, from its worker (``None`` if unknown)."""
        worker = self._calls.get(call_id)
        if worker is None:
            return None
        result: SessionStats | None = await self._request(worker, "stats", call_id)
        return result

    async def play(self, call_id: str, prompt: str, *, to_side: Side = Side.A) -> None:
        """Loop ``prompt`` to ``to_side`` from the call's worker."""
        worker = self._calls.get(call_id) or await self._place()
        await self._request(worker, "play", call_id, prompt, to_side)

    async def stop_playing(self, call_id: str) -> None:
        """Stop the call's announcement, if one is playing."""
        worker = self._calls.get(call_id)
        if worker is not None:
            await self._request(worker, "stop_playing", call_id)

    def set_timeout_handler(self, handler: TimeoutHandler) -> None:
        """Register the callback run with ``call_id`` when a call's media stops (or its
        worker died)."""
        self._handler = handler

    def set_event_handler(self, handler: MediaEventHandler) -> None:
        """Register the callback for digits and key-frame requests the workers end."""
        self._event_handler = handler

    async def request_keyframe(self, call_id: str, *, to_side: Side) -> bool:
        """Have the call's worker send ``to_side`` a PLI or FIR (RFC 4585 6.3.1,
        RFC 5104 4.3.1); False if it negotiated neither, or the call is unknown."""
        worker = self._calls.get(call_id)
        if worker is None:
            return False
        sent: bool = await self._request(worker, "request_keyframe", call_id, to_side)
        return sent

    @property
    def ports_in_use(self) -> int:
        """UDP ports calls hold in every live worker (as of each one's last message)."""
        return sum(w.counters.ports_in_use for w in self._slots)

    @property
    def ports_idle(self) -> int:
        """UDP ports the live workers keep bound for later calls."""
        return sum(w.counters.ports_idle for w in self._slots)

    @property
    def session_count(self) -> int:
        """Live relay sessions over every worker."""
        return sum(w.counters.sessions for w in self._slots)

    # --- beyond the protocol -----------------------------------------------------------

    @property
    def send_errors(self) -> int:
        """Datagrams the workers dropped because sending them on failed."""
        return self._gone_send_errors + sum(w.counters.send_errors for w in self._slots)

    @property
    def worker_pids(self) -> list[int]:
        """Process ids of the workers running now (or starting)."""
        return [w.pid for w in self._slots if w.pid is not None and w.death is None]

    def worker_pid(self, call_id: str) -> int | None:
        """The process relaying a call, ``None`` if the call is unknown."""
        worker = self._calls.get(call_id)
        return worker.pid if worker is not None else None

    @property
    def workers_alive(self) -> int:
        """Workers ready for calls."""
        return sum(1 for w in self._slots if w.alive)

    # --- placement ---------------------------------------------------------------------

    def _fresh_slots(self) -> list[_Worker]:
        return [_Worker(i, low, high) for i, (low, high) in enumerate(self._ranges)]

    async def _place(self) -> _Worker:
        """The worker with the fewest calls among those ready; waits for one starting
        when none is (a worker being replaced after a death)."""
        live = [w for w in self._slots if w.alive]
        if not live:
            starting = [w.ready for w in self._slots if w.ready is not None and w.death is None]
            if starting and not self._closing:
                await asyncio.wait(starting, timeout=START_TIMEOUT)
            live = [w for w in self._slots if w.alive]
            if not live:
                raise MediaError("no media worker is running")
        return min(live, key=lambda w: len(w.calls))

    def _forget(self, call_id: str) -> None:
        worker = self._calls.pop(call_id, None)
        if worker is not None:
            worker.calls.discard(call_id)

    @staticmethod
    def _parse(call_id: str, text: bytes) -> SessionDescription:
        try:
            return SessionDescription.parse(text)
        except ValueError as exc:  # SdpError: the worker wrote what we cannot read
            raise MediaError(
                f"call {call_id}: unreadable SDP from a media worker", cause=exc
            ) from exc

    # --- requests ----------------------------------------------------------------------

    async def _request(self, worker: _Worker, op: str, call_id: str, *args: Any) -> Any:
        """Send one request to ``worker`` and wait for its reply."""
        if worker.death is not None or worker.writer is None:
            cause = worker.death or WorkerError("not started")
            raise MediaError(f"call {call_id}: {worker.describe()} is gone", cause=cause) from cause
        request_id = next(self._ids)
        future = asyncio.get_running_loop().create_future()
        worker.pending[request_id] = future
        try:
            write_frame(worker.writer, (request_id, op, call_id, args))
            await worker.writer.drain()
            value, error = await future
        except (ConnectionError, OSError) as exc:
            raise MediaError(f"call {call_id}: {worker.describe()} unreachable", cause=exc) from exc
        finally:
            worker.pending.pop(request_id, None)
        if error is not None:
            message, cause_text = error
            cause = WorkerError(cause_text or message)
            raise MediaError(message, cause=cause) from cause
        return value

    async def _listen(self, worker: _Worker) -> None:
        """Read the worker's replies and pushes until its channel ends."""
        reader = worker.reader
        assert reader is not None and worker.ready is not None
        reason: BaseException
        try:
            while True:
                message = await read_frame(reader)
                kind = message[0]
                if kind == "reply":
                    _, request_id, value, error, counters = message
                    worker.counters = counters
                    future = worker.pending.get(request_id)
                    if future is not None and not future.done():
                        future.set_result((value, error))
                elif kind == "timeout":
                    self._run_timeout(message[1])
                elif kind == "event":
                    self._run_event(*message[1:])
                elif kind == "log":
                    record = logging.makeLogRecord(message[1])
                    record.msg = f"media worker {worker.index}: {record.msg}"
                    logging.getLogger(record.name).handle(record)
                elif kind == "counters":
                    worker.counters = message[1]
                elif kind == "ready":
                    worker.counters = message[1]
                    worker.ready_once = True
                    if not worker.ready.done():
                        worker.ready.set_result(None)
        except asyncio.CancelledError:
            raise
        except (asyncio.IncompleteReadError, ConnectionError, OSError) as exc:
            reason = exc
        except (pickle.UnpicklingError, ValueError, TypeError, IndexError) as exc:
            reason = exc  # a garbled channel: treated as a dead worker
        await self._died(worker, reason)

    async def _died(self, worker: _Worker, reason: BaseException) -> None:
        """The worker's channel ended: fail what waits, end its calls, replace it."""
        status = await self._reap(worker, kill=True)
        death = WorkerError(f"{worker.describe()} ended ({_exit_text(status)})")
        death.__cause__ = reason
        worker.death = death
        self._gone_send_errors += worker.counters.send_errors
        worker.counters = Counters()
        if worker.ready is not None and not worker.ready.done():
            worker.ready.set_exception(
                MediaError(f"{worker.describe()} did not start", cause=death)
            )
        for future in worker.pending.values():
            if not future.done():
                future.set_exception(MediaError(f"{worker.describe()} died", cause=death))
        if self._closing:
            return
        if not worker.ready_once:
            logger.error("%s ended before it was ready (%s)", worker.describe(), _exit_text(status))
            return  # start() or _replace() reports it; restarting would only loop
        calls = sorted(worker.calls)
        logger.error(
            "%s died (%s); %d call(s) lose their media: %s",
            worker.describe(),
            _exit_text(status),
            len(calls),
            ", ".join(calls) or "none",
        )
        task = asyncio.get_running_loop().create_task(self._replace(worker))
        self._restarts.add(task)
        task.add_done_callback(self._restarts.discard)
        for call_id in calls:  # the controller ends them (media stopped)
            self._run_timeout(call_id)

    async def _replace(self, dead: _Worker) -> None:
        """Start a new worker on the dead one's ports, for later calls."""
        if time.monotonic() - dead.started < 5 * RESTART_BACKOFF:
            await asyncio.sleep(RESTART_BACKOFF)  # died young: no restart loop
        fresh = _Worker(dead.index, dead.port_min, dead.port_max)
        self._slots[dead.index] = fresh
        try:
            await self._spawn(fresh)
        except MediaError as exc:
            logger.error("%s could not be restarted: %s", fresh.describe(), exc)
            return
        logger.warning("%s started in place of the one that died", fresh.describe())

    # --- processes ---------------------------------------------------------------------

    async def _spawn(self, worker: _Worker) -> None:
        """Start ``worker``'s process and wait for its ``ready``."""
        loop = asyncio.get_running_loop()
        ours, theirs = socket.socketpair()
        argv = [
            sys.executable,
            *(["-S"] if sys.flags.no_site else []),
            "-c",
            "from gateway.media.worker import main; main()",
            *("--fd", str(theirs.fileno()), "--parent", str(os.getpid())),
            *("--index", str(worker.index), "--bind", self.bind_host),
            *(["--advertise", self.advertise_host] if self.advertise_host else []),
            *("--port-min", str(worker.port_min), "--port-max", str(worker.port_max)),
            *("--timeout", str(self.timeout)),
            *("--log-level", str(logging.getLogger().getEffectiveLevel())),
        ]
        # The child imports this very tree of the gateway, whatever its sys.path.
        root = str(Path(__file__).resolve().parents[2])
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        try:
            with theirs:
                worker.proc = subprocess.Popen(
                    argv, pass_fds=(theirs.fileno(),), env=env, stdin=subprocess.DEVNULL
                )
        except OSError as exc:
            ours.close()
            raise MediaError(f"cannot start {worker.describe()}: {exc}", cause=exc) from exc
        worker.started = time.monotonic()
        worker.reader, worker.writer = await asyncio.open_connection(sock=ours)
        worker.ready = loop.create_future()
        worker.listener = loop.create_task(
            self._listen(worker), name=f"media-worker-{worker.index}"
        )
        try:
            await asyncio.wait_for(asyncio.shield(worker.ready), START_TIMEOUT)
        except TimeoutError as exc:
            await self._stop(worker)
            raise MediaError(f"{worker.describe()} did not start in time", cause=exc) from exc
        logger.info("%s ready", worker.describe())

    async def _stop(self, worker: _Worker) -> None:
        """Quit, wait, kill if need be, reap; the worker's counters drop to zero."""
        if worker.proc is None:
            return
        if worker.death is None and worker.writer is not None and not worker.writer.is_closing():
            with contextlib.suppress(MediaError):
                await asyncio.wait_for(self._request(worker, "quit", ""), STOP_TIMEOUT)
        if worker.writer is not None:
            worker.writer.close()
        await self._reap(worker, kill=False)
        if worker.listener is not None and not worker.listener.done():
            worker.listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker.listener
        self._gone_send_errors += worker.counters.send_errors
        worker.counters = Counters()
        if worker.death is None:
            worker.death = WorkerError(f"{worker.describe()} was stopped")

    async def _reap(self, worker: _Worker, *, kill: bool) -> int | None:
        """Wait for the worker's exit status (SIGKILL after :data:`STOP_TIMEOUT`, at once
        if ``kill``); never blocks the loop."""
        proc = worker.proc
        if proc is None:
            return None
        deadline = time.monotonic() + (0.5 if kill else STOP_TIMEOUT)
        while proc.poll() is None:
            if time.monotonic() > deadline:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGKILL)
                deadline = float("inf")
            await asyncio.sleep(0.01)
        return proc.returncode

    # --- pushes ------------------------------------------------------------------------

    def _run_timeout(self, call_id: str) -> None:
        if self._handler is None:
            return
        try:
            self._handler(call_id)
        except Exception:
            logger.exception("media timeout handler failed for call %s", call_id)

    def _run_event(self, call_id: str, side: Side, event: Any) -> None:
        if self._event_handler is None:
            return
        try:
            self._event_handler(call_id, side, event)
        except Exception:
            logger.exception("media event handler failed for call %s", call_id)


def _exit_text(status: int | None) -> str:
    if status is None:
        return "exit status unknown"
    if status < 0:
        try:
            return f"killed by {signal.Signals(-status).name}"
        except ValueError:
            return f"killed by signal {-status}"
    return f"exit status {status}"


__all__ = ["Counters", "WorkerError", "WorkerRelayEngine", "port_slices"]
