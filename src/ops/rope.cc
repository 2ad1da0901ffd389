#include "ops/rope.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "util/error.h"

namespace lwq {

std::string_view rope_type_name(RopeType t) {
  switch (t) {
    case RopeType::Default: return "default";
    case RopeType::Linear: return "linear";
    case RopeType::Dynamic: return "dynamic";
    case RopeType::Llama3: return "llama3";
    case RopeType::Yarn: return "yarn";
  }
  return "?";
}

namespace {

// theta^(-2i/d), rounded to f32 once as torch does.
std::vector<double> base_inv_freq(double theta, int64_t dim) {
  std::vector<double> f(static_cast<size_t>(dim / 2));
  for (int64_t i = 0; i < dim / 2; ++i)
    f[static_cast<size_t>(i)] = 1.0 / std::pow(theta, static_cast<double>(2 * i) / static_cast<double>(dim));
  return f;
}

void llama3_scale(std::vector<double>& f, const RopeParams& p) {
  if (!p.original_max_position_embeddings) fail("rope llama3 needs original_max_position_embeddings");
  const double old_ctx = static_cast<double>(*p.original_max_position_embeddings);
  const double low_wavelen = old_ctx / p.low_freq_factor;
  const double high_wavelen = old_ctx / p.high_freq_factor;
  for (double& v : f) {
    const double wavelen = 2.0 * std::numbers::pi / v;
    if (wavelen < high_wavelen) continue;  // high frequency: kept
    if (wavelen > low_wavelen) {
      v /= p.factor;
      continue;
    }
    const double s = (old_ctx / wavelen - p.low_freq_factor) / (p.high_freq_factor - p.low_freq_factor);
    v = (1.0 - s) * v / p.factor + s * v;
  }
}

double yarn_mscale(double scale, double m) { return scale <= 1.0 ? 1.0 : 0.1 * m * std::log(scale) + 1.0; }

float yarn_scale(std::vector<double>& f, const RopeParams& p, int64_t dim) {
  const double orig = static_cast<double>(p.original_max_position_embeddings.value_or(p.max_position_embeddings));
  if (orig <= 0) fail("rope yarn needs original_max_position_embeddings or max_position_embeddings");
  auto correction_dim = [&](double rotations) {
    return static_cast<double>(dim) * std::log(orig / (rotations * 2.0 * std::numbers::pi)) / (2.0 * std::log(p.theta));
  };
  double low = correction_dim(p.beta_fast), high = correction_dim(p.beta_slow);
  if (p.truncate) {
    low = std::floor(low);
    high = std::ceil(high);
  }
  low = std::max(low, 0.0);
  high = std::min(high, static_cast<double>(dim - 1));
  if (low == high) high += 0.001;  // avoids a division by zero, as HF
  for (size_t i = 0; i < f.size(); ++i) {
    // HF evaluates the ramp in f32.
    const float ramp = std::clamp(static_cast<float>((static_cast<double>(i) - low) / (high - low)), 0.0f, 1.0f);
    f[i] = f[i] / p.factor * ramp + f[i] * (1.0 - ramp);
  }
  if (p.attention_factor) return static_cast<float>(*p.attention_factor);
  if (p.mscale && p.mscale_all_dim && *p.mscale != 0.0 && *p.mscale_all_dim != 0.0)
    return static_cast<float>(yarn_mscale(p.factor, *p.mscale) / yarn_mscale(p.factor, *p.mscale_all_dim));
  return static_cast<float>(yarn_mscale(p.factor, 1.0));
}

}  // namespace

RopeFrequencies rope_frequencies(const RopeParams& p, int64_t dim, int64_t seq_len) {
  if (dim <= 0 || dim % 2 != 0) fail("rope: rotary dimension must be positive and even, got {}", dim);
  RopeFrequencies out;
  std::vector<double> f;
  switch (p.type) {
    case RopeType::Default:
      f = base_inv_freq(p.theta, dim);
      break;
    case RopeType::Linear:
      f = base_inv_freq(p.theta, dim);
      for (double& v : f) v /= p.factor;
      break;
    case RopeType::Dynamic: {
      // NTK-aware theta for a forward of seq_len positions (HF
      // _compute_dynamic_ntk_parameters with seq_len = max(position) + 1).
      const double max_pos = static_cast<double>(p.max_position_embeddings);
      if (max_pos <= 0) fail("rope dynamic needs max_position_embeddings");
      const double len = std::max(static_cast<double>(seq_len), max_pos);
      const double d = static_cast<double>(dim);
      const double theta = p.theta * std::pow(p.factor * len / max_pos - (p.factor - 1.0), d / (d - 2.0));
      f = base_inv_freq(theta, dim);
      break;
    }
    case RopeType::Llama3:
      f = base_inv_freq(p.theta, dim);
      llama3_scale(f, p);
      break;
    case RopeType::Yarn:
      f = base_inv_freq(p.theta, dim);
      out.attention_scale = yarn_scale(f, p, dim);
      break;
  }
  out.inv_freq.assign(f.begin(), f.end());
  return out;
}

RopeTable rope_table(const RopeFrequencies& f, const int32_t* positions, int64_t rows) {
  RopeTable t;
  t.rows = rows;
  t.half = static_cast<int64_t>(f.inv_freq.size());
  t.cos.resize(static_cast<size_t>(rows * t.half));
  t.sin.resize(t.cos.size());
  for (int64_t r = 0; r < rows; ++r) {
    const float pos = static_cast<float>(positions[r]);
    for (int64_t i = 0; i < t.half; ++i) {
      // The angle is an f32 product in HF; cos/sin of it are then rounded.
      const float angle = pos * f.inv_freq[static_cast<size_t>(i)];
      t.cos[static_cast<size_t>(r * t.half + i)] = static_cast<float>(std::cos(static_cast<double>(angle))) * f.attention_scale;
      t.sin[static_cast<size_t>(r * t.half + i)] = static_cast<float>(std::sin(static_cast<double>(angle))) * f.attention_scale;
    }
  }
  return t;
}

RopeTable mrope_table(const RopeFrequencies& f, const std::vector<int64_t>& section, const int32_t* positions,
                      int64_t rows) {
  RopeTable t;
  t.rows = rows;
  t.half = static_cast<int64_t>(f.inv_freq.size());
  if (section.size() != 3) fail("mrope: mrope_section must hold 3 values (t, h, w), got {}", section.size());
  std::vector<int> axis(static_cast<size_t>(t.half), 0);
  for (int64_t j = 0; j < t.half; ++j) {
    if (j % 3 == 1 && j < 3 * section[1]) axis[static_cast<size_t>(j)] = 1;
    if (j % 3 == 2 && j < 3 * section[2]) axis[static_cast<size_t>(j)] = 2;
  }
  t.cos.resize(static_cast<size_t>(rows * t.half));
  t.sin.resize(t.cos.size());
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < t.half; ++j) {
      const float pos = static_cast<float>(positions[axis[static_cast<size_t>(j)] * rows + r]);
      const float angle = pos * f.inv_freq[static_cast<size_t>(j)];
      t.cos[static_cast<size_t>(r * t.half + j)] = static_cast<float>(std::cos(static_cast<double>(angle))) * f.attention_scale;
      t.sin[static_cast<size_t>(r * t.half + j)] = static_cast<float>(std::sin(static_cast<double>(angle))) * f.attention_scale;
    }
  return t;
}

void apply_rope(float* x, int64_t rows, int64_t row_stride, int64_t n_heads, int64_t head_dim, const RopeTable& t) {
  const int64_t half = head_dim / 2;
  if (half != t.half || rows > t.rows) fail("rope: table [{}, {}] does not fit {} rows of head_dim {}", t.rows, t.half, rows, head_dim);
#pragma omp parallel for if (rows * n_heads * head_dim > (1 << 16))
  for (int64_t r = 0; r < rows; ++r) {
    const float* c = t.cos.data() + r * half;
    const float* s = t.sin.data() + r * half;
    for (int64_t h = 0; h < n_heads; ++h) {
      float* x1 = x + r * row_stride + h * head_dim;
      float* x2 = x1 + half;
      for (int64_t i = 0; i < half; ++i) {
        const float a = x1[i], b = x2[i];
        x1[i] = a * c[i] - b * s[i];
        x2[i] = b * c[i] + a * s[i];
      }
    }
  }
}

}  // namespace lwq
