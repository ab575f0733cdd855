"""Acceptance: a real kiosk calls a real station through the gateway (PJSIP on both ends).

Both pjsua2 agents register with digest authentication; the kiosk dials ``caf``; the
station answers; a tone crosses the relay both ways; one side hangs up and both legs
end; nothing is left behind in the gateway; tshark dissects everything it sent.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from harness import ROOT, GatewayProcess, pjsua_account, start_capture, wait_for
from peers import find_call, start_pjagent

pytestmark = pytest.mark.interop

EXAMPLE = ROOT / "dialplans" / "example.yaml"
DOMAIN = "visio.manche.example"


def account(gw: GatewayProcess, user: str, role: str, **extra: Any) -> dict[str, Any]:
    return pjsua_account(user, role, f"sip:127.0.0.1:{gw.sip_port}", **extra)


@pytest.mark.parametrize("hangs_up", ["kiosk", "station"])
def test_kiosk_calls_caf_station_answers(
    gateway_factory: Any, tmp_path: Path, hangs_up: str
) -> None:
    gw: GatewayProcess = gateway_factory(EXAMPLE)
    capture = start_capture(tmp_path / "call.pcapng", [gw.sip_port])
    talk = 4.0
    station_acc = account(
        gw,
        "station-caf-1",
        "station",
        answer={"mode": "answer", "delay": 0.3, "ringing": 180},
        **({"hangup_after": talk} if hangs_up == "station" else {}),
    )
    kiosk_acc = account(gw, "kiosk-lessay", "kiosk")
    station = start_pjagent(
        {
            "deadline": 40,
            "transports": [{"type": "udp", "port": 0}],
            "media": {"tone_hz": 660, "record": True},
            "accounts": [station_acc],
            "actions": [
                {"do": "wait_registered", "timeout": 10},
                {"do": "wait_incoming", "account": "station", "count": 1, "timeout": 20},
                {"do": "wait_idle", "min_calls": 1, "timeout": 25},
            ],
        },
        workdir=tmp_path / "station",
    )
    with station:
        station.wait_ready()
        wait_for(
            lambda: gw.http("/api/v1/registrations/station-caf-1")["bindings"],
            10,
            "the station's registration",
        )
        kiosk_actions: list[dict[str, Any]] = [
            {"do": "wait_registered", "timeout": 10},
            {
                "do": "call",
                "account": "kiosk",
                "dest": f"sip:caf@127.0.0.1:{gw.sip_port}",
                "name": "c1",
                "headers": {
                    "X-Visio-Context": "allocataire=1234567",
                    # a kiosk cannot speak for the gateway: dropped, in whatever case
                    "x-visio-kiosk": "usurpation",
                },
            },
            {"do": "wait_state", "call": "c1", "state": "CONFIRMED", "timeout": 15},
        ]
        if hangs_up == "kiosk":
            kiosk_actions.append({"do": "hangup", "call": "c1", "after": talk})
        kiosk_actions.append(
            {"do": "wait_state", "call": "c1", "state": "DISCONNECTED", "timeout": talk + 10}
        )
        kiosk = start_pjagent(
            {
                "deadline": 40,
                "transports": [{"type": "udp", "port": 0}],
                "media": {"tone_hz": 440, "record": True},
                "accounts": [kiosk_acc],
                "actions": kiosk_actions,
            },
            workdir=tmp_path / "kiosk",
        )
        with kiosk:
            # While the call is up, the relay's own counters move in both directions.
            live = wait_for(lambda: gw.relaying_call(50), 15, "RTP relayed both ways")
            kiosk_result = kiosk.wait(timeout=40)
        station_result = station.wait(timeout=40)
    status = gw.wait_idle()
    capture.stop()

    # Both registered with digest authentication (a challenge, then 200).
    for result, acc in ((kiosk_result, "kiosk"), (station_result, "station")):
        codes = [r["code"] for r in result["accounts"][acc]["registrations"]]
        assert 200 in codes, (acc, codes)

    out = find_call(kiosk_result, "c1")
    inc = find_call(station_result, role="incoming")
    for call in (out, inc):
        names = [s["state"] for s in call["states"]]
        assert "CONFIRMED" in names and names[-1] == "DISCONNECTED", names
        stream = call["streams"][0]
        assert stream["rx_packets"] > 100 and stream["tx_packets"] > 100, stream
        assert call["recording"]["rms_active"] > 0, call["recording"]  # the tone arrived
    if hangs_up == "kiosk":
        assert out["hung_up_by"] == "local" and inc["hung_up_by"] == "remote"
    else:
        assert inc["hung_up_by"] == "local" and out["hung_up_by"] == "remote"
    # The agent's station saw the kiosk's context and who called.
    assert "X-Visio-Kiosk: lessay" in inc["invite"]
    assert "X-Visio-Context: allocataire=1234567" in inc["invite"]
    assert "usurpation" not in inc["invite"]
    # The media went through the relay: the UAs sent to the gateway's ports.
    for call in (out, inc):
        port = call["streams"][0]["remote_rtp"].rpartition(":")[2]
        assert 20000 <= int(port) <= 29999, call["streams"][0]
    assert live["station"] == "caf-1"

    # Nothing left behind: no call, transaction, dialog, relay session or port.
    assert status["calls"] == 0 and status["transactions"] == 0, status
    assert status["dialogs"] == 0 and status["media_sessions"] == 0, status
    assert status["media_ports_in_use"] == 0, status
    record = gw.http("/api/v1/calls")["ended"][-1]
    assert record["outcome"] == "completed" and record["station"] == "caf-1"
    stream = record["media"]["streams"][0]
    assert stream["a_to_b"]["rtp_packets"] > 100 and stream["b_to_a"]["rtp_packets"] > 100

    # What the gateway put on the wire dissects cleanly.
    assert capture.problems() == []
    invites = capture.fields(
        f"sip.Method == INVITE && udp.srcport == {gw.sip_port}", "sdp.connection_info", "sdp.media"
    )
    assert invites, "tshark saw no INVITE from the gateway"
    assert all("127.0.0.1" in row[0] for row in invites)
