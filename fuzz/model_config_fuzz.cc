// Fuzz target: a model folder's config.json: a Hugging Face LLM
// (src/models/model_config.h), a Wan2.1 DiT in either layout
// (src/models/wan.h) or a Qwen3-VL vision_config (src/models/qwen3_vl_vision.h),
// each parsed as the runner would pick it.
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz/fuzz_util.h"
#include "models/model_config.h"
#include "models/qwen3_vl_vision.h"
#include "models/wan.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  lwq::fuzz::quiet();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  lwq::fuzz::expect_lwq_error_only([&] {
    if (lwq::is_wan_config(text)) {
      lwq::WanConfig w = lwq::parse_wan_config(text, "config.json");
      for (int n = 0; n < w.num_layers && n < 4; ++n) (void)lwq::wan_block_desc(w, n);
      for (const auto& t : lwq::wan_outer_tensors(w)) (void)lwq::wan_checkpoint_name(w, t.name);
      return;
    }
    if (lwq::is_qwen3_vl_config(text)) {
      lwq::Qwen3VlVisionConfig v = lwq::parse_qwen3_vl_vision_config(text, "config.json");
      (void)lwq::qwen3_vl_vision_desc(v);
      return;
    }
    lwq::ModelConfig c = lwq::parse_model_config(text, "config.json");
    // What the forward pass derives from it.
    (void)c.q_dim();
    (void)c.kv_dim();
    (void)c.eos_token_id();
    for (int layer = 0; layer < c.num_hidden_layers && layer < 4096; ++layer) (void)c.sliding_window(layer);
  });
  return 0;
}
