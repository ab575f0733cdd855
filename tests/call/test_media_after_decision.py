"""A refused call binds no media port: the controller with the real built-in relay.

The desk decides before the media engine is asked, so a call refused for a closed
partner, a full queue, an unknown service or a service the kiosk may not call never
binds a relay port (with rtpengine it would cost a round trip). The relay's own
counters say so; a call that is offered a station binds ports, for contrast.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fakes import ANSWER, OFFER, FakeDialer, FakeLeg, static_targets
from harness import rtp_ports
from test_controller import DIALPLAN, MONDAY_10H

from gateway.call.b2bua import B2BUA
from gateway.call.scheduler import LoopScheduler
from gateway.dialplan import Dialplan, load_dialplan
from gateway.media.relay import RelayEngine
from gateway.model.causes import Refusal
from gateway.model.events import Answered, CallAttempt, Disconnected, Side


async def started(tmp_path: Path) -> tuple[Dialplan, RelayEngine]:
    """The controller tests' dialplan and a real relay on a port range of its own."""
    path = tmp_path / "controller.yaml"
    path.write_text(DIALPLAN)
    low, high = rtp_ports(40)  # twenty port pairs of this worker's slice
    relay = RelayEngine(bind_host="127.0.0.1", port_min=low, port_max=high, timeout=0)
    await relay.start()
    return load_dialplan(path), relay


async def test_refused_calls_bind_no_relay_port(tmp_path: Path) -> None:
    dialplan, relay = await started(tmp_path)
    sched = LoopScheduler(lambda: MONDAY_10H)
    dialer = FakeDialer()
    targets = static_targets(dialplan)
    b2bua = B2BUA(dialplan, relay, sched, {"sip": dialer}, targets.get)
    for sid in targets:
        b2bua.station_reachable(sid, True)

    async def call(service: str, kiosk: str = "lessay") -> FakeLeg:
        leg = FakeLeg(Side.A)
        b2bua.on_attempt(leg, CallAttempt(kiosk, service, OFFER))
        await sched.drain()
        return leg

    try:
        # The "ringing" partner's one station takes a first call; its queue then fills.
        busy = await call("ringing")
        dialer.legs[0].emit(Answered(ANSWER))
        await sched.drain()
        assert busy.names() == ["answer"]
        assert relay.session_count == 1 and relay.ports_in_use > 0
        in_use = relay.ports_in_use
        for _ in range(3):
            await call("ringing")  # queued with ringing: no announcement, no media
        refused = {
            Refusal.QUEUE_FULL: await call("ringing"),
            Refusal.CLOSED: await call("ft"),  # Monday: opens on Wednesdays
            Refusal.UNKNOWN_SERVICE: await call("impots"),
            Refusal.NOT_OFFERED: await call("ringing", "gavray"),
        }
        for refusal, leg in refused.items():
            assert leg.last("reject").cause is refusal.cause, refusal
        assert [r.refusal for r in b2bua.records] == list(refused)
        # Only the call offered a station holds ports; nothing else was ever bound.
        assert (relay.session_count, relay.ports_in_use, relay.ports_idle) == (1, in_use, 0)
        busy.emit(Disconnected())  # the station goes to wrap-up: nobody is offered yet
        await sched.drain()
        assert relay.session_count == 0 and relay.ports_in_use == 0
    finally:
        await b2bua.close()
        await sched.drain()
        await relay.close()


@pytest.mark.parametrize("service", ["ft", "impots"])
async def test_a_refused_first_call_leaves_the_relay_untouched(
    tmp_path: Path, service: str
) -> None:
    dialplan, relay = await started(tmp_path)
    sched = LoopScheduler(lambda: MONDAY_10H)
    b2bua = B2BUA(dialplan, relay, sched, {"sip": FakeDialer()}, lambda sid: None)
    try:
        leg = FakeLeg(Side.A)
        b2bua.on_attempt(leg, CallAttempt("lessay", service, OFFER))
        await sched.drain()
        assert leg.names() == ["reject"]
        assert (relay.session_count, relay.ports_in_use, relay.ports_idle) == (0, 0, 0)
    finally:
        await relay.close()
