// The kinds of symmetry function (G2, G4, G5, the element-weighted W2,
// W4, W5 and the compact C2, C4, C5, CW2, CW4, CW5) as the potential file and the
// Python door see them: each kind owns its name, its neighbour-element count,
// its parameters in file order, their checks and its line format, in one place
// (cpp/src/symmetry_function.cpp). The maths is in nnp/descriptor.h.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "nnp/descriptor.h"

namespace nnp {

// One parameter of a kind, in the order of the file line.
// Compact kinds: Rl, Rc, AngleLeft, AngleRight (degrees), Core ("p2", "p2a", "e", ...).
enum class Parameter { Eta, Zeta, Lambda, Rs, Rc, Rl, AngleLeft, AngleRight, Core };

struct SymmetryFunctionKind {
  SymmetryFunctionType type;
  const char* name;       // "G2": the first token of the file line
  int n_neighbors;        // neighbour elements named on the line (1 or 2; 0: weighted)
  std::vector<Parameter> parameters;
  bool weighted = false;  // neighbours of every element, weighted by the file's element_weights
};

// Every kind, in the order G2, G4, G5, W2, W4, W5, C2, C4, C5, CW2, CW4, CW5.
const std::vector<SymmetryFunctionKind>& symmetry_function_kinds();
const SymmetryFunctionKind& kind_of(SymmetryFunctionType type);
// nullptr if `name` names no kind.
const SymmetryFunctionKind* kind_named(const std::string& name);
const char* parameter_name(Parameter p);  // "eta", "zeta", "lambda", "rs", "rc", "rl", ...

// The core of a compact function as n2p2 writes it: "p1"–"p4" (polynomials),
// "p1a"–"p4a" (asymmetric), "e" (exponential).
const std::vector<std::string>& compact_core_names();
std::string compact_core_name(const SymmetryFunction& f);
// Sets f.core and f.asymmetric; false if `name` is not one of compact_core_names().
bool set_compact_core(SymmetryFunction& f, const std::string& name);

// The usage of a kind's line, e.g. "G2 element eta rs rc".
std::string usage(const SymmetryFunctionKind& kind);

// The first broken rule of f's parameters ("eta must be >= 0", ...), or ""
// when they are valid: λ = ±1 and ζ >= 1 (angular), η >= 0, 0 < r_c <=
// kMaxCutoff, 0 <= R_s < r_c, all finite; weighted kinds: finite element
// weights, not all 0; compact kinds: r_l < r_c (r_l may be negative), the
// angular window θ_l < θ_r no wider than 360° and inside [0°, 180°] unless
// centred on 0° or 180° (n2p2's rules). Element indices and the count of
// weights are not checked here.
std::string parameter_error(const SymmetryFunction& f);

// Same function: same kind and parameters (and weights); angular neighbour
// pairs unordered.
bool same_function(const SymmetryFunction& a, const SymmetryFunction& b);

// Readers of the tokens of one line, supplied by the file parser; they throw
// errors that name the line.
struct TokenReader {
  std::function<int(std::size_t token)> element;
  std::function<double(std::size_t token, const std::string& what)> number;
  std::function<long(std::size_t token, const std::string& what, long lo, long hi)> integer;
  // The index of the token in `choices` (a compact function's core).
  std::function<int(std::size_t token, const std::string& what, const std::vector<std::string>& choices)> choice;
};

// The function of a line whose tokens (the kind's name first) have the
// kind's count; the caller sets the weights of a weighted kind and checks
// parameter_error() afterwards.
SymmetryFunction parse_function(const SymmetryFunctionKind& kind, const TokenReader& read);

// The file line of f ("%.17g" numbers); an angular pair is written in the
// order of the element symbols; a weighted function's weights are not on its
// line (the file has one element_weights line).
std::string format_function(const SymmetryFunction& f, const std::vector<std::string>& elements);

// A double as "%.17g" (enough digits to read back the same double).
std::string format_number(double x);

}  // namespace nnp
