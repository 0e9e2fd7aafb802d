"""The plain-text potential file (docs/potential-format.md) as typed Python data.

The C++ core is the only reader and the only writer of the format
(`nnp._core.parse_potential` and `format_potential`, which also check what is
written); this module converts between the core's `PotentialSpec` and the
dataclasses that training, the committee, convert and the torch model use.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nnp import _core
from nnp.descriptors import DescriptorSet, from_core
from nnp.io.atomic import atomic_write_text


class PotentialFileError(ValueError):
    """A malformed potential file; the message names the file and line."""


@dataclass
class Layer:
    weights: np.ndarray  # (n_out, n_in)
    biases: np.ndarray  # (n_out,)
    activation: str


@dataclass
class Scaling:
    """Network input x = (G − center)/width; [min, max] is the training range of G."""

    center: np.ndarray
    width: np.ndarray
    min: np.ndarray
    max: np.ndarray


@dataclass
class QuadraticTerm:
    """Q(x) = linear·x + xᵀ matrix x of the scaled descriptor x, added to the
    network's output (matrix symmetric, (M, M)); see nnp.model.quadratic."""

    linear: np.ndarray  # (M,)
    matrix: np.ndarray  # (M, M)

    def __post_init__(self) -> None:
        self.linear = np.asarray(self.linear, dtype=np.float64)
        self.matrix = np.asarray(self.matrix, dtype=np.float64)

    @property
    def size(self) -> int:
        return int(self.linear.shape[0])

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Q of every row of x, (n, M) -> (n,)."""
        x = np.asarray(x, dtype=np.float64)
        return x @ self.linear + np.einsum("nm,mk,nk->n", x, self.matrix, x)


@dataclass
class GaussianProcess:
    """A sparse GP, E_GP(x) = Σ_m weights[m] k(x, sparse_points[m]) of the
    scaled descriptor x; kernel "se" (uses lengthscale) or "dot" (uses zeta).
    Kernels in nnp.model.gp and docs/gp.md."""

    kernel: str
    delta: float  # eV
    sparse_points: np.ndarray  # (M, D)
    weights: np.ndarray  # (M,)
    lengthscale: float = 1.0
    zeta: int = 1
    # What the predictive variance needs (format version 7, docs/gp.md): the
    # upper-triangular factor R of the weights' posterior precision packed
    # row by row from the diagonal (M(M+1)/2), and the jitter (relative to
    # δ²) the fit added to K_MM. None: no variance.
    variance_factor: np.ndarray | None = None
    variance_jitter: float = 0.0

    def __post_init__(self) -> None:
        self.sparse_points = np.asarray(self.sparse_points, dtype=np.float64)
        self.weights = np.asarray(self.weights, dtype=np.float64)
        if self.variance_factor is not None:
            self.variance_factor = np.asarray(self.variance_factor, dtype=np.float64)


@dataclass
class ElementModel:
    reference_energy: float  # eV per atom
    scaling: Scaling
    layers: list[Layer]  # may be empty when `gp` is set
    quadratic: QuadraticTerm | None = None  # E_i = e0 + NN(x) + Q(x) (+ GP(x))
    gp: GaussianProcess | None = None


@dataclass(frozen=True)
class Repulsion:
    """A ZBL screened-Coulomb core for one (unordered) element pair, switched
    off smoothly between r_inner and r_outer (Å); see docs/potential-format.md."""

    element_a: str
    element_b: str
    r_inner: float
    r_outer: float


@dataclass
class PotentialData:
    """Everything a potential file holds."""

    descriptors: DescriptorSet
    models: dict[str, ElementModel]
    comments: list[str] = field(default_factory=list)
    repulsion: list[Repulsion] = field(default_factory=list)

    @property
    def elements(self) -> tuple[str, ...]:
        return self.descriptors.elements

    @property
    def format_version(self) -> int:
        """The lowest version that can express this potential (what `dumps` writes)."""
        return to_spec(self).lowest_format_version()

    def check_repulsion(self) -> None:
        """The checks of the repulsion pairs alone (the models may be missing)."""
        _core.check_repulsion(to_spec(self, with_models=False))

    def check(self) -> None:
        """Raise ValueError if this potential cannot be written."""
        _core.check_potential(to_spec(self))


# ------------------------------------------------------------ spec conversion


def _repulsion_to_core(r: Repulsion, index: dict[str, int]) -> _core.RepulsionPair:
    if not isinstance(r, Repulsion):
        raise TypeError(f"repulsion entries must be nnp.io.potential_file.Repulsion, got {type(r).__name__}")
    for e in (r.element_a, r.element_b):
        if e not in index:
            raise ValueError(f"repulsion {r.element_a} {r.element_b}: element '{e}' is not in the elements line "
                             f"{list(index)}")
    return _core.RepulsionPair(index[r.element_a], index[r.element_b], r.r_inner, r.r_outer)


def _element_to_core(pot: PotentialData, e: str, with_model: bool) -> _core.ElementSpec:
    functions = pot.descriptors.to_core(e)
    n = len(functions)
    if not with_model:
        empty = np.zeros(0)
        return _core.ElementSpec(e, 0.0, functions, _core.Scaling(empty, empty, empty, empty), [])
    m = pot.models[e]
    s = m.scaling
    layers = []
    for i, layer in enumerate(m.layers, 1):
        weights = np.asarray(layer.weights, dtype=np.float64)
        if weights.ndim != 2:
            raise ValueError(f"{e}: layer {i} weights must be an (n_out, n_in) array, got shape {weights.shape}")
        layers.append(_core.Layer(weights, layer.biases, layer.activation))
    quadratic = None
    if m.quadratic is not None:
        q = m.quadratic
        if q.linear.shape != (n,) or q.matrix.shape != (n, n):
            raise ValueError(f"{e}: the quadratic term needs {n} linear coefficients and a {n} x {n} matrix, "
                             f"got {q.linear.shape} and {q.matrix.shape}")
        quadratic = _core.QuadraticSpec(q.linear, q.matrix)
    gp = None
    if m.gp is not None:
        g = m.gp
        gp = _core.GaussianProcessSpec(g.kernel, float(g.delta), float(g.lengthscale), int(g.zeta),
                                       g.sparse_points.reshape(len(g.weights), -1), g.weights, g.variance_factor,
                                       float(g.variance_jitter))
    return _core.ElementSpec(e, float(m.reference_energy), functions,
                             _core.Scaling(s.center, s.width, s.min, s.max), layers, quadratic, gp)


def to_spec(pot: PotentialData, with_models: bool = True) -> _core.PotentialSpec:
    """The core's spec of `pot` (comments split into lines, as written)."""
    d = pot.descriptors
    if with_models and set(pot.models) != set(d.elements):
        raise ValueError(f"models for {sorted(pot.models)} but elements {list(d.elements)}")
    index = {e: i for i, e in enumerate(d.elements)}
    repulsion = [_repulsion_to_core(r, index) for r in pot.repulsion]
    elements = [_element_to_core(pot, e, with_models) for e in d.elements]
    comments = [c for line in pot.comments for c in line.splitlines()]
    return _core.PotentialSpec(elements, d.cutoff_function, d.angular_sum, comments, repulsion,
                               cutoff_alpha=d.cutoff_alpha)


def from_spec(spec: _core.PotentialSpec) -> PotentialData:
    symbols = tuple(e.symbol for e in spec.elements)
    functions = {e.symbol: tuple(from_core(f, symbols) for f in e.functions) for e in spec.elements}
    descriptors = DescriptorSet(symbols, functions, spec.cutoff_function, spec.angular_sum, spec.cutoff_alpha)
    models = {}
    for e in spec.elements:
        s = e.scaling
        layers = [Layer(layer.weights, layer.biases, layer.activation) for layer in e.layers]
        q = e.quadratic
        quadratic = QuadraticTerm(q.linear, q.matrix) if q is not None else None
        g = e.gp
        gp = None if g is None else GaussianProcess(g.kernel, g.delta, g.sparse_points, g.weights, g.lengthscale,
                                                    g.zeta, g.variance_factor, g.variance_jitter)
        models[e.symbol] = ElementModel(e.reference_energy, Scaling(s.center, s.width, s.min, s.max), layers, quadratic,
                                        gp)
    repulsion = [Repulsion(symbols[r.element_a], symbols[r.element_b], r.r_inner, r.r_outer) for r in spec.repulsion]
    return PotentialData(descriptors, models, list(spec.comments), repulsion)


# ------------------------------------------------------------ reading, writing


def dumps(pot: PotentialData) -> str:
    """The file text (the core checks the potential first; ValueError if it cannot be written)."""
    return _core.format_potential(to_spec(pot))


def write(pot: PotentialData, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write atomically (temporary file, then rename); never clobbers an
    existing file unless `overwrite`."""
    path = Path(path)
    text = dumps(pot)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; refusing to overwrite it (use --force / overwrite=True)")
    atomic_write_text(path, text)
    return path


def _parse(data: bytes, source: str) -> PotentialData:
    try:
        spec = _core.parse_potential(data, source)
    except ValueError as err:
        raise PotentialFileError(str(err)) from None
    return from_spec(spec)


def loads(text: str, source: str = "<string>") -> PotentialData:
    return _parse(text.encode("utf-8", errors="surrogateescape"), source)


def read(path: str | os.PathLike) -> PotentialData:
    path = Path(path)
    try:
        data = path.read_bytes()  # bytes: no newline translation; the core checks the encoding
    except FileNotFoundError:
        raise FileNotFoundError(f"potential file {path} does not exist") from None
    return _parse(data, str(path))
