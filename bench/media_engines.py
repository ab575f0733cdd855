"""The engines the media benchmark measures, each in its own process on its own core.

- ``builtin``: :class:`gateway.media.relay.RelayEngine` in ``bench/media_host.py``;
  calls are set up through ``MediaEngine.offer`` and ``MediaEngine.answer`` with the
  descriptions of :mod:`bench.media_sdp`.
- ``builtin-workers``: the same host running
  :class:`gateway.media.workers.WorkerRelayEngine` with one worker process per core
  (``vrgw run --media-workers 2``); the host and its workers may use every core, the
  load generator's too (a 2-core machine has no third one to give them).
- ``c-mmsg``: ``bench/media_relay.c``, compiled at run time, the reference for what the
  machine can do; no SDP, each stream's ports are set up with one ``pair`` command.
- ``rtpengine``: Debian's ``rtpengine-daemon`` in userspace mode (``--table=-1``),
  calls set up by ng ``offer`` and ``answer`` (:mod:`bench.media_ng`) with the same
  descriptions.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any, Protocol

from bench.media_ng import NgClient, NgError
from bench.media_sdp import call_sdp, media_ports
from bench.media_system import BENCH_DIR, ROOT, BenchError, compile_c, pinned
from gateway.model.sdp import SessionDescription

ENGINE_NAMES = ("builtin", "builtin-workers", "c-mmsg", "rtpengine")
WORKERS = 2  # builtin-workers: one worker process per core of the project's machines
# Ports the built-in engine and rtpengine draw from (one engine runs at a time): eight a
# call (RTP and RTCP, two streams, two sides), so 1,250 calls. `--ports` moves them: the
# test suite gives its quick run a block of its own, as its other tests' peers take
# ports in 10000-19999 meanwhile.
PORTS = range(10000, 20000)


class EngineMissing(BenchError):
    """The engine is not installed here: reported as missing, never silently dropped."""


@dataclass(frozen=True)
class CallPorts:
    """One call's ports: (side A, side B) of its audio and of its video stream."""

    audio: tuple[int, int]
    video: tuple[int, int]


@dataclass(frozen=True)
class RelayPorts:
    """Where one call's sides send: (port facing A, port facing B) per stream."""

    audio: tuple[int, int]
    video: tuple[int, int]


class Engine(Protocol):
    """An engine under test, running in process ``pid`` (and its children) on ``cores``."""

    name: str
    pid: int
    cores: frozenset[int]
    version: str
    setup: str  # how its calls are set up, for the report

    def add_calls(self, first: int, calls: list[CallPorts]) -> list[RelayPorts]:
        """Set up ``calls`` (numbered from ``first``); where each call's sides send."""
        ...

    def close(self) -> None:
        """Stop the engine's process."""
        ...


def _stop(proc: subprocess.Popen[str], *, graceful: bool = True) -> None:
    """Stop ``proc``: SIGTERM if ``graceful``, else the end of its input; then SIGKILL."""
    if proc.poll() is None:
        if graceful:
            proc.terminate()
        elif proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for stream in (proc.stdin, proc.stdout):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()


class BuiltinEngine:
    """The gateway's relay in ``python -m bench.media_host``, pinned to ``cpu``."""

    name = "builtin"
    setup = "MediaEngine.offer/answer (RelayEngine), SDP from gateway.model.sdp"
    workers = 0

    def __init__(
        self,
        cpu: int,
        nice: int = 0,
        cores: frozenset[int] | None = None,
        ports: range = PORTS,
    ) -> None:
        self.cores = cores or frozenset({cpu})
        self._proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.media_host",
                "--port-min",
                str(ports.start),
                "--port-max",
                str(ports.stop - 1),
                "--workers",
                str(self.workers),
            ],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            preexec_fn=pinned(self.cores, nice),
        )
        self.pid = self._proc.pid
        if not self._request(None).get("ready"):
            raise BenchError("built-in engine host did not start")
        self.version = f"vrgw {importlib.metadata.version('visio-relais-gateway')}"

    def _request(self, request: dict[str, Any] | None) -> dict[str, Any]:
        proc = self._proc
        assert proc.stdin is not None and proc.stdout is not None
        if request is not None:
            proc.stdin.write(json.dumps(request) + "\n")
            proc.stdin.flush()
        line = proc.stdout.readline()
        if not line:
            raise BenchError(f"built-in engine host ended (exit {proc.wait()})")
        reply: dict[str, Any] = json.loads(line)
        if "error" in reply:
            raise BenchError(f"built-in engine: {reply['error']}")
        return reply

    def add_calls(self, first: int, calls: list[CallPorts]) -> list[RelayPorts]:
        """Offer from A and answer from B for each call, through the engine's process."""
        requests = [
            {
                "id": f"bench-{first + i}",
                "offer": call_sdp(first + i, "A", c.audio[0], c.video[0]).serialize().decode(),
                "answer": call_sdp(first + i, "B", c.audio[1], c.video[1]).serialize().decode(),
            }
            for i, c in enumerate(calls)
        ]
        reply = self._request({"op": "calls", "calls": requests})
        return [_relay_ports(c["to_a"].encode(), c["to_b"].encode()) for c in reply["calls"]]

    def counters(self, calls: int) -> dict[str, Any]:
        """RTP packets the engine itself counted in its first ``calls`` calls, and the
        host's garbage collections since the last time this was asked."""
        ids = [f"bench-{i}" for i in range(calls)]
        return self._request({"op": "counters", "ids": ids})

    def close(self) -> None:
        """Ask the host to close the engine and exit."""
        proc = self._proc
        try:
            assert proc.stdin is not None
            proc.stdin.write('{"op": "quit"}\n')
            proc.stdin.flush()
            proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            pass
        _stop(proc)


class BuiltinWorkers(BuiltinEngine):
    """The gateway's relay in :data:`WORKERS` worker processes under ``bench.media_host``,
    all of them free to run on ``cores``."""

    name = "builtin-workers"
    setup = f"MediaEngine.offer/answer (WorkerRelayEngine, {WORKERS} workers), SDP as builtin"
    workers = WORKERS


class CRelay:
    """``bench/media_relay.c`` (recvmmsg/sendmmsg), compiled now, pinned to ``cpu``."""

    name = "c-mmsg"
    setup = "one 'pair' command per stream (no SDP): the reference"

    def __init__(self, cpu: int, nice: int = 0) -> None:
        binary = compile_c(BENCH_DIR / "media_relay.c")
        gcc = shutil.which("gcc")
        version = (
            subprocess.run([gcc, "-dumpfullversion"], capture_output=True, text=True).stdout
            if gcc
            else "?"
        )
        self.version = f"gcc {version.strip()} -O2"
        self.cores = frozenset({cpu})
        self._proc = subprocess.Popen(
            [str(binary)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            preexec_fn=pinned(cpu, nice),
        )
        self.pid = self._proc.pid
        if self._line(None) != "ready":
            raise BenchError("C relay did not start")

    def _line(self, command: str | None) -> str:
        proc = self._proc
        assert proc.stdin is not None and proc.stdout is not None
        if command is not None:
            proc.stdin.write(command + "\n")
            proc.stdin.flush()
        line = proc.stdout.readline().strip()
        if not line or line.startswith("error"):
            raise BenchError(f"C relay: {line or 'ended'} on {command!r}")
        return line

    def add_calls(self, first: int, calls: list[CallPorts]) -> list[RelayPorts]:
        """One port pair per stream, pointed at the generator's sockets."""
        out = []
        for c in calls:
            audio = tuple(int(p) for p in self._line(f"pair {c.audio[0]} {c.audio[1]}").split())
            video = tuple(int(p) for p in self._line(f"pair {c.video[0]} {c.video[1]}").split())
            out.append(RelayPorts((audio[0], audio[1]), (video[0], video[1])))
        return out

    def close(self) -> None:
        """The end of its input stops the relay."""
        _stop(self._proc, graceful=False)


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Rtpengine:
    """``rtpengine`` in userspace mode on loopback, pinned to ``cpu``, driven over ng."""

    name = "rtpengine"
    setup = "ng offer/answer from bench/media_ng.py, SDP from gateway.model.sdp"

    def __init__(self, cpu: int, nice: int = 0, ports: range = PORTS) -> None:
        binary = shutil.which("rtpengine")
        if binary is None:
            raise EngineMissing("rtpengine not found: install Debian's rtpengine-daemon")
        version = subprocess.run([binary, "--version"], capture_output=True, text=True)
        self.version = (version.stdout + version.stderr).strip().removeprefix("Version: ")
        self.cores = frozenset({cpu})
        ng_port = _free_udp_port()
        self._proc = subprocess.Popen(
            [
                binary,
                "--table=-1",
                "--interface=127.0.0.1",
                f"--listen-ng=127.0.0.1:{ng_port}",
                "--foreground",
                "--config-file=none",
                "--log-stderr",
                "--log-level=4",
                f"--port-min={ports.start}",
                f"--port-max={ports.stop - 1}",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            text=True,
            preexec_fn=pinned(cpu, nice),
        )
        self.pid = self._proc.pid
        self._ng = NgClient(("127.0.0.1", ng_port), timeout=0.5)
        deadline = time.monotonic() + 30
        while True:
            try:
                self._ng.request({"command": "ping"}, expect=b"pong")
                break
            except NgError as exc:
                if self._proc.poll() is not None or time.monotonic() > deadline:
                    self.close()
                    raise BenchError(f"rtpengine did not answer ng on {ng_port}") from exc
                continue
        self._ng.close()
        self._ng = NgClient(("127.0.0.1", ng_port), timeout=5.0)

    def add_calls(self, first: int, calls: list[CallPorts]) -> list[RelayPorts]:
        """ng offer from side A, ng answer from side B, for each call."""
        out = []
        for i, c in enumerate(calls):
            call_id = f"bench-{first + i}"
            offer = call_sdp(first + i, "A", c.audio[0], c.video[0]).serialize()
            answer = call_sdp(first + i, "B", c.audio[1], c.video[1]).serialize()
            to_b = self._ng.offer(call_id, offer)
            to_a = self._ng.answer(call_id, answer)
            out.append(_relay_ports(to_a, to_b))
        return out

    def close(self) -> None:
        """Stop the daemon (SIGTERM) and close the control socket."""
        self._ng.close()
        _stop(self._proc)


def _relay_ports(to_a: bytes, to_b: bytes) -> RelayPorts:
    """The engine's ports from the SDP each side reads: A sends to what ``to_a`` names."""
    try:
        a_audio, a_video = media_ports(SessionDescription.parse(to_a))
        b_audio, b_video = media_ports(SessionDescription.parse(to_b))
    except ValueError as exc:
        raise BenchError(f"engine returned an SDP the bench cannot use: {exc}") from exc
    return RelayPorts((a_audio, b_audio), (a_video, b_video))


def start_engine(
    name: str, cpu: int, nice: int = 0, spare: int | None = None, ports: range = PORTS
) -> Engine:
    """Start the engine called ``name`` pinned to ``cpu`` (an engine of several processes
    to ``cpu`` and ``spare``, the generator's core), its relay ports taken from ``ports``
    (the C relay binds its own); EngineMissing if not installed."""
    if name == "builtin":
        return BuiltinEngine(cpu, nice, ports=ports)
    if name == "builtin-workers":
        cores = frozenset({cpu} if spare is None else {cpu, spare})
        return BuiltinWorkers(cpu, nice, cores, ports)
    if name == "c-mmsg":
        return CRelay(cpu, nice)
    if name == "rtpengine":
        return Rtpengine(cpu, nice, ports)
    raise BenchError(f"unknown engine {name!r}: one of {', '.join(ENGINE_NAMES)}")
