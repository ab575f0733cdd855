"""The admin HTTP API and the Prometheus endpoint (FastAPI on uvicorn, same event loop)."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import uvicorn
from fastapi import FastAPI, HTTPException, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

if TYPE_CHECKING:
    from gateway.app import Gateway


def create_app(gw: Gateway) -> FastAPI:
    """Build the FastAPI application bound to one gateway."""
    app = FastAPI(title="visio-relais gateway", version="0.1.0")

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        """Liveness: the loop answers and the SIP socket is open."""
        return {"status": "ok", "sip_port": gw.endpoint.port, "calls": len(gw.b2bua.calls)}

    @app.get("/metrics")
    async def metrics() -> Response:
        """Prometheus exposition format."""
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
            "registrations": await gw.store.binding_count(),
            "sip": {
                "received": gw.endpoint.counters.received,
                "sent": gw.endpoint.counters.sent,
                "parse_errors": gw.endpoint.counters.parse_errors,
            },
            "dialplan": str(gw.dialplan.source),
        }

    @app.get("/api/v1/calls")
    async def calls() -> dict[str, Any]:
        """Calls in progress (with live media counters) and the last ended ones."""
        live = []
        for call in gw.b2bua.calls.values():
            stats = gw.media.stats(call.id)
            live.append(
                {
                    "id": call.id,
                    "kiosk": call.kiosk.id,
                    "service": call.service.name,
                    "state": call.state.value,
                    "station": call.target.station.id if call.target else None,
                    "media": asdict(stats) if stats else None,
                }
            )
        ended = [{**asdict(r), "duration": r.duration} for r in list(gw.b2bua.records)[-100:]]
        return {"active": live, "ended": ended}

    @app.get("/api/v1/registrations/{aor}")
    async def registrations(aor: str) -> dict[str, Any]:
        """The live bindings of one login."""
        bindings = await gw.store.get_bindings(aor)
        return {"aor": aor, "bindings": [asdict(b) for b in bindings]}

    @app.post("/api/v1/reload")
    async def reload() -> dict[str, Any]:
        """Reload the dialplan; a broken file is refused and the running one stays."""
        ok, message = gw.reload()
        if not ok:
            raise HTTPException(status_code=422, detail=message)
        return {"status": "reloaded", "dialplan": str(gw.dialplan.source)}

    return app


async def serve(gw: Gateway) -> tuple[uvicorn.Server, asyncio.Task[None]]:
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
    server = uvicorn.Server(config)
    # The gateway owns SIGINT/SIGTERM/SIGHUP on this loop; uvicorn must not take them.
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
    task = asyncio.get_running_loop().create_task(server.serve())
    while not server.started and not task.done():
        await asyncio.sleep(0.01)
    if task.done():
        task.result()
    return server, task
