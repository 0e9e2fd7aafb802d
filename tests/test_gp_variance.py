"""The sparse GP's predictive variance per atom (issue 24; docs/gp.md,
"Predictive variance").

A small closed-form fit (nnp.train.gp_fit) writes the factor of its
weights' posterior precision into the potential file (`gp_variance`,
format version 7); the core's variance equals a numpy reference built from
the fit's own design matrix (AᵀA + K_MM inverted directly, the marginal
block of each element) to 1e-10; it is larger away from the training data
and never above the prior δ²; malformed sections are refused with
'FILE:LINE: ...'; files without the section still evaluate and say why the
variance is not available; NNPCalculator and LAMMPS's `compute nnp/atom gp`
agree to 1e-10, on one rank and on two.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from conftest import assert_refused_at_line, mixed_sic, random_potential, rattled_si, test_descriptor
from test_gp import _labelled

from nnp import NNPCalculator, _core
from nnp.io import potential_file as pf
from nnp.model import gp as gpmod

SIGMA = {"energy": 2e-3, "force": 0.05, "virial": 0.02}  # eV/atom, eV/Å, eV/atom
JITTER = 1e-8
M_SPARSE = 10


def kernel(spec: gpmod.KernelSpec, x: np.ndarray, z: np.ndarray) -> np.ndarray:
    """k(x_r, z_m), written out from docs/gp.md (no shared code with the core or nnp.model.gp)."""
    if spec.kernel == "se":
        d2 = ((x[:, None, :] - z[None, :, :]) ** 2).sum(-1)
        return spec.delta**2 * np.exp(-d2 / (2 * spec.lengthscale**2))

    def unit(a):
        a = np.hstack([a, np.ones((len(a), 1))])
        return a / np.linalg.norm(a, axis=1, keepdims=True)

    return spec.delta**2 * (unit(x) @ unit(z).T) ** spec.zeta


def si_frames():
    return [rattled_si((1, 1, 1), 0.15, s, a=5.3 + 0.04 * s) for s in range(8)]


def sic_frames():
    return [mixed_sic(s) for s in range(6)]


class Fitted:
    """A GP fitted to labels of a random network, its file and the
    posterior covariance of its weights computed directly (the reference)."""

    def __init__(self, elements: tuple[str, ...], spec: gpmod.KernelSpec, structures, tmp):
        from nnp.data import FeaturizedDataset
        from nnp.model.network import NNPModel
        from nnp.train import gp_fit

        ds = test_descriptor(elements=elements)
        truth = pf.write(random_potential(ds, structures, seed=5), tmp / "truth.nnp")
        data = FeaturizedDataset.from_structures(_labelled(structures, truth), ds)
        model = NNPModel(ds, [3])
        model.fit_scaling(data)
        settings = gp_fit.GPSettings(spec, M_SPARSE, SIGMA["energy"], SIGMA["force"], SIGMA["virial"], JITTER)
        mean = gp_fit.prior_mean(model)
        idx = np.arange(len(structures))
        fit = gp_fit.fit(data, idx, mean, settings)
        self.pot = mean.to_potential_data()
        for e, m in self.pot.models.items():
            m.layers, m.gp = [], fit.processes[e]
        self.path = pf.write(self.pot, tmp / "fit.nnp")
        self.elements, self.spec, self.ds, self.structures = elements, spec, ds, structures
        # The reference: P = AᵀA + K_MM (+ jitter) from the fit's design rows, weighted by the noise.
        design = gp_fit.Design(data, model, {e: fit.processes[e].sparse_points for e in elements}, spec)
        rows = []
        for s in idx:
            N = int(data.n_atoms[s])
            energy, forces, virial = design.rows(int(s), True)
            rows += [energy[None] / (N * SIGMA["energy"]), forces / SIGMA["force"], virial / (N * SIGMA["virial"])]
        A = np.vstack(rows)
        self.offsets = design.offsets
        prior = np.zeros((design.n_columns, design.n_columns))
        for e, o in self.offsets.items():
            prior[o : o + M_SPARSE, o : o + M_SPARSE] = self.kmm(e)
        self.covariance = np.linalg.inv(A.T @ A + prior)

    def kmm(self, e: str) -> np.ndarray:
        z = self.pot.models[e].gp.sparse_points
        return kernel(self.spec, z, z) + JITTER * self.spec.delta**2 * np.eye(len(z))

    def reference_variance(self, atoms) -> np.ndarray:
        """δ² − kᵀK_MM⁻¹k + kᵀ Cov(α_e) k per atom (docs/gp.md)."""
        feats = self.ds.featurize(atoms, derivatives=False)
        symbols = np.array(atoms.get_chemical_symbols())
        out = np.full(len(atoms), np.nan)
        for e, o in self.offsets.items():
            if not (symbols == e).any():
                continue
            s = self.pot.models[e].scaling
            k = kernel(self.spec, (feats[e]["G"] - s.center) / s.width, self.pot.models[e].gp.sparse_points)
            cov = self.covariance[o : o + M_SPARSE, o : o + M_SPARSE]
            prior = np.einsum("rm,rm->r", k, np.linalg.solve(self.kmm(e), k.T).T)
            out[symbols == e] = self.spec.delta**2 - prior + np.einsum("rm,mn,rn->r", k, cov, k)
        return out


@pytest.fixture(scope="module", params=[("Si", "se"), ("SiC", "dot"), ("SiC", "se")], ids=lambda p: "-".join(p))
def fitted(request, tmp_path_factory) -> Fitted:
    name, k = request.param
    spec = gpmod.KernelSpec(k, 0.3, 2.0, 2)
    elements, frames = (("Si",), si_frames()) if name == "Si" else (("Si", "C"), sic_frames())
    return Fitted(elements, spec, frames, tmp_path_factory.mktemp("gpvar"))


@pytest.fixture(scope="module")
def si_fit(tmp_path_factory) -> Fitted:
    return Fitted(("Si",), gpmod.KernelSpec("se", 0.3, 2.0), si_frames(), tmp_path_factory.mktemp("si"))


def gp_std(path, atoms) -> np.ndarray:
    atoms = atoms.copy()
    atoms.calc = NNPCalculator(path)
    return atoms.calc.get_property("gp_energy_std", atoms)


# ------------------------------------------------------------------ the core


def test_core_variance_equals_the_reference_from_the_fit_matrices(fitted):
    """Two elements share labels, so each element's factor is a marginal
    (Schur complement): checked against the direct inverse. The 48-atom
    frames take more than one block of the core's blocked solves."""
    frames = [fitted.structures[0], rattled_si((3, 1, 2), 0.2, 31, a=5.4)] if fitted.elements == ("Si",) else \
        [fitted.structures[1], mixed_sic(40).repeat((3, 1, 1))]
    for atoms in frames:
        ref = fitted.reference_variance(atoms)
        std = gp_std(fitted.path, atoms)
        assert ref.min() > 0 and np.ptp(ref) > 1e-3 * fitted.spec.delta**2  # not all at the prior
        np.testing.assert_allclose(std**2, ref, rtol=0, atol=1e-10 * fitted.spec.delta**2)


def test_variance_is_larger_away_from_the_training_data(si_fit):
    """Training atoms (some of them sparse points) are known to within the
    noise; compressed and strongly rattled frames return towards the prior
    δ², which the posterior never exceeds."""
    delta = si_fit.spec.delta
    train = np.concatenate([gp_std(si_fit.path, a) for a in si_fit.structures])
    compressed = gp_std(si_fit.path, rattled_si((1, 1, 1), 0.15, 99, a=4.9))
    rattled = gp_std(si_fit.path, rattled_si((1, 1, 1), 0.5, 98))
    assert train.min() < 0.05 * delta  # the sparse points themselves
    assert compressed.mean() > 2 * train.mean() and rattled.mean() > 1.5 * train.mean()
    assert compressed.mean() > 0.9 * delta
    for s in (train, compressed, rattled):
        assert s.max() <= delta * (1 + 1e-12)


def test_calculator_results(si_fit):
    atoms = si_fit.structures[2].copy()
    atoms.calc = NNPCalculator(si_fit.path, gp_std=True)
    e = atoms.get_potential_energy()
    np.testing.assert_allclose(atoms.calc.results["gp_energy_std"] ** 2, si_fit.reference_variance(atoms),
                               rtol=0, atol=1e-10 * si_fit.spec.delta**2)
    plain = atoms.copy()
    plain.calc = NNPCalculator(si_fit.path)
    assert plain.get_potential_energy() == e and "gp_energy_std" not in plain.calc.results


# ------------------------------------------------------------------ the file


def test_round_trip_is_a_fixed_point_and_version_7(fitted):
    text = fitted.path.read_text()
    assert text.splitlines()[0] == "nnp-potential 7"
    back = pf.read(fitted.path)
    assert pf.dumps(back) == text
    for e, m in fitted.pot.models.items():
        g = back.models[e].gp
        assert g.variance_jitter == JITTER and g.variance_factor.shape == (M_SPARSE * (M_SPARSE + 1) // 2,)
        np.testing.assert_array_equal(g.variance_factor, m.gp.variance_factor)


def without_variance(text: str, version: str = "6") -> str:
    """The file without its gp_variance sections, as version `version`."""
    lines, out, skip = text.splitlines(), [], 0
    for line in lines:
        if skip:
            skip -= 1
            continue
        if line.startswith("gp_variance "):
            skip = int(line.split()[2])
            continue
        out.append(line)
    out[0] = f"nnp-potential {version}"
    return "\n".join(out) + "\n"


def test_files_without_the_section_evaluate_and_say_why_not(si_fit, tmp_path, si_potential):
    old = tmp_path / "v6.nnp"
    old.write_text(without_variance(si_fit.path.read_text()))
    atoms = si_fit.structures[3]
    a, b = atoms.copy(), atoms.copy()
    a.calc, b.calc = NNPCalculator(si_fit.path), NNPCalculator(old)
    assert a.get_potential_energy() == b.get_potential_energy()
    np.testing.assert_array_equal(a.get_forces(), b.get_forces())
    assert pf.dumps(pf.read(old)) == old.read_text()  # still written as version 6
    with pytest.raises(ValueError, match=r"v6\.nnp: the GP of element Si has no 'gp_variance' section"):
        NNPCalculator(old, gp_std=True)
    with pytest.raises(ValueError, match="no 'gp_variance' section"):
        gp_std(old, atoms)
    with pytest.raises(ValueError, match="element Si has no GP"):
        NNPCalculator(si_potential, gp_std=True)
    with pytest.raises(ValueError, match="one GP potential: give one file"):
        NNPCalculator([si_fit.path, old], gp_std=True)


def test_the_mean_of_potentials_has_no_variance(si_fit, tmp_path):
    """nnp committee's mean merges the members' sparse points: one fit's
    posterior does not describe it, so the section is dropped."""
    from nnp import committee

    other = tmp_path / "other.nnp"
    other.write_text(si_fit.path.read_text())
    mean = pf.read(committee.write_mean([si_fit.path, other], tmp_path / "mean.nnp"))
    assert mean.models["Si"].gp.variance_factor is None and mean.format_version == 6


def _mutations(text: str):
    """(name, broken text, the line the error must name, words of the message)."""
    lines = text.splitlines()
    head = next(n for n, line in enumerate(lines, 1) if line.startswith("gp_variance "))
    M = int(lines[head - 1].split()[2])

    def edit(n, new):
        out = lines.copy()
        out[n - 1] = new(out[n - 1])
        return "\n".join(out) + "\n"

    def token(n, i, value):
        return edit(n, lambda s: " ".join(s.split()[:i] + [value] + s.split()[i + 1 :]))

    yield "count", token(head, 2, str(M + 1)), head, f"has {M + 1} rows but gp Si has {M}"
    yield "no-jitter", edit(head, lambda s: " ".join(s.split()[:3])), head, "expected 'gp_variance element count jitter"
    yield "jitter-word", token(head, 3, "noise"), head, "expected 'gp_variance element count jitter"
    yield "negative-jitter", token(head, 4, "-1e-8"), head, "jitter must be >= 0"
    yield "short-row", edit(head + 1, lambda s: s.rsplit(" ", 1)[0]), head + 1, f"expected {M} numbers"
    yield "long-row", edit(head + 3, lambda s: s + " 1"), head + 3, f"expected {M - 2} numbers"
    yield "nan", token(head + 2, 1, "nan"), head + 2, "row 2 of the variance factor (from its diagonal) must be finite"
    yield "inf", token(head + 2, 0, "inf"), head + 2, "must be finite"
    yield "zero-diagonal", token(head + 4, 0, "0"), head + 4, "diagonal entry of row 4 must be > 0"
    yield "negative-diagonal", token(head + M, 0, "-1.5"), head + M, f"diagonal entry of row {M} must be > 0"
    yield "truncated", "\n".join(lines[: head + M // 2]) + "\n", head + M // 2, "ends early"
    section = lines[head - 1 : head + M]
    twice = lines[: head + M] + section + lines[head + M :]
    yield "second", "\n".join(twice) + "\n", head + M + 1, "second 'gp_variance' section for Si"
    gp = next(n for n, line in enumerate(lines, 1) if line.startswith("gp "))
    early = lines[: gp - 1] + section + lines[gp - 1 : head - 1] + lines[head + M :]
    yield "before-gp", "\n".join(early) + "\n", gp, "'gp_variance Si' must follow 'gp Si'"
    yield "version-6", edit(1, lambda s: "nnp-potential 6"), head, "needs format version 7"


@pytest.mark.parametrize("case", range(14))
def test_malformed_sections_name_file_and_line(si_fit, tmp_path, case):
    name, broken, line, words = list(_mutations(si_fit.path.read_text()))[case]
    path = tmp_path / f"{name}.nnp"
    path.write_text(broken)
    assert_refused_at_line(path, line, words)


def test_version_7_without_the_section_is_refused(si_fit, tmp_path):
    path = tmp_path / "v7.nnp"
    path.write_text(without_variance(si_fit.path.read_text(), version="7"))
    with pytest.raises(ValueError, match=rf"^{re.escape(str(path))}:1: .*without 'gp_variance' sections .* version 6"):
        pf.read(path)


def test_bad_factors_from_python_are_refused(si_fit, tmp_path):
    pot = pf.read(si_fit.path)
    gp = pot.models["Si"].gp
    gp.variance_factor = gp.variance_factor[:-1]
    with pytest.raises(ValueError, match=r"variance factor has 54 numbers \(55 = M\(M\+1\)/2"):
        pf.dumps(pot)
    # Two identical sparse points and no jitter: K_MM is singular, the variance cannot be set up.
    gp.variance_factor = si_fit.pot.models["Si"].gp.variance_factor
    gp.sparse_points = gp.sparse_points.copy()
    gp.sparse_points[1] = gp.sparse_points[0]
    gp.variance_jitter = 0.0
    path = tmp_path / "singular.nnp"
    path.write_text(pf.dumps(pot))
    with pytest.raises(ValueError, match="not positive definite .* the variance cannot be computed"):
        _core.Potential(str(path))


# ------------------------------------------------------------------ LAMMPS

MPI_GATHER = """
import sys
import numpy as np
sys.path.insert(0, {tests_dir!r})
import test_lammps_plugin as t

lmp = t.new_lammps()
lmp.commands_string(open(sys.argv[1]).read())
std = np.array(lmp.gather("c_gstd", 1, 1), float)
if lmp.extract_setting("world_rank") == 0:
    np.savez(sys.argv[2], std=std, nprocs=lmp.extract_setting("world_size"))
lmp.close()
lmp.finalize()
"""


def lammps_text(path, data, newton: str = "on") -> str:
    import test_lammps_plugin as tl

    return tl.lammps_input(data, potential=path, newton=newton, extra="compute gstd all nnp/atom gp\n")


def lammps_gp_std(text: str) -> np.ndarray:
    import test_lammps_plugin as tl

    lmp = tl.new_lammps()
    try:
        lmp.commands_string(text)
        return np.array(lmp.gather("c_gstd", 1, 1), float)  # by atom ID
    finally:
        lmp.close()


@pytest.fixture(scope="module")
def si64(tmp_path_factory):
    """(LAMMPS data file, the same Atoms) of 64 rattled diamond Si atoms."""
    from ase import Atoms
    from test_lammps_plugin import diamond, ortho_box, write_data

    pos, length = diamond(2, 0.15, seed=6)
    data = write_data(tmp_path_factory.mktemp("si64") / "si64.data", pos, ortho_box(length))
    return data, Atoms("Si64", positions=pos, cell=[length] * 3, pbc=True)


@pytest.mark.parametrize("newton", ["on", "off"])
def test_lammps_column_equals_the_calculator(si_fit, si64, newton):
    data, atoms = si64
    std = lammps_gp_std(lammps_text(si_fit.path, data, newton))
    ref = gp_std(si_fit.path, atoms)
    assert np.ptp(ref) > 1e-3
    np.testing.assert_allclose(std, ref, rtol=0, atol=1e-10)


@pytest.mark.mpi
def test_lammps_two_ranks_match_serial(si_fit, si64, tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    import test_lammps_plugin as tl

    mpirun = tl.VENV_BIN / "mpirun"
    if not mpirun.exists():
        pytest.skip(f"no mpirun in {tl.VENV_BIN}")
    text = lammps_text(si_fit.path, si64[0])
    (tmp_path / "in.lmp").write_text(text)
    script = tmp_path / "run_mpi.py"
    script.write_text(MPI_GATHER.format(tests_dir=str(Path(tl.__file__).resolve().parent)))
    out = subprocess.run([str(mpirun), "-np", "2", sys.executable, str(script), str(tmp_path / "in.lmp"),
                          str(tmp_path / "out.npz")], env=tl._subprocess_env(), capture_output=True, text=True,
                         timeout=180)
    assert out.returncode == 0, out.stdout + out.stderr
    parallel = dict(np.load(tmp_path / "out.npz"))
    assert int(parallel["nprocs"]) == 2
    np.testing.assert_allclose(parallel["std"], lammps_gp_std(text), rtol=0, atol=1e-10)


@pytest.mark.parametrize("case", ["no-section", "network", "committee", "argument"])
def test_lammps_refuses_clearly(si_fit, si64, tmp_path, case):
    from test_lammps_errors import assert_one_error, run_lmp
    from test_lammps_plugin import TINY

    old = tmp_path / "v6.nnp"
    old.write_text(without_variance(si_fit.path.read_text()))
    files, compute, patterns = {
        "no-section": ([old], "nnp/atom gp", [r"Compute nnp/atom gp: .*v6\.nnp: the GP of element Si has no "
                                              r"'gp_variance' section"]),
        "network": ([TINY], "nnp/atom gp", [r"Compute nnp/atom gp: .*element Si has no GP"]),
        "committee": ([si_fit.path, old], "nnp/atom gp", [r"Compute nnp/atom gp: .*committee of 2 files"]),
        "argument": ([si_fit.path], "nnp/atom std", [r"expected 'compute ID group nnp/atom'.*nnp/atom gp"]),
    }[case]
    names = " ".join(f'"{f}"' for f in files)
    text = (f'units metal\natom_style atomic\nread_data "{si64[0]}"\npair_style nnp\npair_coeff * * {names} Si\n'
            f"compute g all {compute}\ndump 1 all custom 1 g.dump id c_g\nrun 0\n")
    assert_one_error(*run_lmp(tmp_path, text, 1), *patterns)
