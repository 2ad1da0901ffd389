// Which (activation, weight) quantizer pairs exist and which lwquant runs.
//
// Two tables. msmodelslim_export_rules() is msModelSlim's IR table (spec
// §1.6.1): it maps a pair of schemes to the export type it deploys as, for any
// registered method. lwquant_supported_rules() is the method-specific subset
// lwquant implements; a new scheme slots in by adding a row there (and its
// processor/saver code), nothing else.
#pragma once

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

const std::vector<ExportRule>& msmodelslim_export_rules();
const std::vector<ExportRule>& lwquant_supported_rules();
// First rule whose act and weight patterns both match, or nullptr.
const ExportRule* find_rule(const std::vector<ExportRule>& rules, const LinearQConfig& q);

// One line per supported rule, for error messages and --help texts.
std::string supported_schemes_text();

// The supported rule for `q`; otherwise throws lwq::Error naming `where`
// (e.g. "w8a8.yaml:12: spec.process[0].qconfig"), the combination, what
// msModelSlim would deploy it as, and the supported schemes.
const ExportRule& check_supported(const LinearQConfig& q, const std::string& where);

}  // namespace lwq
