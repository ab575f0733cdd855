#!/usr/bin/env python3
"""Soak run: the gateway under mixed traffic for a long time, its memory, descriptors and
call set-up latency sampled over time (issue 13, acceptance 8).

One command starts a gateway (``python -m gateway run``) on loopback ports and, against
it, for ``--duration`` seconds (default one hour):

- **calls**: SIPp's caller (``bench/sipp/uac.xml``) at ``--call-rate`` calls a second,
  each held ``--hold`` ms, through the gateway to a SIPp station (``bench/sipp/uas.xml``);
- **registrations**: a SIPp UA registering a digest login (MD5, RFC 3261 22.4 and
  RFC 2617 3.2.2) every ``--register-period`` seconds, each one challenged with a 401 and
  answered with credentials;
- **subscriptions**: a SIPp watcher subscribing to the partner's presence (RFC 6665
  4.1: SUBSCRIBE, 200, NOTIFY), then ending the subscription (``Expires: 0``, the last
  NOTIFY with ``Subscription-State: terminated``) every ``--subscribe-period`` seconds;
- **malformed packets**: ``--junk-rate`` datagrams a second of mutated SIP requests and
  noise, sent from another loopback address (127.0.0.2) so that the flood guard's view of
  the callers' address is not touched; the gateway must answer or drop them (RFC 3261
  21.4.1: a 400 when a response can be built);
- **timed calls**: one call every ``--probe-period`` seconds placed by the script itself
  (INVITE, 200, ACK, BYE), its set-up time (INVITE sent to 200 received) measured on
  ``time.perf_counter``: SIPp's own response times step by 4 ms here.

Every ``--interval`` seconds it samples the gateway's resident memory (``VmRSS`` of
``/proc/PID/status``), its open descriptors (``/proc/PID/fd``), the calls, transactions,
dialogs and relay ports it holds (``/api/v1/status``) and the set-up latencies of the
timed calls of that window. At the end it ends the peers softly (SIPp's SIGUSR1: the
calls in progress finish), waits for the gateway to become idle, samples once more, and
writes ``soak-<UTC time>.json`` and a PNG plot to ``--out`` (``bench/figures``). The
gateway runs on its defaults: every call comes from one address, and the bound on
unanswered transactions per source (1,024) leaves in-dialog requests and CANCELs out.

Run from the project root with the project venv, niced on a shared machine::

    nice -n 10 .venv/bin/python bench/soak.py                 # one hour
    nice -n 10 .venv/bin/python bench/soak.py --duration 1200 --interval 10

``tests/bench/test_soak.py`` runs it for about a minute.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import logging
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SCENARIO_DIR = ROOT / "bench" / "sipp"
DEFAULT_OUT = ROOT / "bench" / "figures"
JUNK_SOURCE = "127.0.0.2"  # the malformed packets' own address (any 127/8 address is local)
REGISTER_LOGIN = "soak-reg"
SERVICE = "bench"

log = logging.getLogger("bench.soak")


class SoakError(Exception):
    """A peer or the gateway could not be started, or misbehaved; the message says which."""


# --------------------------------------------------------------------------------------
# The dialplan and the SIPp scenarios of a run


def dialplan_text(station_port: int) -> str:
    """loadtest.yaml's call path, plus one digest login that registers (MD5 for SIPp)."""
    return f"""\
version: 1
domain: 127.0.0.1
auth:
  realm: soak
  bans: {{flood_rate: 0}}
media:
  bind: 127.0.0.1
  port_min: 20000
  port_max: 39999
  timeout: 0
registration: {{min_expires: 60, max_expires: 3600, default_expires: 600}}
kiosks:
  - id: bench-uac
    site: SIPp load generator
    username: null
    addresses: [127.0.0.1]
    services: [{SERVICE}]
  - id: soak-registrar
    site: SIPp registering kiosk
    username: {REGISTER_LOGIN}
    password: {{env: VRGW_SOAK_SECRET}}
    algorithms: [MD5]
    services: [{SERVICE}]
services:
  - {{name: {SERVICE}, number: "9999", partner: bench, label: "Banc d'endurance"}}
partners:
  - id: bench
    name: Banc d'endurance SIPp
    wrap_up: 0
    stations:
      - {{id: bench-uas, address: "127.0.0.1:{station_port}", transport: udp, max_calls: 0,
         keepalive: 0}}
"""


# RFC 3261 10.2 and 22.2: a REGISTER, its 401 challenge, the same REGISTER with an
# Authorization header SIPp computes from the challenge.
REGISTER_XML = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="soak register">
  <send retrans="500">
    <![CDATA[
REGISTER sip:[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
Max-Forwards: 70
From: <sip:{login}@127.0.0.1>;tag=[pid]R[call_number]
To: <sip:{login}@127.0.0.1>
Call-ID: [call_id]
CSeq: 1 REGISTER
Contact: <sip:{login}@[local_ip]:[local_port]>
Expires: 120
Content-Length: 0

    ]]>
  </send>
  <recv response="401" auth="true"/>
  <send retrans="500">
    <![CDATA[
REGISTER sip:[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
Max-Forwards: 70
From: <sip:{login}@127.0.0.1>;tag=[pid]R[call_number]
To: <sip:{login}@127.0.0.1>
Call-ID: [call_id]
CSeq: 2 REGISTER
Contact: <sip:{login}@[local_ip]:[local_port]>
[authentication username={login} password={secret}]
Expires: 120
Content-Length: 0

    ]]>
  </send>
  <recv response="200" rtd="true"/>
</scenario>
"""

# RFC 6665 4.1.2 and 4.2.1: subscribe, take the first NOTIFY, unsubscribe with Expires 0
# inside the dialog and take the terminating NOTIFY. SIPp's transactions (start_txn,
# response_txn) absorb a final response that comes again (RFC 3261 17.1.2.2): a gateway
# slow to answer gets the SUBSCRIBE again after 500 ms and answers both copies (17.2.2),
# the second after its NOTIFY, and without them that 200 reached a later step, which
# SIPp counted a failed call (a loaded run's soak did). The REGISTER scenario needs none:
# its repeated 401 follows the first at once, and the same test (gateway stopped while
# SIPp registers) passes with it as it is.
SUBSCRIBE_XML = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="soak subscribe">
  <send retrans="500" start_txn="subscribe">
    <![CDATA[
SUBSCRIBE sip:{service}@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
Max-Forwards: 70
From: <sip:watcher@[local_ip]:[local_port]>;tag=[pid]W[call_number]
To: <sip:{service}@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 SUBSCRIBE
Contact: <sip:watcher@[local_ip]:[local_port]>
Event: presence
Accept: application/pidf+xml
Expires: 60
Content-Length: 0

    ]]>
  </send>
  <recv response="200" rtd="true" response_txn="subscribe">
    <action>
      <ereg regexp=".*" search_in="hdr" header="To:" assign_to="to"/>
    </action>
  </recv>
  <recv request="NOTIFY"/>
  <send>
    <![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

    ]]>
  </send>
  <send retrans="500" start_txn="unsubscribe">
    <![CDATA[
SUBSCRIBE sip:{service}@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
Max-Forwards: 70
From: <sip:watcher@[local_ip]:[local_port]>;tag=[pid]W[call_number]
To:[$to]
Call-ID: [call_id]
CSeq: 2 SUBSCRIBE
Contact: <sip:watcher@[local_ip]:[local_port]>
Event: presence
Expires: 0
Content-Length: 0

    ]]>
  </send>
  <recv response="200" response_txn="unsubscribe"/>
  <recv request="NOTIFY"/>
  <send>
    <![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

    ]]>
  </send>
</scenario>
"""


# --------------------------------------------------------------------------------------
# Malformed traffic

_VALID = (
    b"OPTIONS sip:bench@127.0.0.1 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 127.0.0.2:5999;branch=z9hG4bKsoak%d;rport\r\n"
    b"Max-Forwards: 70\r\n"
    b"From: <sip:junk@127.0.0.2>;tag=j%d\r\n"
    b"To: <sip:bench@127.0.0.1>\r\n"
    b"Call-ID: junk-%d@127.0.0.2\r\n"
    b"CSeq: %d OPTIONS\r\n"
    b"Content-Length: 0\r\n\r\n"
)


def junk_datagram(rng: random.Random, n: int) -> bytes:
    """One malformed datagram: a mutated request (flipped, cut, inserted or duplicated
    bytes, a broken header) or plain noise."""
    base = bytearray(_VALID % (n, n, n, n))
    kind = rng.randrange(6)
    if kind == 0:
        for _ in range(rng.randint(1, 8)):
            base[rng.randrange(len(base))] = rng.randrange(256)
    elif kind == 1:
        base = base[: rng.randrange(1, len(base))]
    elif kind == 2:
        at = rng.randrange(len(base))
        base[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 40)))
    elif kind == 3:
        line = rng.choice([b"CSeq: x OPTIONS", b"Content-Length: 99999", b"Via: ", b"To: <"])
        at = base.index(b"\r\n") + 2
        base[at:at] = line + b"\r\n"
    elif kind == 4:
        base = base.replace(b"SIP/2.0\r\n", b"SIP/7.1\r\n", 1)
    else:
        base = bytearray(rng.randbytes(rng.randint(1, 1400)))
    return bytes(base)


@dataclass
class JunkSender:
    """A thread sending malformed datagrams at a steady rate, and draining the answers."""

    target: tuple[str, int]
    rate: float
    seed: int = 13
    sent: int = 0
    answered: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        if self.rate <= 0:
            return
        self._thread = threading.Thread(target=self._run, name="junk", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        rng = random.Random(self.seed)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind((JUNK_SOURCE, 0))
            sock.setblocking(False)
            period = 1.0 / self.rate
            next_at = time.monotonic()
            while not self._stop.is_set():
                sock.sendto(junk_datagram(rng, self.sent), self.target)
                self.sent += 1
                with contextlib.suppress(BlockingIOError):
                    while sock.recv(65535):
                        self.answered += 1
                next_at += period
                self._stop.wait(max(0.0, next_at - time.monotonic()))


# --------------------------------------------------------------------------------------
# Set-up latency, measured apart from SIPp (whose clock steps by 4 ms)


@dataclass
class ProbeCaller:
    """A thread placing one timed call every ``period`` seconds (RFC 3261 13.2.1: INVITE,
    provisional responses, 200, ACK; 15.1.1: BYE and its 200), from 127.0.0.1 like SIPp's
    caller, so trusted by the same kiosk entry. Each set-up time is the INVITE's sending
    to the 200's arrival, on ``time.perf_counter``; a failure is any other final answer or
    none within ``timeout``."""

    target: tuple[str, int]
    period: float
    timeout: float = 5.0
    failures: int = 0
    reasons: list[str] = field(default_factory=list)  # the first failures, what each was
    times_ms: list[float] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="probe", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.timeout + 5)

    def take(self) -> list[float]:
        """The set-up times measured since the last call."""
        with self._lock:
            taken, self.times_ms = self.times_ms, []
        return taken

    def _run(self) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.1", 0))
            n = 0
            while not self._stop.wait(self.period):
                n += 1
                try:
                    ms = self._call(sock, n)
                except (OSError, TimeoutError) as exc:
                    ms = None
                    self._note(f"call {n}: {type(exc).__name__} {exc}")
                if ms is None:
                    self.failures += 1
                else:
                    with self._lock:
                        self.times_ms.append(ms)

    def _note(self, reason: str) -> None:
        if len(self.reasons) < 20:
            self.reasons.append(reason)

    def _call(self, sock: socket.socket, n: int) -> float | None:
        here = "{}:{}".format(*sock.getsockname())
        gw = f"{self.target[0]}:{self.target[1]}"
        call_id = f"probe-{os.getpid()}-{n}@127.0.0.1"
        body = (
            f"v=0\r\no=probe {n} 1 IN IP4 127.0.0.1\r\ns=probe\r\nc=IN IP4 127.0.0.1\r\n"
            f"t=0 0\r\nm=audio {40000 + 2 * (n % 1000)} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
        )

        def request(method: str, cseq: int, branch: str, to: str, sdp: str = "") -> bytes:
            head = (
                f"{method} sip:{SERVICE}@{gw} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP {here};branch=z9hG4bK{branch}\r\n"
                f"Max-Forwards: 70\r\nFrom: <sip:probe@{here}>;tag=p{n}\r\nTo: {to}\r\n"
                f"Call-ID: {call_id}\r\nCSeq: {cseq} {method}\r\n"
                f"Contact: <sip:probe@{here}>\r\n"
            )
            if sdp:
                head += "Content-Type: application/sdp\r\n"
            return (head + f"Content-Length: {len(sdp)}\r\n\r\n{sdp}").encode()

        def final(cseq_method: str) -> tuple[int, bytes]:
            deadline = time.monotonic() + self.timeout
            while True:
                sock.settimeout(max(0.01, deadline - time.monotonic()))
                data = sock.recv(65535)
                if not data.startswith(b"SIP/2.0 ") or f"{cseq_method}\r\n".encode() not in data:
                    continue
                if call_id.encode() not in data:
                    continue
                code = int(data[8:11])
                if code >= 200:
                    return code, data
                if time.monotonic() > deadline:
                    raise TimeoutError

        to = f"<sip:{SERVICE}@{gw}>"
        start = time.perf_counter()
        sock.sendto(request("INVITE", 1, f"pi{n}", to, body), self.target)
        code, answer = final("INVITE")
        ms = (time.perf_counter() - start) * 1000
        to_line = next(
            line for line in answer.split(b"\r\n") if line.lower().startswith((b"to:", b"t:"))
        )
        to = to_line.split(b":", 1)[1].strip().decode()
        if code != 200:
            sock.sendto(request("ACK", 1, f"pi{n}", to), self.target)
            why = [ln for ln in answer.split(b"\r\n") if ln.lower().startswith(b"reason:")]
            self._note(
                f"call {n}: INVITE answered {code} {b' '.join(why).decode(errors='replace')}"
            )
            return None
        sock.sendto(request("ACK", 1, f"pa{n}", to), self.target)
        sock.sendto(request("BYE", 2, f"pb{n}", to), self.target)
        final("BYE")
        return ms


# --------------------------------------------------------------------------------------
# /proc and SIPp readings


def rss_kib(pid: int) -> int:
    """Resident set size of a process, from ``VmRSS`` in /proc/PID/status (kB)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise SoakError(f"no VmRSS for process {pid}")


def open_fds(pid: int) -> int:
    """Open file descriptors of a process (entries of /proc/PID/fd)."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def free_port(kind: int = socket.SOCK_DGRAM) -> int:
    """A port of 127.0.0.1 free right now for ``kind`` (UDP unless told)."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def sipp_counts(path: Path) -> dict[str, int]:
    """Cumulative successful and failed calls of SIPp's last ``-trace_stat`` row."""
    if not path.exists():
        return {"successful": 0, "failed": 0}
    rows = list(csv.DictReader(path.open(), delimiter=";"))
    if not rows:
        return {"successful": 0, "failed": 0}
    row = rows[-1]
    return {
        "successful": int(row.get("SuccessfulCall(C)", 0) or 0),
        "failed": int(row.get("FailedCall(C)", 0) or 0),
    }


def sipp_errors(folder: Path, limit: int = 3000) -> str:
    """The end of what SIPp's ``-trace_err`` wrote in ``folder``: why it failed a call."""
    logs = sorted(folder.glob("*_errors.log"))
    return "".join(p.read_text(errors="replace") for p in logs)[-limit:]


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-quantile (0..1) of values by nearest rank, None for none."""
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))], 3)


# --------------------------------------------------------------------------------------
# The run


@dataclass(frozen=True)
class SoakConfig:
    duration: float = 3600.0
    interval: float = 10.0
    call_rate: float = 10.0
    hold_ms: int = 2000
    register_period: float = 1.0
    subscribe_period: float = 2.0
    junk_rate: float = 20.0
    sip_t1: float = 0.5
    out: Path = DEFAULT_OUT
    name: str = ""
    plot: bool = True
    probe_period: float = 1.0
    keep: bool = False


@dataclass
class Sample:
    """One reading of the gateway, ``t`` seconds into the run."""

    t: float
    rss_kib: int
    fds: int
    calls: int
    transactions: int
    dialogs: int
    media_ports: int
    media_ports_idle: int
    calls_ok: int
    calls_failed: int
    setup_ms_p50: float | None
    setup_ms_p95: float | None
    setup_ms_max: float | None
    setups: int


class Processes:
    """Children in their own process groups, all stopped (TERM, then KILL) at the end."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, argv: Sequence[str], cwd: Path, log_path: Path, **kw: Any) -> Any:
        with log_path.open("wb") as out:
            proc = subprocess.Popen(
                list(argv),
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                **kw,
            )
        self.procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes], grace: float = 10.0) -> int:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        return int(proc.returncode)

    def stop_all(self) -> None:
        while self.procs:
            self.stop(self.procs.pop(), grace=3.0)


def _http_json(port: int, path: str) -> Any:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
        return json.loads(resp.read())


def _wait_http(proc: subprocess.Popen[bytes], port: int, log_path: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SoakError(f"gateway exited {proc.returncode}: {log_path.read_text()[-2000:]}")
        try:
            _http_json(port, "/api/v1/status")
            return
        except OSError:
            time.sleep(0.1)
    raise SoakError("gateway did not answer /api/v1/status within 30 s")


def _wait_udp_bound(port: int, proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SoakError(f"{what} exited {proc.returncode} at start")
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.bind(("127.0.0.1", port))
        except OSError:
            return  # taken: the peer is listening
        time.sleep(0.05)
    raise SoakError(f"{what} did not bind UDP port {port}")


def run(config: SoakConfig) -> dict[str, Any]:
    """Run one soak; return the report (also written as JSON, with its plot)."""
    sipp = shutil.which("sipp")
    if sipp is None:
        raise SoakError("sipp is missing (Debian package sip-tester)")
    started = datetime.now(UTC)
    stamp = config.name or started.strftime("soak-%Y%m%dT%H%M%SZ")
    procs = Processes()
    junk: JunkSender | None = None
    probe: ProbeCaller | None = None
    holder: contextlib.AbstractContextManager[str] = (
        contextlib.nullcontext(tempfile.mkdtemp(prefix="vrgw-soak-"))
        if config.keep
        else tempfile.TemporaryDirectory(prefix="vrgw-soak-")
    )
    with holder as tmp:
        work = Path(tmp)
        # SIPp runs from a copy named after this run, with its scenarios copied beside it:
        # on a shared machine another run's clean-up that signals SIPp processes by name
        # (pkill sipp, killall -USR1 sipp) would otherwise end this soak's peers.
        sipp = str(shutil.copy2(sipp, work / "soak-peer"))
        for name in ("uac", "uas"):
            shutil.copy2(SCENARIO_DIR / f"{name}.xml", work / f"soak-{name}.xml")
        secret = f"soak-{random.randrange(10**9)}"
        uas_port, gw_port = free_port(), free_port()
        http_port = free_port(socket.SOCK_STREAM)
        dialplan = work / "soak.yaml"
        dialplan.write_text(dialplan_text(uas_port))
        (work / "register.xml").write_text(REGISTER_XML.format(login=REGISTER_LOGIN, secret=secret))
        (work / "subscribe.xml").write_text(SUBSCRIBE_XML.format(service=SERVICE))
        gw_log = work / "gateway.log"
        try:
            gw = procs.start(
                [
                    *(sys.executable, "-m", "gateway", "run", "--dialplan", str(dialplan)),
                    *("--sip-host", "127.0.0.1", "--sip-port", str(gw_port)),
                    *("--http-port", str(http_port), "--sip-t1", str(config.sip_t1)),
                    *("--h323-port", "0", "--ras-port", "0", "--log-level", "WARNING"),
                    *("--records", str(work / "records.sqlite")),
                ],
                ROOT,
                gw_log,
                env={**os.environ, "VRGW_SOAK_SECRET": secret},
            )
            _wait_http(gw, http_port, gw_log)
            target = f"127.0.0.1:{gw_port}"
            (work / "uas").mkdir()
            uas_argv = [sipp, "-sf", str(work / "soak-uas.xml"), "-i", "127.0.0.1"]
            uas = procs.start([*uas_argv, "-p", str(uas_port), "-nostdin"], work / "uas",
                              work / "uas.log")  # fmt: skip
            _wait_udp_bound(uas_port, uas, "SIPp station")

            def periodic(scenario: Path, period: float) -> list[str]:
                """A SIPp UA starting one scenario every ``period`` s for the duration."""
                count = max(1, int((config.duration + 60) / period))  # ended by SIGUSR1
                return [sipp, "-sf", str(scenario), target, "-i", "127.0.0.1", "-p",
                        str(free_port()), "-r", "1", "-rp", str(int(period * 1000)),
                        "-m", str(count), "-recv_timeout", "10000"]  # fmt: skip

            # more than the run needs: SIGUSR1 ends it (SIPp's soft exit: no new call,
            # the calls in progress finish), so it never runs out before the duration
            total_calls = max(1, int(config.call_rate * (config.duration + 60)))
            peers = {
                "calls": [
                    *(sipp, "-sf", str(work / "soak-uac.xml"), "-s", SERVICE, target),
                    *("-i", "127.0.0.1", "-p", str(free_port()), "-r", str(config.call_rate)),
                    *("-m", str(total_calls), "-d", str(config.hold_ms)),
                    *("-recv_timeout", "10000"),
                ],
                "registers": periodic(work / "register.xml", config.register_period),
                "subscribes": periodic(work / "subscribe.xml", config.subscribe_period),
            }
            runners: dict[str, subprocess.Popen[bytes]] = {}
            for name, argv in peers.items():
                folder = work / name
                folder.mkdir()
                stats = ["-trace_stat", "-stf", str(folder / "stats.csv"), "-fd", "1"]
                runners[name] = procs.start(
                    [*argv, "-nostdin", *stats, "-trace_err"], folder, work / f"{name}.log"
                )
            junk = JunkSender(("127.0.0.1", gw_port), config.junk_rate)
            junk.start()
            probe = ProbeCaller(("127.0.0.1", gw_port), config.probe_period)
            probe.start()
            samples = _sample_loop(config, gw.pid, http_port, work, runners["calls"], probe)
            # SIPp's caller ending before the duration is a finding of its own (a peer
            # killed from outside, or SIPp giving up): its exit code and last words
            early = runners["calls"].poll()
            ended_early = (
                None
                if early is None
                else {"exit_code": early, "log": (work / "calls.log").read_text()[-1500:]}
            )
            junk.stop()
            probe.stop()
            for proc in runners.values():
                if proc.poll() is None:
                    proc.send_signal(signal.SIGUSR1)
            for proc in runners.values():
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=30)
                procs.stop(proc)
            procs.stop(uas)
            idle = _wait_idle(http_port, timeout=64 * config.sip_t1 + 15)
            final = _reading(gw.pid, http_port, time.monotonic() - samples[0][1], [], idle)
            counts = {n: sipp_counts(work / n / "stats.csv") for n in runners}
            errors = {n: sipp_errors(work / n) for n in runners if counts[n]["failed"]}
            code = procs.stop(gw)
            gw_text = gw_log.read_text(errors="replace")
        finally:
            if junk is not None:
                junk.stop()
            if probe is not None:
                probe.stop()
            procs.stop_all()
    series = [s for s, _ in samples]
    report = _report(config, started, series, final, counts, junk, code, gw_text)
    report["traffic"]["probe_calls_failed"] = probe.failures if probe else 0
    report["traffic"]["probe_failures"] = probe.reasons if probe else []
    report["traffic"]["sipp_errors"] = errors  # by peer, only those that failed a call
    report["summary"]["caller_ended_early"] = ended_early
    config.out.mkdir(parents=True, exist_ok=True)
    json_path = config.out / f"{stamp}.json"
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    report["json"] = str(json_path)
    if config.plot:
        png = config.out / f"{stamp}.png"
        plot(report, png)
        report["png"] = str(png)
    return report


def fds_other(sample: Sample) -> int:
    """Descriptors held for anything but the relay's UDP ports (one descriptor each).

    The relay keeps released port pairs bound in a pool (``gateway.media.ports``) that
    grows to the peak of concurrent calls, which rises when the host is loaded and
    calls take longer; what else the gateway holds must not grow at all.
    """
    return sample.fds - sample.media_ports - sample.media_ports_idle


def _status(http_port: int) -> dict[str, Any]:
    result: dict[str, Any] = _http_json(http_port, "/api/v1/status")
    return result


def _wait_idle(http_port: int, timeout: float) -> dict[str, Any]:
    keys = ("calls", "transactions", "dialogs", "media_sessions", "media_ports_in_use")
    deadline = time.monotonic() + timeout
    status = _status(http_port)
    while time.monotonic() < deadline and any(status.get(k) for k in keys):
        time.sleep(0.5)
        status = _status(http_port)
    return status


def _reading(
    pid: int,
    http_port: int,
    t: float,
    setups: list[float],
    status: dict[str, Any] | None = None,
    counts: dict[str, int] | None = None,
) -> Sample:
    status = status if status is not None else _status(http_port)
    counts = counts or {"successful": 0, "failed": 0}
    return Sample(
        t=round(t, 2),
        rss_kib=rss_kib(pid),
        fds=open_fds(pid),
        calls=int(status.get("calls", 0)),
        transactions=int(status.get("transactions", 0)),
        dialogs=int(status.get("dialogs", 0)),
        media_ports=int(status.get("media_ports_in_use", 0)),
        media_ports_idle=int(status.get("media_ports_idle", 0)),
        calls_ok=counts["successful"],
        calls_failed=counts["failed"],
        setup_ms_p50=percentile(setups, 0.5),
        setup_ms_p95=percentile(setups, 0.95),
        setup_ms_max=round(max(setups), 3) if setups else None,
        setups=len(setups),
    )


def _sample_loop(
    config: SoakConfig,
    pid: int,
    http_port: int,
    work: Path,
    caller: subprocess.Popen[bytes],
    probe: ProbeCaller,
) -> list[tuple[Sample, float]]:
    """Sample until the duration is over (or the caller has finished its calls)."""
    t0 = time.monotonic()
    samples: list[tuple[Sample, float]] = []
    while True:
        now = time.monotonic()
        setups = probe.take()
        counts = sipp_counts(work / "calls" / "stats.csv")
        sample = _reading(pid, http_port, now - t0, setups, counts=counts)
        samples.append((sample, t0))
        log.info(
            "t=%5.0fs rss=%6d kB fds=%4d calls=%4d tx=%5d ok=%d failed=%d p50=%s ms",
            sample.t, sample.rss_kib, sample.fds, sample.calls, sample.transactions,
            sample.calls_ok, sample.calls_failed, sample.setup_ms_p50,
        )  # fmt: skip
        if now - t0 >= config.duration or caller.poll() is not None:
            return samples
        time.sleep(max(0.0, t0 + len(samples) * config.interval - time.monotonic()))


def _report(
    config: SoakConfig,
    started: datetime,
    series: list[Sample],
    final: Sample,
    counts: dict[str, dict[str, int]],
    junk: JunkSender | None,
    exit_code: int,
    gw_log: str,
) -> dict[str, Any]:
    warm = series[min(len(series) - 1, max(1, len(series) // 10))]  # after the first tenth
    latencies = [s.setup_ms_p50 for s in series if s.setup_ms_p50 is not None]
    p95s = [s.setup_ms_p95 for s in series if s.setup_ms_p95 is not None]
    half = len(series) // 2
    return {
        "started": started.isoformat(timespec="seconds"),
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()},
        "host": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "traffic": {
            **counts,
            "junk_sent": junk.sent if junk else 0,
            "junk_answered": junk.answered if junk else 0,
        },
        "summary": {
            "rss_kib_after_warmup": warm.rss_kib,
            "rss_kib_end": series[-1].rss_kib,
            "rss_kib_max": max(s.rss_kib for s in series),
            "rss_kib_idle_after": final.rss_kib,
            "fds_after_warmup": warm.fds,
            "fds_max": max(s.fds for s in series),
            "fds_idle_after": final.fds,
            "fds_first": series[0].fds,
            "fds_other_max": max(fds_other(s) for s in series),
            "fds_other_idle_after": fds_other(final),
            "setup_ms_p50_first_half": statistics.median(latencies[:half] or [0.0]),
            "setup_ms_p50_second_half": statistics.median(latencies[half:] or [0.0]),
            "setup_ms_p95_worst_window": max(p95s) if p95s else None,
            "idle_after": asdict(final),
            "gateway_exit_code": exit_code,
            "gateway_tracebacks": gw_log.count("Traceback"),
        },
        "samples": [asdict(s) for s in series],
    }


def plot(report: dict[str, Any], path: Path) -> None:
    """Three panels over time: resident memory, open descriptors, call set-up latency."""
    import matplotlib

    matplotlib.use("Agg")  # files only
    import matplotlib.pyplot as plt

    samples = report["samples"]
    minutes = [s["t"] / 60 for s in samples]
    fig, (ax_mem, ax_fd, ax_lat) = plt.subplots(3, 1, figsize=(9, 8), sharex=True)
    ax_mem.plot(minutes, [s["rss_kib"] / 1024 for s in samples], color="tab:blue")
    ax_mem.set_ylabel("RSS (MiB)")
    ax_mem.set_ylim(bottom=0)
    ax_fd.plot(minutes, [s["fds"] for s in samples], color="tab:green", label="open fds")
    ax_fd.set_ylabel("descriptors")
    ax_fd.set_ylim(bottom=0)
    ax_calls = ax_fd.twinx()
    ax_calls.plot(
        minutes, [s["calls"] for s in samples], color="tab:gray", lw=0.8, label="calls held"
    )
    ax_calls.set_ylabel("calls held", color="tab:gray")
    ax_calls.set_ylim(bottom=0)
    p50 = [(m, s["setup_ms_p50"]) for m, s in zip(minutes, samples, strict=True)]
    p95 = [(m, s["setup_ms_p95"]) for m, s in zip(minutes, samples, strict=True)]
    ax_lat.plot(*zip(*[p for p in p50 if p[1] is not None], strict=True), label="p50")
    ax_lat.plot(*zip(*[p for p in p95 if p[1] is not None], strict=True), label="p95")
    ax_lat.set_ylabel("INVITE -> 200 (ms)")
    ax_lat.set_xlabel("minutes")
    ax_lat.set_ylim(bottom=0)
    ax_lat.legend(loc="upper right")
    cfg = report["config"]
    traffic = report["traffic"]
    fig.suptitle(
        f"vrgw soak {report['started']}: {cfg['call_rate']:g} calls/s held "
        f"{cfg['hold_ms'] / 1000:g} s, {traffic['calls']['successful']} calls, "
        f"{traffic['registers']['successful']} REGISTERs, "
        f"{traffic['subscribes']['successful']} SUBSCRIBEs, {traffic['junk_sent']} malformed",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def parse_args(argv: Sequence[str] | None) -> SoakConfig:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--duration", type=float, default=3600, help="seconds (default 3600)")
    p.add_argument("--interval", type=float, default=10, help="seconds between samples")
    p.add_argument("--call-rate", type=float, default=10, help="calls a second (default 10)")
    p.add_argument("--hold", type=int, default=2000, help="ms each call is held (default 2000)")
    p.add_argument("--register-period", type=float, default=1.0, help="s between REGISTERs")
    p.add_argument("--subscribe-period", type=float, default=2.0, help="s between SUBSCRIBEs")
    p.add_argument("--junk-rate", type=float, default=20, help="malformed datagrams a second")
    p.add_argument("--probe-period", type=float, default=1.0, help="s between timed calls")
    p.add_argument("--sip-t1", type=float, default=0.5, help="the gateway's T1 (RFC: 0.5 s)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder of the JSON and PNG")
    p.add_argument("--name", default="", help="file stem (default soak-<UTC time>)")
    p.add_argument("--no-plot", action="store_true", help="JSON only")
    p.add_argument("--keep", action="store_true", help="keep the work folder (logs, SIPp)")
    a = p.parse_args(argv)
    return SoakConfig(
        duration=a.duration,
        interval=a.interval,
        call_rate=a.call_rate,
        hold_ms=a.hold,
        register_period=a.register_period,
        subscribe_period=a.subscribe_period,
        junk_rate=a.junk_rate,
        sip_t1=a.sip_t1,
        out=a.out,
        name=a.name,
        plot=not a.no_plot,
        keep=a.keep,
        probe_period=a.probe_period,
    )


@contextlib.contextmanager
def _signals_unwind() -> Iterator[None]:
    """SIGTERM and SIGHUP unwind like Ctrl-C, so that every child is stopped."""

    def raise_(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    old = {s: signal.signal(s, raise_) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    config = parse_args(argv)
    with _signals_unwind():
        report = run(config)
    s = report["summary"]
    t = report["traffic"]
    print(json.dumps({"summary": {k: v for k, v in s.items() if k != "idle_after"},
                      "traffic": t, "json": report["json"], "png": report.get("png")},
                     indent=2))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
