"""The load generator's Python side: starts ``bench/media_load.c`` and speaks its commands.

The generator holds both ends of every call: for stream ``s`` (call ``s // 2``, audio
when ``s`` is even, video when odd) a socket for side A and one for side B. The harness
binds streams once and points them at each engine's relay ports in turn.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from typing import Any

from bench.media_system import BENCH_DIR, BenchError, compile_c, pinned

AUDIO, VIDEO = 0, 1


@dataclass(frozen=True)
class Profile:
    """What each direction of each call sends (RTP sizes are whole UDP payloads)."""

    audio_pps: int = 50  # G.711 at 20 ms packets
    audio_size: int = 172  # 12-byte RTP header + 160 bytes of G.711
    video_pps: int = 200  # 40 (384 kbit/s) to 200 (2 Mbit/s) packets a second
    video_size: int = 1200

    def packets_per_call(self) -> int:
        """Packets a second one call sends through a relay, both directions together."""
        return 2 * (self.audio_pps + self.video_pps)


class LoadGenerator:
    """A running ``media_load`` process pinned to ``cpu``."""

    def __init__(self, cpu: int) -> None:
        binary = compile_c(BENCH_DIR / "media_load.c", libraries=("m",))
        self._proc = subprocess.Popen(
            [str(binary)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            preexec_fn=pinned(cpu),
        )
        self.pid = self._proc.pid
        self.cpu = cpu
        self.ports: list[tuple[int, int]] = []  # (side A, side B) of each stream
        self._expect("ready")

    def _line(self, command: str) -> str:
        proc = self._proc
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(command + "\n")
        proc.stdin.flush()
        line = proc.stdout.readline()
        if not line:
            raise BenchError(f"load generator ended (exit {proc.wait()}) on {command!r}")
        if line.startswith("error"):
            raise BenchError(f"load generator: {line.strip()} on {command!r}")
        return line

    def _expect(self, word: str) -> None:
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline().strip()
        if line != word:
            raise BenchError(f"load generator said {line!r}, expected {word!r}")

    def ensure_streams(self, count: int) -> None:
        """Bind streams until ``count`` exist."""
        missing = count - len(self.ports)
        if missing <= 0:
            return
        numbers = [int(p) for p in self._line(f"bind {missing}").split()]
        self.ports += list(zip(numbers[0::2], numbers[1::2], strict=True))

    def target(self, stream: int, relay_a: int, relay_b: int) -> None:
        """Send side A's packets of ``stream`` to ``relay_a``, side B's to ``relay_b``."""
        self._line(f"target {stream} {relay_a} {relay_b} {stream % 2}")

    def run(
        self, step: int, streams: int, profile: Profile, duration: float, drain: float
    ) -> dict[str, Any]:
        """Send on the first ``streams`` streams for ``duration`` seconds; the figures."""
        line = self._line(
            f"run {step} {round(duration * 1000)} {round(drain * 1000)} "
            f"{profile.audio_pps} {profile.video_pps} {profile.audio_size} "
            f"{profile.video_size} {streams}"
        )
        result: dict[str, Any] = json.loads(line)
        return result

    def close(self) -> None:
        """Ask the generator to quit, and make sure it did."""
        proc = self._proc
        try:
            if proc.stdin is not None:
                proc.stdin.write("quit\n")
                proc.stdin.close()
        except OSError:
            pass
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
