// Cell-list (binning) neighbour search for finite, partially or fully
// periodic, triclinic and arbitrarily small cells. O(N) for a fixed density.
//
// Outline:
//  1. Build a full basis: the periodic lattice vectors as given, completed by
//     orthonormal vectors for the non-periodic directions (the user's
//     non-periodic cell vectors are ignored; they may be zero or anything).
//     Fractional coordinates s = r·B⁻¹ are then lattice units along periodic
//     directions and Å along non-periodic ones.
//  2. Wrap the periodic fractional coordinates into [0, 1), remembering each
//     atom's integer lattice translation, and sort the atoms into bins that
//     are (where the cell allows it) at least `cutoff` thick.
//  3. For every bin, visit the bins within ±reach bins along each direction.
//     Along a periodic direction the bin index wraps and every wrap is one
//     lattice translation, so a cell thinner than the cutoff is visited
//     several times at different translations: that yields all images,
//     including the images of atom i itself. Each unordered pair of images
//     is examined once (half of the bin offsets) and gives both entries.
//  4. Candidates are screened with the wrapped positions (cheap), and the
//     vector of an accepted one is recomputed as r_j − r_i + S·A from the
//     ORIGINAL positions and an integer translation S, so it is exact to
//     rounding however far outside the cell the atoms lie. The cutoff test
//     that decides is made on that final vector.
//  5. Two passes (count, then fill) give the compressed rows in atom order
//     while looping in bin order (cache friendly), with exactly sized output.
#include "nnp/neighbor_list.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <sstream>
#include <string>
#include <vector>

#include "nnp/error.h"

namespace nnp {
namespace {

using Vec3 = std::array<double, 3>;

Vec3 cross(const Vec3& a, const Vec3& b) {
  return {a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]};
}
double dot(const Vec3& a, const Vec3& b) { return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]; }
double norm(const Vec3& a) { return std::sqrt(dot(a, a)); }
Vec3 scale(const Vec3& a, double f) { return {a[0] * f, a[1] * f, a[2] * f}; }
// t0·A0 + t1·A1 + t2·A2, always in this order (so repeated evaluations agree).
Vec3 combine(const Vec3* A, double t0, double t1, double t2) {
  Vec3 v;
  for (int k = 0; k < 3; ++k) v[k] = t0 * A[0][k] + t1 * A[1][k] + t2 * A[2][k];
  return v;
}

// Periodic vectors whose length/area/volume is below this fraction of the
// product of their lengths count as linearly dependent.
constexpr double kDegenerateTolerance = 1e-10;
// Extra search range (in bins) so that an atom put one bin off by the
// rounding of its fractional coordinate is still found.
constexpr double kBinMargin = 1e-6;
// A cutoff more than this many cell thicknesses means millions of images of
// every atom: refuse clearly rather than exhaust memory (or overflow ints).
constexpr double kMaxReach = 1e6;
// Relative slack of the screening test on wrapped positions, far above their
// rounding error (a few ulps of the largest coordinate or translation), so
// the screen never rejects a pair that the exact test would accept.
constexpr double kScreenSlack = 1e-12;

const char* const kAxisName[3] = {"a", "b", "c"};

// The search geometry derived from the cell.
struct Frame {
  bool periodic[3] = {false, false, false};
  Vec3 lattice[3] = {};      // translation vectors (zero along non-periodic directions)
  Vec3 reciprocal[3] = {};   // fractional coordinate s_d = r · reciprocal[d]
  double thickness[3] = {};  // Å between the planes s_d = x and s_d = x + 1
};

Frame make_frame(const Cell& cell) {
  Frame f;
  int periodic_dims[3], open_dims[3], n_periodic = 0, n_open = 0;
  Vec3 basis[3];
  for (int d = 0; d < 3; ++d) {
    f.periodic[d] = cell.pbc[d];
    if (!f.periodic[d]) {
      open_dims[n_open++] = d;
      continue;
    }
    periodic_dims[n_periodic++] = d;
    basis[d] = {cell.vectors[d][0], cell.vectors[d][1], cell.vectors[d][2]};
    for (double x : basis[d])
      if (!std::isfinite(x))
        throw Error(std::string("neighbor list: periodic cell vector ") + kAxisName[d] +
                    " has a non-finite component");
    f.lattice[d] = basis[d];
  }

  // Complete the basis with unit vectors orthogonal to the periodic ones, so
  // that non-periodic fractional coordinates are plain Cartesian lengths.
  bool degenerate = false;
  if (n_periodic == 0) {
    for (int d = 0; d < 3; ++d) {
      basis[d] = {0.0, 0.0, 0.0};
      basis[d][d] = 1.0;
    }
  } else if (n_periodic == 1) {
    const Vec3& a = basis[periodic_dims[0]];
    const double length = norm(a);
    degenerate = !(length > 0);
    if (!degenerate) {
      // Start from the Cartesian axis least aligned with a (well conditioned).
      const Vec3 unit_a = scale(a, 1.0 / length);
      int axis = 0;
      for (int k = 1; k < 3; ++k)
        if (std::fabs(unit_a[k]) < std::fabs(unit_a[axis])) axis = k;
      Vec3 u = scale(unit_a, -unit_a[axis]);
      u[axis] += 1.0;
      u = scale(u, 1.0 / norm(u));
      basis[open_dims[0]] = u;
      basis[open_dims[1]] = cross(unit_a, u);
    }
  } else if (n_periodic == 2) {
    const Vec3& a = basis[periodic_dims[0]];
    const Vec3& b = basis[periodic_dims[1]];
    const Vec3 normal = cross(a, b);
    const double area = norm(normal);
    degenerate = !(area > kDegenerateTolerance * norm(a) * norm(b));
    if (!degenerate) basis[open_dims[0]] = scale(normal, 1.0 / area);
  } else {
    const double volume = std::fabs(dot(basis[0], cross(basis[1], basis[2])));
    degenerate =
        !(volume > kDegenerateTolerance * norm(basis[0]) * norm(basis[1]) * norm(basis[2]));
  }
  if (degenerate) {
    std::string names;
    for (int k = 0; k < n_periodic; ++k)
      names += (k ? ", " : "") + std::string(kAxisName[periodic_dims[k]]);
    const char* what = n_periodic == 1   ? " is zero"
                       : n_periodic == 2 ? " are zero or parallel (zero area)"
                                         : " are zero or linearly dependent (zero volume)";
    throw Error("neighbor list: degenerate periodic cell: periodic cell vector" +
                std::string(n_periodic == 1 ? " " : "s ") + names + what);
  }

  const double det = dot(basis[0], cross(basis[1], basis[2]));
  for (int d = 0; d < 3; ++d) {
    f.reciprocal[d] = scale(cross(basis[(d + 1) % 3], basis[(d + 2) % 3]), 1.0 / det);
    f.thickness[d] = 1.0 / norm(f.reciprocal[d]);
  }
  return f;
}

// Floor division for a possibly negative numerator and positive denominator.
int floor_div(int k, int n) { return k >= 0 ? k / n : -((-k + n - 1) / n); }

// Atoms sorted by bin. The screening loop reads only `wrapped`; the exact
// data of a slot is read for accepted candidates only.
struct WrappedSlot {
  double x, y, z;  // position translated into the cell (binning and screening only)
  int atom;
};
struct ExactSlot {
  double x, y, z;  // original position
  double t[3];     // integer lattice translation with x − t·A = wrapped position
};

struct Grid {
  int nbins[3] = {1, 1, 1};
  int reach[3] = {0, 0, 0};      // bins searched on each side of a bin
  std::vector<int> bin_start;    // slots of flat bin b: bin_start[b] .. bin_start[b+1]−1
  std::vector<WrappedSlot> wrapped;
  std::vector<ExactSlot> exact;
  double magnitude = 0;          // largest coordinate or translation involved (for rounding bounds)

  std::size_t flat(int b0, int b1, int b2) const {
    return (static_cast<std::size_t>(b0) * nbins[1] + b1) * nbins[2] + b2;
  }
};

Grid bin_atoms(int n, const double* positions, const Frame& f, double cutoff) {
  Grid g;
  // Fractional coordinates; periodic ones wrapped into [0, 1).
  std::vector<Vec3> frac(n), translation(n, Vec3{0, 0, 0});
  Vec3 lo = {0, 0, 0}, hi = {0, 0, 0};  // extent of the non-periodic coordinates
  for (int i = 0; i < n; ++i) {
    const Vec3 r = {positions[3 * i], positions[3 * i + 1], positions[3 * i + 2]};
    for (int d = 0; d < 3; ++d) {
      double s = dot(r, f.reciprocal[d]);
      if (f.periodic[d]) {
        translation[i][d] = std::floor(s);
        s -= translation[i][d];
      } else {
        lo[d] = i == 0 ? s : std::min(lo[d], s);
        hi[d] = i == 0 ? s : std::max(hi[d], s);
      }
      frac[i][d] = s;
    }
  }

  // Aim at bins `cutoff` thick (then ±1 bin covers the cutoff sphere), but
  // at most about 2 bins per atom, so that sparse or elongated systems do not
  // pay for empty bins.
  double extent[3];  // Å, perpendicular to the other two directions
  for (int d = 0; d < 3; ++d)
    extent[d] = f.periodic[d] ? f.thickness[d] : (hi[d] - lo[d]) * f.thickness[d];
  const double max_bins = 2.0 * n + 8.0;
  double width = cutoff, nbins[3];
  for (;;) {
    for (int d = 0; d < 3; ++d) nbins[d] = std::max(1.0, std::floor(extent[d] / width));
    const double total = nbins[0] * nbins[1] * nbins[2];
    if (total <= max_bins) break;
    width *= std::max(1.01, std::cbrt(total / max_bins));
  }
  for (int d = 0; d < 3; ++d) {
    g.nbins[d] = static_cast<int>(nbins[d]);
    // A displacement shorter than the cutoff changes s_d by less than
    // cutoff / thickness, i.e. by less than `span` bins. A single
    // non-periodic bin has nothing around it.
    const double span = f.periodic[d] || g.nbins[d] > 1 ? cutoff * g.nbins[d] / extent[d] : 0.0;
    if (span > kMaxReach) {
      std::ostringstream msg;
      msg << "neighbor list: cutoff " << cutoff
          << " is far too large for the periodic cell (thickness " << f.thickness[d] << " along "
          << kAxisName[d] << ")";
      throw Error(msg.str());
    }
    g.reach[d] = static_cast<int>(std::ceil(span + kBinMargin));
    if (!f.periodic[d]) g.reach[d] = std::min(g.reach[d], g.nbins[d] - 1);
  }

  // Counting sort of the atoms by bin.
  std::vector<std::size_t> bin_of(n);
  g.bin_start.assign(static_cast<std::size_t>(g.nbins[0]) * g.nbins[1] * g.nbins[2] + 1, 0);
  for (int i = 0; i < n; ++i) {
    int b[3];
    for (int d = 0; d < 3; ++d) {
      double u = 0.0;  // position in bins
      if (f.periodic[d])
        u = frac[i][d] * g.nbins[d];
      else if (g.nbins[d] > 1)
        u = (frac[i][d] - lo[d]) / (hi[d] - lo[d]) * g.nbins[d];
      // Clamping only moves atoms that rounding put just past the first or
      // last bin boundary (e.g. a wrapped s of exactly 1.0).
      b[d] = std::min(std::max(static_cast<int>(std::floor(u)), 0), g.nbins[d] - 1);
    }
    bin_of[i] = g.flat(b[0], b[1], b[2]);
    ++g.bin_start[bin_of[i] + 1];
  }
  for (std::size_t b = 1; b < g.bin_start.size(); ++b) g.bin_start[b] += g.bin_start[b - 1];

  std::vector<int> fill(g.bin_start.begin(), g.bin_start.end() - 1);
  g.wrapped.resize(n);
  g.exact.resize(n);
  for (int i = 0; i < n; ++i) {
    const double* r = positions + 3 * i;
    const Vec3& t = translation[i];
    const Vec3 shift = combine(f.lattice, t[0], t[1], t[2]);
    const int s = fill[bin_of[i]]++;
    g.wrapped[s] = WrappedSlot{r[0] - shift[0], r[1] - shift[1], r[2] - shift[2], i};
    g.exact[s] = ExactSlot{r[0], r[1], r[2], {t[0], t[1], t[2]}};
    for (int k = 0; k < 3; ++k)
      g.magnitude = std::max(g.magnitude, std::fabs(r[k]) + std::fabs(shift[k]));
  }
  // Bin images are translated by at most reach / nbins + 1 lattice vectors.
  for (int d = 0; d < 3; ++d)
    g.magnitude += (g.reach[d] / g.nbins[d] + 2) * norm(f.lattice[d]);
  return g;
}

// Calls emit(i, j, dx, dy, dz) once for every unordered pair of neighbour
// images {i → image of j, j → image of i}: the second is the first reversed,
// with exactly the negated vector (IEEE arithmetic is symmetric under
// negation). Loops over bins: for every bin, the bin images within reach,
// then the atom pairs of the two. A bin image is visited from one side only:
// bin offsets m (unwrapped, so an image of a pair at offset m is at −m seen
// from the other end) are taken lexicographically positive, and for m = 0
// (the same bin, no translation) atom pairs in slot order only. The order of
// the calls is deterministic.
template <class Emit>
void for_each_pair(const Grid& g, const Frame& f, double cutoff, Emit&& emit) {
  const double cutoff2 = cutoff * cutoff;
  const double screen = cutoff + kScreenSlack * (g.magnitude + cutoff);
  const double screen2 = screen * screen;
  const Vec3* A = f.lattice;

  // Bins visited along each direction: index, number of lattice wraps, and
  // offset from the centre bin.
  struct AxisBin {
    int bin;
    double wraps;
    int offset;
  };
  std::vector<AxisBin> axis_bins[3];
  for (int d = 0; d < 3; ++d) axis_bins[d].reserve(2 * static_cast<std::size_t>(g.reach[d]) + 1);

  for (int c0 = 0; c0 < g.nbins[0]; ++c0)
    for (int c1 = 0; c1 < g.nbins[1]; ++c1)
      for (int c2 = 0; c2 < g.nbins[2]; ++c2) {
        const std::size_t centre = g.flat(c0, c1, c2);
        const int first = g.bin_start[centre], last = g.bin_start[centre + 1];
        if (first == last) continue;
        const int c[3] = {c0, c1, c2};
        for (int d = 0; d < 3; ++d) {
          axis_bins[d].clear();
          for (int m = -g.reach[d]; m <= g.reach[d]; ++m) {
            const int k = c[d] + m;
            if (f.periodic[d]) {
              const int wraps = floor_div(k, g.nbins[d]);
              axis_bins[d].push_back({k - wraps * g.nbins[d], static_cast<double>(wraps), m});
            } else if (k >= 0 && k < g.nbins[d]) {
              axis_bins[d].push_back({k, 0.0, m});
            }
          }
        }
        for (const AxisBin& a0 : axis_bins[0])
          for (const AxisBin& a1 : axis_bins[1])
            for (const AxisBin& a2 : axis_bins[2]) {
              // Sign of the first non-zero component of the offset m.
              const int sign = a0.offset != 0 ? a0.offset : a1.offset != 0 ? a1.offset : a2.offset;
              if (sign < 0) continue;  // visited from the other bin
              const bool same_bin = sign == 0;
              const std::size_t other = g.flat(a0.bin, a1.bin, a2.bin);
              const int begin = g.bin_start[other], end = g.bin_start[other + 1];
              if (begin == end) continue;
              // Translation of this bin image: wraps·A.
              const Vec3 T = combine(A, a0.wraps, a1.wraps, a2.wraps);
              for (int si = first; si < last; ++si) {
                const WrappedSlot& wi = g.wrapped[si];
                const ExactSlot& xi = g.exact[si];
                // Wrapped j + T − wrapped i = wrapped j − (wrapped i − T).
                const double px = wi.x - T[0], py = wi.y - T[1], pz = wi.z - T[2];
                // Translation of j's image relative to the original positions,
                // up to j's own: S = wraps + t_i − t_j.
                const double base0 = a0.wraps + xi.t[0], base1 = a1.wraps + xi.t[1],
                             base2 = a2.wraps + xi.t[2];
                // In the same bin, j > i only; this also skips i itself.
                for (int sj = same_bin ? si + 1 : begin; sj < end; ++sj) {
                  const WrappedSlot& wj = g.wrapped[sj];
                  const double ex = wj.x - px, ey = wj.y - py, ez = wj.z - pz;
                  if (ex * ex + ey * ey + ez * ez >= screen2) continue;
                  const ExactSlot& xj = g.exact[sj];
                  const Vec3 ST = combine(A, base0 - xj.t[0], base1 - xj.t[1], base2 - xj.t[2]);
                  const double dx = (xj.x - xi.x) + ST[0];
                  const double dy = (xj.y - xi.y) + ST[1];
                  const double dz = (xj.z - xi.z) + ST[2];
                  if (dx * dx + dy * dy + dz * dz < cutoff2) emit(wi.atom, wj.atom, dx, dy, dz);
                }
              }
            }
      }
}

}  // namespace

NeighborList build_neighbor_list(int n, const double* positions, const Cell& cell, double cutoff) {
  if (n < 0) throw Error("neighbor list: negative number of atoms (" + std::to_string(n) + ")");
  if (n > 0 && positions == nullptr) throw Error("neighbor list: positions is a null pointer");
  if (!(cutoff > 0) || !std::isfinite(cutoff)) {
    std::ostringstream msg;
    msg << "neighbor list: the cutoff must be positive and finite, got " << cutoff;
    throw Error(msg.str());
  }
  for (int i = 0; i < n; ++i) {
    const double* r = positions + 3 * i;
    if (!std::isfinite(r[0]) || !std::isfinite(r[1]) || !std::isfinite(r[2])) {
      std::ostringstream msg;
      msg << "neighbor list: atom " << i << " has a non-finite coordinate (" << r[0] << ", " << r[1]
          << ", " << r[2] << ")";
      throw Error(msg.str());
    }
  }

  NeighborList out;
  out.offsets.assign(static_cast<std::size_t>(n) + 1, 0);
  if (n == 0) return out;
  const Frame f = make_frame(cell);
  const Grid g = bin_atoms(n, positions, f, cutoff);

  // Pass 1: row lengths. Pass 2: fill each row at its cursor. Both passes
  // make the same decisions in the same order.
  for_each_pair(g, f, cutoff, [&](int i, int j, double, double, double) {
    ++out.offsets[i + 1];
    ++out.offsets[j + 1];
  });
  for (int i = 0; i < n; ++i) out.offsets[i + 1] += out.offsets[i];
  const std::size_t total = static_cast<std::size_t>(out.offsets[n]);
  out.index.resize(total);
  out.dx.resize(total);
  out.dy.resize(total);
  out.dz.resize(total);
  std::vector<std::int64_t> cursor(out.offsets.begin(), out.offsets.end() - 1);
  int* index = out.index.data();  // raw pointers: the compiler cannot hoist them out of the vectors
  double *x = out.dx.data(), *y = out.dy.data(), *z = out.dz.data();
  for_each_pair(g, f, cutoff, [&](int i, int j, double dx, double dy, double dz) {
    const std::int64_t p = cursor[i]++, q = cursor[j]++;
    index[p] = j;
    x[p] = dx;
    y[p] = dy;
    z[p] = dz;
    index[q] = i;
    x[q] = -dx;
    y[q] = -dy;
    z[q] = -dz;
  });
  return out;
}

}  // namespace nnp
