#include "data/qwen_vl_prompt.h"

#include <algorithm>

#include "data/tokenizer.h"
#include "util/error.h"

namespace lwq {

std::string qwen_vl_chat_text(const std::string& text, bool with_image) {
  return "<|im_start|>user\n" + std::string(with_image ? "<|vision_start|><|image_pad|><|vision_end|>" : "") + text +
         "<|im_end|>\n<|im_start|>assistant\n";
}

std::vector<int32_t> qwen_vl_token_ids(const Tokenizer& tok, const std::string& chat, int64_t image_tokens,
                                       const QwenVlTokenIds& ids, const std::string& where) {
  const struct {
    const char* token;
    int32_t id;
  } expected[] = {{"<|image_pad|>", ids.image}, {"<|vision_start|>", ids.vision_start}, {"<|vision_end|>", ids.vision_end}};
  for (const auto& e : expected) {
    std::optional<int32_t> id = tok.token_to_id(e.token);
    if (!id || *id != e.id)
      fail("{}: the tokenizer maps {} to {}, but config.json says {}", where, e.token,
           id ? std::to_string(*id) : "nothing", e.id);
  }
  std::vector<int32_t> raw = tok.encode(chat);
  const auto pads = std::count(raw.begin(), raw.end(), ids.image);
  if (pads != (image_tokens > 0 ? 1 : 0))
    fail("{}: the calibration text holds an image-pad token of its own ({} in all); it would be taken for image "
         "patches", where, pads);
  std::vector<int32_t> out;
  out.reserve(raw.size() + static_cast<size_t>(std::max<int64_t>(image_tokens - 1, 0)));
  for (int32_t id : raw) {
    if (id == ids.image) out.insert(out.end(), static_cast<size_t>(image_tokens), ids.image);
    else out.push_back(id);
  }
  return out;
}

std::vector<int32_t> qwen_vl_rope_positions(const std::vector<int32_t>& ids, const QwenVlTokenIds& tokens,
                                            int64_t grid_t, int64_t grid_h, int64_t grid_w, int64_t merge) {
  const auto S = static_cast<int64_t>(ids.size());
  std::vector<int32_t> pos(static_cast<size_t>(3 * S));
  auto set = [&](int64_t i, int64_t t, int64_t h, int64_t w) {
    pos[static_cast<size_t>(i)] = static_cast<int32_t>(t);
    pos[static_cast<size_t>(S + i)] = static_cast<int32_t>(h);
    pos[static_cast<size_t>(2 * S + i)] = static_cast<int32_t>(w);
  };
  int64_t next = 0;  // the position the next text token takes
  for (int64_t i = 0; i < S;) {
    const bool image = ids[static_cast<size_t>(i)] == tokens.image && i > 0 &&
                       ids[static_cast<size_t>(i - 1)] == tokens.vision_start;
    if (!image) {
      set(i, next, next, next);
      ++next, ++i;
      continue;
    }
    const int64_t h = grid_h / merge, w = grid_w / merge, n = grid_t * h * w;
    if (i + n > S) fail("image of {} merged patches does not fit the {} tokens after position {}", n, S - i, i);
    int64_t largest = next;
    for (int64_t k = 0; k < n; ++k) {
      const int64_t tt = k / (h * w), hh = (k / w) % h, ww = k % w;
      set(i + k, next + tt, next + hh, next + ww);
      largest = std::max({largest, next + tt, next + hh, next + ww});
    }
    next = largest + 1;
    i += n;
  }
  return pos;
}

}  // namespace lwq
