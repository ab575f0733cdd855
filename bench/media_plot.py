"""The media benchmark's picture: CPU per packet and loss against load, one line per engine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: files only

import matplotlib.pyplot as plt


def plot(report: dict[str, Any], path: Path) -> Path:
    """Draw the report's steps into ``path`` (PNG) and return it."""
    fig, (cpu_ax, loss_ax) = plt.subplots(2, 1, figsize=(8, 7), sharex=True)
    for engine in report["engines"]:
        steps = [s for s in engine["steps"] if s["cpu_us_per_packet"] is not None]
        if not steps:
            continue
        load = [s["offered_pps"] for s in steps]
        cpu_ax.plot(load, [s["cpu_us_per_packet"] for s in steps], marker="o", label=engine["name"])
        loss_ax.plot(load, [100 * s["loss_ratio"] for s in steps], marker="o", label=engine["name"])
    prof = report["profile"]
    cpu_ax.set_title(
        f"Media engines, {report['started']}\naudio {prof['audio_pps']} + video "
        f"{prof['video_pps']} packets/s each way per call",
        fontsize=11,
    )
    cpu_ax.set_ylabel("engine CPU us per relayed packet")
    cpu_ax.set_ylim(bottom=0)
    loss_ax.set_ylabel("loss (%)")
    loss_ax.axhline(100 * report["limits"]["loss_ratio"], color="grey", linestyle=":")
    loss_ax.set_xlabel("offered load (packets/s through the relay)")
    for ax in (cpu_ax, loss_ax):
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=100)
    plt.close(fig)
    return path
