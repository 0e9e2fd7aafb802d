// Jacobian-vector products J·u of the descriptor, for training on streamed
// data: the gradient of a force loss with respect to dE/dG is −J·(∂L/∂F),
// computed here per centre atom without forming the Jacobian.
//
// Each family contracts its Jacobian terms (cpp/src/descriptor_jacobian.cpp)
// with the neighbour directions u_j as it goes. For a triplet entry (j, k),
// with A = r̂_j·u_j, B = r̂_k·u_j, C = r̂_j·u_k, D = r̂_k·u_k,
//   X = R_ij (A − C) + R_ik (D − B)   (narrow only: the R_jk terms),
//   Y = (B − cosθ A)/R_ij + (C − cosθ D)/R_ik,
// function (key q, power p) receives
//   value_p · E_q · [S0 − 2η_q F (U1 − R_s,q U2)] + slope_p · E_q F Y
// with S0 = F_a A + F_b D + F_c X/R_jk, U1 = R_ij A + R_ik D + X and
// U2 = A + D + X/R_jk: per chunk of entries, two dense products over the
// chunk per (key, power), like the value pass, instead of the Jacobian's
// 6 scattered 3-vector writes. Moment groups differentiate the tensors T
// along u once per key (dT), then contract dT with T per power. Compact
// functions, rarely used, contract their Jacobian block of the atom.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "descriptor_internal.h"
#include "kernel_math.h"
#include "nnp/descriptor.h"

namespace nnp {

using namespace detail;

namespace {

// Rows of the per-chunk temporaries of the triplet pass.
enum JvpRow { kS0, kU1, kU2, kY, kZ, kW, kJvpRows };

}  // namespace

NNP_KERNEL
void Descriptor::radial_jvp(DescriptorWorkspace& ws) const {
  const std::size_t active = ws.r.size();
  const double* r = ws.r.data();
  const double* along = ws.direction.data() + 3 * active;  // r̂·u per member
  double* acc = ws.jvp.data();
  for (const RadialGroup& g : radial_groups_) {
    const auto [m0, m1] = range(ws, g.element, g.rc);
    const double* fc = ws.fc.data() + static_cast<std::size_t>(g.cutoff_slot) * active;
    const double* dfc = ws.dfc.data() + static_cast<std::size_t>(g.cutoff_slot) * active;
    for (const RadialTerm& t : g.terms) {
      const double* e = ws.radial_exp.data() + static_cast<std::size_t>(t.exp_slot) * active;
      double s = 0.0;
      for (int m = m0; m < m1; ++m) s += e[m] * (dfc[m] - 2.0 * t.eta * (r[m] - t.rs) * fc[m]) * along[m];
      acc[t.internal] += s;
    }
  }
}

NNP_KERNEL
void Descriptor::triplet_jvp(int gi, DescriptorWorkspace& ws) const {
  const AngularGroup& g = angular_groups_[gi];
  const bool narrow = g.type == SymmetryFunctionType::G4;
  const int P = static_cast<int>(g.powers.size()), K = static_cast<int>(g.keys.size());
  const std::size_t count = ws.triplet_count[gi], active = ws.r.size();
  const double* data = ws.triplet_data.data() + ws.triplet_data_offset[gi];
  const std::size_t stride = triplet_stride(ws, gi);
  const int* tj = ws.triplet_pairs.data() + ws.triplet_pair_offset[gi];
  const int* tk = tj + stride;
  const double* dx = ws.direction.data();
  const double* dy = dx + active;
  const double* dz = dy + active;
  const double* along = dz + active;
  const PowerPlan& plan = g.gradient_plan;
  double* slots = grow(ws.scratch, static_cast<std::size_t>(plan.n_slots + kJvpRows) * kRow);
  double* row = slots + static_cast<std::size_t>(plan.n_slots) * kRow;
  double* __restrict S0 = row + kS0 * kRow;
  double* __restrict U1 = row + kU1 * kRow;
  double* __restrict U2 = row + kU2 * kRow;
  double* __restrict Y = row + kY * kRow;
  double* __restrict Z = row + kZ * kRow;
  double* __restrict W = row + kW * kRow;
  double* acc = ws.jvp.data() + g.offset;
  for (std::size_t t0 = 0; t0 < count; t0 += kChunk) {
    const int n = static_cast<int>(std::min<std::size_t>(kChunk, count - t0));
    auto field = [&](int f) { return data + f * stride + t0; };
    const double *cos = field(kCos), *a = field(kRij), *b = field(kRik), *c = field(kRjk);
    const double *F = field(kF), *Fa = field(kFij), *Fb = field(kFik), *Fc = field(kFjk);
    const double *ujx = field(kUjx), *ujy = field(kUjy), *ujz = field(kUjz);
    const double *ukx = field(kUkx), *uky = field(kUky), *ukz = field(kUkz);
    run_plan(plan, g.powers, cos, n, slots);
    for (int i = 0; i < n; ++i) {
      const int j = tj[t0 + i], k = tk[t0 + i];
      const double A = along[j], D = along[k];
      const double B = ukx[i] * dx[j] + uky[i] * dy[j] + ukz[i] * dz[j];
      const double C = ujx[i] * dx[k] + ujy[i] * dy[k] + ujz[i] * dz[k];
      const double X = narrow ? a[i] * (A - C) + b[i] * (D - B) : 0.0;
      const double Xc = narrow ? X / c[i] : 0.0;
      S0[i] = Fa[i] * A + Fb[i] * D + Fc[i] * Xc;
      U1[i] = a[i] * A + b[i] * D + X;
      U2[i] = A + D + Xc;
      Y[i] = F[i] * ((B - cos[i] * A) / a[i] + (C - cos[i] * D) / b[i]);
    }
    for (int q = 0; q < K; ++q) {
      const AngularKey& key = g.keys[q];
      const double* E = field(kFirstKey + q);
      const double two_eta = 2.0 * key.eta, rs = key.rs;
      for (int i = 0; i < n; ++i) {
        Z[i] = E[i] * (S0[i] - two_eta * F[i] * (U1[i] - rs * U2[i]));
        W[i] = E[i] * Y[i];
      }
      // Four powers per pass (rows past P read the ones row and are dropped),
      // vectorised reductions: one dot product at a time was a chain of
      // dependent additions, half of this kernel's time.
      for (int p0 = 0; p0 < P; p0 += 4) {
        const int* vr = plan.value_row.data() + p0;
        const int* sr = plan.slope_row.data() + p0;
        const double *__restrict v0 = slots + vr[0], *__restrict v1 = slots + vr[1];
        const double *__restrict v2 = slots + vr[2], *__restrict v3 = slots + vr[3];
        const double *__restrict s0 = slots + sr[0], *__restrict s1 = slots + sr[1];
        const double *__restrict s2 = slots + sr[2], *__restrict s3 = slots + sr[3];
        double a0 = 0, a1 = 0, a2 = 0, a3 = 0, b0 = 0, b1 = 0, b2 = 0, b3 = 0;
#pragma omp simd reduction(+ : a0, a1, a2, a3, b0, b1, b2, b3)
        for (int i = 0; i < n; ++i) {
          const double z = Z[i], w = W[i];
          a0 += v0[i] * z;
          a1 += v1[i] * z;
          a2 += v2[i] * z;
          a3 += v3[i] * z;
          b0 += s0[i] * w;
          b1 += s1[i] * w;
          b2 += s2[i] * w;
          b3 += s3[i] * w;
        }
        const double sv[4] = {a0, a1, a2, a3}, ss[4] = {b0, b1, b2, b3};
        for (int k = 0; k < 4 && p0 + k < P; ++k)
          acc[q * P + p0 + k] += g.powers[p0 + k].prefactor * sv[k] + g.powers[p0 + k].dprefactor * ss[k];
      }
    }
  }
}

NNP_KERNEL
void Descriptor::moment_jvp(int gi, DescriptorWorkspace& ws) const {
  const AngularGroup& g = angular_groups_[gi];
  const bool same = g.element_a == g.element_b;
  const int P = static_cast<int>(g.powers.size()), K = static_cast<int>(g.keys.size());
  const int N = g.n_components, Z = g.max_zeta;
  const std::size_t active = ws.r.size();
  const double* r = ws.r.data();
  const double *ux = ws.ux.data(), *uy = ws.uy.data(), *uz = ws.uz.data();
  const double* dx = ws.direction.data();
  const double* along = dx + 3 * active;
  const double* fc = ws.fc.data() + static_cast<std::size_t>(g.cutoff_slot) * active;
  const double* dfc = ws.dfc.data() + static_cast<std::size_t>(g.cutoff_slot) * active;
  const double* Ta = ws.moments.data() + g.moment_offset;
  const double* Tb = same ? Ta : Ta + static_cast<std::size_t>(K) * N;
  // dT (sides × K × N), then dD (K), then r̂^α and its derivative along u (2N).
  const int sides = same ? 1 : 2;
  double* dT = grow(ws.scratch, static_cast<std::size_t>(sides * K + 1) * N + K + 2 * N);
  std::fill(dT, dT + static_cast<std::size_t>(sides * K + 1) * N + K, 0.0);
  double* dD = dT + static_cast<std::size_t>(sides) * K * N;
  double* mon = dD + K;
  double* dmon = mon + N;
  for (int side = 0; side < sides; ++side) {
    const auto [m0, m1] = range(ws, side ? g.element_b : g.element_a, g.rc);
    if (same && m1 - m0 < 2) return;  // G ≡ 0 (see build_moments)
    double* dTs = dT + static_cast<std::size_t>(side) * K * N;
    for (int m = m0; m < m1; ++m) {
      const double uv[3] = {ux[m], uy[m], uz[m]};
      const double p = along[m];
      // (1 − r̂r̂ᵀ)u/R: how r̂ turns along u.
      const double tv[3] = {(dx[m] - p * uv[0]) / r[m], (dx[active + m] - p * uv[1]) / r[m],
                            (dx[2 * active + m] - p * uv[2]) / r[m]};
      mon[0] = 1.0;
      dmon[0] = 0.0;
      for (int a = 1; a < N; ++a) {
        const Monomial& mo = monomials_[a];
        mon[a] = mon[mo.parent] * uv[mo.axis];
        double s = 0.0;
        for (int d = 0; d < 3; ++d)
          if (mo.lower[d] >= 0) s += mo.power[d] * mon[mo.lower[d]] * tv[d];
        dmon[a] = s;
      }
      for (int q = 0; q < K; ++q) {
        const AngularKey& key = g.keys[q];
        const double ex = ws.radial_exp[static_cast<std::size_t>(key.exp_slot) * active + m];
        const double wv = ex * fc[m];
        const double dw = ex * (dfc[m] - 2.0 * key.eta * (r[m] - key.rs) * fc[m]) * p;
        double* row = dTs + static_cast<std::size_t>(q) * N;
        for (int a = 0; a < N; ++a) row[a] += dw * mon[a] + wv * dmon[a];
        if (same) dD[q] += 2.0 * wv * dw;
      }
    }
  }
  const double* dTa = dT;
  const double* dTb = same ? dT : dT + static_cast<std::size_t>(K) * N;
  double* acc = ws.jvp.data() + g.offset;
  for (int q = 0; q < K; ++q) {
    // dS_n = Σ_{|α|=n} (n!/α!) (dT^a T^b + T^a dT^b), per degree n.
    double dS[kMaxMomentZeta + 1] = {};
    for (int a = 0; a < N; ++a) {
      const std::size_t x = static_cast<std::size_t>(q) * N + a;
      dS[monomials_[a].degree] += monomials_[a].multinomial * (dTa[x] * Tb[x] + Ta[x] * dTb[x]);
    }
    for (int p = 0; p < P; ++p) {
      double s = same ? -g.diag[p] * dD[q] : 0.0;
      for (int d = 0; d <= Z; ++d) s += g.coef[p * (Z + 1) + d] * dS[d];
      acc[q * P + p] += s;
    }
  }
}

void Descriptor::jacobian_vector(const NeighborView& nb, const double* u, double* Ju, DescriptorWorkspace& ws) const {
  if (terms_) {
    // J_W·u = C (J_T·u): the mix applied to the terms' product.
    double* t = grow(ws.term_w, terms_->size());
    terms_->jacobian_vector(nb, u, t, ws);
    for (int o = 0; o < size(); ++o) {
      double s = 0.0;
      for (int x = mix_start_[o]; x < mix_start_[o + 1]; ++x) s += mix_coef_[x] * t[mix_term_[x]];
      Ju[o] = s;
    }
    return;
  }
  prepare_all(nb, ws);
  const std::size_t active = ws.r.size();
  double* dir = grow(ws.direction, 4 * active);
  for (std::size_t m = 0; m < active; ++m) {
    const double* um = u + 3 * static_cast<std::size_t>(ws.index[m]);
    dir[m] = um[0];
    dir[active + m] = um[1];
    dir[2 * active + m] = um[2];
    dir[3 * active + m] = ws.ux[m] * um[0] + ws.uy[m] * um[1] + ws.uz[m] * um[2];
  }
  ws.jvp.assign(internal_to_output_.size(), 0.0);
  radial_jvp(ws);
  for (std::size_t gi = 0; gi < angular_groups_.size(); ++gi) {
    if (angular_groups_[gi].moments) {
      moment_jvp(static_cast<int>(gi), ws);
    } else {
      triplet_jvp(static_cast<int>(gi), ws);
    }
  }
  const int M = size();
  std::fill(Ju, Ju + M, 0.0);
  for (std::size_t i = 0; i < internal_to_output_.size(); ++i)
    if (internal_to_output_[i] >= 0) Ju[internal_to_output_[i]] = ws.jvp[i];
  if (compact_groups_.empty()) return;
  // Compact functions: their Jacobian block of this atom, contracted with u.
  const std::size_t block = static_cast<std::size_t>(nb.count) * M * 3;
  double* jac = grow(ws.term_jacobian, block);
  std::fill(jac, jac + block, 0.0);
  compact_jacobian(ws, jac);
  for (int j = 0; j < nb.count; ++j)
    for (int o = 0; o < M; ++o) {
      const double* d = jac + (static_cast<std::size_t>(j) * M + o) * 3;
      Ju[o] += d[0] * u[3 * j] + d[1] * u[3 * j + 1] + d[2] * u[3 * j + 2];
    }
}

}  // namespace nnp
