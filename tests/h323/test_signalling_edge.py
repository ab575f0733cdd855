"""The H.323 signalling edge on real loopback TCP: TPKT framing and what is queued early.

A plain asyncio server stands for a station: it reads TPKT packets and decodes each
Q.931 message the edge wrote.
"""

from __future__ import annotations

import asyncio

from harness import free_port

from gateway.edge.h323_signalling import H323SignallingEndpoint, accepts_connections
from gateway.h323 import q931, tpkt
from gateway.h323.call import Event, H323Call
from gateway.model.causes import Cause


class Handler:
    def __init__(self) -> None:
        self.events: list[Event] = []
        self.lost: list[str] = []

    def on_h323_events(self, events: list[Event]) -> None:
        self.events.extend(events)

    def on_connection_lost(self, reason: str) -> None:
        self.lost.append(reason)


async def station() -> tuple[asyncio.Server, asyncio.Queue[int], int]:
    """A server that queues the message type of every Q.931 message it receives."""
    received: asyncio.Queue[int] = asyncio.Queue()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        framer = tpkt.TpktFramer()
        while data := await reader.read(4096):
            for payload in framer.feed(data):
                received.put_nowait(q931.decode(payload).message_type)
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    return server, received, server.sockets[0].getsockname()[1]


async def test_a_hangup_while_connecting_still_sends_setup_then_release() -> None:
    server, received, port = await station()
    endpoint = H323SignallingEndpoint("127.0.0.1", 0)
    await endpoint.start()
    call = H323Call(outgoing=True, local_address=endpoint.address, now=endpoint.now())
    call.setup(destination="agent", destination_address=("127.0.0.1", port), offer=None, now=0.0)
    handler = Handler()
    conn = endpoint.dial(call, ("127.0.0.1", port), handler)
    # Before the connection is up: the release must wait for it, not be dropped.
    call.release(Cause.NORMAL_CLEARING, endpoint.now())
    conn.pump()
    first = await asyncio.wait_for(received.get(), 5)
    second = await asyncio.wait_for(received.get(), 5)
    assert (first, second) == (q931.MessageType.SETUP, q931.MessageType.RELEASE_COMPLETE)
    await endpoint.close()
    server.close()
    await server.wait_closed()
    assert handler.lost == []  # the call ended first: nothing to report


async def test_an_unreachable_station_is_reported_as_a_lost_connection() -> None:
    # A port of this worker's test slice that nothing binds (tests/harness.py): a port
    # the kernel gave and took back could go to another worker's process meanwhile.
    port = free_port()
    endpoint = H323SignallingEndpoint("127.0.0.1", 0)
    await endpoint.start()
    call = H323Call(outgoing=True, local_address=endpoint.address, now=endpoint.now())
    call.setup(destination="agent", destination_address=("127.0.0.1", port), offer=None, now=0.0)
    handler = Handler()
    endpoint.dial(call, ("127.0.0.1", port), handler)
    for _ in range(50):
        if handler.lost:
            break
        await asyncio.sleep(0.02)
    assert handler.lost and "cannot connect" in handler.lost[0]
    assert call.ended and not endpoint.connections
    await endpoint.close()


async def test_the_keep_alive_sees_whether_a_unit_takes_connections() -> None:
    server, _, port = await station()
    assert await accepts_connections(("127.0.0.1", port), timeout=2)
    server.close()
    await server.wait_closed()
    assert not await accepts_connections(("127.0.0.1", port), timeout=2)
