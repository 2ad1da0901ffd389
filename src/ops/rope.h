// Rotary position embeddings as HF transformers computes them
// (modeling_rope_utils + apply_rotary_pos_emb): dimension i of a head is
// paired with i + d/2 ("rotate_half" layout, not interleaved).
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

namespace lwq {

enum class RopeType { Default, Linear, Dynamic, Llama3, Yarn };

std::string_view rope_type_name(RopeType t);

struct RopeParams {
  RopeType type = RopeType::Default;
  double theta = 10000.0;
  double factor = 1.0;
  // llama3
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  // llama3 (required), yarn (defaults to max_position_embeddings)
  std::optional<int64_t> original_max_position_embeddings;
  // yarn
  double beta_fast = 32.0;
  double beta_slow = 1.0;
  std::optional<double> attention_factor;
  std::optional<double> mscale;
  std::optional<double> mscale_all_dim;
  bool truncate = true;
  // The model's max_position_embeddings (dynamic NTK, yarn default).
  int64_t max_position_embeddings = 0;
  // Qwen3-VL's multimodal rope (rope_scaling.mrope_section, [t, h, w] pairs
  // summing to head_dim / 2); empty: plain rope.
  std::vector<int64_t> mrope_section;
};

struct RopeFrequencies {
  std::vector<float> inv_freq;  // [rotary_dim / 2]
  float attention_scale = 1.0f; // multiplies cos and sin (yarn)
};

// `seq_len` = largest position + 1 of the forward; only dynamic NTK uses it.
RopeFrequencies rope_frequencies(const RopeParams& p, int64_t rotary_dim, int64_t seq_len);

// cos/sin of position·inv_freq for each row, [rows, half].
struct RopeTable {
  int64_t rows = 0, half = 0;
  std::vector<float> cos, sin;
};
RopeTable rope_table(const RopeFrequencies& f, const int32_t* positions, int64_t rows);

// Qwen3-VL's interleaved multimodal rope (HF apply_interleaved_mrope,
// multimodal.md A.2.3): frequency j takes its angle from the h positions when
// j ≡ 1 (mod 3) and j < 3·section[1], from the w positions when j ≡ 2 (mod 3)
// and j < 3·section[2], else from the t positions. `positions` is [3, rows]
// (t, h, w). Equal axes give rope_table's plain rope.
RopeTable mrope_table(const RopeFrequencies& f, const std::vector<int64_t>& section, const int32_t* positions,
                      int64_t rows);

// Rotates every head of x [rows, row_stride] (heads of head_dim = 2·half
// values side by side from the row start) in place.
void apply_rope(float* x, int64_t rows, int64_t row_stride, int64_t n_heads, int64_t head_dim, const RopeTable& t);

}  // namespace lwq
