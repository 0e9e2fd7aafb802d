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
// each exponential once per pair or triplet and distinct (η, R_s). G5 with
// integer ζ <= 8 is evaluated without any sum over pairs of neighbours
// (factorised into neighbour moment tensors, cost linear in the number of
// neighbours); everything else angular by the triple loop over a compacted,
// vectorised list of pairs with R_jk < r_c (narrow) or all pairs (wide).
// Kernels: cpp/src/descriptor.cpp (plan, neighbour data, entry points) and
// cpp/src/descriptor_{radial,triplet,moments,jacobian}.cpp.
//
// Element-weighted functions (wACSF, Gastegger et al., J. Chem. Phys. 148,
// 241709 (2018)) sum over neighbours of every element, each contribution
// weighted by an element weight g (one number per element, e.g. Z):
//   W2 = Σ_j g_j exp(−η(R_ij−R_s)²) f_c(R_ij)
//   W4 = p 2^(1−ζ) Σ_{j<k} g_j g_k (1+λcosθ)^ζ exp(...) f_c f_c f_c   (as G4)
//   W5 = as W4 without the R_jk factors
// They are fixed linear combinations of the element-resolved functions of the
// same parameters: W2 = Σ_e g_e G2(e), W4 = Σ_{a<=b} g_a g_b G4(a, b) (the
// unordered pair sum splits into same-element pairs and mixed pairs, each
// counted once by G4(a, b)), and are evaluated that way.
//
// Compact ("polynomial") functions (Bircher et al., Mach. Learn.: Sci.
// Technol. 2, 035026 (2021); n2p2 types 20–25) use no cutoff function: a
// bump C(a) = p(|a − c|/h) on [c − h, c + h] (p a core function of
// nnp/cutoff.h, "asymmetric" cores p((2 − y)y) instead of p(y)) is their own
// radial window, R_l < R < R_c (c = (R_l + R_c)/2, h = (R_c − R_l)/2; R_l may
// be negative, making C a cutoff-like function of R), and their angular
// window, θ in [θ_l, θ_r] (degrees in the file):
//   C2 = Σ_j C_r(R_ij)
//   C4 = p Σ_{j<k} C_a(θ_ijk) C_r(R_ij) C_r(R_ik) C_r(R_jk)
//   C5 = p Σ_{j<k} C_a(θ_ijk) C_r(R_ij) C_r(R_ik)
// each term only inside the windows (R strictly inside, θ inside, and
// |cosθ| < 1, as n2p2 skips collinear triplets). CW2, CW4, CW5 weight them
// as W2, W4, W5 weight G2, G4, G5. Kernels: cpp/src/descriptor_compact.cpp.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "nnp/cutoff.h"

namespace nnp {

enum class SymmetryFunctionType { G2, G4, G5, W2, W4, W5, C2, C4, C5, CW2, CW4, CW5 };

inline bool is_weighted(SymmetryFunctionType t) {
  return t == SymmetryFunctionType::W2 || t == SymmetryFunctionType::W4 || t == SymmetryFunctionType::W5 ||
         t == SymmetryFunctionType::CW2 || t == SymmetryFunctionType::CW4 || t == SymmetryFunctionType::CW5;
}
inline bool is_radial(SymmetryFunctionType t) {
  return t == SymmetryFunctionType::G2 || t == SymmetryFunctionType::W2 || t == SymmetryFunctionType::C2 ||
         t == SymmetryFunctionType::CW2;
}
inline bool is_compact(SymmetryFunctionType t) {
  return t == SymmetryFunctionType::C2 || t == SymmetryFunctionType::C4 || t == SymmetryFunctionType::C5 ||
         t == SymmetryFunctionType::CW2 || t == SymmetryFunctionType::CW4 || t == SymmetryFunctionType::CW5;
}

// Largest accepted cutoff radius (Å). Symmetry functions reach 4–12 Å in
// practice; a larger value in a file is a mistake and would make LAMMPS
// build neighbour lists of thousands of atoms per atom (or run out of memory).
constexpr double kMaxCutoff = 30.0;

struct SymmetryFunction {
  SymmetryFunctionType type = SymmetryFunctionType::G2;
  int element_a = 0;   // neighbour element (index into the element list)
  int element_b = -1;  // second neighbour element (angular only), else -1
  double eta = 0.0;    // Å⁻²
  double zeta = 1.0;   // angular only
  int lambda = 1;      // angular only, +1 or −1
  double rs = 0.0;     // Å
  double rc = 0.0;     // Å
  // Weighted kinds (W2, W4, W5) only: the weight g of each element (index
  // into the element list); element_a/element_b are unused (−1). Empty else.
  std::vector<double> weights;
  // Compact kinds only: the radial window (rl, rc) in Å (rl < rc, rl may be
  // negative), the core function and whether it is asymmetric (radial part
  // only, n2p2's "p2a"), and the angular window in degrees (angular kinds).
  double rl = 0.0;
  CoreFunction core = CoreFunction::Poly2;
  bool asymmetric = false;
  double angle_left = 0.0, angle_right = 0.0;
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

// Scratch space reused across atoms; it only grows (no allocation per atom
// once it has seen the largest neighbourhood).
//
// "Members" are the neighbours inside the largest cutoff, grouped by element
// (and sorted by distance within an element when functions use different
// cutoffs, so that every function's neighbours are a contiguous range). All
// per-neighbour data is stored structure-of-arrays in member order, so the
// kernels' inner loops run over contiguous arrays and vectorise.
struct DescriptorWorkspace {
  std::vector<int> index;          // member -> neighbour index in the NeighborView
  std::vector<int> element_start;  // element e owns members [element_start[e], element_start[e+1])
  std::vector<int> cursor;         // per element, while grouping
  std::vector<double> x, y, z;     // vector to the neighbour
  std::vector<double> r, ux, uy, uz;  // its length and direction
  std::vector<double> fc, dfc;        // [cutoff slot][member]
  std::vector<double> radial_exp;     // [exp slot][member]: exp(−η(R−R_s)²)
  std::vector<double> grad;           // [xyz][member]: force-pass accumulator
  // Triplet lists of the triple-loop angular groups (one entry per pair of
  // neighbours that contributes, geometry and products of cutoffs and
  // exponentials), and the neighbour moment tensors of the factorised groups:
  // written when the neighbourhood is prepared, read by the value pass and
  // again by the force pass, which then calls no sqrt, cos or exp.
  std::vector<int> triplet_pairs;         // per group: j of every entry, then k (member indices)
  std::vector<double> triplet_data;       // per group: fields × entries (entries padded)
  std::vector<std::size_t> triplet_count; // per angular group
  std::vector<std::size_t> triplet_pair_offset, triplet_data_offset;  // per angular group
  std::vector<double> moments;            // per factorised group: T and Σw²
  std::vector<double> scratch;
  std::vector<double> vectors;  // scratch for the kernels' SIMD vectors (aligned inside)
  std::vector<double> g, w;  // G and dE/dG in the internal order
  // Descriptors with weighted functions: G, dE/dG and dG/dr of their
  // element-resolved terms.
  std::vector<double> term_g, term_w, term_jacobian;
  // Compact functions: C_r and dC_r/dR per [radial window][member].
  std::vector<double> compact_radial;
  // Jacobian-vector product: the direction of every member ([xyz, r̂·u][member])
  // and the product in the internal order.
  std::vector<double> direction, jvp;
  std::size_t bytes() const;
};

// The symmetry functions of one centre element, in network-input order.
class Descriptor {
 public:
  Descriptor() = default;
  // cutoff_alpha: the inner radius fraction of cutoffs that have one (nnp/cutoff.h).
  Descriptor(std::vector<SymmetryFunction> functions, CutoffType cutoff, bool full_angular_sum,
             int n_elements, double cutoff_alpha = 0.0);

  int size() const { return static_cast<int>(functions_.size()); }
  double max_cutoff() const { return max_cutoff_; }
  const std::vector<SymmetryFunction>& functions() const { return functions_; }
  CutoffType cutoff_type() const { return cutoff_; }
  double cutoff_alpha() const { return cutoff_alpha_; }
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

  // Jacobian-vector product for training without stored derivatives:
  // Ju[μ] = Σ_j dG_μ/dr_ij · u_j for directions u (count × 3) of every
  // neighbour; Ju (size()) is overwritten. Stores no Jacobian
  // (cpp/src/descriptor_jvp.cpp).
  void jacobian_vector(const NeighborView& nb, const double* u, double* Ju, DescriptorWorkspace& ws) const;

 private:
  // Internal layout: functions are evaluated in an internal order that makes
  // the inner loops dense (radial terms, then per angular group a block of
  // keys × powers); internal_to_output_ maps back (−1: padding slot).
  struct RadialTerm {
    double eta, rs;
    int exp_slot;  // index of exp(−η(R−R_s)²) in the per-member cache
    int internal;  // index into the internal G
  };
  struct RadialGroup {
    int element;
    double rc;
    int cutoff_slot;
    std::vector<RadialTerm> terms;
  };
  // Angular functions of a group share (λ, ζ) powers and (η, R_s) keys; the
  // functions of one key are a dense vector over the powers.
  struct AngularPower {
    int lambda;
    double zeta;
    int int_zeta;       // ζ when it is a small positive integer, else 0
    double prefactor;   // p 2^(1−ζ)
    double dprefactor;  // p 2^(1−ζ) ζ λ
  };
  struct AngularKey {
    double eta, rs;
    int exp_slot;       // per-member exponential (factorised groups), else −1
    int base = -1;      // earlier key of this group whose triplet exponential,
    int exponent = 1;   // raised to `exponent`, gives this one (η = exponent·η_base)
  };
  // How the triple-loop passes get (1+λcosθ)^ζ and (1+λcosθ)^(ζ−1) of every
  // power for a chunk of triplets: rows ("slots") of the chunk, slot 0 = 1,
  // one slot per sign of λ for the base 1+λcosθ, then products of two
  // earlier slots (an addition chain shared by all integer ζ of one sign),
  // and pow() for non-integer ζ.
  struct PowerOp {
    int dst, a, b;  // slot[dst] = slot[a] · slot[b]
  };
  struct PowerPlan {
    int n_slots = 1;
    int base_slot[2] = {-1, -1};       // λ = +1, −1
    std::vector<PowerOp> ops;
    std::vector<int> value_slot;       // per power: (1+λcosθ)^ζ
    std::vector<int> slope_slot;       // per power: (1+λcosθ)^(ζ−1), −1 if not planned
    // The same as offsets into the slot rows, padded with slot 0 to a
    // multiple of 4 powers (the passes take four at a time).
    std::vector<int> value_row, slope_row;
  };
  // Triple-loop groups (narrow G4, and G5 with non-integer or large ζ) sum over
  // pairs of neighbours. Factorised ("moment") groups (G5 with integer
  // ζ <= kMaxMomentZeta) use (1+λcosθ)^ζ = Σ_n C(ζ,n) λ^n cos^n θ and
  // cos^n θ_ijk = r̂_j^{⊗n}·r̂_k^{⊗n}: the pair sum becomes squared sums over
  // neighbours of T_α = Σ_j w_j r̂_j^α (α: symmetric tensor components up to
  // degree max ζ), so the cost is linear in the number of neighbours.
  struct AngularGroup {
    SymmetryFunctionType type;  // G4 or G5
    int element_a, element_b;   // element_a <= element_b
    double rc;
    int cutoff_slot;
    bool moments = false;       // factorised
    std::vector<AngularPower> powers;
    std::vector<AngularKey> keys;
    PowerPlan value_plan, gradient_plan;  // triple loop: values only / with slopes
    int offset = 0;             // internal index of (key 0, power 0); key-major
    int max_zeta = 0;           // moments: largest ζ (tensor degree)
    // moments: G_qp = Σ_n coef[p][n] S_qn − diag[p] D_q with
    // S_qn = Σ_{|α|=n} (n!/α!) T^a_qα T^b_qα and D_q = Σ_j w_qj² (same element).
    std::vector<double> coef;   // powers × (max_zeta + 1)
    std::vector<double> diag;   // powers
    int n_components = 0;       // moments: tensor components up to degree max_zeta
    int moment_offset = 0;      // moments: start of T (and Σw²) in the workspace
  };
  struct ExpKey {
    double eta, rs;
    int base = -1, exponent = 1;  // as AngularKey, for the per-member cache
    bool chained = false;         // a later member of an ExpChain
  };
  // Exponentials of one η with R_s in (nearly) even steps, as the shifted
  // functions of series S and C: each member from the one before,
  //   exp(−η(R−R_{k+1})²) = exp(−η(R−R_k)²) · exp(2ηΔ(R−R_max)) · c_k · (1 + g_k (R−R_max)),
  // one exponential per neighbour and step size instead of one per member;
  // c_k = exp(ηΔ_k(2R_max − R_k − R_{k+1})) and g_k = 2η(Δ_k − Δ) correct each
  // step Δ_k = R_{k+1} − R_k exactly to first order (|g_k R_max| <= 1e-9).
  struct ExpChain {
    double eta;
    std::vector<double> steps;   // the distinct step sizes Δ (at most kMaxChainSteps)
    std::vector<int> slots;      // exp slots in R_s order; slots[0] is computed directly
    std::vector<int> step;       // per later slot: index into steps
    std::vector<double> factor;  // per later slot: c_k
    std::vector<double> slope;   // per later slot: c_k g_k
  };
  // Symmetric tensor components r̂^α, α = (a, b, c), ordered by degree, so the
  // components up to degree n are a prefix of length (n+1)(n+2)(n+3)/6.
  struct Monomial {
    int degree;
    int parent, axis;     // r̂^α = r̂^parent · r̂_axis (parent −1 for α = 0)
    int lower[3];         // index of α − e_d, or −1 when α_d = 0
    int power[3];         // α_d
    double multinomial;   // n!/(a! b! c!)
  };

  static PowerPlan plan_powers(const std::vector<AngularPower>& powers, bool slopes);
  void prepare(const NeighborView& nb, DescriptorWorkspace& ws) const;
  void plan_exp_chains();
  void fill_exp_chains(DescriptorWorkspace& ws) const;
  void build_triplets(int group, DescriptorWorkspace& ws) const;
  void build_moments(int group, DescriptorWorkspace& ws) const;
  // V: the SIMD vector type; always inlined into the kernel that picks it, so
  // that it is compiled for that kernel's instruction set.
  template <class V>
  inline __attribute__((always_inline)) void build_moments_v(int group, DescriptorWorkspace& ws) const;
  void prepare_all(const NeighborView& nb, DescriptorWorkspace& ws) const;
  void values(DescriptorWorkspace& ws) const;
  void radial_values(DescriptorWorkspace& ws) const;
  void triplet_values(int group, DescriptorWorkspace& ws) const;
  void moment_values(int group, DescriptorWorkspace& ws) const;
  void radial_gradient(DescriptorWorkspace& ws) const;
  void triplet_gradient(int group, DescriptorWorkspace& ws) const;
  void moment_gradient(int group, DescriptorWorkspace& ws) const;
  template <class V>
  inline __attribute__((always_inline)) void moment_gradient_v(int group, DescriptorWorkspace& ws) const;
  void jacobian(DescriptorWorkspace& ws, double* dG_dr) const;
  void radial_jvp(DescriptorWorkspace& ws) const;
  void triplet_jvp(int group, DescriptorWorkspace& ws) const;
  void moment_jvp(int group, DescriptorWorkspace& ws) const;
  std::pair<int, int> range(const DescriptorWorkspace& ws, int element, double rc) const;
  // Weighted functions: evaluated through `terms_`, a descriptor of their
  // element-resolved terms (and of the plain functions beside them);
  // output o = Σ mix_coef_[t] · term mix_term_[t], t in [mix_start_[o], mix_start_[o+1]).
  void plan_weighted(int n_elements);
  static bool same_term(const SymmetryFunction& a, const SymmetryFunction& b);
  void mix(const double* terms, double* G) const;  // G = C · terms
  std::shared_ptr<const Descriptor> terms_;
  std::vector<int> mix_start_, mix_term_;
  std::vector<double> mix_coef_;

  // Compact functions (descriptor_compact.cpp). Radial windows are shared by
  // all compact functions (C_r per member computed once); angular functions
  // are grouped by kind and element pair, so that a pair of neighbours is
  // visited once per group and each distinct angular window evaluated once.
  struct CompactWindow {
    double center, scale;  // C(a) = p(|a − center| · scale)
    double left, right;    // open interval of a where C is evaluated
    CoreFunction core;
    bool asymmetric;
  };
  struct CompactFunction {
    int radial;    // index into compact_windows_
    int angle;     // index into the group's angles (angular)
    int internal;  // index into the internal G
  };
  struct CompactGroup {
    SymmetryFunctionType type;  // C2, C4 or C5
    int element_a, element_b;   // element_a <= element_b (angular); C2: element_a
    std::vector<CompactWindow> angles;  // radians
    std::vector<int> radials;           // distinct radial windows of the group (narrow: for R_jk)
    std::vector<CompactFunction> functions;
  };
  // Per pair (j, k) of a group: each function's term T and its partial
  // derivatives by cosθ, R_ij, R_ik and R_jk (0 for wide).
  struct CompactPair {
    int j, k;
    double cos, djk[3];  // djk: (r_k − r_j)/R_jk (narrow)
    const double *T, *Tc, *Tj, *Tk, *Tjk;
  };
  void plan_compact(const SymmetryFunction& f, int out);
  void compact_prepare(DescriptorWorkspace& ws) const;
  void compact_values(DescriptorWorkspace& ws) const;
  void compact_gradient(DescriptorWorkspace& ws) const;
  void compact_jacobian(DescriptorWorkspace& ws, double* dG_dr) const;
  template <class Sink>
  void compact_pairs(DescriptorWorkspace& ws, const CompactGroup& g, Sink&& sink) const;
  std::vector<CompactWindow> compact_windows_;
  std::vector<CompactGroup> compact_groups_;

  std::vector<SymmetryFunction> functions_;
  double cutoff_alpha_ = 0.0;
  CutoffType cutoff_ = CutoffType::Cos;
  bool full_angular_sum_ = false;
  double max_cutoff_ = 0.0;
  bool sort_by_distance_ = false;  // some function has a cutoff below max_cutoff_
  std::vector<RadialGroup> radial_groups_;
  std::vector<AngularGroup> angular_groups_;
  std::vector<double> cutoff_radii_;  // distinct cutoffs (slots)
  std::vector<ExpKey> exp_keys_;      // distinct (η, R_s) of radial and factorised functions (slots)
  std::vector<ExpChain> exp_chains_;
  std::vector<Monomial> monomials_;   // up to the largest moment-group ζ
  std::vector<int> internal_to_output_;
  int moment_size_ = 0;  // doubles of T and Σw² over all factorised groups
  int n_elements_ = 0;
};

}  // namespace nnp
