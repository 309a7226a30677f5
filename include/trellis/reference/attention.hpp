#pragma once
// Reference attention: the full score row in fp64, an exact softmax, then P·V.

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
    const std::size_t batch = q.extent(0), heads = q.extent(1), seq_q = q.extent(2), dim = q.extent(3);
    const std::size_t kv_heads = k.extent(1), seq_kv = k.extent(2);
    std::vector<double> score(seq_kv), out(dim);
    for (std::size_t bi = 0; bi < batch; ++bi)
      for (std::size_t h = 0; h < heads; ++h) {
        const std::size_t hk = h / (heads / kv_heads);  // GQA: consecutive query heads share a kv head
        for (std::size_t i = 0; i < seq_q; ++i) {
          const std::size_t visible = opts.causal ? detail::causal_visible_keys(i, seq_q, seq_kv) : seq_kv;
          double max_score = -std::numeric_limits<double>::infinity();
          for (std::size_t j = 0; j < visible; ++j) {
            double dot = 0.0;
            for (std::size_t d = 0; d < dim; ++d) dot += double(float(q(bi, h, i, d))) * double(float(k(bi, hk, j, d)));
            score[j] = double(scale) * dot;
            max_score = std::max(max_score, score[j]);
          }
          double sum = 0.0;
          for (std::size_t j = 0; j < visible; ++j) sum += (score[j] = std::exp(score[j] - max_score));
          for (std::size_t d = 0; d < dim; ++d) {
            double acc = 0.0;
            for (std::size_t j = 0; j < visible; ++j) acc += score[j] * double(float(v(bi, hk, j, d)));
            out[d] = visible ? acc / sum : 0.0;  // a row that sees no key is 0, not NaN
          }
          for (std::size_t d = 0; d < dim; ++d) o(bi, h, i, d) = TO(float(out[d]));
        }
      }
  }
};

}  // namespace trellis
