// Perplexity over consecutive windows, the convention of `lwquant ppl` and
// `lwquant eval`: the token stream is cut into windows of `ctx` tokens (the
// last may be shorter) and every token of a window after its first is scored.
#pragma once

#include <cmath>
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

namespace lwq {

struct PerplexityResult {
  double nll_sum = 0.0;
  int64_t scored_tokens = 0;
  double ppl() const { return scored_tokens ? std::exp(nll_sum / scored_tokens) : NAN; }
};

// [start, end) token ranges of the windows.
std::vector<std::pair<size_t, size_t>> perplexity_windows(size_t n_tokens, int ctx);

// −log p(target) from one row of logits, computed stably in double.
double token_nll(std::span<const float> logits_row, int32_t target);

using LogitsFn = std::function<std::vector<float>(std::span<const int32_t>)>;
PerplexityResult perplexity(std::span<const int32_t> tokens, int ctx, const LogitsFn& logits, int64_t vocab);

}  // namespace lwq
