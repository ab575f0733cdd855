"""Issue 13 on the H.323 ports, against the real gateway process and real H323Plus units.

(1) A source opening many TCP connections to the H.225.0 port is refused past its bound
    (closed at accept, counted, logged once), and the connections it was allowed are
    closed when no Setup comes; meanwhile an H.323 kiosk (``simple``) on another address
    completes a call to an H.323 station (``simple``).
(2) A source flooding the gatekeeper's RAS port with GRQs is banned (logged, counted,
    listed by the admin API with protocol h323, liftable there), while a ``simple`` on
    another address registers.
(3) Junk on the H.225.0 port (not TPKT, or a TPKT length of 65535) closes that
    connection only: a call in progress on another connection goes on and ends normally.
Every socket is real, on 127.0.0.x; every process is stopped in ``finally``.
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
import time
import urllib.error
from pathlib import Path
from typing import Any

import pytest
from h323.peers import SimplePeer
from harness import GatewayProcess, free_port, wait_for

from gateway.h323 import asn1
from gateway.h323.ras import GatekeeperClient

pytestmark = pytest.mark.interop

# The legitimate H.323 kiosk: H323Plus binds its listener to ``-i`` but not the
# connections it opens, which leave from 127.0.0.1 whatever ``-i`` says.
KIOSK = "127.0.0.1"
FLOODER = "127.0.0.2"
STATION = "127.0.0.4"
PER_SOURCE = 4


def write_plan(tmp_path: Path, station_port: int, *, bans: str = "") -> Path:
    """One kiosk (trusted at KIOSK, and by its username), the service ``caf`` and an
    H.323 station at ``station_port``."""
    (tmp_path / "kiosk.secrets").write_text("kiosk-lessay: pw-not-used-by-h323\n")
    path = tmp_path / "plan.yaml"
    path.write_text(
        "version: 1\ndomain: 127.0.0.1\nmedia: {timeout: 0}\nsecrets_file: kiosk.secrets\n"
        f"auth:\n  bans: {{{bans}}}\n"
        "kiosks:\n"
        f"  - {{id: lessay, site: MSP de Lessay, addresses: [{KIOSK}], username: kiosk-lessay,"
        " password: {secret: kiosk-lessay}, services: all}\n"
        'services:\n  - {name: caf, number: "1001", partner: caf}\n'
        "partners:\n  - id: caf\n    name: CAF de la Manche\n    wrap_up: 0\n    stations:\n"
        f'      - {{id: caf-h323, protocol: h323, address: "{STATION}:{station_port}",'
        " alias: agent-caf}\n"
    )
    return path


def simple(tmp_path: Path, host: str, *args: str) -> SimplePeer:
    """An H323Plus ``simple`` on ``host``, no sound card, silence detection off."""
    return SimplePeer(["-e", "-i", host, "-s", "Null Audio", *args], tmp_path)


def station_unit(tmp_path: Path, port: int) -> SimplePeer:
    peer = simple(tmp_path, STATION, "-l", "-a", "-n", "-f", "-u", "agent-caf", "-x", str(port))
    if not peer.wait_output("Waiting for incoming calls", 15):
        peer.stop()
        raise AssertionError(f"simple did not start:\n{peer.output[-2000:]}")
    return peer


def port_of(gw: GatewayProcess, what: str) -> int:
    """A port of the gateway from its start-up line (``H\\.323 tcp`` or ``RAS udp``)."""
    match = wait_for(lambda: re.search(rf"{what} (\d+)", gw.log()), 10, "the start-up line")
    return int(match[1])


def station_idle(gw: GatewayProcess) -> None:
    wait_for(
        lambda: gw.metric("vrgw_station_state", station="caf-h323", state="idle") == 1,
        20,
        "the H.323 station to be seen",
    )


def closed_by_gateway(sock: socket.socket, timeout: float) -> bool:
    """Whether the gateway closed ``sock`` (EOF or reset) within ``timeout``."""
    sock.settimeout(timeout)
    try:
        return sock.recv(65536) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def connect_from(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((host, 0))
    sock.connect(("127.0.0.1", port))
    return sock


def call_through(tmp_path: Path, gw: GatewayProcess, h323_port: int) -> SimplePeer:
    """An H.323 kiosk on KIOSK dialling ``caf`` (fastStart) and in the call."""
    kiosk = simple(
        tmp_path, KIOSK, "-n", "-f", "-u", "kiosk-lessay", "-x", str(free_port()),
        f"caf@127.0.0.1:{h323_port}",
    )  # fmt: skip
    if not kiosk.wait_output("In call with", 20):
        kiosk.stop()
        raise AssertionError(f"the kiosk's call did not connect:\n{kiosk.output[-3000:]}")
    return kiosk


def hang_up(kiosk: SimplePeer, gw: GatewayProcess) -> None:
    kiosk.type("H")
    assert kiosk.wait_output("completed", 10), kiosk.output[-3000:]
    record = wait_for(lambda: gw.http("/api/v1/calls")["ended"], 10, "the call record")[-1]
    assert record["outcome"] == "completed" and record["kiosk"] == "lessay", record


def test_a_connection_flood_is_refused_while_a_kiosk_calls(
    gateway_factory: Any, tmp_path: Path
) -> None:
    station_port = free_port()
    station = station_unit(tmp_path, station_port)
    held: list[socket.socket] = []
    try:
        gw: GatewayProcess = gateway_factory(
            write_plan(tmp_path, station_port),
            extra=["--max-connections-per-source", str(PER_SOURCE)],
        )
        h323_port = port_of(gw, r"H\.323 tcp")
        station_idle(gw)
        held = [connect_from(FLOODER, h323_port) for _ in range(60)]
        closed = [
            closed_by_gateway(sock, 0.3 if i < PER_SOURCE else 2.0) for i, sock in enumerate(held)
        ]
        assert closed == [False] * PER_SOURCE + [True] * (60 - PER_SOURCE)
        refused = gw.metric("vrgw_h323_refused_total", limit="connections_per_source")
        assert refused == 60 - PER_SOURCE
        assert gw.log().count(f"H.323: connection from {FLOODER} refused") == 1
        # The kiosk on another address is not concerned: its call completes.
        kiosk = call_through(tmp_path, gw, h323_port)
        try:
            hang_up(kiosk, gw)
        finally:
            kiosk.stop()
        # The flooder's connections that were let in never sent a Setup: closed in time.
        assert all(closed_by_gateway(sock, 15.0) for sock in held[:PER_SOURCE])
        closed_idle = gw.metric("vrgw_h323_connections_closed_total", reason="no_setup")
        assert closed_idle == PER_SOURCE
        assert gw.metric("vrgw_h323_connections") == 0
    finally:
        for sock in held:
            sock.close()
        station.stop()


def grq(alias: str) -> bytes:
    client = GatekeeperClient(
        ("127.0.0.1", 2000), ("127.0.0.1", 1719), ("127.0.0.1", 1720), [alias]
    )
    client.register(0.0)
    ((data, _),) = client.datagrams_to_send()
    return data


def test_a_ras_flood_is_banned_while_a_unit_registers(gateway_factory: Any, tmp_path: Path) -> None:
    station_port = free_port()
    gw: GatewayProcess = gateway_factory(
        write_plan(
            tmp_path, station_port, bans="ras_flood_rate: 10, ras_flood_burst: 20, duration: 60"
        )
    )
    ras = ("127.0.0.1", port_of(gw, "RAS udp"))
    flooder = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    flooder.bind((FLOODER, 0))
    stop = threading.Event()
    sent = 0

    def flood() -> None:
        nonlocal sent
        data = grq("kiosk-lessay")
        while not stop.is_set():
            for _ in range(50):
                flooder.sendto(data, ras)
                sent += 1
            time.sleep(0.005)

    thread = threading.Thread(target=flood, daemon=True)
    thread.start()
    kiosk: SimplePeer | None = None
    try:
        assert wait_for(lambda: gw.metric("vrgw_ras_flood_bans_total"), 10, "the ban") == 1
        # While the flood goes on, a unit on another address registers.
        kiosk = simple(tmp_path, KIOSK, "-u", "kiosk-lessay", "-x", str(free_port()),
                       "-g", f"{ras[0]}:{ras[1]}", "-l")  # fmt: skip
        wait_for(lambda: gw.metric("vrgw_h323_registrations") == 1, 20, "the registration")
        assert "Error registering" not in kiosk.output
    finally:
        stop.set()
        thread.join(5)
        if kiosk is not None:
            kiosk.stop()
    dropped = gw.metric("vrgw_ras_flood_dropped_total") or 0
    decoded = gw.metric("vrgw_ras_messages_received_total", gatekeeper="vrgw") or 0
    assert sent > 500 and dropped > 0.9 * sent, (sent, dropped)
    assert decoded < 200, decoded  # the flood was dropped before it was decoded
    assert f"RAS flood from {FLOODER}" in gw.log() and "banned for 60 s" in gw.log()
    bans = gw.http("/api/v1/bans")["bans"]
    assert [(b["kind"], b["protocol"], b["key"]) for b in bans] == [("flood", "h323", FLOODER)]
    # Banned: a GRQ from the flooder gets no answer; lifted by the operator: it does.
    flooder.setblocking(False)
    with contextlib.suppress(BlockingIOError):
        while True:  # the answers to the first burst, before the ban
            flooder.recv(65535)
    flooder.settimeout(1.0)
    flooder.sendto(grq("kiosk-lessay"), ras)
    with pytest.raises(TimeoutError):
        flooder.recv(65535)
    lifted = gw.http(f"/api/v1/bans/flood/{FLOODER}", method="DELETE")
    assert lifted["lifted"]["protocol"] == "h323"
    assert gw.http("/api/v1/bans")["bans"] == []
    with pytest.raises(urllib.error.HTTPError):  # nothing left to lift
        gw.http(f"/api/v1/bans/flood/{FLOODER}", method="DELETE")
    flooder.sendto(grq("kiosk-lessay"), ras)
    assert asn1.decode_ras(flooder.recv(65535))[0] in ("gatekeeperConfirm", "gatekeeperReject")
    flooder.close()
    assert gw.metric("vrgw_ras_flood_bans_active") == 0


def test_junk_on_the_signalling_port_closes_that_connection_only(
    gateway_factory: Any, tmp_path: Path
) -> None:
    station_port = free_port()
    station = station_unit(tmp_path, station_port)
    try:
        gw: GatewayProcess = gateway_factory(write_plan(tmp_path, station_port))
        h323_port = port_of(gw, r"H\.323 tcp")
        station_idle(gw)
        kiosk = call_through(tmp_path, gw, h323_port)
        try:
            junk = [
                b"GET / HTTP/1.1\r\nHost: vrgw\r\n\r\n",  # not a TPKT at all
                b"\x03\x00\xff\xff" + bytes(1000),  # the largest TPKT length: past the cap
                b"\x03\x00\x00\x02",  # a length shorter than its own header
            ]
            for data in junk:
                sock = connect_from(FLOODER, h323_port)
                sock.sendall(data)
                assert closed_by_gateway(sock, 3.0), data
                sock.close()
            closed = gw.metric("vrgw_h323_connections_closed_total", reason="bad_tpkt")
            assert closed == len(junk)
            time.sleep(1.0)
            assert gw.status()["calls"] == 1  # the kiosk's call goes on
            assert "cleared" not in kiosk.output, kiosk.output[-2000:]
            hang_up(kiosk, gw)
        finally:
            kiosk.stop()
        assert f"bad TPKT stream from {FLOODER}" in gw.log()
    finally:
        station.stop()
