"""The in-memory store: bindings with expiry under a controllable clock."""

from __future__ import annotations

from gateway.state.store import Binding, MemoryStore


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def binding(contact: str, expires_at: float, aor: str = "station-caf-1") -> Binding:
    return Binding(aor, contact, ("127.0.0.1", 5062), "udp", expires_at, "cid", 1)


async def test_bindings_expire_refresh_and_clear() -> None:
    clock = Clock()
    store = MemoryStore(clock)
    await store.set_binding(binding("sip:a@h1", 1060))
    await store.set_binding(binding("sip:b@h2", 1120))
    assert [b.contact for b in await store.get_bindings("station-caf-1")] == [
        "sip:b@h2",
        "sip:a@h1",
    ]
    assert await store.binding_count() == 2
    clock.now = 1060  # a binding is gone at its expiry instant
    assert [b.contact for b in await store.get_bindings("station-caf-1")] == ["sip:b@h2"]
    await store.set_binding(binding("sip:b@h2", 2000))  # refresh keeps one entry
    assert await store.binding_count() == 1
    assert (await store.get_bindings("station-caf-1"))[0].remaining(clock.now) == 940
    await store.remove_binding("station-caf-1", "sip:b@h2")
    assert await store.get_bindings("station-caf-1") == []
    await store.set_binding(binding("sip:c@h3", 2000))
    await store.clear_bindings("station-caf-1")
    assert await store.binding_count() == 0
