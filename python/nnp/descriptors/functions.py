"""Typed symmetry functions (G2, G4, G5; element-weighted W2, W4, W5) and the
descriptor set of a potential.

The maths, the parameter rules (η, ζ, λ, R_s, r_c and the largest cutoff)
and the file format live once, in the C++ core (`cpp/src/symmetry_function.cpp`);
these classes name *which* functions to use, with neighbour elements as
symbols, and convert to the core's `SymmetryFunction` in one place (`to_core`).
Units: Å and Å⁻² (η multiplies the squared distance itself).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Sequence, Union

import numpy as np

from nnp import _core
from nnp.descriptors.compact import C2, C4, C5, COMPACT_WEIGHTED, CW2, CW4, CW5, compact_from_core

_Kind = _core.SymmetryFunctionKind


@dataclass(frozen=True)
class G2:
    """Radial: Σ_j exp(−η(R_ij − R_s)²) f_c(R_ij) over neighbours of `neighbor`."""

    neighbor: str
    eta: float
    rs: float = 0.0
    rc: float = 6.0

    def to_core(self, index: dict[str, int]) -> _core.SymmetryFunction:
        return _core.SymmetryFunction(kind=_Kind.G2, element_a=index[self.neighbor], eta=self.eta, rs=self.rs,
                                      rc=self.rc)

    def check(self) -> None:
        _check(self, self.to_core({self.neighbor: 0}))


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

    def to_core(self, index: dict[str, int]) -> _core.SymmetryFunction:
        a, b = (index[e] for e in self.neighbors)
        kind = _Kind.G4 if isinstance(self, G4) else _Kind.G5
        return _core.SymmetryFunction(kind=kind, element_a=a, element_b=b, eta=self.eta, zeta=self.zeta,
                                      lambda_=int(self.lambda_), rs=self.rs, rc=self.rc)

    def check(self) -> None:
        if len(self.neighbors) != 2:
            raise ValueError(f"{self}: angular functions take two neighbour elements")
        if self.lambda_ not in (1, -1):  # before the core's int conversion could round it
            raise ValueError(f"{self}: lambda must be +1 or -1")
        _check(self, self.to_core({e: 0 for e in self.neighbors}))


@dataclass(frozen=True)
class G4(_Angular):
    """Narrow angular: includes exp(−η(R_jk−R_s)²) f_c(R_jk)."""


@dataclass(frozen=True)
class G5(_Angular):
    """Wide angular: no R_jk terms."""


# Element weights of a weighted function: (symbol, g) pairs; () means the
# atomic numbers (the choice of Gastegger et al., J. Chem. Phys. 148, 241709
# (2018)). A DescriptorSet resolves them to explicit pairs in its element order.
ElementWeights = tuple[tuple[str, float], ...]


def _weights_to_core(sf, index: dict[str, int]) -> list[float]:
    given = dict(sf.weights) if sf.weights else {e: float(_core.atomic_number(e)) for e in index}
    missing = [e for e in index if e not in given]
    if missing:
        raise ValueError(f"{sf}: no element weight for {missing}")
    return [float(given[e]) for e in sorted(index, key=index.get)]


@dataclass(frozen=True)
class W2:
    """Element-weighted radial: Σ_j g(j) exp(−η(R_ij − R_s)²) f_c(R_ij) over
    neighbours of every element, g the element weight (default: Z)."""

    eta: float
    rs: float = 0.0
    rc: float = 6.0
    weights: ElementWeights = ()

    def to_core(self, index: dict[str, int]) -> _core.SymmetryFunction:
        return _core.SymmetryFunction(kind=_Kind.W2, element_a=-1, eta=self.eta, rs=self.rs, rc=self.rc,
                                      weights=_weights_to_core(self, index))

    def check(self) -> None:
        _check(self, self.to_core({e: i for i, (e, _) in enumerate(self.weights)} or {"H": 0}))


@dataclass(frozen=True)
class _WeightedAngular:
    eta: float
    zeta: float
    lambda_: int
    rs: float = 0.0
    rc: float = 6.0
    weights: ElementWeights = ()

    def to_core(self, index: dict[str, int]) -> _core.SymmetryFunction:
        kind = _Kind.W4 if isinstance(self, W4) else _Kind.W5
        return _core.SymmetryFunction(kind=kind, element_a=-1, eta=self.eta, zeta=self.zeta,
                                      lambda_=int(self.lambda_), rs=self.rs, rc=self.rc,
                                      weights=_weights_to_core(self, index))

    def check(self) -> None:
        if self.lambda_ not in (1, -1):
            raise ValueError(f"{self}: lambda must be +1 or -1")
        _check(self, self.to_core({e: i for i, (e, _) in enumerate(self.weights)} or {"H": 0}))


@dataclass(frozen=True)
class W4(_WeightedAngular):
    """Element-weighted narrow angular: G4's sum with each pair (j, k)
    weighted by g(j) g(k)."""


@dataclass(frozen=True)
class W5(_WeightedAngular):
    """Element-weighted wide angular (no R_jk terms)."""


SymmetryFunction = Union[G2, G4, G5, W2, W4, W5, C2, C4, C5, CW2, CW4, CW5]
WEIGHTED = (W2, W4, W5, *COMPACT_WEIGHTED)
_COMPACT_KINDS = (_Kind.C2, _Kind.C4, _Kind.C5, _Kind.CW2, _Kind.CW4, _Kind.CW5)


def _check(sf: SymmetryFunction, core: _core.SymmetryFunction) -> None:
    error = core.parameter_error()
    if error:
        raise ValueError(f"{sf}: {error}")


def from_core(f: _core.SymmetryFunction, elements: Sequence[str]) -> SymmetryFunction:
    """The typed function of a core function whose element indices refer to `elements`."""
    if f.kind in _COMPACT_KINDS:
        return compact_from_core(f, elements)
    if f.kind == _Kind.G2:
        return G2(elements[f.element_a], f.eta, f.rs, f.rc)
    if f.kind in (_Kind.W2, _Kind.W4, _Kind.W5):
        weights = tuple(zip(elements, (float(g) for g in f.weights)))
        if f.kind == _Kind.W2:
            return W2(f.eta, f.rs, f.rc, weights)
        cls = W4 if f.kind == _Kind.W4 else W5
        return cls(f.eta, f.zeta, f.lambda_, f.rs, f.rc, weights)
    cls = G4 if f.kind == _Kind.G4 else G5
    return cls((elements[f.element_a], elements[f.element_b]), f.eta, f.zeta, f.lambda_, f.rs, f.rc)


@dataclass(frozen=True)
class DescriptorSet:
    """The symmetry functions of every centre element, in network-input order."""

    elements: tuple[str, ...]
    functions: dict[str, tuple[SymmetryFunction, ...]]
    cutoff_function: str = "cos"
    angular_sum: str = "half"
    cutoff_alpha: float = 0.0  # inner radius α r_c of the cos, exp and poly cutoffs (format version 5)
    _core: object = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "elements", tuple(self.elements))
        object.__setattr__(self, "functions", {e: self._resolved(tuple(f)) for e, f in self.functions.items()})
        if len(set(self.elements)) != len(self.elements) or not self.elements:
            raise ValueError(f"elements must be a non-empty list without repeats: {self.elements}")
        if set(self.functions) != set(self.elements):
            raise ValueError(
                f"functions are given for {sorted(self.functions)} but elements are {list(self.elements)}"
            )
        if self.cutoff_function not in _core.CUTOFF_FUNCTIONS:
            raise ValueError(f"cutoff_function must be one of {_core.CUTOFF_FUNCTIONS}")
        if self.angular_sum not in _core.ANGULAR_SUMS:
            raise ValueError(f"angular_sum must be one of {_core.ANGULAR_SUMS}")
        for centre, funcs in self.functions.items():
            if not funcs:
                raise ValueError(f"element {centre} has no symmetry functions")
            if len(set(funcs)) != len(funcs):
                raise ValueError(f"element {centre} has duplicate symmetry functions")
        tables = {sf.weights for funcs in self.functions.values() for sf in funcs if isinstance(sf, WEIGHTED)}
        if len(tables) > 1:  # the file has one element_weights line
            raise ValueError(f"the weighted functions must share one set of element weights, found {sorted(tables)}")
        for centre, funcs in self.functions.items():
            for sf in funcs:
                sf.check()
                used = (sf.neighbor,) if isinstance(sf, (G2, C2)) else () if isinstance(sf, WEIGHTED) else sf.neighbors
                for e in used:
                    if e not in self.elements:
                        raise ValueError(f"{sf} names element {e}, not in {list(self.elements)}")

    def _resolved(self, funcs: tuple[SymmetryFunction, ...]) -> tuple[SymmetryFunction, ...]:
        """Weighted functions with their weights as explicit (symbol, g) pairs in element order."""
        if not any(isinstance(sf, WEIGHTED) for sf in funcs):
            return funcs
        index = {e: i for i, e in enumerate(self.elements)}
        out = []
        for sf in funcs:
            if isinstance(sf, WEIGHTED):
                sf = replace(sf, weights=tuple(zip(self.elements, _weights_to_core(sf, index))))
            out.append(sf)
        return tuple(out)

    def size(self, element: str) -> int:
        return len(self.functions[element])

    @property
    def cutoff(self) -> float:
        return max(sf.rc for funcs in self.functions.values() for sf in funcs)

    def to_core(self, element: str) -> list[_core.SymmetryFunction]:
        """The core's functions of one centre element (indices into `elements`)."""
        index = {e: i for i, e in enumerate(self.elements)}
        return [sf.to_core(index) for sf in self.functions[element]]

    def core(self) -> _core.Descriptors:
        """The C++ descriptor evaluator (built once, cached)."""
        if self._core is None:
            functions = [self.to_core(e) for e in self.elements]
            object.__setattr__(self, "_core", _core.Descriptors(functions, self.cutoff_function, self.angular_sum,
                                                                self.cutoff_alpha))
        return self._core

    def element_indices(self, symbols: Sequence[str]) -> np.ndarray:
        index = {e: i for i, e in enumerate(self.elements)}
        try:
            return np.array([index[s] for s in symbols], dtype=np.int32)
        except KeyError as err:
            raise ValueError(
                f"element {err.args[0]} is not in the descriptor's elements {list(self.elements)}"
            ) from None

    def featurize(self, atoms, derivatives: bool = True) -> dict[str, _core.ElementFeatures]:
        """Descriptors (and ∂G_i/∂r_ij) of an ASE Atoms, per centre element:
        `_core.ElementFeatures` with G (n_e, M), atoms (n_e,), and with
        derivatives pair_center (P,), pair_neighbor (P,), pair_vector (P, 3),
        dG_dr (P, M, 3)."""
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
        sizes = {self.size(e) for e in feats if len(feats[e].atoms)}
        if len(sizes) > 1:
            raise ValueError("atoms of different elements have different descriptor lengths")
        out = np.zeros((len(atoms), sizes.pop() if sizes else 0))
        for f in feats.values():
            out[f.atoms] = f.G
        return out
