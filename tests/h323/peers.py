"""Test-only plumbing around the sans-IO H.323 call: H323Plus ``simple`` and a socket driver.

:class:`SimplePeer` runs H323Plus's sample endpoint (``../shared/peers/h323``, built by
``build-h323-peers``) with its output in a file; :class:`CallDriver` carries one
:class:`~gateway.h323.call.H323Call` over real TCP sockets (signalling and, when asked,
a separate H.245 connection) with a selector loop and the monotonic clock. Nothing of
this is part of the gateway: its own edge is ``gateway/edge/h323_signalling.py``.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from harness import free_port, h323_peers

from gateway.h323 import tpkt
from gateway.h323.call import Event, H323Call, OpenH245Connection

Address = tuple[str, int]
E = TypeVar("E")


class SimplePeer:
    """One ``simple`` process; ``output`` is what it printed (stdout and trace)."""

    def __init__(self, args: list[str], workdir: Path) -> None:
        self.log = workdir / f"simple-{os.getpid()}-{time.monotonic_ns()}.log"
        self.trace = self.log.with_suffix(".trace")
        binary = h323_peers() / "bin" / "simple"
        self._out = self.log.open("wb")
        self.proc = subprocess.Popen(
            [str(binary), "-t", "-t", "-t", "-t", "-o", str(self.trace), *args],
            stdin=subprocess.PIPE,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            cwd=workdir,
        )

    @property
    def output(self) -> str:
        return self.log.read_text(errors="replace")

    @property
    def trace_text(self) -> str:
        return self.trace.read_text(errors="replace") if self.trace.exists() else ""

    def type(self, line: str) -> None:
        """A line on its console (a digit sends user input, H hangs up)."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def wait_output(self, text: str, timeout: float = 10.0, *, trace: bool = False) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in (self.trace_text if trace else self.output):
                return True
            time.sleep(0.05)
        return False

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                self.type("X")
                self.proc.wait(2)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.terminate()
                try:
                    self.proc.wait(3)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(3)
        self._out.close()


def listening_simple(workdir: Path, *extra: str) -> tuple[SimplePeer, int]:
    """``simple`` listening on a free port and answering at once; its port."""
    port = free_port()
    args = ["-l", "-a", "-n", "-u", "station", "-i", "127.0.0.1", "-x", str(port)]
    peer = SimplePeer([*args, "-s", "Null Audio", *extra], workdir)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return peer, port
        time.sleep(0.05)
    peer.stop()
    raise RuntimeError(f"simple did not listen on {port}:\n{peer.output}")


class CallDriver:
    """Runs one H323Call over blocking sockets: a test's edge."""

    def __init__(self, call: H323Call, sock: socket.socket) -> None:
        self.call = call
        self.sel = selectors.DefaultSelector()
        self.signalling = sock
        self.h245: socket.socket | None = None
        self.framers = {sock.fileno(): tpkt.TpktFramer()}
        self.sel.register(sock, selectors.EVENT_READ, "q931")
        self.seen: list[Event] = []
        self.sent_h245 = 0
        self.closed = False

    @classmethod
    def dial(cls, call: H323Call, address: Address) -> CallDriver:
        return cls(call, socket.create_connection(address, timeout=5))

    def now(self) -> float:
        return time.monotonic()

    def pump(self) -> None:
        for payload in self.call.data_to_send():
            self.signalling.sendall(tpkt.encode(payload))
        payloads = self.call.h245_data_to_send()
        if payloads and self.h245 is not None:
            self.sent_h245 += len(payloads)
            for payload in payloads:
                self.h245.sendall(tpkt.encode(payload))
        for event in self.call.events():
            self.seen.append(event)
            if isinstance(event, OpenH245Connection):
                self.h245 = socket.create_connection(event.address, timeout=5)
                self.framers[self.h245.fileno()] = tpkt.TpktFramer()
                self.sel.register(self.h245, selectors.EVENT_READ, "h245")
                self.call.h245_connected(self.now())
                self.pump()

    def run_until(self, done: Callable[[list[Event]], bool], timeout: float = 10.0) -> bool:
        """Feed the call until ``done(events so far)`` or the timeout."""
        deadline = time.monotonic() + timeout
        self.pump()
        while not done(self.seen):
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            wake = self.call.next_deadline()
            wait = left if wake is None else max(0.0, min(left, wake - self.now()))
            for key, _ in self.sel.select(min(wait, 0.2)):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                try:
                    data = sock.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    self.sel.unregister(sock)
                    if key.data == "q931":
                        self.closed = True
                        if not self.call.ended:
                            self.call.connection_lost("closed", self.now())
                    continue
                for payload in self.framers[sock.fileno()].feed(data):
                    if not payload:
                        continue
                    if key.data == "q931":
                        self.call.receive(payload, self.now())
                    else:
                        self.call.receive_h245(payload, self.now())
            wake = self.call.next_deadline()
            if wake is not None and self.now() >= wake:
                self.call.on_timer(self.now())
            self.pump()
            if self.closed and self.call.ended and not done(self.seen):
                return done(self.seen)
        return True

    def of(self, kind: type[E]) -> list[E]:
        """The events of one type seen so far."""
        return [e for e in self.seen if isinstance(e, kind)]

    def close(self) -> None:
        for sock in (self.h245, self.signalling):
            if sock is not None:
                with contextlib.suppress(KeyError, ValueError):
                    self.sel.unregister(sock)
                sock.close()
        self.sel.close()
