"""`python -m nnp.convert n2p2`: an n2p2 potential becomes our potential file.

The reference is n2p2 itself: tests/data/n2p2-si/reference.xyz holds the
energies and forces that n2p2's LAMMPS pair style computed with the published
mlearn Si potential (Bohr/Hartree model, see the README there). The converted
file must reproduce them through NNPCalculator (the C++ core) and through
LAMMPS `pair_style nnp`. Conventions that reference cannot pin (scaling modes,
normalisation, normalize_nodes, the tanh cutoff) are pinned by equivalences:
an n2p2 directory rewritten so that n2p2 would predict the same energies must
convert to a potential that predicts the same energies.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import ase.io
import numpy as np
import pytest
from ase import Atoms
from conftest import rattled_si

from nnp import NNPCalculator, convert
from nnp.descriptors import C4, C5, CW4, CW5, DescriptorSet
from nnp.io import potential_file as pf

N2P2_DIR = Path(__file__).resolve().parent / "data" / "n2p2-si"
N2P2_FILES = ("input.nn", "scaling.data", "weights.014.data")
# n2p2's pair_style hdnnp factors for this model (README): Å -> Bohr, eV -> Hartree.
UNITS = convert.UnitFactors(cflength=1.8897261328, cfenergy=0.0367493254)
E_TOL = 1e-6  # eV/atom
F_TOL = 1e-5  # eV/Å


@pytest.fixture(scope="module")
def reference():
    return ase.io.read(N2P2_DIR / "reference.xyz", ":")


@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("n2p2") / "Si_n2p2.nnp"
    pf.write(convert.convert_n2p2(N2P2_DIR, UNITS), path)
    return path


def n2p2_copy(tmp_path: Path, edit=None, name: str = "pot") -> Path:
    """A copy of the n2p2 directory; `edit(dir)` may modify it."""
    d = tmp_path / name
    d.mkdir()
    for f in N2P2_FILES:
        shutil.copy(N2P2_DIR / f, d / f)
    if edit is not None:
        edit(d)
    return d


def replace_line(path: Path, startswith: str, new: str | None) -> None:
    """Replace (None: delete) the first line starting with `startswith`."""
    lines = path.read_text().splitlines()
    i = next(i for i, line in enumerate(lines) if line.startswith(startswith))
    if new is None:
        del lines[i]
    else:
        lines[i] = new
    path.write_text("\n".join(lines) + "\n")


def append_lines(path: Path, *new: str) -> None:
    path.write_text(path.read_text() + "\n".join(new) + "\n")


def energies_forces(potential: Path, frames) -> list[tuple[float, np.ndarray]]:
    out = []
    for atoms in frames:
        atoms = atoms.copy()
        atoms.calc = NNPCalculator(potential)
        out.append((atoms.get_potential_energy(), atoms.get_forces()))
    return out


def max_errors(results, frames) -> tuple[float, float]:
    de = max(abs(e - a.get_potential_energy()) / len(a) for (e, _), a in zip(results, frames))
    df = max(np.abs(f - a.get_forces()).max() for (_, f), a in zip(results, frames))
    return de, df


# ----------------------------------------------------------------------------
# Agreement with n2p2's own numbers


def test_calculator_reproduces_n2p2(converted, reference):
    de, df = max_errors(energies_forces(converted, reference), reference)
    print(f"NNPCalculator vs n2p2: max |dE| {de:.2e} eV/atom, max |dF| {df:.2e} eV/Å")
    assert de < E_TOL and df < F_TOL


def lammps_frame(atoms):
    """The structure rotated into LAMMPS's frame (a ∥ x, b in the xy plane,
    i.e. a lower-triangular cell) and the rotation Q: cell' = cell Q,
    positions' = positions Q, so forces go back as F = F' Qᵀ."""
    q, u = np.linalg.qr(atoms.cell.array.T)  # cellᵀ = Q U, so cell Q = Uᵀ
    q = q * np.sign(np.diag(u))  # positive diagonal: a, b, c keep their sense
    rotated = atoms.copy()
    rotated.wrap()
    rotated.set_cell(atoms.cell.array @ q)
    rotated.positions = rotated.positions @ q
    assert np.allclose(np.triu(rotated.cell.array, 1), 0, atol=1e-9)
    return rotated, q


def lammps_energy_forces(potential: Path, atoms) -> tuple[float, np.ndarray]:
    import nnp.lammps

    rotated, q = lammps_frame(atoms)
    (ax, _, _), (bx, by, _), (cx, cy, cz) = rotated.cell.array.tolist()
    lmp = nnp.lammps.lammps(cmdargs=["-log", "none", "-screen", "none", "-nocite"])
    try:
        lmp.commands_string(
            f"""
            units metal
            atom_style atomic
            atom_modify map array
            boundary p p p
            region box prism 0 {ax!r} 0 {by!r} 0 {cz!r} {bx!r} {cx!r} {cy!r}
            create_box 1 box
            mass 1 28.0855
            """
        )
        n = len(rotated)
        lmp.create_atoms(n, list(range(1, n + 1)), [1] * n, rotated.positions.ravel().tolist())
        lmp.commands_string(f"pair_style nnp\npair_coeff * * {potential} Si\nrun 0")
        nlocal = lmp.extract_global("nlocal")
        assert nlocal == n, "LAMMPS lost atoms"
        order = np.argsort(lmp.numpy.extract_atom("id")[:nlocal])
        forces = np.array(lmp.numpy.extract_atom("f")[:nlocal])[order] @ q.T
        return lmp.get_thermo("pe"), forces
    finally:
        lmp.close()


def test_lammps_reproduces_n2p2(converted, reference):
    results = [lammps_energy_forces(converted, a) for a in reference]
    de, df = max_errors(results, reference)
    print(f"LAMMPS pair_style nnp vs n2p2: max |dE| {de:.2e} eV/atom, max |dF| {df:.2e} eV/Å")
    assert de < E_TOL and df < F_TOL


def test_converted_file_contents(converted):
    pot = pf.read(converted)
    d = pot.descriptors
    assert d.elements == ("Si",) and d.cutoff_function == "cos" and d.angular_sum == "half"
    funcs = d.functions["Si"]
    assert [type(f).__name__ for f in funcs] == ["G2"] * 3 + ["G4"] * 24
    # 10.3934937 Bohr = 5.5 Å, 7.5589045 Bohr = 4 Å, 0.01 Bohr⁻² = 0.0357 Å⁻²
    assert d.cutoff == pytest.approx(5.5, rel=1e-7)
    assert funcs[0].rs == pytest.approx(4.0, rel=1e-7)
    assert funcs[0].eta == pytest.approx(0.01 * UNITS.cflength**2)
    # n2p2's sorted order: η, then ζ, then λ (input.nn lists λ = -1 first, then by ζ as text)
    assert [(f.zeta, f.lambda_) for f in funcs[3:7]] == [(1, -1), (1, 1), (2, -1), (2, 1)]
    assert pot.models["Si"].reference_energy == pytest.approx(-0.79 / UNITS.cfenergy)
    assert [layer.activation for layer in pot.models["Si"].layers] == ["tanh", "tanh", "linear"]
    assert any("sha256" in c for c in pot.comments)


# ----------------------------------------------------------------------------
# Conventions pinned by equivalent n2p2 directories


@pytest.fixture(scope="module")
def frames(reference):
    return reference[:3]


@pytest.fixture(scope="module")
def baseline(converted, frames):
    return energies_forces(converted, frames)


def assert_same_predictions(tmp_path: Path, directory: Path, baseline, frames, tol=1e-9) -> None:
    out = tmp_path / f"{directory.name}.nnp"
    pf.write(convert.convert_n2p2(directory, UNITS), out)
    for (e0, f0), (e, f) in zip(baseline, energies_forces(out, frames)):
        assert abs(e - e0) < tol * max(1.0, abs(e0))
        np.testing.assert_allclose(f, f0, atol=tol)


def _weights(directory: Path) -> tuple[list[str], np.ndarray]:
    lines = (directory / "weights.014.data").read_text().splitlines()
    data = [line for line in lines if line.strip() and not line.startswith("#")]
    return data, np.array([float(line.split()[0]) for line in data])


def _write_weights(directory: Path, data: list[str], values: np.ndarray, annotate: bool = True) -> None:
    rows = []
    for line, v in zip(data, values):
        rest = line.split()[1:] if annotate else []
        rows.append(" ".join(["%.17e" % v, *rest]))
    (directory / "weights.014.data").write_text("\n".join(rows) + "\n")


def _output_layer_slice(n_values: int) -> slice:
    # 27-24-24-1: the output layer's 24 weights and 1 bias are the last 25 values.
    assert n_values == 27 * 24 + 24 + 24 * 24 + 24 + 24 + 1
    return slice(n_values - 25, n_values)


def test_normalisation_keywords(tmp_path, baseline, frames):
    """mean_energy/conv_energy/conv_length: n2p2 predicts E = NN/conv_energy
    + mean_energy per atom (+ atom_energy), and the symmetry-function
    parameters stay in physical units (conv_length changes nothing)."""
    mean, conv = -0.35, 3.7

    def edit(d: Path):
        append_lines(d / "input.nn", f"mean_energy {mean}", f"conv_energy {conv}", "conv_length 2.3")
        data, w = _weights(d)
        out = _output_layer_slice(len(w))
        w[out] *= conv
        w[-1] -= conv * mean  # the bias: NN' = conv·(NN − mean)
        _write_weights(d, data, w)

    assert_same_predictions(tmp_path, n2p2_copy(tmp_path, edit), baseline, frames)


def test_normalize_nodes(tmp_path, baseline, frames):
    """normalize_nodes divides each neuron's input sum (with the bias) by its fan-in."""

    def edit(d: Path):
        append_lines(d / "input.nn", "normalize_nodes")
        data, w = _weights(d)
        sizes = [27, 24, 24, 1]
        start = 0
        for n_in, n_out in zip(sizes[:-1], sizes[1:]):
            stop = start + (n_in + 1) * n_out
            w[start:stop] *= n_in
            start = stop
        _write_weights(d, data, w)

    assert_same_predictions(tmp_path, n2p2_copy(tmp_path, edit), baseline, frames)


def _scaling_table(directory: Path) -> np.ndarray:
    return np.loadtxt(directory / "scaling.data", comments="#")


# n2p2's scaling modes: input.nn keywords and the network input x' they give
# (n2p2 writes G_s = S_min + (S_max − S_min)(G − G_min)/(G_max − G_min) etc.
# in its log). S_min, S_max are set to -1, 2 where they are used.
SCALING_MODES = {
    "none": ([], lambda G, t: G),
    "scale": (["scale_symmetry_functions"], lambda G, t: -1 + 3 * (G - t[:, 2]) / (t[:, 3] - t[:, 2])),
    "center": (["center_symmetry_functions"], lambda G, t: G - t[:, 4]),
    "scalecenter": (["scale_symmetry_functions", "center_symmetry_functions"],
                    lambda G, t: -1 + 3 * (G - t[:, 4]) / (t[:, 3] - t[:, 2])),
    "scalesigma": (["scale_symmetry_functions_sigma"], lambda G, t: -1 + 3 * (G - t[:, 4]) / t[:, 5]),
}


@pytest.mark.parametrize("mode", sorted(SCALING_MODES))
def test_scaling_modes(tmp_path, baseline, frames, mode):
    """Each n2p2 scaling mode, with the first layer rewritten so that n2p2
    would predict the same energies as with the original min-max scaling."""
    keywords, scaled = SCALING_MODES[mode]

    def edit(d: Path):
        inp = d / "input.nn"
        for key in ("scale_symmetry_functions", "scale_min_short", "scale_max_short"):
            replace_line(inp, key, None)
        append_lines(inp, *keywords, "scale_min_short -1", "scale_max_short 2")
        t = _scaling_table(d)
        # The original input is x = (G − G_min)/(G_max − G_min); the new one is
        # affine in it, x' = a x + c. Fold x = (x' − c)/a into layer 1.
        x_of = lambda G: (G - t[:, 2]) / (t[:, 3] - t[:, 2])  # noqa: E731
        G0, G1 = t[:, 2], t[:, 3]
        a = (scaled(G1, t) - scaled(G0, t)) / (x_of(G1) - x_of(G0))
        c = scaled(G0, t) - a * x_of(G0)
        data, w = _weights(d)
        n_in, n_out = 27, 24
        W = w[: n_in * n_out].reshape(n_in, n_out)  # [input j, neuron k], n2p2's order
        b = w[n_in * n_out : n_in * n_out + n_out]
        w[n_in * n_out : n_in * n_out + n_out] = b - (W * (c / a)[:, None]).sum(axis=0)
        w[: n_in * n_out] = (W / a[:, None]).ravel()
        _write_weights(d, data, w)

    assert_same_predictions(tmp_path, n2p2_copy(tmp_path, edit), baseline, frames)


def test_normalised_tanh_cutoff(tmp_path, frames):
    """cutoff_type 3 is c·tanh³ (c = 1/tanh³(1)): n2p2's G is c^k times its
    value with cutoff_type 2, so a tanhu model whose scaling.data statistics
    are multiplied by c^k predicts the same energies with cutoff_type 3."""
    tanhu = n2p2_copy(tmp_path, _set("cutoff_type", "2"), name="tanhu")

    def edit(d: Path):
        replace_line(d / "input.nn", "cutoff_type", "cutoff_type 3")
        t = _scaling_table(d)
        k = np.array([1] * 3 + [3] * 24)  # 3 radial, 24 narrow angular functions
        t[:, 2:] *= (convert.TANH_PRE**k)[:, None]
        rows = ["%d %d %.17e %.17e %.17e %.17e" % (r[0], r[1], *r[2:]) for r in t]
        (d / "scaling.data").write_text("\n".join(rows) + "\n")

    tanh = n2p2_copy(tmp_path, edit, name="tanh")
    out = tmp_path / "tanhu.nnp"
    pf.write(convert.convert_n2p2(tanhu, UNITS), out)
    assert_same_predictions(tmp_path, tanh, energies_forces(out, frames), frames)
    pot = convert.convert_n2p2(tanh, UNITS)
    assert pot.descriptors.cutoff_function == "tanh3"
    assert convert.TANH_PRE == pytest.approx(1 / np.tanh(1.0) ** 3, rel=1e-15)


def test_symmetry_function_order_and_unannotated_weights(tmp_path, converted):
    """Shuffled symfunction_short lines, comments, and weights without n2p2's
    annotation columns convert to the same potential: the input order is
    n2p2's sorted order, not the order of the lines."""

    def edit(d: Path):
        lines = (d / "input.nn").read_text().splitlines()
        sf = [line for line in lines if line.startswith("symfunction_short")]
        other = [line for line in lines if not line.startswith("symfunction_short")]
        rng = np.random.default_rng(0)
        shuffled = [sf[i] + "   # a comment" for i in rng.permutation(len(sf))]
        (d / "input.nn").write_text("\n".join(shuffled + ["! another comment"] + other) + "\n")
        data, w = _weights(d)
        _write_weights(d, data, w, annotate=False)

    pot = convert.convert_n2p2(n2p2_copy(tmp_path, edit), UNITS)
    ref = pf.read(converted)
    assert pot.descriptors.functions == ref.descriptors.functions
    for a, b in zip(pot.models["Si"].layers, ref.models["Si"].layers):
        np.testing.assert_array_equal(a.weights, b.weights)
        np.testing.assert_array_equal(a.biases, b.biases)


def test_tanhu_cutoff_and_wide_angular(tmp_path):
    """cutoff_type 2 (tanhu) is our tanh3; type 9 is our G5; the activations
    s and p are sigmoid and softplus; units divide rc and multiply eta."""

    def edit(d: Path):
        inp = d / "input.nn"
        replace_line(inp, "cutoff_type", "cutoff_type 2 0.2")  # n2p2 ignores alpha for tanhu
        replace_line(inp, "global_activation_short", "global_activation_short s p l")
        text = inp.read_text().replace("symfunction_short Si  3 Si Si", "symfunction_short Si  9 Si Si")
        inp.write_text(text)

    pot = convert.convert_n2p2(n2p2_copy(tmp_path, edit), convert.UnitFactors(2.0, 0.5))
    d = pot.descriptors
    assert d.cutoff_function == "tanh3"
    assert {type(f).__name__ for f in d.functions["Si"][3:]} == {"G5"}
    assert d.cutoff == pytest.approx(10.3934937 / 2.0)
    assert d.functions["Si"][0].eta == pytest.approx(0.01 * 4.0)
    m = pot.models["Si"]
    assert [layer.activation for layer in m.layers] == ["sigmoid", "softplus", "linear"]
    assert m.reference_energy == pytest.approx(-0.79 / 0.5)
    assert any("alpha" in c and "ignored" in c for c in pot.comments)


def n2p2_symmetry_function(sf: convert.SymFunc, cutoff_type: int, positions_model: np.ndarray, i: int) -> float:
    """n2p2's formulas (SymFncExpRad, SymFncExpAngn, SymFncExpAngw and the
    cos/tanhu cutoffs), written out here in model units for atom i of a cluster."""

    def fc(r):
        if r >= sf.rc:
            return 0.0
        if cutoff_type == 1:
            return 0.5 * (np.cos(np.pi * r / sf.rc) + 1.0)
        if cutoff_type == 3:  # normalised: f(0) = 1
            return np.tanh(1.0 - r / sf.rc) ** 3 / np.tanh(1.0) ** 3
        return np.tanh(1.0 - r / sf.rc) ** 3

    d = positions_model - positions_model[i]
    others = [j for j in range(len(positions_model)) if j != i]
    if sf.type == 2:
        return sum(np.exp(-sf.eta * (np.linalg.norm(d[j]) - sf.rs) ** 2) * fc(np.linalg.norm(d[j])) for j in others)
    total = 0.0
    for a, j in enumerate(others):
        for k in others[a + 1:]:  # unordered pairs j < k
            rij, rik, rjk = np.linalg.norm(d[j]), np.linalg.norm(d[k]), np.linalg.norm(d[k] - d[j])
            if rij >= sf.rc or rik >= sf.rc or (sf.type == 3 and rjk >= sf.rc):
                continue
            cos = d[j] @ d[k] / (rij * rik)
            radial = (rij - sf.rs) ** 2 + (rik - sf.rs) ** 2
            cut = fc(rij) * fc(rik)
            if sf.type == 3:
                radial += (rjk - sf.rs) ** 2
                cut *= fc(rjk)
            total += max(1.0 + sf.lambda_ * cos, 0.0) ** sf.zeta * np.exp(-sf.eta * radial) * cut
    return 2.0 ** (1.0 - sf.zeta) * total


@pytest.mark.parametrize("cutoff_type", [1, 2, 3])
def test_symmetry_function_types_match_n2p2_formulas(cutoff_type):
    """Types 2, 3 and 9 with a shift R_s, the three cutoffs and a unit factor:
    our descriptor of the converted function equals n2p2's formula (for the
    normalised tanh cutoff, up to the constant c^k that the converter moves
    into the scaling)."""
    cflength = 1.8897261328  # the model in Bohr
    rng = np.random.default_rng(4)
    atoms = Atoms("Si6", positions=rng.uniform(0, 4.0, (6, 3)))
    functions = [
        convert.SymFunc("Si", 2, ("Si",), eta=0.03, rs=3.5, rc=9.0),
        convert.SymFunc("Si", 3, ("Si", "Si"), eta=0.02, rs=1.5, rc=9.0, zeta=2.0, lambda_=-1),
        convert.SymFunc("Si", 3, ("Si", "Si"), eta=0.01, rs=0.0, rc=7.0, zeta=1.0, lambda_=1),
        convert.SymFunc("Si", 9, ("Si", "Si"), eta=0.02, rs=1.5, rc=9.0, zeta=4.0, lambda_=1),
        convert.SymFunc("Si", 9, ("Si", "Si"), eta=0.005, rs=0.5, rc=6.0, zeta=2.5, lambda_=-1),
    ]
    ours = DescriptorSet(("Si",), {"Si": tuple(f.converted(cflength) for f in functions)},
                         convert.CUTOFF_TYPES[cutoff_type][1], "half")
    G = ours.compute(atoms)
    if cutoff_type == 3:
        G *= np.array([convert.TANH_PRE**f.cutoff_factors for f in functions])
    for i in range(len(atoms)):
        ref = [n2p2_symmetry_function(f, cutoff_type, atoms.positions * cflength, i) for f in functions]
        np.testing.assert_allclose(G[i], ref, rtol=1e-12, atol=1e-14)
    assert np.all(G[:, 1:].max(axis=0) > 1e-3)  # every angular function sees triplets


# ----------------------------------------------------------------------------
# Refusals: what our format cannot represent, named with file and line


def _set(key: str, value: str):
    def edit(d: Path):
        replace_line(d / "input.nn", key, f"{key} {value}")
    return edit


def _sf_line(new: str):
    def edit(d: Path):
        replace_line(d / "input.nn", "symfunction_short Si  3 Si Si    0.0100000 -1 1.0000000", new)
    return edit


def _add(*lines: str):
    def edit(d: Path):
        append_lines(d / "input.nn", *lines)
    return edit


REFUSALS = {
    # cutoff_type 0-8 and alpha convert since format version 5 (tests/test_n2p2_examples.py)
    "cos_alpha": (_set("cutoff_type", "1 1.5"), ["input.nn:4", "alpha", "0 <= alpha < 1"]),
    "unknown_cutoff": (_set("cutoff_type", "9"), ["input.nn:4", "cutoff_type 9"]),
    "relu": (_set("global_activation_short", "t r l"), ["input.nn:10", "activation 'r'", "relu"]),
    "gaussian": (_set("global_activation_short", "g t l"), ["input.nn:10", "activation 'g'"]),
    "weighted_sf": (_sf_line("symfunction_short Si 13 0.01 1 1 0 10.39 0"), ["input.nn:45", "type 13", "weighted"]),
    "polynomial_sf": (_sf_line("symfunction_short Si 21 Si Si 0 5 0 180 10"), ["input.nn:45", "type 21", "polynomial",
                                                                                  "subtype '10'"]),
    "polynomial_weighted_angular": (_sf_line("symfunction_short Si 24 Si 0 5 0 180 p2"),
                                    ["input.nn:45", "type 24", "expects 'element 24 rl rc angle_left angle_right"]),
    "lambda": (_sf_line("symfunction_short Si 3 Si Si 0.01 0.5 1.0 10.39"), ["input.nn:45", "lambda"]),
    "zeta": (_sf_line("symfunction_short Si 3 Si Si 0.01 1 0.5 10.39"), ["input.nn:45", "zeta"]),
    "unknown_element": (_sf_line("symfunction_short Si 3 Si Ge 0.01 1 1 10.39"), ["input.nn:45", "'Ge'"]),
    "4G": (_add("nnp_type 4G-HDNNP"), ["input.nn:69", "nnp_type 4G-HDNNP", "short-range"]),
    "charge_nn": (_add("nnp_type 1"), ["input.nn:69", "nnp_type 1"]),
    "normalisation_partial": (_add("mean_energy 0.1"), ["input.nn", "all or none"]),
    "duplicate_keyword": (_add("cutoff_type 1"), ["input.nn:69", "cutoff_type", "twice"]),
    "duplicate_function": (
        _add("symfunction_short Si  2 Si    0.0100000    7.5589045    10.3934937"), ["input.nn:69", "repeats line 42"]
    ),
}


def test_weighted_compact_angular_types(tmp_path):
    """n2p2's types 24/25 are its types 21/22 over every neighbour pair,
    weighted by Z_j Z_k: CW4/CW5 with weights Z, in Å (for one element,
    14² times C4/C5 of the same window)."""
    def edit(d: Path):
        replace_line(d / "input.nn", "symfunction_short Si  3 Si Si    0.0100000 -1 1.0000000",
                     "symfunction_short Si 24 0.5 10.0 30 150 p2")
        replace_line(d / "input.nn", "symfunction_short Si  3 Si Si    0.0100000 -1 16.0000000",
                     "symfunction_short Si 25 0.0 9.0 0 180 p3")

    converted = convert.convert_n2p2(n2p2_copy(tmp_path, edit), UNITS).descriptors
    weighted = [f for f in converted.functions["Si"] if isinstance(f, (CW4, CW5))]
    length = UNITS.cflength
    assert [type(f) for f in weighted] == [CW4, CW5]
    cw4, cw5 = weighted
    assert (cw4.rl, cw4.rc, cw4.angle_left, cw4.angle_right, cw4.core) == pytest.approx((0.5 / length, 10 / length,
                                                                                         30, 150, "p2"))
    assert (cw5.rl, cw5.rc, cw5.angle_left, cw5.angle_right, cw5.core) == (0.0, 9 / length, 0, 180, "p3")
    plain = [C4(("Si", "Si"), cw4.rl, cw4.rc, 30, 150, "p2"), C5(("Si", "Si"), 0.0, cw5.rc, 0, 180, "p3")]
    atoms = rattled_si((2, 2, 2))
    g_weighted = DescriptorSet(("Si",), {"Si": (cw4, cw5)}, angular_sum=converted.angular_sum).featurize(atoms)
    g_plain = DescriptorSet(("Si",), {"Si": tuple(plain)}, angular_sum=converted.angular_sum).featurize(atoms)
    assert np.abs(g_plain["Si"].G).min() > 0
    np.testing.assert_allclose(g_weighted["Si"].G, 14.0**2 * g_plain["Si"].G, rtol=1e-12)


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_refuses_unsupported_input_nn(tmp_path, case):
    edit, fragments = REFUSALS[case]
    d = n2p2_copy(tmp_path, edit)
    with pytest.raises(convert.N2p2Error) as err:
        convert.convert_n2p2(d, UNITS)
    msg = str(err.value)
    for fragment in fragments:
        assert fragment in msg, f"{fragment!r} not in {msg!r}"


def test_refuses_broken_companion_files(tmp_path):
    def truncate_weights(d: Path):
        lines = (d / "weights.014.data").read_text().splitlines()
        (d / "weights.014.data").write_text("\n".join(lines[:-3]) + "\n")

    def misplaced_bias(d: Path):
        text = (d / "weights.014.data").read_text().replace(" b ", " a ", 1)
        (d / "weights.014.data").write_text(text)

    def short_scaling(d: Path):
        lines = (d / "scaling.data").read_text().splitlines()
        (d / "scaling.data").write_text("\n".join(lines[:-1]) + "\n")

    cases = {
        "missing weights": (lambda d: (d / "weights.014.data").unlink(), ["weights.014.data", "no such file"]),
        "truncated weights": (truncate_weights, ["weights.014.data", "1294 values", "1297"]),
        "misplaced bias": (misplaced_bias, ["weights.014.data:", "expected the bias"]),
        "short scaling": (short_scaling, ["scaling.data", "ends early", "row 27"]),
        "missing scaling": (lambda d: (d / "scaling.data").unlink(), ["scaling.data", "no such file"]),
    }
    for name, (edit, fragments) in cases.items():
        d = n2p2_copy(tmp_path, edit, name=name.replace(" ", "_"))
        with pytest.raises(convert.N2p2Error) as err:
            convert.convert_n2p2(d, UNITS)
        for fragment in fragments:
            assert fragment in str(err.value), f"{name}: {fragment!r} not in {err.value}"
    with pytest.raises(convert.N2p2Error, match="cflength must be a positive"):
        convert.convert_n2p2(N2P2_DIR, convert.UnitFactors(cflength=0.0))


# ----------------------------------------------------------------------------
# Command line


def test_cli_refuses_to_overwrite_without_force(tmp_path, capsys, reference):
    out = tmp_path / "Si.nnp"
    args = ["n2p2", str(N2P2_DIR), "-o", str(out), "--cflength", str(UNITS.cflength),
            "--cfenergy", str(UNITS.cfenergy)]
    assert convert.main(args) == 0
    first = out.read_text()
    de, df = max_errors(energies_forces(out, reference[:2]), reference[:2])
    assert de < E_TOL and df < F_TOL

    out.write_text("something else\n")
    assert convert.main(args) == 1
    err = capsys.readouterr().err
    assert "exists" in err and "--force" in err
    assert out.read_text() == "something else\n"  # untouched

    assert convert.main(args + ["--force"]) == 0
    # Same model; only the date in the provenance comment may differ.
    strip = lambda s: [line for line in s.splitlines() if not line.startswith("# converted from")]  # noqa: E731
    assert strip(out.read_text()) == strip(first)


def test_cli_error_message_and_module_entry_point(tmp_path):
    d = n2p2_copy(tmp_path, _set("cutoff_type", "9"))
    out = tmp_path / "x.nnp"
    r = subprocess.run([sys.executable, "-m", "nnp.convert", "n2p2", str(d), "-o", str(out)],
                       capture_output=True, text=True)
    assert r.returncode == 1
    assert "error:" in r.stderr and "cutoff_type 9" in r.stderr and "Traceback" not in r.stderr
    assert not out.exists()
