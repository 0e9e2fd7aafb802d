#include "nnp/training_kernels.h"

#include <algorithm>
#include <string>

#include "nnp/error.h"

namespace nnp {
namespace {

void check_centers(const std::int64_t* center, std::int64_t P, std::int64_t R) {
  for (std::int64_t p = 0; p < P; ++p)
    if (center[p] < 0 || center[p] >= R)
      throw Error("pair " + std::to_string(p) + " has centre row " + std::to_string(center[p]) +
                  ", outside the " + std::to_string(R) + " descriptor rows");
}

}  // namespace

void contract_pairs(const double* g, std::int64_t R, std::int64_t M, const double* dG_dr,
                    const std::int64_t* center, std::int64_t P, double* v) {
  check_centers(center, P, R);
  for (std::int64_t p = 0; p < P; ++p) {
    const double* gc = g + center[p] * M;
    const double* d = dG_dr + p * M * 3;
    double x = 0.0, y = 0.0, z = 0.0;
    for (std::int64_t m = 0; m < M; ++m) {
      x += gc[m] * d[3 * m];
      y += gc[m] * d[3 * m + 1];
      z += gc[m] * d[3 * m + 2];
    }
    v[3 * p] = x;
    v[3 * p + 1] = y;
    v[3 * p + 2] = z;
  }
}

void contract_pairs_adjoint(const double* u, const double* dG_dr, const std::int64_t* center, std::int64_t P,
                            std::int64_t R, std::int64_t M, double* g_hat) {
  check_centers(center, P, R);
  std::fill(g_hat, g_hat + R * M, 0.0);
  for (std::int64_t p = 0; p < P; ++p) {
    double* out = g_hat + center[p] * M;
    const double* d = dG_dr + p * M * 3;
    const double ux = u[3 * p], uy = u[3 * p + 1], uz = u[3 * p + 2];
    for (std::int64_t m = 0; m < M; ++m) out[m] += ux * d[3 * m] + uy * d[3 * m + 1] + uz * d[3 * m + 2];
  }
}

}  // namespace nnp
