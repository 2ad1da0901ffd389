#include "quant/weight_quant.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "tensor/tensor.h"
#include "util/error.h"

namespace lwq {
namespace {

TEST(WeightQuant, CodeSumIsExactBeyondItsInt32Chunks) {
  std::vector<int8_t> q(200001, -128);
  q[5] = 127;
  int64_t want = 0;
  for (int8_t v : q) want += v;
  EXPECT_EQ(code_sum(q.data(), static_cast<int64_t>(q.size())), want);  // −25.6 M over four chunks
  EXPECT_EQ(code_sum(q.data(), 3), -128 * 2 + -128);
  EXPECT_EQ(code_sum(q.data(), 0), 0);
  std::mt19937 rng(7);
  std::vector<int8_t> r(70000);
  for (auto& v : r) v = static_cast<int8_t>(static_cast<int>(rng() % 256) - 128);
  int64_t ref = 0;
  for (int8_t v : r) ref += v;
  EXPECT_EQ(code_sum(r.data(), static_cast<int64_t>(r.size())), ref);
}

// Rows supplied by a callback, chunk by chunk on every thread: the same codes
// and parameters as from the whole matrix; a non-finite row and a throwing
// callback are reported, not lost in the threads.
TEST(WeightQuant, PerChannelMinmaxFromRowsEqualsTheWholeMatrix) {
  const int64_t out = 700, in = 300;  // chunks of (1 << 17) / 300 = 436 rows: two, the last partial
  std::vector<float> w(static_cast<size_t>(out * in));
  std::mt19937 rng(3);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (auto& v : w) v = nd(rng);
  auto rows = [&](int64_t begin, int64_t end, float* dst) {
    std::copy(w.begin() + begin * in, w.begin() + end * in, dst);
  };
  for (bool symmetric : {true, false}) {
    const QuantizedWeight want = quantize_weight_per_channel_minmax(w.data(), out, in, 8, symmetric);
    const QuantizedWeight got = quantize_weight_per_channel_minmax_rows(rows, out, in, 8, symmetric);
    EXPECT_EQ(std::vector<int8_t>(got.q.begin(), got.q.end()), std::vector<int8_t>(want.q.begin(), want.q.end()));
    EXPECT_EQ(got.scale, want.scale);
    EXPECT_EQ(got.offset, want.offset);
  }
  w[static_cast<size_t>(650 * in + 7)] = std::nanf("");
  try {
    quantize_weight_per_channel_minmax_rows(rows, out, in, 8, true);
    ADD_FAILURE() << "a NaN weight was quantized";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("row 650"), std::string::npos) << e.what();
  }
  auto throwing = [&](int64_t begin, int64_t, float*) {
    if (begin > 0) fail("tensor 'w' in f.safetensors holds NaN at row {}", begin);
  };
  try {
    quantize_weight_per_channel_minmax_rows(throwing, out, in, 8, true);
    ADD_FAILURE() << "the callback's error was lost";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("f.safetensors"), std::string::npos) << e.what();
  }
}

TEST(WeightQuant, SymmetricPerRowByHand) {
  // Rows chosen so scales are exact: 127/127 = 1 and 254/127 = 2.
  std::vector<float> w = {127.0f, -63.5f, 0.0f, 10.0f,
                          254.0f, 1.0f, 3.0f, -5.0f,
                          0.0f, 0.0f, 0.0f, 0.0f};
  QuantizedWeight qw = quantize_weight_per_channel_minmax(w.data(), 3, 4, 8, true);
  EXPECT_EQ(qw.out, 3);
  EXPECT_EQ(qw.in, 4);
  ASSERT_EQ(qw.q.size(), 12u);
  ASSERT_EQ(qw.scale.size(), 3u);
  ASSERT_EQ(qw.offset.size(), 3u);
  EXPECT_EQ(qw.scale[0], 1.0f);
  EXPECT_EQ(qw.scale[1], 2.0f);
  EXPECT_EQ(qw.scale[2], kEps);  // all-zero row
  EXPECT_EQ(qw.offset, (std::vector<float>{0, 0, 0}));
  // -63.5 → -64 (tie to even), 0.5 → 0, 1.5 → 2, -2.5 → -2.
  EXPECT_EQ(std::vector<int8_t>(qw.q.begin(), qw.q.end()), (std::vector<int8_t>{127, -64, 0, 10, 127, 0, 2, -2, 0, 0, 0, 0}));
}

TEST(WeightQuant, AsymmetricOffsetsInSignedDomain) {
  std::vector<float> w = {-100.0f, 200.0f, 0.0f, 100.0f,   // scale 300/255, offset -43
                          1.0f, 2.0f, 3.0f, 5.1f};         // min widened to 0: offset -128
  QuantizedWeight qw = quantize_weight_per_channel_minmax(w.data(), 2, 4, 8, false);
  EXPECT_NEAR(qw.scale[0], 300.0 / 255, 1e-6);
  EXPECT_EQ(qw.offset[0], -43.0f);
  EXPECT_EQ(qw.offset[1], -128.0f);
  EXPECT_EQ(qw.q[0], -128);
  EXPECT_EQ(qw.q[1], 127);
  EXPECT_EQ(qw.q[2], -43);
  EXPECT_EQ(qw.q[3], 42);
  EXPECT_EQ(qw.q[7], 127);
}

TEST(WeightQuant, Int4PerChannel) {
  std::vector<float> w = {7.0f, -3.5f, 2.5f, -7.0f};
  QuantizedWeight qw = quantize_weight_per_channel_minmax(w.data(), 1, 4, 4, true);
  EXPECT_EQ(qw.scale[0], 1.0f);
  EXPECT_EQ(std::vector<int8_t>(qw.q.begin(), qw.q.end()), (std::vector<int8_t>{7, -4, 2, -7}));
}

TEST(WeightQuant, RandomRoundTripWithinHalfStep) {
  const int64_t out = 37, in = 129;
  std::mt19937 rng(7);
  std::normal_distribution<float> dist(0.0f, 0.05f);
  std::vector<float> w(out * in);
  for (auto& v : w) v = dist(rng);
  for (bool sym : {true, false}) {
    QuantizedWeight qw = quantize_weight_per_channel_minmax(w.data(), out, in, 8, sym);
    std::vector<float> back(w.size());
    dequantize_weight(qw, back.data());
    for (int64_t o = 0; o < out; ++o) {
      const float* row = w.data() + o * in;
      float amax = 0, mn = 0, mx = 0;
      for (int64_t i = 0; i < in; ++i) {
        amax = std::max(amax, std::fabs(row[i]));
        mn = std::min(mn, row[i]);
        mx = std::max(mx, row[i]);
      }
      // Independent reference for the scale (double precision).
      double ref_scale = sym ? amax / 127.0 : (mx - mn) / 255.0;
      EXPECT_NEAR(qw.scale[o], ref_scale, ref_scale * 1e-5) << "row " << o;
      for (int64_t i = 0; i < in; ++i) {
        EXPECT_LE(std::fabs(back[o * in + i] - row[i]), qw.scale[o] * 0.5f * (1 + 1e-4f)) << o << "," << i;
        if (sym) {
          EXPECT_GE(qw.q[o * in + i], -127);
        }
      }
      // The extreme value uses the full range.
      int8_t qmax = *std::max_element(qw.q.begin() + o * in, qw.q.begin() + (o + 1) * in);
      int8_t qmin = *std::min_element(qw.q.begin() + o * in, qw.q.begin() + (o + 1) * in);
      if (sym) {
        EXPECT_TRUE(qmax == 127 || qmin == -127);
      } else {
        EXPECT_TRUE(qmax == 127 && qmin == -128);
      }
    }
  }
}

// Quantizing the stored bytes (bf16 in registers, f16 a row at a time, f32
// in place) gives exactly what quantizing the converted f32 matrix gives.
TEST(WeightQuant, FromStoredBytesEqualsFromFloat) {
  std::mt19937 rng(11);
  std::normal_distribution<float> nd(0.0f, 0.05f);
  for (auto [out, in] : {std::pair<int64_t, int64_t>{3, 17}, {40, 64}, {7, 4100}, {70, 2048}}) {
    std::vector<float> w(static_cast<size_t>(out * in));
    for (auto& v : w) v = nd(rng);
    for (DType dt : {DType::BF16, DType::F16, DType::F32}) {
      Tensor stored = tensor_from_f32(dt, {out, in}, w);
      const std::vector<float> f = to_f32(stored);
      for (int bits : {8, 4})
        for (bool sym : {true, false}) {
          QuantizedWeight a = quantize_weight_per_channel_minmax(f.data(), out, in, bits, sym);
          QuantizedWeight b = quantize_weight_per_channel_minmax_stored(dt, stored.bytes.data(), out, in, bits, sym);
          EXPECT_EQ(a.q, b.q) << dtype_name(dt) << " " << out << "x" << in;
          EXPECT_EQ(a.scale, b.scale);
          EXPECT_EQ(a.offset, b.offset);
          EXPECT_EQ(a.out, b.out);
          EXPECT_EQ(a.in, b.in);
          EXPECT_EQ(a.bits, b.bits);
          EXPECT_EQ(a.group_size, b.group_size);
        }
    }
  }
}

TEST(WeightQuant, FromStoredBytesNamesTheFirstNonFiniteRow) {
  const int64_t out = 300, in = 40;
  std::vector<float> w(static_cast<size_t>(out * in), 0.25f);
  w[static_cast<size_t>(257 * in + 3)] = std::nanf("");
  w[static_cast<size_t>(123 * in + 39)] = INFINITY;
  for (DType dt : {DType::BF16, DType::F16, DType::F32}) {
    Tensor stored = tensor_from_f32(dt, {out, in}, w);
    try {
      quantize_weight_per_channel_minmax_stored(dt, stored.bytes.data(), out, in, 8, true);
      FAIL() << "no error for " << dtype_name(dt);
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("non-finite value in output row 123"), std::string::npos) << e.what();
    }
  }
}

TEST(WeightQuant, RejectsBadInput) {
  std::vector<float> w = {1.0f, std::nanf(""), 0.0f, 2.0f};
  try {
    quantize_weight_per_channel_minmax(w.data(), 2, 2, 8, true);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("row 0"), std::string::npos) << e.what();
  }
  std::vector<float> ok = {1.0f, 2.0f};
  EXPECT_THROW(quantize_weight_per_channel_minmax(ok.data(), 0, 2, 8, true), Error);
  EXPECT_THROW(quantize_weight_per_channel_minmax(ok.data(), 1, 2, 16, true), Error);
  QuantizedWeight broken;
  broken.out = 2;
  broken.in = 2;
  std::vector<float> sink(4);
  EXPECT_THROW(dequantize_weight(broken, sink.data()), Error);
}

TEST(FakeQuant, StaticTensor) {
  std::vector<float> x = {0.3f, 100.0f, -0.26f, 0.75f};
  fake_quant_tensor(x.data(), x.size(), 0.5f, 0.0f, 8);
  // 0.6 → 1; 200 → clamp 127; -0.52 → -1; 1.5 → 2
  EXPECT_EQ(x, (std::vector<float>{0.5f, 63.5f, -0.5f, 1.0f}));
  std::vector<float> y = {0.0f, 1.0f};
  fake_quant_tensor(y.data(), y.size(), 0.25f, -128.0f, 8);  // asym: 0 exact, 1 → q = -124
  EXPECT_EQ(y, (std::vector<float>{0.0f, 1.0f}));
}

TEST(FakeQuant, DynamicUsesOneScalePerCall) {
  std::vector<float> x = {-1.0f, 0.5f, 2.0f, 0.01f};
  std::vector<float> orig = x;
  QParams p = fake_quant_dynamic(x.data(), x.size(), 8, true);
  EXPECT_FLOAT_EQ(p.scale[0], 2.0f / 127);
  for (size_t i = 0; i < x.size(); ++i) {
    float expect = round_half_even(orig[i] / p.scale[0]) * p.scale[0];
    EXPECT_EQ(x[i], expect);
  }
  std::vector<float> bad = {1.0f, std::nanf("")};
  EXPECT_THROW(fake_quant_dynamic(bad.data(), bad.size(), 8, true), Error);
}

TEST(FakeQuant, PerTokenUsesOneScalePerRow) {
  // Row 0 is tiny, row 1 large: per-call quantization would zero row 0, per-token keeps it.
  std::vector<float> rows = {0.01f, -0.02f, 100.0f, -50.0f};
  std::vector<float> per_call = rows;
  fake_quant_per_token(rows.data(), 2, 2, 8, true);
  fake_quant_dynamic(per_call.data(), per_call.size(), 8, true);
  EXPECT_NEAR(rows[0], 0.01f, 0.02f / 254 * 1.01f);
  EXPECT_FLOAT_EQ(rows[1], -0.02f);
  EXPECT_EQ(per_call[0], 0.0f);
  EXPECT_FLOAT_EQ(rows[2], 100.0f);
}

}  // namespace
}  // namespace lwq
