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
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from h323.ras_peers import GnuGk
from harness import GatewayProcess, free_port, h323_peers, start_capture, wait_for
from peers import find_call, start_pjagent

pytestmark = pytest.mark.interop

MODES = {
    "faststart": ["-f"],
    "slowstart-tunnelled": [],
    "slowstart-separate-h245": ["-T"],
}


def dialplan(tmp_path: Path, station_port: int) -> Path:
    path = tmp_path / "h323.yaml"
    path.write_text(
        "version: 1\ndomain: 127.0.0.1\nmedia: {timeout: 0}\n"
        "kiosks:\n"
        "  - {id: lessay, site: MSP de Lessay, addresses: [127.0.0.1], services: all}\n"
        'services:\n  - {name: caf, number: "1001", partner: caf}\n'
        "partners:\n  - id: caf\n    name: CAF de la Manche\n    wrap_up: 0\n"
        "    stations:\n"
        f'      - {{id: caf-h323, protocol: h323, address: "127.0.0.1:{station_port}",'
        " alias: agent-caf}\n"
    )
    return path


def start_station(port: int, mode: str, log: Path) -> subprocess.Popen[bytes]:
    simple = h323_peers() / "bin" / "simple"
    args = [str(simple), "-l", "-a", "-n", "-e", "-u", "agent-caf", "-i", "127.0.0.1"]
    args += ["-x", str(port), "-s", "Null Audio", *MODES[mode]]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            args, stdin=subprocess.PIPE, stdout=out, stderr=subprocess.STDOUT, cwd=log.parent
        )
    deadline = time.monotonic() + 15
    while "Waiting for incoming calls" not in log.read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"simple did not start:\n{log.read_text(errors='replace')}")
        time.sleep(0.1)
    return proc


def stop_station(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        try:
            assert proc.stdin is not None
            proc.stdin.write(b"X\n")
            proc.stdin.flush()
            proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("mode", list(MODES))
def test_sip_kiosk_calls_an_h323_station(gateway_factory: Any, tmp_path: Path, mode: str) -> None:
    station_port = free_port()
    station_log = tmp_path / "simple.log"
    station = start_station(station_port, mode, station_log)
    try:
        gw: GatewayProcess = gateway_factory(dialplan(tmp_path, station_port))
        capture = start_capture(tmp_path / "call.pcapng", [gw.sip_port, station_port])
        kiosk = start_pjagent(
            {
                "deadline": 40,
                "transports": [{"type": "udp", "port": 0}],
                "media": {"tone_hz": 440, "record": True},
                "accounts": [{"id": "kiosk", "uri": "sip:lessay@127.0.0.1", "register": False}],
                "actions": [
                    {
                        "do": "call",
                        "account": "kiosk",
                        "dest": f"sip:caf@127.0.0.1:{gw.sip_port}",
                        "name": "c1",
                        "headers": {"X-Visio-Context": "allocataire=1234567"},
                    },
                    {"do": "wait_state", "call": "c1", "state": "CONFIRMED", "timeout": 15},
                    # The citizen presses a key: SIP INFO to the gateway, H.245
                    # userInputIndication (or a Q.931 keypad) to the station.
                    {"do": "dtmf", "call": "c1", "digits": "5", "method": "info", "delay": 1.0},
                    {"do": "wait_dtmf", "call": "c1", "count": 1, "timeout": 5},
                    {"do": "hangup", "call": "c1", "after": 3.0},
                    {"do": "wait_state", "call": "c1", "state": "DISCONNECTED", "timeout": 10},
                ],
            },
            workdir=tmp_path / "kiosk",
        )
        with kiosk:
            live = wait_for(lambda: gw.relaying_call(20), 15, "RTP relayed both ways")
            assert station.stdin is not None
            station.stdin.write(b"7\n")  # the agent presses 7 on the station
            station.stdin.flush()
            result = kiosk.wait(timeout=40)
        status = gw.wait_idle()
        wait_for(
            lambda: "cleared the call" in station_log.read_text(errors="replace"), 10, "release"
        )
        capture.stop()
    finally:
        stop_station(station)

    call = find_call(result, "c1")
    names = [s["state"] for s in call["states"]]
    assert "CONFIRMED" in names and names[-1] == "DISCONNECTED", names
    assert call["hung_up_by"] == "local"
    assert call["streams"][0]["rx_packets"] > 20, call["streams"][0]
    # The station's key (H.245 userInputIndication or Q.931 keypad) reached the kiosk.
    assert [d["digit"] for d in call["dtmf_received"]] == ["7"], call["dtmf_received"]
    assert live["station"] == "caf-h323"
    station_out = station_log.read_text(errors="replace")
    assert "Started logical channel: sending" in station_out, station_out[-3000:]
    assert "Started logical channel: receiving" in station_out, station_out[-3000:]
    assert '"vrgw" has cleared the call' in station_out, station_out[-3000:]
    assert 'User input received: "5"' in station_out, station_out[-3000:]

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


def h323_port_of(gw: GatewayProcess) -> int:
    """The gateway's H.225.0 port, from its start-up line (written just after HTTP is up)."""
    match = wait_for(lambda: re.search(r"H\.323 tcp (\d+)", gw.log()), 10, "the start-up line")
    return int(match[1])


@pytest.mark.parametrize("mode", ["faststart", "slowstart-tunnelled"])
def test_h323_kiosk_calls_a_sip_station(gateway_factory: Any, tmp_path: Path, mode: str) -> None:
    """An H.323 unit at a kiosk site (trusted by address) dials ``caf`` by alias; the
    gateway offers the call to a SIP station (pjsua2), which answers; media both ways."""
    station_port = free_port()
    plan = tmp_path / "kiosk.yaml"
    plan.write_text(
        "version: 1\ndomain: 127.0.0.1\nmedia: {timeout: 0}\n"
        "kiosks:\n"
        "  - {id: lessay, site: MSP de Lessay, addresses: [127.0.0.1], services: all}\n"
        'services:\n  - {name: caf, number: "1001", partner: caf}\n'
        "partners:\n  - id: caf\n    name: CAF de la Manche\n    wrap_up: 0\n"
        "    stations:\n"
        f'      - {{id: caf-1, address: "127.0.0.1:{station_port}", keepalive: 0}}\n'
    )
    gw: GatewayProcess = gateway_factory(plan)
    station = start_pjagent(
        {
            "deadline": 40,
            "transports": [{"type": "udp", "port": station_port}],
            "media": {"tone_hz": 660, "record": True},
            "accounts": [
                {
                    "id": "station",
                    "uri": f"sip:caf-1@127.0.0.1:{station_port}",
                    "register": False,
                    "role": "station",
                    "answer": {"mode": "answer", "delay": 0.3, "ringing": 180},
                }
            ],
            "actions": [
                {"do": "wait_incoming", "account": "station", "count": 1, "timeout": 20},
                {"do": "wait_idle", "min_calls": 1, "timeout": 25},
            ],
        },
        workdir=tmp_path / "station",
    )
    kiosk_log = tmp_path / "kiosk-simple.log"
    simple = h323_peers() / "bin" / "simple"
    args = [str(simple), "-n", "-e", "-u", "kiosk-lessay", "-i", "127.0.0.1"]
    args += ["-x", str(free_port()), "-s", "Null Audio", *MODES[mode]]
    args.append(f"caf@127.0.0.1:{h323_port_of(gw)}")
    with station:
        station.wait_ready()
        with kiosk_log.open("wb") as out:
            kiosk = subprocess.Popen(
                args, stdin=subprocess.PIPE, stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path
            )
        try:
            wait_for(lambda: "In call with" in kiosk_log.read_text("latin-1"), 20, "connect")

            live = wait_for(lambda: gw.relaying_call(20), 15, "RTP relayed both ways")
            assert kiosk.stdin is not None
            kiosk.stdin.write(b"H\n")  # the citizen hangs up
            kiosk.stdin.flush()
            wait_for(lambda: "completed" in kiosk_log.read_text("latin-1"), 10, "release")
        finally:
            stop_station(kiosk)
        result = station.wait(timeout=40)
    status = gw.wait_idle()
    inc = find_call(result, role="incoming")
    names = [s["state"] for s in inc["states"]]
    assert "CONFIRMED" in names and names[-1] == "DISCONNECTED", names
    assert inc["hung_up_by"] == "remote"
    assert inc["streams"][0]["rx_packets"] > 20, inc["streams"][0]
    assert "X-Visio-Kiosk: lessay" in inc["invite"]
    assert live["kiosk"] == "lessay" and live["station"] == "caf-1", live
    assert status["calls"] == 0 and status["media_sessions"] == 0, status
    record = gw.http("/api/v1/calls")["ended"][-1]
    assert record["outcome"] == "completed", record


def ras_port_of(gw: GatewayProcess) -> int:
    """The gateway's gatekeeper port, from its start-up line."""
    match = wait_for(lambda: re.search(r"RAS udp (\d+)", gw.log()), 10, "the start-up line")
    return int(match[1])


def test_station_registered_with_the_gateways_gatekeeper(
    gateway_factory: Any, tmp_path: Path
) -> None:
    """An H.323 station with no fixed address registers its alias (RRQ) with the
    gateway's gatekeeper; a SIP kiosk's call then reaches it where it registered."""
    plan = tmp_path / "gk.yaml"
    plan.write_text(
        "version: 1\ndomain: 127.0.0.1\nmedia: {timeout: 0}\n"
        "kiosks:\n"
        "  - {id: lessay, site: MSP de Lessay, addresses: [127.0.0.1], services: all}\n"
        'services:\n  - {name: caf, number: "1001", partner: caf}\n'
        "partners:\n  - id: caf\n    name: CAF de la Manche\n    wrap_up: 0\n"
        "    stations:\n      - {id: caf-h323, protocol: h323, alias: agent-caf}\n"
    )
    gw: GatewayProcess = gateway_factory(plan)
    port = free_port()
    log = tmp_path / "station.log"
    simple = h323_peers() / "bin" / "simple"
    args = [str(simple), "-l", "-a", "-e", "-u", "agent-caf", "-i", "127.0.0.1", "-x", str(port)]
    args += ["-g", f"127.0.0.1:{ras_port_of(gw)}", "-s", "Null Audio", "-f"]
    with log.open("wb") as out:
        station = subprocess.Popen(
            args, stdin=subprocess.PIPE, stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path
        )
    try:
        wait_for(lambda: "station caf-h323 is reachable" in gw.log(), 15, "the registration")
        kiosk = start_pjagent(
            {
                "deadline": 30,
                "transports": [{"type": "udp", "port": 0}],
                "media": {"tone_hz": 440},
                "accounts": [{"id": "kiosk", "uri": "sip:lessay@127.0.0.1", "register": False}],
                "actions": [
                    {
                        "do": "call",
                        "account": "kiosk",
                        "dest": f"sip:caf@127.0.0.1:{gw.sip_port}",
                        "name": "c1",
                    },
                    {"do": "wait_state", "call": "c1", "state": "CONFIRMED", "timeout": 15},
                    {"do": "hangup", "call": "c1", "after": 1.0},
                    {"do": "wait_state", "call": "c1", "state": "DISCONNECTED", "timeout": 10},
                ],
            },
            workdir=tmp_path / "kiosk",
        )
        with kiosk:
            result = kiosk.wait(timeout=30)
        gw.wait_idle()
        wait_for(lambda: "cleared the call" in log.read_text("latin-1"), 10, "release")
    finally:
        stop_station(station)
    names = [s["state"] for s in find_call(result, "c1")["states"]]
    assert "CONFIRMED" in names, names
    record = gw.http("/api/v1/calls")["ended"][-1]
    assert record["outcome"] == "completed" and record["station"] == "caf-h323", record
    # The unit's URQ as it exits takes it off the desk.
    wait_for(lambda: "station caf-h323 is offline" in gw.log(), 10, "the unregistration")


def test_registered_h323_kiosk_calls_through_the_gatekeeper(
    gateway_factory: Any, tmp_path: Path
) -> None:
    """An H.323 kiosk registered with the gateway's gatekeeper under its username dials
    ``caf`` by alias: ARQ -> ACF routes the Setup to the gateway, which knows the kiosk
    by its registration; a unit that is not a kiosk is refused registration."""
    station_port = free_port()
    (tmp_path / "kiosk.secrets").write_text("kiosk-lessay: pw-not-used-by-h323\n")
    plan = tmp_path / "gk-kiosk.yaml"
    plan.write_text(
        "version: 1\ndomain: 127.0.0.1\nsecrets_file: kiosk.secrets\nmedia: {timeout: 0}\n"
        "kiosks:\n"
        "  - {id: lessay, site: MSP de Lessay, username: kiosk-lessay,"
        " password: {secret: kiosk-lessay}, services: all}\n"
        'services:\n  - {name: caf, number: "1001", partner: caf}\n'
        "partners:\n  - id: caf\n    name: CAF de la Manche\n    wrap_up: 0\n"
        "    stations:\n"
        f'      - {{id: caf-1, address: "127.0.0.1:{station_port}", keepalive: 0}}\n'
    )
    gw: GatewayProcess = gateway_factory(plan)
    station = start_pjagent(
        {
            "deadline": 40,
            "transports": [{"type": "udp", "port": station_port}],
            "media": {"tone_hz": 660},
            "accounts": [
                {
                    "id": "station",
                    "uri": f"sip:caf-1@127.0.0.1:{station_port}",
                    "register": False,
                    "role": "station",
                    "answer": {"mode": "answer", "delay": 0.3, "ringing": 180},
                    "hangup_after": 1.5,
                }
            ],
            "actions": [
                {"do": "wait_incoming", "account": "station", "count": 1, "timeout": 25},
                {"do": "wait_idle", "min_calls": 1, "timeout": 25},
            ],
        },
        workdir=tmp_path / "station",
    )
    simple = h323_peers() / "bin" / "simple"
    gk = f"127.0.0.1:{ras_port_of(gw)}"
    stranger_log = tmp_path / "stranger.log"
    with stranger_log.open("wb") as out:
        intruder = ["-r", "-u", "intruder", "-i", "127.0.0.1", "-x", str(free_port())]
        stranger = subprocess.run(
            [str(simple), *intruder, "-g", gk, "-s", "Null Audio", "-S", "caf"],
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=30,
            check=False,
            cwd=tmp_path,
        )
    refused = stranger_log.read_text("latin-1")
    assert "Error registering with gatekeeper" in refused, refused[-2000:]
    assert stranger.returncode == 0 and "In call with" not in refused
    kiosk_log = tmp_path / "kiosk.log"
    args = [str(simple), "-e", "-u", "kiosk-lessay", "-i", "127.0.0.1", "-x", str(free_port())]
    args += ["-g", gk, "-s", "Null Audio", "-f", "caf"]
    with station:
        station.wait_ready()
        with kiosk_log.open("wb") as out:
            kiosk = subprocess.Popen(
                args, stdin=subprocess.PIPE, stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path
            )
        try:
            wait_for(lambda: "In call with" in kiosk_log.read_text("latin-1"), 20, "connect")
            # The agent hangs up: the gateway clears the kiosk's call.
            wait_for(lambda: "cleared the call" in kiosk_log.read_text("latin-1"), 15, "release")
        finally:
            stop_station(kiosk)
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
    plan = tmp_path / "queue.yaml"
    plan.write_text(
        "version: 1\ndomain: 127.0.0.1\nmedia: {timeout: 0}\n"
        "kiosks:\n"
        "  - {id: lessay, site: MSP de Lessay, addresses: [127.0.0.1], services: all}\n"
        'services:\n  - {name: caf, number: "1001", partner: caf}\n'
        "partners:\n  - id: caf\n    name: CAF de la Manche\n    wrap_up: 0\n"
        "    stations:\n"
        f'      - {{id: caf-1, address: "127.0.0.1:{station_port}", keepalive: 0}}\n'
    )
    gw: GatewayProcess = gateway_factory(plan)
    station = start_pjagent(
        {
            "deadline": 45,
            "transports": [{"type": "udp", "port": station_port}],
            "media": {"tone_hz": 660},
            "accounts": [
                {
                    "id": "station",
                    "uri": f"sip:caf-1@127.0.0.1:{station_port}",
                    "register": False,
                    "role": "station",
                    "answer": {"mode": "answer", "delay": 0.3, "ringing": 180},
                    "hangup_after": 4.0,
                }
            ],
            "actions": [
                {"do": "wait_incoming", "account": "station", "count": 2, "timeout": 30},
                {"do": "wait_idle", "min_calls": 2, "timeout": 30},
            ],
        },
        workdir=tmp_path / "station",
    )
    first = start_pjagent(
        {
            "deadline": 30,
            "transports": [{"type": "udp", "port": 0}],
            "media": {"tone_hz": 440},
            "accounts": [{"id": "kiosk", "uri": "sip:lessay@127.0.0.1", "register": False}],
            "actions": [
                {
                    "do": "call",
                    "account": "kiosk",
                    "dest": f"sip:caf@127.0.0.1:{gw.sip_port}",
                    "name": "c1",
                },
                {"do": "wait_state", "call": "c1", "state": "DISCONNECTED", "timeout": 20},
            ],
        },
        workdir=tmp_path / "first",
    )
    kiosk_log = tmp_path / "h323-kiosk.log"
    simple = h323_peers() / "bin" / "simple"
    args = [str(simple), "-n", "-e", "-u", "kiosk-lessay", "-i", "127.0.0.1"]
    args += ["-x", str(free_port()), "-s", "Null Audio", "-f"]
    args.append(f"caf@127.0.0.1:{h323_port_of(gw)}")
    capture = start_capture(tmp_path / "queue.pcapng", [h323_port_of(gw)])
    with station, first:
        station.wait_ready()
        wait_for(lambda: gw.relaying_call(5), 15, "the first call")
        with kiosk_log.open("wb") as out:
            kiosk = subprocess.Popen(
                args, stdin=subprocess.PIPE, stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path
            )
        try:
            log = lambda: kiosk_log.read_text("latin-1")  # noqa: E731
            wait_for(lambda: "Started logical channel: receiving" in log(), 10, "early media")
            assert "In call with" not in log()  # still queued, hearing the announcement
            queued = gw.http("/api/v1/queues")["queues"]["caf"]
            assert [w["kiosk"] for w in queued["waiting"]] == ["lessay"], queued
            wait_for(lambda: "In call with" in log(), 20, "the station")
            wait_for(lambda: "cleared the call" in log(), 15, "release")
        finally:
            stop_station(kiosk)
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
    plan = tmp_path / "isdn.yaml"
    plan.write_text(
        "version: 1\ndomain: 127.0.0.1\nmedia: {timeout: 0}\n"
        f'h323:\n  gateways:\n    - {{id: rnis-caf, address: "127.0.0.1:{gateway_port}"}}\n'
        "kiosks:\n"
        "  - {id: lessay, site: MSP de Lessay, addresses: [127.0.0.1], services: all}\n"
        'services:\n  - {name: caf, number: "1001", partner: caf}\n'
        "partners:\n  - id: caf\n    name: CAF de la Manche\n    wrap_up: 0\n"
        "    stations:\n"
        '      - {id: caf-isdn, protocol: h323, number: "0233445566", via: rnis-caf}\n'
    )
    log = tmp_path / "h320.log"
    unit = start_station(gateway_port, "faststart", log)
    try:
        gw: GatewayProcess = gateway_factory(plan)
        capture = start_capture(tmp_path / "isdn.pcapng", [gateway_port])
        kiosk = start_pjagent(
            {
                "deadline": 30,
                "transports": [{"type": "udp", "port": 0}],
                "media": {"tone_hz": 440},
                "accounts": [{"id": "kiosk", "uri": "sip:lessay@127.0.0.1", "register": False}],
                "actions": [
                    {
                        "do": "call",
                        "account": "kiosk",
                        "dest": f"sip:caf@127.0.0.1:{gw.sip_port}",
                        "name": "c1",
                    },
                    {"do": "wait_state", "call": "c1", "state": "CONFIRMED", "timeout": 15},
                    {"do": "hangup", "call": "c1", "after": 1.0},
                    {"do": "wait_state", "call": "c1", "state": "DISCONNECTED", "timeout": 10},
                ],
            },
            workdir=tmp_path / "kiosk",
        )
        with kiosk:
            result = kiosk.wait(timeout=30)
        gw.wait_idle()
        wait_for(lambda: "cleared the call" in log.read_text("latin-1"), 10, "release")
        capture.stop()
    finally:
        stop_station(unit)
    names = [s["state"] for s in find_call(result, "c1")["states"]]
    assert "CONFIRMED" in names, names
    record = gw.http("/api/v1/calls")["ended"][-1]
    assert record["outcome"] == "completed" and record["station"] == "caf-isdn", record
    setups = capture.fields(
        f"tcp.dstport == {gateway_port} && q931.message_type == 0x05",
        "q931.called_party_number.digits",
        "h225.dialledDigits",
    )
    assert setups == [["0233445566", "0233445566"]], setups


def test_station_located_through_a_partners_gatekeeper(
    gateway_factory: Any, tmp_path: Path
) -> None:
    """The partner runs its own GNU Gatekeeper, where its unit registers; the gateway
    registers there too, locates the unit by its alias (LRQ -> LCF) and calls it."""
    gk = GnuGk(tmp_path)
    unit_port = free_port()
    log = tmp_path / "unit.log"
    unit: subprocess.Popen[bytes] | None = None
    try:
        asyncio.run(gk.ready())
        simple = h323_peers() / "bin" / "simple"
        args = [str(simple), "-l", "-a", "-e", "-u", "agent-caf", "-i", "127.0.0.1"]
        args += ["-x", str(unit_port), "-g", f"127.0.0.1:{gk.ras_port}", "-s", "Null Audio"]
        with log.open("wb") as out:
            unit = subprocess.Popen(
                [*args, "-f"], stdin=subprocess.PIPE, stdout=out, stderr=subprocess.STDOUT
            )
        wait_for(lambda: any("agent-caf" in r for r in asyncio.run(gk.registrations())), 10, "unit")
        plan = tmp_path / "partner-gk.yaml"
        plan.write_text(
            "version: 1\ndomain: 127.0.0.1\nmedia: {timeout: 0}\n"
            "h323:\n  gatekeepers:\n"
            f'    - {{id: gk-caf, address: "127.0.0.1:{gk.ras_port}", aliases: [vrgw-manche]}}\n'
            "kiosks:\n"
            "  - {id: lessay, site: MSP de Lessay, addresses: [127.0.0.1], services: all}\n"
            'services:\n  - {name: caf, number: "1001", partner: caf}\n'
            "partners:\n  - id: caf\n    name: CAF de la Manche\n    wrap_up: 0\n"
            "    stations:\n"
            "      - {id: caf-gk, protocol: h323, alias: agent-caf, gatekeeper: gk-caf}\n"
        )
        gw: GatewayProcess = gateway_factory(plan)
        wait_for(lambda: "station caf-gk is reachable" in gw.log(), 15, "the LCF")
        assert any("vrgw-manche" in r for r in asyncio.run(gk.registrations()))
        kiosk = start_pjagent(
            {
                "deadline": 30,
                "transports": [{"type": "udp", "port": 0}],
                "media": {"tone_hz": 440},
                "accounts": [{"id": "kiosk", "uri": "sip:lessay@127.0.0.1", "register": False}],
                "actions": [
                    {
                        "do": "call",
                        "account": "kiosk",
                        "dest": f"sip:caf@127.0.0.1:{gw.sip_port}",
                        "name": "c1",
                    },
                    {"do": "wait_state", "call": "c1", "state": "CONFIRMED", "timeout": 15},
                    {"do": "hangup", "call": "c1", "after": 1.0},
                    {"do": "wait_state", "call": "c1", "state": "DISCONNECTED", "timeout": 10},
                ],
            },
            workdir=tmp_path / "kiosk",
        )
        with kiosk:
            result = kiosk.wait(timeout=30)
        gw.wait_idle()
        wait_for(lambda: "cleared the call" in log.read_text("latin-1"), 10, "release")
    finally:
        if unit is not None:
            stop_station(unit)
        gk.stop()
    names = [s["state"] for s in find_call(result, "c1")["states"]]
    assert "CONFIRMED" in names, names
    record = gw.http("/api/v1/calls")["ended"][-1]
    assert record["outcome"] == "completed" and record["station"] == "caf-gk", record


@pytest.mark.parametrize("mode", ["faststart", "slowstart-tunnelled"])
def test_kiosk_hold_pauses_the_h323_station(
    gateway_factory: Any, tmp_path: Path, mode: str
) -> None:
    """The kiosk puts the call on hold (re-INVITE sendonly) and takes it back: the H.323
    station gets an empty capability set (third-party pause, H.323 8.4.6), closes its
    channel, then reopens it on resume; the kiosk's re-INVITEs are answered."""
    station_port = free_port()
    station_log = tmp_path / "simple.log"
    station = start_station(station_port, mode, station_log)
    try:
        gw: GatewayProcess = gateway_factory(dialplan(tmp_path, station_port))
        kiosk = start_pjagent(
            {
                "deadline": 40,
                "transports": [{"type": "udp", "port": 0}],
                "media": {"tone_hz": 440},
                "accounts": [{"id": "kiosk", "uri": "sip:lessay@127.0.0.1", "register": False}],
                "actions": [
                    {
                        "do": "call",
                        "account": "kiosk",
                        "dest": f"sip:caf@127.0.0.1:{gw.sip_port}",
                        "name": "c1",
                    },
                    {"do": "wait_state", "call": "c1", "state": "CONFIRMED", "timeout": 15},
                    {"do": "hold", "call": "c1", "delay": 1.0},
                    {"do": "wait_media", "call": "c1", "status": "LOCAL_HOLD", "timeout": 10},
                    {"do": "unhold", "call": "c1", "delay": 1.0},
                    {"do": "wait_media", "call": "c1", "status": "ACTIVE", "timeout": 10},
                    # the agent hangs up once the station sends again (see below)
                    {"do": "wait_state", "call": "c1", "state": "DISCONNECTED", "timeout": 30},
                ],
            },
            workdir=tmp_path / "kiosk",
        )
        with kiosk:
            # Paused by the empty capability set, the station closes its channel; on
            # resume it opens it again (H.245 at its own pace): then the agent hangs up.
            wait_for(
                lambda: (
                    station_log.read_text("latin-1").count("Started logical channel: sending") >= 2
                ),
                20,
                "the station to send again after resume",
            )
            assert station.stdin is not None
            station.stdin.write(b"H\n")
            station.stdin.flush()
            result = kiosk.wait(timeout=40)
        gw.wait_idle()
    finally:
        stop_station(station)
    outcomes = [a.get("outcome") for a in result["actions"]]
    assert all(o in (None, "ok") for o in outcomes), result["actions"]
    assert find_call(result, "c1")["hung_up_by"] == "remote"
    record = gw.http("/api/v1/calls")["ended"][-1]
    assert record["outcome"] == "completed", record
