"""The JSON of the mlearn benchmark (Zuo et al. 2020): reading and writing.

A file is a list of ``{"structure": <pymatgen Structure dict>, "outputs":
{"energy": eV, "forces": eV/Å, "virial_stress": kBar}, "num_atoms",
"group", ...}``; no pymatgen is needed. ``virial_stress`` is VASP's stress:
order xx yy zz xy yz xz, kBar, compression positive; it becomes the ASE
stress σ = −virial_stress[xx yy zz yz xz xy] · 0.1 GPa (checked against the
published Si training.json and examples/si/data/train.xyz, which was
converted from it). ``group`` becomes the config type.
"""

from __future__ import annotations

import json
from typing import Iterator, Sequence

import numpy as np
from ase import Atoms, units
from ase.calculators.singlepoint import SinglePointCalculator
from ase.data import atomic_numbers

from nnp.constants import KBAR_IN_GPA, VOIGT_I, VOIGT_J
from nnp.data.frames import Unreadable, labels, results, select

# ASE Voigt order xx yy zz yz xz xy, taken from VASP's xx yy zz xy yz xz.
_VASP_TO_ASE = [0, 1, 2, 4, 5, 3]
_ASE_TO_VASP = [0, 1, 2, 5, 3, 4]
_KBAR_IN_EV_PER_A3 = KBAR_IN_GPA * units.GPa


def iter_mlearn(path: str, index: str) -> Iterator[Atoms | Unreadable]:
    """The entries of an mlearn JSON file picked by the ASE index string `index`."""
    try:
        with open(path, encoding="utf-8") as f:
            docs = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        yield Unreadable(0, f"not valid JSON: {err}")
        return
    if not isinstance(docs, list):
        yield Unreadable(0, f"an mlearn JSON file is a list of entries, found a {type(docs).__name__}")
        return
    for k in select(len(docs), index) if docs else []:
        try:
            yield _parse_entry(docs[k])
        except (ValueError, TypeError, KeyError) as err:
            msg = f"missing key {err}" if isinstance(err, KeyError) else str(err)
            yield Unreadable(k, msg)


def _parse_entry(doc) -> Atoms:
    if not isinstance(doc, dict):
        raise ValueError(f"an entry must be a JSON object, found {type(doc).__name__}")
    for key in ("structure", "outputs"):
        if not isinstance(doc.get(key), dict):
            raise ValueError(f"entry has no {key!r} object")
    st, out = doc["structure"], doc["outputs"]
    sites = st.get("sites")
    if not isinstance(sites, list):
        raise ValueError("structure has no list of 'sites'")
    lattice = st.get("lattice")
    matrix = None
    if lattice is not None:
        matrix = np.array(lattice["matrix"], dtype=float)
        if matrix.shape != (3, 3):
            raise ValueError(f"lattice matrix has shape {matrix.shape}, expected (3, 3)")
        pbc = lattice.get("pbc", (True, True, True))
    else:  # a pymatgen Molecule: no cell
        pbc = (False, False, False)
    symbols, positions = [], []
    for i, site in enumerate(sites):
        species = site["species"]
        if len(species) != 1 or float(species[0].get("occu", 1)) != 1.0:
            raise ValueError(f"site {i} is a disordered site ({species}); only ordered structures are supported")
        sym = species[0]["element"]
        if sym not in atomic_numbers:
            raise ValueError(f"site {i}: unknown element {sym!r}")
        symbols.append(sym)
        if "xyz" in site:
            positions.append([float(x) for x in site["xyz"]])
        elif matrix is not None and "abc" in site:
            positions.append((np.array(site["abc"], dtype=float) @ matrix).tolist())
        else:
            raise ValueError(f"site {i} has no coordinates ('xyz' or 'abc')")
    num_atoms = doc.get("num_atoms")
    if num_atoms is not None and int(num_atoms) != len(sites):
        raise ValueError(f"num_atoms is {num_atoms} but the structure has {len(sites)} sites")
    atoms = Atoms(symbols, positions=np.array(positions, dtype=float).reshape(-1, 3), cell=matrix, pbc=pbc)
    found = {}
    if out.get("energy") is not None:
        found["energy"] = float(out["energy"])
    if out.get("forces") is not None:
        try:
            found["forces"] = np.array(out["forces"], dtype=float)
        except ValueError:
            raise ValueError("forces are not a rectangular array of numbers") from None
        if found["forces"].size == 0:  # "forces": [] of an empty structure
            found["forces"] = found["forces"].reshape(0, 3)
    vs = out.get("virial_stress")
    if vs is not None:
        vs = np.array(vs, dtype=float)
        if vs.shape != (6,):
            raise ValueError(f"virial_stress has shape {vs.shape}, expected 6 numbers (xx yy zz xy yz xz, kBar)")
        found["stress"] = -vs[_VASP_TO_ASE] * _KBAR_IN_EV_PER_A3
    atoms.calc = SinglePointCalculator(atoms, **found)
    if doc.get("group") is not None:
        atoms.info["config_type"] = str(doc["group"])
    for key in ("description", "tag"):
        if doc.get(key) is not None:
            atoms.info[key] = str(doc[key])
    return atoms


def mlearn_text(structures: Sequence[Atoms]) -> str:
    """`structures` as mlearn JSON text (periodic cells as pymatgen Structures,
    the others as Molecules)."""
    docs = []
    for atoms in structures:
        symbols = atoms.get_chemical_symbols()
        periodic = atoms.cell.rank == 3
        sites = []
        frac = atoms.get_scaled_positions(wrap=False) if periodic else None
        for i, (sym, xyz) in enumerate(zip(symbols, atoms.positions)):
            site = {"species": [{"element": sym, "occu": 1}]}
            if periodic:
                site["abc"] = [float(x) for x in frac[i]]
            site["xyz"] = [float(x) for x in xyz]
            site["label"] = sym
            sites.append(site)
        if periodic:
            structure = {
                "@module": "pymatgen.core.structure", "@class": "Structure", "charge": None,
                "lattice": {"matrix": atoms.cell.array.tolist(), "pbc": [bool(p) for p in atoms.pbc]},
                "sites": sites,
            }
        else:
            structure = {"@module": "pymatgen.core.structure", "@class": "Molecule", "charge": 0.0,
                         "spin_multiplicity": None, "sites": sites}
        r = results(atoms)
        outputs = {}
        if "energy" in r:
            outputs["energy"] = float(r["energy"])
        if "forces" in r:
            outputs["forces"] = np.asarray(r["forces"], dtype=float).tolist()
        if r.get("stress") is not None:
            _, _, stress = labels(atoms)
            voigt = stress[VOIGT_I, VOIGT_J]
            outputs["virial_stress"] = (-voigt[_ASE_TO_VASP] / _KBAR_IN_EV_PER_A3).tolist()
        doc = {"structure": structure, "outputs": outputs, "num_atoms": len(atoms)}
        if "config_type" in atoms.info:
            doc["group"] = str(atoms.info["config_type"])
        for key in ("description", "tag"):
            if key in atoms.info:
                doc[key] = str(atoms.info[key])
        docs.append(doc)
    return json.dumps(docs) + "\n"
