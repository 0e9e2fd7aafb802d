"""An n2p2 potential directory as our PotentialData: units, normalisation,
scaling and the cutoff constant folded into the model (see `nnp.convert`)."""

from __future__ import annotations

import datetime
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import nnp
from nnp.convert.n2p2_scaling import convert_scaling, read_scaling_data
from nnp.convert.n2p2_settings import N2p2Error, N2p2Settings, Normalization, read_input_nn
from nnp.convert.n2p2_weights import read_weights, weights_path
from nnp.descriptors import DescriptorSet
from nnp.io import potential_file as pf
from nnp.io.atomic import file_sha256


@dataclass(frozen=True)
class UnitFactors:
    """n2p2 pair_style hdnnp's factors: model length = Å × cflength, model
    energy = eV × cfenergy."""

    cflength: float = 1.0
    cfenergy: float = 1.0

    def check(self) -> None:
        for name in ("cflength", "cfenergy"):
            x = getattr(self, name)
            if not (math.isfinite(x) and x > 0):
                raise N2p2Error(f"--{name} must be a positive number, got {x}")


def convert_n2p2(directory: str | Path, units: UnitFactors = UnitFactors()) -> pf.PotentialData:
    """Read an n2p2 potential directory and return it as our PotentialData
    (metal units)."""
    units.check()
    directory = Path(directory)
    if not directory.is_dir():
        raise N2p2Error(f"{directory}: not a directory (expected an n2p2 potential directory)")
    settings = read_input_nn(directory / "input.nn")
    scaling_rows = read_scaling_data(directory / "scaling.data", settings)
    norm = settings.normalization or Normalization()

    # The model's energy unit per eV is cfenergy; with normalisation the
    # network output must also be divided by conv_energy. The output layer is
    # linear, so scaling its weights and bias scales the output exactly.
    output_factor = 1.0 / (units.cfenergy * norm.conv_energy)

    functions = {e: tuple(sf.converted(units.cflength) for sf in settings.functions[e]) for e in settings.elements}
    try:
        descriptors = DescriptorSet(settings.elements, functions, settings.cutoff_function, "half",
                                    settings.cutoff_alpha)
    except ValueError as err:
        raise N2p2Error(f"{settings.path}: {err}") from None

    models = {}
    files = [directory / "input.nn", directory / "scaling.data"]
    for e in settings.elements:
        sizes = [len(functions[e]), *settings.hidden_nodes[e], 1]
        wpath = weights_path(directory, e)
        files.append(wpath)
        raw = read_weights(wpath, sizes)
        acts = [*settings.hidden_activations, "linear"]
        layers = []
        for i, ((w, b), act) in enumerate(zip(raw, acts)):
            if settings.normalize_nodes:
                # n2p2 divides each neuron's summed input (incl. bias) by its fan-in.
                w, b = w / w.shape[1], b / w.shape[1]
            if i == len(raw) - 1:
                w, b = w * output_factor, b * output_factor
            layers.append(pf.Layer(w, b, act))
        scaling = convert_scaling(scaling_rows[e], settings.scaling, directory / "scaling.data")
        if settings.cutoff_prefactor != 1.0:
            # n2p2's G = c^k G_ours: x = (c^k G_ours − center)/width = (G_ours − center/c^k)/(width/c^k).
            c = np.array([settings.cutoff_prefactor**sf.cutoff_factors for sf in settings.functions[e]])
            scaling = pf.Scaling(scaling.center / c, scaling.width / c, scaling.min / c, scaling.max / c)
        reference = (settings.atom_energy[e] + norm.mean_energy) / units.cfenergy
        models[e] = pf.ElementModel(reference, scaling, layers)

    pot = pf.PotentialData(descriptors, models, _provenance(directory, files, settings, units))
    try:
        pot.check()
    except ValueError as err:
        raise N2p2Error(f"{directory}: the converted potential is invalid: {err}") from None
    return pot


def _provenance(directory: Path, files: list[Path], settings: N2p2Settings, units: UnitFactors) -> list[str]:
    lines = [
        f"converted from n2p2 by nnp {nnp.__version__} (python -m nnp.convert n2p2) on "
        f"{datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M:%S UTC')}",
        f"source directory: {directory.resolve()}",
    ]
    for f in files:
        lines.append(f"  {f.name} sha256 {file_sha256(f)}")
    lines.append(f"units: cflength {units.cflength!r} (model length per Å), cfenergy {units.cfenergy!r} "
                 "(model energy per eV), as in n2p2's pair_style hdnnp")
    s = settings.scaling
    lines.append(f"n2p2 scaling mode {s.kind.value}" + (f" (Smin {s.smin:g}, Smax {s.smax:g})" if s.kind.uses_range
                                                       else ""))
    if settings.normalization:
        n = settings.normalization
        lines.append(f"n2p2 normalisation: mean_energy {n.mean_energy!r} conv_energy {n.conv_energy!r} "
                     f"conv_length {n.conv_length!r}")
    if settings.normalize_nodes:
        lines.append("n2p2 normalize_nodes: folded into the weights")
    lines += [f"note: {n}" for n in settings.notes]
    return lines
