// The sparse GP's energy and gradient (formulas in nnp/gaussian_process.h).
#include "nnp/gaussian_process.h"

#include <algorithm>
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

namespace {

// Offset of row m of a packed upper-triangular M × M matrix (rows from the diagonal).
std::size_t packed_row(std::size_t m, std::size_t M) { return m * M - m * (m - 1) / 2; }

// "" or what is wrong with the spec's variance factor (empty: none, fine).
std::string variance_error(const GaussianProcessSpec& spec) {
  if (spec.variance_factor.empty()) return "";
  const std::size_t M = spec.weights.size();
  if (spec.variance_factor.size() != M * (M + 1) / 2)
    return "the GP's variance factor has " + std::to_string(spec.variance_factor.size()) + " numbers (" +
           std::to_string(M * (M + 1) / 2) + " = M(M+1)/2 expected for M = " + std::to_string(M) + ")";
  for (const double v : spec.variance_factor)
    if (!std::isfinite(v)) return "the GP's variance factor has non-finite numbers";
  for (std::size_t m = 0; m < M; ++m)
    if (!(spec.variance_factor[packed_row(m, M)] > 0))
      return "the GP's variance factor has a diagonal entry <= 0 (row " + std::to_string(m + 1) + ")";
  if (!(std::isfinite(spec.variance_jitter) && spec.variance_jitter >= 0))
    return "the GP's variance jitter must be a finite number >= 0";
  return "";
}

// |w_q|² with Uᵀw_q = k_q for the nb ≤ kVarianceBlock columns q of k (M ×
// kVarianceBlock, by sparse point; U packed upper triangular): forward
// substitution by rows of U, k overwritten by w. A row of U is read once per
// block of atoms, which keeps large factors from streaming once per atom.
void solve_norm2(const std::vector<double>& U, double* k, int M, int nb, double* norm2) {
  constexpr int B = GaussianProcess::kVarianceBlock;
  std::fill(norm2, norm2 + nb, 0.0);
  for (int m = 0; m < M; ++m) {
    const double* row = U.data() + packed_row(m, M);  // row[j − m] = U_mj
    double* w = k + static_cast<std::size_t>(m) * B;
    const double inv = 1.0 / row[0];
    for (int q = 0; q < nb; ++q) {
      w[q] *= inv;
      norm2[q] += w[q] * w[q];
    }
    for (int j = m + 1; j < M; ++j) {
      const double u = row[j - m];
      double* kj = k + static_cast<std::size_t>(j) * B;
#pragma omp simd
      for (int q = 0; q < B; ++q) kj[q] -= u * w[q];
    }
  }
}

}  // namespace

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
  return variance_error(spec);
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
  } else {
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
  if (spec.has_variance()) {
    factor_prior(spec.variance_jitter, spec.sparse_points);
    posterior_ = spec.variance_factor;
  }
}

void GaussianProcess::factor_prior(double jitter, const std::vector<double>& sparse_points) {
  // Cholesky K = L Lᵀ by rows (L row-major, full), then U = Lᵀ packed.
  const int M = n_sparse();
  const std::size_t D = static_cast<std::size_t>(n_inputs_);
  std::vector<double> L(static_cast<std::size_t>(M) * M, 0.0), k(M);
  for (int i = 0; i < M; ++i) {
    kernel_vector(sparse_points.data() + i * D, k.data());
    k[i] += jitter * delta2_;
    double* li = L.data() + static_cast<std::size_t>(i) * M;
    for (int j = 0; j <= i; ++j) {
      const double* lj = L.data() + static_cast<std::size_t>(j) * M;
      double s = k[j];
      for (int q = 0; q < j; ++q) s -= li[q] * lj[q];
      if (j < i) {
        li[j] = s / lj[j];
      } else if (s > 0) {
        li[i] = std::sqrt(s);
      } else {
        throw Error("the GP's kernel matrix of the sparse points plus jitter " + std::to_string(jitter) +
                    " delta^2 is not positive definite (pivot " + std::to_string(i + 1) +
                    "): the variance cannot be computed");
      }
    }
  }
  prior_.resize(static_cast<std::size_t>(M) * (M + 1) / 2);
  for (int m = 0; m < M; ++m)
    for (int j = m; j < M; ++j) prior_[packed_row(m, M) + (j - m)] = L[static_cast<std::size_t>(j) * M + m];
}

void GaussianProcess::kernel_vector(const double* x, double* k) const {
  const int D = n_inputs_;
  const int M = n_sparse();
  if (kernel_ == GpKernel::SquaredExponential) {
    for (int m = 0; m < M; ++m) {
      const double* z = points_.data() + static_cast<std::size_t>(m) * D;
      double d2 = 0.0;
#pragma omp simd reduction(+ : d2)
      for (int q = 0; q < D; ++q) d2 += (x[q] - z[q]) * (x[q] - z[q]);
      k[m] = delta2_ * std::exp(-0.5 * d2 * inv_l2_);
    }
    return;
  }
  double n2 = 1.0;
  for (int q = 0; q < D; ++q) n2 += x[q] * x[q];
  const double inv = 1.0 / std::sqrt(n2);
  for (int m = 0; m < M; ++m) {
    const double* v = points_.data() + static_cast<std::size_t>(m) * (D + 1);
    double s = v[D];
#pragma omp simd reduction(+ : s)
    for (int q = 0; q < D; ++q) s += x[q] * v[q];
    s *= inv;
    k[m] = delta2_ * (zeta_ == 1 ? 1.0 : std::pow(s, zeta_ - 1)) * s;
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

void GaussianProcess::variances(const double* x, int n, double* out, std::vector<double>& scratch) const {
  if (!has_variance())
    throw Error("this GP has no 'gp_variance' section (a file fitted before format version 7, or the mean of "
                "several potentials): its predictive variance is not available; refit with nnp train --model gp");
  const int M = n_sparse();
  const std::size_t D = static_cast<std::size_t>(n_inputs_), B = kVarianceBlock;
  scratch.resize(2 * static_cast<std::size_t>(M) * B + M + 2 * B);
  double* a = scratch.data();  // M × B: k of the block's atoms, by sparse point
  double* b = a + static_cast<std::size_t>(M) * B;
  double* k = b + static_cast<std::size_t>(M) * B;
  double* prior = k + M;
  double* posterior = prior + B;
  for (int first = 0; first < n; first += kVarianceBlock) {
    const int nb = std::min(kVarianceBlock, n - first);
    for (int q = 0; q < nb; ++q) {
      kernel_vector(x + (first + q) * D, k);
      for (int m = 0; m < M; ++m) a[m * B + q] = k[m];
    }
    for (int m = 0; m < M && nb < kVarianceBlock; ++m)  // the columns the solves carry along unused
      std::fill(a + m * B + nb, a + (m + 1) * B, 0.0);
    std::copy(a, a + static_cast<std::size_t>(M) * B, b);
    solve_norm2(prior_, a, M, nb, prior);
    solve_norm2(posterior_, b, M, nb, posterior);
    // The prior term k(x, x) − kᵀK⁻¹k is ≥ 0 exactly; rounding can push it
    // below 0 next to a sparse point.
    for (int q = 0; q < nb; ++q) out[first + q] = std::max(0.0, delta2_ - prior[q]) + posterior[q];
  }
}

}  // namespace nnp
