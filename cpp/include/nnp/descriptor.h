// Atom-centred symmetry functions (Behler, J. Chem. Phys. 134, 074106 (2011)).
//
// For a centre atom i with neighbours j, k (r_ij = r_j − r_i, R_ij = |r_ij|,
// cosθ = r̂_ij·r̂_ik, all in Å, η in Å⁻²):
//   G2 = Σ_j exp(−η(R_ij−R_s)²) f_c(R_ij)
//   G4 = p 2^(1−ζ) Σ_{j<k} (1+λcosθ)^ζ exp(−η[(R_ij−R_s)²+(R_ik−R_s)²+(R_jk−R_s)²])
//                          · f_c(R_ij) f_c(R_ik) f_c(R_jk)
//   G5 = as G4 without the R_jk factors
// with p = 1 for the "half" angular sum (unordered pairs j<k) and p = 2 for the
// "full" one (ordered pairs j≠k). Only neighbours of the function's element(s)
// count; angular functions take unordered element pairs.
//
// Derivatives are with respect to the relative vectors r_ij of the neighbours;
// the derivative with respect to the centre is minus their sum. Functions are
// evaluated in groups that share neighbour element(s) and cutoff, so that the
// geometry and cutoff of a pair or triplet are computed once per group and
// exp(−η(R−R_s)²) once per pair and distinct (η, R_s).
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "nnp/cutoff.h"

namespace nnp {

enum class SymmetryFunctionType { G2, G4, G5 };

struct SymmetryFunction {
  SymmetryFunctionType type = SymmetryFunctionType::G2;
  int element_a = 0;   // neighbour element (index into the element list)
  int element_b = -1;  // second neighbour element (angular only), else -1
  double eta = 0.0;    // Å⁻²
  double zeta = 1.0;   // angular only
  int lambda = 1;      // angular only, +1 or −1
  double rs = 0.0;     // Å
  double rc = 0.0;     // Å
};

// Neighbours of one centre atom, structure of arrays. Vectors point from the
// centre to the neighbour. Neighbours at or beyond the cutoff are allowed and
// contribute nothing.
struct NeighborView {
  int count = 0;
  const double* dx = nullptr;
  const double* dy = nullptr;
  const double* dz = nullptr;
  const int* element = nullptr;  // element index of each neighbour
};

// Scratch space reused across atoms; it only grows.
struct DescriptorWorkspace {
  std::vector<double> r, ux, uy, uz;       // per neighbour: distance, unit vector
  std::vector<double> fc, dfc;             // per neighbour and group cutoff
  std::vector<double> radial_exp;          // per neighbour and distinct (η, R_s)
  std::vector<int> members;       // neighbours inside the cutoff, grouped by element
  std::vector<int> member_start;  // element e owns members[member_start[e] .. member_start[e+1])
  std::vector<double> power, dpower;  // per angular power of the current group
  std::vector<double> g, w;           // G and dE/dG in the internal order
  std::vector<double> exps;           // per key of the current group
  // Per narrow-angular triplet: R_jk, f_c(R_jk), f_c'(R_jk) and the R_jk
  // exponential of every key, written by compute() and read back by the force
  // pass, which then needs no sqrt, cos or exp per triplet.
  std::vector<double> triplet_cache;
  std::size_t bytes() const;
};

// The symmetry functions of one centre element, in network-input order.
class Descriptor {
 public:
  Descriptor() = default;
  Descriptor(std::vector<SymmetryFunction> functions, CutoffType cutoff, bool full_angular_sum,
             int n_elements);

  int size() const { return static_cast<int>(functions_.size()); }
  double max_cutoff() const { return max_cutoff_; }
  const std::vector<SymmetryFunction>& functions() const { return functions_; }
  CutoffType cutoff_type() const { return cutoff_; }
  bool full_angular_sum() const { return full_angular_sum_; }

  // G (size()) of one centre atom.
  void compute(const NeighborView& nb, double* G, DescriptorWorkspace& ws) const;

  // G and the Jacobian dG/dr_ij, laid out [neighbour][function][xyz]
  // (count × size() × 3, overwritten).
  void compute_with_jacobian(const NeighborView& nb, double* G, double* dG_dr,
                             DescriptorWorkspace& ws) const;

  // Second pass for forces: dE_dr[j] += Σ_μ dE_dG[μ] dG_μ/dr_ij for every
  // neighbour j (count × 3, accumulated, not overwritten). Stores no Jacobian.
  // `prepared`: ws still holds this neighbourhood's geometry and triplet
  // cache from the compute() call just before (saves recomputing distances
  // and exponentials).
  void accumulate_gradient(const NeighborView& nb, const double* dE_dG, double* dE_dr,
                           DescriptorWorkspace& ws, bool prepared = false) const;

 private:
  // Internal layout: functions are evaluated in an internal order that makes
  // the inner loops dense (radial terms, then per angular group a block of
  // keys × powers); internal_to_output_ maps back (−1: padding slot).
  struct RadialTerm {
    double eta, rs;
    int exp_slot;  // index of exp(−η(R−R_s)²) in the pair cache
    int internal;  // index into the internal G
  };
  struct RadialGroup {
    int element;
    double rc;
    int cutoff_slot;
    std::vector<RadialTerm> terms;
  };
  // Angular functions of a group share (λ, ζ) powers and (η, R_s) keys: per
  // triplet each distinct power (1+λcosθ)^ζ is computed once (from a table of
  // powers of 1±cosθ), each key's R_jk exponential once (or by raising a
  // smaller key's value to an integer power), and the functions of one key
  // are a dense vector over the powers.
  struct AngularPower {
    int lambda;
    double zeta;
    int int_zeta;      // ζ when it is a small positive integer, else 0
    double prefactor;   // p 2^(1−ζ)
    double dprefactor;  // p 2^(1−ζ) ζ λ
  };
  struct AngularKey {
    double eta, rs;
    int exp_slot;
    int base = -1;      // earlier key of this group whose exponential, raised
    int exponent = 1;   // to `exponent`, gives this one (η = exponent·η_base)
  };
  struct AngularGroup {
    SymmetryFunctionType type;  // G4 or G5
    int element_a, element_b;   // element_a <= element_b
    double rc;
    int cutoff_slot;
    std::vector<AngularPower> powers;
    std::vector<AngularKey> keys;
    int offset = 0;             // internal index of (key 0, power 0); key-major
    int max_int_zeta = 0;
    bool has_plus = false, has_minus = false;
  };
  struct ExpKey {
    double eta, rs;
    int base = -1, exponent = 1;  // as AngularKey, for the per-neighbour cache
  };

  enum class Cache { None, Write, Read };
  template <Cache cache, class Sink>
  void evaluate(const NeighborView& nb, DescriptorWorkspace& ws, Sink& sink) const;
  void prepare(const NeighborView& nb, DescriptorWorkspace& ws) const;

  std::vector<SymmetryFunction> functions_;
  CutoffType cutoff_ = CutoffType::Cos;
  bool full_angular_sum_ = false;
  double max_cutoff_ = 0.0;
  std::vector<RadialGroup> radial_groups_;
  std::vector<AngularGroup> angular_groups_;
  std::vector<double> cutoff_radii_;  // distinct cutoffs (slots)
  std::vector<ExpKey> exp_keys_;      // distinct (η, R_s) (slots)
  std::vector<int> internal_to_output_;
  int n_elements_ = 0;
};

}  // namespace nnp
