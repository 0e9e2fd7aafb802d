"""Symmetry functions from the C++ core against dscribe (an independent
implementation), the tests-only torch reference, and finite differences."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import reference_descriptors as reference
from ase import Atoms
from ase.data import atomic_numbers
from conftest import mixed_sic, rattled_si, si_cluster, test_descriptor, triclinic_si

from nnp import descriptors as D
from nnp.descriptors import G2, G4, G5, DescriptorSet, selection

RC = 4.5
G2_PARAMS = [(0.05, 0.0), (0.5, 0.0), (1.0, 2.5)]
G4_PARAMS = [(0.01, 1.0, 1), (0.02, 2.0, -1), (0.05, 4.0, 1), (0.01, 16.0, -1)]
G5_PARAMS = [(0.01, 1.0, -1), (0.03, 2.0, 1), (0.005, 4.0, -1)]


def dscribe_acsf(species, periodic):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from dscribe.descriptors import ACSF

    return ACSF(
        species=list(species),
        r_cut=RC,
        g2_params=[list(p) for p in G2_PARAMS],
        g4_params=[list(p) for p in G4_PARAMS],
        g5_params=[list(p) for p in G5_PARAMS],
        periodic=periodic,
    )


def ours_in_dscribe_order(species) -> DescriptorSet:
    """Our functions laid out as dscribe lays out its ACSF vector: per
    neighbour element (by atomic number) G1 = Σ f_c, then G2; per element pair
    G4 then G5."""
    order = sorted(species, key=lambda s: atomic_numbers[s])
    funcs = []
    for e in order:
        funcs.append(G2(e, 0.0, 0.0, RC))  # dscribe's G1
        funcs += [G2(e, eta, rs, RC) for eta, rs in G2_PARAMS]
    for i, a in enumerate(order):
        for b in order[i:]:
            funcs += [G4((a, b), eta, z, lam, 0.0, RC) for eta, z, lam in G4_PARAMS]
            funcs += [G5((a, b), eta, z, lam, 0.0, RC) for eta, z, lam in G5_PARAMS]
    return DescriptorSet(tuple(order), {e: tuple(funcs) for e in order})


def random_structure(kind: str, seed: int) -> Atoms:
    rng = np.random.default_rng(seed)
    if kind == "periodic":
        atoms = rattled_si((1, 1, 1), 0.2, seed)
    elif kind == "triclinic":
        atoms = triclinic_si(seed)
    elif kind == "cluster":
        atoms = si_cluster(seed)
    elif kind == "random-gas":  # random open structure with a minimum distance
        pos = []
        while len(pos) < 14:
            p = rng.uniform(0, 6, 3)
            if all(np.linalg.norm(p - q) > 1.8 for q in pos):
                pos.append(p)
        atoms = Atoms("Si14", positions=pos)
    elif kind == "binary":
        atoms = mixed_sic(seed)
    else:
        raise ValueError(kind)
    return atoms


@pytest.mark.parametrize("kind", ["periodic", "triclinic", "cluster", "random-gas", "binary"])
@pytest.mark.parametrize("seed", [0, 1])
def test_values_match_dscribe(kind, seed):
    atoms = random_structure(kind, seed)
    species = sorted(set(atoms.get_chemical_symbols()))
    reference = dscribe_acsf(species, periodic=bool(atoms.pbc.any())).create(atoms)
    ours = ours_in_dscribe_order(species).compute(atoms)
    assert ours.shape == reference.shape
    np.testing.assert_allclose(ours, reference, rtol=1e-10, atol=1e-12)
    assert np.abs(reference).max() > 0.1  # the comparison is not vacuous


def jacobian_fd_error(ds: DescriptorSet, atoms: Atoms, h: float = 1e-5) -> tuple[float, float]:
    """Max |analytic − central-difference| of ∂G_a/∂r_k over all a, k, and the
    largest analytic entry."""
    feats = ds.featurize(atoms)
    n = len(atoms)
    M = max(ds.size(e) for e in ds.elements)
    analytic = np.zeros((n, M, n, 3))
    for f in feats.values():
        for c, j, d in zip(f.pair_center, f.pair_neighbor, f.dG_dr):
            i = f.atoms[c]
            m = d.shape[0]
            analytic[i, :m, j] += d
            analytic[i, :m, i] -= d
    numeric = np.zeros_like(analytic)
    for k in range(n):
        for c in range(3):
            plus, minus = atoms.copy(), atoms.copy()
            plus.positions[k, c] += h
            minus.positions[k, c] -= h
            numeric[:, :, k, c] = (_dense(ds, plus, M) - _dense(ds, minus, M)) / (2 * h)
    return np.abs(analytic - numeric).max(), np.abs(analytic).max()


def _dense(ds, atoms, M):
    out = np.zeros((len(atoms), M))
    for f in ds.featurize(atoms, derivatives=False).values():
        out[f.atoms, : f.G.shape[1]] = f.G
    return out


@pytest.mark.parametrize("cutoff_function", ["cos", "tanh3"])
@pytest.mark.parametrize("angular_sum", ["half", "full"])
def test_jacobian_matches_finite_differences(cutoff_function, angular_sum):
    ds = test_descriptor(cutoff_function=cutoff_function, angular_sum=angular_sum)
    err, scale = jacobian_fd_error(ds, rattled_si((1, 1, 1), 0.15, 3))
    assert scale > 0.01
    assert err < 1e-7 * scale


def test_jacobian_binary_and_cluster():
    ds = test_descriptor(elements=("Si", "C"))
    err, scale = jacobian_fd_error(ds, mixed_sic(4))
    assert err < 1e-7 * scale
    ds1 = test_descriptor()
    err, scale = jacobian_fd_error(ds1, si_cluster(5)[:10])
    assert err < 1e-7 * scale


def _trimer(r_ij: float, r_ik: float, angle_deg: float = 70.0) -> Atoms:
    t = np.radians(angle_deg)
    return Atoms("Si3", positions=[[0, 0, 0], [r_ij, 0, 0], [r_ik * np.cos(t), r_ik * np.sin(t), 0]])


@pytest.mark.parametrize("cutoff_function", ["cos", "tanh3"])
def test_atoms_at_and_beyond_the_cutoff(cutoff_function):
    rc = 4.0
    ds = DescriptorSet(
        ("Si",),
        {"Si": (G2("Si", 0.1, 0.0, rc), G4(("Si", "Si"), 0.01, 2.0, 1, 0.0, rc), G5(("Si", "Si"), 0.01, 1.0, -1, 0.0, rc))},
        cutoff_function,
    )
    exactly = ds.compute(Atoms("Si2", positions=[[0, 0, 0], [rc, 0, 0]]))
    beyond = ds.compute(Atoms("Si2", positions=[[0, 0, 0], [rc + 1e-4, 0, 0]]))
    assert np.all(exactly == 0.0) and np.all(beyond == 0.0)
    # Third atom exactly at, just inside and just beyond r_c: values continuous,
    # derivatives finite and equal to finite differences.
    for r_ik in (rc - 1e-4, rc, rc + 1e-4):
        err, _ = jacobian_fd_error(ds, _trimer(2.4, r_ik), h=1e-6)
        assert err < 1e-6
    g_in = ds.compute(_trimer(2.4, rc - 1e-6))
    g_at = ds.compute(_trimer(2.4, rc))
    np.testing.assert_allclose(g_in, g_at, atol=1e-8)


def test_invariances():
    ds = test_descriptor(elements=("Si", "C"))
    atoms = mixed_sic(7)
    g0 = _dense(ds, atoms, ds.size("Si"))
    moved = atoms.copy()
    moved.translate([0.3, -1.7, 2.2])
    np.testing.assert_allclose(_dense(ds, moved, ds.size("Si")), g0, rtol=1e-12, atol=1e-12)
    rotated = atoms.copy()
    rotated.rotate(37, (1, 2, 3), rotate_cell=True)
    np.testing.assert_allclose(_dense(ds, rotated, ds.size("Si")), g0, rtol=1e-10, atol=1e-12)
    perm = np.random.default_rng(0).permutation(len(atoms))
    np.testing.assert_allclose(_dense(ds, atoms[perm], ds.size("Si")), g0[perm], rtol=1e-12, atol=1e-12)
    wrapped = atoms.copy()
    wrapped.positions += atoms.cell.array[0] * 2 - atoms.cell.array[2]  # whole-lattice shift
    np.testing.assert_allclose(_dense(ds, wrapped, ds.size("Si")), g0, rtol=1e-10, atol=1e-12)


def test_full_angular_sum_doubles_angular_functions():
    atoms = rattled_si((1, 1, 1), 0.1, 2)
    half = test_descriptor(angular_sum="half")
    full = test_descriptor(angular_sum="full")
    angular = np.array([not isinstance(f, G2) for f in half.functions["Si"]])
    gh, gf = half.compute(atoms), full.compute(atoms)
    np.testing.assert_allclose(gf[:, angular], 2 * gh[:, angular], rtol=1e-14)
    np.testing.assert_array_equal(gf[:, ~angular], gh[:, ~angular])


@pytest.mark.parametrize("cutoff_function", ["cos", "tanh3"])
@pytest.mark.parametrize("angular_sum", ["half", "full"])
def test_matches_torch_reference(cutoff_function, angular_sum):
    ds = test_descriptor(elements=("Si", "C"), cutoff_function=cutoff_function, angular_sum=angular_sum)
    atoms = mixed_sic(8)
    ours, ref = ds.featurize(atoms), reference.featurize(ds, atoms)
    for e in ds.elements:
        np.testing.assert_array_equal(ours[e].atoms, ref[e]["atoms"])
        np.testing.assert_allclose(ours[e].G, ref[e]["G"], rtol=1e-11, atol=1e-13)
        # Compare Jacobians per (centre, neighbour) after summing image entries.
        def summed(f):
            out = {}
            for c, j, d in zip(f["pair_center"], f["pair_neighbor"], f["dG_dr"]):
                out[(c, j)] = out.get((c, j), 0) + d
            return out

        a, b = summed(ours[e]), summed(ref[e])
        for key in set(a) | set(b):
            np.testing.assert_allclose(a.get(key, 0), b.get(key, 0), rtol=1e-10, atol=1e-12)


def _rattled_frames(name="Si", crystal="diamond", a=5.43):
    from ase.build import bulk

    frames = []
    for k in range(3):
        atoms = bulk(name, crystal, a=a, cubic=True)
        atoms.rattle(0.1, seed=k)
        frames.append(atoms)
    return frames


def _si_frames():
    return _rattled_frames()


def test_long_series_c_presets_select_that_many_functions(monkeypatch):
    from nnp.descriptors import selection

    asked = []
    monkeypatch.setattr(selection, "selected", lambda count, elements, structures, wide=False: asked.append(
        (count, wide)) or "chosen")
    assert [D.resolve(n, ["Si"], _si_frames()) for n in ("c96", "C128")] == ["chosen", "chosen"]
    assert asked == [(96, False), (128, False)]
    with pytest.raises(ValueError, match="C96"):
        D.resolve("C96-wide", ["Si"], _si_frames())  # the -wide pool has too few G5 keys for 96


def test_presets():
    names = D.preset_names()
    assert len(names) == 42  # series C also as C96 and C128
    frames = _si_frames()
    for name in names:
        if name in ("C96", "C128"):
            continue  # the same selection as C64 with more functions (below); a minute each on these frames
        ds = D.resolve(name, ["Si"], frames)
        series, length = name[0], int(name[1:].split("-")[0])
        assert ds.size("Si") == length
        assert ds.cutoff == 6.0
        if series == "C":  # chosen by CUR: any mix of G2 and G4 (-wide: G5), radial first
            kinds = [isinstance(f, G2) for f in ds.functions["Si"]]
            angular = G5 if name.endswith("-wide") else G4
            assert kinds == sorted(kinds, reverse=True)
            assert all(isinstance(f, (G2, angular)) for f in ds.functions["Si"])
            continue
        radial = [f for f in ds.functions["Si"] if isinstance(f, G2)]
        assert len(radial) == D.SERIES["A" if series == "S" else series][length][0]
        assert all((f.rs > 0) == (series == "S") for f in radial)
        angular = G5 if name.endswith("-wide") else G4
        assert all(isinstance(f, (G2, angular)) for f in ds.functions["Si"])
        assert ds.cutoff == 6.0
        if series != "S":
            assert D.preset(name) == ds
    with pytest.raises(ValueError, match="unknown descriptor preset"):
        D.preset("C52")
    for name in ("S52", "C52"):
        with pytest.raises(ValueError, match="structures are needed"):
            D.resolve(name, ["Si"])


@pytest.mark.parametrize("name", ["C64", "C64-wide"])  # the two that descriptor: auto chooses between
def test_default_candidates_are_data_driven_and_within_64(name):
    ds = D.resolve(name, ["Si"], _si_frames())
    n_radial = sum(isinstance(f, G2) for f in ds.functions["Si"])
    assert 40 <= ds.size("Si") <= 64 and ds.size("Si") - n_radial > n_radial


def test_wide_pool_is_factorisable():
    """The -wide pool: the radial candidates of the narrow one, and G5 with
    integer ζ (the core's moment factorisation), centred on the narrow pool's
    η grid and shifted onto CUR_WIDE_SHIFTED shells of each like pair."""
    distances = {"Si": np.random.default_rng(3).uniform(2.2, 6.0, 5_000),
                 "C": np.random.default_rng(4).uniform(1.8, 6.0, 5_000)}
    narrow = D.candidate_pool(("C", "Si"), distances)
    wide = D.candidate_pool(("C", "Si"), distances, wide=True)
    assert [f for f in wide if isinstance(f, G2)] == [f for f in narrow if isinstance(f, G2)]
    g5 = [f for f in wide if not isinstance(f, G2)]
    zetas = selection.CUR_WIDE_ZETAS
    assert all(isinstance(f, G5) and f.zeta in zetas and f.zeta == int(f.zeta) <= 8 for f in g5)
    shifted = [f for f in g5 if f.rs > 0]
    assert len(g5) - len(shifted) == 3 * len(selection.CUR_ANGULAR_ETA_RC2) * len(zetas) * 2  # pairs × η × ζ × λ
    assert len(shifted) == 2 * selection.CUR_WIDE_SHIFTED * len(zetas) * 2
    assert {f.neighbors for f in shifted} == {("C", "C"), ("Si", "Si")}
    for e in ("C", "Si"):  # each like pair on the shells of its own distances
        rs = sorted({f.rs for f in shifted if f.neighbors == (e, e)})
        assert rs == [g.rs for g in D.shifted_radial(distances[e], selection.CUR_WIDE_SHIFTED, [e])]


def test_cur_select_caps_the_groups():
    """With groups, once max_groups labels are chosen only their columns (and
    unlabelled ones) are: the -wide selection's cap on distinct radial weights."""
    rng = np.random.default_rng(5)
    x = rng.normal(size=(400, 8))
    groups = np.array([-1, 0, 0, 1, 1, 2, 2, 3])
    free = D.cur_select(x, 8)
    assert len({groups[i] for i in free if groups[i] >= 0}) == 4
    capped = D.cur_select(x, 5, groups=groups, max_groups=2)
    labels = {int(groups[i]) for i in capped if groups[i] >= 0}
    assert len(labels) == 2 and len(capped) == 5 == len(set(capped))
    with pytest.raises(ValueError, match="from 2 groups"):
        D.cur_select(x, 6, groups=groups, max_groups=2)
    ds = D.resolve("C28-wide", ["Si"], _si_frames())
    keys = {(f.eta, f.rs) for f in ds.functions["Si"] if isinstance(f, G5)}
    assert 0 < len(keys) <= selection.CUR_WIDE_MAX_KEYS


def test_shifted_radial_covers_the_distances():
    rng = np.random.default_rng(0)
    distances = rng.uniform(2.2, 6.5, 10_000)
    g2 = D.shifted_radial(distances, 12, ["Si"], rc=6.0)
    centres = np.array([f.rs for f in g2])
    assert len(g2) == 12 and centres[0] == pytest.approx(2.2) and centres[-1] == pytest.approx(0.93 * 6.0)
    spacing = np.diff(centres)
    np.testing.assert_allclose(spacing, spacing[0], rtol=1e-5)
    assert all(f.eta == pytest.approx(1 / (2 * spacing[0] ** 2), rel=1e-5) for f in g2)
    # Two neighbour elements: the centres for each.
    assert len(D.shifted_radial(distances, 4, ["Si", "C"])) == 8
    with pytest.raises(ValueError, match="no neighbour distances"):
        D.shifted_radial(np.array([7.0]), 4, ["Si"], rc=6.0)


def _cur_reference(matrix, count):
    """CUR as Imbalzano et al. write it: SVD of the (deflated) matrix itself."""
    x = (matrix - matrix.mean(0)) / matrix.std(0)
    chosen = []
    for _ in range(count):
        leverage = np.linalg.svd(x, full_matrices=False)[2][0] ** 2
        leverage[chosen] = -1
        c = int(np.argmax(leverage))
        chosen.append(c)
        col = x[:, c : c + 1].copy()
        x = x - col @ (col.T @ x) / (col * col).sum()
    return chosen


def test_cur_select_matches_the_svd_form_and_skips_redundant_columns():
    rng = np.random.default_rng(1)
    base = rng.normal(size=(500, 6)) @ rng.normal(size=(6, 6))
    np.testing.assert_array_equal(D.cur_select(base, 5), _cur_reference(base, 5))
    # A column that is a multiple of a chosen one adds nothing: never picked
    # while an independent one is left; a constant column is never picked.
    x = np.column_stack([base[:, 0], base[:, 1], 3 * base[:, 0] + 1, np.full(500, 2.0), base[:, 2]])
    picks = D.cur_select(x, 3)
    assert 3 not in picks and {0, 2} & set(picks) != {0, 2} and {1, 4} <= set(picks)
    with pytest.raises(ValueError, match="only 4 candidates vary"):
        D.cur_select(x, 5)
    # Columns that are not allowed are skipped, even the best one.
    first = D.cur_select(x, 1)[0]
    allowed = np.ones(5, dtype=bool)
    allowed[first] = False
    assert first not in D.cur_select(x, 3, allowed)


def test_tail_ratio_flags_columns_with_outlying_values():
    rng = np.random.default_rng(2)
    bulk = rng.uniform(0.0, 1.0, 10_000)
    spiky = bulk.copy()
    spiky[:5] = 3.0  # five close contacts far beyond the rest
    ratio = D.tail_ratio(np.column_stack([bulk, spiky, np.ones(10_000)]))
    assert ratio[0] == pytest.approx(1.0, abs=0.01)
    assert ratio[1] == pytest.approx(3.0, rel=0.01) and ratio[1] > D.CUR_MAX_TAIL_RATIO
    assert ratio[2] == np.inf  # constant: never usable


def test_selected_descriptors_per_element():
    frames = _rattled_frames("SiC", "zincblende", a=4.36)
    ds = D.resolve("C28", ["Si", "C"], frames)
    for centre in ("Si", "C"):
        assert ds.size(centre) == 28
        used = {e for f in ds.functions[centre] for e in ((f.neighbor,) if isinstance(f, G2) else f.neighbors)}
        assert used == {"Si", "C"}
    # Deterministic: the same data choose the same functions.
    assert D.resolve("C28", ["Si", "C"], frames) == ds
    with pytest.raises(ValueError, match="atoms of element C"):
        D.selected(16, ["Si", "C"], _si_frames())


def test_bad_descriptor_definitions():
    with pytest.raises(ValueError, match="lambda"):
        DescriptorSet(("Si",), {"Si": (G4(("Si", "Si"), 0.1, 1.0, 2),)})
    with pytest.raises(ValueError, match="zeta"):
        DescriptorSet(("Si",), {"Si": (G5(("Si", "Si"), 0.1, 0.5, 1),)})
    with pytest.raises(ValueError, match="not in"):
        DescriptorSet(("Si",), {"Si": (G2("C", 0.1),)})
    with pytest.raises(ValueError, match="rs < rc"):
        DescriptorSet(("Si",), {"Si": (G2("Si", 0.1, 7.0, 6.0),)})
    with pytest.raises(ValueError, match="duplicate"):
        DescriptorSet(("Si",), {"Si": (G2("Si", 0.1), G2("Si", 0.1))})
    ds = test_descriptor()
    with pytest.raises(ValueError, match="element C"):
        ds.compute(Atoms("SiC", positions=[[0, 0, 0], [2, 0, 0]]))
    with pytest.raises(ValueError, match="same position"):
        ds.compute(Atoms("Si2", positions=[[0, 0, 0], [0, 0, 0]]))
