"""nnp: Behler–Parrinello neural network potentials.

Training in PyTorch (`python -m nnp.train`), one C++ core for descriptors,
networks, forces and virial (`nnp._core`), an ASE calculator and a LAMMPS pair
style (`pair_style nnp`). Units are LAMMPS metal units everywhere: eV, Å.

Importing nnp does not import torch; only training needs it.
"""

__version__ = "0.1.0"

__all__ = ["NNPCalculator", "__version__"]


def __getattr__(name):
    # Lazy: the calculator pulls in ASE and the compiled core.
    if name == "NNPCalculator":
        from nnp.calculator import NNPCalculator

        return NNPCalculator
    raise AttributeError(f"module 'nnp' has no attribute {name!r}")
