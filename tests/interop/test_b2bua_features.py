"""Acceptance: the B2BUA's features beyond the basic call, between real pjsua2 peers.

Each test runs one gateway on ``dialplans/example.yaml`` and several calls against it:

* mid-call: DTMF as SIP INFO relayed as INFO, RFC 4733 events passing through the relay
  in RTP, hold and resume by re-INVITE (RFC 3264 8.4) with the audio coming back;
* refusals: 403 (service not offered at the kiosk), 404 (unknown service), 480 with a
  Q.850 ``Reason`` (RFC 3326) when no station is registered; the kiosk cancelling a
  ringing call (RFC 3261 9); a station that rings past the ring timeout;
* busy and hunting: a station answering 486 hands the call to the partner's next
  station; every station busy gives 486; a one-station partner already in a call
  refuses a second caller with 486 (one call per station).

Every test ends with the gateway idle: no call, transaction, dialog or relay port left.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from harness import GatewayProcess, dialplan_variant, start_capture
from peers import PjAgentHandle, find_call, start_pjagent, state_names
from test_pjsua_call import EXAMPLE, account, wait_for

pytestmark = pytest.mark.interop

Json = dict[str, Any]


# --------------------------------------------------------------------------- helpers


def start_agent(
    tmp_path: Path,
    name: str,
    accounts: list[Json],
    actions: list[Json],
    *,
    deadline: float = 40,
    tone_hz: float = 440,
) -> PjAgentHandle:
    """A pjagent process on a random UDP port, with its tone and recording on."""
    return start_pjagent(
        {
            "deadline": deadline,
            "transports": [{"type": "udp", "port": 0}],
            "media": {"tone_hz": tone_hz, "record": True},
            "accounts": accounts,
            "actions": actions,
        },
        timeout=deadline + 15,
        workdir=tmp_path / name,
        name=name,
    )


def wait_bound(gw: GatewayProcess, agent: PjAgentHandle, users: list[str]) -> None:
    """Wait until the gateway holds a binding of each login pointing at this agent."""
    port = agent.wait_ready()["transports"][0]["port"]

    def bound() -> bool:
        return all(
            any(
                b["contact"].endswith(f":{port}") or f":{port};" in b["contact"]
                for b in gw.http(f"/api/v1/registrations/{user}")["bindings"]
            )
            for user in users
        )

    wait_for(bound, 10, f"registrations of {users} on port {port}")


def outcomes(result: Json) -> list[tuple[str, str]]:
    """(action, outcome) for every scripted action, to compare with all-ok."""
    return [(a["do"], a["outcome"]) for a in result["actions"]]


def assert_all_ok(result: Json, who: str) -> None:
    bad = [(i, do, out) for i, (do, out) in enumerate(outcomes(result)) if out != "ok"]
    assert not bad, f"{who}: actions not ok: {bad}; errors {result['errors']}"


def assert_idle(gw: GatewayProcess) -> None:
    """Nothing left behind: no call, transaction, dialog, relay session or port."""
    status = gw.wait_idle()
    for key in ("calls", "transactions", "dialogs", "media_sessions", "media_ports_in_use"):
        assert status[key] == 0, status


def call_of(result: Json, account_id: str) -> Json:
    """The single incoming call of a station account."""
    return find_call(result, role="incoming", account=account_id)


def dial(gw: GatewayProcess, service: str) -> str:
    return f"sip:{service}@127.0.0.1:{gw.sip_port}"


def records(gw: GatewayProcess) -> list[Json]:
    ended: list[Json] = gw.http("/api/v1/calls")["ended"]
    return ended


# --------------------------------------------------------------------------- mid-call


def test_dtmf_and_hold_resume_cross_the_gateway(gateway_factory: Any, tmp_path: Path) -> None:
    """INFO digits arrive as INFO, RFC 4733 digits as RTP events; hold and resume work.

    The kiosk holds and resumes first (its re-INVITEs cross the gateway as UAS then UAC);
    then the station does (the gateway re-INVITEs the kiosk inside the kiosk's dialog).
    """
    gw: GatewayProcess = gateway_factory(EXAMPLE)
    station = start_agent(
        tmp_path,
        "station",
        [account(gw, "station-caf-1", "station", answer={"mode": "answer", "delay": 0.3})],
        [
            {"do": "wait_registered", "timeout": 10},
            {"do": "wait_incoming", "account": "station", "count": 1, "timeout": 20},
            {"do": "wait_dtmf", "call": "station:in1", "count": 4, "timeout": 20},
            {"do": "wait_media", "call": "station:in1", "status": "REMOTE_HOLD", "timeout": 15},
            {"do": "wait_media", "call": "station:in1", "status": "ACTIVE", "timeout": 15},
            {"do": "dtmf", "call": "station:in1", "digits": "5", "method": "info", "delay": 2.5},
            {"do": "hold", "call": "station:in1", "delay": 0.5},
            {"do": "wait_media", "call": "station:in1", "status": "LOCAL_HOLD", "timeout": 10},
            {"do": "sleep", "seconds": 2.5},
            {"do": "unhold", "call": "station:in1"},
            {"do": "wait_media", "call": "station:in1", "status": "ACTIVE", "timeout": 10},
            {"do": "wait_idle", "min_calls": 1, "timeout": 20},
        ],
        tone_hz=660,
    )
    with station:
        wait_bound(gw, station, ["station-caf-1"])
        kiosk = start_agent(
            tmp_path,
            "kiosk",
            [account(gw, "kiosk-lessay", "kiosk")],
            [
                {"do": "wait_registered", "timeout": 10},
                {"do": "call", "account": "kiosk", "dest": dial(gw, "caf"), "name": "c1"},
                {"do": "wait_state", "call": "c1", "state": "CONFIRMED", "timeout": 15},
                {"do": "dtmf", "call": "c1", "digits": "12", "method": "info", "delay": 1.0},
                {"do": "dtmf", "call": "c1", "digits": "3#", "method": "rfc2833", "delay": 1.0},
                {"do": "hold", "call": "c1", "delay": 1.5},
                {"do": "wait_media", "call": "c1", "status": "LOCAL_HOLD", "timeout": 10},
                {"do": "sleep", "seconds": 2.5},
                {"do": "unhold", "call": "c1"},
                {"do": "wait_media", "call": "c1", "status": "ACTIVE", "timeout": 10},
                {"do": "wait_dtmf", "call": "c1", "count": 1, "timeout": 10},
                {"do": "wait_media", "call": "c1", "status": "REMOTE_HOLD", "timeout": 10},
                {"do": "wait_media", "call": "c1", "status": "ACTIVE", "timeout": 10},
                {"do": "sleep", "seconds": 3.0},
                {"do": "hangup", "call": "c1"},
                {"do": "wait_state", "call": "c1", "state": "DISCONNECTED", "timeout": 10},
            ],
        )
        with kiosk:
            # The relay's packet counters over time, to see the held side's audio stop
            # during each hold and come back after the resume.
            samples: list[tuple[float, int, int]] = []
            while kiosk.proc.poll() is None:
                for live in gw.http("/api/v1/calls")["active"]:
                    media = live["media"]
                    if media and media["streams"]:
                        s = media["streams"][0]
                        samples.append(
                            (time.time(), s["a_to_b"]["rtp_packets"], s["b_to_a"]["rtp_packets"])
                        )
                time.sleep(0.2)
            kiosk_result = kiosk.wait(timeout=5)
        station_result = station.wait(timeout=40)
    assert_idle(gw)

    assert_all_ok(kiosk_result, "kiosk")
    assert_all_ok(station_result, "station")
    out = find_call(kiosk_result, "c1")
    inc = call_of(station_result, "station")

    # DTMF: INFO in, INFO out; RFC 4733 events went through the relay untouched.
    got = [(d["digit"], d["method"]) for d in inc["dtmf_received"]]
    assert got == [("1", "info"), ("2", "info"), ("3", "rfc2833"), ("#", "rfc2833")], got
    got = [(d["digit"], d["method"]) for d in out["dtmf_received"]]
    assert got == [("5", "info")], got

    # Hold then resume from each end, seen from both ends; the call went on to a normal end.
    out_media = [m["status"] for m in out["media"]]
    inc_media = [m["status"] for m in inc["media"]]
    assert out_media == ["ACTIVE", "LOCAL_HOLD", "ACTIVE", "REMOTE_HOLD", "ACTIVE"], out_media
    assert inc_media == ["ACTIVE", "REMOTE_HOLD", "ACTIVE", "LOCAL_HOLD", "ACTIVE"], inc_media
    for call in (out, inc):
        names = state_names(call)
        assert names.count("CONFIRMED") == 1 and names[-1] == "DISCONNECTED", names
    assert out["hung_up_by"] == "local" and inc["hung_up_by"] == "remote"
    for call, count in ((inc, 3), (out, 2)):  # station: call, hold, resume; kiosk: hold, resume
        served = [
            t
            for t in call["tsx"]
            if t["method"] == "INVITE" and t["role"] == "uas" and t["state"] == "COMPLETED"
        ]
        assert len(served) == count, call["tsx"]

    # Audio: the held side (recvonly) falls silent during each hold and speaks again after.
    # The counters are sampled every 0.2 s or more (an HTTP round trip each, slower on a
    # loaded run): the packets between the first and the last sample of a window, and the
    # seconds between those two samples.
    def moved(column: int, start: float, end: float) -> tuple[int, float]:
        window = [(s[0], int(s[column])) for s in samples if start <= s[0] <= end]
        assert len(window) >= 3, (start, end, samples)
        return window[-1][1] - window[0][1], window[-1][0] - window[0][0]

    for result, call, column in ((kiosk_result, out, 2), (station_result, inc, 1)):
        t0 = result["started_at"]
        media = [(m["status"], t0 + m["t"]) for m in call["media"]]
        held_at = next(t for status, t in media if status == "LOCAL_HOLD")
        resumed_at = next(t for status, t in media if status == "ACTIVE" and t > held_at)
        packets, _ = moved(column, held_at + 0.6, resumed_at - 0.1)
        assert packets < 10, (column, samples)
        # 20 ms frames are 50 packets a second; more than half of that rate, over the time
        # the samples really span, counts as speaking again (a fixed count of more than 50
        # in the window failed a five-worker run with 42; how far apart its samples were
        # was not kept)
        packets, seconds = moved(column, resumed_at + 0.5, resumed_at + 2.0)
        assert packets > 25 * seconds, (column, packets, seconds, samples)
    assert out["recording"]["rms_active"] > 0 and inc["recording"]["rms_active"] > 0

    record = records(gw)[-1]
    assert record["outcome"] == "completed" and record["station"] == "caf-1", record


# --------------------------------------------------------------------------- refusals


def test_refusals_cancel_and_ring_timeout(gateway_factory: Any, tmp_path: Path) -> None:
    """403, 404, 480 with Reason, kiosk CANCELs, stations ringing past the timeout, hunting.

    MSA and URSSAF run without a queue here: a station that rings out ends the call with
    480 (with a queue the caller would wait for the next offer, see test_queue_presence).
    """
    plan = dialplan_variant(
        tmp_path,
        EXAMPLE,
        "no-queue",
        [
            (
                "    name: Mutualité sociale agricole Côtes Normandes\n",
                "    name: Mutualité sociale agricole Côtes Normandes\n"
                "    queue: {max_length: 0}\n",
            ),
            (
                "    name: URSSAF de Basse-Normandie\n",
                "    name: URSSAF de Basse-Normandie\n    queue: {max_length: 0}\n",
            ),
        ],
    )
    gw: GatewayProcess = gateway_factory(plan, extra=["--ring-timeout", "3"])
    capture = start_capture(tmp_path / "refusals.pcapng", [gw.sip_port])
    ringing = {"mode": "ignore", "ringing": 180}
    silent = {"mode": "ignore", "ringing": 0}
    answers = {"mode": "answer", "delay": 0.3, "ringing": 180}
    stations = start_agent(
        tmp_path,
        "stations",
        [
            account(gw, "station-caf-1", "station", answer=ringing, id="caf1"),
            account(gw, "station-caf-2", "station", answer=answers, id="caf2", hangup_after=1.0),
            account(gw, "station-msa-1", "station", answer=ringing, id="msa1"),
            # Says 100 Trying and nothing more: a CANCEL is due after that too (RFC 3261 9.1).
            account(gw, "station-urssaf-1", "station", answer=silent, id="urssaf1"),
        ],
        [
            {"do": "wait_registered", "timeout": 10},
            {"do": "wait_incoming", "count": 6, "timeout": 40},
            {"do": "wait_idle", "min_calls": 6, "timeout": 15},
        ],
        deadline=60,
    )
    with stations:
        wait_bound(
            gw, stations, ["station-caf-1", "station-caf-2", "station-msa-1", "station-urssaf-1"]
        )
        kiosks = start_agent(
            tmp_path,
            "kiosks",
            [
                account(gw, "kiosk-gavray", "kiosk", id="gavray"),
                account(gw, "kiosk-lessay", "kiosk", id="lessay"),
            ],
            [
                {"do": "wait_registered", "timeout": 10},
                # Gavray does not offer URSSAF.
                {"do": "call", "account": "gavray", "dest": dial(gw, "urssaf"), "name": "fb"},
                {"do": "wait_state", "call": "fb", "state": "DISCONNECTED", "timeout": 10},
                # No such service.
                {"do": "call", "account": "lessay", "dest": dial(gw, "impots"), "name": "nf"},
                {"do": "wait_state", "call": "nf", "state": "DISCONNECTED", "timeout": 10},
                # CPAM has no station registered.
                {"do": "call", "account": "lessay", "dest": dial(gw, "cpam"), "name": "na"},
                {"do": "wait_state", "call": "na", "state": "DISCONNECTED", "timeout": 10},
                # The kiosk gives up while CAF's station rings.
                {"do": "call", "account": "lessay", "dest": dial(gw, "caf"), "name": "cx"},
                {"do": "wait_state", "call": "cx", "state": "EARLY", "timeout": 10},
                {"do": "hangup", "call": "cx", "delay": 1.0},
                {"do": "wait_state", "call": "cx", "state": "DISCONNECTED", "timeout": 10},
                # ... and while URSSAF's station has said nothing but 100 Trying.
                {"do": "call", "account": "lessay", "dest": dial(gw, "urssaf"), "name": "cs"},
                {"do": "hangup", "call": "cs", "delay": 1.0},
                {"do": "wait_state", "call": "cs", "state": "DISCONNECTED", "timeout": 10},
                # MSA's station rings and never answers: the 3 s ring timeout ends it.
                {"do": "call", "account": "lessay", "dest": dial(gw, "msa"), "name": "rt"},
                {"do": "wait_state", "call": "rt", "state": "DISCONNECTED", "timeout": 15},
                # URSSAF's station never even rings: the ring timeout CANCELs it all the same.
                {"do": "call", "account": "lessay", "dest": dial(gw, "urssaf"), "name": "rs"},
                {"do": "wait_state", "call": "rs", "state": "DISCONNECTED", "timeout": 15},
                # caf-1 rings past the timeout: the call moves on to caf-2, which answers.
                {"do": "call", "account": "lessay", "dest": dial(gw, "caf"), "name": "hn"},
                {"do": "wait_state", "call": "hn", "state": "CONFIRMED", "timeout": 15},
                {"do": "wait_state", "call": "hn", "state": "DISCONNECTED", "timeout": 10},
            ],
            deadline=60,
        )
        with kiosks:
            kiosk_result = kiosks.wait()
        station_result = stations.wait(timeout=30)
    assert_idle(gw)
    capture.stop()

    assert_all_ok(kiosk_result, "kiosks")
    assert_all_ok(station_result, "stations")
    for name, code in (("fb", 403), ("nf", 404), ("na", 480), ("rt", 480), ("rs", 480)):
        call = find_call(kiosk_result, name)
        assert call["last_status"] == code and call["responses"][-1] == code, (name, call)
        assert "CONFIRMED" not in state_names(call), (name, state_names(call))

    # The kiosk's CANCELs: it saw its INVITEs end with 487.
    for name in ("cx", "cs"):
        call = find_call(kiosk_result, name)
        assert call["last_status"] == 487 and call["hung_up_by"] == "local", call["states"]
    assert "EARLY" in state_names(find_call(kiosk_result, "cx"))

    # The ring timeouts: the kiosk got 480 about 3 s after calling.
    for name in ("rt", "rs"):
        call = find_call(kiosk_result, name)
        elapsed = call["disconnected_at"] - call["states"][0]["t"]
        assert 2.8 <= elapsed <= 6.0, (name, call["states"])

    # Hunting on no answer: caf-1 rang 3 s, then caf-2 took the call.
    hn = find_call(kiosk_result, "hn")
    assert hn["confirmed_at"] - hn["states"][0]["t"] >= 2.8, hn["states"]
    assert hn["hung_up_by"] == "remote", hn["states"]
    caf2 = call_of(station_result, "caf2")
    assert caf2["confirmed_at"] is not None and caf2["hung_up_by"] == "local", caf2["states"]

    # Every other station call, ringing or silent, was CANCELled by the gateway (487).
    station_calls = [c for c in station_result["calls"] if c["account"] != "caf2"]
    assert sorted(c["name"] for c in station_calls) == [
        "caf1:in1",
        "caf1:in2",
        "msa1:in1",
        "urssaf1:in1",
        "urssaf1:in2",
    ], station_calls
    for call in station_calls:
        assert state_names(call)[-1] == "DISCONNECTED", (call["name"], call["states"])
        assert call["last_status"] == 487, (call["name"], call["states"])
        assert call["hung_up_by"] == "remote" and call["confirmed_at"] is None, call["name"]

    # On the wire: each 480 carries a Q.850 Reason; one CANCEL per station call.
    rows = capture.fields(
        f"sip.Status-Code == 480 && udp.srcport == {gw.sip_port}", "sip.reason_cause_q850"
    )
    assert len(rows) >= 3 and all(row[0].strip() for row in rows), rows
    cancels = capture.fields(f"sip.Method == CANCEL && udp.srcport == {gw.sip_port}", "sip.Call-ID")
    assert len({row[0] for row in cancels}) == 5, cancels
    assert capture.problems() == []

    # Every attempt leaves a record, the ones refused before routing (403, 404) too.
    # The gateway's own refusals name their reason; the causes map to the 403/404/480 above.
    ended = [(r["service"], r["outcome"], r["refusal"], r["cause"]) for r in records(gw)]
    assert ended == [
        ("urssaf", "forbidden", "not_offered", 21),
        ("impots", "not_found", "unknown_service", 3),
        ("cpam", "unavailable", "no_station", 20),
        ("caf", "abandoned", None, 16),
        ("urssaf", "abandoned", None, 16),
        ("msa", "unavailable", "no_answer", 19),
        ("urssaf", "unavailable", "no_answer", 19),
        ("caf", "completed", None, 16),
    ], ended
    stations_seen = [r["station"] for r in records(gw)]
    assert stations_seen[:2] == [None, None]
    assert stations_seen[3:5] == ["caf-1", "urssaf-1"] and stations_seen[-1] == "caf-2"


# --------------------------------------------------------------------------- busy and hunting


def test_busy_station_hunting_and_one_call_per_station(
    gateway_factory: Any, tmp_path: Path
) -> None:
    """caf-1 busy hands over to caf-2; both busy gives 486; a busy one-station partner 486.

    CAF and MSA run without a queue here (``max_length: 0``) and without wrap-up, so a
    busy partner answers 486 at once; with a queue the caller waits instead (see
    test_queue_presence.py).
    """
    plan = dialplan_variant(
        tmp_path,
        EXAMPLE,
        "no-queue",
        [
            ("    wrap_up: 30                        # seconds", "    wrap_up: 0  # seconds"),
            ("      max_length: 5 ", "      max_length: 0 "),
            (
                "    name: Mutualité sociale agricole Côtes Normandes\n",
                "    name: Mutualité sociale agricole Côtes Normandes\n"
                "    queue: {max_length: 0}\n",
            ),
        ],
    )
    gw: GatewayProcess = gateway_factory(plan)
    busy = {"mode": "reject", "code": 486}
    answers = {"mode": "answer", "delay": 0.3, "ringing": 180}

    # Round 1: caf-1 answers 486, the gateway hunts on to caf-2, which answers.
    stations = start_agent(
        tmp_path,
        "stations1",
        [
            account(gw, "station-caf-1", "station", answer=busy, id="caf1"),
            account(gw, "station-caf-2", "station", answer=answers, id="caf2", hangup_after=2.0),
        ],
        [
            {"do": "wait_registered", "timeout": 10},
            {"do": "wait_incoming", "count": 2, "timeout": 20},
            {"do": "wait_idle", "min_calls": 2, "timeout": 15},
        ],
    )
    with stations:
        wait_bound(gw, stations, ["station-caf-1", "station-caf-2"])
        kiosk = start_agent(
            tmp_path,
            "kiosk1",
            [account(gw, "kiosk-lessay", "kiosk")],
            [
                {"do": "wait_registered", "timeout": 10},
                {"do": "call", "account": "kiosk", "dest": dial(gw, "caf"), "name": "hunt"},
                {"do": "wait_state", "call": "hunt", "state": "CONFIRMED", "timeout": 15},
                {"do": "wait_state", "call": "hunt", "state": "DISCONNECTED", "timeout": 10},
            ],
        )
        with kiosk:
            hunt_result = kiosk.wait()
        round1 = stations.wait(timeout=30)
    assert_all_ok(hunt_result, "kiosk round 1")
    assert_all_ok(round1, "stations round 1")
    hunt = find_call(hunt_result, "hunt")
    assert "CONFIRMED" in state_names(hunt) and hunt["hung_up_by"] == "remote", hunt["states"]
    assert 486 not in hunt["responses"], hunt["responses"]  # the busy station stayed hidden
    caf1 = call_of(round1, "caf1")
    assert caf1["last_status"] == 486 and caf1["confirmed_at"] is None, caf1["states"]
    caf2 = call_of(round1, "caf2")
    assert caf2["confirmed_at"] is not None and caf2["hung_up_by"] == "local", caf2["states"]
    record = records(gw)[-1]
    assert record["service"] == "caf" and record["station"] == "caf-2", record
    assert record["outcome"] == "completed", record

    # Round 2: both CAF stations busy -> 486; MSA's only station in a call -> 486.
    # caf-1 refused in round 1: the desk leaves a refusing station alone for 5 s.
    time.sleep(5.5)
    stations = start_agent(
        tmp_path,
        "stations2",
        [
            account(gw, "station-caf-1", "station", answer=busy, id="caf1"),
            account(gw, "station-caf-2", "station", answer=busy, id="caf2"),
            account(gw, "station-msa-1", "station", answer=answers, id="msa1"),
        ],
        [
            {"do": "wait_registered", "timeout": 10},
            {"do": "wait_incoming", "count": 3, "timeout": 20},
            {"do": "wait_idle", "min_calls": 3, "timeout": 20},
        ],
    )
    with stations:
        wait_bound(gw, stations, ["station-caf-1", "station-caf-2", "station-msa-1"])
        kiosks = start_agent(
            tmp_path,
            "kiosks2",
            [
                account(gw, "kiosk-lessay", "kiosk", id="lessay"),
                account(gw, "kiosk-carentan", "kiosk", id="carentan"),
            ],
            [
                {"do": "wait_registered", "timeout": 10},
                {"do": "call", "account": "lessay", "dest": dial(gw, "caf"), "name": "busy"},
                {"do": "wait_state", "call": "busy", "state": "DISCONNECTED", "timeout": 10},
                {"do": "call", "account": "lessay", "dest": dial(gw, "msa"), "name": "first"},
                {"do": "wait_state", "call": "first", "state": "CONFIRMED", "timeout": 10},
                {"do": "call", "account": "carentan", "dest": dial(gw, "msa"), "name": "second"},
                {"do": "wait_state", "call": "second", "state": "DISCONNECTED", "timeout": 10},
                {"do": "hangup", "call": "first", "delay": 1.0},
                {"do": "wait_state", "call": "first", "state": "DISCONNECTED", "timeout": 10},
            ],
        )
        with kiosks:
            round2_kiosks = kiosks.wait()
        round2 = stations.wait(timeout=30)
    assert_idle(gw)

    assert_all_ok(round2_kiosks, "kiosks round 2")
    assert_all_ok(round2, "stations round 2")
    busy_call = find_call(round2_kiosks, "busy")
    assert busy_call["last_status"] == 486 and busy_call["responses"][-1] == 486, busy_call
    for acc in ("caf1", "caf2"):
        call = call_of(round2, acc)
        assert call["last_status"] == 486 and call["confirmed_at"] is None, (acc, call["states"])
    first = find_call(round2_kiosks, "first")
    assert "CONFIRMED" in state_names(first) and first["hung_up_by"] == "local", first["states"]
    second = find_call(round2_kiosks, "second")
    assert second["last_status"] == 486 and second["responses"][-1] == 486, second
    # The second caller never reached the station: it had exactly one call.
    assert round2["accounts"]["msa1"]["incoming"] == ["msa1:in1"], round2["accounts"]["msa1"]

    ended = records(gw)[-3:]
    # Busy is cause 17 whichever protocol said it (486 here): the kiosks got 486 above.
    assert [(r["service"], r["outcome"], r["cause"]) for r in ended] == [
        ("caf", "busy", 17),
        ("msa", "busy", 17),
        ("msa", "completed", 16),
    ], ended
    assert ended[1]["kiosk"] == "carentan" and ended[2]["station"] == "msa-1", ended
