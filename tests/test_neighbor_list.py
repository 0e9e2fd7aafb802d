"""The C++ neighbour list (nnp._core.neighbor_list) against ASE's
(ase.neighborlist.neighbor_list, an independent implementation).

Every entry is one periodic image: both lists must hold exactly the same
multiset of (i, j, lattice translation S), and the same vectors D = r_j − r_i
+ S·A to 1e-12 Å. Entries are matched by their integer translations (not by
rounded vectors), so the comparison never depends on rounding luck.
"""

from __future__ import annotations


import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.neighborlist import neighbor_list as ase_neighbor_list
from conftest import rattled_si, si_cluster, triclinic_si

from nnp import _core

ATOL = 1e-12  # Å, on vectors


# ----------------------------------------------------------------------------
# Helpers


def core_list(positions, cell, pbc, cutoff):
    """nnp._core.neighbor_list, with its output format checked; returns i, j, D."""
    positions = np.asarray(positions, dtype=np.float64)
    n = len(positions)
    offsets, index, vectors = _core.neighbor_list(
        positions, np.asarray(cell, dtype=np.float64), [bool(p) for p in pbc], float(cutoff)
    )
    assert offsets.dtype == np.int64 and offsets.shape == (n + 1,)
    assert index.dtype == np.int32 and index.ndim == 1
    assert vectors.dtype == np.float64 and vectors.shape == (len(index), 3)
    assert offsets[0] == 0 and offsets[-1] == len(index)
    assert np.all(np.diff(offsets) >= 0)
    assert np.all((index >= 0) & (index < max(n, 1)))
    i = np.repeat(np.arange(n), np.diff(offsets))
    return i, index.astype(np.int64), vectors


def translations(positions, cell, pbc, i, j, D):
    """Integer lattice translation S of each entry, from D = r_j − r_i + S·A
    (zero along non-periodic directions); checks that D is such a vector."""
    S = np.zeros((len(i), 3), dtype=np.int64)
    periodic = np.flatnonzero(pbc)
    if len(periodic) and len(i):
        A = np.asarray(cell, dtype=np.float64)[periodic]
        lattice_part = D - (positions[j] - positions[i])
        s = lattice_part @ np.linalg.pinv(A)
        S[:, periodic] = np.rint(s).astype(np.int64)
        np.testing.assert_allclose(s, np.rint(s), rtol=0, atol=1e-6)
    return S


def assert_same_as_ase(positions, cell, pbc, cutoff, *, core_cell=None, ase_cell=None):
    """Ours (given `core_cell`, default `cell`) and ASE (given `ase_cell`,
    default `cell`) list the same images with the same vectors."""
    positions = np.asarray(positions, dtype=np.float64)
    n = len(positions)
    cell = np.asarray(cell, dtype=np.float64)
    core_cell = cell if core_cell is None else core_cell
    ase_cell = cell if ase_cell is None else ase_cell

    atoms = Atoms(numbers=np.full(n, 14), positions=positions, cell=ase_cell, pbc=pbc)
    i_a, j_a, D_a, S_a = ase_neighbor_list("ijDS", atoms, cutoff)
    i_c, j_c, D_c = core_list(positions, core_cell, pbc, cutoff)
    S_c = translations(positions, cell, pbc, i_c, j_c, D_c)

    # Same number of neighbours for every atom, exactly.
    np.testing.assert_array_equal(np.bincount(i_c, minlength=n), np.bincount(i_a, minlength=n))
    assert len(i_c) == len(i_a)

    def order(i, j, S):
        return np.lexsort((S[:, 2], S[:, 1], S[:, 0], j, i))

    ka, kc = order(i_a, j_a, S_a), order(i_c, j_c, S_c)
    key_a = np.column_stack([i_a, j_a, S_a])[ka]
    key_c = np.column_stack([i_c, j_c, S_c])[kc]
    np.testing.assert_array_equal(key_c, key_a)
    if len(key_c) > 1:  # no image listed twice
        assert np.all(np.any(np.diff(key_c, axis=0) != 0, axis=1))
    np.testing.assert_allclose(D_c[kc], D_a[ka], rtol=0, atol=ATOL)

    # Strictly inside the cutoff; atom i at zero translation never listed.
    if len(D_c):
        assert np.linalg.norm(D_c, axis=1).max() < cutoff
    assert not np.any((i_c == j_c) & np.all(S_c == 0, axis=1))
    return len(i_c)


def random_in_cell(rng, cell, n):
    return rng.random((n, 3)) @ np.asarray(cell, dtype=np.float64)


def sheared_cell(scale, seed):
    """A strongly triclinic cell, rotated into a general orientation."""
    rng = np.random.default_rng(seed)
    cell = np.array([[8.0, 0.0, 0.0], [6.5, 5.0, 0.0], [-5.5, 4.0, 6.0]]) * scale
    rotation, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    return cell @ rotation


# ----------------------------------------------------------------------------
# Periodic cells


@pytest.mark.parametrize(
    "lengths, n, cutoff, seed",
    [
        ((10.0, 12.0, 9.0), 200, 4.0, 0),
        ((20.0, 20.0, 20.0), 800, 6.0, 1),
        ((5.0, 7.0, 6.0), 30, 5.0, 2),  # thinner than 2 cutoffs
        ((10.0, 10.0, 10.0), 100, 5.0, 3),  # cell exactly 2 cutoffs thick
    ],
)
def test_orthorhombic(lengths, n, cutoff, seed):
    rng = np.random.default_rng(seed)
    cell = np.diag(lengths)
    assert assert_same_as_ase(random_in_cell(rng, cell, n), cell, [True] * 3, cutoff) > 0


@pytest.mark.parametrize("scale", [0.5, 0.8, 1.1, 1.4])
def test_strongly_triclinic(scale):
    rng = np.random.default_rng(10)
    cell = sheared_cell(scale, seed=11)
    assert assert_same_as_ase(random_in_cell(rng, cell, 60), cell, [True] * 3, 5.0) > 0


@pytest.mark.parametrize("cutoff", [6.0, 12.0])
def test_si_primitive_cell_smaller_than_cutoff(cutoff):
    # 2 atoms, cell vectors 3.84 Å: many images of every atom, including itself.
    si = bulk("Si", "diamond", a=5.43)
    count = assert_same_as_ase(si.positions, si.cell.array, [True] * 3, cutoff)
    assert count == {6.0: 92, 12.0: 712}[cutoff]


def test_single_atom_cell_lists_only_images_of_itself():
    cu = bulk("Cu", "fcc", a=3.6)  # 1 atom
    assert assert_same_as_ase(cu.positions, cu.cell.array, [True] * 3, 8.0) == 176


def test_tiny_triclinic_cell():
    rng = np.random.default_rng(4)
    cell = np.array([[1.0, 0.0, 0.0], [0.3, 1.1, 0.0], [0.2, -0.4, 0.9]])
    assert assert_same_as_ase(random_in_cell(rng, cell, 3), cell, [True] * 3, 4.5) > 1000


@pytest.mark.parametrize("make", [lambda: rattled_si((2, 2, 2), 0.1, 0), lambda: triclinic_si(1)],
                         ids=["rattled_si", "triclinic_si"])
def test_project_structures(make):
    atoms = make()
    assert assert_same_as_ase(atoms.positions, atoms.cell.array, atoms.pbc, 4.5) > 0


# ----------------------------------------------------------------------------
# Partially periodic and open systems


@pytest.mark.parametrize(
    "pbc",
    [(True, True, False), (True, False, True), (False, True, False), (False, False, True)],
    ids=["TTF", "TFT", "FTF", "FFT"],
)
def test_mixed_pbc(pbc):
    rng = np.random.default_rng(5)
    cell = np.array([[7.0, 0.5, 0.2], [1.0, 6.0, 0.3], [0.4, -0.8, 9.0]])
    positions = random_in_cell(rng, cell, 80)
    positions[:, 2] += rng.normal(0.0, 3.0, 80)  # some atoms out of the cell
    assert assert_same_as_ase(positions, cell, pbc, 5.0) > 0


def test_slab_with_zero_out_of_plane_vector():
    # Small periodic a, b (several images) and c = 0 along the open direction.
    rng = np.random.default_rng(6)
    cell = np.array([[2.5, 0.0, 0.0], [1.2, 2.2, 0.0], [0.0, 0.0, 0.0]])
    positions = rng.random((10, 3)) * [2.5, 2.2, 10.0]
    assert assert_same_as_ase(positions, cell, [True, True, False], 6.0) > 0


def test_wire_with_zero_open_vectors():
    rng = np.random.default_rng(7)
    cell = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [1.7, 0.3, 0.2]])
    assert assert_same_as_ase(rng.random((5, 3)) * 4.0, cell, [False, False, True], 5.0) > 0


def test_non_periodic_vectors_are_ignored():
    # Garbage (NaN) along the open direction: ours must not read it.
    rng = np.random.default_rng(8)
    cell = np.array([[4.0, 0.0, 0.0], [0.5, 4.5, 0.0], [0.0, 0.0, 0.0]])
    garbage = cell.copy()
    garbage[2] = np.nan
    positions = random_in_cell(rng, cell, 20) + [0.0, 0.0, 1.0] * rng.normal(0.0, 4.0, (20, 1))
    assert assert_same_as_ase(positions, cell, [True, True, False], 5.0, core_cell=garbage) > 0


@pytest.mark.parametrize("cell_kind", ["zero", "given", "nan"])
def test_open_cluster(cell_kind):
    rng = np.random.default_rng(9)
    positions = rng.normal(0.0, 4.0, (150, 3))
    core_cell = {"zero": np.zeros((3, 3)), "given": np.eye(3) * 3.0, "nan": np.full((3, 3), np.nan)}[cell_kind]
    # The cell of a fully open system is ignored entirely (ASE gets zeros).
    count = assert_same_as_ase(positions, np.zeros((3, 3)), [False] * 3, 4.0, core_cell=core_cell)
    assert count > 0


def test_project_cluster():
    atoms = si_cluster(2)
    assert assert_same_as_ase(atoms.positions, atoms.cell.array, atoms.pbc, 4.5) > 0


def test_planar_and_distant_open_systems():
    rng = np.random.default_rng(12)
    planar = np.column_stack([rng.random((40, 2)) * 10.0, np.zeros(40)])
    assert assert_same_as_ase(planar, np.zeros((3, 3)), [False] * 3, 3.0) > 0
    far_apart = np.array([[0.0, 0.0, 0.0], [1e5, 0.0, 0.0]])
    assert assert_same_as_ase(far_apart, np.zeros((3, 3)), [False] * 3, 3.0) == 0


# ----------------------------------------------------------------------------
# Positions outside the cell, special configurations


@pytest.mark.parametrize("cells_away", [5, 50, 10**6])
def test_atoms_far_outside_the_cell(cells_away):
    rng = np.random.default_rng(13)
    cell = np.array([[6.0, 0.0, 0.0], [2.0, 5.5, 0.0], [1.0, 1.5, 7.0]])
    positions = random_in_cell(rng, cell, 50) + rng.integers(-cells_away, cells_away, (50, 3)) @ cell
    assert assert_same_as_ase(positions, cell, [True] * 3, 5.5) > 0


def test_unwrapped_positions_give_the_same_vectors():
    # Moving atoms by lattice vectors k·A changes translations, not vectors.
    rng = np.random.default_rng(14)
    cell = sheared_cell(1.0, seed=15)
    pbc = [True] * 3
    inside = random_in_cell(rng, cell, 40)
    k = rng.integers(-3, 4, (40, 3))
    moved = inside + k @ cell
    i0, j0, D0 = core_list(inside, cell, pbc, 5.0)
    i1, j1, D1 = core_list(moved, cell, pbc, 5.0)
    S0 = translations(inside, cell, pbc, i0, j0, D0)
    # r'_j − r'_i + S'·A = r_j − r_i + (S' + k_j − k_i)·A
    S1 = translations(moved, cell, pbc, i1, j1, D1) + k[j1] - k[i1]
    key0, key1 = np.column_stack([i0, j0, S0]), np.column_stack([i1, j1, S1])
    o0, o1 = np.lexsort(key0.T[::-1]), np.lexsort(key1.T[::-1])
    np.testing.assert_array_equal(key0[o0], key1[o1])
    np.testing.assert_allclose(D0[o0], D1[o1], rtol=0, atol=1e-12)


def test_atoms_on_cell_faces_and_corners():
    positions = np.array([[0.0, 0.0, 0.0], [5.0, 5.0, 5.0], [5.0, 0.0, 2.5], [-0.0, 5.0, 0.0]])
    assert assert_same_as_ase(positions, np.eye(3) * 5.0, [True] * 3, 5.1) == 78


def test_coincident_atoms_are_neighbours_at_zero_distance():
    positions = np.array([[1.0, 1.0, 1.0], [1.0, 1.0, 1.0], [2.0, 1.0, 1.0]])
    assert assert_same_as_ase(positions, np.eye(3) * 4.0, [True] * 3, 3.0) == 6
    i, j, D = core_list(positions, np.zeros((3, 3)), [False] * 3, 3.0)
    zero = np.linalg.norm(D, axis=1) == 0.0
    assert sorted(zip(i[zero].tolist(), j[zero].tolist())) == [(0, 1), (1, 0)]


def test_every_entry_has_its_exact_reverse():
    # i → j at D and j → i at −D, bit for bit.
    rng = np.random.default_rng(16)
    cell = sheared_cell(0.7, seed=17)
    i, j, D = core_list(random_in_cell(rng, cell, 30), cell, [True] * 3, 6.0)
    forward = {(a, b, *d) for a, b, d in zip(i.tolist(), j.tolist(), D.tolist())}
    backward = {(b, a, *(-x for x in d)) for a, b, d in zip(i.tolist(), j.tolist(), D.tolist())}
    assert forward == backward


def test_deterministic():
    rng = np.random.default_rng(18)
    cell = sheared_cell(1.2, seed=19)
    positions = random_in_cell(rng, cell, 100)
    first = _core.neighbor_list(positions, cell, [True, True, True], 5.0)
    second = _core.neighbor_list(positions, cell, [True, True, True], 5.0)
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)


def test_no_atoms():
    offsets, index, vectors = _core.neighbor_list(np.zeros((0, 3)), np.eye(3) * 5.0, [True] * 3, 4.0)
    np.testing.assert_array_equal(offsets, [0])
    assert index.shape == (0,) and vectors.shape == (0, 3)


# ----------------------------------------------------------------------------
# Bad input


@pytest.mark.parametrize(
    "cell, pbc, message",
    [
        (np.zeros((3, 3)), (True, True, True), "degenerate periodic cell"),
        ([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [1.0, 1.0, 0.0]], (True, True, True), "degenerate periodic cell"),
        ([[1.0, 0.0, 0.0], [2.0, 0.0, 0.0], [0.0, 0.0, 0.0]], (True, True, False), "degenerate periodic cell"),
        (np.zeros((3, 3)), (True, False, False), "degenerate periodic cell"),
        ([[np.nan, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]], (True, True, True), "non-finite"),
    ],
    ids=["zero", "coplanar", "parallel-2d", "zero-1d", "nan"],
)
def test_degenerate_periodic_cell_raises(cell, pbc, message):
    with pytest.raises(ValueError, match=message):
        _core.neighbor_list(np.zeros((1, 3)), np.asarray(cell, dtype=np.float64), list(pbc), 3.0)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("pbc", [(True, True, True), (False, False, False)], ids=["periodic", "open"])
def test_non_finite_position_raises_naming_the_atom(bad, pbc):
    positions = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    positions[2, 1] = bad
    with pytest.raises(ValueError, match=r"\batom 2\b"):
        _core.neighbor_list(positions, np.eye(3) * 5.0, list(pbc), 3.0)


@pytest.mark.parametrize("cutoff", [0.0, -1.0, np.nan, np.inf])
def test_bad_cutoff_raises(cutoff):
    with pytest.raises(ValueError, match="cutoff"):
        _core.neighbor_list(np.zeros((2, 3)), np.eye(3) * 5.0, [True] * 3, cutoff)


# ----------------------------------------------------------------------------
# Large systems


@pytest.mark.slow
def test_large_periodic_system_against_ase():
    rng = np.random.default_rng(20)
    n = 20_000
    length = (n / 0.05) ** (1 / 3)  # Si-like density
    cell = np.diag([length, 1.1 * length, length / 1.1])
    assert assert_same_as_ase(random_in_cell(rng, cell, n), cell, [True] * 3, 6.0) > 0


@pytest.mark.slow
def test_large_system_counts():
    # 100k atoms, ~45 neighbours each (speed is measured by benchmarks, not here).
    rng = np.random.default_rng(21)
    n = 100_000
    length = (n / 0.05) ** (1 / 3)
    cell = np.diag([length, 1.1 * length, length / 1.1])
    positions = random_in_cell(rng, cell, n)
    offsets, index, vectors = _core.neighbor_list(positions, cell, [True] * 3, 6.0)
    counts = np.diff(offsets)
    assert 40 < counts.mean() < 50  # 4/3·π·6³·0.05 ≈ 45.2
    assert np.linalg.norm(vectors, axis=1).max() < 6.0
