// The chain rule of training over descriptor derivatives that are computed
// again per centre atom instead of read from storage (nnp/training_kernels.h):
// the force pass (Descriptor::accumulate_gradient) forward, the
// Jacobian-vector product (Descriptor::jacobian_vector) backward.
#include <algorithm>
#include <atomic>
#include <exception>
#include <string>
#include <thread>
#include <vector>

#include "nnp/error.h"
#include "nnp/training_kernels.h"

namespace nnp {
namespace {

// Row offsets of pairs grouped by centre: pairs of row c are [off[c], off[c+1]).
std::vector<std::int64_t> row_offsets(const std::int64_t* center, std::int64_t P, std::int64_t R) {
  std::vector<std::int64_t> off(static_cast<std::size_t>(R) + 1, 0);
  for (std::int64_t p = 0; p < P; ++p) {
    if (center[p] < 0 || center[p] >= R)
      throw Error("pair " + std::to_string(p) + " has centre row " + std::to_string(center[p]) + ", outside the " +
                  std::to_string(R) + " descriptor rows");
    if (p > 0 && center[p] < center[p - 1])
      throw Error("pairs must be grouped by centre row (pair " + std::to_string(p) + " goes back)");
    ++off[static_cast<std::size_t>(center[p]) + 1];
  }
  for (std::int64_t c = 0; c < R; ++c) off[c + 1] += off[c];
  return off;
}

// One thread's neighbour buffers (structure of arrays) and descriptor workspace.
struct Rows {
  std::vector<double> dx, dy, dz, out;
  std::vector<int> element;
  DescriptorWorkspace ws;

  NeighborView view(const double* vec, const int* el, std::int64_t n) {
    dx.resize(n), dy.resize(n), dz.resize(n);
    for (std::int64_t m = 0; m < n; ++m) {
      dx[m] = vec[3 * m];
      dy[m] = vec[3 * m + 1];
      dz[m] = vec[3 * m + 2];
    }
    element.assign(el, el + n);
    return {static_cast<int>(n), dx.data(), dy.data(), dz.data(), element.data()};
  }
};

// Runs work(rows, c) for every row c on `threads` threads (blocks of rows
// handed out in turn); the first exception is rethrown here.
template <class Work>
void for_rows(std::int64_t R, int threads, Work work) {
  constexpr std::int64_t kBlock = 8;
  std::atomic<std::int64_t> next{0};
  std::exception_ptr error;
  std::atomic<bool> failed{false};
  auto run = [&](std::exception_ptr* slot) {
    Rows rows;
    try {
      for (std::int64_t c0; !failed && (c0 = next.fetch_add(kBlock)) < R;)
        for (std::int64_t c = c0; c < std::min(R, c0 + kBlock); ++c) work(rows, c);
    } catch (...) {
      *slot = std::current_exception();
      failed = true;
    }
  };
  const int n = static_cast<int>(std::max<std::int64_t>(1, std::min<std::int64_t>(threads, (R + kBlock - 1) / kBlock)));
  std::vector<std::exception_ptr> errors(n);
  std::vector<std::thread> pool;
  for (int t = 1; t < n; ++t) pool.emplace_back(run, &errors[t]);
  run(&errors[0]);
  for (auto& t : pool) t.join();
  for (auto& e : errors)
    if (e && !error) error = e;
  if (error) std::rethrow_exception(error);
}

}  // namespace

void streamed_contract_pairs(const Descriptor& d, const double* g, std::int64_t R, const std::int64_t* center,
                             const double* pair_vector, const int* pair_element, std::int64_t P, double* v,
                             int threads) {
  const std::vector<std::int64_t> off = row_offsets(center, P, R);
  const int M = d.size();
  std::fill(v, v + 3 * P, 0.0);
  for_rows(R, threads, [&](Rows& rows, std::int64_t c) {
    const std::int64_t p0 = off[c], n = off[c + 1] - p0;
    if (n == 0) return;
    const NeighborView nb = rows.view(pair_vector + 3 * p0, pair_element + p0, n);
    d.accumulate_gradient(nb, g + c * M, v + 3 * p0, rows.ws);
  });
}

void streamed_contract_pairs_adjoint(const Descriptor& d, const double* u, const std::int64_t* center,
                                     const double* pair_vector, const int* pair_element, std::int64_t P,
                                     std::int64_t R, double* g_hat, int threads) {
  const std::vector<std::int64_t> off = row_offsets(center, P, R);
  const int M = d.size();
  for_rows(R, threads, [&](Rows& rows, std::int64_t c) {
    const std::int64_t p0 = off[c], n = off[c + 1] - p0;
    const NeighborView nb = rows.view(pair_vector + 3 * p0, pair_element + p0, n);
    d.jacobian_vector(nb, u + 3 * p0, g_hat + c * M, rows.ws);
  });
}

}  // namespace nnp
