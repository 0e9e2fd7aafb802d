// The sparse GP's energy and gradient (formulas in nnp/gaussian_process.h).
#include "nnp/gaussian_process.h"

#include <cmath>

#include "nnp/error.h"

namespace nnp {

const std::vector<std::string>& gp_kernel_names() {
  static const std::vector<std::string> names = {"se", "dot"};
  return names;
}

GpKernel gp_kernel_from_name(const std::string& name) {
  if (name == "se") return GpKernel::SquaredExponential;
  if (name == "dot") return GpKernel::Dot;
  throw Error("unknown GP kernel '" + name + "' (se, dot)");
}

const char* gp_kernel_name(GpKernel k) { return k == GpKernel::Dot ? "dot" : "se"; }

std::string gp_spec_error(const GaussianProcessSpec& spec, std::size_t n_inputs) {
  const std::size_t M = spec.weights.size();
  if (M == 0) return "a GP needs at least one sparse point";
  if (spec.sparse_points.size() != M * n_inputs)
    return "the GP has " + std::to_string(M) + " weights but " + std::to_string(spec.sparse_points.size()) +
           " sparse-point coordinates (" + std::to_string(M) + " x " + std::to_string(n_inputs) + " expected)";
  if (!(std::isfinite(spec.delta) && spec.delta > 0)) return "the GP's delta must be a finite number > 0";
  if (spec.kernel == GpKernel::SquaredExponential && !(std::isfinite(spec.lengthscale) && spec.lengthscale > 0))
    return "the GP's lengthscale must be a finite number > 0";
  if (spec.kernel == GpKernel::Dot && (spec.zeta < 1 || spec.zeta > 64)) return "the GP's zeta must be in [1, 64]";
  for (const double v : spec.sparse_points)
    if (!std::isfinite(v)) return "the GP has non-finite sparse points";
  for (const double v : spec.weights)
    if (!std::isfinite(v)) return "the GP has non-finite weights";
  return "";
}

GaussianProcess::GaussianProcess(const GaussianProcessSpec& spec, int n_inputs)
    : kernel_(spec.kernel),
      delta2_(spec.delta * spec.delta),
      inv_l2_(1.0 / (spec.lengthscale * spec.lengthscale)),
      zeta_(spec.zeta),
      n_inputs_(n_inputs),
      weights_(spec.weights) {
  const std::string bad = gp_spec_error(spec, static_cast<std::size_t>(n_inputs));
  if (!bad.empty()) throw Error(bad);
  const std::size_t D = static_cast<std::size_t>(n_inputs);
  if (kernel_ == GpKernel::SquaredExponential) {
    points_ = spec.sparse_points;
    return;
  }
  // Unit vectors of (z, 1), computed once.
  points_.resize(weights_.size() * (D + 1));
  for (std::size_t m = 0; m < weights_.size(); ++m) {
    const double* z = spec.sparse_points.data() + m * D;
    double n2 = 1.0;
    for (std::size_t k = 0; k < D; ++k) n2 += z[k] * z[k];
    const double inv = 1.0 / std::sqrt(n2);
    double* v = points_.data() + m * (D + 1);
    for (std::size_t k = 0; k < D; ++k) v[k] = z[k] * inv;
    v[D] = inv;
  }
}

double GaussianProcess::value(const double* x, std::vector<double>& scratch) const {
  return value_and_gradient(x, nullptr, scratch);
}

double GaussianProcess::value_and_gradient(const double* x, double* grad, std::vector<double>& scratch) const {
  const int D = n_inputs_;
  const int M = n_sparse();
  double e = 0.0;
  if (kernel_ == GpKernel::SquaredExponential) {
    // grad = Σ_m c_m (x − z_m) with c_m = −α_m k_m / ℓ².
    scratch.assign(D, 0.0);  // Σ_m c_m z_m
    double c_sum = 0.0;
    for (int m = 0; m < M; ++m) {
      const double* z = points_.data() + static_cast<std::size_t>(m) * D;
      double d2 = 0.0;
#pragma omp simd reduction(+ : d2)
      for (int k = 0; k < D; ++k) d2 += (x[k] - z[k]) * (x[k] - z[k]);
      const double ak = weights_[m] * delta2_ * std::exp(-0.5 * d2 * inv_l2_);
      e += ak;
      if (!grad) continue;
      const double c = -ak * inv_l2_;
      c_sum += c;
      double* acc = scratch.data();
#pragma omp simd
      for (int k = 0; k < D; ++k) acc[k] += c * z[k];
    }
    if (grad)
      for (int k = 0; k < D; ++k) grad[k] += c_sum * x[k] - scratch[k];
    return e;
  }
  // dot: u = (x, 1)/n; grad_μ = Σ_m c_m (v_mμ − s_m u_μ) / n with c_m = α_m δ² ζ s_m^(ζ−1).
  scratch.assign(2 * D + 1, 0.0);
  double* u = scratch.data();
  double* cv = scratch.data() + D + 1;  // Σ_m c_m v_mμ (μ < D)
  double n2 = 1.0;
  for (int k = 0; k < D; ++k) n2 += x[k] * x[k];
  const double n = std::sqrt(n2);
  for (int k = 0; k < D; ++k) u[k] = x[k] / n;
  u[D] = 1.0 / n;
  double cs_sum = 0.0;
  for (int m = 0; m < M; ++m) {
    const double* v = points_.data() + static_cast<std::size_t>(m) * (D + 1);
    double s = 0.0;
#pragma omp simd reduction(+ : s)
    for (int k = 0; k <= D; ++k) s += u[k] * v[k];
    const double p = zeta_ == 1 ? 1.0 : std::pow(s, zeta_ - 1);
    e += weights_[m] * delta2_ * p * s;
    if (!grad) continue;
    const double c = weights_[m] * delta2_ * zeta_ * p;
    cs_sum += c * s;
#pragma omp simd
    for (int k = 0; k < D; ++k) cv[k] += c * v[k];
  }
  if (grad)
    for (int k = 0; k < D; ++k) grad[k] += (cv[k] - cs_sum * u[k]) / n;
  return e;
}

}  // namespace nnp
