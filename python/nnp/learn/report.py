"""The run's report: `report.md` (one line per iteration) and `report.png`
(explored frames by class, max_devi_f histograms with the trust window,
validation and test errors per generation, DFT cost), rewritten after every
stage; `status_text` is `nnp learn status DIR`."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from nnp.io.atomic import atomic_write_text

COLUMNS = ("iter", "data", "val E meV/at", "val F eV/Å", "trust lo–hi", "explored", "accurate", "candidates",
           "failed (NaN/hi/core)", "MD stopped", "selected", "labelled", "DFT fail", "test F eV/Å", "DFT s", "train s")


def _fmt(value, spec: str) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)


def iteration_row(it: dict) -> list[str]:
    val, test = it.get("validation", {}), it.get("test", {})
    failed = (f"{it['failed']} ({it['nan']}/{it['above_hi']}/{it['core']})" if "failed" in it else "–")
    return [str(it["iteration"]), _fmt(it.get("data_frames"), "d"),
            _fmt(val.get("energy_rmse_meV_per_atom"), ".2f"), _fmt(val.get("force_rmse_eV_per_A"), ".3f"),
            (f"{it['trust_lo']:.3f}–{it['trust_hi']:.3f}" if "trust_lo" in it else "–"),
            _fmt(it.get("explored"), "d"), _fmt(it.get("accurate"), "d"), _fmt(it.get("candidate"), "d"), failed,
            (f"{it['runs_stopped']}" if "runs_stopped" in it else "–"),
            _fmt(it.get("selected"), "d"), _fmt(it.get("labelled"), "d"), _fmt(it.get("dft_failed"), "d"),
            _fmt(test.get("force_rmse_eV_per_A"), ".3f"), _fmt(it.get("dft_s"), ".0f"), _fmt(it.get("train_s"), ".0f")]


def table(state: dict) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(iteration_row(it)) + " |" for it in state["iterations"]]
    return "\n".join(lines)


def status_text(directory: Path, state: dict) -> str:
    seed = state.get("seed", {})
    where = ("finished: " + state["stop_reason"]) if state["stage"] == "done" else \
        f"next: iteration {state['iteration']}, stage {state['stage']}"
    dft_s = seed.get("dft_s", 0.0) + sum(it.get("dft_s", 0.0) for it in state["iterations"])
    labelled = seed.get("labelled", 0) + sum(it.get("labelled", 0) for it in state["iterations"])
    return "\n".join([
        f"{directory}: {where}",
        f"initial frames {state.get('initial_frames', 0)}, seed frames labelled {seed.get('labelled', 0)}; "
        f"{labelled} frames labelled with pw.x in all, {dft_s:.0f} s of pw.x",
        table(state),
    ])


def write(directory: Path, state: dict) -> None:
    text = ["# nnp learn report", "", status_text(directory, state), "",
            "Columns: validation errors of each generation's committee mean (or GP) on the frames every member "
            "left out; "
            "explored frames by class in that generation's MD (failed: non-finite, max_devi_f (max_gp_std with "
            "uncertainty: gp) at or above trust "
            "hi, or atoms inside a repulsive core — never labelled); test F: the committee mean's force RMSE on "
            "the frames it then selected and pw.x labelled (data it never saw); DFT s: pw.x wall time.", ""]
    if any("explored" in it for it in state["iterations"]):
        plot(directory, state)
        text += ["![explored frames, deviations, errors, DFT cost](report.png)", ""]
    text += ["Settings: `config.yaml`; labelled data: `data.xyz`; per iteration `iter.NNN/` (train/, explore/, "
             "candidates.xyz, selected.json, explored.json)."]
    atomic_write_text(directory / "report.md", "\n".join(text) + "\n")


def _explored_devi(directory: Path, i: int) -> np.ndarray:
    """The explored frames' max_devi_f (eV/Å), or max_gp_std (eV) of a GP run."""
    path = directory / f"iter.{i:03d}" / "explored.json"
    if not path.exists():
        return np.array([])
    values = np.array([r.get("max_devi_f", r.get("max_gp_std")) for r in json.loads(path.read_text())],
                      dtype=float)
    return values[np.isfinite(values)]


def plot(directory: Path, state: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    its = [it for it in state["iterations"] if "explored" in it]
    x = [it["iteration"] for it in its]
    fig, ax = plt.subplots(2, 2, figsize=(11, 8))
    a = ax[0, 0]
    bottom = np.zeros(len(its))
    for key, colour in (("accurate", "tab:green"), ("candidate", "tab:orange"), ("failed", "tab:red")):
        values = np.array([it[key] for it in its], dtype=float)
        a.bar(x, values, bottom=bottom, color=colour, label=key)
        bottom += values
    a.plot(x, [it.get("labelled", 0) for it in its], "ko-", label="labelled")
    a.set(xlabel="iteration", ylabel="explored frames", title="explored frames by class",
          ylim=(0, 1.35 * max(bottom.max(), 1)))  # room for the legend above the bars
    a.legend(fontsize=8, ncol=2)
    a = ax[0, 1]
    devs = [np.clip(_explored_devi(directory, i), 1e-4, None) for i in x]
    finite = np.concatenate(devs) if devs else np.array([])
    if finite.size:
        bins = np.logspace(np.log10(finite.min()), np.log10(max(finite.max(), finite.min() * 10)), 30)
        for i, d in zip(x, devs):
            a.hist(d, bins=bins, histtype="step", label=f"iteration {i}")
        a.set_xscale("log")
    for it in its:
        a.axvline(it["trust_lo"], color="0.5", ls="--", lw=0.8)
        a.axvline(it["trust_hi"], color="0.3", ls=":", lw=0.8)
    gp = any("validation_max_gp_std" in it for it in its)
    a.set(xlabel=("max_gp_std (eV)" if gp else "max_devi_f (eV/Å)") + "; dashed: trust lo, dotted: hi",
          ylabel="frames", title="GP std per atom" if gp else "force deviation")
    a.legend(fontsize=8)
    a = ax[1, 0]
    gens = [it for it in state["iterations"] if "validation" in it]
    a.plot([g["iteration"] for g in gens], [g["validation"]["force_rmse_eV_per_A"] for g in gens], "o-",
           label="validation F (eV/Å)")
    tests = [it for it in its if "test" in it and it["test"]["frames"]]
    a.plot([t["iteration"] for t in tests], [t["test"]["force_rmse_eV_per_A"] for t in tests], "s--",
           label="selected frames F (eV/Å)")
    b = a.twinx()
    b.plot([g["iteration"] for g in gens], [g["validation"]["energy_rmse_meV_per_atom"] for g in gens], "^:",
           color="tab:purple", label="validation E (meV/atom)")
    b.set_ylabel("energy RMSE (meV/atom)")
    a.set(xlabel="generation", ylabel="force RMSE (eV/Å)", yscale="log",
          title=f"errors of each generation ({'GP' if gp else 'committee mean'})")
    a.legend(fontsize=8, loc="upper left")
    b.legend(fontsize=8, loc="upper right")
    a = ax[1, 1]
    seed_s = state.get("seed", {}).get("dft_s", 0.0)
    cost = np.cumsum([seed_s] + [it.get("dft_s", 0.0) for it in its])
    frames = np.cumsum([state.get("seed", {}).get("labelled", 0)] + [it.get("labelled", 0) for it in its])
    a.plot([-1] + x, cost / 60, "o-", label="pw.x minutes (cumulative)")
    a.set(xlabel="iteration (-1: seed)", ylabel="pw.x wall time (min)", title="DFT cost")
    b = a.twinx()
    b.plot([-1] + x, frames, "s--", color="tab:gray", label="labelled frames (cumulative)")
    b.set_ylabel("labelled frames")
    a.legend(fontsize=8, loc="upper left")
    b.legend(fontsize=8, loc="lower right")
    for a in ax.flat:
        if a is not ax[0, 1]:
            a.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    tmp = directory / ".report.png.tmp.png"
    fig.savefig(tmp, dpi=90)
    plt.close(fig)
    tmp.replace(directory / "report.png")
