"""``python -m nnp.convert n2p2 DIR -o OUT.nnp``: the command line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from nnp.cli import prepare_output_file
from nnp.convert.n2p2 import UnitFactors, convert_n2p2
from nnp.io import potential_file as pf


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="nnp convert",
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
        prepare_output_file(output, args.force)
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
