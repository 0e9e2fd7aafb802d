#include "nnp/committee.h"

#include <algorithm>
#include <cmath>
#include <memory>

#include "nnp/error.h"
#include "nnp/symmetry_function.h"

namespace nnp {

namespace {

// Compared through the file format's one writer (every parameter of every
// kind, numbers to 17 digits, so equal text is equal values) and the weights,
// which the file keeps elsewhere.
bool same_function(const SymmetryFunction& a, const SymmetryFunction& b, const std::vector<std::string>& symbols) {
  return a.type == b.type && a.weights == b.weights && format_function(a, symbols) == format_function(b, symbols);
}

std::string member_name(const std::vector<std::string>& names, std::size_t k) {
  return k < names.size() ? names[k] : "member " + std::to_string(k);
}

std::string symbols(const Potential& p) {
  std::string out;
  for (const ElementModel& m : p.elements()) out += (out.empty() ? "" : " ") + m.symbol;
  return out;
}

}  // namespace

bool same_descriptor(const Descriptor& a, const Descriptor& b, const std::vector<std::string>& symbols) {
  if (a.size() != b.size() || a.cutoff_type() != b.cutoff_type() || a.full_angular_sum() != b.full_angular_sum())
    return false;
  for (int k = 0; k < a.size(); ++k)
    if (!same_function(a.functions()[k], b.functions()[k], symbols)) return false;
  return true;
}

Committee::Committee(std::vector<Potential> members, const std::vector<std::string>& names)
    : members_(std::move(members)) {
  if (members_.empty()) throw Error("a committee needs at least one potential");
  const Potential& first = members_.front();
  for (std::size_t k = 1; k < members_.size(); ++k) {
    const Potential& p = members_[k];
    bool same = p.n_elements() == first.n_elements();
    for (int e = 0; same && e < first.n_elements(); ++e) same = p.element(e).symbol == first.element(e).symbol;
    if (!same)
      throw Error("committee members must have the same elements in the same order: " + member_name(names, k) +
                  " has " + symbols(p) + ", " + member_name(names, 0) + " has " + symbols(first));
  }
  for (const Potential& p : members_) cutoff_ = std::max(cutoff_, p.cutoff());
  std::vector<std::string> element_symbols;
  for (const ElementModel& m : first.elements()) element_symbols.push_back(m.symbol);
  groups_.resize(first.n_elements());
  for (int e = 0; e < first.n_elements(); ++e)
    for (int k = 0; k < size(); ++k) {
      auto& groups = groups_[e];
      const Descriptor& d = members_[k].element(e).descriptor;
      auto g = std::find_if(groups.begin(), groups.end(), [&](const std::vector<int>& grp) {
        return same_descriptor(members_[grp.front()].element(e).descriptor, d, element_symbols);
      });
      if (g == groups.end()) groups.push_back({k});
      else g->push_back(k);
    }
}

int Committee::descriptor_passes(int element, int n) const {
  int passes = 0;
  for (const auto& group : groups_.at(element)) passes += group.front() < n;
  return passes;
}

void Committee::atom_energies(int element, const NeighborView& nb, int n, double* energies, double* dE_dr,
                              std::size_t stride, AtomWorkspace& ws, bool* extrapolating) const {
  for (const auto& group : groups_.at(element)) {
    if (group.front() >= n) continue;
    // One descriptor pass for the group (its first member's descriptor; the
    // others are identical), then per member the regressor and the gradient
    // pass on the prepared neighbourhood, which the gradient pass only reads.
    const Descriptor& d = members_[group.front()].element(element).descriptor;
    ws.G.resize(d.size());
    d.compute(nb, ws.G.data(), ws.descriptor);
    for (const int k : group) {
      if (k >= n) break;
      const Potential& p = members_[k];
      double* g = dE_dr + k * stride;
      bool outside = false;
      const double e = p.model_energy(element, ws, &outside);
      d.accumulate_gradient(nb, ws.dE_dG.data(), g, ws.descriptor, /*prepared=*/true);
      const double rep = p.repulsion().empty() ? 0.0 : p.repulsion_energy(element, nb, g);
      energies[k] = p.element(element).reference_energy + e + rep;
      if (extrapolating) extrapolating[k] = outside;
    }
  }
}

double member_deviation(int K, const double* values, std::size_t stride, int dim) {
  double var = 0.0;
  for (int c = 0; c < dim; ++c) {
    double mean = 0.0;
    for (int k = 0; k < K; ++k) mean += values[k * stride + c];
    mean /= K;
    for (int k = 0; k < K; ++k) {
      const double d = values[k * stride + c] - mean;
      var += d * d;
    }
  }
  return std::sqrt(var / K);
}

DeviationSummary summarize_deviation(int K, double max_f, double min_f, double sum_f, double n_atoms,
                                     const double* energies, const double* virials) {
  DeviationSummary s;
  if (K < 2 || !(n_atoms > 0)) return s;
  s.max_f = max_f;
  s.min_f = min_f;
  s.avg_f = sum_f / n_atoms;
  s.devi_e = member_deviation(K, energies, 1, 1) / n_atoms;
  double squares = 0.0;
  s.max_v = 0.0;
  s.min_v = HUGE_VAL;
  for (int c = 0; c < 9; ++c) {
    const double v = member_deviation(K, virials + c, 9, 1) / n_atoms;
    s.max_v = std::max(s.max_v, v);
    s.min_v = std::min(s.min_v, v);
    squares += v * v;
  }
  s.avg_v = std::sqrt(squares) / 3.0;
  return s;
}

CommitteeEvaluation evaluate(const Committee& committee, const Structure& s, bool atom_virials) {
  const int K = committee.size();
  const std::size_t n = static_cast<std::size_t>(s.n_atoms);
  for (std::size_t i = 0; i < n; ++i)
    if (s.elements[i] < 0 || s.elements[i] >= committee.n_elements())
      throw Error("atom " + std::to_string(i) + " has an element index outside the potential's elements");
  const NeighborList list = build_neighbor_list(s.n_atoms, s.positions, s.cell, committee.cutoff());
  CommitteeEvaluation out;
  out.n_members = K;
  out.energies.assign(K, 0.0);
  out.atom_energies.assign(K * n, 0.0);
  out.forces.assign(K * n * 3, 0.0);
  out.virials.assign(K * 9, 0.0);
  if (atom_virials) out.atom_virials.assign(K * n * 9, 0.0);
  out.extrapolating_atoms.assign(K, 0);
  out.extrapolating.assign(K * n, 0);
  AtomWorkspace ws;
  std::vector<int> element;
  std::vector<double> dE_dr, e(K);
  std::unique_ptr<bool[]> flag(new bool[K]);
  for (std::size_t i = 0; i < n; ++i) {
    const std::int64_t begin = list.offsets[i];
    const int count = static_cast<int>(list.offsets[i + 1] - begin);
    element.resize(count);
    for (int m = 0; m < count; ++m) element[m] = s.elements[list.index[begin + m]];
    const NeighborView view{count, list.dx.data() + begin, list.dy.data() + begin, list.dz.data() + begin,
                            element.data()};
    const std::size_t stride = 3 * static_cast<std::size_t>(count);
    dE_dr.assign(K * stride, 0.0);
    committee.atom_energies(s.elements[i], view, K, e.data(), dE_dr.data(), stride, ws, flag.get());
    for (int k = 0; k < K; ++k) {
      if (!std::isfinite(e[k]))
        throw Error("non-finite energy for atom " + std::to_string(i) + " (committee member " + std::to_string(k) + ")");
      out.atom_energies[k * n + i] = e[k];
      out.energies[k] += e[k];
      out.extrapolating_atoms[k] += flag[k];
      out.extrapolating[k * n + i] = flag[k];
      double* f = &out.forces[k * n * 3];
      double* w = &out.virials[9 * k];
      double* wi = atom_virials ? &out.atom_virials[(k * n + i) * 9] : nullptr;
      for (int m = 0; m < count; ++m) {
        const double* g = &dE_dr[k * stride + 3 * static_cast<std::size_t>(m)];
        double* fj = f + 3 * static_cast<std::size_t>(list.index[begin + m]);
        const double r[3] = {view.dx[m], view.dy[m], view.dz[m]};
        for (int a = 0; a < 3; ++a) {
          fj[a] -= g[a];
          f[3 * i + a] += g[a];
          for (int b = 0; b < 3; ++b) {
            w[3 * a + b] -= r[a] * g[b];
            if (wi) wi[3 * a + b] -= r[a] * g[b];
          }
        }
      }
    }
  }
  out.force_deviation.assign(n, 0.0);
  out.energy_deviation.assign(n, 0.0);
  double max_f = 0.0, min_f = HUGE_VAL, sum_f = 0.0;
  for (std::size_t i = 0; i < n; ++i) {
    for (int k = 0; k < K; ++k)
      for (int a = 0; a < 3; ++a)
        if (!std::isfinite(out.forces[(k * n + i) * 3 + a]))
          throw Error("non-finite force on atom " + std::to_string(i) + " (committee member " + std::to_string(k) + ")");
    const double eps = member_deviation(K, &out.forces[3 * i], 3 * n, 3);
    out.force_deviation[i] = eps;
    out.energy_deviation[i] = member_deviation(K, &out.atom_energies[i], n, 1);
    max_f = std::max(max_f, eps);
    min_f = std::min(min_f, eps);
    sum_f += eps;
  }
  out.summary = summarize_deviation(K, max_f, min_f, sum_f, static_cast<double>(n), out.energies.data(),
                                    out.virials.data());
  return out;
}

}  // namespace nnp
