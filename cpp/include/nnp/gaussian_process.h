// A sparse Gaussian-process regressor of the atomic energy (docs/gp.md): over
// M sparse points z_m of the scaled descriptor x (x = (G − center)/width, the
// network's input),
//
//     E_GP(x) = Σ_m α_m k(x, z_m)
//
// with one of two kernels (δ: the prior's energy scale in eV):
//   se   squared exponential   k(x, z) = δ² exp(−|x − z|² / (2 ℓ²))
//        ∂k/∂x = −k (x − z) / ℓ²
//   dot  polynomial, on the unit vectors of (x, 1) as GAP's SOAP kernel is
//        on normalised SOAP vectors: k(x, z) = δ² (x̂·ẑ)^ζ,
//        x̂ = (x, 1)/|(x, 1)| (the appended 1 keeps x = 0 regular),
//        ∂k/∂x_μ = δ² ζ (x̂·ẑ)^(ζ−1) (ẑ_μ − (x̂·ẑ) x̂_μ) / |(x, 1)|.
// The weights α come from the projected-process fit (nnp.train.gp_fit); the
// gradient ∂E/∂x enters the same descriptor chain rule as the network's.
//
// Predictive variance (docs/gp.md, "Predictive variance"), with k = k(x, z)
// the M kernel values, K = K_MM + jitter·δ² I = UᵀU (U upper triangular,
// computed here from the sparse points) and R the upper-triangular factor of
// the fit's posterior precision of this element's weights (the file's
// `gp_variance` section; Cov α = (RᵀR)⁻¹):
//     var E_GP(x) = [k(x, x) − |U⁻ᵀk|²] + |R⁻ᵀk|²      (eV², k(x, x) = δ²)
// the projected process's prior term and the weights' posterior term; two
// triangular solves, M² multiply-adds per atom.
#pragma once
#include <string>
#include <vector>

namespace nnp {

enum class GpKernel { SquaredExponential, Dot };

GpKernel gp_kernel_from_name(const std::string& name);  // "se", "dot"; throws nnp::Error
const char* gp_kernel_name(GpKernel k);
const std::vector<std::string>& gp_kernel_names();

// What the file's `gp` section holds (nnp/potential_spec.h).
struct GaussianProcessSpec {
  GpKernel kernel = GpKernel::SquaredExponential;
  double delta = 1.0;        // eV
  double lengthscale = 1.0;  // se: ℓ (units of x)
  int zeta = 1;              // dot: the integer power ζ
  std::vector<double> sparse_points;  // M × D, row-major, in scaled-descriptor space
  std::vector<double> weights;        // M: α_m (E = Σ_m α_m k(x, z_m))
  // Optional (format version 7, `gp_variance`): R packed row by row from the
  // diagonal (row m: R_mm ... R_m,M−1; M(M+1)/2 numbers, R_mm > 0), and the
  // jitter (relative to δ²) the fit added to K_MM. Empty: no variance.
  std::vector<double> variance_factor;
  double variance_jitter = 0.0;
  int n_sparse() const { return static_cast<int>(weights.size()); }
  bool has_variance() const { return !variance_factor.empty(); }
};

// "" if the spec can be evaluated with D inputs, else what is wrong.
std::string gp_spec_error(const GaussianProcessSpec& spec, std::size_t n_inputs);

class GaussianProcess {
 public:
  GaussianProcess() = default;
  // Throws nnp::Error (gp_spec_error) on a bad spec.
  GaussianProcess(const GaussianProcessSpec& spec, int n_inputs);

  bool empty() const { return weights_.empty(); }
  int n_inputs() const { return n_inputs_; }
  int n_sparse() const { return static_cast<int>(weights_.size()); }

  // E_GP(x); `scratch` is resized here (no allocation once grown).
  double value(const double* x, std::vector<double>& scratch) const;
  // E_GP(x), and ∂E_GP/∂x added to grad (n_inputs entries).
  double value_and_gradient(const double* x, double* grad, std::vector<double>& scratch) const;

  bool has_variance() const { return !posterior_.empty(); }
  // The predictive variance of E_GP (eV², formula above) of each of the n
  // rows of x (n × n_inputs) into out; throws nnp::Error without a variance
  // section. The solves run over blocks of kVarianceBlock atoms, so that the
  // factors are read once per block (at large M they exceed the cache).
  static constexpr int kVarianceBlock = 32;
  void variances(const double* x, int n, double* out, std::vector<double>& scratch) const;

 private:
  // k_m = k(x, z_m) for m < M into k.
  void kernel_vector(const double* x, double* k) const;
  // The Cholesky factor U of K_MM + jitter·δ² I (packed as posterior_);
  // throws nnp::Error when K_MM is not positive definite with that jitter.
  void factor_prior(double jitter, const std::vector<double>& sparse_points);

  GpKernel kernel_ = GpKernel::SquaredExponential;
  double delta2_ = 1.0, inv_l2_ = 1.0;
  int zeta_ = 1, n_inputs_ = 0;
  // se: the sparse points; dot: their unit vectors (D + 1 entries each).
  std::vector<double> points_;
  std::vector<double> weights_;
  // Packed upper-triangular U (prior) and R (posterior); empty: no variance.
  std::vector<double> prior_, posterior_;
};

}  // namespace nnp
