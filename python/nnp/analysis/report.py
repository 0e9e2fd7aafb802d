"""A model report: metrics.json, parity plots, the learning curve and
report.md in one directory, the one place they are made (`nnp.train
--report`, `nnp.evaluate --report`, the study's validation stage).

    write_report("report/", {"train": p_train, "validation": p_val}, history)
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from nnp.analysis.metrics import UNITS, Predictions, fmt_number, metrics
from nnp.analysis.metrics import predict_model  # noqa: F401 - nnp.train predicts and reports through this module
from nnp.analysis.plots import MODEL_AS_WRITTEN, config_type_colours, learning_curve_figure, parity_figure, save_png
from nnp.cli import check_output_directory
from nnp.io.atomic import atomic_open

# Files write_report may write; with overwrite, those not rewritten are removed
# so that a directory never mixes two reports.
REPORT_FILES = (
    "metrics.json", "report.md", "parity_energy.png", "parity_forces.png", "parity_stress.png",
    "learning_curve.png",
)


def json_clean(x):
    """NaN/inf -> None, numpy scalars -> Python, recursively (strict JSON)."""
    if isinstance(x, Mapping):
        return {str(k): json_clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_clean(v) for v in x]
    if isinstance(x, np.ndarray) or (hasattr(x, "tolist") and not isinstance(x, (str, bytes))):
        return json_clean(x.tolist())  # numpy arrays and scalars, torch tensors
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        x = float(x)
        return x if math.isfinite(x) else None
    return x


def write_report(
    directory: str | os.PathLike,
    sets: Mapping[str, Predictions],
    history: Sequence[Mapping[str, Any]] | None = None,
    overwrite: bool = False,
    notes: Sequence[str] = (),
    curve_of: str = MODEL_AS_WRITTEN,
) -> dict[str, Any]:
    """Write metrics.json (every set's metrics and the history), parity plots
    (parity_energy.png, parity_forces.png, parity_stress.png when any set has
    stress labels: one panel per set, coloured by config_type), the learning
    curve (learning_curve.png, when `history` has entries) and report.md.

    `history`: one dict per epoch with epoch, train_energy_rmse,
    train_force_rmse, val_energy_rmse, val_force_rmse (eV/atom, eV/Å; NaN or
    missing allowed; other keys are kept in metrics.json). An existing
    non-empty `directory` is refused unless `overwrite`; every file is written
    atomically. `notes`: sentences on what the sets are (metrics.json "notes",
    and under the table of report.md). `curve_of`: the model whose history
    it is, for the learning curve's title. Returns the contents of metrics.json.
    """
    directory = Path(directory)
    if not sets:
        raise ValueError("no prediction sets to report")
    for name, p in sets.items():
        if not isinstance(p, Predictions):
            raise TypeError(f"set {name!r} is a {type(p).__name__}, not Predictions")
    check_report_directory(directory, overwrite)
    history = [dict(h) for h in history] if history else []
    result = {
        "units": dict(UNITS),
        "sets": {name: metrics(p) for name, p in sets.items()},
        "history": history,
    }
    if notes:
        result["notes"] = list(notes)
    result = json_clean(result)
    directory.mkdir(parents=True, exist_ok=True)
    written = []

    def out(name: str) -> Path:
        written.append(name)
        return directory / name

    with atomic_open(out("metrics.json")) as f:
        json.dump(result, f, indent=1, allow_nan=False, ensure_ascii=False)
        f.write("\n")
    colours = config_type_colours(sorted({c for p in sets.values() for c in p.config_types}))
    save_png(parity_figure(sets, "energy", colours), out("parity_energy.png"))
    save_png(parity_figure(sets, "force", colours), out("parity_forces.png"))
    if any(np.isfinite(p.stress_ref).all(axis=(1, 2)).any() for p in sets.values()):
        save_png(parity_figure(sets, "stress", colours), out("parity_stress.png"))
    if history:
        save_png(learning_curve_figure(history, curve_of), out("learning_curve.png"))
    with atomic_open(out("report.md")) as f:
        f.write(_markdown(result, written + ["report.md"]))
    if overwrite:
        for name in REPORT_FILES:
            if name not in written and (directory / name).is_file():
                (directory / name).unlink()
    return result


def check_report_directory(directory: str | os.PathLike, overwrite: bool) -> None:
    """Refuse a report directory that is a file, or exists and is not empty
    (unless `overwrite`), before any work is done."""
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise NotADirectoryError(f"report directory {directory} is a file")
    try:
        check_output_directory(directory)
    except ValueError as err:
        raise ValueError(f"report directory {directory}: {err}") from None
    if directory.is_dir() and any(directory.iterdir()) and not overwrite:
        raise FileExistsError(
            f"report directory {directory} exists and is not empty; "
            "choose another directory or allow overwriting (--force)"
        )


def _rows(m: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    return list(m["config_types"].items()) + [("**all**", m["overall"])]


def _per_structure_table(result: Mapping[str, Any]) -> list[str]:
    """The energy error per structure (eV) and the virial per atom (meV/atom,
    DeePMD-kit's "virial / natoms"), where the metrics have them."""
    lines = ["Per structure: the energy error in eV (not divided by the atom count) and the virial per atom "
             "W/N = −σV/N (meV/atom), the six components.", "",
             "| set | config_type | E MAE (eV) | E RMSE (eV) | E max (eV) | W/N MAE | W/N RMSE | W/N max |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for name, m in result["sets"].items():
        for ct, g in _rows(m):
            energy = [fmt_number(g.get(f"energy_{s}_eV"), 4) for s in ("mae", "rmse", "max")]
            virial = [fmt_number(g.get(f"virial_{s}_meV_atom"), 2) for s in ("mae", "rmse", "max")]
            lines.append(f"| {name} | {ct} | " + " | ".join(energy + virial) + " |")
    lines.append("")
    return lines


def _markdown(result: Mapping[str, Any], files: Sequence[str]) -> str:
    lines = ["# Model report", ""]
    lines.append("Errors are prediction − reference: energy per atom (meV/atom), force components (eV/Å), "
                 "the six stress components (GPa); MAE, RMSE and max |error|.")
    lines.append("")
    lines.append("| set | config_type | structures | atoms | E MAE | E RMSE | E max | F MAE | F RMSE | F max "
                 "| σ MAE | σ RMSE | σ max |")
    lines.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, m in result["sets"].items():
        for ct, g in _rows(m):
            lines.append(
                f"| {name} | {ct} | {g['n_structures']} | {g['n_atoms']} | "
                f"{fmt_number(g['energy_mae_meV_atom'], 2)} | {fmt_number(g['energy_rmse_meV_atom'], 2)} | "
                f"{fmt_number(g['energy_max_meV_atom'], 2)} | "
                f"{fmt_number(g['force_mae_eV_A'], 4)} | {fmt_number(g['force_rmse_eV_A'], 4)} | "
                f"{fmt_number(g['force_max_eV_A'], 4)} | "
                f"{fmt_number(g['stress_mae_GPa'], 3)} | {fmt_number(g['stress_rmse_GPa'], 3)} | "
                f"{fmt_number(g['stress_max_GPa'], 3)} |"
            )
    lines.append("")
    lines += _per_structure_table(result)
    for note in result.get("notes", []):
        lines.append(f"- {note}")
    if result.get("notes"):
        lines.append("")
    history = result.get("history") or []
    if history:
        last = history[-1]
        lines.append(f"Training history: {len(history)} entries (last epoch {last.get('epoch')}).")
        lines.append("")
    for name, caption in (("parity_energy.png", "Energy parity"), ("parity_forces.png", "Force parity"),
                          ("parity_stress.png", "Stress parity"), ("learning_curve.png", "Learning curve")):
        if name in files:
            lines.append(f"![{caption}]({name})")
            lines.append("")
    lines.append("Numbers: `metrics.json`.")
    return "\n".join(lines) + "\n"
