"""Acceptance (issue 14, item 2): a G.722-only kiosk reaches a G.711-only station through
the built-in engine's transcoder, with two real PJSIP endpoints (pjsua2).

The kiosk's codecs are restricted to G.722 and the station's to one G.711 law
(``codecSetPriority``: every other codec disabled). The station must be offered a law
it has (the engine adds G.711 after the kiosk's own formats, RFC 3264 5.1), the kiosk
must be answered with G.722 (RFC 3264 6.1), and each side must hear the other's tone
at its own frequency and at a sound level: audio both ways through the transcoder.
The SDP each side got is read from its own PJSIP log.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from harness import ROOT, GatewayProcess, pjsua_account, wait_for
from peers import find_call, start_pjagent

pytestmark = pytest.mark.interop

EXAMPLE = ROOT / "dialplans" / "example.yaml"
DOMAIN = "visio.manche.example"
KIOSK_TONE, STATION_TONE = 440, 660
AMPLITUDE = 0.3  # of full scale: pjagent's tone


def account(gw: GatewayProcess, user: str, role: str, **extra: Any) -> dict[str, Any]:
    return pjsua_account(user, role, f"sip:127.0.0.1:{gw.sip_port}", **extra)


def sdp_audio(log: Path, first_line: str) -> list[str]:
    """The m=audio line and a=rtpmap values of the first SIP message in a PJSIP log that
    starts with ``first_line`` and carries an SDP."""
    for message in log.read_text(errors="replace").split("--end msg--"):
        start = message.find(first_line)
        if start < 0 or "m=audio" not in message:
            continue
        body = message[start:]
        audio = body[body.index("m=audio") :].split("m=video")[0]
        return [line.strip() for line in audio.splitlines() if line.startswith(("m=", "a=rtpmap"))]
    raise AssertionError(f"no {first_line!r} with SDP in {log}")


def formats(lines: list[str]) -> list[str]:
    return lines[0].split()[3:]


@pytest.mark.parametrize("law", ["PCMA", "PCMU"])
def test_g722_kiosk_reaches_g711_station_through_the_transcoder(
    gateway_factory: Any, tmp_path: Path, law: str
) -> None:
    gw: GatewayProcess = gateway_factory(EXAMPLE)
    station = start_pjagent(
        {
            "deadline": 40,
            "transports": [{"type": "udp", "port": 0}],
            "codecs": {f"{law}/8000": 255},  # nothing else: G.711 only
            "media": {"tone_hz": STATION_TONE, "amplitude": AMPLITUDE, "record": True},
            "accounts": [
                account(
                    gw,
                    "station-caf-1",
                    "station",
                    answer={"mode": "answer", "delay": 0.2, "ringing": 180},
                )
            ],
            "actions": [
                {"do": "wait_registered", "timeout": 10},
                {"do": "wait_incoming", "account": "station", "count": 1, "timeout": 20},
                {"do": "wait_idle", "min_calls": 1, "timeout": 25},
            ],
        },
        workdir=tmp_path / "station",
        name="station",
    )
    with station:
        station.wait_ready()
        wait_for(
            lambda: gw.http("/api/v1/registrations/station-caf-1")["bindings"],
            10,
            "the station's registration",
        )
        kiosk = start_pjagent(
            {
                "deadline": 40,
                "clock_rate": 16000,
                "transports": [{"type": "udp", "port": 0}],
                "codecs": {"G722/16000": 255},  # nothing else: G.722 only
                "media": {"tone_hz": KIOSK_TONE, "amplitude": AMPLITUDE, "record": True},
                "accounts": [account(gw, "kiosk-lessay", "kiosk")],
                "actions": [
                    {"do": "wait_registered", "timeout": 10},
                    {
                        "do": "call",
                        "account": "kiosk",
                        "dest": f"sip:caf@127.0.0.1:{gw.sip_port}",
                        "name": "c1",
                    },
                    {"do": "wait_state", "call": "c1", "state": "CONFIRMED", "timeout": 15},
                    {"do": "hangup", "call": "c1", "after": 4.0},
                    {"do": "wait_state", "call": "c1", "state": "DISCONNECTED", "timeout": 10},
                ],
            },
            workdir=tmp_path / "kiosk",
            name="kiosk",
        )
        with kiosk:
            live = wait_for(lambda: gw.relaying_call(50), 15, "RTP relayed both ways")
            kiosk_result = kiosk.wait(timeout=40)
        station_result = station.wait(timeout=40)
    status = gw.wait_idle()

    # Offer/answer, as each side read it.
    offered = sdp_audio(kiosk.log_file, "INVITE sip:caf@")  # what the kiosk offered
    assert formats(offered)[0] == "9" and not {"0", "8"} & set(formats(offered)), offered
    to_station = sdp_audio(station.log_file, "INVITE sip:")
    pt = "8" if law == "PCMA" else "0"
    listed = formats(to_station)
    assert listed[: len(formats(offered))] == formats(offered), (offered, to_station)
    assert pt in listed and listed.index(pt) > listed.index("9"), to_station  # added last
    to_kiosk = sdp_audio(kiosk.log_file, "SIP/2.0 200 OK")
    assert formats(to_kiosk)[0] == "9" and not {"0", "8"} & set(formats(to_kiosk)), to_kiosk
    assert all(f in formats(offered) for f in formats(to_kiosk)), (offered, to_kiosk)
    from_station = sdp_audio(station.log_file, "SIP/2.0 200 OK")
    # pjsua may put telephone-event first: the station's one audio codec is its law.
    events = {line.split()[0].split(":")[1] for line in from_station if "telephone-event" in line}
    assert [f for f in formats(from_station) if f not in events] == [pt], from_station

    # Each side ran its own codec and heard the other's tone.
    out = find_call(kiosk_result, "c1")
    inc = find_call(station_result, role="incoming")
    for call, codec, tone in ((out, "G722", STATION_TONE), (inc, law, KIOSK_TONE)):
        assert "CONFIRMED" in [s["state"] for s in call["states"]], call["states"]
        stream = call["streams"][0]
        assert stream["codec"].upper() == codec, stream
        assert stream["rx_packets"] > 150 and stream["tx_packets"] > 150, stream
        assert stream["rx_loss"] == 0 and stream["rx_discard"] == 0, stream
        recording = call["recording"]
        assert abs(recording["freq_hz"] - tone) < 30, (codec, recording)
        # A sine of AMPLITUDE has an RMS of AMPLITUDE/sqrt(2) of full scale (about
        # 6950): within 3 dB after two codecs and pjsua's own bridge.
        expected = AMPLITUDE * 32767 / 2**0.5
        assert expected / 1.41 < recording["rms_active"] < expected * 1.41, (codec, recording)
        assert recording["active_seconds"] > 2.5, recording

    record = gw.http("/api/v1/calls")["ended"][-1]
    assert record["outcome"] == "completed" and live["station"] == "caf-1"
    media = record["media"]["streams"][0]
    assert media["transcoded"] == f"G722/{law}", media
    assert media["a_to_b"]["rtp_packets"] > 150 and media["b_to_a"]["rtp_packets"] > 150
    log = gw.log()
    assert re.search(rf"audio transcoded, G722 on side A and {law} on side B", log), log[-3000:]
    assert status["calls"] == 0 and status["media_sessions"] == 0, status
    assert status["media_ports_in_use"] == 0, status
