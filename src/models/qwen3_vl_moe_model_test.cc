// Qwen3-VL-MoE through the runner's interface against HF transformers on the
// tiny random model (tests/data/goldens/qwen3_vl_moe_tiny/text_reference,
// tools/make_qwen3_vl_goldens.py): calibration samples built from image +
// default text (chat template, image-pad expansion, mRoPE positions), the
// vision tower as unit 0 writing image embeddings and deepstack rows, the
// MoE text layers with fused input-major experts streamed, and the logits.
#include "models/qwen3_vl_moe_model.h"

#include <gtest/gtest.h>

#include <fstream>

#include "data/qwen_vl_prompt.h"
#include "data/tokenizer.h"
#include "data/vlm_dataset.h"
#include "io/checkpoint.h"
#include "models/causal_lm.h"
#include "models/experts.h"
#include "models/models_test_util.h"
#include "models/quarot.h"
#include "util/error.h"

namespace lwq {
namespace {

const std::filesystem::path kDir = test::golden_dir("qwen3_vl_moe_tiny");

std::vector<int32_t> ids_of(const Checkpoint& ref, const std::string& name) {
  const Tensor t = ref.read(name);
  std::vector<int32_t> out;
  for (int64_t i = 0; i < t.numel(); ++i) out.push_back(static_cast<int32_t>(t.data<int64_t>()[i]));
  return out;
}

std::vector<float> rows_of(const std::vector<float>& hidden, int64_t rows, int64_t width) {
  return {hidden.begin(), hidden.begin() + rows * width};
}

using test::error_of;

// An index of the two golden images with no text (each takes the default text).
std::filesystem::path write_index(const std::filesystem::path& dir) {
  const std::filesystem::path index = dir / "index.jsonl";
  std::ofstream(index) << "{\"image\": \"" << (kDir / "images/smooth.jpg").string() << "\"}\n"
                       << "{\"image\": \"" << (kDir / "images/noise_rgba.png").string() << "\", \"text\": \"\"}\n";
  return index;
}

TEST(Qwen3VlMoe, UnitsMatchTransformersOnImageAndText) {
  test::ScratchDir tmp;
  const Checkpoint ckpt = Checkpoint::open(kDir / "model.safetensors");
  const Checkpoint ref = Checkpoint::open(kDir / "text_reference.safetensors");
  std::unique_ptr<UnitModel> model = open_unit_model(kDir, ckpt);
  ASSERT_EQ(model->model_type(), "qwen3_vl_moe");
  ASSERT_EQ(model->num_units(), 4);
  EXPECT_EQ(model->unit(0).prefix, "model.visual");
  EXPECT_EQ(model->unit(1).prefix, "model.language_model.layers.0");
  EXPECT_EQ(model->router(1), "mlp.gate");
  EXPECT_EQ(model->router(0), "");
  CalibrationSource source{write_index(tmp.path), kDir, 0};
  std::vector<UnitInput> samples = model->calibration_inputs(source);
  ASSERT_EQ(samples.size(), 2u);
  const int64_t H = model->width();
  const ModelConfig& cfg = *model->lm_config();
  const OutputHead head = OutputHead::load(ckpt, cfg);
  for (int s = 0; s < 2; ++s) {
    const std::string p = "s" + std::to_string(s) + ".";
    const std::vector<int32_t> ids = ids_of(ref, p + "input_ids");
    const auto S = static_cast<int64_t>(ids.size());
    const std::vector<int32_t> pos = ids_of(ref, p + "position_ids");
    // Rows: S tokens then 2 deepstack blocks of the 6 image tokens.
    ASSERT_EQ(samples[s].seq(), S + 2 * 6) << s;
    EXPECT_EQ(std::vector<int32_t>(samples[s].positions.begin(), samples[s].positions.begin() + S),
              std::vector<int32_t>(pos.begin(), pos.begin() + S));
    std::vector<float> hidden = samples[s].hidden;
    SequenceRef ref_seq{hidden.data(), samples[s].seq(), samples[s].positions.data(), s};
    for (int k = 0; k < model->num_units(); ++k) {
      LayerWeights w = model->load(k);
      std::unique_ptr<ExpertStream> parts = model->part_stream(k, w, false);
      model->forward(k, w, {&ref_seq, 1}, nullptr, parts.get(), nullptr);
      const std::string golden = k == 0 ? p + "layer0_in" : p + "layer" + std::to_string(k - 1) + "_out";
      EXPECT_LT(test::max_rel_err(rows_of(hidden, S, H), to_f32(ref.read(golden))), 2e-5) << golden;
    }
    // Every deepstack block was consumed.
    for (int64_t i = S * H; i < samples[s].seq() * H; ++i) ASSERT_EQ(hidden[static_cast<size_t>(i)], 0.0f);
    EXPECT_LT(test::max_rel_err(head.logits(cfg, hidden.data(), S), to_f32(ref.read(p + "logits"))), 2e-5);
  }
}

// QuaRot alone (block 32, the practice's) keeps the function: calibration
// rows rotated as the runner rotates them, the tower's merger outputs and the
// text layers (experts as they stream) rotated by the model, the head fused.
TEST(Qwen3VlMoe, QuarotKeepsTheLogits) {
  test::ScratchDir tmp;
  const Checkpoint ckpt = Checkpoint::open(kDir / "model.safetensors");
  const Checkpoint ref = Checkpoint::open(kDir / "text_reference.safetensors");
  std::unique_ptr<UnitModel> model = open_unit_model(kDir, ckpt);
  const ModelConfig& cfg = *model->lm_config();
  QuarotSettings settings;
  settings.block_size = 32;
  const QuarotPlan plan = make_quarot_plan(cfg, settings);
  model->set_quarot(&plan);
  std::vector<UnitInput> samples = model->calibration_inputs({write_index(tmp.path), kDir, 0});
  OutputHead head = OutputHead::load(ckpt, cfg);
  quarot_rotate_head(plan, head.norm_weight, head.lm_head);
  for (int s = 0; s < 2; ++s) {
    std::vector<float> hidden = samples[s].hidden;
    quarot_rotate_rows(plan, hidden.data(), samples[s].seq());
    SequenceRef seq{hidden.data(), samples[s].seq(), samples[s].positions.data(), s};
    for (int k = 0; k < model->num_units(); ++k) {
      LayerWeights w = model->load(k);
      std::unique_ptr<ExpertStream> parts = model->part_stream(k, w, false);
      model->forward(k, w, {&seq, 1}, nullptr, parts.get(), nullptr);
    }
    const int64_t S = static_cast<int64_t>(ids_of(ref, "s" + std::to_string(s) + ".input_ids").size());
    EXPECT_LT(test::max_rel_err(head.logits(cfg, hidden.data(), S), to_f32(ref.read("s" + std::to_string(s) + ".logits"))),
              2e-5);
  }
}

// Plain text (what `lwquant eval` scores): equal mRoPE axes are plain rope.
TEST(Qwen3VlMoe, TextOnlyLogitsMatchTransformers) {
  const Checkpoint ref = Checkpoint::open(kDir / "text_reference.safetensors");
  const CausalLM lm = CausalLM::load(kDir);
  EXPECT_EQ(lm.config().model_type, "qwen3_vl_moe_text");
  EXPECT_LT(test::max_rel_err(lm.logits(ids_of(ref, "t0.input_ids")), to_f32(ref.read("t0.logits"))), 2e-5);
}

TEST(Qwen3VlMoe, PromptIsTheChatTemplateWithExpandedImagePads) {
  EXPECT_EQ(qwen_vl_chat_text("Hi.", true),
            "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>Hi.<|im_end|>\n<|im_start|>assistant\n");
  const Tokenizer tok = Tokenizer::load(kDir);
  const QwenVlTokenIds t{250, 248, 249};
  const std::vector<int32_t> ids = qwen_vl_token_ids(tok, qwen_vl_chat_text("ab", true), 3, t, "test");
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 250), 3);
  EXPECT_NE(error_of([&] { qwen_vl_token_ids(tok, qwen_vl_chat_text("<|image_pad|>", true), 3, t, "entry 0"); }).find(
                "entry 0: the calibration text holds an image-pad token"),
            std::string::npos);
  const QwenVlTokenIds wrong{151655, 248, 249};
  EXPECT_NE(error_of([&] { qwen_vl_token_ids(tok, "x", 0, wrong, "entry 1"); })
                .find("maps <|image_pad|> to 250, but config.json says 151655"),
            std::string::npos);
}

// multimodal.md A.2.3's worked example: [a b c VS IMG×6 VE d] with grid (1, 4, 6), merge 2.
TEST(Qwen3VlMoe, RopeIndexOfTheSpecExample) {
  const QwenVlTokenIds t{9, 8, 7};
  const std::vector<int32_t> ids = {1, 2, 3, 8, 9, 9, 9, 9, 9, 9, 7, 4};
  const std::vector<int32_t> pos = qwen_vl_rope_positions(ids, t, 1, 4, 6, 2);
  const std::vector<int32_t> T = {0, 1, 2, 3, 4, 4, 4, 4, 4, 4, 7, 8}, Hh = {0, 1, 2, 3, 4, 4, 4, 5, 5, 5, 7, 8},
                             W = {0, 1, 2, 3, 4, 5, 6, 4, 5, 6, 7, 8};
  EXPECT_EQ(std::vector<int32_t>(pos.begin(), pos.begin() + 12), T);
  EXPECT_EQ(std::vector<int32_t>(pos.begin() + 12, pos.begin() + 24), Hh);
  EXPECT_EQ(std::vector<int32_t>(pos.begin() + 24, pos.end()), W);
}

TEST(Qwen3VlMoe, BadCalibrationSetsAreNamed) {
  test::ScratchDir tmp;
  const Checkpoint ckpt = Checkpoint::open(kDir / "model.safetensors");
  std::unique_ptr<UnitModel> model = open_unit_model(kDir, ckpt);
  auto calib_error = [&](const std::string& index_text, bool allow_text = false) {
    const std::filesystem::path index = tmp.path / "index.jsonl";
    std::ofstream(index) << index_text;
    CalibrationSource source{index, kDir, 0};
    source.allow_text_only = allow_text;
    return error_of([&] { model->calibration_inputs(source); });
  };
  EXPECT_NE(calib_error("{\"text\": \"just text\"}\n").find("entry 0 has no image"), std::string::npos);
  EXPECT_NE(calib_error("{\"image\": \"missing.png\"}\n").find("missing.png does not exist"), std::string::npos);
  EXPECT_NE(calib_error("{\"image\": \"a.gif\"}\n").find("is not a .jpg, .jpeg or .png file"), std::string::npos);
  EXPECT_NE(calib_error("{\"video\": \"a.mp4\"}\n").find("'video' entries are not supported"), std::string::npos);
  EXPECT_NE(calib_error("\n\n").find("holds no usable entry"), std::string::npos);
  EXPECT_NE(calib_error("{\"image\": 3}\n").find("line 1: \"image\" must be a string"), std::string::npos);
  std::ofstream(tmp.path / "broken.png") << "not a png";
  EXPECT_NE(calib_error("{\"image\": \"broken.png\"}\n").find("broken.png"), std::string::npos);
  // Text-only entries when allowed: tokens only, no deepstack rows.
  std::ofstream(tmp.path / "index.jsonl") << "{\"text\": \"Hello there.\"}\n";
  CalibrationSource source{tmp.path / "index.jsonl", kDir, 0};
  source.allow_text_only = true;
  std::vector<UnitInput> samples = model->calibration_inputs(source);
  ASSERT_EQ(samples.size(), 1u);
  EXPECT_EQ(samples[0].seq(), 31);  // one token a character here, 3 special tokens
}

TEST(Qwen3VlMoe, FolderOfImagesTakesTheDefaultText) {
  const std::vector<VlmCalibEntry> e = load_vlm_dataset(kDir / "images", "Say it.");
  ASSERT_EQ(e.size(), 2u);
  EXPECT_EQ(e[0].image.filename(), "noise_rgba.png");
  EXPECT_EQ(e[1].image.filename(), "smooth.jpg");
  EXPECT_EQ(e[0].text, "Say it.");
}

}  // namespace
}  // namespace lwq
