"""ITU-T G.711 written out sample by sample: the tests' own reference for FFmpeg's G.711.

The gateway encodes and decodes G.711 with FFmpeg (gateway/media/transcode.py); these
functions, written from the Recommendation (mu-law: bias 0x84 and segments of 2**n;
A-law: 13-bit segments with the even bits inverted), are an independent second reading
that the tests compare it with. They are too slow for the gateway: one Python call a
sample.
"""

from __future__ import annotations


def ulaw_encode(sample: int) -> int:
    """One 16-bit linear sample to a G.711 mu-law byte (bias 0x84, segments of 2**n)."""
    sign = 0x80 if sample < 0 else 0
    magnitude = min(-sample if sample < 0 else sample, 32635) + 0x84
    exponent = magnitude.bit_length() - 8  # 0..7: the segment
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    return ~(sign | (exponent << 4) | mantissa) & 0xFF


def ulaw_decode(byte: int) -> int:
    """One G.711 mu-law byte to a 16-bit linear sample."""
    byte = ~byte & 0xFF
    exponent = (byte >> 4) & 0x07
    magnitude = (((byte & 0x0F) << 3) + 0x84) << exponent
    magnitude -= 0x84
    return -magnitude if byte & 0x80 else magnitude


def alaw_encode(sample: int) -> int:
    """One 16-bit linear sample to a G.711 A-law byte (13-bit segments, even bits inverted)."""
    sign = 0x80 if sample >= 0 else 0
    magnitude = min(-sample - 1 if sample < 0 else sample, 32767) >> 3  # 12 bits
    if magnitude < 32:
        code = magnitude >> 1
    else:
        exponent = magnitude.bit_length() - 5  # 1..7
        code = (exponent << 4) | ((magnitude >> exponent) & 0x0F)
    return (sign | code) ^ 0x55


def alaw_decode(byte: int) -> int:
    """One G.711 A-law byte to a 16-bit linear sample."""
    byte ^= 0x55
    exponent = (byte >> 4) & 0x07
    mantissa = byte & 0x0F
    base = (mantissa << 4) + (8 if exponent == 0 else 0x108)
    magnitude = base if exponent == 0 else base << (exponent - 1)
    return magnitude if byte & 0x80 else -magnitude


def encode(samples: list[int], law: str) -> bytes:
    """Samples to PCMU or PCMA octets, one call a sample."""
    one = ulaw_encode if law == "PCMU" else alaw_encode
    return bytes(one(sample) for sample in samples)


def decode(data: bytes, law: str) -> list[int]:
    """PCMU or PCMA octets to samples, one call an octet."""
    one = ulaw_decode if law == "PCMU" else alaw_decode
    return [one(code) for code in data]
