// Compact ("polynomial") symmetry functions C2, C4, C5: formulas in
// nnp/descriptor.h. A straightforward loop over neighbours (C2) and over
// pairs of neighbours per angular group (C4, C5); the radial windows of
// every member are evaluated once per atom (compact_prepare, called by
// prepare_all), then read by the value, force and Jacobian passes.
//
// For a triplet term T = p C_a(θ) C_r(R_ij) C_r(R_ik) [C_r(R_jk)], with
// T_c = ∂T/∂cosθ = p C_a′(θ) (−1/sinθ) C_r C_r [C_r] and T_x = ∂T/∂R_x:
//   ∂T/∂r_ij = T_ij r̂_j + T_c (r̂_k − cosθ r̂_j)/R_ij − T_jk d̂_jk
//   ∂T/∂r_ik = T_ik r̂_k + T_c (r̂_j − cosθ r̂_k)/R_ik + T_jk d̂_jk
// with d̂_jk = (r_ik − r_ij)/R_jk.
#include <algorithm>
#include <cmath>

#include "descriptor_internal.h"
#include "nnp/descriptor.h"
#include "nnp/error.h"

namespace nnp {

using namespace detail;

namespace {

constexpr double kPi = 3.14159265358979323846;

// C(a) and dC/da inside the window's open interval; false (and 0) outside.
inline bool window(double center, double scale, double left, double right, CoreFunction core, bool asymmetric,
                   double a, double& f, double& df) {
  if (!(a > left && a < right)) {
    f = df = 0.0;
    return false;
  }
  const double y = (a - center) * scale;
  const double sign_scale = std::copysign(scale, y);
  const double x = std::abs(y);
  if (asymmetric) {
    core_function(core, (2.0 - x) * x, f, df);
    df *= 2.0 - 2.0 * x;
  } else {
    core_function(core, x, f, df);
  }
  df *= sign_scale;
  return true;
}

}  // namespace

// One compact function into the plan (out: its output index; checked by the
// caller with parameter_error).
void Descriptor::plan_compact(const SymmetryFunction& f, int out) {
  CompactWindow radial{0.5 * (f.rc + f.rl), 1.0 / (0.5 * (f.rc - f.rl)), f.rl, f.rc, f.core, f.asymmetric};
  auto same_window = [](const CompactWindow& a, const CompactWindow& b) {
    return a.left == b.left && a.right == b.right && a.core == b.core && a.asymmetric == b.asymmetric;
  };
  auto rit = std::find_if(compact_windows_.begin(), compact_windows_.end(),
                          [&](const CompactWindow& w) { return same_window(w, radial); });
  if (rit == compact_windows_.end()) rit = compact_windows_.insert(compact_windows_.end(), radial);
  const int rw = static_cast<int>(rit - compact_windows_.begin());
  const bool angular = !is_radial(f.type);
  const int ea = angular ? std::min(f.element_a, f.element_b) : f.element_a;
  const int eb = angular ? std::max(f.element_a, f.element_b) : -1;
  auto git = std::find_if(compact_groups_.begin(), compact_groups_.end(), [&](const CompactGroup& g) {
    return g.type == f.type && g.element_a == ea && g.element_b == eb;
  });
  if (git == compact_groups_.end()) git = compact_groups_.insert(compact_groups_.end(), CompactGroup{f.type, ea, eb, {}, {}, {}});
  CompactGroup& g = *git;
  int aw = -1;
  if (angular) {
    // As n2p2: the window in radians from its ends in degrees.
    const double left = f.angle_left * kPi / 180.0, right = f.angle_right * kPi / 180.0;
    const CompactWindow angle{0.5 * (right + left), 1.0 / (0.5 * (right - left)), left, right, f.core, false};
    auto ait = std::find_if(g.angles.begin(), g.angles.end(), [&](const CompactWindow& w) { return same_window(w, angle); });
    if (ait == g.angles.end()) ait = g.angles.insert(g.angles.end(), angle);
    aw = static_cast<int>(ait - g.angles.begin());
    if (std::find(g.radials.begin(), g.radials.end(), rw) == g.radials.end()) g.radials.push_back(rw);
  }
  g.functions.push_back({rw, aw, out});  // `internal` is the output index until the layout is made
}

void Descriptor::compact_prepare(DescriptorWorkspace& ws) const {
  const std::size_t active = ws.r.size();
  double* v = grow(ws.compact_radial, 2 * compact_windows_.size() * active);
  const double* r = ws.r.data();
  for (std::size_t w = 0; w < compact_windows_.size(); ++w) {
    const CompactWindow& c = compact_windows_[w];
    double* f = v + 2 * w * active;
    double* df = f + active;
    for (std::size_t m = 0; m < active; ++m)
      window(c.center, c.scale, c.left, c.right, c.core, c.asymmetric, r[m], f[m], df[m]);
  }
}

// Calls sink(pair) for every pair (j, k) of group g's neighbours (j < k for
// one element) inside some window, with every function's T and partials.
template <class Sink>
void Descriptor::compact_pairs(DescriptorWorkspace& ws, const CompactGroup& g, Sink&& sink) const {
  const std::size_t active = ws.r.size();
  const bool narrow = g.type == SymmetryFunctionType::C4;
  const bool same = g.element_a == g.element_b;
  const double p = full_angular_sum_ ? 2.0 : 1.0;
  const std::size_t F = g.functions.size(), A = g.angles.size(), Q = g.radials.size();
  double* buf = grow(ws.scratch, 5 * F + 2 * A + 2 * compact_windows_.size());
  double *T = buf, *Tc = T + F, *Tj = Tc + F, *Tk = Tj + F, *Tjk = Tk + F;
  double *ang = Tjk + F, *dang = ang + A;
  double *rjk_f = dang + A, *rjk_df = rjk_f + compact_windows_.size();
  const double* rad = ws.compact_radial.data();
  const double *ux = ws.ux.data(), *uy = ws.uy.data(), *uz = ws.uz.data();
  const int a0 = ws.element_start[g.element_a], a1 = ws.element_start[g.element_a + 1];
  const int b0 = ws.element_start[g.element_b], b1 = ws.element_start[g.element_b + 1];
  for (int j = a0; j < a1; ++j)
    for (int k = same ? j + 1 : b0; k < b1; ++k) {
      CompactPair pair{j, k, ux[j] * ux[k] + uy[j] * uy[k] + uz[j] * uz[k], {0.0, 0.0, 0.0}, T, Tc, Tj, Tk, Tjk};
      const double c = pair.cos;
      if (c <= -1.0 || c >= 1.0) continue;  // C_a′/sinθ is undefined there; n2p2 skips them too
      const double theta = std::acos(c), dtheta = -1.0 / std::sqrt(1.0 - c * c);
      bool any = false;
      for (std::size_t a = 0; a < A; ++a) {
        const CompactWindow& w = g.angles[a];
        any |= window(w.center, w.scale, w.left, w.right, w.core, false, theta, ang[a], dang[a]);
        dang[a] *= dtheta;
      }
      if (!any) continue;
      if (narrow) {
        const double dx = ws.x[k] - ws.x[j], dy = ws.y[k] - ws.y[j], dz = ws.z[k] - ws.z[j];
        const double rjk = std::sqrt(dx * dx + dy * dy + dz * dz);
        pair.djk[0] = dx / rjk;
        pair.djk[1] = dy / rjk;
        pair.djk[2] = dz / rjk;
        for (std::size_t q = 0; q < Q; ++q) {
          const CompactWindow& w = compact_windows_[g.radials[q]];
          window(w.center, w.scale, w.left, w.right, w.core, w.asymmetric, rjk, rjk_f[g.radials[q]],
                 rjk_df[g.radials[q]]);
        }
      }
      for (std::size_t i = 0; i < F; ++i) {
        const CompactFunction& fn = g.functions[i];
        const double* fv = rad + 2 * fn.radial * active;
        const double* dfv = fv + active;
        const double fj = fv[j], fk = fv[k], fjk = narrow ? rjk_f[fn.radial] : 1.0;
        const double A0 = p * ang[fn.angle];
        const double R = fj * fk * fjk;
        T[i] = A0 * R;
        Tc[i] = p * dang[fn.angle] * R;
        Tj[i] = A0 * dfv[j] * fk * fjk;
        Tk[i] = A0 * fj * dfv[k] * fjk;
        Tjk[i] = narrow ? A0 * fj * fk * rjk_df[fn.radial] : 0.0;
      }
      sink(pair);
    }
}

void Descriptor::compact_values(DescriptorWorkspace& ws) const {
  const std::size_t active = ws.r.size();
  for (const CompactGroup& g : compact_groups_) {
    if (g.type == SymmetryFunctionType::C2) {
      const int m0 = ws.element_start[g.element_a], m1 = ws.element_start[g.element_a + 1];
      for (const CompactFunction& fn : g.functions) {
        const double* fv = ws.compact_radial.data() + 2 * fn.radial * active;
        double s = 0.0;
        for (int m = m0; m < m1; ++m) s += fv[m];
        ws.g[fn.internal] = s;
      }
      continue;
    }
    for (const CompactFunction& fn : g.functions) ws.g[fn.internal] = 0.0;
    compact_pairs(ws, g, [&](const CompactPair& pair) {
      for (std::size_t i = 0; i < g.functions.size(); ++i) ws.g[g.functions[i].internal] += pair.T[i];
    });
  }
}

namespace {

// ∂T/∂r_ij and ∂T/∂r_ik of one triplet term (see the top of this file).
inline void triplet_vectors(const double* uj, const double* uk, double rj, double rk, double c, const double* djk,
                            double Tc, double Tj, double Tk, double Tjk, double* gj, double* gk) {
  for (int d = 0; d < 3; ++d) {
    gj[d] = Tj * uj[d] + Tc * (uk[d] - c * uj[d]) / rj - Tjk * djk[d];
    gk[d] = Tk * uk[d] + Tc * (uj[d] - c * uk[d]) / rk + Tjk * djk[d];
  }
}

}  // namespace

void Descriptor::compact_gradient(DescriptorWorkspace& ws) const {
  const std::size_t active = ws.r.size();
  double* gx = ws.grad.data();
  double* gy = gx + active;
  double* gz = gy + active;
  const double *ux = ws.ux.data(), *uy = ws.uy.data(), *uz = ws.uz.data(), *r = ws.r.data();
  for (const CompactGroup& g : compact_groups_) {
    if (g.type == SymmetryFunctionType::C2) {
      const int m0 = ws.element_start[g.element_a], m1 = ws.element_start[g.element_a + 1];
      for (const CompactFunction& fn : g.functions) {
        const double w = ws.w[fn.internal];
        if (w == 0.0) continue;
        const double* dfv = ws.compact_radial.data() + (2 * fn.radial + 1) * active;
        for (int m = m0; m < m1; ++m) {
          gx[m] += w * dfv[m] * ux[m];
          gy[m] += w * dfv[m] * uy[m];
          gz[m] += w * dfv[m] * uz[m];
        }
      }
      continue;
    }
    compact_pairs(ws, g, [&](const CompactPair& pair) {
      double Tc = 0.0, Tj = 0.0, Tk = 0.0, Tjk = 0.0;  // Σ_f dE/dG_f · partials
      for (std::size_t i = 0; i < g.functions.size(); ++i) {
        const double w = ws.w[g.functions[i].internal];
        Tc += w * pair.Tc[i];
        Tj += w * pair.Tj[i];
        Tk += w * pair.Tk[i];
        Tjk += w * pair.Tjk[i];
      }
      const int j = pair.j, k = pair.k;
      const double uj[3] = {ux[j], uy[j], uz[j]}, uk[3] = {ux[k], uy[k], uz[k]};
      double dj[3], dk[3];
      triplet_vectors(uj, uk, r[j], r[k], pair.cos, pair.djk, Tc, Tj, Tk, Tjk, dj, dk);
      gx[j] += dj[0];
      gy[j] += dj[1];
      gz[j] += dj[2];
      gx[k] += dk[0];
      gy[k] += dk[1];
      gz[k] += dk[2];
    });
  }
}

void Descriptor::compact_jacobian(DescriptorWorkspace& ws, double* dG_dr) const {
  const int M = size();
  const std::size_t active = ws.r.size();
  const int* index = ws.index.data();
  auto at = [&](int member, int out) { return dG_dr + (static_cast<std::size_t>(index[member]) * M + out) * 3; };
  const double *ux = ws.ux.data(), *uy = ws.uy.data(), *uz = ws.uz.data(), *r = ws.r.data();
  for (const CompactGroup& g : compact_groups_) {
    if (g.type == SymmetryFunctionType::C2) {
      const int m0 = ws.element_start[g.element_a], m1 = ws.element_start[g.element_a + 1];
      for (const CompactFunction& fn : g.functions) {
        const int out = internal_to_output_[fn.internal];
        const double* dfv = ws.compact_radial.data() + (2 * fn.radial + 1) * active;
        for (int m = m0; m < m1; ++m) {
          double* d = at(m, out);
          d[0] += dfv[m] * ux[m];
          d[1] += dfv[m] * uy[m];
          d[2] += dfv[m] * uz[m];
        }
      }
      continue;
    }
    compact_pairs(ws, g, [&](const CompactPair& pair) {
      const int j = pair.j, k = pair.k;
      const double uj[3] = {ux[j], uy[j], uz[j]}, uk[3] = {ux[k], uy[k], uz[k]};
      for (std::size_t i = 0; i < g.functions.size(); ++i) {
        if (pair.T[i] == 0.0 && pair.Tc[i] == 0.0 && pair.Tj[i] == 0.0 && pair.Tk[i] == 0.0 && pair.Tjk[i] == 0.0)
          continue;
        double dj[3], dk[3];
        triplet_vectors(uj, uk, r[j], r[k], pair.cos, pair.djk, pair.Tc[i], pair.Tj[i], pair.Tk[i], pair.Tjk[i], dj,
                        dk);
        const int out = internal_to_output_[g.functions[i].internal];
        double* a = at(j, out);
        double* b = at(k, out);
        for (int d = 0; d < 3; ++d) {
          a[d] += dj[d];
          b[d] += dk[d];
        }
      }
    });
  }
}

}  // namespace nnp
