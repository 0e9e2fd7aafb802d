"""The published n2p2 potentials as md_speed.py cases: each converted with
`nnp.convert` (the exact unit factors of reference.json) and run on one of
its own structures from ../shared/data/n2p2-examples/reference.json, a
periodic one repeated to about 4,000 atoms (water box, Cu2S crystal), the
DMABN molecule alone in a non-periodic box.

A case is (label, LAMMPS lines that create the system, pair lines, atoms).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

N2P2_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "n2p2-examples"
# name in reference.json → what it stands for in the table
CASES = {"H2O_RPBE-D3": "water box", "Cu2S_PBE": "Cu2S crystal", "DMABN_SCAN": "DMABN molecule"}
TARGET_ATOMS = 4096
MOLECULE_VACUUM = 10.0  # Å of empty space around a molecule on each side


def _lammps_frame(positions: np.ndarray, cell: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cell and positions rotated so that the cell is lower-triangular (LAMMPS's restricted triclinic)."""
    q, u = np.linalg.qr(cell.T)
    q = q * np.sign(np.diag(u))
    frac = np.linalg.solve(cell.T, positions.T).T % 1.0  # wrapped: some frames hold atoms outside the cell
    return frac @ (cell @ q), cell @ q


def _data_file(path: Path, symbols: list[str], positions: np.ndarray, cell: np.ndarray,
               elements: tuple[str, ...]) -> None:
    from ase.data import atomic_masses, atomic_numbers

    (ax, _, _), (bx, by, _), (cx, cy, cz) = cell.tolist()
    lines = ["n2p2 example structure (md_speed.py)", "", f"{len(symbols)} atoms", f"{len(elements)} atom types",
             f"0 {ax!r} xlo xhi", f"0 {by!r} ylo yhi", f"0 {cz!r} zlo zhi", f"{bx!r} {cx!r} {cy!r} xy xz yz",
             "", "Masses", ""]
    lines += [f"{t + 1} {atomic_masses[atomic_numbers[e]]}" for t, e in enumerate(elements)]
    lines += ["", "Atoms # atomic", ""]
    lines += [f"{i + 1} {elements.index(s) + 1} {x!r} {y!r} {z!r}" for i, (s, (x, y, z)) in
              enumerate(zip(symbols, positions.tolist()))]
    path.write_text("\n".join(lines) + "\n")


def cases(workdir: Path) -> list[tuple[str, str, str, int]]:
    """The md_speed cases of the n2p2 potentials; [] without the shared data."""
    from nnp import convert
    from nnp.io import potential_file as pf

    if not (N2P2_DIR / "reference.json").is_file():
        return []
    reference = {p["name"]: p for p in json.loads((N2P2_DIR / "reference.json").read_text())["potentials"]}
    out = []
    for name, label in CASES.items():
        entry = reference[name]
        data = convert.convert_n2p2(N2P2_DIR / "potentials" / name,
                                    convert.UnitFactors(cflength=entry["cflength"], cfenergy=entry["cfenergy"]))
        potential = workdir / f"{name}.nnp"
        pf.write(data, potential)
        elements = tuple(data.elements)
        s = max(entry["structures"], key=lambda s: len(s["symbols"]))
        symbols, positions = list(s["symbols"]), np.array(s["positions_A"])
        if s["cell_A"] is not None and all(s["pbc"]):
            reps = max(1, round((TARGET_ATOMS / len(symbols)) ** (1 / 3)))
            positions, cell = _lammps_frame(positions, np.array(s["cell_A"]))
            shifts = [i * cell[0] + j * cell[1] + k * cell[2] for i in range(reps) for j in range(reps)
                      for k in range(reps)]
            positions = np.concatenate([positions + v for v in shifts])
            symbols, cell = symbols * len(shifts), cell * reps
            boundary = "p p p"
        else:
            positions = positions - positions.min(axis=0) + MOLECULE_VACUUM
            cell = np.diag(positions.max(axis=0) + MOLECULE_VACUUM)
            boundary = "s s s"
        path = workdir / f"{name}.data"
        _data_file(path, symbols, positions, cell, elements)
        system = f"boundary {boundary}\nread_data {path}\n"
        pair = f"pair_style nnp\npair_coeff * * {potential} {' '.join(elements)}"
        out.append((f"n2p2 {label}", system, pair, len(symbols)))
    return out


def steps_for(atoms: int, steps: int) -> int:
    """Steps that give a small system about the work of 4,096 atoms × `steps` (timer resolution)."""
    return steps * max(1, math.ceil(TARGET_ATOMS / atoms))
