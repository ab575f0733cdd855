"""The dialplan: which kiosk may dial which service, and where each partner's stations are.

Loaded from a YAML file under ``dialplans/`` (see ``docs/dialplan.md``); every error names
the file, the line and the reason.
"""

from gateway.dialplan.loader import load_dialplan
from gateway.dialplan.model import (
    AuthSettings,
    BanSettings,
    Dialplan,
    DialplanError,
    GatekeeperSettings,
    Kiosk,
    MediaSettings,
    Partner,
    Problem,
    RegistrationSettings,
    Service,
    SessionTimerSettings,
    StaticAddress,
    Station,
)

__all__ = [
    "AuthSettings",
    "BanSettings",
    "Dialplan",
    "DialplanError",
    "GatekeeperSettings",
    "Kiosk",
    "MediaSettings",
    "Partner",
    "Problem",
    "RegistrationSettings",
    "Service",
    "SessionTimerSettings",
    "StaticAddress",
    "Station",
    "load_dialplan",
]
