// Fuzz target: a Hugging Face config.json (src/models/model_config.h).
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz/fuzz_util.h"
#include "models/model_config.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  lwq::fuzz::quiet();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  lwq::fuzz::expect_lwq_error_only([&] {
    lwq::ModelConfig c = lwq::parse_model_config(text, "config.json");
    // What the forward pass derives from it.
    (void)c.q_dim();
    (void)c.kv_dim();
    (void)c.eos_token_id();
    for (int layer = 0; layer < c.num_hidden_layers && layer < 4096; ++layer) (void)c.sliding_window(layer);
  });
  return 0;
}
