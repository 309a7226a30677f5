#pragma once
// Reference attention: the full score row in fp64, an exact softmax, then P·V. Every option of
// attention_options is applied here in the most direct way, so each is tested against this oracle.

#include <cmath>
#include <limits>
#include <vector>

#include "trellis/ops/attention.hpp"
#include "trellis/reference/target.hpp"

namespace trellis {

template <>
struct op_impl<attention_fn, reference> {
  template <class T, class TO>
  static void run(const reference&, tensor_view<const T, 4> q, tensor_view<const T, 4> k, tensor_view<const T, 4> v,
                  tensor_view<TO, 4> o, float scale, const attention_options& opts) {
    constexpr double neg_inf = -std::numeric_limits<double>::infinity();
    const std::size_t batch = q.extent(0), heads = q.extent(1), seq_q = q.extent(2), dim = q.extent(3);
    const std::size_t kv_heads = k.extent(1), seq_kv = k.extent(2);
    std::vector<double> score(seq_kv), out(dim);
    for (std::size_t bi = 0; bi < batch; ++bi)
      for (std::size_t h = 0; h < heads; ++h) {
        const std::size_t hk = h / (heads / kv_heads);  // GQA: consecutive query heads share a kv head
        for (std::size_t i = 0; i < seq_q; ++i) {
          const detail::key_range keys = detail::visible_key_range(i, bi, seq_q, seq_kv, opts);
          const std::size_t mask_row = opts.mask ? detail::mask_row_offset(opts.mask, bi, h, i) : 0;
          double max_score = neg_inf;
          for (std::size_t j = keys.first; j < keys.last; ++j) {
            double dot = 0.0;
            for (std::size_t d = 0; d < dim; ++d) dot += double(float(q(bi, h, i, d))) * double(float(k(bi, hk, j, d)));
            score[j] = double(scale) * dot + (opts.mask ? double(opts.mask.load(mask_row + j * opts.mask.stride(opts.mask.rank() - 1))) : 0.0);
            max_score = std::max(max_score, score[j]);
          }
          const bool none = max_score == neg_inf;  // no key, or every key masked with −inf
          double sum = 0.0;
          if (!none)
            for (std::size_t j = keys.first; j < keys.last; ++j) sum += (score[j] = std::exp(score[j] - max_score));
          for (std::size_t d = 0; d < dim; ++d) {
            double acc = 0.0;
            if (!none)
              for (std::size_t j = keys.first; j < keys.last; ++j)
                if (score[j] != 0.0) acc += score[j] * double(float(v(bi, hk, j, d)));
            out[d] = none ? 0.0 : acc / sum;  // a row that sees no key is 0, not NaN
          }
          for (std::size_t d = 0; d < dim; ++d) o(bi, h, i, d) = TO(float(out[d]));
          if (opts.lse)
            opts.lse.template as<float, 3>()(bi, h, i) = none ? float(neg_inf) : float(max_score + std::log(sum));
        }
      }
  }
};

}  // namespace trellis
