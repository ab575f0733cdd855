"""Prometheus metrics: counters updated per call, gauges read at scrape time.

Hot-path figures (SIP messages, transactions, media ports) are plain integers owned by
their components; a custom collector reads them when Prometheus scrapes, so the
signalling path pays nothing for being observed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from gateway.app import Gateway
    from gateway.call.records import CallRecord
    from gateway.media.engine import DirectionStats


class GatewayMetrics:
    """All metrics of one gateway process, on their own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.calls = Counter(
            "vrgw_calls",
            "Calls ended, by partner, service, kiosk site and outcome",
            ["partner", "service", "site", "outcome"],
            registry=self.registry,
        )
        self.call_duration = Histogram(
            "vrgw_call_duration_seconds",
            "Connected time of completed calls",
            ["service"],
            buckets=(30, 60, 120, 300, 600, 900, 1200, 1800, 3600),
            registry=self.registry,
        )
        self.setup_time = Histogram(
            "vrgw_call_setup_seconds",
            "Time from the kiosk's INVITE to the station's answer",
            ["service"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 40, 60),
            registry=self.registry,
        )

        self.queue_wait = Histogram(
            "vrgw_queue_wait_seconds",
            "Time callers spent in a partner's queue (answered or not)",
            ["partner", "outcome"],
            buckets=(5, 15, 30, 60, 120, 300, 600, 900, 1800),
            registry=self.registry,
        )

        # Media quality of each stream direction, observed once at the call's end (RFC 3550
        # A.3, A.8, 6.4.1). Labels: the stream kind (audio, video) and the side that sent
        # it (kiosk, station): eight series of buckets per histogram, whatever the traffic.
        self.media_loss = Histogram(
            "vrgw_media_loss_ratio",
            "Share of a stream's RTP packets lost on the way to the media engine, per call",
            ["kind", "sender"],
            buckets=(0.0, 0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5),
            registry=self.registry,
        )
        self.media_jitter = Histogram(
            "vrgw_media_jitter_seconds",
            "Mean interarrival jitter of a stream at the media engine, per call",
            ["kind", "sender"],
            buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2),
            registry=self.registry,
        )
        self.media_rtt = Histogram(
            "vrgw_media_rtt_seconds",
            "Round trip between the media engine and a side (RTCP LSR/DLSR), per call",
            ["kind", "sender"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1.0),
            registry=self.registry,
        )

        self.call_legs = Counter(
            "vrgw_call_legs",
            "Legs of ended calls, by side (kiosk, station) and protocol (sip, h323)",
            ["side", "protocol"],
            registry=self.registry,
        )
        # Read from the state store just before each scrape (its calls are awaited).
        self.sip_registrations = 0
        self.store_up = 1

        # Labelled children by label values: .labels() costs more than the update itself,
        # and the label sets are few (services, sites and outcomes of the dialplan).
        self._children: dict[tuple[object, ...], Any] = {}
        # The media label sets are fixed: exported from the start, at zero, so that a
        # dashboard shows "no call measured yet" rather than a missing series.
        for histogram in (self.media_loss, self.media_jitter, self.media_rtt):
            for kind in ("audio", "video"):
                for sender in ("kiosk", "station"):
                    self._child(histogram, kind, sender)

    def _child(self, metric: Counter | Histogram, *labels: str) -> Any:
        key = (metric, *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def record_call(self, record: CallRecord) -> None:
        """Account for one ended call."""
        self._child(self.calls, record.partner, record.service, record.site, record.outcome).inc()
        self._child(self.call_legs, "kiosk", record.kiosk_protocol).inc()
        if record.station_protocol is not None:
            self._child(self.call_legs, "station", record.station_protocol).inc()
        if record.queued:
            self._child(self.queue_wait, record.partner, record.outcome).observe(record.waited)
        if record.answered is not None:
            service = record.service
            self._child(self.call_duration, service).observe(record.duration)
            self._child(self.setup_time, service).observe(record.answered - record.started)
        if record.media is not None:
            for stream in record.media.streams:
                if stream.kind not in ("audio", "video"):
                    continue  # an application or image stream: no label value for it
                self._observe_media(stream.kind, "kiosk", stream.a_to_b)
                self._observe_media(stream.kind, "station", stream.b_to_a)

    def _observe_media(self, kind: str, sender: str, d: DirectionStats) -> None:
        loss = d.loss_ratio
        if loss is not None:
            self._child(self.media_loss, kind, sender).observe(loss)
        jitter = d.jitter if d.jitter is not None else d.reported_jitter
        if jitter is not None:
            self._child(self.media_jitter, kind, sender).observe(jitter)
        if d.rtt is not None:
            self._child(self.media_rtt, kind, sender).observe(d.rtt)

    def attach(self, gateway: Gateway) -> None:
        """Register the scrape-time collector reading the gateway's live figures."""
        self.registry.register(_LiveCollector(lambda: gateway))


class _LiveCollector(Collector):
    def __init__(self, get: Callable[[], Gateway]) -> None:
        self._get = get

    def collect(self) -> Iterable[Metric]:
        gw = self._get()
        c = gw.endpoint.counters
        yield _counter("vrgw_sip_messages_received", "SIP messages received", c.received)
        yield _counter("vrgw_sip_messages_sent", "SIP messages sent", c.sent)
        yield _counter("vrgw_sip_parse_errors", "Malformed SIP messages received", c.parse_errors)
        yield _gauge("vrgw_sip_transactions", "Live SIP transactions", len(gw.endpoint.layer))
        yield _gauge("vrgw_sip_dialogs", "Live SIP dialogs", gw.ua.open_dialogs)
        yield _gauge("vrgw_calls_active", "Calls in progress", len(gw.b2bua.calls))
        registrations = GaugeMetricFamily(
            "vrgw_registrations", "Live registrations, by protocol", labels=["protocol"]
        )
        registrations.add_metric(["sip"], gw.metrics.sip_registrations)
        registrations.add_metric(["h323"], len(gw.gatekeeper.registrations))
        yield registrations
        yield _gauge(
            "vrgw_state_store_up",
            "1 when the state store answered the last scrape's query, else 0",
            gw.metrics.store_up,
        )
        yield _gauge("vrgw_media_sessions", "Media relay sessions", gw.media.session_count)
        yield _gauge(
            "vrgw_media_ports_in_use",
            "UDP ports held by calls in the media relay",
            gw.media.ports_in_use,
        )
        yield _gauge(
            "vrgw_media_ports_idle",
            "UDP ports the media relay keeps bound for later calls",
            gw.media.ports_idle,
        )
        now = gw.b2bua.clock()
        states = GaugeMetricFamily(
            "vrgw_station_state",
            "1 for the state each station is in (offline, idle, ringing, busy, wrap_up, paused)",
            labels=["partner", "station", "state"],
        )
        calls = GaugeMetricFamily(
            "vrgw_station_calls", "Calls held by each station", labels=["partner", "station"]
        )
        queue = GaugeMetricFamily(
            "vrgw_queue_length", "Callers waiting per partner", labels=["partner"]
        )
        status = GaugeMetricFamily(
            "vrgw_partner_status",
            "1 for each partner's availability (open, busy, closed, offline)",
            labels=["partner", "status"],
        )
        for desk in gw.b2bua.desks.values():
            for sid, st in desk.stations.items():
                states.add_metric([desk.partner, sid, st.state(now).value], 1)
                calls.add_metric([desk.partner, sid], len(st.connected) + len(st.ringing))
            queue.add_metric([desk.partner], len(desk.queue))
            status.add_metric([desk.partner, desk.availability(now).status.value], 1)
        yield states
        yield calls
        yield queue
        yield status
        yield from _sip_transaction_metrics(gw)
        yield from _h323_metrics(gw)
        yield from _h323_guard_metrics(gw)
        yield from _auth_metrics(gw)
        yield from _stream_metrics(gw)


def _stream_metrics(gw: Gateway) -> Iterable[Metric]:
    """TCP/TLS connections and the bounds of issue 13 (RFC 3261 26.3.2.4)."""
    endpoint, c = gw.endpoint, gw.endpoint.counters
    yield _gauge(
        "vrgw_sip_stream_connections",
        "Inbound SIP TCP and TLS connections open (TLS handshakes included)",
        endpoint.open_connections,
    )
    refused = CounterMetricFamily(
        "vrgw_sip_refused",
        "Connections and requests refused over a bound, by bound "
        "(connections_per_source, connections_total, transactions_per_source)",
        labels=["limit"],
    )
    for limit, count in endpoint.bounds.refused.items():  # connections_per_source, _total
        refused.add_metric([limit], count)
    refused.add_metric(["transactions_per_source"], c.refused_transactions)
    yield refused
    yield _counter(
        "vrgw_sip_tls_handshake_failures",
        "Inbound TLS handshakes that failed (bad or missing certificate, old protocol, timeout)",
        c.tls_handshake_failures,
    )


def _auth_metrics(gw: Gateway) -> Iterable[Metric]:
    """Failed logins, bans (issue 13) and challenges no unit answered (RFC 7616 3.7)."""
    guard = gw.ua.guard
    yield _counter(
        "vrgw_sip_auth_failures",
        "Digest credentials that failed verification",
        guard.failures_total,
    )
    yield _counter(
        "vrgw_sip_auth_refused_banned",
        "Requests refused because their source or login was banned",
        guard.refused_total,
    )
    started = CounterMetricFamily(
        "vrgw_sip_bans", "Bans started after failed authentications", labels=["kind"]
    )
    active = GaugeMetricFamily("vrgw_sip_bans_active", "Bans in force", labels=["kind"])
    in_force = guard.bans(gw.ua.monotonic())
    for kind, total in guard.bans_total.items():
        started.add_metric([kind.value], total)
        active.add_metric([kind.value], sum(1 for ban in in_force if ban.kind is kind))
    yield started
    yield active
    unanswered = CounterMetricFamily(
        "vrgw_sip_auth_challenges_unanswered",
        "Digest challenges never answered (a likely algorithm mismatch), by login",
        labels=["login"],
    )
    for login, count in gw.ua.auth_stats.unanswered.items():
        unanswered.add_metric([login], count)
    yield unanswered
    flood = gw.ua.flood
    yield _counter(
        "vrgw_sip_flood_dropped",
        "SIP messages dropped unread: their source was over the rate limit or banned",
        flood.dropped_total,
    )
    yield _counter("vrgw_sip_flood_bans", "Sources banned for flooding", flood.bans_total)
    yield _gauge(
        "vrgw_sip_flood_bans_active",
        "Sources banned for flooding now",
        len(flood.bans(gw.ua.monotonic())),  # the loop's clock: CLOCK_MONOTONIC too
    )
    scans = CounterMetricFamily(
        "vrgw_sip_scans",
        "Sources seen scanning: a scanning tool's User-Agent, or a sweep of logins",
        labels=["kind"],
    )
    for sign, count in gw.ua.scans.scans_total.items():
        scans.add_metric([sign], count)
    yield scans


def _sip_transaction_metrics(gw: Gateway) -> Iterable[Metric]:
    """SIP transactions by role, method and final status; retransmissions, repeats
    absorbed and timeouts by method (RFC 3261 17)."""
    stats = gw.endpoint.layer.stats
    finals = CounterMetricFamily(
        "vrgw_sip_transactions_completed",
        "SIP transactions ended by a final response, by role (server: we answered), "
        "method and status",
        labels=["role", "method", "status"],
    )
    for (role, method, status), count in stats.finals.items():
        finals.add_metric([role, method, str(status)], count)
    yield finals
    for name, table, doc in (
        ("vrgw_sip_retransmissions", stats.retransmissions, "SIP messages we sent again"),
        ("vrgw_sip_request_repeats", stats.repeats, "SIP requests peers sent again"),
        ("vrgw_sip_transaction_timeouts", stats.timeouts, "SIP transactions timed out"),
    ):
        family = CounterMetricFamily(name, f"{doc} (RFC 3261 17), by method", labels=["method"])
        for method, count in table.items():
            family.add_metric([method], count)
        yield family


def _h323_guard_metrics(gw: Gateway) -> Iterable[Metric]:
    """The H.323 ports' bounds and flood guard (issue 13): siblings of the SIP ones."""
    h323 = gw.h323
    refused = CounterMetricFamily(
        "vrgw_h323_refused",
        "H.225.0 connections refused at accept over a bound, by bound "
        "(connections_per_source, connections_total)",
        labels=["limit"],
    )
    for limit, count in h323.bounds.refused.items():
        refused.add_metric([limit], count)
    yield refused
    closed = CounterMetricFamily(
        "vrgw_h323_connections_closed",
        "Accepted H.225.0 connections closed by the gateway, by reason "
        "(bad_tpkt: a broken TPKT stream; no_setup: no Setup in time)",
        labels=["reason"],
    )
    closed.add_metric(["bad_tpkt"], h323.counters.broken_streams)
    closed.add_metric(["no_setup"], h323.counters.setup_timeouts)
    yield closed
    flood = gw.ras_flood
    yield _counter(
        "vrgw_ras_flood_dropped",
        "RAS datagrams dropped undecoded: their source was over the rate limit or banned",
        flood.dropped_total,
    )
    yield _counter("vrgw_ras_flood_bans", "Sources banned for flooding RAS", flood.bans_total)
    yield _gauge(
        "vrgw_ras_flood_bans_active",
        "Sources banned for flooding RAS now",
        len(flood.bans(gw.ua.monotonic())),  # the loop's clock, as for SIP
    )


def _h323_metrics(gw: Gateway) -> Iterable[Metric]:
    """H.323: connections, our gatekeeper's registrations, RAS traffic per gatekeeper
    (``vrgw`` is ours, the others are partners' gatekeepers of the dialplan)."""
    yield _gauge(
        "vrgw_h323_connections",
        "H.225.0 call signalling connections open (calls and station probes)",
        len(gw.h323.connections),
    )
    yield _gauge(
        "vrgw_h323_registrations",
        "H.323 endpoints registered with the gateway's gatekeeper",
        len(gw.gatekeeper.registrations),
    )
    entities = [("vrgw", gw.gatekeeper.counters)]
    registered = GaugeMetricFamily(
        "vrgw_h323_partner_gatekeeper_registered",
        "1 while the gateway is registered with a partner's gatekeeper",
        labels=["gatekeeper"],
    )
    for name, (client, _) in gw.partner_gatekeepers.clients.items():
        entities.append((name, client.counters))
        registered.add_metric([name], 1 if client.registered else 0)
    yield registered
    families = {
        field: CounterMetricFamily(f"vrgw_ras_{field}", doc, labels=["gatekeeper"])
        for field, doc in (
            ("messages_received", "RAS messages received (H.225.0 7)"),
            ("messages_sent", "RAS messages sent"),
            ("malformed", "RAS datagrams that did not decode"),
            ("retransmissions", "Our RAS requests sent again"),
            ("timeouts", "Our RAS requests never answered"),
        )
    }
    for name, counters in entities:
        families["messages_received"].add_metric([name], counters.received)
        families["messages_sent"].add_metric([name], counters.sent)
        families["malformed"].add_metric([name], counters.malformed)
        families["retransmissions"].add_metric([name], counters.retransmissions)
        families["timeouts"].add_metric([name], counters.timeouts)
    yield from families.values()


def _counter(name: str, doc: str, value: int) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, value=value)


def _gauge(name: str, doc: str, value: int) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)
