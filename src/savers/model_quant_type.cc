#include "savers/model_quant_type.h"

#include <array>

namespace lwq {
namespace {

constexpr std::array<std::string_view, 13> kPriority = {
    "FLOAT",       "W16A16S",   "W8A16",      "W8A8_DYNAMIC",         "W8A8_MIX",
    "W8A8",        "WFP8AFP8_DYNAMIC", "W8A8_MXFP8", "W4A8_MXFP",   "W4A4_DYNAMIC",
    "W4A4_MXFP4",  "W4A4_MXFP4_DUALSCALE", "W4A4_MXFP4_SVD"};

int rank_of(std::string_view type) {
  for (size_t i = 0; i < kPriority.size(); ++i)
    if (kPriority[i] == type) return static_cast<int>(i);
  return -1;
}

}  // namespace

void ModelQuantType::update(std::string_view type) {
  int candidate = rank_of(type);
  if (candidate < 0) return;
  if (candidate > rank_of(value_)) value_ = std::string(type);
}

}  // namespace lwq
