// Kernels of the training loop (nnp.model, through nnp._core): the chain rule
// from dE/dG to per-pair force vectors over stored descriptor derivatives.
//
// For pair p (centre row c(p), neighbour j) with stored ∂G_c/∂r_ij (M × 3):
//   v_p = Σ_μ g[c(p), μ] · dG_dr[p, μ, :]            (contract_pairs)
// and its adjoint, which backpropagates a gradient u_p of v_p to g:
//   ĝ[c, μ] = Σ_{p: c(p) = c} u_p · dG_dr[p, μ, :]   (contract_pairs_adjoint)
// and the scatter of the pair vectors into forces and virial (scatter_pairs):
//   F[c] += v_p,  F[j] −= v_p,  W[s(p)] −= r_ij ⊗ v_p
// with its adjoint u_p = ĝF[c] − ĝF[j] − r_ij · ĝW[s(p)].
// Fused loops: one pass over dG_dr each, no per-pair copy of g (torch's
// gather + bmm + scatter wrote and read P × M temporaries).
#pragma once
#include <cstdint>

#include "nnp/descriptor.h"

namespace nnp {

// g: (R, M); dG_dr: (P, M, 3); center: (P,) rows of g; v: (P, 3), overwritten.
// Throws nnp::Error naming the first centre index outside [0, R).
// Real: double, or float for derivatives stored in single precision (half
// the memory traffic of these bandwidth-bound loops); sums are in double.
template <typename Real>
void contract_pairs(const double* g, std::int64_t R, std::int64_t M, const Real* dG_dr, const std::int64_t* center,
                    std::int64_t P, double* v);

// u: (P, 3); g_hat: (R, M), overwritten.
template <typename Real>
void contract_pairs_adjoint(const double* u, const Real* dG_dr, const std::int64_t* center, std::int64_t P,
                            std::int64_t R, std::int64_t M, double* g_hat);

// v, pair_vector: (P, 3); center_atom, neighbor: (P,) atoms in [0, N);
// pair_struct: (P,) in [0, S). forces (N, 3) and virial (S, 3, 3) are
// overwritten; virial may be null (then pair_vector and pair_struct are unused).
void scatter_pairs(const double* v, const std::int64_t* center_atom, const std::int64_t* neighbor,
                   const double* pair_vector, const std::int64_t* pair_struct, std::int64_t P, std::int64_t N,
                   std::int64_t S, double* forces, double* virial);

// grad_forces: (N, 3); grad_virial: (S, 3, 3) or null; grad_v: (P, 3), overwritten.
void scatter_pairs_adjoint(const double* grad_forces, const double* grad_virial, const std::int64_t* center_atom,
                           const std::int64_t* neighbor, const double* pair_vector,
                           const std::int64_t* pair_struct, std::int64_t P, std::int64_t N, std::int64_t S,
                           double* grad_v);

// Streamed derivatives: contract_pairs and its adjoint with ∂G/∂r computed
// again by the descriptor kernels, centre by centre, and never stored
// (cpp/src/training_streamed.cpp). The pairs of one centre row are
// contiguous (center nondecreasing), with vectors pair_vector (P, 3) and
// neighbour elements pair_element (P,), as the featuriser lists them.
//   v_p = Σ_μ g[c, μ] ∂G_cμ/∂r_p              (the force pass of MD)
//   ĝ[c, μ] = Σ_{p of c} u_p · ∂G_cμ/∂r_p      (a Jacobian-vector product)
// threads >= 1 split the rows; the result does not depend on it.
void streamed_contract_pairs(const Descriptor& d, const double* g, std::int64_t R, const std::int64_t* center,
                             const double* pair_vector, const int* pair_element, std::int64_t P, double* v,
                             int threads);
void streamed_contract_pairs_adjoint(const Descriptor& d, const double* u, const std::int64_t* center,
                                     const double* pair_vector, const int* pair_element, std::int64_t P,
                                     std::int64_t R, double* g_hat, int threads);

}  // namespace nnp
