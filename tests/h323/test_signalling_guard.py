"""The H.225.0 listener's bounds on real loopback TCP (gateway/edge/h323_signalling.py):
connections per source and in total (refused at accept), junk that closes its own
connection and no other, and a connection that never sends a Setup.

The endpoint has no call handler here (``incoming`` answers with a recorder), so no
call goes further than the sans-IO engine; the sockets are real, on 127.0.0.x.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from gateway.edge.bounds import PER_SOURCE, TOTAL
from gateway.edge.h323_signalling import H323Connection, H323SignallingEndpoint
from gateway.edge.sip_transport import ConnectionLimits
from gateway.h323 import tpkt
from gateway.h323.call import H323Call

from .test_signalling_edge import Handler


async def endpoint_with(
    per_source: int = 2, total: int = 100, setup_timeout: float = 10.0
) -> tuple[H323SignallingEndpoint, list[Handler]]:
    endpoint = H323SignallingEndpoint(
        "127.0.0.1",
        0,
        limits=ConnectionLimits(per_source, total),
        setup_timeout=setup_timeout,
    )
    handlers: list[Handler] = []

    def incoming(conn: H323Connection) -> Handler:
        handlers.append(Handler())
        return handlers[-1]

    endpoint.incoming = incoming
    await endpoint.start()
    return endpoint, handlers


async def connect(
    endpoint: H323SignallingEndpoint, source: str
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", endpoint.port, local_addr=(source, 0))


async def closed_by_peer(reader: asyncio.StreamReader, timeout: float = 2.0) -> bool:
    """Whether the gateway closed the connection (EOF or reset) within ``timeout``."""
    try:
        data = await asyncio.wait_for(reader.read(65536), timeout)
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
    return data == b"" or await closed_by_peer(reader, timeout)


async def settle(condition: object, what: str) -> None:
    for _ in range(100):
        if callable(condition) and condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


async def test_connections_past_the_per_source_bound_are_closed_at_accept(
    caplog: pytest.LogCaptureFixture,
) -> None:
    endpoint, handlers = await endpoint_with(per_source=2)
    caplog.set_level(logging.WARNING, "gateway.edge.h323_signalling")
    streams = [await connect(endpoint, "127.0.0.2") for _ in range(5)]
    try:
        closed = [await closed_by_peer(reader, 0.5) for reader, _ in streams]
        assert closed == [False, False, True, True, True]
        assert endpoint.bounds.refused == {PER_SOURCE: 3, TOTAL: 0}
        assert len(handlers) == 2 and len(endpoint.connections) == 2
        # one log line for the source, not one per refusal
        refusals = [r for r in caplog.records if "refused" in r.getMessage()]
        assert len(refusals) == 1 and "127.0.0.2" in refusals[0].getMessage()
        # another address is not concerned
        reader, writer = await connect(endpoint, "127.0.0.3")
        assert not await closed_by_peer(reader, 0.3)
        writer.close()
        # a connection of the first source closed gives its place back
        streams[0][1].close()
        await settle(lambda: endpoint.bounds.held("127.0.0.2") == 1, "the release")
        reader, writer = await connect(endpoint, "127.0.0.2")
        assert not await closed_by_peer(reader, 0.3)
        writer.close()
    finally:
        for _, writer in streams:
            writer.close()
        await endpoint.close()
    assert endpoint.bounds.open == 0


async def test_the_total_bound_refuses_any_source() -> None:
    endpoint, _ = await endpoint_with(per_source=0, total=3)
    streams = [await connect(endpoint, f"127.0.0.{i}") for i in range(2, 6)]
    try:
        closed = [await closed_by_peer(reader, 0.5) for reader, _ in streams]
        assert closed == [False, False, False, True]
        assert endpoint.bounds.refused[TOTAL] == 1
    finally:
        for _, writer in streams:
            writer.close()
        await endpoint.close()


async def test_junk_closes_its_own_connection_only() -> None:
    endpoint, handlers = await endpoint_with(per_source=10)
    good_reader, good_writer = await connect(endpoint, "127.0.0.2")
    bad_reader, bad_writer = await connect(endpoint, "127.0.0.3")
    long_reader, long_writer = await connect(endpoint, "127.0.0.4")
    try:
        await settle(lambda: len(handlers) == 3, "three accepted connections")
        bad_writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # not a TPKT at all
        long_writer.write(b"\x03\x00\xff\xff" + bytes(100))  # a length past the cap
        assert await closed_by_peer(bad_reader)
        assert await closed_by_peer(long_reader)
        # the good one still takes a keep-alive TPKT and stays open
        good_writer.write(tpkt.encode(b""))
        assert not await closed_by_peer(good_reader, 0.3)
        assert endpoint.counters.broken_streams == 2
        assert len(endpoint.connections) == 1
    finally:
        for writer in (good_writer, bad_writer, long_writer):
            writer.close()
        await endpoint.close()


async def test_a_connection_without_setup_is_closed_after_the_timeout() -> None:
    endpoint, handlers = await endpoint_with(setup_timeout=0.3)
    reader, writer = await connect(endpoint, "127.0.0.2")
    try:
        writer.write(tpkt.encode(b""))  # keep-alives are no Setup
        assert await closed_by_peer(reader, 2.0)
        assert endpoint.counters.setup_timeouts == 1
        await settle(lambda: endpoint.bounds.open == 0, "the release")
        (handler,) = handlers
        assert handler.lost and "no Setup" in handler.lost[0]
    finally:
        writer.close()
        await endpoint.close()


async def test_a_connection_that_sent_its_setup_is_not_timed_out() -> None:
    endpoint, handlers = await endpoint_with(setup_timeout=0.3)
    caller = H323Call(outgoing=True, local_address=("127.0.0.2", 1720), now=0.0)
    caller.setup(
        destination="caf", destination_address=("127.0.0.1", endpoint.port), offer=None, now=0.0
    )
    reader, writer = await connect(endpoint, "127.0.0.2")
    try:
        writer.write(b"".join(tpkt.encode(p) for p in caller.data_to_send()))
        await settle(lambda: handlers and handlers[0].events, "the Offered event")
        assert not await closed_by_peer(reader, 0.8)
        assert endpoint.counters.setup_timeouts == 0
    finally:
        writer.close()
        await endpoint.close()
