"""Acceptance 2: a SIPp INVITE flood from one address for 30 s. A kiosk on another
address still completes its calls, the gateway's memory stays bounded, the flooder is
banned (logged, counted, listed) and unbanned when the ban ends."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from harness import GatewayProcess, free_port, sipp_station, wait_for

pytestmark = pytest.mark.interop

CALLER = "127.0.0.2"  # the legitimate kiosk, on another address
STATION = "127.0.0.3"  # the station too: a flood ban is per address
BAN_TIME = 8.0
FLOOD_SECONDS = 30

DIALPLAN = f"""\
version: 1
domain: visio.flood.example
auth:
  realm: flood
  bans: {{flood_rate: 100, flood_burst: 200, duration: {BAN_TIME}}}
media:
  bind: 127.0.0.1
  timeout: 0
kiosks:
  - id: sipp-caller
    site: Kiosk on another address
    addresses: [{CALLER}]
    services: all
services:
  - {{name: bench, number: "9999", partner: bench}}
partners:
  - id: bench
    name: Station SIPp
    wrap_up: 0
    stations:
      - {{id: sipp-uas, address: "{STATION}:{{uas_port}}", max_calls: 0, keepalive: 0}}
"""


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def options_answered(gw: GatewayProcess, host: str) -> bool:
    """An OPTIONS from ``host`` gets an answer within a second."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((host, 0))
        sock.settimeout(1.0)
        port = sock.getsockname()[1]
        message = (
            f"OPTIONS sip:127.0.0.1:{gw.sip_port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {host}:{port};branch=z9hG4bK{uuid.uuid4().hex[:12]};rport\r\n"
            "Max-Forwards: 70\r\nFrom: <sip:probe@127.0.0.1>;tag=1\r\n"
            f"To: <sip:127.0.0.1:{gw.sip_port}>\r\nCall-ID: {uuid.uuid4().hex}\r\n"
            "CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        )
        sock.sendto(message.encode(), ("127.0.0.1", gw.sip_port))
        try:
            return sock.recv(65535).startswith(b"SIP/2.0 200")
        except TimeoutError:
            return False


def test_an_invite_flood_is_banned_while_another_kiosk_calls(
    gateway_factory: Any, tmp_path: Path
) -> None:
    uas_port = free_port()
    plan = tmp_path / "flood.yaml"
    plan.write_text(DIALPLAN.replace("{uas_port}", str(uas_port)))
    gw: GatewayProcess = gateway_factory(plan)
    rss_before = rss_kib(gw.proc.pid)
    with sipp_station(uas_port, tmp_path, host=STATION):
        # As fast as one SIPp can: new INVITEs at up to 10,000 a second, for 30 s.
        flood = subprocess.Popen(
            [
                "sipp", "-sn", "uac", "-s", "bench", f"127.0.0.1:{gw.sip_port}",
                "-i", "127.0.0.1", "-p", str(free_port()), "-r", "10000", "-l", "20000",
                "-nostdin", "-recv_timeout", "2000", "-timeout", f"{FLOOD_SECONDS}s",
            ],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path,
        )  # fmt: skip
        try:
            banned = wait_for(
                lambda: gw.metric("vrgw_sip_flood_bans_total"), 15, "the flooder's ban"
            )
            assert banned == 1
            bans = gw.http("/api/v1/bans")["bans"]
            assert [(b["kind"], b["key"]) for b in bans] == [("flood", "127.0.0.1")], bans
            # Meanwhile the kiosk on the other address calls, three times, and gets through.
            calls = subprocess.run(
                [
                    "sipp", "-sn", "uac", "-s", "bench", f"127.0.0.1:{gw.sip_port}",
                    "-i", CALLER, "-p", str(free_port()), "-m", "3", "-r", "1",
                    "-nostdin", "-recv_timeout", "10000", "-timeout", "40s", "-timeout_error",
                ],
                capture_output=True, text=True, timeout=60, cwd=tmp_path,
            )  # fmt: skip
            assert calls.returncode == 0, calls.stderr[-2000:]
            assert flood.wait(FLOOD_SECONDS + 30) is not None
        finally:
            if flood.poll() is None:
                flood.send_signal(signal.SIGTERM)
                flood.wait(10)
    dropped = gw.metric("vrgw_sip_flood_dropped_total") or 0
    assert dropped > 10_000, dropped  # SIPp kept sending: dropped unread
    grown = rss_kib(gw.proc.pid) - rss_before
    assert grown < 64 * 1024, f"memory grew by {grown} KiB during the flood"
    assert "flood from 127.0.0.1" in gw.log() and "banned for 8 s" in gw.log()
    # The ban ends on time: the flooder's next message after it is answered again.
    time.sleep(BAN_TIME)
    assert wait_for(lambda: options_answered(gw, "127.0.0.1"), 10, "the ban's end")
    assert "flood ban of 127.0.0.1 ended" in gw.log()
    assert gw.http("/api/v1/bans")["bans"] == []
    records = gw.http("/api/v1/records?kiosk=sipp-caller")["records"]
    assert [r["outcome"] for r in records] == ["completed"] * 3, records
