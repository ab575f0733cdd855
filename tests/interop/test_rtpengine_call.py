"""Acceptance (issue 14, 2): the end-to-end call tests of the built-in relay, run again
with the gateway on ``--media-engine rtpengine`` and a real rtpengine started here.

The tests themselves are those of :mod:`test_pjsua_call` (a pjsua2 kiosk calls ``caf``,
its pjsua2 station answers, a tone crosses both ways, either side hangs up, nothing is
left behind) and :mod:`test_queue_presence` (a queued caller hears the French
announcement, then is connected): only the gateway factory they are given differs. The
rtpengine's RTP ports lie inside the range those tests check the UAs sent to, and its
own log must show that it carried the calls and played the announcement.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import test_pjsua_call as builtin_call
import test_queue_presence as builtin_queue
from harness import GatewayProcess
from rtpengine_peer import Rtpengine, start_rtpengine

pytestmark = pytest.mark.interop


@pytest.fixture
def rtpengine(tmp_path: Path) -> Iterator[Rtpengine]:
    # Inside 20000-29999, where test_pjsua_call checks that the UAs sent their media.
    daemon = start_rtpengine(tmp_path / "rtpengine", window=(20000, 30000))
    yield daemon
    daemon.stop()


@pytest.fixture
def rtpengine_gateways(gateway_factory: Any, rtpengine: Rtpengine) -> Any:
    """``gateway_factory``, with every gateway on ``--media-engine rtpengine``."""

    def factory(dialplan: Path, **kwargs: Any) -> GatewayProcess:
        extra = [*(kwargs.pop("extra", None) or []), "--media-engine", "rtpengine"]
        extra += ["--rtpengine", rtpengine.ng_address]
        return gateway_factory(dialplan, extra=extra, **kwargs)

    return factory


def commands(daemon: Rtpengine, name: str) -> int:
    """How many ng commands ``name`` rtpengine logged receiving."""
    return len(re.findall(rf"Received command '{name}'", daemon.log()))


@pytest.mark.parametrize("hangs_up", ["kiosk", "station"])
def test_kiosk_calls_caf_station_answers_through_rtpengine(
    rtpengine_gateways: Any, rtpengine: Rtpengine, tmp_path: Path, hangs_up: str
) -> None:
    builtin_call.test_kiosk_calls_caf_station_answers(rtpengine_gateways, tmp_path, hangs_up)
    log = rtpengine.log()
    assert commands(rtpengine, "offer") >= 1 and commands(rtpengine, "answer") >= 1, log[-3000:]
    assert commands(rtpengine, "delete") >= 1, log[-3000:]


def test_queued_caller_hears_the_announcement_through_rtpengine(
    rtpengine_gateways: Any, rtpengine: Rtpengine, tmp_path: Path
) -> None:
    builtin_queue.test_one_station_partner_queues_the_second_caller(rtpengine_gateways, tmp_path)
    log = rtpengine.log()
    assert commands(rtpengine, "play media") >= 1, log[-3000:]
    assert commands(rtpengine, "stop media") >= 1, log[-3000:]
    assert commands(rtpengine, "offer") >= 2 and commands(rtpengine, "delete") >= 2
