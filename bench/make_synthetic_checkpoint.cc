// Writes a Llama-shaped checkpoint with random bf16 weights, sharded like HF
// (model-0000i-of-0000N.safetensors + model.safetensors.index.json), plus
// config.json and the stories260K tokenizer, for the memory/speed benchmark.
// --wan writes a Wan2.1 DiT in the original layout instead
// (diffusion_pytorch_model-*.safetensors + index, WanModel config.json),
// shaped by lwquant's own Wan descriptor: --hidden is dim, --intermediate
// ffn_dim, --heads num_heads, --layers num_layers.
// --qwen3-vl-moe writes a Qwen3-VL-MoE (Qwen3-VL-235B-A22B's vision tower and
// text shapes by default; --layers text layers, experts fused input-major).
// Tensors are generated and written one at a time, so this needs little RAM.
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <cstdint>
#include <filesystem>
#include <fstream>

#include "io/safetensors_writer.h"
#include "models/qwen3_vl_vision.h"
#include "models/wan.h"
#include "tensor/tensor.h"

namespace fs = std::filesystem;
using namespace lwq;

namespace {

// xorshift64* → uniform in [-scale, scale]; fast enough for tens of GB.
Tensor random_bf16(Shape shape, float scale, uint64_t seed) {
  Tensor t(DType::BF16, std::move(shape));
  uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
  auto* dst = t.data<uint16_t>();
  const int64_t n = t.numel();
  for (int64_t i = 0; i < n; ++i) {
    s ^= s >> 12;
    s ^= s << 25;
    s ^= s >> 27;
    uint64_t r = s * 2685821657736338717ull;
    float u = static_cast<float>(r >> 40) * (1.0f / 16777216.0f);  // [0, 1)
    dst[i] = f32_to_bf16((2.0f * u - 1.0f) * scale);
  }
  return t;
}

ShardedWriterOptions shard_options(const std::string& stem, int64_t shard_mb) {
  ShardedWriterOptions opts;
  opts.stem = stem;
  opts.max_shard_bytes = static_cast<uint64_t>(shard_mb) << 20;
  return opts;
}

Tensor ones_bf16(int64_t n) {
  Tensor t(DType::BF16, {n});
  for (int64_t i = 0; i < n; ++i) t.data<uint16_t>()[i] = f32_to_bf16(1.0f);
  return t;
}

// A Wan2.1 t2v DiT: every tensor the descriptor lists, Linear weights
// random, biases small, norm weights one, modulation small.
int write_wan(const std::string& out, int64_t dim, int64_t ffn, int64_t heads, int64_t layers, int64_t shard_mb) {
  WanConfig c;
  c.dim = dim, c.ffn_dim = ffn, c.num_heads = heads, c.num_layers = layers;
  ShardedSafetensorsWriter writer(out, shard_options("diffusion_pytorch_model", shard_mb));
  uint64_t seed = 1;
  auto add = [&](const std::string& name, const Shape& shape) {
    const bool norm = name.find("norm") != std::string::npos && shape.size() == 1 && name.ends_with(".weight");
    if (norm) return writer.add(name, ones_bf16(shape[0]));
    const bool weight = shape.size() >= 2 && name.find("modulation") == std::string::npos;
    writer.add(name, random_bf16(shape, weight ? 0.04f : 0.01f, seed++));
  };
  for (int64_t n = 0; n < layers; ++n) {
    LayerDesc d = wan_block_desc(c, static_cast<int>(n));
    for (const auto& t : d.tensors) add(d.prefix + "." + t.name, t.shape);
    fmt::print(stderr, "\rblock {}/{}", n + 1, layers);
  }
  for (const auto& t : wan_outer_tensors(c)) add(t.name, t.shape);
  auto map = writer.finish();
  fmt::print(stderr, "\n");
  std::ofstream(fs::path(out) / "config.json") << fmt::format(
      R"({{"_class_name": "WanModel", "_diffusers_version": "0.30.0", "model_type": "t2v", "dim": {}, "ffn_dim": {},
 "num_heads": {}, "num_layers": {}, "in_dim": 16, "out_dim": 16, "text_len": 512, "freq_dim": 256, "eps": 1e-06,
 "patch_size": [1, 2, 2], "window_size": [-1, -1], "qk_norm": true, "cross_attn_norm": true}}
)", dim, ffn, heads, layers);
  fmt::print("wrote {} tensors to {}\n", map.size(), out);
  return 0;
}

// Qwen3-VL-235B-A22B-shaped (multimodal.md A.1): the real vision tower (depth
// 27, 1152 wide, deepstack after blocks 8/16/24, mergers to the text width)
// and MoE text layers with fused input-major experts; the Qwen3 tokenizer.
int write_qwen3_vl_moe(const std::string& out, int64_t hidden, int64_t heads, int64_t kv_heads, int64_t head_dim,
                       int64_t layers, int64_t experts, int64_t top_k, int64_t moe_intermediate, int64_t shard_mb,
                       const std::string& tokenizer_dir) {
  const int64_t vocab = 151936;
  std::ofstream(fs::path(out) / "config.json") << fmt::format(
      R"({{"architectures": ["Qwen3VLMoeForConditionalGeneration"], "model_type": "qwen3_vl_moe", "dtype": "bfloat16",
 "image_token_id": 151655, "video_token_id": 151656, "vision_start_token_id": 151652, "vision_end_token_id": 151653,
 "tie_word_embeddings": false,
 "text_config": {{"model_type": "qwen3_vl_moe_text", "vocab_size": {}, "hidden_size": {}, "intermediate_size": 12288,
  "num_hidden_layers": {}, "num_attention_heads": {}, "num_key_value_heads": {}, "head_dim": {}, "rms_norm_eps": 1e-06,
  "rope_theta": 5000000.0, "max_position_embeddings": 262144, "attention_bias": false, "hidden_act": "silu",
  "rope_scaling": {{"rope_type": "default", "mrope_section": [24, 20, 20], "mrope_interleaved": true}},
  "num_experts": {}, "num_experts_per_tok": {}, "moe_intermediate_size": {}, "decoder_sparse_step": 1,
  "mlp_only_layers": [], "norm_topk_prob": true}},
 "vision_config": {{"model_type": "qwen3_vl_moe", "depth": 27, "hidden_size": 1152, "intermediate_size": 4304,
  "num_heads": 16, "in_channels": 3, "patch_size": 16, "spatial_merge_size": 2, "temporal_patch_size": 2,
  "out_hidden_size": {}, "num_position_embeddings": 2304, "deepstack_visual_indexes": [8, 16, 24],
  "hidden_act": "gelu_pytorch_tanh"}}}}
)", vocab, hidden, layers, heads, kv_heads, head_dim, experts, top_k, moe_intermediate, hidden);
  ShardedSafetensorsWriter writer(out, shard_options("model", shard_mb));
  uint64_t seed = 1;
  const float w_scale = 0.04f;
  auto add = [&](const std::string& name, const Shape& shape) {
    if (shape.size() == 1 && name.find("norm") != std::string::npos && name.ends_with(".weight"))
      return writer.add(name, ones_bf16(shape[0]));
    writer.add(name, random_bf16(shape, shape.size() >= 2 ? w_scale : 0.01f, seed++));
  };
  const LayerDesc vision = qwen3_vl_vision_desc(load_qwen3_vl_vision_config(out));
  for (const auto& t : vision.tensors) add(vision.prefix + "." + t.name, t.shape);
  add("model.language_model.embed_tokens.weight", {vocab, hidden});
  const int64_t I = moe_intermediate;
  for (int64_t k = 0; k < layers; ++k) {
    const std::string p = fmt::format("model.language_model.layers.{}.", k);
    add(p + "self_attn.q_proj.weight", {heads * head_dim, hidden});
    add(p + "self_attn.k_proj.weight", {kv_heads * head_dim, hidden});
    add(p + "self_attn.v_proj.weight", {kv_heads * head_dim, hidden});
    add(p + "self_attn.o_proj.weight", {hidden, heads * head_dim});
    add(p + "self_attn.q_norm.weight", {head_dim});
    add(p + "self_attn.k_norm.weight", {head_dim});
    writer.add(p + "mlp.gate.weight", random_bf16({experts, hidden}, 0.5f, seed++));
    add(p + "mlp.experts.gate_up_proj", {experts, hidden, 2 * I});
    add(p + "mlp.experts.down_proj", {experts, I, hidden});
    add(p + "input_layernorm.weight", {hidden});
    add(p + "post_attention_layernorm.weight", {hidden});
    fmt::print(stderr, "\rlayer {}/{}", k + 1, layers);
  }
  add("model.language_model.norm.weight", {hidden});
  add("lm_head.weight", {vocab, hidden});
  auto map = writer.finish();
  fmt::print(stderr, "\n");
  fs::copy_file(fs::path(tokenizer_dir) / "tokenizer.json", fs::path(out) / "tokenizer.json",
                fs::copy_options::overwrite_existing);
  fmt::print("wrote {} tensors to {}\n", map.size(), out);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Write a random-weight Llama-shaped bf16 checkpoint"};
  std::string out, tokenizer_dir = "examples/stories260K";
  int64_t hidden = 2048, intermediate = 5632, layers = 11, heads = 16, kv_heads = 4, vocab = 512, shard_mb = 256;
  int64_t head_dim_opt = 0, experts = 0, experts_per_tok = 8, moe_intermediate = 1536;
  bool fused = false;
  app.add_option("--out", out, "Output folder")->required();
  app.add_option("--hidden", hidden);
  app.add_option("--intermediate", intermediate);
  app.add_option("--layers", layers);
  app.add_option("--heads", heads);
  app.add_option("--kv-heads", kv_heads);
  app.add_option("--vocab", vocab, "Must match the tokenizer (stories260K: 512)");
  app.add_option("--shard-mb", shard_mb);
  app.add_option("--tokenizer-dir", tokenizer_dir, "Folder whose tokenizer files are copied");
  app.add_option("--head-dim", head_dim_opt, "Default: hidden / heads");
  app.add_option("--experts", experts, "> 0: a qwen3_moe checkpoint with this many routed experts per layer");
  app.add_option("--experts-per-tok", experts_per_tok);
  app.add_option("--moe-intermediate", moe_intermediate);
  app.add_flag("--fused", fused, "Experts as fused 3-D tensors [E, 2I, H] / [E, H, I] (transformers 5 layout)");
  bool wan = false;
  app.add_flag("--wan", wan, "A Wan2.1 DiT (original layout): --hidden = dim, --intermediate = ffn_dim");
  bool vl = false;
  app.add_flag("--qwen3-vl-moe", vl,
               "A Qwen3-VL-MoE (the 235B-A22B vision tower; text --hidden, --heads, --kv-heads, --head-dim, "
               "--experts, --experts-per-tok, --moe-intermediate, --layers; --tokenizer-dir must hold the Qwen3 "
               "tokenizer.json)");
  CLI11_PARSE(app, argc, argv);
  if (vl) {
    fs::create_directories(out);
    return write_qwen3_vl_moe(out, hidden, heads, kv_heads, head_dim_opt > 0 ? head_dim_opt : hidden / heads, layers,
                              experts, experts_per_tok, moe_intermediate, shard_mb, tokenizer_dir);
  }
  if (wan) {
    fs::create_directories(out);
    return write_wan(out, hidden, intermediate, heads, layers, shard_mb);
  }

  fs::create_directories(out);
  const int64_t head_dim = head_dim_opt > 0 ? head_dim_opt : hidden / heads;
  const bool moe = experts > 0;
  ShardedSafetensorsWriter writer(out, shard_options("model", shard_mb));
  uint64_t seed = 1;
  const float w_scale = 0.04f;
  writer.add("model.embed_tokens.weight", random_bf16({vocab, hidden}, 1.0f, seed++));
  for (int64_t k = 0; k < layers; ++k) {
    std::string p = fmt::format("model.layers.{}.", k);
    writer.add(p + "self_attn.q_proj.weight", random_bf16({heads * head_dim, hidden}, w_scale, seed++));
    writer.add(p + "self_attn.k_proj.weight", random_bf16({kv_heads * head_dim, hidden}, w_scale, seed++));
    writer.add(p + "self_attn.v_proj.weight", random_bf16({kv_heads * head_dim, hidden}, w_scale, seed++));
    writer.add(p + "self_attn.o_proj.weight", random_bf16({hidden, heads * head_dim}, w_scale, seed++));
    if (moe) {
      writer.add(p + "self_attn.q_norm.weight", ones_bf16(head_dim));
      writer.add(p + "self_attn.k_norm.weight", ones_bf16(head_dim));
      writer.add(p + "mlp.gate.weight", random_bf16({experts, hidden}, 0.5f, seed++));
      const int64_t I = moe_intermediate;
      if (fused) {
        writer.add(p + "mlp.experts.gate_up_proj", random_bf16({experts, 2 * I, hidden}, w_scale, seed++));
        writer.add(p + "mlp.experts.down_proj", random_bf16({experts, hidden, I}, w_scale, seed++));
      } else {
        for (int64_t e = 0; e < experts; ++e) {
          const std::string q = fmt::format("{}mlp.experts.{}.", p, e);
          writer.add(q + "gate_proj.weight", random_bf16({I, hidden}, w_scale, seed++));
          writer.add(q + "up_proj.weight", random_bf16({I, hidden}, w_scale, seed++));
          writer.add(q + "down_proj.weight", random_bf16({hidden, I}, w_scale, seed++));
        }
      }
    } else {
      writer.add(p + "mlp.gate_proj.weight", random_bf16({intermediate, hidden}, w_scale, seed++));
      writer.add(p + "mlp.up_proj.weight", random_bf16({intermediate, hidden}, w_scale, seed++));
      writer.add(p + "mlp.down_proj.weight", random_bf16({hidden, intermediate}, w_scale, seed++));
    }
    writer.add(p + "input_layernorm.weight", ones_bf16(hidden));
    writer.add(p + "post_attention_layernorm.weight", ones_bf16(hidden));
    fmt::print(stderr, "\rlayer {}/{}", k + 1, layers);
  }
  writer.add("model.norm.weight", ones_bf16(hidden));
  writer.add("lm_head.weight", random_bf16({vocab, hidden}, w_scale, seed++));
  auto map = writer.finish();
  fmt::print(stderr, "\n");

  const std::string moe_keys =
      moe ? fmt::format(R"("num_experts": {}, "num_experts_per_tok": {}, "moe_intermediate_size": {},
 "norm_topk_prob": true, "decoder_sparse_step": 1, "mlp_only_layers": [],)", experts, experts_per_tok, moe_intermediate)
          : "";
  std::ofstream(fs::path(out) / "config.json") << fmt::format(
      R"({{"architectures": ["{}"], "model_type": "{}", {} "hidden_size": {}, "intermediate_size": {},
 "num_hidden_layers": {}, "num_attention_heads": {}, "num_key_value_heads": {}, "head_dim": {},
 "rms_norm_eps": 1e-05, "rope_theta": 10000.0, "rope_scaling": null, "max_position_embeddings": 4096,
 "vocab_size": {}, "tie_word_embeddings": false, "torch_dtype": "bfloat16", "bos_token_id": 1, "eos_token_id": 2,
 "hidden_act": "silu", "attention_bias": false, "mlp_bias": false}}
)", moe ? "Qwen3MoeForCausalLM" : "LlamaForCausalLM", moe ? "qwen3_moe" : "llama", moe_keys, hidden,
      intermediate, layers, heads, kv_heads, head_dim, vocab);
  for (const char* f : {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"})
    fs::copy_file(fs::path(tokenizer_dir) / f, fs::path(out) / f, fs::copy_options::overwrite_existing);
  fmt::print("wrote {} tensors to {}\n", map.size(), out);
  return 0;
}
