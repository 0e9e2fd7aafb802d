"""Predictions of a potential on labelled structures and their error metrics.

    p = predict_model(model, data, indices)            # torch model, featurised data
    p = predict_potential("Si.nnp", structures)        # the C++ core (what LAMMPS computes)
    m = metrics(p)                                     # overall and per config_type
    print(format_table(m))

Error definitions (prediction − reference):
  energy   per-atom error (E_pred − E_ref)/N of each structure, meV/atom;
           also per structure, E_pred − E_ref in eV (keys energy_*_eV)
  forces   every Cartesian component of every atom, eV/Å
  stress   the 6 independent components (xx yy zz yz xz xy) of every structure
           with a stress label, GPa (1 eV/Å³ = 160.2177 GPa)
  virial   the same 6 components of the virial per atom, W/N = −σV/N, meV/atom
           (DeePMD-kit's "virial / natoms")
MAE = mean |error|, RMSE = sqrt(mean error²), max = max |error|. A reference
that is missing (NaN) takes its structure/atom out of that quantity; a
prediction that is not finite where a reference exists makes the statistics
of that quantity None and is counted in ``n_nonfinite``.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from nnp import _core
from nnp.constants import EV_PER_A3_IN_GPA, VOIGT_I, VOIGT_J
from nnp.data import DEFAULT_CONFIG_TYPE, labels

UNITS = {"energy": "meV/atom", "force": "eV/Å", "stress": "GPa"}
# (metrics key, error name in _errors, unit suffix of the keys). Every key
# carries its unit: energy_*_eV is per structure, virial_*_meV_atom per atom.
QUANTITIES = (("energy", "energy", "meV_atom"), ("energy", "energy_structure", "eV"), ("force", "force", "eV_A"),
              ("stress", "stress", "GPa"), ("virial", "virial", "meV_atom"))


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
      volume        (S,) or None: Å³, NaN where the structure is not periodic;
                              None: not known (then no virial metrics)
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
    volume: np.ndarray | None = None

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
        if self.volume is not None:
            self.volume = np.asarray(self.volume, dtype=np.float64).reshape(-1)
            if self.volume.shape != (S,):
                raise ValueError(f"Predictions.volume must have shape ({S},)")
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
            None if self.volume is None else self.volume[idx],
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
            extrap, None if any(p.volume is None for p in parts) else np.concatenate([p.volume for p in parts]),
        )


def predict_model(model, data, indices, batch_size: int = 32) -> Predictions:
    """Predictions of a `nnp.model.network.NNPModel` for the structures `indices` of a
    `nnp.data.FeaturizedDataset`, in that order, `batch_size` structures at a
    time. Runs under torch.no_grad (the model's forward enables autograd only
    for dE/dG, which forces need); the model's mode is left as it is."""
    import torch  # here: scoring a potential file (nnp.evaluate) runs without torch

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
                    cpu(batch.stress), cpu(out["stress"]), None, cpu(batch.volume),
                )
            )
    return Predictions.concatenate(parts)


def load_potential(path: str | os.PathLike):
    """A `nnp._core.Potential` from a file, with a clear error when the file
    is missing or cannot be read."""
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
    volume = np.full(S, math.nan)
    forces_ref = []
    for s, atoms in enumerate(structures):
        if _has_stress(atoms):
            volume[s] = atoms.get_volume()
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
        stress_ref, stress_pred, extrapolating_atoms, volume,
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
    e_struct = (p.energy_pred - p.energy_ref)[e_ok]  # eV
    e_err = (p.energy_pred - p.energy_ref)[e_ok] / p.n_atoms[e_ok] * 1000.0  # meV/atom
    f_ok = np.all(np.isfinite(p.forces_ref), axis=1)
    f_err = (p.forces_pred - p.forces_ref)[f_ok].reshape(-1)  # eV/Å
    s_ok = np.all(np.isfinite(p.stress_ref), axis=(1, 2))
    d = (p.stress_pred - p.stress_ref)[s_ok]
    s_err = d[:, VOIGT_I, VOIGT_J].reshape(-1) * EV_PER_A3_IN_GPA  # GPa
    # Virial per atom W/N = −σV/N: the stress error in energy units, as DeePMD-kit reports it.
    out = {"energy": (e_ok, e_err), "energy_structure": (e_ok, e_struct), "force": (f_ok, f_err),
           "stress": (s_ok, s_err)}
    if p.volume is not None:
        v_ok = s_ok & np.isfinite(p.volume)
        w = -(p.stress_pred - p.stress_ref)[v_ok] * (p.volume[v_ok] / p.n_atoms[v_ok])[:, None, None]
        out["virial"] = (v_ok, w[:, VOIGT_I, VOIGT_J].reshape(-1) * 1000.0)  # meV/atom
    return out


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
    for q, name, unit in QUANTITIES:
        if name not in errs:
            continue
        mae, rmse, mx, bad = _stats(errs[name][1])
        out[f"{q}_mae_{unit}"] = mae
        out[f"{q}_rmse_{unit}"] = rmse
        out[f"{q}_max_{unit}"] = mx
        if name in ("energy", "force", "stress"):  # the others repeat these values' non-finite ones
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


def fmt_number(x: float | None, digits: int) -> str:
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
            f"{fmt_number(g['energy_mae_meV_atom'], 2):>8} {fmt_number(g['energy_rmse_meV_atom'], 2):>8}   "
            f"{fmt_number(g['force_mae_eV_A'], 4):>7} {fmt_number(g['force_rmse_eV_A'], 4):>7}   "
            f"{fmt_number(g['stress_mae_GPa'], 3):>7} {fmt_number(g['stress_rmse_GPa'], 3):>7}"
        )
    overall = m["overall"]
    if overall.get("n_nonfinite"):
        lines.append(f"warning: {overall['n_nonfinite']} predicted values are NaN or inf (their statistics are '-')")
    return "\n".join(lines)


def format_per_structure(m: Mapping[str, Any]) -> str:
    """One line of `metrics(p)`'s overall energy error per structure (eV)
    and virial per atom (meV/atom); "" when there is neither."""
    overall = m["overall"]
    if overall.get("energy_mae_eV") is None:
        return ""
    line = (f"per structure: energy MAE {overall['energy_mae_eV']:.4f} eV, RMSE {overall['energy_rmse_eV']:.4f} eV, "
            f"max {overall['energy_max_eV']:.4f} eV")
    if overall.get("virial_mae_meV_atom") is not None:
        line += (f"; virial per atom MAE {overall['virial_mae_meV_atom']:.2f} meV/atom, "
                 f"RMSE {overall['virial_rmse_meV_atom']:.2f} meV/atom")
    return line
