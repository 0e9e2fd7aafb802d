"""Convert potentials from other codes into an nnp potential file.

    python -m nnp.convert n2p2 DIR -o OUT.nnp [--cflength X] [--cfenergy Y] [--force]

n2p2 (https://github.com/CompPhysVienna/n2p2) keeps a short-range HDNNP in a
directory: ``input.nn`` (settings and symmetry functions), ``scaling.data``
(symmetry-function statistics) and one ``weights.ZZZ.data`` per element (ZZZ
the atomic number). This module reads those files (its own parser; no n2p2
code) and writes the same model in our format (docs/potential-format.md).

The n2p2 conventions the conversion relies on, as n2p2 implements them:

* Units. The model works in its own units (often Bohr and Hartree). With
  ``--cflength`` and ``--cfenergy`` meaning what they mean for n2p2's LAMMPS
  ``pair_style hdnnp``: length in the model = Å × cflength, energy in the
  model = eV × cfenergy. So r_c and R_s are divided by cflength, η is
  multiplied by cflength², and the network output is divided by cfenergy.
* Data-set normalisation (``mean_energy``, ``conv_energy``, ``conv_length``,
  all three or none): the symmetry-function parameters in ``input.nn`` are in
  the model's physical units (n2p2 converts them internally, and the
  descriptor values G do not change), the network output is
  (E_atom − mean_energy)·conv_energy, so E_atom = NN/conv_energy + mean_energy.
* ``atom_energy E e0`` is added to every atom of element E, in the model's
  physical energy unit (after undoing the normalisation).
* Symmetry functions are *sorted* by n2p2 before they become network inputs
  (by type, r_c, η, R_s, then ζ, λ and the neighbour elements); the rows of
  ``scaling.data`` and the network inputs follow that sorted order, not the
  order of the lines in ``input.nn``. Elements are ordered by atomic number.
* ``scaling.data`` columns: element index, function index (both 1-based),
  G_min, G_max, G_mean, G_sigma. The network input is
    scale_symmetry_functions:        S_min + (S_max−S_min)(G−G_min)/(G_max−G_min)
    center_symmetry_functions:       G − G_mean
    both of them:                    S_min + (S_max−S_min)(G−G_mean)/(G_max−G_min)
    scale_symmetry_functions_sigma:  S_min + (S_max−S_min)(G−G_mean)/G_sigma
    none:                            G
  (S_min, S_max from scale_min_short/scale_max_short, default 0 and 1), each
  of which is x = (G − center)/width in our format.
* ``weights.ZZZ.data``: first column, layer by layer: for each neuron j of the
  previous layer, the weights from j to every neuron k of this layer; then the
  biases of this layer. With ``normalize_nodes`` every neuron's summed input
  (weights·inputs + bias) is divided by its number of inputs.
* The output layer is always linear (n2p2 ignores the last letter of
  ``global_activation_short``).
* Types: radial 2 = our G2; angular 3 (narrow, with the R_jk terms and the R_s
  shift applied to all three distances) = our G4; angular 9 (wide) = our G5;
  both with the j<k half sum (``angular_sum half``).
* Cutoff: ``cutoff_type 1`` is ½[cos(πr/r_c)+1] (with the inner-cutoff
  parameter α = 0), ``cutoff_type 2`` is tanh³(1 − r/r_c) (n2p2 "tanhu"),
  ``cutoff_type 3`` is c·tanh³(1 − r/r_c) with c = 1/tanh³(1): our tanh3, with
  the factor c^k (k = 1, 3, 2 cutoff factors for types 2, 3, 9) moved into
  the scaling, since n2p2's G is then c^k times ours.
"""

from __future__ import annotations

import argparse
import datetime
import enum
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

import nnp
from nnp.io import potential_file as pf
from nnp.descriptors import G2, G4, G5, DescriptorSet, SymmetryFunction

# ----------------------------------------------------------------------------
# n2p2 vocabulary


# Chemical symbols by atomic number (n2p2 names weight files by Z and orders
# elements by Z).
_SYMBOLS = (
    "H He Li Be B C N O F Ne Na Mg Al Si P S Cl Ar K Ca Sc Ti V Cr Mn Fe Co Ni Cu Zn Ga Ge "
    "As Se Br Kr Rb Sr Y Zr Nb Mo Tc Ru Rh Pd Ag Cd In Sn Sb Te I Xe Cs Ba La Ce Pr Nd Pm Sm "
    "Eu Gd Tb Dy Ho Er Tm Yb Lu Hf Ta W Re Os Ir Pt Au Hg Tl Pb Bi Po At Rn Fr Ra Ac Th Pa U "
    "Np Pu Am Cm Bk Cf Es Fm Md No"
).split()
ATOMIC_NUMBER = {s: z for z, s in enumerate(_SYMBOLS, 1)}

# n2p2 cutoff_type codes -> our cutoff_function names (None: not supported).
CUTOFF_TYPES = {
    0: ("hard", None),
    1: ("cos", "cos"),
    2: ("tanhu", "tanh3"),
    3: ("tanh, normalised: c·tanh³(1 − r/r_c) with f(0) = 1", "tanh3"),  # c is folded into the scaling
    4: ("exp", None),
    5: ("poly1", None),
    6: ("poly2", None),
    7: ("poly3", None),
    8: ("poly4", None),
}

# The constant of n2p2's normalised tanh cutoff (cutoff_type 3), computed as
# n2p2 computes it: c = ((e + 1/e)/(e − 1/e))³ = 1/tanh³(1), so that f(0) = 1.
TANH_PRE = ((math.e + 1 / math.e) / (math.e - 1 / math.e)) ** 3

# n2p2 activation letters -> ours.
ACTIVATIONS = {"t": "tanh", "s": "sigmoid", "p": "softplus", "l": "linear"}
_OTHER_ACTIVATIONS = {
    "r": "relu",
    "g": "gaussian",
    "c": "cos",
    "S": "reverse logistic",
    "e": "exp",
    "h": "harmonic",
}

# Symmetry-function types n2p2 knows but our format does not have.
_OTHER_SF_TYPES = {
    12: "weighted radial",
    13: "weighted narrow angular",
    20: "compact polynomial radial",
    21: "compact polynomial narrow angular",
    22: "compact polynomial wide angular",
    23: "compact polynomial weighted radial",
    24: "compact polynomial weighted narrow angular",
    25: "compact polynomial weighted wide angular",
}

# Keywords n2p2 allows more than once; any other repeated keyword is an error
# in n2p2 too.
_REPEATABLE = {"symfunction_short", "atom_energy", "element_nodes_short"}

# nnp_type values that mean "short-range network only" (old numeric code 0,
# newer "2G-HDNNP" / 2).
_SHORT_ONLY_TYPES = {"0", "2", "2g-hdnnp"}


class N2p2Error(ValueError):
    """An n2p2 potential that cannot be read or converted; the message names
    the file (and line) and what is wrong."""


# ----------------------------------------------------------------------------
# Settings read from the n2p2 files (n2p2's units, before conversion)


@dataclass(frozen=True)
class UnitFactors:
    """n2p2 pair_style hdnnp's factors: model length = Å × cflength, model
    energy = eV × cfenergy."""

    cflength: float = 1.0
    cfenergy: float = 1.0

    def check(self) -> None:
        for name in ("cflength", "cfenergy"):
            x = getattr(self, name)
            if not (math.isfinite(x) and x > 0):
                raise N2p2Error(f"--{name} must be a positive number, got {x}")


@dataclass(frozen=True)
class Normalization:
    """n2p2 data-set normalisation (mean_energy, conv_energy, conv_length)."""

    mean_energy: float = 0.0
    conv_energy: float = 1.0
    conv_length: float = 1.0


@dataclass(frozen=True)
class SymFunc:
    """One symfunction_short line, parameters as written (model units)."""

    element: str  # centre element
    type: int  # 2, 3 or 9
    neighbors: tuple[str, ...]  # one (radial) or two, sorted by atomic number (angular)
    eta: float
    rs: float
    rc: float
    zeta: float = 0.0
    lambda_: int = 0
    line: int = 0  # line number in input.nn, for messages

    @property
    def cutoff_factors(self) -> int:
        """How many cutoff functions multiply each term: f(R_ij) (radial),
        f(R_ij) f(R_ik) f(R_jk) (narrow), f(R_ij) f(R_ik) (wide)."""
        return {2: 1, 3: 3, 9: 2}[self.type]

    def sort_key(self) -> tuple:
        """n2p2's order of the network inputs (operator< of its SymFnc classes;
        the cutoff type and α are global, so they never decide)."""
        z = tuple(ATOMIC_NUMBER[e] for e in self.neighbors)
        if self.type == 2:
            return (self.type, self.rc, self.eta, self.rs, *z)
        return (self.type, self.rc, self.eta, self.rs, self.zeta, self.lambda_, *z)

    def converted(self, cflength: float) -> SymmetryFunction:
        """Our function, in Å: r_c and R_s divided by cflength, η times cflength²."""
        eta, rs, rc = self.eta * cflength**2, self.rs / cflength, self.rc / cflength
        if self.type == 2:
            return G2(self.neighbors[0], eta, rs, rc)
        kind = G4 if self.type == 3 else G5
        return kind(self.neighbors, eta, self.zeta, self.lambda_, rs, rc)


class ScalingKind(enum.Enum):
    """n2p2's scaling formulas (ScalingType), chosen by input.nn keywords."""

    NONE = "none"  # no scaling keyword
    SCALE = "scale"  # scale_symmetry_functions
    CENTER = "center"  # center_symmetry_functions
    SCALECENTER = "scalecenter"  # both of them
    SCALESIGMA = "scalesigma"  # scale_symmetry_functions_sigma (only if neither of the others)

    @property
    def uses_range(self) -> bool:
        """Whether S_min and S_max (scale_min_short, scale_max_short) enter."""
        return self in (ScalingKind.SCALE, ScalingKind.SCALECENTER, ScalingKind.SCALESIGMA)


@dataclass(frozen=True)
class ScalingMode:
    """Which n2p2 scaling formula applies, with S_min and S_max."""

    kind: ScalingKind
    smin: float = 0.0
    smax: float = 1.0


@dataclass
class N2p2Settings:
    """What input.nn says about the model (prediction keywords only)."""

    path: Path
    elements: tuple[str, ...]  # ordered by atomic number, as n2p2 orders them
    atom_energy: dict[str, float]
    cutoff_function: str  # ours: cos or tanh3
    cutoff_prefactor: float  # n2p2's f_c / ours (TANH_PRE for the normalised tanh, else 1)
    scaling: ScalingMode
    hidden_nodes: dict[str, list[int]]  # per element
    hidden_activations: list[str]  # ours, one per hidden layer
    normalize_nodes: bool
    normalization: Normalization | None
    functions: dict[str, list[SymFunc]]  # per element, in n2p2's sorted order
    notes: list[str] = field(default_factory=list)  # things worth a provenance comment


@dataclass
class ScalingRow:
    gmin: float
    gmax: float
    gmean: float
    gsigma: float | None
    line: int


# ----------------------------------------------------------------------------
# input.nn


def _settings_lines(path: Path) -> list[tuple[int, str, str]]:
    """(line number, keyword, value) of every keyword line; as n2p2, text after
    '#' or '!' is a comment."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        raise N2p2Error(f"{path}: no such file (an n2p2 potential directory holds input.nn, "
                        "scaling.data and weights.ZZZ.data)") from None
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        for mark in "#!":
            line = line.split(mark, 1)[0]
        tok = line.split()
        if tok:
            out.append((n, tok[0], " ".join(tok[1:])))
    return out


def _number(path: Path, line: int, text: str, what: str) -> float:
    try:
        x = float(text)
    except ValueError:
        raise N2p2Error(f"{path}:{line}: expected a number for {what}, found {text!r}") from None
    if not math.isfinite(x):
        raise N2p2Error(f"{path}:{line}: {what} must be finite, found {text!r}")
    return x


def _integer(path: Path, line: int, text: str, what: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise N2p2Error(f"{path}:{line}: expected an integer for {what}, found {text!r}") from None


def _parse_symfunction(path: Path, line: int, value: str, elements: Sequence[str]) -> SymFunc:
    tok = value.split()
    where = f"{path}:{line}"
    if len(tok) < 2:
        raise N2p2Error(f"{where}: symfunction_short needs at least an element and a type")
    centre = tok[0]
    sf_type = _integer(path, line, tok[1], "the symmetry function type")
    if sf_type in (2, 3, 9):
        # Neighbour elements: one for radial, two for angular functions.
        for e in [centre] + tok[2:3 if sf_type == 2 else 4]:
            if e not in elements:
                raise N2p2Error(f"{where}: element {e!r} is not in the 'elements' line {list(elements)}")
    if sf_type == 2:
        # ec 2 e1 eta rs rc
        if len(tok) != 6:
            raise N2p2Error(f"{where}: radial type 2 expects 'element 2 neighbor eta rs rc', found {value!r}")
        eta, rs, rc = (_number(path, line, t, w) for t, w in zip(tok[3:6], ("eta", "rs", "rc")))
        sf = SymFunc(centre, 2, (tok[2],), eta, rs, rc, line=line)
    elif sf_type in (3, 9):
        # ec 3|9 e1 e2 eta lambda zeta rc [rs]
        if len(tok) not in (8, 9):
            raise N2p2Error(
                f"{where}: angular type {sf_type} expects 'element {sf_type} neighbor1 neighbor2 eta lambda "
                f"zeta rc [rs]', found {value!r}"
            )
        eta, lam, zeta, rc = (
            _number(path, line, t, w) for t, w in zip(tok[4:8], ("eta", "lambda", "zeta", "rc"))
        )
        rs = _number(path, line, tok[8], "rs") if len(tok) == 9 else 0.0
        if lam not in (1.0, -1.0):
            raise N2p2Error(f"{where}: lambda must be 1 or -1 (our format has no other values), found {tok[5]}")
        if zeta < 1.0:
            raise N2p2Error(f"{where}: zeta = {zeta:g} < 1 is not supported (our format needs zeta >= 1)")
        pair = tuple(sorted(tok[2:4], key=ATOMIC_NUMBER.__getitem__))
        sf = SymFunc(centre, sf_type, pair, eta, rs, rc, zeta, int(lam), line=line)
    elif sf_type in _OTHER_SF_TYPES:
        raise N2p2Error(
            f"{where}: symmetry function type {sf_type} ({_OTHER_SF_TYPES[sf_type]}) is not supported; "
            "the converter supports types 2 (radial), 3 (narrow angular) and 9 (wide angular)"
        )
    else:
        raise N2p2Error(
            f"{where}: unknown symmetry function type {sf_type}; the converter supports types 2 (radial), "
            "3 (narrow angular) and 9 (wide angular)"
        )
    if sf.eta < 0:
        raise N2p2Error(f"{where}: eta must be >= 0, found {sf.eta:g}")
    if not sf.rc > 0:
        raise N2p2Error(f"{where}: rc must be > 0, found {sf.rc:g}")
    if not 0 <= sf.rs < sf.rc:
        raise N2p2Error(f"{where}: rs = {sf.rs:g} is not supported (our format needs 0 <= rs < rc = {sf.rc:g})")
    return sf


def read_input_nn(path: Path) -> N2p2Settings:
    """Parse the prediction keywords of an n2p2 input.nn (training keywords are
    ignored), refusing what our format cannot represent."""
    lines = _settings_lines(path)
    first: dict[str, tuple[int, str]] = {}
    for n, key, value in lines:
        if key in first and key not in _REPEATABLE:
            raise N2p2Error(
                f"{path}:{n}: keyword '{key}' appears twice (also line {first[key][0]}); n2p2 refuses this too"
            )
        first.setdefault(key, (n, value))
    notes: list[str] = []

    def need(key: str) -> tuple[int, str]:
        if key not in first:
            raise N2p2Error(f"{path}: keyword '{key}' not found")
        return first[key]

    # -- model kind: short-range only
    for alias in ("nnp_type", "nn_type"):
        if alias in first:
            n, value = first[alias]
            if value.strip().lower() not in _SHORT_ONLY_TYPES:
                raise N2p2Error(
                    f"{path}:{n}: {alias} {value} is not supported; only short-range HDNNPs "
                    "(2G-HDNNP) can be converted (no charge networks, no electrostatics)"
                )
    if "committee_mode" in first and first["committee_mode"][1].strip().lower() not in ("", "disabled"):
        n, value = first["committee_mode"]
        raise N2p2Error(f"{path}:{n}: committee_mode {value} is not supported; convert one committee member")

    # -- elements, ordered by atomic number as n2p2 orders them
    n, value = need("elements")
    symbols = value.split()
    unknown = [s for s in symbols if s not in ATOMIC_NUMBER]
    if unknown:
        raise N2p2Error(f"{path}:{n}: unknown element symbol(s) {unknown}")
    if len(set(symbols)) != len(symbols) or not symbols:
        raise N2p2Error(f"{path}:{n}: 'elements' must list distinct symbols, found {value!r}")
    elements = tuple(sorted(symbols, key=ATOMIC_NUMBER.__getitem__))
    n_num, value = need("number_of_elements")
    if _integer(path, n_num, value, "number_of_elements") != len(elements):
        raise N2p2Error(f"{path}:{n_num}: number_of_elements {value} but {len(elements)} elements on line {n}")

    # -- per-element energy offsets (model units)
    atom_energy = {e: 0.0 for e in elements}
    for n, key, value in lines:
        if key == "atom_energy":
            tok = value.split()
            if len(tok) != 2 or tok[0] not in elements:
                raise N2p2Error(f"{path}:{n}: expected 'atom_energy <element of {list(elements)}> <energy>'")
            atom_energy[tok[0]] = _number(path, n, tok[1], "atom_energy")

    # -- normalisation: all three keywords or none
    norm_keys = ("mean_energy", "conv_energy", "conv_length")
    present = [k for k in norm_keys if k in first]
    normalization = None
    if present and len(present) != 3:
        raise N2p2Error(f"{path}: use all or none of mean_energy, conv_energy, conv_length (found {present})")
    if present:
        vals = {k: _number(path, first[k][0], first[k][1], k) for k in norm_keys}
        for k in ("conv_energy", "conv_length"):
            if not vals[k] > 0:
                raise N2p2Error(f"{path}:{first[k][0]}: {k} must be > 0")
        normalization = Normalization(**vals)

    # -- cutoff function
    n, value = need("cutoff_type")
    tok = value.split()
    code = _integer(path, n, tok[0] if tok else "", "cutoff_type")
    alpha = _number(path, n, tok[1], "the cutoff parameter alpha") if len(tok) > 1 else 0.0
    name, ours = CUTOFF_TYPES.get(code, (f"unknown code {code}", None))
    if ours is None:
        raise N2p2Error(
            f"{path}:{n}: cutoff_type {code} ({name}) is not supported; the converter supports "
            "cutoff_type 1 (cosine, alpha = 0), 2 (tanhu, tanh³(1 − r/rc)) and 3 (normalised tanh)"
        )
    if ours == "cos" and alpha != 0.0:
        raise N2p2Error(
            f"{path}:{n}: the cosine cutoff with an inner cutoff (alpha = {alpha:g}) is not supported; "
            "our format's cosine cutoff is the alpha = 0 function ½[cos(πr/rc) + 1]"
        )
    if ours == "tanh3" and alpha != 0.0:
        # n2p2 itself ignores alpha for these cutoffs (and says so in its log).
        notes.append(f"cutoff_type {code} alpha {alpha:g} ignored, as n2p2 ignores it for {name.split(',')[0]}")
    # The normalised tanh cutoff is c·tanh³: a function with k cutoff factors
    # is c^k times its tanh3 value, and that constant goes into the scaling.
    cutoff_prefactor = TANH_PRE if code == 3 else 1.0
    if code == 3:
        notes.append("cutoff_type 3 (normalised tanh): the constant c^k of each function is folded into its scaling")

    # -- scaling mode
    scale, center = "scale_symmetry_functions" in first, "center_symmetry_functions" in first
    if scale and center:
        kind = ScalingKind.SCALECENTER
    elif scale:
        kind = ScalingKind.SCALE
    elif center:
        kind = ScalingKind.CENTER
    elif "scale_symmetry_functions_sigma" in first:
        kind = ScalingKind.SCALESIGMA
    else:
        kind = ScalingKind.NONE
    smin = smax = 0.0
    if kind.uses_range:
        smin = _number(path, first["scale_min_short"][0], first["scale_min_short"][1], "scale_min_short") \
            if "scale_min_short" in first else 0.0
        smax = _number(path, first["scale_max_short"][0], first["scale_max_short"][1], "scale_max_short") \
            if "scale_max_short" in first else 1.0
        if not smax > smin:
            raise N2p2Error(f"{path}: scale_max_short ({smax:g}) must be larger than scale_min_short ({smin:g})")
    scaling = ScalingMode(kind, smin, smax)

    # -- networks
    n_layers_line, value = need("global_hidden_layers_short")
    n_hidden = _integer(path, n_layers_line, value, "global_hidden_layers_short")
    if n_hidden < 1:
        raise N2p2Error(f"{path}:{n_layers_line}: global_hidden_layers_short must be >= 1 (n2p2 needs a hidden layer)")
    n, value = need("global_nodes_short")
    nodes = [_integer(path, n, t, "global_nodes_short") for t in value.split()]
    if len(nodes) < n_hidden or any(k < 1 for k in nodes[:n_hidden]):
        raise N2p2Error(f"{path}:{n}: global_nodes_short needs {n_hidden} positive sizes, found {value!r}")
    hidden_nodes = {e: list(nodes[:n_hidden]) for e in elements}
    for n, key, value in lines:
        if key == "element_nodes_short":
            tok = value.split()
            if len(tok) != 3 or tok[0] not in elements:
                raise N2p2Error(f"{path}:{n}: expected 'element_nodes_short <element> <layer> <nodes>'")
            layer = _integer(path, n, tok[1], "the layer")
            if not 1 <= layer <= n_hidden:
                raise N2p2Error(f"{path}:{n}: element_nodes_short can only change hidden layers 1..{n_hidden}")
            hidden_nodes[tok[0]][layer - 1] = _integer(path, n, tok[2], "the number of nodes")
    n, value = need("global_activation_short")
    letters = value.split()
    if len(letters) < n_hidden:
        raise N2p2Error(
            f"{path}:{n}: global_activation_short needs {n_hidden} hidden-layer activations, found {value!r}"
        )
    for letter in letters[:n_hidden]:
        if letter not in ACTIVATIONS:
            what = _OTHER_ACTIVATIONS.get(letter, "unknown")
            raise N2p2Error(
                f"{path}:{n}: activation '{letter}' ({what}) is not supported; the converter supports "
                "t (tanh), s (logistic), p (softplus) and l (linear)"
            )
    hidden_activations = [ACTIVATIONS[a] for a in letters[:n_hidden]]
    if len(letters) > n_hidden and letters[n_hidden] != "l":
        notes.append(
            f"output activation '{letters[n_hidden]}' in input.nn ignored: n2p2's output layer is always linear"
        )

    # -- symmetry functions, in n2p2's sorted order
    functions: dict[str, list[SymFunc]] = {e: [] for e in elements}
    for n, key, value in lines:
        if key == "symfunction_short":
            sf = _parse_symfunction(path, n, value, elements)
            functions[sf.element].append(sf)
    for e in elements:
        if not functions[e]:
            raise N2p2Error(f"{path}: no symfunction_short lines for element {e}")
        functions[e].sort(key=SymFunc.sort_key)
        for a, b in zip(functions[e], functions[e][1:]):
            if a.sort_key() == b.sort_key():
                raise N2p2Error(f"{path}:{b.line}: symmetry function repeats line {a.line}")

    return N2p2Settings(
        path=path,
        elements=elements,
        atom_energy=atom_energy,
        cutoff_function=ours,
        cutoff_prefactor=cutoff_prefactor,
        scaling=scaling,
        hidden_nodes=hidden_nodes,
        hidden_activations=hidden_activations,
        normalize_nodes="normalize_nodes" in first,
        normalization=normalization,
        functions=functions,
        notes=notes,
    )


# ----------------------------------------------------------------------------
# scaling.data


def _data_lines(path: Path, what: str) -> list[tuple[int, list[str]]]:
    """(line number, tokens) of the non-blank, non-comment lines of a data file."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        raise N2p2Error(f"{path}: no such file ({what})") from None
    return [(n, line.split()) for n, line in enumerate(text.splitlines(), 1)
            if line.strip() and not line.lstrip().startswith("#")]


def read_scaling_data(path: Path, settings: N2p2Settings) -> dict[str, list[ScalingRow]]:
    """Rows of scaling.data per element: a block per element (elements by
    atomic number), one row per function in n2p2's sorted order."""
    rows = _data_lines(path, "n2p2's symmetry-function scaling statistics")
    need_sigma = settings.scaling.kind is ScalingKind.SCALESIGMA
    out: dict[str, list[ScalingRow]] = {}
    pos = 0
    for ie, e in enumerate(settings.elements, 1):
        block = []
        for isf in range(1, len(settings.functions[e]) + 1):
            if pos >= len(rows):
                raise N2p2Error(
                    f"{path}: file ends early: expected row {isf} of element {e} "
                    f"({len(settings.functions[e])} functions in input.nn)"
                )
            n, tok = rows[pos]
            pos += 1
            if len(tok) < 5 or (need_sigma and len(tok) < 6):
                want = "6 columns (element, index, min, max, mean, sigma)" if need_sigma else \
                    "at least 5 columns (element, index, min, max, mean[, sigma])"
                raise N2p2Error(f"{path}:{n}: expected {want}, found {len(tok)}")
            ec, idx = _integer(path, n, tok[0], "the element index"), _integer(path, n, tok[1], "the function index")
            if (ec, idx) != (ie, isf):
                raise N2p2Error(
                    f"{path}:{n}: expected the row of element {ie} ({e}) function {isf}, found {ec} {idx} "
                    "(does scaling.data belong to this input.nn?)"
                )
            gmin, gmax, gmean = (_number(path, n, t, w) for t, w in zip(tok[2:5], ("min", "max", "mean")))
            gsigma = _number(path, n, tok[5], "sigma") if len(tok) > 5 else None
            if gmin > gmax:
                raise N2p2Error(f"{path}:{n}: min {gmin:g} > max {gmax:g}")
            block.append(ScalingRow(gmin, gmax, gmean, gsigma, n))
        out[e] = block
    if pos != len(rows):
        n, _ = rows[pos]
        raise N2p2Error(
            f"{path}:{n}: more rows than symmetry functions in input.nn "
            f"({sum(len(f) for f in settings.functions.values())})"
        )
    return out


def convert_scaling(rows: list[ScalingRow], mode: ScalingMode, path: Path) -> pf.Scaling:
    """n2p2's scaled input as x = (G − center)/width."""
    center, width = [], []
    span = mode.smax - mode.smin
    for r in rows:
        if mode.kind is ScalingKind.NONE:
            c, w = 0.0, 1.0
        elif mode.kind is ScalingKind.CENTER:
            c, w = r.gmean, 1.0
        elif mode.kind is ScalingKind.SCALESIGMA:
            if not r.gsigma > 0:
                raise N2p2Error(f"{path}:{r.line}: sigma must be > 0 for scale_symmetry_functions_sigma")
            w = r.gsigma / span
            c = r.gmean - mode.smin * w
        else:  # scale, scalecenter: divide by the training range
            if not r.gmax > r.gmin:
                raise N2p2Error(
                    f"{path}:{r.line}: this function had a constant value ({r.gmin:g}) in training; "
                    "n2p2's scaling divides by max − min = 0 here"
                )
            w = (r.gmax - r.gmin) / span
            c = (r.gmin if mode.kind is ScalingKind.SCALE else r.gmean) - mode.smin * w
        center.append(c)
        width.append(w)
    return pf.Scaling(
        np.array(center), np.array(width),
        np.array([r.gmin for r in rows]), np.array([r.gmax for r in rows]),
    )


# ----------------------------------------------------------------------------
# weights.ZZZ.data


def weights_path(directory: Path, element: str) -> Path:
    return directory / f"weights.{ATOMIC_NUMBER[element]:03d}.data"


def read_weights(path: Path, sizes: Sequence[int]) -> list[tuple[np.ndarray, np.ndarray]]:
    """(W (n_out, n_in), b (n_out,)) per layer from an n2p2 weights file.

    The first column holds the values in n2p2's order; when the file also has
    n2p2's annotation columns ("a index l_s n_s l_e n_e" for a weight,
    "b index l n" for a bias) they are checked against that order.
    """
    entries = _data_lines(path, "n2p2 names weight files by atomic number")
    expected = sum((a + 1) * b for a, b in zip(sizes[:-1], sizes[1:]))
    if len(entries) != expected:
        raise N2p2Error(
            f"{path}: {len(entries)} values, but the network {'-'.join(map(str, sizes))} of input.nn "
            f"has {expected} weights and biases"
        )
    layers = []
    pos = 0
    for li in range(1, len(sizes)):
        n_in, n_out = sizes[li - 1], sizes[li]
        w = np.empty((n_out, n_in))
        b = np.empty(n_out)
        for j in range(n_in):  # previous-layer neuron (outer), as n2p2 stores them
            for k in range(n_out):
                n, tok = entries[pos]
                pos += 1
                w[k, j] = _number(path, n, tok[0], "a weight")
                _check_annotation(path, n, tok, "a", pos, (li - 1, j + 1, li, k + 1))
        for k in range(n_out):
            n, tok = entries[pos]
            pos += 1
            b[k] = _number(path, n, tok[0], "a bias")
            _check_annotation(path, n, tok, "b", pos, (li, k + 1))
        layers.append((w, b))
    return layers


def _check_annotation(path: Path, line: int, tok: list[str], kind: str, count: int, where: tuple[int, ...]) -> None:
    if len(tok) == 1:
        return  # values only: nothing to check
    want = [kind, str(count), *map(str, where)]
    if tok[1:] != want:
        raise N2p2Error(
            f"{path}:{line}: expected the {'weight' if kind == 'a' else 'bias'} annotated "
            f"'{' '.join(want)}' here, found '{' '.join(tok[1:])}'"
        )


# ----------------------------------------------------------------------------
# conversion


def convert_n2p2(directory: str | Path, units: UnitFactors = UnitFactors()) -> pf.PotentialData:
    """Read an n2p2 potential directory and return it as our PotentialData
    (metal units)."""
    units.check()
    directory = Path(directory)
    if not directory.is_dir():
        raise N2p2Error(f"{directory}: not a directory (expected an n2p2 potential directory)")
    settings = read_input_nn(directory / "input.nn")
    scaling_rows = read_scaling_data(directory / "scaling.data", settings)
    norm = settings.normalization or Normalization()

    # The model's energy unit per eV is cfenergy; with normalisation the
    # network output must also be divided by conv_energy. The output layer is
    # linear, so scaling its weights and bias scales the output exactly.
    output_factor = 1.0 / (units.cfenergy * norm.conv_energy)

    functions = {e: tuple(sf.converted(units.cflength) for sf in settings.functions[e]) for e in settings.elements}
    try:
        descriptors = DescriptorSet(settings.elements, functions, settings.cutoff_function, "half")
    except ValueError as err:
        raise N2p2Error(f"{settings.path}: {err}") from None

    models = {}
    files = [directory / "input.nn", directory / "scaling.data"]
    for e in settings.elements:
        sizes = [len(functions[e]), *settings.hidden_nodes[e], 1]
        wpath = weights_path(directory, e)
        files.append(wpath)
        raw = read_weights(wpath, sizes)
        acts = [*settings.hidden_activations, "linear"]
        layers = []
        for i, ((w, b), act) in enumerate(zip(raw, acts)):
            if settings.normalize_nodes:
                # n2p2 divides each neuron's summed input (incl. bias) by its fan-in.
                w, b = w / w.shape[1], b / w.shape[1]
            if i == len(raw) - 1:
                w, b = w * output_factor, b * output_factor
            layers.append(pf.Layer(w, b, act))
        scaling = convert_scaling(scaling_rows[e], settings.scaling, directory / "scaling.data")
        if settings.cutoff_prefactor != 1.0:
            # n2p2's G = c^k G_ours: x = (c^k G_ours − center)/width = (G_ours − center/c^k)/(width/c^k).
            c = np.array([settings.cutoff_prefactor**sf.cutoff_factors for sf in settings.functions[e]])
            scaling = pf.Scaling(scaling.center / c, scaling.width / c, scaling.min / c, scaling.max / c)
        reference = (settings.atom_energy[e] + norm.mean_energy) / units.cfenergy
        models[e] = pf.ElementModel(reference, scaling, layers)

    pot = pf.PotentialData(descriptors, models, _provenance(directory, files, settings, units))
    try:
        pot.check()
    except ValueError as err:
        raise N2p2Error(f"{directory}: the converted potential is invalid: {err}") from None
    return pot


def _provenance(directory: Path, files: list[Path], settings: N2p2Settings, units: UnitFactors) -> list[str]:
    lines = [
        f"converted from n2p2 by nnp {nnp.__version__} (python -m nnp.convert n2p2) on "
        f"{datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M:%S UTC')}",
        f"source directory: {directory.resolve()}",
    ]
    for f in files:
        lines.append(f"  {f.name} sha256 {pf.file_sha256(f)}")
    lines.append(f"units: cflength {units.cflength!r} (model length per Å), cfenergy {units.cfenergy!r} "
                 "(model energy per eV), as in n2p2's pair_style hdnnp")
    s = settings.scaling
    lines.append(f"n2p2 scaling mode {s.kind.value}" + (f" (Smin {s.smin:g}, Smax {s.smax:g})" if s.kind.uses_range
                                                       else ""))
    if settings.normalization:
        n = settings.normalization
        lines.append(f"n2p2 normalisation: mean_energy {n.mean_energy!r} conv_energy {n.conv_energy!r} "
                     f"conv_length {n.conv_length!r}")
    if settings.normalize_nodes:
        lines.append("n2p2 normalize_nodes: folded into the weights")
    lines += [f"note: {n}" for n in settings.notes]
    return lines


# ----------------------------------------------------------------------------
# command line


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m nnp.convert",
        description="Convert a potential from another code into an nnp potential file.",
    )
    sub = p.add_subparsers(dest="source", required=True, metavar="SOURCE")
    q = sub.add_parser(
        "n2p2",
        help="an n2p2 potential directory (input.nn, scaling.data, weights.ZZZ.data)",
        description="Convert an n2p2 HDNNP (input.nn, scaling.data, weights.ZZZ.data) to an nnp potential file "
        "in metal units (eV, Å).",
    )
    q.add_argument("directory", help="the n2p2 potential directory")
    q.add_argument("-o", "--output", required=True, help="potential file to write (e.g. Si.nnp)")
    q.add_argument(
        "--cflength", type=float, default=1.0,
        help="model length unit per Å, as in n2p2's pair_style hdnnp (e.g. 1.8897261328 for a model in Bohr); "
        "default 1",
    )
    q.add_argument(
        "--cfenergy", type=float, default=1.0,
        help="model energy unit per eV, as in n2p2's pair_style hdnnp (e.g. 0.0367493254 for a model in "
        "Hartree); default 1",
    )
    q.add_argument("--force", action="store_true", help="overwrite an existing output file")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    output = Path(args.output)
    try:
        # Refuse before any work is done.
        if output.exists() and not args.force:
            raise FileExistsError(f"{output} exists; refusing to overwrite it (use --force)")
        if output.is_dir():
            raise ValueError(f"{output} is a directory")
        pot = convert_n2p2(args.directory, UnitFactors(args.cflength, args.cfenergy))
        pf.write(pot, output, overwrite=args.force)
    except (ValueError, FileNotFoundError, FileExistsError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    sizes = ", ".join(f"{e} {pot.descriptors.size(e)}" for e in pot.elements)
    print(f"wrote {output}: elements {' '.join(pot.elements)}; symmetry functions {sizes}; "
          f"cutoff {pot.descriptors.cutoff:.6g} Å ({pot.descriptors.cutoff_function})")
    for line in pot.comments:
        if line.startswith("note: "):
            print(line, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
