#include "quant/int4_pack.h"

#include "util/error.h"

namespace lwq {
namespace {

bool name_has_any(const std::string& name, std::initializer_list<const char*> parts) {
  for (const char* p : parts)
    if (name.find(p) != std::string::npos) return true;
  return false;
}

}  // namespace

std::vector<int8_t> pack_int4_w4a8(const int8_t* q, int64_t out, int64_t in) {
  if (out % 2 != 0) fail("W4A8 int4 packing pairs output channels: out_features {} is odd", out);
  std::vector<int8_t> p(static_cast<size_t>(out / 2 * in));
  for (int64_t j = 0; j < out / 2; ++j)
    for (int64_t i = 0; i < in; ++i) {
      const int8_t even = q[(2 * j) * in + i], odd = q[(2 * j + 1) * in + i];
      if (even < -8 || even > 7 || odd < -8 || odd > 7)
        fail("W4A8 int4 packing: value outside [-8, 7] at column {}", i);
      p[static_cast<size_t>(j * in + i)] = static_cast<int8_t>(static_cast<uint8_t>((odd << 4) | (even & 0xF)));
    }
  return p;
}

std::vector<int8_t> unpack_int4_w4a8(const int8_t* packed, int64_t out, int64_t in) {
  std::vector<int8_t> q(static_cast<size_t>(out * in));
  for (int64_t j = 0; j < out / 2; ++j)
    for (int64_t i = 0; i < in; ++i) {
      const auto b = static_cast<uint8_t>(packed[j * in + i]);
      auto nibble = [](int v) { return static_cast<int8_t>(v >= 8 ? v - 16 : v); };
      q[static_cast<size_t>((2 * j) * in + i)] = nibble(b & 0xF);
      q[static_cast<size_t>((2 * j + 1) * in + i)] = nibble(b >> 4);
    }
  return q;
}

int64_t w4a8_scale_bias_cols(const std::string& name, int64_t in) {
  if (name_has_any(name, {"up_proj", "gate_proj", "q_proj", "k_proj", "v_proj", "w1", "w3"})) return 1;
  if (name_has_any(name, {"down_proj", "o_proj", "w2"})) return 16;
  return in;
}

std::vector<float> w4a8_scale_bias(const QuantizedWeight& qw, const std::string& name, int64_t& cols) {
  const int64_t out = qw.out, in = qw.in;
  std::vector<float> deq(static_cast<size_t>(out * in));
  dequantize_weight(qw, deq.data());
  if (name_has_any(name, {"up_proj", "gate_proj", "q_proj", "k_proj", "v_proj", "w1", "w3"})) {
    cols = 1;
    std::vector<float> sb(static_cast<size_t>(out));
    for (int64_t o = 0; o < out; ++o) {
      float s = 0.0f;
      for (int64_t i = 0; i < in; ++i) s += deq[static_cast<size_t>(o * in + i)];
      sb[static_cast<size_t>(o)] = 8.0f * s;
    }
    return sb;
  }
  if (name_has_any(name, {"down_proj", "o_proj", "w2"})) {
    constexpr int64_t kChunks = 16;
    if (in % kChunks != 0)
      fail("{}: W4A8_DYNAMIC scale_bias splits in_features into 16 chunks, but in_features {} is not divisible by 16",
           name, in);
    cols = kChunks;
    const int64_t len = in / kChunks;
    std::vector<float> sb(static_cast<size_t>(out * kChunks));
    for (int64_t o = 0; o < out; ++o)
      for (int64_t c = 0; c < kChunks; ++c) {
        float s = 0.0f;
        for (int64_t i = c * len; i < (c + 1) * len; ++i) s += deq[static_cast<size_t>(o * in + i)];
        sb[static_cast<size_t>(o * kChunks + c)] = 8.0f * s;
      }
    return sb;
  }
  cols = in;  // the full dequantized weight (spec §9 quirk 7)
  return deq;
}

}  // namespace lwq
