"""Symmetry-function descriptors: typed parameter sets, presets, evaluation.

The maths lives once, in the C++ core (`cpp/src/descriptor.cpp`); this module
describes *which* functions to use and calls the core to evaluate them.
Units: Å and Å⁻² (η multiplies the squared distance itself). The angular
convention is written into every potential file (``angular_sum``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Sequence, Union

import numpy as np

CUTOFF_FUNCTIONS = ("cos", "tanh3")
ANGULAR_SUMS = ("half", "full")


@dataclass(frozen=True)
class G2:
    """Radial: Σ_j exp(−η(R_ij − R_s)²) f_c(R_ij) over neighbours of `neighbor`."""

    neighbor: str
    eta: float
    rs: float = 0.0
    rc: float = 6.0

    def check(self) -> None:
        _check_common(self, self.eta, self.rs, self.rc)


@dataclass(frozen=True)
class _Angular:
    neighbors: tuple[str, str]
    eta: float
    zeta: float
    lambda_: int
    rs: float = 0.0
    rc: float = 6.0

    def __post_init__(self) -> None:
        # The element pair is unordered: store it sorted so equal functions compare equal.
        object.__setattr__(self, "neighbors", tuple(sorted(self.neighbors)))

    def check(self) -> None:
        _check_common(self, self.eta, self.rs, self.rc)
        if len(self.neighbors) != 2:
            raise ValueError(f"{self}: angular functions take two neighbour elements")
        if self.lambda_ not in (1, -1):
            raise ValueError(f"{self}: lambda must be +1 or -1")
        if not (math.isfinite(self.zeta) and self.zeta >= 1.0):
            raise ValueError(f"{self}: zeta must be >= 1")


@dataclass(frozen=True)
class G4(_Angular):
    """Narrow angular: includes exp(−η(R_jk−R_s)²) f_c(R_jk)."""


@dataclass(frozen=True)
class G5(_Angular):
    """Wide angular: no R_jk terms."""


SymmetryFunction = Union[G2, G4, G5]
# Largest accepted cutoff radius (Å), as kMaxCutoff in cpp/include/nnp/descriptor.h:
# beyond it a value is a mistake that would make neighbour lists explode.
MAX_CUTOFF = 30.0


def _check_common(sf, eta: float, rs: float, rc: float) -> None:
    if not (math.isfinite(eta) and eta >= 0.0):
        raise ValueError(f"{sf}: eta must be finite and >= 0")
    if not (math.isfinite(rc) and rc > 0.0):
        raise ValueError(f"{sf}: rc must be > 0")
    if rc > MAX_CUTOFF:
        raise ValueError(f"{sf}: rc must be <= {MAX_CUTOFF:g} Å")
    if not (math.isfinite(rs) and 0.0 <= rs < rc):
        raise ValueError(f"{sf}: need 0 <= rs < rc")


@dataclass(frozen=True)
class DescriptorSet:
    """The symmetry functions of every centre element, in network-input order."""

    elements: tuple[str, ...]
    functions: dict[str, tuple[SymmetryFunction, ...]]
    cutoff_function: str = "cos"
    angular_sum: str = "half"
    _core: object = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "elements", tuple(self.elements))
        object.__setattr__(self, "functions", {e: tuple(f) for e, f in self.functions.items()})
        if len(set(self.elements)) != len(self.elements) or not self.elements:
            raise ValueError(f"elements must be a non-empty list without repeats: {self.elements}")
        if set(self.functions) != set(self.elements):
            raise ValueError(
                f"functions are given for {sorted(self.functions)} but elements are {list(self.elements)}"
            )
        if self.cutoff_function not in CUTOFF_FUNCTIONS:
            raise ValueError(f"cutoff_function must be one of {CUTOFF_FUNCTIONS}")
        if self.angular_sum not in ANGULAR_SUMS:
            raise ValueError(f"angular_sum must be one of {ANGULAR_SUMS}")
        for centre, funcs in self.functions.items():
            if not funcs:
                raise ValueError(f"element {centre} has no symmetry functions")
            if len(set(funcs)) != len(funcs):
                raise ValueError(f"element {centre} has duplicate symmetry functions")
            for sf in funcs:
                sf.check()
                used = (sf.neighbor,) if isinstance(sf, G2) else sf.neighbors
                for e in used:
                    if e not in self.elements:
                        raise ValueError(f"{sf} names element {e}, not in {list(self.elements)}")

    def size(self, element: str) -> int:
        return len(self.functions[element])

    @property
    def cutoff(self) -> float:
        return max(sf.rc for funcs in self.functions.values() for sf in funcs)

    def core(self):
        """The C++ descriptor evaluator (built once, cached)."""
        if self._core is None:
            from nnp import _core

            index = {e: i for i, e in enumerate(self.elements)}
            table = []
            for centre in self.elements:
                rows = []
                for sf in self.functions[centre]:
                    if isinstance(sf, G2):
                        rows.append(("G2", index[sf.neighbor], -1, sf.eta, 1.0, 1, sf.rs, sf.rc))
                    else:
                        kind = "G4" if isinstance(sf, G4) else "G5"
                        a, b = (index[e] for e in sf.neighbors)
                        rows.append((kind, a, b, sf.eta, sf.zeta, sf.lambda_, sf.rs, sf.rc))
                table.append(rows)
            object.__setattr__(
                self, "_core", _core.Descriptors(table, self.cutoff_function, self.angular_sum)
            )
        return self._core

    def element_indices(self, symbols: Sequence[str]) -> np.ndarray:
        index = {e: i for i, e in enumerate(self.elements)}
        try:
            return np.array([index[s] for s in symbols], dtype=np.int32)
        except KeyError as err:
            raise ValueError(
                f"element {err.args[0]} is not in the descriptor's elements {list(self.elements)}"
            ) from None

    def featurize(self, atoms, derivatives: bool = True) -> dict[str, dict[str, np.ndarray]]:
        """Descriptors (and ∂G_i/∂r_ij) of an ASE Atoms, per centre element.

        Returns {element: {"G": (n_e, M), "atoms": (n_e,), and with derivatives
        "pair_center": (P,), "pair_neighbor": (P,), "pair_vector": (P, 3),
        "dG_dr": (P, M, 3)}}.
        """
        per_element = self.core().featurize(
            np.ascontiguousarray(atoms.positions, dtype=np.float64),
            self.element_indices(atoms.get_chemical_symbols()),
            np.ascontiguousarray(atoms.cell.array, dtype=np.float64),
            [bool(p) for p in atoms.pbc],
            derivatives,
        )
        return dict(zip(self.elements, per_element))

    def compute(self, atoms) -> np.ndarray:
        """G of every atom, (n, M); all atoms must share one descriptor length."""
        feats = self.featurize(atoms, derivatives=False)
        sizes = {self.size(e) for e in feats if len(feats[e]["atoms"])}
        if len(sizes) > 1:
            raise ValueError("atoms of different elements have different descriptor lengths")
        out = np.zeros((len(atoms), sizes.pop() if sizes else 0))
        for f in feats.values():
            out[f["atoms"]] = f["G"]
        return out


# ---------------------------------------------------------------------------
# Presets. The study (docs/science.md) uses G2 with R_s = 0 and narrow G4 with
# λ = ±1, ζ ∈ {1, 2, 4, 16}, r_c = 6 Å. Series A drops η values (radial and
# angular); series B keeps 16 radial and 6 angular η values and drops ζ values.

STUDY_CUTOFF = 6.0
# 16 radial widths, geometric from a broad 0.003 Å⁻² (reaches r_c) to 2 Å⁻²
# (first shell only).
RADIAL_ETAS = tuple(float(x) for x in np.geomspace(0.003, 2.0, 16))
# 6 angular widths: exp(−η(R_ij²+R_ik²+R_jk²)) spans first to third shell.
ANGULAR_ETAS = (0.0005, 0.005, 0.012, 0.025, 0.05, 0.1)
ZETAS = (1.0, 2.0, 4.0, 16.0)
LENGTHS = (16, 28, 40, 52, 64)
# length -> (radial count, angular η count, ζ count)
SERIES = {
    "A": {16: (0, 2, 4), 28: (4, 3, 4), 40: (8, 4, 4), 52: (12, 5, 4), 64: (16, 6, 4)},
    "B": {16: (16, 6, 0), 28: (16, 6, 1), 40: (16, 6, 2), 52: (16, 6, 3), 64: (16, 6, 4)},
}
# Which ζ values a series-B point keeps, by count.
ZETA_SUBSETS = {0: (), 1: (1.0,), 2: (1.0, 4.0), 3: (1.0, 2.0, 4.0), 4: ZETAS}
# The -wide (G5) presets use ζ ∈ {1, 2, 3, 4} instead: for integer ζ the C++
# kernel factorises Σ_{j<k} (1 + λcosθ)^ζ (…) into squared sums of neighbour
# tensors r̂^⊗n, n <= max ζ, at a cost linear in the number of neighbours but
# growing as (max ζ)³ (35 tensor components for ζ <= 4, 969 for ζ <= 16); with
# ζ = 16 it would be slower than the triple loop. Same count of ζ values, so the
# lengths 16…64 are unchanged.
WIDE_ZETAS = (1.0, 2.0, 3.0, 4.0)
WIDE_ZETA_SUBSETS = {0: (), 1: (1.0,), 2: (1.0, 4.0), 3: (1.0, 2.0, 4.0), 4: WIDE_ZETAS}


def _spread(values: Sequence[float], count: int) -> tuple[float, ...]:
    """`count` values spread evenly over `values` (ends included)."""
    if count == 0:
        return ()
    if count >= len(values):
        return tuple(values)
    idx = np.round(np.linspace(0, len(values) - 1, count)).astype(int)
    return tuple(values[i] for i in idx)


def build(
    elements: Iterable[str],
    radial_etas: Sequence[float],
    angular_etas: Sequence[float],
    zetas: Sequence[float],
    *,
    wide: bool = False,
    rc: float = STUDY_CUTOFF,
    cutoff_function: str = "cos",
) -> DescriptorSet:
    """G2 for every (η, neighbour element), then G4/G5 for every
    (η, ζ, λ, neighbour pair); the same set for every centre element."""
    elements = tuple(elements)
    pairs = [(a, b) for i, a in enumerate(elements) for b in elements[i:]]
    angular = G5 if wide else G4
    funcs: list[SymmetryFunction] = [G2(e, eta, 0.0, rc) for e in elements for eta in radial_etas]
    funcs += [
        angular(p, eta, zeta, lam, 0.0, rc)
        for p in pairs
        for eta in angular_etas
        for zeta in zetas
        for lam in (1, -1)
    ]
    return DescriptorSet(elements, {e: tuple(funcs) for e in elements}, cutoff_function)


def preset(name: str, elements: Iterable[str] = ("Si",)) -> DescriptorSet:
    """A study preset: ``A16 … A64``, ``B16 … B64``, optionally ``-wide`` (G5).

    Narrow presets use ζ ∈ {1, 2, 4, 16} (series B: subsets of it); the -wide
    ones ζ ∈ {1, 2, 3, 4} (see `WIDE_ZETAS`), everything else is the same.
    """
    base, _, suffix = name.partition("-")
    if suffix not in ("", "wide") or len(base) < 2 or base[0] not in SERIES:
        raise ValueError(f"unknown descriptor preset {name!r}; choose from {preset_names()}")
    try:
        n_rad, n_eta, n_zeta = SERIES[base[0]][int(base[1:])]
    except (KeyError, ValueError):
        raise ValueError(f"unknown descriptor preset {name!r}; choose from {preset_names()}") from None
    wide = suffix == "wide"
    if base[0] == "A":
        zetas = WIDE_ZETAS if wide else ZETAS
    else:
        zetas = (WIDE_ZETA_SUBSETS if wide else ZETA_SUBSETS)[n_zeta]
    return build(
        elements,
        _spread(RADIAL_ETAS, n_rad),
        _spread(ANGULAR_ETAS, n_eta),
        zetas,
        wide=wide,
    )


def preset_names() -> list[str]:
    """Study presets (A, B), data-driven ones (S), each also -wide, and
    data-selected ones (C)."""
    names = [f"{s}{n}" for s in (*SERIES, DATA_SERIES) for n in LENGTHS]
    return names + [n + "-wide" for n in names] + [f"{SELECTED_SERIES}{n}" for n in LENGTHS]


# ---------------------------------------------------------------------------
# Data-driven radial functions: series S is series A with its R_s = 0 radial
# Gaussians replaced by shifted ones, exp(−η(R − R_s)²), whose centres cover
# the neighbour distances that occur in the training data evenly (TorchANI's
# "cover linearly"), from the shortest distance seen to 0.93 r_c, each as wide
# as the spacing of the centres (η = 1/(2Δ²)). Centred R_s = 0 Gaussians
# spend most of their range where there are no neighbours (η = 2 Å⁻² is
# ~1e-5 at the 2.35 Å first shell); shifted ones resolve the shells. On the
# Si data, 150 epochs of the same training: validation MAE 5.1 meV/atom and
# 0.131 eV/Å (S52) against 5.6 and 0.137 (A52); with the default training,
# S64 gave 3.13 and 0.086 against 3.35 and 0.092 (S52). Tried and rejected
# for the default: angular functions on a shorter cutoff (4.5 Å: 0.115 eV/Å
# at the same epoch where 6 Å had 0.095), G5 instead of G4 (S64-wide: 3.64,
# 0.097).

DATA_SERIES = "S"
DATA_RADIAL_LOW_QUANTILE = 0.001  # the shortest distances (close contacts) set the first centre
DATA_RADIAL_HIGH = 0.93  # last centre, in units of r_c


def neighbor_distances(structures, rc: float) -> np.ndarray:
    """Every centre–neighbour distance below `rc` in `structures` (Å)."""
    from nnp import _core

    parts = []
    for atoms in structures:
        _, _, vectors = _core.neighbor_list(np.ascontiguousarray(atoms.positions, dtype=np.float64),
                                            np.ascontiguousarray(atoms.cell.array, dtype=np.float64),
                                            [bool(p) for p in atoms.pbc], rc)
        parts.append(np.linalg.norm(vectors, axis=1))
    return np.concatenate(parts) if parts else np.zeros(0)


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


def resolve(name: str, elements: Iterable[str], structures=None) -> DescriptorSet:
    """The descriptor set a preset name stands for; data-driven (S) and
    data-selected (C) presets need the training `structures`."""
    base, _, suffix = name.partition("-")
    if base.startswith(SELECTED_SERIES) and name in preset_names():
        if structures is None:
            raise ValueError(f"descriptor preset {name} is chosen from the data: training structures are needed")
        return selected(int(base[len(SELECTED_SERIES):]), elements, structures)
    if not base.startswith(DATA_SERIES):
        return preset(name, elements)
    if name not in preset_names():
        raise ValueError(f"unknown descriptor preset {name!r}; choose from {preset_names()}")
    if structures is None:
        raise ValueError(f"descriptor preset {name} is chosen from the data: training structures are needed")
    elements = tuple(elements)
    template = preset("A" + name[len(DATA_SERIES):], elements)
    n_radial = sum(isinstance(f, G2) for f in template.functions[elements[0]]) // len(elements)
    radial = shifted_radial(neighbor_distances(structures, STUDY_CUTOFF), n_radial, elements)
    functions = {
        e: tuple(radial) + tuple(f for f in template.functions[e] if not isinstance(f, G2)) for e in elements
    }
    return DescriptorSet(elements, functions, template.cutoff_function, template.angular_sum)


# ---------------------------------------------------------------------------
# Data-selected sets: series C picks its functions from a pool of candidates
# by CUR decomposition of the training data's descriptor matrix (Imbalzano
# et al., J. Chem. Phys. 148, 241730 (2018)): standardise every candidate's
# values over the training atoms, take the candidate with the largest weight
# in the leading singular vector, remove its direction from all others, and
# repeat. Each pick is the column that best spans what is left, so the set
# covers the variation in the data with little redundancy, and the count of
# radial and angular functions is the data's choice. The pool: shifted G2
# spread over the data's neighbour distances (as series S, finer), centred
# G2 from broad to first-shell, and G4 over a grid of η (from nearly flat
# over r_c to first-shell triplets only) × ζ × λ. On the Si data C64 takes
# all 24 shifted and 3 centred G2 and 37 G4; with the default training its
# validation MAE was 2.79 meV/atom and 0.0745 eV/Å (seed-0 split) and 5.22
# and 0.0728 (seed 1), against 2.61 and 0.0738, 5.87 and 0.0736 for S64
# (docs/accuracy.md).

SELECTED_SERIES = "C"
CUR_RADIAL_SHIFTED = 24  # shifted G2 candidates per neighbour element
CUR_RADIAL_CENTRED_ETAS = tuple(float(x) for x in np.geomspace(0.003, 2.0, 12))  # Å⁻², R_s = 0
# G4 candidates: η r_c² from 0.0072 (exp(−3η r_c²) ≈ 0.98: flat over the
# sphere) to 10.8 (first-shell Si triplets only); for r_c = 6 Å, η from
# 0.0002 to 0.3 Å⁻².
CUR_ANGULAR_ETA_RC2 = tuple(float(x) for x in np.geomspace(0.0072, 10.8, 14))
CUR_ZETAS = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0)
CUR_MAX_ATOMS = 20_000  # rows of the descriptor matrix (evenly thinned beyond)
# Standardised, a column whose largest values lie far beyond the rest (the
# closest contacts in first-shell-only functions; in the Si data, centred G2
# with η >= 1 Å⁻² and most G4 with η = 0.3 Å⁻²) looks like a direction of
# its own, and CUR picks it; but the network then sees most atoms squeezed
# into a sliver of its input range and extrapolates on every frame that goes
# a little further. Without
# this filter, C64 on the Si data chose such functions, and the validation
# force RMSE climbed from 0.13 to 0.36 eV/Å late in training, while the
# training error kept falling. Candidates whose full range exceeds the range
# of their lower 99.9 % by more than this factor are not chosen.
CUR_MAX_TAIL_RATIO = 1.3


def candidate_pool(elements: Iterable[str], distances: np.ndarray, rc: float = STUDY_CUTOFF) -> list[SymmetryFunction]:
    """The series-C candidates for one centre element: shifted and centred G2
    per neighbour element, G4 per neighbour pair (see above)."""
    elements = tuple(elements)
    pairs = [(a, b) for i, a in enumerate(elements) for b in elements[i:]]
    pool: list[SymmetryFunction] = list(shifted_radial(distances, CUR_RADIAL_SHIFTED, elements, rc))
    pool += [G2(e, eta, 0.0, rc) for e in elements for eta in CUR_RADIAL_CENTRED_ETAS]
    pool += [
        G4(p, round(x / rc**2, 8), zeta, lam, 0.0, rc)
        for p in pairs
        for x in CUR_ANGULAR_ETA_RC2
        for zeta in CUR_ZETAS
        for lam in (1, -1)
    ]
    return pool


def tail_ratio(matrix: np.ndarray, quantile: float = 0.999) -> np.ndarray:
    """Per column: the full range of its values over the range of all but
    the top (1 − quantile) of them (1: no outlying tail)."""
    low = matrix.min(axis=0)
    bulk = np.quantile(matrix, quantile, axis=0) - low
    full = matrix.max(axis=0) - low
    return np.where(bulk > 0, full / np.where(bulk > 0, bulk, 1.0), np.inf)


def cur_select(matrix: np.ndarray, count: int, allowed: np.ndarray | None = None) -> list[int]:
    """Column indices of `matrix` (rows: atoms) chosen one by one by CUR with
    rank-1 leverage and orthogonalisation (Imbalzano et al. 2018). Columns
    are standardised first; constant columns, and those not `allowed`, are
    never chosen (but still take part in the orthogonalisation).

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
    x[:, varies] /= std[varies]
    x[:, ~varies] = 0.0
    gram = x.T @ x
    chosen: list[int] = []
    for _ in range(count):
        _, vectors = np.linalg.eigh(gram)
        leverage = vectors[:, -1] ** 2
        leverage[chosen] = -1.0
        leverage[~usable] = -1.0
        c = int(np.argmax(leverage))
        chosen.append(c)
        if gram[c, c] > 0:
            gram = gram - np.outer(gram[:, c], gram[c, :]) / gram[c, c]
    return chosen


def selected(count: int, elements: Iterable[str], structures, rc: float = STUDY_CUTOFF) -> DescriptorSet:
    """`count` functions per centre element, chosen from `candidate_pool` by
    `cur_select` on the descriptors of `structures`; radial ones first, each
    kind in pool order."""
    elements = tuple(elements)
    pool = candidate_pool(elements, neighbor_distances(structures, rc), rc)
    everything = DescriptorSet(elements, {e: tuple(pool) for e in elements})
    rows: dict[str, list[np.ndarray]] = {e: [] for e in elements}
    for atoms in structures:
        feats = everything.featurize(atoms, derivatives=False)
        for e in elements:
            rows[e].append(feats[e]["G"])
    functions = {}
    for e in elements:
        matrix = np.concatenate(rows[e]) if rows[e] else np.zeros((0, len(pool)))
        if len(matrix) < 2:
            raise ValueError(f"descriptor selection needs atoms of element {e} in the training structures")
        matrix = matrix[:: max(1, -(-len(matrix) // CUR_MAX_ATOMS))]
        allowed = tail_ratio(matrix) <= CUR_MAX_TAIL_RATIO
        picks = sorted(cur_select(matrix, count, allowed), key=lambda i: (not isinstance(pool[i], G2), i))
        functions[e] = tuple(pool[i] for i in picks)
    return DescriptorSet(elements, functions)


# CUR-selected from the training data (on the Si data: 27 G2 + 37 G4). A
# quadratic model in these 64 functions fits the Si data about as well as the
# 2 × 30 network (S64: 9 % worse in force), which the default model's
# quadratic term needs (nnp.model.quadratic; docs/accuracy.md).
DEFAULT_PRESET = "C64"


def default(elements: Iterable[str] = ("Si",), structures=None) -> DescriptorSet:
    """The default descriptor (`DEFAULT_PRESET`; data-driven presets need the
    training `structures`)."""
    return resolve(DEFAULT_PRESET, elements, structures)
