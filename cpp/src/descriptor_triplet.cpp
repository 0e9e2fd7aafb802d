// Triple-loop angular kernels (narrow G4; G5 with non-integer or large ζ):
// the triplet list, values and the force pass. Derivation in descriptor.cpp's header.
#include "nnp/descriptor.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "descriptor_internal.h"
#include "kernel_math.h"

namespace nnp {

using namespace detail;

NNP_KERNEL
void Descriptor::build_triplets(int gi, DescriptorWorkspace& ws) const {
  const AngularGroup& g = angular_groups_[gi];
  const bool narrow = g.type == SymmetryFunctionType::G4;
  const bool same = g.element_a == g.element_b;
  const auto [a0, a1] = range(ws, g.element_a, g.rc);
  const auto [b0, b1] = range(ws, g.element_b, g.rc);
  const std::size_t nA = a1 - a0, nB = b1 - b0;
  // Entries are stored with a stride of at least the number of pairs (an upper
  // bound of their count), so that they can be written while the pairs are
  // enumerated; padded off multiples of 512 bytes (see kRow).
  const std::size_t pairs = (same ? (nA ? nA * (nA - 1) / 2 : 0) : nA * nB) / 8 * 8 + 12;
  const std::size_t K = g.keys.size();
  const std::size_t fields = kFirstKey + K;
  const std::size_t pair_offset = ws.triplet_pair_offset[gi];
  const std::size_t data_offset = ws.triplet_data_offset[gi];
  ws.triplet_pair_offset[gi + 1] = pair_offset + 2 * pairs;
  ws.triplet_data_offset[gi + 1] = data_offset + fields * pairs;
  if (ws.triplet_pairs.size() < pair_offset + 2 * pairs) ws.triplet_pairs.resize(pair_offset + 2 * pairs);
  if (ws.triplet_data.size() < data_offset + fields * pairs) ws.triplet_data.resize(data_offset + fields * pairs);
  int* __restrict tj = ws.triplet_pairs.data() + pair_offset;
  int* __restrict tk = tj + pairs;
  double* data = ws.triplet_data.data() + data_offset;
  auto field = [&](std::size_t f) { return data + f * pairs; };
  double* __restrict d2 = field(kRjk);  // R_jk² until the square root is taken
  double* __restrict dist2 = grow(ws.scratch, std::max<std::size_t>(nA, nB));
  const double* x = ws.x.data();
  const double* y = ws.y.data();
  const double* z = ws.z.data();
  // Pairs of members: k after j within one element, every k for two. Narrow
  // functions keep only R_jk < r_c: the distances of one j to its k range in
  // a vectorised pass, then a branch-free compaction of the indices.
  const double rc2 = g.rc * g.rc;
  const double* __restrict r = ws.r.data();
  const double* __restrict ux = ws.ux.data();
  const double* __restrict uy = ws.uy.data();
  const double* __restrict uz = ws.uz.data();
  const std::size_t active = ws.r.size();
  const double* __restrict fc = ws.fc.data() + static_cast<std::size_t>(g.cutoff_slot) * active;
  const double* __restrict dfc = ws.dfc.data() + static_cast<std::size_t>(g.cutoff_slot) * active;
  double* __restrict cos = field(kCos);
  double* __restrict ra = field(kRij);
  double* __restrict rb = field(kRik);
  double* __restrict F = field(kF);
  double* __restrict Fa = field(kFij);
  double* __restrict Fb = field(kFik);
  double* __restrict Fc = field(kFjk);
  double* __restrict u[6] = {field(kUjx), field(kUjy), field(kUjz), field(kUkx), field(kUky), field(kUkz)};
  std::size_t count = 0;
  for (int j = a0; j < a1; ++j) {
    const double xj = x[j], yj = y[j], zj = z[j];
    const int k0 = same ? j + 1 : b0, nk = b1 - k0;
    const std::size_t c0 = count;
    if (narrow) {
      const double* __restrict xk = x + k0;
      const double* __restrict yk = y + k0;
      const double* __restrict zk = z + k0;
      for (int i = 0; i < nk; ++i) {
        const double dx = xk[i] - xj, dy = yk[i] - yj, dz = zk[i] - zj;
        dist2[i] = dx * dx + dy * dy + dz * dz;
      }
      for (int i = 0; i < nk; ++i) {
        tk[count] = k0 + i;
        d2[count] = dist2[i];
        count += dist2[i] < rc2;
      }
    } else {
      for (int i = 0; i < nk; ++i) tk[count + i] = k0 + i;
      count += nk;
    }
    for (std::size_t t = c0; t < count; ++t) tj[t] = j;
  }
  ws.triplet_count[gi] = count;
  const int n = static_cast<int>(count);
  // Per-member terms, gathered.
  for (int t = 0; t < n; ++t) {
    const int j = tj[t], k = tk[t];
    const double ujx = ux[j], ujy = uy[j], ujz = uz[j], ukx = ux[k], uky = uy[k], ukz = uz[k];
    u[0][t] = ujx;
    u[1][t] = ujy;
    u[2][t] = ujz;
    u[3][t] = ukx;
    u[4][t] = uky;
    u[5][t] = ukz;
    cos[t] = ujx * ukx + ujy * uky + ujz * ukz;
    ra[t] = r[j];
    rb[t] = r[k];
    F[t] = fc[j] * fc[k];
    Fa[t] = dfc[j] * fc[k];
    Fb[t] = fc[j] * dfc[k];
  }

  // R_jk terms (narrow): distance and cutoff, vectorised, into F.
  if (narrow) {
    double* __restrict c = d2;
    double* __restrict fcc = grow(ws.scratch, 2 * count);
    double* __restrict dfcc = fcc + count;
    kernel::sqrt_array(c, n);
    if (cutoff_ == CutoffType::Cos && cutoff_alpha_ == 0.0) {
      if (kernel::wide_vectors()) {
        kernel::cos_cutoff_array<kernel::V4>(c, fcc, dfcc, n, g.rc);
      } else {
        kernel::cos_cutoff_array<kernel::V2>(c, fcc, dfcc, n, g.rc);
      }
    } else {
      for (int t = 0; t < n; ++t) cutoff_function(cutoff_, c[t], g.rc, fcc[t], dfcc[t], cutoff_alpha_);
    }
    for (int t = 0; t < n; ++t) {
      const double f2 = F[t], f3 = fcc[t];
      F[t] = f2 * f3;
      Fa[t] *= f3;
      Fb[t] *= f3;
      Fc[t] = f2 * dfcc[t];
    }
  } else {
    for (int t = 0; t < n; ++t) Fc[t] = 0.0;
  }
  // E_q = exp(−η_q[(R_ij−R_s)² + (R_ik−R_s)² (+ (R_jk−R_s)²)]): one exponential
  // per key and entry (or a power of an earlier key's), vectorised.
  for (std::size_t q = 0; q < K; ++q) {
    const AngularKey& key = g.keys[q];
    double* __restrict e = field(kFirstKey + q);
    if (key.base >= 0) {
      power_array(e, field(kFirstKey + key.base), key.exponent, n);
    } else {
      const double* c = narrow ? field(kRjk) : nullptr;
      if (kernel::wide_vectors()) {
        kernel::gaussian_sum_array<kernel::V4>(ra, rb, c, e, n, key.eta, key.rs);
      } else {
        kernel::gaussian_sum_array<kernel::V2>(ra, rb, c, e, n, key.eta, key.rs);
      }
    }
  }
}

// Values of a triple-loop group from its triplet list.
NNP_KERNEL
void Descriptor::triplet_values(int gi, DescriptorWorkspace& ws) const {
  double* G = ws.g.data();
  const AngularGroup& g = angular_groups_[gi];
  const int P = static_cast<int>(g.powers.size()), K = static_cast<int>(g.keys.size());
  const std::size_t count = ws.triplet_count[gi];
  const std::size_t stride = triplet_stride(ws, gi);
  const double* data = ws.triplet_data.data() + ws.triplet_data_offset[gi];
  const PowerPlan& plan = g.value_plan;
  double* slots = grow(ws.scratch, static_cast<std::size_t>(plan.n_slots) * kRow + static_cast<std::size_t>(K) * P);
  double* acc = slots + static_cast<std::size_t>(plan.n_slots) * kRow;
  std::fill(acc, acc + K * P, 0.0);
  // acc_qp = Σ_t E_q F (1+λ_p cosθ)^ζ_p, four powers per pass over a chunk.
  for (std::size_t t0 = 0; t0 < count; t0 += kChunk) {
    const int n = static_cast<int>(std::min<std::size_t>(kChunk, count - t0));
    run_plan(plan, g.powers, data + kCos * stride + t0, n, slots);
    const double* __restrict F = data + kF * stride + t0;
    for (int q = 0; q < K; ++q) {
      const double* __restrict E = data + (kFirstKey + q) * stride + t0;
      for (int p0 = 0; p0 < P; p0 += 4) {
        const int* row = plan.value_row.data() + p0;
        const double* __restrict v0 = slots + row[0];
        const double* __restrict v1 = slots + row[1];
        const double* __restrict v2 = slots + row[2];
        const double* __restrict v3 = slots + row[3];
        double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
#pragma omp simd reduction(+ : s0, s1, s2, s3)
        for (int t = 0; t < n; ++t) {
          const double ef = E[t] * F[t];
          s0 += ef * v0[t];
          s1 += ef * v1[t];
          s2 += ef * v2[t];
          s3 += ef * v3[t];
        }
        const double sums[4] = {s0, s1, s2, s3};
        for (int i = 0; i < 4 && p0 + i < P; ++i) acc[q * P + p0 + i] += sums[i];
      }
    }
  }
  for (int q = 0; q < K; ++q)
    for (int p = 0; p < P; ++p) G[g.offset + q * P + p] += acc[q * P + p] * g.powers[p].prefactor;
}

NNP_KERNEL
void Descriptor::triplet_gradient(int gi, DescriptorWorkspace& ws) const {
  const AngularGroup& g = angular_groups_[gi];
  const bool narrow = g.type == SymmetryFunctionType::G4;
  const int P = static_cast<int>(g.powers.size()), K = static_cast<int>(g.keys.size());
  const std::size_t count = ws.triplet_count[gi];
  if (!count) return;
  const std::size_t stride = triplet_stride(ws, gi);
  const double* data = ws.triplet_data.data() + ws.triplet_data_offset[gi];
  const int* tj = ws.triplet_pairs.data() + ws.triplet_pair_offset[gi];
  const int* tk = tj + stride;
  const std::size_t active = ws.r.size();
  double* gx = ws.grad.data();
  double* gy = gx + active;
  double* gz = gy + active;
  // dE/dG scaled by each power's prefactors: A_q = Σ_p wv_qp (1+λcos)^ζ and
  // B_q = Σ_p wd_qp (1+λcos)^(ζ−1) are dE/d(E·F) and its cosθ-derivative.
  const PowerPlan& plan = g.gradient_plan;
  const int P4 = (P + 3) / 4 * 4;
  double* slots = grow(ws.scratch, static_cast<std::size_t>(plan.n_slots + 13) * kRow +
                                       2 * static_cast<std::size_t>(K) * P4);
  double* A = slots + static_cast<std::size_t>(plan.n_slots) * kRow;
  double* B = A + kRow;
  double* S0 = B + kRow;
  double* S1 = S0 + kRow;
  double* S2 = S1 + kRow;
  double* Sc = S2 + kRow;
  double* cjj = Sc + kRow;
  double* cjk = cjj + kRow;
  double* ckj = cjk + kRow;
  double* ckk = ckj + kRow;
  double* dj[3] = {ckk + kRow, ckk + 2 * kRow, ckk + 3 * kRow};
  double* dk[3] = {A, B, S0};  // reused once the coefficients are known
  bool any_rs = false;
  for (const AngularKey& key : g.keys) any_rs |= key.rs != 0.0;
  double* wv = ckk + 4 * kRow;
  double* wd = wv + static_cast<std::size_t>(K) * P4;
  const double* w = ws.w.data() + g.offset;
  for (int q = 0; q < K; ++q)
    for (int p = 0; p < P4; ++p) {
      wv[q * P4 + p] = p < P ? w[q * P + p] * g.powers[p].prefactor : 0.0;
      wd[q * P4 + p] = p < P ? w[q * P + p] * g.powers[p].dprefactor : 0.0;
    }
  for (std::size_t t0 = 0; t0 < count; t0 += kChunk) {
    const int n = static_cast<int>(std::min<std::size_t>(kChunk, count - t0));
    const double* __restrict cos = data + kCos * stride + t0;
    run_plan(plan, g.powers, cos, n, slots);
    for (int q = 0; q < K; ++q) {
      // Four powers per pass (padding: weight 0 on the slot of ones).
      for (int p0 = 0; p0 < P; p0 += 4) {
        const double* a = wv + q * P4 + p0;
        const double* b = wd + q * P4 + p0;
        const double a0 = a[0], a1 = a[1], a2 = a[2], a3 = a[3];
        const double b0 = b[0], b1 = b[1], b2 = b[2], b3 = b[3];
        const int* vrow = plan.value_row.data() + p0;
        const int* drow = plan.slope_row.data() + p0;
        const double* __restrict v0 = slots + vrow[0];
        const double* __restrict v1 = slots + vrow[1];
        const double* __restrict v2 = slots + vrow[2];
        const double* __restrict v3 = slots + vrow[3];
        const double* __restrict dv0 = slots + drow[0];
        const double* __restrict dv1 = slots + drow[1];
        const double* __restrict dv2 = slots + drow[2];
        const double* __restrict dv3 = slots + drow[3];
        if (p0 == 0) {
          for (int t = 0; t < n; ++t) {
            A[t] = a0 * v0[t] + a1 * v1[t] + a2 * v2[t] + a3 * v3[t];
            B[t] = b0 * dv0[t] + b1 * dv1[t] + b2 * dv2[t] + b3 * dv3[t];
          }
        } else {
          for (int t = 0; t < n; ++t) {
            A[t] += a0 * v0[t] + a1 * v1[t] + a2 * v2[t] + a3 * v3[t];
            B[t] += b0 * dv0[t] + b1 * dv1[t] + b2 * dv2[t] + b3 * dv3[t];
          }
        }
      }
      // The sums over keys (the S2 one only where some R_s != 0).
      const double* __restrict E = data + (kFirstKey + q) * stride + t0;
      const double eta = g.keys[q].eta, eta_rs = g.keys[q].eta * g.keys[q].rs;
      if (q == 0) {
        for (int t = 0; t < n; ++t) {
          const double AE = A[t] * E[t];
          S0[t] = AE;
          S1[t] = eta * AE;
          S2[t] = eta_rs * AE;
          Sc[t] = B[t] * E[t];
        }
      } else if (any_rs) {
        for (int t = 0; t < n; ++t) {
          const double AE = A[t] * E[t];
          S0[t] += AE;
          S1[t] += eta * AE;
          S2[t] += eta_rs * AE;
          Sc[t] += B[t] * E[t];
        }
      } else {
        for (int t = 0; t < n; ++t) {
          const double AE = A[t] * E[t];
          S0[t] += AE;
          S1[t] += eta * AE;
          Sc[t] += B[t] * E[t];
        }
      }
    }
    // Σ_q A_q E_q (∂F/∂R_x − 2η_q(R_x−R_s,q)F) = ∂F/∂R_x S0 − 2F(R_x S1 − S2).
    const double* __restrict ra = data + kRij * stride + t0;
    const double* __restrict rb = data + kRik * stride + t0;
    const double* __restrict rcc = data + kRjk * stride + t0;
    const double* __restrict F = data + kF * stride + t0;
    const double* __restrict Fa = data + kFij * stride + t0;
    const double* __restrict Fb = data + kFik * stride + t0;
    const double* __restrict Fc = data + kFjk * stride + t0;
    if (narrow) {
      for (int t = 0; t < n; ++t) {
        const double Tcos = F[t] * Sc[t];
        const double Ta = Fa[t] * S0[t] - 2.0 * F[t] * (ra[t] * S1[t] - S2[t]);
        const double Tb = Fb[t] * S0[t] - 2.0 * F[t] * (rb[t] * S1[t] - S2[t]);
        const double Tc_c = (Fc[t] * S0[t] - 2.0 * F[t] * (rcc[t] * S1[t] - S2[t])) / rcc[t];
        const double ia = 1.0 / ra[t], ib = 1.0 / rb[t];
        cjj[t] = Ta - Tcos * cos[t] * ia + Tc_c * ra[t];
        cjk[t] = Tcos * ia - Tc_c * rb[t];
        ckj[t] = Tcos * ib - Tc_c * ra[t];
        ckk[t] = Tb - Tcos * cos[t] * ib + Tc_c * rb[t];
      }
    } else {
      for (int t = 0; t < n; ++t) {
        const double Tcos = F[t] * Sc[t];
        const double Ta = Fa[t] * S0[t] - 2.0 * F[t] * (ra[t] * S1[t] - S2[t]);
        const double Tb = Fb[t] * S0[t] - 2.0 * F[t] * (rb[t] * S1[t] - S2[t]);
        const double ia = 1.0 / ra[t], ib = 1.0 / rb[t];
        cjj[t] = Ta - Tcos * cos[t] * ia;
        cjk[t] = Tcos * ia;
        ckj[t] = Tcos * ib;
        ckk[t] = Tb - Tcos * cos[t] * ib;
      }
    }
    // ∂/∂r_ij and ∂/∂r_ik of the entries, then the scatter (entries come in
    // runs of one j, whose sum stays in registers).
    for (int c = 0; c < 3; ++c) {
      const double* __restrict uj = data + (kUjx + c) * stride + t0;
      const double* __restrict uk = data + (kUkx + c) * stride + t0;
      double* __restrict outj = dj[c];
      double* __restrict outk = dk[c];
      for (int t = 0; t < n; ++t) {
        outj[t] = cjj[t] * uj[t] + cjk[t] * uk[t];
        outk[t] = ckj[t] * uj[t] + ckk[t] * uk[t];
      }
    }
    const int* __restrict js = tj + t0;
    const int* __restrict ks = tk + t0;
    int jrun = js[0];
    double sx = 0, sy = 0, sz = 0;
    for (int t = 0; t < n; ++t) {
      if (js[t] != jrun) {
        gx[jrun] += sx;
        gy[jrun] += sy;
        gz[jrun] += sz;
        sx = sy = sz = 0;
        jrun = js[t];
      }
      sx += dj[0][t];
      sy += dj[1][t];
      sz += dj[2][t];
      const int k = ks[t];
      gx[k] += dk[0][t];
      gy[k] += dk[1][t];
      gz[k] += dk[2][t];
    }
    gx[jrun] += sx;
    gy[jrun] += sy;
    gz[jrun] += sz;
  }
}

}  // namespace nnp
