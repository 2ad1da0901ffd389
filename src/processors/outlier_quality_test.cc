// What smoothing and rotation buy under static W8A8 (issue 9 quality
// evidence, simulated without the runner): stories260K and a copy with
// injected outlier channels are fake-quantized layer by layer — activations
// per-tensor asymmetric int8 with min/max calibrated on the inputs the
// already-quantized earlier layers produce, weights per-channel symmetric
// int8 — after no smoothing, smooth_quant, iter_smooth, flex_smooth_quant,
// quarot and quarot + iter_smooth. The outlier copy is function-preserving
// (a few input channels of every norm-linear and up-down subgraph ×50 on the
// activation side, ÷50 on the weight side), so its float perplexity is the
// original's and all the difference is quantization error.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <numeric>
#include <sstream>

#include "data/tokenizer.h"
#include "models/architecture.h"
#include "models/causal_lm.h"
#include "models/quarot.h"
#include "processors/smoothing.h"
#include "tensor/dtype.h"

namespace lwq {
namespace {

namespace fs = std::filesystem;

struct Model {
  ModelConfig cfg;
  const Architecture* arch = nullptr;
  std::vector<LayerWeights> layers;
  std::vector<float> embed, norm, lm_head;
};

Model load(const fs::path& dir) {
  CausalLM lm = CausalLM::load(dir);
  Model m;
  m.cfg = lm.config();
  m.arch = &architecture_for(m.cfg);
  for (int k = 0; k < m.cfg.num_hidden_layers; ++k) m.layers.push_back(lm.layer(k));
  const Tensor& t = lm.embedding().table();
  m.embed.resize(static_cast<size_t>(t.numel()));
  convert_to_f32(t.dtype, t.bytes.data(), m.embed.data(), m.embed.size());
  m.norm = lm.head().norm_weight;
  m.lm_head = lm.head().lm_head;
  return m;
}

// ×50 on the activation side of a few channels, ÷50 on the weight side.
void inject_outliers(Model& m) {
  const float f = 50.0f;
  const int64_t H = m.cfg.hidden_size, I = m.cfg.intermediate_size;
  for (auto& w : m.layers) {
    for (int64_t c : {3, 17, 42}) {
      w.get("input_layernorm.weight")[static_cast<size_t>(c)] *= f;
      w.get("post_attention_layernorm.weight")[static_cast<size_t>(c)] *= f;
      for (const char* l : {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "mlp.gate_proj", "mlp.up_proj"}) {
        auto& wt = w.get(std::string(l) + ".weight");
        for (size_t r = 0; r < wt.size() / static_cast<size_t>(H); ++r) wt[r * static_cast<size_t>(H) + static_cast<size_t>(c)] /= f;
      }
    }
    for (int64_t c : {5, 99}) {
      auto& up = w.get("mlp.up_proj.weight");
      for (int64_t j = 0; j < H; ++j) up[static_cast<size_t>(c * H + j)] *= f;
      auto& down = w.get("mlp.down_proj.weight");
      for (int64_t r = 0; r < H; ++r) down[static_cast<size_t>(r * I + c)] /= f;
    }
  }
}

// Calibrates per-tensor activation ranges, then runs int8 fake quantization.
class FakeW8A8 : public LinearExecutor {
 public:
  bool calibrating = true;
  void run(const std::string& name, const float* x, int64_t rows, int64_t in, const float* weight, const float* bias,
           int64_t out, float* y) override {
    auto& r = ranges_[name];
    std::vector<float> xq(x, x + rows * in);
    if (calibrating) {
      for (float v : xq) r.first = std::min(r.first, v), r.second = std::max(r.second, v);
    } else {
      const float lo = std::min(r.first, 0.0f), hi = std::max(r.second, 0.0f);
      const float scale = std::max((hi - lo) / 255.0f, 1e-12f);
      const float zp = std::nearbyint(-lo / scale) - 128.0f;
      for (float& v : xq) v = (std::clamp(std::nearbyint(v / scale) + zp, -128.0f, 127.0f) - zp) * scale;
    }
    std::vector<float> wq(weight, weight + out * in);
    for (int64_t o = 0; o < out; ++o) {
      float mx = 0;
      for (int64_t i = 0; i < in; ++i) mx = std::max(mx, std::fabs(wq[static_cast<size_t>(o * in + i)]));
      const float s = mx > 0 ? mx / 127.0f : 1.0f;
      for (int64_t i = 0; i < in; ++i) {
        float& v = wq[static_cast<size_t>(o * in + i)];
        v = std::clamp(std::nearbyint(v / s), -127.0f, 127.0f) * s;
      }
    }
    LinearExecutor::run(name, xq.data(), rows, in, wq.data(), bias, out, y);
  }

 private:
  std::map<std::string, std::pair<float, float>> ranges_;
};

std::vector<float> embed(const Model& m, const std::vector<int32_t>& ids) {
  const int64_t H = m.cfg.hidden_size;
  std::vector<float> h(ids.size() * static_cast<size_t>(H));
  for (size_t i = 0; i < ids.size(); ++i) std::copy_n(m.embed.begin() + ids[i] * H, H, h.begin() + static_cast<long>(i * static_cast<size_t>(H)));
  return h;
}

void forward_layer(const Model& m, int k, std::vector<float>& h, LinearExecutor* exec) {
  const auto T = static_cast<int64_t>(h.size() / static_cast<size_t>(m.cfg.hidden_size));
  std::vector<int32_t> pos(static_cast<size_t>(T));
  std::iota(pos.begin(), pos.end(), 0);
  decoder_layer_forward(m.cfg, m.layers[static_cast<size_t>(k)], k, h.data(), T, pos.data(), exec);
}

enum class Variant { Float, None, SmoothQuant, IterSmooth, Flex, Quarot, QuarotIterSmooth };

// Mean NLL (nats/token) of `eval` windows after quantizing with `v`.
double quantized_nll(Model m, Variant v, const std::vector<std::vector<int32_t>>& calib,
                     const std::vector<std::vector<int32_t>>& eval) {
  if (v == Variant::Quarot || v == Variant::QuarotIterSmooth) {
    QuarotPlan plan = make_quarot_plan(m.cfg, {});
    quarot_rotate_head(plan, m.norm, m.lm_head);
    quarot_rotate_rows(plan, m.embed.data(), m.cfg.vocab_size);
    for (auto& l : m.layers) quarot_rotate_layer(m.cfg, *m.arch, plan, l);
  }
  std::optional<SmoothSettings> smooth;
  if (v == Variant::SmoothQuant) smooth = default_smooth_settings(SmoothKind::SmoothQuant);
  if (v == Variant::IterSmooth || v == Variant::QuarotIterSmooth) smooth = default_smooth_settings(SmoothKind::IterSmooth);
  if (v == Variant::Flex) smooth = default_smooth_settings(SmoothKind::FlexSmoothQuant);

  std::vector<std::vector<float>> states;
  for (const auto& ids : calib) states.push_back(embed(m, ids));
  std::vector<FakeW8A8> quant(static_cast<size_t>(m.cfg.num_hidden_layers));
  for (int k = 0; k < m.cfg.num_hidden_layers; ++k) {
    if (smooth) {  // smoothing unit: float forward, observe, transform
      LayerSmoother sm(*smooth, m.cfg, *m.arch, "model.layers." + std::to_string(k));
      ObservingExecutor obs(sm.observer());
      for (auto h : states) forward_layer(m, k, h, &obs);
      sm.apply(m.layers[static_cast<size_t>(k)]);
    }
    if (v == Variant::Float) {
      for (auto& h : states) forward_layer(m, k, h, nullptr);
      continue;
    }
    FakeW8A8& q = quant[static_cast<size_t>(k)];  // linear_quant unit: calibrate, then its outputs feed k+1
    for (auto h : states) forward_layer(m, k, h, &q);
    q.calibrating = false;
    for (auto& h : states) forward_layer(m, k, h, &q);
  }
  double nll = 0;
  int64_t n = 0;
  for (const auto& ids : eval) {
    auto h = embed(m, ids);
    for (int k = 0; k < m.cfg.num_hidden_layers; ++k)
      forward_layer(m, k, h, v == Variant::Float ? nullptr : &quant[static_cast<size_t>(k)]);
    const auto T = static_cast<int64_t>(ids.size());
    apply_final_norm(m.cfg, m.norm, h.data(), T);
    auto logits = lm_head_logits(h.data(), T, m.lm_head, m.cfg.vocab_size, m.cfg.hidden_size);
    for (int64_t t = 0; t + 1 < T; ++t) {
      const float* l = logits.data() + t * m.cfg.vocab_size;
      double mx = *std::max_element(l, l + m.cfg.vocab_size), z = 0;
      for (int64_t i = 0; i < m.cfg.vocab_size; ++i) z += std::exp(l[i] - mx);
      nll += std::log(z) + mx - l[ids[static_cast<size_t>(t + 1)]];
      ++n;
    }
  }
  return nll / static_cast<double>(n);
}

TEST(OutlierQuality, SmoothingAndRotationReduceStaticW8A8Error) {
  const fs::path dir = fs::path(LWQ_SOURCE_DIR) / "examples/stories260K";
  Tokenizer tok = Tokenizer::load(dir / "tokenizer.json");
  std::ifstream f(fs::path(LWQ_SOURCE_DIR) / "tests/data/text/tinystories_sample.txt");
  std::stringstream ss;
  ss << f.rdbuf();
  std::vector<int32_t> ids = tok.encode(ss.str());
  ASSERT_GT(ids.size(), 8u * 128u);
  std::vector<std::vector<int32_t>> calib, eval;
  for (int i = 0; i < 4; ++i) calib.emplace_back(ids.begin() + i * 128, ids.begin() + (i + 1) * 128);
  for (int i = 4; i < 8; ++i) eval.emplace_back(ids.begin() + i * 128, ids.begin() + (i + 1) * 128);

  const std::vector<std::pair<Variant, const char*>> variants = {
      {Variant::None, "W8A8 static, no smoothing"}, {Variant::SmoothQuant, "smooth_quant"},
      {Variant::IterSmooth, "iter_smooth"},         {Variant::Flex, "flex_smooth_quant (searched)"},
      {Variant::Quarot, "quarot"},                  {Variant::QuarotIterSmooth, "quarot + iter_smooth"}};
  for (bool outliers : {false, true}) {
    Model m = load(dir);
    if (outliers) inject_outliers(m);
    const double base = std::exp(quantized_nll(m, Variant::Float, calib, eval));
    std::map<Variant, double> dppl;
    std::cout << (outliers ? "stories260K + outlier channels" : "stories260K") << ": float ppl " << base << "\n";
    for (const auto& [v, name] : variants) {
      dppl[v] = std::exp(quantized_nll(m, v, calib, eval)) / base - 1.0;
      std::cout << "  " << name << ": Δppl " << 100.0 * dppl[v] << " %\n";
      RecordProperty(std::string(outliers ? "outlier " : "") + name, std::to_string(100.0 * dppl[v]));
    }
    if (outliers) {
      EXPECT_LT(dppl[Variant::SmoothQuant], dppl[Variant::None]);
      EXPECT_LT(dppl[Variant::IterSmooth], dppl[Variant::None]);
      EXPECT_LT(dppl[Variant::Flex], dppl[Variant::None]);
      EXPECT_LT(dppl[Variant::Quarot], dppl[Variant::None]);
      EXPECT_LT(dppl[Variant::QuarotIterSmooth], dppl[Variant::None]);
    }
  }
}

}  // namespace
}  // namespace lwq
