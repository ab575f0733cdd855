"""The bounded per-key table behind the SIP guards (gateway/model/recent.py)."""

from __future__ import annotations

from gateway.model.recent import RecentTable


def test_a_full_table_forgets_the_least_recently_touched_key() -> None:
    table: RecentTable[str, list[int]] = RecentTable(3)
    for key in "abc":
        table.touch(key, list).append(1)
    table.touch("a", list).append(2)  # "a" is now the most recent, "b" the oldest
    table.touch("d", list)
    assert list(table) == ["c", "a", "d"]
    assert table.get("a") == [1, 2]
    assert "b" not in table and len(table) == 3


def test_add_keeps_a_present_key_and_its_place() -> None:
    table: RecentTable[str, int] = RecentTable(2)
    table.add("x", 1)
    table.add("y", 2)
    table.add("x", 3)
    assert table.items() == [("x", 1), ("y", 2)]
    assert table.oldest() == ("x", 1)
    table.add("z", 4)  # full: "x", the oldest, goes
    assert table.items() == [("y", 2), ("z", 4)]


def test_get_does_not_touch_and_pop_forgets() -> None:
    table: RecentTable[int, str] = RecentTable(2)
    table.add(1, "one")
    table.add(2, "two")
    assert table.get(1) == "one"
    table.add(3, "three")  # get did not make 1 recent: it is still the oldest
    assert 1 not in table
    assert table.pop(2) == "two" and table.pop(2) is None
    assert table.oldest() == (3, "three")
    table.pop(3)
    assert table.oldest() is None and len(table) == 0
