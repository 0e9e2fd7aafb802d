"""n2p2's ``input.data``: reading (frame by frame, so a bad frame does not hide
the next ones) and writing.

A file is a sequence of ``begin`` ... ``end`` blocks holding ``comment``,
three ``lattice`` lines or none, ``atom x y z element charge energy fx fy
fz``, ``energy`` and ``charge``. Numbers are taken as they are: the file must
be in Å and eV (n2p2 itself is unit-agnostic; files in Bohr/Hartree need
converting). A ``config_type=NAME`` word in a comment line becomes the config
type.
"""

from __future__ import annotations

import re
from typing import Iterator, Sequence

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.data import atomic_numbers

from nnp.data.frames import Unreadable, results, select


def iter_n2p2(path: str, index: str) -> Iterator[Atoms | Unreadable]:
    """The frames of an input.data file picked by the ASE index string `index`."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except (OSError, UnicodeDecodeError) as err:
        yield Unreadable(0, f"{err}")
        return
    # Split into begin ... end blocks first (cheap), so that `index` picks
    # frames before any parsing and a bad block does not hide the next ones.
    blocks = _blocks(lines)
    for k in select(len(blocks), index) if blocks else []:
        block, error = blocks[k]
        if error is not None:
            yield Unreadable(k, error)
            continue
        try:
            yield _parse_block(block)
        except ValueError as err:
            yield Unreadable(k, str(err))


def _blocks(lines: list[str]) -> list[tuple[list[tuple[int, str]], str | None]]:
    """The begin ... end blocks of a file as (numbered lines, error or None);
    a stray line outside any block makes the next block an error."""
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
    return blocks


def _floats(words: Sequence[str], lineno: int) -> list[float]:
    try:
        return [float(w) for w in words]
    except ValueError:
        raise ValueError(f"line {lineno}: cannot read the numbers {' '.join(words)!r}") from None


def _parse_block(block: list[tuple[int, str]]) -> Atoms:
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


def n2p2_text(structures: Sequence[Atoms]) -> str:
    """`structures` as input.data text (no stress, which the format cannot hold)."""
    out = []
    for k, atoms in enumerate(structures):
        if atoms.pbc.any() and not atoms.pbc.all():
            raise ValueError(f"structure {k}: n2p2 input.data holds fully periodic or non-periodic structures only")
        r = results(atoms)
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
