"""The soak's PNG: requests, refreshes, errors and latency over time, with the fault windows.

Drawn from the JSON report alone (``render(report, path)``), so a committed report can be
re-plotted. Needs matplotlib (the ``dev`` extra); imported only here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

COLOURS = {
    "refresh_latency": "#f2c14e",
    "refresh_errors": "#f78154",
    "restart": "#4d9078",
    "kill9": "#b4436c",
    "store_pause": "#5b8e7d",
    "store_disconnect": "#8a6fdf",
    "clock_jump": "#6fa8dc",
    "outage": "#c0392b",
}


def _smooth(values: Sequence[float], window: int = 5) -> list[float]:
    """Per-second counts averaged over ``window`` seconds (a rate that can be read)."""
    out: list[float] = []
    total = 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def render(report: Mapping[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    timeline = report["timeline"]
    seconds = list(range(timeline["seconds"]))
    series: Mapping[str, list[float]] = timeline["series"]

    def get(name: str) -> list[float]:
        return list(series.get(name, [0] * len(seconds)))

    fig, axes = plt.subplots(3, 1, figsize=(13, 9), sharex=True, constrained_layout=True)
    top, mid, low = axes
    config = report["config"]
    verdict = "PASS" if report["verdict"]["passed"] else "FAIL"
    top.set_title(
        f"sessionkeeper soak: {config['users']} users, {config['duration_s']:.0f} s, "
        f"{config['jwt_exp_s']} s tokens, {config['store']} — {verdict}",
        loc="left",
    )
    top.plot(seconds, _smooth(get("outcome_ok")), label="requests ok /s", color="#2e86de")
    top.plot(seconds, _smooth(get("refreshes")), label="refreshes /s", color="#10ac84")
    top.set_ylabel("per second (5 s mean)")
    top.legend(loc="upper right", fontsize=8)

    for name, colour in (
        ("five_xx", "#e74c3c"),
        ("transport_errors", "#8e44ad"),
        ("issuer_unavailable", "#f39c12"),
        ("outcome_failed", "#2c3e50"),
        ("proxy_injected_503", "#e67e22"),
        ("proxy_injected_lost", "#d35400"),
    ):
        values = get(name)
        if any(values):
            mid.plot(seconds, _smooth(values), label=name.replace("_", " ") + " /s", color=colour)
    spurious = get("spurious")
    if any(spurious):
        for s, n in zip(seconds, spurious, strict=False):
            if n:
                for ax in axes:
                    ax.axvline(s, color="red", linewidth=1.5)
        mid.plot([], [], color="red", label="spurious NEEDS_REAUTH / AuthExpired")
    mid.set_ylabel("errors per second")
    mid.legend(loc="upper right", fontsize=8)

    p99 = timeline.get("latency_p99_ms_5s", [])
    p50 = timeline.get("latency_p50_ms_5s", [])
    xs = [i * 5 + 2.5 for i in range(len(p99))]
    low.plot(xs, [v if v is not None else float("nan") for v in p99], label="p99", color="#c0392b")
    low.plot(xs, [v if v is not None else float("nan") for v in p50], label="p50", color="#2980b9")
    low.set_yscale("log")
    low.set_ylabel("request latency, ms (5 s windows)")
    low.set_xlabel("seconds into the run")
    low.legend(loc="upper right", fontsize=8)

    seen: set[str] = set()
    for fault in report["faults"]:
        start = fault["started"]
        end = fault["ended"] if fault["ended"] is not None else start
        end = max(end, start + 1.0)
        colour = COLOURS.get(fault["kind"], "#999999")
        for ax in axes:
            ax.axvspan(start, end, color=colour, alpha=0.25, linewidth=0)
        label = fault["kind"] + (f" {fault['target']}" if fault["target"] else "")
        top.annotate(
            label,
            xy=(start, 1.0),
            xycoords=("data", "axes fraction"),
            rotation=90,
            fontsize=6,
            va="top",
            ha="right",
            color="#333333",
        )
        seen.add(fault["kind"])
    fig.savefig(path, dpi=110)
    plt.close(fig)
