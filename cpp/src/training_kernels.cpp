#include "nnp/training_kernels.h"

#include <algorithm>
#include <string>
#include <vector>

#include "nnp/error.h"

namespace nnp {
namespace {

// Throws naming the first pair whose index lies outside [0, n): "pair p has
// <what> i, outside <range>".
void check_indices(const char* what, const std::int64_t* index, std::int64_t P, std::int64_t n,
                   const std::string& range) {
  for (std::int64_t p = 0; p < P; ++p)
    if (index[p] < 0 || index[p] >= n)
      throw Error("pair " + std::to_string(p) + " has " + what + " " + std::to_string(index[p]) + ", outside " +
                  range);
}

void check_indices(const char* what, const std::int64_t* index, std::int64_t P, std::int64_t n) {
  check_indices(what, index, P, n, "[0, " + std::to_string(n) + ")");
}

void check_centers(const std::int64_t* center, std::int64_t P, std::int64_t R) {
  check_indices("centre row", center, P, R, "the " + std::to_string(R) + " descriptor rows");
}

}  // namespace

// Both directions walk the flattened 3M derivatives of a pair in blocks of
// 12 = lcm(3, 4) entries with 12 independent accumulators: a stride-free
// multiply-add that the compiler vectorises. The plain loop's x/y/z sums have
// stride 3 and ran scalar (compute-bound at about half the memory bandwidth).
constexpr std::int64_t kBlock = 12;

template <typename Real>
void contract_pairs(const double* g, std::int64_t R, std::int64_t M, const Real* dG_dr, const std::int64_t* center,
                    std::int64_t P, double* v) {
  check_centers(center, P, R);
  const std::int64_t L = 3 * M, blocked = L - L % kBlock;
  // g of every row repeated per component: g3[c, 3μ + a] = g[c, μ].
  std::vector<double> g3(static_cast<std::size_t>(R * L));
  for (std::int64_t i = 0; i < R * M; ++i) g3[3 * i] = g3[3 * i + 1] = g3[3 * i + 2] = g[i];
  for (std::int64_t p = 0; p < P; ++p) {
    const double* gc = g3.data() + center[p] * L;
    const Real* d = dG_dr + p * L;
    double acc[kBlock] = {};
    for (std::int64_t k = 0; k < blocked; k += kBlock)
      for (std::int64_t j = 0; j < kBlock; ++j) acc[j] += gc[k + j] * static_cast<double>(d[k + j]);
    double sum[3] = {0.0, 0.0, 0.0};
    for (std::int64_t j = 0; j < kBlock; ++j) sum[j % 3] += acc[j];
    for (std::int64_t k = blocked; k < L; ++k) sum[k % 3] += gc[k] * static_cast<double>(d[k]);
    v[3 * p] = sum[0];
    v[3 * p + 1] = sum[1];
    v[3 * p + 2] = sum[2];
  }
}

template <typename Real>
void contract_pairs_adjoint(const double* u, const Real* dG_dr, const std::int64_t* center, std::int64_t P,
                            std::int64_t R, std::int64_t M, double* g_hat) {
  check_centers(center, P, R);
  const std::int64_t L = 3 * M, blocked = L - L % kBlock;
  // Per-component partial sums ĝ3[c, 3μ + a], folded into ĝ[c, μ] at the end.
  std::vector<double> g3(static_cast<std::size_t>(R * L), 0.0);
  for (std::int64_t p = 0; p < P; ++p) {
    double* out = g3.data() + center[p] * L;
    const Real* d = dG_dr + p * L;
    double pattern[kBlock];
    for (std::int64_t j = 0; j < kBlock; ++j) pattern[j] = u[3 * p + j % 3];
    for (std::int64_t k = 0; k < blocked; k += kBlock)
      for (std::int64_t j = 0; j < kBlock; ++j) out[k + j] += pattern[j] * static_cast<double>(d[k + j]);
    for (std::int64_t k = blocked; k < L; ++k) out[k] += pattern[k % 3] * static_cast<double>(d[k]);
  }
  for (std::int64_t i = 0; i < R * M; ++i) g_hat[i] = g3[3 * i] + g3[3 * i + 1] + g3[3 * i + 2];
}

template void contract_pairs<double>(const double*, std::int64_t, std::int64_t, const double*, const std::int64_t*,
                                     std::int64_t, double*);
template void contract_pairs<float>(const double*, std::int64_t, std::int64_t, const float*, const std::int64_t*,
                                    std::int64_t, double*);
template void contract_pairs_adjoint<double>(const double*, const double*, const std::int64_t*, std::int64_t,
                                             std::int64_t, std::int64_t, double*);
template void contract_pairs_adjoint<float>(const double*, const float*, const std::int64_t*, std::int64_t,
                                            std::int64_t, std::int64_t, double*);

void scatter_pairs(const double* v, const std::int64_t* center_atom, const std::int64_t* neighbor,
                   const double* pair_vector, const std::int64_t* pair_struct, std::int64_t P, std::int64_t N,
                   std::int64_t S, double* forces, double* virial) {
  check_indices("centre atom", center_atom, P, N);
  check_indices("neighbour", neighbor, P, N);
  if (virial != nullptr) check_indices("structure", pair_struct, P, S);
  std::fill(forces, forces + N * 3, 0.0);
  if (virial != nullptr) std::fill(virial, virial + S * 9, 0.0);
  for (std::int64_t p = 0; p < P; ++p) {
    const double* vp = v + 3 * p;
    double* fc = forces + 3 * center_atom[p];
    double* fn = forces + 3 * neighbor[p];
    for (int b = 0; b < 3; ++b) {
      fc[b] += vp[b];
      fn[b] -= vp[b];
    }
    if (virial == nullptr) continue;
    const double* r = pair_vector + 3 * p;
    double* w = virial + 9 * pair_struct[p];
    for (int a = 0; a < 3; ++a)
      for (int b = 0; b < 3; ++b) w[3 * a + b] -= r[a] * vp[b];
  }
}

void scatter_pairs_adjoint(const double* grad_forces, const double* grad_virial, const std::int64_t* center_atom,
                           const std::int64_t* neighbor, const double* pair_vector,
                           const std::int64_t* pair_struct, std::int64_t P, std::int64_t N, std::int64_t S,
                           double* grad_v) {
  check_indices("centre atom", center_atom, P, N);
  check_indices("neighbour", neighbor, P, N);
  if (grad_virial != nullptr) check_indices("structure", pair_struct, P, S);
  for (std::int64_t p = 0; p < P; ++p) {
    double* u = grad_v + 3 * p;
    const double* gc = grad_forces + 3 * center_atom[p];
    const double* gn = grad_forces + 3 * neighbor[p];
    for (int b = 0; b < 3; ++b) u[b] = gc[b] - gn[b];
    if (grad_virial == nullptr) continue;
    const double* r = pair_vector + 3 * p;
    const double* gw = grad_virial + 9 * pair_struct[p];
    for (int b = 0; b < 3; ++b) u[b] -= r[0] * gw[b] + r[1] * gw[3 + b] + r[2] * gw[6 + b];
  }
}

}  // namespace nnp
