"""The structures training sees: the data plus labelled isolated atoms,
featurised once, and its split into training and validation structures."""

from __future__ import annotations

import numpy as np

from nnp.data import FeaturizedDataset, isolated_atom, split
from nnp.train import distributed
from nnp.train.config import TrainConfig

DERIVATIVE_DTYPE = np.float32  # of the stored dG/dr (featurize)


def check_isolated_atoms(elements, config: TrainConfig) -> None:
    """Refuse isolated-atom energies of elements the data lack."""
    missing = sorted(set(config.isolated_atom_energies) - set(elements))
    if missing:
        raise ValueError(f"isolated_atom_energies: {', '.join(missing)} does not occur in the data "
                         f"(elements {', '.join(sorted(elements))})")


def with_isolated_atoms(structures: list, config: TrainConfig) -> list:
    """`structures` plus one labelled isolated atom per entry of
    config.isolated_atom_energies (elements must occur in the data)."""
    check_isolated_atoms({s for a in structures for s in a.get_chemical_symbols()}, config)
    return list(structures) + [isolated_atom(e, E) for e, E in sorted(config.isolated_atom_energies.items())]


def featurize(structures: list, descriptors, config: TrainConfig, streamed: bool = False,
              progress=None) -> FeaturizedDataset:
    """The training set as `train` wants it: the structures plus the
    config's isolated atoms, descriptor derivatives in float32 (half the
    memory and less time per evaluation than float64; the sums stay
    float64, and the exported model is evaluated in float64). `streamed`:
    no derivatives stored, the core applies them per batch (nnp.train.memory
    chooses; float32 then only for the quadratic fit's per-structure rows). `progress(done, total)` is called after each structure."""
    return FeaturizedDataset.from_structures(with_isolated_atoms(structures, config), descriptors,
                                             derivative_dtype=DERIVATIVE_DTYPE, streamed=streamed, progress=progress)


def isolated_structures(data: FeaturizedDataset) -> np.ndarray:
    """Indices of the structures in which no atom has a neighbour (of all
    ranks' structures when `data` is a shard)."""
    if getattr(data, "shard", None) is not None:
        return data.shard.isolated
    pairs = sum((off[1:] - off[:-1]) for off in data.pair_offsets.values())
    return np.flatnonzero(pairs.numpy() == 0)


def shortest_distance(data: FeaturizedDataset) -> float:
    """The shortest centre–neighbour distance in the featurised data (Å)."""
    return data.shortest_pair_distance()


def split_structures(data: FeaturizedDataset, config: TrainConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fit, train, validation) indices. Structures without a single
    neighbour pair (isolated atoms) always train; the split, and `fit` (the
    structures that set the scaling and reference energies), are of the
    others. Global indices when `data` is a shard (nnp.train.distributed)."""
    isolated = isolated_structures(data)
    condensed = np.setdiff1d(np.arange(distributed.n_structures(data)), isolated)
    if len(condensed) == 0:
        raise ValueError("every structure is an isolated atom: nothing to learn interactions from")
    train_sub, val_sub = split(len(condensed), config.validation_fraction, config.split_seed_used)
    return condensed[train_sub], np.concatenate([condensed[train_sub], isolated]), condensed[val_sub]
