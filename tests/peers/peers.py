"""Run pjagent.py (a pjsua2 SIP user agent driven by a JSON scenario) from pytest.

Tests put this folder on sys.path and use ``run_pjagent`` for one agent, or
``start_pjagent`` to run several at once (a station process waiting for calls while a
kiosk process calls it). The scenario and result formats are documented at the top of
pjagent.py.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from harness import rtp_ports

PJAGENT = Path(__file__).resolve().with_name("pjagent.py")

# RTP ports of an agent whose scenario names none: 200 ports of the pytest worker's own
# slice, the RTP/RTCP pairs pjsua tries (100 binds, from a random pair) before it gives up
# a call. pjagent's default (a random start in 20000-29000) lies where the test gateways'
# relays take their ports, from 20000 up: a call failed in CI when its 100 tries all fell
# on ports in use (20070-20269).
AGENT_RTP_PORTS = 200

Json = dict[str, Any]


class PjAgentError(RuntimeError):
    """The agent could not run its scenario (bad scenario, deadline, crash, timeout)."""


def _tail(path: Path, limit: int = 3000) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return text[-limit:]


class PjAgentHandle:
    """A running pjagent process: wait for it to listen, then for its result."""

    def __init__(self, scenario: Json, *, timeout: float, workdir: Path | None, name: str) -> None:
        self.name = name
        self.timeout = timeout
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix=f"pjagent-{name}-")).resolve()
        self.workdir.mkdir(parents=True, exist_ok=True)
        scenario = dict(scenario)
        scenario.setdefault("workdir", str(self.workdir))
        scenario.setdefault("log_file", str(self.workdir / f"{name}-pjsip.log"))
        if "rtp" not in scenario:
            first, last = rtp_ports(AGENT_RTP_PORTS)
            # One pair short of ``last``, in case pjsua also binds the pair at port + range.
            scenario["rtp"] = {"port": first, "range": last - first - 1}
        self.log_file = Path(scenario["log_file"])
        self.scenario_path = self.workdir / f"{name}-scenario.json"
        self.result_path = self.workdir / f"{name}-result.json"
        self.ready_path = self.workdir / f"{name}-ready.json"
        self.stderr_path = self.workdir / f"{name}-stderr.txt"
        self.stdout_path = self.workdir / f"{name}-stdout.txt"
        for stale in (self.result_path, self.ready_path):
            stale.unlink(missing_ok=True)
        self.scenario_path.write_text(json.dumps(scenario, indent=1))
        self.started = time.monotonic()
        # stdout gets pjlib's start-up chatter; files, not pipes, so that nothing blocks.
        with self.stdout_path.open("wb") as out, self.stderr_path.open("wb") as err:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    str(PJAGENT),
                    str(self.scenario_path),
                    str(self.result_path),
                    "--ready",
                    str(self.ready_path),
                ],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
            )

    def _failure(self, what: str) -> PjAgentError:
        partial = ""
        if self.result_path.exists():
            try:
                partial = f"\nresult errors: {json.loads(self.result_path.read_text())['errors']}"
            except (ValueError, KeyError):
                partial = ""
        return PjAgentError(
            f"pjagent {self.name}: {what}{partial}\n--- stderr tail ---\n"
            f"{_tail(self.stderr_path)}\n(workdir {self.workdir})"
        )

    def wait_ready(self, timeout: float = 10.0) -> Json:
        """Block until the agent's transports listen; return its ready info (ports...)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.ready_path.exists():
                try:
                    ready: Json = json.loads(self.ready_path.read_text())
                    return ready
                except ValueError:
                    pass  # replaced atomically, but be lenient anyway
            if self.proc.poll() is not None:
                raise self._failure(f"exited with {self.proc.returncode} before being ready")
            time.sleep(0.02)
        self.kill()
        raise self._failure(f"not ready after {timeout} s")

    def wait(self, timeout: float | None = None) -> Json:
        """Wait for the scenario to end; return the result or raise PjAgentError."""
        left = self.timeout - (time.monotonic() - self.started) if timeout is None else timeout
        try:
            code = self.proc.wait(timeout=max(0.1, left))
        except subprocess.TimeoutExpired:
            self.kill()
            raise self._failure("timed out and was killed") from None
        if code != 0:
            raise self._failure(f"exited with {code}")
        try:
            result: Json = json.loads(self.result_path.read_text())
        except (OSError, ValueError) as exc:
            raise self._failure(f"no readable result: {exc}") from exc
        return result

    def stop(self, timeout: float = 10.0) -> Json:
        """Ask the agent to hang up and finish now (SIGTERM); return its result."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.wait(timeout)

    def kill(self) -> None:
        """Kill the process if it still runs (cleanup path only)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)

    def __enter__(self) -> PjAgentHandle:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is not None and not isinstance(exc, PjAgentError):
            # The test failed for another reason than this agent: say what the agent saw.
            try:
                exc.add_note(self.summary(self.stop(5)))
            except PjAgentError as err:
                exc.add_note(str(err))
        self.kill()

    def summary(self, result: Json) -> str:
        """What went wrong for this agent, in a few lines: its errors, the actions that did
        not end "ok", and how each call ended."""
        lines = [f"pjagent {self.name} (workdir {self.workdir}):"]
        lines += [f"  error: {e}" for e in result["errors"]]
        lines += [
            f"  action {a['do']}: {a.get('outcome')}"
            for a in result["actions"]
            if a.get("outcome") not in ("ok", None)
        ]
        for call in result["calls"]:
            last = call["states"][-1] if call["states"] else {}
            ended = f"{last.get('state')} {last.get('code')} {last.get('reason')}"
            lines.append(f"  call {call['name']}: {ended}")
        return "\n".join(lines)


def start_pjagent(
    scenario: Json, *, timeout: float = 60, workdir: Path | None = None, name: str = "agent"
) -> PjAgentHandle:
    """Start pjagent on a scenario without waiting; use as a context manager to reap it."""
    return PjAgentHandle(scenario, timeout=timeout, workdir=workdir, name=name)


def run_pjagent(
    scenario: Json, *, timeout: float = 60, workdir: Path | None = None, name: str = "agent"
) -> Json:
    """Run one scenario to its end and return the parsed result file."""
    with start_pjagent(scenario, timeout=timeout, workdir=workdir, name=name) as agent:
        return agent.wait()


def find_call(
    result: Json, name: str | None = None, *, role: str | None = None, account: str | None = None
) -> Json:
    """The single call in a result matching the filters (AssertionError otherwise)."""
    calls: list[Json] = [
        c
        for c in result["calls"]
        if (name is None or c["name"] == name)
        and (role is None or c["role"] == role)
        and (account is None or c["account"] == account)
    ]
    assert len(calls) == 1, f"expected one call ({name=}, {role=}, {account=}), got " + str(
        [c["name"] for c in result["calls"]]
    )
    return calls[0]


def state_names(call: Json) -> list[str]:
    """The invite-session states a call went through, in order."""
    return [s["state"] for s in call["states"]]
