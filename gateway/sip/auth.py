"""HTTP Digest authentication for SIP, sans-IO (RFC 3261 section 22, RFC 7616, RFC 8760).

The module works on header *values* only: the text after ``WWW-Authenticate:``,
``Proxy-Authenticate:``, ``Authorization:`` or ``Proxy-Authorization:``. It has no
knowledge of SIP messages, sockets or event loops.

Server side, :class:`DigestAuthenticator` issues challenges whose nonces are stateless
and unforgeable (a timestamp, a random salt and an HMAC over both and the realm) and
verifies credentials against them, refusing replayed nonce counts.

Client side, :func:`choose_challenge` picks the strongest challenge we can answer and
:func:`build_authorization` answers it; :func:`answer_challenge` does both for the
challenges of one 401/407 (RFC 3261 22.2, 22.3), and :data:`CREDENTIALS_HEADER` names
the header that carries the answer.

Decision on RFC 2069 style responses (no ``qop``): the server refuses them. We always
offer ``qop="auth"``; RFC 7616 section 3.3 makes qop mandatory for compliant
implementations and RFC 8760 relies on it; without ``nc`` a captured request could be
replayed for the whole nonce lifetime; and the peers we target (pjsua, SIPp, sippy)
all answer with ``qop=auth``. The client still answers a qop-less MD5/SHA challenge,
since being lenient there costs nothing.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import heapq
import hmac
import logging
import re
import secrets
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from gateway.model.recent import RecentTable

__all__ = [
    "CHALLENGE_HEADER",
    "CREDENTIALS_HEADER",
    "AuthParseError",
    "AuthResult",
    "ChallengeWatch",
    "DigestAuthenticator",
    "UnansweredChallenge",
    "answer_challenge",
    "build_authorization",
    "choose_challenge",
    "parse_challenge_params",
]

log = logging.getLogger(__name__)


class AuthParseError(ValueError):
    """A challenge or credentials header value that does not follow RFC 7235 section 2.1."""


# --------------------------------------------------------------------------------------
# Header value grammar (RFC 7235 section 2.1, RFC 7230 section 3.2.6, RFC 3261 25.1):
#
#   challenge   = auth-scheme [ 1*SP ( token68 / #auth-param ) ]
#   auth-param  = token BWS "=" BWS ( token / quoted-string )
#   quoted-string = DQUOTE *( qdtext / quoted-pair ) DQUOTE
#   quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text )
#   LWS (SIP)   = [*WSP CRLF] 1*WSP          ; a folded line counts as whitespace
#
# Unquoted values are read leniently (any visible character but DQUOTE and comma), because
# deployed UAs send things like unquoted base64 or URIs and refusing them buys nothing.
# --------------------------------------------------------------------------------------

_FOLD = re.compile(r"\r?\n(?=[ \t])")
_TOKEN = re.compile(r"[A-Za-z0-9!#$%&'*+\-.^_`|~]+")
_TOKEN68_REST = re.compile(r"[A-Za-z0-9\-._~+/]+=*[ \t]*")
_UNQUOTED = re.compile(r"[^\x00-\x20\x7f\",]+")
_QUOTED_CHUNK = re.compile(r"[^\"\\\x00-\x08\x0a-\x1f\x7f]+")
_QUOTED_PAIR_CHAR = re.compile(r"[^\x00-\x08\x0a-\x1f\x7f]")


def _skip_ws(text: str, pos: int) -> int:
    """Index of the first character at or after pos that is not SP or HTAB."""
    while pos < len(text) and text[pos] in " \t":
        pos += 1
    return pos


def parse_challenge_params(value: str) -> tuple[str, dict[str, str]]:
    """Split a challenge or credentials value into its scheme and parameters (RFC 7235 2.1).

    Parameter names are returned lowercased, quoted strings unescaped; raises
    :class:`AuthParseError` on anything that does not follow the grammar.
    """
    text = _FOLD.sub("", value)
    pos = _skip_ws(text, 0)
    m = _TOKEN.match(text, pos)
    if m is None:
        raise AuthParseError("missing auth-scheme")
    scheme = m.group()
    if scheme.lower() == "digest":
        scheme = "Digest"
    pos = m.end()
    params: dict[str, str] = {}
    if pos == len(text) or not text[pos:].strip(" \t"):
        return scheme, params
    after_ws = _skip_ws(text, pos)
    if after_ws == pos:
        raise AuthParseError("auth-scheme not followed by whitespace")
    pos = after_ws
    if _TOKEN68_REST.fullmatch(text, pos) and "=" in text[pos:]:
        # "name=" alone is not a valid auth-param (empty value), so this is a token68.
        raise AuthParseError("token68 credentials are not supported")
    while True:
        # Empty list elements (",,") are allowed by the #rule of RFC 7230 section 7.
        while pos < len(text) and text[pos] in " \t,":
            pos += 1
        if pos == len(text):
            break
        m = _TOKEN.match(text, pos)
        if m is None:
            raise AuthParseError(f"expected a parameter name at offset {pos}")
        name = m.group().lower()
        pos = _skip_ws(text, m.end())
        if pos == len(text) or text[pos] != "=":
            raise AuthParseError(f"parameter {name!r} has no '='")
        pos = _skip_ws(text, pos + 1)
        if pos < len(text) and text[pos] == '"':
            val, pos = _read_quoted(text, pos)
        else:
            m = _UNQUOTED.match(text, pos)
            if m is None:
                raise AuthParseError(f"parameter {name!r} has no value")
            val, pos = m.group(), m.end()
        if name in params:
            # RFC 7235 section 2.2: each parameter name occurs only once per challenge.
            raise AuthParseError(f"duplicate parameter {name!r}")
        params[name] = val
        pos = _skip_ws(text, pos)
        if pos == len(text):
            break
        if text[pos] != ",":
            raise AuthParseError(f"expected ',' at offset {pos}")
    return scheme, params


def _read_quoted(text: str, pos: int) -> tuple[str, int]:
    """Read the quoted-string starting at text[pos] == '"'; return (unescaped, end)."""
    out: list[str] = []
    pos += 1
    while True:
        m = _QUOTED_CHUNK.match(text, pos)
        if m is not None:
            out.append(m.group())
            pos = m.end()
        if pos >= len(text):
            raise AuthParseError("unterminated quoted-string")
        ch = text[pos]
        if ch == '"':
            return "".join(out), pos + 1
        if ch == "\\":
            if not _QUOTED_PAIR_CHAR.match(text, pos + 1):
                raise AuthParseError("bad quoted-pair")
            out.append(text[pos + 1])
            pos += 2
            continue
        raise AuthParseError(f"control character in quoted-string at offset {pos}")


def _quote(value: str) -> str:
    """Render value as a quoted-string (RFC 7230 section 3.2.6)."""
    if any(c in value for c in "\r\n\x00"):
        raise ValueError("CR, LF and NUL cannot appear in a header parameter")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


# --------------------------------------------------------------------------------------
# Digest computation (RFC 7616 section 3.4.1-3.4.3; RFC 8760 section 2).
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Algorithm:
    name: str  # canonical spelling, as written on the wire
    hashlib_name: str
    sess: bool
    strength: int  # larger is stronger; used by choose_challenge


_ALGORITHMS: dict[str, _Algorithm] = {
    a.name.upper(): a
    for a in (
        _Algorithm("MD5", "md5", False, 10),
        _Algorithm("MD5-sess", "md5", True, 9),
        _Algorithm("SHA-256", "sha256", False, 20),
        _Algorithm("SHA-256-sess", "sha256", True, 19),
        _Algorithm("SHA-512-256", "sha512_256", False, 30),
        _Algorithm("SHA-512-256-sess", "sha512_256", True, 29),
    )
    if a.hashlib_name in hashlib.algorithms_available
}


def _algorithm(name: str | None) -> _Algorithm | None:
    """Look an algorithm up by name; an absent parameter means MD5 (RFC 7616 3.3)."""
    return _ALGORITHMS.get("MD5" if name is None else name.upper())


def _b(text: str) -> bytes:
    # surrogateescape gives back the original octets of a header decoded that way, which
    # is what the peer hashed (e.g. a Latin-1 username).
    return text.encode("utf-8", "surrogateescape")


def _hex(alg: _Algorithm, data: bytes) -> str:
    return hashlib.new(alg.hashlib_name, data).hexdigest()


def _digest_response(
    alg: _Algorithm,
    *,
    username: str,
    realm: str,
    password: str,
    method: str,
    uri: str,
    nonce: str,
    qop: str | None,
    nc: str,
    cnonce: str,
    body: bytes,
) -> str:
    """The request-digest of RFC 7616 section 3.4.1 (qop given) or RFC 2069 (no qop)."""
    ha1 = _hex(alg, b":".join((_b(username), _b(realm), _b(password))))
    if alg.sess:
        ha1 = _hex(alg, b":".join((ha1.encode(), _b(nonce), _b(cnonce))))
    a2 = b":".join((_b(method), _b(uri)))
    if qop == "auth-int":
        a2 += b":" + _hex(alg, body).encode()
    ha2 = _hex(alg, a2)
    if qop is None:
        kd = b":".join((ha1.encode(), _b(nonce), ha2.encode()))
    else:
        kd = b":".join((ha1.encode(), _b(nonce), _b(nc), _b(cnonce), _b(qop), ha2.encode()))
    return _hex(alg, kd)


# --------------------------------------------------------------------------------------
# Server side.
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuthResult:
    """Outcome of :meth:`DigestAuthenticator.verify`.

    ``username`` is the claimed name (authenticated only when ``ok``); ``stale`` asks the
    caller to re-challenge with ``stale=true`` (RFC 7616 section 3.3).
    """

    ok: bool
    username: str | None
    stale: bool = False
    reason: str = ""


_NONCE_TS = struct.Struct(">d")
_SALT_LEN = 8
_MAC_LEN = 32
_NONCE_LEN = _NONCE_TS.size + _SALT_LEN + _MAC_LEN
_NC = re.compile(r"[0-9A-Fa-f]{8}")


@dataclass
class _NonceUse:
    issued: float
    highest_nc: int


class DigestAuthenticator:
    """Server side: issues challenges and verifies credentials (RFC 3261 22.4, RFC 7616 3.3-3.4).

    Give a shared ``key`` and a wall ``clock`` (``time.time``) when several processes must
    accept each other's nonces; the default monotonic clock is per process.
    """

    def __init__(
        self,
        realm: str,
        lookup: Callable[[str], str | None],
        *,
        algorithms: Sequence[str] = ("SHA-256", "MD5"),
        nonce_ttl: float = 300.0,
        key: bytes | None = None,
        clock: Callable[[], float] = time.monotonic,
        max_tracked_nonces: int = 10_000,
        algorithms_for: Callable[[str], Sequence[str] | None] | None = None,
    ) -> None:
        """``algorithms_for(username)`` names a login's own algorithms (None: the default
        ``algorithms``), so that one legacy unit does not weaken every other account."""
        _quote(realm)  # refuses CR/LF early rather than when the first challenge is built
        algs: list[_Algorithm] = []
        for name in algorithms:
            alg = _algorithm(name)
            if alg is None:
                raise ValueError(f"unsupported digest algorithm {name!r}")
            if alg not in algs:
                algs.append(alg)
        if not algs:
            raise ValueError("at least one digest algorithm is needed")
        if nonce_ttl <= 0 or max_tracked_nonces < 1:
            raise ValueError("nonce_ttl and max_tracked_nonces must be positive")
        self.realm = realm
        self._lookup = lookup
        self._algorithms = tuple(algs)
        self._algorithms_for = algorithms_for
        self._by_names: dict[tuple[str, ...], tuple[_Algorithm, ...]] = {}
        self._ttl = nonce_ttl
        self._key = key if key is not None else secrets.token_bytes(32)
        self._clock = clock
        self._max_tracked = max_tracked_nonces
        # Replay state: highest nc per nonce, plus a heap ordered by issue time so that
        # expired or excess records are dropped oldest first.
        self._uses: dict[str, _NonceUse] = {}
        self._by_age: list[tuple[float, str]] = []
        # Nonces issued at or before this instant whose record was evicted early (table
        # full) are no longer accepted: without their record a replay would go unnoticed.
        self._forgotten_before = float("-inf")

    @property
    def algorithms(self) -> tuple[str, ...]:
        """The algorithm names offered, in preference order."""
        return tuple(a.name for a in self._algorithms)

    def algorithms_of(self, username: str | None) -> tuple[str, ...]:
        """The algorithms offered to and accepted from one login, in preference order."""
        return tuple(a.name for a in self._user_algorithms(username))

    def _user_algorithms(self, username: str | None) -> tuple[_Algorithm, ...]:
        if username is None or self._algorithms_for is None:
            return self._algorithms
        names = self._algorithms_for(username)
        if names is None:
            return self._algorithms
        key = tuple(names)
        algs = self._by_names.get(key)
        if algs is None:
            found = [a for a in map(_algorithm, key) if a is not None]
            algs = self._by_names[key] = tuple(dict.fromkeys(found)) or self._algorithms
        return algs

    @property
    def tracked_nonces(self) -> int:
        """How many nonces have a replay record now (bounded by ``max_tracked_nonces``)."""
        return len(self._uses)

    def challenges(self, *, stale: bool = False, username: str | None = None) -> list[str]:
        """WWW-/Proxy-Authenticate values, one per algorithm, preferred first (RFC 8760 2.4,
        RFC 7616 3.7): the algorithms of ``username``'s login when it has its own."""
        self._forget_expired(self._clock())
        nonce = self._new_nonce()
        tail = ", stale=true" if stale else ""
        realm = _quote(self.realm)
        return [
            f'Digest realm={realm}, nonce="{nonce}", algorithm={alg.name}, qop="auth"{tail}'
            for alg in self._user_algorithms(username)
        ]

    def verify(self, method: str, authorization: str) -> AuthResult:
        """Check an Authorization / Proxy-Authorization value for a request (RFC 7616 3.4).

        Never raises on peer input: malformed values give ``ok=False``.
        """
        try:
            scheme, params = parse_challenge_params(authorization)
        except AuthParseError as exc:
            return self._refuse("malformed header", None, detail=str(exc))
        username = params.get("username")
        if scheme != "Digest":
            return self._refuse("not a Digest credential", username)
        for required in ("username", "realm", "nonce", "uri", "response"):
            if required not in params:
                return self._refuse(f"missing {required}", username)
        username = params["username"]
        if params["realm"] != self.realm:
            return self._refuse("wrong realm", username)
        alg = _algorithm(params.get("algorithm"))
        if alg is None or alg not in self._user_algorithms(username):
            return self._refuse("algorithm not offered", username)
        qop = params.get("qop")
        if qop is None:
            return self._refuse("qop missing (RFC 2069 responses are not accepted)", username)
        if qop.lower() != "auth":
            return self._refuse("qop not offered", username)
        nc_text = params.get("nc", "")
        if not _NC.fullmatch(nc_text) or int(nc_text, 16) == 0:
            return self._refuse("bad nc", username)
        nc = int(nc_text, 16)
        cnonce = params.get("cnonce")
        if not cnonce:
            return self._refuse("missing cnonce", username)
        nonce = params["nonce"]
        issued = self._nonce_issue_time(nonce)
        if issued is None:
            return self._refuse("invalid nonce", username)
        password = self._lookup(username)
        if password is None:
            return self._refuse("unknown user", username)
        try:
            expected = _digest_response(
                alg,
                username=username,
                realm=self.realm,
                password=password,
                method=method,
                uri=params["uri"],
                nonce=nonce,
                qop="auth",
                nc=nc_text,
                cnonce=cnonce,
                body=b"",
            )
        except UnicodeEncodeError:
            return self._refuse("malformed header", username, detail="unencodable text")
        received = params["response"].lower()
        if not received.isascii() or not hmac.compare_digest(expected, received):
            return self._refuse("wrong response", username)
        # From here on the client proved it knows the password: freshness problems are
        # reported as stale so that it retries with a new nonce without asking the user.
        now = self._clock()
        self._forget_expired(now)
        age = now - issued
        if not 0.0 <= age <= self._ttl:
            return self._refuse("stale nonce", username, stale=True)
        use = self._uses.get(nonce)
        if use is None:
            if issued <= self._forgotten_before:
                return self._refuse("nonce no longer tracked", username, stale=True)
            self._uses[nonce] = _NonceUse(issued, nc)
            heapq.heappush(self._by_age, (issued, nonce))
            self._enforce_cap()
        elif nc <= use.highest_nc:
            return self._refuse("replayed nonce count", username)
        else:
            use.highest_nc = nc
        return AuthResult(ok=True, username=username)

    def select(self, values: Sequence[str]) -> str | None:
        """The one credentials value to verify among several of a request (RFC 7616 3.7).

        A client that met several challenges of our realm may answer each in its own
        header (RFC 8760 2.4 lets it): the answer with the login's preferred algorithm
        is verified, and only that one, since every answer to one nonce shares its
        nonce count. Values for another realm or scheme are skipped; None when nothing
        is left (then the first value is refused as usual).
        """
        if len(values) == 1:
            return values[0]
        best: tuple[int, str] | None = None
        for value in values:
            try:
                scheme, params = parse_challenge_params(value)
            except AuthParseError:
                continue
            if scheme != "Digest" or params.get("realm") != self.realm:
                continue
            allowed = self._user_algorithms(params.get("username"))
            alg = _algorithm(params.get("algorithm"))
            if alg is None or alg not in allowed:
                continue
            rank = allowed.index(alg)
            if best is None or rank < best[0]:
                best = (rank, value)
        return None if best is None else best[1]

    # -- nonces ----------------------------------------------------------------------

    def _mac(self, stamp_and_salt: bytes) -> bytes:
        return hmac.new(self._key, stamp_and_salt + _b(self.realm), hashlib.sha256).digest()

    def _new_nonce(self) -> str:
        # The salt keeps nonces issued in the same clock tick distinct, so that two
        # clients never share one replay counter.
        head = _NONCE_TS.pack(self._clock()) + secrets.token_bytes(_SALT_LEN)
        return base64.b64encode(head + self._mac(head)).decode("ascii")

    def _nonce_issue_time(self, nonce: str) -> float | None:
        """Issue time of a nonce we made, or None if it is not ours."""
        if not nonce.isascii():
            return None
        try:
            raw = base64.b64decode(nonce, validate=True)
        except (binascii.Error, ValueError):
            return None
        if len(raw) != _NONCE_LEN:
            return None
        head, mac = raw[:-_MAC_LEN], raw[-_MAC_LEN:]
        if not hmac.compare_digest(mac, self._mac(head)):
            return None
        (issued,) = _NONCE_TS.unpack_from(head)
        return float(issued)

    # -- replay table ----------------------------------------------------------------

    def _forget_expired(self, now: float) -> None:
        while self._by_age and now - self._by_age[0][0] > self._ttl:
            _, nonce = heapq.heappop(self._by_age)
            self._uses.pop(nonce, None)

    def _enforce_cap(self) -> None:
        while len(self._uses) > self._max_tracked:
            issued, nonce = heapq.heappop(self._by_age)
            if self._uses.pop(nonce, None) is not None:
                self._forgotten_before = max(self._forgotten_before, issued)

    def _refuse(
        self, reason: str, username: str | None, *, stale: bool = False, detail: str = ""
    ) -> AuthResult:
        log.debug(
            "digest auth refused for %r in realm %r: %s%s",
            username,
            self.realm,
            reason,
            f" ({detail})" if detail else "",
        )
        return AuthResult(ok=False, username=username, stale=stale, reason=reason)


@dataclass(frozen=True, slots=True)
class UnansweredChallenge:
    """A challenge its client never answered: most often a digest algorithm it lacks."""

    source: str
    username: str | None
    algorithms: tuple[str, ...]
    issued: float


class ChallengeWatch:
    """Challenges waiting for an answer, by source address and claimed login.

    A unit whose digest code knows none of the algorithms offered gives up on the 401/407
    without a word (RFC 7616 3.7 leaves it nothing to answer with). The registrar notes
    each challenge here, and each request that carries credentials from the same source
    and login; what is still unanswered ``timeout`` seconds later comes out of
    :meth:`expired`. Sans-IO: the caller gives the time. The first challenge of a key
    counts, so a unit that keeps retrying unanswered is still reported; at most
    ``max_entries`` are kept (oldest dropped first).
    """

    def __init__(self, timeout: float = 32.0, max_entries: int = 10_000) -> None:
        self.timeout = timeout
        # (source, login) -> its first challenge; oldest first, as challenges are issued
        self._waiting: RecentTable[tuple[str, str | None], UnansweredChallenge] = RecentTable(
            max_entries
        )

    def __len__(self) -> int:
        return len(self._waiting)

    def challenged(
        self, source: str, username: str | None, algorithms: Sequence[str], now: float
    ) -> None:
        """A challenge went to ``source`` for ``username`` (None: no login claimed)."""
        challenge = UnansweredChallenge(source, username, tuple(algorithms), now)
        self._waiting.add((source, username), challenge)  # the first one of a key counts

    def answered(self, source: str, username: str | None) -> None:
        """Credentials came from ``source`` for ``username``: its challenge was understood."""
        self._waiting.pop((source, username))

    def next_deadline(self) -> float | None:
        """When the oldest waiting challenge is due, or None."""
        oldest = self._waiting.oldest()
        return None if oldest is None else oldest[1].issued + self.timeout

    def expired(self, now: float) -> list[UnansweredChallenge]:
        """The challenges left unanswered for ``timeout`` seconds, now forgotten."""
        out: list[UnansweredChallenge] = []
        while (oldest := self._waiting.oldest()) is not None:
            key, first = oldest
            if now - first.issued < self.timeout:
                break
            self._waiting.pop(key)
            out.append(first)
        return out


# --------------------------------------------------------------------------------------
# Client side.
# --------------------------------------------------------------------------------------


def _offered_qops(params: dict[str, str]) -> list[str] | None:
    """The qop values of a challenge (a quoted comma list), or None if absent."""
    if "qop" not in params:
        return None
    return [q.strip().lower() for q in params["qop"].split(",") if q.strip()]


def _answerable(params: dict[str, str]) -> tuple[_Algorithm, str | None]:
    """The algorithm and qop we would answer a Digest challenge with, or AuthParseError."""
    alg = _algorithm(params.get("algorithm"))
    if alg is None:
        raise AuthParseError(f"unsupported algorithm {params.get('algorithm')!r}")
    for required in ("realm", "nonce"):
        if required not in params:
            raise AuthParseError(f"challenge without {required}")
    qops = _offered_qops(params)
    if qops is None:
        if alg.sess:
            raise AuthParseError("a -sess algorithm needs qop")
        return alg, None
    for qop in ("auth", "auth-int"):
        if qop in qops:
            return alg, qop
    raise AuthParseError("no supported qop offered")


def build_authorization(
    challenge: str,
    *,
    method: str,
    uri: str,
    username: str,
    password: str,
    cnonce: str | None = None,
    nc: int = 1,
    body: bytes = b"",
) -> str:
    """Client side: the Authorization value answering one challenge (RFC 7616 3.4, RFC 8760).

    Supports MD5, SHA-256, SHA-512-256 and their -sess forms, qop auth, auth-int or none;
    raises :class:`AuthParseError` for a malformed or unanswerable challenge.
    """
    scheme, params = parse_challenge_params(challenge)
    if scheme != "Digest":
        raise AuthParseError(f"not a Digest challenge: {scheme!r}")
    alg, qop = _answerable(params)
    if not 0 < nc <= 0xFFFFFFFF:
        raise ValueError("nc must fit in 8 hex digits and be positive")
    if cnonce is None:
        cnonce = secrets.token_hex(16)
    nc_text = f"{nc:08x}"
    realm, nonce = params["realm"], params["nonce"]
    try:
        response = _digest_response(
            alg,
            username=username,
            realm=realm,
            password=password,
            method=method,
            uri=uri,
            nonce=nonce,
            qop=qop,
            nc=nc_text,
            cnonce=cnonce,
            body=body,
        )
    except UnicodeEncodeError as exc:
        raise AuthParseError("text that cannot be encoded as UTF-8") from exc
    parts = [
        f"username={_quote(username)}",
        f"realm={_quote(realm)}",
        f"nonce={_quote(nonce)}",
        f"uri={_quote(uri)}",
        f'response="{response}"',
    ]
    if "algorithm" in params:
        parts.append(f"algorithm={alg.name}")
    if qop is not None or alg.sess:
        parts.append(f"cnonce={_quote(cnonce)}")
    if "opaque" in params:
        parts.append(f"opaque={_quote(params['opaque'])}")
    if qop is not None:
        parts.append(f"qop={qop}")
        parts.append(f"nc={nc_text}")
    return "Digest " + ", ".join(parts)


def choose_challenge(values: Sequence[str]) -> str | None:
    """The strongest Digest challenge we can answer among several, or None.

    RFC 8760 section 2.4 lets local policy override "topmost supported"; we prefer hash
    strength and keep the server's order among equals.
    """
    best: tuple[int, str] | None = None
    for value in values:
        try:
            scheme, params = parse_challenge_params(value)
            if scheme != "Digest":
                continue
            alg, _ = _answerable(params)
        except AuthParseError:
            continue
        if best is None or alg.strength > best[0]:
            best = (alg.strength, value)
    return None if best is None else best[1]


# RFC 3261 22.2 and 22.3: a 401 challenges in WWW-Authenticate and is answered in
# Authorization; a 407 (from a proxy) in Proxy-Authenticate and Proxy-Authorization.
CHALLENGE_HEADER: dict[int, str] = {401: "WWW-Authenticate", 407: "Proxy-Authenticate"}
CREDENTIALS_HEADER: dict[int, str] = {401: "Authorization", 407: "Proxy-Authorization"}


def answer_challenge(
    challenges: Sequence[str],
    *,
    method: str,
    uri: str,
    username: str,
    password: str,
    cnonce: str | None = None,
    nc: int = 1,
    body: bytes = b"",
) -> str | None:
    """The credentials answering the strongest challenge we support, or None (RFC 3261 22.2).

    ``challenges`` are the WWW-/Proxy-Authenticate values of one response; ``uri`` is the
    Request-URI of the request being resent. Never raises on what the peer sent: None
    when no challenge is a Digest one we can answer (unknown algorithm, missing nonce).
    """
    chosen = choose_challenge(challenges)
    if chosen is None:
        return None
    try:
        return build_authorization(
            chosen,
            method=method,
            uri=uri,
            username=username,
            password=password,
            cnonce=cnonce,
            nc=nc,
            body=body,
        )
    except AuthParseError:
        return None
