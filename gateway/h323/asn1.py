"""H.225.0 and H.245 values in aligned PER (X.691), behind one door: pycrate lives here.

Three top-level types are decoded and encoded: H.225.0 ``H323-UserInformation`` (the
UUIE in the Q.931 User-user element, H.225.0 7.2.2), H.225.0 ``RasMessage`` (RAS on
UDP 1719, H.225.0 7.6-7.15) and H.245 ``MultimediaSystemControlMessage``; plus H.245
``OpenLogicalChannel``, the octet strings of a fastStart list (H.225.0 7.3.1). Values
are pycrate's Python structures: a SEQUENCE is a dict, a CHOICE a ``(name, value)``
tuple, a SEQUENCE OF a list, an OCTET STRING bytes, a BIT STRING ``(value, length)``,
an OBJECT IDENTIFIER a tuple of ints. Any failure of pycrate raises
:class:`H323ParseError` on decoding and :class:`H323UsageError` on encoding.

pycrate keeps its ASN.1 objects as module-level singletons with per-call state (the
value of every component, a stack of bit offsets for alignment): every call here runs
under one lock, restores that stack when pycrate fails half-way, and hands pycrate a
private copy of the value (its canonical PER encoder deletes DEFAULT-valued components
from the dict it is given).

pycrate 0.8.1 encodes the extension additions of a SEQUENCE or SET wrongly whenever
the root part ends off an octet boundary. X.691 (07/2002) 18.7-18.9 (19.7-19.9 in later
editions) puts the bit-map of extension additions first, re-aligns, then writes each
addition as an open type field (10.2, whose length determinant is octet-aligned).
pycrate encodes the additions before the bit-map, so it aligns the first open type from
the end of the root part: a needless padding field goes in front of the first addition
and the re-alignment after the bit-map is miscounted. A receiver then reads a zero octet
as the length of the first addition. 40 of the captured values hit it (Setup, Connect,
Progress, CallProceeding, Alerting, ReleaseComplete, ACF ``uuiesRequested``, RCF, ARQ,
DRQ, TCS, OLC). :func:`_patch_extension_alignment` corrects it: when pycrate's SEQUENCE
encoder writes one of its extension additions, the open type is written unpadded, and
the bit offset kept for the re-alignment after the bit-map stays the true one. Every
encoding is also decoded again before it is returned, so a fault of the same kind
elsewhere would surface as :class:`H323UsageError`, never as bytes on the wire.

pycrate 0.8.1 also moves unknown extension additions (those of a later version of a
module than its own, which it keeps as ``_ext_N`` octets) one place down when it
encodes them again: its decoder numbers them from 0 in the bit-map (X.691 18.8), its
encoder from 1. A value relayed from a newer peer would come out with its additions in
the wrong fields. :func:`_for_encoder` renumbers them on the private copy handed over.

pycrate's decoder accepts an OBJECT IDENTIFIER of no or one arc (an empty contents
field), which its encoder then refuses; such a value cannot be encoded (X.690 8.19.4:
the first subidentifier carries the first two arcs; X.691 24 reuses those contents).
:func:`_check_decoded` refuses it on decoding, as tshark does (ndpi-h323.pcap frame 59,
a GRQ with an empty OID): whatever decodes here can be encoded again.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import Any, Final

from pycrate_asn1dir import H225, H245
from pycrate_asn1rt.asnobj import ASN1Obj
from pycrate_asn1rt.asnobj_construct import _CONSTRUCT
from pycrate_asn1rt.codecs import ASN1CodecPER

from gateway.h323.errors import H323ParseError, H323UsageError

# H.225.0 version 4 (0.0.8.2250.0.4), as the Cisco gateways of the captures send: the
# first version with the fields H323Plus (which sends 7) and GNU Gatekeeper rely on
# (keepAlive RRQ, callIdentifier, fastStart, h245Tunnelling); a receiver reads the
# extension additions it knows whatever the number says.
H225_PROTOCOL_ID: Final = (0, 0, 8, 2250, 0, 4)
# H.245 version 7 (0.0.8.245.0.7), the most common one in the captures (H323Plus
# sends 15; a receiver reads the message by its ASN.1 extensions, not by this number).
H245_PROTOCOL_ID: Final = (0, 0, 8, 245, 0, 7)

_LOCK = threading.RLock()


def _patch_extension_alignment() -> None:
    """Make pycrate align the extension additions of a SEQUENCE/SET right (X.691 19.9).

    Only the open types written by the SEQUENCE/SET encoder for its own extension
    additions are concerned (recognised by the caller's code object); every other open
    type (CHOICE extensions, open types of classes) is encoded by pycrate as it stands.
    """
    if getattr(ASN1CodecPER, "_vrgw_patched", False):
        return
    seq_encoder = _CONSTRUCT._to_per.__code__

    def aligned(original: Callable[[Any, Any], Any]) -> Any:
        def encode(cla: Any, arg: Any) -> Any:
            if cla.ALIGNED and sys._getframe(1).f_code is seq_encoder:
                # The addition follows the bit-map and its re-alignment (X.691 19.8),
                # whatever the offset at the end of the root part: encode it unpadded,
                # then put the root part's bit offset back for the bit-map's count.
                rest = cla._off[-1] % 8
                cla._off[-1] -= rest
                try:
                    return original(cla, arg)
                finally:
                    cla._off[-1] += rest
            return original(cla, arg)

        return classmethod(encode)

    ASN1CodecPER.encode_unconst_open = aligned(ASN1CodecPER.encode_unconst_open.__func__)
    ASN1CodecPER.encode_unconst_buf = aligned(ASN1CodecPER.encode_unconst_buf.__func__)
    ASN1CodecPER._vrgw_patched = True


_patch_extension_alignment()


def _patch_fullname() -> None:
    """Make pycrate's ``fullname`` end on a recursive type.

    pycrate names an object by walking its ``_parent`` links, and its PER decoder builds
    that name for a log line whenever a CHOICE holds an unknown extension (even with the
    logging off). In a recursive type (H.225.0 ``Content`` holds ``compound``, a
    SEQUENCE OF ``EnumeratedParameter`` holding a ``Content``) one object serves every
    level, decoding sets its parent to one of its own descendants, and the walk never
    ended: the fuzzer found a 443-octet RRQ whose ``genericData`` hung the loop and took
    every byte of memory. The walk stops at the first object met twice.
    """
    if getattr(ASN1Obj, "_vrgw_fullname", False):
        return

    def fullname(self: Any) -> str:
        names, seen, obj = [], set(), self
        while obj is not None and id(obj) not in seen:
            seen.add(id(obj))
            names.append(obj._name)
            obj = obj._parent
        return ".".join(reversed(names))

    ASN1Obj.fullname = fullname
    ASN1Obj._vrgw_fullname = True


_patch_fullname()


class _Codec:
    """One top-level pycrate type, decoded and encoded with its state kept in check."""

    __slots__ = ("_obj", "name")

    def __init__(self, name: str, obj: Any) -> None:
        self.name = name
        self._obj = obj

    def decode(self, data: bytes) -> Any:
        """The value of ``data`` (aligned PER, X.691); H323ParseError if invalid."""
        if not data:
            raise H323ParseError(f"empty {self.name}")
        with _LOCK:
            depth = len(ASN1CodecPER._off)
            try:
                self._obj.from_aper(data)
                value = self._obj.get_val()
                _check_decoded(value)
                return value
            except H323ParseError:
                raise
            except Exception as exc:  # pycrate raises many types, and assertions
                raise H323ParseError(f"invalid {self.name}: {_describe(exc)}") from None
            finally:
                del ASN1CodecPER._off[depth:]
                self._obj._val = None

    def encode(self, value: Any) -> bytes:
        """The aligned PER octets of ``value``; H323UsageError if pycrate refuses it."""
        with _LOCK:
            depth = len(ASN1CodecPER._off)
            try:
                self._obj.set_val(_for_encoder(value))
                data: bytes = self._obj.to_aper()
            except Exception as exc:
                raise H323UsageError(f"cannot encode {self.name}: {_describe(exc)}") from None
            finally:
                del ASN1CodecPER._off[depth:]
                self._obj._val = None
        try:
            self.decode(data)
        except H323ParseError as exc:  # pycrate wrote what it cannot read back
            raise H323UsageError(f"encoding of {self.name} does not decode: {exc}") from None
        return data


def _check_decoded(value: Any) -> None:
    """Refuse an OBJECT IDENTIFIER of fewer than two arcs (X.690 8.19.4).

    In pycrate's values a tuple is a CHOICE or a BIT STRING (two items each) or an
    OBJECT IDENTIFIER: a tuple of fewer than two items can only be a short OID.
    """
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, tuple):
            if len(item) < 2:
                raise H323ParseError(f"object identifier {item} has fewer than two arcs")
            if isinstance(item[0], str):  # a CHOICE: look inside the chosen value
                stack.append(item[1])


def _for_encoder(value: Any) -> Any:
    """A private copy of ``value`` with unknown SEQUENCE additions renumbered from 1.

    pycrate's SEQUENCE encoder reads ``_ext_N`` as the N-th addition counted from 1
    while its decoder writes it counted from 0: the key is shifted by one here. A CHOICE
    value is a tuple, whose ``_ext_N`` alternative both sides count alike.
    """
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if key.startswith("_ext_") and key[5:].isdigit():
                key = f"_ext_{int(key[5:]) + 1}"
            out[key] = _for_encoder(item)
        return out
    if isinstance(value, list):
        return [_for_encoder(item) for item in value]
    if isinstance(value, tuple):
        return tuple(_for_encoder(item) for item in value)
    return value  # bytes, str, int, bool: immutable


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 200 else text[:200] + "..."


_MESSAGES = H225.H323_MESSAGES
_H245 = H245.MULTIMEDIA_SYSTEM_CONTROL

UUIE: Final = _Codec("H323-UserInformation", _MESSAGES.H323_UserInformation)
RAS: Final = _Codec("RasMessage", _MESSAGES.RasMessage)
H245_MESSAGE: Final = _Codec("MultimediaSystemControlMessage", _H245.MultimediaSystemControlMessage)
OPEN_LOGICAL_CHANNEL: Final = _Codec("OpenLogicalChannel", _H245.OpenLogicalChannel)


def decode_uuie(data: bytes) -> dict[str, Any]:
    """An ``H323-UserInformation`` from User-user octets (H.225.0 7.2.2, 7.3)."""
    value: dict[str, Any] = UUIE.decode(data)
    return value


def encode_uuie(value: dict[str, Any]) -> bytes:
    """The User-user octets of an ``H323-UserInformation`` (H.225.0 7.3)."""
    return UUIE.encode(value)


def decode_ras(data: bytes) -> tuple[str, Any]:
    """A ``RasMessage`` from a UDP datagram (H.225.0 7.6): (message name, value)."""
    value: tuple[str, Any] = RAS.decode(data)
    return value


def encode_ras(value: tuple[str, Any]) -> bytes:
    """The datagram of a ``RasMessage`` (H.225.0 7.6)."""
    return RAS.encode(value)


def decode_h245(data: bytes) -> tuple[str, Any]:
    """A ``MultimediaSystemControlMessage`` (H.245 annex A), as (kind, (name, value))."""
    value: tuple[str, Any] = H245_MESSAGE.decode(data)
    return value


def encode_h245(value: tuple[str, Any]) -> bytes:
    """The octets of a ``MultimediaSystemControlMessage`` (one TPKT payload or tunnel)."""
    return H245_MESSAGE.encode(value)


def decode_olc(data: bytes) -> dict[str, Any]:
    """An ``OpenLogicalChannel`` from a fastStart element (H.225.0 7.3.1, H.245)."""
    value: dict[str, Any] = OPEN_LOGICAL_CHANNEL.decode(data)
    return value


def encode_olc(value: dict[str, Any]) -> bytes:
    """The fastStart octet string of an ``OpenLogicalChannel`` (H.225.0 7.3.1)."""
    return OPEN_LOGICAL_CHANNEL.encode(value)
