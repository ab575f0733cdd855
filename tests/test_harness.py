"""The test harness's own promises."""

from __future__ import annotations

from harness import free_port


def test_free_port_never_hands_out_a_port_twice() -> None:
    """The kernel gives the same ephemeral port again once its probe socket closes (5 in
    500 here): a port picked for a peer that has not bound it yet went to the gateway
    started next, in a CI run."""
    ports = [free_port() for _ in range(500)]
    assert len(set(ports)) == len(ports)
