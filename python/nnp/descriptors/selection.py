"""Data-driven descriptors: series S (shifted radial functions spread over
the training data's neighbour distances) and series C (functions chosen from
a candidate pool by CUR decomposition of the training descriptors); and
`resolve`, which turns any preset name into its descriptor set. Why and how
well each works: docs/descriptors.md, docs/accuracy.md."""

from __future__ import annotations

import math
from typing import Iterable

import numpy as np

from nnp import _core
from nnp.descriptors.functions import G2, G4, G5, DescriptorSet, SymmetryFunction
from nnp.descriptors.presets import DATA_SERIES, SELECTED_SERIES, STUDY_CUTOFF, canonical_preset, preset, preset_names

# Series S: centres exp(−η(R − R_s)²) from the shortest distances seen to
# 0.93 r_c, as wide as their spacing (η = 1/(2Δ²)), TorchANI's "cover linearly".
DATA_RADIAL_LOW_QUANTILE = 0.001  # the shortest distances (close contacts) set the first centre
DATA_RADIAL_HIGH = 0.93  # last centre, in units of r_c

# Series C (Imbalzano et al., J. Chem. Phys. 148, 241730 (2018)): the pool is
# shifted G2 (as series S, finer), centred G2 from broad to first-shell, and
# G4 over η (from nearly flat over r_c to first-shell triplets) × ζ × λ.
CUR_RADIAL_SHIFTED = 24  # shifted G2 candidates per neighbour element
CUR_RADIAL_CENTRED_ETAS = tuple(float(x) for x in np.geomspace(0.003, 2.0, 12))  # Å⁻², R_s = 0
# G4 candidates: η r_c² from 0.0072 (exp(−3η r_c²) ≈ 0.98: flat over the
# sphere) to 10.8 (first-shell Si triplets only); for r_c = 6 Å, η from
# 0.0002 to 0.3 Å⁻².
CUR_ANGULAR_ETA_RC2 = tuple(float(x) for x in np.geomspace(0.0072, 10.8, 14))
CUR_ZETAS = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0)
# The -wide pool (C16-wide … C64-wide) takes G5 with integer ζ ≤ 4 instead of
# G4: the core factorises them into neighbour moment tensors (cost linear in
# the neighbours, no triplet loop). Beside the centred ones over the same η
# grid, shifted G5 resolve the angles shell by shell: exp(−η((R_ij − R_s)² +
# (R_ik − R_s)²)) with the centres and widths of CUR_WIDE_SHIFTED shifted G2.
CUR_WIDE_ZETAS = (1.0, 2.0, 3.0)
CUR_WIDE_SHIFTED = 8
# The cost of factorised G5 grows with the number of distinct radial weights
# exp(−η((R_ij − R_s)² + …)) of a neighbour pair, not with the functions on
# each: once CUR has chosen this many, it chooses among their functions only.
CUR_WIDE_MAX_KEYS = 10
CUR_MAX_ATOMS = 20_000  # rows of the descriptor matrix (evenly thinned beyond)
# Data-driven presets look at evenly spaced structures holding about this
# many atoms when the data has more: featurising every atom with the whole
# candidate pool cost gigabytes and most of an hour on 10⁶ atoms, for a
# choice the sample makes as well. Smaller sets are used whole (unchanged).
SELECTION_MAX_ATOMS = 100_000
# A column whose largest values lie far beyond the rest (closest contacts in
# first-shell-only functions) looks like a direction of its own to CUR, but
# squeezes most atoms into a sliver of the network's input range, which then
# extrapolates (docs/accuracy.md). Candidates whose full range exceeds that
# of their lower 99.9 % by more than this factor are not chosen.
CUR_MAX_TAIL_RATIO = 1.3


def neighbor_distances(structures, rc: float) -> np.ndarray:
    """Every centre–neighbour distance below `rc` in `structures` (Å)."""
    parts = []
    for atoms in structures:
        _, _, vectors = _core.neighbor_list(np.ascontiguousarray(atoms.positions, dtype=np.float64),
                                            np.ascontiguousarray(atoms.cell.array, dtype=np.float64),
                                            [bool(p) for p in atoms.pbc], rc)
        parts.append(np.linalg.norm(vectors, axis=1))
    return np.concatenate(parts) if parts else np.zeros(0)


def pair_distances(structures, elements: Iterable[str], rc: float) -> dict[tuple[str, str], np.ndarray]:
    """Every centre–neighbour distance below `rc` in `structures` (Å), by
    (centre element, neighbour element); pairs that never occur are absent."""
    elements = tuple(elements)
    parts: dict[tuple[str, str], list[np.ndarray]] = {}
    for atoms in structures:
        offsets, j, vectors = _core.neighbor_list(np.ascontiguousarray(atoms.positions, dtype=np.float64),
                                            np.ascontiguousarray(atoms.cell.array, dtype=np.float64),
                                            [bool(p) for p in atoms.pbc], rc)
        d = np.linalg.norm(vectors, axis=1)
        kind = np.array([elements.index(e) for e in atoms.get_chemical_symbols()], dtype=np.int64)
        ci = np.repeat(kind, np.diff(np.asarray(offsets, dtype=np.int64)))  # offsets: row starts per centre
        nj = kind[np.asarray(j, dtype=np.int64)]
        for a, centre in enumerate(elements):
            for b, neighbour in enumerate(elements):
                mine = d[(ci == a) & (nj == b)]
                if len(mine):
                    parts.setdefault((centre, neighbour), []).append(mine)
    return {pair: np.concatenate(p) for pair, p in parts.items()}


def _of_centre(distances: dict[tuple[str, str], np.ndarray], centre: str) -> dict[str, np.ndarray]:
    """The (centre, neighbour) entries of `distances`, by neighbour element."""
    return {n: d for (c, n), d in distances.items() if c == centre}


def _per_neighbour_shifted(elements: tuple[str, ...], distances: dict[str, np.ndarray], count: int,
                           rc: float) -> list[G2]:
    """`count` shifted G2 for each neighbour element, spread over the
    distances to that element (in water O–O starts at 2.3 Å, O–H at 0.9 Å);
    none for a neighbour element absent from `distances`."""
    return [f for n in elements if n in distances and bool((distances[n] < rc).any())
            for f in shifted_radial(distances[n], count, [n], rc)]


def shifted_radial(distances: np.ndarray, count: int, elements: Iterable[str], rc: float = STUDY_CUTOFF) -> list[G2]:
    """`count` shifted G2 per neighbour element, centres spread evenly from
    the low quantile of `distances` (rounded down to 0.05 Å) to 0.93 r_c."""
    if count == 0:
        return []
    d = np.asarray(distances, dtype=float)
    d = d[d < rc]
    if len(d) == 0:
        raise ValueError(f"no neighbour distances below the cutoff {rc} Å in the data: cannot place radial functions")
    low = math.floor(np.quantile(d, DATA_RADIAL_LOW_QUANTILE) / 0.05) * 0.05
    high = DATA_RADIAL_HIGH * rc
    if count == 1:
        centres, spacing = np.array([low]), high - low
    else:
        centres = np.linspace(low, high, count)
        spacing = centres[1] - centres[0]
    eta = 1.0 / (2.0 * spacing**2)
    return [G2(e, float(eta), float(round(r, 6)), rc) for e in elements for r in centres]


def even_sample(structures: list, max_atoms: int) -> list:
    """`structures`, or evenly spaced ones holding about `max_atoms` atoms
    when they hold more."""
    total = sum(len(a) for a in structures)
    if total <= max_atoms:
        return structures
    keep = np.unique(np.linspace(0, len(structures) - 1, -(-len(structures) * max_atoms // total)).round())
    return [structures[int(i)] for i in keep]


def resolve(name: str, elements: Iterable[str], structures=None) -> DescriptorSet:
    """The descriptor set a preset name stands for; data-driven (S) and
    data-selected (C) presets need the training `structures`. Any case is
    accepted ("c64"); an unknown name gets the closest names suggested."""
    name = canonical_preset(name)
    base, _, suffix = name.partition("-")
    if structures is not None:
        structures = even_sample(structures, SELECTION_MAX_ATOMS)
    if base.startswith(SELECTED_SERIES) and name in preset_names():
        if structures is None:
            raise ValueError(f"descriptor preset {name} is chosen from the data: training structures are needed")
        return selected(int(base[len(SELECTED_SERIES):]), elements, structures, wide=suffix == "wide")
    if not base.startswith(DATA_SERIES):
        return preset(name, elements)
    if name not in preset_names():
        raise ValueError(f"unknown descriptor preset {name!r}; choose from {preset_names()}")
    if structures is None:
        raise ValueError(f"descriptor preset {name} is chosen from the data: training structures are needed")
    elements = tuple(elements)
    template = preset("A" + name[len(DATA_SERIES):], elements)
    n_radial = sum(isinstance(f, G2) for f in template.functions[elements[0]]) // len(elements)
    distances = pair_distances(structures, elements, STUDY_CUTOFF)
    functions = {
        e: tuple(_per_neighbour_shifted(elements, _of_centre(distances, e), n_radial, STUDY_CUTOFF))
        + tuple(f for f in template.functions[e] if not isinstance(f, G2)) for e in elements
    }
    return DescriptorSet(elements, functions, template.cutoff_function, template.angular_sum)


def _shifted(elements: tuple[str, ...], distances: np.ndarray | dict[str, np.ndarray], count: int,
             rc: float) -> list[G2]:
    if isinstance(distances, dict):
        return _per_neighbour_shifted(elements, distances, count, rc)
    return shifted_radial(distances, count, elements, rc)


def candidate_pool(elements: Iterable[str], distances: np.ndarray | dict[str, np.ndarray],
                   rc: float = STUDY_CUTOFF, wide: bool = False) -> list[SymmetryFunction]:
    """The series-C candidates for one centre element: shifted and centred G2
    per neighbour element, G4 per neighbour pair (see above); `wide`: G5
    (centred and shifted, ζ ≤ 4) instead of G4. `distances`: the centre's
    neighbour distances, one array for every neighbour element or one per
    neighbour element (a neighbour element missing from it gets no shifted
    functions)."""
    elements = tuple(elements)
    pairs = [(a, b) for i, a in enumerate(elements) for b in elements[i:]]
    pool: list[SymmetryFunction] = list(_shifted(elements, distances, CUR_RADIAL_SHIFTED, rc))
    pool += [G2(e, eta, 0.0, rc) for e in elements for eta in CUR_RADIAL_CENTRED_ETAS]
    angular, zetas = (G5, CUR_WIDE_ZETAS) if wide else (G4, CUR_ZETAS)
    pool += [
        angular(p, round(x / rc**2, 8), zeta, lam, 0.0, rc)
        for p in pairs
        for x in CUR_ANGULAR_ETA_RC2
        for zeta in zetas
        for lam in (1, -1)
    ]
    if wide:
        # A shell of a pair's own: both neighbours' shifted G2 must be spread
        # over the same element's distances, so like pairs only.
        centres = _shifted(elements, distances, CUR_WIDE_SHIFTED, rc)
        pool += [G5((f.neighbor, f.neighbor), f.eta, zeta, lam, f.rs, rc)
                 for f in centres for zeta in CUR_WIDE_ZETAS for lam in (1, -1)]
    return pool


def tail_ratio(matrix: np.ndarray, quantile: float = 0.999) -> np.ndarray:
    """Per column: the full range of its values over the range of all but
    the top (1 − quantile) of them (1: no outlying tail)."""
    low = matrix.min(axis=0)
    bulk = np.quantile(matrix, quantile, axis=0) - low
    full = matrix.max(axis=0) - low
    return np.where(bulk > 0, full / np.where(bulk > 0, bulk, 1.0), np.inf)


def cur_select(matrix: np.ndarray, count: int, allowed: np.ndarray | None = None,
               groups: np.ndarray | None = None, max_groups: int = 0) -> list[int]:
    """Column indices of `matrix` (rows: atoms) chosen one by one by CUR with
    rank-1 leverage and orthogonalisation (Imbalzano et al. 2018). Columns
    are standardised first; constant columns, and those not `allowed`, are
    never chosen (but still take part in the orthogonalisation). With
    `groups` (one label per column, −1: none) and `max_groups`, once columns
    of `max_groups` labels are chosen, only columns of those labels (or none)
    are.

    Works on the Gram matrix C = XᵀX: the leading right singular vector of X
    is the leading eigenvector of C, and removing column c's direction from
    X turns C into C − C[:, c] C[c, :] / C[c, c]."""
    x = np.array(matrix, dtype=np.float64)
    x -= x.mean(axis=0)
    std = x.std(axis=0)
    # Below this a column is constant up to rounding: dividing by its std
    # would blow the rounding up into a direction of its own.
    varies = std > 1e-12 * max(1.0, float(np.abs(matrix).max(initial=0.0)))
    usable = varies if allowed is None else varies & np.asarray(allowed, dtype=bool)
    if count > int(usable.sum()):
        raise ValueError(f"cannot choose {count} symmetry functions: only {int(usable.sum())} candidates "
                         "vary over the training atoms")
    if groups is not None and max_groups > 0:
        groups = np.asarray(groups)
        labels = set(groups[groups >= 0].tolist())
        if len(labels) > max_groups:  # enough columns must stay choosable under any choice of labels
            per_label = sorted((int((usable & (groups == g)).sum()) for g in labels), reverse=True)
            if int((usable & (groups < 0)).sum()) + sum(per_label[:max_groups]) < count:
                raise ValueError(f"cannot choose {count} symmetry functions from {max_groups} groups")
    x[:, varies] /= std[varies]
    x[:, ~varies] = 0.0
    gram = x.T @ x
    chosen: list[int] = []
    for _ in range(count):
        _, vectors = np.linalg.eigh(gram)
        leverage = vectors[:, -1] ** 2
        leverage[chosen] = -1.0
        leverage[~usable] = -1.0
        if groups is not None and max_groups > 0:
            used = {int(groups[i]) for i in chosen if groups[i] >= 0}
            if len(used) >= max_groups:
                leverage[(groups >= 0) & ~np.isin(groups, list(used))] = -1.0
        c = int(np.argmax(leverage))
        if leverage[c] < 0:
            raise ValueError(f"cannot choose {count} symmetry functions: only {len(chosen)} remain choosable")
        chosen.append(c)
        if gram[c, c] > 0:
            gram = gram - np.outer(gram[:, c], gram[c, :]) / gram[c, c]
    return chosen


def _moment_keys(pool: list[SymmetryFunction]) -> np.ndarray:
    """Per candidate: a label of its radial weight (neighbour pair, η, R_s) if a G5, else −1."""
    labels: dict[tuple, int] = {}
    return np.array([labels.setdefault((f.neighbors, f.eta, f.rs), len(labels)) if isinstance(f, G5) else -1
                     for f in pool])


def selected(count: int, elements: Iterable[str], structures, rc: float = STUDY_CUTOFF,
             wide: bool = False) -> DescriptorSet:
    """`count` functions per centre element, chosen from `candidate_pool`
    (`wide`: its G5 pool) by `cur_select` on the descriptors of `structures`;
    radial ones first, each kind in pool order."""
    elements = tuple(elements)
    distances = pair_distances(structures, elements, rc)
    pools = {c: candidate_pool(elements, _of_centre(distances, c), rc, wide) for c in elements}
    everything = DescriptorSet(elements, {e: tuple(pools[e]) for e in elements})
    rows: dict[str, list[np.ndarray]] = {e: [] for e in elements}
    for atoms in structures:
        feats = everything.featurize(atoms, derivatives=False)
        for e in elements:
            rows[e].append(feats[e].G)
    functions = {}
    for e in elements:
        pool = pools[e]
        matrix = np.concatenate(rows[e]) if rows[e] else np.zeros((0, len(pool)))
        if len(matrix) < 2:
            raise ValueError(f"descriptor selection needs atoms of element {e} in the training structures")
        matrix = matrix[:: max(1, -(-len(matrix) // CUR_MAX_ATOMS))]
        allowed = tail_ratio(matrix) <= CUR_MAX_TAIL_RATIO
        groups = _moment_keys(pool) if wide else None
        picks = sorted(cur_select(matrix, count, allowed, groups, CUR_WIDE_MAX_KEYS),
                       key=lambda i: (not isinstance(pool[i], G2), i))
        functions[e] = tuple(pool[i] for i in picks)
    return DescriptorSet(elements, functions)
