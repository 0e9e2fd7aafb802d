// A complete potential: per element a descriptor, its scaling, a network and a
// reference energy. E = Σ_i E_i with E_i = e0(Z_i) + NN_Z(x_i) (+ Q_Z(x_i) when
// the element has a quadratic term, nnp/quadratic.h), x_i = (G_i − center)/width
// (+ ½ Σ_j E_rep(r_ij) when the potential has a repulsive core, nnp/repulsion.h).
#pragma once
#include <string>
#include <vector>

#include "nnp/descriptor.h"
#include "nnp/gaussian_process.h"
#include "nnp/network.h"
#include "nnp/quadratic.h"
#include "nnp/repulsion.h"

namespace nnp {

struct Scaling {
  std::vector<double> center, width;  // x = (G − center)/width
  std::vector<double> min, max;       // range of G seen in training
};

struct ElementModel {
  std::string symbol;
  double reference_energy = 0.0;  // eV
  Descriptor descriptor;
  Scaling scaling;
  Network network;
  QuadraticTerm quadratic;  // empty: none
  // Empty: none. E_i adds the GP (nnp/gaussian_process.h); an element may
  // have a network, a GP or both (their sum), and its network may be empty.
  GaussianProcess gp;
};

// An atom extrapolates when one of its descriptor values leaves the training
// range widened on both sides by this fraction of its width: thermal noise in
// an ordinary crystal or liquid pokes just past the range (≤ 6 % of it on the
// water validation frames, docs/robustness.md), a genuinely new environment
// leaves it by far more.
constexpr double kDefaultExtrapolationMargin = 0.1;

struct AtomWorkspace {
  DescriptorWorkspace descriptor;
  NetworkWorkspace network;
  std::vector<double> G, x, dE_dx, dE_dG, quadratic, gp;
  std::size_t bytes() const;
};

class Potential {
 public:
  Potential() = default;
  // Checks consistency; every repulsion pair needs r_outer ≤ the descriptor
  // cutoff of both its elements (so the pair is a neighbour of both atoms).
  explicit Potential(std::vector<ElementModel> elements, std::vector<RepulsionPair> repulsion = {});

  int n_elements() const { return static_cast<int>(elements_.size()); }
  const ElementModel& element(int e) const { return elements_[e]; }
  const std::vector<ElementModel>& elements() const { return elements_; }
  // Index of a chemical symbol, or −1.
  int element_index(const std::string& symbol) const;
  double cutoff() const { return cutoff_; }
  const Repulsion& repulsion() const { return repulsion_; }
  // Descriptor values count as extrapolating outside [min − m·(max − min),
  // max + m·(max − min)] of the training range; m ≥ 0, 0 is the bare range.
  void set_extrapolation_margin(double margin);
  double extrapolation_margin() const { return margin_; }

  // Energy E_i of one atom of element `element` and its gradient with respect
  // to the neighbour vectors: dE_dr[3j..3j+2] += ∂E_i/∂r_ij (accumulated).
  // The force on neighbour j is −∂E_i/∂r_ij, on the centre +Σ_j ∂E_i/∂r_ij.
  // Returns true in *extrapolating when a descriptor left the training range
  // (widened by the extrapolation margin).
  double atom_energy(int element, const NeighborView& nb, double* dE_dr, AtomWorkspace& ws,
                     bool* extrapolating = nullptr) const;

  // The regressor's part of E_i (network + quadratic term, without reference
  // energy and repulsion) from the descriptor values in ws.G, with ∂E/∂G in
  // ws.dE_dG: the step between the descriptor pass and the gradient pass,
  // public so that models sharing one descriptor (a committee) reuse ws.G.
  double model_energy(int element, AtomWorkspace& ws, bool* extrapolating = nullptr) const;

  // Energy only (no gradient).
  double atom_energy(int element, const NeighborView& nb, AtomWorkspace& ws) const;

  // "" when every element has a GP with a variance section, else why the GP
  // variance is not available (the first element without one).
  std::string gp_variance_error() const;
  // The scaled descriptor x = (G − center)/width of one atom (a descriptor
  // pass without derivatives), returned in ws.x.
  const std::vector<double>& scaled_descriptor(int element, const NeighborView& nb, AtomWorkspace& ws) const;

  // ½ Σ_j E_rep(r_ij) over the neighbours; accumulates its gradient if dE_dr
  // (public for a committee, which assembles E_i from model_energy itself).
  double repulsion_energy(int element, const NeighborView& nb, double* dE_dr) const;

 private:

  struct ExtrapolationBounds {
    std::vector<double> lower, upper;
  };
  std::vector<ElementModel> elements_;
  Repulsion repulsion_;
  double cutoff_ = 0.0;
  double margin_ = kDefaultExtrapolationMargin;
  std::vector<ExtrapolationBounds> bounds_;  // per element
};

}  // namespace nnp
