"""Multi-element defaults: the repulsive core placed per element pair from
that pair's shortest training distance, and the default descriptor's
candidates spread over each element pair's own distances."""

from __future__ import annotations

import math

import numpy as np
from ase import Atoms
from ase.build import molecule
from ase.neighborlist import neighbor_list

import nnp.descriptors as D
from conftest import rattled_si, shared_data
from nnp.data import FeaturizedDataset, read_structures
from nnp.descriptors import G2, G4, DescriptorSet
from nnp.train import TrainConfig, shortest_distance
from nnp.train.initial_model import CORE_MARGIN, core_repulsion, shortest_pair_distances

RC = 6.0


def _waters(seed: int) -> Atoms:
    """Two rattled water molecules 3 Å apart in a 12 Å box: O–H ~1 Å,
    H–H ~1.5 Å, O–O ~3 Å."""
    a, b = molecule("H2O"), molecule("H2O")
    b.translate((3.0, 0.4, 0.2))
    atoms = a + b
    atoms.set_cell([12.0, 12.0, 12.0])
    atoms.set_pbc(True)
    atoms.center()
    atoms.rattle(0.03, seed=seed)
    return atoms


def _lone_oxygen(seed: int) -> Atoms:
    """One O and an H2 molecule in a 13 Å box: O–O never within 6 Å."""
    atoms = Atoms("OH2", positions=[(0, 0, 0), (2.5, 0, 0), (3.25, 0, 0)], cell=[13.0] * 3, pbc=True)
    atoms.rattle(0.02, seed=seed)
    return atoms


def _descriptors(elements=("H", "O")) -> DescriptorSet:
    return DescriptorSet(elements, {e: tuple(G2(n, 0.5, 0.0, RC) for n in elements) for e in elements})


def _expected_outer(distance: float) -> float:
    return round(math.floor((distance - CORE_MARGIN) / 0.05) * 0.05, 6)


def _brute_force_shortest(structures, a: str, b: str) -> float:
    best = math.inf
    for atoms in structures:
        i, j, d = neighbor_list("ijd", atoms, RC)
        sym = np.array(atoms.get_chemical_symbols())
        mine = d[((sym[i] == a) & (sym[j] == b)) | ((sym[i] == b) & (sym[j] == a))]
        best = min(best, float(mine.min())) if len(mine) else best
    return best


def test_core_per_element_pair_from_its_own_shortest_distance():
    structures = [_waters(s) for s in range(3)]
    ds = _descriptors()
    data = FeaturizedDataset.from_structures(structures, ds)
    cores = {(c.element_a, c.element_b): c for c in core_repulsion(data, ds, TrainConfig())}
    assert set(cores) == {("H", "H"), ("H", "O"), ("O", "O")}
    for (a, b), core in cores.items():
        d = _brute_force_shortest(structures, a, b)
        assert shortest_pair_distances(data)[a, b] == np.float64(d).item() or math.isclose(
            shortest_pair_distances(data)[a, b], d, rel_tol=1e-12)
        assert core.r_outer == _expected_outer(d) and core.r_outer < d
        assert core.r_inner == round(core.r_outer - TrainConfig().core_width, 6)
    # The pairs' cores differ: O–O ~3 Å, H–H ~1.5 Å, O–H ~1 Å.
    assert cores["H", "O"].r_outer < cores["H", "H"].r_outer < cores["O", "O"].r_outer
    assert cores["H", "O"].r_outer == _expected_outer(shortest_distance(data))


def test_pair_never_within_cutoff_falls_back_to_the_shortest_of_any_pair():
    structures = [_lone_oxygen(s) for s in range(2)]
    ds = _descriptors()
    data = FeaturizedDataset.from_structures(structures, ds)
    assert ("O", "O") not in shortest_pair_distances(data)
    cores = {(c.element_a, c.element_b): c for c in core_repulsion(data, ds, TrainConfig())}
    assert cores["O", "O"].r_outer == _expected_outer(shortest_distance(data))
    assert cores["H", "H"].r_outer == _expected_outer(_brute_force_shortest(structures, "H", "H"))


def test_fixed_core_outer_and_switched_off_cores_keep_their_meaning():
    structures = [_waters(0)]
    ds = _descriptors()
    data = FeaturizedDataset.from_structures(structures, ds)
    fixed = core_repulsion(data, ds, TrainConfig(core_outer=0.8, core_width=0.3))
    assert [(c.r_inner, c.r_outer) for c in fixed] == [(0.5, 0.8)] * 3
    assert core_repulsion(data, ds, TrainConfig(core_repulsion=False)) == []


def test_single_element_core_is_the_global_rule():
    structures = [rattled_si(seed=s) for s in range(3)]
    ds = _descriptors(("Si",))
    data = FeaturizedDataset.from_structures(structures, ds)
    (core,) = core_repulsion(data, ds, TrainConfig())
    outer = math.floor((shortest_distance(data) - CORE_MARGIN) / 0.05) * 0.05
    assert (core.r_inner, core.r_outer) == (round(outer - 0.5, 6), round(outer, 6))


def test_pair_distances_by_centre_and_neighbour():
    structures = [_waters(s) for s in range(2)]
    distances = D.pair_distances(structures, ("H", "O"), RC)
    for a, b in [("H", "H"), ("H", "O"), ("O", "H"), ("O", "O")]:
        assert distances[a, b].min() == np.float64(_brute_force_shortest(structures, a, b)) or math.isclose(
            distances[a, b].min(), _brute_force_shortest(structures, a, b), rel_tol=1e-12)
    # Each O–H distance is seen from both ends.
    assert len(distances["O", "H"]) == len(distances["H", "O"])


def test_water_selection_per_centre_element_over_each_pairs_distances():
    frames = read_structures(shared_data("water-deepmd/train.xyz"), index="0:320:160")
    ds = D.resolve("C16", ["H", "O"], frames)
    distances = D.pair_distances(frames, ("H", "O"), RC)
    for centre in ("H", "O"):
        assert ds.size(centre) == 16
        used = {e for f in ds.functions[centre] for e in ((f.neighbor,) if isinstance(f, G2) else f.neighbors)}
        assert used == {"H", "O"}
        # No shifted radial function sits below the pair's own close contacts:
        # O–O starts near 2.3 Å, not at the O–H bond's 0.9 Å.
        for f in ds.functions[centre]:
            if isinstance(f, G2) and f.rs > 0:
                assert f.rs >= math.floor(np.quantile(distances[centre, f.neighbor], 0.001) / 0.05) * 0.05 - 1e-9
        assert all(f.rc == RC for f in ds.functions[centre])
    pool_o = D.candidate_pool(("H", "O"), {n: distances["O", n] for n in ("H", "O")})
    shifted_oo = [f.rs for f in pool_o if isinstance(f, G2) and f.neighbor == "O" and f.rs > 0]
    assert min(shifted_oo) > 2.0 and len(shifted_oo) == 24
    assert sum(isinstance(f, G4) for f in pool_o) == 3 * 14 * 6 * 2


def test_selection_looks_at_an_even_sample_of_large_sets(monkeypatch):
    """Data-driven presets use every structure up to SELECTION_MAX_ATOMS
    atoms, beyond that evenly spaced structures holding about that many."""
    from nnp.descriptors import selection

    frames = [rattled_si((1, 1, 1), 0.1, seed) for seed in range(12)]  # 8 atoms each
    assert selection.even_sample(frames, selection.SELECTION_MAX_ATOMS) is frames
    monkeypatch.setattr(selection, "SELECTION_MAX_ATOMS", 32)
    sample = selection.even_sample(frames, 32)
    assert [f is frames[i] for i, f in zip((0, 4, 7, 11), sample)] == [True] * 4 and len(sample) == 4
    seen = []
    monkeypatch.setattr(selection, "pair_distances", lambda structures, *a: seen.append(structures) or {})
    try:
        D.resolve("S16", ("Si",), frames)
    except Exception:  # no distances: only what it looked at matters here
        pass
    assert seen == [sample]
