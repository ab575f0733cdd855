"""A station's ``auth``: the login the gateway answers that station's 401/407 with."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from gateway.dialplan import DialplanError, Station, load_dialplan

BASE = """\
version: 1
domain: visio.test.example
secrets_file: test.secrets
kiosks:
  - id: lessay
    site: MSP de Lessay
    username: kiosk-lessay
    password: {secret: kiosk-lessay}
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
        auth: {username: gw-caf, password: {env: VRGW_TEST_GW_CAF}}
      - id: caf-2
        address: "192.0.2.10:5060"
        auth:
          username: gw-caf-2
          password: {secret: gw-caf-2}
      - {id: caf-3, address: "192.0.2.11"}
"""
SECRETS = "kiosk-lessay: pw-lessay-Qa1\nstation-caf-1: pw-caf-1-Qa2\ngw-caf-2: pw-gw-2-Qa3\n"
ENV = {"VRGW_TEST_GW_CAF": "pw-gw-1-Qa4"}
ALL_PASSWORDS = ("pw-lessay-Qa1", "pw-caf-1-Qa2", "pw-gw-2-Qa3", "pw-gw-1-Qa4")


def write(tmp_path: Path, text: str, secrets: str = SECRETS) -> Path:
    (tmp_path / "test.secrets").write_text(secrets)
    path = tmp_path / "test.yaml"
    path.write_text(text)
    return path


def test_stations_carry_their_outbound_login(tmp_path: Path) -> None:
    plan = load_dialplan(write(tmp_path, BASE), env=ENV)
    caf_1, caf_2, caf_3 = plan.partners["caf"].stations
    assert (caf_1.auth_username, caf_2.auth_username, caf_3.auth_username) == (
        "gw-caf",
        "gw-caf-2",
        None,
    )
    assert plan.outbound_credentials("caf-1") == ("gw-caf", "pw-gw-1-Qa4")  # from the env
    assert plan.outbound_credentials("caf-2") == ("gw-caf-2", "pw-gw-2-Qa3")  # secrets file
    assert plan.outbound_credentials("caf-3") is None
    assert plan.outbound_credentials("nobody") is None


def test_outbound_logins_are_apart_from_the_logins_towards_us(tmp_path: Path) -> None:
    # The gateway's login at a station may even share a name with a kiosk's login here:
    # neither password answers for the other.
    text = BASE.replace("username: gw-caf-2", "username: kiosk-lessay")
    plan = load_dialplan(write(tmp_path, text), env=ENV)
    assert plan.outbound_credentials("caf-2") == ("kiosk-lessay", "pw-gw-2-Qa3")
    assert plan.secret_for("kiosk-lessay") == "pw-lessay-Qa1"
    assert plan.secret_for("gw-caf") is None  # an outbound login never authenticates to us
    assert plan.station_for_user("gw-caf") is None


def test_no_outbound_password_in_reprs_or_logs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    plan = load_dialplan(write(tmp_path, BASE), env=ENV)
    stations = plan.partners["caf"].stations
    shown = repr(plan) + repr(stations) + repr(plan.station_secrets) + caplog.text
    for password in ALL_PASSWORDS:
        assert password not in shown


def test_a_station_built_in_code_has_no_auth_by_default() -> None:
    station = Station(id="s", partner="p", username="u", address=None)
    assert station.auth_username is None


@pytest.mark.parametrize(
    ("old", "new", "reason"),
    [
        (
            "          password: {secret: gw-caf-2}\n",
            "          password: hunter2-Qa9  #!\n",
            "a password cannot be written in the dialplan",
        ),
        (
            "          password: {secret: gw-caf-2}\n",
            "          password: null  #!\n",
            "partners[0].stations[1].auth.password: station 'caf-2': auth needs a password",
        ),
        (
            "        auth:\n          username: gw-caf-2\n          password: {secret: gw-caf-2}\n",
            "        auth:  #!\n          username: gw-caf-2\n",
            "partners[0].stations[1].auth: missing required key 'password'",
        ),
        (
            "          username: gw-caf-2\n",
            "          username: gw caf  #!\n",
            "'gw caf' is not a valid username",
        ),
        (
            "          username: gw-caf-2\n",
            "          user: gw-caf-2  #!\n",
            "unknown key 'user' (did you mean 'username'?)",
        ),
        (
            "          password: {secret: gw-caf-2}\n",
            "          password: {secret: gw-caf-9}  #!\n",
            "secret 'gw-caf-9' is not defined in",
        ),
        (
            "        auth: {username: gw-caf, password: {env: VRGW_TEST_GW_CAF}}\n",
            "        auth: {username: gw-caf, password: {env: VRGW_TEST_UNSET}}  #!\n",
            "environment variable VRGW_TEST_UNSET is not set",
        ),
        (
            '      - {id: caf-3, address: "192.0.2.11"}\n',
            '      - {id: caf-3, address: "192.0.2.11", auth: gw-caf-3}  #!\n',
            "partners[0].stations[2].auth",
        ),
    ],
    ids=[
        "literal-password",
        "null-password",
        "missing-password",
        "bad-username",
        "unknown-key",
        "undefined-secret",
        "unset-env",
        "not-a-mapping",
    ],
)
def test_broken_station_auth_points_at_its_line(
    tmp_path: Path, old: str, new: str, reason: str
) -> None:
    assert BASE.count(old) == 1
    text = BASE.replace(old, new)
    line = next(n for n, text_line in enumerate(text.splitlines(), 1) if "#!" in text_line)
    path = write(tmp_path, text)
    with pytest.raises(DialplanError) as caught:
        load_dialplan(path, env=ENV)
    error = caught.value
    # A renamed key is also a missing one: the expected problem need not come first.
    located = [(p.file, p.line) for p in error.problems if reason in p.reason]
    assert located == [(str(path), line)], [str(p) for p in error.problems]
    shown = "\n".join(str(p) for p in error.problems) + repr(error)
    for password in (*ALL_PASSWORDS, "hunter2-Qa9"):
        assert password not in shown
