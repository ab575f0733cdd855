"""The RAS flood guard (gateway/edge/h323_ras.py): the SIP side's FloodGuard, checked
with a datagram's source before it is decoded (H.225.0 7.6 sets no rate; issue 13).

First on a fake clock through the edge's verdict function, then on real loopback UDP:
a source sending GRQs far over its rate is banned and dropped unread while another
address still gets its GCF.
"""

from __future__ import annotations

import asyncio
import logging
import socket

import pytest

from gateway.edge.h323_ras import RasEndpoint
from gateway.h323 import asn1
from gateway.h323.ras import Gatekeeper, GatekeeperClient
from gateway.sip.guard import FloodGuard, FloodSettings


def grq(alias: str = "kiosk") -> bytes:
    """A GatekeeperRequest as a unit sends it (built by our own client)."""
    client = GatekeeperClient(
        ("127.0.0.1", 2000), ("127.0.0.1", 1719), ("127.0.0.1", 1720), [alias]
    )
    client.register(0.0)
    ((data, _),) = client.datagrams_to_send()
    assert asn1.decode_ras(data)[0] == "gatekeeperRequest"
    return data


def test_the_verdict_bans_a_source_that_keeps_on_and_logs_start_and_end(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, "gateway.edge.h323_ras")
    flood = FloodGuard(FloodSettings(rate=1.0, burst=3.0, ban_time=10.0))
    verdicts = [RasEndpoint._admitted(flood, "192.0.2.1", 0.0) for _ in range(6)]
    assert verdicts == [True, True, True, False, False, False]  # the burst, then drops
    assert [b.key for b in flood.bans(0.0)] == ["192.0.2.1"]
    assert RasEndpoint._admitted(flood, "192.0.2.2", 0.0)  # another source is untouched
    assert not RasEndpoint._admitted(flood, "192.0.2.1", 9.9)  # banned: dropped
    assert RasEndpoint._admitted(flood, "192.0.2.1", 10.0)  # the ban is over
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "RAS flood from 192.0.2.1: 3 messages over the rate limit, banned for 10 s",
        "RAS flood ban of 192.0.2.1 ended",
    ]
    assert flood.started == [] and flood.ended == []


def test_a_rate_of_zero_admits_everything() -> None:
    flood = FloodGuard(FloodSettings(rate=0.0, burst=1.0))
    assert all(RasEndpoint._admitted(flood, "192.0.2.1", 0.0) for _ in range(1000))


async def answers(sock: socket.socket, timeout: float) -> list[str]:
    """The RAS messages that came back to ``sock`` within ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    out: list[str] = []
    deadline = loop.time() + timeout
    while (left := deadline - loop.time()) > 0:
        try:
            data = await asyncio.wait_for(loop.sock_recv(sock, 65535), left)
        except TimeoutError:
            break
        out.append(asn1.decode_ras(data)[0])
    return out


def udp_from(host: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((host, 0))
    sock.setblocking(False)
    return sock


async def test_a_grq_flood_is_banned_and_dropped_undecoded_while_another_unit_is_answered() -> None:
    gk = Gatekeeper(("127.0.0.1", 0), ("127.0.0.1", 1720), allowed=lambda aliases: True)
    endpoint = RasEndpoint(gk)
    endpoint.flood = FloodGuard(FloodSettings(rate=5.0, burst=10.0, ban_time=30.0))
    address = await endpoint.start("127.0.0.1", 0)
    flooder, unit = udp_from("127.0.0.2"), udp_from("127.0.0.3")
    try:
        data = grq()
        for _ in range(300):
            flooder.sendto(data, address)
        await asyncio.sleep(0.3)
        assert [b.key for b in endpoint.flood.bans(endpoint.now())] == ["127.0.0.2"]
        # The first burst was answered; the rest never reached the decoder.
        assert gk.counters.received <= 12
        assert endpoint.flood.dropped_total >= 150  # (the kernel may drop a few itself)
        got = await answers(flooder, 0.2)
        assert 1 <= len(got) <= 12 and set(got) == {"gatekeeperConfirm"}
        flooder.sendto(data, address)
        assert await answers(flooder, 0.3) == []  # banned: silence
        unit.sendto(grq("other"), address)
        assert await answers(unit, 2.0) == ["gatekeeperConfirm"]
    finally:
        flooder.close()
        unit.close()
        endpoint.close()
