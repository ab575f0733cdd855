"""Test-only plumbing for the RAS interop tests: H323Plus ``simple`` and GNU Gatekeeper.

Both run from the build of ``../shared/peers/h323/build-h323-peers`` (found through
``harness.h323_peers``), on 127.0.0.1 and free ports, with their output in files of the
test's own folder. :class:`GnuGk` writes its own configuration (``[Gatekeeper::Main]``
UnicastRasPort, StatusPort, TimeToLive; ``[RoutedMode]`` CallSignalPort) and reads its
registrations from the status port (``PrintAllRegistrations``).
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from harness import free_port, h323_peers

from h323.peers import SimplePeer

Address = tuple[str, int]


def _stop(proc: subprocess.Popen[bytes], grace: float = 3.0) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(grace)


async def until(condition: Callable[[], object], timeout: float, what: str) -> None:
    """Wait (polling on the loop) until ``condition()`` is true, or fail saying ``what``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.02)


class Simple(SimplePeer):
    """A ``simple`` on a free call signalling port of its own, known before it starts."""

    def __init__(self, args: list[str], workdir: Path, name: str) -> None:
        self.name = name
        self.signal_port = free_port()
        port = ["-i", "127.0.0.1", "-x", str(self.signal_port), "-s", "Null Audio"]
        super().__init__([*port, *args], workdir)

    @property
    def signal_address(self) -> Address:
        return ("127.0.0.1", self.signal_port)

    def kill(self) -> None:
        """SIGKILL: gone without a URQ, as a unit losing power."""
        self.proc.kill()
        self.proc.wait(5)


class GnuGk:
    """One GNU Gatekeeper on free ports, direct call signalling, its status port open."""

    def __init__(self, workdir: Path, *, time_to_live: int = 60, name: str = "partnergk") -> None:
        self.name = name
        self.ras_port = free_port()
        self.status_port = free_port()
        self.signal_port = free_port()
        self.config = workdir / "gnugk.ini"
        self.trace = workdir / "gnugk.trace"
        self.config.write_text(
            "[Gatekeeper::Main]\n"
            f"Name={name}\n"
            "Home=127.0.0.1\n"
            f"UnicastRasPort={self.ras_port}\n"
            "UseMulticastListener=0\n"
            f"StatusPort={self.status_port}\n"
            f"TimeToLive={time_to_live}\n"
            "[RoutedMode]\n"
            "GKRouted=0\n"
            f"CallSignalPort={self.signal_port}\n"
            "[GkStatus::Auth]\n"
            "rule=allow\n"
        )
        self.log = workdir / "gnugk.log"
        self._out = self.log.open("wb")
        binary = h323_peers() / "bin" / "gnugk"
        self.proc = subprocess.Popen(
            [
                *(str(binary), "-c", str(self.config), "--pid", str(workdir / "gnugk.pid")),
                *("-i", "127.0.0.1", "-ttt", "-o", str(self.trace)),
            ],
            stdin=subprocess.DEVNULL,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            cwd=workdir,
        )

    @property
    def ras_address(self) -> Address:
        return ("127.0.0.1", self.ras_port)

    @property
    def trace_text(self) -> str:
        return self.trace.read_text(errors="replace") if self.trace.exists() else ""

    async def ready(self, timeout: float = 10.0) -> None:
        """Wait until the status port answers (the RAS listener opens before it)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                await self.registrations()
                return
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise AssertionError(f"gnugk did not start:\n{self.log.read_text()}") from None
                await asyncio.sleep(0.1)

    async def registrations(self) -> list[str]:
        """The ``RCF|ip:port|aliases|type|endpointId`` lines of PrintAllRegistrations."""
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", self.status_port), 2.0
        )
        try:
            writer.write(b"PrintAllRegistrations\r\n")
            await writer.drain()
            text = ""
            while "Number of Endpoints" not in text:
                chunk = await asyncio.wait_for(reader.read(4096), 2.0)
                if not chunk:
                    break
                text += chunk.decode("latin-1")
            return [line.strip() for line in text.splitlines() if line.startswith("RCF|")]
        finally:
            writer.close()

    def stop(self) -> None:
        _stop(self.proc)
        self._out.close()
