// Which (activation, weight) quantizer pairs exist and which lwquant runs.
//
// Three tables from spec §1.6.1:
//  * registered_act_quantizers() / registered_weight_quantizers(): the
//    (dtype, scope, symmetric, method) combinations msModelSlim registers;
//  * msmodelslim_export_rules(): the IR table mapping an (act, weight) scheme
//    pair to the export type it deploys as;
//  * lwquant_supported_rules(): the method-specific rows lwquant implements.
// A config is accepted when its pair matches a row of the last table; any
// other combination is rejected when the config is loaded, with the list of
// valid ones.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/quant_config.h"

namespace lwq {

enum class SymReq { Sym, Asym, Any };

struct SchemePattern {
  QDtype dtype;
  QScope scope;
  SymReq sym;
  std::vector<std::string> methods;  // empty = any method
};

struct ExportRule {
  std::string export_type;  // "W8A8", "W8A8_DYNAMIC", ...
  SchemePattern act, weight;
};

bool matches(const SchemePattern& p, const QConfig& q);
// "int8/per_channel/sym/minmax|ssz"
std::string describe(const SchemePattern& p);

const std::vector<SchemePattern>& registered_act_quantizers();
const std::vector<SchemePattern>& registered_weight_quantizers();
const std::vector<ExportRule>& msmodelslim_export_rules();
const std::vector<ExportRule>& lwquant_supported_rules();
// First rule whose act and weight patterns both match, or nullptr.
const ExportRule* find_rule(const std::vector<ExportRule>& rules, const LinearQConfig& q);

// One line per supported rule, for error messages and --help texts.
std::string supported_schemes_text();

// The supported rule for `q`, with its ext keys checked (ssz step, gptq
// percdamp / block_size / group_size, MX axes); otherwise throws lwq::Error
// naming `where` (e.g. "w8a8.yaml:12: spec.process[0].qconfig"), the
// combination, why it is refused (unregistered quantizer, no IR pair, or not
// implemented) and the supported schemes.
const ExportRule& check_supported(const LinearQConfig& q, const std::string& where);

// A portability caveat for an accepted pair (asymmetric W8A16 / W4A4 weights,
// which some engines ignore the offsets of), or nullopt.
std::optional<std::string> portability_warning(const LinearQConfig& q);

// The export types mindie_format_saver can store (spec §3.10): W8A8 static,
// per-channel W8A8_DYNAMIC, W8A8_MXFP8, W4A4_MXFP4 and W4A4_MXFP4_DUALSCALE
// (FLOAT always).
// `per_group`: per_group weights (never storable).
bool mindie_format_accepts(const std::string& export_type, bool per_group);

// Weight ext values with their defaults (spec §2.7).
int64_t ssz_steps(const QConfig& w);          // ext.step, default 50
double gptq_percdamp(const QConfig& w);       // ext.percdamp, default 0.01
int64_t gptq_block_size(const QConfig& w);    // ext.block_size, default 128
double mx_ceil_x_value(const QConfig& w);     // ceil_x ext.ceil_x_value, default 7.25
// ceil_x ext.enable_search (false), search_min (6), search_max (12), search_step (0.25).
struct MxCeilXSearch {
  bool enabled = false;
  double min = 6.0, max = 12.0, step = 0.25;
};
MxCeilXSearch mx_ceil_x_search_range(const QConfig& w);
// dual_scale ext.dual_block_size (0 when absent; check_supported requires it).
int64_t mx_dual_block_size(const QConfig& q);
// Static activations' ext.aggregation_type: false for "max" (the default),
// true for "mean" (spec §1.6.1); anything else throws.
bool mean_aggregation(const QConfig& a);
// ext.group_size (default 128) for per_group weights, 32 for MX, 0 otherwise.
int64_t weight_group_size(const QConfig& w);

}  // namespace lwq
