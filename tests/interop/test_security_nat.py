"""Acceptance (NAT, part of 5): a real UA behind an address it does not know is told it.

SIPp sends from 127.0.0.1 with a top Via naming another address (127.0.0.9, as a kiosk
behind NAT writes its private one) and asking for rport (RFC 3581 3). The gateway's
answers must carry ``received=127.0.0.1`` and ``rport=`` SIPp's real port (RFC 3261
18.2.1, RFC 3581 4), and reach SIPp at its source although its Via names another place.
SIPp checks the Via itself (``ereg`` with ``check_it``); tshark reads the same Via back
off the wire.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from harness import ROOT, explain, free_port, start_capture

pytestmark = pytest.mark.interop

EXAMPLE = ROOT / "dialplans" / "example.yaml"

# An OPTIONS (answered 200 by the gateway) then a REGISTER without credentials (answered
# 401): both final responses must carry the stamped Via.
NATTED_KIOSK = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="kiosk behind a NAT">
  <send>
    <![CDATA[
      OPTIONS sip:[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] 127.0.0.9:5999;branch=[branch];rport
      Max-Forwards: 70
      From: <sip:kiosk-lessay@visio.manche.example>;tag=nat[call_number]
      To: <sip:[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 OPTIONS
      Content-Length: 0

    ]]>
  </send>
  <recv response="200">
    <action>
      <ereg regexp="rport=[0-9]+;received=127\\.0\\.0\\.1" search_in="hdr" header="Via:"
            check_it="true" assign_to="via1"/>
    </action>
  </recv>
  <send>
    <![CDATA[
      REGISTER sip:visio.manche.example SIP/2.0
      Via: SIP/2.0/[transport] 127.0.0.9:5999;branch=[branch];rport
      Max-Forwards: 70
      From: <sip:kiosk-lessay@visio.manche.example>;tag=nat[call_number]
      To: <sip:kiosk-lessay@visio.manche.example>
      Call-ID: [call_id]
      CSeq: 2 REGISTER
      Contact: <sip:kiosk-lessay@127.0.0.9:5999>
      Expires: 600
      Content-Length: 0

    ]]>
  </send>
  <recv response="401">
    <action>
      <ereg regexp="rport=[0-9]+;received=127\\.0\\.0\\.1" search_in="hdr" header="Via:"
            check_it="true" assign_to="via2"/>
    </action>
  </recv>
  <Reference variables="via1,via2"/>
</scenario>
"""


def test_responses_carry_received_and_rport(gateway_factory: Any, tmp_path: Path) -> None:
    assert shutil.which("sipp"), "SIPp is missing: run scripts/install --test (sip-tester)"
    gw = gateway_factory(EXAMPLE)
    scenario = tmp_path / "natted_kiosk.xml"
    scenario.write_text(NATTED_KIOSK)
    port = free_port()
    capture = start_capture(tmp_path / "nat.pcapng", [gw.sip_port])
    run = subprocess.run(
        [
            *("sipp", "-sf", str(scenario), "-i", "127.0.0.1", "-p", str(port)),
            *("-m", "1", "-nostdin", "-timeout", "15s", "-timeout_error", "-recv_timeout"),
            *("5000", "-trace_err", f"127.0.0.1:{gw.sip_port}"),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=30,
        check=False,
    )
    capture.stop()
    errors = "".join(p.read_text() for p in tmp_path.glob("*_errors.log"))
    assert run.returncode == 0, explain(
        exit=run.returncode, sipp=run.stderr[-2000:], errors=errors[-2000:]
    )
    rows = capture.fields(
        f"sip.Status-Code && udp.srcport == {gw.sip_port} && udp.dstport == {port}",
        "sip.Status-Code",
        "sip.Via",
    )
    statuses = [row[0] for row in rows]
    assert "200" in statuses and "401" in statuses, rows
    for _, top_via in rows:
        # tshark gives the first Via of the response first: the one the gateway stamped.
        assert top_via.split(",")[0] == (
            f"SIP/2.0/UDP 127.0.0.9:5999;branch={top_via.split('branch=')[1].split(';')[0]}"
            f";rport={port};received=127.0.0.1"
        ), rows
    assert capture.problems() == []
