#include "nnp/network.h"

#include <cmath>

#include "nnp/error.h"

namespace nnp {

Activation activation_from_name(const std::string& name) {
  if (name == "linear") return Activation::Linear;
  if (name == "tanh") return Activation::Tanh;
  if (name == "sigmoid") return Activation::Sigmoid;
  if (name == "softplus") return Activation::Softplus;
  if (name == "silu") return Activation::SiLU;
  throw Error("unknown activation '" + name + "' (expected tanh, sigmoid, softplus, silu or linear)");
}

const char* activation_name(Activation a) {
  switch (a) {
    case Activation::Linear: return "linear";
    case Activation::Tanh: return "tanh";
    case Activation::Sigmoid: return "sigmoid";
    case Activation::Softplus: return "softplus";
    case Activation::SiLU: return "silu";
  }
  return "?";
}

std::size_t NetworkWorkspace::bytes() const {
  std::size_t n = grad.capacity() + grad_next.capacity();
  for (const auto& v : values) n += v.capacity();
  for (const auto& v : slopes) n += v.capacity();
  return n * sizeof(double);
}

Network::Network(std::vector<Layer> layers) : layers_(std::move(layers)) {
  if (layers_.empty()) throw Error("a network needs at least one layer");
  for (std::size_t l = 0; l < layers_.size(); ++l) {
    const Layer& L = layers_[l];
    if (L.n_out < 1 || L.n_in < 1 ||
        L.weights.size() != static_cast<std::size_t>(L.n_out) * L.n_in ||
        L.biases.size() != static_cast<std::size_t>(L.n_out))
      throw Error("network layer " + std::to_string(l + 1) + " has inconsistent sizes");
    if (l > 0 && L.n_in != layers_[l - 1].n_out)
      throw Error("network layer " + std::to_string(l + 1) + " expects " + std::to_string(L.n_in) +
                  " inputs but the previous layer has " + std::to_string(layers_[l - 1].n_out));
  }
  if (layers_.back().n_out != 1) throw Error("the network output layer must have one node");
}

namespace {

// y = a(z) and a'(z) expressed through what is cheapest to keep.
inline void activate(Activation act, double z, double& y, double& slope) {
  switch (act) {
    case Activation::Linear:
      y = z;
      slope = 1.0;
      break;
    case Activation::Tanh:
      y = std::tanh(z);
      slope = 1.0 - y * y;
      break;
    case Activation::Sigmoid:
      y = 1.0 / (1.0 + std::exp(-z));
      slope = y * (1.0 - y);
      break;
    case Activation::Softplus: {
      // log(1 + e^z) without overflow; derivative is the logistic function.
      y = z > 0 ? z + std::log1p(std::exp(-z)) : std::log1p(std::exp(z));
      slope = 1.0 / (1.0 + std::exp(-z));
      break;
    }
    case Activation::SiLU: {
      const double s = 1.0 / (1.0 + std::exp(-z));
      y = z * s;
      slope = s * (1.0 + z * (1.0 - s));
      break;
    }
  }
}

}  // namespace

double Network::forward(const double* x, NetworkWorkspace& ws) const {
  // Forward pass keeping each layer's slopes, so that the backward pass in
  // forward_backward costs only matrix-vector products.
  ws.values.resize(layers_.size());
  ws.slopes.resize(layers_.size());
  const double* in = x;
  for (std::size_t l = 0; l < layers_.size(); ++l) {
    const Layer& L = layers_[l];
    auto& y = ws.values[l];
    auto& s = ws.slopes[l];
    y.resize(L.n_out);
    s.resize(L.n_out);
    const double* w = L.weights.data();
    for (int o = 0; o < L.n_out; ++o) {
      double z = L.biases[o];
      const double* row = w + static_cast<std::size_t>(o) * L.n_in;
      for (int i = 0; i < L.n_in; ++i) z += row[i] * in[i];
      activate(L.activation, z, y[o], s[o]);
    }
    in = y.data();
  }
  return ws.values.back()[0];
}

double Network::forward_backward(const double* x, double* dy_dx, NetworkWorkspace& ws) const {
  const double out = forward(x, ws);
  // Backward: g_l = a_l'(z_l) ⊙ (W_{l+1}ᵀ g_{l+1}), starting from dE/dy_L = 1.
  auto& g = ws.grad;
  auto& gn = ws.grad_next;
  g.assign(1, ws.slopes.back()[0]);
  for (std::size_t l = layers_.size(); l-- > 0;) {
    const Layer& L = layers_[l];
    double* target;
    if (l == 0) {
      target = dy_dx;
    } else {
      gn.resize(L.n_in);
      target = gn.data();
    }
    for (int i = 0; i < L.n_in; ++i) target[i] = 0.0;
    const double* w = L.weights.data();
    for (int o = 0; o < L.n_out; ++o) {
      const double go = g[o];
      const double* row = w + static_cast<std::size_t>(o) * L.n_in;
      for (int i = 0; i < L.n_in; ++i) target[i] += go * row[i];
    }
    if (l > 0) {
      const auto& s = ws.slopes[l - 1];
      for (int i = 0; i < L.n_in; ++i) gn[i] *= s[i];
      std::swap(g, gn);
    }
  }
  return out;
}

}  // namespace nnp
