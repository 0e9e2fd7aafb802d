"""Which reader a structure file goes to, and the one entry point of each
direction: `read_structures` (checked frames) and `write_structures`.

n2p2 ``input.data`` (`nnp.data.n2p2`), mlearn JSON (`nnp.data.mlearn`) and
DeePMD-kit systems (`nnp.data.deepmd`, directories) are read here; every other
format goes to ASE (extxyz, VASP vasprun.xml and OUTCAR, Quantum Espresso
pw.x output, ...). Without `format=` the content decides: a directory with
``type.raw`` in it or below is DeePMD-kit data; in a file, ``begin`` first
means n2p2, a JSON list of entries with ``structure`` and ``outputs`` means
mlearn, VASP's and pw.x's own headers name theirs, and anything else is left
to ASE's guess. CP2K output is refused with a message (ASE reads no energies
or forces from it).
"""

from __future__ import annotations

import itertools
import os
import re
from typing import Iterator, Sequence

import ase.io
from ase import Atoms
from ase.io.formats import UnknownFileTypeError, filetype

from nnp.data.deepmd import Layout, is_deepmd, iter_deepmd, tree_sha256, write_deepmd_npy
from nnp.data.frames import Unreadable, check_frame
from nnp.data.mlearn import iter_mlearn, mlearn_text
from nnp.data.n2p2 import iter_n2p2, n2p2_text
from nnp.io.atomic import atomic_write_text, file_sha256

# Read here; any other format name goes to ASE. "deepmd": each system's layout from its files.
FORMATS = ("n2p2", "mlearn-json", "deepmd", Layout.RAW.value, Layout.NPY.value)
WRITTEN_FORMATS = ("n2p2", "mlearn-json", Layout.NPY.value)
_FORMAT_ALIASES = {
    "n2p2": "n2p2", "input.data": "n2p2", "mlearn-json": "mlearn-json", "mlearn": "mlearn-json",
    "deepmd": "deepmd", "deepmd/raw": Layout.RAW.value, "deepmd/npy": Layout.NPY.value,
    "deepmd-raw": Layout.RAW.value, "deepmd-npy": Layout.NPY.value,
    "cp2k": "cp2k-output", "cp2k-out": "cp2k-output", "cp2k-output": "cp2k-output",
}
# What an unreadable or unknown file's message tells the user to do.
KNOWN_FORMATS = (
    "nnp reads extxyz (and other ASE formats that carry energies and forces), VASP vasprun.xml and OUTCAR, "
    "Quantum Espresso pw.x output, n2p2 input.data, mlearn JSON and DeePMD-kit directories; "
    "name the format with --format (e.g. --format extxyz, --format n2p2, --format vasp-xml)"
)
PLAIN_XYZ_MESSAGE = (
    "format xyz is plain XYZ, which holds no energies, forces or stress; extended XYZ does: "
    "use --format extxyz, or leave --format out"
)
CP2K_MESSAGE = (
    "CP2K output: ASE reads no energies or forces from CP2K's output (only its restart and DCD "
    "trajectory files, which hold no labels), and nnp has no CP2K reader. Convert it first, e.g. with "
    "dpdata: dpdata.LabeledSystem(FILE, fmt='cp2k/output').to('deepmd/npy', DIR), then read DIR"
)


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
    one of them. `format`: "n2p2", "mlearn-json", "deepmd" (a directory of
    DeePMD-kit systems; "deepmd/raw" or "deepmd/npy" forces the layout) or any
    ASE format name (default: from the content, then ASE's guess). The first
    bad frame raises a ValueError naming the file and the frame.
    """
    path = check_path(path)
    frames: list[Atoms] = []
    for item in iter_frames(path, format, index):
        if isinstance(item, Unreadable):
            raise ValueError(f"{path}: frame {item.frame}: cannot be read: {item.message}")
        try:
            check_frame(item, path, len(frames), elements)
        except ValueError as err:
            if format is not None and normalise_format(format) == "xyz":
                raise ValueError(f"{err}; {PLAIN_XYZ_MESSAGE}") from None
            raise
        frames.append(item)
    if not frames:
        raise ValueError(f"{path}: no structures found")
    return frames


def check_path(path: str | os.PathLike) -> str:
    """`path` as a string, if it is a non-empty file or a directory of DeePMD-kit
    systems (else a clear error)."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"structure file {path} does not exist")
    if os.path.isdir(path):
        if is_deepmd(path):
            return path
        raise ValueError(f"{path} is a directory, not a structure file (nor DeePMD-kit data: no type.raw in it)")
    if os.path.getsize(path) == 0:
        raise ValueError(f"{path}: the file is empty (no structures)")
    return path


def iter_frames(path: str | os.PathLike, format: str | None = None, index: str = ":") -> Iterator[Atoms | Unreadable]:
    """The frames of `path` as Atoms (unchecked), or `Unreadable` for a frame
    that cannot be parsed. In n2p2 and mlearn files every frame is parsed on
    its own and reading goes on after a bad one; ASE's readers stop at the
    first unreadable frame (their position in the file is lost). DeePMD-kit
    frames are parsed one by one too (a bad npy array spoils its set)."""
    path = os.fspath(path)
    fmt = normalise_format(format) if format is not None else detect_format(path)
    if fmt == "cp2k-output":
        raise ValueError(f"{path}: {CP2K_MESSAGE}")
    if fmt == "n2p2":
        yield from iter_n2p2(path, index)
    elif fmt == "mlearn-json":
        yield from iter_mlearn(path, index)
    elif fmt in ("deepmd", Layout.RAW.value, Layout.NPY.value):
        layout = None if fmt == "deepmd" else Layout(fmt)
        yield from iter_deepmd(path, layout, index)
    else:
        yield from _iter_ase(path, fmt, index)


def normalise_format(format: str) -> str:
    """Our name of a format name or alias ("input.data" is "n2p2"); other names
    pass through to ASE."""
    return _FORMAT_ALIASES.get(format.lower(), format)


def detect_format(path: str | os.PathLike) -> str | None:
    """Our name, or ASE's for VASP and pw.x output, when the content says so,
    else None (ASE guesses from the name and content). Reading the headers
    here lets a renamed vasprun.xml or OUTCAR be found."""
    if os.path.isdir(path):
        return "deepmd" if is_deepmd(path) else None
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
    return _detect_dft_output(head)


def _detect_dft_output(head: str) -> str | None:
    start = head.lstrip()
    if start.startswith("<?xml") and "<modeling>" in head and '"program"' in head and "vasp" in head:
        return "vasp-xml"
    if start.startswith("vasp."):
        return "vasp-out"
    if "Program PWSCF" in head:
        return "espresso-out"
    if "CP2K|" in head:
        return "cp2k-output"
    return None


def _iter_ase(path: str, format: str | None, index: str) -> Iterator[Atoms | Unreadable]:
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
    except UnknownFileTypeError as err:
        what = f"unknown format {format!r}" if format else f"the file type ({err}) is not one nnp knows"
        raise ValueError(f"{path}: {what}. {KNOWN_FORMATS}") from None
    except Exception as err:  # ASE raises many types for malformed input
        where = _extxyz_problem(path, count) if format in (None, "extxyz") and _is_xyz(path) else None
        yield Unreadable(count, f"{where} (ASE: {err})" if where else f"{err}")


def _is_xyz(path: str) -> bool:
    try:
        return filetype(path, guess=False) == "extxyz"
    except Exception:  # ASE's guess fails in many ways on unreadable files
        return False


def _extxyz_problem(path: str, frame: int) -> str | None:
    """Where frame `frame` of an extxyz file breaks ("line L: ..."), found by
    reading the layout ASE expects: atom count, comment with Properties, one
    line per atom with the declared number of columns. ASE's own errors give
    no line number. None when the layout looks right."""
    with open(path, encoding="utf-8", errors="replace") as f:
        numbered = enumerate(f, start=1)
        for k in range(frame + 1):
            ln, head = next(numbered, (None, ""))
            if ln is None:
                return None
            try:
                n = int(head.split()[0])
            except (IndexError, ValueError):
                return f"line {ln}: expected the atom count of frame {k}, found {head.strip()[:40]!r}"
            ln, comment = next(numbered, (ln, None))
            if comment is None:
                return f"line {ln}: the file ends after the atom count of frame {k}"
            match = re.search(r"Properties=(\S+)", comment, flags=re.IGNORECASE)
            props = match.group(1) if match else "species:S:1:pos:R:3"
            try:
                columns = sum(int(x) for x in props.split(":")[2::3])
            except ValueError:
                return f"line {ln}: cannot read Properties={props}"
            read = 0
            for ln, line in itertools.islice(numbered, n):
                if k == frame and len(line.split()) != columns:
                    return (f"line {ln}: atom {read} of frame {k} has {len(line.split())} columns where "
                            f"Properties={props} declares {columns}")
                read += 1
            if read < n:
                return f"line {ln}: the file ends after {read} of the {n} atom lines of frame {k}"
    return None


def write_structures(path: str | os.PathLike, structures: Sequence[Atoms], format: str, overwrite: bool = False) -> None:
    """Write labelled structures as "n2p2" (input.data; no stress, which the
    format cannot hold) or "mlearn-json", atomically; an existing file is only
    replaced with `overwrite`. "deepmd/npy" writes a directory of systems
    (`nnp.data.deepmd.write_deepmd_npy`), which must not exist or be empty;
    `overwrite` does not apply to it."""
    fmt = normalise_format(format)
    if fmt not in WRITTEN_FORMATS:
        raise ValueError(f"unknown format {format!r}; nnp writes {', '.join(WRITTEN_FORMATS)} "
                         "(use ase.io.write for others)")
    path = os.fspath(path)
    if fmt == Layout.NPY.value:
        write_deepmd_npy(path, structures)
        return
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
    text = n2p2_text(structures) if fmt == "n2p2" else mlearn_text(structures)
    atomic_write_text(path, text)


def data_sha256(path: str | os.PathLike) -> str:
    """The provenance digest of a data set: a file's SHA-256, or for a
    directory of DeePMD-kit systems the digest over its files
    (`nnp.data.deepmd.tree_sha256`)."""
    return tree_sha256(path) if os.path.isdir(path) else file_sha256(path)
