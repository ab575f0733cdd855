"""The station monitor: registrations and OPTIONS keep-alives decide reachability.

A recorder stands in for the UA's sending side; the registrations live in the real
in-memory store. Keep-alive transactions are answered or timed out by hand, which is
what the transaction layer reports after 64*T1 on the wire.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.call.stations import StationMonitor
from gateway.dialplan import Dialplan, load_dialplan
from gateway.sip.message import Request, make_response
from gateway.state.store import Binding, MemoryStore

PLAN = """\
version: 1
domain: visio.test
kiosks:
  - {id: k, site: S, addresses: [127.0.0.9], services: all}
services:
  - {name: caf, number: "1001", partner: caf}
partners:
  - id: caf
    name: CAF
    stations:
      - {id: caf-1, address: "127.0.0.1:5072", keepalive: 10}
      - {id: caf-2, username: station-caf-2, password: {env: PW}}
"""


@dataclass
class Endpoint:
    def via_for(self, transport: str, branch: str) -> str:
        return f"SIP/2.0/UDP 127.0.0.1:5060;branch={branch}"


@dataclass
class Ua:
    dialplan: Dialplan
    store: MemoryStore
    endpoint: Endpoint = field(default_factory=Endpoint)
    sent: list[tuple[Any, Request, Any]] = field(default_factory=list)

    def new_call_id(self) -> str:
        return f"probe-{len(self.sent)}@127.0.0.1"

    def send_request(self, owner: Any, request: Request, dest: Any, transport: str) -> str:
        self.sent.append((owner, request, dest))
        return f"key{len(self.sent)}"


def make(
    tmp_path: Path, text: str
) -> tuple[StationMonitor, Ua, MemoryStore, list[float], list[tuple[str, bool]]]:
    """A monitor over ``text`` with a hand-moved clock and the list of its verdicts."""
    path = tmp_path / "plan.yaml"
    path.write_text(text)
    now = [1000.0]
    store = MemoryStore(clock=lambda: now[0])
    ua = Ua(load_dialplan(path, env={"PW": "secret"}), store)
    changes: list[tuple[str, bool]] = []
    monitor = StationMonitor(
        ua,
        lambda s, r: changes.append((s, r)),
        wall_clock=lambda: now[0],
    )
    return monitor, ua, store, now, changes


async def test_static_station_goes_offline_after_two_silent_keepalives(tmp_path: Path) -> None:
    monitor, ua, _store, now, changes = make(tmp_path, PLAN)

    await monitor.sweep()
    assert changes == [("caf-1", True), ("caf-2", False)]
    assert not ua.sent  # the first keep-alive waits one interval

    now[0] += 10
    await monitor.sweep()
    (owner, options, dest) = ua.sent[-1]
    assert options.method == "OPTIONS" and dest == ("127.0.0.1", 5072)
    assert options.uri_text == "sip:caf-1@127.0.0.1:5072"
    owner.on_timeout("key1")
    assert changes[-1] == ("caf-2", False)  # one silence is not enough
    now[0] += 10
    await monitor.sweep()
    owner.on_timeout("key2")
    assert changes[-1] == ("caf-1", False)
    assert monitor.reachable["caf-1"] is False

    # Any final answer, even 405, brings it back.
    now[0] += 10
    await monitor.sweep()
    owner, options, _ = ua.sent[-1]
    owner.on_response(make_response(options, 405), "key3")
    assert changes[-1] == ("caf-1", True)


async def test_registered_station_follows_its_binding(tmp_path: Path) -> None:
    monitor, ua, store, now, changes = make(tmp_path, PLAN.replace("keepalive: 10", "keepalive: 0"))
    await monitor.sweep()
    assert ("caf-2", False) in changes and monitor.target("caf-2") is None
    await store.set_binding(
        Binding(
            aor="station-caf-2",
            contact="sip:station-caf-2@127.0.0.1:5080",
            source=("127.0.0.1", 5080),
            transport="udp",
            expires_at=now[0] + 60,
            call_id="r1",
            cseq=1,
            user_agent="test",
        )
    )
    await monitor.refresh_user("station-caf-2")
    assert changes[-1] == ("caf-2", True)
    target = monitor.target("caf-2")
    assert target is not None and target.dest == ("127.0.0.1", 5080)
    # The binding expires: the next sweep takes the station offline.
    now[0] += 61
    await monitor.sweep()
    assert changes[-1] == ("caf-2", False) and monitor.target("caf-2") is None
    assert not ua.sent  # keepalive 0: never probed


H323_PLAN = PLAN.replace(
    "      - {id: caf-2, username: station-caf-2, password: {env: PW}}\n",
    '      - {id: caf-3, protocol: h323, address: "127.0.0.1:1730", keepalive: 10}\n'
    "      - {id: caf-4, protocol: h323, alias: agent-caf}\n",
)


async def test_h323_stations_are_checked_by_connection_and_found_by_registration(
    tmp_path: Path,
) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text(H323_PLAN)
    now = [1000.0]
    ua = Ua(load_dialplan(path, env={}), MemoryStore(clock=lambda: now[0]))
    changes: list[tuple[str, bool]] = []
    up = {"answers": True}
    checked: list[tuple[str, int]] = []
    registered: dict[str, tuple[str, int]] = {}

    async def probe(address: tuple[str, int]) -> bool:
        checked.append(address)
        return up["answers"]

    monitor = StationMonitor(
        ua,
        lambda s, r: changes.append((s, r)),
        wall_clock=lambda: now[0],
        h323_lookup=registered.get,
        h323_probe=probe,
    )

    async def sweep() -> None:
        await monitor.sweep()
        for task in list(monitor._checks):
            await task

    await sweep()
    assert ("caf-3", True) in changes and ("caf-4", False) in changes
    target = monitor.target("caf-3")
    assert target is not None and (target.protocol, target.dest) == ("h323", ("127.0.0.1", 1730))
    up["answers"] = False
    for _ in range(2):  # two refused connections in a row: offline
        now[0] += 10
        await sweep()
    assert checked == [("127.0.0.1", 1730)] * 2
    assert changes[-1] == ("caf-3", False)
    assert not [r for r in ua.sent if r[2] == ("127.0.0.1", 1730)]  # no OPTIONS to it
    up["answers"] = True
    now[0] += 10
    await sweep()
    assert changes[-1] == ("caf-3", True)

    # A unit registers its alias with the gateway's gatekeeper: called where it is.
    registered["agent-caf"] = ("127.0.0.1", 1740)
    await monitor.refresh_h323(["agent-caf"])
    assert changes[-1] == ("caf-4", True)
    target = monitor.target("caf-4")
    assert target is not None and (target.uri, target.dest) == ("agent-caf", ("127.0.0.1", 1740))
