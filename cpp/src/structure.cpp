#include "nnp/structure.h"

#include <algorithm>
#include <cmath>

#include "nnp/error.h"

namespace nnp {

namespace {

// SoA neighbour buffers of one centre atom, filled from a NeighborList row.
struct Gathered {
  std::vector<double> dx, dy, dz;
  std::vector<int> element, atom;

  NeighborView fill(const NeighborList& list, int i, const int* elements) {
    const std::int64_t begin = list.offsets[i], end = list.offsets[i + 1];
    const std::size_t n = static_cast<std::size_t>(end - begin);
    dx.assign(list.dx.begin() + begin, list.dx.begin() + end);
    dy.assign(list.dy.begin() + begin, list.dy.begin() + end);
    dz.assign(list.dz.begin() + begin, list.dz.begin() + end);
    atom.assign(list.index.begin() + begin, list.index.begin() + end);
    element.resize(n);
    for (std::size_t m = 0; m < n; ++m) element[m] = elements[atom[m]];
    return {static_cast<int>(n), dx.data(), dy.data(), dz.data(), element.data()};
  }
};

void check_elements(const Structure& s, int n_elements) {
  for (int i = 0; i < s.n_atoms; ++i)
    if (s.elements[i] < 0 || s.elements[i] >= n_elements)
      throw Error("atom " + std::to_string(i) + " has an element index outside the potential's elements");
}

}  // namespace

Evaluation evaluate(const Potential& potential, const Structure& s, bool atom_virials) {
  check_elements(s, potential.n_elements());
  const NeighborList list = build_neighbor_list(s.n_atoms, s.positions, s.cell, potential.cutoff());
  Evaluation out;
  out.atom_energies.assign(s.n_atoms, 0.0);
  out.forces.assign(3 * static_cast<std::size_t>(s.n_atoms), 0.0);
  if (atom_virials) out.atom_virials.assign(9 * static_cast<std::size_t>(s.n_atoms), 0.0);
  AtomWorkspace ws;
  Gathered nb;
  std::vector<double> dE_dr;
  for (int i = 0; i < s.n_atoms; ++i) {
    const NeighborView view = nb.fill(list, i, s.elements);
    dE_dr.assign(3 * static_cast<std::size_t>(view.count), 0.0);
    bool outside = false;
    const double e = potential.atom_energy(s.elements[i], view, dE_dr.data(), ws, &outside);
    out.atom_energies[i] = e;
    out.energy += e;
    out.extrapolating_atoms += outside;
    double* fi = &out.forces[3 * static_cast<std::size_t>(i)];
    double* wi = atom_virials ? &out.atom_virials[9 * static_cast<std::size_t>(i)] : nullptr;
    for (int m = 0; m < view.count; ++m) {
      const double* g = &dE_dr[3 * static_cast<std::size_t>(m)];
      double* fj = &out.forces[3 * static_cast<std::size_t>(nb.atom[m])];
      const double r[3] = {view.dx[m], view.dy[m], view.dz[m]};
      for (int a = 0; a < 3; ++a) {
        fj[a] -= g[a];
        fi[a] += g[a];
        for (int b = 0; b < 3; ++b) {
          const double w = -r[a] * g[b];
          out.virial[3 * a + b] += w;
          if (wi) wi[3 * a + b] += w;
        }
      }
    }
    if (!std::isfinite(e)) throw Error("non-finite energy for atom " + std::to_string(i));
  }
  for (int i = 0; i < s.n_atoms; ++i)
    for (int a = 0; a < 3; ++a)
      if (!std::isfinite(out.forces[3 * static_cast<std::size_t>(i) + a]))
        throw Error("non-finite force on atom " + std::to_string(i) +
                    " (the potential's parameters or this geometry overflow double precision)");
  return out;
}

std::vector<double> gp_variances(const Potential& potential, const Structure& s) {
  check_elements(s, potential.n_elements());
  if (const std::string bad = potential.gp_variance_error(); !bad.empty()) throw Error(bad);
  const NeighborList list = build_neighbor_list(s.n_atoms, s.positions, s.cell, potential.cutoff());
  // The scaled descriptors per element, then each element's GP on all of its atoms at once.
  std::vector<std::vector<double>> x(potential.n_elements());
  std::vector<std::vector<int>> atoms(potential.n_elements());
  AtomWorkspace ws;
  Gathered nb;
  for (int i = 0; i < s.n_atoms; ++i) {
    const std::vector<double>& xi = potential.scaled_descriptor(s.elements[i], nb.fill(list, i, s.elements), ws);
    x[s.elements[i]].insert(x[s.elements[i]].end(), xi.begin(), xi.end());
    atoms[s.elements[i]].push_back(i);
  }
  std::vector<double> out(s.n_atoms), v;
  for (int e = 0; e < potential.n_elements(); ++e) {
    v.resize(atoms[e].size());
    potential.element(e).gp.variances(x[e].data(), static_cast<int>(atoms[e].size()), v.data(), ws.gp);
    for (std::size_t q = 0; q < v.size(); ++q) out[atoms[e][q]] = v[q];
  }
  return out;
}

std::vector<ElementFeatures> featurize(const std::vector<Descriptor>& descriptors, const Structure& s,
                                       bool with_derivatives) {
  const int n_elements = static_cast<int>(descriptors.size());
  check_elements(s, n_elements);
  double cutoff = 0;
  for (const Descriptor& d : descriptors) cutoff = std::max(cutoff, d.max_cutoff());
  const NeighborList list = build_neighbor_list(s.n_atoms, s.positions, s.cell, cutoff);
  std::vector<ElementFeatures> out(n_elements);
  DescriptorWorkspace ws;
  Gathered nb;
  std::vector<double> jac;
  for (int i = 0; i < s.n_atoms; ++i) {
    const int e = s.elements[i];
    const Descriptor& d = descriptors[e];
    ElementFeatures& f = out[e];
    const int M = d.size();
    const int row = static_cast<int>(f.atoms.size());
    f.atoms.push_back(i);
    const std::size_t g0 = f.G.size();
    f.G.resize(g0 + M);
    const NeighborView view = nb.fill(list, i, s.elements);
    if (!with_derivatives) {
      d.compute(view, &f.G[g0], ws);
      continue;
    }
    jac.resize(static_cast<std::size_t>(view.count) * M * 3);
    d.compute_with_jacobian(view, &f.G[g0], jac.data(), ws);
    // Keep only neighbours inside the cutoff: the others have zero derivative.
    for (int m = 0; m < view.count; ++m) {
      const double r2 = view.dx[m] * view.dx[m] + view.dy[m] * view.dy[m] + view.dz[m] * view.dz[m];
      if (std::sqrt(r2) >= d.max_cutoff()) continue;
      f.pair_center.push_back(row);
      f.pair_neighbor.push_back(nb.atom[m]);
      f.pair_vector.insert(f.pair_vector.end(), {view.dx[m], view.dy[m], view.dz[m]});
      const double* block = &jac[static_cast<std::size_t>(m) * M * 3];
      f.dG_dr.insert(f.dG_dr.end(), block, block + static_cast<std::size_t>(M) * 3);
    }
  }
  return out;
}

}  // namespace nnp
