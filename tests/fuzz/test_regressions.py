"""What the fuzzers found, each input kept as a literal (issue 13, acceptance 8).

Every entry was a crash of a ``targets.py`` harness: the decoder raised something other
than its own error type. Each test feeds the input (reduced by hand to the part that
mattered) straight to the decoder and checks that only the module's error comes out, at
the right place.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gateway.dialplan import DialplanError, load_dialplan
from gateway.h323 import q931
from gateway.h323.ras import Gatekeeper


def _load(tmp_path: Path, text: bytes) -> DialplanError:
    path = tmp_path / "fuzzed.yaml"
    path.write_bytes(text)
    with pytest.raises(DialplanError) as caught:
        load_dialplan(path, env={})
    return caught.value


def test_dialplan_date_that_is_no_date(tmp_path: Path) -> None:
    """The fuzzer turned ``to: 2027-01-01`` of a closure into ``2027-00-01``: it matches
    YAML 1.1's timestamp pattern, and PyYAML's constructor raised ValueError ("month must
    be in 1..12") out of the loader."""
    error = _load(
        tmp_path,
        b"version: 1\ndomain: visio.manche.example\n"
        b"closures:\n  - {from: 2026-12-24, to: 2027-00-01, reason: fin d'annee}\n",
    )
    assert error.problems[0].line == 4
    assert "month must be in 1..12" in str(error)


def test_dialplan_nested_too_deeply(tmp_path: Path) -> None:
    """Thousands of nested flow sequences: PyYAML's composer recurses once per level and
    raised RecursionError out of the loader."""
    error = _load(tmp_path, b"version: " + b"[" * 3000)
    assert "nested too deeply" in str(error)
    error = _load(tmp_path, b"a: " + b"[ " * 3000 + b"]" * 3000 + b"\n")
    assert "nested too deeply" in str(error)


def test_q931_element_0x7e_outside_codeset_0_round_trips() -> None:
    """The fuzzer found a SETUP whose locking shift to codeset 1 (Q.931 4.5.3) was
    followed by an element 0x7E: the decoder read it, rightly, with Q.931's one-octet
    length, and the encoder wrote it back with the two-octet length H.225.0 7.2.2 gives
    User-user in codeset 0 only, so what it wrote no longer decoded."""
    data = b"\x08\x02\x00\x01\x05\x91\x7e\x00"
    message = q931.decode(data)
    assert message.ies[1] == q931.RawIE(0x7E, b"", codeset=1)
    assert message.encode() == data
    assert q931.decode(message.encode()) == message
    # the same element in codeset 0 is User-user, with its two-octet length
    user_user = q931.decode(b"\x08\x02\x00\x01\x05\x7e\x00\x01\x05")
    assert user_user.user_user == b""
    assert user_user.encode() == b"\x08\x02\x00\x01\x05\x7e\x00\x01\x05"


# A registrationRequest whose genericData nests Content -> compound -> Content with an
# unknown CHOICE extension inside (443 octets, as the fuzzer wrote it).
RRQ_RECURSIVE_GENERIC_DATA = bytes.fromhex(
    "0e804693060008914a00060001000a2fd0cc06b801000a2fd0cc06b722c0820101000754616e6462"
    "6572670232353750820101000854616e6462657267c002400b003200300032003000330040006100"
    "6d002e0073006f006c018053cb60820101000754616e646265726702323537340f10300001804f4c"
    "00620064003000320030006200380030002d00360064003400312d000031003100650031002d0061"
    "003700660062002d003000300031003020660033005900660036003500610030005f003100370100"
    "0100010016180200001210b876c291c55211da01000000000000086d015020df8903596f0d0d0d0d"
    "0d0d0d0d525252525252525252525252525252525252525252525252525252525252525252525252"
    "5252525252525252525252525252525252525252520d0d1900969501530000000107000000000000"
    "0000002a00000000000000890303030303030303030303030203000000000000596f45199f2773c0"
    "a59274af00463c617373656e743e3c61730d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d"
    "0d4b00b46f0000001100000010002200000a2b000000000000000000000000000000000000000000"
    "000000"
)


# An H.245 message whose bounds check fails deep inside a recursive multiplex table
# (MultiplexElement holds a SEQUENCE OF MultiplexElement): 304 octets as written.
H245_RECURSIVE_MULTIPLEX = (
    bytes.fromhex("06d652c0f900000a0107ffff")
    + bytes([0x00]) * 123
    + bytes.fromhex("ff12ffff0007002e0a0106ffffff")
    + bytes([0xC5]) * 124
    + bytes.fromhex("ffffff5d")
    + bytes([0xFF]) * 12
    + bytes.fromhex("7e")
    + bytes([0xFF]) * 6
    + bytes.fromhex("02d7030000870108")
)


def _decoded_in_subprocess(tmp_path: Path, decoder: str, data: bytes) -> str:
    """Decode in a child, so that a hang fails the test instead of freezing the run."""
    script = tmp_path / "decode.py"
    script.write_text(
        "import sys\n"
        "from gateway.h323 import asn1\n"
        "from gateway.h323.errors import H323ParseError\n"
        "try:\n"
        f"    asn1.{decoder}(bytes.fromhex(sys.argv[1]))\n"
        "except H323ParseError as exc:\n"
        "    print('refused:', exc)\n"
    )
    done = subprocess.run(
        [sys.executable, str(script), data.hex()],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_h245_bounds_error_inside_a_recursive_type_ends(tmp_path: Path) -> None:
    """The same endless walk of pycrate's parent links, reached from its bounds check
    (a repeatCount out of its constraint) in H.245's recursive MultiplexElement, after
    earlier inputs had left those links in a cycle: a decode that fails half-way never
    puts the parents back. The cycle is made here by hand, in a child process (pycrate's
    type objects are global), then the fuzzer's input is decoded there."""
    script = tmp_path / "cycle.py"
    script.write_text(
        "import sys\n"
        "from pycrate_asn1dir import H245\n"
        "from gateway.h323 import asn1\n"
        "from gateway.h323.errors import H323ParseError\n"
        "element = H245.MULTIMEDIA_SYSTEM_CONTROL.MultiplexElement\n"
        "choice = element._cont['type']\n"
        "items = choice._cont['subElementList']\n"
        "element._parent, choice._parent, items._parent = items, element, choice\n"
        "print(items._cont.fullname())\n"
        "try:\n"
        "    asn1.decode_h245(bytes.fromhex(sys.argv[1]))\n"
        "except H323ParseError as exc:\n"
        "    print('refused:', exc)\n"
    )
    done = subprocess.run(
        [sys.executable, str(script), H245_RECURSIVE_MULTIPLEX.hex()],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 0, done.stderr[-2000:]
    name, refusal = done.stdout.splitlines()
    assert name.endswith("MultiplexElement.type.subElementList._item_"), name
    assert refusal.startswith("refused: invalid MultimediaSystemControlMessage"), refusal


def test_ras_unknown_extension_inside_a_recursive_type_ends(tmp_path: Path) -> None:
    """The fuzzer's RAS datagram that hung the decoder: pycrate names an object for a
    log line by walking its parents, and in H.225.0's recursive ``Content`` decoding
    makes those links a cycle; the walk never ended and took all memory."""
    out = _decoded_in_subprocess(tmp_path, "decode_ras", RRQ_RECURSIVE_GENERIC_DATA)
    assert out.startswith("refused: invalid RasMessage"), out
    # and the gatekeeper takes it as any malformed datagram
    gk = Gatekeeper(("127.0.0.1", 1719), ("127.0.0.1", 1720))
    gk.receive(RRQ_RECURSIVE_GENERIC_DATA, ("127.0.0.2", 1719), 0.0)
    assert gk.counters.received == 1 and not gk.events()
