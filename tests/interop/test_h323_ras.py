"""H.225.0 RAS against real peers: H323Plus ``simple`` and GNU Gatekeeper.

(a) ``simple`` registers with OUR gatekeeper (gateway.h323.ras.Gatekeeper behind
gateway.edge.h323_ras.RasEndpoint): GRQ/GCF, RRQ/RCF with its alias and call
signalling address, lightweight keep-alive RRQs, a call admitted by ARQ/ACF that it
then places to the gateway's call signalling address, DRQ at its end, URQ when it
exits; and a unit that dies without a word lapses by its time to live.
(b) OUR GatekeeperClient registers with a real GNU Gatekeeper (GRQ, RRQ, keep-alive
RRQ), then locates and admits a ``simple`` registered there (LRQ/LCF, ARQ/ACF with its
address, DRQ/DCF) and unregisters (URQ/UCF): gnugk's status port shows each step.
Everything on 127.0.0.1 and free ports; every process is stopped in ``finally``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from h323.ras_peers import GnuGk, Simple, until
from harness import free_port

from gateway.edge.h323_ras import RasEndpoint
from gateway.h323 import asn1, q931, tpkt
from gateway.h323.messages import Alias
from gateway.h323.ras import (
    AdmissionConfirmed,
    Admitted,
    DisengageConfirmed,
    Disengaged,
    Gatekeeper,
    GatekeeperClient,
    GatekeeperRegistered,
    GatekeeperUnregistered,
    Located,
    NotLocated,
    RasEvent,
    Registered,
    Unregistered,
)

pytestmark = pytest.mark.interop

LOCAL = "127.0.0.1"


class Recorder:
    """The events an endpoint delivered, in order."""

    def __init__(self) -> None:
        self.events: list[RasEvent] = []

    def __call__(self, events: list[RasEvent]) -> None:
        self.events.extend(events)

    def of(self, kind: type[RasEvent]) -> list[RasEvent]:
        return [e for e in self.events if isinstance(e, kind)]


async def start_gatekeeper(**options: Any) -> tuple[Gatekeeper, RasEndpoint, Recorder]:
    signal = (LOCAL, free_port())
    gk = Gatekeeper((LOCAL, 0), signal, identifier="vrgw", **options)
    recorder = Recorder()
    endpoint = RasEndpoint(gk, recorder)
    await endpoint.start(LOCAL, 0)
    return gk, endpoint, recorder


async def test_simple_registers_keeps_alive_and_unregisters(tmp_path: Path) -> None:
    # A short time to live: H323Plus refreshes 5 s before it runs out, so every 3 s.
    gk, endpoint, recorder = await start_gatekeeper(time_to_live=8, ttl_grace=2)
    assert endpoint.address is not None
    kiosk = Simple(
        ["-l", "-a", "-g", f"{LOCAL}:{endpoint.address[1]}", "-u", "kiosk1"], tmp_path, "kiosk"
    )
    try:
        await until(lambda: recorder.of(Registered), 10, f"an RRQ\n{kiosk.output}")
        (registered,) = recorder.of(Registered)
        assert isinstance(registered, Registered)
        assert Alias("kiosk1") in registered.aliases
        assert registered.call_signal_address == kiosk.signal_address
        assert registered.time_to_live == 8
        assert gk.lookup("kiosk1") == kiosk.signal_address
        first_expiry = gk.registrations[registered.endpoint_id].expires
        assert first_expiry is not None
        # the lightweight RRQ (keepAlive) pushes the expiry on, with no new event
        await until(
            lambda: (gk.registrations[registered.endpoint_id].expires or 0) > first_expiry,
            8,
            "a keep-alive RRQ",
        )
        assert len(recorder.of(Registered)) == 1
        assert gk.counters.malformed == 0 and gk.counters.rejected_values == 0

        kiosk.type("X")  # exits, unregistering first
        await until(lambda: recorder.of(Unregistered), 8, f"a URQ\n{kiosk.output}")
        assert recorder.of(Unregistered) == [
            Unregistered(registered.endpoint_id, registered.aliases, "unregistered")
        ]
        assert gk.lookup("kiosk1") is None
        kiosk.proc.wait(5)
    finally:
        kiosk.stop()
        endpoint.close()


async def test_a_unit_that_dies_lapses_by_its_time_to_live(tmp_path: Path) -> None:
    gk, endpoint, recorder = await start_gatekeeper(time_to_live=6, ttl_grace=1)
    assert endpoint.address is not None
    kiosk = Simple(
        ["-l", "-a", "-g", f"{LOCAL}:{endpoint.address[1]}", "-u", "kiosk2"], tmp_path, "kiosk"
    )
    try:
        await until(lambda: recorder.of(Registered), 10, f"an RRQ\n{kiosk.output}")
        kiosk.kill()  # no URQ
        await until(lambda: recorder.of(Unregistered), 10, "the registration to lapse")
        (gone,) = recorder.of(Unregistered)
        assert isinstance(gone, Unregistered) and gone.reason == "ttlExpired"
        assert gk.lookup("kiosk2") is None
    finally:
        kiosk.stop()
        endpoint.close()


async def test_simple_is_admitted_and_calls_through_the_gateway(tmp_path: Path) -> None:
    """ARQ -> ACF gatekeeperRouted: simple sends its Setup to the gateway's address."""
    setups: list[q931.Q931Message] = []
    hung_up = asyncio.Event()

    async def signalling(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        framer = tpkt.TpktFramer()
        try:
            while not setups:
                data = await reader.read(4096)
                if not data:
                    break
                setups.extend(q931.decode(p) for p in framer.feed(data))
        finally:
            writer.close()  # no answer: simple ends the call, and tells us by DRQ
            hung_up.set()

    gk, endpoint, recorder = await start_gatekeeper()
    assert endpoint.address is not None
    server = await asyncio.start_server(signalling, *gk.call_signal_address)
    caller = Simple(
        ["-g", f"{LOCAL}:{endpoint.address[1]}", "-u", "kiosk3", "3230"], tmp_path, "caller"
    )
    try:
        await until(lambda: recorder.of(Admitted), 10, f"an ARQ\n{caller.output}")
        (admitted,) = recorder.of(Admitted)
        assert isinstance(admitted, Admitted)
        admission = admitted.admission
        assert not admission.answer_call
        assert Alias("3230", "dialledDigits") in admission.destination
        assert Alias("kiosk3") in admission.source
        await asyncio.wait_for(hung_up.wait(), 10)
        assert setups and setups[0].message_type == q931.MessageType.SETUP
        uuie = asn1.decode_uuie(setups[0].user_user or b"")
        setup = uuie["h323-uu-pdu"]["h323-message-body"][1]
        assert setup["callIdentifier"]["guid"] == admission.call_id
        assert ("dialledDigits", "3230") in setup["destinationAddress"]
        await until(lambda: recorder.of(Disengaged), 10, f"a DRQ\n{caller.output}")
        assert recorder.of(Disengaged)[0] == Disengaged(
            admission.endpoint_id, admission.call_id, "normalDrop"
        )
    finally:
        caller.stop()
        server.close()
        endpoint.close()


async def test_our_client_with_gnu_gatekeeper(tmp_path: Path) -> None:
    gnugk = GnuGk(tmp_path, time_to_live=60)
    station: Simple | None = None
    endpoint: RasEndpoint | None = None
    try:
        await gnugk.ready()
        station = Simple(
            ["-l", "-a", "-g", f"{LOCAL}:{gnugk.ras_port}", "-u", "station1"], tmp_path, "station"
        )

        async def station_registered() -> bool:
            return any("station1" in line for line in await gnugk.registrations())

        for _ in range(100):
            if await station_registered():
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError(f"simple did not register with gnugk\n{station.output}")

        # gnugk grants at least 60 s: refresh early (3 s in) to see a keep-alive now
        client = GatekeeperClient(
            (LOCAL, 0),
            gnugk.ras_address,
            (LOCAL, free_port()),
            ["vrgw-relais", "3230"],
            time_to_live=60,
            keep_alive_lead=57,
        )
        recorder = Recorder()
        endpoint = RasEndpoint(client, recorder)
        await endpoint.start(LOCAL, 0)
        endpoint.run(client.register)
        await until(lambda: recorder.of(GatekeeperRegistered), 10, "gnugk's RCF")
        (registered,) = recorder.of(GatekeeperRegistered)
        assert isinstance(registered, GatekeeperRegistered)
        assert registered.gatekeeper_id == "partnergk"
        assert registered.time_to_live == 60
        lines = await gnugk.registrations()
        (ours,) = [line for line in lines if "vrgw-relais" in line]
        # RCF|127.0.0.1:port|vrgw-relais:h323_ID=3230:dialedDigits|gateway|<endpointId>
        assert ours.split("|")[1] == f"{LOCAL}:{client.call_signal_address[1]}"
        assert "3230:dialedDigits" in ours and ours.split("|")[3] == "gateway"
        assert ours.split("|")[4] == registered.endpoint_id

        await until(lambda: client.keep_alives >= 1, 8, "the keep-alive RRQ to be confirmed")
        assert client.registered and not recorder.of(GatekeeperUnregistered)

        endpoint.run(lambda now: client.locate("station1", now))
        endpoint.run(lambda now: client.locate("nobody-here", now))
        await until(lambda: recorder.of(Located) and recorder.of(NotLocated), 12, "LCF and LRJ")
        assert recorder.of(Located) == [
            Located(Alias("station1"), station.signal_address, gnugk.ras_address)
        ]
        (not_located,) = recorder.of(NotLocated)
        assert isinstance(not_located, NotLocated) and not_located.reason != "timeout"

        call_id, conference_id = bytes(range(16)), bytes(range(16, 32))
        endpoint.run(
            lambda now: client.admit(
                call_id, conference_id, "station1", False, now, call_reference=5
            )
        )
        await until(lambda: recorder.of(AdmissionConfirmed), 10, "gnugk's ACF")
        (confirmed,) = recorder.of(AdmissionConfirmed)
        assert isinstance(confirmed, AdmissionConfirmed)
        assert confirmed.dest_call_signal_address == station.signal_address
        assert confirmed.call_model == "direct"
        assert endpoint.run(lambda now: client.disengage(call_id, now))
        await until(lambda: recorder.of(DisengageConfirmed), 10, "gnugk's DCF")
        assert recorder.of(DisengageConfirmed) == [DisengageConfirmed(call_id, True)]

        endpoint.run(client.unregister)
        await until(lambda: recorder.of(GatekeeperUnregistered), 10, "gnugk's UCF")
        assert recorder.of(GatekeeperUnregistered) == [GatekeeperUnregistered("unregistered")]
        assert not any("vrgw-relais" in line for line in await gnugk.registrations())
        assert client.counters.malformed == 0 and client.counters.timeouts == 0
    finally:
        if endpoint is not None:
            endpoint.close()
        if station is not None:
            station.stop()
        gnugk.stop()
