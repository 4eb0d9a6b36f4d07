// The latency percentiles of UsageGroup (storage/store.h), for the backends
// whose database has no percentile function of its own (SQLite, MongoDB).
// Nearest rank, exactly PostgreSQL's percentile_disc: the p-th percentile of
// n values is the k-th smallest with k = ceil(p * n / 100), at least 1.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>

namespace llmproxy::storage {

// 1-based rank of the p-th percentile (0 < p <= 100) among n > 0 values, in
// integers so that no rounding can move it: ceil(p * n / 100).
constexpr std::size_t nearest_rank(std::size_t n, unsigned p) {
  std::size_t k = (n * p + 99) / 100;
  return k == 0 ? 1 : k;
}

// The p-th percentile of `values`, which it reorders; 0 when there are none.
// NaN sorts after every number, as in PostgreSQL (and keeps the order strict
// weak, which nth_element needs).
inline double percentile_nearest_rank(std::vector<double>& values, unsigned p) {
  if (values.empty()) return 0;
  auto at = values.begin() + static_cast<std::ptrdiff_t>(nearest_rank(values.size(), p) - 1);
  std::nth_element(values.begin(), at, values.end(),
                   [](double a, double b) { return a < b || (!std::isnan(a) && std::isnan(b)); });
  return *at;
}

}  // namespace llmproxy::storage
