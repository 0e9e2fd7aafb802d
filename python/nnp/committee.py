"""The mean of several potentials, written as one potential file.

Models trained with the same settings from different initial weights (e.g.
`python -m nnp.train --ensemble K`) make partly independent errors, and
their mean is more accurate than a typical member: on the Si validation
split, the mean of two such models had a 2.4 % lower force MAE than its
members on average (docs/accuracy.md, "How much the initial weights
matter").

That mean is itself a Behler–Parrinello potential with one, wider network
per element, so LAMMPS, `NNPCalculator` and `nnp.evaluate` run it unchanged:

    mean_k [e0_k + NN_k((G − c_k)/w_k) + Q_k((G − c_k)/w_k)] = ē0 + NN((G − c)/w) + Q((G − c)/w)

where NN's first layer stacks the members' first layers (rewritten for the
common scaling c, w: member 0's), its hidden-to-hidden layers are
block-diagonal (the members stay independent), and its output layer adds the
members' outputs divided by K; the quadratic terms Q_k (where members have
one) are rewritten for the common scaling and averaged; the sparse GPs
(where members have one: `nnp train --model gp`) become one GP of all their
sparse points with weights divided by K, so the mean of a network and a GP
is an element with both (they need the same scaling and kernel). The descriptors are computed once, so MD pays
only for the wider network. The members must share descriptors, repulsive
cores, depth and activations; their widths may differ.

    nnp committee --potential Si.0.nnp Si.1.nnp -o Si.mean.nnp
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

import numpy as np
from scipy.linalg import block_diag

from nnp.cli import prepare_output_file
from nnp.io import potential_file
from nnp.io.atomic import file_sha256
from nnp.io.potential_file import ElementModel, GaussianProcess, Layer, PotentialData, QuadraticTerm, Scaling


def _check_compatible(pots: Sequence[PotentialData], names: Sequence[str]) -> None:
    first, name0 = pots[0], names[0]
    for pot, name in zip(pots[1:], names[1:]):
        if pot.elements != first.elements:
            raise ValueError(f"{name} has elements {list(pot.elements)}, {name0} {list(first.elements)}: "
                             "only potentials of the same elements can be averaged")
        if pot.descriptors != first.descriptors:
            raise ValueError(f"{name} and {name0} have different symmetry functions (or cutoff function or "
                             "angular sum): their networks see different inputs")
        if set(pot.repulsion) != set(first.repulsion):
            raise ValueError(f"{name} and {name0} have different repulsive cores")
    for e in first.elements:  # networks (members without one have a GP) must stack
        nets = [(name, [l.activation for l in pot.models[e].layers]) for pot, name in zip(pots, names)
                if pot.models[e].layers]
        for name, acts in nets[1:]:
            name0, acts0 = nets[0]
            if acts != acts0:
                raise ValueError(f"{e}: the networks of {name} ({len(acts)} layers: {' '.join(acts)}) and {name0} "
                                 f"({len(acts0)} layers: {' '.join(acts0)}) differ in depth or activations")


def _rescaled_first_layer(layer: Layer, scaling: Scaling, common: Scaling) -> tuple[np.ndarray, np.ndarray]:
    """(W', b') with W' x + b' = W x_own + b for x = (G − common.center)/common.width
    and x_own = (G − scaling.center)/scaling.width; exactly (W, b) when the
    scalings agree."""
    if np.array_equal(scaling.center, common.center) and np.array_equal(scaling.width, common.width):
        return layer.weights, layer.biases
    ratio = common.width / scaling.width
    shift = (common.center - scaling.center) / scaling.width
    return layer.weights * ratio, layer.biases + layer.weights @ shift


def _rescaled_quadratic(q: QuadraticTerm, scaling: Scaling, common: Scaling) -> tuple[float, np.ndarray, np.ndarray]:
    """(c, b', A') with c + b'·x + xᵀA'x = Q(x_own) for x and x_own as in
    `_rescaled_first_layer`: x_own = r ⊙ x + t, r = common.width/scaling.width,
    t = (common.center − scaling.center)/scaling.width."""
    if np.array_equal(scaling.center, common.center) and np.array_equal(scaling.width, common.width):
        return 0.0, q.linear, q.matrix
    r = common.width / scaling.width
    t = (common.center - scaling.center) / scaling.width
    matrix = r[:, None] * q.matrix * r[None, :]
    matrix = 0.5 * (matrix + matrix.T)  # exactly symmetric again after rounding
    return float(q.linear @ t + t @ q.matrix @ t), r * (q.linear + 2.0 * (q.matrix @ t)), matrix


def _mean_quadratic(models: Sequence[ElementModel], common: Scaling) -> tuple[float, QuadraticTerm | None]:
    """The members' mean quadratic term in the common scaling (members
    without one count as 0) and the constant it leaves for e0."""
    terms = [_rescaled_quadratic(m.quadratic, m.scaling, common) for m in models if m.quadratic is not None]
    if not terms:
        return 0.0, None
    K = len(models)
    return (sum(c for c, _, _ in terms) / K,
            QuadraticTerm(sum(b for _, b, _ in terms) / K, sum(A for _, _, A in terms) / K))


def _mean_gp(models: Sequence[ElementModel], common: Scaling) -> GaussianProcess | None:
    """The members' mean GP (members without one count as 0): their sparse
    points side by side, weights divided by K. Needs one kernel and scaling:
    a GP cannot be rewritten for another scaling as a network can."""
    gps = [m for m in models if m.gp is not None]
    if not gps:
        return None
    g0 = gps[0].gp
    for m in gps:
        g = m.gp
        if not (np.array_equal(m.scaling.center, common.center) and np.array_equal(m.scaling.width, common.width)):
            raise ValueError("a member with a GP has a descriptor scaling of its own: GPs can be averaged only "
                             "with members of the same scaling (fitted on the same split)")
        if (g.kernel, g.delta, g.lengthscale if g.kernel == "se" else g.zeta) != \
                (g0.kernel, g0.delta, g0.lengthscale if g0.kernel == "se" else g0.zeta):
            raise ValueError("the members' GPs differ in kernel or hyperparameters: they cannot be one GP")
    return GaussianProcess(g0.kernel, g0.delta, np.vstack([m.gp.sparse_points for m in gps]),
                           np.concatenate([m.gp.weights for m in gps]) / len(models), g0.lengthscale, g0.zeta)


def _mean_networks(models: Sequence[ElementModel], common: Scaling, K: int) -> list[Layer]:
    """The networks of the members that have one, side by side, their outputs
    summed and divided by K (members without a network count as 0)."""
    models = [m for m in models if m.layers]
    if not models:
        return []
    first = [_rescaled_first_layer(m.layers[0], m.scaling, common) for m in models]
    acts = [layer.activation for layer in models[0].layers]
    if len(acts) == 1:  # linear models: their mean is linear
        return [Layer(sum(w for w, _ in first) / K, sum(b for _, b in first) / K, acts[0])]
    layers = [Layer(np.vstack([w for w, _ in first]), np.concatenate([b for _, b in first]), acts[0])]
    for i in range(1, len(acts) - 1):
        layers.append(Layer(block_diag(*(m.layers[i].weights for m in models)),
                            np.concatenate([m.layers[i].biases for m in models]), acts[i]))
    last = [m.layers[-1] for m in models]
    layers.append(Layer(np.hstack([l.weights for l in last]) / K, sum(l.biases for l in last) / K, acts[-1]))
    return layers


def _mean_element(models: Sequence[ElementModel]) -> ElementModel:
    s0 = models[0].scaling
    # The range seen in training by any member (extrapolation warnings).
    scaling = Scaling(s0.center.copy(), s0.width.copy(), np.min([m.scaling.min for m in models], axis=0),
                      np.max([m.scaling.max for m in models], axis=0))
    shift, quadratic = _mean_quadratic(models, s0)
    e0 = float(np.mean([m.reference_energy for m in models])) + shift
    return ElementModel(e0, scaling, _mean_networks(models, s0, len(models)), quadratic, _mean_gp(models, s0))


def mean_potential(pots: Sequence[PotentialData], names: Sequence[str] | None = None,
                   comments: Sequence[str] = ()) -> PotentialData:
    """One potential whose energy, forces and virial are the mean of `pots`'
    (to rounding); `names` label the inputs in error messages."""
    pots = list(pots)
    if not pots:
        raise ValueError("no potentials to average")
    names = list(names) if names is not None else [f"potential {k}" for k in range(len(pots))]
    for pot in pots:
        pot.check()
    _check_compatible(pots, names)
    models = {e: _mean_element([p.models[e] for p in pots]) for e in pots[0].elements}
    mean = PotentialData(pots[0].descriptors, models, list(comments), list(pots[0].repulsion))
    mean.check()
    return mean


def write_mean(inputs: Sequence[Path], output: Path, overwrite: bool = False) -> Path:
    """Read `inputs`, write their mean to `output` (atomically; an existing
    file only with `overwrite`), with the inputs and their digests in its
    comments."""
    inputs = [Path(p) for p in inputs]
    for p in inputs:
        if p.is_dir():
            raise ValueError(f"{p} is a directory, not a potential file (an n2p2 directory: nnp convert n2p2 first)")
        if not p.is_file():
            raise FileNotFoundError(f"potential file {p} does not exist")
    comments = [f"the mean of {len(inputs)} potentials (python -m nnp.committee): one network per element, "
                "the members' hidden layers side by side (block-diagonal), their outputs averaged; their GPs "
                "(if any) one GP of all their sparse points"]
    comments += [f"member {k}: {p.resolve()} sha256 {file_sha256(p)}" for k, p in enumerate(inputs)]
    mean = mean_potential([potential_file.read(p) for p in inputs], [str(p) for p in inputs], comments)
    return potential_file.write(mean, output, overwrite=overwrite)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="nnp committee",
        description="Write the mean of several potentials (same descriptors; e.g. the members of "
        "python -m nnp.train --ensemble K) as one potential file, for LAMMPS and everything else.",
    )
    parser.add_argument("-p", "--potential", nargs="+", default=[], metavar="FILE", dest="potentials",
                        help="the potential files (.nnp) to average, at least two (as in every nnp command)")
    parser.add_argument("inputs", nargs="*", metavar="FILE",
                        help="the same, given without --potential (the older form, still accepted)")
    parser.add_argument("-o", "--output", required=True, metavar="FILE", help="potential file to write")
    parser.add_argument("--force", action="store_true", help="overwrite existing outputs (the output file)")
    args = parser.parse_args(argv)
    args.inputs = args.potentials + args.inputs
    try:
        if len(args.inputs) < 2:
            raise ValueError("give at least two potential files to average")
        if any(Path(p).resolve() == Path(args.output).resolve() for p in args.inputs):
            raise ValueError(f"{args.output} is one of the inputs: write the mean to another file")
        prepare_output_file(args.output, args.force)
        path = write_mean(args.inputs, Path(args.output), overwrite=args.force)
    except (OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {path}: the mean of {len(args.inputs)} potentials")
    return 0


if __name__ == "__main__":
    sys.exit(main())
