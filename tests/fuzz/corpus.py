"""Seed corpora for the fuzz targets, read from ``shared/vectors/`` at run time, and the
call that runs one target under atheris in a subprocess.

Nothing here is copied into the repository: the seeds are written to a folder the caller
gives (a test's ``tmp_path``, a bench run's work folder) from the real captures, through
the same loaders the parser tests use (``tests/sip/vectors.py`` and
``tests/h323/vectors.py``, tshark underneath), plus the RTP and RTCP datagrams of
``shared/vectors/rtp`` and the project's own dialplans.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import sys
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType

TESTS = Path(__file__).resolve().parent.parent
ROOT = TESTS.parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

from harness import VECTORS, tshark_output  # noqa: E402

from gateway.h323 import asn1, q931, tpkt  # noqa: E402
from gateway.h323.errors import H323ParseError  # noqa: E402
from gateway.sip.auth import DigestAuthenticator, answer_challenge  # noqa: E402

RUNNER = Path(__file__).resolve().with_name("run_target.py")
TARGET_NAMES = ("sip", "sdp", "q931", "h245", "ras", "tpkt", "rtp", "dialplan")
# Longest input per target: a SIP message over UDP stays under the MTU-ish 64 kB, but
# the seeds are a few kB and longer inputs only slow each run down.
MAX_LEN = {"sip": 8192, "sdp": 4096, "dialplan": 16384, "rtp": 2048}


def _load(name: str, path: Path) -> ModuleType:
    """A test helper module by its file, under a name no test folder shadows."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@functools.cache
def _sip_messages() -> tuple[bytes, ...]:
    module = _load("fuzz_sip_vectors", TESTS / "sip" / "vectors.py")
    return tuple(v.data for v in module.load_vectors())


@functools.cache
def _h323(kind: str) -> tuple[bytes, ...]:
    module = _load("fuzz_h323_vectors", TESTS / "h323" / "vectors.py")
    return tuple(v.data for v in module.pdus(kind))


def _h245_inside_q931() -> list[bytes]:
    """H.245 tunnelled in H.225.0 and fastStart proposals (OpenLogicalChannel)."""
    found: list[bytes] = []
    for data in _h323("q931"):
        try:
            user_user = q931.decode(data).user_user
            if user_user is None:
                continue
            pdu = asn1.decode_uuie(user_user)["h323-uu-pdu"]
        except H323ParseError:
            continue
        found += pdu.get("h245Control", [])
        body = pdu["h323-message-body"][1]
        found += body.get("fastStart", []) if isinstance(body, dict) else []
    return found


@functools.cache
def _rtp_datagrams() -> tuple[bytes, ...]:
    """UDP payloads tshark takes for RTP or RTCP, at most 150 per capture (they differ
    little from one packet to the next)."""
    out: list[bytes] = []
    for pcap in sorted((VECTORS / "rtp").glob("*.pcap*")):
        fields = tshark_output(
            *("-o", "rtp.heuristic_rtp:TRUE", "-Y", "rtp or rtcp"),
            *("-T", "fields", "-e", "udp.payload"),
            capture=pcap,
        )
        rows = [line for line in fields.decode().splitlines() if line]
        step = max(1, len(rows) // 150)
        out += [bytes.fromhex(row) for row in rows[::step]]
    return tuple(out)


def _digest_exchange() -> list[bytes]:
    """A 401 with the gateway's own challenges and a REGISTER answering one of them
    (RFC 3261 22.4, RFC 8760): the captures hold no digest exchange to start from."""
    auth = DigestAuthenticator("visio-relais", lambda user: "secret")
    challenges = auth.challenges()
    head = (
        "Via: SIP/2.0/UDP 127.0.0.9:5999;branch=z9hG4bKfuzz;rport\r\n"
        "From: <sip:kiosk@visio.example>;tag=f1\r\nTo: <sip:kiosk@visio.example>\r\n"
        "Call-ID: fuzz-digest@127.0.0.9\r\n"
    )
    response = "SIP/2.0 401 Unauthorized\r\n" + head + "CSeq: 1 REGISTER\r\n"
    response += "".join(f"WWW-Authenticate: {c}\r\n" for c in challenges)
    credentials = answer_challenge(
        challenges, method="REGISTER", uri="sip:visio.example", username="kiosk",
        password="secret", cnonce="0a4f113b",
    )  # fmt: skip
    request = "REGISTER sip:visio.example SIP/2.0\r\n" + head + "CSeq: 2 REGISTER\r\n"
    request += f"Contact: <sip:kiosk@127.0.0.9:5999>\r\nAuthorization: {credentials}\r\n"
    end = "Content-Length: 0\r\n\r\n"
    return [(response + end).encode(), (request + end).encode()]


def _sdp_bodies() -> list[bytes]:
    bodies = []
    for message in _sip_messages():
        _, _, body = message.partition(b"\r\n\r\n")
        if body.startswith(b"v=0"):
            bodies.append(body)
    return bodies


def seeds(target: str) -> list[bytes]:
    """The seed inputs of one target, from the shared captures."""
    if target == "sip":
        return [*_sip_messages(), *_digest_exchange()]
    if target == "sdp":
        return _sdp_bodies()
    if target == "q931":
        return list(_h323("q931"))
    if target == "ras":  # alone, and each with the next, as the gatekeeper met them
        ras = _h323("ras")
        return [*ras, *(b"\xff\xfe\xfd".join(ras[i : i + 2]) for i in range(len(ras) - 1))]
    if target == "h245":
        return [*_h323("h245"), *_h245_inside_q931()]
    if target == "tpkt":
        stream = [tpkt.encode(p) for p in (*_h323("q931"), *_h323("h245"))]
        overflow = VECTORS / "h323" / "ndpi-h323-overflow.pcap"
        bare = [b"\x03\x00\x00\x04"] if overflow.exists() else []
        return [b"".join(stream[i : i + 3]) for i in range(0, len(stream), 3)] + bare
    if target == "rtp":
        return list(_rtp_datagrams())
    if target == "dialplan":
        return [p.read_bytes() for p in sorted((ROOT / "dialplans").glob("*.yaml"))]
    raise KeyError(target)


def write_corpus(target: str, folder: Path) -> int:
    """Write the seeds of ``target`` into ``folder`` (one file each); return how many."""
    folder.mkdir(parents=True, exist_ok=True)
    data = seeds(target)
    if not data:
        raise FileNotFoundError(f"no seeds for {target} under {VECTORS}")
    for item in data:
        (folder / hashlib.sha1(item).hexdigest()).write_bytes(item)
    return len(data)


def fuzz_command(
    target: str,
    corpus: Path,
    artifacts: Path,
    *,
    runs: int | None = None,
    seconds: int | None = None,
    seed: int = 1,
    extra: Iterable[str] = (),
) -> list[str]:
    """The command running ``target`` over ``corpus`` (which it grows), crashes to
    ``artifacts``; bounded by ``runs`` inputs and/or ``seconds``."""
    cmd = [sys.executable, str(RUNNER), target, f"-seed={seed}", "-timeout=20"]
    cmd += [f"-artifact_prefix={artifacts}/", "-rss_limit_mb=2048", "-print_final_stats=1"]
    if target in MAX_LEN:
        cmd.append(f"-max_len={MAX_LEN[target]}")
    if runs is not None:
        cmd.append(f"-runs={runs}")
    if seconds is not None:
        cmd.append(f"-max_total_time={seconds}")
    return [*cmd, *extra, str(corpus)]
