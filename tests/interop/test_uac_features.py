"""Acceptance (issue 10, item 3): late offer, 100rel and a station that challenges the gateway.

SIPp plays both ends around a real gateway, with the scenarios of ``scenarios/``:

* late offer: a kiosk INVITEs without SDP, the station (reached with an INVITE without
  SDP) offers in its 200, the kiosk answers in its ACK and the station must get that
  answer in the gateway's ACK (RFC 3264 2, RFC 3261 13.2.1);
* 100rel: the station sends ``180`` with ``Require: 100rel`` twice (a retransmission)
  and expects exactly one PRACK with the right RAck (RFC 3262);
* digest: the station answers the first INVITE with 401 and accepts only an INVITE whose
  Authorization SIPp's own ``verifyauth`` finds right for the dialplan's credentials
  (RFC 3261 22.2).

Each call must end "completed" in the gateway's records, with no malformed packet in the
capture. The station scenarios are first run against a scripted UAC on a socket, once
behaving and once not, so that each check is shown to fail when it should.
"""

from __future__ import annotations

import secrets
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from harness import (
    RFC_T1,
    ROOT,
    Capture,
    GatewayProcess,
    dialplan_variant,
    explain,
    free_port,
    start_capture,
)

from gateway.sip.auth import answer_challenge
from gateway.sip.message import Request, Response, parse_message

pytestmark = pytest.mark.interop

SCENARIOS = Path(__file__).resolve().parent / "scenarios"
BENCH_UAC = ROOT / "bench" / "sipp" / "uac.xml"  # a kiosk with an offer in its INVITE
LOADTEST = ROOT / "dialplans" / "loadtest.yaml"
STATION_LINE = (
    '      - {id: bench-uas, address: "127.0.0.1:5070", transport: udp, max_calls: 0, keepalive: 0}'
)
GW_USER = "gw-bench"
GW_PASSWORD = "pw-bench-" + secrets.token_hex(4)

OFFER = (
    b"v=0\r\no=fake 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    b"m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
)


# --------------------------------------------------------------------------- SIPp


@dataclass
class Sipp:
    """A SIPp process playing one scenario for one call."""

    proc: subprocess.Popen[str]
    port: int
    name: str

    def result(self, timeout: float = 30) -> tuple[int, str]:
        """Exit code and the end of stderr once the call is over (killed if it hangs)."""
        try:
            _, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGKILL)
            _, err = self.proc.communicate()
        return self.proc.returncode, err[-3000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.communicate()


_started: list[Sipp] = []


@pytest.fixture(autouse=True)
def _no_sipp_left() -> Iterator[None]:
    yield
    while _started:
        _started.pop().stop()


def start_sipp(
    tmp_path: Path, scenario: Path, *, port: int | None = None, extra: list[str] | None = None
) -> Sipp:
    """One call of ``scenario`` on 127.0.0.1; a station waits, a kiosk calls at once."""
    port = port or free_port()
    workdir = tmp_path / f"sipp-{scenario.stem}-{port}"
    workdir.mkdir(parents=True, exist_ok=True)
    cmd = [
        "sipp",
        "-sf",
        str(scenario),
        "-i",
        "127.0.0.1",
        "-p",
        str(port),
        "-m",
        "1",
        "-nostdin",
        "-timeout",
        "20s",
        "-timeout_error",
        "-trace_err",
        # A failed check ends the call at once instead of sending BYE and waiting for
        # its answer (the default behaviour), so that SIPp exits with 1 promptly.
        "-default_behaviors",
        "all,-bye",
        *(extra or []),
    ]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=workdir
    )
    sipp = Sipp(proc, port, scenario.stem)
    _started.append(sipp)
    time.sleep(0.3)  # bound and listening before anyone sends to it
    return sipp


def station(tmp_path: Path, name: str, port: int | None = None) -> Sipp:
    return start_sipp(
        tmp_path,
        SCENARIOS / f"{name}.xml",
        port=port,
        extra=["-key", "auth_user", GW_USER, "-key", "auth_pass", GW_PASSWORD],
    )


# --------------------------------------------------------------------------- a scripted UAC


@dataclass
class ScriptedUac:
    """A UAC written line by line, standing for a gateway that behaves, or does not."""

    station_port: int
    sock: socket.socket = field(init=False)
    call_id: str = field(default_factory=lambda: secrets.token_hex(8) + "@127.0.0.1")
    tag: str = field(default_factory=lambda: secrets.token_hex(4))

    def __post_init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(5)

    @property
    def uri(self) -> str:
        return f"sip:station@127.0.0.1:{self.station_port}"

    def send(
        self,
        method: str,
        cseq: int,
        *,
        to_tag: str | None = None,
        branch: str | None = None,
        body: bytes = b"",
        extra: tuple[tuple[str, str], ...] = (),
        cseq_method: str | None = None,
    ) -> str:
        """Send a request; returns its Via branch."""
        branch = branch or "z9hG4bK" + secrets.token_hex(6)
        port = self.sock.getsockname()[1]
        lines = [
            f"{method} {self.uri} SIP/2.0",
            f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch={branch}",
            "Max-Forwards: 70",
            f"From: <sip:vrgw@127.0.0.1>;tag={self.tag}",
            f"To: <{self.uri}>" + (f";tag={to_tag}" if to_tag else ""),
            f"Call-ID: {self.call_id}",
            f"CSeq: {cseq} {cseq_method or method}",
            f"Contact: <sip:vrgw@127.0.0.1:{port}>",
            *(f"{name}: {value}" for name, value in extra),
        ]
        if body:
            lines.append("Content-Type: application/sdp")
        lines += [f"Content-Length: {len(body)}", "", ""]
        self.sock.sendto("\r\n".join(lines).encode() + body, ("127.0.0.1", self.station_port))
        return branch

    def receive(self) -> Request | Response:
        data, _ = self.sock.recvfrom(65535)
        return parse_message(data)

    def response(self, status: int) -> Response:
        """The next response with this status, skipping retransmissions of others."""
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            message = self.receive()
            if isinstance(message, Response) and message.status == status:
                return message
        raise AssertionError(f"no {status} from the station")

    def close(self) -> None:
        self.sock.close()


def _bye(uac: ScriptedUac, to_tag: str, cseq: int) -> None:
    uac.send("BYE", cseq, to_tag=to_tag)
    uac.response(200)


# --- the station scenarios against the scripted UAC ----------------------------------------


def drive_late_offer(uac: ScriptedUac, *, answer_in_ack: bool) -> None:
    uac.send("INVITE", 1)
    ok = uac.response(200)
    assert b"m=audio" in ok.body  # the station's offer
    assert ok.to.tag is not None
    uac.send("ACK", 1, to_tag=ok.to.tag, body=OFFER if answer_in_ack else b"")
    # SIPp counts a failed check when the scenario ends: the call goes on to its BYE.
    _bye(uac, ok.to.tag, 2)


def drive_100rel(uac: ScriptedUac, *, rack_cseq: int = 1, pracks: int = 1) -> None:
    uac.send("INVITE", 1, body=OFFER, extra=(("Supported", "100rel, timer"),))
    ringing = uac.response(180)
    assert ringing.headers.get("rseq") == "1"
    tag = ringing.to.tag
    assert tag is not None
    uac.send("PRACK", 2, to_tag=tag, extra=(("RAck", f"1 {rack_cseq} INVITE"),))
    if rack_cseq != 1:
        uac.response(481)
        return
    uac.response(200)  # to the PRACK
    repeat = uac.response(180)
    assert repeat.headers.get("rseq") == "1"
    if pracks > 1:  # acknowledging the retransmission as well: wrong (RFC 3262 4)
        uac.send("PRACK", 3, to_tag=tag, extra=(("RAck", "1 1 INVITE"),))
    ok = uac.response(200)  # to the INVITE
    assert ok.cseq.method == "INVITE"
    uac.send("ACK", 1, to_tag=tag)
    _bye(uac, tag, 2 + pracks)


def drive_digest(uac: ScriptedUac, *, password: str = GW_PASSWORD, next_cseq: int = 2) -> None:
    branch = uac.send("INVITE", 1, body=OFFER)
    challenge = uac.response(401)
    uac.send("ACK", 1, to_tag=challenge.to.tag, branch=branch)
    authorization = answer_challenge(
        challenge.headers.get_all("www-authenticate"),
        method="INVITE",
        uri=uac.uri,
        username=GW_USER,
        password=password,
    )
    assert authorization is not None
    branch = uac.send("INVITE", next_cseq, body=OFFER, extra=(("Authorization", authorization),))
    if password != GW_PASSWORD or next_cseq <= 1:
        forbidden = uac.response(403)
        uac.send("ACK", next_cseq, to_tag=forbidden.to.tag, branch=branch)
        return
    ok = uac.response(200)
    assert ok.to.tag is not None
    uac.send("ACK", next_cseq, to_tag=ok.to.tag)
    _bye(uac, ok.to.tag, next_cseq + 1)


@pytest.mark.parametrize(
    ("scenario", "drive", "passes"),
    [
        ("station_late_offer", lambda u: drive_late_offer(u, answer_in_ack=True), True),
        ("station_late_offer", lambda u: drive_late_offer(u, answer_in_ack=False), False),
        ("station_100rel", drive_100rel, True),
        ("station_100rel", lambda u: drive_100rel(u, rack_cseq=7), False),
        ("station_100rel", lambda u: drive_100rel(u, pracks=2), False),
        ("station_digest", drive_digest, True),
        ("station_digest", lambda u: drive_digest(u, password="not-the-password"), False),
        ("station_digest", lambda u: drive_digest(u, next_cseq=1), False),
    ],
    ids=[
        "late-offer-answer-in-ack",
        "late-offer-bodiless-ack-fails",
        "100rel-one-prack",
        "100rel-wrong-rack-fails",
        "100rel-prack-for-the-repeat-fails",
        "digest-right-password",
        "digest-wrong-password-fails",
        "digest-same-cseq-fails",
    ],
)
def test_station_scenarios_tell_right_from_wrong(
    tmp_path: Path, scenario: str, drive: Any, passes: bool
) -> None:
    sipp = station(tmp_path, scenario)
    uac = ScriptedUac(sipp.port)
    try:
        drive(uac)
    except (AssertionError, TimeoutError):
        if passes:
            raise  # a station that has failed the call may stop answering: not an error
    finally:
        uac.close()
    code, err = sipp.result()
    assert (code == 0) is passes, (code, err)
    if not passes:
        assert code == 1, (code, err)


# --------------------------------------------------------------------------- through the gateway


def gateway_for(tmp_path: Path, station_port: int, *, with_auth: bool = False) -> Path:
    """The load-test dialplan, its station on ``station_port`` (with the gateway's login)."""
    line = STATION_LINE.replace("5070", str(station_port))
    edits = [(STATION_LINE, line)]
    if with_auth:
        auth = f", auth: {{username: {GW_USER}, password: {{secret: bench-station}}}}}}"
        edits = [
            (STATION_LINE, line.removesuffix("}") + auth),
            ("version: 1\n", "version: 1\nsecrets_file: uac-features.secrets\n"),
        ]
    path = dialplan_variant(tmp_path, LOADTEST, f"uac-features-{station_port}", edits)
    (path.parent / "uac-features.secrets").write_text(f"bench-station: {GW_PASSWORD}\n")
    return path


def wait_ended(gw: GatewayProcess, timeout: float = 10) -> dict[str, Any]:
    """The last call record, once no call is in progress."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        calls = gw.http("/api/v1/calls")
        if not calls["active"] and calls["ended"]:
            record: dict[str, Any] = calls["ended"][-1]
            return record
        time.sleep(0.1)
    raise AssertionError(f"the call did not end: {gw.http('/api/v1/calls')}")


def assert_nothing_left(gw: GatewayProcess, timeout: float = 10) -> None:
    """No call, dialog or relay port left once both sides hung up.

    Finished transactions are allowed to linger their RFC 3261 17 timers (Timer D keeps
    the challenged INVITE's 32 s); the legs, dialogs and media must be gone at once.
    """
    keys = ("calls", "dialogs", "media_sessions", "media_ports_in_use")
    deadline = time.monotonic() + timeout
    status = gw.status()
    while time.monotonic() < deadline and any(status[k] for k in keys):
        time.sleep(0.1)
        status = gw.status()
    assert not any(status[k] for k in keys), status


def run_call(
    gateway_factory: Any, tmp_path: Path, station_scenario: str, kiosk: Path, *, auth: bool
) -> tuple[GatewayProcess, Capture, str]:
    """One call kiosk -> gateway -> station, both SIPp.

    Returns the gateway, the capture and a display filter for what the gateway sent to
    the station.
    """
    port = free_port()
    # The RFC's T1: the tests count INVITEs and PRACKs on the wire, and a short T1 would
    # repeat one whenever SIPp took more than 50 ms to answer it.
    plan = gateway_for(tmp_path, port, with_auth=auth)
    gw: GatewayProcess = gateway_factory(plan, sip_t1=RFC_T1)
    kiosk_port = free_port()
    capture = start_capture(tmp_path / f"{station_scenario}.pcapng", [gw.sip_port, port])
    callee = station(tmp_path, station_scenario, port)
    caller = start_sipp(
        tmp_path,
        kiosk,
        port=kiosk_port,
        extra=["-s", "bench", f"127.0.0.1:{gw.sip_port}", "-recv_timeout", "10000"],
    )
    caller_code, caller_err = caller.result()
    callee_code, callee_err = callee.result()
    capture.stop()
    assert (caller_code, callee_code) == (0, 0), explain(
        caller=caller_err, callee=callee_err, gateway=gw.log()[-3000:]
    )
    record = wait_ended(gw)
    assert record["outcome"] == "completed", record
    assert_nothing_left(gw)
    assert capture.problems() == []
    return gw, capture, f"udp.srcport == {gw.sip_port} && udp.dstport == {port}"


def test_late_offer_from_kiosk_to_station(gateway_factory: Any, tmp_path: Path) -> None:
    """INVITE without SDP both sides of the gateway; the offer in the 200, the answer in ACK."""
    _, capture, to_station = run_call(
        gateway_factory,
        tmp_path,
        "station_late_offer",
        SCENARIOS / "kiosk_late_offer.xml",
        auth=False,
    )
    invites = capture.fields(f"sip.Method == INVITE && {to_station}", "sip.Content-Length")
    assert invites and all(row == ["0"] for row in invites), invites
    acks = capture.fields(f"sip.Method == ACK && {to_station} && sdp", "sdp.media")
    assert len(acks) == 1, acks  # the kiosk's answer, carried on to the station


def test_station_requiring_100rel(gateway_factory: Any, tmp_path: Path) -> None:
    """One PRACK for the reliable 180 and none for its repeat (RFC 3262 4)."""
    _, capture, to_station = run_call(
        gateway_factory, tmp_path, "station_100rel", BENCH_UAC, auth=False
    )
    pracks = capture.fields(f"sip.Method == PRACK && {to_station}", "sip.RAck")
    assert len(pracks) == 1, pracks
    supported = capture.fields(f"sip.Method == INVITE && {to_station}", "sip.Supported")
    assert supported and all("100rel" in row[0] for row in supported), supported


def test_station_challenging_the_gateway(gateway_factory: Any, tmp_path: Path) -> None:
    """401 to the first INVITE; the second carries Authorization from the dialplan's login."""
    gw, capture, to_station = run_call(
        gateway_factory, tmp_path, "station_digest", BENCH_UAC, auth=True
    )
    invites = capture.fields(f"sip.Method == INVITE && {to_station}", "sip.CSeq.seq", "sip.Call-ID")
    challenged = capture.fields("sip.Status-Code == 401", "sip.Call-ID")
    assert len(challenged) == 1, challenged
    assert len(invites) == 2 and invites[0][1] == invites[1][1], invites
    assert int(invites[1][0]) == int(invites[0][0]) + 1, invites
    assert GW_PASSWORD not in gw.log()
