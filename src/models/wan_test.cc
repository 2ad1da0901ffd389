// The Wan2.1 descriptor against diffusers: tests/data/wan/*.json record, for a
// tiny t2v and i2v DiT, every parameter's original Wan name, the name
// diffusers' own convert_wan_transformer_to_diffusers gives it, and its shape
// in diffusers' WanTransformer3DModel (tools/make_wan_names.py).
#include "models/wan.h"

#include "io/checkpoint.h"
#include "models/models_test_util.h"
#include "models/wan_block.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <map>

#include "util/error.h"
#include "util/file_util.h"

namespace lwq {
namespace {

nlohmann::json load_case(const std::string& name) {
  return nlohmann::json::parse(read_text_file(std::filesystem::path(LWQ_SOURCE_DIR) / "tests/data/wan" / (name + ".json")));
}

class WanNames : public ::testing::TestWithParam<std::string> {};

TEST_P(WanNames, DescriptorMatchesDiffusers) {
  const nlohmann::json c = load_case(GetParam());
  WanConfig orig = parse_wan_config(c["config_original"].dump(), "config.json");
  WanConfig diff = parse_wan_config(c["config_diffusers"].dump(), "config.json");
  orig.text_dim = c["text_dim"];  // not in the original config.json (a constructor default)
  EXPECT_EQ(orig.layout, WanLayout::Original);
  EXPECT_EQ(diff.layout, WanLayout::Diffusers);
  for (const WanConfig* w : {&orig, &diff}) {
    EXPECT_EQ(w->dim, 48);
    EXPECT_EQ(w->ffn_dim, 96);
    EXPECT_EQ(w->num_heads, 2);
    EXPECT_EQ(w->num_layers, 2);
    EXPECT_EQ(w->model_type, GetParam() == "wan_tiny_i2v" ? "i2v" : "t2v");
  }
  std::map<std::string, Shape> mine;
  for (const auto& t : wan_outer_tensors(orig)) mine[t.name] = t.shape;
  for (int n = 0; n < orig.num_layers; ++n) {
    LayerDesc d = wan_block_desc(orig, n);
    for (const auto& t : d.tensors) mine[d.prefix + "." + t.name] = t.shape;
  }
  std::map<std::string, Shape> theirs;
  for (const auto& p : c["tensors"]) {
    theirs[p[0].get<std::string>()] = p[2].get<Shape>();
    EXPECT_EQ(wan_checkpoint_name(diff, p[0]), p[1].get<std::string>()) << p[0];
    EXPECT_EQ(wan_checkpoint_name(orig, p[0]), p[0].get<std::string>());
  }
  EXPECT_EQ(mine, theirs);
}

INSTANTIATE_TEST_SUITE_P(Cases, WanNames, ::testing::Values("wan_tiny_t2v", "wan_tiny_i2v"),
                         [](const auto& info) { return info.param; });

TEST(WanConfig, BlockLinearsInVisitOrder) {
  WanConfig c = parse_wan_config(R"({"_class_name": "WanModel", "model_type": "t2v", "dim": 1536, "ffn_dim": 8960,
                                      "num_heads": 12, "num_layers": 30})", "config.json");
  LayerDesc d = wan_block_desc(c, 29);
  EXPECT_EQ(d.prefix, "blocks.29");
  std::vector<std::string> names;
  for (const auto& l : d.linears) names.push_back(l.name);
  EXPECT_EQ(names, (std::vector<std::string>{"self_attn.q", "self_attn.k", "self_attn.v", "self_attn.o",
                                             "cross_attn.q", "cross_attn.k", "cross_attn.v", "cross_attn.o", "ffn.0",
                                             "ffn.2"}));
  EXPECT_EQ(d.tensors.front().name, "modulation");
  EXPECT_EQ(d.linears.back().in_features, 8960);
  EXPECT_EQ(c.head_dim(), 128);
}

TEST(WanConfig, BadConfigsAreNamed) {
  auto error = [](const std::string& json) {
    try {
      parse_wan_config(json, "dir/config.json");
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(error(R"({"_class_name": "WanModel", "dim": 48, "num_heads": 2, "num_layers": 2})").find("'ffn_dim'"),
            std::string::npos);
  EXPECT_NE(error(R"({"_class_name": "WanModel", "dim": 48, "ffn_dim": 8, "num_heads": 5, "num_layers": 2})")
                .find("num_heads 5"),
            std::string::npos);
  EXPECT_NE(error(R"({"_class_name": "WanModel", "model_type": "vace", "dim": 48, "ffn_dim": 8, "num_heads": 2,
                      "num_layers": 2})").find("vace"),
            std::string::npos);
  EXPECT_NE(error(R"({"_class_name": "Flux", "dim": 4})").find("not a Wan2.1 config"), std::string::npos);
  EXPECT_FALSE(is_wan_config(R"({"model_type": "llama"})"));
  EXPECT_TRUE(is_wan_config(R"({"_class_name": "WanTransformer3DModel"})"));
  EXPECT_FALSE(is_wan_config("not json"));
}

// A golden's block-0 inputs (tools/make_wan_goldens.py), owning their data.
struct GoldenInputs {
  std::vector<float> x, e0, context;
  WanBlockInputs in;
  explicit GoldenInputs(const Checkpoint& ref, int64_t dim) {
    x = to_f32(ref.read("block0_in")), e0 = to_f32(ref.read("temb")), context = to_f32(ref.read("context"));
    Tensor grid = ref.read("grid");
    in.e0 = e0.data();
    in.context = context.data();
    in.context_len = static_cast<int64_t>(context.size()) / dim;
    in.frames = grid.data<int64_t>()[0], in.height = grid.data<int64_t>()[1], in.width = grid.data<int64_t>()[2];
    in.valid_tokens = static_cast<int64_t>(x.size()) / dim;
    if (ref.contains("seq_len")) in.valid_tokens = ref.read("seq_len").data<int64_t>()[0];  // padded rows follow
  }
};

// Blocks 0 and 1 of a tiny diffusers WanTransformer3DModel against diffusers'
// own outputs, read through the diffusers name map; max relative error over
// the two blocks.
double block_chain_error(const std::string& golden, const std::string& weights, int64_t ffn_rows = 4096) {
  const auto dir = test::golden_dir(golden);
  WanConfig cfg = load_wan_config(dir);
  Checkpoint ckpt = Checkpoint::open(dir / weights);
  Checkpoint ref = Checkpoint::open(dir / "reference.safetensors");
  GoldenInputs g(ref, cfg.dim);
  g.in.ffn_rows = ffn_rows;
  const int64_t rows = static_cast<int64_t>(g.x.size()) / cfg.dim;
  double worst = 0.0;
  for (int n = 0; n < 2; ++n) {
    wan_block_forward(cfg, load_wan_block(ckpt, cfg, n), g.x.data(), rows, g.in);
    worst = std::max(worst, test::max_rel_err(g.x, to_f32(ref.read("block" + std::to_string(n) + "_out"))));
  }
  return worst;
}

TEST(WanBlock, MatchesDiffusers) {
  EXPECT_LT(block_chain_error("wan_tiny", "diffusion_pytorch_model.safetensors"), 1e-5);
  // The FFN in row blocks (5 rows, the last block short) computes the same.
  EXPECT_LT(block_chain_error("wan_tiny", "diffusion_pytorch_model.safetensors", 5), 1e-5);
  // The rotary embedding matters: without it block 0 is far off.
  const auto dir = test::golden_dir("wan_tiny");
  WanConfig cfg = load_wan_config(dir);
  Checkpoint ckpt = Checkpoint::open(dir / "diffusion_pytorch_model.safetensors");
  Checkpoint ref = Checkpoint::open(dir / "reference.safetensors");
  GoldenInputs g(ref, cfg.dim);
  g.in.frames = 1, g.in.height = 1, g.in.width = 1;  // only token 0 "rotated" (by angle 0)
  wan_block_forward(cfg, load_wan_block(ckpt, cfg, 0), g.x.data(), g.in.valid_tokens, g.in);
  EXPECT_GT(test::max_rel_err(g.x, to_f32(ref.read("block0_out"))), 1e-3);
}

// The same blocks against the original Wan2.1 code (wan/modules/model.py,
// tools/make_wan_original_goldens.py): original names and config.json, 18
// patch tokens padded to seq_len 20 (padding rows computed, masked as keys).
TEST(WanBlock, MatchesOriginalWanCode) {
  const auto dir = test::golden_dir("wan_tiny_original");
  EXPECT_EQ(load_wan_config(dir).layout, WanLayout::Original);
  EXPECT_LT(block_chain_error("wan_tiny_original", "diffusion_pytorch_model.safetensors"), 1e-5);
  // The key mask matters: attending to the padding rows is far off.
  Checkpoint ref = Checkpoint::open(dir / "reference.safetensors");
  WanConfig cfg = load_wan_config(dir);
  GoldenInputs g(ref, cfg.dim);
  ASSERT_EQ(g.in.valid_tokens, 18);
  g.in.valid_tokens = 20;
  Checkpoint ckpt = Checkpoint::open(dir / "diffusion_pytorch_model.safetensors");
  wan_block_forward(cfg, load_wan_block(ckpt, cfg, 0), g.x.data(), 20, g.in);
  EXPECT_GT(test::max_rel_err(g.x, to_f32(ref.read("block0_out"))), 1e-3);
}

// Image-to-video blocks: a 257-token image context before the 512 text tokens,
// attended with k_img / v_img (norm_k_img) and added before the output projection.
TEST(WanBlock, ImageToVideoMatchesDiffusers) {
  EXPECT_LT(block_chain_error("wan_tiny_i2v", "blocks.safetensors"), 1e-5);
  // A context without its image tokens is refused, naming what is expected.
  const auto dir = test::golden_dir("wan_tiny_i2v");
  WanConfig cfg = load_wan_config(dir);
  EXPECT_EQ(cfg.model_type, "i2v");
  Checkpoint ckpt = Checkpoint::open(dir / "blocks.safetensors");
  std::vector<float> x(static_cast<size_t>(4 * cfg.dim), 0.1f), e0(static_cast<size_t>(6 * cfg.dim), 0.0f),
      ctx(static_cast<size_t>(512 * cfg.dim), 0.1f);
  WanBlockInputs in;
  in.e0 = e0.data(), in.context = ctx.data(), in.context_len = 512;
  in.frames = 1, in.height = 2, in.width = 2, in.valid_tokens = 4;
  try {
    wan_block_forward(cfg, load_wan_block(ckpt, cfg, 0), x.data(), 4, in);
    ADD_FAILURE() << "a text-only context was accepted by an i2v block";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("text_len = 512"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace lwq
