"""Bandwidth per site (RFC 4566 5.8 b=AS, RFC 3890 b=TIAS): the SDP model's limit on a
real Tandberg video offer, the dialplan's ``bandwidth``, and the controller writing the
lower of the kiosk site's and the station's limits into what each leg is sent."""

from __future__ import annotations

from pathlib import Path

import pytest
from fakes import ANSWER, OFFER
from harness import ROOT, VECTORS
from test_controller import DIALPLAN, World

from gateway.dialplan import DialplanError, load_dialplan
from gateway.model.bandwidth import AUDIO_SHARE, limit_bandwidth
from gateway.model.events import Answered, MediaUpdate, Side
from gateway.model.sdp import SessionDescription

TANDBERG = VECTORS / "sip" / "tandberg-TE4.1.1-INVITE-h264-h263-bfcp.sip"


def bandwidths(sdp: SessionDescription) -> tuple[dict[str, int], list[dict[str, int]]]:
    return dict(sdp.bandwidths), [dict(m.bandwidths) for m in sdp.media]


def test_a_real_video_offer_limited_to_a_512k_town_hall() -> None:
    """The Tandberg asks for 1152 kbit/s (b=AS) and two 1152 kbit/s video lines (main
    and slides, b=TIAS); its audio line asks for 64 kbit/s (b=TIAS:64000); BFCP and
    H.224 lines ask for nothing."""
    offer = SessionDescription.parse(TANDBERG.read_bytes().split(b"\r\n\r\n", 1)[1])
    before = offer.serialize()
    limited = limit_bandwidth(offer, 512)
    assert offer.serialize() == before  # a copy: the offer as received is untouched
    session, media = bandwidths(limited)
    assert session == {"AS": 512, "TIAS": 486400}
    kinds = [m.kind for m in limited.media]
    assert kinds == ["audio", "video", "application", "video", "application"]
    audio, main, bfcp, slides, camera = media
    assert audio == {"TIAS": 64000, "AS": 512}  # its own lower TIAS kept
    share = (512 - AUDIO_SHARE) // 2  # the two video lines share the rest
    assert main == slides == {"TIAS": int(share * 1000 * 0.95), "AS": share}
    assert bfcp == camera == {}  # BFCP and H.224 far-end camera control: left alone
    # written as RFC 4566 lines, after c=, and read back the same
    again = SessionDescription.parse(limited.serialize())
    assert bandwidths(again) == (session, media)
    assert b"b=AS:512\r\n" in limited.serialize()


def test_a_limit_never_raises_one_and_skips_refused_lines() -> None:
    low = SessionDescription.parse(
        OFFER.serialize()
        .replace(b"m=video 4002", b"m=video 4002")
        .replace(b"a=rtpmap:96 H264/90000\r\n", b"b=AS:200\r\na=rtpmap:96 H264/90000\r\n")
    )
    limited = limit_bandwidth(low, 2000)
    assert dict(limited.media[1].bandwidths)["AS"] == 200  # lower already: kept
    assert dict(limited.media[0].bandwidths) == {}  # audio asked for nothing: left alone
    refused = limit_bandwidth(
        SessionDescription.parse(OFFER.serialize().replace(b"m=video 4002", b"m=video 0")), 512
    )
    assert refused.media[1].bandwidths == []


def test_the_example_dialplan_has_a_512k_town_hall(tmp_path: Path) -> None:
    plan = load_dialplan(ROOT / "dialplans" / "example.yaml")
    assert plan.kiosks["conde-sur-vire"].bandwidth == 512
    assert plan.kiosks["lessay"].bandwidth is None
    bad = tmp_path / "bad.yaml"
    bad.write_text(DIALPLAN.replace("services: all}", "services: all, bandwidth: 12}", 1))
    with pytest.raises(DialplanError) as err:
        load_dialplan(bad)
    assert "bandwidth" in str(err.value) and err.value.line is not None


SLOW = DIALPLAN.replace(  # the Gavray town hall on DSL; caf-2 behind a 1 Mbit/s link
    "addresses: [127.0.0.12],\n     services: [caf, solo]}",
    "addresses: [127.0.0.12],\n     services: [caf, solo], bandwidth: 512}",
).replace(
    '- {id: caf-2, address: "127.0.0.22:5060"}',
    '- {id: caf-2, address: "127.0.0.22:5060", bandwidth: 1000}',
)


@pytest.fixture
def slow_world(tmp_path: Path) -> World:
    path = tmp_path / "slow.yaml"
    path.write_text(SLOW)
    assert SLOW != DIALPLAN and SLOW.count("bandwidth") == 2
    return World(load_dialplan(path))


def test_a_slow_site_limits_both_legs_of_its_calls(slow_world: World) -> None:
    a = slow_world.call("caf", kiosk="gavray")
    b = slow_world.station_leg("caf-1")
    assert b.call is not None and b.call.offer is not None
    assert dict(b.call.offer.bandwidths) == {"AS": 512, "TIAS": 486400}  # toward the station
    assert dict(b.call.offer.media[1].bandwidths)["AS"] == 512 - AUDIO_SHARE
    slow_world.emit(b, Answered(ANSWER))
    answer = a.last("answer")
    assert dict(answer.bandwidths)["AS"] == 512  # toward the kiosk
    # a re-offer from the station (RFC 3264 8) is limited on its way to the kiosk, and
    # the kiosk's answer on its way back
    slow_world.emit(b, MediaUpdate(ANSWER))
    assert dict(a.last("update").bandwidths)["AS"] == 512
    assert a.side is Side.A


def test_the_lower_of_site_and_station_wins_and_no_limit_writes_nothing(
    slow_world: World,
) -> None:
    slow_world.call("caf", kiosk="lessay")  # no limit at Lessay, caf-1 has none
    first = slow_world.station_leg("caf-1")
    assert first.call is not None and first.call.offer is not None
    assert first.call.offer.bandwidths == [] and first.call.offer.media[1].bandwidths == []
    slow_world.emit(first, Answered(ANSWER))
    slow_world.call("caf", kiosk="lessay")  # caf-1 busy: caf-2, behind 1 Mbit/s
    second = slow_world.station_leg("caf-2")
    assert second.call is not None and second.call.offer is not None
    assert dict(second.call.offer.bandwidths)["AS"] == 1000
