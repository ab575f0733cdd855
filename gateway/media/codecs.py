"""The codec catalogue: what each codec is called in SDP and in H.245, as validated data.

The data lives in ``codecs/catalogue.yaml`` at the project root (see its README), a data
folder rather than a package (a package named ``codecs`` would shadow the standard
library's). A wheel installs it as a data file under
``<prefix>/share/visio-relais-gateway/codecs/``; :func:`find_catalogue` says where it
is. This module loads it with pydantic, refuses an inconsistent file with the entry and
field at fault, and answers the lookups SDP and H.245 code need: by name, by RFC 3551
static payload type, by ``a=rtpmap`` encoding and clock rate (RFC 4566 6), and by H.245
capability.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from gateway.model.sdp import MediaDescription

ENV_VAR = "VRGW_CODECS"  # the path of a catalogue to use instead of the shipped one
# In a source checkout (an editable install too): <root>/gateway/media/codecs.py.
SOURCE_CATALOGUE = Path(__file__).resolve().parents[2] / "codecs" / "catalogue.yaml"
# Under an install prefix: where pyproject.toml's [tool.setuptools.data-files] puts it.
INSTALLED_CATALOGUE = Path("share", "visio-relais-gateway", "codecs", "catalogue.yaml")


class CatalogueError(ValueError):
    """The catalogue file is missing, is not YAML, or breaks a rule of codecs/README.md."""


class H245Mapping(BaseModel):
    """How H.245 names a codec (ITU-T H.245 capability choice names, Annex S, H.241)."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    capability: str = Field(pattern=r"^[a-z][A-Za-z0-9-]*$")
    alternatives: list[str] = Field(default_factory=list)
    oid: str | None = Field(default=None, pattern=r"^[0-9]+(\.[0-9]+)+$")
    user_input: str | None = None

    @model_validator(mode="after")
    def _generic_needs_oid(self) -> H245Mapping:
        generic = self.capability.startswith("generic")
        if generic and self.oid is None:
            raise ValueError(f"{self.capability} needs an oid (capabilityIdentifier)")
        if not generic and self.oid is not None:
            raise ValueError(f"oid given for {self.capability}, which is not a generic one")
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
