// The descriptor Jacobian dG/dr_ij of every family, for training on stored derivatives.
#include "nnp/descriptor.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "descriptor_internal.h"
#include "kernel_math.h"

namespace nnp {

using namespace detail;

NNP_KERNEL
void Descriptor::jacobian(DescriptorWorkspace& ws, double* dG_dr) const {
  const int M = size();
  const std::size_t active = ws.r.size();
  const int* index = ws.index.data();
  auto at = [&](int member, int out) { return dG_dr + (static_cast<std::size_t>(index[member]) * M + out) * 3; };
  const double* ux = ws.ux.data();
  const double* uy = ws.uy.data();
  const double* uz = ws.uz.data();
  const double* r = ws.r.data();
  for (const RadialGroup& g : radial_groups_) {
    const auto [m0, m1] = range(ws, g.element, g.rc);
    const double* fc = ws.fc.data() + static_cast<std::size_t>(g.cutoff_slot) * active;
    const double* dfc = ws.dfc.data() + static_cast<std::size_t>(g.cutoff_slot) * active;
    for (const RadialTerm& t : g.terms) {
      const int out = internal_to_output_[t.internal];
      const double* e = ws.radial_exp.data() + static_cast<std::size_t>(t.exp_slot) * active;
      for (int m = m0; m < m1; ++m) {
        const double T_r = e[m] * (dfc[m] - 2.0 * t.eta * (r[m] - t.rs) * fc[m]);
        double* d = at(m, out);
        d[0] += T_r * ux[m];
        d[1] += T_r * uy[m];
        d[2] += T_r * uz[m];
      }
    }
  }
  for (std::size_t gi = 0; gi < angular_groups_.size(); ++gi) {
    const AngularGroup& g = angular_groups_[gi];
    const int P = static_cast<int>(g.powers.size()), K = static_cast<int>(g.keys.size());
    if (g.moments) {
      // Per function: Φ_α = ∂G/∂T_α of its key only, then as moment_gradient.
      const bool same = g.element_a == g.element_b;
      const int N = g.n_components, Z = g.max_zeta;
      const double* Ta = ws.moments.data() + g.moment_offset;
      const double* Tb = same ? Ta : Ta + static_cast<std::size_t>(K) * N;
      double* phi = grow(ws.scratch, N);
      for (int side = 0; side < (same ? 1 : 2); ++side) {
        const auto [m0, m1] = range(ws, side ? g.element_b : g.element_a, g.rc);
        if (same && m1 - m0 < 2) break;  // G ≡ 0 (see build_moments)
        const double* partner = side ? Ta : Tb;
        const double* fc = ws.fc.data() + static_cast<std::size_t>(g.cutoff_slot) * active;
        const double* dfc = ws.dfc.data() + static_cast<std::size_t>(g.cutoff_slot) * active;
        for (int q = 0; q < K; ++q) {
          const AngularKey& key = g.keys[q];
          const double* ex = ws.radial_exp.data() + static_cast<std::size_t>(key.exp_slot) * active;
          for (int p = 0; p < P; ++p) {
            const int out = internal_to_output_[g.offset + q * P + p];
            if (out < 0) continue;
            for (int a = 0; a < N; ++a)
              phi[a] = (same ? 2.0 : 1.0) * g.coef[p * (Z + 1) + monomials_[a].degree] * monomials_[a].multinomial *
                       partner[q * N + a];
            const double delta = same ? -g.diag[p] : 0.0;
            for (int m = m0; m < m1; ++m) {
              const double uv[3] = {ux[m], uy[m], uz[m]};
              // r̂^α by the parent recursion, on the fly.
              double mon[165];
              mon[0] = 1.0;
              double Y = phi[0], gu[3] = {0, 0, 0};
              for (int a = 1; a < N; ++a) {
                const Monomial& mo = monomials_[a];
                mon[a] = mon[mo.parent] * uv[mo.axis];
                Y += phi[a] * mon[a];
                for (int d = 0; d < 3; ++d)
                  if (mo.lower[d] >= 0) gu[d] += mo.power[d] * phi[a] * mon[mo.lower[d]];
              }
              const double wv = ex[m] * fc[m];
              const double dv = ex[m] * (dfc[m] - 2.0 * key.eta * (r[m] - key.rs) * fc[m]);
              const double along = dv * (Y + 2.0 * delta * wv);
              const double radial = uv[0] * gu[0] + uv[1] * gu[1] + uv[2] * gu[2];
              double* d = at(m, out);
              for (int c = 0; c < 3; ++c) d[c] += along * uv[c] + wv * (gu[c] - radial * uv[c]) / r[m];
            }
          }
        }
      }
      continue;
    }
    const bool narrow = g.type == SymmetryFunctionType::G4;
    const std::size_t count = ws.triplet_count[gi];
    const double* data = ws.triplet_data.data() + ws.triplet_data_offset[gi];
    const std::size_t stride = triplet_stride(ws, gi);
    const int* tj = ws.triplet_pairs.data() + ws.triplet_pair_offset[gi];
    const int* tk = tj + stride;
    auto field = [&](int f) { return data + f * stride; };
    // Powers per chunk as in the force pass; per entry, the four scalars of
    // each function, then its two vectors.
    const PowerPlan& plan = g.gradient_plan;
    double* slots = grow(ws.scratch, static_cast<std::size_t>(plan.n_slots) * kRow);
    for (std::size_t t0 = 0; t0 < count; t0 += kChunk) {
      const int n = static_cast<int>(std::min<std::size_t>(kChunk, count - t0));
      run_plan(plan, g.powers, field(kCos) + t0, n, slots);
      for (int i = 0; i < n; ++i) {
        const std::size_t t = t0 + i;
        const int j = tj[t], k = tk[t];
        const double cos = field(kCos)[t], a = field(kRij)[t], b = field(kRik)[t], c = field(kRjk)[t];
        const double F = field(kF)[t], Fa = field(kFij)[t], Fb = field(kFik)[t], Fc = field(kFjk)[t];
        const double ia = 1.0 / a, ib = 1.0 / b, ic = narrow ? 1.0 / c : 0.0;
        const double uj[3] = {ux[j], uy[j], uz[j]}, uk[3] = {ux[k], uy[k], uz[k]};
        for (int p = 0; p < P; ++p) {
          const double value = g.powers[p].prefactor * slots[plan.value_row[p] + i];
          const double slope = g.powers[p].dprefactor * slots[plan.slope_row[p] + i];
          for (int q = 0; q < K; ++q) {
            const int out = internal_to_output_[g.offset + q * P + p];
            if (out < 0) continue;
            const AngularKey& key = g.keys[q];
            const double E = field(kFirstKey + q)[t];
            const double PE = value * E;
            const double Tcos = slope * E * F;
            const double two_eta_F = 2.0 * key.eta * F;
            const double Ta = PE * (Fa - two_eta_F * (a - key.rs));
            const double Tb = PE * (Fb - two_eta_F * (b - key.rs));
            const double Tc_c = narrow ? PE * (Fc - two_eta_F * (c - key.rs)) * ic : 0.0;
            const double cjj = Ta - Tcos * cos * ia + Tc_c * a, cjk = Tcos * ia - Tc_c * b;
            const double ckj = Tcos * ib - Tc_c * a, ckk = Tb - Tcos * cos * ib + Tc_c * b;
            double* dj = at(j, out);
            double* dk = at(k, out);
            for (int d = 0; d < 3; ++d) {
              dj[d] += cjj * uj[d] + cjk * uk[d];
              dk[d] += ckj * uj[d] + ckk * uk[d];
            }
          }
        }
      }
    }
  }
  if (!compact_groups_.empty()) compact_jacobian(ws, dG_dr);
}

}  // namespace nnp
