"""Log lines: text or JSON, the call id on every line of a call, no secret and no typed
allocataire number, even at DEBUG with real peers."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from harness import ROOT, GatewayProcess
from peers import find_call
from test_b2bua_features import assert_all_ok, dial, start_agent, wait_bound
from test_pjsua_call import EXAMPLE, account

from gateway.logs import CallIdFilter, JsonFormatter, TextFormatter, call_context, configure


def record(message: str, *args: object) -> logging.LogRecord:
    rec = logging.LogRecord("gateway.test", logging.INFO, __file__, 1, message, args, None)
    CallIdFilter().filter(rec)
    return rec


def test_the_call_id_follows_the_context_into_timers_and_tasks() -> None:
    seen: list[str | None] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        done = loop.create_future()

        def note() -> None:
            seen.append(record("x").call_id)  # type: ignore[attr-defined]

        async def step() -> None:
            note()

        with call_context("6b1-7"):
            note()
            loop.call_later(0.01, lambda: (note(), done.set_result(None)))
            task = loop.create_task(step())
        note()  # outside: none
        await task
        await done

    asyncio.run(main())
    assert seen == ["6b1-7", None, "6b1-7", "6b1-7"]


def test_text_and_json_lines() -> None:
    with call_context("6b1-9"):
        inside = record("station %s rings", "caf-1")
        named = record("6b1-9: ended (completed)")
    outside = record("SIP on %d", 5060)
    text = TextFormatter()
    assert text.format(inside).endswith("INFO gateway.test: 6b1-9: station caf-1 rings")
    assert text.format(named).endswith("gateway.test: 6b1-9: ended (completed)")  # not twice
    assert text.format(outside).endswith("gateway.test: SIP on 5060")
    line = json.loads(JsonFormatter().format(inside))
    assert line["call_id"] == "6b1-9" and line["message"] == "station caf-1 rings"
    assert line["level"] == "INFO" and line["logger"] == "gateway.test"
    assert line["time"].endswith("+00:00")
    assert "call_id" not in json.loads(JsonFormatter().format(outside))


def test_configured_lines_skip_the_caller_thread_and_process_lookups(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """No format shows them: configure() turns the lookups off (the logging HOWTO's
    "Optimization"), and the line reads as before."""
    for name in ("_srcfile", "logThreads", "logProcesses", "logMultiprocessing"):
        monkeypatch.setattr(logging, name, getattr(logging, name))  # restored afterwards
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [])
    monkeypatch.setattr(root, "level", root.level)
    seen: list[logging.LogRecord] = []
    configure("info", "text")
    root.handlers[0].addFilter(lambda rec: seen.append(rec) or True)
    with call_context("6b1-11"):
        logging.getLogger("gateway.test").info("station %s rings", "caf-1")
    assert capsys.readouterr().err.endswith("INFO gateway.test: 6b1-11: station caf-1 rings\n")
    (rec,) = seen
    assert (rec.funcName, rec.lineno, rec.thread, rec.process) == (
        "(unknown function)",
        0,
        None,
        None,
    )


def secrets_of_example() -> list[str]:
    lines = (ROOT / "dialplans" / "example.secrets").read_text().splitlines()
    return [ln.split(":", 1)[1].strip() for ln in lines if ln and not ln.startswith("#")]


@pytest.mark.interop
def test_json_debug_log_of_a_call_has_its_id_and_nothing_secret(
    gateway_factory: Any, tmp_path: Path
) -> None:
    gw: GatewayProcess = gateway_factory(
        EXAMPLE, extra=["--log-format", "json", "--log-level", "DEBUG"]
    )
    station = start_agent(
        tmp_path,
        "station",
        [account(gw, "station-caf-1", "station", answer={"mode": "answer", "delay": 0.2})],
        [{"do": "wait_registered"}, {"do": "wait_idle", "min_calls": 1, "timeout": 30}],
    )
    wait_bound(gw, station, ["station-caf-1"])
    typed = "allocataire=7654321"
    kiosk = start_agent(
        tmp_path,
        "kiosk",
        [account(gw, "kiosk-lessay", "kiosk")],
        [
            {"do": "wait_registered"},
            {
                "do": "call",
                "account": "kiosk",
                "dest": dial(gw, "caf"),
                "name": "c1",
                "headers": {"X-Visio-Context": typed},
            },
            {"do": "wait_state", "call": "c1", "state": "CONFIRMED", "timeout": 15},
            {"do": "hangup", "call": "c1", "after": 1.0},
            {"do": "wait_state", "call": "c1", "state": "DISCONNECTED", "timeout": 10},
        ],
    )
    k = kiosk.wait(40)
    s = station.wait(40)
    assert_all_ok(k, "kiosk")
    assert_all_ok(s, "station")
    assert typed in find_call(s, role="incoming")["invite"]  # it did cross the gateway

    lines = [json.loads(line) for line in gw.log().splitlines() if line.startswith("{")]
    assert len(lines) > 20 and all({"time", "level", "logger", "message"} <= set(x) for x in lines)
    started = next(x for x in lines if "calls caf" in x["message"])
    call_id = started["call_id"]
    mine = [x for x in lines if x.get("call_id") == call_id]
    assert any("ended (completed" in x["message"] for x in mine), mine
    assert {x["logger"] for x in mine} > {"gateway.call.b2bua"}, mine  # legs' lines too
    text = gw.log()
    assert "7654321" not in text
    for secret in secrets_of_example():
        assert secret not in text
