"""What presence documents and the availability feed say, built from the desks.

This is the one place where desk state (data) becomes words (French, from
:mod:`gateway.texts`) and documents (PIDF with RPID, dialog-info): the SIP presence
server, the HTTP availability API and its event stream all read it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gateway.call.sip_ua import Watcher
from gateway.partners.desk import Availability, StationState, Status
from gateway.partners.schedule import ClosedReason
from gateway.presence.documents import (
    DialogEntry,
    PresenceView,
    dialog_info_document,
    pidf_document,
)
from gateway.presence.server import EventName, Resource
from gateway.texts import people, text, when

if TYPE_CHECKING:
    from gateway.call.b2bua import B2BUA
    from gateway.dialplan import Kiosk

# RPID activities (RFC 4480 3.2) shown for each partner status and station state.
PARTNER_ACTIVITIES: dict[Status, tuple[str, ...]] = {
    Status.OPEN: (),
    Status.BUSY: ("busy", "on-the-phone"),
    Status.CLOSED: ("away",),
    Status.OFFLINE: ("unknown",),
}
STATION_ACTIVITIES: dict[StationState, tuple[str, ...]] = {
    StationState.IDLE: (),
    StationState.RINGING: ("busy",),
    StationState.BUSY: ("on-the-phone",),
    StationState.WRAP_UP: ("busy",),
    StationState.PAUSED: ("away",),
    StationState.OFFLINE: ("unknown",),
}


def availability_note(av: Availability, now_local: Any) -> str:
    """The French sentence a kiosk shows for a partner."""
    if av.status is Status.CLOSED:
        if av.next_opening is None:
            return text("closed")
        opens = when(av.next_opening, now_local)
        if av.next_opening_appointment:
            opens = text("by_appointment", when=opens)
        if av.closed_reason is ClosedReason.HOLIDAY and av.detail:
            return text("closed_holiday", detail=av.detail, when=opens)
        if av.closed_reason is ClosedReason.CLOSURE:
            return text("closed_closure", when=opens)
        return text("closed_opens", when=opens)
    if av.status is Status.OFFLINE:
        return text("offline")
    if av.status is Status.OPEN:
        return text("appointment_only") if av.appointment_only else text("open")
    if av.queue_length == 0:
        return text("busy")
    if av.estimated_wait is None:
        return text("busy_no_estimate", people=people(av.queue_length))
    minutes = max(1, round(av.estimated_wait / 60))
    return text("busy_waiting", people=people(av.queue_length), minutes=minutes)


class GatewayViews:
    """Presence resources and availability views over the B2BUA's desks."""

    def __init__(self, b2bua: B2BUA) -> None:
        self.b2bua = b2bua

    # -- the presence server's ResourceViews ---------------------------------------------
    def resolve(self, user: str) -> Resource | None:
        """A service (name or number) names its partner; a station id or login its station."""
        dialplan = self.b2bua.dialplan
        domain = dialplan.domain
        service = dialplan.resolve_service(user)
        if service is not None:
            return Resource("partner", service.partner, service.partner, f"sip:{user}@{domain}")
        found = dialplan.station_for_user(user)
        if found is not None:
            partner, station = found
            return Resource("station", station.id, partner.id, f"sip:{user}@{domain}")
        for partner in dialplan.partners.values():
            for station in partner.stations:
                if station.id == user:
                    return Resource("station", station.id, partner.id, f"sip:{user}@{domain}")
        return None

    def may_watch(self, watcher: Watcher, resource: Resource) -> bool:
        """Kiosks see the partners they offer; agents (station logins) see everything."""
        dialplan = self.b2bua.dialplan
        if watcher.kiosk is None:
            return watcher.username is not None
        kiosk = dialplan.kiosks.get(watcher.kiosk)
        return kiosk is not None and resource.partner in self.partners_of(kiosk)

    def partners_of(self, kiosk: Kiosk) -> set[str]:
        """Partners behind the services a kiosk offers."""
        services = self.b2bua.dialplan.services
        return {services[name].partner for name in kiosk.services if name in services}

    def render(self, resource: Resource, event: EventName, version: int) -> bytes:
        """The current document of ``event`` for ``resource``."""
        if event == "dialog":
            return dialog_info_document(resource.uri, version, self.dialogs(resource))
        desk = self.b2bua.desks.get(resource.partner)
        now = self.b2bua.clock()
        if desk is None:
            return pidf_document(PresenceView(resource.uri, False, text("offline"), ("unknown",)))
        if resource.kind == "partner":
            av = desk.availability(now)
            view = PresenceView(
                resource.uri,
                av.status is Status.OPEN,
                availability_note(av, desk.local(now)),
                PARTNER_ACTIVITIES[av.status],
            )
        else:
            status = desk.stations.get(resource.id)
            state = status.state(now) if status is not None else StationState.OFFLINE
            view = PresenceView(
                resource.uri,
                state is StationState.IDLE,
                text(f"station_{state.value}"),
                STATION_ACTIVITIES[state],
            )
        return pidf_document(view)

    def dialogs(self, resource: Resource) -> list[DialogEntry]:
        """The calls at the resource's stations, as RFC 4235 dialogs seen by the station."""
        from gateway.call.b2bua import CallState

        domain = self.b2bua.dialplan.domain
        entries: list[DialogEntry] = []
        for call in self.b2bua.calls.values():
            target = call.target
            if target is None or call.b is None:
                continue
            if resource.kind == "station" and target.station != resource.id:
                continue
            if resource.kind == "partner" and call.partner.id != resource.partner:
                continue
            ids = call.b.dialog_ids
            # Seen from the station: its tag is the remote one of our leg towards it.
            entries.append(
                DialogEntry(
                    id=call.id,
                    state="confirmed" if call.state is CallState.CONNECTED else "early",
                    direction="recipient",
                    call_id=ids[0] if ids is not None else None,
                    local_tag=ids[2] if ids is not None else None,
                    remote_tag=ids[1] if ids is not None else None,
                    local_identity=f"sip:{target.station}@{domain}",
                    remote_identity=f"sip:{call.kiosk.id}@{domain}",
                )
            )
        return entries

    # -- the HTTP availability view ------------------------------------------------------
    def availability(self, kiosk: Kiosk | None) -> list[dict[str, object]]:
        """One entry per service the kiosk offers (all services when no kiosk is named)."""
        dialplan = self.b2bua.dialplan
        now = self.b2bua.clock()
        names = sorted(kiosk.services) if kiosk is not None else sorted(dialplan.services)
        out: list[dict[str, object]] = []
        for name in names:
            service = dialplan.services.get(name)
            if service is None:
                continue
            desk = self.b2bua.desks.get(service.partner)
            if desk is None:
                continue
            out.append(self.service_entry(name, desk.availability(now), desk.local(now)))
        return out

    def service_entry(self, service: str, av: Availability, now_local: Any) -> dict[str, object]:
        """The JSON object of one service's availability."""
        label = self.b2bua.dialplan.services[service].label
        return {
            "service": service,
            "label": label,
            "partner": av.partner,
            "status": av.status.value,
            "queue_length": av.queue_length,
            "estimated_wait": av.estimated_wait,
            "closed_reason": av.closed_reason.value if av.closed_reason else None,
            "detail": av.detail or None,
            "next_opening": av.next_opening.isoformat() if av.next_opening else None,
            "next_opening_appointment": av.next_opening_appointment,
            "appointment_only": av.appointment_only,
            "stations_in_service": av.stations_in_service,
            "stations_free": av.stations_free,
            "note": availability_note(av, now_local),
        }
