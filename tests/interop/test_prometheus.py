"""Acceptance: a real Prometheus scrapes a gateway carrying SIPp and pjsua2 calls, and
every expression of the Grafana dashboards (deploy/grafana) returns data through its
HTTP API; ``promtool check metrics`` finds nothing wrong with ``/metrics``."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from harness import ROOT, GatewayProcess, free_port, loadtest_variant, sipp_station, wait_for
from peers import find_call, start_pjagent

pytestmark = pytest.mark.interop

DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "visio-relais.json"
# A one-station partner with a queue, beside the load test's SIPp partner.
MSA = """
  - id: msa
    name: MSA Côtes Normandes
    wrap_up: 0
    queue: {max_length: 3}
    stations:
      - {id: msa-1, address: "127.0.0.1:STATION", keepalive: 0}
"""


def prometheus_binary() -> str:
    found = shutil.which("prometheus")
    assert found, "Debian's prometheus is missing: scripts/install --test installs it"
    return found


class Prometheus:
    """A Prometheus on loopback scraping one gateway every second."""

    def __init__(self, workdir: Path, target_port: int) -> None:
        self.port = free_port()
        config = workdir / "prometheus.yml"
        config.write_text(
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            "scrape_configs:\n"
            "  - job_name: visio-relais\n"
            f"    static_configs: [{{targets: ['127.0.0.1:{target_port}']}}]\n"
        )
        self.log = (workdir / "prometheus.log").open("wb")
        self.proc = subprocess.Popen(
            [
                prometheus_binary(),
                f"--config.file={config}",
                f"--storage.tsdb.path={workdir / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def api(self, path: str, **params: str) -> Any:
        query = urllib.parse.urlencode(params)
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}?{query}"
        with urllib.request.urlopen(url, timeout=10) as resp:
            body = json.loads(resp.read())
        assert body["status"] == "success", body
        return body["data"]

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=2):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


@pytest.fixture
def prometheus_for(tmp_path: Path) -> Iterator[Any]:
    started: list[Prometheus] = []

    def start(port: int) -> Prometheus:
        prom = Prometheus(tmp_path, port)
        started.append(prom)
        wait_for(prom.ready, 30, "Prometheus ready")
        return prom

    yield start
    for prom in started:
        prom.stop()


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, expression) of every target of every panel, rows included."""
    board = json.loads(DASHBOARD.read_text())
    found: list[tuple[str, str]] = []

    def walk(panels: list[dict[str, Any]]) -> None:
        for panel in panels:
            for target in panel.get("targets") or []:
                found.append((panel["title"], target["expr"]))
            walk(panel.get("panels") or [])

    walk(board["panels"])
    return found


def concrete(expr: str, partner: str) -> str:
    """Grafana's variables and macros as the dashboard would send them."""
    for name, value in (
        ("$__rate_interval", "1m"),
        ("$__range", "10m"),
        ('partner="$partner"', f'partner="{partner}"'),
        ("$partner", ".*"),
        ("$site", ".*"),
    ):
        expr = expr.replace(name, value)
    assert "$" not in expr, expr
    return expr


def sipp_calls(gw: GatewayProcess, tmp_path: Path, count: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            "sipp", "-sn", "uac", "-s", "bench", f"127.0.0.1:{gw.sip_port}",
            "-i", "127.0.0.1", "-p", str(free_port()), "-r", "10", "-m", str(count),
            "-nostdin", "-recv_timeout", "10000", "-timeout", "60s", "-timeout_error",
        ],
        capture_output=True, text=True, timeout=90, cwd=tmp_path,
    )  # fmt: skip


def test_prometheus_scrapes_the_gateway_and_every_dashboard_query_has_data(
    gateway_factory: Any, prometheus_for: Any, tmp_path: Path
) -> None:
    build = subprocess.run(
        [sys.executable, str(ROOT / "deploy" / "grafana" / "build.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert build.returncode == 0, build.stderr  # the JSON is what the code builds

    uas_port, station_port = free_port(), free_port()
    plan = loadtest_variant(
        tmp_path,
        "prom",
        uas_port,
        [
            ("services: [bench]", "services: [bench, msa]"),
            (
                '  - {name: bench, number: "9999", partner: bench, label: "Banc de charge"}\n',
                '  - {name: bench, number: "9999", partner: bench, label: "Banc de charge"}\n'
                '  - {name: msa, number: "3000", partner: msa}\n',
            ),
            ("partners:\n", "partners:\n" + MSA.replace("STATION", str(station_port))),
        ],
    )
    gw: GatewayProcess = gateway_factory(plan)
    prom = prometheus_for(gw.http_port)

    with sipp_station(uas_port, tmp_path):  # the bench service's station
        station = start_pjagent(
            {
                "deadline": 60,
                "transports": [{"type": "udp", "port": station_port}],
                "accounts": [
                    {
                        "id": "station",
                        "uri": f"sip:msa-1@127.0.0.1:{station_port}",
                        "register": False,
                        "role": "station",
                        "answer": {"mode": "answer", "delay": 0.3},
                    }
                ],
                "actions": [
                    {"do": "wait_incoming", "account": "station", "count": 2, "timeout": 40},
                    {"do": "wait_idle", "min_calls": 2, "timeout": 40},
                ],
            },
            workdir=tmp_path / "station",
            name="station",
        )
        msa, nosuch = (f"sip:{user}@127.0.0.1:{gw.sip_port}" for user in ("msa", "nosuch"))
        kiosk = start_pjagent(
            {
                "deadline": 60,
                "transports": [{"type": "udp", "port": 0}],
                "accounts": [{"id": "kiosk", "uri": "sip:bench-uac@127.0.0.1", "register": False}],
                "actions": [
                    {"do": "call", "account": "kiosk", "dest": msa, "name": "a"},
                    {"do": "wait_state", "call": "a", "state": "CONFIRMED", "timeout": 15},
                    {"do": "call", "account": "kiosk", "dest": msa, "name": "b"},
                    {"do": "wait_state", "call": "b", "state": "EARLY", "timeout": 10},
                    {"do": "call", "account": "kiosk", "dest": msa, "name": "c"},
                    {"do": "wait_state", "call": "c", "state": "EARLY", "timeout": 10},
                    {"do": "sleep", "seconds": 2},
                    {"do": "hangup", "call": "b"},  # gives up in the queue
                    {"do": "sleep", "seconds": 1},
                    {"do": "hangup", "call": "a"},
                    {"do": "wait_state", "call": "c", "state": "CONFIRMED", "timeout": 15},
                    {"do": "sleep", "seconds": 2},
                    {"do": "hangup", "call": "c"},
                    {"do": "call", "account": "kiosk", "dest": nosuch, "name": "d"},
                    {"do": "wait_state", "call": "d", "state": "DISCONNECTED", "timeout": 10},
                ],
            },
            workdir=tmp_path / "kiosk",
            name="kiosk",
        )  # fmt: skip
        with station, kiosk:
            load = sipp_calls(gw, tmp_path, 30)
            assert load.returncode == 0, load.stderr[-2000:]
            k = kiosk.wait(timeout=70)
            station.wait(timeout=70)
    assert find_call(k, "b")["states"][-1]["state"] == "DISCONNECTED"
    assert find_call(k, "d")["last_status"] == 404
    gw.wait_idle()

    # promtool reads the exposition as Prometheus would and finds no problem.
    exposition = gw.http("/metrics")
    lint = subprocess.run(
        ["promtool", "check", "metrics"], input=exposition, capture_output=True, text=True
    )
    assert lint.returncode == 0 and not lint.stdout.strip(), lint.stdout + lint.stderr

    # Every series the dashboards read has been scraped at least twice since the calls.
    def scraped() -> bool:
        result = prom.api("query", query='increase(vrgw_calls_total{outcome="abandoned"}[1m])')
        return bool(result["result"])

    wait_for(scraped, 30, "Prometheus to scrape the calls")
    time.sleep(2)

    # The variables' choices, then every expression with them filled in as Grafana does.
    partners = prom.api("label/partner/values", **{"match[]": "vrgw_queue_length"})
    assert sorted(partners) == ["bench", "msa"], partners
    sites = prom.api("label/site/values", **{"match[]": "vrgw_calls_total"})
    assert sites == ["SIPp load generator"], sites
    queries = dashboard_queries()
    assert len(queries) >= 20, queries

    # A scrape that fails (its timeout is the 1 s interval: a loaded run's gateway can be
    # slower) marks every series stale until the next one, and a query of a gauge at an
    # instant finds nothing meanwhile (a ten-worker run failed so, and so does a gateway
    # stopped for 2.5 s with SIGSTOP): such a query is asked again, for up to 15 s; one
    # that never has data still fails.
    def instant(expr: str) -> list[Any]:
        deadline = time.monotonic() + 15
        while not (result := prom.api("query", query=expr)["result"]):
            if time.monotonic() > deadline:
                break
            time.sleep(0.5)
        return list(result)

    empty = [f"{t}: {e}" for t, e in queries if not instant(concrete(e, "msa"))]
    assert not empty, "queries without data:\n" + "\n".join(empty)
    # Figures the run fixes, read back through Prometheus.
    by_outcome = {
        r["metric"]["outcome"]: round(float(r["value"][1]))
        for r in instant("sum by (outcome) (vrgw_calls_total)")
    }
    assert by_outcome == {"completed": 32, "abandoned": 1, "not_found": 1}, by_outcome
    assert gw.metric("vrgw_queue_wait_seconds_count", partner="msa", outcome="abandoned") == 1
    answered = gw.metric(
        "vrgw_sip_transactions_completed_total", role="server", method="INVITE", status="200"
    )
    assert answered is not None and answered >= 32, answered  # SIPp's 30, pjsua2's 2
    legs = {
        side: gw.metric("vrgw_call_legs_total", side=side, protocol="sip")
        for side in ("kiosk", "station")
    }
    # 34 calls; the one to an unknown service and the one abandoned in the queue reached
    # no station
    assert legs == {"kiosk": 34, "station": 32}, legs
    assert gw.metric("vrgw_registrations", protocol="sip") == 0  # static stations only
    assert gw.metric("vrgw_registrations", protocol="h323") == 0
    assert gw.metric("vrgw_state_store_up") == 1
