"""``encryption: required`` per site (kiosk) or partner: plain media is refused before
any desk or media engine sees the call (Q.850 cause 65, SIP 488, RFC 3398 7.2.4.1)."""

from __future__ import annotations

import base64
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from fakes import OFFER, FakeDialer, FakeLeg, FakeMedia, FakeScheduler, static_targets

from gateway.call.b2bua import B2BUA
from gateway.call.stations import StationMonitor
from gateway.dialplan import DialplanError, load_dialplan
from gateway.model.causes import Cause, Refusal
from gateway.model.events import CallAttempt, Side
from gateway.model.sdp import SessionDescription
from gateway.sip.causes import sip_from_q850
from gateway.texts import text

DIALPLAN = """
version: 1
domain: visio.test
auth: {realm: test}
kiosks:
  - {id: lessay, site: Lessay, addresses: [127.0.0.11], services: all}
  - {id: gavray, site: Gavray, addresses: [127.0.0.12], services: all, encryption: required}
services:
  - {name: caf, number: "1001", partner: caf}
  - {name: msa, number: "1002", partner: msa}
partners:
  - id: caf
    name: CAF
    encryption: REQUIRED
    stations:
      - {id: caf-1, address: "127.0.0.21:5061", transport: tls}
  - id: msa
    name: MSA
    stations:
      - {id: msa-1, address: "127.0.0.22:5060"}
"""
KEY = base64.b64encode(bytes(range(30))).decode()
SRTP_OFFER = SessionDescription.parse(
    (
        "v=0\r\no=- 1 1 IN IP4 127.0.0.11\r\ns=-\r\nc=IN IP4 127.0.0.11\r\nt=0 0\r\n"
        "m=audio 40000 RTP/SAVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
        f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}\r\n"
    ).encode()
)


@pytest.fixture
def plan_path(tmp_path: Path) -> Path:
    path = tmp_path / "enc.yaml"
    path.write_text(DIALPLAN)
    return path


def test_loader_reads_the_setting(plan_path: Path) -> None:
    plan = load_dialplan(plan_path)
    assert plan.partners["caf"].encryption_required
    assert not plan.partners["msa"].encryption_required
    assert plan.kiosks["gavray"].encryption_required
    assert not plan.kiosks["lessay"].encryption_required
    station = plan.partners["caf"].stations[0]
    assert station.address is not None and station.address.transport == "tls"


def test_loader_refuses_other_values(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(DIALPLAN.replace("encryption: REQUIRED", "encryption: maybe"))
    with pytest.raises(DialplanError) as caught:
        load_dialplan(path)
    assert caught.value.line == 14 and "partners[0].encryption" in str(caught.value)


async def test_a_tls_station_is_called_with_transport_tls(plan_path: Path) -> None:
    plan = load_dialplan(plan_path)
    ua = SimpleNamespace(dialplan=plan)  # _locate reads only the dialplan of a static one
    monitor = StationMonitor(ua, lambda station, up: None, wall_clock=time.time)  # type: ignore[arg-type]
    target = await monitor._locate(plan.partners["caf"].stations[0])
    assert target is not None
    assert target.transport == "tls" and target.uri.endswith(";transport=tls")


@pytest.mark.parametrize(
    ("kiosk", "service", "offer", "refused"),
    [
        ("lessay", "caf", OFFER, True),  # the partner requires it
        ("gavray", "msa", OFFER, True),  # the site requires it
        ("lessay", "caf", None, True),  # a late offer cannot be checked: refused
        ("lessay", "caf", SRTP_OFFER, False),
        ("gavray", "msa", SRTP_OFFER, False),
        ("lessay", "msa", OFFER, False),  # nobody requires it
    ],
)
def test_plain_media_is_refused_where_required(
    plan_path: Path,
    kiosk: str,
    service: str,
    offer: SessionDescription | None,
    refused: bool,
) -> None:
    plan = load_dialplan(plan_path)
    sched, media, dialer = FakeScheduler(), FakeMedia(), FakeDialer()
    targets = static_targets(plan)
    b2bua = B2BUA(plan, media, sched, {"sip": dialer}, targets.get)
    for sid in targets:
        b2bua.station_reachable(sid, True)
    leg = FakeLeg(Side.A)
    b2bua.on_attempt(leg, CallAttempt(kiosk, service, offer, ()))
    sched.settle()
    if refused:
        failure = leg.last("reject")
        assert failure.cause is Cause.BEARER_CAPABILITY_NOT_IMPLEMENTED
        assert b2bua.records[-1].refusal is Refusal.ENCRYPTION_REQUIRED
        assert media.calls == {} and dialer.to("caf-1") == [] and dialer.to("msa-1") == []
        assert sip_from_q850(failure.cause) == 488
        assert text(Refusal.ENCRYPTION_REQUIRED.text_key) == "Communication chiffrée obligatoire"
    else:
        assert "reject" not in leg.names()
        assert dialer.to(f"{service}-1"), "the station was called"
