"""How a potential binds far from the training data: cohesive energy and
the energy of a uniformly stretched diamond crystal.

    python benchmarks/cohesion.py --potential Si.nnp [--potential other.nnp ...]
        [--reference-cohesive-energy 4.544]

For each potential (through `nnp.NNPCalculator`, i.e. the C++ core) it prints
E_coh = E(isolated atom) − E(diamond at its 0 K lattice constant)/atom and
E(a) − E(a0) per atom for a from a0 to 12 Å, and whether E(a) rises
monotonically to the isolated-atom limit. A model that binds too weakly
(small E_coh) or whose E(a) turns down again lets a hot liquid boil at
1 atm (docs/robustness.md). The default reference, 4.544 eV, is the QE
PBE value of examples/si/isolated_atom_energy.py.
"""

from __future__ import annotations

import argparse
import math
import sys

import numpy as np
from ase.build import bulk

from nnp import NNPCalculator
from nnp.analysis import properties as props
from nnp.data import isolated_atom


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--potential", action="append", required=True)
    p.add_argument("--element", default="Si")
    p.add_argument("--reference-cohesive-energy", type=float, default=4.544, help="eV (QE PBE for Si)")
    args = p.parse_args(argv)

    scales = [1.0, 1.05, 1.1, 1.15, 1.2, 1.3, 1.4, 1.5, 1.6, 1.8, 2.0, 2.2]
    for path in args.potential:
        a0 = props.relax_lattice(props.Pair.nnp(path, args.element), 5.43, 1).a
        calc = NNPCalculator(path)

        def energy(atoms) -> float:
            atoms.calc = calc
            return atoms.get_potential_energy() / len(atoms)

        e0 = energy(bulk(args.element, "diamond", a=a0, cubic=True))
        e_atom = energy(isolated_atom(args.element, math.nan))  # its label is replaced by the calculator
        e = np.array([energy(bulk(args.element, "diamond", a=a0 * s, cubic=True)) for s in scales])
        rises = bool(np.all(np.diff(e) > -1e-6)) and e_atom >= e.max() - 1e-6
        print(f"{path}: a0 {a0:.4f} Å, cohesive energy {e_atom - e0:.3f} eV "
              f"(reference {args.reference_cohesive_energy:.3f}), E(a) rises monotonically to the atom: "
              f"{'yes' if rises else 'NO'}")
        print("  a (Å)     " + " ".join(f"{a0 * s:6.2f}" for s in scales) + "   atom")
        print("  E-E0 (eV) " + " ".join(f"{x - e0:6.3f}" for x in e) + f" {e_atom - e0:6.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
