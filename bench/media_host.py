"""The built-in engine's own process in the media benchmark: ``python -m bench.media_host``.

It runs :class:`gateway.media.relay.RelayEngine` on uvloop, as ``vrgw run`` does (or,
with ``--workers N``, :class:`gateway.media.workers.WorkerRelayEngine`, as ``vrgw run
--media-workers N`` does), and takes its calls over standard input, one JSON object a
line, answered on standard output. The harness reads this process's CPU time and memory
(with its workers'), and nothing else runs in it while packets flow.

- ``{"op": "calls", "calls": [{"id", "offer", "answer"}]}``: for each call, the offer
  from side A then the answer from side B (SDP text) go through ``MediaEngine.offer``
  and ``MediaEngine.answer``; answers ``{"calls": [{"to_b", "to_a"}]}``, the SDP each
  side then reads.
- ``{"op": "counters", "ids": [...]}``: the RTP packets the engine counted in those
  calls, and the garbage collections since the last such request (count, time, longest).
- ``{"op": "quit"}`` or end of input: close the engine and exit.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import sys
import time
from typing import Any

import uvloop

from gateway.media.engine import MediaEngine
from gateway.media.relay import RelayEngine
from gateway.media.workers import WorkerRelayEngine
from gateway.model.events import Side
from gateway.model.sdp import SessionDescription


class _GcWatch:
    """Times the interpreter's garbage collections (``gc.callbacks``): a pause of the
    only thread is a pause of every stream it relays."""

    def __init__(self) -> None:
        self._started = 0.0
        self.reset()
        gc.callbacks.append(self._callback)

    def reset(self) -> None:
        self.collections = 0
        self.total = 0.0
        self.longest = 0.0

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        now = time.perf_counter()
        if phase == "start":
            self._started = now
            return
        pause = now - self._started
        self.collections += 1
        self.total += pause
        self.longest = max(self.longest, pause)


async def _handle(engine: MediaEngine, request: dict[str, Any], watch: _GcWatch) -> dict[str, Any]:
    op = request.get("op")
    if op == "calls":
        out = []
        for call in request["calls"]:
            to_b = await engine.offer(
                call["id"], SessionDescription.parse(call["offer"]), from_side=Side.A
            )
            to_a = await engine.answer(
                call["id"], SessionDescription.parse(call["answer"]), from_side=Side.B
            )
            out.append({"to_b": to_b.serialize().decode(), "to_a": to_a.serialize().decode()})
        return {"calls": out}
    if op == "counters":
        packets = 0
        for call_id in request.get("ids", []):
            stats = await engine.stats(call_id)
            for stream in stats.streams if stats is not None else []:
                packets += stream.a_to_b.rtp_packets + stream.b_to_a.rtp_packets
        reply = {
            "rtp_packets": packets,
            "sessions": engine.session_count,
            "gc_collections": watch.collections,
            "gc_total_ms": watch.total * 1000,
            "gc_longest_ms": watch.longest * 1000,
        }
        watch.reset()
        return reply
    return {"error": f"unknown op {op!r}"}


async def serve(port_min: int, port_max: int, workers: int = 0) -> None:
    """Answer requests on standard input until it closes."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 26)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    engine: MediaEngine
    if workers:
        engine = WorkerRelayEngine(
            workers=workers, bind_host="127.0.0.1", port_min=port_min, port_max=port_max
        )
    else:
        engine = RelayEngine(bind_host="127.0.0.1", port_min=port_min, port_max=port_max)
    await engine.start()
    watch = _GcWatch()
    sys.stdout.write('{"ready": true}\n')
    sys.stdout.flush()
    try:
        while line := await reader.readline():
            request = json.loads(line)
            if request.get("op") == "quit":
                break
            try:
                reply = await _handle(engine, request, watch)
            except Exception as exc:  # reported to the harness, which stops the run
                reply = {"error": f"{type(exc).__name__}: {exc}"}
            sys.stdout.write(json.dumps(reply) + "\n")
            sys.stdout.flush()
    finally:
        await engine.close()


def main() -> None:
    """Parse the port range and serve."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port-min", type=int, default=12000)
    parser.add_argument("--port-max", type=int, default=15999)
    parser.add_argument("--workers", type=int, default=0, help="worker processes (0: none)")
    args = parser.parse_args()
    uvloop.run(serve(args.port_min, args.port_max, args.workers))


if __name__ == "__main__":
    main()
