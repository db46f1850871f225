"""Sweeps drawn: cost per audio hour and p95 latency against the setting swept."""

from __future__ import annotations

from typing import Any


def sweep_plot(rows: list[dict[str, Any]], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    settings = sorted({row["setting"] for row in rows})
    figure, axes = plt.subplots(1, len(settings), figsize=(5.5 * len(settings), 4), squeeze=False)
    for ax, setting in zip(axes[0], settings, strict=True):
        chosen = [row for row in rows if row["setting"] == setting]
        xs = [row["value"] for row in chosen]
        ax.plot(xs, [row["latencyS"]["p95"] for row in chosen], "o-", color="tab:blue")
        ax.set_xlabel(setting)
        ax.set_ylabel("p95 latency (s)", color="tab:blue")
        twin = ax.twinx()
        twin.plot(xs, [row["cost"]["perAudioHour"] for row in chosen], "s--", color="tab:red")
        twin.set_ylabel("$ per audio hour", color="tab:red")
        ax.set_title(f"p95 and cost against {setting}")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
