"""Featurised training data: the descriptors of every structure once, as
concatenated torch tensors per centre element, ready to batch.

`FeaturizedDataset` keeps per-structure offsets into those tensors, so that
`collate` assembles any batch of structures by gathering index ranges and
shifting indices (no Python loop over structures or atoms). Descriptors are
float64; the derivatives dG/dr optionally float32, as training stores them.
This is the only module of `nnp.data` that needs torch.

Units: Å, eV, eV/Å, stress in eV/Å³ (ASE convention: tension positive).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

import numpy as np
import torch
from ase import Atoms

from nnp.data.frames import DEFAULT_CONFIG_TYPE, labels


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
    # () the shortest |r_ij| of all neighbour entries (inf without any):
    # models skip their repulsive core when it lies beyond every core, as it
    # does for every training batch (a sixth of an L-BFGS evaluation).
    shortest_pair: torch.Tensor
    blocks: dict[str, ElementBlock]

    @property
    def n_structures(self) -> int:
        return int(self.n_atoms.shape[0])

    @property
    def n_total_atoms(self) -> int:
        return int(self.atom_struct.shape[0])

    def to(self, device) -> "Batch":
        """A copy with every tensor on `device` (e.g. "cuda"); itself when
        already there."""
        if self.n_atoms.device == torch.device(device):
            return self
        move = {k: v.to(device) for k, v in vars(self).items() if k != "blocks"}
        blocks = {e: ElementBlock(**{k: t.to(device) for k, t in vars(b).items()}) for e, b in self.blocks.items()}
        return Batch(**move, blocks=blocks)


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


def _append_rows(p: dict[str, list], f, M: int, s: int, atom_offset: int, row_offset: int,
                 derivative_dtype) -> int:
    """Append the features `f` of one element of structure `s` (from the C++
    core: indices local to the structure) to the lists `p`, with indices made
    global; returns the number of rows R."""
    R = len(f["atoms"])
    P = len(f["pair_center"])
    p["G"].append(np.asarray(f["G"], dtype=np.float64).reshape(R, M))
    p["atom"].append(np.asarray(f["atoms"], dtype=np.int64) + atom_offset)
    p["row_struct"].append(np.full(R, s, dtype=np.int64))
    p["pair_center"].append(np.asarray(f["pair_center"], dtype=np.int64) + row_offset)
    p["pair_neighbor"].append(np.asarray(f["pair_neighbor"], dtype=np.int64) + atom_offset)
    p["pair_vector"].append(np.asarray(f["pair_vector"], dtype=np.float64).reshape(P, 3))
    p["dG_dr"].append(np.asarray(f["dG_dr"], dtype=derivative_dtype).reshape(P, M, 3))
    p["pair_struct"].append(np.full(P, s, dtype=np.int64))
    return R


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
        derivative_dtype=np.float64,
    ) -> "FeaturizedDataset":
        """Featurise `structures` with `featurize(atoms)` (default:
        ``descriptors.featurize(atoms, derivatives=True)``, the C++ core).

        `derivative_dtype` np.float32 stores dG_dr, nearly all of the memory,
        in single precision: half the memory and the memory traffic of
        training, at single-precision rounding (6e-8 relative per stored
        value) of the forces and stress."""
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
                rows_so_far[e] += _append_rows(parts[e], feats[e], descriptors.size(e), s, atom_offset,
                                               rows_so_far[e], derivative_dtype)
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
        shortest = torch.tensor(math.inf, dtype=self.energy.dtype)
        for b in blocks.values():
            if b.pair_vector.shape[0]:
                shortest = torch.minimum(shortest, torch.linalg.vector_norm(b.pair_vector, dim=1).min())
        return Batch(
            indices=idx,
            shortest_pair=shortest,
            n_atoms=self.n_atoms[idx],
            atom_struct=a_pos,
            energy=self.energy[idx],
            forces=self.forces.index_select(0, a_gather),
            stress=self.stress[idx],
            volume=self.volume[idx],
            blocks=blocks,
        )

