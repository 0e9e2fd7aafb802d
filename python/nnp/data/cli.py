"""``python -m nnp.data summary FILE...``: what each structure file (or
directory of DeePMD-kit systems) holds and
every frame with a problem; exit status 1 if a file has a problem, 2 if one
cannot be read at all."""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from nnp.data.formats import PLAIN_XYZ_MESSAGE
from nnp.data.summary import FileSummary, format_summary, summarize


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="nnp data",
        description="Inspect labelled structure files (extxyz and other ASE formats, VASP vasprun.xml/OUTCAR, "
        "Quantum Espresso pw.x output, n2p2 input.data, mlearn JSON, DeePMD-kit deepmd/raw and deepmd/npy "
        "directories).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser(
        "summary",
        help="counts, elements, config types, label ranges; lists every problem frame",
        description="Print what each file holds and list every frame with a problem "
        "(missing or non-finite labels, arrays of the wrong length, duplicated atoms, "
        "unknown elements with --elements). Exit status 1 if any file has a problem.",
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="a structure file or a directory of DeePMD-kit systems")
    p.add_argument("--format", help="n2p2, mlearn-json, deepmd, deepmd/raw, deepmd/npy or an ASE format name "
                   "such as vasp-xml, vasp-out, espresso-out (default: from the content)")
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
        if _hint(s):
            print(_hint(s))
        if not s.ok:
            status = max(status, 1)
    return status


def _hint(s: FileSummary) -> str:
    """What to do when no frame has an energy and the file is (read as) XYZ."""
    if s.n_structures == 0 or s.energy_per_atom is not None:
        return ""
    if s.format == "xyz":
        return f"hint: {PLAIN_XYZ_MESSAGE}"
    if s.format == "extxyz":
        return ("hint: no frame has an energy: the file holds positions only (plain XYZ). Training needs labels: "
                "extended XYZ gives them in each comment line (energy=... and Properties=species:S:1:pos:R:3:"
                "forces:R:3), or give a DFT code's output (vasprun.xml, OUTCAR, pw.x output)")
    return ""
