// Reader of the potential file; grammar in docs/potential-format.md. Every
// error names the source, the line and what was expected, so that a user (or
// LAMMPS, which prints the message) can fix the file without reading code.
#include "nnp/potential_file.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "nnp/error.h"
#include "nnp/symmetry_function.h"

namespace nnp {

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot open potential file '" + path + "'");
  std::ostringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) throw Error("error while reading potential file '" + path + "'");
  return buffer.str();
}

namespace {

std::string joined(const std::vector<std::string>& words) {
  std::string out;
  for (const std::string& w : words) out += (out.empty() ? "" : ", ") + w;
  return out;
}

constexpr long kMaxCount = 100000;

// Lexical rules: a line is UTF-8
// text without control characters other than tab; tokens are separated by
// spaces and tabs; numbers are plain decimals [+-]digits[.digits][e[+-]digits]
// (no hexadecimal, which strtod would accept).
bool is_space(char c) { return c == ' ' || c == '\t'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

// Length of the well-formed UTF-8 sequence at s[i] (Unicode Table 3-7), or 0.
std::size_t utf8_sequence(const std::string& s, std::size_t i) {
  const auto byte = [&](std::size_t k) { return k < s.size() ? static_cast<unsigned char>(s[k]) : 0u; };
  const unsigned c = byte(i);
  if (c < 0x80) return 1;
  const auto cont = [&](std::size_t k, unsigned lo = 0x80, unsigned hi = 0xBF) {
    const unsigned b = byte(k);
    return b >= lo && b <= hi;
  };
  if (c >= 0xC2 && c <= 0xDF) return cont(i + 1) ? 2 : 0;
  if (c == 0xE0) return cont(i + 1, 0xA0) && cont(i + 2) ? 3 : 0;
  if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) return cont(i + 1) && cont(i + 2) ? 3 : 0;
  if (c == 0xED) return cont(i + 1, 0x80, 0x9F) && cont(i + 2) ? 3 : 0;
  if (c == 0xF0) return cont(i + 1, 0x90) && cont(i + 2) && cont(i + 3) ? 4 : 0;
  if (c >= 0xF1 && c <= 0xF3) return cont(i + 1) && cont(i + 2) && cont(i + 3) ? 4 : 0;
  if (c == 0xF4) return cont(i + 1, 0x80, 0x8F) && cont(i + 2) && cont(i + 3) ? 4 : 0;
  return 0;
}

bool is_decimal(const std::string& t) {
  std::size_t i = 0;
  if (i < t.size() && (t[i] == '+' || t[i] == '-')) ++i;
  std::size_t digits = 0;
  while (i < t.size() && is_digit(t[i])) ++i, ++digits;
  if (i < t.size() && t[i] == '.') {
    ++i;
    while (i < t.size() && is_digit(t[i])) ++i, ++digits;
  }
  if (digits == 0) return false;
  if (i < t.size() && (t[i] == 'e' || t[i] == 'E')) {
    ++i;
    if (i < t.size() && (t[i] == '+' || t[i] == '-')) ++i;
    std::size_t exponent = 0;
    while (i < t.size() && is_digit(t[i])) ++i, ++exponent;
    if (exponent == 0) return false;
  }
  return i == t.size();
}

bool is_integer(const std::string& t) {
  std::size_t i = (!t.empty() && (t[0] == '+' || t[0] == '-')) ? 1 : 0;
  if (i == t.size()) return false;
  for (; i < t.size(); ++i)
    if (!is_digit(t[i])) return false;
  return true;
}

bool is_non_finite_word(std::string t) {
  if (!t.empty() && (t[0] == '+' || t[0] == '-')) t.erase(0, 1);
  for (char& c : t) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return t == "nan" || t == "inf" || t == "infinity";
}

struct Line {
  int number;
  std::vector<std::string> tokens;
};

class Lines {
 public:
  Lines(const std::string& text, std::string source) : source_(std::move(source)) {
    std::size_t pos = 0;
    int number = 0;
    while (pos < text.size()) {
      std::size_t end = text.find('\n', pos);
      if (end == std::string::npos) end = text.size();
      ++number;
      std::string line = text.substr(pos, end - pos);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      for (std::size_t i = 0; i < line.size();) {
        const unsigned char ch = static_cast<unsigned char>(line[i]);
        if (ch < 32 && ch != '\t')
          throw Error(source_ + ":" + std::to_string(number) + ": not a text file (control characters)");
        const std::size_t n = utf8_sequence(line, i);
        if (n == 0)
          throw Error(source_ + ":" + std::to_string(number) + ": not a text file (binary or not UTF-8)");
        i += n;
      }
      Line l{number, {}};
      for (std::size_t i = 0; i < line.size();) {
        while (i < line.size() && is_space(line[i])) ++i;
        const std::size_t start = i;
        while (i < line.size() && !is_space(line[i])) ++i;
        if (i > start) l.tokens.push_back(line.substr(start, i - start));
      }
      if (!l.tokens.empty() && l.tokens[0][0] == '#') {
        // The text after '#' and one space (the writer's "# ").
        std::string comment = line.substr(line.find('#') + 1);
        if (!comment.empty() && comment[0] == ' ') comment.erase(0, 1);
        comments_.push_back(std::move(comment));
      } else if (!l.tokens.empty()) {
        lines_.push_back(std::move(l));
      }
      pos = end + 1;
    }
    last_ = std::max(number, 1);  // errors at the end name the last line (1 if empty)
  }

  Error error(int line, const std::string& msg) const {
    return Error(source_ + ":" + std::to_string(line) + ": " + msg);
  }
  const Line& next(const std::string& what) {
    if (pos_ >= lines_.size()) throw error(last_, "file ends early: expected " + what + " (truncated file?)");
    return lines_[pos_++];
  }
  const Line& keyword(const std::string& key, int n_args = -1) {
    const Line& l = next("'" + key + "'");
    if (l.tokens[0] != key) throw error(l.number, "expected '" + key + "', found '" + l.tokens[0] + "'");
    if (n_args >= 0 && static_cast<int>(l.tokens.size()) - 1 != n_args)
      throw error(l.number, "'" + key + "' takes " + std::to_string(n_args) + " values, found " +
                                std::to_string(l.tokens.size() - 1));
    return l;
  }
  const std::string* peek() const { return pos_ < lines_.size() ? &lines_[pos_].tokens[0] : nullptr; }
  bool at_end() const { return pos_ >= lines_.size(); }
  int last_line() const { return last_; }
  std::vector<std::string>& comments() { return comments_; }

  double number(const Line& l, std::size_t i, const std::string& what) const {
    const std::string& tok = l.tokens.at(i);
    if (is_non_finite_word(tok)) throw error(l.number, what + " must be finite, found '" + tok + "'");
    if (!is_decimal(tok)) throw error(l.number, "expected a number for " + what + ", found '" + tok + "'");
    // strtod rounds correctly; underflow (ERANGE with a finite result) gives
    // the nearest subnormal or zero, as Python's float() does.
    const double x = std::strtod(tok.c_str(), nullptr);
    if (!std::isfinite(x)) throw error(l.number, what + " must be finite, found '" + tok + "'");
    return x;
  }
  long integer(const Line& l, std::size_t i, const std::string& what, long lo, long hi) const {
    const std::string& tok = l.tokens.at(i);
    if (!is_integer(tok)) throw error(l.number, "expected an integer for " + what + ", found '" + tok + "'");
    errno = 0;
    const long x = std::strtol(tok.c_str(), nullptr, 10);
    if (errno == ERANGE)  // beyond long: out of range whatever the bounds
      throw error(l.number, what + " must be in [" + std::to_string(lo) + ", " + std::to_string(hi) +
                                "], found " + tok);
    if (x < lo || x > hi)
      throw error(l.number, what + " must be in [" + std::to_string(lo) + ", " + std::to_string(hi) +
                                "], found " + tok);
    return x;
  }
  std::vector<double> numbers(std::size_t n, const std::string& what, int* line_number = nullptr) {
    const Line& l = next(what);
    if (line_number) *line_number = l.number;
    if (l.tokens.size() != n)
      throw error(l.number, "expected " + std::to_string(n) + " numbers (" + what + "), found " +
                                std::to_string(l.tokens.size()));
    std::vector<double> out(n);
    for (std::size_t i = 0; i < n; ++i) out[i] = number(l, i, what);
    return out;
  }

 private:
  std::string source_;
  std::vector<Line> lines_;
  std::vector<std::string> comments_;
  std::size_t pos_ = 0;
  int last_ = 0;
};

int element_of(const Lines& lines, const Line& l, std::size_t i, const std::vector<std::string>& elements) {
  const std::string& sym = l.tokens.at(i);
  for (std::size_t e = 0; e < elements.size(); ++e)
    if (elements[e] == sym) return static_cast<int>(e);
  throw lines.error(l.number, "element '" + sym + "' is not in the elements line");
}

// `weights`: the element_weights line's numbers, nullptr if the file has none.
SymmetryFunction read_function(Lines& lines, const std::vector<std::string>& elements, int version,
                               const std::vector<double>* weights, int* line_number) {
  const Line& l = lines.next("a symmetry function line (G2, G4 or G5)");
  *line_number = l.number;
  const SymmetryFunctionKind* kind = kind_named(l.tokens[0]);
  if (!kind) throw lines.error(l.number, "expected a symmetry function (G2, G4, G5), found '" + l.tokens[0] + "'");
  if (kind->weighted && version < 4)
    throw lines.error(l.number, "'" + std::string(kind->name) + "' needs format version 4 (line 1: '" +
                                    std::string(kFormatName) + " 4')");
  if (kind->weighted && !weights)
    throw lines.error(l.number, "'" + std::string(kind->name) +
                                    "' needs an 'element_weights' line (after 'angular_sum')");
  if (l.tokens.size() != 1 + kind->n_neighbors + kind->parameters.size())
    throw lines.error(l.number, "expected '" + usage(*kind) + "'");
  TokenReader read;
  read.element = [&](std::size_t i) { return element_of(lines, l, i, elements); };
  read.number = [&](std::size_t i, const std::string& what) { return lines.number(l, i, what); };
  read.integer = [&](std::size_t i, const std::string& what, long lo, long hi) {
    return lines.integer(l, i, what, lo, hi);
  };
  read.choice = [&](std::size_t i, const std::string& what, const std::vector<std::string>& choices) {
    for (std::size_t c = 0; c < choices.size(); ++c)
      if (l.tokens.at(i) == choices[c]) return static_cast<int>(c);
    throw lines.error(l.number, "expected " + what + " (" + joined(choices) + "), found '" + l.tokens.at(i) + "'");
  };
  if (is_compact(kind->type) && version < 5)
    throw lines.error(l.number, "'" + std::string(kind->name) + "' needs format version 5 (line 1: '" +
                                    std::string(kFormatName) + " 5')");
  SymmetryFunction f = parse_function(*kind, read);
  if (kind->weighted) f.weights = *weights;
  const std::string bad = parameter_error(f);
  if (!bad.empty()) throw lines.error(l.number, bad);
  return f;
}

struct PendingElement {
  bool has_reference = false, has_scaling = false, has_network = false, has_quadratic = false;
  int quadratic_line = 0;
  std::vector<double> quadratic_linear, quadratic_matrix;
  double reference_energy = 0;
  std::vector<SymmetryFunction> functions;
  bool has_descriptor = false;
  Scaling scaling;
  std::vector<Layer> layers;
  bool has_gp = false;
  GaussianProcessSpec gp;
};

// The `gp` section whose first line is `l` (docs/potential-format.md).
void read_gp(Lines& lines, const Line& l, int version, PendingElement& p, const std::string& sym) {
  if (version < 6)
    throw lines.error(l.number, "'gp' needs format version 6 (line 1: '" + std::string(kFormatName) + " 6')");
  if (p.has_gp) throw lines.error(l.number, "second 'gp' section for " + sym);
  if (!p.has_descriptor) throw lines.error(l.number, "'gp " + sym + "' must follow 'descriptor " + sym + "'");
  if (l.tokens.size() != 4) throw lines.error(l.number, "expected 'gp element kernel count'");
  GaussianProcessSpec gp;
  try {
    gp.kernel = gp_kernel_from_name(l.tokens[2]);
  } catch (const Error& err) {
    throw lines.error(l.number, err.what());
  }
  const long M = lines.integer(l, 3, "the number of sparse points", 1, kMaxCount);
  const Line& h = lines.keyword("hyperparameters", 4);
  const bool dot = gp.kernel == GpKernel::Dot;
  const std::string second = dot ? "zeta" : "lengthscale";
  if (h.tokens[1] != "delta" || h.tokens[3] != second)
    throw lines.error(h.number, "expected 'hyperparameters delta VALUE " + second + " VALUE'");
  gp.delta = lines.number(h, 2, "delta");
  if (dot)
    gp.zeta = static_cast<int>(lines.integer(h, 4, "zeta", 1, 64));
  else
    gp.lengthscale = lines.number(h, 4, "the lengthscale");
  const std::size_t D = p.functions.size();
  for (long m = 0; m < M; ++m) {
    const std::vector<double> row = lines.numbers(D + 1, "a sparse point's weight and its " + std::to_string(D) +
                                                             " coordinates");
    gp.weights.push_back(row[0]);
    gp.sparse_points.insert(gp.sparse_points.end(), row.begin() + 1, row.end());
  }
  const std::string bad = gp_spec_error(gp, D);
  if (!bad.empty()) throw lines.error(h.number, "gp " + sym + ": " + bad);
  p.gp = std::move(gp);
  p.has_gp = true;
}

// The `gp_variance` section whose first line is `l`: the factor of the GP's
// posterior precision, row m from the diagonal (docs/potential-format.md).
void read_gp_variance(Lines& lines, const Line& l, int version, PendingElement& p, const std::string& sym) {
  if (version < 7)
    throw lines.error(l.number, "'gp_variance' needs format version 7 (line 1: '" + std::string(kFormatName) + " 7')");
  if (!p.has_gp) throw lines.error(l.number, "'gp_variance " + sym + "' must follow 'gp " + sym + "'");
  if (p.gp.has_variance()) throw lines.error(l.number, "second 'gp_variance' section for " + sym);
  if (l.tokens.size() != 5 || l.tokens[3] != "jitter")
    throw lines.error(l.number, "expected 'gp_variance element count jitter VALUE'");
  const long M = lines.integer(l, 2, "the number of sparse points", 1, kMaxCount);
  if (M != p.gp.n_sparse())
    throw lines.error(l.number, "gp_variance " + sym + " has " + std::to_string(M) + " rows but gp " + sym +
                                    " has " + std::to_string(p.gp.n_sparse()) + " sparse points");
  const double jitter = lines.number(l, 4, "the jitter");
  if (!(jitter >= 0)) throw lines.error(l.number, "gp_variance " + sym + ": the jitter must be >= 0");
  std::vector<double> factor;
  factor.reserve(static_cast<std::size_t>(M) * (M + 1) / 2);
  for (long m = 0; m < M; ++m) {
    int row_line = 0;
    const std::vector<double> row = lines.numbers(static_cast<std::size_t>(M - m),
                                                  "row " + std::to_string(m + 1) +
                                                      " of the variance factor (from its diagonal)",
                                                  &row_line);
    if (!(row[0] > 0))
      throw lines.error(row_line, "gp_variance " + sym + ": the diagonal entry of row " + std::to_string(m + 1) +
                                      " must be > 0");
    factor.insert(factor.end(), row.begin(), row.end());
  }
  p.gp.variance_factor = std::move(factor);
  p.gp.variance_jitter = jitter;
}

}  // namespace

PotentialSpec parse_potential_spec(const std::string& text, const std::string& source) {
  Lines lines(text, source);
  int version = 0, version_line = 0;
  {
    const std::string name = kFormatName;
    const std::string versions = "1 to " + std::to_string(kFormatVersion);
    const std::string expected = "'" + name + " N' (N = " + versions + ", the format version)";
    const Line& l = lines.next(expected);
    if (l.tokens[0] != kFormatName)
      throw lines.error(l.number, "not an nnp potential file: line 1 must be " + expected);
    const std::string& v = l.tokens.size() == 2 ? l.tokens[1] : std::string();
    if (v.size() != 1 || v[0] < '1' || v[0] - '0' > kFormatVersion)
      throw lines.error(l.number, "unsupported format version; this reader knows versions " + versions);
    version = v[0] - '0';
    version_line = l.number;
  }
  {
    const Line& l = lines.keyword("units", 1);
    if (l.tokens[1] != "metal") throw lines.error(l.number, "units must be 'metal', found '" + l.tokens[1] + "'");
  }
  std::vector<std::string> elements;
  {
    const Line& l = lines.keyword("elements");
    if (l.tokens.size() < 2) throw lines.error(l.number, "expected 'elements N E1 ... EN'");
    const long n = lines.integer(l, 1, "the number of elements", 1, 200);
    if (static_cast<long>(l.tokens.size()) - 2 != n)
      throw lines.error(l.number, "expected " + std::to_string(n) + " element symbols");
    for (long e = 0; e < n; ++e) {
      const std::string& sym = l.tokens[2 + e];
      for (const auto& other : elements)
        if (other == sym) throw lines.error(l.number, "element '" + sym + "' appears twice");
      elements.push_back(sym);
    }
  }
  CutoffType cutoff;
  double cutoff_alpha = 0.0;
  {
    // cutoff_function NAME [alpha A] (alpha: version 5)
    const Line& l = lines.keyword("cutoff_function");
    if (l.tokens.size() != 2 && !(l.tokens.size() == 4 && l.tokens[2] == "alpha"))
      throw lines.error(l.number, "expected 'cutoff_function name' or 'cutoff_function name alpha A'");
    try {
      cutoff = cutoff_type_from_name(l.tokens[1]);
    } catch (const Error& e) {
      throw lines.error(l.number, e.what());
    }
    if (l.tokens.size() == 4) cutoff_alpha = lines.number(l, 3, "alpha");
    if (const std::string bad = cutoff_alpha_error(cutoff, cutoff_alpha); !bad.empty())
      throw lines.error(l.number, bad);
    if (cutoff_needs_version5(cutoff, cutoff_alpha) && version < 5)
      throw lines.error(l.number, std::string("'cutoff_function ") + cutoff_type_name(cutoff) +
                                      (cutoff_alpha != 0.0 ? " alpha ...'" : "'") + " needs format version 5 (line 1: '" +
                                      std::string(kFormatName) + " 5')");
  }
  bool full_sum;
  {
    const Line& l = lines.keyword("angular_sum", 1);
    if (l.tokens[1] != "half" && l.tokens[1] != "full")
      throw lines.error(l.number, "angular_sum must be 'half' or 'full', found '" + l.tokens[1] + "'");
    full_sum = l.tokens[1] == "full";
  }
  std::vector<double> element_weights;
  bool has_weights = false;
  if (lines.peek() && *lines.peek() == "element_weights") {
    const Line& l = lines.next("'element_weights'");
    if (version < 4)
      throw lines.error(l.number, "'element_weights' needs format version 4 (line 1: '" + std::string(kFormatName) + " 4')");
    if (l.tokens.size() != 1 + 2 * elements.size())
      throw lines.error(l.number, "expected 'element_weights' and a symbol and a weight for each of the " +
                                      std::to_string(elements.size()) + " elements");
    element_weights.assign(elements.size(), 0.0);
    std::vector<bool> seen(elements.size(), false);
    for (std::size_t i = 0; i < elements.size(); ++i) {
      const int e = element_of(lines, l, 1 + 2 * i, elements);
      if (seen[e]) throw lines.error(l.number, "element '" + elements[e] + "' has two weights");
      seen[e] = true;
      element_weights[e] = lines.number(l, 2 + 2 * i, "the weight of " + elements[e]);
    }
    has_weights = true;
  }

  std::vector<PendingElement> pending(elements.size());
  std::vector<RepulsionPair> repulsion;
  std::vector<int> repulsion_lines;
  while (lines.peek() && *lines.peek() != "end") {
    const Line& l = lines.next("a section");
    const std::string& key = l.tokens[0];
    if (key == "repulsion") {
      if (version < 2)
        throw lines.error(l.number, "'repulsion' needs format version 2 (line 1: '" + std::string(kFormatName) + " 2')");
      if (l.tokens.size() != 6 || l.tokens[1] != "zbl")
        throw lines.error(l.number, "expected 'repulsion zbl element element r_inner r_outer'");
      RepulsionPair p;
      p.element_a = element_of(lines, l, 2, elements);
      p.element_b = element_of(lines, l, 3, elements);
      for (const int e : {p.element_a, p.element_b})
        if (atomic_number(elements[e]) == 0)
          throw lines.error(l.number, "repulsion: '" + elements[e] + "' is not a chemical symbol (ZBL needs its atomic number)");
      p.r_inner = lines.number(l, 4, "r_inner");
      p.r_outer = lines.number(l, 5, "r_outer");
      if (!(p.r_inner > 0 && p.r_inner < p.r_outer))
        throw lines.error(l.number, "repulsion: need 0 < r_inner < r_outer, found r_inner " + l.tokens[4] +
                                        ", r_outer " + l.tokens[5]);
      for (std::size_t q = 0; q < repulsion.size(); ++q) {
        const RepulsionPair& o = repulsion[q];
        if ((o.element_a == p.element_a && o.element_b == p.element_b) ||
            (o.element_a == p.element_b && o.element_b == p.element_a))
          throw lines.error(l.number, "second 'repulsion' line for " + elements[p.element_a] + " " +
                                          elements[p.element_b] + " (first on line " +
                                          std::to_string(repulsion_lines[q]) + ")");
      }
      repulsion.push_back(p);
      repulsion_lines.push_back(l.number);
      continue;
    }
    if (key != "reference_energy" && key != "descriptor" && key != "scaling" && key != "network" &&
        key != "quadratic" && key != "gp" && key != "gp_variance")
      throw lines.error(l.number, "expected a section keyword (reference_energy, descriptor, scaling, network, "
                                  "quadratic, gp, gp_variance, repulsion, end), found '" + key + "'");
    if (l.tokens.size() < 3) throw lines.error(l.number, "'" + key + "' needs an element and a value");
    const int e = element_of(lines, l, 1, elements);
    PendingElement& p = pending[e];
    const std::string& sym = elements[e];
    if (key == "reference_energy") {
      if (p.has_reference) throw lines.error(l.number, "second 'reference_energy' section for " + sym);
      if (l.tokens.size() != 3) throw lines.error(l.number, "expected 'reference_energy element energy'");
      p.reference_energy = lines.number(l, 2, "the reference energy");
      p.has_reference = true;
    } else if (key == "descriptor") {
      if (p.has_descriptor) throw lines.error(l.number, "second 'descriptor' section for " + sym);
      if (l.tokens.size() != 3) throw lines.error(l.number, "expected 'descriptor element count'");
      const long m = lines.integer(l, 2, "the number of functions", 1, kMaxCount);
      for (long k = 0; k < m; ++k) {
        int line_number = 0;
        const SymmetryFunction f =
            read_function(lines, elements, version, has_weights ? &element_weights : nullptr, &line_number);
        for (std::size_t q = 0; q < p.functions.size(); ++q)
          if (same_function(f, p.functions[q]))
            throw lines.error(line_number, "duplicate symmetry function (same as function " +
                                               std::to_string(q + 1) + " of " + sym + ")");
        p.functions.push_back(f);
      }
      p.has_descriptor = true;
    } else if (key == "scaling") {
      if (p.has_scaling) throw lines.error(l.number, "second 'scaling' section for " + sym);
      if (l.tokens.size() != 3) throw lines.error(l.number, "expected 'scaling element count'");
      if (!p.has_descriptor) throw lines.error(l.number, "'scaling " + sym + "' must follow 'descriptor " + sym + "'");
      const long m = lines.integer(l, 2, "the number of functions", 1, kMaxCount);
      if (m != static_cast<long>(p.functions.size()))
        throw lines.error(l.number, "scaling has " + std::to_string(m) + " rows but descriptor " + sym +
                                        " has " + std::to_string(p.functions.size()) + " functions");
      for (long k = 0; k < m; ++k) {
        int row_line = 0;
        const std::vector<double> row = lines.numbers(4, "center width min max", &row_line);
        if (!(row[1] > 0) || !(row[2] <= row[3]))
          throw lines.error(row_line, "scaling " + sym + ": need width > 0 and min <= max");
        p.scaling.center.push_back(row[0]);
        p.scaling.width.push_back(row[1]);
        p.scaling.min.push_back(row[2]);
        p.scaling.max.push_back(row[3]);
      }
      p.has_scaling = true;
    } else if (key == "quadratic") {
      if (version < 3)
        throw lines.error(l.number, "'quadratic' needs format version 3 (line 1: '" + std::string(kFormatName) + " 3')");
      if (p.has_quadratic) throw lines.error(l.number, "second 'quadratic' section for " + sym);
      if (l.tokens.size() != 3) throw lines.error(l.number, "expected 'quadratic element count'");
      if (!p.has_descriptor)
        throw lines.error(l.number, "'quadratic " + sym + "' must follow 'descriptor " + sym + "'");
      const long m = lines.integer(l, 2, "the number of functions", 1, kMaxCount);
      if (m != static_cast<long>(p.functions.size()))
        throw lines.error(l.number, "quadratic has " + std::to_string(m) + " coefficients but descriptor " + sym +
                                        " has " + std::to_string(p.functions.size()) + " functions");
      p.quadratic_linear = lines.numbers(static_cast<std::size_t>(m), "the linear coefficients of the quadratic term");
      std::vector<int> row_lines(m);
      for (long r = 0; r < m; ++r) {
        const std::vector<double> row =
            lines.numbers(static_cast<std::size_t>(m), "row " + std::to_string(r + 1) + " of the quadratic matrix",
                          &row_lines[r]);
        p.quadratic_matrix.insert(p.quadratic_matrix.end(), row.begin(), row.end());
      }
      for (long r = 0; r < m; ++r)
        for (long c = 0; c < r; ++c)
          if (p.quadratic_matrix[r * m + c] != p.quadratic_matrix[c * m + r])
            throw lines.error(row_lines[r], "quadratic " + sym + ": the matrix is not symmetric (row " +
                                                std::to_string(r + 1) + ", column " + std::to_string(c + 1) + ")");
      p.quadratic_line = l.number;
      p.has_quadratic = true;
    } else if (key == "gp") {
      read_gp(lines, l, version, p, sym);
    } else if (key == "gp_variance") {
      read_gp_variance(lines, l, version, p, sym);
    } else {
      if (p.has_network) throw lines.error(l.number, "second 'network' section for " + sym);
      if (!p.has_descriptor) throw lines.error(l.number, "'network " + sym + "' must follow 'descriptor " + sym + "'");
      const long n_layers = lines.integer(l, 2, "the number of layers", 1, 100);
      if (static_cast<long>(l.tokens.size()) - 3 != n_layers)
        throw lines.error(l.number, "expected " + std::to_string(n_layers) + " layer sizes, found " +
                                        std::to_string(l.tokens.size() - 3));
      std::vector<long> sizes;
      for (long k = 0; k < n_layers; ++k) sizes.push_back(lines.integer(l, 3 + k, "a layer size", 1, kMaxCount));
      if (sizes.back() != 1) throw lines.error(l.number, "the output layer must have size 1");
      const Line& al = lines.keyword("activations", static_cast<int>(n_layers));
      std::vector<Activation> acts;
      for (long k = 0; k < n_layers; ++k) {
        try {
          acts.push_back(activation_from_name(al.tokens[1 + k]));
        } catch (const Error&) {
          throw lines.error(al.number, "unknown activation '" + al.tokens[1 + k] + "' (" + joined(activation_names()) + ")");
        }
      }
      long n_in = static_cast<long>(p.functions.size());
      for (long k = 0; k < n_layers; ++k) {
        const Line& ll = lines.keyword("layer", 3);
        const std::string want = std::to_string(k + 1) + " " + std::to_string(sizes[k]) + " " + std::to_string(n_in);
        if (ll.tokens[1] + " " + ll.tokens[2] + " " + ll.tokens[3] != want)
          throw lines.error(ll.number, "expected 'layer " + want + "'");
        Layer layer;
        layer.n_out = static_cast<int>(sizes[k]);
        layer.n_in = static_cast<int>(n_in);
        layer.activation = acts[k];
        const std::string what = "weights of layer " + std::to_string(k + 1);
        for (long r = 0; r < sizes[k]; ++r) {
          const std::vector<double> row = lines.numbers(static_cast<std::size_t>(n_in), what);
          layer.weights.insert(layer.weights.end(), row.begin(), row.end());
        }
        layer.biases = lines.numbers(static_cast<std::size_t>(sizes[k]), "biases of layer " + std::to_string(k + 1));
        p.layers.push_back(std::move(layer));
        n_in = sizes[k];
      }
      p.has_network = true;
    }
  }
  lines.keyword("end", 0);
  if (!lines.at_end()) {
    const Line& l = lines.next("");
    throw lines.error(l.number, "unexpected '" + l.tokens[0] + "' after 'end'");
  }

  PotentialSpec spec;
  spec.format_version = version;
  spec.comments = std::move(lines.comments());
  spec.cutoff = cutoff;
  spec.cutoff_alpha = cutoff_alpha;
  spec.full_angular_sum = full_sum;
  for (std::size_t e = 0; e < elements.size(); ++e) {
    PendingElement& p = pending[e];
    const char* missing = !p.has_reference ? "reference_energy"
                          : !p.has_descriptor ? "descriptor"
                          : !p.has_scaling ? "scaling"
                          : !p.has_network && !p.has_gp ? "network"
                                           : nullptr;
    if (missing) throw lines.error(lines.last_line(), std::string("no '") + missing + "' section for " + elements[e]);
    ElementSpec m;
    m.symbol = elements[e];
    m.reference_energy = p.reference_energy;
    m.functions = std::move(p.functions);
    m.scaling = std::move(p.scaling);
    m.layers = std::move(p.layers);
    if (p.has_quadratic) m.quadratic = QuadraticSpec{std::move(p.quadratic_linear), std::move(p.quadratic_matrix)};
    if (p.has_gp) m.gp = std::move(p.gp);
    spec.elements.push_back(std::move(m));
  }
  // A file carries the lowest version that can express it.
  bool any_quadratic = false;
  for (const PendingElement& p : pending) any_quadratic |= p.has_quadratic;
  if (version == 4 && !spec.element_weights())
    throw lines.error(version_line, std::string("a version-4 file without weighted symmetry functions must be written as version ") +
                                        (any_quadratic ? "3" : repulsion.empty() ? "1" : "2"));
  if (version == 3 && !any_quadratic)
    throw lines.error(version_line, std::string("a version-3 file without 'quadratic' sections must be written as version ") +
                                        (repulsion.empty() ? "1" : "2"));
  if (version == 2 && repulsion.empty())
    throw lines.error(version_line, "a version-2 file without 'repulsion' lines must be written as version 1");
  for (std::size_t q = 0; q < repulsion.size(); ++q) {
    const RepulsionPair& p = repulsion[q];
    for (const int e : {p.element_a, p.element_b}) {
      double rc = 0.0;
      for (const SymmetryFunction& f : spec.elements[e].functions) rc = std::max(rc, f.rc);
      if (!(p.r_outer <= rc)) {
        std::ostringstream msg;
        msg.precision(17);
        msg << "repulsion: r_outer " << p.r_outer << " exceeds the cutoff " << rc << " of " << elements[e];
        throw lines.error(repulsion_lines[q], msg.str());
      }
    }
  }
  spec.repulsion = std::move(repulsion);
  if (version == 5 && spec.lowest_format_version() != 5)
    throw lines.error(version_line, "a version-5 file without n2p2 cutoffs (other than cos and tanh3, or with alpha) "
                                    "or compact symmetry functions must be written as version " +
                                        std::to_string(spec.lowest_format_version()));
  if (version == 6 && spec.lowest_format_version() != 6)
    throw lines.error(version_line, "a version-6 file without 'gp' sections must be written as version " +
                                        std::to_string(spec.lowest_format_version()));
  if (version == 7 && spec.lowest_format_version() != 7)
    throw lines.error(version_line, "a version-7 file without 'gp_variance' sections must be written as version " +
                                        std::to_string(spec.lowest_format_version()));
  return spec;
}

Potential parse_potential(const std::string& text, const std::string& source) {
  return build_potential(parse_potential_spec(text, source), source);
}

Potential read_potential_file(const std::string& path) {
  return parse_potential(read_text_file(path), path);
}

}  // namespace nnp
