"""Real SIP messages from the shared captures, for the parser and framing tests.

Every SIP message of ``shared/vectors/sip/*.pcapng`` is pulled out with tshark (the
reassembled TCP payload when a message spans segments, else the TCP or UDP payload),
plus the Tandberg INVITE stored as a plain ``.sip`` file. tshark is a hard requirement:
without it these tests fail instead of silently testing nothing.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from harness import VECTORS, tshark_output

SIP_VECTORS = VECTORS / "sip"

# Fields are printed in this order; tshark leaves a field empty when the frame lacks it.
_FIELDS = ("frame.number", "tcp.reassembled.data", "tcp.payload", "udp.payload")


@dataclass(frozen=True, slots=True)
class SipVector:
    """One SIP message captured from real equipment."""

    source: str  # file name inside shared/vectors/sip
    frame: int  # frame number in the capture, 0 for the .sip file
    transport: str  # "udp" or "tcp" as captured ("file" for the .sip file)
    data: bytes

    @property
    def id(self) -> str:
        """A short readable name for pytest ids: file stem, frame and start line head."""
        first = self.data.split(b"\r\n", 1)[0].decode("ascii", "replace")
        word = first.split(" ")[1] if first.startswith("SIP/") else first.split(" ")[0]
        return f"{Path(self.source).stem}#{self.frame}-{word}"


def _from_pcap(path: Path) -> list[SipVector]:
    args = ["-Y", "sip", "-T", "fields", "-E", "separator=/t"]
    for name in _FIELDS:
        args += ["-e", name]
    out: list[SipVector] = []
    for line in tshark_output(*args, capture=path).decode().splitlines():
        number, reassembled, tcp, udp = line.split("\t")
        payload = reassembled or tcp or udp
        out.append(
            SipVector(
                source=path.name,
                frame=int(number),
                transport="udp" if udp else "tcp",
                data=bytes.fromhex(payload),
            )
        )
    return out


@functools.cache
def load_vectors() -> tuple[SipVector, ...]:
    """Every captured SIP message, in file then frame order (tshark runs once per file)."""
    pcaps = sorted(SIP_VECTORS.glob("*.pcapng"))
    if not pcaps:
        raise FileNotFoundError(f"no SIP captures under {SIP_VECTORS}")
    vectors: list[SipVector] = []
    for pcap in pcaps:
        vectors += _from_pcap(pcap)
    for sip_file in sorted(SIP_VECTORS.glob("*.sip")):
        vectors.append(SipVector(sip_file.name, 0, "file", sip_file.read_bytes()))
    return tuple(vectors)


def requests_only() -> tuple[SipVector, ...]:
    """The captured requests (the salvage tests need a request to start from)."""
    return tuple(v for v in load_vectors() if not v.data.startswith(b"SIP/"))
