// A per-element feed-forward network: y_l = a_l(W_l y_{l−1} + b_l), l = 1..L,
// with a scalar output (the atomic energy in eV, before the reference energy).
#pragma once
#include <string>
#include <vector>

namespace nnp {

enum class Activation { Linear, Tanh, Sigmoid, Softplus, SiLU };

Activation activation_from_name(const std::string& name);  // throws nnp::Error
const char* activation_name(Activation a);

struct Layer {
  int n_out = 0, n_in = 0;
  std::vector<double> weights;  // n_out × n_in, row-major
  std::vector<double> biases;   // n_out
  Activation activation = Activation::Tanh;
};

struct NetworkWorkspace {
  std::vector<std::vector<double>> values;  // per layer: activations y_l
  std::vector<std::vector<double>> slopes;  // per layer: a_l'(z_l)
  std::vector<double> grad, grad_next;
  std::size_t bytes() const;
};

class Network {
 public:
  Network() = default;
  explicit Network(std::vector<Layer> layers);  // checks shapes, throws nnp::Error

  int n_inputs() const { return layers_.empty() ? 0 : layers_.front().n_in; }
  const std::vector<Layer>& layers() const { return layers_; }

  double forward(const double* x, NetworkWorkspace& ws) const;
  // Output and its gradient with respect to the inputs (n_inputs()).
  double forward_backward(const double* x, double* dy_dx, NetworkWorkspace& ws) const;

 private:
  std::vector<Layer> layers_;
};

}  // namespace nnp
