"""Acceptance (issue 13, item 4): a kiosk over SIP/TLS with SRTP (SDES) talks to a
plain-RTP station through the built-in relay, which ends SRTP on the kiosk's leg.

Real peers on loopback: two pjsua2 agents (PJSIP), the gateway as a process, tshark.
The kiosk checks the gateway's certificate against a test CA (RFC 5922 7.2) and
registers and calls over TLS (RFC 3261 26.2); its media is RTP/SAVP with a=crypto
(RFC 4568); the station is plain RTP/AVP over UDP. On the wire, the kiosk's signalling
is TLS records only and its media never carries a payload that the station's plain
leg carries. The partner requires encryption, so a plain kiosk is refused (488, Q.850
cause 65). A certificate renewed during the call (SIGHUP) is served to the next TLS
handshake while the call goes on.
"""

from __future__ import annotations

import re
import shutil
import signal
import socket
import ssl
import time
from pathlib import Path
from typing import Any

import pytest
from certs import make_ca, make_leaf
from harness import (
    ROOT,
    GatewayProcess,
    dialplan_variant,
    example_secrets,
    free_port,
    free_ports,
    start_capture,
    wait_for,
)
from peers import find_call, run_pjagent, start_pjagent

pytestmark = pytest.mark.interop

EXAMPLE = ROOT / "dialplans" / "example.yaml"
DOMAIN = "visio.manche.example"
# The CAF partner of the example requires encryption in this test's copy.
REQUIRE_CAF = (
    "    wrap_up: 30                        # seconds for the agent to close the file\n",
    "    wrap_up: 30\n    encryption: required\n",
)
TALK = 9.0


def served_certificate(port: int, ca: Path) -> dict[str, Any]:
    """The certificate the gateway presents to a new TLS client (checked against ``ca``)."""
    ctx = ssl.create_default_context(cafile=str(ca))
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        cert = tls.getpeercert()
        assert tls.version() in ("TLSv1.2", "TLSv1.3"), tls.version()
    assert cert is not None
    return dict(cert)


def common_name(cert: dict[str, Any]) -> str:
    return next(value for rdn in cert["subject"] for key, value in rdn if key == "commonName")


def payloads(rows: list[list[str]]) -> list[str]:
    return [row[0].replace(":", "") for row in rows if row and row[0]]


def test_tls_srtp_kiosk_calls_plain_station(gateway_factory: Any, tmp_path: Path) -> None:
    pki = tmp_path / "pki"
    ca = make_ca(pki)
    first = make_leaf(pki, ca, "gateway", cn="vrgw first")
    renewed = make_leaf(pki, ca, "gateway-renewed", cn="vrgw renewed")
    live_cert, live_key = pki / "live.pem", pki / "live.key"
    shutil.copy(first.cert, live_cert)
    shutil.copy(first.key, live_key)
    plan = dialplan_variant(tmp_path, EXAMPLE, "tls-srtp", [REQUIRE_CAF])
    tls_port = free_port()
    gw: GatewayProcess = gateway_factory(
        plan,
        extra=[
            *("--tls-cert", str(live_cert), "--tls-key", str(live_key)),
            *("--tls-port", str(tls_port), "--tls-ca", str(ca.cert)),
        ],
    )
    assert common_name(served_certificate(tls_port, ca.cert)) == "vrgw first"
    # the UAs' RTP/RTCP pairs, from the test ports below the relay's range
    kiosk_rtp = free_ports(2, even=True)
    station_rtp = free_ports(2, even=True)
    assert kiosk_rtp != station_rtp
    capture = start_capture(
        tmp_path / "tls-srtp.pcapng",
        [gw.sip_port, tls_port, kiosk_rtp, kiosk_rtp + 1, station_rtp, station_rtp + 1],
    )
    pw = example_secrets()
    station = start_pjagent(
        {
            "deadline": 60,
            "transports": [{"type": "udp", "port": 0}],
            "rtp": {"port": station_rtp, "range": 0},
            "media": {"tone_hz": 660, "record": True},
            "accounts": [
                {
                    "id": "station",
                    "uri": f"sip:station-caf-1@{DOMAIN}",
                    "registrar": f"sip:127.0.0.1:{gw.sip_port}",
                    "register": True,
                    "username": "station-caf-1",
                    "password": pw["station-caf-1"],
                    "role": "station",
                    "answer": {"mode": "answer", "delay": 0.3, "ringing": 180},
                }
            ],
            "actions": [
                {"do": "wait_registered", "timeout": 10},
                {"do": "wait_incoming", "account": "station", "count": 1, "timeout": 25},
                {"do": "wait_idle", "min_calls": 1, "timeout": 40},
            ],
        },
        workdir=tmp_path / "station",
        name="station",
    )
    with station:
        station.wait_ready()
        wait_for(lambda: gw.http("/api/v1/registrations/station-caf-1")["bindings"], 10, "station")
        kiosk = start_pjagent(
            {
                "deadline": 60,
                "transports": [
                    {"type": "tls", "port": 0, "ca": str(ca.cert), "verify_server": True}
                ],
                "rtp": {"port": kiosk_rtp, "range": 0},
                "media": {"tone_hz": 440, "record": True},
                "accounts": [
                    {
                        "id": "kiosk",
                        "uri": f"sip:kiosk-lessay@{DOMAIN}",
                        "registrar": f"sip:127.0.0.1:{tls_port};transport=tls",
                        "register": True,
                        "username": "kiosk-lessay",
                        "password": pw["kiosk-lessay"],
                        "transport": 0,
                        "srtp": "mandatory",
                    }
                ],
                "actions": [
                    {"do": "wait_registered", "timeout": 10},
                    {
                        "do": "call",
                        "account": "kiosk",
                        "dest": f"sip:caf@127.0.0.1:{tls_port};transport=tls",
                        "name": "c1",
                    },
                    {"do": "wait_state", "call": "c1", "state": "CONFIRMED", "timeout": 15},
                    {"do": "hangup", "call": "c1", "after": TALK},
                    {"do": "wait_state", "call": "c1", "state": "DISCONNECTED", "timeout": 10},
                ],
            },
            workdir=tmp_path / "kiosk",
            name="kiosk",
        )
        with kiosk:
            live = wait_for(lambda: gw.relaying_call(50), 20, "media relayed both ways")
            assert gw.metric("vrgw_sip_stream_connections") == 1  # the kiosk's TLS link
            # The certificate is renewed mid-call: SIGHUP reads it again.
            shutil.copy(renewed.cert, live_cert)
            shutil.copy(renewed.key, live_key)
            gw.proc.send_signal(signal.SIGHUP)
            wait_for(lambda: "TLS certificate reloaded" in gw.log(), 5, "the reload")
            assert common_name(served_certificate(tls_port, ca.cert)) == "vrgw renewed"
            before = live["media"]["streams"][0]
            time.sleep(1.0)
            after = gw.relaying_call(0)
            assert after is not None and after["id"] == live["id"], "the call survives"
            for d in ("a_to_b", "b_to_a"):
                moved = after["media"]["streams"][0][d]["rtp_packets"] - before[d]["rtp_packets"]
                assert moved > 20, (d, moved)  # media keeps flowing after the reload
            kiosk_result = kiosk.wait(timeout=60)
        station_result = station.wait(timeout=60)

    # A plain kiosk is refused by the partner that requires encryption.
    plain = run_pjagent(
        {
            "deadline": 30,
            "transports": [{"type": "udp", "port": 0}],
            "accounts": [
                {
                    "id": "kiosk",
                    "uri": f"sip:kiosk-carentan@{DOMAIN}",
                    "registrar": f"sip:127.0.0.1:{gw.sip_port}",
                    "register": True,
                    "username": "kiosk-carentan",
                    "password": pw["kiosk-carentan"],
                }
            ],
            "actions": [
                {"do": "wait_registered", "timeout": 10},
                {"do": "call", "account": "kiosk", "dest": f"sip:caf@127.0.0.1:{gw.sip_port}"},
                {"do": "wait_idle", "min_calls": 1, "timeout": 10},
            ],
        },
        workdir=tmp_path / "plain",
        name="plain",
    )
    status = gw.wait_idle()
    capture.stop()

    # Audio crossed the relay both ways: each side recorded the other's tone.
    out = find_call(kiosk_result, "c1")
    inc = find_call(station_result, role="incoming")
    for call, tone in ((out, 660), (inc, 440)):
        assert "CONFIRMED" in [s["state"] for s in call["states"]]
        stream = call["streams"][0]
        assert stream["rx_packets"] > 200 and stream["tx_packets"] > 200, stream
        recording = call["recording"]
        assert recording["rms_active"] > 0, recording
        assert abs(recording["freq_hz"] - tone) < 30, recording
    # The station's leg is plain RTP/AVP: no a=crypto reached it.
    assert "RTP/AVP" in inc["invite"] and "a=crypto" not in inc["invite"], inc["invite"]
    # The kiosk's leg (its PJSIP log shows the messages decrypted): the gateway's
    # Contact says transport=tls on its TLS port, its answer is RTP/SAVP with one
    # a=crypto of a suite the kiosk offered and a key the kiosk never sent.
    kiosk_log = (tmp_path / "kiosk" / "kiosk-pjsip.log").read_text(errors="replace")
    assert f"Contact: <sip:vrgw@127.0.0.1:{tls_port};transport=tls>" in kiosk_log
    messages = kiosk_log.split("--end msg--")
    invite = next(m for m in messages if "INVITE sip:caf@" in m and "m=audio" in m)
    ok = next(m for m in messages if "SIP/2.0 200" in m and "INVITE" in m and "m=audio" in m)
    crypto = re.compile(r"a=crypto:\d+ (\S+) inline:(\S+)")
    offered = set(crypto.findall(invite))
    assert "RTP/SAVP" in ok, ok
    answered = crypto.findall(ok)
    assert len(answered) == 1, answered
    suite, key = answered[0]
    assert suite in {s for s, _ in offered} and key not in {k for _, k in offered}

    # The plain kiosk: 488 with Q.850 cause 65 in the Reason header.
    refused = find_call(plain, role="outgoing")
    assert refused["responses"][-1] == 488, refused["responses"]
    assert refused["confirmed_at"] is None
    assert gw.http("/api/v1/calls")["ended"][-1]["refusal"] == "encryption_required"
    assert status["calls"] == 0 and status["media_sessions"] == 0, status

    # On the wire: no cleartext SIP on the TLS port, but TLS application data.
    assert capture.fields(f"tcp.port == {tls_port} && sip", "frame.number") == []
    assert capture.fields(f"tcp.port == {tls_port} && tls.handshake.type == 1", "frame.number")
    assert len(capture.fields(f"tcp.port == {tls_port} && tls.app_data", "frame.number")) > 4
    # The station's leg carries plain RTP; the kiosk's leg never carries one of those
    # payloads: the same audio crosses it, encrypted (and each packet is longer by the
    # SRTP authentication tag, RFC 3711 3.1).
    decode = [f"udp.port=={p},rtp" for p in (kiosk_rtp, station_rtp)]
    station_leg = payloads(
        capture.fields(f"udp.port == {station_rtp} && rtp", "rtp.payload", decode_as=decode)
    )
    kiosk_leg = payloads(
        capture.fields(f"udp.port == {kiosk_rtp} && rtp", "rtp.payload", decode_as=decode)
    )
    assert len(station_leg) > 200 and len(kiosk_leg) > 200, (len(station_leg), len(kiosk_leg))
    plain_set = set(station_leg)
    assert all(len(p) == 320 for p in station_leg[:50])  # 160 bytes of PCMU
    assert all(len(p) > 320 for p in kiosk_leg)  # payload + authentication tag
    leaked = [p for p in kiosk_leg if any(q in p for q in plain_set)]
    assert leaked == [], f"{len(leaked)} kiosk-leg packets carry plain audio"
    assert len(set(kiosk_leg)) == len(kiosk_leg)  # no repeated ciphertext


@pytest.mark.parametrize("station_ca", ["trusted", "unknown"])
def test_gateway_calls_a_station_over_tls(
    gateway_factory: Any, tmp_path: Path, station_ca: str
) -> None:
    """A static station with ``transport: tls`` (RFC 3261 26.2): the gateway connects to
    it over TLS, checks its certificate against ``--tls-ca`` (RFC 5922 7.2: the address
    it calls is in the certificate), and the call carries audio both ways; a station
    whose certificate another CA signed gets no INVITE at all."""
    pki = tmp_path / "pki"
    ca = make_ca(pki)
    gateway_cert = make_leaf(pki, ca, "gateway", cn="vrgw")
    trusted = station_ca == "trusted"
    signer = ca if trusted else make_ca(pki, "other-ca")
    station_cert = make_leaf(pki, signer, "station", cn="msa-1")
    station_port = free_port()
    plan = dialplan_variant(
        tmp_path,
        EXAMPLE,
        "tls-station",
        [
            (
                "{id: msa-1, username: station-msa-1, password: {secret: station-msa-1}}",
                f'{{id: msa-1, address: "127.0.0.1:{station_port}", transport: tls}}',
            )
        ],
    )
    tls_port = free_port()
    gw: GatewayProcess = gateway_factory(
        plan,
        extra=[
            *("--tls-cert", str(gateway_cert.cert), "--tls-key", str(gateway_cert.key)),
            *("--tls-port", str(tls_port), "--tls-ca", str(ca.cert)),
        ],
    )
    tls = {"ca": str(ca.cert), "cert": str(station_cert.cert), "key": str(station_cert.key)}
    station = start_pjagent(
        {
            "deadline": 40,
            "transports": [{"type": "tls", "port": station_port, **tls}],
            "media": {"tone_hz": 660, "record": True},
            "accounts": [
                {
                    "id": "station",
                    "uri": f"sip:msa-1@127.0.0.1:{station_port};transport=tls",
                    "transport": 0,
                    "role": "station",
                    "answer": {"mode": "answer", "delay": 0.3, "ringing": 180},
                    "hangup_after": 4.0,
                }
            ],
            "actions": [
                {"do": "wait_incoming", "account": "station", "count": 1, "timeout": 10},
                *([{"do": "wait_idle", "min_calls": 1, "timeout": 25}] if trusted else []),
            ],
        },
        workdir=tmp_path / "station",
        name="station",
    )
    with station:
        station.wait_ready()
        kiosk = run_pjagent(
            {
                "deadline": 40,
                "transports": [{"type": "udp", "port": 0}],
                "media": {"tone_hz": 440, "record": True},
                "accounts": [
                    {
                        "id": "kiosk",
                        "uri": f"sip:kiosk-carentan@{DOMAIN}",
                        "registrar": f"sip:127.0.0.1:{gw.sip_port}",
                        "register": True,
                        "username": "kiosk-carentan",
                        "password": example_secrets()["kiosk-carentan"],
                    }
                ],
                "actions": [
                    {"do": "wait_registered", "timeout": 10},
                    {"do": "call", "account": "kiosk", "dest": f"sip:msa@127.0.0.1:{gw.sip_port}"},
                    # unverified: the call waits in the queue; the kiosk gives up (CANCEL)
                    {"do": "wait_idle", "min_calls": 1, "timeout": 20 if trusted else 8},
                ],
            },
            workdir=tmp_path / "kiosk",
            name="kiosk",
        )
        station_result = station.wait(timeout=40)
    status = gw.wait_idle()
    out = find_call(kiosk, role="outgoing")
    if not trusted:
        assert station_result["calls"] == [], "an INVITE reached an unverified station"
        assert out["confirmed_at"] is None and out["responses"][-1] >= 400, out["responses"]
        assert f"TLS connect to 127.0.0.1:{station_port} failed" in gw.log()
        assert "certificate verify failed" in gw.log()
        assert status["calls"] == 0, status
        return
    inc = find_call(station_result, role="incoming")
    for call in (out, inc):
        assert "CONFIRMED" in [s["state"] for s in call["states"]], call["states"]
        assert call["recording"]["rms_active"] > 0, call["recording"]
    # The INVITE came over TLS, from the gateway's TLS port, with a transport=tls Contact.
    assert f"Via: SIP/2.0/TLS 127.0.0.1:{tls_port};" in inc["invite"], inc["invite"]
    assert f"<sip:vrgw@127.0.0.1:{tls_port};transport=tls>" in inc["invite"]
    assert gw.metric("vrgw_sip_tls_handshake_failures_total") == 0
    assert status["calls"] == 0, status
