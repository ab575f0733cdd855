"""The presence server on a fake clock: expiry, refresh, NOTIFY flow control, coalescing.

The server talks to the UA through a handful of calls (send a response, send a request,
index a dialog); here a recorder stands in for the UA so that time can be moved by hand.
The same flows run over real sockets in tests/interop/test_presence_wire.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fakes import FakeScheduler

from gateway.presence.server import (
    EventName,
    PresenceServer,
    Resource,
    Subscription,
    Watcher,
)
from gateway.sip.message import Request, Response, make_response, parse_message


@dataclass
class Views:
    note: str = "Disponible"
    renders: int = 0

    def resolve(self, user: str) -> Resource | None:
        return Resource("partner", "caf", "caf", f"sip:{user}@x") if user == "caf" else None

    def may_watch(self, watcher: Watcher, resource: Resource) -> bool:
        return watcher.kiosk == "k1"

    def render(self, resource: Resource, event: EventName, version: int) -> bytes:
        self.renders += 1
        return f"{event}:{self.note}:{version if event == 'dialog' else ''}".encode()


@dataclass
class Endpoint:
    responses: list[Response] = field(default_factory=list)

    def send_response(self, key: str, response: Response) -> None:
        self.responses.append(response)

    def via_for(self, transport: str, branch: str) -> str:
        return f"SIP/2.0/UDP 127.0.0.1:5060;branch={branch}"

    def contact_uri(self, transport: str, user: str = "vrgw") -> str:
        return "sip:vrgw@127.0.0.1:5060"


@dataclass
class Ua:
    endpoint: Endpoint = field(default_factory=Endpoint)
    sent: list[tuple[Any, Request]] = field(default_factory=list)
    dialogs: dict[tuple[str, str], Any] = field(default_factory=dict)
    subscribe_handler: Any = None
    scheduler: FakeScheduler = field(default_factory=lambda: FakeScheduler(1000.0))

    def send_request(self, owner: Any, request: Request, dest: Any, transport: str) -> str:
        self.sent.append((owner, request))
        return f"key{len(self.sent)}"

    def register_dialog(self, owner: Any, dialog: Any) -> None:
        self.dialogs[(dialog.call_id, dialog.local_tag)] = owner

    def forget_dialog(self, key: tuple[str, str]) -> None:
        self.dialogs.pop(key, None)


def subscribe(
    expires: int = 600, event: str = "presence", user: str = "caf", cseq: int = 1
) -> Request:
    text = (
        f"SUBSCRIBE sip:{user}@x SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.9:5062;branch=z9hG4bK1\r\n"
        "Max-Forwards: 70\r\nFrom: <sip:k1@x>;tag=a\r\nTo: <sip:caf@x>\r\nCall-ID: c1\r\n"
        f"CSeq: {cseq} SUBSCRIBE\r\nContact: <sip:k1@127.0.0.9:5062>\r\nEvent: {event}\r\n"
        f"Expires: {expires}\r\nContent-Length: 0\r\n\r\n"
    )
    msg = parse_message(text.encode())
    assert isinstance(msg, Request)
    return msg


def make() -> tuple[PresenceServer, Ua, Views, FakeScheduler]:
    ua, views = Ua(), Views()
    server = PresenceServer(ua, views, now=ua.scheduler.now)  # type: ignore[arg-type]
    return server, ua, views, ua.scheduler


def only_sub(server: PresenceServer) -> Subscription:
    (sub,) = server.subscriptions.values()
    return sub


def answer(ua: Ua, index: int, status: int = 200) -> None:
    owner, request = ua.sent[index]
    owner.on_response(make_response(request, status), f"key{index + 1}")


def test_subscribe_notify_and_expiry() -> None:
    server, ua, views, clock = make()
    server.on_subscribe(subscribe(120), "t1", ("127.0.0.9", 5062), "udp", Watcher("k1", None))
    assert ua.endpoint.responses[-1].status == 200
    assert ua.endpoint.responses[-1].headers.get("expires") == "120"
    assert len(ua.sent) == 1
    state = ua.sent[0][1].headers.get("subscription-state")
    assert state == "active;expires=120"
    answer(ua, 0)
    # Nothing changed: no NOTIFY. A change: one NOTIFY, even if announced twice.
    server.changed("caf")
    clock.advance(0)
    assert len(ua.sent) == 1
    views.note = "Occupé"
    server.changed("caf")
    server.changed("caf")
    clock.advance(0)
    assert len(ua.sent) == 2 and b"Occup" in ua.sent[1][1].body
    answer(ua, 1)
    # Expiry: 120 s later the subscription ends with reason=timeout, by its own timer.
    clock.advance(119)
    assert server.count == 1
    clock.advance(1.1)
    assert server.count == 0
    assert ua.sent[-1][1].headers.get("subscription-state") == "terminated;reason=timeout"
    answer(ua, len(ua.sent) - 1)
    assert ua.dialogs == {}


def test_one_notify_in_flight_then_the_latest_state() -> None:
    server, ua, views, clock = make()
    server.on_subscribe(subscribe(), "t1", ("127.0.0.9", 5062), "udp", Watcher("k1", None))
    views.note = "Occupé - 1"
    server.changed("caf")
    clock.advance(0)
    views.note = "Occupé - 2"
    server.changed("caf")
    clock.advance(0)
    assert len(ua.sent) == 1  # the first NOTIFY is still unanswered
    answer(ua, 0)
    assert len(ua.sent) == 2 and b"Occup\xc3\xa9 - 2" in ua.sent[1][1].body


def test_refresh_and_481_and_timeout() -> None:
    server, ua, _views, clock = make()
    server.on_subscribe(subscribe(300), "t1", ("127.0.0.9", 5062), "udp", Watcher("k1", None))
    sub = only_sub(server)
    answer(ua, 0)
    refresh = subscribe(600, cseq=2)
    clock.advance(200)
    sub.on_request(refresh, "t2")
    assert ua.endpoint.responses[-1].status == 200
    assert sub.expires_at == clock.now() + 600
    assert len(ua.sent) == 2  # a NOTIFY follows every refresh
    answer(ua, 1, status=481)
    assert server.count == 0 and ua.dialogs == {}
    # A NOTIFY that is never answered ends the subscription too.
    server.on_subscribe(subscribe(), "t3", ("127.0.0.9", 5062), "udp", Watcher("k1", None))
    sub = only_sub(server)
    sub.on_timeout(sub.in_flight or "")
    assert server.count == 0


def test_refusals() -> None:
    server, ua, _views, _clock = make()
    cases = [
        (subscribe(event="message-summary"), 489),
        (subscribe(user="impots"), 404),
        (subscribe(expires=30), 423),
    ]
    for request, status in cases:
        server.on_subscribe(request, "t", ("127.0.0.9", 5062), "udp", Watcher("k1", None))
        assert ua.endpoint.responses[-1].status == status
    server.on_subscribe(subscribe(), "t", ("127.0.0.9", 5062), "udp", Watcher("k2", None))
    assert ua.endpoint.responses[-1].status == 403
    assert server.count == 0 and not ua.sent


def test_dialog_versions_count_documents_sent() -> None:
    server, ua, views, clock = make()
    server.on_subscribe(
        subscribe(event="dialog"), "t1", ("127.0.0.9", 5062), "udp", Watcher("k1", None)
    )
    answer(ua, 0)
    server.changed("caf")
    clock.advance(0)
    assert len(ua.sent) == 1  # the version number alone is no change
    views.note = "x"
    server.changed("caf")
    clock.advance(0)
    assert [r.body for _, r in ua.sent] == [b"dialog:Disponible:1", b"dialog:x:2"]
