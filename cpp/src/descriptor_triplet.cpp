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

namespace {

// One block of NK keys of the force pass's contraction, over a chunk of n
// entries: a_k = Σ_p w_kp slot_p (slot_p = (1+λ_p cosθ)^ζ_p or its slope),
// then out_i += Σ_k coef_ik a_k E_k for i < NO. A small matrix product
// held in registers (NK keys × two vectors of entries), so the weights are
// loaded once per two vectors and no row of a_k is stored. Rows may be read
// up to 2·lanes − 1 entries past n (the chunk rows and the entry stride are
// padded for it).
template <class V, int NK, int NO>
NNP_INLINE void key_block(const double* slots, const int* row, int P, const double* w, const double* E,
                          std::size_t stride, const double* coef, int K, int n, double* out) {
  constexpr int L = kernel::lanes<V>();
  for (int t = 0; t < n; t += 2 * L) {
    V a[NK][2] = {};
    for (int p = 0; p < P; ++p) {
      const double* x = slots + row[p] + t;
      const V x0 = kernel::load<V>(x), x1 = kernel::load<V>(x + L);
      for (int k = 0; k < NK; ++k) {
        const double wk = w[k * P + p];
        a[k][0] += wk * x0;
        a[k][1] += wk * x1;
      }
    }
    for (int h = 0; h < 2; ++h) {
      const int th = t + h * L;
      V o[NO];
      for (int i = 0; i < NO; ++i) o[i] = kernel::load<V>(out + i * kRow + th);
      for (int k = 0; k < NK; ++k) {
        const V ae = a[k][h] * kernel::load<V>(E + k * stride + th);
        for (int i = 0; i < NO; ++i) o[i] += coef[i * K + k] * ae;
      }
      for (int i = 0; i < NO; ++i) kernel::store<V>(out + i * kRow + th, o[i]);
    }
  }
}

// All keys, in blocks of at most six, as even as possible (a small last
// block would pay the loop over powers for few keys): NO outputs at out,
// out + kRow, ….
template <class V, int NO>
NNP_INLINE void key_blocks(const double* slots, const int* row, int P, int K, const double* w, const double* E,
                           std::size_t stride, const double* coef, int n, double* out) {
  const int blocks = (K + 5) / 6;
  for (int b = 0, q = 0; b < blocks; ++b) {
    const int nk = (K - q) / (blocks - b);
    const double* wq = w + q * P;
    const double* Eq = E + q * stride;
    const double* cq = coef + q;
    switch (nk) {
      case 1: key_block<V, 1, NO>(slots, row, P, wq, Eq, stride, cq, K, n, out); break;
      case 2: key_block<V, 2, NO>(slots, row, P, wq, Eq, stride, cq, K, n, out); break;
      case 3: key_block<V, 3, NO>(slots, row, P, wq, Eq, stride, cq, K, n, out); break;
      case 4: key_block<V, 4, NO>(slots, row, P, wq, Eq, stride, cq, K, n, out); break;
      case 5: key_block<V, 5, NO>(slots, row, P, wq, Eq, stride, cq, K, n, out); break;
      default: key_block<V, 6, NO>(slots, row, P, wq, Eq, stride, cq, K, n, out); break;
    }
    q += nk;
  }
}

// The force pass's sums over keys and powers per entry, rows S0, S1, S2, Sc
// (kRow apart) from S:
//   S0 = Σ_q A_q E_q, S1 = Σ_q η_q A_q E_q, S2 = Σ_q η_q R_s,q A_q E_q, Sc = Σ_q B_q E_q
// with A_q = Σ_p wv_qp (1+λ_p cosθ)^ζ_p and B_q = Σ_p wd_qp (1+λ_p cosθ)^(ζ_p−1).
// coef: rows of K: ones, η_q, η_q R_s,q. S2 only where some R_s != 0.
template <class V>
NNP_INLINE void key_sums(const double* slots, const int* vrow, const int* drow, int P, int K, const double* wv,
                         const double* wd, const double* coef, const double* E, std::size_t stride, int n, bool any_rs,
                         double* S) {
  std::fill(S, S + 4 * kRow, 0.0);
  if (any_rs) {
    key_blocks<V, 3>(slots, vrow, P, K, wv, E, stride, coef, n, S);
  } else {
    key_blocks<V, 2>(slots, vrow, P, K, wv, E, stride, coef, n, S);
  }
  key_blocks<V, 1>(slots, drow, P, K, wd, E, stride, coef, n, S + 3 * kRow);
}

// Where fill_run writes the entries of one group (fields of the triplet list)
// and reads the members' data.
struct RunFields {
  int* tj;
  int* tk;
  double* f[kFirstKey];  // per TripletField below kFirstKey
  const double *r, *ux, *uy, *uz, *fc, *dfc;
};

template <class V>
NNP_INLINE V gather(const double* p, const int* index) {
  double v[kernel::lanes<V>()];
  for (int l = 0; l < kernel::lanes<V>(); ++l) v[l] = p[index[l]];
  return kernel::load<V>(v);
}

// The entries [c0, c1) of one j (indices k in tk, narrow: R_jk² in the kRjk
// field): everything but the exponentials, L entries at a time (the members'
// data gathered per lane). A last partial block is padded (k = j, R_jk = r_c)
// and written past c1, into entries that later runs or the stride padding
// hold. cos_cutoff: the cos cutoff (vectorised), else f_c per lane by
// cutoff_function.
template <class V>
NNP_INLINE void fill_run(const RunFields& s, int j, std::size_t c0, std::size_t c1, bool narrow, bool cos_cutoff,
                         CutoffType type, double rc, double alpha) {
  constexpr int L = kernel::lanes<V>();
  int* tk = s.tk;
  double* c2 = s.f[kRjk];
  for (int l = 0; l < L; ++l) {
    tk[c1 + l] = j;
    c2[c1 + l] = rc * rc;
  }
  const double uxj = s.ux[j], uyj = s.uy[j], uzj = s.uz[j], rj = s.r[j], fcj = s.fc[j], dfcj = s.dfc[j];
  const double inv_rc = 1.0 / rc;
  for (std::size_t t = c0; t < c1; t += L) {
    const int* k = tk + t;
    for (int l = 0; l < L; ++l) s.tj[t + l] = j;
    const V ukx = gather<V>(s.ux, k), uky = gather<V>(s.uy, k), ukz = gather<V>(s.uz, k);
    const V fck = gather<V>(s.fc, k), dfck = gather<V>(s.dfc, k);
    const V f2 = fcj * fck;
    V F = f2, Fa = dfcj * fck, Fb = fcj * dfck, Fc{};
    if (narrow) {
      const V c = kernel::sqrt_v<V>(kernel::load<V>(c2 + t));
      V fcc, dfcc;
      if (cos_cutoff) {
        kernel::cos_cutoff<V>(c, rc, inv_rc, fcc, dfcc);
      } else {
        for (int l = 0; l < L; ++l) cutoff_function(type, c[l], rc, fcc[l], dfcc[l], alpha);
      }
      kernel::store<V>(c2 + t, c);
      F = f2 * fcc;
      Fa *= fcc;
      Fb *= fcc;
      Fc = f2 * dfcc;
    }
    const V out[kFirstKey] = {uxj * ukx + uyj * uky + uzj * ukz, V{} + rj, gather<V>(s.r, k), V{},
                              F, Fa, Fb, Fc, V{} + uxj, V{} + uyj, V{} + uzj, ukx, uky, ukz};
    for (int f = 0; f < kFirstKey; ++f)
      if (f != kRjk) kernel::store<V>(s.f[f] + t, out[f]);
  }
}

}  // namespace

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
  // enumerated; padded off multiples of 512 bytes (see kRow), and so that
  // vector reads and writes past the last entry stay inside (fill_run, key_block).
  const std::size_t pairs = (same ? (nA ? nA * (nA - 1) / 2 : 0) : nA * nB) / 8 * 8 + 20;
  const std::size_t K = g.keys.size();
  const std::size_t fields = kFirstKey + K;
  const std::size_t pair_offset = ws.triplet_pair_offset[gi];
  const std::size_t data_offset = ws.triplet_data_offset[gi];
  ws.triplet_pair_offset[gi + 1] = pair_offset + 2 * pairs;
  ws.triplet_data_offset[gi + 1] = data_offset + fields * pairs;
  if (ws.triplet_pairs.size() < pair_offset + 2 * pairs) ws.triplet_pairs.resize(pair_offset + 2 * pairs);
  if (ws.triplet_data.size() < data_offset + fields * pairs) ws.triplet_data.resize(data_offset + fields * pairs);
  int* __restrict tk = ws.triplet_pairs.data() + pair_offset + pairs;
  double* data = ws.triplet_data.data() + data_offset;
  auto field = [&](std::size_t f) { return data + f * pairs; };
  const std::size_t active = ws.r.size();
  RunFields run{ws.triplet_pairs.data() + pair_offset, tk, {}, ws.r.data(), ws.ux.data(), ws.uy.data(), ws.uz.data(),
                ws.fc.data() + static_cast<std::size_t>(g.cutoff_slot) * active,
                ws.dfc.data() + static_cast<std::size_t>(g.cutoff_slot) * active};
  for (int f = 0; f < kFirstKey; ++f) run.f[f] = field(f);
  const bool cos_cutoff = cutoff_ == CutoffType::Cos && cutoff_alpha_ == 0.0;
  double* __restrict d2 = field(kRjk);  // R_jk² until fill_run takes the square root
  double* __restrict dist2 = grow(ws.scratch, std::max<std::size_t>(nA, nB));
  const double* x = ws.x.data();
  const double* y = ws.y.data();
  const double* z = ws.z.data();
  // Pairs of members: k after j within one element, every k for two. Narrow
  // functions keep only R_jk < r_c: the distances of one j to its k range in
  // a vectorised pass, then a branch-free compaction of the indices.
  const double rc2 = g.rc * g.rc;
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
    if (kernel::wide_vectors()) {
      fill_run<kernel::V4>(run, j, c0, count, narrow, cos_cutoff, cutoff_, g.rc, cutoff_alpha_);
    } else {
      fill_run<kernel::V2>(run, j, c0, count, narrow, cos_cutoff, cutoff_, g.rc, cutoff_alpha_);
    }
  }
  ws.triplet_count[gi] = count;
  const int n = static_cast<int>(count);
  const double* __restrict ra = field(kRij);
  const double* __restrict rb = field(kRik);
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
  // dE/dG scaled by each power's prefactors (wv: value, wd: slope), so that
  // A_q = Σ_p wv_qp (1+λcos)^ζ and B_q = Σ_p wd_qp (1+λcos)^(ζ−1) are
  // dE/d(E·F) and its cosθ-derivative (key_sums).
  const PowerPlan& plan = g.gradient_plan;
  double* slots = grow(ws.scratch, static_cast<std::size_t>(plan.n_slots + 11) * kRow +
                                       (2 * static_cast<std::size_t>(P) + 3) * K);
  double* S0 = slots + static_cast<std::size_t>(plan.n_slots) * kRow;
  double* S1 = S0 + kRow;
  double* S2 = S1 + kRow;
  double* Sc = S2 + kRow;
  double* cjj = Sc + kRow;
  double* cjk = cjj + kRow;
  double* ckj = cjk + kRow;
  double* ckk = ckj + kRow;
  double* dj[3] = {ckk + kRow, ckk + 2 * kRow, ckk + 3 * kRow};
  double* dk[3] = {S0, S1, S2};  // reused once the coefficients are known
  bool any_rs = false;
  for (const AngularKey& key : g.keys) any_rs |= key.rs != 0.0;
  double* wv = ckk + 4 * kRow;
  double* wd = wv + static_cast<std::size_t>(K) * P;
  double* coef = wd + static_cast<std::size_t>(K) * P;  // rows: 1, η_q, η_q R_s,q
  const double* w = ws.w.data() + g.offset;
  for (int q = 0; q < K; ++q) {
    coef[q] = 1.0;
    coef[K + q] = g.keys[q].eta;
    coef[2 * K + q] = g.keys[q].eta * g.keys[q].rs;
    for (int p = 0; p < P; ++p) {
      wv[q * P + p] = w[q * P + p] * g.powers[p].prefactor;
      wd[q * P + p] = w[q * P + p] * g.powers[p].dprefactor;
    }
  }
  for (std::size_t t0 = 0; t0 < count; t0 += kChunk) {
    const int n = static_cast<int>(std::min<std::size_t>(kChunk, count - t0));
    const double* __restrict cos = data + kCos * stride + t0;
    run_plan(plan, g.powers, cos, n, slots);
    const double* E = data + kFirstKey * stride + t0;
    if (kernel::wide_vectors()) {
      key_sums<kernel::V4>(slots, plan.value_row.data(), plan.slope_row.data(), P, K, wv, wd, coef, E, stride, n, any_rs,
                           S0);
    } else {
      key_sums<kernel::V2>(slots, plan.value_row.data(), plan.slope_row.data(), P, K, wv, wd, coef, E, stride, n, any_rs,
                           S0);
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
