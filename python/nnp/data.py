"""Labelled structures for training: reading, checking, splitting, featurising.

`read_structures` reads any format ASE reads with energies and forces (extxyz,
Quantum Espresso output, VASP OUTCAR, ...) and refuses bad frames with a
ValueError naming the file and the frame (counted from 0, as ASE's ``index``).

`FeaturizedDataset` holds the descriptors of every structure once, as
concatenated float64 torch tensors per centre element with per-structure
offsets, so that `collate` can assemble any batch of structures by gathering
index ranges and shifting indices (no Python loop over structures or atoms).

Units: Å, eV, eV/Å, stress in eV/Å³ (ASE convention: tension positive).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

import numpy as np
import torch
from ase import Atoms

MIN_DISTANCE = 0.1  # Å; closer atoms are treated as duplicates
DEFAULT_CONFIG_TYPE = "default"

# --------------------------------------------------------------------- reading


def read_structures(
    path: str | os.PathLike,
    elements: Sequence[str] | None = None,
    format: str | None = None,
    index: str = ":",
) -> list[Atoms]:
    """All frames of `path` with energy, forces and (if present) stress.

    Each returned Atoms keeps its ASE calculator results; `energy` (eV),
    `forces` (n, 3) and, when the file has it, `stress` are checked to be
    present, finite and of the right shape. With `elements`, every atom must be
    one of them.
    """
    import ase.io

    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"training data file {path} does not exist")
    if os.path.getsize(path) == 0:
        raise ValueError(f"{path}: the file is empty (no structures)")
    frames: list[Atoms] = []
    it = ase.io.iread(path, index=index, format=format)
    while True:
        try:
            atoms = next(it)
        except StopIteration:
            break
        except Exception as err:  # ASE raises many types for malformed input
            raise ValueError(f"{path}: frame {len(frames)}: cannot be read: {err}") from err
        _check_frame(atoms, path, len(frames), elements)
        frames.append(atoms)
    if not frames:
        raise ValueError(f"{path}: no structures found")
    return frames


def _check_frame(atoms: Atoms, path: str, frame: int, elements: Sequence[str] | None) -> None:
    where = f"{path}: frame {frame}"
    n = len(atoms)
    if n == 0:
        raise ValueError(f"{where}: has no atoms")
    if not np.all(np.isfinite(atoms.positions)):
        raise ValueError(f"{where}: positions contain NaN or inf")
    if not np.all(np.isfinite(atoms.cell.array)):
        raise ValueError(f"{where}: the cell contains NaN or inf")
    if elements is not None:
        bad = sorted(set(atoms.get_chemical_symbols()) - set(elements))
        if bad:
            raise ValueError(f"{where}: element(s) {', '.join(bad)} not in the element list {list(elements)}")
    results = getattr(atoms.calc, "results", None) or {}
    energy = results.get("energy")
    if energy is None:
        raise ValueError(f"{where}: no energy (every training frame needs a total energy)")
    energy = np.asarray(energy, dtype=float)
    if energy.size != 1:
        raise ValueError(f"{where}: energy must be one number, found shape {energy.shape}")
    if not np.isfinite(energy).all():
        raise ValueError(f"{where}: energy is {float(energy)}")
    forces = results.get("forces")
    if forces is None:
        raise ValueError(f"{where}: no forces (every training frame needs forces)")
    forces = np.asarray(forces, dtype=float)
    if forces.shape != (n, 3):
        raise ValueError(f"{where}: forces have shape {forces.shape}, expected ({n}, 3) for {n} atoms")
    if not np.all(np.isfinite(forces)):
        raise ValueError(f"{where}: forces contain NaN or inf")
    stress = results.get("stress")
    if stress is not None:
        stress = np.asarray(stress, dtype=float)
        if stress.shape not in ((6,), (3, 3)):
            raise ValueError(f"{where}: stress has shape {stress.shape}, expected (6,) or (3, 3)")
        if not np.all(np.isfinite(stress)):
            raise ValueError(f"{where}: stress contains NaN or inf")
    if n > 1 or atoms.pbc.any():
        from ase.neighborlist import neighbor_list

        try:
            i, j, d = neighbor_list("ijd", atoms, MIN_DISTANCE)
        except Exception as err:
            raise ValueError(f"{where}: cannot build a neighbour list (degenerate cell?): {err}") from err
        if len(i):
            k = int(np.argmin(d))
            raise ValueError(
                f"{where}: atoms {i[k]} and {j[k]} are {d[k]:.3g} Å apart "
                f"(< {MIN_DISTANCE} Å: duplicated atoms?)"
            )


def labels(atoms: Atoms) -> tuple[float, np.ndarray, np.ndarray | None]:
    """(energy, forces (n, 3), stress (3, 3) or None) of a checked frame;
    NaN energy/forces for an unlabelled structure."""
    results = getattr(atoms.calc, "results", None) or {}
    energy = float(results["energy"]) if "energy" in results else math.nan
    forces = np.asarray(results["forces"], dtype=float) if "forces" in results else np.full((len(atoms), 3), math.nan)
    stress = results.get("stress")
    if stress is not None:
        stress = np.asarray(stress, dtype=float)
        if stress.shape == (6,):
            xx, yy, zz, yz, xz, xy = stress
            stress = np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])
    return energy, forces, stress


def split(n: int, validation_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic random split of range(n): (train indices, validation
    indices), both sorted. At least one structure trains; a positive fraction
    holds out at least one structure when n >= 2."""
    if n < 1:
        raise ValueError("cannot split an empty data set")
    if not 0.0 <= validation_fraction < 1.0:
        raise ValueError(f"validation_fraction must be in [0, 1), got {validation_fraction}")
    n_val = int(round(n * validation_fraction))
    if validation_fraction > 0 and n >= 2:
        n_val = max(n_val, 1)
    n_val = min(n_val, n - 1)
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


# ------------------------------------------------------------ featurised data


@dataclass
class ElementBlock:
    """Descriptors of all atoms of one centre element.

    In a `FeaturizedDataset` indices are global (rows of this block, atoms of
    the whole data set); in a `Batch` they are local to the batch.
      G            (R, M)     descriptor rows
      atom         (R,)       atom index of each row
      row_struct   (R,)       structure of each row
      pair_center  (P,)       row of G of the centre of each neighbour entry
      pair_neighbor(P,)       atom index of the neighbour (image folded back)
      pair_vector  (P, 3)     r_ij = r_j − r_i (Å)
      dG_dr        (P, M, 3)  ∂G_i/∂r_ij
      pair_struct  (P,)       structure of each neighbour entry
    """

    G: torch.Tensor
    atom: torch.Tensor
    row_struct: torch.Tensor
    pair_center: torch.Tensor
    pair_neighbor: torch.Tensor
    pair_vector: torch.Tensor
    dG_dr: torch.Tensor
    pair_struct: torch.Tensor


@dataclass
class Batch:
    """A collated set of structures (all indices local to the batch)."""

    indices: torch.Tensor  # (S,) structure indices in the data set
    n_atoms: torch.Tensor  # (S,)
    atom_struct: torch.Tensor  # (N,)
    energy: torch.Tensor  # (S,) eV (NaN if unlabelled)
    forces: torch.Tensor  # (N, 3) eV/Å
    stress: torch.Tensor  # (S, 3, 3) eV/Å³ (NaN where absent)
    volume: torch.Tensor  # (S,) Å³ (NaN unless fully periodic)
    blocks: dict[str, ElementBlock]

    @property
    def n_structures(self) -> int:
        return int(self.n_atoms.shape[0])

    @property
    def n_total_atoms(self) -> int:
        return int(self.atom_struct.shape[0])


def _gather_ranges(offsets: torch.Tensor, idx: torch.Tensor):
    """Concatenated ranges offsets[s] .. offsets[s+1]−1 for s in idx.

    Returns (gather index, batch position of each gathered entry, new offsets).
    """
    starts = offsets[idx]
    lens = offsets[idx + 1] - starts
    new_offsets = torch.zeros(len(idx) + 1, dtype=torch.long)
    torch.cumsum(lens, 0, out=new_offsets[1:])
    pos = torch.repeat_interleave(torch.arange(len(idx)), lens)
    gather = torch.arange(int(new_offsets[-1])) + (starts - new_offsets[:-1])[pos]
    return gather, pos, new_offsets


class FeaturizedDataset:
    """Descriptors and labels of a list of structures, ready to batch.

    Built with `from_structures`; `collate(indices)` returns a `Batch`.
    """

    def __init__(
        self,
        elements: tuple[str, ...],
        n_atoms: torch.Tensor,
        energy: torch.Tensor,
        forces: torch.Tensor,
        stress: torch.Tensor,
        volume: torch.Tensor,
        composition: torch.Tensor,
        config_types: list[str],
        blocks: dict[str, ElementBlock],
    ):
        self.elements = tuple(elements)
        self.n_atoms = n_atoms
        self.energy = energy
        self.forces = forces
        self.stress = stress
        self.volume = volume
        self.composition = composition  # (S, n_elements) atom counts
        self.config_types = list(config_types)
        self.blocks = blocks
        S = len(n_atoms)
        self.atom_offsets = torch.zeros(S + 1, dtype=torch.long)
        torch.cumsum(n_atoms, 0, out=self.atom_offsets[1:])
        self.atom_struct = torch.repeat_interleave(torch.arange(S), n_atoms)
        self.row_offsets = {e: self._offsets(b.row_struct, S) for e, b in blocks.items()}
        self.pair_offsets = {e: self._offsets(b.pair_struct, S) for e, b in blocks.items()}

    @staticmethod
    def _offsets(struct_of_entry: torch.Tensor, S: int) -> torch.Tensor:
        if len(struct_of_entry) > 1 and bool((struct_of_entry[1:] < struct_of_entry[:-1]).any()):
            raise ValueError("entries must be grouped by structure")
        counts = torch.bincount(struct_of_entry, minlength=S)
        off = torch.zeros(S + 1, dtype=torch.long)
        torch.cumsum(counts, 0, out=off[1:])
        return off

    def __len__(self) -> int:
        return int(self.n_atoms.shape[0])

    @property
    def n_total_atoms(self) -> int:
        return int(self.atom_offsets[-1])

    def nbytes(self) -> int:
        total = 0
        for b in self.blocks.values():
            total += sum(t.element_size() * t.nelement() for t in vars(b).values())
        return total

    @classmethod
    def from_structures(
        cls,
        structures: Sequence[Atoms],
        descriptors,
        featurize: Callable[[Atoms], dict] | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> "FeaturizedDataset":
        """Featurise `structures` with `featurize(atoms)` (default:
        ``descriptors.featurize(atoms, derivatives=True)``, the C++ core)."""
        if featurize is None:

            def featurize(atoms):
                return descriptors.featurize(atoms, derivatives=True)

        elements = tuple(descriptors.elements)
        S = len(structures)
        if S == 0:
            raise ValueError("no structures to featurise")
        parts: dict[str, dict[str, list]] = {e: {k: [] for k in ElementBlock.__dataclass_fields__} for e in elements}
        rows_so_far = {e: 0 for e in elements}
        energy = np.full(S, math.nan)
        stress = np.full((S, 3, 3), math.nan)
        volume = np.full(S, math.nan)
        forces, n_atoms, config_types = [], [], []
        composition = np.zeros((S, len(elements)))
        atom_offset = 0
        for s, atoms in enumerate(structures):
            n = len(atoms)
            e_s, f_s, st_s = labels(atoms)
            energy[s] = e_s
            forces.append(f_s)
            if atoms.pbc.all():
                volume[s] = atoms.get_volume()
                if st_s is not None:
                    stress[s] = st_s
            n_atoms.append(n)
            config_types.append(str(atoms.info.get("config_type", DEFAULT_CONFIG_TYPE)))
            symbols = atoms.get_chemical_symbols()
            for k, e in enumerate(elements):
                composition[s, k] = symbols.count(e)
            feats = featurize(atoms)
            for e in elements:
                f = feats[e]
                p = parts[e]
                R = len(f["atoms"])
                P = len(f["pair_center"])
                p["G"].append(np.asarray(f["G"], dtype=np.float64).reshape(R, descriptors.size(e)))
                p["atom"].append(np.asarray(f["atoms"], dtype=np.int64) + atom_offset)
                p["row_struct"].append(np.full(R, s, dtype=np.int64))
                p["pair_center"].append(np.asarray(f["pair_center"], dtype=np.int64) + rows_so_far[e])
                p["pair_neighbor"].append(np.asarray(f["pair_neighbor"], dtype=np.int64) + atom_offset)
                p["pair_vector"].append(np.asarray(f["pair_vector"], dtype=np.float64).reshape(P, 3))
                p["dG_dr"].append(np.asarray(f["dG_dr"], dtype=np.float64).reshape(P, descriptors.size(e), 3))
                p["pair_struct"].append(np.full(P, s, dtype=np.int64))
                rows_so_far[e] += R
            atom_offset += n
            if progress is not None:
                progress(s + 1, S)
        blocks = {}
        for e in elements:
            t = {k: torch.from_numpy(np.concatenate(v)) for k, v in parts[e].items()}
            del parts[e]
            blocks[e] = ElementBlock(**t)
        return cls(
            elements,
            torch.tensor(n_atoms, dtype=torch.long),
            torch.from_numpy(energy),
            torch.from_numpy(np.concatenate(forces).reshape(-1, 3)),
            torch.from_numpy(stress),
            torch.from_numpy(volume),
            torch.from_numpy(composition),
            config_types,
            blocks,
        )

    def collate(self, indices: Iterable[int] | torch.Tensor) -> Batch:
        """The structures `indices` (in that order) as one batch."""
        idx = torch.as_tensor(np.asarray(indices, dtype=np.int64).reshape(-1))
        if len(idx) == 0:
            raise ValueError("empty batch")
        a_gather, a_pos, a_off = _gather_ranges(self.atom_offsets, idx)
        # An atom a of structure s becomes a − atom_offsets[s] + a_off[pos(s)].
        atom_shift = a_off[:-1] - self.atom_offsets[idx]  # per batch position
        blocks = {}
        for e, b in self.blocks.items():
            r_gather, r_pos, r_off = _gather_ranges(self.row_offsets[e], idx)
            row_shift = r_off[:-1] - self.row_offsets[e][idx]
            p_gather, p_pos, _ = _gather_ranges(self.pair_offsets[e], idx)
            # index_select is several times faster than b.dG_dr[p_gather].
            blocks[e] = ElementBlock(
                G=b.G.index_select(0, r_gather),
                atom=b.atom.index_select(0, r_gather) + atom_shift[r_pos],
                row_struct=r_pos,
                pair_center=b.pair_center.index_select(0, p_gather) + row_shift[p_pos],
                pair_neighbor=b.pair_neighbor.index_select(0, p_gather) + atom_shift[p_pos],
                pair_vector=b.pair_vector.index_select(0, p_gather),
                dG_dr=b.dG_dr.index_select(0, p_gather),
                pair_struct=p_pos,
            )
        return Batch(
            indices=idx,
            n_atoms=self.n_atoms[idx],
            atom_struct=a_pos,
            energy=self.energy[idx],
            forces=self.forces.index_select(0, a_gather),
            stress=self.stress[idx],
            volume=self.volume[idx],
            blocks=blocks,
        )
