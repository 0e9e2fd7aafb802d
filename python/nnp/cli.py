"""The `nnp` command (and `python -m nnp`): one entry point whose
subcommands are the package's command lines.

    nnp train --data Si.xyz -o Si.nnp
    nnp evaluate --potential Si.nnp --data test.xyz --detail out/Si
    nnp data summary Si.xyz
    nnp study --data Si.xyz -o study --quick
    nnp convert n2p2 DIR -o Si.nnp
    nnp dft aimd --protocol crystal -o aimd.xyz
    nnp committee --potential a.nnp b.nnp -o mean.nnp
    nnp learn --quick -o learn-run

Each subcommand is the `main(argv)` of its module, so `nnp train ...` and
`python -m nnp.train ...` are the same program. Options shared by all:
`-o/--output` names what is written, `--force` overwrites existing outputs,
`-p/--potential FILE` names a potential file a command reads (the file
alone, without the option, is accepted too).
"""

from __future__ import annotations

import importlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from nnp import __version__


@dataclass(frozen=True)
class Subcommand:
    name: str
    module: str  # imported only when the subcommand runs: train and study pull in torch
    summary: str


SUBCOMMANDS = (
    Subcommand("train", "nnp.train.cli", "train a potential on labelled structures and write a potential file"),
    Subcommand("evaluate", "nnp.evaluate", "energy, force and stress errors of a potential file on labelled data"),
    Subcommand("data", "nnp.data.cli", "inspect labelled structure files (nnp data summary FILE...)"),
    Subcommand("study", "nnp.study.cli", "the descriptor-length study: train, run LAMMPS, write a report"),
    Subcommand("convert", "nnp.convert.cli", "convert a potential from another code (nnp convert n2p2 DIR -o F)"),
    Subcommand("dft", "nnp.dft", "DFT training data with Quantum Espresso (nnp dft aimd ...)"),
    Subcommand("committee", "nnp.committee", "write the mean of several potentials as one potential file"),
    Subcommand("learn", "nnp.learn.cli", "active learning: committee MD, pw.x labels, retrain (nnp learn CONFIG -o DIR)"),
)


def check_output_directory(path: str | os.PathLike) -> Path:
    """Check, before any work, that directory `path` exists or can be made:
    its nearest existing ancestor must be a writable directory. Raises
    ValueError with the message a command prints."""
    path = Path(path)
    existing = next((p for p in (path, *path.parents) if p.exists()), Path("."))
    if not existing.is_dir():
        what = "exists and is not a directory" if existing == path else f"is a file, so {path} cannot be made"
        raise ValueError(f"{existing} {what}")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"cannot write in {existing} (no permission)")
    return path


def check_output_parent(path: Path) -> None:
    """Refuse, before any work, an output file whose directory cannot be made
    (ValueError with the message a command prints)."""
    try:
        check_output_directory(path.parent)
    except ValueError as err:
        raise ValueError(f"cannot write {path}: {err}") from None


def prepare_output_file(path: str | os.PathLike, overwrite: bool) -> Path:
    """Check an output file before any work is done: refuse a directory or
    an existing file (without `overwrite`); create a missing parent
    directory, as --report does. Raises FileExistsError or ValueError, whose
    message is the error a command prints."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a directory; give a file name")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; refusing to overwrite it (use --force)")
    check_output_parent(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(f"cannot create the directory of {path}: {err.strerror or err}") from None
    return path


def usage() -> str:
    width = max(len(s.name) for s in SUBCOMMANDS)
    lines = [
        "usage: nnp [--version] [-h] COMMAND [ARGS...]",
        "",
        "Behler-Parrinello neural network potentials (metal units: eV, Å).",
        "",
        "commands:",
        *(f"  {s.name:<{width}}  {s.summary}" for s in SUBCOMMANDS),
        "",
        "options:",
        "  -h, --help  show this help and exit",
        "  --version   print the version and exit",
        "",
        "`nnp COMMAND --help` shows a command's options. Every command writing a file takes -o/--output; "
        "--force overwrites existing outputs; a potential file read is given as -p/--potential FILE.",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(usage())
        return 0 if args else 2
    if args[0] == "--version":
        print(f"nnp {__version__}")
        return 0
    by_name = {s.name: s for s in SUBCOMMANDS}
    command = by_name.get(args[0])
    if command is None:
        print(f"nnp: unknown command {args[0]!r}; commands: {', '.join(by_name)} (nnp --help)", file=sys.stderr)
        return 2
    try:
        module = importlib.import_module(command.module)
        return module.main(args[1:])
    except KeyboardInterrupt:  # commands with work to keep say how to resume; the others stop here, quietly
        print(f"\nnnp {command.name}: interrupted", file=sys.stderr)
        return 130
