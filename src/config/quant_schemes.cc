#include "config/quant_schemes.h"

#include <fmt/format.h>

#include <algorithm>

#include "util/error.h"

namespace lwq {
namespace {

using D = QDtype;
using S = QScope;

std::string describe(const SchemePattern& p) {
  const char* sym = p.sym == SymReq::Sym ? "sym" : p.sym == SymReq::Asym ? "asym" : "sym|asym";
  std::string methods;
  for (const auto& m : p.methods) methods += (methods.empty() ? "" : "|") + m;
  return fmt::format("{}/{}/{}/{}", to_string(p.dtype), to_string(p.scope), sym,
                     methods.empty() ? "*" : methods);
}

bool data_free_act(const QConfig& a) {
  if (a.method == "none") return true;
  // Dynamic activations are quantized at inference; calibration stats are discarded.
  return a.method == "minmax" && (a.scope == S::PerToken || a.scope == S::PerBlock);
}

bool data_free_weight(const QConfig& w) { return w.method == "minmax" || w.method == "ssz"; }

}  // namespace

bool matches(const SchemePattern& p, const QConfig& q) {
  if (p.dtype != q.dtype || p.scope != q.scope) return false;
  if (p.sym == SymReq::Sym && !q.symmetric) return false;
  if (p.sym == SymReq::Asym && q.symmetric) return false;
  return p.methods.empty() ||
         std::find(p.methods.begin(), p.methods.end(), q.method) != p.methods.end();
}

const std::vector<ExportRule>& msmodelslim_export_rules() {
  static const std::vector<ExportRule> rules = {
      {"W8A8", {D::Int8, S::PerTensor, SymReq::Any, {}}, {D::Int8, S::PerChannel, SymReq::Sym, {}}},
      {"W8A8_MIX", {D::Int8, S::PdMix, SymReq::Asym, {}}, {D::Int8, S::PerChannel, SymReq::Sym, {}}},
      {"W8A8_DYNAMIC", {D::Int8, S::PerToken, SymReq::Sym, {}}, {D::Int8, S::PerChannel, SymReq::Sym, {}}},
      {"W8A8_DYNAMIC", {D::Int8, S::PerToken, SymReq::Sym, {}}, {D::Int8, S::PerGroup, SymReq::Any, {}}},
      {"W8A16", {D::Float, S::PerTensor, SymReq::Sym, {}}, {D::Int8, S::PerChannel, SymReq::Any, {}}},
      {"W8A16", {D::Float, S::PerTensor, SymReq::Sym, {}}, {D::Int8, S::PerGroup, SymReq::Any, {}}},
      {"W4A8_DYNAMIC", {D::Int8, S::PerToken, SymReq::Sym, {}}, {D::Int4, S::PerChannel, SymReq::Sym, {}}},
      {"W4A4_DYNAMIC", {D::Int4, S::PerToken, SymReq::Sym, {}}, {D::Int4, S::PerChannel, SymReq::Any, {}}},
      {"W4A4_DYNAMIC", {D::Int4, S::PerToken, SymReq::Sym, {}}, {D::Int4, S::PerGroup, SymReq::Any, {}}},
      {"WFP8AFP8_DYNAMIC", {D::Fp8E4M3, S::PerToken, SymReq::Sym, {}},
       {D::Fp8E4M3, S::PerChannel, SymReq::Sym, {}}},
      {"W8A8_MXFP8", {D::MxFp8, S::PerBlock, SymReq::Any, {}}, {D::MxFp8, S::PerBlock, SymReq::Any, {}}},
      {"W4A8_MXFP", {D::MxFp8, S::PerBlock, SymReq::Any, {}}, {D::MxFp4, S::PerBlock, SymReq::Any, {}}},
      {"W4A4_MXFP4", {D::MxFp4, S::PerBlock, SymReq::Any, {}}, {D::MxFp4, S::PerBlock, SymReq::Any, {}}},
      {"W4A4_MXFP4_DUALSCALE", {D::MxFp4, S::DualScale, SymReq::Any, {}},
       {D::MxFp4, S::DualScale, SymReq::Any, {}}},
  };
  return rules;
}

const std::vector<ExportRule>& lwquant_supported_rules() {
  static const std::vector<ExportRule> rules = {
      {"W8A8", {D::Int8, S::PerTensor, SymReq::Any, {"minmax"}},
       {D::Int8, S::PerChannel, SymReq::Sym, {"minmax"}}},
      {"W8A8_DYNAMIC", {D::Int8, S::PerToken, SymReq::Sym, {"minmax"}},
       {D::Int8, S::PerChannel, SymReq::Sym, {"minmax"}}},
      {"W8A16", {D::Float, S::PerTensor, SymReq::Sym, {"none"}},
       {D::Int8, S::PerChannel, SymReq::Any, {"minmax"}}},
  };
  return rules;
}

const ExportRule* find_rule(const std::vector<ExportRule>& rules, const LinearQConfig& q) {
  for (const auto& r : rules)
    if (matches(r.act, q.act) && matches(r.weight, q.weight)) return &r;
  return nullptr;
}

std::string supported_schemes_text() {
  std::string out;
  for (const auto& r : lwquant_supported_rules())
    out += fmt::format("\n  {}: act {} + weight {}", r.export_type, describe(r.act), describe(r.weight));
  return out;
}

const ExportRule& check_supported(const LinearQConfig& q, const std::string& where) {
  if (const ExportRule* r = find_rule(lwquant_supported_rules(), q)) return *r;
  const ExportRule* ms = find_rule(msmodelslim_export_rules(), q);
  std::string why = ms ? fmt::format("msModelSlim deploys this scheme pair as {}, which lwquant does not support "
                                     "yet with these methods",
                                     ms->export_type)
                       : "msModelSlim has no export type for this pair either, so it would fail at deploy";
  fail("{}: unsupported quantization {}: {}. lwquant supports:{}", where, describe(q), why,
       supported_schemes_text());
}

std::string export_type_of(const LinearQConfig& q) {
  if (const ExportRule* r = find_rule(msmodelslim_export_rules(), q)) return r->export_type;
  fail("no export type for {} (not in msModelSlim's act/weight scheme table)", describe(q));
}

bool is_data_free(const LinearQConfig& q) { return data_free_act(q.act) && data_free_weight(q.weight); }

}  // namespace lwq
