"""Grafana dashboards as code for the visio-relais gateway, built with the Grafana
Foundation SDK and written as JSON beside Grafana's provisioning files.

    .venv/bin/python deploy/grafana/build.py           # (re)write dashboards/*.json
    .venv/bin/python deploy/grafana/build.py --check   # fail if the JSON is stale

Every query reads the gateway's ``/metrics`` through a Prometheus data source (the
``datasource`` variable); ``partner`` and ``site`` narrow the panels, and the rows of
the second part repeat once per partner chosen. The test suite evaluates every
expression here through a real Prometheus scraping a gateway that carries calls.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from grafana_foundation_sdk.builders import (
    dashboard,
    prometheus,
    stat,
    table,
    timeseries,
)
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import (
    DataSourceRef,
    VariableOption,
    VariableRefresh,
)
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

HERE = Path(__file__).resolve().parent
OUTPUT = HERE / "dashboards" / "visio-relais.json"
DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")

# The selections every panel honours (the variables' "All" is ".*").
PARTNER = 'partner=~"$partner"'


def calls(*matchers: str) -> str:
    """``vrgw_calls_total`` of the selected partners and sites, and ``matchers``."""
    return "vrgw_calls_total{" + ",".join([PARTNER, 'site=~"$site"', *matchers]) + "}"


CALLS = calls()
COMPLETED = calls('outcome="completed"')
ABANDONED = calls('outcome="abandoned"')


def query(expr: str, legend: str = "") -> prometheus.Dataquery:
    target = prometheus.Dataquery().expr(expr).datasource(DATASOURCE)
    return target.legend_format(legend) if legend else target


def series(
    title: str, unit: str, *targets: prometheus.Dataquery, width: int = 12
) -> timeseries.Panel:
    panel = timeseries.Panel().title(title).unit(unit).datasource(DATASOURCE).span(width).height(8)
    for ref, target in zip("ABCDEFGH", targets, strict=False):
        panel = panel.with_target(target.ref_id(ref))
    return panel


def figure(title: str, unit: str, target: prometheus.Dataquery, width: int = 6) -> stat.Panel:
    return (
        stat.Panel()
        .title(title)
        .unit(unit)
        .datasource(DATASOURCE)
        .span(width)
        .height(4)
        .with_target(target.ref_id("A"))
    )


def build() -> dashboard.Dashboard:
    """The operators' dashboard: the network at a glance, then one row per partner."""
    all_option = VariableOption(selected=True, text="All", value="$__all")
    board = (
        dashboard.Dashboard("Visio-relais gateway")
        .uid("visio-relais")
        .tags(["visio-relais", "sip", "h323"])
        .time("now-24h", "now")
        .refresh("30s")
        .timezone("browser")
        .with_variable(
            dashboard.DatasourceVariable("datasource").label("Data source").type("prometheus")
        )
        .with_variable(
            dashboard.QueryVariable("partner")
            .label("Partner")
            .datasource(DATASOURCE)
            .query("label_values(vrgw_queue_length, partner)")
            .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
            .multi(True)
            .include_all(True)
            .all_value(".*")
            .current(all_option)
        )
        .with_variable(
            dashboard.QueryVariable("site")
            .label("Kiosk site")
            .datasource(DATASOURCE)
            .query("label_values(vrgw_calls_total, site)")
            .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
            .multi(True)
            .include_all(True)
            .all_value(".*")
            .current(all_option)
        )
    )
    # -- now ---------------------------------------------------------------------------
    board = (
        board.with_panel(figure("Calls in progress", "none", query("sum(vrgw_calls_active)")))
        .with_panel(
            figure(
                "Citizens waiting now",
                "none",
                query(f"sum(vrgw_queue_length{{{PARTNER}}})"),
            )
        )
        .with_panel(
            figure(
                "Calls answered today",
                "none",
                query(f"round(sum(increase({COMPLETED}[1d])) or vector(0))"),
            )
        )
        .with_panel(
            figure(
                "Abandoned (share, selected range)",
                "percentunit",
                query(
                    f"(sum(increase({ABANDONED}[$__range])) or vector(0))"
                    f" / sum(increase({CALLS}[$__range]))"
                ),
            )
        )
    )
    # -- calls -------------------------------------------------------------------------
    board = (
        board.with_panel(
            table.Panel()
            .title("Calls per partner and site (selected range)")
            .datasource(DATASOURCE)
            .span(12)
            .height(8)
            .with_target(
                query(f"sum by (partner, site) (round(increase({CALLS}[$__range])))")
                .ref_id("A")
                .instant()
                .format(PromQueryFormat.TABLE)
            )
        )
        .with_panel(
            series(
                "Calls ended, by outcome",
                "cpm",
                query(f"sum by (outcome) (rate({CALLS}[$__rate_interval])) * 60", "{{outcome}}"),
            )
        )
        .with_panel(
            series(
                "Waiting time in the queue",
                "s",
                query(
                    "histogram_quantile(0.5, sum by (le) (rate("
                    f"vrgw_queue_wait_seconds_bucket{{{PARTNER}}}[$__rate_interval])))",
                    "median",
                ),
                query(
                    "histogram_quantile(0.9, sum by (le) (rate("
                    f"vrgw_queue_wait_seconds_bucket{{{PARTNER}}}[$__rate_interval])))",
                    "90th percentile",
                ),
            )
        )
        .with_panel(
            series(
                "Time to answer (station offered to answer)",
                "s",
                query(
                    "histogram_quantile(0.9, sum by (le) (rate("
                    "vrgw_call_setup_seconds_bucket[$__rate_interval])))",
                    "90th percentile",
                ),
            )
        )
    )
    # -- stations and partners ---------------------------------------------------------
    board = board.with_panel(
        series(
            "Stations by state",
            "none",
            query(f"sum by (state) (vrgw_station_state{{{PARTNER}}})", "{{state}}"),
        )
    ).with_panel(
        series(
            "Partners by availability",
            "none",
            query(f"sum by (status) (vrgw_partner_status{{{PARTNER}}})", "{{status}}"),
        )
    )
    # -- media, protocols, errors ------------------------------------------------------
    board = (
        board.with_panel(
            series(
                "Media relay",
                "none",
                query("sum(vrgw_media_sessions)", "sessions"),
                query("sum(vrgw_media_ports_in_use)", "ports held by calls"),
                width=8,
            )
        )
        .with_panel(
            series(
                "H.323",
                "none",
                query("sum(vrgw_h323_registrations)", "units registered here"),
                query("sum(vrgw_h323_connections)", "signalling connections"),
                query(
                    "sum(vrgw_h323_partner_gatekeeper_registered) or vector(0)",
                    "partner gatekeepers joined",
                ),
                width=8,
            )
        )
        .with_panel(
            series(
                "Errors",
                "cpm",
                query(
                    "sum(rate(vrgw_sip_parse_errors_total[$__rate_interval])) * 60",
                    "malformed SIP",
                ),
                query(
                    "(sum(rate(vrgw_calls_total"
                    '{outcome=~"failed|unavailable|not_found|forbidden"}'
                    "[$__rate_interval])) or vector(0)) * 60",
                    "calls not served",
                ),
                query("sum(rate(vrgw_ras_timeouts_total[$__rate_interval])) * 60", "RAS timeouts"),
                query(
                    "(sum(rate(vrgw_sip_retransmissions_total[$__rate_interval])) or vector(0))"
                    " * 60",
                    "SIP retransmissions",
                ),
                width=8,
            )
        )
        .with_panel(
            series(
                "Signalling traffic",
                "pps",
                query("sum(rate(vrgw_sip_messages_received_total[$__rate_interval]))", "SIP in"),
                query("sum(rate(vrgw_sip_messages_sent_total[$__rate_interval]))", "SIP out"),
                query("sum(rate(vrgw_ras_messages_received_total[$__rate_interval]))", "RAS in"),
                query(
                    "sum by (method, status) (rate("
                    'vrgw_sip_transactions_completed_total{role="server"}[$__rate_interval]))',
                    "answered {{method}} {{status}}",
                ),
                width=24,
            )
        )
    )

    # -- media quality (RFC 3550: loss from sequence numbers, interarrival jitter, and the
    # round trip from RTCP), one observation per stream direction at each call's end ---
    def quality(metric: str, quantile: float) -> prometheus.Dataquery:
        return query(
            f"histogram_quantile({quantile}, sum by (le, kind, sender) (rate("
            f"{metric}_bucket[$__rate_interval])))",
            "{{kind}} from the {{sender}}",
        )

    board = (
        board.with_panel(
            series(
                "Media packet loss (90th percentile of calls)",
                "percentunit",
                quality("vrgw_media_loss_ratio", 0.9),
                width=8,
            )
        )
        .with_panel(
            series(
                "Media jitter (90th percentile of calls)",
                "s",
                quality("vrgw_media_jitter_seconds", 0.9),
                width=8,
            )
        )
        .with_panel(
            series(
                "Round trip, media relay to each side (median of calls)",
                "s",
                quality("vrgw_media_rtt_seconds", 0.5),
                width=8,
            )
        )
    )
    # -- one row per partner -----------------------------------------------------------
    one = 'partner="$partner"'
    board = board.with_row(
        dashboard.Row("Partner $partner")
        .repeat("partner")
        .with_panel(
            series(
                "Calls ended, by outcome",
                "none",
                query(
                    f"sum by (outcome) (increase(vrgw_calls_total{{{one}}}[$__rate_interval]))",
                    "{{outcome}}",
                ),
                width=8,
            )
        )
        .with_panel(
            series(
                "Waiting",
                "none",
                query(f"sum(vrgw_queue_length{{{one}}})", "citizens waiting"),
                query(
                    "histogram_quantile(0.9, sum by (le) (rate("
                    f"vrgw_queue_wait_seconds_bucket{{{one}}}[$__rate_interval])))",
                    "90th percentile wait (s)",
                ),
                width=8,
            )
        )
        .with_panel(
            series(
                "Stations",
                "none",
                query(
                    f"sum by (station, state) (vrgw_station_state{{{one}}})",
                    "{{station}} {{state}}",
                ),
                width=8,
            )
        )
    )
    return board


def render() -> str:
    """The dashboard as Grafana reads it (stable key order, one trailing newline)."""
    return json.dumps(build().build(), cls=JSONEncoder, indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the JSON is stale")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if not OUTPUT.exists() or OUTPUT.read_text() != text:
            print(f"{OUTPUT} is stale: run deploy/grafana/build.py", file=sys.stderr)
            return 1
        return 0
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(text)
    print(f"wrote {OUTPUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
