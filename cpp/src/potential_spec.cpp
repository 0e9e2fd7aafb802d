// The potential spec: its checks, the one writer of the file, and the
// builder of the evaluator.
#include "nnp/potential_spec.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "nnp/error.h"
#include "nnp/symmetry_function.h"

namespace nnp {

const std::vector<std::string>& activation_names() {
  static const std::vector<std::string> names = {"tanh", "sigmoid", "softplus", "silu", "linear"};
  return names;
}

const std::vector<std::string>& cutoff_function_names() {
  static const std::vector<std::string> names = {"cos",   "tanh3", "hard",  "tanh3_normalised", "exp",
                                                 "poly1", "poly2", "poly3", "poly4"};
  return names;
}

const std::vector<std::string>& angular_sum_names() {
  static const std::vector<std::string> names = {"half", "full"};
  return names;
}

std::vector<std::string> PotentialSpec::symbols() const {
  std::vector<std::string> out;
  for (const ElementSpec& e : elements) out.push_back(e.symbol);
  return out;
}

const std::vector<double>* PotentialSpec::element_weights() const {
  for (const ElementSpec& e : elements)
    for (const SymmetryFunction& f : e.functions)
      if (is_weighted(f.type)) return &f.weights;
  return nullptr;
}

int PotentialSpec::lowest_format_version() const {
  for (const ElementSpec& e : elements)
    if (e.gp && e.gp->has_variance()) return 7;
  for (const ElementSpec& e : elements)
    if (e.gp) return 6;
  if (cutoff_needs_version5(cutoff, cutoff_alpha)) return 5;
  for (const ElementSpec& e : elements)
    for (const SymmetryFunction& f : e.functions)
      if (is_compact(f.type)) return 5;
  if (element_weights()) return 4;
  for (const ElementSpec& e : elements)
    if (e.quadratic) return 3;
  return repulsion.empty() ? 1 : 2;
}

namespace {

std::string repr(double x) {
  std::ostringstream out;
  out.precision(17);
  out << x;
  return out.str();
}

bool all_finite(const std::vector<double>& v) {
  return std::all_of(v.begin(), v.end(), [](double x) { return std::isfinite(x); });
}

double element_cutoff(const ElementSpec& e) {
  double rc = 0.0;
  for (const SymmetryFunction& f : e.functions) rc = std::max(rc, f.rc);
  return rc;
}

void check_functions(const ElementSpec& e, int n_elements) {
  const std::string& sym = e.symbol;
  if (e.functions.empty()) throw Error(sym + ": a descriptor needs at least one symmetry function");
  for (std::size_t k = 0; k < e.functions.size(); ++k) {
    const SymmetryFunction& f = e.functions[k];
    const std::string where = sym + ": symmetry function " + std::to_string(k + 1) + ": ";
    const int n_neighbors = kind_of(f.type).n_neighbors;
    if ((n_neighbors >= 1 && (f.element_a < 0 || f.element_a >= n_elements)) ||
        (n_neighbors == 2 && (f.element_b < 0 || f.element_b >= n_elements)))
      throw Error(where + "neighbour element index out of range");
    if (is_weighted(f.type) && f.weights.size() != static_cast<std::size_t>(n_elements))
      throw Error(where + "needs " + std::to_string(n_elements) + " element weights (one per element), found " +
                  std::to_string(f.weights.size()));
    const std::string bad = parameter_error(f);
    if (!bad.empty()) throw Error(where + bad);
    for (std::size_t q = 0; q < k; ++q)
      if (same_function(f, e.functions[q]))
        throw Error(where + "duplicate symmetry function (same as function " + std::to_string(q + 1) + ")");
  }
}

void check_model(const ElementSpec& e) {
  const std::string& sym = e.symbol;
  const std::size_t n = e.functions.size();
  const Scaling& s = e.scaling;
  const std::pair<const char*, const std::vector<double>*> rows[] = {
      {"center", &s.center}, {"width", &s.width}, {"min", &s.min}, {"max", &s.max}};
  for (const auto& [name, v] : rows)
    if (v->size() != n || !all_finite(*v))
      throw Error(sym + ": scaling " + name + " must be " + std::to_string(n) + " finite numbers");
  for (std::size_t k = 0; k < n; ++k)
    if (!(s.width[k] > 0) || !(s.min[k] <= s.max[k])) throw Error(sym + ": scaling needs width > 0 and min <= max");
  if (e.layers.empty() && !e.gp) throw Error(sym + ": needs a network or a GP (or both)");
  if (!e.layers.empty() && e.layers.back().n_out != 1) throw Error(sym + ": the network must end in one output");
  if (e.gp) {
    const std::string bad = gp_spec_error(*e.gp, n);
    if (!bad.empty()) throw Error(sym + ": " + bad);
  }
  int n_in = static_cast<int>(n);
  for (std::size_t l = 0; l < e.layers.size(); ++l) {
    const Layer& layer = e.layers[l];
    const std::string i = std::to_string(l + 1);
    if (layer.n_in != n_in || layer.n_out < 1 ||
        layer.weights.size() != static_cast<std::size_t>(layer.n_out) * static_cast<std::size_t>(layer.n_in))
      throw Error(sym + ": layer " + i + " expects " + std::to_string(n_in) + " inputs, has " +
                  std::to_string(layer.n_out) + " x " + std::to_string(layer.n_in) + " weights");
    if (layer.biases.size() != static_cast<std::size_t>(layer.n_out))
      throw Error(sym + ": layer " + i + " biases do not match its weights");
    if (!all_finite(layer.weights) || !all_finite(layer.biases))
      throw Error(sym + ": layer " + i + " has non-finite parameters");
    n_in = layer.n_out;
  }
  if (!std::isfinite(e.reference_energy)) throw Error(sym + ": reference energy is not finite");
  if (e.quadratic) {
    const QuadraticSpec& q = *e.quadratic;
    if (q.linear.size() != n || q.matrix.size() != n * n)
      throw Error(sym + ": the quadratic term needs " + std::to_string(n) + " linear coefficients and a " +
                  std::to_string(n) + " x " + std::to_string(n) + " matrix");
    if (!all_finite(q.linear) || !all_finite(q.matrix)) throw Error(sym + ": the quadratic term has non-finite coefficients");
    for (std::size_t r = 0; r < n; ++r)
      for (std::size_t c = 0; c < r; ++c)
        if (q.matrix[r * n + c] != q.matrix[c * n + r]) throw Error(sym + ": the quadratic matrix must be symmetric");
  }
}

}  // namespace

void check_repulsion(const PotentialSpec& spec) {
  const int n = static_cast<int>(spec.elements.size());
  for (std::size_t k = 0; k < spec.repulsion.size(); ++k) {
    const RepulsionPair& p = spec.repulsion[k];
    if (p.element_a < 0 || p.element_a >= n || p.element_b < 0 || p.element_b >= n)
      throw Error("repulsion: element index out of range");
    const std::string pair = "repulsion " + spec.elements[p.element_a].symbol + " " + spec.elements[p.element_b].symbol;
    for (const int e : {p.element_a, p.element_b})
      if (atomic_number(spec.elements[e].symbol) == 0)
        throw Error(pair + ": '" + spec.elements[e].symbol + "' is not a chemical symbol (ZBL needs its atomic number)");
    if (!(std::isfinite(p.r_inner) && std::isfinite(p.r_outer) && p.r_inner > 0 && p.r_inner < p.r_outer))
      throw Error(pair + ": need 0 < r_inner < r_outer, found r_inner " + repr(p.r_inner) + ", r_outer " +
                  repr(p.r_outer));
    for (const int e : {p.element_a, p.element_b}) {
      const double rc = element_cutoff(spec.elements[e]);
      if (!(p.r_outer <= rc))
        throw Error(pair + ": r_outer " + repr(p.r_outer) + " exceeds the cutoff " + repr(rc) + " of " +
                    spec.elements[e].symbol);
    }
    for (std::size_t q = 0; q < k; ++q) {
      const RepulsionPair& o = spec.repulsion[q];
      if ((o.element_a == p.element_a && o.element_b == p.element_b) ||
          (o.element_a == p.element_b && o.element_b == p.element_a))
        throw Error("second repulsion for the pair " + spec.elements[p.element_a].symbol + " " +
                    spec.elements[p.element_b].symbol);
    }
  }
}

void check_spec(const PotentialSpec& spec) {
  if (spec.elements.empty()) throw Error("a potential needs at least one element");
  if (const std::string bad = cutoff_alpha_error(spec.cutoff, spec.cutoff_alpha); !bad.empty()) throw Error(bad);
  const std::vector<std::string> symbols = spec.symbols();
  for (std::size_t e = 0; e < symbols.size(); ++e) {
    if (symbols[e].empty() || symbols[e].find_first_of(" \t\n\r#") != std::string::npos)
      throw Error("element symbol '" + symbols[e] + "' cannot be written in a potential file");
    for (std::size_t q = 0; q < e; ++q)
      if (symbols[q] == symbols[e]) throw Error("element '" + symbols[e] + "' appears twice");
  }
  check_repulsion(spec);
  for (const ElementSpec& e : spec.elements) {
    check_functions(e, static_cast<int>(spec.elements.size()));
    check_model(e);
  }
  // The file has one element_weights line.
  if (const std::vector<double>* weights = spec.element_weights())
    for (const ElementSpec& e : spec.elements)
      for (const SymmetryFunction& f : e.functions)
        if (is_weighted(f.type) && f.weights != *weights)
          throw Error(e.symbol + ": the weighted symmetry functions of a potential must share one set of element weights");
}

namespace {

// gp E KERNEL M / hyperparameters delta V (lengthscale V | zeta N) / M lines "α_m z_m".
void append_gp_section(std::vector<std::string>& out, const ElementSpec& e) {
  const GaussianProcessSpec& gp = *e.gp;
  const std::size_t D = e.functions.size();
  out.push_back("gp " + e.symbol + " " + gp_kernel_name(gp.kernel) + " " + std::to_string(gp.n_sparse()));
  out.push_back("hyperparameters delta " + format_number(gp.delta) +
                (gp.kernel == GpKernel::Dot ? " zeta " + std::to_string(gp.zeta)
                                            : " lengthscale " + format_number(gp.lengthscale)));
  for (std::size_t m = 0; m < gp.weights.size(); ++m) {
    std::string line = format_number(gp.weights[m]);
    for (std::size_t k = 0; k < D; ++k) line += " " + format_number(gp.sparse_points[m * D + k]);
    out.push_back(line);
  }
  if (!gp.has_variance()) return;
  // gp_variance E M jitter J / M rows of the packed factor, row m from the diagonal (M − m numbers).
  const std::size_t M = gp.weights.size();
  out.push_back("gp_variance " + e.symbol + " " + std::to_string(M) + " jitter " + format_number(gp.variance_jitter));
  for (std::size_t m = 0, at = 0; m < M; at += M - m, ++m) {
    std::string line;
    for (std::size_t j = 0; j < M - m; ++j) line += (j ? " " : "") + format_number(gp.variance_factor[at + j]);
    out.push_back(line);
  }
}

}  // namespace

std::string format_potential(const PotentialSpec& spec) {
  check_spec(spec);
  const std::vector<std::string> symbols = spec.symbols();
  std::vector<std::string> out;
  auto numbers = [](const double* x, std::size_t n) {
    std::string line;
    for (std::size_t k = 0; k < n; ++k) line += (k ? " " : "") + format_number(x[k]);
    return line;
  };
  out.push_back(std::string(kFormatName) + " " + std::to_string(spec.lowest_format_version()));
  for (const std::string& comment : spec.comments) {
    // One '#' line per line of the comment; an empty comment writes nothing.
    std::size_t start = 0;
    while (start < comment.size()) {
      std::size_t end = comment.find('\n', start);
      if (end == std::string::npos) end = comment.size();
      out.push_back("# " + comment.substr(start, end - start));
      start = end + 1;
    }
  }
  out.push_back("units metal");
  std::string elements = "elements " + std::to_string(symbols.size());
  for (const std::string& s : symbols) elements += " " + s;
  out.push_back(elements);
  out.push_back(std::string("cutoff_function ") + cutoff_type_name(spec.cutoff) +
                (spec.cutoff_alpha != 0.0 ? " alpha " + format_number(spec.cutoff_alpha) : ""));
  out.push_back("angular_sum " + angular_sum_names()[spec.full_angular_sum ? 1 : 0]);
  if (const std::vector<double>* weights = spec.element_weights()) {
    std::string line = "element_weights";
    for (std::size_t e = 0; e < symbols.size(); ++e) line += " " + symbols[e] + " " + format_number((*weights)[e]);
    out.push_back(line);
  }
  for (const ElementSpec& e : spec.elements) {
    const std::string M = std::to_string(e.functions.size());
    out.push_back("reference_energy " + e.symbol + " " + format_number(e.reference_energy));
    out.push_back("descriptor " + e.symbol + " " + M);
    for (const SymmetryFunction& f : e.functions) out.push_back(format_function(f, symbols));
    out.push_back("scaling " + e.symbol + " " + M);
    const Scaling& s = e.scaling;
    for (std::size_t k = 0; k < e.functions.size(); ++k) {
      const double row[4] = {s.center[k], s.width[k], s.min[k], s.max[k]};
      out.push_back(numbers(row, 4));
    }
    if (!e.layers.empty()) {
      std::string network = "network " + e.symbol + " " + std::to_string(e.layers.size());
      std::string activations = "activations";
      for (const Layer& layer : e.layers) {
        network += " " + std::to_string(layer.n_out);
        activations += std::string(" ") + activation_name(layer.activation);
      }
      out.push_back(network);
      out.push_back(activations);
      for (std::size_t l = 0; l < e.layers.size(); ++l) {
        const Layer& layer = e.layers[l];
        out.push_back("layer " + std::to_string(l + 1) + " " + std::to_string(layer.n_out) + " " +
                      std::to_string(layer.n_in));
        for (int r = 0; r < layer.n_out; ++r) out.push_back(numbers(layer.weights.data() + r * layer.n_in, layer.n_in));
        out.push_back(numbers(layer.biases.data(), layer.biases.size()));
      }
    }
    if (e.quadratic) {
      const std::size_t n = e.functions.size();
      out.push_back("quadratic " + e.symbol + " " + M);
      out.push_back(numbers(e.quadratic->linear.data(), n));
      for (std::size_t r = 0; r < n; ++r) out.push_back(numbers(e.quadratic->matrix.data() + r * n, n));
    }
    if (e.gp) append_gp_section(out, e);
  }
  for (const RepulsionPair& p : spec.repulsion)
    out.push_back("repulsion zbl " + symbols[p.element_a] + " " + symbols[p.element_b] + " " +
                  format_number(p.r_inner) + " " + format_number(p.r_outer));
  out.push_back("end");
  std::string text;
  for (const std::string& line : out) text += line + "\n";
  return text;
}

Potential build_potential(const PotentialSpec& spec, const std::string& source) {
  std::vector<ElementModel> models;
  const int n_elements = static_cast<int>(spec.elements.size());
  for (const ElementSpec& e : spec.elements) {
    ElementModel m;
    m.symbol = e.symbol;
    m.reference_energy = e.reference_energy;
    try {
      m.descriptor = Descriptor(e.functions, spec.cutoff, spec.full_angular_sum, n_elements, spec.cutoff_alpha);
      if (!e.layers.empty()) m.network = Network(e.layers);
      if (e.gp) m.gp = GaussianProcess(*e.gp, static_cast<int>(e.functions.size()));
      if (e.quadratic) m.quadratic = QuadraticTerm(e.quadratic->linear, e.quadratic->matrix);
    } catch (const Error& err) {
      throw Error(source + ": element " + e.symbol + ": " + err.what());
    }
    m.scaling = e.scaling;
    models.push_back(std::move(m));
  }
  try {
    return Potential(std::move(models), spec.repulsion);
  } catch (const Error& err) {
    throw Error(source + ": " + err.what());
  }
}

}  // namespace nnp
