"""Error metrics, parity plots and report files: the one place they are made.

    p = predict_model(model, data, indices)            # torch model, featurised data
    p = predict_potential("Si.nnp", structures)        # the C++ core (what LAMMPS computes)
    m = metrics(p)                                     # overall and per config_type
    print(format_table(m))
    write_report("report/", {"train": p_train, "validation": p_val}, history)

Error definitions (prediction − reference):
  energy   per-atom error (E_pred − E_ref)/N of each structure, meV/atom
  forces   every Cartesian component of every atom, eV/Å
  stress   the 6 independent components (xx yy zz yz xz xy) of every structure
           with a stress label, GPa (1 eV/Å³ = 160.2177 GPa)
MAE = mean |error|, RMSE = sqrt(mean error²), max = max |error|. A reference
that is missing (NaN) takes its structure/atom out of that quantity; a
prediction that is not finite where a reference exists makes the statistics
of that quantity None and is counted in ``n_nonfinite``.

Plots use matplotlib's Agg canvas directly (no pyplot, no global backend
change); matplotlib is imported only when a report is written.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from ase.units import GPa as _GPA

from nnp.data import DEFAULT_CONFIG_TYPE, atomic_open, labels

GPA_PER_EV_A3 = 1.0 / _GPA  # 160.2177 GPa in 1 eV/Å³
UNITS = {"energy": "meV/atom", "force": "eV/Å", "stress": "GPa"}
# Voigt components in ASE order xx yy zz yz xz xy.
_VOIGT = (np.array([0, 1, 2, 1, 0, 0]), np.array([0, 1, 2, 2, 2, 1]))
_QUANTITIES = ("energy", "force", "stress")
# Files write_report may write; with overwrite, those not rewritten are removed
# so that a directory never mixes two reports.
REPORT_FILES = (
    "metrics.json", "report.md", "parity_energy.png", "parity_forces.png", "parity_stress.png",
    "learning_curve.png",
)
HISTORY_KEYS = ("epoch", "train_energy_rmse", "train_force_rmse", "val_energy_rmse", "val_force_rmse")


# ---------------------------------------------------------------- predictions


@dataclass
class Predictions:
    """Reference and predicted labels of S structures with N atoms in all
    (plain numpy, float64).

      config_types  list[str] (S)
      n_atoms       (S,)      atoms per structure
      energy_ref    (S,)      eV (NaN: no label)
      energy_pred   (S,)      eV
      atom_struct   (N,)      structure of each atom (atoms grouped by structure)
      forces_ref    (N, 3)    eV/Å (NaN: no label)
      forces_pred   (N, 3)    eV/Å
      stress_ref    (S, 3, 3) eV/Å³, ASE sign (tension positive); NaN where a
                              structure has no stress label or is not periodic
      stress_pred   (S, 3, 3) eV/Å³; NaN where the structure is not periodic
      extrapolating_atoms (S,) or None: atoms outside the descriptor range
                              seen in training (set by predict_potential)
    """

    config_types: list[str]
    n_atoms: np.ndarray
    energy_ref: np.ndarray
    energy_pred: np.ndarray
    atom_struct: np.ndarray
    forces_ref: np.ndarray
    forces_pred: np.ndarray
    stress_ref: np.ndarray
    stress_pred: np.ndarray
    extrapolating_atoms: np.ndarray | None = None

    def __post_init__(self):
        self.config_types = [str(c) for c in self.config_types]
        S = len(self.config_types)
        self.n_atoms = np.asarray(self.n_atoms, dtype=np.int64).reshape(-1)
        self.atom_struct = np.asarray(self.atom_struct, dtype=np.int64).reshape(-1)
        for name in ("energy_ref", "energy_pred", "forces_ref", "forces_pred", "stress_ref", "stress_pred"):
            setattr(self, name, np.asarray(getattr(self, name), dtype=np.float64))
        N = int(self.n_atoms.sum())
        want = {
            "n_atoms": (S,), "energy_ref": (S,), "energy_pred": (S,), "atom_struct": (N,),
            "forces_ref": (N, 3), "forces_pred": (N, 3), "stress_ref": (S, 3, 3), "stress_pred": (S, 3, 3),
        }
        for name, shape in want.items():
            if getattr(self, name).shape != shape:
                raise ValueError(
                    f"Predictions.{name} has shape {getattr(self, name).shape}, expected {shape} "
                    f"for {S} structures with {N} atoms"
                )
        if np.any(self.atom_struct != np.repeat(np.arange(S), self.n_atoms)):
            raise ValueError("Predictions.atom_struct must list the atoms of structure 0, then 1, ... (n_atoms each)")
        if self.extrapolating_atoms is not None:
            self.extrapolating_atoms = np.asarray(self.extrapolating_atoms, dtype=np.int64).reshape(-1)
            if self.extrapolating_atoms.shape != (S,):
                raise ValueError(f"Predictions.extrapolating_atoms must have shape ({S},)")

    @property
    def n_structures(self) -> int:
        return len(self.config_types)

    def subset(self, structures: Sequence[int] | np.ndarray) -> "Predictions":
        """The structures `structures` (indices or a boolean mask), in that order."""
        idx = np.asarray(structures)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        idx = idx.astype(np.int64).reshape(-1)
        offsets = np.concatenate([[0], np.cumsum(self.n_atoms)])
        atoms = np.concatenate([np.arange(offsets[s], offsets[s + 1]) for s in idx]) if len(idx) else np.zeros(0, int)
        n = self.n_atoms[idx]
        return Predictions(
            [self.config_types[s] for s in idx], n,
            self.energy_ref[idx], self.energy_pred[idx],
            np.repeat(np.arange(len(idx)), n),
            self.forces_ref[atoms], self.forces_pred[atoms],
            self.stress_ref[idx], self.stress_pred[idx],
            None if self.extrapolating_atoms is None else self.extrapolating_atoms[idx],
        )

    @classmethod
    def concatenate(cls, parts: Sequence["Predictions"]) -> "Predictions":
        """The structures of all `parts`, in order."""
        if not parts:
            raise ValueError("nothing to concatenate")
        n_atoms = np.concatenate([p.n_atoms for p in parts])
        extrap = None
        if all(p.extrapolating_atoms is not None for p in parts):
            extrap = np.concatenate([p.extrapolating_atoms for p in parts])
        return cls(
            [c for p in parts for c in p.config_types], n_atoms,
            np.concatenate([p.energy_ref for p in parts]), np.concatenate([p.energy_pred for p in parts]),
            np.repeat(np.arange(len(n_atoms)), n_atoms),
            np.concatenate([p.forces_ref for p in parts]), np.concatenate([p.forces_pred for p in parts]),
            np.concatenate([p.stress_ref for p in parts]), np.concatenate([p.stress_pred for p in parts]),
            extrap,
        )


def predict_model(model, data, indices, batch_size: int = 32) -> Predictions:
    """Predictions of a `nnp.model.network.NNPModel` for the structures `indices` of a
    `nnp.data.FeaturizedDataset`, in that order, `batch_size` structures at a
    time. Runs under torch.no_grad (the model's forward enables autograd only
    for dE/dG, which forces need); the model's mode is left as it is."""
    import torch

    idx = np.asarray(indices, dtype=np.int64).reshape(-1)
    if len(idx) == 0:
        raise ValueError("no structures to predict")
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    try:
        device = next(model.parameters()).device
    except StopIteration:
        device = torch.device("cpu")

    def cpu(t):
        return t.detach().to("cpu", torch.float64).numpy()

    parts = []
    with torch.no_grad():
        for start in range(0, len(idx), batch_size):
            chunk = idx[start : start + batch_size]
            batch = data.collate(chunk)
            if device.type != "cpu":
                batch = batch.to(device)
            out = model(batch, forces=True, stress=True)
            parts.append(
                Predictions(
                    [data.config_types[int(s)] for s in chunk], cpu(batch.n_atoms),
                    cpu(batch.energy), cpu(out["energy"]),
                    cpu(batch.atom_struct), cpu(batch.forces), cpu(out["forces"]),
                    cpu(batch.stress), cpu(out["stress"]),
                )
            )
    return Predictions.concatenate(parts)


def load_potential(path: str | os.PathLike):
    """A `nnp._core.Potential` from a file, with a clear error when the file
    is missing or cannot be read."""
    from nnp import _core

    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"potential file {path} does not exist")
    if os.path.isdir(path):
        raise ValueError(f"{path} is a directory, not a potential file")
    try:
        return _core.Potential(path)
    except (ValueError, RuntimeError) as err:
        msg = str(err)
        raise ValueError(msg if path in msg else f"{path}: {msg}") from err


def predict_potential(potential, structures: Sequence) -> Predictions:
    """Predictions of a potential file (path or `nnp._core.Potential`) for
    ASE structures, through the C++ core: the numbers LAMMPS and
    NNPCalculator compute. References come from each structure's calculator
    results (`nnp.data.labels`); stress only for fully periodic cells."""
    from nnp import _core

    pot = potential if isinstance(potential, _core.Potential) else load_potential(potential)
    name = "the potential" if isinstance(potential, _core.Potential) else os.fspath(potential)
    structures = list(structures)
    if not structures:
        raise ValueError("no structures to predict")
    check_elements(pot.elements, structures, name)
    index = {e: i for i, e in enumerate(pot.elements)}
    S = len(structures)
    energy = np.full(S, math.nan)
    stress = np.full((S, 3, 3), math.nan)
    forces, extrap = [], np.zeros(S, dtype=np.int64)
    for s, atoms in enumerate(structures):
        try:
            out = pot.evaluate(
                np.ascontiguousarray(atoms.positions, dtype=np.float64),
                np.array([index[x] for x in atoms.get_chemical_symbols()], dtype=np.int32),
                np.ascontiguousarray(atoms.cell.array, dtype=np.float64),
                [bool(p) for p in atoms.pbc],
            )
        except (ValueError, RuntimeError) as err:
            raise ValueError(f"structure {s}: {name} cannot evaluate it: {err}") from err
        energy[s] = out["energy"]
        forces.append(out["forces"])
        extrap[s] = out["extrapolating_atoms"]
        if _has_stress(atoms):
            # σ = −W/V (ASE sign), as NNPCalculator and the torch model.
            stress[s] = -np.asarray(out["virial"]) / atoms.get_volume()
    return labelled_predictions(structures, energy, forces, stress, extrap)


def _has_stress(atoms) -> bool:
    """Stress is defined (and compared) for fully periodic cells only."""
    return bool(atoms.pbc.all()) and atoms.cell.rank == 3


def labelled_predictions(structures: Sequence, energy_pred, forces_pred, stress_pred,
                         extrapolating_atoms=None) -> Predictions:
    """`Predictions` of any model's energies (S,), forces (one (n, 3) array
    per structure) and stress ((S, 3, 3), ASE sign) for ASE structures, with
    the references from each structure's calculator results
    (`nnp.data.labels`); stress references only for fully periodic cells."""
    S = len(structures)
    n_atoms = np.array([len(a) for a in structures], dtype=np.int64)
    energy_ref = np.full(S, math.nan)
    stress_ref = np.full((S, 3, 3), math.nan)
    forces_ref = []
    for s, atoms in enumerate(structures):
        e_ref, f_ref, st_ref = labels(atoms)
        energy_ref[s] = e_ref
        forces_ref.append(np.asarray(f_ref, dtype=float).reshape(len(atoms), 3))
        if _has_stress(atoms) and st_ref is not None:
            stress_ref[s] = st_ref
    return Predictions(
        [str(a.info.get("config_type", DEFAULT_CONFIG_TYPE)) for a in structures], n_atoms,
        energy_ref, energy_pred, np.repeat(np.arange(S), n_atoms),
        np.concatenate(forces_ref).reshape(-1, 3),
        np.concatenate([np.asarray(f, dtype=float) for f in forces_pred]).reshape(-1, 3),
        stress_ref, stress_pred, extrapolating_atoms,
    )


def check_elements(known: Sequence[str], structures: Sequence, potential_name: str = "the potential") -> None:
    """ValueError naming every element of `structures` that `known` lacks,
    and the first frames holding it."""
    where: dict[str, list[int]] = {}
    for s, atoms in enumerate(structures):
        for e in set(atoms.get_chemical_symbols()) - set(known):
            where.setdefault(e, []).append(s)
    if where:
        parts = []
        for e in sorted(where):
            frames = where[e]
            shown = ", ".join(map(str, frames[:5])) + (f", ... ({len(frames)} frames)" if len(frames) > 5 else "")
            parts.append(f"{e} (frame {shown})" if len(frames) == 1 else f"{e} (frames {shown})")
        raise ValueError(
            f"{potential_name} has no model for element(s) {'; '.join(parts)}; it knows {', '.join(known)}"
        )


# -------------------------------------------------------------------- metrics


def _errors(p: Predictions) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(reference-present mask, error) per quantity, in report units."""
    e_ok = np.isfinite(p.energy_ref)
    e_err = (p.energy_pred - p.energy_ref)[e_ok] / p.n_atoms[e_ok] * 1000.0  # meV/atom
    f_ok = np.all(np.isfinite(p.forces_ref), axis=1)
    f_err = (p.forces_pred - p.forces_ref)[f_ok].reshape(-1)  # eV/Å
    s_ok = np.all(np.isfinite(p.stress_ref), axis=(1, 2))
    d = (p.stress_pred - p.stress_ref)[s_ok]
    s_err = d[:, _VOIGT[0], _VOIGT[1]].reshape(-1) * GPA_PER_EV_A3  # GPa
    return {"energy": (e_ok, e_err), "force": (f_ok, f_err), "stress": (s_ok, s_err)}


def _stats(err: np.ndarray) -> tuple[float | None, float | None, float | None, int]:
    """(MAE, RMSE, max |error|, non-finite count); None where undefined."""
    bad = int(np.count_nonzero(~np.isfinite(err)))
    if err.size == 0 or bad:
        return None, None, None, bad
    a = np.abs(err)
    return float(a.mean()), float(math.sqrt(float(np.mean(err * err)))), float(a.max()), 0


def _group_metrics(p: Predictions) -> dict[str, Any]:
    errs = _errors(p)
    out: dict[str, Any] = {
        "n_structures": p.n_structures,
        "n_atoms": int(p.n_atoms.sum()),
        "n_stress_structures": int(np.count_nonzero(errs["stress"][0])),
    }
    nonfinite = 0
    for q, unit in (("energy", "meV_atom"), ("force", "eV_A"), ("stress", "GPa")):
        mae, rmse, mx, bad = _stats(errs[q][1])
        out[f"{q}_mae_{unit}"] = mae
        out[f"{q}_rmse_{unit}"] = rmse
        out[f"{q}_max_{unit}"] = mx
        nonfinite += bad
    out["n_nonfinite"] = nonfinite
    return out


def metrics(p: Predictions) -> dict[str, Any]:
    """Counts and energy (meV/atom), force (eV/Å) and stress (GPa) MAE, RMSE
    and max |error|, over all structures ("overall") and per config_type
    ("config_types", sorted by name). Keys carry their unit; a statistic with
    no data (e.g. no stress labels) is None. JSON-serialisable."""
    groups = {}
    types = np.array(p.config_types, dtype=object)
    for ct in sorted(set(p.config_types)):
        groups[ct] = _group_metrics(p.subset(types == ct))
    return {"units": dict(UNITS), "overall": _group_metrics(p), "config_types": groups}


def _fmt(x: float | None, digits: int) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def format_table(m: Mapping[str, Any]) -> str:
    """The per-config_type table of `metrics(p)` as text; also accepts
    {set name: metrics} (as in write_report's "sets") and prints one table
    per set."""
    if "overall" not in m:
        return "\n\n".join(f"{name}\n{format_table(sub)}" for name, sub in m.items())
    rows = [*m["config_types"].items(), ("all", m["overall"])]
    width = max([len("config_type")] + [len(ct) for ct, _ in rows])
    head1 = f"{'':<{width}}  {'':>7} {'':>7}   {'energy (meV/atom)':^17}   {'force (eV/Å)':^15}   {'stress (GPa)':^15}"
    head2 = (f"{'config_type':<{width}}  {'structs':>7} {'atoms':>7}   {'MAE':>8} {'RMSE':>8}   "
             f"{'MAE':>7} {'RMSE':>7}   {'MAE':>7} {'RMSE':>7}")
    lines = [head1, head2]
    for k, (ct, g) in enumerate(rows):
        if k == len(rows) - 1:
            lines.append("-" * len(head2))
        lines.append(
            f"{ct:<{width}}  {g['n_structures']:>7d} {g['n_atoms']:>7d}   "
            f"{_fmt(g['energy_mae_meV_atom'], 2):>8} {_fmt(g['energy_rmse_meV_atom'], 2):>8}   "
            f"{_fmt(g['force_mae_eV_A'], 4):>7} {_fmt(g['force_rmse_eV_A'], 4):>7}   "
            f"{_fmt(g['stress_mae_GPa'], 3):>7} {_fmt(g['stress_rmse_GPa'], 3):>7}"
        )
    overall = m["overall"]
    if overall.get("n_nonfinite"):
        lines.append(f"warning: {overall['n_nonfinite']} predicted values are NaN or inf (their statistics are '-')")
    return "\n".join(lines)


# --------------------------------------------------------------------- report


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
    and under the table of report.md). Returns the contents of metrics.json.
    """
    directory = Path(directory)
    if not sets:
        raise ValueError("no prediction sets to report")
    for name, p in sets.items():
        if not isinstance(p, Predictions):
            raise TypeError(f"set {name!r} is a {type(p).__name__}, not Predictions")
    check_report_directory(directory, overwrite)
    try:  # before anything is written
        import matplotlib  # noqa: F401
    except ImportError as err:
        raise ImportError("writing a report needs matplotlib (pip install matplotlib)") from err
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
    colours = _colours(sorted({c for p in sets.values() for c in p.config_types}))
    _save(_parity_figure(sets, "energy", colours), out("parity_energy.png"))
    _save(_parity_figure(sets, "force", colours), out("parity_forces.png"))
    if any(np.isfinite(p.stress_ref).all(axis=(1, 2)).any() for p in sets.values()):
        _save(_parity_figure(sets, "stress", colours), out("parity_stress.png"))
    if history:
        _save(_learning_curve_figure(history), out("learning_curve.png"))
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
    if directory.is_dir() and any(directory.iterdir()) and not overwrite:
        raise FileExistsError(
            f"report directory {directory} exists and is not empty; "
            "choose another directory or allow overwriting (--force)"
        )


def _save(fig, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    with atomic_open(path, binary=True) as f:
        fig.savefig(f, format="png", dpi=110)


def _colours(config_types: Sequence[str]) -> dict[str, Any]:
    from matplotlib import colormaps

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
    ref = p.stress_ref[ok][:, _VOIGT[0], _VOIGT[1]] * GPA_PER_EV_A3
    pred = p.stress_pred[ok][:, _VOIGT[0], _VOIGT[1]] * GPA_PER_EV_A3
    return ref.reshape(-1), pred.reshape(-1), np.repeat(types[ok], 6)


def _parity_figure(sets: Mapping[str, Predictions], quantity: str, colours: Mapping[str, Any]):
    from matplotlib.figure import Figure

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
        from matplotlib.lines import Line2D

        legend = [Line2D([], [], ls="", marker="o", color=colours[ct], label=ct) for ct in colours if ct in shown]
        # Upper left: the empty corner of a parity plot (prediction far above reference).
        axes[0].legend(handles=legend, loc="upper left", title="config_type", fontsize=8, title_fontsize=8)
    return fig


def _learning_curve_figure(history: Sequence[Mapping[str, Any]]):
    from matplotlib.figure import Figure

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


def _markdown(result: Mapping[str, Any], files: Sequence[str]) -> str:
    lines = ["# Model report", ""]
    lines.append("Errors are prediction − reference: energy per atom (meV/atom), force components (eV/Å), "
                 "the six stress components (GPa); MAE, RMSE and max |error|.")
    lines.append("")
    lines.append("| set | config_type | structures | atoms | E MAE | E RMSE | F MAE | F RMSE | σ MAE | σ RMSE |")
    lines.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, m in result["sets"].items():
        rows = list(m["config_types"].items()) + [("**all**", m["overall"])]
        for ct, g in rows:
            lines.append(
                f"| {name} | {ct} | {g['n_structures']} | {g['n_atoms']} | "
                f"{_fmt(g['energy_mae_meV_atom'], 2)} | {_fmt(g['energy_rmse_meV_atom'], 2)} | "
                f"{_fmt(g['force_mae_eV_A'], 4)} | {_fmt(g['force_rmse_eV_A'], 4)} | "
                f"{_fmt(g['stress_mae_GPa'], 3)} | {_fmt(g['stress_rmse_GPa'], 3)} |"
            )
    lines.append("")
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
