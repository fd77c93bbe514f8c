"""The report's plots as SVG text (matplotlib, Agg backend: no display, no fonts fetched).

Each function takes plain numbers and returns one SVG document; an empty input gives a plot
that says so rather than no plot, so a page always has the same sections."""

from __future__ import annotations

import io

import numpy as np

COLOR = "#017cee"  # Airflow's blue, so the page sits well inside the UI


def _figure(title: str, xlabel: str = "", ylabel: str = ""):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.2, 3.0), dpi=100)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel, fontsize=9)
    ax.set_ylabel(ylabel, fontsize=9)
    ax.tick_params(labelsize=8)
    return fig, ax


def _svg(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.StringIO()
    fig.tight_layout()
    fig.savefig(buf, format="svg", metadata={"Date": None})  # reproducible output
    plt.close(fig)
    return buf.getvalue()


def _empty(ax, what: str) -> None:
    ax.text(0.5, 0.5, f"no {what}", ha="center", va="center", transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])


def bars(title: str, labels: list[str], values: list[float], xlabel: str = "") -> str:
    """Horizontal bars, largest first as given (reasons, stages, dedup counts)."""
    fig, ax = _figure(title, xlabel)
    if not labels:
        _empty(ax, "data")
    else:
        y = np.arange(len(labels))
        ax.barh(y, values, color=COLOR)
        ax.set_yticks(y, labels)
        ax.invert_yaxis()
        for yi, v in zip(y, values, strict=True):
            ax.text(v, yi, f" {v:g}", va="center", fontsize=8)
    return _svg(fig)


def success_rate(parts: list[int], rates: list[float]) -> str:
    fig, ax = _figure("download success rate per part", "part", "success rate")
    if not parts:
        _empty(ax, "downloaded parts")
    else:
        ax.bar([str(p) for p in parts], rates, color=COLOR)
        ax.set_ylim(0, 1)
        ax.axhline(float(np.mean(rates)), color="#555", lw=1, ls="--", label="mean")
        ax.legend(fontsize=8)
    return _svg(fig)


def histogram(
    title: str, values: np.ndarray, xlabel: str, bins: int = 30, log: bool = False
) -> str:
    fig, ax = _figure(title, xlabel, "samples")
    values = values[np.isfinite(values)] if len(values) else values
    if not len(values):
        _empty(ax, "samples")
    else:
        if log and values.min() > 0:
            edges = np.geomspace(values.min(), values.max() * 1.0001, bins + 1)
            ax.set_xscale("log")
        else:
            edges = bins
        ax.hist(values, bins=edges, color=COLOR)
        ax.axvline(float(np.median(values)), color="#555", lw=1, ls="--", label="median")
        ax.legend(fontsize=8)
    return _svg(fig)


def resolution(widths: np.ndarray, heights: np.ndarray) -> str:
    fig, ax = _figure("original resolution", "pixels", "samples")
    if not len(widths):
        _empty(ax, "samples")
    else:
        top = max(widths.max(), heights.max())
        edges = np.geomspace(max(1, min(widths.min(), heights.min())), top * 1.0001, 31)
        ax.hist(widths, bins=edges, alpha=0.7, label="width", color=COLOR)
        ax.hist(heights, bins=edges, alpha=0.6, label="height", color="#f0a30a")
        ax.set_xscale("log")
        ax.legend(fontsize=8)
    return _svg(fig)
