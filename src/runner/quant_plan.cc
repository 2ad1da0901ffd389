#include "runner/quant_plan.h"

namespace lwq {
namespace {

void collect_leaves(const ProcessorConfig& p, ProcessingUnit& unit) {
  if (p.type == "group") {
    for (const auto& child : p.configs) collect_leaves(child, unit);
    return;
  }
  unit.rules.push_back({&p, PatternUsage(p.include, p.exclude)});
  if (!is_data_free(p.qconfig)) unit.needs_data = true;
}

}  // namespace

const ProcessorConfig* ProcessingUnit::match(const std::string& full_name) {
  for (auto& rule : rules)
    if (rule.patterns.select(full_name)) return rule.config;
  return nullptr;
}

std::vector<ProcessingUnit> build_units(const ServiceConfig& config) {
  std::vector<ProcessingUnit> units;
  for (const auto& p : config.process) {
    ProcessingUnit unit;
    unit.yaml_path = p.yaml_path;
    if (p.is_smoothing() || p.type == "quarot") {
      unit.outlier = &p;
      unit.needs_data = !processor_is_data_free(p);
    } else {
      collect_leaves(p, unit);
    }
    units.push_back(std::move(unit));
  }
  return units;
}

std::vector<std::string> unmatched_pattern_warnings(const std::vector<ProcessingUnit>& units) {
  std::vector<std::string> warnings;
  for (const auto& unit : units)
    for (const auto& rule : unit.rules)
      if (std::string w = rule.patterns.unmatched_warning(); !w.empty())
        warnings.push_back(rule.config->yaml_path + ": " + w);
  return warnings;
}

}  // namespace lwq
