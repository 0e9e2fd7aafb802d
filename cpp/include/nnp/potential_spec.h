// The potential file as plain data (docs/potential-format.md): what the
// parser (nnp/potential_file.h) reads, what the one writer writes and what
// build_potential turns into the evaluator. Python sees these types through
// nnp._core and converts them to its dataclasses (nnp.io.potential_file).
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "nnp/cutoff.h"
#include "nnp/descriptor.h"
#include "nnp/gaussian_process.h"
#include "nnp/network.h"
#include "nnp/potential.h"
#include "nnp/repulsion.h"

namespace nnp {

constexpr const char* kFormatName = "nnp-potential";
// Newest version written and read. Version 2 adds `repulsion` lines,
// version 3 `quadratic` sections, version 4 element-weighted symmetry
// functions (W2, W4, W5) and the `element_weights` line. A file carries the
// lowest version that can express it: 4 with weighted functions, else 3 with
// a quadratic section, else 2 with repulsion lines, else 1 (all are read).
// Version 5 adds n2p2's cutoff functions (hard, tanh3_normalised, exp,
// poly1-poly4, and `alpha`, the inner radius) and the compact symmetry
// functions (C2, C4, C5, CW2, CW4, CW5), written as 5 only when used.
// Version 6 adds `gp` sections (a sparse GP per element), written as 6.
// Version 7 adds `gp_variance` sections (what a GP's predictive variance
// needs), written as 7 only when a GP has one.
constexpr int kFormatVersion = 7;

// Words of the file's vocabulary, for the Python door and messages.
const std::vector<std::string>& activation_names();       // tanh sigmoid softplus silu linear
const std::vector<std::string>& cutoff_function_names();  // cos tanh3 hard tanh3_normalised exp poly1-4
const std::vector<std::string>& angular_sum_names();      // half full

struct QuadraticSpec {
  std::vector<double> linear;  // M
  std::vector<double> matrix;  // M × M, row-major, symmetric
};

struct ElementSpec {
  std::string symbol;
  double reference_energy = 0.0;  // eV
  std::vector<SymmetryFunction> functions;  // network-input order
  Scaling scaling;
  std::vector<Layer> layers;
  std::optional<QuadraticSpec> quadratic;
  std::optional<GaussianProcessSpec> gp;  // version 6; `layers` may then be empty
};

struct PotentialSpec {
  int format_version = 1;  // as read; the writer writes lowest_format_version()
  std::vector<std::string> comments;  // one per '#' line, without "# "
  CutoffType cutoff = CutoffType::Cos;
  double cutoff_alpha = 0.0;  // inner radius α r_c of cos, exp, poly1-poly4 (version 5 if not 0)
  bool full_angular_sum = false;
  std::vector<ElementSpec> elements;
  std::vector<RepulsionPair> repulsion;  // file order

  std::vector<std::string> symbols() const;
  // 7 with a GP variance section, else 6 with a GP section, else 5 with an n2p2 cutoff or compact functions,
  // else 4 with weighted functions, else 3 with a
  // quadratic term, else 2 with a repulsive core, else 1.
  int lowest_format_version() const;
  // The element weights of the weighted functions (they share one table,
  // check_spec checks it), or nullptr if there are none.
  const std::vector<double>* element_weights() const;
};

// Throws nnp::Error naming what is wrong (the writer's checks of data that
// did not come from the parser): shapes, finite numbers, symmetry functions,
// scaling, networks, quadratic terms, repulsion pairs.
void check_spec(const PotentialSpec& spec);
// The repulsion pairs alone: elements, 0 < r_inner < r_outer <= cutoffs, no pair twice.
void check_repulsion(const PotentialSpec& spec);

// The file text (checked first): numbers as "%.17g", comments as "# ..."
// lines after the first, the lowest format version that can express it.
std::string format_potential(const PotentialSpec& spec);

// The evaluator of a (parsed or checked) spec; errors are prefixed with `source`.
Potential build_potential(const PotentialSpec& spec, const std::string& source = "<spec>");

}  // namespace nnp
