#include "models/perplexity.h"

#include <algorithm>

#include "util/error.h"

namespace lwq {

std::vector<std::pair<size_t, size_t>> perplexity_windows(size_t n_tokens, int ctx) {
  if (ctx < 2) fail("context length must be at least 2, got {}", ctx);
  std::vector<std::pair<size_t, size_t>> windows;
  for (size_t start = 0; start + 1 < n_tokens; start += static_cast<size_t>(ctx))
    windows.emplace_back(start, std::min(n_tokens, start + static_cast<size_t>(ctx)));
  return windows;
}

double token_nll(std::span<const float> row, int32_t target) {
  double max = *std::max_element(row.begin(), row.end());
  double sum = 0.0;
  for (float v : row) sum += std::exp(static_cast<double>(v) - max);
  return std::log(sum) + max - static_cast<double>(row[static_cast<size_t>(target)]);
}

PerplexityResult perplexity(std::span<const int32_t> tokens, int ctx, const LogitsFn& logits, int64_t vocab) {
  PerplexityResult result;
  auto windows = perplexity_windows(tokens.size(), ctx);
  if (windows.empty()) fail("the text has fewer than 2 tokens: nothing to score");
  for (auto [start, end] : windows) {
    auto window = tokens.subspan(start, end - start);
    std::vector<float> out = logits(window);
    for (size_t t = 0; t + 1 < window.size(); ++t) {
      std::span<const float> row(out.data() + t * static_cast<size_t>(vocab), static_cast<size_t>(vocab));
      result.nll_sum += token_nll(row, window[t + 1]);
      result.scored_tokens += 1;
    }
  }
  return result;
}

}  // namespace lwq
