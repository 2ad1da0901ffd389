// One Qwen3-VL calibration sample as msModelSlim's qwen3_vl_moe adapter
// builds it (multimodal.md A.3.3, A.2.3): the user turn of the chat template
// with add_generation_prompt, `<|image_pad|>` expanded to one token per
// merged patch, and the (t, h, w) position ids of HF get_rope_index.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace lwq {

class Tokenizer;

// The ids config.json gives the vision tokens.
struct QwenVlTokenIds {
  int32_t image = 151655, vision_start = 151652, vision_end = 151653;
};

// "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>TEXT<|im_end|>\n<|im_start|>assistant\n"
// (no system block: Qwen3-VL's template has no default system prompt); the
// vision tokens are left out when `with_image` is false.
std::string qwen_vl_chat_text(const std::string& text, bool with_image);

// Tokenizes `chat` and expands its single image-pad token to `image_tokens`
// copies (zero: no image, and none may appear). Throws naming `where` when
// the tokenizer does not map the vision tokens to the config's ids or the
// text holds another image-pad token.
std::vector<int32_t> qwen_vl_token_ids(const Tokenizer& tok, const std::string& chat, int64_t image_tokens,
                                       const QwenVlTokenIds& ids, const std::string& where);

// HF get_rope_index for one sequence without padding and at most one image
// of grid (t, h, w) in patches, merged by `merge` × `merge`: [3, S] (t, h, w)
// positions. Text runs count on from the largest position so far; the
// image's tokens (the image-pad run after a vision-start token) get
// (t, h/merge, w/merge) indices offset by the position where it starts.
std::vector<int32_t> qwen_vl_rope_positions(const std::vector<int32_t>& ids, const QwenVlTokenIds& tokens,
                                            int64_t grid_t, int64_t grid_h, int64_t grid_w, int64_t merge);

}  // namespace lwq
