"""Typed compact ("polynomial") symmetry functions of Bircher et al., Mach.
Learn.: Sci. Technol. 2, 035026 (2021) (n2p2 types 20–25): C2, C4, C5 and the
element-weighted CW2, CW4, CW5 (format version 5).

The maths is in the C++ core (`cpp/include/nnp/descriptor.h`,
`cpp/src/descriptor_compact.cpp`): a bump of a core polynomial (`core`:
p1–p4, asymmetric p1a–p4a, or e) over the radial window (rl, rc) in Å, and
for the angular kinds over the angular window (angle_left, angle_right) in
degrees; no cutoff function. These classes only name the functions and
convert them to the core's `SymmetryFunction`.
"""

from __future__ import annotations

from dataclasses import dataclass

from nnp import _core

_Kind = _core.SymmetryFunctionKind

# Element weights as in nnp.descriptors.functions: (symbol, g) pairs; () means Z.
ElementWeights = tuple[tuple[str, float], ...]


def _check(sf, core: _core.SymmetryFunction) -> None:
    error = core.parameter_error()
    if error:
        raise ValueError(f"{sf}: {error}")


def _weights(sf, index: dict[str, int]) -> list[float]:
    given = dict(sf.weights) if sf.weights else {e: float(_core.atomic_number(e)) for e in index}
    missing = [e for e in index if e not in given]
    if missing:
        raise ValueError(f"{sf}: no element weight for {missing}")
    return [float(given[e]) for e in sorted(index, key=index.get)]


def _core_function(sf, **kw) -> _core.SymmetryFunction:
    if sf.core not in _core.COMPACT_CORES:
        raise ValueError(f"{sf}: core must be one of {_core.COMPACT_CORES}")
    return _core.SymmetryFunction(rl=sf.rl, rc=sf.rc, core=sf.core, eta=0.0, **kw)


@dataclass(frozen=True)
class C2:
    """Compact radial: Σ_j C_r(R_ij) over neighbours of `neighbor`."""

    neighbor: str
    rl: float
    rc: float
    core: str = "p2"

    def to_core(self, index: dict[str, int]) -> _core.SymmetryFunction:
        return _core_function(self, kind=_Kind.C2, element_a=index[self.neighbor])

    def check(self) -> None:
        _check(self, self.to_core({self.neighbor: 0}))


@dataclass(frozen=True)
class _CompactAngular:
    neighbors: tuple[str, str]
    rl: float
    rc: float
    angle_left: float  # degrees
    angle_right: float
    core: str = "p2"

    def __post_init__(self) -> None:
        object.__setattr__(self, "neighbors", tuple(sorted(self.neighbors)))

    def to_core(self, index: dict[str, int]) -> _core.SymmetryFunction:
        a, b = (index[e] for e in self.neighbors)
        kind = _Kind.C4 if isinstance(self, C4) else _Kind.C5
        return _core_function(self, kind=kind, element_a=a, element_b=b, angle_left=self.angle_left,
                              angle_right=self.angle_right)

    def check(self) -> None:
        if len(self.neighbors) != 2:
            raise ValueError(f"{self}: angular functions take two neighbour elements")
        _check(self, self.to_core({e: 0 for e in self.neighbors}))


@dataclass(frozen=True)
class C4(_CompactAngular):
    """Compact narrow angular: Σ_{j<k} C_a(θ) C_r(R_ij) C_r(R_ik) C_r(R_jk)."""


@dataclass(frozen=True)
class C5(_CompactAngular):
    """Compact wide angular: Σ_{j<k} C_a(θ) C_r(R_ij) C_r(R_ik)."""


@dataclass(frozen=True)
class CW2:
    """Element-weighted compact radial: Σ_j g(j) C_r(R_ij) over every neighbour."""

    rl: float
    rc: float
    core: str = "p2"
    weights: ElementWeights = ()

    def to_core(self, index: dict[str, int]) -> _core.SymmetryFunction:
        return _core_function(self, kind=_Kind.CW2, element_a=-1, weights=_weights(self, index))

    def check(self) -> None:
        _check(self, self.to_core({e: i for i, (e, _) in enumerate(self.weights)} or {"H": 0}))


@dataclass(frozen=True)
class _CompactWeightedAngular:
    rl: float
    rc: float
    angle_left: float
    angle_right: float
    core: str = "p2"
    weights: ElementWeights = ()

    def to_core(self, index: dict[str, int]) -> _core.SymmetryFunction:
        kind = _Kind.CW4 if isinstance(self, CW4) else _Kind.CW5
        return _core_function(self, kind=kind, element_a=-1, angle_left=self.angle_left,
                              angle_right=self.angle_right, weights=_weights(self, index))

    def check(self) -> None:
        _check(self, self.to_core({e: i for i, (e, _) in enumerate(self.weights)} or {"H": 0}))


@dataclass(frozen=True)
class CW4(_CompactWeightedAngular):
    """Element-weighted compact narrow angular (pairs weighted by g(j) g(k))."""


@dataclass(frozen=True)
class CW5(_CompactWeightedAngular):
    """Element-weighted compact wide angular."""


COMPACT = (C2, C4, C5, CW2, CW4, CW5)
COMPACT_WEIGHTED = (CW2, CW4, CW5)


def compact_from_core(f: _core.SymmetryFunction, elements) -> C2 | C4 | C5 | CW2 | CW4 | CW5:
    """The typed compact function of a core function (indices into `elements`)."""
    if f.kind == _Kind.C2:
        return C2(elements[f.element_a], f.rl, f.rc, f.core)
    if f.kind in (_Kind.C4, _Kind.C5):
        cls = C4 if f.kind == _Kind.C4 else C5
        return cls((elements[f.element_a], elements[f.element_b]), f.rl, f.rc, f.angle_left, f.angle_right, f.core)
    weights = tuple(zip(elements, (float(g) for g in f.weights)))
    if f.kind == _Kind.CW2:
        return CW2(f.rl, f.rc, f.core, weights)
    cls = CW4 if f.kind == _Kind.CW4 else CW5
    return cls(f.rl, f.rc, f.angle_left, f.angle_right, f.core, weights)
