"""The test harness's own promises."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
from pathlib import Path

import harness
import pytest
from harness import free_port, start_capture


def test_free_port_never_hands_out_a_port_twice() -> None:
    """The kernel gives the same ephemeral port again once its probe socket closes (5 in
    500 here): a port picked for a peer that has not bound it yet went to the gateway
    started next, in a CI run."""
    ports = [free_port() for _ in range(500)]
    assert len(set(ports)) == len(ports)


def test_ranges_slide_past_ports_tshark_decodes_and_ports_in_use(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A pjsua2 agent takes 200 RTP ports. In 18000-20000, the fifth of five workers'
    slice, tshark decodes ten ports by number (the list below, from its decode table);
    stepping 200 ports at a time, the old search wrapped around and handed out a range
    twice (or none: six interop tests of a run failed). Now each try starts after the
    port that spoiled the one before."""
    decoded = frozenset({18246, 19006, 19042, 19043, 19132, 19506, 19543, 19788, 19948, 19999})
    in_use = {18100}
    monkeypatch.setattr(harness, "_PORTS", range(18000, 20000))
    monkeypatch.setattr(harness, "_next_port", 18000)
    monkeypatch.setattr(harness, "_dissected_ports", lambda: decoded)
    monkeypatch.setattr(harness, "ports_free", lambda ports: in_use.isdisjoint(ports))
    pairs = [harness.rtp_ports(200) for _ in range(5)]
    ranges = [range(first, last + 1) for first, last in pairs]
    assert [r.start for r in ranges] == [18248, 18448, 18648, 19134, 19544], ranges
    assert all(len(r) == 200 and not (decoded | in_use) & set(r) for r in ranges), ranges


# socket() of a packet socket (dumpcap's, after its "Capturing on") made 0.5 s slower
SLOW_PACKET_SOCKET = """
#define _GNU_SOURCE
#include <dlfcn.h>
#include <unistd.h>
#include <sys/socket.h>
int socket(int domain, int type, int protocol) {
    static int (*real)(int, int, int);
    if (!real) real = (int (*)(int, int, int))dlsym(RTLD_NEXT, "socket");
    if (domain == AF_PACKET) usleep(500000);
    return real(domain, type, protocol);
}
"""


@pytest.mark.interop
def test_a_capture_holds_what_is_sent_once_it_is_started(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """dumpcap says "Capturing on" before it opens its packet socket: a test that sent
    at once lost its packets when dumpcap was slow to go on (a nine-worker run). Here a
    real dumpcap is made slow at that step (an LD_PRELOAD shim, built with gcc); the
    datagram sent as soon as start_capture returns is in the file (the old check, on the
    message alone, lost it 5 times in 5)."""
    shim = tmp_path / "slow.so"
    source = tmp_path / "slow.c"
    source.write_text(SLOW_PACKET_SOCKET)
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(shim), str(source), "-ldl"], check=True)
    wrapper = tmp_path / "bin" / "dumpcap"
    wrapper.parent.mkdir()
    real = shutil.which("dumpcap")
    assert real, "dumpcap is missing: scripts/install --test installs tshark"
    wrapper.write_text(f'#!/bin/sh\nLD_PRELOAD={shim} exec {real} "$@"\n')
    wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{wrapper.parent}{os.pathsep}{os.environ['PATH']}")
    port = free_port()
    capture = start_capture(tmp_path / "first.pcapng", [port])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(b"first", ("127.0.0.1", port))
    capture.stop()
    assert capture.fields(f"udp.dstport == {port}", "udp.payload") == [[b"first".hex()]]


STACK = "(most recent call first)"  # faulthandler's header of each thread's stack


def test_a_gateway_that_stops_answering_is_reported_with_where_it_stood(
    tmp_path: Path,
) -> None:
    """SIGUSR1 makes a gateway write its threads' stacks to its log and go on; one whose
    admin API stops answering (here stopped by SIGSTOP) fails a test with its process
    state, its log and those stacks, not a bare timeout (seven-worker runs had two API
    calls time out after 5 s, with nothing to tell why)."""
    gw = harness.start_gateway(tmp_path, harness.ROOT / "dialplans" / "example.yaml")
    try:
        gw.proc.send_signal(signal.SIGUSR1)
        harness.wait_for(lambda: STACK in gw.log(), 5, "the stacks")
        assert gw.http("/healthz")["status"] == "ok"
        # the handler wrote all of it before the event loop could answer
        dumped = gw.log().count(STACK)
        gw.proc.send_signal(signal.SIGSTOP)
        with pytest.raises(harness.GatewayNotAnswering) as stalled:
            gw.http("/api/v1/status")
        report = str(stalled.value)
        assert "/api/v1/status" in report and f"gateway {gw.proc.pid}: state T" in report
    finally:
        gw.proc.send_signal(signal.SIGCONT)
        assert harness.stop_gateway(gw) == 0
    # the report's SIGUSR1 waited for the SIGCONT: its stacks came after
    assert gw.log().count(STACK) > dumped, gw.log()[-3000:]


def test_a_forked_gateway_ends_as_the_command_would(tmp_path: Path) -> None:
    """The harness forks its gateways from a fork server that has done the imports of
    ``python -m gateway run``. Such a gateway must report its end as that process would:
    the error and exit code of one that cannot start, 0 after SIGTERM, minus the signal
    when killed, in its own session (tests signal its process group)."""
    broken = tmp_path / "broken.yaml"
    broken.write_text("kiosks: [\n")
    with pytest.raises(RuntimeError) as refused:
        harness.start_gateway(tmp_path, broken)
    assert "gateway exited 1" in str(refused.value), refused.value
    assert f"error: {broken}:" in str(refused.value), refused.value

    example = harness.ROOT / "dialplans" / "example.yaml"
    gw = harness.start_gateway(tmp_path, example)
    assert isinstance(gw.proc, harness.ForkedProcess)
    assert os.getsid(gw.proc.pid) == gw.proc.pid
    with pytest.raises(subprocess.TimeoutExpired):
        gw.proc.wait(timeout=0.2)
    assert harness.stop_gateway(gw) == 0
    assert "gateway.app: stopping" in gw.log(), gw.log()[-2000:]

    killed = harness.start_gateway(tmp_path, example)
    killed.proc.kill()
    assert killed.proc.wait(timeout=10) == -signal.SIGKILL
    assert killed.proc.returncode == -signal.SIGKILL
