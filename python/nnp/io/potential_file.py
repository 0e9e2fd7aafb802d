"""Writer and reader of the plain-text potential file (docs/potential-format.md).

The C++ core has the other reader (`cpp/src/potential_file.cpp`); the tests
check that both read what this module writes, bit for bit.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
import numpy as np

from nnp.descriptors import G2, G4, G5, DescriptorSet, SymmetryFunction

FORMAT_NAME = "nnp-potential"
# Newest version. Version 2 is version 1 plus `repulsion` lines, version 3
# adds `quadratic` sections. A file carries the lowest version that can
# express it (3 with a quadratic section, else 2 with a repulsive core, else
# 1), so older readers keep reading every file they can. All three are read.
FORMAT_VERSION = 3
FORMAT_VERSIONS = (1, 2, 3)
ACTIVATIONS = ("tanh", "sigmoid", "softplus", "silu", "linear")


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

    def check(self, n: int, where: str) -> None:
        if self.linear.shape != (n,) or self.matrix.shape != (n, n):
            raise ValueError(f"{where}: the quadratic term needs {n} linear coefficients and a {n} x {n} matrix, "
                             f"got {self.linear.shape} and {self.matrix.shape}")
        if not (np.all(np.isfinite(self.linear)) and np.all(np.isfinite(self.matrix))):
            raise ValueError(f"{where}: the quadratic term has non-finite coefficients")
        if not np.array_equal(self.matrix, self.matrix.T):
            raise ValueError(f"{where}: the quadratic matrix must be symmetric")

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Q of every row of x, (n, M) -> (n,)."""
        x = np.asarray(x, dtype=np.float64)
        return x @ self.linear + np.einsum("nm,mk,nk->n", x, self.matrix, x)


@dataclass
class ElementModel:
    reference_energy: float  # eV per atom
    scaling: Scaling
    layers: list[Layer]
    quadratic: QuadraticTerm | None = None  # E_i = e0 + NN(x) + Q(x)


# Chemical symbols by atomic number (the table of cpp/src/repulsion.cpp):
# ZBL needs the nuclear charges.
CHEMICAL_SYMBOLS = (
    "H He Li Be B C N O F Ne Na Mg Al Si P S Cl Ar K Ca Sc Ti V Cr Mn Fe Co Ni Cu Zn Ga Ge As Se Br Kr "
    "Rb Sr Y Zr Nb Mo Tc Ru Rh Pd Ag Cd In Sn Sb Te I Xe Cs Ba La Ce Pr Nd Pm Sm Eu Gd Tb Dy Ho Er Tm Yb "
    "Lu Hf Ta W Re Os Ir Pt Au Hg Tl Pb Bi Po At Rn Fr Ra Ac Th Pa U Np Pu Am Cm Bk Cf Es Fm Md No Lr Rf "
    "Db Sg Bh Hs Mt Ds Rg Cn Nh Fl Mc Lv Ts Og"
).split()


def atomic_number(symbol: str) -> int:
    """Atomic number of a chemical symbol, 0 if it is not one."""
    try:
        return CHEMICAL_SYMBOLS.index(symbol) + 1
    except ValueError:
        return 0


@dataclass(frozen=True)
class Repulsion:
    """A ZBL screened-Coulomb core for one (unordered) element pair, switched
    off smoothly between r_inner and r_outer (Å); see docs/potential-format.md."""

    element_a: str
    element_b: str
    r_inner: float
    r_outer: float

    def check(self, cutoffs: dict[str, float]) -> None:
        """`cutoffs`: the descriptor cutoff (largest rc) of each element."""
        pair = f"repulsion {self.element_a} {self.element_b}"
        for e in (self.element_a, self.element_b):
            if e not in cutoffs:
                raise ValueError(f"{pair}: element '{e}' is not in the elements line {list(cutoffs)}")
            if not atomic_number(e):
                raise ValueError(f"{pair}: '{e}' is not a chemical symbol (ZBL needs its atomic number)")
        if not (math.isfinite(self.r_inner) and math.isfinite(self.r_outer) and 0 < self.r_inner < self.r_outer):
            raise ValueError(f"{pair}: need 0 < r_inner < r_outer, found r_inner {self.r_inner}, r_outer {self.r_outer}")
        for e in (self.element_a, self.element_b):
            if not self.r_outer <= cutoffs[e]:
                raise ValueError(f"{pair}: r_outer {self.r_outer!r} exceeds the cutoff {cutoffs[e]!r} of {e}")

    @property
    def key(self) -> frozenset:
        return frozenset((self.element_a, self.element_b))


def element_cutoffs(descriptors: DescriptorSet) -> dict[str, float]:
    """The largest rc of each element's descriptor."""
    return {e: max(sf.rc for sf in descriptors.functions[e]) for e in descriptors.elements}


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
        """The lowest version that can express this potential: 3 with a
        quadratic term, else 2 with a repulsive core, else 1."""
        if any(m.quadratic is not None for m in self.models.values()):
            return 3
        return 2 if self.repulsion else 1

    def check_repulsion(self) -> None:
        cutoffs = element_cutoffs(self.descriptors)
        seen: set[frozenset] = set()
        for r in self.repulsion:
            if not isinstance(r, Repulsion):
                raise TypeError(f"repulsion entries must be nnp.io.potential_file.Repulsion, got {type(r).__name__}")
            r.check(cutoffs)
            if r.key in seen:
                raise ValueError(f"second repulsion for the pair {r.element_a} {r.element_b}")
            seen.add(r.key)

    def check(self) -> None:
        d = self.descriptors
        if set(self.models) != set(d.elements):
            raise ValueError(f"models for {sorted(self.models)} but elements {list(d.elements)}")
        self.check_repulsion()
        for e, m in self.models.items():
            n = d.size(e)
            s = m.scaling
            for name in ("center", "width", "min", "max"):
                a = getattr(s, name)
                if a.shape != (n,) or not np.all(np.isfinite(a)):
                    raise ValueError(f"{e}: scaling {name} must be {n} finite numbers")
            if np.any(s.width <= 0) or np.any(s.min > s.max):
                raise ValueError(f"{e}: scaling needs width > 0 and min <= max")
            if not m.layers or m.layers[-1].weights.shape[0] != 1:
                raise ValueError(f"{e}: the network must end in one output")
            n_in = n
            for i, layer in enumerate(m.layers, 1):
                if layer.weights.ndim != 2 or layer.weights.shape[1] != n_in:
                    raise ValueError(f"{e}: layer {i} expects {n_in} inputs, has {layer.weights.shape}")
                if layer.biases.shape != (layer.weights.shape[0],):
                    raise ValueError(f"{e}: layer {i} biases do not match its weights")
                if layer.activation not in ACTIVATIONS:
                    raise ValueError(f"{e}: unknown activation {layer.activation!r}")
                if not (np.all(np.isfinite(layer.weights)) and np.all(np.isfinite(layer.biases))):
                    raise ValueError(f"{e}: layer {i} has non-finite parameters")
                n_in = layer.weights.shape[0]
            if not math.isfinite(m.reference_energy):
                raise ValueError(f"{e}: reference energy is not finite")
            if m.quadratic is not None:
                m.quadratic.check(n, e)


# --------------------------------------------------------------------- writing


def _num(x: float) -> str:
    return "%.17g" % float(x)


def _nums(xs) -> str:
    return " ".join(_num(x) for x in np.asarray(xs, dtype=np.float64).ravel())


def _sf_line(sf: SymmetryFunction) -> str:
    if isinstance(sf, G2):
        return f"G2 {sf.neighbor} {_num(sf.eta)} {_num(sf.rs)} {_num(sf.rc)}"
    kind = "G4" if isinstance(sf, G4) else "G5"
    a, b = sf.neighbors
    return f"{kind} {a} {b} {_num(sf.eta)} {_num(sf.zeta)} {sf.lambda_:d} {_num(sf.rs)} {_num(sf.rc)}"


def dumps(pot: PotentialData) -> str:
    pot.check()
    d = pot.descriptors
    out = [f"{FORMAT_NAME} {pot.format_version}"]
    out += [f"# {c}" for line in pot.comments for c in line.splitlines()]
    out += [
        "units metal",
        f"elements {len(d.elements)} {' '.join(d.elements)}",
        f"cutoff_function {d.cutoff_function}",
        f"angular_sum {d.angular_sum}",
    ]
    for e in d.elements:
        m = pot.models[e]
        out.append(f"reference_energy {e} {_num(m.reference_energy)}")
        out.append(f"descriptor {e} {d.size(e)}")
        out += [_sf_line(sf) for sf in d.functions[e]]
        out.append(f"scaling {e} {d.size(e)}")
        s = m.scaling
        out += [_nums(row) for row in np.stack([s.center, s.width, s.min, s.max], axis=1)]
        sizes = " ".join(str(layer.weights.shape[0]) for layer in m.layers)
        out.append(f"network {e} {len(m.layers)} {sizes}")
        out.append("activations " + " ".join(layer.activation for layer in m.layers))
        for i, layer in enumerate(m.layers, 1):
            n_out, n_in = layer.weights.shape
            out.append(f"layer {i} {n_out} {n_in}")
            out += [_nums(row) for row in layer.weights]
            out.append(_nums(layer.biases))
        if m.quadratic is not None:
            out.append(f"quadratic {e} {d.size(e)}")
            out.append(_nums(m.quadratic.linear))
            out += [_nums(row) for row in m.quadratic.matrix]
    out += [f"repulsion zbl {r.element_a} {r.element_b} {_num(r.r_inner)} {_num(r.r_outer)}" for r in pot.repulsion]
    out.append("end")
    return "\n".join(out) + "\n"


def write(pot: PotentialData, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write atomically (temporary file, then rename); never clobbers an
    existing file unless `overwrite`."""
    path = Path(path)
    text = dumps(pot)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; refusing to overwrite it (use --force / overwrite=True)")
    atomic_write_text(path, text)
    return path


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes (read in 1 MiB chunks): the provenance
    digest of data and potential files."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


# --------------------------------------------------------------------- reading


class _Lines:
    """Non-comment lines with their numbers, and error messages naming them.

    The lexical rules are those of the C++ reader (docs/potential-format.md):
    lines end at '\n' (one trailing '\r' is dropped), tokens are separated by
    spaces and tabs only, and any other control character is an error.
    """

    def __init__(self, text: str, source: str):
        self.source = source
        raw = text.split("\n")
        if raw and raw[-1] == "" and len(raw) > 1:
            raw.pop()  # the newline that ends the last line
        elif raw == [""]:
            raw = []
        self._items: list[tuple[int, list[str]]] = []
        self.comments: list[str] = []
        for n, line in enumerate(raw, 1):
            if line.endswith("\r"):
                line = line[:-1]
            bad = _NOT_TEXT.search(line)
            if bad:
                what = "control characters" if bad.group() < "\x20" else "binary or not UTF-8"
                raise self.error(n, f"not a text file ({what})")
            tok = _TOKEN_SEPARATOR.split(line.strip(" \t"))
            if tok == [""]:
                continue
            if tok[0].startswith("#"):
                self.comments.append(line.lstrip(" \t")[1:].removeprefix(" "))
                continue
            self._items.append((n, tok))
        self._pos = 0
        # Errors at the end of the file name its last line (line 1 if empty).
        self.last_line = max(len(raw), 1)

    def error(self, line: int, msg: str) -> PotentialFileError:
        return PotentialFileError(f"{self.source}:{line}: {msg}")

    def next(self, what: str) -> tuple[int, list[str]]:
        if self._pos >= len(self._items):
            raise self.error(self.last_line, f"file ends early: expected {what} (truncated file?)")
        item = self._items[self._pos]
        self._pos += 1
        return item

    def keyword(self, key: str, n_args: int | None = None, what: str | None = None):
        line, tok = self.next(what or f"'{key}'")
        if tok[0] != key:
            raise self.error(line, f"expected '{what or key}', found '{tok[0]}'")
        if n_args is not None and len(tok) - 1 != n_args:
            raise self.error(line, f"'{key}' takes {n_args} values, found {len(tok) - 1}")
        return line, tok[1:]

    def peek_keyword(self) -> str | None:
        return self._items[self._pos][1][0] if self._pos < len(self._items) else None

    def at_end(self) -> bool:
        return self._pos >= len(self._items)


# Lexical rules shared with cpp/src/potential_file.cpp: plain decimal numbers
# only (no '_' separators, hexadecimal or non-ASCII digits, which Python's
# float() and int() would accept and the C++ reader would not).
# Control characters other than tab, and surrogates: bytes that are not UTF-8
# (read() decodes with "surrogateescape" so that they are reported here, by line).
_NOT_TEXT = re.compile("[\x00-\x08\x0a-\x1f\ud800-\udfff]")
_TOKEN_SEPARATOR = re.compile(r"[ \t]+")
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_INTEGER = re.compile(r"[+-]?[0-9]+")
_NON_FINITE = re.compile(r"[+-]?(?:nan|inf|infinity)", re.IGNORECASE)


def _float(lines: _Lines, line: int, tok: str, what: str) -> float:
    if _NON_FINITE.fullmatch(tok):
        raise lines.error(line, f"{what} must be finite, found '{tok}'")
    if not _DECIMAL.fullmatch(tok):
        raise lines.error(line, f"expected a number for {what}, found '{tok}'")
    x = float(tok)
    if not math.isfinite(x):
        raise lines.error(line, f"{what} must be finite, found '{tok}'")
    return x


def _int(lines: _Lines, line: int, tok: str, what: str, lo: int = 0, hi: int = 1_000_000) -> int:
    if not _INTEGER.fullmatch(tok):
        raise lines.error(line, f"expected an integer for {what}, found '{tok}'")
    x = int(tok)
    if not lo <= x <= hi:
        raise lines.error(line, f"{what} must be in [{lo}, {hi}], found {tok}")
    return x


def _floats(lines: _Lines, n: int, what: str, with_line: bool = False):
    line, tok = lines.next(what)
    if len(tok) != n:
        raise lines.error(line, f"expected {n} numbers ({what}), found {len(tok)}")
    values = np.array([_float(lines, line, t, what) for t in tok])
    return (line, values) if with_line else values


def _element(lines: _Lines, line: int, tok: str, elements: tuple[str, ...]) -> str:
    if tok not in elements:
        raise lines.error(line, f"element '{tok}' is not in the elements line {list(elements)}")
    return tok


def _read_function(lines: _Lines, elements) -> tuple[int, SymmetryFunction]:
    line, tok = lines.next("a symmetry function line (G2, G4 or G5)")
    kind = tok[0]
    if kind == "G2":
        if len(tok) != 5:
            raise lines.error(line, "expected 'G2 element eta rs rc'")
        e = _element(lines, line, tok[1], elements)
        eta, rs, rc = (_float(lines, line, t, n) for t, n in zip(tok[2:], ("eta", "rs", "rc")))
        sf: SymmetryFunction = G2(e, eta, rs, rc)
    elif kind in ("G4", "G5"):
        if len(tok) != 8:
            raise lines.error(line, f"expected '{kind} element element eta zeta lambda rs rc'")
        a = _element(lines, line, tok[1], elements)
        b = _element(lines, line, tok[2], elements)
        eta = _float(lines, line, tok[3], "eta")
        zeta = _float(lines, line, tok[4], "zeta")
        lam = _int(lines, line, tok[5], "lambda", -1, 1)
        rs = _float(lines, line, tok[6], "rs")
        rc = _float(lines, line, tok[7], "rc")
        sf = (G4 if kind == "G4" else G5)((a, b), eta, zeta, lam, rs, rc)
    else:
        raise lines.error(line, f"expected a symmetry function (G2, G4, G5), found '{kind}'")
    try:
        sf.check()
    except ValueError as err:
        raise lines.error(line, str(err)) from None
    return line, sf


def _per_function_count(lines: _Lines, line: int, tok: list[str], funcs: dict, noun: str) -> int:
    """The count of a `KEY element count` section with one entry per symmetry
    function (scaling, quadratic), after that element's descriptor."""
    key, e = tok[0], tok[1]
    if len(tok) != 3:
        raise lines.error(line, f"expected '{key} element count'")
    if e not in funcs:
        raise lines.error(line, f"'{key} {e}' must follow 'descriptor {e}'")
    m = _int(lines, line, tok[2], "the number of functions", 1, 100_000)
    if m != len(funcs[e]):
        raise lines.error(line, f"{key} has {m} {noun} but descriptor {e} has {len(funcs[e])} functions")
    return m


def loads(text: str, source: str = "<string>") -> PotentialData:
    lines = _Lines(text, source)
    first = f"'{FORMAT_NAME} 1', '{FORMAT_NAME} 2' or '{FORMAT_NAME} 3'"
    line, tok = lines.next(first)
    if tok[:1] != [FORMAT_NAME]:
        raise lines.error(line, f"not an nnp potential file: line 1 must be {first}")
    if tok[1:] not in (["1"], ["2"], ["3"]):
        raise lines.error(line, f"unsupported format version {' '.join(tok[1:])!r}; this reader knows versions 1, 2 and 3")
    version, version_line = int(tok[1]), line
    line, tok = lines.keyword("units", 1)
    if tok[0] != "metal":
        raise lines.error(line, f"units must be 'metal', found '{tok[0]}'")
    line, tok = lines.keyword("elements")
    n = _int(lines, line, tok[0] if tok else "", "the number of elements", 1, 200)
    elements = tuple(tok[1:])
    if len(elements) != n or len(set(elements)) != n:
        raise lines.error(line, f"expected {n} distinct element symbols")
    line, tok = lines.keyword("cutoff_function", 1)
    cutoff_function = tok[0]
    if cutoff_function not in ("cos", "tanh3"):
        raise lines.error(line, f"unknown cutoff function '{cutoff_function}' (cos, tanh3)")
    line, tok = lines.keyword("angular_sum", 1)
    if tok[0] not in ("half", "full"):
        raise lines.error(line, f"angular_sum must be 'half' or 'full', found '{tok[0]}'")
    angular_sum = tok[0]

    ref: dict[str, float] = {}
    funcs: dict[str, tuple] = {}
    scal: dict[str, Scaling] = {}
    nets: dict[str, list[Layer]] = {}
    quads: dict[str, QuadraticTerm] = {}
    repulsion: dict[frozenset, tuple[int, Repulsion]] = {}  # pair -> (line, core), in file order
    while lines.peek_keyword() not in ("end", None):
        line, tok = lines.next("a section")
        key = tok[0]
        if key == "repulsion":
            if version < 2:
                raise lines.error(line, f"'repulsion' needs format version 2 (line 1: '{FORMAT_NAME} 2')")
            if len(tok) != 6 or tok[1] != "zbl":
                raise lines.error(line, "expected 'repulsion zbl element element r_inner r_outer'")
            a = _element(lines, line, tok[2], elements)
            b = _element(lines, line, tok[3], elements)
            for e in (a, b):
                if not atomic_number(e):
                    raise lines.error(line, f"repulsion: '{e}' is not a chemical symbol (ZBL needs its atomic number)")
            r_inner = _float(lines, line, tok[4], "r_inner")
            r_outer = _float(lines, line, tok[5], "r_outer")
            if not 0 < r_inner < r_outer:
                raise lines.error(line, f"repulsion: need 0 < r_inner < r_outer, found r_inner {tok[4]}, r_outer {tok[5]}")
            core = Repulsion(a, b, r_inner, r_outer)
            if core.key in repulsion:
                raise lines.error(line, f"second 'repulsion' line for {a} {b} (first on line {repulsion[core.key][0]})")
            repulsion[core.key] = (line, core)
            continue
        seen = {"reference_energy": ref, "descriptor": funcs, "scaling": scal, "network": nets,
                "quadratic": quads}.get(key)
        if seen is None:
            raise lines.error(line, "expected a section keyword (reference_energy, descriptor, scaling, network, "
                              f"quadratic, repulsion, end), found '{key}'")
        if key == "quadratic" and version < 3:
            raise lines.error(line, f"'quadratic' needs format version 3 (line 1: '{FORMAT_NAME} 3')")
        if len(tok) < 3:
            raise lines.error(line, f"'{key}' needs an element and a value")
        e = _element(lines, line, tok[1], elements)
        if e in seen:
            raise lines.error(line, f"second '{key}' section for {e}")
        if key == "reference_energy":
            if len(tok) != 3:
                raise lines.error(line, "expected 'reference_energy element energy'")
            ref[e] = _float(lines, line, tok[2], "the reference energy")
        elif key == "descriptor":
            if len(tok) != 3:
                raise lines.error(line, "expected 'descriptor element count'")
            m = _int(lines, line, tok[2], "the number of functions", 1, 100_000)
            functions: dict[SymmetryFunction, int] = {}  # function -> its number (1-based)
            for _ in range(m):
                sf_line, sf = _read_function(lines, elements)
                if sf in functions:
                    raise lines.error(
                        sf_line, f"duplicate symmetry function (same as function {functions[sf]} of {e})"
                    )
                functions[sf] = len(functions) + 1
            funcs[e] = tuple(functions)
        elif key == "scaling":
            m = _per_function_count(lines, line, tok, funcs, "rows")
            rows = []
            for _ in range(m):
                row_line, row = _floats(lines, 4, "center width min max", with_line=True)
                if not (row[1] > 0 and row[2] <= row[3]):
                    raise lines.error(row_line, f"scaling {e}: need width > 0 and min <= max")
                rows.append(row)
            table = np.array(rows)
            scal[e] = Scaling(*(table[:, k].copy() for k in range(4)))
        elif key == "quadratic":
            m = _per_function_count(lines, line, tok, funcs, "coefficients")
            linear = _floats(lines, m, "the linear coefficients of the quadratic term")
            rows, row_lines = [], []
            for r in range(m):
                row_line, row = _floats(lines, m, f"row {r + 1} of the quadratic matrix", with_line=True)
                rows.append(row)
                row_lines.append(row_line)
            matrix = np.array(rows)
            asym = np.argwhere(np.tril(matrix != matrix.T, -1))
            if len(asym):
                r, c = (int(v) for v in asym[0])
                raise lines.error(row_lines[r], f"quadratic {e}: the matrix is not symmetric (row {r + 1}, column {c + 1})")
            quads[e] = QuadraticTerm(linear, matrix)
        else:
            if e not in funcs:
                raise lines.error(line, f"'network {e}' must follow 'descriptor {e}'")
            n_layers = _int(lines, line, tok[2], "the number of layers", 1, 100)
            sizes = [_int(lines, line, t, "a layer size", 1, 100_000) for t in tok[3:]]
            if len(sizes) != n_layers:
                raise lines.error(line, f"expected {n_layers} layer sizes, found {len(sizes)}")
            if sizes[-1] != 1:
                raise lines.error(line, "the output layer must have size 1")
            aline, acts = lines.keyword("activations", n_layers)
            for a in acts:
                if a not in ACTIVATIONS:
                    raise lines.error(aline, f"unknown activation '{a}' ({', '.join(ACTIVATIONS)})")
            layers = []
            n_in = len(funcs[e])
            for i, (n_out, act) in enumerate(zip(sizes, acts), 1):
                lline, ltok = lines.keyword("layer", 3)
                want = [str(i), str(n_out), str(n_in)]
                if ltok != want:
                    raise lines.error(lline, f"expected 'layer {' '.join(want)}', found 'layer {' '.join(ltok)}'")
                w = np.array([_floats(lines, n_in, f"weights of layer {i}") for _ in range(n_out)])
                b = _floats(lines, n_out, f"biases of layer {i}")
                layers.append(Layer(w, b, act))
                n_in = n_out
            nets[e] = layers
    lines.keyword("end", 0)
    if not lines.at_end():
        line, tok = lines.next("")
        raise lines.error(line, f"unexpected '{tok[0]}' after 'end'")
    for name, table in (("reference_energy", ref), ("descriptor", funcs), ("scaling", scal), ("network", nets)):
        missing = [e for e in elements if e not in table]
        if missing:
            raise lines.error(lines.last_line, f"no '{name}' section for {', '.join(missing)}")
    try:
        descriptors = DescriptorSet(elements, funcs, cutoff_function, angular_sum)
    except ValueError as err:
        raise PotentialFileError(f"{source}: {err}") from None
    if version == 3 and not quads:
        raise lines.error(version_line, "a version-3 file without 'quadratic' sections must be written as version "
                          f"{2 if repulsion else 1}")
    if version == 2 and not repulsion:
        raise lines.error(version_line, "a version-2 file without 'repulsion' lines must be written as version 1")
    cutoffs = element_cutoffs(descriptors)
    for line, core in repulsion.values():
        for e in (core.element_a, core.element_b):
            if not core.r_outer <= cutoffs[e]:
                raise lines.error(line, f"repulsion: r_outer {core.r_outer!r} exceeds the cutoff {cutoffs[e]!r} of {e}")
    models = {e: ElementModel(ref[e], scal[e], nets[e], quads.get(e)) for e in elements}
    return PotentialData(descriptors, models, lines.comments, [core for _, core in repulsion.values()])


def read(path: str | os.PathLike) -> PotentialData:
    path = Path(path)
    try:
        data = path.read_bytes()  # bytes: no newline translation, as the C++ reader
    except FileNotFoundError:
        raise FileNotFoundError(f"potential file {path} does not exist") from None
    return loads(data.decode("utf-8", errors="surrogateescape"), str(path))

