"""Acceptance: SIP kiosks call H.323 stations, and H.323 kiosks SIP stations, through the gateway.

The kiosk is pjsua2 (PJSIP), the station H323Plus's ``simple`` endpoint, auto-answering,
built from ``shared/peers/h323``. The gateway turns the INVITE into an H.225.0 Setup
(fastStart proposals from the anchored offer), the station's Connect into the 200 OK,
and relays RTP both ways; a key pressed on either side crosses (SIP INFO <-> H.245
userInputIndication or Q.931 keypad); the kiosk hangs up and the station sees
ReleaseComplete.
Three ways a real unit answers: fastStart accepted, slow start with H.245 tunnelled in
the H.225.0 messages, and slow start on a separate H.245 connection (tunnelling off).
"""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any

import pytest
from h323.peers import SimplePeer
from h323.ras_peers import GnuGk
from harness import GatewayProcess, free_port, start_capture, wait_for
from peers import PjAgentHandle, find_call, start_pjagent

pytestmark = pytest.mark.interop

MODES = {
    "faststart": ["-f"],
    "slowstart-tunnelled": [],
    "slowstart-separate-h245": ["-T"],
}
TRUSTED_KIOSK = "{id: lessay, site: MSP de Lessay, addresses: [127.0.0.1], services: all}"


def write_plan(tmp_path: Path, *stations: str, kiosk: str = TRUSTED_KIOSK, top: str = "") -> Path:
    """A dialplan: one kiosk, the service ``caf`` and its partner's ``stations``."""
    path = tmp_path / "plan.yaml"
    path.write_text(
        f"version: 1\ndomain: 127.0.0.1\nmedia: {{timeout: 0}}\n{top}"
        f"kiosks:\n  - {kiosk}\n"
        'services:\n  - {name: caf, number: "1001", partner: caf}\n'
        "partners:\n  - id: caf\n    name: CAF de la Manche\n    wrap_up: 0\n"
        "    stations:\n" + "".join(f"      - {station}\n" for station in stations)
    )
    return path


def h323_station(port: int) -> str:
    return f'{{id: caf-h323, protocol: h323, address: "127.0.0.1:{port}", alias: agent-caf}}'


def sip_station_entry(port: int) -> str:
    return f'{{id: caf-1, address: "127.0.0.1:{port}", keepalive: 0}}'


def unit(tmp_path: Path, *args: str) -> SimplePeer:
    """An H323Plus ``simple`` on loopback, silence detection off, no sound card."""
    return SimplePeer(["-e", "-i", "127.0.0.1", "-s", "Null Audio", *args], tmp_path)


def listening_unit(tmp_path: Path, port: int, *args: str, alias: str = "agent-caf") -> SimplePeer:
    """A ``simple`` station answering at once on ``port``, once it is listening."""
    peer = unit(tmp_path, "-l", "-a", "-u", alias, "-x", str(port), *args)
    if not peer.wait_output("Waiting for incoming calls", 15):
        peer.stop()
        raise AssertionError(f"simple did not start:\n{peer.output[-2000:]}")
    return peer


def sip_kiosk(
    gw: GatewayProcess,
    tmp_path: Path,
    *during: dict[str, Any],
    hangup_after: float | None = 1.0,
    headers: dict[str, str] | None = None,
    name: str = "kiosk",
) -> PjAgentHandle:
    """A pjsua2 kiosk (trusted by address) calling ``caf``; ``during`` runs once the call
    is up; it hangs up ``hangup_after`` seconds later (None: the other side does)."""
    call: dict[str, Any] = {
        "do": "call",
        "account": "kiosk",
        "dest": f"sip:caf@127.0.0.1:{gw.sip_port}",
        "name": "c1",
    }
    if headers:
        call["headers"] = headers
    actions = [call, {"do": "wait_state", "call": "c1", "state": "CONFIRMED", "timeout": 15}]
    actions += during
    if hangup_after is not None:
        actions.append({"do": "hangup", "call": "c1", "after": hangup_after})
    actions.append({"do": "wait_state", "call": "c1", "state": "DISCONNECTED", "timeout": 30})
    return start_pjagent(
        {
            "deadline": 45,
            "transports": [{"type": "udp", "port": 0}],
            "media": {"tone_hz": 440, "record": True},
            "accounts": [{"id": "kiosk", "uri": "sip:lessay@127.0.0.1", "register": False}],
            "actions": actions,
        },
        workdir=tmp_path / name,
    )


def sip_station(
    tmp_path: Path, port: int, *, calls: int = 1, hangup_after: float | None = None
) -> PjAgentHandle:
    """A pjsua2 station at a static address answering ``calls`` calls."""
    account: dict[str, Any] = {
        "id": "station",
        "uri": f"sip:caf-1@127.0.0.1:{port}",
        "register": False,
        "role": "station",
        "answer": {"mode": "answer", "delay": 0.3, "ringing": 180},
    }
    if hangup_after is not None:
        account["hangup_after"] = hangup_after
    return start_pjagent(
        {
            "deadline": 45,
            "transports": [{"type": "udp", "port": port}],
            "media": {"tone_hz": 660, "record": True},
            "accounts": [account],
            "actions": [
                {"do": "wait_incoming", "account": "station", "count": calls, "timeout": 30},
                {"do": "wait_idle", "min_calls": calls, "timeout": 30},
            ],
        },
        workdir=tmp_path / "station",
    )


def h323_port_of(gw: GatewayProcess) -> int:
    """The gateway's H.225.0 port, from its start-up line (written just after HTTP is up)."""
    match = wait_for(lambda: re.search(r"H\.323 tcp (\d+)", gw.log()), 10, "the start-up line")
    return int(match[1])


def ras_port_of(gw: GatewayProcess) -> int:
    """The gateway's gatekeeper port, from its start-up line."""
    match = wait_for(lambda: re.search(r"RAS udp (\d+)", gw.log()), 10, "the start-up line")
    return int(match[1])


def connected(call: dict[str, Any]) -> bool:
    names = [s["state"] for s in call["states"]]
    return "CONFIRMED" in names and names[-1] == "DISCONNECTED"


@pytest.mark.parametrize("mode", list(MODES))
def test_sip_kiosk_calls_an_h323_station(gateway_factory: Any, tmp_path: Path, mode: str) -> None:
    station_port = free_port()
    station = listening_unit(tmp_path, station_port, "-n", *MODES[mode])
    try:
        gw: GatewayProcess = gateway_factory(write_plan(tmp_path, h323_station(station_port)))
        capture = start_capture(tmp_path / "call.pcapng", [gw.sip_port, station_port])
        kiosk = sip_kiosk(
            gw,
            tmp_path,
            # The citizen presses keys: SIP INFO, then RFC 4733 events in RTP; the
            # station gets H.245 userInputIndication or a Q.931 keypad for the INFO,
            # and RTP events when it announced them (RFC 2833 in its capability set),
            # else the same signalling: the relay ends the events it would not take.
            {"do": "dtmf", "call": "c1", "digits": "5", "method": "info", "delay": 1.0},
            {"do": "dtmf", "call": "c1", "digits": "3", "method": "rfc2833", "delay": 0.5},
            {"do": "wait_dtmf", "call": "c1", "count": 1, "timeout": 5},
            # Hang up 3 s after the last key, not at a fixed time after the answer: a
            # fresh-clone CI run hung up 1.5 s after the RTP "3" (3 s after the answer)
            # and the loaded station had not shown it yet.
            {"do": "hangup", "call": "c1", "delay": 3.0},
            hangup_after=None,
            headers={"X-Visio-Context": "allocataire=1234567"},
        )
        with kiosk:
            live = wait_for(lambda: gw.relaying_call(20), 15, "RTP relayed both ways")
            station.type("7")  # the agent presses 7 on the station
            result = kiosk.wait(timeout=40)
        status = gw.wait_idle()
        assert station.wait_output("cleared the call", 10), station.output[-3000:]
        capture.stop()
    finally:
        station.stop()

    call = find_call(result, "c1")
    assert connected(call), call["states"]
    assert call["hung_up_by"] == "local"
    assert call["streams"][0]["rx_packets"] > 20, call["streams"][0]
    # The station's key (H.245 userInputIndication or Q.931 keypad) reached the kiosk.
    assert [d["digit"] for d in call["dtmf_received"]] == ["7"], call["dtmf_received"]
    assert live["station"] == "caf-h323"
    station_out = station.output
    assert "Started logical channel: sending" in station_out, station_out[-3000:]
    assert "Started logical channel: receiving" in station_out, station_out[-3000:]
    assert '"vrgw" has cleared the call' in station_out, station_out[-3000:]
    assert 'User input received: "5"' in station_out, station_out[-3000:]
    assert station.wait_output('User input received: "3"', 5), station_out[-3000:]

    assert status["calls"] == 0 and status["media_sessions"] == 0, status
    assert status["media_ports_in_use"] == 0, status
    record = gw.http("/api/v1/calls")["ended"][-1]
    assert record["outcome"] == "completed" and record["station"] == "caf-h323", record
    # What the gateway sent the station dissects cleanly (H.225.0 on the station's port;
    # a separate H.245 channel sits on a dynamic port tshark may not recognise).
    setups = capture.fields(
        f"tcp.dstport == {station_port} && q931.message_type == 0x05", "q931.display_information"
    )
    # The agent's unit shows who calls: the kiosk's label and the typed number (IA5).
    assert setups == [["MSP de Lessay - Allocataire 1234567"]], setups
    assert capture.problems(display_filter=f"tcp.port == {station_port}") == []
    # How the digits reached the station. With fastStart on both sides no H.245 runs, so
    # the unit announced no RFC 2833: the relay ended the kiosk's RTP events and both
    # digits went as Q.931 keypads. In slow start its capability set has RFC 2833, so
    # the events crossed in RTP and only the INFO digit was signalled (H.245 on the
    # call's own connection when tunnelled; a separate channel is not captured).
    keys = capture.fields(
        f"tcp.dstport == {station_port} && (q931.keypad_facility || h245.userInput)",
        "q931.keypad_facility",
        "h245.signalType",
    )
    expected = {
        "faststart": [["5", ""], ["3", ""]],
        "slowstart-tunnelled": [["", "5"]],
        "slowstart-separate-h245": [],
    }
    assert keys == expected[mode], keys


@pytest.mark.parametrize("mode", ["faststart", "slowstart-tunnelled"])
def test_h323_kiosk_calls_a_sip_station(gateway_factory: Any, tmp_path: Path, mode: str) -> None:
    """An H.323 unit at a kiosk site (trusted by address) dials ``caf`` by alias; the
    gateway offers the call to a SIP station (pjsua2), which answers; media both ways."""
    station_port = free_port()
    gw: GatewayProcess = gateway_factory(write_plan(tmp_path, sip_station_entry(station_port)))
    with sip_station(tmp_path, station_port) as station:
        station.wait_ready()
        kiosk = unit(
            tmp_path, "-n", "-u", "kiosk-lessay", "-x", str(free_port()), *MODES[mode],
            f"caf@127.0.0.1:{h323_port_of(gw)}",
        )  # fmt: skip
        try:
            assert kiosk.wait_output("In call with", 20), kiosk.output[-3000:]
            live = wait_for(lambda: gw.relaying_call(20), 15, "RTP relayed both ways")
            kiosk.type("H")  # the citizen hangs up
            assert kiosk.wait_output("completed", 10), kiosk.output[-3000:]
        finally:
            kiosk.stop()
        result = station.wait(timeout=40)
    status = gw.wait_idle()
    inc = find_call(result, role="incoming")
    assert connected(inc), inc["states"]
    assert inc["hung_up_by"] == "remote"
    assert inc["streams"][0]["rx_packets"] > 20, inc["streams"][0]
    assert "X-Visio-Kiosk: lessay" in inc["invite"]
    assert live["kiosk"] == "lessay" and live["station"] == "caf-1", live
    assert status["calls"] == 0 and status["media_sessions"] == 0, status
    record = gw.http("/api/v1/calls")["ended"][-1]
    assert record["outcome"] == "completed", record


def test_station_registered_with_the_gateways_gatekeeper(
    gateway_factory: Any, tmp_path: Path
) -> None:
    """An H.323 station with no fixed address registers its alias (RRQ) with the
    gateway's gatekeeper; a SIP kiosk's call then reaches it where it registered."""
    plan = write_plan(tmp_path, "{id: caf-h323, protocol: h323, alias: agent-caf}")
    gw: GatewayProcess = gateway_factory(plan)
    station = listening_unit(tmp_path, free_port(), "-g", f"127.0.0.1:{ras_port_of(gw)}", "-f")
    try:
        wait_for(lambda: "station caf-h323 is reachable" in gw.log(), 15, "the registration")
        # The operator sees the unit: admin API, metrics, the station's state.
        units = gw.http("/api/v1/h323/registrations")["registrations"]
        assert [a["value"] for u in units for a in u["aliases"]] == ["agent-caf"], units
        assert units[0]["call_signal_address"][0] == "127.0.0.1" and units[0]["expires_in"] > 0
        assert gw.metric("vrgw_h323_registrations") == 1
        assert (gw.metric("vrgw_ras_messages_received_total", gatekeeper="vrgw") or 0) >= 1
        assert gw.metric("vrgw_station_state", station="caf-h323", state="idle") == 1
        with sip_kiosk(gw, tmp_path, hangup_after=5.0) as kiosk:
            wait_for(lambda: gw.relaying_call(20), 15, "RTP relayed both ways")
            assert gw.metric("vrgw_station_state", station="caf-h323", state="busy") == 1
            assert (gw.metric("vrgw_h323_connections") or 0) >= 1
            result = kiosk.wait(timeout=30)
        gw.wait_idle()
        assert station.wait_output("cleared the call", 10), station.output[-3000:]
    finally:
        station.stop()
    assert connected(find_call(result, "c1"))
    record = gw.http("/api/v1/calls")["ended"][-1]
    assert record["outcome"] == "completed" and record["station"] == "caf-h323", record
    # The unit's URQ as it exits takes it off the desk.
    wait_for(lambda: "station caf-h323 is offline" in gw.log(), 10, "the unregistration")
    assert gw.http("/api/v1/h323/registrations")["registrations"] == []
    assert gw.metric("vrgw_h323_registrations") == 0
    assert gw.metric("vrgw_station_state", station="caf-h323", state="offline") == 1


def test_registered_h323_kiosk_calls_through_the_gatekeeper(
    gateway_factory: Any, tmp_path: Path
) -> None:
    """An H.323 kiosk registered with the gateway's gatekeeper under its username dials
    ``caf`` by alias: ARQ -> ACF routes the Setup to the gateway, which knows the kiosk
    by its registration; a unit that is not a kiosk is refused registration."""
    station_port = free_port()
    (tmp_path / "kiosk.secrets").write_text("kiosk-lessay: pw-not-used-by-h323\n")
    plan = write_plan(
        tmp_path,
        sip_station_entry(station_port),
        kiosk="{id: lessay, site: MSP de Lessay, username: kiosk-lessay,"
        " password: {secret: kiosk-lessay}, services: all}",
        top="secrets_file: kiosk.secrets\n",
    )
    gw: GatewayProcess = gateway_factory(plan)
    gk = f"127.0.0.1:{ras_port_of(gw)}"
    stranger = unit(tmp_path, "-r", "-u", "intruder", "-x", str(free_port()), "-g", gk, "caf")
    try:
        refused = stranger.wait_output("Error registering with gatekeeper", 20)
        assert refused and "In call with" not in stranger.output, stranger.output[-2000:]
    finally:
        stranger.stop()
    with sip_station(tmp_path, station_port, hangup_after=1.5) as station:
        station.wait_ready()
        kiosk = unit(tmp_path, "-u", "kiosk-lessay", "-x", str(free_port()), "-g", gk, "-f", "caf")
        try:
            assert kiosk.wait_output("In call with", 20), kiosk.output[-3000:]
            # The agent hangs up: the gateway clears the kiosk's call.
            assert kiosk.wait_output("cleared the call", 15), kiosk.output[-3000:]
        finally:
            kiosk.stop()
        result = station.wait(timeout=30)
    inc = find_call(result, role="incoming")
    assert "X-Visio-Kiosk: lessay" in inc["invite"]
    assert inc["hung_up_by"] == "local"
    record = gw.http("/api/v1/calls")["ended"][-1]
    assert record["outcome"] == "completed" and record["kiosk"] == "lessay", record


def test_a_queued_h323_kiosk_hears_the_announcement(gateway_factory: Any, tmp_path: Path) -> None:
    """The only station is busy: an H.323 kiosk (fastStart) is queued and gets Progress
    with its media accepted, so the French announcement plays before anyone answers; it
    is connected to the station once the first call ends."""
    station_port = free_port()
    gw: GatewayProcess = gateway_factory(write_plan(tmp_path, sip_station_entry(station_port)))
    station = sip_station(tmp_path, station_port, calls=2, hangup_after=4.0)
    capture = start_capture(tmp_path / "queue.pcapng", [h323_port_of(gw)])
    with station:
        station.wait_ready()  # before the first kiosk calls (it starts calling at once)
        with sip_kiosk(gw, tmp_path, hangup_after=None, name="first") as first:
            wait_for(lambda: gw.relaying_call(5), 15, "the first call")
            kiosk = unit(
                tmp_path, "-n", "-u", "kiosk-lessay", "-x", str(free_port()), "-f",
                f"caf@127.0.0.1:{h323_port_of(gw)}",
            )  # fmt: skip
            try:
                assert kiosk.wait_output("Started logical channel: receiving", 10), kiosk.output
                assert "In call with" not in kiosk.output  # queued, hearing the announcement
                queued = gw.http("/api/v1/queues")["queues"]["caf"]
                assert [w["kiosk"] for w in queued["waiting"]] == ["lessay"], queued
                assert kiosk.wait_output("In call with", 20), kiosk.output[-3000:]
                assert kiosk.wait_output("cleared the call", 15), kiosk.output[-3000:]
            finally:
                kiosk.stop()
            first.wait(timeout=30)
        station.wait(timeout=30)
    gw.wait_idle()
    capture.stop()
    ended = gw.http("/api/v1/calls")["ended"]
    assert [r["outcome"] for r in ended] == ["completed", "completed"], ended
    assert ended[1]["queued"] and ended[1]["waited"] > 0, ended[1]
    progress = capture.fields("q931.message_type == 0x03", "q931.progress_indicator.description")
    assert progress and progress[0] == ["0x08"], progress  # in-band information


def test_an_isdn_unit_is_called_by_number_through_its_h320_gateway(
    gateway_factory: Any, tmp_path: Path
) -> None:
    """A partner's ISDN unit is an E.164 number behind a named H.320/H.323 gateway (here
    a `simple` that answers whatever it is called for): the Setup goes to the gateway
    with the number as dialledDigits and as the Called party number."""
    gateway_port = free_port()
    plan = write_plan(
        tmp_path,
        '{id: caf-isdn, protocol: h323, number: "0233445566", via: rnis-caf}',
        top=f'h323:\n  gateways:\n    - {{id: rnis-caf, address: "127.0.0.1:{gateway_port}"}}\n',
    )
    h320 = listening_unit(tmp_path, gateway_port, "-n", "-f")
    try:
        gw: GatewayProcess = gateway_factory(plan)
        capture = start_capture(tmp_path / "isdn.pcapng", [gateway_port])
        with sip_kiosk(gw, tmp_path) as kiosk:
            result = kiosk.wait(timeout=30)
        gw.wait_idle()
        assert h320.wait_output("cleared the call", 10), h320.output[-3000:]
        capture.stop()
    finally:
        h320.stop()
    assert connected(find_call(result, "c1"))
    record = gw.http("/api/v1/calls")["ended"][-1]
    assert record["outcome"] == "completed" and record["station"] == "caf-isdn", record
    setups = capture.fields(
        f"tcp.dstport == {gateway_port} && q931.message_type == 0x05",
        "q931.called_party_number.digits",
        "h225.dialledDigits",
    )
    assert setups == [["0233445566", "0233445566"]], setups


@pytest.mark.parametrize(
    ("mode", "hangs_up"),
    [
        ("faststart", "kiosk"),
        ("slowstart-tunnelled", "station"),
        ("slowstart-separate-h245", "station"),
    ],
)
def test_station_located_through_a_partners_gatekeeper(
    gateway_factory: Any, tmp_path: Path, mode: str, hangs_up: str
) -> None:
    """The partner runs its own GNU Gatekeeper, where its unit registers; the gateway
    registers there too, locates the unit by its alias (LRQ -> LCF) and calls it, in
    each media mode: audio both ways, keys both ways, and the side that hangs up gives
    the other the right cause (Q.931 cause 16; a SIP BYE with Reason Q.850 cause 16)."""
    gk = GnuGk(tmp_path)
    station: SimplePeer | None = None
    station_port = free_port()
    try:
        asyncio.run(gk.ready())
        station = listening_unit(
            tmp_path, station_port, "-g", f"127.0.0.1:{gk.ras_port}", *MODES[mode]
        )
        wait_for(lambda: any("agent-caf" in r for r in asyncio.run(gk.registrations())), 10, "unit")
        plan = write_plan(
            tmp_path,
            "{id: caf-gk, protocol: h323, alias: agent-caf, gatekeeper: gk-caf}",
            top="h323:\n  gatekeepers:\n"
            f'    - {{id: gk-caf, address: "127.0.0.1:{gk.ras_port}", aliases: [vrgw-manche]}}\n',
        )
        gw: GatewayProcess = gateway_factory(plan)
        wait_for(lambda: "station caf-gk is reachable" in gw.log(), 15, "the LCF")
        assert any("vrgw-manche" in r for r in asyncio.run(gk.registrations()))
        assert gw.http("/api/v1/h323/registrations")["partner_gatekeepers"] == [
            {"gatekeeper": "gk-caf", "registered": True, "state": "registered"}
        ]
        assert gw.metric("vrgw_h323_partner_gatekeeper_registered", gatekeeper="gk-caf") == 1
        assert (gw.metric("vrgw_ras_messages_sent_total", gatekeeper="gk-caf") or 0) >= 2
        capture = start_capture(tmp_path / "call.pcapng", [gw.sip_port, station_port, gk.ras_port])
        kiosk = sip_kiosk(
            gw,
            tmp_path,
            # (in slow start the unit's channels open a moment after the Connect: a
            # key pressed before would be lost on the way, as with any unit)
            {"do": "dtmf", "call": "c1", "digits": "4", "method": "rfc2833", "delay": 2.5},
            {"do": "wait_dtmf", "call": "c1", "count": 1, "timeout": 10},
            hangup_after=5.0 if hangs_up == "kiosk" else None,
        )
        with kiosk:
            wait_for(lambda: gw.relaying_call(20), 15, "RTP relayed both ways")
            station.type("8")  # the agent's key
            if hangs_up == "station":
                assert station.wait_output('User input received: "4"', 10), station.output
                time.sleep(1.0)  # the kiosk hears the agent's key first
                station.type("H")
            result = kiosk.wait(timeout=40)
        gw.wait_idle()
        ended = "cleared the call" if hangs_up == "kiosk" else "completed"
        assert station.wait_output(ended, 10), station.output[-3000:]
        capture.stop()
    finally:
        if station is not None:
            station.stop()
        gk.stop()
    call = find_call(result, "c1")
    assert connected(call)
    assert call["streams"][0]["rx_packets"] > 20, call["streams"][0]
    assert [d["digit"] for d in call["dtmf_received"]] == ["8"], call["dtmf_received"]
    assert 'User input received: "4"' in station.output, station.output[-3000:]
    record = gw.http("/api/v1/calls")["ended"][-1]
    assert record["outcome"] == "completed" and record["station"] == "caf-gk", record
    assert record["cause"] == 16, record
    # Registered with the partner's gatekeeper, the gateway asked it to admit the call
    # before the Setup (ARQ/ACF, H.225.0 7.8) and said when it ended (DRQ/DCF, 7.10).
    ras = capture.fields(
        f"udp.port == {gk.ras_port} && (h225.admissionRequest_element"
        " || h225.admissionConfirm_element || h225.disengageRequest_element"
        " || h225.disengageConfirm_element)",
        "frame.number",
        "udp.srcport",
        "udp.dstport",
        "h225.RasMessage",
        decode_as=[f"udp.port=={gk.ras_port},h225"],
    )
    setup = capture.fields(
        f"tcp.dstport == {station_port} && q931.message_type == 0x05", "frame.number"
    )
    # The unit asks too, as it answers (answerCall): the gateway's are on its own port.
    ours = next(row[1] for row in ras if row[3] == "9" and int(row[0]) < int(setup[0][0]))
    exchange = [(row[3], int(row[0])) for row in ras if ours in row[1:3]]
    assert [kind for kind, _ in exchange] == ["9", "10", "15", "16"], ras  # ARQ ACF DRQ DCF
    assert exchange[1][1] < int(setup[0][0]) < exchange[2][1], (ras, setup)
    # Who sent the first ReleaseComplete, and with which cause (the other side may
    # answer with its own).
    releases = capture.fields(
        f"tcp.port == {station_port} && q931.message_type == 0x5a",
        "tcp.dstport",
        "q931.cause_value",
    )
    assert releases, "no ReleaseComplete on the wire"
    if hangs_up == "kiosk":
        assert call["hung_up_by"] == "local"
        assert releases[0] == [str(station_port), "16"], releases  # normal call clearing
    else:
        # The unit ends with endSessionCommand (H.245) then ReleaseComplete; the
        # gateway may answer the first with its own ReleaseComplete before the unit's
        # arrives, so either may lead: both carry cause 16.
        assert call["hung_up_by"] == "remote"
        assert {cause for _, cause in releases} == {"16"}, releases
        byes = capture.fields(f'sip.Method == "BYE" && udp.srcport == {gw.sip_port}', "sip.Reason")
        # (the text, when there is one, says how the unit ended: "endSessionCommand")
        assert len(byes) == 1 and re.match(r"Q\.850;cause=16(;|$)", byes[0][0]), byes


def test_partner_gatekeepers_follow_a_dialplan_reload(gateway_factory: Any, tmp_path: Path) -> None:
    """A gatekeeper added by a reload is registered with at once; one removed is left
    (URQ), without restarting the gateway or touching the rest of the dialplan."""
    gk = GnuGk(tmp_path)
    station: SimplePeer | None = None
    try:
        asyncio.run(gk.ready())
        station = listening_unit(tmp_path, free_port(), "-g", f"127.0.0.1:{gk.ras_port}", "-f")
        wait_for(lambda: any("agent-caf" in r for r in asyncio.run(gk.registrations())), 10, "unit")
        plan = write_plan(tmp_path, sip_station_entry(free_port()))
        sip_only = plan.read_text()
        gw: GatewayProcess = gateway_factory(plan)
        assert gw.http("/api/v1/h323/registrations")["partner_gatekeepers"] == []

        write_plan(
            tmp_path,
            "{id: caf-gk, protocol: h323, alias: agent-caf, gatekeeper: gk-caf}",
            top="h323:\n  gatekeepers:\n"
            f'    - {{id: gk-caf, address: "127.0.0.1:{gk.ras_port}", aliases: [vrgw-manche]}}\n',
        )
        assert gw.http("/api/v1/reload", method="POST")["status"] == "reloaded"
        wait_for(lambda: "station caf-gk is reachable" in gw.log(), 15, "the LCF")
        assert any("vrgw-manche" in r for r in asyncio.run(gk.registrations()))
        with sip_kiosk(gw, tmp_path) as kiosk:
            result = kiosk.wait(timeout=30)
        gw.wait_idle()
        assert connected(find_call(result, "c1"))

        plan.write_text(sip_only)
        assert gw.http("/api/v1/reload", method="POST")["status"] == "reloaded"
        wait_for(
            lambda: not any("vrgw-manche" in r for r in asyncio.run(gk.registrations())),
            10,
            "the gateway's URQ",
        )
        assert gw.http("/api/v1/h323/registrations")["partner_gatekeepers"] == []
    finally:
        if station is not None:
            station.stop()
        gk.stop()


@pytest.mark.parametrize("mode", ["faststart", "slowstart-tunnelled"])
def test_kiosk_hold_pauses_the_h323_station(
    gateway_factory: Any, tmp_path: Path, mode: str
) -> None:
    """The kiosk puts the call on hold (re-INVITE sendonly) and takes it back: the H.323
    station gets an empty capability set (third-party pause, H.323 8.4.6), closes its
    channel, then reopens it on resume; the kiosk's re-INVITEs are answered."""
    station_port = free_port()
    station = listening_unit(tmp_path, station_port, "-n", *MODES[mode])
    try:
        gw: GatewayProcess = gateway_factory(write_plan(tmp_path, h323_station(station_port)))
        kiosk = sip_kiosk(
            gw,
            tmp_path,
            {"do": "hold", "call": "c1", "delay": 1.0},
            {"do": "wait_media", "call": "c1", "status": "LOCAL_HOLD", "timeout": 10},
            {"do": "unhold", "call": "c1", "delay": 1.0},
            {"do": "wait_media", "call": "c1", "status": "ACTIVE", "timeout": 10},
            hangup_after=None,  # the agent hangs up once the station sends again
        )
        with kiosk:
            # Paused by the empty capability set, the station closes its channel; on
            # resume it opens it again (H.245 at its own pace): then the agent hangs up.
            wait_for(
                lambda: station.output.count("Started logical channel: sending") >= 2,
                20,
                "the station to send again after resume",
            )
            station.type("H")
            result = kiosk.wait(timeout=40)
        gw.wait_idle()
    finally:
        station.stop()
    outcomes = [a.get("outcome") for a in result["actions"]]
    assert all(o in (None, "ok") for o in outcomes), result["actions"]
    assert find_call(result, "c1")["hung_up_by"] == "remote"
    record = gw.http("/api/v1/calls")["ended"][-1]
    assert record["outcome"] == "completed", record
