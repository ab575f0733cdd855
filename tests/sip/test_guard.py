"""Failed-authentication limits and bans (gateway.sip.guard), on a fake clock."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.sip.guard import (
    AuthGuard,
    BanKind,
    FloodGuard,
    FloodSettings,
    GuardSettings,
    ScanWatch,
)

LIMITS = GuardSettings(source_failures=5, account_failures=8, window=60.0, ban_time=300.0)


def test_a_handful_of_failures_bans_the_source_for_the_ban_time() -> None:
    guard = AuthGuard(LIMITS)
    for i in range(4):
        assert guard.failed("192.0.2.9", "kiosk-lessay", float(i)) == []
        assert guard.banned("192.0.2.9", "kiosk-lessay", float(i)) is None
    (ban,) = guard.failed("192.0.2.9", "kiosk-lessay", 4.0)
    assert (ban.kind, ban.key, ban.since, ban.until, ban.failures) == (
        BanKind.SOURCE,
        "192.0.2.9",
        4.0,
        304.0,
        5,
    )
    # Banned whatever login it claims, known or not; other sources are not.
    assert guard.banned("192.0.2.9", "kiosk-lessay", 5.0) == ban
    assert guard.banned("192.0.2.9", "no-such-user", 303.9) == ban
    assert guard.banned("192.0.2.10", "kiosk-gavray", 5.0) is None
    # The ban ends on time, and the count starts afresh.
    assert guard.banned("192.0.2.9", "kiosk-lessay", 304.0) is None
    assert guard.failed("192.0.2.9", "kiosk-lessay", 305.0) == []
    assert guard.bans_total[BanKind.SOURCE] == 1
    assert guard.refused_total == 2


def test_failures_older_than_the_window_do_not_count() -> None:
    guard = AuthGuard(LIMITS)
    for t in (0.0, 20.0, 40.0, 59.0):
        assert guard.failed("192.0.2.9", None, t) == []
    # At 61 s the first failure has left the 60 s window: still four.
    assert guard.failed("192.0.2.9", None, 61.0) == []
    assert guard.banned("192.0.2.9", None, 61.0) is None
    assert [b.kind for b in guard.failed("192.0.2.9", None, 62.0)] == [BanKind.SOURCE]


def test_a_login_guessed_from_many_sources_is_banned_everywhere() -> None:
    guard = AuthGuard(LIMITS)
    for i in range(7):
        assert guard.failed(f"198.51.100.{i}", "kiosk-lessay", float(i)) == []
    (ban,) = guard.failed("198.51.100.7", "kiosk-lessay", 7.0)
    assert (ban.kind, ban.key) == (BanKind.ACCOUNT, "kiosk-lessay")
    assert guard.banned("203.0.113.1", "kiosk-lessay", 8.0) == ban
    assert guard.banned("203.0.113.1", "kiosk-gavray", 8.0) is None


def test_unknown_logins_are_counted_like_known_ones() -> None:
    """A ban must not tell which accounts exist: the guard never knows."""
    known, unknown = AuthGuard(LIMITS), AuthGuard(LIMITS)
    for i in range(8):
        a = known.failed(f"198.51.100.{i}", "kiosk-lessay", float(i))
        b = unknown.failed(f"198.51.100.{i}", "zz-nobody", float(i))
        assert [(x.kind, x.since, x.until) for x in a] == [(y.kind, y.since, y.until) for y in b]


def test_bans_are_listed_and_can_be_lifted() -> None:
    guard = AuthGuard(LIMITS)
    for t in range(5):
        guard.failed("192.0.2.9", f"u{t}", float(t))
    assert [(b.kind, b.key) for b in guard.bans(10.0)] == [(BanKind.SOURCE, "192.0.2.9")]
    assert guard.next_expiry() == 304.0
    lifted = guard.lift(BanKind.SOURCE, "192.0.2.9")
    assert lifted is not None and lifted.key == "192.0.2.9"
    assert guard.banned("192.0.2.9", None, 11.0) is None
    assert guard.lift(BanKind.SOURCE, "192.0.2.9") is None
    assert guard.bans(11.0) == []


def test_expire_reports_each_ban_once() -> None:
    guard = AuthGuard(LIMITS)
    for t in range(5):
        guard.failed("192.0.2.9", None, float(t))
    assert guard.expire(303.0) == []
    (over,) = guard.expire(304.0)
    assert over.key == "192.0.2.9"
    assert guard.expire(400.0) == []


def test_a_zero_limit_never_bans() -> None:
    guard = AuthGuard(GuardSettings(source_failures=0, account_failures=0))
    for t in range(1000):
        assert guard.failed("192.0.2.9", "kiosk-lessay", t / 100) == []
    assert guard.bans(11.0) == []


def test_settings_change_keeps_bans_in_force() -> None:
    guard = AuthGuard(LIMITS)
    for t in range(5):
        guard.failed("192.0.2.9", None, float(t))
    guard.settings = GuardSettings(source_failures=50)
    assert guard.banned("192.0.2.9", None, 10.0) is not None


@settings(max_examples=60, deadline=None)
@given(sources=st.lists(st.integers(0, 10**6), min_size=1, max_size=400))
def test_memory_stays_bounded_under_forged_sources(sources: list[int]) -> None:
    guard = AuthGuard(GuardSettings(source_failures=3, account_failures=0), max_tracked=50)
    for t, n in enumerate(sources):
        guard.failed(f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}", None, float(t))
    assert all(len(table) <= 50 for table in guard._failures.values())


# -- scans -------------------------------------------------------------------------------


def test_a_scanning_tool_is_reported_once_a_window_by_its_user_agent() -> None:
    watch = ScanWatch(logins=8, window=60.0)
    assert watch.seen("192.0.2.7", None, "friendly-scanner", 0.0) == "User-Agent 'friendly-scanner'"
    assert watch.seen("192.0.2.7", None, "friendly-scanner", 30.0) is None  # reported already
    assert watch.seen("192.0.2.7", None, "Friendly-Scanner 2", 61.0) is not None  # a new window
    assert watch.seen("192.0.2.8", "kiosk-lessay", "baresip v1.0.0", 0.0) is None
    assert watch.scans_total == {"user_agent": 2, "sweep": 0}


def test_a_sweep_of_logins_from_one_source_is_a_scan_whatever_its_user_agent() -> None:
    watch = ScanWatch(logins=4, window=10.0)
    for i, name in enumerate(["100", "101", "102"]):
        assert watch.seen("192.0.2.7", name, "Linphone", float(i)) is None
    assert watch.seen("192.0.2.7", "101", "Linphone", 3.0) is None  # a repeat is no new login
    assert watch.seen("192.0.2.9", "103", None, 3.0) is None  # another source: its own count
    reason = watch.seen("192.0.2.7", "103", "Linphone", 4.0)
    assert reason == "4 logins tried in 10 s" and watch.scans_total["sweep"] == 1
    # Logins older than the window are forgotten: slow, legitimate retries never add up.
    slow = ScanWatch(logins=3, window=10.0)
    assert [slow.seen("192.0.2.7", f"u{i}", None, i * 11.0) for i in range(6)] == [None] * 6


# -- floods ------------------------------------------------------------------------------


def test_a_flooding_source_loses_its_excess_then_is_banned_and_others_pass() -> None:
    guard = FloodGuard(FloodSettings(rate=10.0, burst=20.0, ban_time=30.0))
    now = 100.0
    assert all(guard.admit("192.0.2.7", now) for _ in range(20))  # the burst passes
    assert not guard.admit("192.0.2.7", now)  # over it: dropped
    assert guard.admit("192.0.2.7", now + 0.15)  # 0.15 s later: one token more
    assert guard.admit("198.51.100.1", now)  # another source is not touched
    # A whole burst's worth dropped (the one above counts) without calming down: banned.
    for _ in range(18):
        assert not guard.admit("192.0.2.7", now + 0.15)
    assert guard.bans_total == 0
    assert not guard.admit("192.0.2.7", now + 0.15)
    assert guard.bans_total == 1 and [b.key for b in guard.started] == ["192.0.2.7"]
    assert [b.kind for b in guard.bans(now + 1)] == [BanKind.FLOOD]
    assert not guard.admit("192.0.2.7", now + 29.0)  # banned: even a slow message
    assert guard.admit("192.0.2.7", now + 31.0)  # over: a fresh bucket
    assert [b.key for b in guard.ended] == ["192.0.2.7"] and guard.bans(now + 31.0) == []
    assert guard.dropped_total == 1 + 19 + 1
    # A flood just over the rate, one message in two passing, is banned all the same.
    edge = FloodGuard(FloodSettings(rate=10.0, burst=20.0, ban_time=30.0))
    sent = [edge.admit("203.0.113.5", i * 0.05) for i in range(200)]  # 20 a second
    assert edge.bans_total == 1 and not all(sent[-10:])
    # A source that calms down between its bursts is never banned.
    calm = FloodGuard(FloodSettings(rate=10.0, burst=20.0, ban_time=30.0))
    for burst in range(5):
        [calm.admit("198.51.100.9", burst * 3.0) for _ in range(25)]  # 5 dropped each time
    assert calm.bans_total == 0 and calm.dropped_total == 25


def test_flood_limits_off_and_lifted() -> None:
    off = FloodGuard(FloodSettings(rate=0.0))
    assert all(off.admit("192.0.2.7", 0.0) for _ in range(10_000))
    guard = FloodGuard(FloodSettings(rate=1.0, burst=1.0, ban_time=60.0))
    assert guard.admit("192.0.2.7", 0.0) and not guard.admit("192.0.2.7", 0.0)
    assert guard.bans(0.0)[0].key == "192.0.2.7"
    assert guard.lift("192.0.2.7") is not None and guard.lift("192.0.2.7") is None
    assert guard.admit("192.0.2.7", 0.0)  # lifted: a new bucket, full


def test_flood_bans_are_bounded_however_many_sources_flood() -> None:
    guard = FloodGuard(FloodSettings(rate=1.0, burst=1.0, ban_time=60.0), max_tracked=3)
    for i in range(10):  # ten forged sources, each banned at its second message
        source = f"192.0.2.{i}"
        guard.admit(source, float(i))
        assert not guard.admit(source, float(i))
    assert guard.bans_total == 10
    assert [b.key for b in guard.bans(9.0)] == ["192.0.2.7", "192.0.2.8", "192.0.2.9"]
