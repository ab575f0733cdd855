"""Acceptance: a dialplan reload while a call is up and a caller waits keeps both; a
broken dialplan is refused with file, line and reason, and the running one serves on."""

from __future__ import annotations

import urllib.error
from pathlib import Path
from typing import Any

import pytest
from harness import GatewayProcess, wait_for
from peers import find_call
from test_b2bua_features import assert_all_ok, assert_idle, dial, start_agent, wait_bound
from test_pjsua_call import account
from test_queue_presence import MSA_PARTNER, kiosk, variant

pytestmark = pytest.mark.interop


def reload(gw: GatewayProcess) -> tuple[int, str]:
    try:
        return 200, str(gw.http("/api/v1/reload", method="POST"))
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def one_station_msa(
    gateway_factory: Any, tmp_path: Path, name: str, *, calls: int
) -> tuple[GatewayProcess, Any]:
    """The example dialplan with MSA queueing behind its one pjsua2 station, which
    registers and answers ``calls`` calls; the gateway and the station's agent."""
    plan = variant(
        tmp_path,
        name,
        [(MSA_PARTNER, MSA_PARTNER + "    wrap_up: 0\n    queue: {max_length: 3}\n")],
    )
    gw: GatewayProcess = gateway_factory(plan)
    station = start_agent(
        tmp_path,
        "station",
        [account(gw, "station-msa-1", "station", answer={"mode": "answer", "delay": 0.3})],
        [
            {"do": "wait_registered"},
            {"do": "wait_idle", "min_calls": calls, "timeout": 60},
        ],
        deadline=70,
    )
    wait_bound(gw, station, ["station-msa-1"])
    return gw, station


def test_reloads_keep_the_call_up_and_the_caller_waiting(
    gateway_factory: Any, tmp_path: Path
) -> None:
    gw, station = one_station_msa(gateway_factory, tmp_path, "live", calls=2)
    plan = gw.dialplan
    kiosks = start_agent(
        tmp_path,
        "kiosks",
        [kiosk(gw, "kiosk-lessay", "a"), kiosk(gw, "kiosk-carentan", "b")],
        [
            {"do": "wait_registered"},
            {"do": "call", "account": "a", "dest": dial(gw, "msa"), "name": "a"},
            {"do": "wait_state", "call": "a", "state": "CONFIRMED", "timeout": 10},
            {"do": "call", "account": "b", "dest": dial(gw, "msa"), "name": "b"},
            {"do": "wait_state", "call": "b", "state": "EARLY", "timeout": 10},
            # the test reloads here, twice, while A talks and B waits
            {"do": "sleep", "seconds": 8},
            {"do": "hangup", "call": "a"},
            {"do": "wait_state", "call": "b", "state": "CONFIRMED", "timeout": 15},
            {"do": "sleep", "seconds": 2},
            {"do": "hangup", "call": "b"},
            {"do": "wait_state", "call": "b", "state": "DISCONNECTED", "timeout": 10},
        ],
        deadline=70,
    )
    with kiosks:
        wait_for(lambda: gw.http("/api/v1/queues")["queues"]["msa"]["waiting"], 15, "B queued")
        good = plan.read_text()
        # A broken dialplan (a service naming no partner): refused, the running one stays.
        plan.write_text(good.replace("partner: msa", "partner: msaa", 1))
        line = next(i for i, ln in enumerate(plan.read_text().splitlines(), 1) if "msaa" in ln)
        code, detail = reload(gw)
        assert code == 422 and f"{plan}:{line}:" in detail and "msaa" in detail, detail
        # A good one (a kiosk renamed elsewhere): taken, and nothing in flight is lost.
        plan.write_text(good.replace("  - id: conde-sur-vire", "  - id: conde-sur-vire-2", 1))
        assert reload(gw)[0] == 200
        live = gw.http("/api/v1/calls")["active"]
        assert sorted(c["state"] for c in live) == ["connected", "queued"], live
        k = kiosks.wait(60)
    s = station.wait(60)
    assert_all_ok(k, "kiosks")
    assert_all_ok(s, "station")
    a, b = find_call(k, "a"), find_call(k, "b")
    assert a["hung_up_by"] == "local" and b["hung_up_by"] == "local"
    assert b["responses"][-1] == 200 and b["confirmed_at"] > a["disconnected_at"]
    ended = {r["kiosk"]: r for r in gw.http("/api/v1/calls")["ended"]}
    assert ended["lessay"]["outcome"] == "completed"
    assert ended["carentan"]["outcome"] == "completed" and ended["carentan"]["queued"]
    assert_idle(gw)


def test_an_operator_removes_a_waiting_caller_and_ends_a_call(
    gateway_factory: Any, tmp_path: Path
) -> None:
    """DELETE on a queued caller and on a connected call, with real pjsua2 peers: the
    waiting kiosk is refused, the connected ones get a BYE with Q.850 cause 16."""
    gw, station = one_station_msa(gateway_factory, tmp_path, "ops", calls=1)
    kiosks = start_agent(
        tmp_path,
        "kiosks",
        [kiosk(gw, "kiosk-lessay", "a"), kiosk(gw, "kiosk-carentan", "b")],
        [
            {"do": "wait_registered"},
            {"do": "call", "account": "a", "dest": dial(gw, "msa"), "name": "a"},
            {"do": "wait_state", "call": "a", "state": "CONFIRMED", "timeout": 10},
            {"do": "call", "account": "b", "dest": dial(gw, "msa"), "name": "b"},
            {"do": "wait_state", "call": "b", "state": "DISCONNECTED", "timeout": 20},
            {"do": "wait_state", "call": "a", "state": "DISCONNECTED", "timeout": 20},
        ],
        deadline=50,
    )
    with kiosks:
        waiting = wait_for(
            lambda: gw.http("/api/v1/queues")["queues"]["msa"]["waiting"], 15, "B queued"
        )
        queued_id = waiting[0]["call"]
        assert delete_status(gw, f"/api/v1/queues/caf/{queued_id}") == 404  # not caf's
        assert gw.http(f"/api/v1/queues/msa/{queued_id}", method="DELETE")["removed"] == queued_id
        live = wait_for(lambda: gw.http("/api/v1/calls")["active"], 5, "the connected call")
        assert [c["state"] for c in live] == ["connected"], live
        assert gw.http(f"/api/v1/calls/{live[0]['id']}", method="DELETE")["ended"]
        assert delete_status(gw, f"/api/v1/calls/{live[0]['id']}") == 404  # gone
        k = kiosks.wait(40)
    s = station.wait(40)
    assert_all_ok(k, "kiosks")
    assert_all_ok(s, "station")
    a, b = find_call(k, "a"), find_call(k, "b")
    assert a["hung_up_by"] == "remote" and b["hung_up_by"] == "remote"
    assert 200 not in b["responses"], b["responses"]  # refused while waiting, never answered
    assert find_call(s, role="incoming")["hung_up_by"] == "remote"
    ended = {r["kiosk"]: r["outcome"] for r in gw.http("/api/v1/calls")["ended"]}
    assert ended == {"lessay": "completed", "carentan": "failed"}, ended
    assert_idle(gw)


def delete_status(gw: GatewayProcess, path: str) -> int:
    try:
        gw.http(path, method="DELETE")
    except urllib.error.HTTPError as exc:
        return exc.code
    return 200
