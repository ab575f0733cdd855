"""The codec catalogue (codecs/catalogue.yaml): RFC 3551 facts, H.245 mappings, validation,
where the loader finds it, and that a wheel ships it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from harness import ROOT, VECTORS

from gateway.model import codecs
from gateway.model.codecs import (
    ENV_VAR,
    INSTALLED_CATALOGUE,
    SOURCE_CATALOGUE,
    CatalogueError,
    catalogue_locations,
    default_catalogue,
    find_catalogue,
    load_catalogue,
)
from gateway.model.sdp import MediaDescription, SessionDescription

# RFC 3551 tables 4 and 5 (the entries the catalogue carries).
RFC3551_STATIC = [
    (0, "PCMU", 8000, 1),
    (3, "GSM", 8000, 1),
    (4, "G723", 8000, 1),
    (5, "DVI4", 8000, 1),
    (6, "DVI4", 16000, 1),
    (8, "PCMA", 8000, 1),
    (9, "G722", 8000, 1),
    (10, "L16", 44100, 2),
    (11, "L16", 44100, 1),
    (13, "CN", 8000, 1),
    (15, "G728", 8000, 1),
    (18, "G729", 8000, 1),
    (31, "H261", 90000, None),
    (34, "H263", 90000, None),
]


def test_a_source_checkout_uses_its_own_data_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert SOURCE_CATALOGUE == ROOT / "codecs" / "catalogue.yaml"
    assert catalogue_locations()[0] == SOURCE_CATALOGUE == find_catalogue()
    assert default_catalogue() is default_catalogue()
    assert len(load_catalogue()) == len(default_catalogue()) >= 20


@pytest.mark.parametrize(("pt", "encoding", "clock", "channels"), RFC3551_STATIC)
def test_static_payload_types_follow_rfc3551(
    pt: int, encoding: str, clock: int, channels: int | None
) -> None:
    codec = default_catalogue().by_static_pt(pt)
    assert codec is not None
    assert (codec.encoding, codec.clock_rate, codec.channels) == (encoding, clock, channels)
    assert default_catalogue().from_rtpmap(encoding, clock, channels) is codec


def test_unassigned_and_dynamic_payload_types_have_no_static_codec() -> None:
    catalogue = default_catalogue()
    for pt in (1, 2, 19, 35, 96, 101, 127):
        assert catalogue.by_static_pt(pt) is None
    h264 = catalogue.by_name("h264")
    assert h264 is not None and h264.static_pt is None and h264.payload_type == "dynamic"


@pytest.mark.parametrize(
    ("capability", "oid", "name"),
    [
        ("g711Ulaw64k", None, "PCMU"),
        ("g711Alaw64k", None, "PCMA"),
        ("g722-64k", None, "G722"),
        ("g722-56k", None, "G722"),
        ("g7231", None, "G723"),
        ("g728", None, "G728"),
        ("g729", None, "G729"),
        ("g729AnnexA", None, "G729"),
        ("gsmFullRate", None, "GSM"),
        ("h261VideoCapability", None, "H261"),
        ("h263VideoCapability", None, "H263"),
        ("genericVideoCapability", "0.0.8.241.0.0.1", "H264"),
        ("genericAudioCapability", "0.0.7.7221.1.0", "G7221"),
        ("genericAudioCapability", "0.0.7.7221.1.1.0", "G7221C"),
        ("receiveRTPAudioTelephonyEventCapability", None, "telephone-event"),
    ],
)
def test_h245_mappings(capability: str, oid: str | None, name: str) -> None:
    codec = default_catalogue().by_h245(capability, oid)
    assert codec is not None and codec.name == name


def test_h245_details() -> None:
    catalogue = default_catalogue()
    event = catalogue.by_name("telephone-event")
    assert event is not None and event.h245 is not None
    assert event.h245.user_input == "dtmf"
    assert event.rtpmap == "telephone-event/8000" and event.fmtp == "0-15"
    assert catalogue.by_h245("genericVideoCapability") is None  # the OID is what matters
    assert catalogue.by_h245("h262VideoCapability") is None
    h263p = catalogue.by_name("H263-1998")
    assert h263p is not None and h263p.h245 is not None
    assert h263p.h245.capability == "h263VideoCapability"


def test_rtpmap_lookup_is_case_insensitive_and_checks_channels() -> None:
    catalogue = default_catalogue()
    opus = catalogue.from_rtpmap("OPUS", 48000)
    assert opus is not None and opus.rtpmap == "opus/48000/2"
    assert catalogue.from_rtpmap("opus", 48000, 2) is opus
    assert catalogue.from_rtpmap("opus", 48000, 1) is None
    assert catalogue.from_rtpmap("pcmu", 8000) is catalogue.by_name("PCMU")
    assert catalogue.from_rtpmap("PCMU", 16000) is None
    assert catalogue.from_rtpmap("MP4A-LATM", 90000) is None


def test_codecs_of_the_tandberg_offer() -> None:
    body = (VECTORS / "sip" / "tandberg-TE4.1.1-INVITE-h264-h263-bfcp.sip").read_bytes()
    sdp = SessionDescription.parse(body.split(b"\r\n\r\n", 1)[1])
    catalogue = default_catalogue()
    audio = {pt: c.name if c else None for pt, c in catalogue.codecs_for(sdp.media[0])}
    assert audio == {
        100: None,  # MP4A-LATM: not in the catalogue
        102: "G7221",
        103: "G7221",
        9: "G722",
        18: "G729",
        11: None,  # a=rtpmap:11 L16/16000 overrides the static 44100 Hz meaning
        8: "PCMA",
        0: "PCMU",
        101: "telephone-event",
    }
    video = [c.name if c else None for _, c in catalogue.codecs_for(sdp.media[1])]
    assert video == ["H264", "H264", "H263-1998", "H263", "H261"]
    assert catalogue.codecs_for(sdp.media[2]) == []  # BFCP, format "*"
    fecc = catalogue.codecs_for(sdp.media[4])
    assert [(pt, c.name if c else None) for pt, c in fecc] == [(104, "H224")]


def test_static_payload_type_without_rtpmap_resolves() -> None:
    media = MediaDescription("audio", 6000, "RTP/AVP", ["0", "19"])
    media.add_attr("rtpmap", "19 CN/8000")  # Cisco's pre-RFC 3551 number for CN
    resolved = [(pt, c.name if c else None) for pt, c in default_catalogue().codecs_for(media)]
    assert resolved == [(0, "PCMU"), (19, "CN")]


# --- validation --------------------------------------------------------------------------

GOOD = """\
codecs:
  - name: PCMU
    kind: audio
    encoding: PCMU
    clock_rate: 8000
    channels: 1
    payload_type: 0
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "catalogue.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_minimal_file_loads(tmp_path: Path) -> None:
    catalogue = load_catalogue(_write(tmp_path, GOOD))
    assert [c.name for c in catalogue] == ["PCMU"]


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        (GOOD + GOOD.split("\n", 1)[1], ["PCMU", "twice"]),
        (
            GOOD + GOOD.split("\n", 1)[1].replace("name: PCMU", "name: ULAW"),
            ["static payload type 0", "PCMU", "ULAW"],
        ),
        (GOOD.replace("payload_type: 0", "payload_type: 96"), ["codecs[0] (PCMU)", "0-95"]),
        (GOOD.replace("payload_type: 0", "payload_type: static"), ["codecs[0] (PCMU)", "dynamic"]),
        (GOOD.replace("    channels: 1\n", ""), ["codecs[0] (PCMU)", "needs channels"]),
        (GOOD.replace("kind: audio", "kind: video"), ["channels is only for audio"]),
        (GOOD.replace("kind: audio", "kind: sound"), ["codecs[0] (PCMU).kind"]),
        (GOOD.replace("clock_rate: 8000", "clock_rate: 0"), ["codecs[0] (PCMU).clock_rate"]),
        (GOOD.replace("clock_rate: 8000", "clock_rate: '8000'"), [".clock_rate", "integer"]),
        (GOOD.replace("clock_rate: 8000", "clockrate: 8000"), ["clockrate", "xtra"]),
        (GOOD + "    h245: {capability: genericAudioCapability}\n", ["needs an oid"]),
        (GOOD + "    h245: {capability: g711Ulaw64k, oid: 1.2.3}\n", ["not a generic"]),
        (GOOD + "    h245: {capability: g711Ulaw64k, oid: 1.2.x}\n", ["h245.oid"]),
        ("codecs: []\n", ["codecs", "at least 1"]),
        ("- just a list\n", ["top level"]),
    ],
)
def test_invalid_catalogues_name_the_entry_and_field(
    tmp_path: Path, text: str, fragments: list[str]
) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(CatalogueError) as info:
        load_catalogue(path)
    message = str(info.value)
    assert message.startswith(str(path))
    for fragment in fragments:
        assert fragment in message


def test_yaml_syntax_error_has_a_line(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD + "  - name: [unclosed\n")
    with pytest.raises(CatalogueError, match=r"line \d+: not valid YAML"):
        load_catalogue(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CatalogueError, match="cannot read"):
        load_catalogue(tmp_path / "nope.yaml")


# --- where the catalogue is found ---------------------------------------------------------


def test_the_environment_names_the_catalogue(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _write(tmp_path, GOOD)
    monkeypatch.setenv(ENV_VAR, str(path))
    assert catalogue_locations() == [path] == [find_catalogue()]
    assert [c.name for c in load_catalogue()] == ["PCMU"]
    # Named on purpose but missing: an error, not the shipped catalogue in its place.
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "missing.yaml"))
    with pytest.raises(CatalogueError, match=f"from {ENV_VAR}.*missing.yaml"):
        load_catalogue()


def test_found_nowhere_lists_every_place_looked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setattr(codecs, "SOURCE_CATALOGUE", tmp_path / "src" / "catalogue.yaml")
    monkeypatch.setattr(codecs, "_install_prefixes", lambda: [tmp_path / "a", tmp_path / "b"])
    with pytest.raises(CatalogueError) as info:
        find_catalogue()
    looked = [
        tmp_path / "src" / "catalogue.yaml",
        tmp_path / "a" / INSTALLED_CATALOGUE,
        tmp_path / "b" / INSTALLED_CATALOGUE,
    ]
    assert catalogue_locations() == looked
    assert str(info.value) == "no codec catalogue: looked in " + ", ".join(map(str, looked))


def test_an_install_prefix_is_searched_after_the_source_checkout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    installed = tmp_path / INSTALLED_CATALOGUE
    installed.parent.mkdir(parents=True)
    shutil.copy(SOURCE_CATALOGUE, installed)
    monkeypatch.setattr(sys, "prefix", str(tmp_path))
    assert find_catalogue() == SOURCE_CATALOGUE  # a checkout wins over an install
    monkeypatch.setattr(codecs, "SOURCE_CATALOGUE", tmp_path / "no-checkout" / "catalogue.yaml")
    assert catalogue_locations()[1] == installed == find_catalogue()


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel built from a copy of the sources (the build writes into its source tree)."""
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for name in ("gateway", "codecs"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path_factory.mktemp("wheels")
    build = subprocess.run(
        # setuptools is one of the test extras: no isolated build environment to make
        # (measured: 1.3-1.8 s a build against 4.4-4.5 s with one)
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            ".",
        ],
        cwd=src,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert build.returncode == 0, build.stderr[-4000:]
    (built,) = out.glob("*.whl")
    return built


def test_the_wheel_ships_the_catalogue_as_shared_data(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as whl:
        names = whl.namelist()
        (data,) = (n for n in names if n.endswith(".data/data/" + INSTALLED_CATALOGUE.as_posix()))
        assert whl.read(data) == SOURCE_CATALOGUE.read_bytes()
    assert "gateway/model/codecs.py" in names
    assert not any(n.startswith("codecs/") for n in names)  # never a top-level package


def test_the_installed_loader_finds_the_catalogue_under_sys_prefix(
    wheel: Path, tmp_path: Path
) -> None:
    # Laid out as an installer does (PEP 427: .data/data/ goes to the prefix), with no
    # pip install: that would replace the editable install of the environment running us.
    site, prefix = tmp_path / "site", tmp_path / "prefix"
    with zipfile.ZipFile(wheel) as whl:
        for name in whl.namelist():
            data = name.partition(".data/data/")[2]
            target = prefix / data if data else site / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(whl.read(name))
    script = (
        "import sys; sys.prefix = sys.argv[1]; sys.path.insert(0, sys.argv[2]); "
        "from gateway.model import codecs; "
        "print(codecs.__file__); print(codecs.find_catalogue()); "
        "print(len(codecs.load_catalogue()))"
    )
    env = {k: v for k, v in os.environ.items() if k not in (ENV_VAR, "PYTHONPATH")}
    run = subprocess.run(
        [sys.executable, "-c", script, str(prefix), str(site)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    module, found, count = run.stdout.split()
    assert Path(module) == site / "gateway" / "model" / "codecs.py"  # the wheel's code
    assert Path(found) == prefix / INSTALLED_CATALOGUE
    assert int(count) == len(default_catalogue())
