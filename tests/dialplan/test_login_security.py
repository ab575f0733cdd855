"""Per-login digest algorithms and the ban limits of ``auth.bans`` in the dialplan."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.dialplan import BanSettings, DialplanError, load_dialplan

BASE = """\
version: 1
domain: visio.test.example
secrets_file: test.secrets
auth:
  realm: visio
  bans: {source_failures: 5, account_failures: 12, window: 30, duration: 120}
kiosks:
  - id: lessay
    site: MSP de Lessay
    username: kiosk-lessay
    password: {secret: kiosk-lessay}
    algorithms: [md5]
    services: all
  - id: gavray
    site: Mairie de Gavray
    username: kiosk-gavray
    password: {secret: kiosk-gavray}
    services: all
services:
  - {name: caf, number: "1001", partner: caf}
partners:
  - id: caf
    name: CAF de la Manche
    stations:
      - id: caf-1
        username: station-caf-1
        password: {secret: station-caf-1}
        algorithms: [SHA-256]
      - {id: caf-2, address: "192.0.2.10:5060"}
"""
SECRETS = "kiosk-lessay: pw-1-Qa\nkiosk-gavray: pw-2-Qa\nstation-caf-1: pw-3-Qa\n"


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "test.secrets").write_text(SECRETS)
    path = tmp_path / "test.yaml"
    path.write_text(text)
    return path


def test_logins_carry_their_own_algorithms(tmp_path: Path) -> None:
    plan = load_dialplan(write(tmp_path, BASE))
    assert plan.kiosks["lessay"].algorithms == ("MD5",)
    assert plan.kiosks["gavray"].algorithms is None
    assert plan.partners["caf"].stations[0].algorithms == ("SHA-256",)
    assert plan.algorithms_for("kiosk-lessay") == ("MD5",)
    assert plan.algorithms_for("station-caf-1") == ("SHA-256",)
    # The default, for a login without its own list and for a name nobody has.
    assert plan.algorithms_for("kiosk-gavray") == ("SHA-256", "MD5")
    assert plan.algorithms_for("nobody") == ("SHA-256", "MD5")


def test_ban_limits_are_read_and_default(tmp_path: Path) -> None:
    plan = load_dialplan(write(tmp_path, BASE))
    assert plan.auth.bans == BanSettings(
        source_failures=5, account_failures=12, window=30.0, duration=120.0
    )
    plain = load_dialplan(
        write(
            tmp_path,
            BASE.replace(
                "  bans: {source_failures: 5, account_failures: 12, window: 30, duration: 120}\n",
                "",
            ),
        )
    )
    assert plain.auth.bans == BanSettings()


@pytest.mark.parametrize(
    ("edit", "line", "message"),
    [
        (("    algorithms: [md5]\n", "    algorithms: [md5, MD5]\n"), 12, "MD5 is listed twice"),
        (("    algorithms: [md5]\n", "    algorithms: []\n"), 12, "algorithms"),
        (("    algorithms: [md5]\n", "    algorithms: [SHA-512]\n"), 12, "algorithms"),
        (
            (
                '      - {id: caf-2, address: "192.0.2.10:5060"}',
                '      - {id: caf-2, address: "192.0.2.10:5060", algorithms: [MD5]}',
            ),
            29,
            "algorithms apply to a digest login only",
        ),
        (("window: 30", "window: 0"), 6, "auth.bans.window"),
        (("source_failures: 5", "source_failures: -1"), 6, "auth.bans.source_failures"),
        (("duration: 120", "duraton: 120"), 6, "unknown key 'duraton'"),
    ],
)
def test_mistakes_are_reported_with_their_line(
    tmp_path: Path, edit: tuple[str, str], line: int, message: str
) -> None:
    old, new = edit
    assert BASE.count(old) == 1
    with pytest.raises(DialplanError) as err:
        load_dialplan(write(tmp_path, BASE.replace(old, new)))
    assert err.value.line == line, str(err.value)
    assert message in err.value.reason, str(err.value)
