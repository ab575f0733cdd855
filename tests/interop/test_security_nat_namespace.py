"""Acceptance 5 of issue 13: real UAs behind a real NAT register, call, are called and
get their media; every response tells them where they really are.

A network namespace holds two pjsua2 agents, a station (``station-caf-1``) and a kiosk
(``kiosk-lessay``), both bound to the namespace's own 127.0.0.1: the private address
they write in their Via, Contact and SDP, and which means another machine (the test
host's own loopback) to the gateway. The namespace reaches the host over a veth pair
addressed in 127.0.0.0/8 (``route_localnet`` lets such addresses cross a real
interface) and leaves it through ``iptables -t nat ... -j MASQUERADE`` with source ports
moved into a range of their own, so that neither the address nor the port the gateway
sees is the one the UAs wrote. No address outside 127.0.0.0/8 is used.

What must hold (RFC 3261 18.2.1 and RFC 3581 4: ``received`` and ``rport`` in the top Via
of every response; RFC 3581 4 and RFC 5626 5.3 practice: a registered contact behind
NAT is reached at the source its REGISTER came from):

- both register with their private Contact, kept as such in the binding, with the
  NAT's public address as its source;
- the station is called (INVITE to its private URI, sent to its public source),
  answers, and is kept alive by OPTIONS sent to the same public source, which it answers
  through the NAT;
- the kiosk's call completes with RTP both ways on both legs, through the NAT, the
  relay latching to the translated sources (RFC 4961 symmetric RTP); the kiosk's
  hang-up reaches the station as a BYE through the NAT;
- every response the gateway sends to the namespace carries ``received`` = the public
  address and ``rport`` = the translated port.

The namespace is skipped only where it cannot be created (no privilege, no ``ip``):
anything that fails after that is a failure. Names and addresses are unique per
process (pytest-xdist workers), and a finalizer removes the namespace, the veth pair
and the local routes whatever happens.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import peers
import pytest
from harness import (
    ROOT,
    GatewayProcess,
    dialplan_variant,
    pjsua_account,
    start_capture,
    wait_for,
)
from peers import find_call, start_pjagent

pytestmark = pytest.mark.interop

EXAMPLE = ROOT / "dialplans" / "example.yaml"
DOMAIN = "visio.manche.example"
# The NAT moves every translated source port into this range (iptables --to-ports), so a
# port the UA wrote can never be mistaken for the one the gateway saw.
NAT_PORTS = (31000, 31999)


def _run(*cmd: str, netns: str | None = None) -> subprocess.CompletedProcess[str]:
    full = ["ip", "netns", "exec", netns, *cmd] if netns else list(cmd)
    return subprocess.run(full, capture_output=True, text=True, timeout=20, check=False)


def _must(*cmd: str, netns: str | None = None) -> None:
    done = _run(*cmd, netns=netns)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} (netns {netns}): {done.stderr.strip()}")


@dataclass(frozen=True)
class NatNet:
    """A namespace behind a masquerading NAT, and the addresses on each side of it."""

    netns: str
    host_if: str
    gateway_addr: str  # the host end of the veth: where the gateway listens
    public_addr: str  # the namespace end: the NAT's public address


@pytest.fixture
def nat_net() -> Iterator[NatNet]:
    """Create the namespace, the veth pair, the routes and the NAT; remove them after."""
    if shutil.which("ip") is None or shutil.which("iptables") is None:
        pytest.skip("network namespaces cannot be set up here: no ip or iptables command")
    tag = os.getpid() % 100000
    netns, host_if, ns_if = f"vrgw-nat-{tag}", f"vrn{tag}h", f"vrn{tag}n"
    # 127.<100+worker>.<pid-derived>.0/24: unique per xdist worker and process
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    subnet = f"127.{100 + (int(worker) if worker.isdigit() else 0) % 50}.{20 + tag % 200}"
    # what a killed earlier run of this pid may have left (the finalizer never ran)
    _run("ip", "link", "del", host_if)
    _run("ip", "netns", "del", netns)
    created = _run("ip", "netns", "add", netns)
    if created.returncode != 0:
        pytest.skip(f"network namespaces cannot be created here: {created.stderr.strip()}")
    net = NatNet(netns, host_if, f"{subnet}.1", f"{subnet}.2")
    try:
        _must("ip", "link", "add", host_if, "type", "veth", "peer", "name", ns_if, "netns", netns)
        # scope global: iproute2 gives 127/8 addresses host scope, which MASQUERADE and
        # source selection skip
        _must("ip", "addr", "add", f"{net.gateway_addr}/24", "scope", "global", "dev", host_if)
        _must("sysctl", "-qw", f"net.ipv4.conf.{host_if}.route_localnet=1")
        _must("sysctl", "-qw", f"net.ipv4.conf.{host_if}.rp_filter=0")
        _must("ip", "link", "set", host_if, "up")
        # 127.0.0.0/8 is a local route of the host's table "local": a more specific
        # route there sends this /24 (but the host's own .1) over the veth
        _must("ip", "route", "add", f"{subnet}.0/24", "dev", host_if, "table", "local")
        inside = [
            ("ip", "link", "set", "lo", "up"),
            ("ip", "addr", "add", f"{net.public_addr}/24", "scope", "global", "dev", ns_if),
            ("sysctl", "-qw", "net.ipv4.conf.all.route_localnet=1"),
            ("sysctl", "-qw", f"net.ipv4.conf.{ns_if}.route_localnet=1"),
            ("sysctl", "-qw", f"net.ipv4.conf.{ns_if}.rp_filter=0"),
            ("ip", "link", "set", ns_if, "up"),
            ("ip", "route", "add", f"{subnet}.0/24", "dev", ns_if, "table", "local"),
            *(
                ("iptables", "-t", "nat", "-A", "POSTROUTING", "-o", ns_if, "-p", proto,
                 "-j", "MASQUERADE", "--to-ports", f"{NAT_PORTS[0]}-{NAT_PORTS[1]}")
                for proto in ("udp", "tcp")
            ),
        ]  # fmt: skip
        for cmd in inside:
            _must(*cmd, netns=netns)
        yield net
    finally:
        for pid in _run("ip", "netns", "pids", netns).stdout.split():
            # what the test started in the namespace and failed to reap (by its id)
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
        _run("ip", "route", "del", f"{subnet}.0/24", "dev", host_if, "table", "local")
        _run("ip", "link", "del", host_if)  # takes its peer in the namespace with it
        _run("ip", "netns", "del", netns)
        assert netns not in _run("ip", "netns", "list").stdout, f"{netns} was not removed"


def _in_namespace(tmp_path: Path, netns: str) -> SimpleNamespace:
    """A stand-in for ``sys`` in ``peers``: its ``executable`` runs Python in the namespace
    (``ip netns exec`` execs in place, so the agent keeps the pid the handle signals)."""
    wrapper = tmp_path / f"python-in-{netns}"
    wrapper.write_text(f'#!/bin/sh\nexec ip netns exec {netns} {sys.executable} "$@"\n')
    wrapper.chmod(0o755)
    return SimpleNamespace(executable=str(wrapper))


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_ua_behind_nat_registers_is_called_and_gets_media(
    gateway_factory: Any,
    tmp_path: Path,
    nat_net: NatNet,
    monkeypatch: pytest.MonkeyPatch,
    transport: str,
) -> None:
    """Over TCP the NAT keeps the UA's own connection: the gateway calls and probes the
    station on it (RFC 3261 18.2.2 and 18.1.1 reuse; RFC 5626 5.3), never a new one."""
    dialplan = dialplan_variant(
        tmp_path,
        EXAMPLE,
        "nat",
        [
            ("  bind: 127.0.0.1\n", f"  bind: {nat_net.gateway_addr}\n"),
            (
                "{id: caf-1, username: station-caf-1, password: {secret: station-caf-1}}",
                "{id: caf-1, username: station-caf-1, password: {secret: station-caf-1}, "
                "keepalive: 1}",
            ),
        ],
    )
    gw: GatewayProcess = gateway_factory(dialplan, extra=["--sip-host", nat_net.gateway_addr])
    suffix = ";transport=tcp" if transport == "tcp" else ""
    registrar = f"sip:{nat_net.gateway_addr}:{gw.sip_port}{suffix}"
    capture_path = tmp_path / "nat.pcapng"
    capture = start_capture(capture_path, [], interface=nat_net.host_if)

    def account(user: str, role: str, **extra: Any) -> dict[str, Any]:
        return pjsua_account(user, role, registrar, DOMAIN, **extra)

    talk = 4.0
    with monkeypatch.context() as patch:
        patch.setattr(peers, "sys", _in_namespace(tmp_path, nat_net.netns))
        station = start_pjagent(
            {
                "deadline": 60,
                "transports": [{"type": transport, "port": 0}],
                "media": {"tone_hz": 660, "record": True},
                "accounts": [
                    account("station-caf-1", "station", answer={"mode": "answer", "delay": 0.3})
                ],
                "actions": [
                    {"do": "wait_registered", "timeout": 10},
                    {"do": "wait_incoming", "account": "station", "count": 1, "timeout": 40},
                    {"do": "wait_idle", "min_calls": 1, "timeout": 30},
                ],
            },
            workdir=tmp_path / "station",
            name="station",
        )
    try:
        with station:
            station.wait_ready()
            binding = wait_for(
                lambda: gw.http("/api/v1/registrations/station-caf-1")["bindings"],
                15,
                "the station's registration through the NAT",
            )[0]
            # Keep-alives go to the public source and come back through the NAT: after a
            # few of them (1 s apart) the station is still reachable.
            time.sleep(3.5)
            with monkeypatch.context() as patch:
                patch.setattr(peers, "sys", _in_namespace(tmp_path, nat_net.netns))
                kiosk = start_pjagent(
                    {
                        "deadline": 50,
                        "transports": [{"type": transport, "port": 0}],
                        "media": {"tone_hz": 440, "record": True},
                        "accounts": [account("kiosk-lessay", "kiosk")],
                        "actions": [
                            {"do": "wait_registered", "timeout": 10},
                            {
                                "do": "call",
                                "account": "kiosk",
                                "dest": f"sip:caf@{registrar.removeprefix('sip:')}",
                                "name": "c1",
                            },
                            {"do": "wait_state", "call": "c1", "state": "CONFIRMED",
                             "timeout": 15},
                            {"do": "hangup", "call": "c1", "after": talk},
                            {"do": "wait_state", "call": "c1", "state": "DISCONNECTED",
                             "timeout": talk + 10},
                        ],
                    },
                    workdir=tmp_path / "kiosk",
                    name="kiosk",
                )  # fmt: skip
            with kiosk:
                live = wait_for(lambda: gw.relaying_call(50), 20, "RTP relayed both ways")
                kiosk_result = kiosk.wait(timeout=50)
            station_result = station.wait(timeout=50)
        status = gw.wait_idle()
    finally:
        capture.stop()

    # The binding keeps the private Contact and remembers the NAT's public source.
    public, gw_ip = nat_net.public_addr, nat_net.gateway_addr
    assert "@127.0.0.1:" in binding["contact"], binding
    contact_port = int(binding["contact"].rpartition(":")[2].split(";")[0].rstrip(">"))
    source_ip, source_port = binding["source"]
    assert source_ip == public, binding
    assert NAT_PORTS[0] <= source_port <= NAT_PORTS[1] != contact_port, binding

    # Both UAs registered, the call went through, media both ways on both legs.
    for result, acc in ((kiosk_result, "kiosk"), (station_result, "station")):
        assert 200 in [r["code"] for r in result["accounts"][acc]["registrations"]], result
    out = find_call(kiosk_result, "c1")
    inc = find_call(station_result, role="incoming")
    for call in (out, inc):
        names = [s["state"] for s in call["states"]]
        assert "CONFIRMED" in names and names[-1] == "DISCONNECTED", names
        stream = call["streams"][0]
        assert stream["rx_packets"] > 100 and stream["tx_packets"] > 100, stream
        assert call["recording"]["rms_active"] > 0, call["recording"]
    assert out["hung_up_by"] == "local" and inc["hung_up_by"] == "remote"  # BYE crossed
    assert live["station"] == "caf-1"
    assert status["calls"] == 0 and status["media_ports_in_use"] == 0, status

    # On the wire between the gateway and the NAT.
    sip = f"{transport}.port == {gw.sip_port} && sip"
    invites = capture.fields(
        f"{sip} && sip.Method == INVITE && ip.src == {gw_ip}",
        "ip.dst",
        f"{transport}.dstport",
        "sip.r-uri",
        first_only=True,
    )
    assert invites, "no INVITE from the gateway crossed the NAT"
    for dst, port, ruri in invites:
        # the private URI, sent to the public source of the REGISTER
        assert (dst, int(port)) == (public, source_port), invites
        assert f"@127.0.0.1:{contact_port}" in ruri, invites
    options = capture.fields(
        f"{sip} && sip.Method == OPTIONS && ip.src == {gw_ip}",
        "ip.dst",
        f"{transport}.dstport",
        "sip.Call-ID",
        first_only=True,
    )
    assert len(options) >= 2, "no OPTIONS keep-alive crossed the NAT"
    assert {(dst, int(port)) for dst, port, _ in options} == {(public, source_port)}, options
    answered = capture.fields(
        f"{sip} && sip.Status-Code == 200 && sip.CSeq.method == OPTIONS && ip.src == {public}",
        "sip.Call-ID",
        first_only=True,
    )
    assert {row[0] for row in answered} & {row[2] for row in options}, (answered, options)
    # Every response to the namespace says where its request really came from.
    responses = capture.fields(
        f"{sip} && sip.Status-Code && ip.src == {gw_ip}",
        f"{transport}.dstport",
        "sip.Status-Code",
        "sip.CSeq.method",
        "sip.Via",
        first_only=True,
    )
    methods = {row[2] for row in responses}
    assert {"REGISTER", "INVITE", "BYE"} <= methods, responses
    for port, _, _, via in responses:
        top = via.split(",")[0]
        assert f";received={public}" in top and f";rport={port}" in top, responses
        assert NAT_PORTS[0] <= int(port) <= NAT_PORTS[1], responses
    if transport == "tcp":  # every connection was opened from behind the NAT
        opened = capture.fields(
            "tcp.flags.syn == 1 && tcp.flags.ack == 0", "ip.src", first_only=True
        )
        assert opened and {row[0] for row in opened} == {public}, opened
    # RTP crossed the NAT both ways, from translated ports. Not ICMP: a port unreachable
    # the namespace sends back for RTP that arrived after its UA closed (the relay still
    # forwarding the station's last packets) quotes the relay's own UDP header, whose
    # ports tshark's udp fields would read (it failed a CI run once).
    rtp = capture.fields(
        f"udp && !icmp && !sip && udp.length > 100 && (ip.src == {public} || ip.dst == {public})",
        "ip.src",
        "udp.srcport",
        first_only=True,
    )
    from_nat = [int(port) for src, port in rtp if src == public]
    to_nat = [port for src, port in rtp if src == gw_ip]
    assert len(from_nat) > 200 and len(to_nat) > 200, (len(from_nat), len(to_nat))
    assert all(NAT_PORTS[0] <= p <= NAT_PORTS[1] for p in from_nat)
