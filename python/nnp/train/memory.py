"""How much memory a training run will need, estimated before featurising,
and the choice between stored and streamed descriptor derivatives.

The estimate comes from the structures alone: atoms per element, the mean
number of neighbours per centre element within the cutoff (the core's
neighbour list on a sample of structures), the descriptor lengths and the
dtypes training uses. Its parts (bytes):

* data: the featurised training set. Stored: per atom G (8 M) and two
  indices, per neighbour entry ∂G/∂r (float32, 12 M), r_ij and three
  indices. Streamed: G, indices and the geometry (positions, cells, pbc,
  numbers) to featurise again.
* cache: full-batch (L-BFGS) passes keep the collated training set, a
  second copy, when derivatives are stored and the data is at most
  nnp.train.loss.FULL_BATCH_CACHE_BYTES; never when streamed.
* working set: one chunk (config chunk_size structures, the largest ones)
  collated, and its autograd graph. Streamed, a chunk's entries carry no
  ∂G/∂r (the core's force pass and Jacobian-vector product recompute it
  per centre atom): r_ij, indices, v_p and its gradient; the graph is then
  mostly per atom (G, the scaled input, dE/dG and its gradient, activations).
* quadratic: the closed-form fit's normal equations (D² for D columns,
  a few copies while solving) and one block of design rows.
* twin: the holdout twin trains in a forked child at the same time; it
  shares the data with its parent (copy on write) but has its own cache,
  working set and quadratic fit.
* base: the interpreter with torch, and the structures as read.

The factors were measured on the Si and water sets (docs/performance.md).
"""

from __future__ import annotations

import enum
import math
import os
from dataclasses import astuple, dataclass, replace

import numpy as np
import torch

from nnp import _core
from nnp.train import refit
from nnp.train.config import TrainConfig
from nnp.train.loss import FULL_BATCH_CACHE_BYTES

GIB = 2**30
DEFAULT_BUDGET_FRACTION = 0.8  # of MemAvailable, when memory_budget is 0
NEIGHBOUR_SAMPLE = 16  # structures whose neighbour lists give the mean neighbour counts
BASE_BYTES = 500 * 2**20  # the interpreter with torch, numpy, ASE and nnp loaded
CHILD_BYTES = 300 * 2**20  # what a forked child adds besides its own arrays (pages it touches)
ATOMS_BYTES_PER_ATOM = 120  # the structures as read (ASE: positions, numbers, forces, ...)
ATOMS_BYTES_PER_STRUCTURE = 12_000
GRAPH_FACTOR = 0.3  # autograd graph of a chunk, relative to its collated entries
STREAMED_ENTRY_BYTES = 96  # a streamed entry: r_ij, three indices, v_p and its gradient
STREAMED_ROW_FACTOR = 4.0  # a streamed chunk's per-atom graph, relative to its G
QUADRATIC_COPIES = 3  # normal equations, the system solved and its factorisation
CACHE_MARGIN = 1.1


class Derivatives(str, enum.Enum):
    """The `derivatives` setting."""

    AUTO = "auto"
    STORED = "stored"
    STREAMED = "streamed"


@dataclass(frozen=True)
class DataShape:
    """What the estimate needs from the structures."""

    element_atoms: np.ndarray  # (S, E) atoms of each element per structure
    neighbours: np.ndarray  # (E,) mean neighbour entries per atom of each centre element
    sizes: np.ndarray  # (E,) descriptor length per element

    @property
    def n_structures(self) -> int:
        return int(self.element_atoms.shape[0])

    def first(self, n: int) -> "DataShape":
        return replace(self, element_atoms=self.element_atoms[:n])


@dataclass(frozen=True)
class Estimate:
    """Peak bytes of one run by part (module docstring) and their total."""

    data: float
    cache: float
    working_set: float
    quadratic: float
    twin: float
    base: float
    featurising: float  # peak while featurising (before training), data included

    @property
    def total(self) -> float:
        training = self.base + self.data + max(self.quadratic, self.cache + self.working_set) + self.twin
        return max(training, self.base + self.featurising)


@dataclass(frozen=True)
class MemoryPlan:
    """The derivatives mode chosen, with the estimates behind the choice."""

    mode: Derivatives  # STORED or STREAMED
    stored: Estimate
    streamed: Estimate
    budget: float
    budget_source: str
    reason: str = ""  # why this mode, and how to choose the other

    @property
    def streamed_mode(self) -> bool:
        return self.mode is Derivatives.STREAMED

    def line(self) -> str:
        chosen = self.streamed if self.streamed_mode else self.stored
        return (f"memory: derivatives {self.mode.value}, estimated peak {chosen.total / GIB:.1f} GiB "
                f"(stored {self.stored.total / GIB:.1f}, streamed {self.streamed.total / GIB:.1f}; "
                f"budget {self.budget / GIB:.1f} GiB, {self.budget_source})"
                + (f"; {self.reason}" if self.reason else ""))


def data_shape(structures, descriptors, config: TrainConfig, sample: int = NEIGHBOUR_SAMPLE) -> DataShape:
    """Atom counts of `structures` (plus the config's isolated atoms) and
    mean neighbour counts from the core's neighbour list on up to `sample`
    structures spread over the set."""
    elements = tuple(descriptors.elements)
    index = {e: k for k, e in enumerate(elements)}
    counts = np.zeros((len(structures) + len(config.isolated_atom_energies), len(elements)), dtype=np.int64)
    for s, atoms in enumerate(structures):
        np.add.at(counts[s], [index[x] for x in atoms.get_chemical_symbols()], 1)
    for k, element in enumerate(sorted(config.isolated_atom_energies)):
        if element in index:  # an element not in the data is refused later, with its own message
            counts[len(structures) + k, index[element]] = 1
    pairs, centres = np.zeros(len(elements)), np.zeros(len(elements))
    for s in np.unique(np.linspace(0, len(structures) - 1, min(sample, len(structures))).round().astype(int)):
        atoms = structures[s]
        offsets, _, _ = _core.neighbor_list(np.ascontiguousarray(atoms.positions, dtype=np.float64),
                                            np.ascontiguousarray(atoms.cell.array, dtype=np.float64),
                                            [bool(p) for p in atoms.pbc], descriptors.cutoff)
        kind = np.array([index[x] for x in atoms.get_chemical_symbols()])
        np.add.at(pairs, kind, np.diff(offsets))
        np.add.at(centres, kind, 1)
    neighbours = np.divide(pairs, centres, out=np.zeros_like(pairs), where=centres > 0)
    return DataShape(counts, neighbours, np.array([descriptors.size(e) for e in elements]))


def estimate(shape: DataShape, config: TrainConfig, streamed: bool, twin: bool) -> Estimate:
    """Peak bytes of a run on data of `shape` (module docstring)."""
    atoms = shape.element_atoms.sum(1).astype(float)  # (S,)
    rows = shape.element_atoms.astype(float)  # (S, E)
    entries = rows * shape.neighbours  # (S, E) neighbour entries
    per_row = 8.0 * shape.sizes + 16  # G, atom, row_struct
    per_entry = 12.0 * shape.sizes + 48  # dG_dr (float32), r_ij, three indices
    row_bytes = rows @ per_row  # (S,)
    entry_bytes = entries @ per_entry  # (S,)
    labels = 32.0 * atoms.sum() + 160.0 * len(atoms)  # forces, atom_struct; energy, stress, ...
    largest = np.sort(entry_bytes + row_bytes)[::-1]
    chunk = largest[: config.chunk_size].sum()
    batch = largest[: config.batch_size].sum()
    stored_data = float(row_bytes.sum() + entry_bytes.sum() + labels)
    if streamed:
        data = float(row_bytes.sum() + labels + 36.0 * atoms.sum() + 100.0 * len(atoms))
        cache = 0.0
        streamed_bytes = np.sort(row_bytes * (1 + STREAMED_ROW_FACTOR) + entries.sum(1) * STREAMED_ENTRY_BYTES)[::-1]
        working = float(max(streamed_bytes[: config.chunk_size].sum(), streamed_bytes[: config.batch_size].sum()))
        featurising = data + float(streamed_bytes[0])
    else:
        data = stored_data
        # The estimate is within ~10 %: near the threshold, count the cache.
        cache = data if data <= CACHE_MARGIN * FULL_BATCH_CACHE_BYTES else 0.0
        working = GRAPH_FACTOR * max(chunk, batch) + (batch if cache else chunk)
        featurising = data + float(max((entries[:, k].sum() * per_entry[k] + rows[:, k].sum() * per_row[k])
                                       for k in range(len(shape.sizes))))
    D = float(sum(1 + M + M * (M + 1) // 2 for M in shape.sizes))
    n_max = float(atoms.max())
    quadratic = QUADRATIC_COPIES * 8 * D * D + 2 * 8 * 3 * n_max * D
    structures = ATOMS_BYTES_PER_ATOM * atoms.sum() + ATOMS_BYTES_PER_STRUCTURE * len(atoms)
    twin_bytes = CHILD_BYTES + max(quadratic, cache + working) if twin else 0.0
    parts = (data, cache, working, quadratic, twin_bytes, BASE_BYTES + structures, featurising)
    return Estimate(*(float(x) for x in parts))


def available_memory() -> float:
    """Bytes available to a new process: MemAvailable of /proc/meminfo, else
    the free physical pages (os.sysconf)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024
    except OSError:
        pass
    return float(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def budget(config: TrainConfig) -> tuple[float, str]:
    """(bytes, where the figure comes from) that the run may use."""
    if config.memory_budget > 0:
        return config.memory_budget * GIB, "memory_budget"
    return DEFAULT_BUDGET_FRACTION * available_memory(), f"{DEFAULT_BUDGET_FRACTION:.0%} of MemAvailable"


def plan(structures, descriptors, config: TrainConfig, share: int = 1, reduce=None) -> MemoryPlan:
    """The derivatives mode for a run of `config` on `structures`: the one
    the config forces, else stored when its estimate fits the budget and
    auto_stored_limit, else streamed (`choose`). ValueError, with the estimate and a setting that would fit,
    when the chosen mode does not fit.

    Data-parallel (nnp.train.distributed): `structures` are this rank's
    shard, the budget is shared by the `share` ranks of a node, and
    `reduce(op, tensor)` makes every rank plan for the largest estimate
    and the smallest budget, so that all choose (or refuse) alike."""
    twin = config.refits and refit.twin_in_parallel(config)
    shape = data_shape(structures, descriptors, config)
    stored, streamed = (estimate(shape, config, s, twin) for s in (False, True))
    limit, source = budget(config)
    if share > 1:
        limit, source = limit / share, f"{source} / {share} ranks"
    if reduce is not None:
        stored, streamed = (Estimate(*reduce("max", torch.tensor(astuple(e), dtype=torch.float64)).tolist())
                            for e in (stored, streamed))
        limit = float(reduce("min", torch.tensor([limit], dtype=torch.float64))[0])
    mode, reason = choose(config, stored.total * share, limit * share)
    chosen = stored if mode is Derivatives.STORED else streamed
    if chosen.total > limit:
        raise ValueError(_refusal(shape, config, mode, chosen, limit, source, twin))
    return MemoryPlan(mode, stored, streamed, limit, source, reason)


def choose(config: TrainConfig, stored: float, limit: float) -> tuple[Derivatives, str]:
    """(mode, why, in words with how to get the other) for a run whose stored
    estimate (all its processes) is `stored` bytes under a budget of `limit`:
    the configured mode, or under auto stored when it fits both the budget
    and auto_stored_limit. The limit trades epoch time for memory: streamed
    epochs cost 2-6 times stored ones (docs/performance.md)."""
    wanted = Derivatives(config.derivatives)
    if wanted is not Derivatives.AUTO:
        return wanted, f"derivatives: {wanted.value} as configured"
    cap = config.auto_stored_limit * GIB if config.auto_stored_limit > 0 else math.inf
    if stored > limit:
        return Derivatives.STREAMED, "auto streams: stored derivatives would not fit the budget"
    if stored > cap:
        return Derivatives.STREAMED, (f"auto streams: stored needs more than auto_stored_limit "
                                      f"{config.auto_stored_limit:g} GiB (derivatives: stored is faster per epoch "
                                      f"and fits the budget)")
    within = f"auto_stored_limit {config.auto_stored_limit:g} GiB and the budget" if cap < math.inf else "the budget"
    return Derivatives.STORED, f"auto stores: within {within} (derivatives: streamed needs less memory, slower epochs)"


def _refusal(shape: DataShape, config: TrainConfig, mode: Derivatives, chosen: Estimate, limit: float,
             source: str, twin: bool) -> str:
    """One line: the estimate, the budget, and settings that would fit."""
    streamed = mode is Derivatives.STREAMED
    what = "even with streamed derivatives" if streamed and config.derivatives == "auto" else \
        f"with derivatives {mode.value}"
    fits = []
    if not streamed and estimate(shape, config, True, twin).total <= limit:
        fits.append("derivatives: streamed")
    if twin and estimate(shape, config, streamed, False).total <= limit:
        fits.append("refit: false (no holdout twin)")
    for chunk in (16, 8, 4, 2, 1):
        if chunk < config.chunk_size and estimate(shape, replace(config, chunk_size=chunk), streamed,
                                                  twin).total <= limit:
            fits.append(f"chunk_size: {chunk}")
            break
    n = _most_structures(shape, config, streamed, twin, limit)
    if 0 < n < shape.n_structures:
        fits.append(f"at most {n} of the {shape.n_structures} structures")
    advice = "; would fit: " + ", or ".join(fits) if fits else "; no setting tried fits: raise memory_budget"
    return (f"memory: the run needs an estimated {chosen.total / GIB:.1f} GiB {what}, over the budget of "
            f"{limit / GIB:.1f} GiB ({source}){advice} (docs/performance.md)")


def _most_structures(shape: DataShape, config: TrainConfig, streamed: bool, twin: bool, limit: float) -> int:
    """The largest n such that the first n structures fit (bisection; 0 if none)."""
    lo, hi = 0, shape.n_structures
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if estimate(shape.first(mid), config, streamed, twin).total <= limit:
            lo = mid
        else:
            hi = mid - 1
    return lo
