// The Qwen3-VL-MoE vision tower against HF transformers on a tiny random
// model (tests/data/goldens/qwen3_vl_moe_tiny, tools/make_qwen3_vl_goldens.py):
// two processor-made images of different grids and a two-frame entry, bf16
// weights computed in f32; and every bad input refused with a message naming
// the tensor or key.
#include "models/qwen3_vl_vision.h"

#include <gtest/gtest.h>
#include <zlib.h>
#include <nlohmann/json.hpp>

#include <map>
#include <set>

#include "data/image.h"
#include "data/qwen_vl_processor.h"
#include "io/checkpoint.h"
#include "io/safetensors_writer.h"
#include "models/models_test_util.h"
#include "util/error.h"
#include "util/file_util.h"

namespace lwq {
namespace {

const std::filesystem::path kDir = test::golden_dir("qwen3_vl_moe_tiny");

struct Golden {
  Qwen3VlVisionConfig cfg = load_qwen3_vl_vision_config(kDir);
  Checkpoint ckpt = Checkpoint::open(kDir / "model.safetensors");
  Checkpoint ref = Checkpoint::open(kDir / "reference.safetensors");
  std::vector<float> pixels = to_f32(ref.read("pixel_values"));
  std::vector<ImageGrid> grids;
  int64_t rows = 0, cols = 0;
  Golden() {
    const Tensor g = ref.read("grid_thw");
    for (int64_t i = 0; i < g.shape[0]; ++i) {
      const int64_t* r = g.data<int64_t>() + 3 * i;
      grids.push_back({r[0], r[1], r[2]});
    }
    rows = ref.info("pixel_values").shape[0];
    cols = ref.info("pixel_values").shape[1];
  }
};

using test::error_of;

// Records every Linear call (name, dims) and computes it in f32.
struct RecordingExecutor : LinearExecutor {
  std::vector<LinearDesc> calls;
  void run(const std::string& name, const float* x, int64_t rows, int64_t in, const float* weight, const float* bias,
           int64_t out, float* y) override {
    calls.push_back({name, out, in, bias != nullptr});
    LinearExecutor::run(name, x, rows, in, weight, bias, out, y);
  }
};

TEST(Qwen3VlVision, ConfigFromTheTinyModel) {
  Golden g;
  const Qwen3VlVisionConfig& c = g.cfg;
  EXPECT_EQ(c.depth, 3);
  EXPECT_EQ(c.hidden_size, 32);
  EXPECT_EQ(c.head_dim(), 16);
  EXPECT_EQ(c.grid_side(), 4);
  EXPECT_EQ(c.patch_dim(), 1536);
  EXPECT_EQ(c.merged_dim(), 128);
  EXPECT_EQ(c.out_hidden_size, 64);
  EXPECT_EQ(c.hidden_act, "gelu_pytorch_tanh");
  EXPECT_EQ(c.deepstack_visual_indexes, (std::vector<int64_t>{0, 1}));
  EXPECT_TRUE(is_qwen3_vl_config(read_text_file(kDir / "config.json")));
}

// The descriptor lists exactly the checkpoint's model.visual.* tensors, with
// their shapes, and the forward calls every described Linear once, in order.
TEST(Qwen3VlVision, DescriptorCoversTheCheckpointAndTheForward) {
  Golden g;
  const LayerDesc d = qwen3_vl_vision_desc(g.cfg);
  std::map<std::string, Shape> mine, theirs;
  for (const auto& t : d.tensors) mine[d.prefix + "." + t.name] = t.shape;
  for (const auto& name : g.ckpt.tensor_names())
    if (name.rfind("model.visual.", 0) == 0) theirs[name] = g.ckpt.info(name).shape;
  EXPECT_EQ(mine, theirs);
  EXPECT_EQ(d.linears.size(), 3u * 4 + 2 + 2 * 2);  // blocks, merger, two deepstack mergers

  RecordingExecutor exec;
  qwen3_vl_vision_forward(g.cfg, load_qwen3_vl_vision(g.ckpt, g.cfg), g.pixels.data(), g.rows, g.cols, g.grids, &exec);
  ASSERT_EQ(exec.calls.size(), d.linears.size());
  for (size_t i = 0; i < d.linears.size(); ++i) {
    EXPECT_EQ(exec.calls[i].name, d.linears[i].name);
    EXPECT_EQ(exec.calls[i].in_features, d.linears[i].in_features) << d.linears[i].name;
    EXPECT_EQ(exec.calls[i].out_features, d.linears[i].out_features) << d.linears[i].name;
    EXPECT_TRUE(exec.calls[i].has_bias);
  }
  EXPECT_EQ(d.linears[4].name, "deepstack_merger_list.0.linear_fc1");  // right after block 0
  EXPECT_EQ(d.linears.back().name, "merger.linear_fc2");
}

TEST(Qwen3VlVision, MatchesTransformers) {
  Golden g;
  const LayerWeights w = load_qwen3_vl_vision(g.ckpt, g.cfg);
  EXPECT_FALSE(w.stored.empty());  // bf16 Linear weights stay 16-bit
  const Qwen3VlVisionOutputs out = qwen3_vl_vision_forward(g.cfg, w, g.pixels.data(), g.rows, g.cols, g.grids);
  EXPECT_EQ(out.tokens, 16);
  const double e = test::max_rel_err(out.embeds, to_f32(g.ref.read("image_embeds")));
  EXPECT_LT(e, 1e-4);
  ASSERT_EQ(out.deepstack.size(), 2u);
  double worst = e;
  for (size_t i = 0; i < 2; ++i) {
    const double ed = test::max_rel_err(out.deepstack[i], to_f32(g.ref.read("deepstack_" + std::to_string(i))));
    EXPECT_LT(ed, 1e-4) << "deepstack " << i;
    worst = std::max(worst, ed);
  }
  std::cout << "vision tower vs transformers: max relative error " << worst << "\n";
}

// The position interpolation and the 2-D rotary matter: the same pixels
// described as other grids give different embeddings.
TEST(Qwen3VlVision, GridsChangeTheResult) {
  Golden g;
  const LayerWeights w = load_qwen3_vl_vision(g.ckpt, g.cfg);
  std::vector<ImageGrid> swapped = g.grids;
  std::swap(swapped[0].h, swapped[0].w);  // 4×6 read as 6×4: same rows, other positions
  const auto out = qwen3_vl_vision_forward(g.cfg, w, g.pixels.data(), g.rows, g.cols, swapped);
  EXPECT_GT(test::max_rel_err(out.embeds, to_f32(g.ref.read("image_embeds"))), 1e-3);
}

TEST(Qwen3VlVision, InputsDisagreeingWithGridAreRefused) {
  Golden g;
  const LayerWeights w = load_qwen3_vl_vision(g.ckpt, g.cfg);
  auto run = [&](int64_t rows, int64_t cols, std::vector<ImageGrid> grids) {
    return error_of([&] { qwen3_vl_vision_forward(g.cfg, w, g.pixels.data(), rows, cols, grids); });
  };
  std::vector<ImageGrid> more = g.grids;
  more[0].h = 6;
  EXPECT_NE(run(g.rows, g.cols, more).find("pixel_values has 64 rows (patches) but grid_thw describes"),
            std::string::npos)
      << run(g.rows, g.cols, more);
  EXPECT_NE(run(g.rows / 2, g.cols * 2, g.grids).find("pixel_values rows hold 3072 values"), std::string::npos);
  std::vector<ImageGrid> odd = g.grids;
  odd[1] = {1, 3, 8};  // 24 patches as before, but 3 rows do not merge 2×2
  EXPECT_NE(run(g.rows, g.cols, odd).find("grid_thw[1] = [1, 3, 8]"), std::string::npos) << run(g.rows, g.cols, odd);
  std::vector<ImageGrid> zero = g.grids;
  zero[2].t = 0;
  EXPECT_NE(run(g.rows, g.cols, zero).find("grid_thw[2] = [0, 2, 4] must be positive"), std::string::npos);
  EXPECT_NE(run(g.rows, g.cols, {}).find("grid_thw is empty"), std::string::npos);
  std::vector<float> nan_pixels = g.pixels;
  nan_pixels[5 * g.cols + 7] = std::nanf("");
  EXPECT_NE(error_of([&] { qwen3_vl_vision_forward(g.cfg, w, nan_pixels.data(), g.rows, g.cols, g.grids); })
                .find("pixel_values holds a non-finite value at row 5, column 7"),
            std::string::npos);
}

// A copy of the tiny checkpoint without `drop` and with `replace` substituted.
void write_variant(const Checkpoint& src, const std::filesystem::path& dst, const std::string& drop,
                   const std::string& replace = "", const Tensor* with = nullptr) {
  SafetensorsWriter out(dst / "model.safetensors");
  for (const auto& name : src.tensor_names()) {
    if (name == drop) continue;
    out.add(name, name == replace ? *with : src.read(name));
  }
  out.finish();
}

TEST(Qwen3VlVision, MissingOrMisshapenTensorsAreNamed) {
  Golden g;
  test::ScratchDir dir;
  write_variant(g.ckpt, dir.path, "model.visual.deepstack_merger_list.1.norm.bias");
  EXPECT_NE(error_of([&] { load_qwen3_vl_vision(Checkpoint::open(dir.path), g.cfg); })
                .find("tensor 'model.visual.deepstack_merger_list.1.norm.bias' is missing from checkpoint"),
            std::string::npos);

  test::ScratchDir dir2;
  const Tensor small = tensor_f32({16, 32}, std::vector<float>(16 * 32, 0.5f));
  write_variant(g.ckpt, dir2.path, "", "model.visual.blocks.2.mlp.linear_fc1.weight", &small);
  const std::string e = error_of([&] { load_qwen3_vl_vision(Checkpoint::open(dir2.path), g.cfg); });
  EXPECT_NE(e.find("tensor 'model.visual.blocks.2.mlp.linear_fc1.weight' has shape [16, 32]"), std::string::npos) << e;
  EXPECT_NE(e.find("implies [64, 32]"), std::string::npos) << e;

  // A config disagreeing with the tensors (intermediate_size 48) names the first tensor that differs.
  nlohmann::json j = nlohmann::json::parse(read_text_file(kDir / "config.json"));
  j["vision_config"]["intermediate_size"] = 48;
  const Qwen3VlVisionConfig wrong = parse_qwen3_vl_vision_config(j.dump(), "dir/config.json");
  const std::string e2 = error_of([&] { load_qwen3_vl_vision(g.ckpt, wrong); });
  EXPECT_NE(e2.find("tensor 'model.visual.blocks.0.mlp.linear_fc1.weight' has shape [64, 32] but dir/config.json"),
            std::string::npos)
      << e2;
}

TEST(Qwen3VlVision, BadConfigsAreNamed) {
  const nlohmann::json base = nlohmann::json::parse(read_text_file(kDir / "config.json"));
  auto error = [&](const std::function<void(nlohmann::json&)>& edit) {
    nlohmann::json j = base;
    edit(j);
    return error_of([&] { parse_qwen3_vl_vision_config(j.dump(), "dir/config.json"); });
  };
  EXPECT_NE(error([](auto& j) { j.erase("vision_config"); }).find("dir/config.json: required key 'vision_config'"),
            std::string::npos);
  EXPECT_NE(error([](auto& j) { j["vision_config"]["num_position_embeddings"] = 15; })
                .find("vision_config.num_position_embeddings 15 must be a perfect square"),
            std::string::npos);
  EXPECT_NE(error([](auto& j) { j["vision_config"]["deepstack_visual_indexes"] = {0, 3}; })
                .find("deepstack_visual_indexes holds 3, outside the 3 blocks"),
            std::string::npos);
  EXPECT_NE(error([](auto& j) { j["vision_config"]["hidden_act"] = "swiglu"; })
                .find("vision_config.hidden_act \"swiglu\" is not supported"),
            std::string::npos);
  EXPECT_NE(error([](auto& j) { j["vision_config"]["num_heads"] = 3; })
                .find("vision_config.hidden_size 32 is not a multiple of vision_config.num_heads 3"),
            std::string::npos);
  EXPECT_NE(error([](auto& j) { j["vision_config"]["depth"] = "3"; })
                .find("key 'vision_config.depth' must be an integer"),
            std::string::npos);
  EXPECT_NE(error([](auto& j) { j["text_config"]["hidden_size"] = 96; })
                .find("vision_config.out_hidden_size 64 differs from text_config.hidden_size 96"),
            std::string::npos);
}

// ---- image preprocessing against Qwen2VLImageProcessor (slow, PIL) ----

struct PreprocessCase {
  std::string name;
  std::filesystem::path file;
};

std::vector<PreprocessCase> preprocess_cases() {
  std::vector<PreprocessCase> cases = {{"noise_rgba", kDir / "images/noise_rgba.png"},
                                       {"smooth", kDir / "images/smooth.jpg"}};
  const auto chelsea = std::filesystem::path(LWQ_SHARED_DIR) / "data/images/chelsea.png";
  if (std::filesystem::exists(chelsea)) cases.push_back({"chelsea", chelsea});
  return cases;
}

TEST(Qwen3VlPreprocess, SmartResizeAsHf) {
  auto hw = [](int64_t h, int64_t w, int64_t mn, int64_t mx) {
    HeightWidth r = smart_resize(h, w, 32, mn, mx);
    return std::vector<int64_t>{r.height, r.width};
  };
  EXPECT_EQ(hw(70, 100, 64 * 64, 128 * 128), (std::vector<int64_t>{64, 96}));   // multimodal.md A.3.2
  EXPECT_EQ(hw(300, 451, 1024, 8192), (std::vector<int64_t>{64, 96}));          // shrunk into max_pixels
  EXPECT_EQ(hw(300, 451, 65536, 16777216), (std::vector<int64_t>{288, 448}));   // Qwen3-VL's defaults
  EXPECT_EQ(hw(20, 30, 65536, 16777216), (std::vector<int64_t>{224, 320}));     // grown to min_pixels
  EXPECT_EQ(hw(48, 80, 1, 1 << 30), (std::vector<int64_t>{64, 64}));            // 1.5 → 2, 2.5 → 2 (half to even)
  EXPECT_NE(error_of([] { smart_resize(1, 201, 32, 1, 1 << 30); }).find("aspect ratio must be smaller than 200"),
            std::string::npos);
}

TEST(Qwen3VlPreprocess, MatchesTheHfProcessor) {
  const Checkpoint ref = Checkpoint::open(kDir / "preprocess.safetensors");
  QwenVlImageSettings s;
  s.min_pixels = 32 * 32, s.max_pixels = 8192;
  for (const auto& c : preprocess_cases()) {
    SCOPED_TRACE(c.name);
    const RgbImage img = read_image(c.file);
    const Tensor resized = ref.read(c.name + ".resized");
    const RgbImage mine = resize_bicubic(img, resized.shape[1], resized.shape[0]);
    const uint8_t* theirs = resized.data<uint8_t>();
    int64_t differing = 0;
    for (size_t i = 0; i < mine.pixels.size(); ++i) differing += mine.pixels[i] != theirs[i];
    EXPECT_EQ(differing, 0) << "of " << mine.pixels.size() << " resized values";

    const QwenVlPixels px = qwen_vl_pixels(img, s);
    const Tensor grid = ref.read(c.name + ".grid_thw");
    EXPECT_EQ(px.grid_t, grid.data<int64_t>()[0]);
    EXPECT_EQ(px.grid_h, grid.data<int64_t>()[1]);
    EXPECT_EQ(px.grid_w, grid.data<int64_t>()[2]);
    const std::vector<float> expected = to_f32(ref.read(c.name + ".pixel_values"));
    ASSERT_EQ(px.values.size(), expected.size());
    double worst = 0;
    for (size_t i = 0; i < expected.size(); ++i) worst = std::max(worst, double(std::abs(px.values[i] - expected[i])));
    EXPECT_LE(worst, 0.0) << "max |Δ| of pixel_values";
  }
}

// The processor's pixels feed the tower: a decoded image runs end to end.
TEST(Qwen3VlPreprocess, DecodedImageRunsThroughTheTower) {
  Golden g;
  QwenVlImageSettings s;
  s.min_pixels = 32 * 32, s.max_pixels = 8192;
  const QwenVlPixels px = qwen_vl_pixels(read_image(kDir / "images/smooth.jpg"), s);
  const ImageGrid grid{px.grid_t, px.grid_h, px.grid_w};
  const auto out = qwen3_vl_vision_forward(g.cfg, load_qwen3_vl_vision(g.ckpt, g.cfg), px.values.data(), px.rows,
                                           px.cols, std::span(&grid, 1));
  EXPECT_EQ(out.tokens, px.rows / 4);
}

TEST(Qwen3VlPreprocess, BadImagesAreNamed) {
  test::ScratchDir dir;
  EXPECT_NE(error_of([&] { read_image(dir.path / "absent.png"); }).find("absent.png: cannot be opened"),
            std::string::npos);
  const auto text = dir.path / "notes.jpg";
  write_text_file_atomic(text, "not an image at all");
  EXPECT_NE(error_of([&] { read_image(text); }).find("notes.jpg: neither a JPEG nor a PNG"), std::string::npos);
  for (const char* name : {"images/smooth.jpg", "images/noise_rgba.png"}) {
    const std::string bytes = read_text_file(kDir / name);
    const auto cut = dir.path / (std::string("cut_") + std::filesystem::path(name).filename().string());
    write_text_file_atomic(cut, bytes.substr(0, bytes.size() / 3));
    const std::string e = error_of([&] { read_image(cut); });
    EXPECT_NE(e.find(cut.filename().string()), std::string::npos) << e;
    EXPECT_NE(e.find("does not decode"), std::string::npos) << e;
  }
  // A PNG header claiming 20000 × 20000 pixels is refused before any pixel is allocated.
  auto be32 = [](std::string& s, uint32_t v) {
    for (int shift = 24; shift >= 0; shift -= 8) s += static_cast<char>((v >> shift) & 0xff);
  };
  auto chunk = [&](std::string& png, const std::string& type_and_data) {
    be32(png, static_cast<uint32_t>(type_and_data.size() - 4));
    png += type_and_data;
    be32(png, static_cast<uint32_t>(
                  crc32(0, reinterpret_cast<const Bytef*>(type_and_data.data()), static_cast<uInt>(type_and_data.size()))));
  };
  std::string ihdr = "IHDR";
  be32(ihdr, 20000), be32(ihdr, 20000);
  ihdr += std::string("\x08\x02\x00\x00\x00", 5);
  std::string png = "\x89PNG\r\n\x1a\n";
  chunk(png, ihdr);
  chunk(png, "IDAT");
  chunk(png, "IEND");
  const auto bomb = dir.path / "bomb.png";
  write_text_file_atomic(bomb, png);
  EXPECT_NE(error_of([&] { read_image(bomb); }).find("bomb.png: 20000x20000 pixels exceed the limit"), std::string::npos);
  // A caller's own limit (the fuzz target's), for both decoders, before any pixel is decoded.
  for (const char* name : {"chelsea.png", "rocket.jpg"}) {
    const auto file = std::filesystem::path(LWQ_SOURCE_DIR) / "calib/calibImages" / name;
    const RgbImage whole = read_image(file);
    const uint64_t pixels = static_cast<uint64_t>(whole.width * whole.height);
    EXPECT_EQ(read_image(file, pixels).pixels, whole.pixels) << name;
    const std::string err = error_of([&] { read_image(file, pixels - 1); });
    EXPECT_NE(err.find(fmt::format("exceed the limit of {}", pixels - 1)), std::string::npos) << err;
    EXPECT_EQ(err.find("Pillow"), std::string::npos) << err;
  }
}

}  // namespace
}  // namespace lwq
