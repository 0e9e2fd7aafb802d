"""n2p2's ``input.nn``: the prediction keywords (elements, energy offsets,
normalisation, cutoff, scaling mode, networks, symmetry functions), refusing
what our potential format cannot represent; and the number parsing shared by
the readers of n2p2's files. Values stay in the model's units here.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from ase.data import atomic_numbers

from nnp.convert.n2p2_compact import COMPACT_TYPES, CompactSymFunc, parse_compact
from nnp.descriptors import G2, G4, G5, SymmetryFunction

# n2p2 names weight files by Z and orders elements by Z. ASE's "X" (Z = 0)
# is a placeholder, not an element.
ATOMIC_NUMBER = {s: z for s, z in atomic_numbers.items() if z >= 1}

# n2p2 cutoff_type codes -> (n2p2's name, our cutoff_function name).
CUTOFF_TYPES = {
    0: ("hard", "hard"),
    1: ("cos", "cos"),
    2: ("tanhu", "tanh3"),
    3: ("tanh, normalised: c·tanh³(1 − r/r_c) with f(0) = 1", "tanh3"),  # c is folded into the scaling
    4: ("exp", "exp"),
    5: ("poly1", "poly1"),
    6: ("poly2", "poly2"),
    7: ("poly3", "poly3"),
    8: ("poly4", "poly4"),
}
# Cutoffs whose inner radius α r_c n2p2 uses (the others ignore α).
_ALPHA_CUTOFFS = {"cos", "exp", "poly1", "poly2", "poly3", "poly4"}

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
    cutoff_function: str  # ours (CUTOFF_TYPES)
    cutoff_alpha: float  # inner radius α r_c (cos, exp, poly1-poly4), else 0
    cutoff_prefactor: float  # n2p2's f_c / ours (TANH_PRE for the normalised tanh, else 1)
    scaling: ScalingMode
    hidden_nodes: dict[str, list[int]]  # per element
    hidden_activations: list[str]  # ours, one per hidden layer
    normalize_nodes: bool
    normalization: Normalization | None
    functions: dict[str, list[SymFunc | CompactSymFunc]]  # per element, in n2p2's sorted order
    notes: list[str] = field(default_factory=list)  # things worth a provenance comment


Lines = list[tuple[int, str, str]]  # (line number, keyword, value)
FirstValues = dict[str, tuple[int, str]]  # keyword -> (line number, value) of its first line


def _settings_lines(path: Path) -> Lines:
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


def number(path: Path, line: int, text: str, what: str) -> float:
    try:
        x = float(text)
    except ValueError:
        raise N2p2Error(f"{path}:{line}: expected a number for {what}, found {text!r}") from None
    if not math.isfinite(x):
        raise N2p2Error(f"{path}:{line}: {what} must be finite, found {text!r}")
    return x


def integer(path: Path, line: int, text: str, what: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise N2p2Error(f"{path}:{line}: expected an integer for {what}, found {text!r}") from None


def _parse_symfunction(path: Path, line: int, value: str, elements: Sequence[str]) -> SymFunc | CompactSymFunc:
    tok = value.split()
    where = f"{path}:{line}"
    if len(tok) < 2:
        raise N2p2Error(f"{where}: symfunction_short needs at least an element and a type")
    centre = tok[0]
    sf_type = integer(path, line, tok[1], "the symmetry function type")
    if sf_type in (2, 3, 9):
        # Neighbour elements: one for radial, two for angular functions.
        for e in [centre] + tok[2:3 if sf_type == 2 else 4]:
            if e not in elements:
                raise N2p2Error(f"{where}: element {e!r} is not in the 'elements' line {list(elements)}")
    if sf_type == 2:
        # ec 2 e1 eta rs rc
        if len(tok) != 6:
            raise N2p2Error(f"{where}: radial type 2 expects 'element 2 neighbor eta rs rc', found {value!r}")
        eta, rs, rc = (number(path, line, t, w) for t, w in zip(tok[3:6], ("eta", "rs", "rc")))
        sf = SymFunc(centre, 2, (tok[2],), eta, rs, rc, line=line)
    elif sf_type in (3, 9):
        # ec 3|9 e1 e2 eta lambda zeta rc [rs]
        if len(tok) not in (8, 9):
            raise N2p2Error(
                f"{where}: angular type {sf_type} expects 'element {sf_type} neighbor1 neighbor2 eta lambda "
                f"zeta rc [rs]', found {value!r}"
            )
        eta, lam, zeta, rc = (
            number(path, line, t, w) for t, w in zip(tok[4:8], ("eta", "lambda", "zeta", "rc"))
        )
        rs = number(path, line, tok[8], "rs") if len(tok) == 9 else 0.0
        if lam not in (1.0, -1.0):
            raise N2p2Error(f"{where}: lambda must be 1 or -1 (our format has no other values), found {tok[5]}")
        if zeta < 1.0:
            raise N2p2Error(f"{where}: zeta = {zeta:g} < 1 is not supported (our format needs zeta >= 1)")
        pair = tuple(sorted(tok[2:4], key=ATOMIC_NUMBER.__getitem__))
        sf = SymFunc(centre, sf_type, pair, eta, rs, rc, zeta, int(lam), line=line)
    elif sf_type in COMPACT_TYPES:
        return parse_compact(path, line, tok, sf_type, elements, number, ATOMIC_NUMBER, N2p2Error)
    elif sf_type in _OTHER_SF_TYPES:
        raise N2p2Error(
            f"{where}: symmetry function type {sf_type} ({_OTHER_SF_TYPES[sf_type]}) is not supported; "
            "the converter supports types 2, 3, 9 and 20-25"
        )
    else:
        raise N2p2Error(
            f"{where}: unknown symmetry function type {sf_type}; the converter supports types 2, 3, 9 and 20-25"
        )
    if sf.eta < 0:
        raise N2p2Error(f"{where}: eta must be >= 0, found {sf.eta:g}")
    if not sf.rc > 0:
        raise N2p2Error(f"{where}: rc must be > 0, found {sf.rc:g}")
    if not 0 <= sf.rs < sf.rc:
        raise N2p2Error(f"{where}: rs = {sf.rs:g} is not supported (our format needs 0 <= rs < rc = {sf.rc:g})")
    return sf


def data_lines(path: Path, what: str) -> list[tuple[int, list[str]]]:
    """(line number, tokens) of the non-blank, non-comment lines of a data file."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        raise N2p2Error(f"{path}: no such file ({what})") from None
    return [(n, line.split()) for n, line in enumerate(text.splitlines(), 1)
            if line.strip() and not line.lstrip().startswith("#")]




def read_input_nn(path: Path) -> N2p2Settings:
    """Parse the prediction keywords of an n2p2 input.nn (training keywords are
    ignored), refusing what our format cannot represent."""
    lines = _settings_lines(path)
    first = _first_values(path, lines)
    notes: list[str] = []
    _check_model_kind(path, first)
    elements = _read_elements(path, first)
    atom_energy = _read_atom_energy(path, lines, elements)
    normalization = _read_normalization(path, first)
    cutoff_function, cutoff_alpha, cutoff_prefactor = _read_cutoff(path, first, notes)
    scaling = _read_scaling_mode(path, first)
    hidden_nodes, hidden_activations = _read_networks(path, lines, first, elements, notes)
    functions = _read_functions(path, lines, elements)
    return N2p2Settings(
        path=path,
        elements=elements,
        atom_energy=atom_energy,
        cutoff_function=cutoff_function,
        cutoff_alpha=cutoff_alpha,
        cutoff_prefactor=cutoff_prefactor,
        scaling=scaling,
        hidden_nodes=hidden_nodes,
        hidden_activations=hidden_activations,
        normalize_nodes="normalize_nodes" in first,
        normalization=normalization,
        functions=functions,
        notes=notes,
    )


def _first_values(path: Path, lines: Lines) -> FirstValues:
    """The first line of every keyword; a keyword n2p2 allows once must be there once."""
    first: FirstValues = {}
    for n, key, value in lines:
        if key in first and key not in _REPEATABLE:
            raise N2p2Error(
                f"{path}:{n}: keyword '{key}' appears twice (also line {first[key][0]}); n2p2 refuses this too"
            )
        first.setdefault(key, (n, value))
    return first


def _need(path: Path, first: FirstValues, key: str) -> tuple[int, str]:
    if key not in first:
        raise N2p2Error(f"{path}: keyword '{key}' not found")
    return first[key]


def _check_model_kind(path: Path, first: FirstValues) -> None:
    """Only short-range networks convert (no charges, no committee)."""
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


def _read_elements(path: Path, first: FirstValues) -> tuple[str, ...]:
    """The elements, ordered by atomic number as n2p2 orders them."""
    n, value = _need(path, first, "elements")
    symbols = value.split()
    unknown = [s for s in symbols if s not in ATOMIC_NUMBER]
    if unknown:
        raise N2p2Error(f"{path}:{n}: unknown element symbol(s) {unknown}")
    if len(set(symbols)) != len(symbols) or not symbols:
        raise N2p2Error(f"{path}:{n}: 'elements' must list distinct symbols, found {value!r}")
    elements = tuple(sorted(symbols, key=ATOMIC_NUMBER.__getitem__))
    n_num, value = _need(path, first, "number_of_elements")
    if integer(path, n_num, value, "number_of_elements") != len(elements):
        raise N2p2Error(f"{path}:{n_num}: number_of_elements {value} but {len(elements)} elements on line {n}")
    return elements


def _read_atom_energy(path: Path, lines: Lines, elements: tuple[str, ...]) -> dict[str, float]:
    """Per-element energy offsets (model units), 0 where input.nn has none."""
    atom_energy = {e: 0.0 for e in elements}
    for n, key, value in lines:
        if key == "atom_energy":
            tok = value.split()
            if len(tok) != 2 or tok[0] not in elements:
                raise N2p2Error(f"{path}:{n}: expected 'atom_energy <element of {list(elements)}> <energy>'")
            atom_energy[tok[0]] = number(path, n, tok[1], "atom_energy")
    return atom_energy


def _read_normalization(path: Path, first: FirstValues) -> Normalization | None:
    """The data-set normalisation: all three keywords or none."""
    norm_keys = ("mean_energy", "conv_energy", "conv_length")
    present = [k for k in norm_keys if k in first]
    if present and len(present) != 3:
        raise N2p2Error(f"{path}: use all or none of mean_energy, conv_energy, conv_length (found {present})")
    if not present:
        return None
    vals = {k: number(path, first[k][0], first[k][1], k) for k in norm_keys}
    for k in ("conv_energy", "conv_length"):
        if not vals[k] > 0:
            raise N2p2Error(f"{path}:{first[k][0]}: {k} must be > 0")
    return Normalization(**vals)


def _read_cutoff(path: Path, first: FirstValues, notes: list[str]) -> tuple[str, float, float]:
    """Our cutoff function, its α and n2p2's f_c / ours (see N2p2Settings)."""
    n, value = _need(path, first, "cutoff_type")
    tok = value.split()
    code = integer(path, n, tok[0] if tok else "", "cutoff_type")
    alpha = number(path, n, tok[1], "the cutoff parameter alpha") if len(tok) > 1 else 0.0
    if code not in CUTOFF_TYPES:
        raise N2p2Error(f"{path}:{n}: unknown cutoff_type {code}; n2p2 knows 0 to 8")
    name, ours = CUTOFF_TYPES[code]
    if not 0.0 <= alpha < 1.0:
        raise N2p2Error(f"{path}:{n}: the cutoff parameter alpha = {alpha:g} must satisfy 0 <= alpha < 1")
    if ours not in _ALPHA_CUTOFFS and alpha != 0.0:
        # n2p2 itself ignores alpha for these cutoffs (and says so in its log).
        notes.append(f"cutoff_type {code} alpha {alpha:g} ignored, as n2p2 ignores it for {name.split(',')[0]}")
        alpha = 0.0
    # The normalised tanh cutoff is c·tanh³: a function with k cutoff factors
    # is c^k times its tanh3 value, and that constant goes into the scaling.
    cutoff_prefactor = TANH_PRE if code == 3 else 1.0
    if code == 3:
        notes.append("cutoff_type 3 (normalised tanh): the constant c^k of each function is folded into its scaling")
    return ours, alpha, cutoff_prefactor


def _read_scaling_mode(path: Path, first: FirstValues) -> ScalingMode:
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
        smin = number(path, first["scale_min_short"][0], first["scale_min_short"][1], "scale_min_short") \
            if "scale_min_short" in first else 0.0
        smax = number(path, first["scale_max_short"][0], first["scale_max_short"][1], "scale_max_short") \
            if "scale_max_short" in first else 1.0
        if not smax > smin:
            raise N2p2Error(f"{path}: scale_max_short ({smax:g}) must be larger than scale_min_short ({smin:g})")
    return ScalingMode(kind, smin, smax)


def _read_networks(path: Path, lines: Lines, first: FirstValues, elements: tuple[str, ...],
                   notes: list[str]) -> tuple[dict[str, list[int]], list[str]]:
    """Hidden-layer sizes per element and the hidden activations (ours)."""
    n_layers_line, value = _need(path, first, "global_hidden_layers_short")
    n_hidden = integer(path, n_layers_line, value, "global_hidden_layers_short")
    if n_hidden < 1:
        raise N2p2Error(f"{path}:{n_layers_line}: global_hidden_layers_short must be >= 1 (n2p2 needs a hidden layer)")
    n, value = _need(path, first, "global_nodes_short")
    nodes = [integer(path, n, t, "global_nodes_short") for t in value.split()]
    if len(nodes) < n_hidden or any(k < 1 for k in nodes[:n_hidden]):
        raise N2p2Error(f"{path}:{n}: global_nodes_short needs {n_hidden} positive sizes, found {value!r}")
    hidden_nodes = {e: list(nodes[:n_hidden]) for e in elements}
    for n, key, value in lines:
        if key == "element_nodes_short":
            tok = value.split()
            if len(tok) != 3 or tok[0] not in elements:
                raise N2p2Error(f"{path}:{n}: expected 'element_nodes_short <element> <layer> <nodes>'")
            layer = integer(path, n, tok[1], "the layer")
            if not 1 <= layer <= n_hidden:
                raise N2p2Error(f"{path}:{n}: element_nodes_short can only change hidden layers 1..{n_hidden}")
            hidden_nodes[tok[0]][layer - 1] = integer(path, n, tok[2], "the number of nodes")
    return hidden_nodes, _read_activations(path, first, n_hidden, notes)


def _read_activations(path: Path, first: FirstValues, n_hidden: int, notes: list[str]) -> list[str]:
    n, value = _need(path, first, "global_activation_short")
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
    if len(letters) > n_hidden and letters[n_hidden] != "l":
        notes.append(
            f"output activation '{letters[n_hidden]}' in input.nn ignored: n2p2's output layer is always linear"
        )
    return [ACTIVATIONS[a] for a in letters[:n_hidden]]


def _read_functions(path: Path, lines: Lines, elements: tuple[str, ...]) -> dict[str, list[SymFunc]]:
    """The symmetry functions per element, in n2p2's sorted order."""
    functions: dict[str, list[SymFunc]] = {e: [] for e in elements}
    for n, key, value in lines:
        if key == "symfunction_short":
            sf = _parse_symfunction(path, n, value, elements)
            functions[sf.element].append(sf)
    for e in elements:
        if not functions[e]:
            raise N2p2Error(f"{path}: no symfunction_short lines for element {e}")
        functions[e].sort(key=lambda sf: sf.sort_key())
        for a, b in zip(functions[e], functions[e][1:]):
            if a.sort_key() == b.sort_key():
                raise N2p2Error(f"{path}:{b.line}: symmetry function repeats line {a.line}")
    return functions
