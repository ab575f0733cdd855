"""Who may use the admin API: bearer tokens (RFC 6750) with two roles, from the dialplan.

- With no token in the dialplan (``admin.tokens``), only loopback clients are served:
  the embedded default, for a gateway whose HTTP port stays on 127.0.0.1.
- With tokens, every request carries ``Authorization: Bearer <token>``. A ``monitoring``
  token reads (GET, HEAD); an ``operator`` token may also change things (reload, pause,
  lift a ban, ...). ``/healthz`` and ``/metrics`` need none from a loopback client when
  ``admin.public_on_loopback`` says so (a local Prometheus, a container health check).
- The availability routes are the kiosks' own (a kiosk page follows its partners'
  availability): they answer every client, as the SIP presence does, and say only what
  the asking kiosk may see.

Tokens are compared in constant time (``hmac.compare_digest``), every configured token
each time, so that timing says nothing about which one, or how much of one, matched.
"""

from __future__ import annotations

import hmac
import ipaddress
from dataclasses import dataclass

from gateway.dialplan.model import AdminSettings

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# The kiosks' routes (see the module docstring), and the probes public_on_loopback opens.
KIOSK_PATHS = frozenset({"/api/v1/availability", "/api/v1/availability/events"})
PROBE_PATHS = frozenset({"/healthz", "/metrics"})


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a request is refused: its HTTP status and the reason given."""

    status: int  # 401: no or unknown token; 403: a token (or a place) without the right
    reason: str


def is_loopback(host: str | None) -> bool:
    """Whether a client address is a loopback one (127.0.0.0/8, ::1, v4-mapped)."""
    if host is None:
        return False
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer`` header (RFC 6750 2.1), else None."""
    if authorization is None:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def role_of(settings: AdminSettings, token: str) -> str | None:
    """The role of a presented token, comparing it with every configured one."""
    found: str | None = None
    presented = token.encode()
    for candidate in settings.tokens:
        if hmac.compare_digest(presented, candidate.token.get_secret_value().encode()):
            found = candidate.role
    return found


def check(
    settings: AdminSettings, method: str, path: str, client: str | None, authorization: str | None
) -> Refusal | None:
    """None when the request may go on, else why not."""
    if path in KIOSK_PATHS:  # exact paths: no prefix lets another route through
        return None
    loopback = is_loopback(client)
    if settings.public_on_loopback and loopback and path in PROBE_PATHS:
        return None
    if not settings.tokens:
        if loopback:
            return None
        return Refusal(403, "the admin API answers loopback clients only: configure admin.tokens")
    token = bearer_token(authorization)
    if token is None:
        return Refusal(401, "a bearer token is required")
    role = role_of(settings, token)
    if role is None:
        return Refusal(401, "unknown token")
    if role != "operator" and method.upper() not in READ_METHODS:
        return Refusal(403, f"a {role} token only reads")
    return None


__all__ = ["Refusal", "bearer_token", "check", "is_loopback", "role_of"]
