"""The codec catalogue: what each codec is called in SDP and in H.245, as validated data.

The data lives in ``codecs/catalogue.yaml`` at the project root (see its README), a data
folder rather than a package (a package named ``codecs`` would shadow the standard
library's). A wheel installs it as a data file under
``<prefix>/share/visio-relais-gateway/codecs/``; :func:`find_catalogue` says where it
is. This module loads it with pydantic, refuses an inconsistent file with the entry and
field at fault, and answers the lookups SDP and H.245 code need: by name, by RFC 3551
static payload type, by ``a=rtpmap`` encoding and clock rate (RFC 4566 6), and by H.245
capability. It sits in the bottom layer so that the media engines and the protocol
packages (H.245 capabilities, ``gateway.h323.capabilities``) share it.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from gateway.model.sdp import MediaDescription

ENV_VAR = "VRGW_CODECS"  # the path of a catalogue to use instead of the shipped one
# In a source checkout (an editable install too): <root>/gateway/model/codecs.py.
SOURCE_CATALOGUE = Path(__file__).resolve().parents[2] / "codecs" / "catalogue.yaml"
# Under an install prefix: where pyproject.toml's [tool.setuptools.data-files] puts it.
INSTALLED_CATALOGUE = Path("share", "visio-relais-gateway", "codecs", "catalogue.yaml")


class CatalogueError(ValueError):
    """The catalogue file is missing, is not YAML, or breaks a rule of codecs/README.md."""


_OID = r"^[0-9]+(\.[0-9]+)+$"
_ASN1_NAME = r"^[a-z][A-Za-z0-9-]*$"
# RFC 4733 7.1.1: a comma-separated list of events and ranges of events.
_EVENTS = re.compile(r"^[0-9]+(-[0-9]+)?(,[0-9]+(-[0-9]+)?)*$")


class H241Tables(BaseModel):
    """H.264 as an H.245 generic capability (ITU-T H.241 8.3): the values that stand for
    H.264 profiles, levels and RTP packetization modes."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    profiles: dict[int, int] = Field(min_length=1)  # profile_idc -> Profile parameter bit
    levels: dict[int, int] = Field(min_length=1)  # level_idc (9: level 1b) -> Level value
    packetization: dict[int, str] = Field(default_factory=dict)  # mode -> payloadDescriptor

    @model_validator(mode="after")
    def _check(self) -> H241Tables:
        bits = list(self.profiles.values())
        if any(b not in (1, 2, 4, 8, 16, 32, 64, 128) for b in bits) or len(set(bits)) != len(bits):
            raise ValueError("profile bits must be distinct powers of two below 256")
        if any(not 0 < k < 256 for k in (*self.profiles, *self.levels)):
            raise ValueError("profile_idc and level_idc are octets (1-255)")
        values = list(self.levels.values())
        if any(not 0 < v < 65536 for v in values) or len(set(values)) != len(values):
            raise ValueError("level values must be distinct and within 1-65535")
        for mode, oid in self.packetization.items():
            if mode not in (0, 1, 2) or not re.match(_OID, oid):
                raise ValueError(f"packetization {mode}: {oid!r} (modes 0-2, dotted OIDs)")
        return self


class H245Mapping(BaseModel):
    """How H.245 names a codec (ITU-T H.245 capability choice names, Annex S, H.241)."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    capability: str = Field(pattern=_ASN1_NAME)
    alternatives: list[str] = Field(default_factory=list)
    oid: str | None = Field(default=None, pattern=_OID)
    user_input: str | None = None
    # The UserInputCapability alternatives a telephone-event codec stands for, each with
    # the RFC 4733 events it carries.
    user_input_events: dict[str, str] = Field(default_factory=dict)
    # Audio: the milliseconds of one frame in the capability's frame count (H.245
    # maxAl-sduAudioFrames); an audio capability without it is not written.
    frame_ms: int | None = Field(default=None, gt=0)
    # The SDP format parameters each capability name stands for (RFC 4856 annexb...).
    fmtp: dict[str, str] = Field(default_factory=dict)
    # Video: SDP picture-size parameter (RFC 4587, RFC 4629) -> H.245 MPI component.
    mpi: dict[str, str] = Field(default_factory=dict)
    # Video: the upper bound of the capability's maxBitRate (units of 100 bit/s).
    max_bit_rate: int | None = Field(default=None, gt=0)
    # A component whose presence in the H.245 value tells this codec from another one
    # with the same capability name (h263Options: H.263+ rather than H.263).
    marker: str | None = Field(default=None, pattern=_ASN1_NAME)
    h241: H241Tables | None = None

    @model_validator(mode="after")
    def _generic_needs_oid(self) -> H245Mapping:
        generic = self.capability.startswith("generic")
        if generic and self.oid is None:
            raise ValueError(f"{self.capability} needs an oid (capabilityIdentifier)")
        if not generic and self.oid is not None:
            raise ValueError(f"oid given for {self.capability}, which is not a generic one")
        names = (self.capability, *self.alternatives)
        for name in (*names, *self.user_input_events, *self.mpi.values()):
            if not re.match(_ASN1_NAME, name):
                raise ValueError(f"{name!r} is not an H.245 component name")
        stray = [name for name in self.fmtp if name not in names]
        if stray:
            raise ValueError(f"fmtp given for {stray[0]}, not a capability of this codec")
        for name, events in self.user_input_events.items():
            if not _EVENTS.match(events):
                raise ValueError(f"user_input_events {name}: {events!r} is not an RFC 4733 list")
        if self.user_input_events and self.user_input not in self.user_input_events:
            raise ValueError("user_input must be one of user_input_events")
        if self.h241 is not None and self.capability != "genericVideoCapability":
            raise ValueError("h241 tables belong to a genericVideoCapability (H.241 8.3)")
        return self


class Codec(BaseModel):
    """One catalogue entry: a codec as SDP (RFC 3551, RFC 8866 6.6) and H.245 know it."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    name: str = Field(min_length=1)
    kind: Literal["audio", "video", "application"]
    encoding: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9.\-_+]*$")
    clock_rate: int = Field(gt=0)
    channels: int | None = Field(default=None, ge=1, le=8)
    payload_type: int | Literal["dynamic"]
    ptime: int | None = Field(default=None, gt=0)
    fmtp: str | None = None
    h245: H245Mapping | None = None

    @model_validator(mode="after")
    def _check(self) -> Codec:
        if isinstance(self.payload_type, int) and not 0 <= self.payload_type <= 95:
            raise ValueError(
                f"static payload type {self.payload_type} is outside 0-95 (RFC 3551 table 4/5)"
            )
        if self.kind == "audio" and self.channels is None:
            raise ValueError("an audio codec needs channels")
        if self.kind != "audio" and self.channels is not None:
            raise ValueError(f"channels is only for audio, not {self.kind}")
        return self

    @property
    def static_pt(self) -> int | None:
        """The RFC 3551 static payload type, ``None`` for a dynamic one."""
        return self.payload_type if isinstance(self.payload_type, int) else None

    @property
    def rtpmap(self) -> str:
        """The ``a=rtpmap`` value after the payload type, e.g. ``opus/48000/2``."""
        if self.channels is not None and self.channels > 1:
            return f"{self.encoding}/{self.clock_rate}/{self.channels}"
        return f"{self.encoding}/{self.clock_rate}"


class _CatalogueFile(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    codecs: list[Codec] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> _CatalogueFile:
        seen_names: dict[str, str] = {}
        seen_pts: dict[int, str] = {}
        seen_maps: dict[tuple[str, int, int], str] = {}
        for c in self.codecs:
            key = c.name.lower()
            if key in seen_names:
                raise ValueError(f"codec name {c.name!r} appears twice")
            seen_names[key] = c.name
            if c.static_pt is not None:
                if c.static_pt in seen_pts:
                    raise ValueError(
                        f"static payload type {c.static_pt} is used by both "
                        f"{seen_pts[c.static_pt]} and {c.name}"
                    )
                seen_pts[c.static_pt] = c.name
            triple = (c.encoding.lower(), c.clock_rate, c.channels or 1)
            if triple in seen_maps:
                raise ValueError(f"{c.name} and {seen_maps[triple]} both map to rtpmap {c.rtpmap}")
            seen_maps[triple] = c.name
        return self


class CodecCatalogue:
    """Read-only lookups over the validated catalogue entries."""

    def __init__(self, codecs: list[Codec]) -> None:
        self.codecs: tuple[Codec, ...] = tuple(codecs)
        self._by_name = {c.name.lower(): c for c in codecs}
        self._by_pt = {c.static_pt: c for c in codecs if c.static_pt is not None}
        self._by_map: dict[tuple[str, int], list[Codec]] = {}
        self._by_h245: dict[tuple[str, str | None], Codec] = {}
        for c in codecs:
            self._by_map.setdefault((c.encoding.lower(), c.clock_rate), []).append(c)
            if c.h245 is not None:
                for cap in (c.h245.capability, *c.h245.alternatives):
                    self._by_h245.setdefault((cap, c.h245.oid), c)

    def __iter__(self) -> Iterator[Codec]:
        return iter(self.codecs)

    def __len__(self) -> int:
        return len(self.codecs)

    def by_name(self, name: str) -> Codec | None:
        """The entry called ``name`` (case-insensitive), or ``None``."""
        return self._by_name.get(name.lower())

    def by_static_pt(self, pt: int) -> Codec | None:
        """The codec of an RFC 3551 static payload type, or ``None`` (dynamic/unassigned)."""
        return self._by_pt.get(pt)

    def from_rtpmap(self, encoding: str, clock: int, channels: int | None = None) -> Codec | None:
        """The codec an ``a=rtpmap`` names; encoding names are case-insensitive (RFC 4855 3).

        With ``channels`` given, only an entry with that channel count matches.
        """
        candidates = self._by_map.get((encoding.lower(), clock))
        if not candidates:
            return None
        if channels is None:
            return candidates[0]
        for c in candidates:
            if (c.channels or 1) == channels:
                return c
        return None

    def by_h245(self, capability: str, oid: str | None = None) -> Codec | None:
        """The first codec an H.245 capability (and generic ``oid``) stands for."""
        return self._by_h245.get((capability, oid))

    def all_by_h245(self, capability: str, oid: str | None = None) -> list[Codec]:
        """Every codec an H.245 capability (and generic ``oid``) may stand for, in
        catalogue order (H.263 and H.263+ share ``h263VideoCapability``)."""
        found: list[Codec] = []
        for c in self.codecs:
            if c.h245 is None or c.h245.oid != oid:
                continue
            if capability == c.h245.capability or capability in c.h245.alternatives:
                found.append(c)
        return found

    def codecs_for(self, media: MediaDescription) -> list[tuple[int, Codec | None]]:
        """Each payload type of an m= line with its codec: rtpmap first, then RFC 3551."""
        rtpmap = media.rtpmap()
        result: list[tuple[int, Codec | None]] = []
        for pt in media.payload_types:
            mapped = rtpmap.get(pt)
            if mapped is not None:
                result.append((pt, self.from_rtpmap(*mapped)))
            else:
                result.append((pt, self.by_static_pt(pt)))
        return result


def _describe(loc: tuple[int | str, ...], raw: Any) -> str:
    """Turn a pydantic location into ``codecs[3] (G722).clock_rate``."""
    parts: list[str] = []
    for i, item in enumerate(loc):
        if isinstance(item, int):
            label = f"[{item}]"
            if i == 1 and loc[0] == "codecs":
                with contextlib.suppress(KeyError, IndexError, TypeError):
                    label += f" ({raw['codecs'][item]['name']})"
            parts.append(label)
        elif item in ("int", "str", "literal['dynamic']"):
            continue  # the branch pydantic tried inside a union, not a real field
        else:
            parts.append(f".{item}" if parts else str(item))
    return "".join(parts)


def _install_prefixes() -> list[Path]:
    """Prefixes a wheel may have been installed under, most likely first.

    ``sys.prefix`` (a virtual environment, or the interpreter's own prefix), then where
    this interpreter's installer puts data files when that differs (Debian's system
    Python: ``/usr/local``, not ``/usr``), then the user's (``pip install --user``).
    """
    prefixes = [Path(sys.prefix)]
    for scheme in (sysconfig.get_default_scheme(), sysconfig.get_preferred_scheme("user")):
        data = Path(sysconfig.get_path("data", scheme))
        if data not in prefixes:
            prefixes.append(data)
    return prefixes


def catalogue_locations() -> list[Path]:
    """Every place :func:`find_catalogue` looks, in order.

    When :data:`ENV_VAR` is set, its path alone: a catalogue named on purpose that is
    missing must not be replaced by another one without a word.
    """
    explicit = os.environ.get(ENV_VAR)
    if explicit:
        return [Path(explicit)]
    return [SOURCE_CATALOGUE, *(prefix / INSTALLED_CATALOGUE for prefix in _install_prefixes())]


def find_catalogue() -> Path:
    """The catalogue file to load: :data:`ENV_VAR`, else the source checkout's, else the
    one installed with the distribution; :class:`CatalogueError` lists where it looked."""
    looked = catalogue_locations()
    for path in looked:
        if path.is_file():
            return path
    origin = f" (from {ENV_VAR})" if os.environ.get(ENV_VAR) else ""
    raise CatalogueError(
        f"no codec catalogue{origin}: looked in " + ", ".join(str(p) for p in looked)
    )


def load_catalogue(path: Path | None = None) -> CodecCatalogue:
    """Load and validate the catalogue at ``path``, by default the one :func:`find_catalogue`
    finds."""
    if path is None:
        path = find_catalogue()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CatalogueError(f"{path}: cannot read the codec catalogue: {exc}") from exc
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise CatalogueError(f"{path}{where}: not valid YAML: {exc}") from exc
    try:
        parsed = _CatalogueFile.model_validate(raw)
    except ValidationError as exc:
        problems = [
            f"{_describe(tuple(e['loc']), raw) or 'top level'}: "
            f"{e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors()[:5]
        ]
        if exc.error_count() > 5:
            problems.append(f"and {exc.error_count() - 5} more")
        raise CatalogueError(f"{path}: " + "; ".join(problems)) from exc
    return CodecCatalogue(parsed.codecs)


@functools.cache
def default_catalogue() -> CodecCatalogue:
    """The project's own catalogue, loaded once per process."""
    return load_catalogue()
