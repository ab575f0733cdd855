"""Real H.225.0, RAS and H.245 PDUs from the shared captures, for the wire-layer tests.

tshark only lists the frames (stream, direction, sequence number, payload): the TCP
streams are reassembled here, by sequence number (duplicates, retransmissions and
keep-alive probes dropped), and cut by our own :class:`TpktFramer`. A stream is
classified by its content, not by port: a separate H.245 channel on a dynamic port is
often labelled Q.931 by tshark. A stream whose first payload is a Q.931 message
(protocol discriminator 8, call reference length 2) is H.225.0 call signalling; any
other TPKT stream is H.245; a stream that is not TPKT at all (TLS, say) is skipped.
UDP datagrams to or from port 1719 are RAS. tshark is a hard requirement: without it
these tests fail instead of silently testing nothing.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from harness import VECTORS, tshark_output

from gateway.h323.errors import H323ParseError
from gateway.h323.tpkt import TpktFramer

H323_VECTORS = VECTORS / "h323"

Kind = Literal["q931", "h245", "ras"]

_FIELDS = (
    "frame.number",
    "tcp.stream",
    "tcp.srcport",
    "tcp.dstport",
    "tcp.seq_raw",
    "tcp.payload",
    "udp.srcport",
    "udp.dstport",
    "udp.payload",
)

RAS_PORT = 1719


@dataclass(frozen=True, slots=True)
class H323Vector:
    """One PDU captured from real equipment."""

    source: str  # file name inside shared/vectors/h323
    frame: int  # the frame that completed the PDU
    kind: Kind  # "q931" (H.225.0 call signalling), "h245" or "ras"
    data: bytes  # the TPKT payload (q931, h245) or the UDP payload (ras)
    split: bool = False  # the PDU spanned more than one TCP segment

    @property
    def id(self) -> str:
        """A short readable name for pytest ids: file stem, frame and kind."""
        return f"{Path(self.source).stem}#{self.frame}-{self.kind}"


@dataclass(slots=True)
class _Stream:
    framer: TpktFramer
    next_seq: int | None = None


def _looks_q931(payload: bytes) -> bool:
    # Q.931 4.2-4.3: discriminator 0x08; H.225.0 7.2.2: call reference of 2 octets.
    return len(payload) >= 5 and payload[0] == 0x08 and payload[1] == 0x02


def _tshark_rows(path: Path) -> list[list[str]]:
    args = ["-Y", "tcp.len > 0 or udp", "-T", "fields", "-E", "separator=/t"]
    for name in _FIELDS:
        args += ["-e", name]
    return [line.split("\t") for line in tshark_output(*args, capture=path).decode().splitlines()]


def _from_pcap(path: Path) -> list[H323Vector]:
    streams: dict[tuple[str, str], _Stream] = {}
    kinds: dict[str, Kind | None] = {}  # TCP stream -> kind, None when not TPKT
    out: list[H323Vector] = []
    for row in _tshark_rows(path):
        number, stream_id, sport, _dport, seq_raw, tcp, usport, udport, udp = row
        if udp:
            if RAS_PORT in (int(usport), int(udport)):
                out.append(H323Vector(path.name, int(number), "ras", bytes.fromhex(udp)))
            continue
        if not tcp or kinds.get(stream_id, "") is None:
            continue
        state = streams.setdefault((stream_id, sport), _Stream(TpktFramer()))
        data = bytes.fromhex(tcp)
        seq = int(seq_raw)
        if state.next_seq is not None:
            skip = (state.next_seq - seq) % 2**32
            if skip >= 2**31:  # a gap: the capture lost a segment; nothing to rebuild
                raise ValueError(f"{path.name} frame {number}: TCP gap in stream {stream_id}")
            if skip >= len(data):
                continue  # a duplicate, a retransmission or a keep-alive probe
            data = data[skip:]
        state.next_seq = (seq + len(tcp) // 2) % 2**32
        split = state.framer.pending > 0  # the first PDU out began in an earlier segment
        try:
            payloads = state.framer.feed(data)
        except H323ParseError:
            kinds[stream_id] = None  # not a TPKT stream (TLS, MGCP...)
            continue
        for payload in payloads:
            kind = kinds.get(stream_id)
            if kind is None:
                if not payload:  # a keep-alive says nothing of the stream
                    kind = "q931"
                else:
                    kind = "q931" if _looks_q931(payload) else "h245"
                    kinds[stream_id] = kind
            out.append(H323Vector(path.name, int(number), kind, payload, split))
            split = False
    return out


@functools.cache
def load_vectors() -> tuple[H323Vector, ...]:
    """Every captured PDU, in file then frame order (tshark runs once per file).

    Empty TPKT payloads (keep-alives) are kept: the framing tests want them.
    """
    pcaps = sorted(p for p in H323_VECTORS.iterdir() if ".pcap" in p.name)
    if not pcaps:
        raise FileNotFoundError(f"no H.323 captures under {H323_VECTORS}")
    vectors: list[H323Vector] = []
    for pcap in pcaps:
        vectors += _from_pcap(pcap)
    return tuple(vectors)


def pdus(kind: Kind) -> tuple[H323Vector, ...]:
    """The captured PDUs of one kind, keep-alives left out."""
    return tuple(v for v in load_vectors() if v.kind == kind and v.data)
