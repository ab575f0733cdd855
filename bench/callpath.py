#!/usr/bin/env python3
"""The Python cost of one call through the whole gateway, without sockets or SIPp.

A SIPp-like caller and callee are played in memory: their messages go straight into
``SipEndpoint.data_received`` and what the gateway sends is caught before the socket.
Each call is INVITE with SDP / 180 / 200 / ACK / BYE / 200, as in
``bench/signalling.py`` (the station rings at once, so the gateway sends no 100
Trying), through the real UA core, B2BUA, partner desk, media relay (its port pairs are
real sockets) and transaction layer, on ``dialplans/loadtest.yaml``.

What it reports is the CPU time of each call's messages and of the controller steps they
start (tasks of the loop, run by a few empty loop turns after each message), calls back
to back: warm caches, no system call for SIP, no wake-up. That is the part of a call's
cost the Python code controls, measured without the noise of a real run; for a figure
that does not even depend on the machine's load, run it under callgrind and compare
instruction counts (see bench/README.md): each call runs inside one
``loop.run_until_complete`` called through ``itertools.starmap``, so
``--toggle-collect=starmap_next`` counts the calls alone.

    .venv/bin/python bench/callpath.py --calls 3000
    .venv/bin/python bench/callpath.py --calls 3000 --profile callpath.prof
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import itertools
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import uvloop

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.app import Gateway, Settings, settle_garbage_collector  # noqa: E402
from gateway.dialplan import load_dialplan  # noqa: E402
from gateway.media import ports as relay  # noqa: E402 - the relay's port pool: REUSE_QUIET

CALLER = ("127.0.0.1", 5061)
STATION = ("127.0.0.1", 5070)  # where loadtest.yaml routes the service "bench"
OFFER = (
    b"v=0\r\no=bench 1 1 IN IP4 127.0.0.1\r\ns=bench\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    b"m=audio 6000 RTP/AVP 0 8\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n"
)
ANSWER = (
    b"v=0\r\no=station 1 1 IN IP4 127.0.0.1\r\ns=station\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    b"m=audio 6002 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
)


def header(message: bytes, name: bytes) -> bytes:
    """The whole ``Name: value`` line of the first such header."""
    m = re.search(rb"^" + name + rb":[^\r\n]*", message, re.M | re.I)
    if m is None:
        raise AssertionError(f"no {name!r} in {message[:200]!r}")
    return m.group(0)


def caller_request(method: str, n: int, cseq: int, branch: str, to: bytes, body: bytes) -> bytes:
    """A request of the caller's dialog number ``n``, as SIPp's uac sends it."""
    head = (
        (
            f"{method} sip:bench@127.0.0.1:5060 SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-{n}-{branch}\r\n"
            f'From: "bench caller" <sip:caller@127.0.0.1:5061>;tag={n}B\r\n'
        ).encode()
        + to
        + (
            f"\r\nCall-ID: {n}@127.0.0.1\r\nCSeq: {cseq} {method}\r\n"
            f"Contact: <sip:caller@127.0.0.1:5061>\r\nMax-Forwards: 70\r\n"
        ).encode()
    )
    if body:
        head += b"Content-Type: application/sdp\r\n"
    return head + b"Content-Length: %d\r\n\r\n" % len(body) + body


def station_response(request: bytes, status: bytes, tag: bytes | None, body: bytes) -> bytes:
    """The station's answer to ``request``, as SIPp's uas builds it from the request."""
    lines = [b"SIP/2.0 " + status, *re.findall(rb"^Via:[^\r\n]*", request, re.M)]
    to = header(request, b"To")
    lines += [header(request, b"From"), to + (b";tag=" + tag if tag else b"")]
    lines += [header(request, b"Call-ID"), header(request, b"CSeq")]
    lines.append(b"Contact: <sip:station@127.0.0.1:5070>")
    if body:
        lines.append(b"Content-Type: application/sdp")
    lines.append(b"Content-Length: %d" % len(body))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


# Empty loop turns after each message: one lets the controller step it started (a
# task) run to its end, as the real loop does right after the datagram is read.
TURNS = 1


def run(calls: int, profile: Path | None) -> float:
    """Place ``calls`` calls; return the CPU seconds each call cost, steps included."""
    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    dialplan = load_dialplan(ROOT / "dialplans" / "loadtest.yaml")
    gw = Gateway(Settings(dialplan=dialplan.source, sip_port=0, http_port=-1, tcp=False), dialplan)
    loop.run_until_complete(gw.start())
    # The station monitor marks the static station reachable.
    loop.run_until_complete(asyncio.sleep(0.2))
    settle_garbage_collector()
    # Calls here follow each other faster than the pool's quiet time: let pairs be
    # reused at once, as they are at a steady hundred calls a second.
    relay.REUSE_QUIET = 0.0
    sent: list[tuple[bytes, tuple[str, int]]] = []
    # The endpoint's own in-memory network (its ``wire``), which a compiled core accepts.
    gw.endpoint._wire = lambda data, dest, transport: sent.append((data, dest))
    endpoint = gw.endpoint
    profiler = cProfile.Profile() if profile else None
    cpu = 0.0

    async def feed(data: bytes, source: tuple[str, int]) -> None:
        endpoint.data_received(data, source, "udp")
        for _ in range(TURNS):
            await asyncio.sleep(0)

    def take(dest: tuple[str, int], start: bytes) -> bytes:
        for i, (data, to) in enumerate(sent):
            if to == dest and data.startswith(start):
                return sent.pop(i)[0]
        raise AssertionError(f"the gateway sent no {start!r} to {dest}")

    no_tag = b"To: <sip:bench@127.0.0.1:5060>"

    async def one_call(n: int) -> None:
        await feed(caller_request("INVITE", n, 1, "1", no_tag, OFFER), CALLER)
        invite = take(STATION, b"INVITE")
        tag = b"S%d" % n
        await feed(station_response(invite, b"180 Ringing", tag, b""), STATION)
        await feed(station_response(invite, b"200 OK", tag, ANSWER), STATION)
        take(STATION, b"ACK")
        take(CALLER, b"SIP/2.0 180")
        to = header(take(CALLER, b"SIP/2.0 200"), b"To")
        await feed(caller_request("ACK", n, 1, "2", to, b""), CALLER)
        await feed(caller_request("BYE", n, 2, "3", to, b""), CALLER)
        take(CALLER, b"SIP/2.0 200")
        bye = take(STATION, b"BYE")
        await feed(station_response(bye, b"200 OK", None, b""), STATION)

    try:
        for n in range(calls):
            t0 = time.process_time()
            if profiler:
                profiler.enable()
            # Called from C (itertools.starmap), so that callgrind can count the calls'
            # instructions alone: --toggle-collect=starmap_next (see bench/README.md).
            for _ in itertools.starmap(loop.run_until_complete, ((one_call(n),),)):
                pass
            if profiler:
                profiler.disable()
            cpu += time.process_time() - t0
        if gw.b2bua.calls or sent:
            raise AssertionError(f"left behind: {len(gw.b2bua.calls)} calls, {sent[:3]}")
    finally:
        if profiler and profile:
            profiler.dump_stats(profile)
        loop.run_until_complete(gw.close())
        loop.close()
    return cpu / calls


def main(argv: Sequence[str] | None = None) -> int:
    """Run the in-process call path and print the CPU microseconds per call."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--calls", type=int, default=3000)
    p.add_argument("--profile", type=Path, help="write cProfile statistics of the calls here")
    a = p.parse_args(argv)
    per_call = run(max(1, a.calls), a.profile)
    print(f"{a.calls} calls: {per_call * 1e6:.1f} us of CPU per call")
    return 0


if __name__ == "__main__":
    sys.exit(main())
