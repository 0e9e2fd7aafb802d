"""Training-side featurisation speed: descriptors and their derivatives.

Runs `DescriptorSet.featurize(atoms, derivatives=True)` — what training uses
(G and ∂G/∂r_ij for every atom and neighbour, by the C++ core) — over every
structure of a data set (default: examples/si/data/train.xyz) for the study's
presets, and prints structures/s and atoms/s (the best of --repeat passes;
CPU time of this process and wall time).

    python benchmarks/featurize_speed.py [--presets A52 A52-wide] [--repeat 3] [--data FILE]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ase.io import read

from nnp import descriptors as D

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "examples" / "si" / "data" / "train.xyz"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=DATA, help="extended-XYZ file (default: the Si example set)")
    p.add_argument("--presets", nargs="*", default=["A52", "A52-wide"])
    p.add_argument("--repeat", type=int, default=3, help="passes over the data per preset (best is printed)")
    args = p.parse_args(argv)
    if not args.data.is_file():
        p.error(f"data file {args.data} not found")
    if args.repeat < 1:
        p.error("--repeat must be >= 1")

    structures = read(args.data, index=":")
    n_atoms = sum(len(a) for a in structures)
    symbols = sorted({s for a in structures for s in a.get_chemical_symbols()})
    print(f"{args.data.name}: {len(structures)} structures, {n_atoms} atoms; best of {args.repeat} passes")
    print(f"{'preset':<10}{'structures/s':>14}{'atoms/s':>12}{'(wall atoms/s)':>16}{'MB of dG/dr':>13}")
    for name in args.presets:
        ds = D.preset(name, symbols)
        best_cpu = best_wall = float("inf")
        size = 0
        for _ in range(args.repeat):
            c0, w0 = time.process_time(), time.perf_counter()
            size = 0
            for atoms in structures:
                feats = ds.featurize(atoms, derivatives=True)
                size += sum(f["dG_dr"].nbytes for f in feats.values())
            best_cpu = min(best_cpu, time.process_time() - c0)
            best_wall = min(best_wall, time.perf_counter() - w0)
        print(f"{name:<10}{len(structures) / best_cpu:>14.1f}{n_atoms / best_cpu:>12.0f}"
              f"{n_atoms / best_wall:>16.0f}{size / 1e6:>13.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
