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
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullLocator

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
    fig = Figure(figsize=(4.6 * n, 5.1), layout="constrained")
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
        # A square box, not set_aspect("equal"): the constrained layout
        # sizes a box aspect before drawing, where an equal data aspect
        # shrank the axes after it and cut the title off at the top.
        ax.set_box_aspect(1)
        ax.set_xlabel(f"reference ({unit})")
        ax.set_ylabel(f"predicted ({unit})")
    if shown:
        legend = [Line2D([], [], ls="", marker="o", color=colours[ct], label=ct) for ct in colours if ct in shown]
        # Upper left: the empty corner of a parity plot (prediction far above reference).
        axes[0].legend(handles=legend, loc="upper left", title="config_type", fontsize=8, title_fontsize=8)
    return fig


def _history_column(history: Sequence[Mapping[str, Any]], key: str) -> np.ndarray:
    """One key of every epoch as floats (NaN where missing or not a number)."""
    vals = []
    for h in history:
        v = h.get(key)
        try:
            vals.append(float(v) if v is not None else math.nan)
        except (TypeError, ValueError):
            vals.append(math.nan)
    return np.array(vals)


def _train_key(history: Sequence[Mapping[str, Any]], quantity: str) -> str:
    """The training errors of the model as written (model_train_*, measured
    at the logged epochs) where the history has them, else train_*."""
    key = f"model_train_{quantity}_rmse"
    return key if np.isfinite(_history_column(history, key)).any() else f"train_{quantity}_rmse"


def _best_epoch(history: Sequence[Mapping[str, Any]], epoch: np.ndarray) -> float | None:
    """The epoch training chose: the first lowest validation loss (the
    training loss when nothing was held out)."""
    for key in ("val_loss", "train_loss"):
        loss = _history_column(history, key)
        if np.isfinite(loss).any():
            return float(epoch[int(np.nanargmin(loss))])
    return None


def _phase_switch(history: Sequence[Mapping[str, Any]], epoch: np.ndarray) -> float | None:
    """The first L-BFGS epoch after Adam ones, if the run had both."""
    kinds = [h.get("optimizer") for h in history]
    for k in range(1, len(kinds)):
        if kinds[k] == "lbfgs" and kinds[k - 1] == "adam":
            return float(epoch[k])
    return None


def _readable_log_axis(ax, values: np.ndarray) -> None:
    """A log scale whose tick labels are plain numbers (0.2, 5, 10): at
    1, 2, 5 × 10^n over a wide range, at round linear steps over a narrow
    one (where 1-2-5 would leave one label or none)."""
    ax.set_yscale("log")
    values = values[np.isfinite(values) & (values > 0)]
    ratio = float(values.max() / values.min()) if values.size else 10.0
    if ratio < 4:
        ax.yaxis.set_major_locator(MaxNLocator(nbins=6))
    else:
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0) if ratio < 300 else (1.0,)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"{y:g}"))
    ax.yaxis.set_minor_locator(NullLocator())


MODEL_AS_WRITTEN = "the model as written (with its quadratic term, if any)"


def learning_curve_figure(history: Sequence[Mapping[str, Any]], model: str = MODEL_AS_WRITTEN) -> Figure:
    """Train and validation energy and force RMSE per epoch (log scale), of
    the same model (`model`, which the title names: as written, quadratic
    term included); the switch from Adam to L-BFGS and the chosen epoch
    marked."""
    epoch = _history_column(history, "epoch")
    if not np.isfinite(epoch).any():
        epoch = np.arange(1, len(history) + 1, dtype=float)
    switch, best = _phase_switch(history, epoch), _best_epoch(history, epoch)
    fig = Figure(figsize=(10, 4.2), layout="constrained")
    axes = fig.subplots(1, 2)
    for ax, q, unit, scale in ((axes[0], "energy", "meV/atom", 1000.0), (axes[1], "force", "eV/Å", 1.0)):
        plotted, shown = False, []
        for key, style, label in ((_train_key(history, q), "o-", "train"), (f"val_{q}_rmse", "--", "validation")):
            y = _history_column(history, key) * scale
            ok = np.isfinite(y) & np.isfinite(epoch) & (y > 0)
            if ok.any():
                sparse = ok.sum() < 0.5 * len(y)
                ax.plot(epoch[ok], y[ok], style if sparse or ok.sum() <= 60 else style.lstrip("o"), ms=3,
                        label=label)
                plotted = True
                shown.append(y[ok])
        if plotted:
            _readable_log_axis(ax, np.concatenate(shown))
        else:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
        if switch is not None:
            ax.axvline(switch - 0.5, color="0.4", lw=0.8, ls=":", label=f"Adam → L-BFGS (epoch {switch:g})")
        if best is not None:
            ax.axvline(best, color="tab:green", lw=0.8, alpha=0.7, label=f"chosen epoch {best:g}")
        if plotted:
            ax.legend(fontsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel(f"{q} RMSE ({unit})")
        ax.grid(True, which="major", alpha=0.3)
    fig.suptitle(f"Learning curve of {model},\non its training and its validation structures", fontsize=10)
    return fig
