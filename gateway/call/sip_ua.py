"""The SIP user-agent core of the gateway: the transaction user of the endpoint.

It dispatches what the transaction layer reports: new INVITEs to the controller, in-dialog
requests and responses to the leg that owns them, REGISTER to the registrar,
OPTIONS answered here. Authentication (RFC 3261 22 with RFC 8760 digests) is decided
here too, so every entry point applies the same rules.

All SIP policy of a new call lives here, not in the controller: loops and Max-Forwards
(RFC 3261 16.3), unsupported extensions (8.2.2.3), session-timer negotiation and its 422
(RFC 4028), the SDP offer (488 when it cannot be parsed) and the ``X-Visio-*`` context
headers. What reaches the controller is a neutral :class:`CallAttempt`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from gateway.call.leg import CallLeg
from gateway.call.scheduler import Scheduler
from gateway.call.sip_leg import ALLOW, CONTEXT_PREFIX, SUPPORTED, SipLeg
from gateway.dialplan import Dialplan, Kiosk
from gateway.edge.sip_transport import SipEndpoint
from gateway.model.events import CallAttempt, Side
from gateway.model.sdp import SdpError, SessionDescription
from gateway.sip.auth import (
    AuthParseError,
    AuthResult,
    ChallengeWatch,
    DigestAuthenticator,
    parse_challenge_params,
)
from gateway.sip.dialog import Dialog, new_call_id
from gateway.sip.errors import SipParseError
from gateway.sip.guard import (
    AuthGuard,
    Ban,
    BanKind,
    FloodGuard,
    FloodSettings,
    GuardSettings,
    ScanWatch,
)
from gateway.sip.message import Request, Response, make_response
from gateway.sip.session_timer import TooSmall, negotiate_as_uas
from gateway.sip.transaction import (
    AckTimeout,
    Address,
    RequestReceived,
    ResponseReceived,
    StrayResponse,
    TransactionEvent,
    TransactionTimeout,
    TransportError,
)
from gateway.sip.uri import SipUri, Uri, parse_uri
from gateway.state.store import Binding, Store

log = logging.getLogger(__name__)

SUPPORTED_OPTIONS = frozenset({"timer"})  # option tags we implement (RFC 4028)
# A kiosk marks a caller who booked this slot; such callers go first in the queue.
APPOINTMENT = "appointment"


class DialogUser(Protocol):
    """Whoever owns a dialog or a client transaction: a call leg or a subscription."""

    def on_request(self, request: Request, key: str) -> None:
        """An in-dialog request."""

    def on_response(self, response: Response, key: str) -> None:
        """A response to a request this owner sent."""

    def on_timeout(self, key: str) -> None:
        """A request this owner sent got no final response (or could not be sent)."""


@dataclass(frozen=True, slots=True)
class Watcher:
    """Who subscribes, as authentication tells: a kiosk (its services only) or an agent."""

    kiosk: str | None
    username: str | None


class SubscribeHandler(Protocol):
    """What the UA hands a new, authenticated SUBSCRIBE to (the presence server)."""

    def on_subscribe(
        self, request: Request, key: str, source: Address, transport: str, watcher: Watcher
    ) -> None:
        """A watcher subscribes to a resource."""


class InviteHandler(Protocol):
    """What the UA hands a new, authenticated call to (the controller)."""

    def on_attempt(self, leg: CallLeg, attempt: CallAttempt) -> None:
        """A kiosk starts a call; ``leg`` already owns the INVITE's server transaction."""


# init=False: the __init__ is written out so that mypyc compiles it (docs/architecture.md,
# "Compiled, optionally"; tests/model/test_written_out_inits.py checks it).
@dataclass(frozen=True, slots=True, init=False)
class AuthOutcome:
    """Who sent a request, as far as authentication can tell."""

    kiosk: Kiosk | None
    username: str | None
    challenge: bool = False
    stale: bool = False
    reason: str = ""

    def __init__(
        self,
        kiosk: Kiosk | None,
        username: str | None,
        challenge: bool = False,
        stale: bool = False,
        reason: str = "",
    ) -> None:
        object.__setattr__(self, "kiosk", kiosk)
        object.__setattr__(self, "username", username)
        object.__setattr__(self, "challenge", challenge)
        object.__setattr__(self, "stale", stale)
        object.__setattr__(self, "reason", reason)


class AuthStats:
    """Authentication figures read by the metrics exporter."""

    __slots__ = ("unanswered",)

    def __init__(self) -> None:
        # Challenges never answered, by login ("unknown" for a name no account has).
        self.unanswered: dict[str, int] = {}


def flood_settings(dialplan: Dialplan) -> FloodSettings:
    """The per-source message rate limit of a dialplan's ``auth.bans``."""
    bans = dialplan.auth.bans
    return FloodSettings(rate=bans.flood_rate, burst=bans.flood_burst, ban_time=bans.duration)


def guard_settings(dialplan: Dialplan) -> GuardSettings:
    """The ban limits of a dialplan's ``auth.bans``."""
    bans = dialplan.auth.bans
    return GuardSettings(
        source_failures=bans.source_failures,
        account_failures=bans.account_failures,
        window=bans.window,
        ban_time=bans.duration,
    )


class SipUserAgent:
    """Dispatches transaction events; owns dialogs, registrar and authentication."""

    def __init__(
        self,
        endpoint: SipEndpoint,
        store: Store,
        dialplan: Dialplan,
        scheduler: Scheduler,
        *,
        wall_clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """``monotonic`` times bans and unanswered challenges (never the test clock)."""
        self.endpoint = endpoint
        self.store = store
        self.scheduler = scheduler
        self.wall_clock = wall_clock
        self.invite_handler: InviteHandler | None = None
        self.subscribe_handler: SubscribeHandler | None = None
        self.registration_hook: Callable[[str], None] | None = None  # AOR whose bindings changed
        self.dialogs: dict[tuple[str, str], DialogUser] = {}
        self.client_owner: dict[str, DialogUser] = {}
        self.server_invites: dict[str, SipLeg] = {}
        self.dialplan = dialplan
        self.auth = self._make_auth(dialplan)
        self.monotonic = monotonic
        self.guard = AuthGuard(guard_settings(dialplan))
        # A unit that cannot answer gives up within a transaction's lifetime (64*T1).
        self.challenge_watch = ChallengeWatch(timeout=64 * endpoint.layer.t1)
        self.scans = ScanWatch()
        # Checked by the transport before a datagram is parsed (gateway/edge).
        self.flood = FloodGuard(flood_settings(dialplan))
        endpoint.flood = self.flood
        self.auth_stats = AuthStats()
        self._watch_timer = False
        endpoint.tu = self

    def _make_auth(self, dialplan: Dialplan) -> DigestAuthenticator:
        return DigestAuthenticator(
            dialplan.auth.realm,
            dialplan.secret_for,
            algorithms=dialplan.auth.algorithms,
            nonce_ttl=dialplan.auth.nonce_ttl,
            algorithms_for=dialplan.algorithms_for,
        )

    def set_dialplan(self, dialplan: Dialplan) -> None:
        """Switch to a newly loaded dialplan; calls in progress keep their routing."""
        self.dialplan = dialplan
        self.auth = self._make_auth(dialplan)
        self.guard.settings = guard_settings(dialplan)  # bans in force stay in force
        self.flood.settings = flood_settings(dialplan)

    # -- bookkeeping shared with the legs ------------------------------------------------
    def new_call_id(self) -> str:
        """A fresh Call-ID for an outgoing leg."""
        return new_call_id(self.endpoint.host)

    def register_dialog(self, leg: DialogUser, dialog: Dialog) -> None:
        """Route in-dialog traffic for (Call-ID, our tag) to ``leg``."""
        self.dialogs[(dialog.call_id, dialog.local_tag)] = leg

    def forget_dialog(self, key: tuple[str, str]) -> None:
        """Stop routing in-dialog traffic of (Call-ID, our tag)."""
        self.dialogs.pop(key, None)

    def send_request(self, leg: DialogUser, request: Request, dest: Address, transport: str) -> str:
        """Send a request for a leg and remember the leg owns its transaction."""
        key = self.endpoint.send_request(request, dest, transport)
        self.client_owner[key] = leg
        return key

    def forget_leg(self, leg: SipLeg) -> None:
        """Drop the dialog index of a finished leg (its transactions end on their own)."""
        if leg.dialog is not None:
            self.dialogs.pop((leg.dialog.call_id, leg.dialog.local_tag), None)
        if leg.invite_key is not None and leg.uas:
            self.server_invites.pop(leg.invite_key, None)

    @property
    def open_dialogs(self) -> int:
        """Dialogs currently indexed (0 once every call ended)."""
        return len(self.dialogs)

    # -- authentication (RFC 3261 22.3) ------------------------------------------------------
    def authenticate(self, request: Request, source: Address) -> AuthOutcome:
        """Identify the sender: a kiosk trusted by address, or a digest login."""
        header = self._credentials(request, "proxy-authorization") or self._credentials(
            request, "authorization"
        )
        if header is None:
            kiosk = self.dialplan.kiosk_for_address(source[0])
            if kiosk is not None:
                return AuthOutcome(kiosk, None)
            return AuthOutcome(None, None, challenge=True, reason="no credentials")
        result = self._verify(request, header)
        self._answered(request, source, result)
        if not result.ok:
            return AuthOutcome(
                None, result.username, challenge=True, stale=result.stale, reason=result.reason
            )
        username = result.username or ""
        return AuthOutcome(self.dialplan.kiosk_for_user(username), username)

    def _credentials(self, request: Request, name: str) -> str | None:
        """The one Authorization or Proxy-Authorization value to verify (RFC 7616 3.7).

        A client answering the SHA-256 and the MD5 challenge of one realm sends two
        values; the authenticator picks the one its login prefers.
        """
        values = request.headers.by_name().get(name)
        if not values:
            return None
        return self.auth.select(values) or values[0]

    # -- failed logins, bans and unanswered challenges ---------------------------------
    def _answered(self, request: Request, source: Address, result: AuthResult) -> None:
        """Credentials arrived: the challenge was understood; a failure counts to bans."""
        claimed = claimed_login(request)
        self.challenge_watch.answered(source[0], claimed)
        if result.ok or result.stale:
            return
        for ban in self.guard.failed(source[0], result.username or claimed, self.monotonic()):
            what = "source" if ban.kind is BanKind.SOURCE else "login"
            log.warning(
                "banned %s %s for %.0f s after %d failed authentications in %.0f s "
                "(last from %s, login %r, %s)",
                what,
                ban.key,
                ban.until - ban.since,
                ban.failures,
                self.guard.settings.window,
                source[0],
                result.username,
                result.reason,
            )
            self.scheduler.call_later(ban.until - ban.since + 0.05, self._bans_expired)

    def _bans_expired(self) -> None:
        for ban in self.guard.expire(self.monotonic()):
            log.warning("ban of %s %s expired", ban.kind.value, ban.key)

    def refused_by_ban(self, request: Request, key: str, source: Address) -> bool:
        """Answer 403 to a request from a banned source or for a banned login.

        The same answer whether the login exists or not: bans count claimed names alike.
        """
        ban = self.guard.banned(source[0], claimed_login(request), self.monotonic())
        if ban is None:
            return False
        log.debug(
            "%s from %s refused: %s %s banned", request.method, source[0], ban.kind.value, ban.key
        )
        self.endpoint.send_response(key, make_response(request, 403, to_tag=new_tag_for(request)))
        return True

    def lift_ban(self, kind: BanKind, key: str) -> Ban | None:
        """End a ban now (admin API); the ban lifted, or None."""
        ban = self.flood.lift(key) if kind is BanKind.FLOOD else self.guard.lift(kind, key)
        if ban is not None:
            log.warning("ban of %s %s lifted by an operator", kind.value, key)
        return ban

    def _watch_challenge(
        self, request: Request, source: Address, algorithms: tuple[str, ...]
    ) -> None:
        self.challenge_watch.challenged(
            source[0], claimed_login(request), algorithms, self.monotonic()
        )
        if not self._watch_timer:
            self._watch_timer = True
            self.scheduler.call_later(self.challenge_watch.timeout + 0.05, self._check_unanswered)

    def _check_unanswered(self) -> None:
        """Log and count the challenges nobody answered (a likely algorithm mismatch)."""
        self._watch_timer = False
        now = self.monotonic()
        for item in self.challenge_watch.expired(now):
            if self.scans.flagged(item.source, now):
                # A scanner guessing logins answers no challenge: not a unit's algorithm
                # mismatch (its scan is logged and counted already).
                log.debug("unanswered challenge to scanning source %s", item.source)
                continue
            user = item.username
            known = user is not None and self.dialplan.secret_for(user) is not None
            label = user if known and user is not None else "unknown"
            self.auth_stats.unanswered[label] = self.auth_stats.unanswered.get(label, 0) + 1
            if known:
                log.warning(
                    "%s at %s never answered the digest challenge (%s): likely a digest "
                    "algorithm it lacks; give its login its own algorithms in the dialplan",
                    user,
                    item.source,
                    ", ".join(item.algorithms),
                )
            else:
                log.info("unanswered challenge to %s for %r", item.source, user)
        deadline = self.challenge_watch.next_deadline()
        if deadline is not None:
            self._watch_timer = True
            delay = max(0.0, deadline - self.monotonic()) + 0.05
            self.scheduler.call_later(delay, self._check_unanswered)

    def _verify(self, request: Request, header: str) -> AuthResult:
        """Check a digest and that it was computed for this Request-URI (RFC 7616 3.4.6).

        Without the second check, credentials captured on one request could be replayed
        on another target within the nonce's lifetime.
        """
        result = self.auth.verify(request.method, header)
        if not result.ok:
            return result
        try:
            digest_uri = parse_challenge_params(header)[1].get("uri", "")
            same = digest_uri == request.uri_text or _same_target(
                parse_uri(digest_uri), request.uri
            )
        except (AuthParseError, SipParseError):
            same = False
        if not same:
            return AuthResult(False, result.username, reason="digest uri does not match")
        return result

    def challenge(
        self, request: Request, key: str, source: Address, *, proxy: bool, stale: bool
    ) -> None:
        """Answer 401 or 407 with one challenge per algorithm of the claimed login
        (RFC 8760 2.4, RFC 7616 3.7), and watch for its answer."""
        name = "Proxy-Authenticate" if proxy else "WWW-Authenticate"
        username = claimed_login(request)
        extra = [(name, value) for value in self.auth.challenges(stale=stale, username=username)]
        self._watch_challenge(request, source, self.auth.algorithms_of(username))
        self.endpoint.send_response(
            key,
            make_response(request, 407 if proxy else 401, to_tag=new_tag_for(request), extra=extra),
        )

    # -- the transaction user --------------------------------------------------------------
    def handle_event(self, event: TransactionEvent) -> None:
        """Dispatch one transaction event (called by the endpoint)."""
        if isinstance(event, RequestReceived):
            self._on_request(event)
        elif isinstance(event, ResponseReceived):
            response = event.response
            if response.status >= 200:
                owner = self.client_owner.pop(event.key, None)
            else:
                owner = self.client_owner.get(event.key)
            if owner is not None:
                owner.on_response(response, event.key)
            elif 200 <= response.status < 300 and response.cseq.method == "INVITE":
                self._repeated_2xx(response)
        elif isinstance(event, StrayResponse):
            self._repeated_2xx(event.response)
        elif isinstance(event, TransactionTimeout | TransportError):
            if event.client:
                owner = self.client_owner.pop(event.key, None)
                if owner is not None:
                    owner.on_timeout(event.key)
            else:
                self.server_invites.pop(event.key, None)
        elif isinstance(event, AckTimeout):
            leg = self.server_invites.pop(event.key, None)
            if leg is not None:
                leg.on_ack_timeout()

    def _repeated_2xx(self, response: Response) -> None:
        """A 2xx to INVITE seen again: the dialog's leg repeats its ACK (13.2.2.4)."""
        leg = self.dialogs.get((response.call_id, response.from_.tag or ""))
        if isinstance(leg, SipLeg):
            leg.resend_ack(response)

    def _on_request(self, event: RequestReceived) -> None:
        request = event.request
        key = event.key
        if key is None:  # an ACK for a 2xx (13.2.2.4)
            leg = self.dialogs.get((request.call_id, request.to.tag or ""))
            if isinstance(leg, SipLeg):
                leg.on_ack(request)
            return
        method = request.method
        to_tag = request.to.tag
        if method == "CANCEL":
            self._on_cancel(request, key)
            return
        if to_tag is not None:
            leg = self.dialogs.get((request.call_id, to_tag))
            if leg is None:
                self.endpoint.send_response(key, make_response(request, 481))
            else:
                leg.on_request(request, key)
            return
        scan = self.scans.seen(
            event.source[0],
            claimed_login(request),
            request.headers.get("user-agent"),
            self.monotonic(),
        )
        if scan is not None:
            log.warning("probable SIP scan from %s: %s", event.source[0], scan)
        mf = request.headers.get("max-forwards")
        if mf is not None and int(mf) == 0 and method != "OPTIONS":
            self.endpoint.send_response(key, make_response(request, 483))
            return
        if method == "INVITE":
            self._on_new_invite(request, key, event.source, event.transport)
        elif method == "REGISTER":
            self._on_register(request, key, event.source, event.transport)
        elif method == "OPTIONS":
            self.endpoint.send_response(
                key,
                make_response(
                    request,
                    200,
                    to_tag=new_tag_for(request),
                    extra=[
                        ("Allow", ALLOW),
                        ("Accept", "application/sdp"),
                        ("Supported", SUPPORTED),
                    ],
                ),
            )
        elif method == "SUBSCRIBE":
            self._on_new_subscribe(request, key, event.source, event.transport)
        elif method in ("BYE", "INFO", "UPDATE", "PRACK"):
            self.endpoint.send_response(key, make_response(request, 481))
        elif method in ("MESSAGE", "NOTIFY", "PUBLISH", "REFER"):
            self.endpoint.send_response(key, make_response(request, 405, extra=[("Allow", ALLOW)]))
        else:
            self.endpoint.send_response(key, make_response(request, 501, extra=[("Allow", ALLOW)]))

    def _on_cancel(self, request: Request, key: str) -> None:
        """CANCEL (9.2): 200 to the CANCEL, then the INVITE's owner answers 487."""
        invite_key = self.endpoint.layer.find_invite_for_cancel(request)
        if invite_key is None:
            self.endpoint.send_response(key, make_response(request, 481))
            return
        self.endpoint.send_response(key, make_response(request, 200))
        leg = self.server_invites.get(invite_key)
        if leg is not None:
            leg.on_cancel()

    def _looped(self, request: Request) -> bool:
        """Our own sent-by in the Via list: the request came back to us (16.3 item 4)."""
        me_host, me_port = self.endpoint.host, self.endpoint.port
        for v in request.vias:  # noqa: SIM110 - any() over a generator costs more per call
            if v.host == me_host and (v.port or 5060) == me_port:
                return True
        return False

    def _on_new_invite(self, request: Request, key: str, source: Address, transport: str) -> None:
        endpoint = self.endpoint
        if self._looped(request):
            endpoint.send_response(key, make_response(request, 482))
            return
        unsupported = [
            tag
            for tag in request.headers.get_all("require") + request.headers.get_all("proxy-require")
            if tag.strip().lower() not in SUPPORTED_OPTIONS
        ]
        if unsupported:
            # RFC 3261 8.2.2.3: refuse what we cannot honour (100rel, precondition, ...).
            endpoint.send_response(
                key,
                make_response(
                    request,
                    420,
                    to_tag=new_tag_for(request),
                    extra=[("Unsupported", ", ".join(unsupported))],
                ),
            )
            return
        if self.refused_by_ban(request, key, source):
            return
        outcome = self.authenticate(request, source)
        if outcome.kiosk is None:
            if outcome.challenge:
                self.challenge(request, key, source, proxy=True, stale=outcome.stale)
            else:
                log.info("INVITE from %s refused: %s is not a kiosk", source[0], outcome.username)
                endpoint.send_response(
                    key, make_response(request, 403, to_tag=new_tag_for(request))
                )
            return
        st = self.dialplan.session_timer
        timer = negotiate_as_uas(request, expires=st.expires, min_se=st.min_se)
        if isinstance(timer, TooSmall):
            extra = [("Min-SE", str(timer.min_se))]
            response = make_response(request, 422, to_tag=new_tag_for(request), extra=extra)
            endpoint.send_response(key, response)
            return
        try:
            offer = SessionDescription.parse(request.body) if request.body else None
        except SdpError as exc:
            log.info("INVITE from %s refused: bad SDP offer: %s", outcome.kiosk.id, exc)
            extra = [("Warning", f'399 vrgw "{exc}"')]
            response = make_response(request, 488, to_tag=new_tag_for(request), extra=extra)
            endpoint.send_response(key, response)
            return
        # No 100 (Trying) here: the server transaction sends one if nothing else has
        # gone out after TRYING_DELAY (RFC 3261 17.2.1); a station that rings at once
        # makes it needless.
        leg = SipLeg(self, Side.A, transport=transport, peer=source)
        leg.accept_invite(request, key, timer)
        self.server_invites[key] = leg
        if self.invite_handler is None:
            endpoint.send_response(key, make_response(request, 503, to_tag=leg.local_tag))
            return
        self.invite_handler.on_attempt(leg, attempt_of(request, outcome.kiosk, offer))

    def _on_new_subscribe(
        self, request: Request, key: str, source: Address, transport: str
    ) -> None:
        """A SUBSCRIBE outside any dialog: authenticate like an INVITE, then presence."""
        if self.subscribe_handler is None:
            self.endpoint.send_response(
                key,
                make_response(
                    request, 489, to_tag=new_tag_for(request), extra=[("Allow-Events", "")]
                ),
            )
            return
        if self.refused_by_ban(request, key, source):
            return
        outcome = self.authenticate(request, source)
        if (outcome.kiosk is None and outcome.username is None) or outcome.challenge:
            self.challenge(request, key, source, proxy=False, stale=outcome.stale)
            return
        watcher = Watcher(outcome.kiosk.id if outcome.kiosk else None, outcome.username)
        self.subscribe_handler.on_subscribe(request, key, source, transport, watcher)

    # -- registrar (RFC 3261 10.3) ---------------------------------------------------------
    def _on_register(self, request: Request, key: str, source: Address, transport: str) -> None:
        if self.refused_by_ban(request, key, source):
            return
        outcome = self.authenticate_login(request, source)
        if outcome is not None:
            self.challenge(request, key, source, proxy=False, stale=outcome)
            return
        self.scheduler.spawn(self._register(request, key, source, transport))

    def authenticate_login(self, request: Request, source: Address) -> bool | None:
        """None when a REGISTER carries valid credentials for its To user; else the stale flag."""
        header = self._credentials(request, "authorization")
        if header is None:
            return False
        result = self._verify(request, header)
        to_uri = request.to.uri
        to_user = to_uri.user_unescaped if isinstance(to_uri, SipUri) else None
        if result.ok and result.username != to_user:
            result = AuthResult(False, result.username, reason="credentials of another login")
        self._answered(request, source, result)
        if result.ok:
            return None
        return result.stale

    async def _register(self, request: Request, key: str, source: Address, transport: str) -> None:
        settings = self.dialplan.registration
        to_uri = request.to.uri
        assert isinstance(to_uri, SipUri)
        aor = to_uri.user_unescaped or ""
        now = self.wall_clock()
        default = request.headers.get("expires")
        try:
            contacts = request.contacts
        except SipParseError as exc:
            self.endpoint.send_response(key, make_response(request, 400, exc.reason))
            return
        if any(c.wildcard for c in contacts):
            if len(contacts) != 1 or (default or "").strip() != "0":
                self.endpoint.send_response(key, make_response(request, 400, "Invalid Wildcard"))
                return
            await self.store.clear_bindings(aor)
        for contact in contacts:
            if contact.wildcard:
                continue
            raw = contact.params.get("expires") or default
            expires = int(raw) if raw and raw.strip().isdigit() else settings.default_expires
            if 0 < expires < settings.min_expires:
                self.endpoint.send_response(
                    key,
                    make_response(
                        request,
                        423,
                        to_tag=new_tag_for(request),
                        extra=[("Min-Expires", str(settings.min_expires))],
                    ),
                )
                return
            expires = min(expires, settings.max_expires)
            uri = str(contact.uri)
            if expires == 0:
                await self.store.remove_binding(aor, uri)
                continue
            await self.store.set_binding(
                Binding(
                    aor=aor,
                    contact=uri,
                    source=source,
                    transport=transport,
                    expires_at=now + expires,
                    call_id=request.call_id,
                    cseq=request.cseq.seq,
                    user_agent=request.headers.get("user-agent") or "",
                )
            )
        current = await self.store.get_bindings(aor)
        extra = [("Contact", f"<{b.contact}>;expires={b.remaining(now)}") for b in current]
        extra.append(("Date", time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(now))))
        log.info("REGISTER %s from %s:%s: %d binding(s)", aor, source[0], source[1], len(current))
        if self.registration_hook is not None:
            self.registration_hook(aor)
        self.endpoint.send_response(
            key, make_response(request, 200, to_tag=new_tag_for(request), extra=extra)
        )


def attempt_of(request: Request, kiosk: Kiosk, offer: SessionDescription | None) -> CallAttempt:
    """The neutral call attempt of an authenticated kiosk's INVITE."""
    context: list[tuple[str, str]] = []
    appointment = False
    prefix = len(CONTEXT_PREFIX)
    for key, _, value in request.headers.starting_with(CONTEXT_PREFIX.lower()):
        name = key[prefix:]
        if name == APPOINTMENT:
            appointment = value.strip().lower() not in ("", "no", "non", "0", "false")
        if name:
            context.append((name, value))
    mf = request.headers.get("max-forwards")
    return CallAttempt(
        kiosk=kiosk.id,
        service=request.uri.user_unescaped or "",
        offer=offer,
        context=tuple(context),
        appointment=appointment,
        # RFC 3261 16.6 step 3: one hop less for the request we send on.
        hops=max(0, int(mf) - 1) if mf and mf.isdigit() else 69,
    )


def claimed_login(request: Request) -> str | None:
    """The login a request claims before any credentials: the To user of a REGISTER
    (the AOR it binds, RFC 3261 10.2), else the From user (the kiosk calling)."""
    uri = request.to.uri if request.method == "REGISTER" else request.from_.uri
    return uri.user_unescaped if isinstance(uri, SipUri) else None


def _same_target(a: Uri, b: Uri) -> bool:
    """Two URIs naming the same resource, parameters aside (RFC 3261 19.1.4 in spirit)."""
    if isinstance(a, SipUri) and isinstance(b, SipUri):
        return (a.scheme, a.user_unescaped, a.host, a.port) == (
            b.scheme,
            b.user_unescaped,
            b.host,
            b.port,
        )
    return str(a) == str(b)


def new_tag_for(request: Request) -> str:
    """A To tag for a non-dialog final response (8.2.6.2): stable across retransmissions."""
    branch = request.top_via.branch or request.call_id
    return format(abs(hash(branch)) & 0xFFFFFFFF, "08x")
