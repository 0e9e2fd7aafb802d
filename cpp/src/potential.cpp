#include "nnp/potential.h"

#include <algorithm>
#include <cmath>

#include "nnp/error.h"

namespace nnp {

std::size_t AtomWorkspace::bytes() const {
  return descriptor.bytes() + network.bytes() +
         sizeof(double) * (G.capacity() + x.capacity() + dE_dx.capacity() + dE_dG.capacity());
}

Potential::Potential(std::vector<ElementModel> elements) : elements_(std::move(elements)) {
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
    if (m.network.n_inputs() != static_cast<int>(M))
      throw Error("element " + m.symbol + ": the network takes " + std::to_string(m.network.n_inputs()) +
                  " inputs but the descriptor has " + std::to_string(M) + " functions");
    cutoff_ = std::max(cutoff_, m.descriptor.max_cutoff());
  }
}

int Potential::element_index(const std::string& symbol) const {
  for (std::size_t e = 0; e < elements_.size(); ++e)
    if (elements_[e].symbol == symbol) return static_cast<int>(e);
  return -1;
}

namespace {

// Scaled network input; returns whether any function left its training range.
bool scale_inputs(const Scaling& s, const std::vector<double>& G, std::vector<double>& x) {
  bool outside = false;
  for (std::size_t k = 0; k < G.size(); ++k) {
    x[k] = (G[k] - s.center[k]) / s.width[k];
    outside |= G[k] < s.min[k] || G[k] > s.max[k];
  }
  return outside;
}

}  // namespace

double Potential::atom_energy(int element, const NeighborView& nb, double* dE_dr, AtomWorkspace& ws,
                              bool* extrapolating) const {
  const ElementModel& m = elements_.at(element);
  const int M = m.descriptor.size();
  ws.G.resize(M);
  ws.x.resize(M);
  ws.dE_dx.resize(M);
  ws.dE_dG.resize(M);
  m.descriptor.compute(nb, ws.G.data(), ws.descriptor);
  const bool outside = scale_inputs(m.scaling, ws.G, ws.x);
  if (extrapolating) *extrapolating = outside;
  const double e = m.network.forward_backward(ws.x.data(), ws.dE_dx.data(), ws.network);
  for (int k = 0; k < M; ++k) ws.dE_dG[k] = ws.dE_dx[k] / m.scaling.width[k];
  m.descriptor.accumulate_gradient(nb, ws.dE_dG.data(), dE_dr, ws.descriptor, /*prepared=*/true);
  return m.reference_energy + e;
}

double Potential::atom_energy(int element, const NeighborView& nb, AtomWorkspace& ws) const {
  const ElementModel& m = elements_.at(element);
  const int M = m.descriptor.size();
  ws.G.resize(M);
  ws.x.resize(M);
  m.descriptor.compute(nb, ws.G.data(), ws.descriptor);
  scale_inputs(m.scaling, ws.G, ws.x);
  return m.reference_energy + m.network.forward(ws.x.data(), ws.network);
}

}  // namespace nnp
