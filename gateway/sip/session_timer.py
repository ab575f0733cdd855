"""Session timers, sans-IO (RFC 4028): negotiation and the times to refresh or give up."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from gateway.sip.message import Request, Response


class Refresher(Enum):
    """Who refreshes the session (RFC 4028 section 7.4 ``refresher`` parameter)."""

    UAC = "uac"
    UAS = "uas"


# init=False: the __init__ is written out so that mypyc compiles it (docs/architecture.md,
# "Compiled, optionally"; tests/model/test_written_out_inits.py checks it).
@dataclass(frozen=True, slots=True, init=False)
class SessionTimer:
    """A negotiated session interval and whether we are the refresher."""

    interval: int
    refresher: Refresher
    we_refresh: bool

    def __init__(self, interval: int, refresher: Refresher, we_refresh: bool) -> None:
        object.__setattr__(self, "interval", interval)
        object.__setattr__(self, "refresher", refresher)
        object.__setattr__(self, "we_refresh", we_refresh)

    @property
    def refresh_after(self) -> float:
        """When the refresher sends its refresh: half the interval (RFC 4028 10)."""
        return self.interval / 2

    @property
    def expire_after(self) -> float:
        """When the other side gives up: interval minus min(32, interval/3) (RFC 4028 10)."""
        return self.interval - min(32.0, self.interval / 3)

    def header(self) -> str:
        """The Session-Expires value to put in a 2xx."""
        return f"{self.interval};refresher={self.refresher.value}"


def parse_session_expires(value: str | None) -> tuple[int, Refresher | None] | None:
    """Parse ``Session-Expires: delta[;refresher=uac|uas]`` (RFC 4028 4); None if absent/bad."""
    if not value:
        return None
    delta, _, params = value.partition(";")
    if not delta.strip().isdigit():
        return None
    refresher: Refresher | None = None
    for param in params.split(";"):
        name, _, val = param.partition("=")
        if name.strip().lower() == "refresher" and val.strip().lower() in ("uac", "uas"):
            refresher = Refresher(val.strip().lower())
    return int(delta.strip()), refresher


def supports_timer(message: Request | Response) -> bool:
    """The peer listed ``timer`` in Supported or Require (RFC 4028 section 3)."""
    for t in message.headers.get_all("supported") + message.headers.get_all("require"):
        if t.strip().lower() == "timer":
            return True
    return False


@dataclass(frozen=True, slots=True)
class TooSmall:
    """The request's interval is below our Min-SE: answer 422 with this Min-SE (RFC 4028 9)."""

    min_se: int


def negotiate_as_uas(request: Request, *, expires: int, min_se: int) -> SessionTimer | TooSmall:
    """Decide the session timer of an incoming INVITE (RFC 4028 section 9).

    Without Session-Expires we insert our own interval when the UAC supports timers,
    and otherwise refresh ourselves (a re-INVITE to a UA that knows nothing of timers
    still proves the dialog alive).
    """
    uac_supports = supports_timer(request)
    parsed = parse_session_expires(request.headers.get("session-expires"))
    if parsed is None:
        interval = expires
        refresher = Refresher.UAC if uac_supports else Refresher.UAS
    else:
        interval, asked = parsed
        if interval < min_se:
            return TooSmall(min_se)
        if asked is not None and uac_supports:
            refresher = asked
        else:
            refresher = Refresher.UAC if uac_supports else Refresher.UAS
    return SessionTimer(interval, refresher, we_refresh=refresher is Refresher.UAS)


def negotiate_as_uac(response: Response) -> SessionTimer | None:
    """The session timer a 2xx grants our INVITE (RFC 4028 7.2); None when the UAS has none."""
    parsed = parse_session_expires(response.headers.get("session-expires"))
    if parsed is None:
        return None
    interval, refresher = parsed
    refresher = refresher or Refresher.UAC
    return SessionTimer(interval, refresher, we_refresh=refresher is Refresher.UAC)
