#include "nnp/quadratic.h"

#include <cmath>
#include <string>

#include "kernel_math.h"
#include "nnp/error.h"

namespace nnp {

QuadraticTerm::QuadraticTerm(std::vector<double> linear, std::vector<double> matrix)
    : linear_(std::move(linear)), matrix_(std::move(matrix)) {
  const std::size_t M = linear_.size();
  if (M == 0) throw Error("a quadratic term needs at least one coefficient");
  if (matrix_.size() != M * M)
    throw Error("quadratic term: " + std::to_string(M) + " linear coefficients need a " + std::to_string(M) + " x " +
                std::to_string(M) + " matrix, found " + std::to_string(matrix_.size()) + " entries");
  for (const double v : linear_)
    if (!std::isfinite(v)) throw Error("quadratic term: coefficients must be finite");
  for (std::size_t r = 0; r < M; ++r)
    for (std::size_t c = 0; c < M; ++c) {
      if (!std::isfinite(matrix_[r * M + c])) throw Error("quadratic term: coefficients must be finite");
      if (matrix_[r * M + c] != matrix_[c * M + r])
        throw Error("quadratic term: the matrix must be symmetric (row " + std::to_string(r + 1) + ", column " +
                    std::to_string(c + 1) + ")");
    }
}

// One row of A at a time as a vector reduction: a plain sum would be a
// serial chain of M additions per row, 4,096 for 64 functions per atom.
NNP_KERNEL
double QuadraticTerm::value(const double* x, std::vector<double>& scratch) const {
  const int M = size();
  scratch.resize(M);
  double q = 0.0;
  for (int r = 0; r < M; ++r) {
    const double* row = matrix_.data() + static_cast<std::size_t>(r) * M;
    double ax = 0.0;
#pragma omp simd reduction(+ : ax)
    for (int c = 0; c < M; ++c) ax += row[c] * x[c];
    scratch[r] = ax;
    q += (linear_[r] + ax) * x[r];
  }
  return q;
}

double QuadraticTerm::value_and_gradient(const double* x, double* grad, std::vector<double>& scratch) const {
  const double q = value(x, scratch);
  // ∂(xᵀAx)/∂x = 2Ax for symmetric A.
  for (int r = 0; r < size(); ++r) grad[r] += linear_[r] + 2.0 * scratch[r];
  return q;
}

}  // namespace nnp
