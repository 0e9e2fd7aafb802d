"""DeePMD-kit systems: reading ``deepmd/raw`` and ``deepmd/npy``, writing ``deepmd/npy``.

A system is a directory with ``type.raw`` (one type index per atom, the same
atoms in every frame) and ``type_map.raw`` (the element of each index), and
its frames either as text, one frame per line (``coord.raw``, ``box.raw``,
``energy.raw``, ``force.raw``, optional ``virial.raw``: the raw layout), or as
NumPy arrays in ``set.000/``, ``set.001/``, ... (``coord.npy`` etc.: the npy
layout). An empty file ``nopbc`` marks a non-periodic system (no box). A
directory holding several systems (at any depth) is one data set; each
frame's config type is its system's path relative to that directory.

Conventions (DeePMD-kit's data format documentation): Å, eV, eV/Å; a frame is
one row, atoms flattened as x0 y0 z0 x1 ...; the box row is the three lattice
vectors a, b, c one after the other (ASE's cell rows); the virial is in eV,
row-major XX XY XZ YX ... ZZ, and is W = -σ V with σ ASE's stress (tension
positive) and V the cell volume, so a compressed cell has a positive virial.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.data import atomic_numbers

from nnp.data.frames import DEFAULT_CONFIG_TYPE, Unreadable, labels, select

TYPE_FILE = "type.raw"  # marks a directory as a system
DEFAULT_SET_SIZE = 5000  # frames per set.* directory written (dpdata's default)
_LABELS = ("coord", "box", "energy", "force", "virial")
_ROW_SIZE: dict[str, Callable[[int], int]] = {
    "coord": lambda n: 3 * n, "box": lambda n: 9, "energy": lambda n: 1,
    "force": lambda n: 3 * n, "virial": lambda n: 9,
}


class Layout(str, Enum):
    RAW = "deepmd/raw"
    NPY = "deepmd/npy"


def is_deepmd(path: str | os.PathLike) -> bool:
    """Whether `path` is a directory with a system in it or below it."""
    return os.path.isdir(path) and bool(find_systems(path))


def find_systems(root: str | os.PathLike) -> list[tuple[Path, str | None]]:
    """(directory, config type) of every system under `root`, sorted by path;
    the config type is None when `root` itself is the system. A system's own
    subdirectories (its set.*) are not searched."""
    root = Path(root)
    found: list[tuple[Path, str | None]] = []
    for here, dirs, files in os.walk(root):
        dirs.sort()
        if TYPE_FILE in files:
            rel = Path(here).relative_to(root).as_posix()
            found.append((Path(here), None if rel == "." else rel))
            dirs.clear()
    return found


@dataclass
class _System:
    """One system's atoms and its frames' rows per label (None: no such
    label); a frame whose row is bad has its message in `bad`."""

    symbols: list[str]
    periodic: bool
    rows: dict[str, list[np.ndarray | None] | None] = field(default_factory=dict)
    bad: dict[int, str] = field(default_factory=dict)
    where: list[str] = field(default_factory=list)  # per frame: "set.001 row 4", "line 5"


def iter_deepmd(path: str | os.PathLike, layout: Layout | None, index: str) -> Iterator[Atoms | Unreadable]:
    """The frames of every system under `path` picked by the ASE index string
    `index` over all frames, systems in path order; `layout` None takes npy
    where a system has set.* directories and raw otherwise. A system that
    cannot be read at all counts as one Unreadable frame."""
    systems = find_systems(path)
    if not systems:
        yield Unreadable(0, f"no DeePMD-kit system ({TYPE_FILE}) in {os.fspath(path)}")
        return
    counts = [_count_frames(d, layout) for d, _ in systems]
    offsets = np.concatenate([[0], np.cumsum([max(c, 1) for c in counts])]).astype(int)
    wanted = select(int(offsets[-1]), index)
    for s, (directory, config_type) in enumerate(systems):
        mine = [k for k in wanted if offsets[s] <= k < offsets[s + 1]]
        if not mine:
            continue
        name = config_type or "."
        try:
            system = _load(directory, layout)
        except (OSError, ValueError) as err:
            yield from (Unreadable(k, f"system {name}: {err}") for k in mine)
            continue
        for k in mine:
            i = k - int(offsets[s])
            if i >= len(system.where):
                yield Unreadable(k, f"system {name}: no frames")
            elif i in system.bad:
                yield Unreadable(k, f"system {name}, {system.where[i]}: {system.bad[i]}")
            else:
                yield _frame(system, i, config_type)


def _layout_of(directory: Path, layout: Layout | None) -> Layout:
    if layout is not None:
        return layout
    return Layout.NPY if _set_dirs(directory) else Layout.RAW


def _set_dirs(directory: Path) -> list[Path]:
    return sorted(p for p in directory.glob("set.*") if p.is_dir())


def _count_frames(directory: Path, layout: Layout | None) -> int:
    """Frames of a system, from its coordinates alone (0 when they cannot be found)."""
    try:
        if _layout_of(directory, layout) is Layout.NPY:
            return sum(len(np.load(d / "coord.npy", mmap_mode="r")) for d in _set_dirs(directory))
        with open(directory / "coord.raw", encoding="utf-8") as f:
            return sum(1 for line in f if line.strip())
    except (OSError, ValueError):
        return 0


def _load(directory: Path, layout: Layout | None) -> _System:
    """A system's atoms and rows; raises for what spoils every frame."""
    types = np.array((directory / TYPE_FILE).read_text(encoding="utf-8").split(), dtype=int)
    map_file = directory / "type_map.raw"
    if not map_file.is_file():
        raise ValueError("no type_map.raw: the element of each type index is unknown")
    type_map = map_file.read_text(encoding="utf-8").split()
    unknown = [t for t in type_map if t not in atomic_numbers]
    if unknown:
        raise ValueError(f"type_map.raw names {unknown}, which are not elements")
    if len(types) == 0 or types.min() < 0 or types.max() >= len(type_map):
        raise ValueError(f"type.raw holds indices outside 0..{len(type_map) - 1} (type_map.raw {type_map})")
    system = _System([type_map[t] for t in types], not (directory / "nopbc").exists())
    if _layout_of(directory, layout) is Layout.NPY:
        _load_npy(system, directory)
    else:
        _load_raw(system, directory)
    if system.periodic and system.rows.get("box") is None:
        raise ValueError("no box (box.raw or set.*/box.npy), and no nopbc file saying the system is not periodic")
    return system


def _load_raw(system: _System, directory: Path) -> None:
    """Rows of the raw layout, one line per frame, each line parsed on its own."""
    if not (directory / "coord.raw").is_file():
        raise ValueError("no coord.raw (raw layout)")
    n = len(system.symbols)
    lines: dict[str, list[str]] = {}
    for key in _LABELS:
        f = directory / f"{key}.raw"
        if f.is_file():
            lines[key] = [t for t in f.read_text(encoding="utf-8").splitlines() if t.strip()]
    n_frames = len(lines["coord"])
    system.where = [f"line {i + 1}" for i in range(n_frames)]
    for key in _LABELS:
        if key not in lines:
            system.rows[key] = None
            continue
        if len(lines[key]) != n_frames:
            # Lines no longer pair up: no frame can be trusted.
            raise ValueError(f"{key}.raw has {len(lines[key])} frames (lines), coord.raw {n_frames}")
        rows: list[np.ndarray | None] = []
        for i in range(n_frames):
            try:
                rows.append(_row(np.array(lines[key][i].split(), dtype=float), key, n))
            except ValueError as err:
                system.bad.setdefault(i, f"{key}.raw: {err}")
                rows.append(None)
        system.rows[key] = rows


def _load_npy(system: _System, directory: Path) -> None:
    """Rows of the npy layout, set by set; a bad array spoils its set's frames."""
    sets = _set_dirs(directory)
    if not sets:
        raise ValueError("no set.* directories (npy layout)")
    if any((d / "real_atom_types.npy").exists() for d in sets):
        raise ValueError("this is DeePMD-kit's mixed-type layout (real_atom_types.npy), which nnp does not read")
    n = len(system.symbols)
    present = {key: any((d / f"{key}.npy").exists() for d in sets) for key in _LABELS}
    system.rows = {key: [] if present[key] else None for key in _LABELS}
    for d in sets:
        coord = np.load(d / "coord.npy")
        n_frames = len(coord)
        first = len(system.where)
        system.where += [f"{d.name} row {i}" for i in range(n_frames)]
        for key in _LABELS:
            if not present[key]:
                continue
            f = d / f"{key}.npy"
            try:
                if not f.exists():
                    raise ValueError(f"{key}.npy is missing here but present in other sets")
                array = np.asarray(np.load(f), dtype=float).reshape(n_frames, -1)
                system.rows[key] += [_row(r, key, n) for r in array]
            except ValueError as err:
                for i in range(first, first + n_frames):
                    system.bad.setdefault(i, f"{d.name}/{key}.npy: {err}")
                system.rows[key] += [None] * n_frames


def _row(values: np.ndarray, key: str, n_atoms: int) -> np.ndarray:
    want = _ROW_SIZE[key](n_atoms)
    if values.size != want:
        raise ValueError(f"{values.size} numbers in a frame, expected {want} ({n_atoms} atoms)")
    return values


def _frame(system: _System, i: int, config_type: str | None) -> Atoms:
    """Frame `i` as Atoms with its labels as calculator results."""
    n = len(system.symbols)

    def get(key: str) -> np.ndarray | None:
        rows = system.rows.get(key)
        return None if rows is None else rows[i]

    cell = get("box").reshape(3, 3) if system.periodic else np.zeros((3, 3))
    atoms = Atoms(system.symbols, positions=get("coord").reshape(n, 3), cell=cell, pbc=system.periodic)
    found: dict[str, object] = {}
    if get("energy") is not None:
        found["energy"] = float(get("energy")[0])
    if get("force") is not None:
        found["forces"] = get("force").reshape(n, 3)
    virial = get("virial")
    if virial is not None and system.periodic:
        # W = -σ V (DeePMD's virial, eV; σ in ASE's sign, tension positive).
        s = -virial.reshape(3, 3) / abs(np.linalg.det(cell))
        found["stress"] = np.array([s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]])
    atoms.calc = SinglePointCalculator(atoms, **found)
    if config_type is not None:
        atoms.info["config_type"] = config_type
    return atoms


def write_deepmd_npy(
    directory: str | os.PathLike, structures: Sequence[Atoms], set_size: int = DEFAULT_SET_SIZE
) -> list[Path]:
    """Write labelled frames as deepmd/npy systems under `directory` (which must
    not exist or be empty); returns the system directories.

    Frames with the same config type, atoms (in the same order) and
    periodicity form one system, in ``<config type>/`` (``default/`` without
    one), or ``<config type>/<formula>[.k]/`` when a config type has several;
    its frames go in sets of `set_size`. Stress is written as the virial
    W = -σ V when every frame of a system has it. Every frame needs an energy
    and forces; a partly periodic frame cannot be written (DeePMD has no such
    systems)."""
    root = Path(directory)
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise FileExistsError(f"{root} exists and is not an empty directory")
    written = []
    for name, frames in _groups(structures).items():
        written.append(_write_system(root / name, frames, set_size))
    return written


def _groups(structures: Sequence[Atoms]) -> dict[str, list[Atoms]]:
    by_key: dict[tuple, list[Atoms]] = {}
    for k, atoms in enumerate(structures):
        if atoms.pbc.any() and not atoms.pbc.all():
            raise ValueError(f"frame {k}: periodic along some axes only ({atoms.pbc}); DeePMD systems are "
                             "periodic in 3D or not at all")
        config_type = str(atoms.info.get("config_type", DEFAULT_CONFIG_TYPE))
        key = (config_type, tuple(atoms.get_chemical_symbols()), bool(atoms.pbc.all()))
        by_key.setdefault(key, []).append(atoms)
    per_type: dict[str, int] = {}
    for config_type, _, _ in by_key:
        per_type[config_type] = per_type.get(config_type, 0) + 1
    groups: dict[str, list[Atoms]] = {}
    for (config_type, _, _), frames in by_key.items():
        name = config_type
        if per_type[config_type] > 1:
            base = f"{config_type}/{frames[0].get_chemical_formula()}"
            name, k = base, 1
            while name in groups:
                name, k = f"{base}.{k}", k + 1
        groups[name] = frames
    return groups


def _write_system(directory: Path, frames: list[Atoms], set_size: int) -> Path:
    if set_size < 1:
        raise ValueError(f"set_size must be >= 1, got {set_size}")
    symbols = frames[0].get_chemical_symbols()
    type_map = sorted(set(symbols), key=lambda e: atomic_numbers[e])
    directory.mkdir(parents=True)
    (directory / TYPE_FILE).write_text(" ".join(str(type_map.index(e)) for e in symbols) + "\n")
    (directory / "type_map.raw").write_text("\n".join(type_map) + "\n")
    periodic = bool(frames[0].pbc.all())
    if not periodic:
        (directory / "nopbc").write_text("")
    arrays = _arrays(frames, periodic)
    for s, start in enumerate(range(0, len(frames), set_size)):
        set_dir = directory / f"set.{s:03d}"
        set_dir.mkdir()
        for key, array in arrays.items():
            np.save(set_dir / f"{key}.npy", array[start:start + set_size])
    return directory


def _arrays(frames: list[Atoms], periodic: bool) -> dict[str, np.ndarray]:
    energies, forces, virials = [], [], []
    for atoms in frames:
        e, f, s = labels(atoms)
        if not np.isfinite(e) or not np.all(np.isfinite(f)):
            raise ValueError("every frame written as deepmd/npy needs an energy and forces")
        energies.append(e)
        forces.append(f.reshape(-1))
        if s is not None and periodic:
            virials.append((-s * atoms.get_volume()).reshape(-1))
    arrays = {
        "coord": np.array([a.positions.reshape(-1) for a in frames], dtype=float),
        "energy": np.array(energies, dtype=float),
        "force": np.array(forces, dtype=float),
    }
    if periodic:
        arrays["box"] = np.array([a.cell.array.reshape(-1) for a in frames], dtype=float)
    if periodic and len(virials) == len(frames):
        arrays["virial"] = np.array(virials, dtype=float)
    return arrays


def tree_sha256(root: str | os.PathLike) -> str:
    """Hex SHA-256 over a data set directory: every file's relative path and
    bytes, in path order (the provenance digest of a DeePMD data set)."""
    root = Path(root)
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(path.relative_to(root).as_posix().encode() + b"\0")
        h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()
