"""Figures of a model report: parity plots and the learning curve.

Plots use matplotlib's Agg canvas directly (no pyplot, no global backend
change); `save_png` is also how the study writes its figures.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from nnp.analysis.metrics import Predictions
from nnp.constants import EV_PER_A3_IN_GPA, VOIGT_I, VOIGT_J
from nnp.io.atomic import atomic_open


def save_png(fig, path: Path) -> None:
    """`fig` as a PNG at `path`, written atomically."""
    FigureCanvasAgg(fig)
    with atomic_open(path, binary=True) as f:
        fig.savefig(f, format="png", dpi=110)


def config_type_colours(config_types: Sequence[str]) -> dict[str, Any]:
    """A colour per config_type, in the order given."""
    cmap = colormaps["tab10" if len(config_types) <= 10 else "tab20"]
    return {ct: cmap(k % cmap.N) for k, ct in enumerate(config_types)}


_LABELS = {
    "energy": ("energy", "eV/atom", "meV/atom", 1000.0),
    "force": ("force components", "eV/Å", "eV/Å", 1.0),
    "stress": ("stress components", "GPa", "GPa", 1.0),
}


def _parity_data(p: Predictions, quantity: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(reference, prediction, config_type index into p.config_types' names)
    in plot units, reference present only."""
    types = np.array(p.config_types, dtype=object)
    if quantity == "energy":
        ok = np.isfinite(p.energy_ref)
        n = p.n_atoms[ok]
        return p.energy_ref[ok] / n, p.energy_pred[ok] / n, types[ok]
    if quantity == "force":
        ok = np.all(np.isfinite(p.forces_ref), axis=1)
        t = np.repeat(types[p.atom_struct[ok]], 3)
        return p.forces_ref[ok].reshape(-1), p.forces_pred[ok].reshape(-1), t
    ok = np.all(np.isfinite(p.stress_ref), axis=(1, 2))
    ref = p.stress_ref[ok][:, VOIGT_I, VOIGT_J] * EV_PER_A3_IN_GPA
    pred = p.stress_pred[ok][:, VOIGT_I, VOIGT_J] * EV_PER_A3_IN_GPA
    return ref.reshape(-1), pred.reshape(-1), np.repeat(types[ok], 6)


def parity_figure(sets: Mapping[str, Predictions], quantity: str, colours: Mapping[str, Any]) -> Figure:
    """Reference against prediction of `quantity` (energy, force, stress),
    one panel per set, coloured by config_type, MAE and RMSE in the title."""
    title, unit, err_unit, err_scale = _LABELS[quantity]
    n = len(sets)
    fig = Figure(figsize=(4.6 * n, 4.6), layout="constrained")
    axes = fig.subplots(1, n, squeeze=False)[0]
    data = {name: _parity_data(p, quantity) for name, p in sets.items()}
    finite = [np.concatenate([r, q]) for r, q, _ in data.values()]
    finite = np.concatenate(finite) if finite else np.zeros(0)
    finite = finite[np.isfinite(finite)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    pad = 0.04 * (hi - lo) if hi > lo else max(abs(hi), 1.0) * 0.05
    lo, hi = lo - pad, hi + pad
    shown = set()
    for ax, (name, (ref, pred, types)) in zip(axes, data.items()):
        ax.plot([lo, hi], [lo, hi], color="0.5", lw=0.8, zorder=0)
        for ct, colour in colours.items():
            sel = types == ct
            if not np.any(sel):
                continue
            ax.scatter(ref[sel], pred[sel], s=2 if quantity == "force" else 6, color=colour, alpha=0.7,
                       linewidths=0, label=ct, rasterized=True)
            shown.add(ct)
        err = pred - ref
        if err.size and np.all(np.isfinite(err)):
            mae = float(np.mean(np.abs(err))) * err_scale
            rmse = math.sqrt(float(np.mean(err * err))) * err_scale
            digits = 2 if quantity == "energy" else (4 if quantity == "force" else 3)
            subtitle = f"MAE {mae:.{digits}f}, RMSE {rmse:.{digits}f} {err_unit}"
        else:
            subtitle = "no data" if not err.size else "non-finite predictions"
        ax.set_title(f"{name}: {title}\n{subtitle}", fontsize=10)
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
        ax.set_aspect("equal")
        ax.set_xlabel(f"reference ({unit})")
        ax.set_ylabel(f"predicted ({unit})")
    if shown:
        legend = [Line2D([], [], ls="", marker="o", color=colours[ct], label=ct) for ct in colours if ct in shown]
        # Upper left: the empty corner of a parity plot (prediction far above reference).
        axes[0].legend(handles=legend, loc="upper left", title="config_type", fontsize=8, title_fontsize=8)
    return fig


def learning_curve_figure(history: Sequence[Mapping[str, Any]]) -> Figure:
    """Train and validation energy and force RMSE per epoch (log scale)."""
    def column(key: str) -> np.ndarray:
        vals = []
        for h in history:
            v = h.get(key)
            try:
                vals.append(float(v) if v is not None else math.nan)
            except (TypeError, ValueError):
                vals.append(math.nan)
        return np.array(vals)

    epoch = column("epoch")
    if not np.isfinite(epoch).any():
        epoch = np.arange(1, len(history) + 1, dtype=float)
    fig = Figure(figsize=(10, 4), layout="constrained")
    axes = fig.subplots(1, 2)
    for ax, q, unit, scale in ((axes[0], "energy", "meV/atom", 1000.0), (axes[1], "force", "eV/Å", 1.0)):
        plotted = False
        for split, style in (("train", "-"), ("val", "--")):
            y = column(f"{split}_{q}_rmse") * scale
            ok = np.isfinite(y) & np.isfinite(epoch) & (y > 0)
            if ok.any():
                ax.plot(epoch[ok], y[ok], style, label="train" if split == "train" else "validation")
                plotted = True
        if plotted:
            ax.set_yscale("log")
            ax.legend()
        else:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
        ax.set_xlabel("epoch")
        ax.set_ylabel(f"{q} RMSE ({unit})")
        ax.grid(True, which="both", alpha=0.3)
    return fig
