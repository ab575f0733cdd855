"""Acceptance: busy signalling, queues and schedules between real pjsua2 peers.

* A one-station partner: kiosk A is connected; kiosk B calls, is queued (183 with the
  French announcement as early media, position 1); the presence subscriptions of B and
  C show the partner busy with one person waiting; A hangs up; after the wrap-up B is
  connected without dialling again; the presence returns to open at the end.
* A station that does not answer is paused after its missed offers, the call goes on to
  the partner's other station, and the station's presence shows the pause.
* Outside the schedule (a test clock put on a Sunday): 480 with Retry-After and a Q.850
  Reason; the presence says when the partner opens, and opens when the clock gets there.
* Twenty kiosks (SIPp, one source address each) against two SIPp stations of one
  partner: every caller served once, in arrival order, on both stations.
"""

from __future__ import annotations

import itertools
import re
import subprocess
import time
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from harness import GatewayProcess, dialplan_variant, free_port, sipp_station, start_capture
from peers import find_call
from test_b2bua_features import assert_all_ok, assert_idle, dial, start_agent, wait_bound
from test_pjsua_call import DOMAIN, EXAMPLE, account

pytestmark = pytest.mark.interop

Json = dict[str, Any]
PARIS = ZoneInfo("Europe/Paris")


def variant(tmp_path: Path, name: str, edits: list[tuple[str, str]]) -> Path:
    """A copy of the example dialplan with text edits."""
    return dialplan_variant(tmp_path, EXAMPLE, name, edits)


MSA_PARTNER = "    name: Mutualité sociale agricole Côtes Normandes\n"


def kiosk(gw: GatewayProcess, user: str, acc_id: str) -> Json:
    """A kiosk account whose every request goes through the gateway (outbound proxy)."""
    return account(gw, user, "kiosk", id=acc_id, proxy=f"sip:127.0.0.1:{gw.sip_port};lr")


def events(result: Json, buddy: str) -> list[Json]:
    found: list[Json] = result["buddies"][buddy]["events"]
    return found


def first_event(result: Json, buddy: str, note: str) -> Json:
    for ev in events(result, buddy):
        if note in ev["note"]:
            return ev
    raise AssertionError(f"{buddy}: no presence note with {note!r}: {events(result, buddy)}")


# --------------------------------------------------------------------------- queue


def test_one_station_partner_queues_the_second_caller(gateway_factory: Any, tmp_path: Path) -> None:
    """Acceptance 1, with the announcement heard by the waiting caller."""
    plan = variant(
        tmp_path,
        "queue",
        [(MSA_PARTNER, MSA_PARTNER + "    wrap_up: 2\n    queue: {max_length: 3}\n")],
    )
    gw: GatewayProcess = gateway_factory(plan)
    capture = start_capture(tmp_path / "queue.pcapng", [gw.sip_port])
    station = start_agent(
        tmp_path,
        "station",
        [account(gw, "station-msa-1", "station", answer={"mode": "answer", "delay": 0.3})],
        [
            {"do": "wait_registered"},
            {"do": "wait_idle", "min_calls": 2, "timeout": 50},
            {"do": "sleep", "seconds": 6},  # stays registered through the wrap-up
        ],
        deadline=60,
        tone_hz=660,
    )
    wait_bound(gw, station, ["station-msa-1"])
    msa = f"sip:msa@{DOMAIN}"
    kiosks = start_agent(
        tmp_path,
        "kiosks",
        [
            kiosk(gw, "kiosk-lessay", "a"),
            kiosk(gw, "kiosk-carentan", "b"),
            kiosk(gw, "kiosk-brecey", "c"),
        ],
        [
            {"do": "wait_registered"},
            {"do": "subscribe", "account": "b", "uri": msa, "name": "pb"},
            {"do": "subscribe", "account": "c", "uri": msa, "name": "pc"},
            {"do": "wait_presence", "buddy": "pb", "note": "Disponible", "basic": "open"},
            {"do": "wait_presence", "buddy": "pc", "note": "Disponible", "basic": "open"},
            {"do": "call", "account": "a", "dest": dial(gw, "msa"), "name": "a"},
            {"do": "wait_state", "call": "a", "state": "CONFIRMED", "timeout": 10},
            {"do": "wait_presence", "buddy": "pb", "note": "Occupé", "basic": "closed"},
            {"do": "call", "account": "b", "dest": dial(gw, "msa"), "name": "b"},
            {"do": "wait_state", "call": "b", "state": "EARLY", "timeout": 10},
            {"do": "wait_presence", "buddy": "pb", "note": "1 personne en attente"},
            {"do": "wait_presence", "buddy": "pc", "note": "1 personne en attente"},
            {"do": "sleep", "seconds": 3},  # B hears the announcement meanwhile
            {"do": "hangup", "call": "a"},
            {"do": "wait_state", "call": "b", "state": "CONFIRMED", "timeout": 15},
            {"do": "wait_presence", "buddy": "pc", "note": "Occupé"},
            {"do": "sleep", "seconds": 2},
            {"do": "hangup", "call": "b"},
            {"do": "wait_presence", "buddy": "pc", "note": "Disponible", "timeout": 10},
            {"do": "unsubscribe", "buddy": "pb"},
            {"do": "unsubscribe", "buddy": "pc"},
            {"do": "sleep", "seconds": 1},
        ],
        deadline=60,
    )
    k = kiosks.wait(80)
    s = station.wait(80)
    capture.stop()
    assert_all_ok(k, "kiosks")
    assert_all_ok(s, "station")

    a, b = find_call(k, "a"), find_call(k, "b")
    assert 183 in b["responses"] and b["responses"][-1] == 200, b["responses"]
    queued_at = next(st["t"] for st in b["states"] if st["state"] == "EARLY")
    a_end = a["disconnected_at"]
    assert b["confirmed_at"] > a_end + 1.5, "B was connected before the station's wrap-up"
    # The announcement reached B while it waited: G.711 packets before the station's.
    early_rx = b["rtp_totals"]["rx_packets"]
    assert early_rx > (b["confirmed_at"] - queued_at) * 25, b["rtp_totals"]
    assert b["recording"]["rms_active"] > 0, b["recording"]

    # The station took both calls, one after the other, never two at once.
    incoming = [c for c in s["calls"] if c["role"] == "incoming"]
    assert len(incoming) == 2
    first, second = sorted(incoming, key=lambda c: c["confirmed_at"])
    assert second["confirmed_at"] > first["disconnected_at"]
    assert "X-Visio-Waited:" in second["invite"]

    # Presence followed: open, busy, one waiting, busy, open; the queue was seen by C too.
    busy_waiting = first_event(k, "pc", "1 personne en attente")
    assert busy_waiting["basic"] == "closed"
    assert busy_waiting["t"] >= queued_at - 0.5
    notes = [e["note"] for e in events(k, "pb")]
    assert any("Disponible" in n for n in notes) and any("Occupé" in n for n in notes), notes
    assert "Disponible" in events(k, "pc")[-2]["note"] or any(
        "Disponible" in e["note"] for e in events(k, "pc")[3:]
    )

    ended = {r["kiosk"]: r for r in gw.http("/api/v1/calls")["ended"]}
    assert ended["carentan"]["queued"] is True and ended["carentan"]["waited"] > 2.5
    assert ended["carentan"]["outcome"] == "completed"
    assert capture.problems() == []
    assert_idle(gw)
    assert gw.status()["subscriptions"] == 0


# --------------------------------------------------------------------------- no answer


def test_unanswering_station_is_paused_and_the_call_moves_on(
    gateway_factory: Any, tmp_path: Path
) -> None:
    """Acceptance 2: caf-1 rings out, is paused after one miss, caf-2 takes the call."""
    plan = variant(
        tmp_path,
        "pause",
        [
            (
                "    name: Caisse d'allocations familiales de la Manche\n",
                "    name: Caisse d'allocations familiales de la Manche\n    pause_after: 1\n",
            )
        ],
    )
    gw: GatewayProcess = gateway_factory(plan, extra=["--ring-timeout", "2"])
    silent = start_agent(
        tmp_path,
        "caf1",
        [account(gw, "station-caf-1", "station", answer={"mode": "ignore"}, id="caf1")],
        [
            {"do": "wait_registered"},
            {"do": "wait_idle", "min_calls": 1, "timeout": 30},
            {"do": "sleep", "seconds": 30},  # registered until the test stops it
        ],
        deadline=40,
    )
    wait_bound(gw, silent, ["station-caf-1"])
    time.sleep(0.2)  # caf-1 has been idle longest: it is offered the call first
    answering = start_agent(
        tmp_path,
        "caf2",
        [account(gw, "station-caf-2", "station", answer={"mode": "answer", "delay": 0.3})],
        [
            {"do": "wait_registered"},
            {"do": "wait_idle", "min_calls": 1, "timeout": 30},
            {"do": "sleep", "seconds": 30},
        ],
        deadline=40,
    )
    wait_bound(gw, answering, ["station-caf-2"])
    caf1 = f"sip:caf-1@{DOMAIN}"
    k = start_agent(
        tmp_path,
        "kiosk",
        [kiosk(gw, "kiosk-lessay", "kiosk")],
        [
            {"do": "wait_registered"},
            {"do": "subscribe", "account": "kiosk", "uri": caf1, "name": "s1"},
            {"do": "wait_presence", "buddy": "s1", "note": "Poste libre"},
            {"do": "call", "account": "kiosk", "dest": dial(gw, "caf"), "name": "c"},
            {"do": "wait_presence", "buddy": "s1", "note": "En pause", "timeout": 8},
            {"do": "wait_state", "call": "c", "state": "CONFIRMED", "timeout": 10},
            {"do": "hangup", "call": "c", "after": 1.0},
            {"do": "wait_state", "call": "c", "state": "DISCONNECTED"},
        ],
        deadline=40,
    ).wait(60)
    assert_all_ok(k, "kiosk")
    stations = {s["station"]: s for s in gw.http("/api/v1/stations")["stations"]}
    assert stations["caf-1"]["state"] == "paused", stations["caf-1"]
    assert stations["caf-1"]["paused"] == "no_answer"
    assert stations["caf-1"]["missed_offers"] == 1
    record = gw.http("/api/v1/calls")["ended"][-1]
    assert record["station"] == "caf-2" and record["outcome"] == "completed", record

    # The operator puts caf-1 back in service; its presence follows.
    gw.http("/api/v1/stations/caf-1/resume", method="POST")
    stations = {s["station"]: s for s in gw.http("/api/v1/stations")["stations"]}
    assert stations["caf-1"]["paused"] is None
    silent_result = silent.stop()
    answering.stop()
    assert len([c for c in silent_result["calls"] if c["role"] == "incoming"]) == 1
    assert_idle(gw)


# --------------------------------------------------------------------------- schedule


def test_closed_partner_refuses_with_retry_after_and_presence_says_when(
    gateway_factory: Any, tmp_path: Path
) -> None:
    """Acceptance 3 on a test clock: MSA serves on the 4th Friday of the month only."""
    plan = variant(
        tmp_path,
        "closed",
        [
            (
                MSA_PARTNER,
                MSA_PARTNER
                + "    schedule:\n"
                + '      monthly: [{nth: 4, day: fri, from: "09:00", to: "17:00"}]\n',
            )
        ],
    )
    gw: GatewayProcess = gateway_factory(plan, extra=["--test-clock"])
    sunday = datetime(2026, 11, 22, 10, 0, tzinfo=PARIS)
    gw.http_json("/api/v1/clock", "PUT", {"now": sunday.isoformat()})
    capture = start_capture(tmp_path / "closed.pcapng", [gw.sip_port])
    station = start_agent(
        tmp_path,
        "station",
        [account(gw, "station-msa-1", "station", answer={"mode": "answer", "delay": 0.2})],
        [{"do": "wait_registered"}, {"do": "sleep", "seconds": 12}],
        deadline=30,
    )
    wait_bound(gw, station, ["station-msa-1"])
    msa = f"sip:msa@{DOMAIN}"
    k = start_agent(
        tmp_path,
        "kiosk",
        [kiosk(gw, "kiosk-gavray", "kiosk")],
        [
            {"do": "wait_registered"},
            {"do": "subscribe", "account": "kiosk", "uri": msa, "name": "p"},
            {"do": "wait_presence", "buddy": "p", "note": "Fermé - ouvre vendredi à 9h00"},
            {"do": "call", "account": "kiosk", "dest": dial(gw, "msa"), "name": "c"},
            {"do": "wait_state", "call": "c", "state": "DISCONNECTED", "timeout": 5},
            # The operator's test clock moves to two seconds before the opening.
            {"do": "sleep", "seconds": 3},
            {"do": "wait_presence", "buddy": "p", "note": "Disponible", "timeout": 8},
            {"do": "unsubscribe", "buddy": "p"},
            {"do": "sleep", "seconds": 1},
        ],
        deadline=30,
    )
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if any(r["refusal"] == "closed" for r in gw.http("/api/v1/calls")["ended"]):
            break
        time.sleep(0.2)
    before = datetime(2026, 11, 27, 8, 59, 58, tzinfo=PARIS)
    gw.http_json("/api/v1/clock", "PUT", {"now": before.isoformat()})
    result = k.wait(40)
    station.stop()
    capture.stop()
    assert_all_ok(result, "kiosk")
    call = find_call(result, "c")
    assert call["last_status"] == 480, call["states"]
    fields = capture.fields(
        "sip.Status-Code == 480", "sip.Status-Code", "sip.Retry-After", "sip.Reason"
    )
    assert fields, "no 480 on the wire"
    _status, retry_after, reason = fields[0]
    expected = datetime(2026, 11, 27, 9, 0, tzinfo=PARIS).timestamp() - sunday.timestamp()
    assert abs(int(retry_after) - expected) <= 30, (retry_after, expected)
    assert re.search(r"Q\.850;cause=31", reason), reason
    assert capture.problems() == []
    assert_idle(gw)


# --------------------------------------------------------------------------- 20 kiosks


def test_twenty_kiosks_two_stations_fifo(gateway_factory: Any, tmp_path: Path) -> None:
    """Acceptance 4 with short calls: 20 SIPp kiosks (one address each), 2 SIPp stations."""
    ports = [free_port(), free_port()]
    kiosks = "\n".join(
        f"  - {{id: k{i:02d}, site: Site {i}, addresses: [127.0.0.{i + 10}], services: [msa]}}"
        for i in range(20)
    )
    stations = "\n".join(
        f'      - {{id: st-{j}, address: "127.0.0.1:{port}", keepalive: 0}}'
        for j, port in enumerate(ports)
    )
    plan = tmp_path / "twenty.yaml"
    plan.write_text(
        "version: 1\ndomain: 127.0.0.1\nmedia: {timeout: 0}\n"
        f"kiosks:\n{kiosks}\n"
        'services:\n  - {name: msa, number: "1003", partner: msa}\n'
        "partners:\n  - id: msa\n    name: MSA\n    wrap_up: 0.3\n"
        "    queue: {max_length: 20, max_wait: 120, waiting: ringing}\n"
        f"    stations:\n{stations}\n"
    )
    gw: GatewayProcess = gateway_factory(plan)
    with sipp_station(ports[0], tmp_path), sipp_station(ports[1], tmp_path):
        uacs = []
        try:
            for i in range(20):
                uacs.append(
                    subprocess.Popen(
                        [
                            "sipp",
                            "-sn",
                            "uac",
                            "-s",
                            "msa",
                            f"127.0.0.1:{gw.sip_port}",
                            "-i",
                            f"127.0.0.{i + 10}",
                            "-p",
                            str(free_port()),
                            "-m",
                            "1",
                            "-d",
                            "800",
                            "-nostdin",
                            "-timeout",
                            "90s",
                            "-recv_timeout",
                            "60000",
                        ],
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                        cwd=tmp_path,
                    )
                )
                time.sleep(0.1)  # arrivals in a known order
            codes = [p.wait(timeout=120) for p in uacs]
        finally:
            for p in uacs:
                if p.poll() is None:
                    p.terminate()
                    p.wait(timeout=10)
    assert codes == [0] * 20, codes
    records = [r for r in gw.http("/api/v1/calls")["ended"] if r["service"] == "msa"]
    assert len(records) == 20
    assert all(r["outcome"] == "completed" for r in records), records
    assert len({r["kiosk"] for r in records}) == 20  # every kiosk served, none twice
    assert {r["station"] for r in records} == {"st-0", "st-1"}
    by_arrival = sorted(records, key=lambda r: r["started"])
    # FIFO is the order in which callers leave the queue for a station (arrival plus
    # wait). Answer times would not do: two SIPp stations answer with their own latency,
    # and on a loaded machine one answers a caller offered a moment later 1 ms sooner.
    # A queue jump shows as a whole call (0.8 s held plus 0.3 s wrap-up), far above the
    # 50 ms allowed for the clock reads between queueing and the record's start.
    offered = [r["started"] + r["waited"] for r in by_arrival]
    for earlier, later in itertools.pairwise(offered):
        assert later > earlier - 0.05, f"a later caller was served first: {offered}"
    waits = [r["waited"] for r in by_arrival]
    assert sum(1 for w in waits if w > 0) >= 15, waits
    queue_view = gw.http("/api/v1/queues")["queues"]["msa"]
    assert len(queue_view["recent_waits"]) == 20
    assert_idle(gw)


# --------------------------------------------------------------------------- site hours


def test_kiosk_site_closed_outside_its_own_opening_hours(
    gateway_factory: Any, tmp_path: Path
) -> None:
    """A town hall's kiosk outside the town hall's hours: 480, cause 31, Retry-After."""
    plan = variant(
        tmp_path,
        "site-hours",
        [
            (
                "    services: all\n\n  - id: carentan",
                "    services: all\n"
                "    opening_hours:\n"
                '      weekly: [{days: [mon], from: "08:30", to: "12:30"}]\n'
                "\n  - id: carentan",
            )
        ],
    )
    gw: GatewayProcess = gateway_factory(plan, extra=["--test-clock"])
    sunday = datetime(2026, 11, 22, 10, 0, tzinfo=PARIS)
    gw.http_json("/api/v1/clock", "PUT", {"now": sunday.isoformat()})
    capture = start_capture(tmp_path / "site.pcapng", [gw.sip_port])
    result = start_agent(
        tmp_path,
        "kiosk",
        [kiosk(gw, "kiosk-lessay", "kiosk")],
        [
            {"do": "wait_registered"},
            {"do": "call", "account": "kiosk", "dest": dial(gw, "cpam"), "name": "c"},
            {"do": "wait_state", "call": "c", "state": "DISCONNECTED", "timeout": 5},
        ],
        deadline=20,
    ).wait(40)
    capture.stop()
    assert_all_ok(result, "kiosk")
    assert find_call(result, "c")["last_status"] == 480
    record = gw.http("/api/v1/calls")["ended"][-1]
    # Cause 31 (closed), not 20 (no station): the site's hours are checked first.
    assert (record["refusal"], record["cause"], record["kiosk"]) == ("site_closed", 31, "lessay")
    rows = capture.fields("sip.Status-Code == 480", "sip.Retry-After", "sip.Reason")
    monday = datetime(2026, 11, 23, 8, 30, tzinfo=PARIS).timestamp() - sunday.timestamp()
    assert rows and abs(int(rows[0][0]) - monday) <= 30, rows
    assert "Point d'accueil fermé" in rows[0][1]
    assert capture.problems() == []
    assert_idle(gw)
