"""Regenerate mlearn-si.json: frames 0, 65 and 159 of examples/si/data/train.xyz
(a Vacancy, a Surface and an Elastic cell) written back in the mlearn JSON
format by nnp.data, the inverse of the conversion that made train.xyz from
mlearn's data/Si/training.json (BSD-3-Clause, Copyright (c) 2019 Materials
Virtual Lab; see examples/si/data/README.md and LICENSE).

    python tests/data/make_mlearn_fixture.py [--force]

test_data.py checks that frame 0's virial_stress here equals the numbers
published in mlearn's training.json (its first entry), which pins the sign,
order and unit of the conversion independently of nnp.data.
"""

from __future__ import annotations

import sys
from pathlib import Path

import ase.io

from nnp.data import write_structures

HERE = Path(__file__).resolve().parent
SOURCE = HERE.parents[1] / "examples" / "si" / "data" / "train.xyz"
FRAMES = (0, 65, 159)


def main() -> None:
    frames = [ase.io.read(SOURCE, index=k) for k in FRAMES]
    for atoms in frames:
        atoms.info["tag"] = "train"
    write_structures(HERE / "mlearn-si.json", frames, "mlearn-json", overwrite="--force" in sys.argv)


if __name__ == "__main__":
    main()
