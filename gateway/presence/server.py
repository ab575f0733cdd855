"""The presence server: SUBSCRIBE/NOTIFY for partners and stations (RFC 6665).

A kiosk subscribes to ``sip:caf@domain`` (a service, by name or number) and learns
whether the partner is open, busy (with its queue), closed (and when it opens) or
offline; an agent's station may subscribe to a colleague's station for a busy-lamp
field. Two event packages are served:

* ``presence`` (RFC 3856) with a PIDF body (RFC 3863) carrying RPID activities
  (RFC 4480) and a French note;
* ``dialog`` (RFC 4235) with the dialogs of the stations behind the resource.

Each subscription is a dialog of its own (RFC 6665 4.1): the SUBSCRIBE gets 200, then a
NOTIFY follows at once and after every change of the body; refreshes re-arm the expiry
and an expiry or an unsubscribe ends with ``Subscription-State: terminated``. A NOTIFY
answered 481, or not answered at all, ends the subscription (RFC 6665 4.2.2).

The server is the transaction user of its dialogs; the content comes from a
:class:`ResourceViews` provider so that this module knows nothing of calls or queues.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

from gateway.call.scheduler import Timer
from gateway.call.sip_ua import Watcher
from gateway.sip.dialog import Dialog, new_tag
from gateway.sip.errors import SipParseError
from gateway.sip.message import Request, Response, make_response
from gateway.sip.transaction import Address, new_branch
from gateway.sip.uri import SipUri

if TYPE_CHECKING:
    from gateway.call.sip_ua import SipUserAgent

log = logging.getLogger(__name__)

EventName = Literal["presence", "dialog"]
CONTENT_TYPES: dict[str, str] = {
    "presence": "application/pidf+xml",
    "dialog": "application/dialog-info+xml",
}
ALLOW_EVENTS = "presence, dialog"
MIN_EXPIRES = 60  # RFC 6665 4.2.1.1: a notifier may refuse shorter intervals with 423
MAX_EXPIRES = 3600
DEFAULT_EXPIRES = 3600  # RFC 3856 6.4 and RFC 4235 3.2: one hour when Expires is absent


@dataclass(frozen=True, slots=True)
class Resource:
    """What a subscription watches: a partner or a station."""

    kind: Literal["partner", "station"]
    id: str
    partner: str  # the partner itself, or the station's partner
    uri: str  # the entity URI written in documents


class ResourceViews(Protocol):
    """What the server needs from the rest of the gateway."""

    def resolve(self, user: str) -> Resource | None:
        """The resource a Request-URI user names (service name or number, station id)."""

    def may_watch(self, watcher: Watcher, resource: Resource) -> bool:
        """Whether this watcher may see this resource."""

    def render(self, resource: Resource, event: EventName, version: int) -> bytes:
        """The current body of ``event`` for ``resource`` (dialog-info needs ``version``)."""


class Subscription:
    """One subscription dialog (RFC 6665 4.2) and the NOTIFYs it sends."""

    def __init__(
        self,
        server: PresenceServer,
        dialog: Dialog,
        event: EventName,
        event_header: str,
        resource: Resource,
        transport: str,
        expires_at: float,
    ) -> None:
        self.server = server
        self.dialog = dialog
        self.event = event
        self.event_header = event_header  # echoed with its id parameter (RFC 6665 8.2.1)
        self.resource = resource
        self.transport = transport
        self.expires_at = expires_at
        self.version = 0  # dialog-info version (RFC 4235 4.1.2): +1 per document sent
        self.last_body: bytes | None = None
        self.in_flight: str | None = None  # client key of the NOTIFY awaiting its answer
        self.dirty = False  # a change arrived while a NOTIFY was in flight
        self.terminated = False
        self.sent = 0

    @property
    def key(self) -> tuple[str, str]:
        """The dialog index (Call-ID, our tag)."""
        return (self.dialog.call_id, self.dialog.local_tag)

    def notify(self, now: float, *, force: bool = False, terminate: str | None = None) -> None:
        """Send a NOTIFY with the current state if it changed (or ``force``)."""
        if self.terminated:
            return
        if self.in_flight is not None and terminate is None:
            self.dirty = True
            return
        views = self.server.views
        # Rendered with the version last sent, so that only a real change differs.
        unchanged = (
            not force
            and terminate is None
            and self.last_body is not None
            and views.render(self.resource, self.event, self.version) == self.last_body
        )
        if unchanged:
            return
        self.version += 1
        body = views.render(self.resource, self.event, self.version)
        self.last_body = body
        if terminate is not None:
            state = f"terminated;reason={terminate}"
            self.terminated = True
        else:
            state = f"active;expires={max(0, int(self.expires_at - now))}"
        ua = self.server.ua
        request = self.dialog.new_request(
            "NOTIFY",
            ua.endpoint.via_for(self.transport, new_branch()),
            ua.endpoint.contact_uri(self.transport),
            body=body,
            content_type=CONTENT_TYPES[self.event],
            extra=[("Event", self.event_header), ("Subscription-State", state)],
        )
        self.in_flight = ua.send_request(self, request, self.dialog.destination(), self.transport)
        self.sent += 1
        if self.terminated:
            self.server.forget(self)

    # -- the dialog user --------------------------------------------------------------
    def on_request(self, request: Request, key: str) -> None:
        """An in-dialog request: a refresh or an unsubscribe (RFC 6665 4.2.1.2)."""
        if request.method != "SUBSCRIBE":
            self.server.ua.endpoint.send_response(
                key, make_response(request, 405, extra=[("Allow", "SUBSCRIBE")])
            )
            return
        if not self.dialog.check_remote_cseq(request):
            self.server.ua.endpoint.send_response(key, make_response(request, 500))
            return
        self.server.refresh(self, request, key)

    def on_response(self, response: Response, key: str) -> None:
        """The answer to our NOTIFY."""
        if response.status < 200 or key != self.in_flight:
            return
        self.in_flight = None
        if self.terminated:
            self.server.ua.forget_dialog(self.key)
            return
        if response.status in (404, 405, 408, 410, 416, 480, 481, 482, 483, 484, 485, 489):
            # RFC 6665 4.2.2: these end the subscription; others leave it to the next NOTIFY.
            log.info("subscription %s ended by NOTIFY answer %d", self.key, response.status)
            self.terminated = True
            self.server.forget(self)
            self.server.ua.forget_dialog(self.key)
            return
        if self.dirty and not self.terminated:
            self.dirty = False
            self.notify(self.server.now())

    def on_timeout(self, key: str) -> None:
        """No answer to our NOTIFY: the subscriber is gone (RFC 6665 4.2.2)."""
        if key != self.in_flight:
            return
        self.in_flight = None
        self.terminated = True
        self.server.forget(self)
        self.server.ua.forget_dialog(self.key)


class PresenceServer:
    """Accepts subscriptions and notifies changes within one loop turn."""

    def __init__(
        self,
        ua: SipUserAgent,
        views: ResourceViews,
        *,
        now: Callable[[], float],
    ) -> None:
        self.ua = ua
        self.views = views
        self.now = now
        self.subscriptions: dict[tuple[str, str], Subscription] = {}
        self._dirty: set[str] = set()  # partners whose resources may have changed
        self._flush_handle: Timer | None = None
        self._expiry: Timer | None = None
        self.notifies_sent = 0
        ua.subscribe_handler = self

    # -- new subscriptions ------------------------------------------------------------
    def on_subscribe(
        self, request: Request, key: str, source: Address, transport: str, watcher: Watcher
    ) -> None:
        """An initial SUBSCRIBE (RFC 6665 4.2.1.1), already authenticated by the UA."""
        endpoint = self.ua.endpoint
        event_header = (request.headers.get("event") or "").strip()
        package = event_header.split(";", 1)[0].strip().lower()
        if package not in CONTENT_TYPES:
            endpoint.send_response(
                key,
                make_response(
                    request, 489, to_tag=new_tag(), extra=[("Allow-Events", ALLOW_EVENTS)]
                ),
            )
            return
        event: EventName = "presence" if package == "presence" else "dialog"
        accept = [a.strip().split(";")[0].lower() for a in request.headers.get_all("accept")]
        if accept and CONTENT_TYPES[event] not in accept and "*/*" not in accept:
            endpoint.send_response(
                key,
                make_response(
                    request, 406, to_tag=new_tag(), extra=[("Accept", CONTENT_TYPES[event])]
                ),
            )
            return
        expires = _expires(request)
        if expires is None:
            endpoint.send_response(key, make_response(request, 400, "Bad Expires"))
            return
        if 0 < expires < MIN_EXPIRES:
            endpoint.send_response(
                key,
                make_response(
                    request, 423, to_tag=new_tag(), extra=[("Min-Expires", str(MIN_EXPIRES))]
                ),
            )
            return
        uri = request.uri
        resource = self.views.resolve(uri.user_unescaped or "" if isinstance(uri, SipUri) else "")
        if resource is None:
            endpoint.send_response(key, make_response(request, 404, to_tag=new_tag()))
            return
        if not self.views.may_watch(watcher, resource):
            endpoint.send_response(key, make_response(request, 403, to_tag=new_tag()))
            return
        tag = new_tag()
        try:
            dialog = Dialog.as_uas(request, tag, source, transport)
        except SipParseError as exc:
            endpoint.send_response(key, make_response(request, 400, exc.reason))
            return
        now = self.now()
        granted = min(expires, MAX_EXPIRES)
        sub = Subscription(self, dialog, event, event_header, resource, transport, now + granted)
        endpoint.send_response(
            key,
            make_response(
                request,
                200,
                to_tag=tag,
                extra=[
                    ("Expires", str(granted)),
                    ("Contact", f"<{endpoint.contact_uri(transport)}>"),
                ],
            ),
        )
        if granted == 0:
            # A fetch (RFC 6665 4.4.3): one NOTIFY with the state, then it is over.
            self.ua.register_dialog(sub, dialog)
            sub.notify(now, force=True, terminate="timeout")
            return
        self.subscriptions[sub.key] = sub
        self.ua.register_dialog(sub, dialog)
        log.info(
            "subscription to %s %s (%s) from %s:%s for %d s",
            resource.kind,
            resource.id,
            event,
            source[0],
            source[1],
            granted,
        )
        sub.notify(now, force=True)
        self._arm_expiry()

    def refresh(self, sub: Subscription, request: Request, key: str) -> None:
        """A refresh or unsubscribe within the dialog; answered 200 then NOTIFY (4.2.1.2)."""
        expires = _expires(request)
        endpoint = self.ua.endpoint
        if expires is None:
            endpoint.send_response(key, make_response(request, 400, "Bad Expires"))
            return
        if 0 < expires < MIN_EXPIRES:
            endpoint.send_response(
                key, make_response(request, 423, extra=[("Min-Expires", str(MIN_EXPIRES))])
            )
            return
        now = self.now()
        granted = min(expires, MAX_EXPIRES)
        sub.dialog.update_target(request)
        endpoint.send_response(
            key,
            make_response(
                request,
                200,
                extra=[
                    ("Expires", str(granted)),
                    ("Contact", f"<{endpoint.contact_uri(sub.transport)}>"),
                ],
            ),
        )
        if granted == 0:
            sub.notify(now, force=True, terminate="timeout")
            return
        sub.expires_at = now + granted
        sub.notify(now, force=True)
        self._arm_expiry()

    def forget(self, sub: Subscription) -> None:
        """Drop a finished subscription (its last NOTIFY may still be in flight)."""
        self.subscriptions.pop(sub.key, None)
        if sub.in_flight is None:
            self.ua.forget_dialog(sub.key)

    # -- changes ----------------------------------------------------------------------
    def changed(self, partner: str) -> None:
        """Something about ``partner`` (or one of its stations) may have changed."""
        if not self.subscriptions:
            return  # the common case under load: nobody watches, nothing to render
        self._dirty.add(partner)
        if self._flush_handle is None:
            self._flush_handle = self.ua.scheduler.call_later(0.0, self.flush)

    def changed_all(self) -> None:
        """Everything may have changed (dialplan reload, clock set by a test)."""
        for sub in self.subscriptions.values():
            self._dirty.add(sub.resource.partner)
        if self._flush_handle is None and self._dirty:
            self._flush_handle = self.ua.scheduler.call_later(0.0, self.flush)

    def flush(self) -> None:
        """Send the NOTIFYs of every subscription whose body changed."""
        self._flush_handle = None
        dirty, self._dirty = self._dirty, set()
        if not dirty:
            return
        now = self.now()
        for sub in list(self.subscriptions.values()):
            if sub.resource.partner in dirty:
                before = sub.sent
                sub.notify(now)
                self.notifies_sent += sub.sent - before

    # -- expiry -----------------------------------------------------------------------
    def _arm_expiry(self) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        if not self.subscriptions:
            return
        soonest = min(s.expires_at for s in self.subscriptions.values())
        delay = max(0.0, soonest - self.now())
        self._expiry = self.ua.scheduler.call_later(delay + 0.01, self.expire)

    def expire(self) -> None:
        """End the subscriptions not refreshed in time (RFC 6665 4.2.2, reason=timeout)."""
        self._expiry = None
        now = self.now()
        for sub in list(self.subscriptions.values()):
            if sub.expires_at <= now:
                log.info("subscription %s to %s expired", sub.key, sub.resource.id)
                sub.notify(now, force=True, terminate="timeout")
        self._arm_expiry()

    async def close(self) -> None:
        """Gateway shutdown: tell every subscriber (reason=deactivated, RFC 6665 4.2.2)."""
        if self._expiry is not None:
            self._expiry.cancel()
        if self._flush_handle is not None:
            self._flush_handle.cancel()
        now = self.now()
        for sub in list(self.subscriptions.values()):
            sub.notify(now, force=True, terminate="deactivated")

    @property
    def count(self) -> int:
        """Active subscriptions."""
        return len(self.subscriptions)


def _expires(request: Request) -> int | None:
    """The requested duration: the Expires header, else the package default."""
    raw = request.headers.get("expires")
    if raw is None:
        return DEFAULT_EXPIRES
    raw = raw.strip()
    return int(raw) if raw.isdigit() and len(raw) <= 10 else None
