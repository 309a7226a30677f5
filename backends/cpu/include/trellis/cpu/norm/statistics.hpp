#pragma once
// A norm row's statistics: the mean and variance (layernorm) or the mean square (rmsnorm) of one contiguous
// fp32 row s. One pass computes Σd and Σd² of d = s − shift, with the shift the mean of the row's first
// vector, so the mean of a row like 1e4 + noise keeps the noise's precision. When the row's mean lies more
// than one standard deviation from the shift (var_d < mean_d², where E[d²] − E[d]² would lose more than one
// bit to cancellation) the row takes two passes instead: the mean, then Σ(d − mean_d)². The loads are not
// aligned on purpose: the order of summation, and so a row's last bits, must not depend on its address.

#include <algorithm>
#include <cstddef>
#include <utility>

#include "trellis/core/config.hpp"

namespace trellis {
TRELLIS_BEGIN_ISA_NAMESPACE
namespace cpu_detail {

enum class norm_kind { layer, rms };

/// Σ ((s_j − shift) − centre)^Power over a row (Power 1 or 2), four vector chains to hide the add latency.
template <class S, int Power>
float centred_sum(const float* s, std::size_t n, float shift, float centre) {
  using vec = typename S::vec;
  constexpr std::size_t L = S::lanes;
  const vec vshift = S::set(shift), vcentre = S::set(centre);
  const auto term = [&](vec x) {
    const vec d = S::sub(S::sub(x, vshift), vcentre);
    return Power == 2 ? S::mul(d, d) : d;
  };
  vec acc0 = S::zero(), acc1 = S::zero(), acc2 = S::zero(), acc3 = S::zero();
  std::size_t j = 0;
  for (; j + 4 * L <= n; j += 4 * L) {
    acc0 = S::add(acc0, term(S::load(s + j)));
    acc1 = S::add(acc1, term(S::load(s + j + L)));
    acc2 = S::add(acc2, term(S::load(s + j + 2 * L)));
    acc3 = S::add(acc3, term(S::load(s + j + 3 * L)));
  }
  for (; j + L <= n; j += L) acc0 = S::add(acc0, term(S::load(s + j)));
  float total = S::reduce_add(S::add(S::add(acc0, acc1), S::add(acc2, acc3)));
  for (; j < n; ++j) {
    const float d = (s[j] - shift) - centre;
    total += Power == 2 ? d * d : d;
  }
  return total;
}

/// Σd and Σd² of d = s_j − shift in one pass (four chains each).
template <class S>
std::pair<float, float> shifted_moments(const float* s, std::size_t n, float shift) {
  using vec = typename S::vec;
  constexpr std::size_t L = S::lanes;
  const vec vshift = S::set(shift);
  vec sum[4] = {S::zero(), S::zero(), S::zero(), S::zero()}, sq[4] = {S::zero(), S::zero(), S::zero(), S::zero()};
  std::size_t j = 0;
  for (; j + 4 * L <= n; j += 4 * L)
    for (std::size_t c = 0; c < 4; ++c) {
      const vec d = S::sub(S::load(s + j + c * L), vshift);
      sum[c] = S::add(sum[c], d);
      sq[c] = S::fma(d, d, sq[c]);
    }
  for (; j + L <= n; j += L) {
    const vec d = S::sub(S::load(s + j), vshift);
    sum[0] = S::add(sum[0], d);
    sq[0] = S::fma(d, d, sq[0]);
  }
  float total = S::reduce_add(S::add(S::add(sum[0], sum[1]), S::add(sum[2], sum[3])));
  float total_sq = S::reduce_add(S::add(S::add(sq[0], sq[1]), S::add(sq[2], sq[3])));
  for (; j < n; ++j) {
    const float d = s[j] - shift;
    total += d;
    total_sq += d * d;
  }
  return {total, total_sq};
}

/// A row's mean = shift + centre and its variance (layernorm), or its mean square (rmsnorm: shift =
/// centre = 0). See the header comment for the one-pass statistics and when a row takes two passes.
struct row_statistics {
  float shift = 0, centre = 0, var = 0;
};

template <class S>
row_statistics statistics_of(norm_kind kind, const float* s, std::size_t n) {
  row_statistics st;
  if (kind == norm_kind::rms) {
    st.var = centred_sum<S, 2>(s, n, 0.0f, 0.0f) / float(n);
    return st;
  }
  const std::size_t head = std::min(n, S::lanes);
  st.shift = S::reduce_add(head == S::lanes ? S::load(s) : S::load_n(s, head)) / float(head);
  const auto [sum, sum_sq] = shifted_moments<S>(s, n, st.shift);
  st.centre = sum / float(n);
  st.var = sum_sq / float(n) - st.centre * st.centre;
  if (!(st.var >= st.centre * st.centre)) {  // cancellation (or NaN): the exact two-pass form
    st.centre = centred_sum<S, 1>(s, n, st.shift, 0.0f) / float(n);
    st.var = centred_sum<S, 2>(s, n, st.shift, st.centre) / float(n);
  }
  return st;
}

}  // namespace cpu_detail
TRELLIS_END_ISA_NAMESPACE
}  // namespace trellis
