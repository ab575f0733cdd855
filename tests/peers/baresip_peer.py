"""baresip (Debian ``baresip-core``) as a real SIP peer for the interop tests.

One process per user agent, with a config folder of its own written here: SIP on a
loopback port, no sound card (a WAV file as the microphone, ``aubridge`` as the speaker
and the ``sndfile`` module recording what the call receives), and the ``ctrl_tcp``
module to drive it (netstring-framed JSON commands: ``dial``, ``hangup``, ``quit``,
``reginfo``). Its SIP trace and log go to ``baresip.log`` in the folder.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from harness import free_port, free_ports, rtp_ports

MODULES = Path("/usr/lib/baresip/modules")
RTP_PORTS = 20  # baresip's media ports: a call's audio and video, RTP and RTCP, and spares


def require_baresip() -> str:
    """The baresip command, or a clear failure (never a skip): the suite needs it."""
    path = shutil.which("baresip")
    if path is None or not MODULES.is_dir():
        raise AssertionError(
            "baresip is missing: run scripts/install --test (Debian package baresip-core)"
        )
    return path


class Baresip:
    """A headless baresip user agent with one account, driven over ``ctrl_tcp``."""

    def __init__(
        self,
        folder: Path,
        account: str,
        *,
        tone: Path,
        contacts: tuple[str, ...] = (),
    ) -> None:
        """``account`` is a line of baresip's ``accounts`` file (``<sip:...>;auth_pass=...``);
        ``tone`` an 8 kHz mono WAV played as the microphone; ``contacts`` lines of its
        ``contacts`` file (``"CAF" <sip:caf@DOMAIN>;presence=p2p`` subscribes to presence)."""
        self.folder = folder
        self.sip_port = free_ports(2)  # baresip listens for SIP over TLS on the next one
        self.ctrl_port = free_port()
        rtp_low, rtp_high = rtp_ports(RTP_PORTS)
        folder.mkdir(parents=True, exist_ok=True)
        self.records = folder / "records"
        self.records.mkdir(exist_ok=True)
        config = [
            "poll_method epoll",
            f"sip_listen 127.0.0.1:{self.sip_port}",
            "call_local_timeout 120",
            f"audio_source aufile,{tone}",
            "audio_player aubridge,speaker",
            "audio_alert aubridge,alert",
            "ausrc_srate 8000",
            "auplay_srate 8000",
            "ausrc_channels 1",
            "auplay_channels 1",
            f"rtp_ports {rtp_low}-{rtp_high}",
            "dns_server 127.0.0.1:53",
            f"module_path {MODULES}",
            "module g711.so",
            "module aufile.so",
            "module aubridge.so",
            "module sndfile.so",
            f"snd_path {self.records}",
            "module_tmp account.so",
            "module_app menu.so",
            "module_app contact.so",
            "module_app presence.so",
            "module_app ctrl_tcp.so",
            f"ctrl_tcp_listen 127.0.0.1:{self.ctrl_port}",
        ]
        (folder / "config").write_text("\n".join(config) + "\n")
        (folder / "accounts").write_text(account + "\n")
        (folder / "contacts").write_text("".join(f"{line}\n" for line in contacts))
        self.log_path = folder / "baresip.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._ctrl: socket.socket | None = None
        self._buf = b""
        self.events: list[dict[str, Any]] = []

    def start(self, timeout: float = 10.0) -> None:
        """Run baresip (SIP trace on) and connect to its control port."""
        command = require_baresip()
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [command, "-4", "-s", "-f", str(self.folder)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.folder,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"baresip exited {self.proc.returncode}:\n{self.log()}")
            try:
                self._ctrl = socket.create_connection(("127.0.0.1", self.ctrl_port), timeout=1)
                return
            except OSError:
                time.sleep(0.1)
        raise AssertionError(f"baresip's control port never opened:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:]

    # -- ctrl_tcp: netstrings of JSON ------------------------------------------------
    def command(self, command: str, params: str = "", timeout: float = 5.0) -> dict[str, Any]:
        """Send one command; the response (events that arrive meanwhile are kept)."""
        assert self._ctrl is not None, "start() first"
        body = json.dumps({"command": command, "params": params, "token": command}).encode()
        self._ctrl.sendall(str(len(body)).encode() + b":" + body + b",")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = self._next(deadline - time.monotonic())
            if message is not None and message.get("response"):
                return message
        raise AssertionError(f"no response to {command!r} from baresip:\n{self.log()}")

    def wait_event(self, kind: str, timeout: float) -> dict[str, Any]:
        """The first event of a type (``CALL_ESTABLISHED``, ``REGISTER_OK``...), seen or to come."""
        for event in self.events:
            if event.get("type") == kind:
                return event
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._next(deadline - time.monotonic())
            for event in self.events:
                if event.get("type") == kind:
                    return event
        seen = [e.get("type") for e in self.events]
        raise AssertionError(f"baresip sent no {kind} (events: {seen}):\n{self.log()}")

    def _next(self, timeout: float) -> dict[str, Any] | None:
        assert self._ctrl is not None
        while True:
            head, colon, rest = self._buf.partition(b":")
            if colon and head.isdigit() and len(rest) > int(head):
                size = int(head)
                payload, self._buf = rest[:size], rest[size + 1 :]
                message: dict[str, Any] = json.loads(payload)
                if message.get("event"):
                    self.events.append(message)
                return message
            self._ctrl.settimeout(max(0.01, timeout))
            try:
                chunk = self._ctrl.recv(65536)
            except TimeoutError:
                return None
            if not chunk:
                raise AssertionError(f"baresip closed its control port:\n{self.log()}")
            self._buf += chunk

    def stop(self) -> None:
        """``quit``, then SIGTERM and SIGKILL if it lingers."""
        if self.proc is None:
            return
        if self.proc.poll() is None and self._ctrl is not None:
            with contextlib.suppress(AssertionError, OSError):
                self.command("quit", timeout=2)
        if self._ctrl is not None:
            self._ctrl.close()
            self._ctrl = None
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> Baresip:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
