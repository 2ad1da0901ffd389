#include "config/quant_schemes.h"

#include <fmt/format.h>

#include <algorithm>

#include "util/error.h"

namespace lwq {
namespace {

using D = QDtype;
using S = QScope;

const std::vector<std::string> kWeightMethods = {"minmax", "ssz", "gptq"};

bool data_free_act(const QConfig& a) {
  if (a.method == "none") return true;
  // Dynamic activations are quantized at inference; calibration stats are discarded.
  // dualscale activations are dynamic too (msModelSlim's MXActDualScaleMinmax is data-free).
  if (a.method == "dualscale") return true;
  return a.method == "minmax" && (a.scope == S::PerToken || a.scope == S::PerBlock);
}

bool data_free_weight(const QConfig& w) { return w.method != "gptq"; }

bool any_match(const std::vector<SchemePattern>& table, const QConfig& q) {
  return std::any_of(table.begin(), table.end(), [&q](const SchemePattern& p) { return matches(p, q); });
}

std::string table_text(const std::vector<SchemePattern>& table) {
  std::string out;
  for (const auto& p : table) out += (out.empty() ? "" : ", ") + describe(p);
  return out;
}

// ext values: present and of the right JSON type, or the default.
const nlohmann::json* ext_value(const QConfig& q, const char* key) {
  if (!q.ext.is_object()) return nullptr;
  auto it = q.ext.find(key);
  return it == q.ext.end() || it->is_null() ? nullptr : &*it;
}

int64_t ext_int(const QConfig& q, const char* key, int64_t dflt) {
  const nlohmann::json* v = ext_value(q, key);
  if (!v) return dflt;
  if (!v->is_number_integer()) fail("ext.{} must be an integer, got {}", key, v->dump());
  return v->get<int64_t>();
}

double ext_double(const QConfig& q, const char* key, double dflt) {
  const nlohmann::json* v = ext_value(q, key);
  if (!v) return dflt;
  if (!v->is_number()) fail("ext.{} must be a number, got {}", key, v->dump());
  return v->get<double>();
}

// Both dual_scale quantizers need ext.dual_block_size (msModelSlim: a
// KeyError otherwise). lwquant also needs it to be a multiple of the 32-input
// MX block, so that every inner block lies inside one dual block, and the
// same for activations and weights, since the files hold only the weight's
// dual scales and an engine (or eval) must derive the activations' blocks
// from them (docs/design.md, deliberate differences).
void check_dual_scale(const QConfig& w, const QConfig& a) {
  using Side = std::pair<const QConfig*, const char*>;
  for (const auto& [q, side] : {Side{&w, "weight"}, Side{&a, "act"}}) {
    const nlohmann::json* v = ext_value(*q, "dual_block_size");
    if (!v) fail("{} ext.dual_block_size is required for dual_scale (e.g. 512)", side);
    const int64_t n = mx_dual_block_size(*q);
    if (n <= 0 || n % 32 != 0)
      fail("{} ext.dual_block_size must be a positive multiple of 32 (the MX block inside each dual block), got {}",
           side, n);
  }
  if (mx_dual_block_size(w) != mx_dual_block_size(a))
    fail("act ext.dual_block_size {} differs from weight ext.dual_block_size {}: lwquant needs them equal (the "
         "files store only the weight's dual scales, from which the activation blocks are derived)",
         mx_dual_block_size(a), mx_dual_block_size(w));
}

void check_ext(const QConfig& w, const QConfig& a, const std::string& where) {
  try {
    if (w.method == "ssz" && ssz_steps(w) <= 0) fail("ext.step must be a positive integer, got {}", ssz_steps(w));
    if (w.method == "gptq") {
      const double d = gptq_percdamp(w);
      if (!(d >= 0.0 && d < 1e6)) fail("ext.percdamp must be a non-negative number, got {}", d);
      if (gptq_block_size(w) <= 0) fail("ext.block_size must be a positive integer, got {}", gptq_block_size(w));
    }
    if (w.scope == S::PerGroup && weight_group_size(w) <= 0)
      fail("ext.group_size must be a positive integer, got {}", weight_group_size(w));
    if (a.scope == S::PdMix || (a.scope == S::PerTensor && a.method == "minmax")) {
      // The running observer behind the exported static params
      // (msModelSlim's MinMaxObserverConfig: Literal["max", "mean"]).
      mean_aggregation(a);
    }
    if (w.scope == S::DualScale) check_dual_scale(w, a);
    if (w.method == "ceil_x") {
      // msModelSlim's CeilXExtConfig forbids other keys.
      if (w.ext.is_object())
        for (const auto& [key, v] : w.ext.items())
          if (key != "axes" && key != "ceil_x_value" && key != "enable_search" && key != "search_min" &&
              key != "search_max" && key != "search_step")
            fail("ext.{} is not a ceil_x key (axes, ceil_x_value, enable_search, search_min, search_max, "
                 "search_step)",
                 key);
      const double c = mx_ceil_x_value(w);
      if (!(c >= 6.0 && c <= 12.0)) fail("ext.ceil_x_value must be in [6.0, 12.0], got {}", c);
      const nlohmann::json* search = ext_value(w, "enable_search");
      if (search && !search->is_boolean()) fail("ext.enable_search must be true or false, got {}", search->dump());
      const MxCeilXSearch cs = mx_ceil_x_search_range(w);
      for (const double v : {cs.min, cs.max})
        if (!(v >= 6.0 && v <= 12.0)) fail("ext.search_min and ext.search_max must be in [6.0, 12.0], got {}", v);
      if (!(cs.step > 0.0)) fail("ext.search_step must be positive, got {}", cs.step);
      if (cs.enabled && !(cs.max > cs.min))
        fail("ext.search_max ({}) must be greater than ext.search_min ({})", cs.max, cs.min);
    }
    for (const QConfig* q : {&w, &a})
      if (q->dtype == D::MxFp8 || q->dtype == D::MxFp4) {
        const int64_t axes = ext_int(*q, "axes", -1);
        if (axes != -1) fail("ext.axes {} is not supported: MX blocks run along the last (input) axis (-1)", axes);
      }
  } catch (const Error& e) {
    fail("{}: {}", where, e.what());
  }
}

}  // namespace

bool matches(const SchemePattern& p, const QConfig& q) {
  if (p.dtype != q.dtype || p.scope != q.scope) return false;
  if (p.sym == SymReq::Sym && !q.symmetric) return false;
  if (p.sym == SymReq::Asym && q.symmetric) return false;
  return p.methods.empty() ||
         std::find(p.methods.begin(), p.methods.end(), q.method) != p.methods.end();
}

std::string describe(const SchemePattern& p) {
  const char* sym = p.sym == SymReq::Sym ? "sym" : p.sym == SymReq::Asym ? "asym" : "sym|asym";
  std::string methods;
  for (const auto& m : p.methods) methods += (methods.empty() ? "" : "|") + m;
  return fmt::format("{}/{}/{}/{}", to_string(p.dtype), to_string(p.scope), sym, methods.empty() ? "*" : methods);
}

// Spec §1.6.1, registered activation quantizers.
const std::vector<SchemePattern>& registered_act_quantizers() {
  static const std::vector<SchemePattern> t = {
      {D::Int8, S::PerTensor, SymReq::Any, {"minmax", "histogram"}},
      {D::Fp8E4M3, S::PerTensor, SymReq::Sym, {"minmax"}},
      {D::Int8, S::PerToken, SymReq::Any, {"minmax"}},
      {D::Fp8E4M3, S::PerToken, SymReq::Sym, {"minmax"}},
      {D::Int8, S::PerChannel, SymReq::Any, {"minmax"}},
      {D::Fp8E4M3, S::PerChannel, SymReq::Sym, {"minmax"}},
      {D::Int8, S::PdMix, SymReq::Asym, {"minmax"}},
      {D::MxFp8, S::PerBlock, SymReq::Sym, {"minmax"}},
      {D::MxFp4, S::PerBlock, SymReq::Sym, {"minmax"}},
      {D::Float, S::PerTensor, SymReq::Sym, {"none"}},
      {D::MxFp4, S::DualScale, SymReq::Sym, {"dualscale"}},
  };
  return t;
}

// Spec §1.6.1, registered weight quantizers.
const std::vector<SchemePattern>& registered_weight_quantizers() {
  static const std::vector<SchemePattern> t = {
      {D::Int8, S::PerChannel, SymReq::Sym, {"minmax", "ssz"}},
      {D::Int4, S::PerChannel, SymReq::Sym, {"minmax", "ssz"}},
      {D::Fp8E4M3, S::PerChannel, SymReq::Sym, {"minmax"}},
      {D::MxFp8, S::PerBlock, SymReq::Sym, {"minmax", "mse_round"}},
      {D::MxFp4, S::PerBlock, SymReq::Sym, {"minmax", "ceil_x", "fouroversix"}},
      {D::Int8, S::PerChannel, SymReq::Any, {"gptq"}},
      {D::Int4, S::PerChannel, SymReq::Any, {"gptq"}},
      {D::Int8, S::PerGroup, SymReq::Any, {"gptq"}},
      {D::Int4, S::PerGroup, SymReq::Any, {"gptq"}},
      {D::MxFp4, S::DualScale, SymReq::Sym, {"dualscale"}},
  };
  return t;
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

// What lwquant runs. Deliberate differences from the registry (documented in
// quant_config.h): W8A16 also takes asymmetric minmax weights (with a
// warning); W8A8_DYNAMIC per-group only symmetric weights (msModelSlim writes
// zero offsets for asymmetric ones, spec §9 quirk 5, which deploys wrong
// weights); W4A4_DYNAMIC activations use int4/per_token/sym/minmax, the only
// activation that reaches that IR.
const std::vector<ExportRule>& lwquant_supported_rules() {
  static const SchemePattern token8{D::Int8, S::PerToken, SymReq::Sym, {"minmax"}};
  static const SchemePattern token4{D::Int4, S::PerToken, SymReq::Sym, {"minmax"}};
  static const SchemePattern none{D::Float, S::PerTensor, SymReq::Sym, {"none"}};
  static const SchemePattern mx8w{D::MxFp8, S::PerBlock, SymReq::Sym, {"minmax", "mse_round"}};
  static const SchemePattern mx4w{D::MxFp4, S::PerBlock, SymReq::Sym, {"minmax", "ceil_x", "fouroversix"}};
  static const std::vector<ExportRule> rules = {
      {"W8A8", {D::Int8, S::PerTensor, SymReq::Any, {"minmax", "histogram"}},
       {D::Int8, S::PerChannel, SymReq::Sym, kWeightMethods}},
      {"W8A8_MIX", {D::Int8, S::PdMix, SymReq::Asym, {"minmax"}},
       {D::Int8, S::PerChannel, SymReq::Sym, kWeightMethods}},
      {"W8A8_DYNAMIC", token8, {D::Int8, S::PerChannel, SymReq::Sym, kWeightMethods}},
      {"W8A8_DYNAMIC", token8, {D::Int8, S::PerGroup, SymReq::Sym, {"gptq"}}},
      {"W8A16", none, {D::Int8, S::PerChannel, SymReq::Sym, kWeightMethods}},
      {"W8A16", none, {D::Int8, S::PerChannel, SymReq::Asym, {"minmax", "gptq"}}},
      {"W8A16", none, {D::Int8, S::PerGroup, SymReq::Any, {"gptq"}}},
      {"W4A8_DYNAMIC", token8, {D::Int4, S::PerChannel, SymReq::Sym, kWeightMethods}},
      {"W4A4_DYNAMIC", token4, {D::Int4, S::PerChannel, SymReq::Sym, kWeightMethods}},
      {"W4A4_DYNAMIC", token4, {D::Int4, S::PerChannel, SymReq::Asym, {"gptq"}}},
      {"W4A4_DYNAMIC", token4, {D::Int4, S::PerGroup, SymReq::Any, {"gptq"}}},
      {"WFP8AFP8_DYNAMIC", {D::Fp8E4M3, S::PerToken, SymReq::Sym, {"minmax"}},
       {D::Fp8E4M3, S::PerChannel, SymReq::Sym, {"minmax"}}},
      {"W8A8_MXFP8", {D::MxFp8, S::PerBlock, SymReq::Sym, {"minmax"}}, mx8w},
      {"W4A8_MXFP", {D::MxFp8, S::PerBlock, SymReq::Sym, {"minmax"}}, mx4w},
      {"W4A4_MXFP4", {D::MxFp4, S::PerBlock, SymReq::Sym, {"minmax"}}, mx4w},
      {"W4A4_MXFP4_DUALSCALE", {D::MxFp4, S::DualScale, SymReq::Sym, {"dualscale"}},
       {D::MxFp4, S::DualScale, SymReq::Sym, {"dualscale"}}},
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
  if (const ExportRule* r = find_rule(lwquant_supported_rules(), q)) {
    check_ext(q.weight, q.act, where);
    return *r;
  }
  const ExportRule* ms = find_rule(msmodelslim_export_rules(), q);
  const bool act_ok = any_match(registered_act_quantizers(), q.act) ||
                      (q.act.dtype == D::Int4 && q.act.scope == S::PerToken && q.act.symmetric &&
                       q.act.method == "minmax");
  const bool weight_ok = any_match(registered_weight_quantizers(), q.weight);
  std::string why;
  if (!act_ok)
    why = fmt::format("the activation quantizer {} is not registered (msModelSlim: \"No implementation found\"; "
                      "registered activation quantizers: {})",
                      describe(q.act), table_text(registered_act_quantizers()));
  else if (!weight_ok)
    why = fmt::format("the weight quantizer {} is not registered (registered weight quantizers: {})",
                      describe(q.weight), table_text(registered_weight_quantizers()));
  else if (!ms)
    why = "msModelSlim has no export type for this pair either, so it would fail at deploy";
  else
    why = fmt::format("msModelSlim deploys this scheme pair as {}, which lwquant does not support "
                      "with these methods or this symmetry",
                      ms->export_type);
  fail("{}: unsupported quantization {}: {}. lwquant supports:{}", where, describe(q), why,
       supported_schemes_text());
}

std::optional<std::string> portability_warning(const LinearQConfig& q) {
  const ExportRule* r = find_rule(msmodelslim_export_rules(), q);
  if (!r || q.weight.symmetric) return std::nullopt;
  if (r->export_type == "W8A16" && q.weight.method != "gptq")
    return "asymmetric W8A16 weights: msModelSlim registers asymmetric per-channel weights only for gptq, and "
           "serving engines load W8A16 reliably only when symmetric";
  if (r->export_type == "W8A16")
    return "asymmetric W8A16 weights: serving engines load W8A16 reliably only when symmetric";
  if (r->export_type == "W4A4_DYNAMIC")
    return "asymmetric W4A4_DYNAMIC weights: vLLM-Ascend's kernel ignores weight_offset (ascend_loaders §4.5), "
           "so only symmetric weights deploy the same everywhere";
  return std::nullopt;
}

int64_t ssz_steps(const QConfig& w) { return ext_int(w, "step", 50); }
double gptq_percdamp(const QConfig& w) { return ext_double(w, "percdamp", 0.01); }
int64_t gptq_block_size(const QConfig& w) { return ext_int(w, "block_size", 128); }
double mx_ceil_x_value(const QConfig& w) { return ext_double(w, "ceil_x_value", 7.25); }
MxCeilXSearch mx_ceil_x_search_range(const QConfig& w) {
  MxCeilXSearch s;
  const nlohmann::json* e = ext_value(w, "enable_search");
  s.enabled = e && e->is_boolean() && e->get<bool>();
  s.min = ext_double(w, "search_min", 6.0);
  s.max = ext_double(w, "search_max", 12.0);
  s.step = ext_double(w, "search_step", 0.25);
  return s;
}
int64_t mx_dual_block_size(const QConfig& q) { return ext_int(q, "dual_block_size", 0); }
bool mean_aggregation(const QConfig& a) {
  const nlohmann::json* v = ext_value(a, "aggregation_type");
  if (!v) return false;
  if (v->is_string() && v->get<std::string>() == "max") return false;
  if (v->is_string() && v->get<std::string>() == "mean") return true;
  fail("act ext.aggregation_type must be \"max\" or \"mean\", got {}", v->dump());
}
int64_t weight_group_size(const QConfig& w) {
  if (w.dtype == D::MxFp8 || w.dtype == D::MxFp4) return 32;
  if (w.scope != S::PerGroup) return 0;
  return ext_int(w, "group_size", 128);
}

std::string export_type_of(const LinearQConfig& q) {
  if (const ExportRule* r = find_rule(msmodelslim_export_rules(), q)) return r->export_type;
  fail("no export type for {} (not in msModelSlim's act/weight scheme table)", describe(q));
}

bool is_data_free(const LinearQConfig& q) { return data_free_act(q.act) && data_free_weight(q.weight); }

bool mindie_format_accepts(const std::string& export_type, bool per_group) {
  if (per_group) return false;
  return export_type == "W8A8" || export_type == "W8A8_DYNAMIC" || export_type == "W8A8_MXFP8" ||
         export_type == "W4A4_MXFP4" || export_type == "W4A4_MXFP4_DUALSCALE";
}

}  // namespace lwq
