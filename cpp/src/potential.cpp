#include "nnp/potential.h"

#include <algorithm>
#include <cmath>

#include "nnp/error.h"

namespace nnp {

std::size_t AtomWorkspace::bytes() const {
  return descriptor.bytes() + network.bytes() +
         sizeof(double) * (G.capacity() + x.capacity() + dE_dx.capacity() + dE_dG.capacity() + quadratic.capacity() +
                                gp.capacity());
}

Potential::Potential(std::vector<ElementModel> elements, std::vector<RepulsionPair> repulsion)
    : elements_(std::move(elements)) {
  if (elements_.empty()) throw Error("a potential needs at least one element");
  for (const ElementModel& m : elements_) {
    const std::size_t M = m.descriptor.size();
    const Scaling& s = m.scaling;
    if (s.center.size() != M || s.width.size() != M || s.min.size() != M || s.max.size() != M)
      throw Error("element " + m.symbol + ": scaling has " + std::to_string(s.center.size()) +
                  " entries but the descriptor has " + std::to_string(M) + " functions");
    for (std::size_t k = 0; k < M; ++k)
      if (!(s.width[k] > 0) || !(s.min[k] <= s.max[k]))
        throw Error("element " + m.symbol + ": scaling row " + std::to_string(k + 1) +
                    " needs width > 0 and min <= max");
    if (m.network.layers().empty() && m.gp.empty())
      throw Error("element " + m.symbol + ": needs a network or a GP (or both)");
    if (!m.gp.empty() && m.gp.n_inputs() != static_cast<int>(M))
      throw Error("element " + m.symbol + ": the GP takes " + std::to_string(m.gp.n_inputs()) +
                  " inputs but the descriptor has " + std::to_string(M) + " functions");
    if (!m.network.layers().empty() && m.network.n_inputs() != static_cast<int>(M))
      throw Error("element " + m.symbol + ": the network takes " + std::to_string(m.network.n_inputs()) +
                  " inputs but the descriptor has " + std::to_string(M) + " functions");
    if (!m.quadratic.empty() && m.quadratic.size() != static_cast<int>(M))
      throw Error("element " + m.symbol + ": the quadratic term has " + std::to_string(m.quadratic.size()) +
                  " coefficients but the descriptor has " + std::to_string(M) + " functions");
    cutoff_ = std::max(cutoff_, m.descriptor.max_cutoff());
  }
  std::vector<int> z;
  for (const ElementModel& m : elements_) z.push_back(atomic_number(m.symbol));
  for (const RepulsionPair& p : repulsion) {
    const int n = static_cast<int>(elements_.size());
    if (p.element_a < 0 || p.element_a >= n || p.element_b < 0 || p.element_b >= n)
      throw Error("repulsion: element index out of range");
    for (const int e : {p.element_a, p.element_b})
      if (!(p.r_outer <= elements_[e].descriptor.max_cutoff()))
        throw Error("repulsion " + elements_[p.element_a].symbol + " " + elements_[p.element_b].symbol +
                    ": r_outer must not exceed the cutoff of " + elements_[e].symbol);
  }
  repulsion_ = Repulsion(std::move(repulsion), z);
  set_extrapolation_margin(kDefaultExtrapolationMargin);
}

void Potential::set_extrapolation_margin(double margin) {
  if (!(margin >= 0.0) || !std::isfinite(margin))
    throw Error("the extrapolation margin must be a finite number >= 0 (a fraction of each "
                "function's training range), got " + std::to_string(margin));
  margin_ = margin;
  bounds_.clear();
  for (const ElementModel& m : elements_) {
    ExtrapolationBounds b;
    for (std::size_t k = 0; k < m.scaling.min.size(); ++k) {
      const double slack = margin * (m.scaling.max[k] - m.scaling.min[k]);
      b.lower.push_back(m.scaling.min[k] - slack);
      b.upper.push_back(m.scaling.max[k] + slack);
    }
    bounds_.push_back(std::move(b));
  }
}

double Potential::repulsion_energy(int element, const NeighborView& nb, double* dE_dr) const {
  double e = 0.0;
  for (int m = 0; m < nb.count; ++m) {
    const double dx = nb.dx[m], dy = nb.dy[m], dz = nb.dz[m];
    const double r2 = dx * dx + dy * dy + dz * dz;
    if (!(r2 < repulsion_.outer_sq(element, nb.element[m]))) continue;
    const double r = std::sqrt(r2);
    double de = 0.0;
    // Half of the pair here, half when the neighbour is the centre.
    e += 0.5 * repulsion_.energy(element, nb.element[m], r, &de);
    if (dE_dr) {
      const double g = 0.5 * de / r;
      dE_dr[3 * m] += g * dx;
      dE_dr[3 * m + 1] += g * dy;
      dE_dr[3 * m + 2] += g * dz;
    }
  }
  return e;
}

int Potential::element_index(const std::string& symbol) const {
  for (std::size_t e = 0; e < elements_.size(); ++e)
    if (elements_[e].symbol == symbol) return static_cast<int>(e);
  return -1;
}

namespace {

// Scaled network input.
void scale_inputs(const Scaling& s, const std::vector<double>& G, std::vector<double>& x) {
  for (std::size_t k = 0; k < G.size(); ++k) x[k] = (G[k] - s.center[k]) / s.width[k];
}

}  // namespace

double Potential::model_energy(int element, AtomWorkspace& ws, bool* extrapolating) const {
  const ElementModel& m = elements_.at(element);
  const int M = m.descriptor.size();
  ws.x.resize(M);
  ws.dE_dx.resize(M);
  ws.dE_dG.resize(M);
  scale_inputs(m.scaling, ws.G, ws.x);
  if (extrapolating) {
    const ExtrapolationBounds& b = bounds_[element];
    bool outside = false;
    for (int k = 0; k < M; ++k) outside |= ws.G[k] < b.lower[k] || ws.G[k] > b.upper[k];
    *extrapolating = outside;
  }
  double e = 0.0;
  if (m.network.layers().empty())
    std::fill(ws.dE_dx.begin(), ws.dE_dx.end(), 0.0);
  else
    e = m.network.forward_backward(ws.x.data(), ws.dE_dx.data(), ws.network);
  if (!m.gp.empty()) e += m.gp.value_and_gradient(ws.x.data(), ws.dE_dx.data(), ws.gp);
  if (!m.quadratic.empty()) e += m.quadratic.value_and_gradient(ws.x.data(), ws.dE_dx.data(), ws.quadratic);
  for (int k = 0; k < M; ++k) ws.dE_dG[k] = ws.dE_dx[k] / m.scaling.width[k];
  return e;
}

double Potential::atom_energy(int element, const NeighborView& nb, double* dE_dr, AtomWorkspace& ws,
                              bool* extrapolating) const {
  const ElementModel& m = elements_.at(element);
  ws.G.resize(m.descriptor.size());
  m.descriptor.compute(nb, ws.G.data(), ws.descriptor);
  const double e = model_energy(element, ws, extrapolating);
  m.descriptor.accumulate_gradient(nb, ws.dE_dG.data(), dE_dr, ws.descriptor, /*prepared=*/true);
  const double rep = repulsion_.empty() ? 0.0 : repulsion_energy(element, nb, dE_dr);
  return m.reference_energy + e + rep;
}

double Potential::atom_energy(int element, const NeighborView& nb, AtomWorkspace& ws) const {
  const ElementModel& m = elements_.at(element);
  scaled_descriptor(element, nb, ws);  // fills ws.G and ws.x
  const double rep = repulsion_.empty() ? 0.0 : repulsion_energy(element, nb, nullptr);
  const double q = m.quadratic.empty() ? 0.0 : m.quadratic.value(ws.x.data(), ws.quadratic);
  const double nn = m.network.layers().empty() ? 0.0 : m.network.forward(ws.x.data(), ws.network);
  const double gp = m.gp.empty() ? 0.0 : m.gp.value(ws.x.data(), ws.gp);
  return m.reference_energy + nn + gp + q + rep;
}

std::string Potential::gp_variance_error() const {
  for (const ElementModel& m : elements_) {
    if (m.gp.empty())
      return "element " + m.symbol + " has no GP: the predictive variance is a sparse GP's (nnp train --model gp)";
    if (!m.gp.has_variance())
      return "the GP of element " + m.symbol + " has no 'gp_variance' section (a file written before format "
             "version 7, or the mean of several potentials): its predictive variance is not available; refit "
             "with nnp train --model gp";
  }
  return "";
}

const std::vector<double>& Potential::scaled_descriptor(int element, const NeighborView& nb,
                                                       AtomWorkspace& ws) const {
  const ElementModel& m = elements_.at(element);
  const int M = m.descriptor.size();
  ws.G.resize(M);
  ws.x.resize(M);
  m.descriptor.compute(nb, ws.G.data(), ws.descriptor);
  scale_inputs(m.scaling, ws.G, ws.x);
  return ws.x;
}

}  // namespace nnp
