"""Convert potentials from other codes into an nnp potential file.

    python -m nnp.convert n2p2 DIR -o OUT.nnp [--cflength X] [--cfenergy Y] [--force]

n2p2 (https://github.com/CompPhysVienna/n2p2) keeps a short-range HDNNP in a
directory: ``input.nn`` (settings and symmetry functions), ``scaling.data``
(symmetry-function statistics) and one ``weights.ZZZ.data`` per element (ZZZ
the atomic number). This package reads those files (its own parser; no n2p2
code: `n2p2_settings`, `n2p2_scaling`, `n2p2_weights`) and `n2p2` writes the
same model in our format (docs/potential-format.md).

The n2p2 conventions the conversion relies on, as n2p2 implements them:

* Units. The model works in its own units (often Bohr and Hartree). With
  ``--cflength`` and ``--cfenergy`` meaning what they mean for n2p2's LAMMPS
  ``pair_style hdnnp``: length in the model = Å × cflength, energy in the
  model = eV × cfenergy. So r_c and R_s are divided by cflength, η is
  multiplied by cflength², and the network output is divided by cfenergy.
* Data-set normalisation (``mean_energy``, ``conv_energy``, ``conv_length``,
  all three or none): the symmetry-function parameters in ``input.nn`` are in
  the model's physical units (n2p2 converts them internally, and the
  descriptor values G do not change), the network output is
  (E_atom − mean_energy)·conv_energy, so E_atom = NN/conv_energy + mean_energy.
* ``atom_energy E e0`` is added to every atom of element E, in the model's
  physical energy unit (after undoing the normalisation).
* Symmetry functions are *sorted* by n2p2 before they become network inputs
  (by type, r_c, η, R_s, then ζ, λ and the neighbour elements); the rows of
  ``scaling.data`` and the network inputs follow that sorted order, not the
  order of the lines in ``input.nn``. Elements are ordered by atomic number.
* ``scaling.data`` columns: element index, function index (both 1-based),
  G_min, G_max, G_mean, G_sigma. The network input is
    scale_symmetry_functions:        S_min + (S_max−S_min)(G−G_min)/(G_max−G_min)
    center_symmetry_functions:       G − G_mean
    both of them:                    S_min + (S_max−S_min)(G−G_mean)/(G_max−G_min)
    scale_symmetry_functions_sigma:  S_min + (S_max−S_min)(G−G_mean)/G_sigma
    none:                            G
  (S_min, S_max from scale_min_short/scale_max_short, default 0 and 1), each
  of which is x = (G − center)/width in our format.
* ``weights.ZZZ.data``: first column, layer by layer: for each neuron j of the
  previous layer, the weights from j to every neuron k of this layer; then the
  biases of this layer. With ``normalize_nodes`` every neuron's summed input
  (weights·inputs + bias) is divided by its number of inputs.
* The output layer is always linear (n2p2 ignores the last letter of
  ``global_activation_short``).
* Types: radial 2 = our G2; angular 3 (narrow, with the R_jk terms and the R_s
  shift applied to all three distances) = our G4; angular 9 (wide) = our G5;
  both with the j<k half sum (``angular_sum half``).
* Cutoff: ``cutoff_type 1`` is ½[cos(πr/r_c)+1] (with the inner-cutoff
  parameter α = 0), ``cutoff_type 2`` is tanh³(1 − r/r_c) (n2p2 "tanhu"),
  ``cutoff_type 3`` is c·tanh³(1 − r/r_c) with c = 1/tanh³(1): our tanh3, with
  the factor c^k (k = 1, 3, 2 cutoff factors for types 2, 3, 9) moved into
  the scaling, since n2p2's G is then c^k times ours.
"""

from __future__ import annotations

from nnp.convert.cli import main, parse_args
from nnp.convert.n2p2 import UnitFactors, convert_n2p2
from nnp.convert.n2p2_scaling import ScalingRow, convert_scaling, read_scaling_data
from nnp.convert.n2p2_settings import (
    ACTIVATIONS,
    ATOMIC_NUMBER,
    CUTOFF_TYPES,
    TANH_PRE,
    N2p2Error,
    N2p2Settings,
    Normalization,
    ScalingKind,
    ScalingMode,
    SymFunc,
    read_input_nn,
)
from nnp.convert.n2p2_weights import read_weights, weights_path

__all__ = [
    "ACTIVATIONS",
    "ATOMIC_NUMBER",
    "CUTOFF_TYPES",
    "TANH_PRE",
    "N2p2Error",
    "N2p2Settings",
    "Normalization",
    "ScalingKind",
    "ScalingMode",
    "ScalingRow",
    "SymFunc",
    "UnitFactors",
    "convert_n2p2",
    "convert_scaling",
    "main",
    "parse_args",
    "read_input_nn",
    "read_scaling_data",
    "read_weights",
    "weights_path",
]
