"""Tests for gateway.sip.auth.answer_challenge: the UAC answering a 401/407 (RFC 3261 22.2)."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.sip.auth import (
    CHALLENGE_HEADER,
    CREDENTIALS_HEADER,
    AuthResult,
    DigestAuthenticator,
    answer_challenge,
    parse_challenge_params,
)

REALM = "station.caf.example"
USER, PASSWORD = "gw-caf", "pw of the gateway"
URI = "sip:caf-1@192.0.2.10:5060"


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def station(*algorithms: str) -> DigestAuthenticator:
    """The project's own server side, standing for a station that challenges us."""
    return DigestAuthenticator(
        REALM, {USER: PASSWORD}.get, algorithms=algorithms, clock=FakeClock()
    )


def answer(
    challenges: list[str], *, password: str = PASSWORD, cnonce: str | None = None, nc: int = 1
) -> str | None:
    return answer_challenge(
        challenges,
        method="INVITE",
        uri=URI,
        username=USER,
        password=password,
        cnonce=cnonce,
        nc=nc,
    )


# --- Round trips against our own server ------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["SHA-256", "MD5"])
def test_round_trip_with_each_algorithm(algorithm: str) -> None:
    server = station(algorithm)
    value = answer(server.challenges())
    assert value is not None
    params = parse_challenge_params(value)[1]
    assert params["algorithm"] == algorithm
    assert (params["uri"], params["qop"], params["nc"]) == (URI, "auth", "00000001")
    assert server.verify("INVITE", value) == AuthResult(ok=True, username=USER)


def test_strongest_algorithm_is_chosen_whatever_the_order() -> None:
    for order in (("SHA-256", "MD5"), ("MD5", "SHA-256")):
        server = station(*order)
        value = answer(server.challenges())
        assert value is not None
        assert parse_challenge_params(value)[1]["algorithm"] == "SHA-256"
        assert server.verify("INVITE", value).ok


def test_wrong_password_method_or_uri_is_refused_by_the_server() -> None:
    server = station("SHA-256")
    bad_password = answer(server.challenges(), password="guess")
    assert bad_password is not None
    assert server.verify("INVITE", bad_password).reason == "wrong response"
    value = answer(server.challenges())
    assert value is not None
    assert server.verify("BYE", value).reason == "wrong response"  # the method is hashed


def test_nonce_count_and_cnonce_are_used_as_given() -> None:
    server = station("MD5")
    challenge = server.challenges()
    value = answer(challenge, cnonce="c0ffee", nc=2)
    assert value is not None
    params = parse_challenge_params(value)[1]
    assert (params["cnonce"], params["nc"]) == ("c0ffee", "00000002")
    assert server.verify("INVITE", value).ok
    assert server.verify("INVITE", value).reason == "replayed nonce count"


def test_cnonce_is_fresh_when_not_given() -> None:
    challenges = station("SHA-256").challenges()
    first, second = answer(challenges), answer(challenges)
    assert first is not None and second is not None
    assert parse_challenge_params(first)[1]["cnonce"] != parse_challenge_params(second)[1]["cnonce"]


# --- RFC 7616 section 3.9.1 ------------------------------------------------------------------

RFC7616_NONCE = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
RFC7616_OPAQUE = "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"
RFC7616_CNONCE = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"
RFC7616_RESPONSES = {
    "MD5": "8ca523f5e9506fed4657c9700eebdbec",
    "SHA-256": "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
}


def rfc7616_challenge(algorithm: str) -> str:
    return (
        'Digest realm="http-auth@example.org", qop="auth, auth-int", '
        f'algorithm={algorithm}, nonce="{RFC7616_NONCE}", opaque="{RFC7616_OPAQUE}"'
    )


def rfc7616_answer(challenges: list[str]) -> dict[str, str]:
    value = answer_challenge(
        challenges,
        method="GET",
        uri="/dir/index.html",
        username="Mufasa",
        password="Circle of Life",
        cnonce=RFC7616_CNONCE,
        nc=1,
    )
    assert value is not None and value.startswith("Digest ")
    return parse_challenge_params(value)[1]


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256"])
def test_rfc7616_examples(algorithm: str) -> None:
    params = rfc7616_answer([rfc7616_challenge(algorithm)])
    assert params["response"] == RFC7616_RESPONSES[algorithm]
    assert params["algorithm"] == algorithm  # echoed
    assert params["opaque"] == RFC7616_OPAQUE  # echoed
    assert (params["qop"], params["nc"], params["cnonce"]) == ("auth", "00000001", RFC7616_CNONCE)


def test_rfc7616_both_challenges_give_the_sha256_answer() -> None:
    # The RFC's server sends both, SHA-256 first; the answer is the SHA-256 example.
    for order in (["SHA-256", "MD5"], ["MD5", "SHA-256"]):
        params = rfc7616_answer([rfc7616_challenge(a) for a in order])
        assert params["response"] == RFC7616_RESPONSES["SHA-256"]


# --- What cannot be answered ---------------------------------------------------------------


@pytest.mark.parametrize(
    "challenges",
    [
        [],
        ['Digest realm="r", nonce="n", algorithm=SHA-3000, qop="auth"'],
        ['Digest realm="r", nonce="n", algorithm=AKAv1-MD5, qop="auth"'],
        ['Basic realm="r"'],
        ['Digest realm="r", qop="auth"'],  # no nonce
        ['Digest realm="r", nonce="n", qop="auth-conf"'],
        ['garbage ,,, "unterminated'],
    ],
)
def test_nothing_answerable_gives_none(challenges: list[str]) -> None:
    assert answer(challenges) is None


def test_an_unknown_algorithm_beside_a_known_one_is_skipped() -> None:
    known = station("MD5").challenges()[0]
    unknown = 'Digest realm="r", nonce="x", algorithm=SHA-3000, qop="auth"'
    value = answer([unknown, 'Basic realm="r"', known])
    assert value is not None
    assert parse_challenge_params(value)[1]["nonce"] == parse_challenge_params(known)[1]["nonce"]


# --- RFC 2069 style: no qop ---------------------------------------------------------------------


@pytest.mark.parametrize(("algorithm", "hash_name"), [(None, "md5"), ("SHA-256", "sha256")])
def test_challenge_without_qop_gets_an_rfc2069_answer(
    algorithm: str | None, hash_name: str
) -> None:
    alg = f", algorithm={algorithm}" if algorithm else ""
    challenge = f'Digest realm="{REALM}", nonce="abc123", opaque="op"{alg}'
    value = answer([challenge], cnonce="unused", nc=5)
    assert value is not None
    params = parse_challenge_params(value)[1]

    def h(text: str) -> str:
        return hashlib.new(hash_name, text.encode()).hexdigest()

    # RFC 2069 2.1.2 (RFC 7616 3.4.1 without qop): H(H(A1) ":" nonce ":" H(A2)).
    expected = h(f"{h(f'{USER}:{REALM}:{PASSWORD}')}:abc123:{h(f'INVITE:{URI}')}")
    assert params["response"] == expected
    assert "qop" not in params and "nc" not in params and "cnonce" not in params
    assert params["opaque"] == "op"
    assert params.get("algorithm") == algorithm  # echoed only when the challenge had it


# --- Headers and robustness ------------------------------------------------------------------


def test_header_names_for_401_and_407() -> None:
    assert (CHALLENGE_HEADER[401], CREDENTIALS_HEADER[401]) == ("WWW-Authenticate", "Authorization")
    assert (CHALLENGE_HEADER[407], CREDENTIALS_HEADER[407]) == (
        "Proxy-Authenticate",
        "Proxy-Authorization",
    )


_PEER_TEXT = st.text(
    alphabet=st.one_of(
        st.characters(exclude_categories=()),
        st.sampled_from(list(' \t\r\n=,"\\')),
    ),
    max_size=60,
)


@settings(max_examples=300)
@given(st.lists(st.one_of(_PEER_TEXT, _PEER_TEXT.map(lambda t: "Digest " + t)), max_size=3))
def test_whatever_the_peer_sends_answer_never_raises(challenges: list[str]) -> None:
    value = answer(challenges)
    assert value is None or value.startswith("Digest ")
