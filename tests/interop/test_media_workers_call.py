"""Acceptance (issue 14): the end-to-end call tests of the built-in relay, run again with
the gateway on ``--media-workers 2`` (the relay in two worker processes).

The tests are those of :mod:`test_pjsua_call` (a pjsua2 kiosk calls ``caf``, its pjsua2
station answers, a tone crosses both ways, either side hangs up, nothing is left behind:
no session and no port held, counters that come back from the workers) and
:mod:`test_queue_presence` (a queued caller hears the French announcement, played by a
worker, then is connected); only the gateway factory they are given differs. The
gateway's log must show both workers started and none died.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import test_pjsua_call as builtin_call
import test_queue_presence as builtin_queue
from harness import GatewayProcess

pytestmark = pytest.mark.interop

WORKER_READY = re.compile(r"media worker (\d) \(pid (\d+), ports (\d+)-(\d+)\) ready")


@pytest.fixture
def worker_gateways(gateway_factory: Any) -> Any:
    """``gateway_factory``, every gateway on ``--media-workers 2``; the started gateways
    are listed on the factory."""
    started: list[GatewayProcess] = []

    def factory(dialplan: Path, **kwargs: Any) -> GatewayProcess:
        extra = [*(kwargs.pop("extra", None) or []), "--media-workers", "2"]
        gw: GatewayProcess = gateway_factory(dialplan, extra=extra, **kwargs)
        started.append(gw)
        return gw

    factory.started = started  # type: ignore[attr-defined]
    return factory


def check_workers(gateways: list[GatewayProcess]) -> None:
    """Each gateway started two workers on disjoint halves of its port range (20000-29999
    in the example dialplan) and lost none."""
    assert gateways
    for gw in gateways:
        log = gw.log()
        ready = WORKER_READY.findall(log)
        assert sorted(int(index) for index, *_ in ready) == [0, 1], log[-3000:]
        ranges = sorted((int(low), int(high)) for *_, low, high in ready)
        assert ranges == [(20000, 24999), (25000, 29999)], ranges
        assert "died" not in log, log[-3000:]


@pytest.mark.parametrize("hangs_up", ["kiosk", "station"])
def test_kiosk_calls_caf_station_answers_through_workers(
    worker_gateways: Any, tmp_path: Path, hangs_up: str
) -> None:
    builtin_call.test_kiosk_calls_caf_station_answers(worker_gateways, tmp_path, hangs_up)
    check_workers(worker_gateways.started)


def test_queued_caller_hears_the_announcement_through_workers(
    worker_gateways: Any, tmp_path: Path
) -> None:
    builtin_queue.test_one_station_partner_queues_the_second_caller(worker_gateways, tmp_path)
    check_workers(worker_gateways.started)
