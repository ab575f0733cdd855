"""The command line and dialplan reload, against a real gateway process.

A broken dialplan is refused with file, line and reason, by ``vrgw check`` and by a
reload, and a failed reload keeps the running dialplan (BRIEF: configuration is data).
``--sip-t1`` reaches the transaction layer, and only a positive number of seconds passes.
"""

from __future__ import annotations

import itertools
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from harness import ROOT, GatewayProcess, free_port

from gateway import cli
from gateway.app import Gateway
from gateway.dialplan import load_dialplan
from gateway.sip.message import Request, parse_message
from gateway.sip.transaction import T1, T2, T4, TransactionTimeout

EXAMPLE = ROOT / "dialplans" / "example.yaml"


def vrgw(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )


def test_check_accepts_the_shipped_dialplans() -> None:
    for name in ("example.yaml", "loadtest.yaml"):
        result = vrgw("check", str(ROOT / "dialplans" / name))
        assert result.returncode == 0, result.stderr
        assert "ok (" in result.stdout


def test_check_reports_file_line_and_reason(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    shutil.copy(ROOT / "dialplans" / "example.secrets", tmp_path / "example.secrets")
    text = EXAMPLE.read_text().replace("partner: cpam,", "partner: cpma,", 1)
    broken.write_text(text)
    line = next(i for i, ln in enumerate(text.splitlines(), 1) if "partner: cpma" in ln)
    result = vrgw("check", str(broken))
    assert result.returncode == 1
    assert f"{broken}:{line}:" in result.stderr and "cpma" in result.stderr, result.stderr


def test_failed_reload_keeps_the_running_dialplan(gateway_factory: Any, tmp_path: Path) -> None:
    """This gateway is the command itself (``python -m gateway run``), where the others
    the harness starts are forked from an interpreter that has done its imports."""
    plan = tmp_path / "plan.yaml"
    shutil.copy(EXAMPLE, plan)
    shutil.copy(ROOT / "dialplans" / "example.secrets", tmp_path / "example.secrets")
    gw: GatewayProcess = gateway_factory(plan, command=True)
    assert isinstance(gw.proc, subprocess.Popen)
    good = plan.read_text()
    broken = good.replace("services:\n  - {name: caf", "services:\n  - {nme: caf", 1)
    plan.write_text(broken)
    line = next(i for i, ln in enumerate(broken.splitlines(), 1) if "{nme: caf" in ln)
    try:
        gw.http("/api/v1/reload", method="POST")
        raise AssertionError("a broken dialplan was accepted")
    except urllib.error.HTTPError as exc:
        assert exc.code == 422
        detail = exc.read().decode()
        assert f"{plan}:{line}: services[0]" in detail, detail
    assert gw.http("/healthz")["status"] == "ok"
    assert gw.status()["dialplan"] == str(plan)
    assert "dialplan reload refused, keeping the running one" in gw.log()

    # The running dialplan still routes: a new one with one kiosk fewer takes effect.
    plan.write_text(good.replace("  - id: conde-sur-vire", "  - id: conde-sur-vire-2", 1))
    assert gw.http("/api/v1/reload", method="POST")["status"] == "reloaded"
    assert "dialplan reloaded" in gw.log()


def gateway_with(*flags: str) -> Gateway:
    """A gateway built (sockets unopened) from ``vrgw run`` arguments."""
    args = cli._parser().parse_args(["run", "--dialplan", str(EXAMPLE), *flags])
    return Gateway(cli.run_settings(args), load_dialplan(EXAMPLE))


def test_sip_t1_defaults_to_the_rfc_timers() -> None:
    layer = gateway_with().endpoint.layer
    assert (layer.t1, layer.t2, layer.t4) == (T1, T2, T4) == (0.5, 4.0, 5.0)


def test_sip_t1_sets_the_transaction_timers_of_the_gateway() -> None:
    """T2 and T4 follow T1; an unanswered request repeats on T1 and times out at 64*T1.

    The gateway's own layer, on a fake clock: nothing is sent and no time passes.
    """
    layer = gateway_with("--sip-t1", "0.05").endpoint.layer
    assert (layer.t1, layer.t2, layer.t4) == pytest.approx((0.05, 0.4, 0.5))
    request = parse_message(
        b"OPTIONS sip:caf-1@127.0.0.1:9 SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-t1-test;rport\r\n"
        b"Max-Forwards: 70\r\nFrom: <sip:vrgw@127.0.0.1>;tag=t1\r\n"
        b"To: <sip:caf-1@127.0.0.1>\r\nCall-ID: t1-test\r\nCSeq: 1 OPTIONS\r\n"
        b"Content-Length: 0\r\n\r\n"
    )
    assert isinstance(request, Request)
    key = layer.send_request(request, ("127.0.0.1", 9), "udp", 0.0)
    sent = [0.0 for _ in layer.datagrams_to_send()]
    timeouts: list[tuple[float, object]] = []
    while not timeouts and (when := layer.next_timer()) is not None:
        layer.handle_timer(when)
        sent += [when for _ in layer.datagrams_to_send()]
        timeouts += [(when, e) for e in iter(layer.next_event, None)]
    # Timer E doubles from T1 up to T2 (RFC 3261 17.1.2.2), Timer F ends it at 64*T1.
    assert sent[:6] == pytest.approx([0.0, 0.05, 0.15, 0.35, 0.75, 1.15])
    assert all(b - a == pytest.approx(0.4) for a, b in itertools.pairwise(sent[4:]))
    assert timeouts == [(pytest.approx(3.2), TransactionTimeout(key, "OPTIONS", client=True))]
    assert len(layer) == 0


@pytest.mark.parametrize("value", ["0", "-0.5", "nan", "inf", "half"])
def test_sip_t1_must_be_a_positive_number_of_seconds(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["run", "--dialplan", str(EXAMPLE), "--sip-t1", value])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "argument --sip-t1:" in err and repr(value) in err, err


def test_run_help_shows_every_default() -> None:
    text = vrgw("run", "--help").stdout
    for default in ("(default: 5060)", "(default: 1720)", "(default: 8080)", "(default: 0.5)"):
        assert default in " ".join(text.split()), text


@pytest.mark.parametrize("taken", ["sip", "http"])
def test_a_port_in_use_is_reported_with_its_address(
    gateway_factory: Any, tmp_path: Path, taken: str
) -> None:
    """A second gateway on a port the first holds stops at once and says which."""
    gw: GatewayProcess = gateway_factory(EXAMPLE)
    sip = gw.sip_port if taken == "sip" else free_port()
    http = gw.http_port if taken == "http" else free_port()
    second = vrgw(
        "run", "--dialplan", str(EXAMPLE), "--sip-port", str(sip), "--http-port", str(http),
        "--h323-port", "0", "--ras-port", "0", "--records", ":memory:",
    )  # fmt: skip
    assert second.returncode == 1, second.stderr[-2000:]
    where = f"SIP 127.0.0.1:{sip} (udp+tcp)" if taken == "sip" else f"HTTP 127.0.0.1:{http}"
    assert f"error: [Errno 98] {where}: address already in use" in second.stderr, second.stderr
    assert "Traceback" not in second.stderr
    assert gw.http("/healthz")["status"] == "ok"  # the first one is untouched


def test_metrics_answer_head_in_the_text_exposition_format(
    gateway_factory: Any, tmp_path: Path
) -> None:
    gw: GatewayProcess = gateway_factory(EXAMPLE)
    url = f"http://127.0.0.1:{gw.http_port}/metrics"
    with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=5) as resp:
        assert resp.status == 200 and resp.read() == b""
        assert resp.headers["Content-Type"].startswith("text/plain; version=")
