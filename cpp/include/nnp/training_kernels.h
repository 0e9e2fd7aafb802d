// Kernels of the training loop (nnp.model, through nnp._core): the chain rule
// from dE/dG to per-pair force vectors over stored descriptor derivatives.
//
// For pair p (centre row c(p), neighbour j) with stored ∂G_c/∂r_ij (M × 3):
//   v_p = Σ_μ g[c(p), μ] · dG_dr[p, μ, :]            (contract_pairs)
// and its adjoint, which backpropagates a gradient u_p of v_p to g:
//   ĝ[c, μ] = Σ_{p: c(p) = c} u_p · dG_dr[p, μ, :]   (contract_pairs_adjoint)
// Fused loops: one pass over dG_dr each, no per-pair copy of g (torch's
// gather + bmm + scatter wrote and read P × M temporaries).
#pragma once
#include <cstdint>

namespace nnp {

// g: (R, M); dG_dr: (P, M, 3); center: (P,) rows of g; v: (P, 3), overwritten.
// Throws nnp::Error naming the first centre index outside [0, R).
void contract_pairs(const double* g, std::int64_t R, std::int64_t M, const double* dG_dr,
                    const std::int64_t* center, std::int64_t P, double* v);

// u: (P, 3); g_hat: (R, M), overwritten.
void contract_pairs_adjoint(const double* u, const double* dG_dr, const std::int64_t* center, std::int64_t P,
                            std::int64_t R, std::int64_t M, double* g_hat);

}  // namespace nnp
