"""Per-atom cost of the C++ kernel (descriptor + network + forces), for profiling.

Evaluates energy and forces of a thermally displaced diamond Si cell
(n×n×n cubic cells, default 4: 512 atoms; Gaussian displacements of 0.08 Å,
about 600 K) through `nnp._core.Potential.evaluate` — the same per-atom code
(`nnp::Potential::atom_energy`) that `pair_style nnp` runs — with untrained
models of the study's presets, and prints the time per atom (the best of
--repeat evaluations; CPU time of this process, which unlike wall time does
not count the time other processes on a shared machine take). Under
callgrind, count only the kernel, and divide by the number of atoms:

    valgrind --tool=callgrind --collect-atstart=no \\
        "--toggle-collect=nnp::Potential::atom_energy*" \\
        python benchmarks/kernel_profile.py --presets A52 --repeat 1
    callgrind_annotate callgrind.out.<pid> | head

Potentials are written to --workdir (kept between runs; default a cache
directory under the system's temporary directory).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from ase.build import bulk

from nnp import _core

sys.path.insert(0, str(Path(__file__).resolve().parent))
from md_speed import untrained_potential  # noqa: E402


def displaced_diamond(cells: int, sigma: float, seed: int = 7):
    atoms = bulk("Si", "diamond", a=5.43, cubic=True).repeat((cells, cells, cells))
    rng = np.random.default_rng(seed)
    atoms.positions += rng.normal(scale=sigma, size=atoms.positions.shape)
    return atoms


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--presets", nargs="*", default=["A52", "A52-wide"])
    p.add_argument("--cells", type=int, default=4, help="n×n×n cubic cells (default 4: 512 atoms)")
    p.add_argument("--sigma", type=float, default=0.08, help="displacement per coordinate, Å")
    p.add_argument("--repeat", type=int, default=5, help="evaluations per preset (best time is printed)")
    p.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "nnp-kernel-profile")
    args = p.parse_args(argv)

    args.workdir.mkdir(parents=True, exist_ok=True)
    atoms = displaced_diamond(args.cells, args.sigma)
    positions = np.ascontiguousarray(atoms.positions)
    elements = np.zeros(len(atoms), dtype=np.int32)
    cell = np.ascontiguousarray(atoms.cell.array)
    print(f"{len(atoms)} atoms, {args.repeat} evaluation(s) per preset")
    for preset in args.presets:
        pot = _core.Potential(str(untrained_potential(preset, args.workdir)))
        best_cpu = best_wall = float("inf")
        for _ in range(args.repeat):
            c0, w0 = time.process_time(), time.perf_counter()
            pot.evaluate(positions, elements, cell, [True] * 3, False)
            best_cpu = min(best_cpu, time.process_time() - c0)
            best_wall = min(best_wall, time.perf_counter() - w0)
        n = len(atoms)
        print(f"{preset:<10} {best_cpu / n * 1e6:8.2f} µs/atom CPU, {best_wall / n * 1e6:8.2f} wall "
              "(energy + forces, incl. neighbour list)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
