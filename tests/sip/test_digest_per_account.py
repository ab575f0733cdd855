"""Digest per login (RFC 8760, RFC 7616 3.7): own algorithms, two answers, unanswered challenges.

Sans-IO: :class:`DigestAuthenticator` with a per-login algorithm list, its choice among
several Authorization values of one request, and :class:`ChallengeWatch` on a fake clock.
"""

from __future__ import annotations

from gateway.sip.auth import (
    ChallengeWatch,
    DigestAuthenticator,
    build_authorization,
    parse_challenge_params,
)

PASSWORDS = {"kiosk-legacy": "pw-legacy", "kiosk-modern": "pw-modern", "station-sha": "pw-sha"}
OWN = {"kiosk-legacy": ("MD5",), "station-sha": ("SHA-256",)}


def authenticator() -> DigestAuthenticator:
    return DigestAuthenticator(
        "visio", PASSWORDS.get, algorithms=("SHA-256", "MD5"), algorithms_for=OWN.get
    )


def algorithms(values: list[str]) -> list[str]:
    return [parse_challenge_params(v)[1]["algorithm"] for v in values]


def answer(challenge: str, user: str, *, nc: int = 1, password: str | None = None) -> str:
    return build_authorization(
        challenge,
        method="REGISTER",
        uri="sip:visio.example",
        username=user,
        password=password if password is not None else PASSWORDS[user],
        nc=nc,
    )


def test_each_login_is_challenged_with_its_own_algorithms() -> None:
    auth = authenticator()
    assert algorithms(auth.challenges(username="kiosk-legacy")) == ["MD5"]
    assert algorithms(auth.challenges(username="station-sha")) == ["SHA-256"]
    # Default, and the same for a name no account has (no enumeration by challenge).
    assert algorithms(auth.challenges(username="kiosk-modern")) == ["SHA-256", "MD5"]
    assert algorithms(auth.challenges(username="nobody")) == ["SHA-256", "MD5"]
    assert algorithms(auth.challenges()) == ["SHA-256", "MD5"]
    assert auth.algorithms_of("kiosk-legacy") == ("MD5",)


def test_an_algorithm_outside_the_logins_list_is_refused() -> None:
    auth = authenticator()
    # By the algorithm parameter: the base64 nonce may hold "MD5" itself (it did once).
    values = auth.challenges()
    by_algorithm = dict(zip(algorithms(values), values, strict=True))
    md5, sha = by_algorithm["MD5"], by_algorithm["SHA-256"]
    # One nonce for every challenge of a response: each answer counts on it (nc).
    assert auth.verify("REGISTER", answer(md5, "kiosk-legacy", nc=1)).ok
    assert auth.verify("REGISTER", answer(sha, "kiosk-modern", nc=2)).ok
    refused = auth.verify("REGISTER", answer(md5, "station-sha", nc=3))
    assert not refused.ok and refused.reason == "algorithm not offered"
    refused = auth.verify("REGISTER", answer(sha, "kiosk-legacy", nc=4))
    assert not refused.ok and refused.reason == "algorithm not offered"


def test_of_two_answers_the_logins_preferred_one_is_verified() -> None:
    """A client answering both challenges of one realm (RFC 8760 2.4) in two headers."""
    auth = authenticator()
    sha, md5 = auth.challenges(username="kiosk-modern")
    both = [answer(md5, "kiosk-modern"), answer(sha, "kiosk-modern")]
    chosen = auth.select(both)
    assert chosen == both[1]  # SHA-256, first in the login's list
    assert auth.verify("REGISTER", chosen).ok
    # For an MD5-only login the MD5 answer is the one, whatever the order.
    sha, md5 = auth.challenges(username="kiosk-modern")
    legacy = [answer(sha, "kiosk-legacy"), answer(md5, "kiosk-legacy")]
    assert auth.select(legacy) == legacy[1]
    # Another realm's answer is skipped; a lone value is taken as it is.
    other = answer(sha.replace('realm="visio"', 'realm="elsewhere"'), "kiosk-modern")
    assert auth.select([other, both[1]]) == both[1]
    assert auth.select([other]) == other
    assert auth.select([other, other]) is None


def test_unanswered_challenges_come_out_after_the_timeout() -> None:
    watch = ChallengeWatch(timeout=32.0)
    watch.challenged("192.0.2.5", "kiosk-legacy", ("SHA-256", "MD5"), 0.0)
    watch.challenged("192.0.2.6", "kiosk-modern", ("SHA-256", "MD5"), 1.0)
    watch.challenged("192.0.2.5", "kiosk-legacy", ("SHA-256", "MD5"), 5.0)  # a retry
    assert watch.next_deadline() == 32.0
    watch.answered("192.0.2.6", "kiosk-modern")
    assert watch.expired(31.9) == []
    (late,) = watch.expired(32.0)
    assert (late.source, late.username, late.algorithms, late.issued) == (
        "192.0.2.5",
        "kiosk-legacy",
        ("SHA-256", "MD5"),
        0.0,
    )
    assert len(watch) == 0 and watch.next_deadline() is None


def test_the_watch_is_bounded() -> None:
    watch = ChallengeWatch(timeout=32.0, max_entries=10)
    for i in range(100):
        watch.challenged(f"10.0.0.{i}", None, ("MD5",), float(i))
    assert len(watch) == 10
    assert [c.source for c in watch.expired(1000.0)] == [f"10.0.0.{i}" for i in range(90, 100)]
