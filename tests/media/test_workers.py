"""The built-in relay in worker processes (gateway/media/workers.py), beyond the contract
suite that it passes with the in-loop relay (test_engine_contract.py): placement, what
flows back from the workers, a worker that dies, and workers that never outlive us.

Real processes, real UDP sockets on 127.0.0.1; nothing of the relay is mocked.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from harness import rtp_ports, start_gateway, stop_gateway
from test_engine_contract import Peer, recv, rtp
from test_inband_interworking import press, sdp
from test_relay_engine import HOST

from gateway import cli
from gateway.app import make_media_engine
from gateway.dialplan import load_dialplan
from gateway.media.engine import MediaError
from gateway.media.relay import RelayEngine
from gateway.media.workers import WorkerRelayEngine, port_slices
from gateway.model.events import Dtmf, FastUpdate, Side

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "dialplans" / "example.yaml"
Event = tuple[str, Side, Dtmf | FastUpdate]


def gone(pid: int) -> bool:
    """No such process (reaped, not a zombie)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


async def wait_until(predicate: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout} s")
        await asyncio.sleep(0.02)


@pytest.fixture
def peers() -> Iterator[list[Peer]]:
    made = [Peer() for _ in range(6)]
    yield made
    for peer in made:
        peer.close()


@pytest.fixture
async def engine() -> AsyncIterator[tuple[WorkerRelayEngine, list[str], list[Event]]]:
    low, high = rtp_ports(40)
    media = WorkerRelayEngine(workers=2, bind_host=HOST, port_min=low, port_max=high, timeout=0)
    timeouts: list[str] = []
    events: list[Event] = []
    media.set_timeout_handler(timeouts.append)
    media.set_event_handler(lambda call_id, side, event: events.append((call_id, side, event)))
    await media.start()
    yield media, timeouts, events
    await media.close()


async def connect(media: WorkerRelayEngine, call_id: str, a: Peer, b: Peer) -> tuple[int, int]:
    to_b = await media.offer(call_id, a.sdp(), from_side=Side.A)
    to_a = await media.answer(call_id, b.sdp(formats="8 101"), from_side=Side.B)
    return to_a.media[0].port, to_b.media[0].port


async def relays(a: Peer, b: Peer, a_port: int, seq: int = 1) -> None:
    """A packet from A reaches B through the relay."""
    packet = rtp(seq, os.urandom(160))
    a.rtp.sendto(packet, (HOST, a_port))
    assert (await recv(b.rtp))[0] == packet


def test_port_slices_are_disjoint_even_aligned_pairs() -> None:
    assert port_slices(20000, 29999, 2) == [(20000, 24999), (25000, 29999)]
    assert port_slices(20001, 20010, 2) == [(20002, 20005), (20006, 20009)]
    assert port_slices(10000, 10011, 4) == [
        (10000, 10003),
        (10004, 10007),
        (10008, 10009),
        (10010, 10011),
    ]
    with pytest.raises(ValueError, match="too few"):
        port_slices(10000, 10003, 3)
    # the relay's own checks, before any worker starts
    with pytest.raises(ValueError, match="too few"):
        WorkerRelayEngine(workers=3, port_min=10000, port_max=10003)
    with pytest.raises(ValueError, match="wildcard"):
        WorkerRelayEngine(bind_host="0.0.0.0")


async def test_calls_are_spread_over_the_workers_and_stay_on_theirs(
    engine: tuple[WorkerRelayEngine, list[str], list[Event]], peers: list[Peer]
) -> None:
    media, _, _ = engine
    a1, b1, a2, b2, a3, b3 = peers
    assert len(media.worker_pids) == 2 and media.workers_alive == 2
    first = await connect(media, "call-1", a1, b1)
    second = await connect(media, "call-2", a2, b2)
    assert media.worker_pid("call-1") != media.worker_pid("call-2")  # least calls first
    (low1, high1), (low2, high2) = port_slices(media.port_min, media.port_max, 2)
    ranges = {media.worker_pid("call-1"): first, media.worker_pid("call-2"): second}
    for ports in ranges.values():
        assert all(low1 <= p <= high1 for p in ports) or all(low2 <= p <= high2 for p in ports)
    # a re-offer goes to the call's worker, wherever the fewest calls are
    await media.delete("call-2")
    pid = media.worker_pid("call-1")
    again = await media.offer("call-1", a1.sdp(version=2), from_side=Side.A)
    assert media.worker_pid("call-1") == pid and again.media[0].port == first[1]
    await connect(media, "call-3", a3, b3)
    assert media.worker_pid("call-3") != pid
    assert media.session_count == 2 and media.ports_in_use == 8
    await relays(a1, b1, first[0])


async def test_timeouts_in_band_events_and_logs_come_back_to_the_gateway(
    peers: list[Peer], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)  # the workers log at the gateway's level
    low, high = rtp_ports(20)
    media = WorkerRelayEngine(workers=1, bind_host=HOST, port_min=low, port_max=high, timeout=0.4)
    timeouts: list[str] = []
    events: list[Event] = []
    media.set_timeout_handler(timeouts.append)
    media.set_event_handler(lambda call_id, side, event: events.append((call_id, side, event)))
    await media.start()
    try:
        a, b = peers[0], peers[1]
        await media.offer("c1", sdp(a), from_side=Side.A)
        answer = await media.answer("c1", sdp(b, audio="0"), from_side=Side.B)
        a_port = answer.media[0].port
        for packet in press(7, 8000, 2):  # RFC 4733: the station takes no telephone-event
            a.rtp.sendto(packet, (HOST, a_port))
        await wait_until(lambda: events, 3)
        assert events == [("c1", Side.A, Dtmf("7", 80))]
        await wait_until(lambda: timeouts, 3)  # then silence: the media timeout
        assert timeouts == ["c1"]
        # the worker's own log line, logged in this process with the worker named
        assert re.search(r"media worker 0: call c1: no media for 0\.\d s", caplog.text)
    finally:
        await media.close()


async def test_a_killed_worker_fails_its_calls_and_is_replaced(
    engine: tuple[WorkerRelayEngine, list[str], list[Event]],
    peers: list[Peer],
    caplog: pytest.LogCaptureFixture,
) -> None:
    media, timeouts, _ = engine
    a1, b1, a2, b2, a3, b3 = peers
    doomed_ports = await connect(media, "doomed", a1, b1)
    kept_ports = await connect(media, "kept", a2, b2)
    victim = media.worker_pid("doomed")
    assert victim is not None and victim != media.worker_pid("kept")
    os.kill(victim, signal.SIGKILL)

    await wait_until(lambda: timeouts == ["doomed"])  # the controller is told
    assert "died (killed by SIGKILL); 1 call(s) lose their media: doomed" in caplog.text
    for operation in (
        media.stats("doomed"),
        media.offer("doomed", a1.sdp(version=2), from_side=Side.A),
        media.play("doomed", "attente"),
        media.request_keyframe("doomed", to_side=Side.B),
    ):
        with pytest.raises(MediaError, match="is gone") as info:
            await operation
        assert info.value.__cause__ is not None and "SIGKILL" in str(info.value.__cause__)
    with pytest.raises(MediaError):
        await media.delete("doomed")
    assert await media.delete("doomed") is None  # forgotten after that

    await relays(a2, b2, kept_ports[0])  # the other worker's call goes on
    await wait_until(lambda: media.workers_alive == 2)  # replaced, on the same ports
    assert victim not in media.worker_pids and gone(victim)
    new = await connect(media, "new", a3, b3)
    replacement = media.worker_pid("new")  # the one holding no call
    assert replacement in media.worker_pids and replacement != media.worker_pid("kept")
    low, high = port_slices(media.port_min, media.port_max, 2)[0]
    assert all(low <= p <= high for p in (*doomed_ports, *new))  # the dead worker's slice
    await relays(a3, b3, new[0])


async def test_workers_are_gone_after_close(peers: list[Peer]) -> None:
    low, high = rtp_ports(20)
    media = WorkerRelayEngine(workers=2, bind_host=HOST, port_min=low, port_max=high, timeout=0)
    await media.start()
    pids = media.worker_pids
    assert len(pids) == 2 and not any(gone(pid) for pid in pids)
    await connect(media, "call-1", peers[0], peers[1])  # a call still up at close
    await media.close()
    assert all(gone(pid) for pid in pids)  # exited and reaped
    assert media.worker_pids == [] and media.ports_in_use == 0 and media.session_count == 0
    # closed, then started again: new workers, the same ports
    await media.start()
    try:
        assert len(media.worker_pids) == 2 and not set(media.worker_pids) & set(pids)
        await connect(media, "call-2", peers[2], peers[3])
    finally:
        await media.close()


def test_workers_die_with_the_gateway(tmp_path: Path) -> None:
    """A gateway killed outright (SIGKILL: no close) takes its workers with it."""
    low, high = rtp_ports(20)
    script = textwrap.dedent(
        f"""
        import asyncio, sys
        from gateway.media.workers import WorkerRelayEngine

        async def main():
            media = WorkerRelayEngine(workers=2, port_min={low}, port_max={high})
            await media.start()
            print(" ".join(map(str, media.worker_pids)), flush=True)
            await asyncio.sleep(60)

        asyncio.run(main())
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        pids = [int(p) for p in proc.stdout.readline().split()]
        assert len(pids) == 2 and not any(gone(pid) for pid in pids)
    finally:
        proc.kill()
        proc.wait()
    deadline = time.monotonic() + 5
    while not all(gone(pid) for pid in pids):  # orphans: reaped by init once dead
        assert time.monotonic() < deadline, "a worker outlived its gateway"
        time.sleep(0.05)


def test_a_stop_signal_to_the_whole_process_group_stops_the_gateway_cleanly(
    tmp_path: Path,
) -> None:
    """A service manager stops every process of the unit at once (systemd's SIGTERM to
    the control group): the workers leave it to the gateway, which stops them itself."""
    gw = start_gateway(tmp_path, EXAMPLE, extra=["--media-workers", "2"])
    try:
        ready = re.findall(r"media worker \d \(pid (\d+), ports \d+-\d+\) ready", gw.log())
        pids = [int(pid) for pid in ready]
        assert len(pids) == 2 and not any(gone(pid) for pid in pids)
        os.killpg(gw.proc.pid, signal.SIGTERM)  # the gateway leads its own session
        assert gw.proc.wait(timeout=15) == 0
    finally:
        stop_gateway(gw)
    log = gw.log()
    assert "died" not in log and "Traceback" not in log, log[-3000:]
    deadline = time.monotonic() + 5
    while not all(gone(pid) for pid in pids):
        assert time.monotonic() < deadline, "a worker outlived its gateway"
        time.sleep(0.05)


def gateway_media(*flags: str) -> object:
    """The media engine ``vrgw run FLAGS`` would build (nothing started)."""
    args = cli._parser().parse_args(["run", "--dialplan", str(EXAMPLE), *flags])
    return make_media_engine(cli.run_settings(args), load_dialplan(EXAMPLE))


def test_media_workers_option_picks_the_engine() -> None:
    assert type(gateway_media()) is RelayEngine  # 0, the default: in the gateway's loop
    assert type(gateway_media("--media-workers", "0")) is RelayEngine
    media = gateway_media("--media-workers", "2")
    assert isinstance(media, WorkerRelayEngine)
    assert (media.port_min, media.port_max) == (20000, 29999)  # the dialplan's range
    with pytest.raises(OSError, match="built-in relay"):
        gateway_media("--media-workers", "2", "--media-engine", "rtpengine")


@pytest.mark.parametrize("value", ["-1", "65", "two"])
def test_media_workers_must_be_a_small_count(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["run", "--dialplan", str(EXAMPLE), "--media-workers", value])
    assert exit_info.value.code == 2
    assert "argument --media-workers:" in capsys.readouterr().err
