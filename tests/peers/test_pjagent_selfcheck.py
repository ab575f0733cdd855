"""Self-checks of the pjsua2 test peer (pjagent.py) against itself and against SIPp.

No gateway is involved: these prove that the peer the gateway's interop tests rely on
really places, answers, rejects and measures calls (RFC 3261 flows, RFC 3550 counters,
RFC 4733 and SIP INFO DTMF, RFC 3264 hold, RFC 3261 section 22 digest registration).
SIP and SIPp's media on ports free at the time; pjsua2's RTP on ports of the pytest
worker's own slice (peers.py), where it moves on past a port in use.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from harness import free_port, free_ports

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peers import find_call, run_pjagent, start_pjagent, state_names

pytestmark = pytest.mark.interop

KIOSK_HZ = 440.0
STATION_HZ = 660.0
# The tone is generated at 0.3 of full scale (RMS ~7000); G.711 keeps it close to that.
MIN_RMS = 2000.0


def _account(acc_id: str, role: str, **extra: Any) -> dict[str, Any]:
    return {"id": acc_id, "uri": f"sip:{acc_id}@127.0.0.1", "role": role, **extra}


def _assert_tone(call: dict[str, Any], hz: float, min_seconds: float) -> None:
    rec = call["recording"]
    assert rec is not None and "error" not in rec, rec
    assert rec["rms_active"] > MIN_RMS, rec
    assert rec["active_seconds"] >= min_seconds, rec
    assert rec["freq_hz"] == pytest.approx(hz, rel=0.05), rec


def _udp_bound(port: int) -> bool:
    wanted = f":{port:04X}"
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        if any(line.split()[1].endswith(wanted) for line in lines):
            return True
    return False


@contextmanager
def _sipp(args: list[str], port: int, workdir: Path) -> Iterator[subprocess.Popen[bytes]]:
    sipp = shutil.which("sipp")
    assert sipp, "sipp (Debian sip-tester) is required for this interop test"
    with (workdir / "sipp-out.txt").open("wb") as out:
        proc = subprocess.Popen(
            [sipp, *args],
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        end = time.monotonic() + 5
        while not _udp_bound(port):
            assert proc.poll() is None, (workdir / "sipp-out.txt").read_text()[-2000:]
            assert time.monotonic() < end, "sipp did not bind its port"
            time.sleep(0.02)
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)


def test_direct_call_two_processes_audio_both_ways(tmp_path: Path) -> None:
    """A kiosk process calls a station process by IP; tones cross both ways; kiosk hangs up."""
    station_port = free_port()
    station_sc = {
        "deadline": 14,
        "transports": [{"type": "udp", "port": station_port}],
        "accounts": [
            _account(
                "station", "station", tone_hz=STATION_HZ, answer={"delay": 0.2, "ringing": 180}
            )
        ],
        "actions": [
            {"do": "wait_incoming", "timeout": 8},
            {"do": "wait_idle", "min_calls": 1, "timeout": 8},
        ],
    }
    kiosk_sc = {
        "deadline": 12,
        "transports": [{"type": "udp", "port": free_port()}],
        "accounts": [_account("kiosk", "kiosk", tone_hz=KIOSK_HZ)],
        "actions": [
            {
                "do": "call",
                "account": "kiosk",
                "dest": f"sip:station@127.0.0.1:{station_port}",
                "name": "c1",
            },
            {"do": "wait_state", "call": "c1", "state": "CONFIRMED"},
            {"do": "hangup", "call": "c1", "after": 2.0},
            {"do": "wait_state", "call": "c1", "state": "DISCONNECTED"},
        ],
    }
    with start_pjagent(station_sc, timeout=20, workdir=tmp_path, name="station") as station:
        ready = station.wait_ready()
        assert ready["transports"][0]["port"] == station_port
        kiosk = run_pjagent(kiosk_sc, timeout=20, workdir=tmp_path, name="kiosk")
        st = station.wait()

    out = find_call(kiosk, "c1")
    assert state_names(out)[0] == "CALLING"
    assert state_names(out)[-2:] == ["CONFIRMED", "DISCONNECTED"]
    assert out["responses"] == [100, 180, 200]
    assert out["hung_up_by"] == "local"
    assert 1.8 <= out["connect_duration"] <= 3.0
    inc = find_call(st, role="incoming")
    assert inc["call_id"] == out["call_id"]
    assert "CONFIRMED" in state_names(inc)
    assert state_names(inc)[-1] == "DISCONNECTED"
    assert inc["hung_up_by"] == "remote"
    assert inc["invite"].startswith(f"INVITE sip:station@127.0.0.1:{station_port} SIP/2.0")

    for call, peer in ((out, inc), (inc, out)):
        totals = call["rtp_totals"]
        # 20 ms frames for ~2 s: about 100 packets each way.
        assert totals["tx_packets"] >= 60 and totals["rx_packets"] >= 60, totals
        stream = call["streams"][-1]
        assert stream["codec"] == "PCMU"
        assert stream["remote_rtp"] == peer["streams"][-1]["local_rtp"]
    _assert_tone(out, STATION_HZ, 1.0)
    _assert_tone(inc, KIOSK_HZ, 1.0)


def test_station_rejects_486_same_process(tmp_path: Path) -> None:
    """Kiosk and station as two accounts of one process; the station answers 486."""
    port = free_port()
    sc = {
        "deadline": 10,
        "transports": [{"type": "udp", "port": port}],
        "accounts": [
            _account("kiosk", "kiosk"),
            _account("station", "station", answer={"mode": "reject", "code": 486}),
        ],
        "actions": [
            {
                "do": "call",
                "account": "kiosk",
                "dest": f"sip:station@127.0.0.1:{port}",
                "name": "c1",
            },
            {"do": "wait_state", "call": "c1", "state": "DISCONNECTED"},
        ],
    }
    res = run_pjagent(sc, timeout=15, workdir=tmp_path)
    out = find_call(res, "c1")
    assert state_names(out)[-1] == "DISCONNECTED"
    assert "CONFIRMED" not in state_names(out)
    assert out["last_status"] == 486
    assert out["responses"][-1] == 486
    assert out["hung_up_by"] == "remote"
    assert out["rtp_totals"]["tx_packets"] == 0
    inc = find_call(res, "station:in1")
    assert inc["role"] == "incoming" and inc["last_status"] == 486
    assert inc["hung_up_by"] == "local"
    assert res["actions"][-1]["outcome"] == "ok"


def test_call_against_sipp_uas_with_rtp_echo(tmp_path: Path) -> None:
    """SIPp's built-in UAS answers; its RTP echo returns the kiosk's own tone."""
    # SIPp's RTP echo binds its port and the one two above
    sipp_port, echo_port = free_port(), free_ports(3)
    args = [
        "-sn",
        "uas",
        "-i",
        "127.0.0.1",
        "-p",
        str(sipp_port),
        "-mi",
        "127.0.0.1",
        "-mp",
        str(echo_port),
        "-rtp_echo",
        "-m",
        "1",
        "-nostdin",
        "-timeout",
        "12",
        "-timeout_error",
    ]
    sc = {
        "deadline": 10,
        "transports": [{"type": "udp", "port": free_port()}],
        "accounts": [_account("kiosk", "kiosk", tone_hz=KIOSK_HZ)],
        "actions": [
            {
                "do": "call",
                "account": "kiosk",
                "dest": f"sip:service@127.0.0.1:{sipp_port}",
                "name": "c1",
            },
            {"do": "hangup", "call": "c1", "after": 1.5},
            {"do": "wait_state", "call": "c1", "state": "DISCONNECTED"},
        ],
    }
    with _sipp(args, sipp_port, tmp_path) as sipp:
        res = run_pjagent(sc, timeout=15, workdir=tmp_path)
        assert sipp.wait(timeout=5) == 0, (tmp_path / "sipp-out.txt").read_text()[-2000:]
    out = find_call(res, "c1")
    assert state_names(out)[-2:] == ["CONFIRMED", "DISCONNECTED"]
    assert out["responses"][-2:] == [180, 200]
    assert out["hung_up_by"] == "local"
    stream = out["streams"][-1]
    assert stream["remote_rtp"] == f"127.0.0.1:{echo_port}"
    assert out["rtp_totals"]["tx_packets"] >= 50
    assert out["rtp_totals"]["rx_packets"] >= 50
    _assert_tone(out, KIOSK_HZ, 0.8)


def test_dtmf_both_methods_and_hold_unhold(tmp_path: Path) -> None:
    """RFC 4733 and SIP INFO digits reach the station; hold/unhold re-INVITEs are seen."""
    port = free_port()
    sc: dict[str, Any] = {
        "deadline": 12,
        "transports": [{"type": "udp", "port": port}],
        "accounts": [
            _account("kiosk", "kiosk"),
            _account("station", "station", answer={"delay": 0.1}),
        ],
        "actions": [
            {
                "do": "call",
                "account": "kiosk",
                "dest": f"sip:station@127.0.0.1:{port}",
                "name": "c1",
            },
            {"do": "wait_state", "call": "c1", "state": "CONFIRMED"},
            {"do": "dtmf", "call": "c1", "digits": "12", "method": "rfc2833", "delay": 0.3},
            {"do": "wait_dtmf", "call": "station:in1", "count": 2},
            {"do": "dtmf", "call": "c1", "digits": "3#", "method": "info"},
            {"do": "wait_dtmf", "call": "station:in1", "count": 4},
            {"do": "hold", "call": "c1", "delay": 0.5},
            {"do": "wait_media", "call": "station:in1", "status": "REMOTE_HOLD"},
            {"do": "unhold", "call": "c1", "delay": 0.3},
            {"do": "wait_media", "call": "station:in1", "status": "ACTIVE"},
            {"do": "hangup", "call": "station:in1", "delay": 0.3},
            {"do": "wait_idle", "min_calls": 2},
        ],
    }
    res = run_pjagent(sc, timeout=15, workdir=tmp_path)
    assert [a["outcome"] for a in res["actions"]] == ["ok"] * len(sc["actions"])
    inc = find_call(res, "station:in1")
    got = [(d["digit"], d["method"]) for d in inc["dtmf_received"]]
    assert got == [("1", "rfc2833"), ("2", "rfc2833"), ("3", "info"), ("#", "info")]
    assert [m["status"] for m in inc["media"]] == ["ACTIVE", "REMOTE_HOLD", "ACTIVE"]
    out = find_call(res, "c1")
    assert [m["status"] for m in out["media"]] == ["ACTIVE", "LOCAL_HOLD", "ACTIVE"]
    reinvites = [
        t
        for t in inc["tsx"]
        if t["method"] == "INVITE" and t["role"] == "uas" and t["state"] == "COMPLETED"
    ]
    assert len(reinvites) == 3  # initial INVITE + hold + unhold
    assert inc["hung_up_by"] == "local" and out["hung_up_by"] == "remote"


REGISTRAR_XML = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="digest registrar">
  <recv request="REGISTER" />
  <send><![CDATA[
SIP/2.0 401 Unauthorized
[last_Via:]
[last_From:]
[last_To:];tag=[pid]reg[call_number]
[last_Call-ID:]
[last_CSeq:]
WWW-Authenticate: Digest realm="vrgw.test", nonce="[pid]n[call_number]", algorithm=MD5
Content-Length: 0
]]></send>
  <recv request="REGISTER">
    <action><verifyauth assign_to="authvalid" username="kiosk" password="s3cret" /></action>
  </recv>
  <nop hide="true" test="authvalid" next="good" />
  <send next="done"><![CDATA[
SIP/2.0 403 Forbidden
[last_Via:]
[last_From:]
[last_To:];tag=[pid]reg[call_number]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0
]]></send>
  <label id="good" />
  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:];tag=[pid]reg[call_number]
[last_Call-ID:]
[last_CSeq:]
[last_Contact:];expires=60
Content-Length: 0
]]></send>
  <recv request="REGISTER" />
  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:];tag=[pid]reg[call_number]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0
]]></send>
  <label id="done" />
</scenario>
"""


@pytest.mark.parametrize(("password", "codes"), [("s3cret", [200, 200]), ("wrong", [403])])
def test_digest_registration_against_sipp_registrar(
    tmp_path: Path, password: str, codes: list[int]
) -> None:
    """REGISTER is challenged (401) and retried with digest; final 200, or 403 when wrong."""
    (tmp_path / "registrar.xml").write_text(REGISTRAR_XML)
    registrar_port = free_port()
    args = [
        "-sf",
        "registrar.xml",
        "-i",
        "127.0.0.1",
        "-p",
        str(registrar_port),
        "-m",
        "1",
        "-nostdin",
        "-timeout",
        "10",
        "-timeout_error",
    ]
    sc = {
        "deadline": 10,
        "transports": [{"type": "udp", "port": free_port()}],
        "accounts": [
            _account(
                "kiosk",
                "kiosk",
                register=True,
                registrar=f"sip:127.0.0.1:{registrar_port}",
                username="kiosk",
                password=password,
                expires=60,
            )
        ],
        "actions": [{"do": "wait_registered"}, {"do": "sleep", "seconds": 0.2}],
    }
    with _sipp(args, registrar_port, tmp_path) as sipp:
        res = run_pjagent(sc, timeout=15, workdir=tmp_path)
        assert sipp.wait(timeout=5) == 0, (tmp_path / "sipp-out.txt").read_text()[-2000:]
    regs = res["accounts"]["kiosk"]["registrations"]
    assert [r["code"] for r in regs] == codes
    if codes[0] == 200:
        assert regs[0]["expiration"] == 60
        assert regs[1]["expiration"] == 0  # unregistered at the end of the run
