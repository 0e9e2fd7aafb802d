"""The isolated-atom energy of Si on the energy scale of the bundled data,
for `python -m nnp.train --isolated-atom-energy Si=E`.

The bundled data (DFT-PBE, VASP) hold no isolated atom, and absolute DFT
energies depend on the code and pseudopotential, so the atom cannot simply be
computed with Quantum Espresso and added. The cohesive energy, a difference,
transfers between codes to a few tens of meV:

    E_atom(data scale) = E_crystal(data) + E_coh(QE),
    E_coh(QE) = E_atom(QE, spin-polarised, 3P) - E_crystal(QE, diamond at a0)

E_crystal(data) is the lowest energy per atom of the data's `Elastic`
frames (unstrained diamond at the PBE lattice constant).

    python examples/si/isolated_atom_energy.py [--ecutwfc 30] [--box 12] [--kpts 8]

Needs pw.x and Si.pbe-rrkj.UPF (Debian: apt install quantum-espresso
quantum-espresso-data). About two minutes on two cores.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
PSEUDO_DIR = "/usr/share/espresso/pseudo"
PSEUDO = "Si.pbe-rrkj.UPF"


def qe_energy(atoms, directory: Path, ecutwfc: float, kpts, extra: dict) -> float:
    from ase.calculators.espresso import Espresso, EspressoProfile

    system = {"ecutwfc": ecutwfc, "occupations": "smearing", "smearing": "gaussian", "degauss": 0.005, **extra}
    atoms.calc = Espresso(
        profile=EspressoProfile(command="pw.x", pseudo_dir=PSEUDO_DIR), directory=str(directory),
        pseudopotentials={"Si": PSEUDO}, kpts=kpts,
        input_data={"control": {"calculation": "scf", "disk_io": "none", "outdir": "./tmp"},
                    "system": system, "electrons": {"conv_thr": 1e-8, "mixing_beta": 0.3}},
    )
    return atoms.get_potential_energy()


def main(argv=None) -> int:
    from ase import Atoms
    from ase.build import bulk

    from nnp.data import read_structures

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=str(HERE / "data" / "train.xyz"))
    p.add_argument("--ecutwfc", type=float, default=30.0, help="Ry (norm-conserving rrkj)")
    p.add_argument("--box", type=float, default=12.0, help="Å, edge of the atom's box")
    p.add_argument("--kpts", type=int, default=8, help="k-points per direction of the crystal")
    args = p.parse_args(argv)
    if shutil.which("pw.x") is None or not (Path(PSEUDO_DIR) / PSEUDO).is_file():
        print(f"error: needs pw.x and {PSEUDO_DIR}/{PSEUDO} "
              "(apt install quantum-espresso quantum-espresso-data)", file=sys.stderr)
        return 1

    frames = [a for a in read_structures(args.data) if a.info.get("config_type") == "Elastic"]
    if not frames:
        print(f"error: {args.data} has no Elastic frames", file=sys.stderr)
        return 1
    crystal = min(frames, key=lambda a: a.get_potential_energy() / len(a))
    e_data = crystal.get_potential_energy() / len(crystal)
    a0 = (crystal.get_volume() / len(crystal) * 8) ** (1 / 3)

    with tempfile.TemporaryDirectory() as tmp:
        e_bulk = qe_energy(bulk("Si", "diamond", a=a0), Path(tmp) / "bulk", args.ecutwfc,
                           (args.kpts,) * 3, {}) / 2
        # Off-centre and in a slightly non-cubic box, so no symmetry pins the p shell.
        b = args.box
        atom = Atoms("Si", positions=[[0.1, 0.2, 0.3]], cell=[b, 1.04 * b, 1.08 * b], pbc=True)
        e_atom = qe_energy(atom, Path(tmp) / "atom", args.ecutwfc, (1, 1, 1),
                           {"nspin": 2, "starting_magnetization(1)": 0.5, "tot_magnetization": 2})
    e_coh = e_atom - e_bulk
    print(f"data: lowest Elastic frame {e_data:.4f} eV/atom (a = {a0:.4f} Å)")
    print(f"QE PBE ({PSEUDO}, ecutwfc {args.ecutwfc:g} Ry): crystal {e_bulk:.4f} eV/atom, "
          f"spin-polarised atom {e_atom:.4f} eV, cohesive energy {e_coh:.4f} eV")
    print(f"isolated Si atom on the data's scale: {e_data + e_coh:.3f} eV")
    print(f"  python -m nnp.train --data {args.data} --output Si.nnp --isolated-atom-energy Si={e_data + e_coh:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
