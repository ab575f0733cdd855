"""Dialplan loading: the shipped files, every lookup, and broken files located to the line."""

from __future__ import annotations

import logging
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from gateway.dialplan import (
    AuthSettings,
    Dialplan,
    DialplanError,
    Kiosk,
    Partner,
    Service,
    StaticAddress,
    Station,
    load_dialplan,
)

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "dialplans" / "example.yaml"
LOADTEST = ROOT / "dialplans" / "loadtest.yaml"
EXAMPLE_PASSWORDS = [
    line.partition(":")[2].strip()
    for line in (ROOT / "dialplans" / "example.secrets").read_text().splitlines()
    if line.strip() and not line.startswith("#")
]


# ---------------------------------------------------------------------------------------
# The shipped dialplans.


@pytest.fixture(scope="module")
def example() -> Dialplan:
    return load_dialplan(EXAMPLE, env={})


@pytest.fixture(scope="module")
def loadtest() -> Dialplan:
    return load_dialplan(LOADTEST, env={})


def test_example_describes_the_department(example: Dialplan) -> None:
    assert example.source == EXAMPLE
    assert example.domain == "visio.manche.example"
    assert example.auth == AuthSettings(
        realm="visio-relais", algorithms=("SHA-256", "MD5"), nonce_ttl=300
    )
    assert set(example.kiosks) == {
        "lessay",
        "carentan",
        "brecey",
        "saint-james",
        "gavray",
        "conde-sur-vire",
    }
    assert {s.name: s.number for s in example.services.values()} == {
        "caf": "1001",
        "cpam": "1002",
        "msa": "1003",
        "urssaf": "1004",
        "france-travail": "1005",
    }
    assert [st.id for st in example.partners["caf"].stations] == ["caf-1", "caf-2"]
    for partner in ("cpam", "msa", "urssaf", "france-travail"):
        assert len(example.partners[partner].stations) == 1
    every_station = [st for p in example.partners.values() for st in p.stations]
    assert all(st.username and st.address is None for st in every_station)
    # At least one site does not offer every service.
    assert any(k.services != set(example.services) for k in example.kiosks.values())


def test_example_every_login_has_its_demo_password(example: Dialplan) -> None:
    logins = [k.username for k in example.kiosks.values()]
    logins += [st.username for p in example.partners.values() for st in p.stations]
    assert None not in logins
    assert sorted(example.secret_for(u) or "" for u in logins if u) == sorted(EXAMPLE_PASSWORDS)


def test_loadtest_routes_bench_to_a_static_station(loadtest: Dialplan) -> None:
    kiosk = loadtest.kiosk_for_address("127.0.0.1")
    assert kiosk is not None and kiosk.username is None
    service = loadtest.resolve_service("bench")
    assert service is not None and service.number == "9999"
    assert loadtest.resolve_service("9999") == service
    assert loadtest.may_call(kiosk, service)
    assert list(loadtest.partners) == ["bench"]
    (station,) = loadtest.partners["bench"].stations
    assert station.username is None
    assert station.address == StaticAddress(host="127.0.0.1", port=5070, transport="udp")
    assert station.max_calls == 0  # SIPp's uas takes every call at once
    assert loadtest.media.timeout == 0
    assert loadtest.credentials == {}


# ---------------------------------------------------------------------------------------
# Lookups.


def test_kiosk_for_user(example: Dialplan) -> None:
    kiosk = example.kiosk_for_user("kiosk-gavray")
    assert kiosk is not None
    assert (kiosk.id, kiosk.label) == ("gavray", "Gavray")
    assert kiosk.site == "Communauté de communes de Gavray"
    assert example.kiosk_for_user("KIOSK-GAVRAY") is None  # SIP user parts are case-sensitive
    assert example.kiosk_for_user("station-caf-1") is None
    assert example.kiosk_for_user("") is None


def test_kiosk_for_address_normalises_the_source(loadtest: Dialplan, example: Dialplan) -> None:
    bench = loadtest.kiosks["bench-uac"]
    assert loadtest.kiosk_for_address("127.0.0.1") is bench
    assert loadtest.kiosk_for_address("::ffff:127.0.0.1") is bench  # dual-stack socket
    assert loadtest.kiosk_for_address("127.0.0.2") is None
    assert loadtest.kiosk_for_address("localhost") is None
    assert loadtest.kiosk_for_address("") is None
    assert example.kiosk_for_address("127.0.0.1") is None  # example kiosks all log in


def test_station_for_user(example: Dialplan) -> None:
    found = example.station_for_user("station-caf-2")
    assert found is not None
    partner, station = found
    assert partner.id == "caf" and partner.name == "Caisse d'allocations familiales de la Manche"
    assert station == Station(id="caf-2", partner="caf", username="station-caf-2", address=None)
    assert station.max_calls == 1  # one call per videoconference unit by default
    assert example.station_for_user("kiosk-lessay") is None
    assert example.station_for_user("caf-2") is None  # the id is not the login


def test_secret_for(example: Dialplan) -> None:
    assert example.secret_for("kiosk-lessay") == "demo-lessay-7Qm2"
    assert example.secret_for("station-urssaf-1") == "demo-urssaf-1-4Nf7"
    assert example.secret_for("nobody") is None


def test_resolve_service_by_name_or_number(example: Dialplan) -> None:
    caf = example.services["caf"]
    assert caf == Service(
        name="caf", number="1001", partner="caf", label="CAF - Allocations familiales"
    )
    assert example.resolve_service("caf") is caf
    assert example.resolve_service("CAF") is caf
    assert example.resolve_service("1001") is caf
    assert example.resolve_service("1004") is example.services["urssaf"]
    assert example.resolve_service("1006") is None
    assert example.resolve_service("carsat") is None
    assert example.partner_for(caf) is example.partners["caf"]


def test_may_call_follows_each_site(example: Dialplan) -> None:
    urssaf, msa = example.services["urssaf"], example.services["msa"]
    assert example.may_call(example.kiosks["lessay"], urssaf)  # "all"
    assert not example.may_call(example.kiosks["gavray"], urssaf)
    assert example.may_call(example.kiosks["gavray"], msa)
    assert not example.may_call(example.kiosks["conde-sur-vire"], example.services["cpam"])
    stranger = Service(name="urssaf", number="1004", partner="elsewhere", label="x")
    assert not example.may_call(example.kiosks["lessay"], stranger)


def test_dialplan_is_read_only(example: Dialplan) -> None:
    with pytest.raises(TypeError):
        example.kiosks["x"] = example.kiosks["lessay"]  # type: ignore[index]
    with pytest.raises(AttributeError):
        example.domain = "other"  # type: ignore[misc]


def test_no_password_in_reprs(example: Dialplan) -> None:
    text = repr(example) + repr(list(example.kiosks.values())) + repr(example.credentials)
    for password in EXAMPLE_PASSWORDS:
        assert password not in text


def test_dialplan_built_in_code_is_indexed() -> None:
    # Other modules' tests build small dialplans directly, without YAML.
    station = Station(
        id="s", partner="p", username=None, address=StaticAddress(host="::1", port=5070)
    )
    kiosk = Kiosk(
        id="k", site="Site", label="K", username="ku", addresses=("::1",), services=frozenset({"x"})
    )
    plan = Dialplan(
        source=Path("inline"),
        domain="d.example",
        auth=AuthSettings(realm="d"),
        kiosks={"k": kiosk},
        services={"x": Service(name="x", number="42", partner="p", label="X")},
        partners={"p": Partner(id="p", name="P", stations=(station,))},
        credentials={},
    )
    assert plan.kiosk_for_address("[::1]") is kiosk
    assert plan.kiosk_for_user("ku") is kiosk
    assert plan.resolve_service("42") is plan.services["x"]
    assert station.address is not None and station.address.hostport == "[::1]:5070"
    assert plan.media.port_min == 20000 and plan.registration.default_expires == 600


def test_defaults_and_env_secrets(tmp_path: Path) -> None:
    path = tmp_path / "minimal.yaml"
    path.write_text(
        textwrap.dedent(
            """\
            version: 1
            domain: visio.test.example
            kiosks:
              - {id: k, site: S, username: k1, password: {env: VRGW_K1}, services: all}
            services:
              - {name: caf, number: "1001", partner: caf}
            partners:
              - id: caf
                name: CAF de test
                stations:
                  - {id: s1, address: "[::1]", transport: TCP}
            """
        )
    )
    plan = load_dialplan(path, env={"VRGW_K1": "from-env"})
    assert plan.secret_for("k1") == "from-env"
    assert plan.auth == AuthSettings(realm="visio.test.example")
    assert (plan.media.bind, plan.media.advertise) == ("127.0.0.1", None)
    assert (plan.media.port_min, plan.media.port_max, plan.media.timeout) == (20000, 29999, 60.0)
    assert (plan.session_timer.expires, plan.session_timer.min_se) == (1800, 90)
    reg = plan.registration
    assert (reg.min_expires, reg.max_expires, reg.default_expires) == (60, 3600, 600)
    assert plan.services["caf"].label == "CAF de test"  # defaults to the partner's name
    assert plan.kiosks["k"].label == "S"
    assert plan.partners["caf"].stations[0].address == StaticAddress("::1", 5060, "tcp")


# ---------------------------------------------------------------------------------------
# Broken dialplans: each case edits a valid base and marks the expected line with "#!".

BASE = """\
version: 1
domain: visio.test.example
secrets_file: test.secrets
auth:
  realm: test
media:
  port_min: 20000
  port_max: 20999
kiosks:
  - id: lessay
    site: MSP de Lessay
    username: kiosk-lessay
    password: {secret: kiosk-lessay}
    services: [caf, msa]
  - id: bench
    site: Banc
    addresses: [127.0.0.1]
    services: all
services:
  - {name: caf, number: "1001", partner: caf, label: CAF}
  - {name: msa, number: "1003", partner: msa}
partners:
  - id: caf
    name: CAF de la Manche
    stations:
      - {id: caf-1, username: station-caf-1, password: {secret: station-caf-1}}
      - {id: caf-2, address: "127.0.0.1:5072"}
  - id: msa
    name: MSA Côtes Normandes
    stations:
      - {id: msa-1, username: station-msa-1, password: {env: VRGW_TEST_MSA}}
"""
SECRETS = "# test only\nkiosk-lessay: pw-lessay-Zq1\nstation-caf-1: pw-caf-Zq2\n"
ENV = {"VRGW_TEST_MSA": "pw-msa-Zq3"}


@dataclass(frozen=True)
class Broken:
    name: str
    old: str
    new: str  # carries "#!" on the line the error must point to
    reason: str
    line: int | None = None  # when no "#!" can mark it: else the marked or the edited line


BROKEN = [
    Broken(
        "unknown-top-key", "auth:\n", "autth:  #!\n", "unknown key 'autth' (did you mean 'auth'?)"
    ),
    Broken(
        "unknown-kiosk-key",
        "    site: Banc\n",
        "    site: Banc\n    adresses: []  #!\n",
        "kiosks[1]: unknown key 'adresses' (did you mean 'addresses'?)",
    ),
    Broken(
        "missing-site",
        "  - id: bench\n    site: Banc\n",
        "  - id: bench  #!\n",
        "kiosks[1]: missing required key 'site'",
    ),
    Broken("missing-version", "version: 1\n", "", "missing required key 'version'", line=1),
    Broken("version-2", "version: 1", "version: 2  #!", "unsupported version 2"),
    Broken(
        "bad-domain",
        "domain: visio.test.example",
        "domain: visio test  #!",
        "domain: 'visio test' is not a valid host name",
    ),
    Broken(
        "bad-ipv4-domain",
        "domain: visio.test.example",
        "domain: 10.0.0.300  #!",
        "not a valid host name or IP address",
    ),
    Broken(
        "literal-password",
        "password: {secret: kiosk-lessay}",
        "password: s3cret  #!",
        "a password cannot be written in the dialplan",
    ),
    Broken(
        "secret-and-env",
        "password: {secret: kiosk-lessay}",
        "password: {secret: kiosk-lessay, env: X}  #!",
        "exactly one of 'secret' or 'env'",
    ),
    Broken(
        "unknown-service",
        "services: [caf, msa]",
        "services: [caf, mas]  #!",
        "kiosks[0].services[1]: unknown service 'mas'",
    ),
    Broken(
        "service-twice",
        "services: [caf, msa]",
        "services: [caf, caf]  #!",
        "service 'caf' is listed twice",
    ),
    Broken(
        "services-not-list",
        "services: all",
        "services: everything  #!",
        'must be a list of service names or "all"',
    ),
    Broken(
        "unknown-partner",
        "partner: msa}",
        "partner: mas}  #!",
        "services[1].partner: unknown partner 'mas'",
    ),
    Broken("label-read-as-bool", "label: CAF}", "label: yes}", "(quote it: YAML read a"),
    Broken("control-character", "    site: Banc\n", "    site: Ba\x07nc  #!\n", "#x0007"),
    Broken("unquoted-number", 'number: "1003"', "number: 1003", "quoted string"),
    Broken("bad-number", 'number: "1003"', 'number: "10-03"', "'10-03' is not a valid number"),
    Broken(
        "duplicate-number",
        'number: "1003"',
        'number: "1001"',
        "duplicate service number '1001' (first at line 20)",
    ),
    Broken(
        "duplicate-kiosk-id",
        "  - id: bench",
        "  - id: lessay  #!",
        "kiosks[1].id: duplicate kiosk id 'lessay' (first at line 10)",
    ),
    Broken(
        "duplicate-station-id",
        "{id: caf-2,",
        "{id: msa-1,",
        "partners[1].stations[0].id: duplicate station id 'msa-1' (first at line 27)",
        line=31,
    ),
    Broken(
        "duplicate-username",
        "username: station-msa-1",
        "username: kiosk-lessay",
        "duplicate username 'kiosk-lessay'",
    ),
    Broken(
        "username-is-a-service",
        "username: station-msa-1",
        "username: caf",
        "username 'caf' is also a service name or number",
    ),
    Broken("bad-service-name", "{name: msa,", "{name: MSA,", "'MSA' is not a valid service name"),
    Broken("bad-id", "  - id: bench", "  - id: Bench Test  #!", "'Bench Test' is not a valid id"),
    Broken(
        "duplicate-yaml-key",
        "    site: Banc\n",
        "    site: Banc\n    site: Banc  #!\n",
        "kiosks[1].site: duplicate key 'site'",
    ),
    Broken(
        "station-neither",
        '{id: caf-2, address: "127.0.0.1:5072"}',
        "{id: caf-2}  #!",
        "station 'caf-2' needs a username (it registers) or an address",
    ),
    Broken(
        "station-both",
        '{id: caf-2, address: "127.0.0.1:5072"}',
        '{id: caf-2, address: "127.0.0.1:5072", username: s2, password: {env: X}}  #!',
        "has both a username and an address",
    ),
    Broken("station-bad-host", '"127.0.0.1:5072"', '"bad_host!:5072"', "not a valid address"),
    Broken("station-bad-port", '"127.0.0.1:5072"', '"127.0.0.1:70000"', "not a valid address"),
    Broken(
        "station-bad-transport",
        '"127.0.0.1:5072"}',
        '"127.0.0.1:5072", transport: sctp}',
        "input should be 'udp', 'tcp' or 'tls'",
    ),
    Broken(
        "transport-without-address",
        "password: {env: VRGW_TEST_MSA}}",
        "password: {env: VRGW_TEST_MSA}, transport: udp}  #!",
        "transport applies to a static address only",
    ),
    Broken(
        "station-without-password",
        ", password: {env: VRGW_TEST_MSA}}",
        "}  #!",
        "station 'msa-1' has a username but no password",
    ),
    Broken(
        "partner-without-stations",
        "    stations:\n      - {id: msa-1, username: station-msa-1, "
        "password: {env: VRGW_TEST_MSA}}\n",
        "    stations: []  #!\n",
        "list should have at least 1 item",
    ),
    Broken("kiosk-without-login", "    addresses: [127.0.0.1]\n", "", "needs a username", line=15),
    Broken(
        "kiosk-bad-address",
        "addresses: [127.0.0.1]",
        "addresses: [127.0.0.1, kiosk.local]  #!",
        "kiosks[1].addresses[1]: 'kiosk.local' is not an IP address",
    ),
    Broken(
        "negative-max-calls",
        '"127.0.0.1:5072"}',
        '"127.0.0.1:5072", max_calls: -1}',
        "max_calls: input should be greater than or equal to 0",
    ),
    Broken("port-min-odd", "port_min: 20000", "port_min: 20001  #!", "must be even"),
    Broken(
        "port-range-inverted",
        "port_max: 20999",
        "port_max: 20000  #!",
        "must be greater than port_min (20000)",
    ),
    Broken(
        "port-not-int",
        "port_max: 20999",
        "port_max: '20999'  #!",
        "input should be a valid integer",
    ),
    Broken("port-too-low", "port_min: 20000", "port_min: 80  #!", "greater than or equal to 1024"),
    Broken(
        "wildcard-bind",
        "  port_min: 20000\n",
        "  bind: 0.0.0.0  #!\n  port_min: 20000\n",
        "needs media.advertise",
    ),
    Broken(
        "media-timeout-negative",
        "  port_min: 20000\n",
        "  timeout: -1  #!\n  port_min: 20000\n",
        "media.timeout: input should be greater than or equal to 0",
    ),
    Broken(
        "bad-algorithm",
        "  realm: test\n",
        "  realm: test\n  algorithms: [SHA-256, SHA-1]  #!\n",
        "auth.algorithms[1]: input should be 'SHA-256' or 'MD5'",
    ),
    Broken(
        "no-algorithm",
        "  realm: test\n",
        "  realm: test\n  algorithms: []  #!\n",
        "at least 1 item",
    ),
    Broken(
        "min-se-too-low",
        "auth:\n",
        "session_timer: {min_se: 30}  #!\nauth:\n",
        "session_timer.min_se: input should be greater than or equal to 90",
    ),
    Broken(
        "expires-below-min-se",
        "auth:\n",
        "session_timer: {expires: 100, min_se: 120}  #!\nauth:\n",
        "must be at least min_se (120)",
    ),
    Broken(
        "default-expires-out-of-range",
        "auth:\n",
        "registration: {default_expires: 7200}  #!\nauth:\n",
        "default_expires: must lie between min_expires (60) and max_expires (3600)",
    ),
    Broken(
        "missing-env",
        "{env: VRGW_TEST_MSA}",
        "{env: VRGW_UNSET}",
        "environment variable VRGW_UNSET is not set",
    ),
    Broken(
        "missing-secret",
        "{secret: station-caf-1}",
        "{secret: station-caf-9}",
        "secret 'station-caf-9' is not defined in",
    ),
    Broken(
        "secrets-file-missing",
        "secrets_file: test.secrets",
        "secrets_file: nowhere.secrets  #!",
        "nowhere.secrets does not exist",
    ),
    Broken(
        "secret-without-file",
        "secrets_file: test.secrets\n",
        "",
        "secret 'kiosk-lessay' is referenced but the dialplan has no secrets_file",
        line=12,
    ),
    # PyYAML's own line: where it notices that the flow sequence never closed.
    Broken("yaml-syntax", "    site: Banc\n", "    site: [Banc\n", "YAML syntax error", line=17),
    Broken("yaml-tab", "    site: Banc\n", "\tsite: Banc  #!\n", "YAML syntax error"),
    Broken(
        "yaml-python-tag",
        "    site: Banc\n",
        "    site: !!python/name:os.system  #!\n",
        "could not determine a constructor",
    ),
    Broken(
        "schedule-unquoted-time",
        "    name: MSA Côtes Normandes\n",
        "    name: MSA Côtes Normandes\n    schedule:\n"
        '      weekly: [{days: [fri], from: 9:00, to: "12:00"}]  #!\n',
        "write clock times in quotes",
    ),
    Broken(
        "schedule-ends-before-start",
        "    name: MSA Côtes Normandes\n",
        "    name: MSA Côtes Normandes\n    schedule:\n"
        '      weekly: [{days: [fri], from: "14:00", to: "12:00"}]  #!\n',
        "slot ends (12:00) before it starts (14:00)",
    ),
    Broken(
        "schedule-unknown-day",
        "    name: MSA Côtes Normandes\n",
        "    name: MSA Côtes Normandes\n    schedule:\n"
        '      weekly: [{days: [fryday], from: "09:00", to: "12:00"}]  #!\n',
        "unknown day 'fryday'",
    ),
    Broken(
        "schedule-bad-nth",
        "    name: MSA Côtes Normandes\n",
        "    name: MSA Côtes Normandes\n    schedule:\n"
        '      monthly: [{nth: 6, day: fri, from: "09:00", to: "12:00"}]  #!\n',
        "monthly[0].nth",
    ),
    Broken(
        "schedule-typo",
        "    name: MSA Côtes Normandes\n",
        "    name: MSA Côtes Normandes\n    schedule:\n      weekley: []  #!\n",
        "unknown key 'weekley' (did you mean 'weekly'?)",
    ),
    Broken(
        "queue-negative",
        "    name: MSA Côtes Normandes\n",
        "    name: MSA Côtes Normandes\n    queue: {max_length: -1}  #!\n",
        "max_length",
    ),
    Broken(
        "bad-timezone",
        "domain: visio.test.example\n",
        "domain: visio.test.example\ntimezone: Europe/Pariss  #!\n",
        "unknown time zone 'Europe/Pariss'",
    ),
    Broken(
        "h323-without-address",
        '      - {id: caf-2, address: "127.0.0.1:5072"}\n',
        "      - {id: caf-2, protocol: h323}  #!\n",
        "station 'caf-2': an H.323 station needs an address (host[:port]) or the alias",
    ),
    Broken(
        "h323-with-sip-login",
        '      - {id: caf-2, address: "127.0.0.1:5072"}\n',
        '      - {id: caf-2, protocol: h323, address: "127.0.0.1", transport: udp}  #!\n',
        "station 'caf-2': transport applies to SIP stations only",
    ),
    Broken(
        "alias-on-sip-station",
        '      - {id: caf-2, address: "127.0.0.1:5072"}\n',
        '      - {id: caf-2, address: "127.0.0.1:5072", alias: caf}  #!\n',
        "station 'caf-2': alias applies to H.323 stations only",
    ),
    Broken(
        "unknown-protocol",
        '      - {id: caf-2, address: "127.0.0.1:5072"}\n',
        '      - {id: caf-2, address: "127.0.0.1:5072", protocol: h320}  #!\n',
        "protocol",
    ),
    Broken(
        "isdn-unknown-gateway",
        '      - {id: caf-2, address: "127.0.0.1:5072"}\n',
        '      - {id: caf-2, protocol: h323, number: "0233445566", via: rnis}  #!\n',
        "station 'caf-2': unknown gateway 'rnis' (defined: none)",
    ),
    Broken(
        "isdn-number-without-gateway",
        '      - {id: caf-2, address: "127.0.0.1:5072"}\n',
        '      - {id: caf-2, protocol: h323, number: "0233445566"}  #!\n',
        "station 'caf-2': a number needs via",
    ),
    Broken(
        "isdn-number-not-digits",
        '      - {id: caf-2, address: "127.0.0.1:5072"}\n',
        '      - {id: caf-2, protocol: h323, number: "02 33", via: rnis}  #!\n',
        "number",
    ),
    Broken(
        "unknown-partner-gatekeeper",
        '      - {id: caf-2, address: "127.0.0.1:5072"}\n',
        "      - {id: caf-2, protocol: h323, alias: agent, gatekeeper: gk-caf}  #!\n",
        "station 'caf-2': unknown gatekeeper 'gk-caf' (defined: none)",
    ),
    Broken("not-a-mapping", BASE, "- just\n- a list\n", "must be a mapping", line=1),
    Broken("empty", BASE, "# nothing\n", "the dialplan is empty", line=1),
]


def _write(tmp_path: Path, text: str, secrets: str = SECRETS) -> Path:
    (tmp_path / "test.secrets").write_text(secrets)
    path = tmp_path / "test.yaml"
    path.write_text(text)
    return path


def test_schedules_queues_and_site_hours_are_read(tmp_path: Path) -> None:
    text = BASE.replace(
        "    name: MSA Côtes Normandes\n",
        "    name: MSA Côtes Normandes\n"
        "    wrap_up: 45\n    pause_after: 2\n"
        "    queue: {max_length: 4, max_wait: 600, waiting: ringing}\n"
        "    schedule:\n"
        "      weekly:\n"
        '        - {days: [mercredi, thu], from: "09:00", to: "12:00"}\n'
        '        - {days: [tue], from: "14:00", to: "24:00", appointment: true}\n'
        '      monthly: [{nth: -1, day: fri, from: "09:00", to: "17:00"}]\n'
        "      closures: [{from: 2026-12-24, to: 2027-01-01, reason: Fêtes}, {from: 2026-11-10}]\n"
        "      holidays: alsace-moselle\n",
    ).replace(
        "    services: [caf, msa]\n",
        "    services: [caf, msa]\n"
        '    opening_hours: {weekly: [{days: [mon], from: "08:30", to: "12:30"}]}\n',
    )
    plan = load_dialplan(_write(tmp_path, text), env=ENV)
    msa = plan.partners["msa"]
    assert msa.desk.wrap_up == 45 and msa.desk.pause_after == 2
    assert msa.desk.queue.max_length == 4 and msa.desk.queue.waiting == "ringing"
    assert msa.schedule is not None and plan.partners["caf"].schedule is None
    assert [sorted(w.days) for w in msa.schedule.weekly] == [[2, 3], [1]]
    assert msa.schedule.weekly[1].kind == "appointment"
    assert msa.schedule.monthly[0].nth == -1
    assert msa.schedule.closures[1].first == msa.schedule.closures[1].last
    assert msa.schedule.holiday_rules == "alsace-moselle"
    assert plan.kiosks["lessay"].opening_hours is not None
    assert plan.kiosks["bench"].opening_hours is None


def test_h323_stations_are_called_by_address_on_port_1720(tmp_path: Path) -> None:
    text = BASE.replace(
        '      - {id: caf-2, address: "127.0.0.1:5072"}\n',
        '      - {id: caf-2, protocol: H323, address: "127.0.0.1", alias: "0233445566"}\n'
        '      - {id: caf-3, protocol: h323, address: "[::1]:1730"}\n',
    )
    plan = load_dialplan(_write(tmp_path, text), env=ENV)
    caf2, caf3 = plan.partners["caf"].stations[1:]
    assert (caf2.protocol, caf2.alias, caf2.address) == (
        "h323",
        "0233445566",
        StaticAddress("127.0.0.1", 1720, "tcp"),
    )
    assert (caf3.alias, caf3.address) == (None, StaticAddress("::1", 1730, "tcp"))
    assert plan.partners["caf"].stations[0].protocol == "sip"


def test_isdn_units_are_called_by_number_through_their_h320_gateway(tmp_path: Path) -> None:
    text = BASE.replace(
        "kiosks:\n",
        'h323:\n  gateways:\n    - {id: rnis-manche, address: "10.50.0.30"}\nkiosks:\n',
    ).replace(
        '      - {id: caf-2, address: "127.0.0.1:5072"}\n',
        '      - {id: caf-2, protocol: h323, number: "0233445566", via: rnis-manche}\n',
    )
    plan = load_dialplan(_write(tmp_path, text), env=ENV)
    isdn = plan.partners["caf"].stations[1]
    assert plan.gatekeepers == ()
    assert (isdn.protocol, isdn.alias, isdn.address) == (
        "h323",
        "0233445566",
        StaticAddress("10.50.0.30", 1720, "tcp"),
    )


def test_base_of_the_broken_table_is_valid(tmp_path: Path) -> None:
    plan = load_dialplan(_write(tmp_path, BASE), env=ENV)
    assert plan.secret_for("station-msa-1") == "pw-msa-Zq3"
    assert plan.kiosk_for_address("127.0.0.1") is plan.kiosks["bench"]


@pytest.mark.parametrize("case", BROKEN, ids=[c.name for c in BROKEN])
def test_broken_dialplan_points_at_file_and_line(tmp_path: Path, case: Broken) -> None:
    assert BASE.count(case.old) == 1, "the edit must be unambiguous"
    text = BASE.replace(case.old, case.new)
    marked = [n for n, line in enumerate(text.splitlines(), start=1) if "#!" in line]
    edited = BASE[: BASE.index(case.old)].count("\n") + 1
    expected_line = case.line or (marked[0] if marked else edited)
    path = _write(tmp_path, text)
    with pytest.raises(DialplanError) as caught:
        load_dialplan(path, env=ENV)
    error = caught.value
    assert (error.file, error.line) == (str(path), expected_line), error.reason
    assert case.reason in error.reason
    assert str(error) == f"{path}:{expected_line}: {error.reason}"


def test_several_errors_are_all_reported_first_line_first(tmp_path: Path) -> None:
    text = BASE.replace("port_min: 20000", "port_min: 20001").replace(
        "services: [caf, msa]", "services: [caf, mas]"
    )
    path = _write(tmp_path, text)
    with pytest.raises(DialplanError) as caught:
        load_dialplan(path, env=ENV)
    problems = caught.value.problems
    assert [(p.line, p.file) for p in problems] == [(7, str(path)), (14, str(path))]
    assert caught.value.line == 7 and "must be even" in caught.value.reason
    assert "unknown service 'mas'" in problems[1].reason


@pytest.mark.parametrize(
    ("secrets", "line", "reason"),
    [
        ("kiosk-lessay: a\nstation-caf-1\n", 2, "expected a line 'name: value'"),
        (
            "kiosk-lessay: a\n\nkiosk-lessay: b\nstation-caf-1: c\n",
            3,
            "defined twice (first at line 1)",
        ),
        ("kiosk-lessay: ''\nstation-caf-1: c\n", 1, "secret 'kiosk-lessay' is empty"),
    ],
)
def test_broken_secrets_file_points_at_its_own_line(
    tmp_path: Path, secrets: str, line: int, reason: str
) -> None:
    path = _write(tmp_path, BASE, secrets)
    with pytest.raises(DialplanError) as caught:
        load_dialplan(path, env=ENV)
    assert (caught.value.file, caught.value.line) == (str(tmp_path / "test.secrets"), line)
    assert reason in caught.value.reason


def test_secrets_file_values_are_verbatim(tmp_path: Path) -> None:
    secrets = "kiosk-lessay: p#ss: {x} 'y'\nstation-caf-1: \"  spaced  \"\n"
    plan = load_dialplan(_write(tmp_path, BASE, secrets), env=ENV)
    assert plan.secret_for("kiosk-lessay") == "p#ss: {x} 'y'"
    assert plan.secret_for("station-caf-1") == "  spaced  "


def test_unreadable_file_has_no_line(tmp_path: Path) -> None:
    with pytest.raises(DialplanError) as caught:
        load_dialplan(tmp_path / "absent.yaml")
    assert caught.value.line is None
    assert str(caught.value) == f"{tmp_path / 'absent.yaml'}: {caught.value.reason}"
    assert "cannot read the file" in caught.value.reason


def test_invalid_utf8_points_at_its_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(BASE.replace("Banc", "Bréhal").encode("latin-1"))
    with pytest.raises(DialplanError) as caught:
        load_dialplan(path)
    assert caught.value.line == 16 and "not valid UTF-8" in caught.value.reason


def test_env_defaults_to_os_environ(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VRGW_TEST_MSA", "pw-from-os")
    plan = load_dialplan(_write(tmp_path, BASE))
    assert plan.secret_for("station-msa-1") == "pw-from-os"
    monkeypatch.delenv("VRGW_TEST_MSA")
    with pytest.raises(DialplanError, match="VRGW_TEST_MSA is not set"):
        load_dialplan(_write(tmp_path, BASE))


def test_secrets_never_appear_in_errors_or_logs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    literal = "pw-literal-Zq9"
    text = BASE.replace("password: {secret: kiosk-lessay}", f"password: {literal}")
    text = text.replace("port_min: 20000", "port_min: 20001")
    path = _write(tmp_path, text)
    with pytest.raises(DialplanError) as caught:
        load_dialplan(path, env=ENV)
    error = caught.value
    shown = "\n".join(str(p) for p in error.problems) + repr(error) + caplog.text
    assert "a password cannot be written" in shown
    for secret in (literal, "pw-lessay-Zq1", "pw-caf-Zq2", "pw-msa-Zq3"):
        assert secret not in shown
    # The pydantic error (which quotes inputs) must not travel along in the traceback.
    assert error.__cause__ is None and error.__context__ is None

    plan = load_dialplan(_write(tmp_path, BASE), env=ENV)
    assert "pw-" not in repr(plan) + caplog.text


def test_reload_is_side_effect_free(tmp_path: Path) -> None:
    path = _write(tmp_path, BASE)
    running = load_dialplan(path, env=ENV)
    path.write_text(BASE.replace("services: [caf, msa]", "services: [caf, mas]"))
    with pytest.raises(DialplanError):
        load_dialplan(path, env=ENV)
    # The caller still holds a complete, working dialplan.
    assert running.resolve_service("msa") is running.services["msa"]
    assert running.may_call(running.kiosks["lessay"], running.services["msa"])
