#include "config/quant_config.h"

#include <fmt/format.h>

#include <array>
#include <utility>

namespace lwq {
namespace {

constexpr std::array<std::pair<QDtype, std::string_view>, 6> kDtypes{{
    {QDtype::Int8, "int8"},
    {QDtype::Int4, "int4"},
    {QDtype::Fp8E4M3, "fp8_e4m3"},
    {QDtype::MxFp8, "mxfp8"},
    {QDtype::MxFp4, "mxfp4"},
    {QDtype::Float, "float"},
}};

constexpr std::array<std::pair<QScope, std::string_view>, 8> kScopes{{
    {QScope::PerTensor, "per_tensor"},
    {QScope::PerChannel, "per_channel"},
    {QScope::PerGroup, "per_group"},
    {QScope::PerBlock, "per_block"},
    {QScope::PerToken, "per_token"},
    {QScope::PdMix, "pd_mix"},
    {QScope::PerHead, "per_head"},
    {QScope::DualScale, "dual_scale"},
}};

template <typename Table>
std::string joined_names(const Table& table) {
  std::string out;
  for (const auto& [value, name] : table) {
    if (!out.empty()) out += ", ";
    out += name;
  }
  return out;
}

}  // namespace

std::string_view to_string(QDtype d) {
  for (const auto& [value, name] : kDtypes)
    if (value == d) return name;
  return "?";
}

std::string_view to_string(QScope s) {
  for (const auto& [value, name] : kScopes)
    if (value == s) return name;
  return "?";
}

std::optional<QDtype> parse_qdtype(std::string_view s) {
  for (const auto& [value, name] : kDtypes)
    if (name == s) return value;
  return std::nullopt;
}

std::optional<QScope> parse_qscope(std::string_view s) {
  for (const auto& [value, name] : kScopes)
    if (name == s) return value;
  return std::nullopt;
}

std::string qdtype_names() { return joined_names(kDtypes); }
std::string qscope_names() { return joined_names(kScopes); }

std::string_view to_string(RunnerType r) {
  switch (r) {
    case RunnerType::Auto: return "auto";
    case RunnerType::LayerWise: return "layer_wise";
    case RunnerType::ModelWise: return "model_wise";
    case RunnerType::DpLayerWise: return "dp_layer_wise";
  }
  return "?";
}

std::string describe(const QConfig& q) {
  return fmt::format("{}/{}/{}/{}", to_string(q.dtype), to_string(q.scope),
                     q.symmetric ? "sym" : "asym", q.method);
}

std::string describe(const LinearQConfig& q) {
  return fmt::format("act {} + weight {}", describe(q.act), describe(q.weight));
}

}  // namespace lwq
