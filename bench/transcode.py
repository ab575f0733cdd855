"""CPU time per packet of the relay's audio transcoder (gateway/media/transcode.py).

    .venv/bin/python -m bench.transcode [--packets 20000]

Runs 20 ms packets of a speech-band tone through one ``Transcoder`` per direction, in
process CPU time (``time.process_time``), and prints microseconds per packet. For scale:
forwarding one packet unchanged costs the relay about 8-11 us (issue 14), and a call
sends 50 audio packets a second each way.
"""

from __future__ import annotations

import argparse
import math
import time

import av
from av.audio.codeccontext import AudioCodecContext
from av.audio.frame import AudioFrame

from gateway.media.rtp import RtpPacket
from gateway.media.transcode import G722, PCMA, PCMU, AudioCodec, Transcoder


def _payloads(codec: AudioCodec, seconds: float) -> list[bytes]:
    """20 ms payloads of a 440 Hz tone plus a 1.7 kHz one, in ``codec`` (FFmpeg)."""
    rate = codec.sample_rate
    samples = [
        round(
            6000 * math.sin(2 * math.pi * 440 * i / rate)
            + 3000 * math.sin(2 * math.pi * 1700 * i / rate)
        )
        for i in range(int(rate * seconds))
    ]
    encoder = av.CodecContext.create(codec.ffmpeg, "w")
    assert isinstance(encoder, AudioCodecContext)
    encoder.sample_rate = rate
    encoder.layout = "mono"
    encoder.format = "s16"
    encoder.open()
    frame = AudioFrame(format="s16", layout="mono", samples=len(samples))
    frame.sample_rate = rate
    frame.planes[0].update(b"".join(s.to_bytes(2, "little", signed=True) for s in samples))
    data = b"".join(bytes(p) for p in encoder.encode(frame))
    data += b"".join(bytes(p) for p in encoder.encode(None))
    return [data[i : i + 160] for i in range(0, len(data) - 159, 160)]


def measure(source: AudioCodec, target: AudioCodec, count: int) -> float:
    """Microseconds of CPU per packet, ``source`` to ``target``."""
    payloads = _payloads(source, 2.0)
    packets = [
        RtpPacket(
            source.static_pt, n & 0xFFFF, 160 * n, 0x1234, payload=payloads[n % len(payloads)]
        ).serialize()
        for n in range(count)
    ]
    transcoder = Transcoder({source.static_pt: (source, target, target.static_pt)})
    for packet in packets[:50]:  # codec contexts made, caches warm
        transcoder(packet)
    start = time.process_time()
    for packet in packets:
        transcoder(packet)
    return (time.process_time() - start) / count * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=20000)
    args = parser.parse_args()
    print(f"{'direction':<16} {'us/packet':>10}  (CPU, {args.packets} packets of 20 ms)")
    for source, target in ((G722, PCMA), (PCMA, G722), (G722, PCMU), (PCMU, G722), (PCMA, PCMU)):
        us = measure(source, target, args.packets)
        print(f"{source.name + ' -> ' + target.name:<16} {us:>10.1f}")


if __name__ == "__main__":
    main()
