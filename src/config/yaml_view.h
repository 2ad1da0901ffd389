// Reading yaml-cpp trees the way PyYAML (msModelSlim's loader) sees them:
// YAML 1.1 merge keys (`<<: *anchor`, which yaml-cpp 0.7 leaves as a plain
// "<<" key), YAML 1.1 scalar types, and error locations as "file:line: path".
#pragma once

#include <yaml-cpp/yaml.h>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace lwq {

// Where a YAML node came from; prefixes every message.
struct YamlContext {
  std::string source;                  // file name
  std::vector<std::string>* warnings;  // may be null: warnings dropped

  // "file:12: spec.process[0].qconfig" (line omitted when unknown).
  std::string where(const YAML::Node& node, const std::string& path) const;
  [[noreturn]] void fail_at(const YAML::Node& node, const std::string& path, const std::string& what) const;
  void warn_at(const YAML::Node& node, const std::string& path, const std::string& what) const;
};

struct YamlEntry {
  std::string key;
  YAML::Node key_node;
  YAML::Node value;
};

// Entries of a mapping in document order with merge keys resolved as PyYAML
// does: explicit keys win over merged ones, earlier merged maps over later
// ones; nested merges are followed. Duplicate explicit keys: last wins, with a
// warning. Throws lwq::Error if `map` is not a mapping or a merge is malformed.
std::vector<YamlEntry> map_entries(const YamlContext& ctx, const YAML::Node& map, const std::string& path);

// YAML 1.1 plain-scalar typing (PyYAML): quoted scalars are always strings.
bool is_null_scalar(const YAML::Node& n);
std::optional<bool> scalar_bool(const YAML::Node& n);     // true/yes/on..., also 0/1
std::optional<int64_t> scalar_int(const YAML::Node& n);   // decimal integer
std::optional<double> scalar_float(const YAML::Node& n);  // integer or decimal float

// Required-type readers: throw naming the path and the expected type.
std::string read_string(const YamlContext& ctx, const YAML::Node& n, const std::string& path);
bool read_bool(const YamlContext& ctx, const YAML::Node& n, const std::string& path);
int64_t read_int(const YamlContext& ctx, const YAML::Node& n, const std::string& path);
double read_float(const YamlContext& ctx, const YAML::Node& n, const std::string& path);
std::vector<std::string> read_string_list(const YamlContext& ctx, const YAML::Node& n, const std::string& path);

// A free-form value (quantizer `ext`) as JSON, merges resolved and scalars
// typed. Throws if the value expands past `max_nodes` (alias bombs).
nlohmann::json yaml_to_json(const YamlContext& ctx, const YAML::Node& n, const std::string& path,
                            size_t max_nodes = 100000);

}  // namespace lwq
