// Factorised angular kernels (G5 with integer ζ <= kMaxMomentZeta): neighbour
// moment tensors, values and the force pass, linear in the number of neighbours.
#include "nnp/descriptor.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "descriptor_internal.h"
#include "kernel_math.h"

namespace nnp {

using namespace detail;

NNP_KERNEL
void Descriptor::build_moments(int gi, DescriptorWorkspace& ws) const {
  if (kernel::wide_vectors()) {
    build_moments_v<kernel::V4>(gi, ws);
  } else {
    build_moments_v<kernel::V2>(gi, ws);
  }
}

template <class V>
NNP_INLINE void Descriptor::build_moments_v(int gi, DescriptorWorkspace& ws) const {
  const AngularGroup& g = angular_groups_[gi];
  const bool same = g.element_a == g.element_b;
  const int K = static_cast<int>(g.keys.size()), N = g.n_components;
  const std::size_t active = ws.r.size();
  const double* fc = ws.fc.data() + static_cast<std::size_t>(g.cutoff_slot) * active;
  double* T = ws.moments.data() + g.moment_offset;
  double* D = T + static_cast<std::size_t>(K) * N * (same ? 1 : 2);
  for (int side = 0; side < (same ? 1 : 2); ++side, T += static_cast<std::size_t>(K) * N) {
    const auto [m0, m1] = range(ws, side ? g.element_b : g.element_a, g.rc);
    const int n = m1 - m0;
    if (same && n < 2) {
      // No pair: G is exactly 0, where Σ_n coef S − diag D would leave rounding.
      std::fill(T, T + static_cast<std::size_t>(K) * N, 0.0);
      std::fill(D, D + K, 0.0);
      break;
    }
    // T = W·Monᵀ, W (K × members) the weights w_q, Mon (N × members) the
    // components r̂^α: first both as rows of vectors (padding members have
    // w = 0; rows padded to 4 keys and 2 components with zeros), then a
    // register-blocked product, 4 keys × 2 components at a time.
    using vdouble = V;
    constexpr int L = kernel::lanes<V>();
    const int nb = (n + L - 1) / L;  // vectors per row
    const int K4 = (K + 3) / 4 * 4, N2 = (N + 1) / 2 * 2;
    vdouble* wrow = vector_scratch<V>(ws.vectors, static_cast<std::size_t>(K4 + N2) * nb);
    vdouble* mrow = wrow + static_cast<std::size_t>(K4) * nb;
    const double* ux = ws.ux.data() + m0;
    const double* uy = ws.uy.data() + m0;
    const double* uz = ws.uz.data() + m0;
    const double* fcm = fc + m0;
    for (int q = K; q < K4; ++q)
      for (int i = 0; i < nb; ++i) wrow[static_cast<std::size_t>(q) * nb + i] = vdouble{};
    for (int i = 0; i < nb; ++i) {
      const int b = i * L;
      const vdouble u[3] = {kernel::load_block<V>(ux, b, n, 0.0), kernel::load_block<V>(uy, b, n, 0.0),
                            kernel::load_block<V>(uz, b, n, 0.0)};
      const vdouble f = kernel::load_block<V>(fcm, b, n, 0.0);
      for (int q = 0; q < K; ++q) {
        const double* ex = ws.radial_exp.data() + static_cast<std::size_t>(g.keys[q].exp_slot) * active + m0;
        wrow[static_cast<std::size_t>(q) * nb + i] = kernel::load_block<V>(ex, b, n, 0.0) * f;
      }
      vdouble* m = mrow + i;  // component a at m[a * nb]
      m[0] = kernel::broadcast<V>(1.0);
      for (int a = 1; a < N; ++a)
        m[static_cast<std::size_t>(a) * nb] = m[static_cast<std::size_t>(monomials_[a].parent) * nb] * u[monomials_[a].axis];
      if (N2 > N) m[static_cast<std::size_t>(N) * nb] = vdouble{};
    }
    for (int q0 = 0; q0 < K4; q0 += 4) {
      const vdouble* w0 = wrow + static_cast<std::size_t>(q0) * nb;
      const vdouble* w1 = w0 + nb;
      const vdouble* w2 = w1 + nb;
      const vdouble* w3 = w2 + nb;
      if (same) {
        vdouble d0{}, d1{}, d2{}, d3{};
        for (int i = 0; i < nb; ++i) {
          d0 += w0[i] * w0[i];
          d1 += w1[i] * w1[i];
          d2 += w2[i] * w2[i];
          d3 += w3[i] * w3[i];
        }
        const double d[4] = {kernel::hsum<V>(d0), kernel::hsum<V>(d1), kernel::hsum<V>(d2), kernel::hsum<V>(d3)};
        for (int k = 0; k < 4 && q0 + k < K; ++k) D[q0 + k] = d[k];
      }
      for (int a0 = 0; a0 < N2; a0 += 2) {
        const vdouble* ma = mrow + static_cast<std::size_t>(a0) * nb;
        const vdouble* mb = ma + nb;
        vdouble s00{}, s01{}, s10{}, s11{}, s20{}, s21{}, s30{}, s31{};
        for (int i = 0; i < nb; ++i) {
          const vdouble x = ma[i], y = mb[i];
          s00 += w0[i] * x;
          s01 += w0[i] * y;
          s10 += w1[i] * x;
          s11 += w1[i] * y;
          s20 += w2[i] * x;
          s21 += w2[i] * y;
          s30 += w3[i] * x;
          s31 += w3[i] * y;
        }
        const vdouble sums[4][2] = {{s00, s01}, {s10, s11}, {s20, s21}, {s30, s31}};
        for (int k = 0; k < 4 && q0 + k < K; ++k)
          for (int c = 0; c < 2 && a0 + c < N; ++c)
            T[static_cast<std::size_t>(q0 + k) * N + a0 + c] = kernel::hsum<V>(sums[k][c]);
      }
    }
  }
}


// Values of a factorised group from its moments: G_qp = Σ_n coef[p][n] S_qn − diag[p] D_q.
NNP_KERNEL
void Descriptor::moment_values(int gi, DescriptorWorkspace& ws) const {
  double* G = ws.g.data();
  const AngularGroup& g = angular_groups_[gi];
  const int P = static_cast<int>(g.powers.size()), K = static_cast<int>(g.keys.size());
  const bool same = g.element_a == g.element_b;
  const int N = g.n_components, Z = g.max_zeta;
  const double* Ta = ws.moments.data() + g.moment_offset;
  const double* Tb = same ? Ta : Ta + static_cast<std::size_t>(K) * N;
  const double* D = Ta + static_cast<std::size_t>(K) * N * (same ? 1 : 2);
  double S[kMaxMomentZeta + 1];
  for (int q = 0; q < K; ++q) {
    std::fill(S, S + Z + 1, 0.0);
    for (int a = 0; a < N; ++a)
      S[monomials_[a].degree] += monomials_[a].multinomial * Ta[q * N + a] * Tb[q * N + a];
    for (int p = 0; p < P; ++p) {
      double v = 0;
      for (int deg = 0; deg <= Z; ++deg) v += g.coef[p * (Z + 1) + deg] * S[deg];
      if (same) v -= g.diag[p] * D[q];
      G[g.offset + q * P + p] += v;
    }
  }
}

namespace {

constexpr int kKeyChunk = 6;  // keys whose weights stay in registers (see moment_keys)

// For the keys [q0, q0 + C) of a factorised group, with w_q and w′_q of one
// vector of members: adds Σ_α ψ′_α r̂^α to chi and α_d ψ_α r̂^(α−e_d) to gu_d,
// where ψ_α = Σ_q Φ_qα w_q and ψ′_α = Σ_q Φ_qα w′_q (phiT: Φ, α-major).
template <class V, int C, class Monomials>
NNP_INLINE void moment_keys(const Monomials& monomials, int N, int K, int q0, const double* phiT, const V* wq,
                            const V* dwq, const V* mon, V& chi, V (&gu)[3]) {
  V w[C], dw[C];
  for (int c = 0; c < C; ++c) {
    w[c] = wq[q0 + c];
    dw[c] = dwq[q0 + c];
  }
  for (int a = 0; a < N; ++a) {
    const double* ph = phiT + static_cast<std::size_t>(a) * K + q0;
    V psi = ph[0] * w[0], ypsi = ph[0] * dw[0];
    for (int c = 1; c < C; ++c) {
      psi += ph[c] * w[c];
      ypsi += ph[c] * dw[c];
    }
    chi += ypsi * mon[a];
    const auto& mo = monomials[a];
    for (int d = 0; d < 3; ++d)
      if (mo.lower[d] >= 0) gu[d] += (mo.power[d] * psi) * mon[mo.lower[d]];
  }
}

}  // namespace

// Force pass of a factorised group. With Φ_qα = ∂E/∂T_qα and δ_q = ∂E/∂D_q,
// for every member m
//   ∂E/∂r_m = [Σ_q w′_qm (Σ_α Φ_qα r̂^α + 2δ_q w_qm)] r̂ + (1 − r̂r̂ᵀ) gu / R,
//   gu_d = Σ_α α_d Ψ_α r̂^(α−e_d),  Ψ_α = Σ_q w_qm Φ_qα,
// with w′ = dw/dR = exp(−η(R−R_s)²)(f_c′ − 2η(R−R_s) f_c).
NNP_KERNEL
void Descriptor::moment_gradient(int gi, DescriptorWorkspace& ws) const {
  if (kernel::wide_vectors()) {
    moment_gradient_v<kernel::V4>(gi, ws);
  } else {
    moment_gradient_v<kernel::V2>(gi, ws);
  }
}

template <class V>
NNP_INLINE void Descriptor::moment_gradient_v(int gi, DescriptorWorkspace& ws) const {
  const AngularGroup& g = angular_groups_[gi];
  const bool same = g.element_a == g.element_b;
  const int K = static_cast<int>(g.keys.size()), N = g.n_components, Z = g.max_zeta;
  const int P = static_cast<int>(g.powers.size());
  const std::size_t active = ws.r.size();
  const double* Ta = ws.moments.data() + g.moment_offset;
  const double* Tb = same ? Ta : Ta + static_cast<std::size_t>(K) * N;
  const double* w = ws.w.data() + g.offset;
  // Members of each side; scratch: γ (K×(Z+1)), δ (K), Φ (N×K).
  std::pair<int, int> sides[2] = {range(ws, g.element_a, g.rc), range(ws, g.element_b, g.rc)};
  if (same && sides[0].second - sides[0].first < 2) return;  // G ≡ 0 (see build_moments)
  double* gamma = grow(ws.scratch, static_cast<std::size_t>(K) * (Z + 2 + N));
  double* delta = gamma + static_cast<std::size_t>(K) * (Z + 1);
  double* phiT = delta + K;
  // γ_qn = Σ_p w_qp coef_pn, δ_q = −Σ_p w_qp diag_p.
  for (int q = 0; q < K; ++q) {
    delta[q] = 0;
    for (int deg = 0; deg <= Z; ++deg) {
      double s = 0;
      for (int p = 0; p < P; ++p) s += w[q * P + p] * g.coef[p * (Z + 1) + deg];
      gamma[q * (Z + 1) + deg] = s;
    }
    for (int p = 0; p < P; ++p) delta[q] -= w[q * P + p] * g.diag[p];
  }
  for (int side = 0; side < (same ? 1 : 2); ++side) {
    const auto [m0, m1] = sides[side];
    const int n = m1 - m0;
    if (!n) continue;
    // Φ for this side: ∂/∂T of Σ coef S, S = Σ mult T^a T^b.
    const double* partner = side ? Ta : Tb;
    for (int q = 0; q < K; ++q)
      for (int a = 0; a < N; ++a)
        phiT[a * K + q] = (same ? 2.0 : 1.0) * gamma[q * (Z + 1) + monomials_[a].degree] *
                          monomials_[a].multinomial * partner[q * N + a];
    // One vector of members at a time, everything in registers but r̂^α,
    // w_q, w′_q:
    //   ψ_α = Σ_q Φ_qα w_q,  ψ′_α = Σ_q Φ_qα w′_q,
    //   χ = Σ_α ψ′_α r̂^α + 2 Σ_q δ_q w_q w′_q,  gu_d = Σ_α α_d ψ_α r̂^(α−e_d).
    using vdouble = V;
    vdouble* mon = vector_scratch<V>(ws.vectors, static_cast<std::size_t>(N) + 2 * K);
    vdouble* wq = mon + N;
    vdouble* dwq = wq + K;
    const double* ux = ws.ux.data() + m0;
    const double* uy = ws.uy.data() + m0;
    const double* uz = ws.uz.data() + m0;
    const double* rm = ws.r.data() + m0;
    const double* fcm = ws.fc.data() + static_cast<std::size_t>(g.cutoff_slot) * active + m0;
    const double* dfcm = ws.dfc.data() + static_cast<std::size_t>(g.cutoff_slot) * active + m0;
    double* gx = ws.grad.data() + m0;
    double* gy = gx + active;
    double* gz = gy + active;
    for (int b = 0; b < n; b += kernel::lanes<V>()) {
      // Padding lanes: f_c = f_c′ = 0 (so w = w′ = 0) and R = 1.
      const vdouble u[3] = {kernel::load_block<V>(ux, b, n, 0.0), kernel::load_block<V>(uy, b, n, 0.0),
                            kernel::load_block<V>(uz, b, n, 0.0)};
      const vdouble r = kernel::load_block<V>(rm, b, n, 1.0);
      const vdouble f = kernel::load_block<V>(fcm, b, n, 0.0);
      const vdouble df = kernel::load_block<V>(dfcm, b, n, 0.0);
      vdouble chi{};
      for (int q = 0; q < K; ++q) {
        const AngularKey& key = g.keys[q];
        const double* ex = ws.radial_exp.data() + static_cast<std::size_t>(key.exp_slot) * active + m0;
        const vdouble e = kernel::load_block<V>(ex, b, n, 0.0);
        wq[q] = e * f;
        dwq[q] = e * (df - (2.0 * key.eta) * (r - key.rs) * f);
        chi += (2.0 * delta[q]) * wq[q] * dwq[q];
      }
      mon[0] = kernel::broadcast<V>(1.0);
      for (int a = 1; a < N; ++a) mon[a] = mon[monomials_[a].parent] * u[monomials_[a].axis];
      // Keys in chunks of up to six, each chunk's weights in registers
      // (χ and gu are linear in ψ, so the chunks' shares add up).
      vdouble gu[3] = {};
      for (int q0 = 0; q0 < K; q0 += kKeyChunk) {
        switch (std::min(kKeyChunk, K - q0)) {
          case 1: moment_keys<V, 1>(monomials_, N, K, q0, phiT, wq, dwq, mon, chi, gu); break;
          case 2: moment_keys<V, 2>(monomials_, N, K, q0, phiT, wq, dwq, mon, chi, gu); break;
          case 3: moment_keys<V, 3>(monomials_, N, K, q0, phiT, wq, dwq, mon, chi, gu); break;
          case 4: moment_keys<V, 4>(monomials_, N, K, q0, phiT, wq, dwq, mon, chi, gu); break;
          case 5: moment_keys<V, 5>(monomials_, N, K, q0, phiT, wq, dwq, mon, chi, gu); break;
          default: moment_keys<V, 6>(monomials_, N, K, q0, phiT, wq, dwq, mon, chi, gu); break;
        }
      }
      const vdouble radial = u[0] * gu[0] + u[1] * gu[1] + u[2] * gu[2];
      const vdouble ir = 1.0 / r;
      const vdouble out[3] = {chi * u[0] + (gu[0] - radial * u[0]) * ir, chi * u[1] + (gu[1] - radial * u[1]) * ir,
                              chi * u[2] + (gu[2] - radial * u[2]) * ir};
      for (int l = 0; l < kernel::lanes<V>() && b + l < n; ++l) {
        gx[b + l] += out[0][l];
        gy[b + l] += out[1][l];
        gz[b + l] += out[2][l];
      }
    }
  }
}

}  // namespace nnp
