"""Per-structure and per-atom predictions beside their references, as
plain-text columns (`nnp evaluate --detail PREFIX`), in the spirit of
DeePMD-kit's `dp test --detail-file`:

  PREFIX.e.out          structure, atoms, E_ref, E_pred             eV per structure
  PREFIX.e_peratom.out  structure, atoms, E_ref/N, E_pred/N         eV/atom
  PREFIX.f.out          structure, atom, F_ref xyz, F_pred xyz      eV/Å
  PREFIX.s.out          structure, σ_ref and σ_pred, Voigt order    GPa (ASE sign: tension positive)
  PREFIX.v.out          structure, W_ref and W_pred, 9 components   eV (W = −σV, DeePMD-kit's virial)
  PREFIX.v_peratom.out  the same divided by the atom count          eV/atom

Each file starts with a `#` line naming the columns and their units, so
`numpy.loadtxt` reads it. Stress and virial rows are written for the
periodic structures only; a missing reference is `nan`.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np

from nnp.analysis.metrics import Predictions
from nnp.constants import EV_PER_A3_IN_GPA, VOIGT_I, VOIGT_J
from nnp.io.atomic import atomic_write_text

SUFFIXES = ("e.out", "e_peratom.out", "f.out", "s.out", "v.out", "v_peratom.out")
VOIGT = ("xx", "yy", "zz", "yz", "xz", "xy")
TENSOR = ("xx", "xy", "xz", "yx", "yy", "yz", "zx", "zy", "zz")


def detail_paths(prefix: str | os.PathLike) -> list[Path]:
    """The files `write_detail(prefix, ...)` writes."""
    return [Path(f"{os.fspath(prefix)}.{suffix}") for suffix in SUFFIXES]


def _table(header: str, columns: list[np.ndarray], integer_columns: int) -> str:
    """`header` line, then one row per entry: the first `integer_columns`
    columns as integers, the rest with full double precision."""
    data = np.column_stack(columns) if columns[0].size else np.zeros((0, len(columns)))
    buf = io.StringIO()
    fmt = ["%d"] * integer_columns + ["%.10g"] * (data.shape[1] - integer_columns)
    np.savetxt(buf, data, fmt=fmt, header=header, comments="# ")
    return buf.getvalue()


def detail_tables(p: Predictions) -> dict[str, str]:
    """The text of each detail file, by suffix."""
    S = p.n_structures
    structure = np.arange(S)
    n = p.n_atoms.astype(float)
    tables = {
        "e.out": _table("structure atoms E_ref(eV) E_pred(eV)",
                        [structure, p.n_atoms, p.energy_ref, p.energy_pred], 2),
        "e_peratom.out": _table("structure atoms E_ref/N(eV/atom) E_pred/N(eV/atom)",
                                [structure, p.n_atoms, p.energy_ref / n, p.energy_pred / n], 2),
    }
    atom = np.concatenate([np.arange(k) for k in p.n_atoms]) if S else np.zeros(0, int)
    tables["f.out"] = _table(
        "structure atom " + " ".join(f"F{c}_ref(eV/A)" for c in "xyz") + " "
        + " ".join(f"F{c}_pred(eV/A)" for c in "xyz"),
        [p.atom_struct, atom, *p.forces_ref.T, *p.forces_pred.T], 2)
    periodic = np.isfinite(p.stress_pred).all(axis=(1, 2))
    if p.volume is not None:
        periodic &= np.isfinite(p.volume)
    rows = np.flatnonzero(periodic)
    gpa = EV_PER_A3_IN_GPA
    s_ref = p.stress_ref[rows][:, VOIGT_I, VOIGT_J] * gpa
    s_pred = p.stress_pred[rows][:, VOIGT_I, VOIGT_J] * gpa
    tables["s.out"] = _table(
        "structure " + " ".join(f"s{c}_ref(GPa)" for c in VOIGT) + " " + " ".join(f"s{c}_pred(GPa)" for c in VOIGT),
        [rows, *s_ref.T, *s_pred.T], 1)
    if p.volume is not None:
        volume = p.volume[rows][:, None, None]
        w_ref = (-p.stress_ref[rows] * volume).reshape(-1, 9)
        w_pred = (-p.stress_pred[rows] * volume).reshape(-1, 9)
        per_atom = p.n_atoms[rows][:, None].astype(float)
        tables["v.out"] = _table(
            "structure " + " ".join(f"v{c}_ref(eV)" for c in TENSOR) + " " + " ".join(f"v{c}_pred(eV)" for c in TENSOR),
            [rows, *w_ref.T, *w_pred.T], 1)
        tables["v_peratom.out"] = _table(
            "structure atoms " + " ".join(f"v{c}_ref/N(eV/atom)" for c in TENSOR) + " "
            + " ".join(f"v{c}_pred/N(eV/atom)" for c in TENSOR),
            [rows, p.n_atoms[rows], *(w_ref / per_atom).T, *(w_pred / per_atom).T], 2)
    return tables


def write_detail(prefix: str | os.PathLike, p: Predictions) -> list[Path]:
    """Write the detail files of `p` (atomically); returns their paths.
    Virial files only when `p` knows the cell volumes."""
    written = []
    for suffix, text in detail_tables(p).items():
        path = Path(f"{os.fspath(prefix)}.{suffix}")
        atomic_write_text(path, text)
        written.append(path)
    return written
