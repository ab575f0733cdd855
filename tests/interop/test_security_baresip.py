"""Acceptance 6: baresip, whose digest code knows MD5 only, as a kiosk and as a station.

Debian's baresip 1.0.0 gives up on a whole 401/407 as soon as it meets a SHA-256
challenge. With its login declared MD5-only in the dialplan (``algorithms: [MD5]``) it
registers, calls ``caf`` and talks both ways with a pjsua2 station, follows the
partner's presence (open, busy during a call, open again), and as CAF's station answers
a pjsua2 kiosk with audio both ways, while every other login keeps being challenged with
SHA-256 first.
"""

from __future__ import annotations

import math
import socket
import struct
import uuid
import wave
from pathlib import Path
from typing import Any

import pytest
from baresip_peer import Baresip, require_baresip
from harness import ROOT, GatewayProcess, dialplan_variant, example_secrets, wait_for
from peers import find_call, start_pjagent

from gateway.sip.auth import parse_challenge_params
from gateway.sip.message import Response, parse_message

pytestmark = pytest.mark.interop

EXAMPLE = ROOT / "dialplans" / "example.yaml"
DOMAIN = "visio.manche.example"


def write_tone(path: Path, hz: float, seconds: float = 20.0) -> Path:
    """An 8 kHz mono 16-bit WAV tone: baresip's microphone."""
    rate = 8000
    frames = b"".join(
        struct.pack("<h", int(9000 * math.sin(2 * math.pi * hz * n / rate)))
        for n in range(int(rate * seconds))
    )
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(frames)
    return path


def loudness(path: Path) -> float:
    """RMS of a 16-bit WAV (0 for silence)."""
    with wave.open(str(path), "rb") as wav:
        data = wav.readframes(wav.getnframes())
    samples = struct.unpack(f"<{len(data) // 2}h", data[: len(data) // 2 * 2])
    return math.sqrt(sum(s * s for s in samples) / len(samples)) if samples else 0.0


def challenge_algorithms(gw: GatewayProcess, user: str) -> list[str]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(5)
        port = sock.getsockname()[1]
        sock.sendto(
            (
                f"REGISTER sip:{DOMAIN} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{uuid.uuid4().hex[:12]}\r\n"
                "Max-Forwards: 70\r\n"
                f"From: <sip:{user}@{DOMAIN}>;tag=b1\r\nTo: <sip:{user}@{DOMAIN}>\r\n"
                f"Call-ID: {uuid.uuid4().hex}\r\nCSeq: 1 REGISTER\r\n"
                f"Contact: <sip:{user}@127.0.0.1:{port}>\r\nContent-Length: 0\r\n\r\n"
            ).encode(),
            ("127.0.0.1", gw.sip_port),
        )
        reply = parse_message(sock.recv(65535))
    assert isinstance(reply, Response) and reply.status == 401
    return [
        parse_challenge_params(v)[1]["algorithm"] for v in reply.headers.get_all("www-authenticate")
    ]


def test_md5_only_baresip_kiosk_registers_and_talks_to_a_station(
    gateway_factory: Any, tmp_path: Path
) -> None:
    require_baresip()
    plan = dialplan_variant(
        tmp_path,
        EXAMPLE,
        "baresip",
        [("    username: kiosk-lessay\n", "    username: kiosk-lessay\n    algorithms: [MD5]\n")],
    )
    gw: GatewayProcess = gateway_factory(plan)
    assert challenge_algorithms(gw, "kiosk-lessay") == ["MD5"]
    assert challenge_algorithms(gw, "station-caf-1") == ["SHA-256", "MD5"]
    assert challenge_algorithms(gw, "kiosk-gavray") == ["SHA-256", "MD5"]

    station = start_pjagent(
        {
            "deadline": 60,
            "transports": [{"type": "udp", "port": 0}],
            "media": {"tone_hz": 660, "record": True},
            "accounts": [
                {
                    "id": "station",
                    "uri": f"sip:station-caf-1@{DOMAIN}",
                    "registrar": f"sip:127.0.0.1:{gw.sip_port}",
                    "register": True,
                    "username": "station-caf-1",
                    "password": example_secrets()["station-caf-1"],
                    "realm": "*",
                    "role": "station",
                    "answer": {"mode": "answer", "delay": 0.3, "ringing": 180},
                }
            ],
            "actions": [
                {"do": "wait_registered", "timeout": 10},
                {"do": "wait_incoming", "account": "station", "count": 1, "timeout": 40},
                {"do": "wait_idle", "min_calls": 1, "timeout": 40},
            ],
        },
        workdir=tmp_path / "station",
    )
    account = (
        f"<sip:kiosk-lessay@{DOMAIN}>;auth_pass={example_secrets()['kiosk-lessay']}"
        f';outbound="sip:127.0.0.1:{gw.sip_port}";audio_codecs=PCMU,PCMA;regint=600'
    )
    kiosk = Baresip(
        tmp_path / "baresip",
        account,
        tone=write_tone(tmp_path / "tone.wav", 440),
    )
    with station, kiosk:
        station.wait_ready()
        wait_for(
            lambda: gw.http("/api/v1/registrations/station-caf-1")["bindings"],
            10,
            "the station's registration",
        )
        # baresip registers as it starts, before its control port is connected: the
        # registrar's bindings tell (an MD5 challenge, then 200).
        wait_for(
            lambda: gw.http("/api/v1/registrations/kiosk-lessay")["bindings"],
            10,
            f"baresip's registration:\n{kiosk.log()}",
        )

        assert kiosk.command("dial", f"sip:caf@{DOMAIN}")["ok"], kiosk.log()
        kiosk.wait_event("CALL_ESTABLISHED", 15)
        live = wait_for(lambda: gw.relaying_call(50), 15, "RTP relayed both ways")
        assert live["kiosk"] == "lessay", live
        wait_for(lambda: gw.relaying_call(150), 10, "more RTP both ways")
        kiosk.command("hangup")
        kiosk.wait_event("CALL_CLOSED", 10)
        station_result = station.wait(timeout=30)
    assert gw.wait_idle()["calls"] == 0

    inc = find_call(station_result, role="incoming")
    names = [s["state"] for s in inc["states"]]
    assert "CONFIRMED" in names and names[-1] == "DISCONNECTED", names
    stream = inc["streams"][0]
    assert stream["rx_packets"] > 100 and stream["tx_packets"] > 100, stream
    assert inc["recording"]["rms_active"] > 0, inc["recording"]  # baresip's tone arrived
    # What baresip heard: the station's tone, recorded by its sndfile module.
    heard = sorted(kiosk.records.glob("dump-*-dec.wav"))
    assert heard, f"no recording from baresip: {list(kiosk.records.iterdir())}"
    assert max(loudness(p) for p in heard) > 100, [(p.name, loudness(p)) for p in heard]


def presence_of(kiosk: Baresip) -> str:
    """The status baresip shows for its one contact (Online, Busy, Offline...)."""
    data = str(kiosk.command("contacts")["data"])
    for word in ("Online", "Busy", "Offline", "Away", "Unknown"):
        if word in data:
            return word
    return data


def test_md5_only_baresip_as_station_and_as_presence_watcher(
    gateway_factory: Any, tmp_path: Path
) -> None:
    """baresip answers a pjsua2 kiosk as CAF's station, and a baresip kiosk watching the
    partner's presence sees it busy during the call and open again afterwards."""
    require_baresip()
    plan = dialplan_variant(
        tmp_path,
        EXAMPLE,
        "baresip-station",
        [
            ("    username: kiosk-lessay\n", "    username: kiosk-lessay\n    algorithms: [MD5]\n"),
            (
                "{id: caf-1, username: station-caf-1, password: {secret: station-caf-1}}",
                "{id: caf-1, username: station-caf-1, password: {secret: station-caf-1},"
                " algorithms: [MD5]}",
            ),
            (
                "    wrap_up: 30                        #",
                "    wrap_up: 0                         #",
            ),
        ],
    )
    gw: GatewayProcess = gateway_factory(plan)
    outbound = f'outbound="sip:127.0.0.1:{gw.sip_port}";audio_codecs=PCMU,PCMA;regint=600'
    station = Baresip(
        tmp_path / "station",
        f"<sip:station-caf-1@{DOMAIN}>;auth_pass={example_secrets()['station-caf-1']};{outbound}"
        ";answermode=auto",
        tone=write_tone(tmp_path / "station.wav", 660),
    )
    watcher = Baresip(
        tmp_path / "watcher",
        f"<sip:kiosk-lessay@{DOMAIN}>;auth_pass={example_secrets()['kiosk-lessay']};{outbound}",
        tone=write_tone(tmp_path / "watcher.wav", 330, seconds=1),
        contacts=(f'"CAF" <sip:caf@{DOMAIN}>;presence=p2p',),
    )
    with station, watcher:
        wait_for(
            lambda: gw.http("/api/v1/registrations/station-caf-1")["bindings"],
            10,
            f"baresip station's registration:\n{station.log()}",
        )
        wait_for(lambda: presence_of(watcher) == "Online", 15, "CAF shown open")
        caller = start_pjagent(
            {
                "deadline": 40,
                "transports": [{"type": "udp", "port": 0}],
                "media": {"tone_hz": 440, "record": True},
                "accounts": [
                    {
                        "id": "kiosk",
                        "uri": f"sip:kiosk-gavray@{DOMAIN}",
                        "registrar": f"sip:127.0.0.1:{gw.sip_port}",
                        "register": True,
                        "username": "kiosk-gavray",
                        "password": example_secrets()["kiosk-gavray"],
                        "realm": "*",
                        "role": "kiosk",
                    }
                ],
                "actions": [
                    {"do": "wait_registered", "timeout": 10},
                    {
                        "do": "call",
                        "account": "kiosk",
                        "dest": f"sip:caf@127.0.0.1:{gw.sip_port}",
                        "name": "c1",
                    },
                    {"do": "wait_state", "call": "c1", "state": "CONFIRMED", "timeout": 15},
                    {"do": "hangup", "call": "c1", "after": 5},
                    {"do": "wait_state", "call": "c1", "state": "DISCONNECTED", "timeout": 15},
                ],
            },
            workdir=tmp_path / "caller",
        )
        with caller:
            wait_for(lambda: gw.relaying_call(100), 20, "RTP relayed both ways")
            wait_for(lambda: presence_of(watcher) == "Busy", 10, "CAF shown busy")
            result = caller.wait(timeout=40)
        wait_for(lambda: presence_of(watcher) == "Online", 15, "CAF shown open again")
    out = find_call(result, "c1")
    stream = out["streams"][0]
    assert stream["rx_packets"] > 100 and stream["tx_packets"] > 100, stream
    assert out["recording"]["rms_active"] > 0, out["recording"]  # baresip's tone arrived
    heard = sorted(station.records.glob("dump-*-dec.wav"))
    assert heard and max(loudness(p) for p in heard) > 100, [(p.name, loudness(p)) for p in heard]
