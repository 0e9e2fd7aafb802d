"""Labelled structures for training: reading, checking, splitting, featurising.

`read_structures` reads any format ASE reads with energies and forces (extxyz,
Quantum Espresso output, VASP OUTCAR, ...), plus two formats of its own:

- ``n2p2``: n2p2's ``input.data`` (``begin``, ``comment``, three ``lattice``
  lines or none, ``atom x y z element charge energy fx fy fz``, ``energy``,
  ``charge``, ``end``). Numbers are taken as they are: the file must be in Å
  and eV (n2p2 itself is unit-agnostic; files in Bohr/Hartree need converting).
  A ``config_type=NAME`` word in a comment line becomes the config type.
- ``mlearn-json``: the JSON of the mlearn benchmark (Zuo et al. 2020), a list
  of ``{"structure": <pymatgen Structure dict>, "outputs": {"energy": eV,
  "forces": eV/Å, "virial_stress": kBar}, "num_atoms", "group", ...}``. No
  pymatgen is needed. ``virial_stress`` is VASP's stress: order
  xx yy zz xy yz xz, kBar, compression positive; it becomes the ASE stress
  σ = −virial_stress[xx yy zz yz xz xy] · 0.1 GPa (checked against the
  published Si training.json and examples/si/data/train.xyz, which was
  converted from it). ``group`` becomes the config type.

The format is chosen by `format=` or, without it, by the file's content
(``begin`` first: n2p2; a JSON list of entries with ``structure`` and
``outputs``: mlearn); anything else goes to ASE. Bad frames are refused with a
ValueError naming the file and the frame (counted from 0, as ASE's ``index``);
`summarize` (``python -m nnp.data summary FILE``) instead lists every problem
frame of a file.

`FeaturizedDataset` holds the descriptors of every structure once, as
concatenated torch tensors per centre element (float64; the derivatives
optionally float32, as training stores them) with per-structure offsets, so
that `collate` can assemble any batch of structures by gathering index ranges
and shifting indices (no Python loop over structures or atoms).
torch is imported only by the featurised-data code: reading and checking data
do not need it.

Units: Å, eV, eV/Å, stress in eV/Å³ (ASE convention: tension positive).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import secrets
import sys
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np
from ase import Atoms

MIN_DISTANCE = 0.1  # Å; closer atoms are treated as duplicates
DEFAULT_CONFIG_TYPE = "default"
FORMATS = ("n2p2", "mlearn-json")  # read here; any other format name goes to ASE
_FORMAT_ALIASES = {"n2p2": "n2p2", "input.data": "n2p2", "mlearn-json": "mlearn-json", "mlearn": "mlearn-json"}
KBAR = 0.1  # GPa
# ASE Voigt order xx yy zz yz xz xy, taken from VASP's xx yy zz xy yz xz.
_VASP_TO_ASE = [0, 1, 2, 4, 5, 3]
_ASE_TO_VASP = [0, 1, 2, 5, 3, 4]

# --------------------------------------------------------------------- reading


def read_structures(
    path: str | os.PathLike,
    elements: Sequence[str] | None = None,
    format: str | None = None,
    index: str = ":",
) -> list[Atoms]:
    """All frames of `path` with energy, forces and (if present) stress.

    Each returned Atoms keeps its labels as ASE calculator results; `energy`
    (eV), `forces` (n, 3) and, when the file has it, `stress` are checked to be
    present, finite and of the right shape. With `elements`, every atom must be
    one of them. `format`: "n2p2", "mlearn-json" or any ASE format name
    (default: from the content, then ASE's guess). The first bad frame raises
    a ValueError naming the file and the frame.
    """
    path = _check_path(path)
    frames: list[Atoms] = []
    for item in iter_frames(path, format, index):
        if isinstance(item, Unreadable):
            raise ValueError(f"{path}: frame {item.frame}: cannot be read: {item.message}")
        _check_frame(item, path, len(frames), elements)
        frames.append(item)
    if not frames:
        raise ValueError(f"{path}: no structures found")
    return frames


def _check_path(path: str | os.PathLike) -> str:
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"structure file {path} does not exist")
    if os.path.isdir(path):
        raise ValueError(f"{path} is a directory, not a structure file")
    if os.path.getsize(path) == 0:
        raise ValueError(f"{path}: the file is empty (no structures)")
    return path


@dataclass
class Unreadable:
    """A frame that could not be parsed (in place of its Atoms)."""

    frame: int
    message: str


def iter_frames(path: str | os.PathLike, format: str | None = None, index: str = ":") -> Iterator[Atoms | Unreadable]:
    """The frames of `path` as Atoms (unchecked), or `Unreadable` for a frame
    that cannot be parsed. In n2p2 and mlearn files every frame is parsed on
    its own and reading goes on after a bad one; ASE's readers stop at the
    first unreadable frame (their position in the file is lost)."""
    path = os.fspath(path)
    fmt = _normalise_format(format) if format is not None else detect_format(path)
    if fmt == "n2p2":
        yield from _iter_n2p2(path, index)
    elif fmt == "mlearn-json":
        yield from _iter_mlearn(path, index)
    else:
        yield from _iter_ase(path, fmt, index)


def _normalise_format(format: str) -> str:
    return _FORMAT_ALIASES.get(format.lower(), format)


def detect_format(path: str | os.PathLike) -> str | None:
    """"n2p2" or "mlearn-json" when the content says so, else None (ASE
    guesses from the name and content)."""
    try:
        with open(path, "rb") as f:
            head = f.read(1 << 16).decode("utf-8", errors="replace")
    except OSError:
        return None
    for line in head.splitlines():
        word = line.split()[0] if line.split() else ""
        if word:
            if word == "begin":
                return "n2p2"
            break
    if head.lstrip().startswith("[") and '"structure"' in head:
        return "mlearn-json"
    return None


def _select(n: int, index: str) -> list[int]:
    """Positions range(n) picked by an ASE index string ("0", "-1", "2:8:2")."""
    from ase.io.formats import string2index

    sel = string2index(index) if isinstance(index, str) else index
    if isinstance(sel, slice):
        return list(range(n))[sel]
    k = int(sel)
    if not -n <= k < n:
        raise ValueError(f"index {index} is out of range for a file of {n} frames")
    return [k % n]


def _iter_ase(path: str, format: str | None, index: str) -> Iterator[Atoms | Unreadable]:
    import ase.io

    count = 0
    try:
        it = ase.io.iread(path, index=index, format=format)
        while True:
            try:
                atoms = next(it)
            except StopIteration:
                return
            yield atoms
            count += 1
    except Exception as err:  # ASE raises many types for malformed input
        yield Unreadable(count, f"{err}")


# ------------------------------------------------------------- n2p2 input.data


def _iter_n2p2(path: str, index: str) -> Iterator[Atoms | Unreadable]:
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except (OSError, UnicodeDecodeError) as err:
        yield Unreadable(0, f"{err}")
        return
    # Split into begin ... end blocks first (cheap), so that `index` picks
    # frames before any parsing and a bad block does not hide the next ones.
    blocks: list[tuple[list[tuple[int, str]], str | None]] = []  # (numbered lines, error)
    current: list[tuple[int, str]] | None = None
    error: str | None = None  # of the current block
    pending: str | None = None  # a stray line outside any block: blamed on the next frame
    begin_line = 0
    for lineno, text in enumerate(lines, start=1):
        words = text.split()
        if not words:
            continue
        key = words[0]
        if key == "begin":
            if current is not None:
                blocks.append((current, error or f"line {lineno}: 'begin' before the 'end' of the frame "
                               f"begun on line {begin_line}"))
            current, error, pending, begin_line = [], pending, None, lineno
        elif key == "end":
            if current is None:
                pending = pending or f"line {lineno}: 'end' without 'begin'"
                continue
            blocks.append((current, error))
            current = None
        elif current is None:
            pending = pending or f"line {lineno}: {text.strip()[:40]!r} outside a begin ... end block"
        else:
            current.append((lineno, text))
    if current is not None:
        blocks.append((current, error or f"no 'end' for the 'begin' on line {begin_line} (truncated file?)"))
    if pending is not None:
        blocks.append(([], pending))
    for k in _select(len(blocks), index) if blocks else []:
        block, error = blocks[k]
        if error is not None:
            yield Unreadable(k, error)
            continue
        try:
            yield _parse_n2p2_block(block)
        except ValueError as err:
            yield Unreadable(k, str(err))


def _floats(words: Sequence[str], lineno: int) -> list[float]:
    try:
        return [float(w) for w in words]
    except ValueError:
        raise ValueError(f"line {lineno}: cannot read the numbers {' '.join(words)!r}") from None


def _parse_n2p2_block(block: list[tuple[int, str]]) -> Atoms:
    from ase.calculators.singlepoint import SinglePointCalculator
    from ase.data import atomic_numbers

    lattice, symbols, positions, charges, atom_energies, forces = [], [], [], [], [], []
    energy = charge = None
    comments: list[str] = []
    for lineno, text in block:
        words = text.split()
        key = words[0]
        if key == "comment":
            comments.append(text.strip()[len("comment"):].strip())
        elif key == "lattice":
            if len(words) != 4:
                raise ValueError(f"line {lineno}: a lattice line needs 3 numbers, found {len(words) - 1}")
            lattice.append(_floats(words[1:], lineno))
        elif key == "atom":
            if len(words) != 10:
                raise ValueError(
                    f"line {lineno}: an atom line needs 9 fields (x y z element charge energy fx fy fz), "
                    f"found {len(words) - 1}"
                )
            if words[4] not in atomic_numbers:
                raise ValueError(f"line {lineno}: unknown element {words[4]!r}")
            symbols.append(words[4])
            x = _floats(words[1:4] + words[5:], lineno)
            positions.append(x[0:3])
            charges.append(x[3])
            atom_energies.append(x[4])
            forces.append(x[5:8])
        elif key in ("energy", "charge"):
            if len(words) != 2:
                raise ValueError(f"line {lineno}: an {key} line needs one number, found {len(words) - 1}")
            if (energy if key == "energy" else charge) is not None:
                raise ValueError(f"line {lineno}: a second {key} line in one frame")
            value = _floats(words[1:], lineno)[0]
            if key == "energy":
                energy = value
            else:
                charge = value
        else:
            raise ValueError(f"line {lineno}: unknown keyword {key!r} (n2p2 input.data knows "
                             "begin, comment, lattice, atom, energy, charge, end)")
    if len(lattice) not in (0, 3):
        raise ValueError(f"a frame needs 3 lattice lines or none, found {len(lattice)}")
    periodic = len(lattice) == 3
    atoms = Atoms(
        symbols,
        positions=np.array(positions, dtype=float).reshape(-1, 3),
        cell=np.array(lattice) if periodic else None,
        pbc=periodic,
    )
    if any(charges):
        atoms.set_initial_charges(charges)
    if any(atom_energies):  # n2p2's per-atom energy column, kept (not a training label)
        atoms.arrays["n2p2_atom_energy"] = np.array(atom_energies)
    if comments:
        comment = " ".join(comments)
        atoms.info["comment"] = comment
        m = re.search(r"(?:^|\s)config_type=(\S+)", comment)
        if m:
            atoms.info["config_type"] = m.group(1)
    if charge:
        atoms.info["charge"] = charge
    atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=np.array(forces, dtype=float).reshape(-1, 3))
    return atoms


# --------------------------------------------------------------- mlearn JSON


def _iter_mlearn(path: str, index: str) -> Iterator[Atoms | Unreadable]:
    try:
        with open(path, encoding="utf-8") as f:
            docs = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        yield Unreadable(0, f"not valid JSON: {err}")
        return
    if not isinstance(docs, list):
        yield Unreadable(0, f"an mlearn JSON file is a list of entries, found a {type(docs).__name__}")
        return
    for k in _select(len(docs), index) if docs else []:
        try:
            yield _parse_mlearn_entry(docs[k])
        except (ValueError, TypeError, KeyError) as err:
            msg = f"missing key {err}" if isinstance(err, KeyError) else str(err)
            yield Unreadable(k, msg)


def _parse_mlearn_entry(doc) -> Atoms:
    from ase.calculators.singlepoint import SinglePointCalculator
    from ase.data import atomic_numbers

    if not isinstance(doc, dict):
        raise ValueError(f"an entry must be a JSON object, found {type(doc).__name__}")
    for key in ("structure", "outputs"):
        if not isinstance(doc.get(key), dict):
            raise ValueError(f"entry has no {key!r} object")
    st, out = doc["structure"], doc["outputs"]
    sites = st.get("sites")
    if not isinstance(sites, list):
        raise ValueError("structure has no list of 'sites'")
    lattice = st.get("lattice")
    matrix = None
    if lattice is not None:
        matrix = np.array(lattice["matrix"], dtype=float)
        if matrix.shape != (3, 3):
            raise ValueError(f"lattice matrix has shape {matrix.shape}, expected (3, 3)")
        pbc = lattice.get("pbc", (True, True, True))
    else:  # a pymatgen Molecule: no cell
        pbc = (False, False, False)
    symbols, positions = [], []
    for i, site in enumerate(sites):
        species = site["species"]
        if len(species) != 1 or float(species[0].get("occu", 1)) != 1.0:
            raise ValueError(f"site {i} is a disordered site ({species}); only ordered structures are supported")
        sym = species[0]["element"]
        if sym not in atomic_numbers:
            raise ValueError(f"site {i}: unknown element {sym!r}")
        symbols.append(sym)
        if "xyz" in site:
            positions.append([float(x) for x in site["xyz"]])
        elif matrix is not None and "abc" in site:
            positions.append((np.array(site["abc"], dtype=float) @ matrix).tolist())
        else:
            raise ValueError(f"site {i} has no coordinates ('xyz' or 'abc')")
    num_atoms = doc.get("num_atoms")
    if num_atoms is not None and int(num_atoms) != len(sites):
        raise ValueError(f"num_atoms is {num_atoms} but the structure has {len(sites)} sites")
    atoms = Atoms(symbols, positions=np.array(positions, dtype=float).reshape(-1, 3), cell=matrix, pbc=pbc)
    results = {}
    if out.get("energy") is not None:
        results["energy"] = float(out["energy"])
    if out.get("forces") is not None:
        try:
            results["forces"] = np.array(out["forces"], dtype=float)
        except ValueError:
            raise ValueError("forces are not a rectangular array of numbers") from None
        if results["forces"].size == 0:  # "forces": [] of an empty structure
            results["forces"] = results["forces"].reshape(0, 3)
    vs = out.get("virial_stress")
    if vs is not None:
        vs = np.array(vs, dtype=float)
        if vs.shape != (6,):
            raise ValueError(f"virial_stress has shape {vs.shape}, expected 6 numbers (xx yy zz xy yz xz, kBar)")
        results["stress"] = -vs[_VASP_TO_ASE] * _kbar_to_ev_per_a3()
    atoms.calc = SinglePointCalculator(atoms, **results)
    if doc.get("group") is not None:
        atoms.info["config_type"] = str(doc["group"])
    for key in ("description", "tag"):
        if doc.get(key) is not None:
            atoms.info[key] = str(doc[key])
    return atoms


def _kbar_to_ev_per_a3() -> float:
    from ase import units

    return KBAR * units.GPa


# -------------------------------------------------------------------- writing


def write_structures(path: str | os.PathLike, structures: Sequence[Atoms], format: str, overwrite: bool = False) -> None:
    """Write labelled structures as "n2p2" (input.data; no stress, which the
    format cannot hold) or "mlearn-json", atomically; an existing file is only
    replaced with `overwrite`."""
    fmt = _normalise_format(format)
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {format!r}; nnp writes {', '.join(FORMATS)} (use ase.io.write for others)")
    path = os.fspath(path)
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
    text = _n2p2_text(structures) if fmt == "n2p2" else _mlearn_text(structures)
    atomic_write_text(path, text)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write `text` to `path` atomically (see `atomic_open`)."""
    with atomic_open(path) as f:
        f.write(text)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, binary: bool = False):
    """A file to write that appears at `path` only when complete: it is
    written next to `path` under a temporary name and renamed over `path` on
    success (removed on error), so a reader never sees a half-written file.
    The new file gets the usual permissions (0666 less the umask)."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    base = os.path.basename(path)
    for _ in range(100):
        tmp = os.path.join(directory, f".{base}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            break
        except FileExistsError:
            continue
    else:  # pragma: no cover - 100 random name collisions
        raise FileExistsError(f"cannot create a temporary file next to {path}")
    try:
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8"})) as f:
            yield f
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _results(atoms: Atoms) -> dict:
    return getattr(atoms.calc, "results", None) or {}


def _n2p2_text(structures: Sequence[Atoms]) -> str:
    out = []
    for k, atoms in enumerate(structures):
        if atoms.pbc.any() and not atoms.pbc.all():
            raise ValueError(f"structure {k}: n2p2 input.data holds fully periodic or non-periodic structures only")
        r = _results(atoms)
        forces = np.asarray(r.get("forces", np.zeros((len(atoms), 3))), dtype=float)
        charges = atoms.get_initial_charges()
        atom_e = atoms.arrays.get("n2p2_atom_energy", np.zeros(len(atoms)))
        out.append("begin")
        comment = " ".join(str(atoms.info.get("comment", "")).split())  # one line
        if "config_type" in atoms.info and not re.search(r"(?:^|\s)config_type=", comment):
            ct = str(atoms.info["config_type"])
            if not ct or len(ct.split()) != 1:
                raise ValueError(f"structure {k}: config_type {ct!r} is not one word, which an n2p2 comment needs")
            comment = f"config_type={ct} {comment}".strip()
        if comment:
            out.append(f"comment {comment}")
        if atoms.pbc.all():
            out += ["lattice " + " ".join(repr(float(x)) for x in v) for v in atoms.cell.array]
        for sym, p, q, e, f in zip(atoms.get_chemical_symbols(), atoms.positions, charges, atom_e, forces):
            nums = [*map(float, p)]
            out.append(
                "atom " + " ".join(repr(x) for x in nums) + f" {sym} {float(q)!r} {float(e)!r} "
                + " ".join(repr(float(x)) for x in f)
            )
        if "energy" in r:
            out.append(f"energy {float(r['energy'])!r}")
        out.append(f"charge {float(atoms.info.get('charge', 0.0))!r}")
        out.append("end")
    return "\n".join(out) + "\n"


def _mlearn_text(structures: Sequence[Atoms]) -> str:
    docs = []
    for atoms in structures:
        symbols = atoms.get_chemical_symbols()
        periodic = atoms.cell.rank == 3
        sites = []
        frac = atoms.get_scaled_positions(wrap=False) if periodic else None
        for i, (sym, xyz) in enumerate(zip(symbols, atoms.positions)):
            site = {"species": [{"element": sym, "occu": 1}]}
            if periodic:
                site["abc"] = [float(x) for x in frac[i]]
            site["xyz"] = [float(x) for x in xyz]
            site["label"] = sym
            sites.append(site)
        if periodic:
            structure = {
                "@module": "pymatgen.core.structure", "@class": "Structure", "charge": None,
                "lattice": {"matrix": atoms.cell.array.tolist(), "pbc": [bool(p) for p in atoms.pbc]},
                "sites": sites,
            }
        else:
            structure = {"@module": "pymatgen.core.structure", "@class": "Molecule", "charge": 0.0,
                         "spin_multiplicity": None, "sites": sites}
        r = _results(atoms)
        outputs = {}
        if "energy" in r:
            outputs["energy"] = float(r["energy"])
        if "forces" in r:
            outputs["forces"] = np.asarray(r["forces"], dtype=float).tolist()
        if r.get("stress") is not None:
            _, _, stress = labels(atoms)
            voigt = np.array([stress[0, 0], stress[1, 1], stress[2, 2], stress[1, 2], stress[0, 2], stress[0, 1]])
            outputs["virial_stress"] = (-voigt[_ASE_TO_VASP] / _kbar_to_ev_per_a3()).tolist()
        doc = {"structure": structure, "outputs": outputs, "num_atoms": len(atoms)}
        if "config_type" in atoms.info:
            doc["group"] = str(atoms.info["config_type"])
        for key in ("description", "tag"):
            if key in atoms.info:
                doc[key] = str(atoms.info[key])
        docs.append(doc)
    return json.dumps(docs) + "\n"


# ------------------------------------------------------------------- checking


def _check_frame(atoms: Atoms, path: str, frame: int, elements: Sequence[str] | None) -> None:
    problems = frame_problems(atoms, elements)
    if problems:
        raise ValueError(f"{path}: frame {frame}: {problems[0]}")


def frame_problems(atoms: Atoms, elements: Sequence[str] | None = None) -> list[str]:
    """Everything wrong with a frame as training data (empty if nothing):
    missing or non-finite energy/forces/stress, arrays of the wrong length,
    non-finite positions or cell, unknown elements, duplicated atoms."""
    problems: list[str] = []
    n = len(atoms)
    if n == 0:
        return ["has no atoms"]
    geometry_ok = True
    if not np.all(np.isfinite(atoms.positions)):
        problems.append("positions contain NaN or inf")
        geometry_ok = False
    if not np.all(np.isfinite(atoms.cell.array)):
        problems.append("the cell contains NaN or inf")
        geometry_ok = False
    if elements is not None:
        bad = sorted(set(atoms.get_chemical_symbols()) - set(elements))
        if bad:
            problems.append(f"element(s) {', '.join(bad)} not in the element list {list(elements)}")
    results = _results(atoms)
    energy = results.get("energy")
    if energy is None:
        problems.append("no energy (every training frame needs a total energy)")
    else:
        energy = np.asarray(energy, dtype=float)
        if energy.size != 1:
            problems.append(f"energy must be one number, found shape {energy.shape}")
        elif not np.isfinite(energy).all():
            problems.append(f"energy is {float(energy)}")
    forces = results.get("forces")
    if forces is None:
        problems.append("no forces (every training frame needs forces)")
    else:
        forces = np.asarray(forces, dtype=float)
        if forces.shape != (n, 3):
            problems.append(f"forces have shape {forces.shape}, expected ({n}, 3) for {n} atoms")
        elif not np.all(np.isfinite(forces)):
            problems.append("forces contain NaN or inf")
    stress = results.get("stress")
    if stress is not None:
        stress = np.asarray(stress, dtype=float)
        if stress.shape not in ((6,), (3, 3)):
            problems.append(f"stress has shape {stress.shape}, expected (6,) or (3, 3)")
        elif not np.all(np.isfinite(stress)):
            problems.append("stress contains NaN or inf")
    if geometry_ok and (n > 1 or atoms.pbc.any()):
        from ase.neighborlist import neighbor_list

        try:
            i, j, d = neighbor_list("ijd", atoms, MIN_DISTANCE)
        except Exception as err:
            problems.append(f"cannot build a neighbour list (degenerate cell?): {err}")
        else:
            if len(i):
                k = int(np.argmin(d))
                problems.append(
                    f"atoms {i[k]} and {j[k]} are {d[k]:.3g} Å apart (< {MIN_DISTANCE} Å: duplicated atoms?)"
                )
    return problems


def labels(atoms: Atoms) -> tuple[float, np.ndarray, np.ndarray | None]:
    """(energy, forces (n, 3), stress (3, 3) or None) of a checked frame;
    NaN energy/forces for an unlabelled structure."""
    results = getattr(atoms.calc, "results", None) or {}
    energy = float(results["energy"]) if "energy" in results else math.nan
    forces = np.asarray(results["forces"], dtype=float) if "forces" in results else np.full((len(atoms), 3), math.nan)
    stress = results.get("stress")
    if stress is not None:
        stress = np.asarray(stress, dtype=float)
        if stress.shape == (6,):
            xx, yy, zz, yz, xz, xy = stress
            stress = np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])
    return energy, forces, stress


def split(n: int, validation_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic random split of range(n): (train indices, validation
    indices), both sorted. At least one structure trains; a positive fraction
    holds out at least one structure when n >= 2."""
    if n < 1:
        raise ValueError("cannot split an empty data set")
    if not 0.0 <= validation_fraction < 1.0:
        raise ValueError(f"validation_fraction must be in [0, 1), got {validation_fraction}")
    n_val = int(round(n * validation_fraction))
    if validation_fraction > 0 and n >= 2:
        n_val = max(n_val, 1)
    n_val = min(n_val, n - 1)
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


# -------------------------------------------------------------------- summary

SUMMARY_DISTANCE_CUTOFF = 3.0  # Å; the minimum distance is searched below this


@dataclass
class FileSummary:
    """What a structure file holds, and every frame with a problem.

    Label statistics are over the frames where the label is present and
    finite; `problems` lists (frame, message) for every bad frame.
    """

    path: str
    format: str
    n_structures: int = 0  # frames that could be parsed
    n_atoms: int = 0
    atoms_per_structure: tuple[int, int] | None = None
    elements: Counter = field(default_factory=Counter)  # element -> atoms
    config_types: Counter = field(default_factory=Counter)  # config type -> structures
    n_periodic: int = 0
    energy_per_atom: tuple[float, float] | None = None  # eV/atom
    max_force: tuple[float, int, int] | None = None  # (|F| eV/Å, frame, atom)
    n_stress: int = 0
    max_stress: tuple[float, int] | None = None  # (max |σ component| GPa, frame)
    min_distance: tuple[float, int] | None = None  # (Å, frame); None: none below SUMMARY_DISTANCE_CUTOFF
    problems: list[tuple[int, str]] = field(default_factory=list)
    stopped_at: int | None = None  # frame where reading had to stop (a format ASE reads)

    @property
    def ok(self) -> bool:
        return not self.problems and self.n_structures > 0


def summarize(path: str | os.PathLike, format: str | None = None, elements: Sequence[str] | None = None) -> FileSummary:
    """Counts, label ranges and problems of every frame of `path` (never
    raises for a bad frame; raises for a missing or empty file)."""
    from ase import units
    from ase.neighborlist import neighbor_list

    path = _check_path(path)
    fmt = _normalise_format(format) if format is not None else detect_format(path)
    summary = FileSummary(path, fmt or _ase_filetype(path))
    e_lo, e_hi = math.inf, -math.inf
    n_lo, n_hi = math.inf, -math.inf
    frame = -1
    for frame, atoms in enumerate(iter_frames(path, fmt)):
        if isinstance(atoms, Unreadable):
            summary.problems.append((atoms.frame, f"cannot be read: {atoms.message}"))
            if fmt not in FORMATS:
                summary.stopped_at = atoms.frame
            continue
        for msg in frame_problems(atoms, elements):
            summary.problems.append((frame, msg))
        n = len(atoms)
        summary.n_structures += 1
        summary.n_atoms += n
        n_lo, n_hi = min(n_lo, n), max(n_hi, n)
        summary.elements.update(atoms.get_chemical_symbols())
        summary.config_types[str(atoms.info.get("config_type", DEFAULT_CONFIG_TYPE))] += 1
        summary.n_periodic += bool(atoms.pbc.all())
        r = _results(atoms)
        if n and r.get("energy") is not None and np.size(r["energy"]) == 1 and np.isfinite(r["energy"]):
            e = float(r["energy"]) / n
            e_lo, e_hi = min(e_lo, e), max(e_hi, e)
        f = r.get("forces")
        if f is not None and np.shape(f) == (n, 3) and n and np.all(np.isfinite(f)):
            norms = np.linalg.norm(np.asarray(f, dtype=float), axis=1)
            k = int(np.argmax(norms))
            if summary.max_force is None or norms[k] > summary.max_force[0]:
                summary.max_force = (float(norms[k]), frame, k)
        st = r.get("stress")
        if st is not None and np.shape(st) in ((6,), (3, 3)):
            summary.n_stress += 1
            if np.all(np.isfinite(st)):
                smax = float(np.max(np.abs(st))) / units.GPa
                if summary.max_stress is None or smax > summary.max_stress[0]:
                    summary.max_stress = (smax, frame)
        if n > 1 and np.all(np.isfinite(atoms.positions)) and np.all(np.isfinite(atoms.cell.array)):
            try:
                d = neighbor_list("d", atoms, SUMMARY_DISTANCE_CUTOFF)
            except Exception:  # a degenerate cell, already a problem of the frame
                d = np.empty(0)
            if len(d) and (summary.min_distance is None or d.min() < summary.min_distance[0]):
                summary.min_distance = (float(d.min()), frame)
    if summary.n_structures:
        summary.atoms_per_structure = (int(n_lo), int(n_hi))
    if e_lo <= e_hi:
        summary.energy_per_atom = (e_lo, e_hi)
    if summary.n_structures == 0 and not summary.problems:
        summary.problems.append((0, "no structures found"))
    summary.problems.sort(key=lambda p: p[0])
    return summary


def _ase_filetype(path: str) -> str:
    from ase.io.formats import filetype

    try:
        return str(filetype(path, guess=True))
    except Exception:
        return "unknown"


def format_summary(s: FileSummary) -> str:
    """The summary as printed by ``python -m nnp.data summary``."""
    lines = [f"{s.path} ({s.format})"]

    def row(name: str, value: str) -> None:
        lines.append(f"  {name:<17s}{value}")

    span = f", {s.atoms_per_structure[0]} .. {s.atoms_per_structure[1]} per structure" if s.atoms_per_structure else ""
    row("structures", f"{s.n_structures} ({s.n_atoms} atoms{span})")
    row("elements", ", ".join(f"{e} ({n})" for e, n in sorted(s.elements.items())) or "-")
    row("config types", ", ".join(f"{c} ({n})" for c, n in sorted(s.config_types.items())) or "-")
    row("periodic", f"{s.n_periodic} of {s.n_structures} structures")
    row("energy", f"{s.energy_per_atom[0]:.6g} .. {s.energy_per_atom[1]:.6g} eV/atom" if s.energy_per_atom else "-")
    if s.max_force:
        row("max |F|", f"{s.max_force[0]:.4g} eV/Å (frame {s.max_force[1]}, atom {s.max_force[2]})")
    else:
        row("max |F|", "-")
    stress = f"{s.n_stress} of {s.n_structures} structures"
    if s.max_stress:
        stress += f" (max |σ_ij| {s.max_stress[0]:.4g} GPa, frame {s.max_stress[1]})"
    row("stress", stress)
    if s.min_distance:
        row("min distance", f"{s.min_distance[0]:.4g} Å (frame {s.min_distance[1]})")
    else:
        row("min distance", f"none below {SUMMARY_DISTANCE_CUTOFF} Å")
    if not s.problems:
        row("problems", "none")
    else:
        frames = sorted({f for f, _ in s.problems})
        row("problems", f"{len(s.problems)} in {len(frames)} frame(s)")
        for f, msg in s.problems:
            lines.append(f"{s.path}: frame {f}: {msg}")
        if s.stopped_at is not None:
            lines.append(f"{s.path}: reading stopped at frame {s.stopped_at}; later frames were not checked")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m nnp.data",
        description="Inspect labelled structure files (extxyz and other ASE formats, n2p2 input.data, mlearn JSON).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser(
        "summary",
        help="counts, elements, config types, label ranges; lists every problem frame",
        description="Print what each file holds and list every frame with a problem "
        "(missing or non-finite labels, arrays of the wrong length, duplicated atoms, "
        "unknown elements with --elements). Exit status 1 if any file has a problem.",
    )
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--format", help="n2p2, mlearn-json or an ASE format name (default: from the content)")
    p.add_argument("--elements", help="comma-separated element list the frames must use, e.g. Si or Si,O")
    args = parser.parse_args(argv)
    elements = [e.strip() for e in args.elements.split(",") if e.strip()] if args.elements else None
    status = 0
    for k, path in enumerate(args.files):
        if k:
            print()
        try:
            s = summarize(path, args.format, elements)
        except (OSError, ValueError) as err:
            print(f"error: {err}", file=sys.stderr)
            status = max(status, 2)
            continue
        print(format_summary(s))
        if not s.ok:
            status = max(status, 1)
    return status


# ------------------------------------------------------------ featurised data


@dataclass
class ElementBlock:
    """Descriptors of all atoms of one centre element.

    In a `FeaturizedDataset` indices are global (rows of this block, atoms of
    the whole data set); in a `Batch` they are local to the batch.
      G            (R, M)     descriptor rows
      atom         (R,)       atom index of each row
      row_struct   (R,)       structure of each row
      pair_center  (P,)       row of G of the centre of each neighbour entry
      pair_neighbor(P,)       atom index of the neighbour (image folded back)
      pair_vector  (P, 3)     r_ij = r_j − r_i (Å)
      dG_dr        (P, M, 3)  ∂G_i/∂r_ij
      pair_struct  (P,)       structure of each neighbour entry
    """

    G: torch.Tensor
    atom: torch.Tensor
    row_struct: torch.Tensor
    pair_center: torch.Tensor
    pair_neighbor: torch.Tensor
    pair_vector: torch.Tensor
    dG_dr: torch.Tensor
    pair_struct: torch.Tensor


@dataclass
class Batch:
    """A collated set of structures (all indices local to the batch)."""

    indices: torch.Tensor  # (S,) structure indices in the data set
    n_atoms: torch.Tensor  # (S,)
    atom_struct: torch.Tensor  # (N,)
    energy: torch.Tensor  # (S,) eV (NaN if unlabelled)
    forces: torch.Tensor  # (N, 3) eV/Å
    stress: torch.Tensor  # (S, 3, 3) eV/Å³ (NaN where absent)
    volume: torch.Tensor  # (S,) Å³ (NaN unless fully periodic)
    # () the shortest |r_ij| of all neighbour entries (inf without any):
    # models skip their repulsive core when it lies beyond every core, as it
    # does for every training batch (a sixth of an L-BFGS evaluation).
    shortest_pair: torch.Tensor
    blocks: dict[str, ElementBlock]

    @property
    def n_structures(self) -> int:
        return int(self.n_atoms.shape[0])

    @property
    def n_total_atoms(self) -> int:
        return int(self.atom_struct.shape[0])

    def to(self, device) -> "Batch":
        """A copy with every tensor on `device` (e.g. "cuda"); itself when
        already there."""
        if self.n_atoms.device == _torch().device(device):
            return self
        move = {k: v.to(device) for k, v in vars(self).items() if k != "blocks"}
        blocks = {e: ElementBlock(**{k: t.to(device) for k, t in vars(b).items()}) for e, b in self.blocks.items()}
        return Batch(**move, blocks=blocks)


def _torch():
    # Imported on first use: reading and checking data must work without torch.
    import torch

    return torch


def _gather_ranges(offsets: torch.Tensor, idx: torch.Tensor):
    """Concatenated ranges offsets[s] .. offsets[s+1]−1 for s in idx.

    Returns (gather index, batch position of each gathered entry, new offsets).
    """
    torch = _torch()
    starts = offsets[idx]
    lens = offsets[idx + 1] - starts
    new_offsets = torch.zeros(len(idx) + 1, dtype=torch.long)
    torch.cumsum(lens, 0, out=new_offsets[1:])
    pos = torch.repeat_interleave(torch.arange(len(idx)), lens)
    gather = torch.arange(int(new_offsets[-1])) + (starts - new_offsets[:-1])[pos]
    return gather, pos, new_offsets


ISOLATED_ATOM_TYPE = "isolated_atom"


def isolated_atom(element: str, energy: float) -> Atoms:
    """One atom alone (no periodic images): energy `energy` eV, no force, no stress."""
    from ase.calculators.singlepoint import SinglePointCalculator

    atoms = Atoms(element, positions=[[0.0, 0.0, 0.0]], pbc=False)
    atoms.calc = SinglePointCalculator(atoms, energy=float(energy), forces=np.zeros((1, 3)))
    atoms.info["config_type"] = ISOLATED_ATOM_TYPE
    return atoms


class FeaturizedDataset:
    """Descriptors and labels of a list of structures, ready to batch.

    Built with `from_structures`; `collate(indices)` returns a `Batch`.
    """

    def __init__(
        self,
        elements: tuple[str, ...],
        n_atoms: torch.Tensor,
        energy: torch.Tensor,
        forces: torch.Tensor,
        stress: torch.Tensor,
        volume: torch.Tensor,
        composition: torch.Tensor,
        config_types: list[str],
        blocks: dict[str, ElementBlock],
    ):
        torch = _torch()
        self.elements = tuple(elements)
        self.n_atoms = n_atoms
        self.energy = energy
        self.forces = forces
        self.stress = stress
        self.volume = volume
        self.composition = composition  # (S, n_elements) atom counts
        self.config_types = list(config_types)
        self.blocks = blocks
        S = len(n_atoms)
        self.atom_offsets = torch.zeros(S + 1, dtype=torch.long)
        torch.cumsum(n_atoms, 0, out=self.atom_offsets[1:])
        self.atom_struct = torch.repeat_interleave(torch.arange(S), n_atoms)
        self.row_offsets = {e: self._offsets(b.row_struct, S) for e, b in blocks.items()}
        self.pair_offsets = {e: self._offsets(b.pair_struct, S) for e, b in blocks.items()}

    @staticmethod
    def _offsets(struct_of_entry: torch.Tensor, S: int) -> torch.Tensor:
        torch = _torch()
        if len(struct_of_entry) > 1 and bool((struct_of_entry[1:] < struct_of_entry[:-1]).any()):
            raise ValueError("entries must be grouped by structure")
        counts = torch.bincount(struct_of_entry, minlength=S)
        off = torch.zeros(S + 1, dtype=torch.long)
        torch.cumsum(counts, 0, out=off[1:])
        return off

    def __len__(self) -> int:
        return int(self.n_atoms.shape[0])

    @property
    def n_total_atoms(self) -> int:
        return int(self.atom_offsets[-1])

    def nbytes(self) -> int:
        total = 0
        for b in self.blocks.values():
            total += sum(t.element_size() * t.nelement() for t in vars(b).values())
        return total

    @classmethod
    def from_structures(
        cls,
        structures: Sequence[Atoms],
        descriptors,
        featurize: Callable[[Atoms], dict] | None = None,
        progress: Callable[[int, int], None] | None = None,
        derivative_dtype=np.float64,
    ) -> "FeaturizedDataset":
        """Featurise `structures` with `featurize(atoms)` (default:
        ``descriptors.featurize(atoms, derivatives=True)``, the C++ core).

        `derivative_dtype` np.float32 stores dG_dr, nearly all of the memory,
        in single precision: half the memory and the memory traffic of
        training, at single-precision rounding (6e-8 relative per stored
        value) of the forces and stress."""
        torch = _torch()
        if featurize is None:

            def featurize(atoms):
                return descriptors.featurize(atoms, derivatives=True)

        elements = tuple(descriptors.elements)
        S = len(structures)
        if S == 0:
            raise ValueError("no structures to featurise")
        parts: dict[str, dict[str, list]] = {e: {k: [] for k in ElementBlock.__dataclass_fields__} for e in elements}
        rows_so_far = {e: 0 for e in elements}
        energy = np.full(S, math.nan)
        stress = np.full((S, 3, 3), math.nan)
        volume = np.full(S, math.nan)
        forces, n_atoms, config_types = [], [], []
        composition = np.zeros((S, len(elements)))
        atom_offset = 0
        for s, atoms in enumerate(structures):
            n = len(atoms)
            e_s, f_s, st_s = labels(atoms)
            energy[s] = e_s
            forces.append(f_s)
            if atoms.pbc.all():
                volume[s] = atoms.get_volume()
                if st_s is not None:
                    stress[s] = st_s
            n_atoms.append(n)
            config_types.append(str(atoms.info.get("config_type", DEFAULT_CONFIG_TYPE)))
            symbols = atoms.get_chemical_symbols()
            for k, e in enumerate(elements):
                composition[s, k] = symbols.count(e)
            feats = featurize(atoms)
            for e in elements:
                f = feats[e]
                p = parts[e]
                R = len(f["atoms"])
                P = len(f["pair_center"])
                p["G"].append(np.asarray(f["G"], dtype=np.float64).reshape(R, descriptors.size(e)))
                p["atom"].append(np.asarray(f["atoms"], dtype=np.int64) + atom_offset)
                p["row_struct"].append(np.full(R, s, dtype=np.int64))
                p["pair_center"].append(np.asarray(f["pair_center"], dtype=np.int64) + rows_so_far[e])
                p["pair_neighbor"].append(np.asarray(f["pair_neighbor"], dtype=np.int64) + atom_offset)
                p["pair_vector"].append(np.asarray(f["pair_vector"], dtype=np.float64).reshape(P, 3))
                p["dG_dr"].append(np.asarray(f["dG_dr"], dtype=derivative_dtype).reshape(P, descriptors.size(e), 3))
                p["pair_struct"].append(np.full(P, s, dtype=np.int64))
                rows_so_far[e] += R
            atom_offset += n
            if progress is not None:
                progress(s + 1, S)
        blocks = {}
        for e in elements:
            t = {k: torch.from_numpy(np.concatenate(v)) for k, v in parts[e].items()}
            del parts[e]
            blocks[e] = ElementBlock(**t)
        return cls(
            elements,
            torch.tensor(n_atoms, dtype=torch.long),
            torch.from_numpy(energy),
            torch.from_numpy(np.concatenate(forces).reshape(-1, 3)),
            torch.from_numpy(stress),
            torch.from_numpy(volume),
            torch.from_numpy(composition),
            config_types,
            blocks,
        )

    def collate(self, indices: Iterable[int] | torch.Tensor) -> Batch:
        """The structures `indices` (in that order) as one batch."""
        torch = _torch()
        idx = torch.as_tensor(np.asarray(indices, dtype=np.int64).reshape(-1))
        if len(idx) == 0:
            raise ValueError("empty batch")
        a_gather, a_pos, a_off = _gather_ranges(self.atom_offsets, idx)
        # An atom a of structure s becomes a − atom_offsets[s] + a_off[pos(s)].
        atom_shift = a_off[:-1] - self.atom_offsets[idx]  # per batch position
        blocks = {}
        for e, b in self.blocks.items():
            r_gather, r_pos, r_off = _gather_ranges(self.row_offsets[e], idx)
            row_shift = r_off[:-1] - self.row_offsets[e][idx]
            p_gather, p_pos, _ = _gather_ranges(self.pair_offsets[e], idx)
            # index_select is several times faster than b.dG_dr[p_gather].
            blocks[e] = ElementBlock(
                G=b.G.index_select(0, r_gather),
                atom=b.atom.index_select(0, r_gather) + atom_shift[r_pos],
                row_struct=r_pos,
                pair_center=b.pair_center.index_select(0, p_gather) + row_shift[p_pos],
                pair_neighbor=b.pair_neighbor.index_select(0, p_gather) + atom_shift[p_pos],
                pair_vector=b.pair_vector.index_select(0, p_gather),
                dG_dr=b.dG_dr.index_select(0, p_gather),
                pair_struct=p_pos,
            )
        shortest = torch.tensor(math.inf, dtype=self.energy.dtype)
        for b in blocks.values():
            if b.pair_vector.shape[0]:
                shortest = torch.minimum(shortest, torch.linalg.vector_norm(b.pair_vector, dim=1).min())
        return Batch(
            indices=idx,
            shortest_pair=shortest,
            n_atoms=self.n_atoms[idx],
            atom_struct=a_pos,
            energy=self.energy[idx],
            forces=self.forces.index_select(0, a_gather),
            stress=self.stress[idx],
            volume=self.volume[idx],
            blocks=blocks,
        )


if __name__ == "__main__":
    sys.exit(main())
