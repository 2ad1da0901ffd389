// Which processor owns which Linear: spec §1.7. Processors are visited in
// YAML order, inside a group its children in order; the first linear_quant
// whose include matches and exclude does not owns the Linear.
#pragma once

#include <string>
#include <vector>

#include "config/module_matcher.h"
#include "config/quant_config.h"

namespace lwq {

// One leaf linear_quant and the record of which of its patterns matched.
struct LinearQuantRule {
  const ProcessorConfig* config;
  PatternUsage patterns;
};

// One entry of spec.process: a linear_quant, or a group whose children share
// one calibration forward.
struct ProcessingUnit {
  std::string yaml_path;
  std::vector<LinearQuantRule> rules;  // leaves, in matching order
  bool needs_data = false;             // any child is not data-free
  // An outlier-suppression processor (spec §1.6): a smoothing type (a
  // data-requiring unit that transforms the layer's float weights) or quarot
  // (applied as each layer is loaded). Such a unit owns no Linear.
  const ProcessorConfig* outlier = nullptr;

  // The owning rule's config for `full_name`, or nullptr.
  const ProcessorConfig* match(const std::string& full_name);
};

std::vector<ProcessingUnit> build_units(const ServiceConfig& config);

// msModelSlim's end-of-run warnings for patterns that matched nothing.
std::vector<std::string> unmatched_pattern_warnings(const std::vector<ProcessingUnit>& units);

}  // namespace lwq
