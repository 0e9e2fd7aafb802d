// Radial (G2) kernels: values and the force pass. Conventions in nnp/descriptor.h.
#include "nnp/descriptor.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "descriptor_internal.h"
#include "kernel_math.h"

namespace nnp {

using namespace detail;

NNP_KERNEL
void Descriptor::radial_values(DescriptorWorkspace& ws) const {
  double* G = ws.g.data();
  const std::size_t active = ws.r.size();
  for (const RadialGroup& g : radial_groups_) {
    const auto [m0, m1] = range(ws, g.element, g.rc);
    const double* __restrict fc = ws.fc.data() + static_cast<std::size_t>(g.cutoff_slot) * active;
    for (const RadialTerm& t : g.terms) {
      const double* __restrict e = ws.radial_exp.data() + static_cast<std::size_t>(t.exp_slot) * active;
      double s = 0;
#pragma omp simd reduction(+ : s)
      for (int m = m0; m < m1; ++m) s += e[m] * fc[m];
      G[t.internal] += s;
    }
  }
}

// Radial: dE/dr_m += Σ_t w_t ∂G_t/∂R r̂.
NNP_KERNEL
void Descriptor::radial_gradient(DescriptorWorkspace& ws) const {
  const std::size_t active = ws.r.size();
  double* gx = ws.grad.data();
  double* gy = gx + active;
  double* gz = gy + active;
  for (const RadialGroup& g : radial_groups_) {
    const auto [m0, m1] = range(ws, g.element, g.rc);
    const double* __restrict fc = ws.fc.data() + static_cast<std::size_t>(g.cutoff_slot) * active;
    const double* __restrict dfc = ws.dfc.data() + static_cast<std::size_t>(g.cutoff_slot) * active;
    const double* __restrict r = ws.r.data();
    double* __restrict s = grow(ws.scratch, active);
    for (int m = m0; m < m1; ++m) s[m] = 0.0;
    for (const RadialTerm& t : g.terms) {
      const double wt = ws.w[t.internal], two_eta = 2.0 * t.eta, rs = t.rs;
      if (wt == 0.0) continue;
      const double* __restrict e = ws.radial_exp.data() + static_cast<std::size_t>(t.exp_slot) * active;
      for (int m = m0; m < m1; ++m) s[m] += wt * e[m] * (dfc[m] - two_eta * (r[m] - rs) * fc[m]);
    }
    for (int m = m0; m < m1; ++m) {
      gx[m] += s[m] * ws.ux[m];
      gy[m] += s[m] * ws.uy[m];
      gz[m] += s[m] * ws.uz[m];
    }
  }
}

}  // namespace nnp
