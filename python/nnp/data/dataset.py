"""Featurised training data: the descriptors of every structure once, as
concatenated torch tensors per centre element, ready to batch.

`FeaturizedDataset` keeps per-structure offsets into those tensors, so that
`collate` assembles any batch of structures by gathering index ranges and
shifting indices (no Python loop over structures or atoms). Descriptors are
float64; the derivatives dG/dr optionally float32, as training stores them.
This is the only module of `nnp.data` that needs torch.

Derivatives are stored (the default) or streamed (`streamed=True`): a
streamed data set keeps the descriptor values and the geometry (positions,
cells, pbc, atomic numbers) but no neighbour entries. Its `collate` lists a
batch's neighbour entries again (the core's neighbour list, in the
featuriser's order) without any dG_dr (None in the batch): the model then
contracts with ∂G/∂r through the core's force pass and Jacobian-vector
product (nnp.model.network), so memory grows with neither the data set nor
neighbours × functions. Per-structure passes (the quadratic fit) read
`StreamedPairs`, which featurise one structure again with its derivatives.

Units: Å, eV, eV/Å, stress in eV/Å³ (ASE convention: tension positive).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

import numpy as np
import torch
from ase import Atoms
from ase.data import chemical_symbols

from nnp import _core

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
      dG_dr        (P, M, 3)  ∂G_i/∂r_ij (None in a streamed batch)
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
        blocks = {e: ElementBlock(**{k: None if t is None else t.to(device) for k, t in vars(b).items()})
                  for e, b in self.blocks.items()}
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


ROW_FIELDS = ("G", "atom", "row_struct")
PAIR_FIELDS = ("pair_center", "pair_neighbor", "pair_vector", "dG_dr", "pair_struct")


def _append_rows(p: dict[str, list], f, M: int, s: int, atom_offset: int, row_offset: int,
                 derivative_dtype) -> int:
    """Append the features `f` of one element of structure `s` (from the C++
    core: indices local to the structure) to the lists `p`, with indices made
    global; returns the number of rows R."""
    R = _append_row_fields(p, f, M, s, atom_offset)
    _append_pair_fields(p, f, M, s, atom_offset, row_offset, derivative_dtype)
    return R


def _append_row_fields(p: dict[str, list], f, M: int, s: int, atom_offset: int) -> int:
    R = len(f["atoms"])
    p["G"].append(np.asarray(f["G"], dtype=np.float64).reshape(R, M))
    p["atom"].append(np.asarray(f["atoms"], dtype=np.int64) + atom_offset)
    p["row_struct"].append(np.full(R, s, dtype=np.int64))
    return R


def _append_pair_fields(p: dict[str, list], f, M: int, s: int, atom_offset: int, row_offset: int,
                        derivative_dtype) -> None:
    P = len(f["pair_center"])
    p["pair_center"].append(np.asarray(f["pair_center"], dtype=np.int64) + row_offset)
    p["pair_neighbor"].append(np.asarray(f["pair_neighbor"], dtype=np.int64) + atom_offset)
    p["pair_vector"].append(np.asarray(f["pair_vector"], dtype=np.float64).reshape(P, 3))
    p["dG_dr"].append(np.asarray(f["dG_dr"], dtype=derivative_dtype).reshape(P, M, 3))
    p["pair_struct"].append(np.full(P, s, dtype=np.int64))


@dataclass
class Geometry:
    """What featurising the structures again needs (streamed mode), atoms
    concatenated in data-set order: numbers (N,), positions (N, 3) Å,
    cells (S, 3, 3) Å, pbc (S, 3)."""

    numbers: np.ndarray
    positions: np.ndarray
    cells: np.ndarray
    pbc: np.ndarray

    @classmethod
    def of(cls, structures: Sequence[Atoms]) -> "Geometry":
        return cls(np.concatenate([a.numbers for a in structures]).astype(np.int64),
                   np.concatenate([np.asarray(a.positions, dtype=np.float64) for a in structures]),
                   np.stack([np.asarray(a.cell.array, dtype=np.float64) for a in structures]),
                   np.stack([np.asarray(a.pbc, dtype=bool) for a in structures]))

    def nbytes(self) -> int:
        return sum(a.nbytes for a in vars(self).values())

    def atoms(self, s: int, a0: int, a1: int) -> Atoms:
        """Structure s (its atoms a0 .. a1−1): the exact positions and cell it was featurised with."""
        return Atoms(numbers=self.numbers[a0:a1], positions=self.positions[a0:a1], cell=self.cells[s],
                     pbc=self.pbc[s])


def neighbour_entries(descriptors, kind: np.ndarray, positions: np.ndarray, cell: np.ndarray,
                      pbc) -> dict[str, dict[str, np.ndarray]]:
    """The neighbour entries of one structure as the core's `featurize`
    lists them (same order, same vectors), without descriptors: per centre
    element pair_center (rows of that element), pair_neighbor, pair_vector.
    `kind`: the element index of each atom."""
    cutoffs = np.array([max((sf.rc for sf in descriptors.functions[e]), default=0.0) for e in descriptors.elements])
    offsets, neighbour, vector = _core.neighbor_list(positions, cell, [bool(p) for p in pbc],
                                                     float(cutoffs.max(initial=0.0)))
    centre = np.repeat(np.arange(len(kind)), np.diff(offsets))
    r = np.sqrt(vector[:, 0] * vector[:, 0] + vector[:, 1] * vector[:, 1] + vector[:, 2] * vector[:, 2])
    centre_kind = kind[centre]
    keep = r < cutoffs[centre_kind]
    rank = np.zeros(len(kind), dtype=np.int64)  # row of each atom in its element's block
    out = {}
    for k, e in enumerate(descriptors.elements):
        mine = kind == k
        rank[mine] = np.arange(int(mine.sum()))
        sel = keep & (centre_kind == k)
        out[e] = dict(pair_center=rank[centre[sel]], pair_neighbor=neighbour[sel].astype(np.int64),
                      pair_vector=vector[sel])
    return out


class _Featurizer:
    """Featurises single structures of a streamed data set again, keeping
    the last one (a per-structure pass asks for each array of it in turn),
    and lists their neighbour entries without derivatives."""

    def __init__(self, geometry: Geometry, featurize: Callable[[Atoms], dict], sizes: dict[str, int],
                 derivative_dtype, descriptors):
        self.geometry, self.featurize, self.sizes = geometry, featurize, sizes
        self.derivative_dtype = derivative_dtype
        self.descriptors = descriptors
        self.kind = np.asarray(descriptors.element_indices([chemical_symbols[z] for z in geometry.numbers]))
        self._last: tuple[int, dict] | None = None

    def entries(self, s: int, atom_offsets: torch.Tensor) -> dict[str, dict[str, np.ndarray]]:
        a0, a1 = int(atom_offsets[s]), int(atom_offsets[s + 1])
        g = self.geometry
        return neighbour_entries(self.descriptors, self.kind[a0:a1], g.positions[a0:a1], g.cells[s], g.pbc[s])

    def features(self, s: int, atom_offsets: torch.Tensor) -> dict:
        if self._last is None or self._last[0] != s:
            atoms = self.geometry.atoms(s, int(atom_offsets[s]), int(atom_offsets[s + 1]))
            self._last = (s, self.featurize(atoms))
        return self._last[1]


class StreamedPairs:
    """One pair field of a streamed data set's element block, standing in
    for the stored tensor: slicing exactly the entries of one structure
    (``pair_offsets[e][s]:pair_offsets[e][s + 1]``, optionally with more
    indices) featurises that structure again and gives what the stored
    tensor holds there, global indices included. Per-structure passes (the
    quadratic fit) so work in both modes; anything else is an error."""

    def __init__(self, data: "FeaturizedDataset", element: str, field: str):
        self.data, self.element, self.field = data, element, field

    def __len__(self) -> int:
        return int(self.data.pair_offsets[self.element][-1])

    def __getitem__(self, key):
        first, rest = (key[0], key[1:]) if isinstance(key, tuple) else (key, ())
        off = self.data.pair_offsets[self.element]
        if not isinstance(first, slice) or first.step not in (None, 1):
            raise IndexError("streamed pair arrays are recomputed one structure at a time: slice one structure's range")
        start, stop = int(first.start or 0), int(len(self) if first.stop is None else first.stop)
        s = int(torch.searchsorted(off, torch.tensor(start), right=True)) - 1
        if stop == start:
            s = min(max(s, 0), len(off) - 2)
        elif not (0 <= s < len(off) - 1 and int(off[s]) == start and int(off[s + 1]) == stop):
            raise IndexError(f"streamed pair entries {start}:{stop} are not those of one structure")
        t = self.data.structure_pairs(s)[self.element][self.field]
        return t[(slice(0, stop - start),) + tuple(rest)]


@dataclass
class StreamSource:
    """What a streamed data set keeps instead of its neighbour entries: the
    featuriser (with the geometry), the entry offsets per element and the
    shortest centre–neighbour distance."""

    featurizer: _Featurizer
    pair_offsets: dict[str, torch.Tensor]
    shortest_pair: float
    shortest_by_pair: dict[tuple[str, str], float]


class _Labels:
    """Labels, counts and config types of the structures, filled one by one."""

    def __init__(self, S: int, elements: tuple[str, ...]):
        self.elements = elements
        self.energy = np.full(S, math.nan)
        self.stress = np.full((S, 3, 3), math.nan)
        self.volume = np.full(S, math.nan)
        self.forces, self.n_atoms, self.config_types = [], [], []
        self.composition = np.zeros((S, len(elements)))

    def add(self, s: int, atoms: Atoms) -> None:
        e_s, f_s, st_s = labels(atoms)
        self.energy[s] = e_s
        self.forces.append(f_s)
        if atoms.pbc.all():
            self.volume[s] = atoms.get_volume()
            if st_s is not None:
                self.stress[s] = st_s
        self.n_atoms.append(len(atoms))
        self.config_types.append(str(atoms.info.get("config_type", DEFAULT_CONFIG_TYPE)))
        symbols = atoms.get_chemical_symbols()
        for k, e in enumerate(self.elements):
            self.composition[s, k] = symbols.count(e)

    def tensors(self) -> tuple:
        """The FeaturizedDataset arguments from n_atoms to config_types."""
        return (torch.tensor(self.n_atoms, dtype=torch.long), torch.from_numpy(self.energy),
                torch.from_numpy(np.concatenate(self.forces).reshape(-1, 3)), torch.from_numpy(self.stress),
                torch.from_numpy(self.volume), torch.from_numpy(self.composition), self.config_types)


def _add_shortest(shortest: dict[tuple[str, str], float], centre: str, lengths: torch.Tensor,
                  neighbour: torch.Tensor, elements: tuple[str, ...]) -> None:
    """Lower shortest[(a, b)] (a, b in `elements` order) by the entries of
    centre element `centre` with lengths |r_ij| and neighbour elements `neighbour` (indices)."""
    order = {e: k for k, e in enumerate(elements)}
    for other in elements:
        mine = lengths[neighbour == order[other]]
        if len(mine):
            key = (centre, other) if order[centre] <= order[other] else (other, centre)
            shortest[key] = min(shortest.get(key, math.inf), float(mine.min()))


class FeaturizedDataset:
    """Descriptors and labels of a list of structures, ready to batch.

    Built with `from_structures`; `collate(indices)` returns a `Batch`.
    With `streamed` (a StreamSource), the blocks' pair fields are
    `StreamedPairs` and `collate` featurises its structures again.
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
        streamed: StreamSource | None = None,
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
        self.streamed = streamed
        S = len(n_atoms)
        self.atom_offsets = torch.zeros(S + 1, dtype=torch.long)
        torch.cumsum(n_atoms, 0, out=self.atom_offsets[1:])
        self.atom_struct = torch.repeat_interleave(torch.arange(S), n_atoms)
        self.row_offsets = {e: self._offsets(b.row_struct, S) for e, b in blocks.items()}
        if streamed is None:
            self.pair_offsets = {e: self._offsets(b.pair_struct, S) for e, b in blocks.items()}
        else:
            self.pair_offsets = streamed.pair_offsets
            for e, b in blocks.items():
                for k in PAIR_FIELDS:
                    setattr(b, k, StreamedPairs(self, e, k))
        self._structure_pairs: tuple[int, dict] | None = None

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

    @property
    def is_streamed(self) -> bool:
        return self.streamed is not None

    def nbytes(self) -> int:
        """Bytes of the featurised blocks (and of the geometry kept to featurise again, when streamed)."""
        total = 0
        for b in self.blocks.values():
            total += sum(t.element_size() * t.nelement() for t in vars(b).values() if isinstance(t, torch.Tensor))
        if self.streamed is not None:
            total += self.streamed.featurizer.geometry.nbytes() + self.streamed.featurizer.kind.nbytes
        return total

    def shortest_pair_distance(self) -> float:
        """The shortest centre–neighbour distance of all entries (Å; inf without any)."""
        if self.streamed is not None:
            return self.streamed.shortest_pair
        lengths = [b.pair_vector.norm(dim=1).min() for b in self.blocks.values() if len(b.pair_vector)]
        return float(min(lengths)) if lengths else math.inf

    def shortest_pair_distances(self) -> dict[tuple[str, str], float]:
        """The shortest centre–neighbour distance (Å) of each element pair
        that occurs within the cutoff, keyed (a, b) in the data's element order."""
        if self.streamed is not None:
            return dict(self.streamed.shortest_by_pair)
        element_of = torch.full((self.n_total_atoms,), -1, dtype=torch.long)
        for k, e in enumerate(self.elements):
            element_of[self.blocks[e].atom] = k
        shortest: dict[tuple[str, str], float] = {}
        for centre, b in self.blocks.items():
            if len(b.pair_vector):
                _add_shortest(shortest, centre, b.pair_vector.norm(dim=1), element_of[b.pair_neighbor], self.elements)
        return shortest

    @classmethod
    def from_structures(
        cls,
        structures: Sequence[Atoms],
        descriptors,
        featurize: Callable[[Atoms], dict] | None = None,
        progress: Callable[[int, int], None] | None = None,
        derivative_dtype=np.float64,
        streamed: bool = False,
    ) -> "FeaturizedDataset":
        """Featurise `structures` with `featurize(atoms)` (default:
        ``descriptors.featurize(atoms, derivatives=True)``, the C++ core).

        `derivative_dtype` np.float32 stores dG_dr, nearly all of the memory,
        in single precision: half the memory and the memory traffic of
        training, at single-precision rounding (6e-8 relative per stored
        value) of the forces and stress. `streamed` keeps no neighbour
        entries: `collate` featurises its structures again with `featurize`."""
        values = featurize
        if featurize is None:

            def featurize(atoms):
                return descriptors.featurize(atoms, derivatives=True)

            def values(atoms):  # streamed: the entries come from the neighbour list
                return descriptors.featurize(atoms, derivatives=False)

        elements = tuple(descriptors.elements)
        S = len(structures)
        if S == 0:
            raise ValueError("no structures to featurise")
        sizes = {e: descriptors.size(e) for e in elements}
        fields = ROW_FIELDS if streamed else tuple(ElementBlock.__dataclass_fields__)
        parts: dict[str, dict[str, list]] = {e: {k: [] for k in fields} for e in elements}
        rows_so_far = {e: 0 for e in elements}
        pair_counts = {e: torch.zeros(S, dtype=torch.long) for e in elements}
        shortest: dict[tuple[str, str], float] = {}
        lab = _Labels(S, elements)
        atom_offset = 0
        for s, atoms in enumerate(structures):
            lab.add(s, atoms)
            feats = (values if streamed else featurize)(atoms)
            if streamed:
                kind = descriptors.element_indices(atoms.get_chemical_symbols())
                entries = neighbour_entries(descriptors, kind, np.ascontiguousarray(atoms.positions, dtype=np.float64),
                                            np.ascontiguousarray(atoms.cell.array, dtype=np.float64), atoms.pbc)
            for e in elements:
                if streamed:
                    rows_so_far[e] += _append_row_fields(parts[e], feats[e], sizes[e], s, atom_offset)
                    pair_counts[e][s] = P = len(entries[e]["pair_center"])
                    if P:
                        vectors = torch.from_numpy(entries[e]["pair_vector"])
                        neighbour = torch.from_numpy(kind.astype(np.int64)[entries[e]["pair_neighbor"]])
                        _add_shortest(shortest, e, vectors.norm(dim=1), neighbour, elements)
                else:
                    rows_so_far[e] += _append_rows(parts[e], feats[e], sizes[e], s, atom_offset, rows_so_far[e],
                                                   derivative_dtype)
            atom_offset += len(atoms)
            if progress is not None:
                progress(s + 1, S)
        blocks = {}
        for e in elements:
            t = {k: torch.from_numpy(np.concatenate(v)) for k, v in parts[e].items()}
            del parts[e]
            blocks[e] = ElementBlock(**t, **({k: None for k in PAIR_FIELDS} if streamed else {}))
        source = None
        if streamed:
            offsets = {e: torch.cat([torch.zeros(1, dtype=torch.long), torch.cumsum(c, 0)])
                       for e, c in pair_counts.items()}
            source = StreamSource(_Featurizer(Geometry.of(structures), featurize, sizes, derivative_dtype, descriptors),
                                  offsets, min(shortest.values(), default=math.inf), shortest)
        return cls(elements, *lab.tensors(), blocks, streamed=source)

    def collate(self, indices: Iterable[int] | torch.Tensor) -> Batch:
        """The structures `indices` (in that order) as one batch."""
        idx = torch.as_tensor(np.asarray(indices, dtype=np.int64).reshape(-1))
        if len(idx) == 0:
            raise ValueError("empty batch")
        a_gather, a_pos, a_off = _gather_ranges(self.atom_offsets, idx)
        # An atom a of structure s becomes a − atom_offsets[s] + a_off[pos(s)].
        atom_shift = a_off[:-1] - self.atom_offsets[idx]  # per batch position
        rows, row_starts = {}, {}
        for e, b in self.blocks.items():
            r_gather, r_pos, r_off = _gather_ranges(self.row_offsets[e], idx)
            row_shift = r_off[:-1] - self.row_offsets[e][idx]
            row_starts[e] = r_off[:-1]
            rows[e] = dict(G=b.G.index_select(0, r_gather), atom=b.atom.index_select(0, r_gather) + atom_shift[r_pos],
                           row_struct=r_pos)
            if self.streamed is None:
                p_gather, p_pos, _ = _gather_ranges(self.pair_offsets[e], idx)
                # index_select is several times faster than b.dG_dr[p_gather].
                rows[e].update(
                    pair_center=b.pair_center.index_select(0, p_gather) + row_shift[p_pos],
                    pair_neighbor=b.pair_neighbor.index_select(0, p_gather) + atom_shift[p_pos],
                    pair_vector=b.pair_vector.index_select(0, p_gather),
                    dG_dr=b.dG_dr.index_select(0, p_gather),
                    pair_struct=p_pos,
                )
        if self.streamed is not None:
            pairs = self._entries(idx.tolist(), a_off[:-1].tolist(), {e: r.tolist() for e, r in row_starts.items()})
            for e in rows:
                rows[e].update(pairs[e])
        blocks = {e: ElementBlock(**r) for e, r in rows.items()}
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

    def _featurize_pairs(self, structures: Sequence[int], positions: Iterable[int], atom_starts: Sequence[int],
                         row_starts: dict[str, Sequence[int]]) -> dict[str, dict[str, torch.Tensor]]:
        """Streamed mode: the pair fields of each element for `structures`,
        featurised again one at a time, as entries of `positions` with atoms
        and rows from the given starts; converted as `from_structures` does."""
        src = self.streamed.featurizer
        parts = {e: {k: [] for k in PAIR_FIELDS} for e in self.blocks}
        for k, (s, pos, a0) in enumerate(zip(structures, positions, atom_starts)):
            feats = src.features(s, self.atom_offsets)
            for e in self.blocks:
                _append_pair_fields(parts[e], feats[e], src.sizes[e], pos, a0, row_starts[e][k], src.derivative_dtype)
        return {e: {k: torch.from_numpy(np.concatenate(v)) for k, v in p.items()} for e, p in parts.items()}

    def _entries(self, structures: Sequence[int], atom_starts: Sequence[int],
                 row_starts: dict[str, Sequence[int]]) -> dict[str, dict[str, torch.Tensor]]:
        """Streamed mode: the pair fields of `structures` (batch positions in
        order) with dG_dr None, from the neighbour list; indices as collate makes them."""
        src = self.streamed.featurizer
        fields = [k for k in PAIR_FIELDS if k != "dG_dr"]
        parts = {e: {k: [] for k in fields} for e in self.blocks}
        for pos, (s, a0) in enumerate(zip(structures, atom_starts)):
            entries = src.entries(s, self.atom_offsets)
            for e, f in entries.items():
                parts[e]["pair_center"].append(f["pair_center"] + row_starts[e][pos])
                parts[e]["pair_neighbor"].append(f["pair_neighbor"] + a0)
                parts[e]["pair_vector"].append(f["pair_vector"])
                parts[e]["pair_struct"].append(np.full(len(f["pair_center"]), pos, dtype=np.int64))
        return {e: {**{k: torch.from_numpy(np.concatenate(v)) for k, v in p.items()}, "dG_dr": None}
                for e, p in parts.items()}

    def structure_pairs(self, s: int) -> dict[str, dict[str, torch.Tensor]]:
        """Streamed mode: the pair fields of structure s with global indices,
        as the stored tensors hold them (the last structure is kept)."""
        if self._structure_pairs is None or self._structure_pairs[0] != s:
            pairs = self._featurize_pairs([s], [s], [int(self.atom_offsets[s])],
                                          {e: [int(off[s])] for e, off in self.row_offsets.items()})
            self._structure_pairs = (s, pairs)
        return self._structure_pairs[1]
