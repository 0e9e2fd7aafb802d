// The quadratic term of an atomic energy, Q(x) = b·x + xᵀAx (A symmetric),
// of the scaled descriptor x, added to the network's output:
// E_i = e0 + NN(x_i) + Q(x_i). Empty (no term) unless set.
#pragma once
#include <vector>

namespace nnp {

class QuadraticTerm {
 public:
  QuadraticTerm() = default;
  // linear: M coefficients b; matrix: M × M, row-major, exactly symmetric.
  // Throws nnp::Error on inconsistent sizes, a non-finite or asymmetric matrix.
  QuadraticTerm(std::vector<double> linear, std::vector<double> matrix);

  bool empty() const { return linear_.empty(); }
  int size() const { return static_cast<int>(linear_.size()); }
  const std::vector<double>& linear() const { return linear_; }
  const std::vector<double>& matrix() const { return matrix_; }

  // Q(x); `scratch` holds Ax (resized here).
  double value(const double* x, std::vector<double>& scratch) const;
  // Q(x), and dQ/dx = b + 2Ax added to grad (M entries).
  double value_and_gradient(const double* x, double* grad, std::vector<double>& scratch) const;

 private:
  std::vector<double> linear_, matrix_;
};

}  // namespace nnp
