"""The admin HTTP API and the Prometheus endpoint (FastAPI on uvicorn, same event loop)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict
from datetime import datetime
from typing import TYPE_CHECKING, Any

import uvicorn
from fastapi import Depends, FastAPI, HTTPException, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.security import HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from gateway.dialplan import Kiosk
from gateway.http import auth
from gateway.http.records import records_router
from gateway.media.engine import MediaError
from gateway.sip.guard import Ban, BanKind

if TYPE_CHECKING:
    from gateway.app import Gateway

log = logging.getLogger(__name__)


class ClockBody(BaseModel):
    """``PUT /api/v1/clock``: the new time, with its UTC offset."""

    now: datetime


AUTH_DESCRIPTION = (
    "A token of the dialplan's admin.tokens: operator (everything) or monitoring (reads). "
    "Without tokens configured, only loopback clients are served."
)


def create_app(gw: Gateway) -> FastAPI:
    """Build the FastAPI application bound to one gateway."""
    # Documents the bearer scheme in the OpenAPI description; the middleware below is
    # what enforces it (gateway/http/auth.py), on every route alike.
    app = FastAPI(
        title="visio-relais gateway",
        version="0.1.0",
        dependencies=[Depends(HTTPBearer(auto_error=False, description=AUTH_DESCRIPTION))],
    )
    app.include_router(records_router(gw))

    @app.middleware("http")
    async def admin_auth(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        client = request.client.host if request.client is not None else None
        refusal = auth.check(
            gw.dialplan.admin,
            request.method,
            request.url.path,
            client,
            request.headers.get("authorization"),
        )
        if refusal is None:
            return await call_next(request)
        headers = {"WWW-Authenticate": 'Bearer realm="vrgw"'} if refusal.status == 401 else None
        return JSONResponse({"detail": refusal.reason}, refusal.status, headers=headers)

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        """Liveness: the loop answers and the SIP socket is open."""
        return {"status": "ok", "sip_port": gw.endpoint.port, "calls": len(gw.b2bua.calls)}

    # HEAD, for probes, is the same route without a body (left out of the OpenAPI
    # document, where it would repeat GET's operation).
    @app.head("/metrics", include_in_schema=False)
    @app.get("/metrics")
    async def metrics() -> Response:
        """Prometheus text exposition format."""
        try:
            gw.metrics.sip_registrations = await gw.store.binding_count()
            gw.metrics.store_up = 1
        except Exception:  # any failure of the store is what this gauge reports
            log.warning("state store did not answer the metrics query", exc_info=True)
            gw.metrics.store_up = 0
        return Response(generate_latest(gw.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/api/v1/status")
    async def status() -> dict[str, Any]:
        """Live counts: what must be back to zero once every call has ended."""
        return {
            "calls": len(gw.b2bua.calls),
            "transactions": len(gw.endpoint.layer),
            "dialogs": gw.ua.open_dialogs,
            "media_sessions": gw.media.session_count,
            "media_ports_in_use": gw.media.ports_in_use,
            "media_ports_idle": gw.media.ports_idle,
            "registrations": await gw.store.binding_count(),
            "subscriptions": gw.presence.count,
            "sip": {
                "received": gw.endpoint.counters.received,
                "sent": gw.endpoint.counters.sent,
                "parse_errors": gw.endpoint.counters.parse_errors,
            },
            "dialplan": str(gw.dialplan.source),
            "h323": {
                "connections": len(gw.h323.connections),
                "registrations": len(gw.gatekeeper.registrations),
            },
        }

    @app.get("/api/v1/calls")
    async def calls() -> dict[str, Any]:
        """Calls in progress (with live media counters) and the last ended ones."""
        live = []
        for call in list(gw.b2bua.calls.values()):
            try:
                stats = await gw.media.stats(call.id)
            except MediaError as exc:  # an external engine that does not answer
                log.warning("call %s: no media counters: %s", call.id, exc)
                stats = None
            live.append(
                {
                    "id": call.id,
                    "kiosk": call.kiosk.id,
                    "service": call.service.name,
                    "state": call.state.value,
                    "station": call.target.station if call.target else None,
                    "media": asdict(stats) if stats else None,
                }
            )
        ended = [{**asdict(r), "duration": r.duration} for r in gw.b2bua.records]
        return {"active": live, "ended": ended}

    @app.delete("/api/v1/calls/{call_id}")
    async def end_call(call_id: str) -> dict[str, Any]:
        """Hang up a call in progress (connected, ringing or queued) on both sides."""
        if not gw.b2bua.end_call(call_id):
            raise HTTPException(status_code=404, detail=f"no call {call_id!r} in progress")
        return {"ended": call_id}

    @app.delete("/api/v1/queues/{partner}/{call_id}")
    async def remove_caller(partner: str, call_id: str) -> dict[str, Any]:
        """Take a waiting caller out of a partner's queue (the kiosk's call is ended)."""
        desk = gw.b2bua.desks.get(partner)
        if desk is None or desk.queued_since(call_id) is None:
            raise HTTPException(
                status_code=404, detail=f"no caller {call_id!r} waits for {partner!r}"
            )
        gw.b2bua.end_call(call_id, "removed from the queue by an operator")
        return {"removed": call_id, "partner": partner}

    @app.get("/api/v1/registrations")
    async def all_registrations() -> dict[str, Any]:
        """Every live SIP binding, by login (H.323 ones: /api/v1/h323/registrations)."""
        bindings = await gw.store.all_bindings()
        return {"registrations": [asdict(b) for b in bindings]}

    @app.get("/api/v1/registrations/{aor}")
    async def registrations(aor: str) -> dict[str, Any]:
        """The live bindings of one login."""
        bindings = await gw.store.get_bindings(aor)
        return {"aor": aor, "bindings": [asdict(b) for b in bindings]}

    @app.get("/api/v1/h323/registrations")
    async def h323_registrations() -> dict[str, Any]:
        """H.323 units registered with the gateway's gatekeeper (H.225.0 RRQ), and the
        gateway's own registrations with partners' gatekeepers."""
        now = gw.ras.now()  # the clock the gatekeeper's expiries are on
        units = [
            {
                "endpoint_id": r.endpoint_id,
                "aliases": [{"kind": a.kind, "value": a.value} for a in r.aliases],
                "call_signal_address": list(r.call_signal_address),
                "ras_address": list(r.ras_address),
                "time_to_live": r.time_to_live,
                "expires_in": None if r.expires is None else round(r.expires - now, 1),
                "calls": len(r.calls),
            }
            for r in gw.gatekeeper.registrations.values()
        ]
        partners = [
            {"gatekeeper": name, "registered": client.registered, "state": client.state.value}
            for name, (client, _) in gw.partner_gatekeepers.clients.items()
        ]
        return {"registrations": units, "partner_gatekeepers": partners}

    @app.post("/api/v1/reload")
    async def reload() -> dict[str, Any]:
        """Reload the dialplan; a broken file is refused and the running one stays."""
        ok, message = gw.reload()
        if not ok:
            raise HTTPException(status_code=422, detail=message)
        return {"status": "reloaded", "dialplan": str(gw.dialplan.source)}

    def asking_kiosk(request: Request, kiosk: str | None) -> Kiosk | None:
        """The kiosk a query is for: ``?kiosk=ID``, else the client's trusted address."""
        dialplan = gw.dialplan
        if kiosk is not None:
            found = dialplan.kiosks.get(kiosk)
            if found is None:
                raise HTTPException(status_code=404, detail=f"no kiosk {kiosk!r}")
            return found
        client = request.client
        return dialplan.kiosk_for_address(client.host) if client is not None else None

    @app.get("/api/v1/availability")
    async def availability(request: Request, kiosk: str | None = None) -> dict[str, Any]:
        """Each service's availability, limited to the asking kiosk's services."""
        found = asking_kiosk(request, kiosk)
        return {
            "kiosk": found.id if found else None,
            "services": gw.views.availability(found),
        }

    @app.get("/api/v1/availability/events")
    async def availability_events(request: Request, kiosk: str | None = None) -> Response:
        """Server-sent events: the full list first, then each service that changes."""
        found = asking_kiosk(request, kiosk)
        allowed = gw.views.partners_of(found) if found is not None else None
        queue = gw.feed.listen()

        async def stream() -> AsyncIterator[bytes]:
            try:
                entries = gw.views.availability(found)
                yield _sse("availability", {"services": entries})
                last = {e["service"]: e for e in entries}
                while True:
                    try:
                        partners = await asyncio.wait_for(queue.get(), timeout=15)
                    except TimeoutError:
                        yield b": keep-alive\n\n"
                        continue
                    if allowed is not None:
                        partners &= allowed
                    for entry in gw.views.availability(found):
                        if entry["partner"] in partners and last.get(entry["service"]) != entry:
                            last[str(entry["service"])] = entry
                            yield _sse("service", entry)
            finally:
                gw.feed.leave(queue)

        return StreamingResponse(
            stream(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    @app.get("/api/v1/stations")
    async def stations() -> dict[str, Any]:
        """Every station's state, reachability and counters."""
        now = gw.b2bua.clock()
        out = []
        for desk in gw.b2bua.desks.values():
            for sid, st in desk.stations.items():
                out.append(
                    {
                        "station": sid,
                        "partner": desk.partner,
                        "state": st.state(now).value,
                        "reachable": st.reachable,
                        "paused": st.paused.value if st.paused else None,
                        "missed_offers": st.missed,
                        "calls": len(st.connected),
                        "ringing": len(st.ringing),
                    }
                )
        return {"stations": out}

    @app.post("/api/v1/stations/{station}/pause")
    async def pause(station: str) -> dict[str, Any]:
        """Take a station out of service (its current call goes on)."""
        if not gw.b2bua.pause_station(station, paused=True):
            raise HTTPException(status_code=404, detail=f"no station {station!r}")
        return {"station": station, "paused": True}

    @app.post("/api/v1/stations/{station}/resume")
    async def resume(station: str) -> dict[str, Any]:
        """Put a station back in service; the head of its partner's queue is offered to it."""
        if not gw.b2bua.pause_station(station, paused=False):
            raise HTTPException(status_code=404, detail=f"no station {station!r}")
        return {"station": station, "paused": False}

    @app.get("/api/v1/queues")
    async def queues() -> dict[str, Any]:
        """Who waits for which partner, in order, with the recent waiting times."""
        now = gw.b2bua.clock()
        out = {}
        for desk in gw.b2bua.desks.values():
            out[desk.partner] = {
                "waiting": [
                    {
                        "call": w.call_id,
                        "kiosk": w.kiosk,
                        "appointment": w.appointment,
                        "waited": round(now - w.since, 1),
                    }
                    for w in desk.queue
                ],
                "recent_waits": [round(x, 1) for x in desk.waits],
            }
        return {"queues": out}

    def ban_view(ban: Ban, now: float, protocol: str = "sip") -> dict[str, Any]:
        return {
            "kind": ban.kind.value,
            "protocol": protocol,
            "key": ban.key,
            "failures": ban.failures,
            "remaining": round(max(0.0, ban.until - now), 1),
        }

    @app.get("/api/v1/bans")
    async def bans() -> dict[str, Any]:
        """Sources and logins banned after failed authentications, and sources banned
        for flooding (``protocol`` sip, or h323 for the gatekeeper's RAS port), with the
        seconds left."""
        now = gw.ua.monotonic()
        # The transport's clock, which flood bans run on, is the loop's: CLOCK_MONOTONIC
        # too (asyncio's and uvloop's), so one reading serves both kinds.
        bans = [*gw.ua.guard.bans(now), *gw.ua.flood.bans(now)]
        ras = [ban_view(ban, now, "h323") for ban in gw.ras_flood.bans(now)]
        return {"bans": [*(ban_view(ban, now) for ban in bans), *ras]}

    @app.delete("/api/v1/bans/{kind}/{key}")
    async def lift_ban(kind: str, key: str) -> dict[str, Any]:
        """Lift a ban now: ``kind`` is ``source`` or ``flood`` (an IP address) or
        ``account`` (a login); a ``flood`` ban is lifted on SIP and RAS alike."""
        try:
            ban_kind = BanKind(kind)
        except ValueError:
            raise HTTPException(
                status_code=404, detail="kind is source, account or flood"
            ) from None
        ban, protocol = gw.ua.lift_ban(ban_kind, key), "sip"
        if ban_kind is BanKind.FLOOD and (ras := gw.ras_flood.lift(key)) is not None:
            log.warning("RAS flood ban of %s lifted by an operator", key)
            if ban is None:
                ban, protocol = ras, "h323"
        if ban is None:
            raise HTTPException(status_code=404, detail=f"no {kind} ban on {key!r}")
        return {"lifted": ban_view(ban, gw.ua.monotonic(), protocol)}

    @app.get("/api/v1/clock")
    async def get_clock() -> dict[str, Any]:
        """The time schedules use, and whether it may be set (--test-clock)."""
        return {"now": gw.clock.now(), "adjustable": gw.clock.adjustable}

    @app.put("/api/v1/clock")
    async def set_clock(body: ClockBody) -> dict[str, Any]:
        """Move the schedules' clock (only on a gateway started with --test-clock)."""
        if body.now.tzinfo is None:
            raise HTTPException(status_code=422, detail="give a time with its UTC offset")
        try:
            gw.clock.set(body.now.timestamp())
        except PermissionError as exc:
            raise HTTPException(status_code=403, detail=str(exc)) from None
        gw.b2bua.clock_changed()
        gw.presence.changed_all()
        return {"now": gw.clock.now()}

    return app


def _sse(event: str, data: object) -> bytes:
    """One server-sent event (HTML Living Standard, "event stream" format)."""
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return f"event: {event}\ndata: {payload}\n\n".encode()


class QuietServer(uvicorn.Server):
    """uvicorn with a housekeeping tick once a second instead of ten times.

    uvicorn's own main loop wakes every 100 ms to refresh the Date header and look at
    ``should_exit``: an idle gateway then burnt about 2.5 ms of CPU a second, a few per
    cent of what calls cost at a hundred a second. :meth:`stop` ends it at once.
    """

    _wake: asyncio.Event | None = None

    async def main_loop(self) -> None:
        """Tick (Date header, exit checks) every second or when woken by :meth:`stop`."""
        self._wake = wake = asyncio.Event()
        while not await self.on_tick(0):  # a counter of 0 refreshes the Date header
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), 1.0)

    def stop(self) -> None:
        """Ask the server to finish, without waiting for its next tick."""
        self.should_exit = True
        if self._wake is not None:
            self._wake.set()


async def serve(gw: Gateway) -> tuple[QuietServer, asyncio.Task[None]]:
    """Start uvicorn on the running loop; returns the server and its task."""
    config = uvicorn.Config(
        create_app(gw),
        host=gw.settings.http_host,
        port=gw.settings.http_port,
        log_level="warning",
        access_log=False,
        lifespan="off",
        loop="none",
    )
    server = QuietServer(config)
    # The gateway owns SIGINT/SIGTERM/SIGHUP on this loop; uvicorn must not take them.
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
    # Bound here, not by uvicorn, which would end the process on a port already in use:
    # the caller reports the address instead.
    host = gw.settings.http_host
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, gw.settings.http_port))
    except OSError:
        sock.close()
        raise
    task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]))
    while not server.started and not task.done():
        await asyncio.sleep(0.01)
    if task.done():
        task.result()
    return server, task
