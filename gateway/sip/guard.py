"""Failed digest authentications and the temporary bans they lead to, sans-IO.

RFC 3261 26.1.3 leaves password guessing to the implementation, and RFC 7616 5.13 asks
servers to slow down repeated failures. The registrar reports each failed verification
here with its source address and the login it claimed (known or not: both count alike,
so that a ban says nothing about which accounts exist). Too many failures from one
source within ``window`` seconds ban the source; too many on one login, from anywhere,
ban the login. A ban lasts ``ban_time`` seconds, is listed and can be lifted. Time comes
in from the caller; nothing here reads a clock or touches a socket.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from enum import Enum

from gateway.model.recent import RecentTable


@dataclass(frozen=True, slots=True)
class GuardSettings:
    """Limits on failed authentications; a limit of 0 never bans."""

    source_failures: int = 10  # failures from one address within the window
    account_failures: int = 30  # failures on one login, from any address, within the window
    window: float = 60.0
    ban_time: float = 600.0


class BanKind(Enum):
    """What a ban is on: a source after failed logins, a login, a flooding source."""

    SOURCE = "source"
    ACCOUNT = "account"
    FLOOD = "flood"


@dataclass(frozen=True, slots=True)
class Ban:
    """A source address or a login refused until ``until`` (the caller's clock)."""

    kind: BanKind
    key: str
    since: float
    until: float
    failures: int


class AuthGuard:
    """Sliding-window failure counts per source and per login, and the bans they cause.

    At most ``max_tracked`` keys of each kind are followed; when full, the key seen
    least recently is forgotten first (a flood of forged addresses cannot grow memory).
    """

    def __init__(self, settings: GuardSettings | None = None, max_tracked: int = 50_000) -> None:
        self.settings = settings if settings is not None else GuardSettings()
        self._failures: dict[BanKind, RecentTable[str, deque[float]]] = {
            BanKind.SOURCE: RecentTable(max_tracked),
            BanKind.ACCOUNT: RecentTable(max_tracked),
        }
        self._bans: dict[tuple[BanKind, str], Ban] = {}
        self.failures_total = 0
        self.bans_total: dict[BanKind, int] = {BanKind.SOURCE: 0, BanKind.ACCOUNT: 0}
        self.refused_total = 0

    def banned(self, source: str, username: str | None, now: float) -> Ban | None:
        """The ban refusing a request from ``source`` claiming ``username``, if any."""
        ban = self._active(BanKind.SOURCE, source, now)
        if ban is None and username is not None:
            ban = self._active(BanKind.ACCOUNT, username, now)
        if ban is not None:
            self.refused_total += 1
        return ban

    def failed(self, source: str, username: str | None, now: float) -> list[Ban]:
        """Count one failed authentication; the bans it starts (none most of the time)."""
        self.failures_total += 1
        limits = self.settings
        out: list[Ban] = []
        for kind, key, limit in (
            (BanKind.SOURCE, source, limits.source_failures),
            (BanKind.ACCOUNT, username, limits.account_failures),
        ):
            if key is None or limit <= 0 or self._active(kind, key, now) is not None:
                continue
            count = self._count(kind, key, now)
            if count >= limit:
                ban = Ban(kind, key, now, now + limits.ban_time, count)
                self._bans[(kind, key)] = ban
                self._failures[kind].pop(key)
                self.bans_total[kind] += 1
                out.append(ban)
        return out

    def bans(self, now: float) -> list[Ban]:
        """The bans in force at ``now``, oldest first."""
        return sorted((b for b in self._bans.values() if b.until > now), key=lambda b: b.since)

    def lift(self, kind: BanKind, key: str) -> Ban | None:
        """End a ban at once (an operator's decision); the ban lifted, or None."""
        self._failures[kind].pop(key)
        return self._bans.pop((kind, key), None)

    def expire(self, now: float) -> list[Ban]:
        """Forget the bans whose time is over and return them, each once (to be logged).

        A ban over is no longer in force even before this is called."""
        over = [ban for ban in self._bans.values() if ban.until <= now]
        for ban in over:
            del self._bans[(ban.kind, ban.key)]
        return over

    def next_expiry(self) -> float | None:
        """When the next ban ends, or None."""
        return min((ban.until for ban in self._bans.values()), default=None)

    def _active(self, kind: BanKind, key: str, now: float) -> Ban | None:
        ban = self._bans.get((kind, key))
        if ban is None or ban.until <= now:
            return None
        return ban

    def _count(self, kind: BanKind, key: str, now: float) -> int:
        """Record a failure at ``now`` and return the failures within the window."""
        times = self._failures[kind].touch(key, deque)
        horizon = now - self.settings.window
        while times and times[0] <= horizon:
            times.popleft()
        times.append(now)
        return len(times)


# User-Agent values of SIP scanning tools (SIPVicious' svmap and svwar send the first by
# default); compared lower-cased, as substrings.
SCANNER_AGENTS = (
    "friendly-scanner",
    "sipvicious",
    "sipcli",
    "sip-scan",
    "sundayddr",
    "iwar",
    "vaxsipuseragent",
    "pplsip",
)


class ScanWatch:
    """Sources that look like SIP scanners, each reported once per ``window``.

    Two signs: a scanning tool's User-Agent, or requests naming ``logins`` distinct
    logins from one address within ``window`` seconds (an extension sweep: SIPVicious'
    svwar with any User-Agent). Nothing is refused here: the answers stay the same for
    everyone (bans do the refusing), this only tells the operator. At most
    ``max_tracked`` sources are followed, the least recent forgotten first.
    """

    def __init__(self, logins: int = 8, window: float = 60.0, max_tracked: int = 10_000) -> None:
        self.logins = logins
        self.window = window
        self._seen: RecentTable[str, dict[str, float]] = RecentTable(max_tracked)
        # source -> until when it is not reported again
        self._flagged: RecentTable[str, float] = RecentTable(max_tracked)
        self.scans_total: dict[str, int] = {"user_agent": 0, "sweep": 0}

    def seen(
        self, source: str, login: str | None, user_agent: str | None, now: float
    ) -> str | None:
        """Note one request; the reason when it shows a scan not reported lately."""
        if self.flagged(source, now):
            return None
        if user_agent:
            agent = user_agent.lower()
            if any(tool in agent for tool in SCANNER_AGENTS):
                return self._flag(source, "user_agent", f"User-Agent {user_agent[:60]!r}", now)
        if login is None or self.logins <= 0:
            return None
        logins = self._seen.touch(source, dict)  # login -> when it was last tried
        horizon = now - self.window
        for name in [n for n, t in logins.items() if t <= horizon]:
            del logins[name]
        logins[login] = now
        if len(logins) >= self.logins:
            self._seen.pop(source)
            return self._flag(
                source, "sweep", f"{len(logins)} logins tried in {self.window:.0f} s", now
            )
        return None

    def flagged(self, source: str, now: float) -> bool:
        """Whether ``source`` was reported as a scan within the last ``window`` seconds."""
        until = self._flagged.get(source)
        return until is not None and until > now

    def _flag(self, source: str, kind: str, reason: str, now: float) -> str:
        self.scans_total[kind] += 1
        self._flagged.pop(source)
        self._flagged.add(source, now + self.window)
        return reason


@dataclass(frozen=True, slots=True)
class FloodSettings:
    """Requests per second one source may send, sustained (``rate``) and in a burst
    (``burst``); ``rate`` 0 turns the limit off."""

    rate: float = 50.0
    burst: float = 200.0
    ban_time: float = 600.0


class FloodGuard:
    """A token bucket per source address, checked before a datagram is even parsed.

    A source may send ``burst`` messages at once and ``rate`` a second after that; a
    message over the limit is dropped. A source that had a whole burst's worth of
    messages dropped without calming down long enough to refill its bucket (a flood just
    over the rate included) is banned for ``ban_time`` seconds: everything it sends is
    dropped, silently (an answer would feed the flood). At most ``max_tracked``
    sources are followed; the least recent is forgotten first.
    """

    def __init__(self, settings: FloodSettings | None = None, max_tracked: int = 50_000) -> None:
        self.settings = settings if settings is not None else FloodSettings()
        # source -> [tokens, last refill time, messages dropped since it was last calm]
        self._buckets: RecentTable[str, list[float]] = RecentTable(max_tracked)
        # Forged sources must not grow memory: past the bound, the oldest ban is forgotten.
        self._bans: RecentTable[str, Ban] = RecentTable(max_tracked)
        self.dropped_total = 0
        self.bans_total = 0
        self.started: list[Ban] = []  # bans started since the caller last took them
        self.ended: list[Ban] = []  # bans over since the caller last took them

    def admit(self, source: str, now: float) -> bool:
        """Whether a message from ``source`` may be handled (False: drop it)."""
        limits = self.settings
        if limits.rate <= 0:
            return True
        if self._bans:
            ban = self._bans.get(source)
            if ban is not None:
                if ban.until > now:
                    self.dropped_total += 1
                    return False
                self._bans.pop(source)
                self.ended.append(ban)
        bucket = self._buckets.touch(source, lambda: [limits.burst, now, 0.0])
        tokens = min(limits.burst, bucket[0] + (now - bucket[1]) * limits.rate)
        bucket[1] = now
        if tokens >= limits.burst:
            bucket[2] = 0.0  # calm long enough to refill: past drops are forgiven
        if tokens >= 1.0:
            bucket[0] = tokens - 1.0
            return True
        bucket[0] = tokens
        bucket[2] += 1.0
        self.dropped_total += 1
        if bucket[2] >= limits.burst:
            ban = Ban(BanKind.FLOOD, source, now, now + limits.ban_time, int(bucket[2]))
            self._bans.add(source, ban)
            self._buckets.pop(source)
            self.bans_total += 1
            self.started.append(ban)
        return False

    def bans(self, now: float) -> list[Ban]:
        """The flood bans in force at ``now``, oldest first."""
        in_force = (ban for _, ban in self._bans.items() if ban.until > now)
        return sorted(in_force, key=lambda b: b.since)

    def lift(self, source: str) -> Ban | None:
        """End a flood ban at once (an operator's decision)."""
        return self._bans.pop(source)
