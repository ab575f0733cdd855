"""Tests for gateway.sip.auth: SIP Digest authentication (RFC 3261 22, RFC 7616, RFC 8760)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.sip.auth import (
    AuthParseError,
    AuthResult,
    DigestAuthenticator,
    build_authorization,
    choose_challenge,
    parse_challenge_params,
)

REALM = "visio-relais.example"
USERS = {"kiosk-017": "s3cret pass", "station-caf": 'quo"te\\slash', "élodie": "mot-de-passe"}
REGISTRAR_URI = "sip:visio-relais.example"


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make_auth(clock: FakeClock | None = None, **kwargs: Any) -> DigestAuthenticator:
    return DigestAuthenticator(
        REALM,
        USERS.get,
        clock=clock or FakeClock(),
        **kwargs,
    )


def answer(
    challenge: str,
    *,
    user: str = "kiosk-017",
    password: str | None = None,
    nc: int = 1,
    method: str = "REGISTER",
    cnonce: str = "0a4f113b",
) -> str:
    return build_authorization(
        challenge,
        method=method,
        uri=REGISTRAR_URI,
        username=user,
        password=USERS[user] if password is None else password,
        cnonce=cnonce,
        nc=nc,
    )


def nonce_of(challenge: str) -> str:
    return parse_challenge_params(challenge)[1]["nonce"]


# --- RFC 7616 section 3.9.1 and RFC 2617 section 3.5 test vectors -------------------------

RFC7616_NONCE = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
RFC7616_OPAQUE = "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"
RFC7616_CNONCE = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"


def rfc7616_challenge(algorithm: str) -> str:
    # Folded over several lines exactly as the RFC prints it.
    return (
        "Digest\r\n"
        '       realm="http-auth@example.org",\r\n'
        '       qop="auth, auth-int",\r\n'
        f"       algorithm={algorithm},\r\n"
        f'       nonce="{RFC7616_NONCE}",\r\n'
        f'       opaque="{RFC7616_OPAQUE}"'
    )


@pytest.mark.parametrize(
    ("algorithm", "expected"),
    [
        ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
        ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
    ],
)
def test_rfc7616_example_responses(algorithm: str, expected: str) -> None:
    value = build_authorization(
        rfc7616_challenge(algorithm),
        method="GET",
        uri="/dir/index.html",
        username="Mufasa",
        password="Circle of Life",
        cnonce=RFC7616_CNONCE,
        nc=1,
    )
    scheme, params = parse_challenge_params(value)
    assert scheme == "Digest"
    assert params == {
        "username": "Mufasa",
        "realm": "http-auth@example.org",
        "uri": "/dir/index.html",
        "algorithm": algorithm,
        "nonce": RFC7616_NONCE,
        "nc": "00000001",
        "cnonce": RFC7616_CNONCE,
        "qop": "auth",
        "response": expected,
        "opaque": RFC7616_OPAQUE,
    }


def test_rfc2617_example_response_without_algorithm_parameter() -> None:
    challenge = (
        'Digest realm="testrealm@host.com", qop="auth,auth-int", '
        'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", '
        'opaque="5ccc069c403ebaf9f0171e9517f40e41"'
    )
    value = build_authorization(
        challenge,
        method="GET",
        uri="/dir/index.html",
        username="Mufasa",
        password="Circle Of Life",
        cnonce="0a4f113b",
    )
    params = parse_challenge_params(value)[1]
    assert params["response"] == "6629fae49393a05397450978507c4ef1"
    # No algorithm in the challenge: none in the answer either (MD5 is implied).
    assert "algorithm" not in params


# --- Header value parsing ----------------------------------------------------------------


def test_parse_quoted_commas_escaped_quotes_spaces_and_case() -> None:
    scheme, params = parse_challenge_params(
        'digest REALM = "a, b \\"c\\" \\\\d" ,Nonce="x,y" ,  QoP="auth,auth-int",'
        "algorithm=  SHA-256,stale=TRUE"
    )
    assert scheme == "Digest"
    assert params == {
        "realm": 'a, b "c" \\d',
        "nonce": "x,y",
        "qop": "auth,auth-int",
        "algorithm": "SHA-256",
        "stale": "TRUE",
    }


def test_parse_tolerates_empty_list_elements_tabs_and_folding() -> None:
    _, params = parse_challenge_params('Digest ,realm="r",,\t nonce="n" ,\r\n\t opaque=""')
    assert params == {"realm": "r", "nonce": "n", "opaque": ""}


def test_parse_keeps_non_ascii_and_unquoted_base64() -> None:
    _, params = parse_challenge_params('Digest realm="mairie-de-Saint-Lô", nonce=ab+/c==')
    assert params == {"realm": "mairie-de-Saint-Lô", "nonce": "ab+/c=="}


def test_parse_other_scheme_is_returned_as_written() -> None:
    assert parse_challenge_params('Bearer realm="x"') == ("Bearer", {"realm": "x"})


@pytest.mark.parametrize(
    "value",
    [
        "",
        "   ",
        '"Digest" realm="r"',
        'Digest realm="r" nonce="n"',  # missing comma
        'Digest realm="unterminated',
        'Digest realm="r", realm="s"',  # duplicate
        'Digest realm="r", REALM="s"',  # duplicate, differing case
        "Digest realm=",
        'Digest realm=,nonce="n"',
        "Digest realm",
        'Digest ="r"',
        'Digest realm="r\x01"',
        'Digest realm="r\\\x01"',
        'Digest realm="r"\r\nnonce="n"',  # bare line break, not a fold
        'Digest\trealm="r"\x00',
        'Digest,realm="r"',
        "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==",  # token68
        'Digest realm="r"x',
    ],
)
def test_parse_rejects_malformed_values(value: str) -> None:
    with pytest.raises(AuthParseError):
        parse_challenge_params(value)


def render_params(scheme: str, params: dict[str, str]) -> str:
    escaped = (v.replace("\\", "\\\\").replace('"', '\\"') for v in params.values())
    return scheme + " " + ", ".join(f'{k}="{v}"' for k, v in zip(params, escaped, strict=True))


_PARAM_NAME = st.from_regex(r"[A-Za-z][A-Za-z0-9\-_]{0,11}", fullmatch=True)
_QUOTABLE = st.text(
    alphabet=st.characters(exclude_categories=("Cc", "Cs"), include_characters="\t"),
    max_size=20,
)


@settings(max_examples=200)
@given(st.dictionaries(_PARAM_NAME.map(str.lower), _QUOTABLE, min_size=1, max_size=6))
def test_parse_round_trips_rendered_params(params: dict[str, str]) -> None:
    assert parse_challenge_params(render_params("Digest", params)) == ("Digest", params)


_ANY_TEXT = st.text(
    alphabet=st.one_of(
        st.characters(exclude_categories=()),
        st.sampled_from(list(' \t\r\n=,"\\')),
        st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF, exclude_categories=()),
    ),
    max_size=80,
)


@settings(max_examples=300)
@given(st.one_of(_ANY_TEXT, _ANY_TEXT.map(lambda t: "Digest " + t)))
def test_fuzz_parser_and_client_raise_only_auth_parse_error(text: str) -> None:
    try:
        _, params = parse_challenge_params(text)
    except AuthParseError:
        pass
    else:
        assert all(k == k.lower() for k in params)
    try:
        value = build_authorization(text, method="INVITE", uri="sip:x", username="u", password="p")
    except AuthParseError:
        pass
    else:
        assert value.startswith("Digest ")
    assert choose_challenge([text]) in (None, text)


# --- Server: round trips --------------------------------------------------------------------


def test_challenges_offer_sha256_first_then_md5_with_qop_auth() -> None:
    challenges = make_auth().challenges()
    assert [parse_challenge_params(c)[1]["algorithm"] for c in challenges] == ["SHA-256", "MD5"]
    for value in challenges:
        scheme, params = parse_challenge_params(value)
        assert scheme == "Digest"
        assert params["realm"] == REALM
        assert params["qop"] == "auth"
        assert "stale" not in params
    assert all("stale=true" in c for c in make_auth().challenges(stale=True))


def test_nonces_differ_even_within_one_clock_tick() -> None:
    auth = make_auth()
    assert nonce_of(auth.challenges()[0]) != nonce_of(auth.challenges()[0])


@pytest.mark.parametrize("index", [0, 1], ids=["SHA-256", "MD5"])
@pytest.mark.parametrize("user", sorted(USERS))
def test_round_trip_for_each_offered_algorithm(index: int, user: str) -> None:
    auth = make_auth()
    challenge = auth.challenges()[index]
    result = auth.verify("REGISTER", answer(challenge, user=user))
    assert result == AuthResult(ok=True, username=user)


@pytest.mark.parametrize("algorithm", ["MD5-sess", "SHA-256-sess", "SHA-512-256"])
def test_round_trip_other_algorithms_when_configured(algorithm: str) -> None:
    auth = make_auth(algorithms=(algorithm,))
    (challenge,) = auth.challenges()
    assert auth.verify("INVITE", answer(challenge, method="INVITE")).ok


def test_method_is_part_of_the_digest() -> None:
    auth = make_auth()
    value = answer(auth.challenges()[0], method="INVITE")
    assert auth.verify("REGISTER", value).reason == "wrong response"


def test_constructor_refuses_unknown_algorithm_and_header_injection() -> None:
    with pytest.raises(ValueError, match="unsupported"):
        make_auth(algorithms=("SHA-1",))
    with pytest.raises(ValueError):
        DigestAuthenticator("evil\r\nVia: x", USERS.get)


# --- Server: refusals ------------------------------------------------------------------


def test_wrong_password() -> None:
    auth = make_auth()
    result = auth.verify("REGISTER", answer(auth.challenges()[0], password="guess"))
    assert result == AuthResult(ok=False, username="kiosk-017", reason="wrong response")


def test_unknown_user() -> None:
    auth = make_auth()
    result = auth.verify(
        "REGISTER",
        answer(auth.challenges()[0], user="kiosk-017", password="x").replace(
            'username="kiosk-017"', 'username="intruder"'
        ),
    )
    assert result == AuthResult(ok=False, username="intruder", reason="unknown user")


def test_wrong_realm() -> None:
    auth = make_auth()
    challenge = auth.challenges()[0].replace(REALM, "other.example")
    result = auth.verify("REGISTER", answer(challenge))
    assert (result.ok, result.reason) == (False, "wrong realm")


def test_tampered_nonce() -> None:
    auth = make_auth()
    challenge = auth.challenges()[0]
    nonce = nonce_of(challenge)
    flipped = ("A" if nonce[10] != "A" else "B").join((nonce[:10], nonce[11:]))
    result = auth.verify("REGISTER", answer(challenge.replace(nonce, flipped)))
    assert (result.ok, result.stale, result.reason) == (False, False, "invalid nonce")


@pytest.mark.parametrize("nonce", ["", "not base64!", "QUJD", "é", "\udcff"])
def test_garbage_nonce(nonce: str) -> None:
    auth = make_auth()
    challenge = re.sub(r'nonce="[^"]*"', f'nonce="{nonce}"', auth.challenges()[0])
    result = auth.verify("REGISTER", answer(challenge))
    assert (result.ok, result.reason) == (False, "invalid nonce")


def test_nonce_of_another_key_or_realm_is_refused() -> None:
    key = b"k" * 32
    auth = make_auth(key=key)
    other_key = make_auth(key=b"j" * 32)
    other_realm = DigestAuthenticator("elsewhere.example", USERS.get, key=key, clock=FakeClock())
    for foreign in (other_key, other_realm):
        challenge = auth.challenges()[0]
        forged = challenge.replace(nonce_of(challenge), nonce_of(foreign.challenges()[0]))
        assert auth.verify("REGISTER", answer(forged)).reason == "invalid nonce"


def test_shared_key_lets_a_second_process_accept_the_nonce() -> None:
    clock = FakeClock()
    first, second = make_auth(clock, key=b"k" * 32), make_auth(clock, key=b"k" * 32)
    assert second.verify("REGISTER", answer(first.challenges()[0])).ok


def test_algorithm_not_offered() -> None:
    auth = make_auth(algorithms=("SHA-256",))
    challenge = auth.challenges()[0].replace("SHA-256", "MD5")
    result = auth.verify("REGISTER", answer(challenge))
    assert (result.ok, result.reason) == (False, "algorithm not offered")


def test_missing_algorithm_means_md5() -> None:
    auth = make_auth(algorithms=("SHA-256",))
    challenge = auth.challenges()[0].replace("algorithm=SHA-256, ", "")
    assert auth.verify("REGISTER", answer(challenge)).reason == "algorithm not offered"
    md5 = make_auth(algorithms=("MD5",))
    challenge = md5.challenges()[0].replace("algorithm=MD5, ", "")
    assert md5.verify("REGISTER", answer(challenge)).ok


def test_rfc2069_response_without_qop_is_refused() -> None:
    auth = make_auth(algorithms=("MD5",))
    challenge = auth.challenges()[0].replace(', qop="auth"', "")
    value = answer(challenge)
    assert "qop" not in parse_challenge_params(value)[1]
    result = auth.verify("REGISTER", value)
    assert (result.ok, result.reason) == (
        False,
        "qop missing (RFC 2069 responses are not accepted)",
    )


def test_qop_auth_int_is_refused_since_not_offered() -> None:
    auth = make_auth()
    challenge = auth.challenges()[0].replace('qop="auth"', 'qop="auth-int"')
    value = answer(challenge)
    assert "qop=auth-int" in value
    assert auth.verify("REGISTER", value).reason == "qop not offered"


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (lambda v: v.replace("Digest ", "Basic ", 1), "not a Digest credential"),
        (lambda v: re.sub(r', uri="[^"]*"', "", v), "missing uri"),
        (lambda v: re.sub(r', response="[^"]*"', "", v), "missing response"),
        (lambda v: re.sub(r'username="[^"]*", ', "", v), "missing username"),
        (lambda v: re.sub(r', cnonce="[^"]*"', "", v), "missing cnonce"),
        (lambda v: v.replace("nc=00000001", "nc=1"), "bad nc"),
        (lambda v: v.replace("nc=00000001", "nc=00000000"), "bad nc"),
        (lambda v: v.replace("nc=00000001", "nc=0000000g"), "bad nc"),
        (lambda v: v + ", nonce=x", "malformed header"),
        (lambda v: v[:-3], "bad nc"),
    ],
)
def test_structural_refusals(edit: Callable[[str], str], reason: str) -> None:
    auth = make_auth()
    value = edit(answer(auth.challenges()[0]))
    result = auth.verify("REGISTER", value)
    assert (result.ok, result.reason) == (False, reason)


def test_response_is_compared_case_insensitively_and_non_ascii_is_refused() -> None:
    auth = make_auth()
    value = answer(auth.challenges()[0])
    upper = re.sub(r'response="([0-9a-f]+)"', lambda m: f'response="{m[1].upper()}"', value)
    assert auth.verify("REGISTER", upper).ok
    value = answer(auth.challenges()[0])
    mangled = re.sub(r'response="[0-9a-f]', 'response="é', value)
    assert auth.verify("REGISTER", mangled).reason == "wrong response"


def test_reasons_never_reveal_password_or_expected_response() -> None:
    auth = make_auth()
    results: list[AuthResult] = []
    for password in ("guess", USERS["kiosk-017"]):
        good = answer(auth.challenges()[0])
        expected = parse_challenge_params(good)[1]["response"]
        bad = answer(auth.challenges()[0], password=password).replace("kiosk", "KIOSK")
        for value in (good, good, bad, good.replace(REALM, "x")):
            results.append(auth.verify("REGISTER", value))
        assert all(expected not in r.reason for r in results)
    assert all(USERS["kiosk-017"] not in r.reason for r in results)
    assert any(r.ok for r in results) and any(not r.ok for r in results)


# --- Server: freshness and replay ---------------------------------------------------------


def test_stale_nonce_after_ttl_only_when_digest_is_right() -> None:
    clock = FakeClock()
    auth = make_auth(clock, nonce_ttl=300.0)
    challenge = auth.challenges()[0]
    clock.now += 300.0
    assert auth.verify("REGISTER", answer(challenge)).ok  # exactly at the ttl: still fresh
    clock.now += 0.5
    result = auth.verify("REGISTER", answer(challenge, nc=2))
    assert result == AuthResult(ok=False, username="kiosk-017", stale=True, reason="stale nonce")
    wrong = auth.verify("REGISTER", answer(challenge, nc=3, password="guess"))
    assert (wrong.stale, wrong.reason) == (False, "wrong response")
    # The client retries silently with the new nonce of a stale=true challenge.
    fresh = auth.challenges(stale=True)[0]
    assert auth.verify("REGISTER", answer(fresh)).ok


def test_nonce_from_the_future_is_stale() -> None:
    clock = FakeClock(5000.0)
    issuer = make_auth(clock, key=b"k" * 32)
    challenge = issuer.challenges()[0]
    other = make_auth(FakeClock(10.0), key=b"k" * 32)  # another process, clock behind
    assert other.verify("REGISTER", answer(challenge)).stale


def test_replayed_nc_is_refused() -> None:
    auth = make_auth()
    challenge = auth.challenges()[0]
    assert auth.verify("REGISTER", answer(challenge, nc=1)).ok
    replay = auth.verify("REGISTER", answer(challenge, nc=1))
    assert replay == AuthResult(ok=False, username="kiosk-017", reason="replayed nonce count")
    assert auth.verify("REGISTER", answer(challenge, nc=2)).ok
    assert auth.verify("REGISTER", answer(challenge, nc=2)).reason == "replayed nonce count"
    assert auth.verify("REGISTER", answer(challenge, nc=1)).reason == "replayed nonce count"
    assert auth.verify("REGISTER", answer(challenge, nc=7)).ok  # gaps are allowed


def test_failed_attempts_do_not_consume_nonce_counts() -> None:
    auth = make_auth()
    challenge = auth.challenges()[0]
    assert not auth.verify("REGISTER", answer(challenge, password="guess")).ok
    assert auth.verify("REGISTER", answer(challenge)).ok
    assert auth.tracked_nonces == 1


def test_expired_records_are_dropped() -> None:
    clock = FakeClock()
    auth = make_auth(clock, nonce_ttl=60.0)
    for _ in range(5):
        assert auth.verify("REGISTER", answer(auth.challenges()[0])).ok
        clock.now += 1.0
    assert auth.tracked_nonces == 5
    clock.now += 58.5  # the first nonce (issued at t=0) is now 63.5 s old, the last 59.5 s
    auth.challenges()
    assert auth.tracked_nonces == 1
    clock.now += 1.0
    auth.challenges()
    assert auth.tracked_nonces == 0


def test_table_cap_evicts_oldest_and_refuses_its_nonce_as_stale() -> None:
    clock = FakeClock()
    auth = make_auth(clock, max_tracked_nonces=2)
    challenges = []
    for _ in range(3):
        challenges.append(auth.challenges()[0])
        assert auth.verify("REGISTER", answer(challenges[-1])).ok
        clock.now += 1.0
    assert auth.tracked_nonces == 2
    # Without its record a replay of the evicted nonce could not be detected: refuse it.
    evicted = auth.verify("REGISTER", answer(challenges[0], nc=1))
    assert (evicted.ok, evicted.stale, evicted.reason) == (False, True, "nonce no longer tracked")
    assert auth.verify("REGISTER", answer(challenges[1], nc=2)).ok
    assert auth.verify("REGISTER", answer(challenges[2], nc=1)).reason == "replayed nonce count"
    # A nonce issued before the eviction but never used is refused too (stale, not invalid).
    clock.now -= 10.0
    older = auth.challenges()[0]
    clock.now += 10.0
    assert auth.verify("REGISTER", answer(older)).reason == "nonce no longer tracked"


# --- Server: fuzzing ---------------------------------------------------------------------

_DIGEST_NAMES = [
    "username",
    "realm",
    "nonce",
    "uri",
    "response",
    "algorithm",
    "qop",
    "nc",
    "cnonce",
    "opaque",
]


@settings(max_examples=300)
@given(st.one_of(_ANY_TEXT, _ANY_TEXT.map(lambda t: "Digest " + t)))
def test_fuzz_verify_random_text_never_raises(text: str) -> None:
    result = make_auth().verify("REGISTER", text)
    assert isinstance(result, AuthResult)
    assert not result.ok


@settings(max_examples=300)
@given(
    st.dictionaries(
        st.sampled_from(_DIGEST_NAMES),
        _ANY_TEXT.filter(lambda t: not any(c in t for c in "\r\n\x00")),
        max_size=10,
    )
)
def test_fuzz_verify_structured_params_never_raises(params: dict[str, str]) -> None:
    result = make_auth().verify("REGISTER", render_params("Digest", params))
    assert not result.ok


@settings(max_examples=200)
@given(st.data())
def test_fuzz_verify_mutated_valid_header_never_raises(data: st.DataObject) -> None:
    auth = make_auth()
    value = answer(auth.challenges()[0])
    pos = data.draw(st.integers(0, len(value) - 1))
    cut = data.draw(st.integers(0, 3))
    insert = data.draw(_ANY_TEXT.filter(lambda t: len(t) < 4))
    result = auth.verify("REGISTER", value[:pos] + insert + value[pos + cut :])
    assert isinstance(result, AuthResult)


@settings(max_examples=100)
@given(
    user=st.text(alphabet=st.characters(exclude_categories=("Cc", "Cs")), min_size=1, max_size=12),
    password=st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=12),
    uri=st.text(alphabet=st.characters(exclude_categories=("Cc", "Cs")), min_size=1, max_size=20),
    index=st.integers(0, 1),
)
def test_round_trip_any_credentials(user: str, password: str, uri: str, index: int) -> None:
    auth = DigestAuthenticator(REALM, {user: password}.get, clock=FakeClock())
    value = build_authorization(
        auth.challenges()[index], method="INVITE", uri=uri, username=user, password=password
    )
    assert auth.verify("INVITE", value) == AuthResult(ok=True, username=user)


def test_surrogate_escaped_latin1_username_round_trips() -> None:
    # A Latin-1 username decoded from the wire with surrogateescape: hashed as its octets.
    user = b"ren\xe9".decode("utf-8", "surrogateescape")
    auth = DigestAuthenticator(REALM, {user: "pw"}.get, clock=FakeClock())
    value = build_authorization(
        auth.challenges()[0], method="REGISTER", uri="sip:x", username=user, password="pw"
    )
    assert auth.verify("REGISTER", value).ok
    lone = auth.verify("REGISTER", value.replace(user, "\ud800"))
    assert not lone.ok


# --- Client -------------------------------------------------------------------------------


def test_client_echoes_opaque_and_generates_cnonce() -> None:
    challenge = 'Digest realm="r", nonce="n", opaque="o\\"paque", qop="auth", algorithm=MD5'
    first = parse_challenge_params(
        build_authorization(challenge, method="INVITE", uri="sip:a@b", username="u", password="p")
    )[1]
    second = parse_challenge_params(
        build_authorization(challenge, method="INVITE", uri="sip:a@b", username="u", password="p")
    )[1]
    assert first["opaque"] == 'o"paque'
    assert len(first["cnonce"]) >= 16 and first["cnonce"] != second["cnonce"]
    assert first["response"] != second["response"]


def test_client_nc_is_eight_hex_digits() -> None:
    challenge = 'Digest realm="r", nonce="n", qop="auth"'
    value = build_authorization(
        challenge, method="INVITE", uri="sip:a", username="u", password="p", nc=0x1F
    )
    assert parse_challenge_params(value)[1]["nc"] == "0000001f"
    with pytest.raises(ValueError):
        build_authorization(
            challenge, method="INVITE", uri="sip:a", username="u", password="p", nc=0
        )


@pytest.mark.parametrize(
    "challenge",
    [
        'Digest nonce="n", qop="auth"',
        'Digest realm="r", qop="auth"',
        'Digest realm="r", nonce="n", algorithm=SHA-1',
        'Digest realm="r", nonce="n", qop="auth-conf"',
        'Digest realm="r", nonce="n", algorithm=MD5-sess',
        'Basic realm="r"',
    ],
)
def test_client_refuses_unanswerable_challenges(challenge: str) -> None:
    with pytest.raises(AuthParseError):
        build_authorization(challenge, method="INVITE", uri="sip:a", username="u", password="p")
    assert choose_challenge([challenge]) is None


def test_client_refuses_header_injection_in_its_own_values() -> None:
    challenge = 'Digest realm="r", nonce="n", qop="auth"'
    with pytest.raises(ValueError):
        build_authorization(
            challenge, method="INVITE", uri="sip:a\r\nX: y", username="u", password="p"
        )


def test_choose_challenge_prefers_strength_then_server_order() -> None:
    md5 = 'Digest realm="r", nonce="1", algorithm=MD5, qop="auth"'
    md5_bis = 'Digest realm="r", nonce="1b", qop="auth"'
    sha = 'Digest realm="r", nonce="2", algorithm=SHA-256, qop="auth"'
    sha_sess = 'Digest realm="r", nonce="3", algorithm=SHA-256-sess, qop="auth"'
    sha512 = 'Digest realm="r", nonce="4", algorithm=SHA-512-256, qop="auth"'
    unknown = 'Digest realm="r", nonce="5", algorithm=SHA-3000, qop="auth"'
    assert choose_challenge([md5, sha]) == sha
    assert choose_challenge([sha_sess, sha, md5]) == sha
    assert choose_challenge([md5, md5_bis]) == md5
    assert choose_challenge([unknown, "garbage", md5, sha512, sha]) == sha512
    assert choose_challenge([unknown, 'Digest realm="r"']) is None
    assert choose_challenge([]) is None


def test_choose_challenge_picks_sha256_from_our_own_server() -> None:
    challenges = make_auth().challenges()
    chosen = choose_challenge(list(reversed(challenges)))
    assert chosen == challenges[0]


# --- Interop with a real implementation: sippy's digest code ---------------------------------
# sippy (the Python B2BUA installed in the venv) has its own Digest computation and its own
# header parsers; checking against them guards against a shared misreading of the RFCs.


@pytest.mark.parametrize(
    ("algorithm", "qop", "body"),
    [
        ("MD5", "auth", b""),
        ("MD5", None, b""),
        ("MD5-sess", "auth", b""),
        ("SHA-256", "auth", b""),
        ("SHA-256", None, b""),
        ("SHA-256-sess", "auth", b""),
        ("SHA-512-256", "auth", b""),
        ("SHA-512-256-sess", "auth", b""),
        ("MD5", "auth-int", b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\n"),
        ("SHA-256", "auth-int", b""),
    ],
)
def test_responses_match_sippy(algorithm: str, qop: str | None, body: bytes) -> None:
    from sippy.SipAuthorization import DigestCalcHA1, DigestCalcResponse  # type: ignore[import-untyped, unused-ignore]

    nonce, cnonce, uri = "bm9uY2UtMTIz", "c0ffee42", "sip:caf@visio-relais.example"
    qop_param = f', qop="{qop}"' if qop else ""
    challenge = f'Digest realm="{REALM}", nonce="{nonce}", algorithm={algorithm}{qop_param}'
    ours = build_authorization(
        challenge,
        method="INVITE",
        uri=uri,
        username="kiosk-017",
        password="s3cret pass",
        cnonce=cnonce,
        nc=3,
        body=body,
    )
    ha1 = DigestCalcHA1(algorithm, "kiosk-017", REALM, "s3cret pass", nonce, cnonce)
    theirs = DigestCalcResponse(
        algorithm,
        ha1,
        nonce,
        "00000003" if qop else None,
        cnonce,
        qop,
        "INVITE",
        uri,
        body.decode(),
    )
    assert parse_challenge_params(ours)[1]["response"] == theirs


def test_sippy_client_answers_our_challenge() -> None:
    from sippy.SipWWWAuthenticate import SipWWWAuthenticate  # type: ignore[import-untyped, unused-ignore]

    auth = make_auth()
    for index in (0, 1):
        # One fresh challenge set per answer: both values of a set share a nonce (and so a
        # replay counter), and a real client answers only one of them.
        challenge = auth.challenges()[index]
        theirs = SipWWWAuthenticate(body="Digest " + challenge.split(" ", 1)[1])
        theirs.parse()
        supported, qop = theirs.supportedAlgorithm()
        assert supported and qop == "auth"
        credentials = theirs.genAuthHF(
            "station-caf", USERS["station-caf"], "REGISTER", REGISTRAR_URI, qop=qop
        )
        assert auth.verify("REGISTER", str(credentials)) == AuthResult(
            ok=True, username="station-caf"
        )


def test_sippy_parses_our_authorization() -> None:
    from sippy.SipAuthorization import (  # type: ignore[import-untyped, unused-ignore]
        DigestCalcHA1,
        DigestCalcResponse,
        SipAuthorization,
    )

    auth = make_auth()
    value = answer(auth.challenges()[0])
    theirs = SipAuthorization(body=value)
    theirs.parse()
    assert (theirs.username, theirs.realm, theirs.uri, theirs.qop, theirs.nc) == (
        "kiosk-017",
        REALM,
        REGISTRAR_URI,
        "auth",
        "00000001",
    )
    ha1 = DigestCalcHA1(
        theirs.algorithm,
        theirs.username,
        theirs.realm,
        USERS["kiosk-017"],
        theirs.nonce,
        theirs.cnonce,
    )
    assert theirs.response == DigestCalcResponse(
        theirs.algorithm,
        ha1,
        theirs.nonce,
        theirs.nc,
        theirs.cnonce,
        theirs.qop,
        "REGISTER",
        theirs.uri,
        None,
    )
