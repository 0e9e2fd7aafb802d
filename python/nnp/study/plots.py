"""Figures of the descriptor-length study: errors, g(r), bulk modulus and
elastic constants against descriptor length (the paper's Figs. 4-6). Each
`plot_*` returns False, writing nothing, when no point has its numbers yet.
With several regressors (StudyConfig.models) the errors share panels, one
line per series and model; the other figures get a row of panels per model."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from nnp.analysis.plots import save_png
from nnp.study.config import MODEL_NAMES, MODELS
from nnp.study.references import DFT_PBE, EXPERIMENT

SERIES_STYLE = {"A": dict(marker="o", color="tab:blue"), "B": dict(marker="s", color="tab:red")}
# What the series vary, in words (docs/study.md): A drops Gaussian widths η
# (radial and angular), B keeps them and drops angular sharpness values ζ.
SERIES_NOTE = "series A: fewer Gaussian widths; series B: fewer angular resolutions"
# Beside the series' colours and markers: the network solid and filled, the GP dashed and open.
MODEL_STYLE = {"nn": dict(ls="-", filled=True), "gp": dict(ls="--", filled=False)}


def _models(rows) -> list[str]:
    return [m for m in MODELS if any(r.get("model", "nn") == m for r in rows)]


def _of(rows, model: str) -> list:
    return [r for r in rows if r.get("model", "nn") == model]


def _model_title(model: str, several: bool) -> str:
    return f"{MODEL_NAMES[model]}: " if several else ""


def _finish(fig: Figure, title: str, banner: str) -> None:
    """The figure's title; a scaled-down run's `banner` above it (the title
    turns red) and faintly across every panel, so that a plot copied out of
    the report still says so."""
    if not banner:
        fig.suptitle(title)
        return
    fig.suptitle(f"{banner}\n{title}", color="firebrick")
    for ax in fig.axes:
        ax.text(0.5, 0.5, "QUICK RUN", transform=ax.transAxes, ha="center", va="center", rotation=25,
                fontsize=34, color="firebrick", alpha=0.12, zorder=0)


def _series(rows, key):
    out = {}
    for s in sorted({r["series"] for r in rows}):
        sel = [r for r in rows if r["series"] == s]
        out[s] = (np.array([r["length"] for r in sel]), np.array([r[key] for r in sel], dtype=float))
    return out


def plot_errors(rows, path: Path, banner: str = "") -> bool:
    if not any(math.isfinite(r["val_energy_rmse"]) for r in rows):
        return False
    models = _models(rows)
    if len(models) > 1:
        return _plot_errors_by_model(rows, models, path, banner)
    fig = Figure(figsize=(10, 4), layout="constrained")
    axes = fig.subplots(1, 2)
    for ax, q, unit in ((axes[0], "energy", "meV/atom"), (axes[1], "force", "eV/Å")):
        for s, style in SERIES_STYLE.items():
            for stat, ls, fill in (("rmse", "-", None), ("mae", "--", "none")):
                data = _series(rows, f"val_{q}_{stat}").get(s)
                if data is None:
                    continue
                x, y = data
                ok = np.isfinite(y) & (y > 0)
                if ok.any():
                    ax.plot(x[ok], y[ok], ls=ls, marker=style["marker"], color=style["color"],
                            mfc=fill or style["color"], label=f"series {s} {stat.upper()}")
        _error_axes(ax, rows, q, unit)
    _finish(fig, f"Validation errors vs descriptor length ({SERIES_NOTE})", banner)
    save_png(fig, path)
    return True


# Mantissas of labelled log-axis ticks, coarsest first (_log_ticks).
TICK_LADDERS = ((1, 2, 5), (1, 2, 3, 5), (1, 1.5, 2, 3, 4, 5, 6, 7, 8), (1, 1.2, 1.4, 1.6, 1.8, 2, 2.5, 3, 3.5, 4, 5, 6, 7, 8, 9))


def _log_ticks(ax) -> None:
    """Labelled ticks, as plain numbers, on a log y axis whose range is often
    under a decade (where matplotlib labels one tick or none): the coarsest
    ladder of TICK_LADDERS that puts at least four in the range."""
    lo, hi = ax.get_ylim()
    decades = range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)
    for ladder in TICK_LADDERS:
        ticks = [m * 10.0**d for d in decades for m in ladder if lo <= m * 10.0**d <= hi]
        if len(ticks) >= 4:
            break
    ax.set_yticks(ticks, [f"{t:.3g}" for t in ticks])
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_ylim(lo, hi)


def _error_axes(ax, rows, q: str, unit: str, stat: str = "") -> None:
    ax.set_yscale("log")
    _log_ticks(ax)
    ax.set_xlabel("descriptor length (functions)")
    ax.set_ylabel(f"validation {q} {stat if stat else 'error'} ({unit})")
    ax.set_xticks(sorted({r["length"] for r in rows}))
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)


def _plot_errors_by_model(rows, models, path: Path, banner: str) -> bool:
    """RMSE (top) and MAE (bottom) of energy and force, one line per series
    and regressor, so that the regressors compare on the same axes."""
    fig = Figure(figsize=(11, 7.5), layout="constrained")
    axes = fig.subplots(2, 2)
    for row, stat in enumerate(("rmse", "mae")):
        for col, (q, unit) in enumerate((("energy", "meV/atom"), ("force", "eV/Å"))):
            ax = axes[row, col]
            for s, style in SERIES_STYLE.items():
                for m in models:
                    data = _series(_of(rows, m), f"val_{q}_{stat}").get(s)
                    if data is None:
                        continue
                    x, y = data
                    ok = np.isfinite(y) & (y > 0)
                    if ok.any():
                        ms = MODEL_STYLE[m]
                        ax.plot(x[ok], y[ok], ls=ms["ls"], marker=style["marker"], color=style["color"],
                                mfc=style["color"] if ms["filled"] else "none",
                                label=f"series {s}, {MODEL_NAMES[m]}")
            _error_axes(ax, rows, q, unit, stat.upper())
    names = " and ".join(MODEL_NAMES[m] for m in models)
    _finish(fig, f"Validation errors vs descriptor length, {names}\n({SERIES_NOTE})", banner)
    save_png(fig, path)
    return True


def plot_rdf(rows, kind: str, path: Path, banner: str = "") -> bool:
    have = [r for r in rows if kind in r["rdf"] and np.isfinite(r["rdf"][kind][1]).any()]
    if not have:
        return False
    series = sorted({r["series"] for r in rows})
    lengths = sorted({r["length"] for r in rows})
    models = _models(rows)
    cmap = colormaps["viridis"]
    fig = Figure(figsize=(5 * len(series), 4 * len(models)), layout="constrained")
    grid = fig.subplots(len(models), len(series), squeeze=False, sharey=len(models) > 1)
    for axes, m in zip(grid, models):
        for ax, s in zip(axes, series):
            for r in _of(have, m):
                if r["series"] != s:
                    continue
                x, g = r["rdf"][kind]
                c = cmap(lengths.index(r["length"]) / max(len(lengths) - 1, 1))
                ax.plot(x, g, color=c, lw=1.2, label=f"{r['length']}")
            ax.axhline(1.0, color="0.6", lw=0.6)
            ax.set_xlabel("r (Å)")
            ax.set_ylabel("g(r)")
            ax.set_title(f"{_model_title(m, len(models) > 1)}series {s}")
            if ax.get_legend_handles_labels()[0]:
                ax.legend(title="length", fontsize=8)
    _finish(fig, f"Radial distribution function of {kind} Si, by descriptor length", banner)
    save_png(fig, path)
    return True


def plot_bulk_modulus(rows, path: Path, temperature: float, banner: str = "") -> bool:
    if not any(math.isfinite(r["b_npt"]) or math.isfinite(r["b0"]) for r in rows):
        return False
    models = _models(rows)
    fig = Figure(figsize=(6.5 * len(models), 4.5), layout="constrained")
    axes = fig.subplots(1, len(models), squeeze=False, sharey=True)[0]
    for ax, m in zip(axes, models):
        _bulk_modulus_panel(ax, _of(rows, m), temperature, sorted({r["length"] for r in rows}))
        if len(models) > 1:
            ax.set_title(MODEL_NAMES[m])
    _finish(fig, "Bulk modulus of diamond Si vs descriptor length", banner)
    save_png(fig, path)
    return True


def _bulk_modulus_panel(ax, rows, temperature: float, lengths: list[int]) -> None:
    for s, style in SERIES_STYLE.items():
        sel = [r for r in rows if r["series"] == s]
        if not sel:
            continue
        x = np.array([r["length"] for r in sel], dtype=float)
        b = np.array([r["b_npt"] for r in sel])
        e = np.array([r["b_npt_err"] for r in sel])
        b0 = np.array([r["b0"] for r in sel])
        dx = -0.6 if s == "A" else 0.6  # side by side
        ok = np.isfinite(b)
        if ok.any():
            ax.errorbar(x[ok] + dx, b[ok], yerr=np.where(np.isfinite(e[ok]), e[ok], 0), capsize=3, ls="-",
                        label=f"series {s}, NPT {temperature:g} K", **style)
        ok = np.isfinite(b0)
        if ok.any():
            ax.plot(x[ok] + dx, b0[ok], ls=":", mfc="none", label=f"series {s}, 0 K (C11+2C12)/3", **style)
    ax.axhline(DFT_PBE["bulk_modulus"], color="k", ls="--", lw=1, label=f"DFT-PBE {DFT_PBE['bulk_modulus']:g} GPa")
    lo, hi = EXPERIMENT["bulk_modulus"]
    ax.axhspan(lo, hi, color="0.85", label=f"experiment {lo:g}–{hi:g} GPa")
    ax.set_xlabel("descriptor length (functions)")
    ax.set_ylabel("bulk modulus (GPa)")
    ax.set_xticks(lengths)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)


def plot_elastic(rows, path: Path, banner: str = "") -> bool:
    if not any(math.isfinite(r["a0"]) for r in rows):
        return False
    models = _models(rows)
    fig = Figure(figsize=(12, 4.5 * len(models)), layout="constrained")
    grid = fig.subplots(len(models), 2, squeeze=False)
    for (ax_a, ax_c), m in zip(grid, models):
        _elastic_panels(ax_a, ax_c, _of(rows, m), sorted({r["length"] for r in rows}))
        if len(models) > 1:
            ax_a.set_title(f"{MODEL_NAMES[m]}: lattice constant")
            ax_c.set_title(f"{MODEL_NAMES[m]}: elastic constants")
    _finish(fig, "Lattice constant and elastic constants of diamond Si at 0 K vs descriptor length", banner)
    save_png(fig, path)
    return True


def _elastic_panels(ax_a, ax_c, rows, lengths: list[int]) -> None:
    for s, style in SERIES_STYLE.items():
        data = _series(rows, "a0").get(s)
        if data is not None and np.isfinite(data[1]).any():
            ok = np.isfinite(data[1])
            ax_a.plot(data[0][ok], data[1][ok], label=f"series {s}", **style)
        for key, ls in (("c11", "-"), ("c12", "--"), ("c44", ":")):
            data = _series(rows, key).get(s)
            if data is not None and np.isfinite(data[1]).any():
                ok = np.isfinite(data[1])
                ax_c.plot(data[0][ok], data[1][ok], ls=ls, label=f"{key.upper()} series {s}", **style)
    ax_a.axhline(DFT_PBE["a0"], color="k", ls="--", lw=1, label=f"DFT-PBE {DFT_PBE['a0']} Å")
    ax_a.axhline(EXPERIMENT["a0"], color="0.5", ls=":", lw=1, label=f"experiment {EXPERIMENT['a0']} Å")
    ax_a.set_ylabel("0 K lattice constant (Å)")
    for key in ("c11", "c12"):
        ax_c.axhline(DFT_PBE[key], color="k", ls="--" if key == "c11" else "-.", lw=0.8,
                     label=f"DFT-PBE {key.upper()} {DFT_PBE[key]:g}")
    ax_c.set_ylabel("elastic constant (GPa)")
    for ax in (ax_a, ax_c):
        ax.set_xlabel("descriptor length (functions)")
        ax.set_xticks(lengths)
        ax.grid(True, alpha=0.3)
    ax_a.legend(fontsize=7)
    # Outside the panel: inside, the legend of six lines covered the C44 points.
    ax_c.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
