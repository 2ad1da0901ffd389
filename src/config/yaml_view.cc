#include "config/yaml_view.h"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <regex>

#include "util/error.h"

namespace lwq {
namespace {

constexpr int kMaxMergeDepth = 32;

bool is_plain(const YAML::Node& n) { return n.Tag() != "!"; }

int line_of(const YAML::Node& n) {
  try {
    return n.IsDefined() ? n.Mark().line : -1;
  } catch (const YAML::Exception&) {
    return -1;
  }
}

bool is_merge_key(const YAML::Node& key) {
  return key.IsScalar() && is_plain(key) && key.Scalar() == "<<";
}

void resolve(const YamlContext& ctx, const YAML::Node& map, const std::string& path, int depth,
             std::vector<YamlEntry>& out) {
  if (depth > kMaxMergeDepth) ctx.fail_at(map, path, "merge keys ('<<') nested too deeply");
  if (!map.IsMap()) ctx.fail_at(map, path, "expected a mapping");
  std::vector<YAML::Node> merges;
  for (auto it = map.begin(); it != map.end(); ++it) {
    const YAML::Node key = it->first;
    if (is_merge_key(key)) {
      merges.push_back(it->second);
      continue;
    }
    if (!key.IsScalar()) ctx.fail_at(key, path, "mapping keys must be plain strings");
    auto dup = std::find_if(out.begin(), out.end(), [&](const YamlEntry& e) { return e.key == key.Scalar(); });
    if (dup != out.end()) {
      ctx.warn_at(key, path, fmt::format("duplicate key '{}': the last value wins (as in PyYAML)", key.Scalar()));
      dup->key_node = key;
      dup->value = it->second;
    } else {
      out.push_back({key.Scalar(), key, it->second});
    }
  }
  for (const YAML::Node& m : merges) {
    std::vector<YAML::Node> sources;
    if (m.IsMap()) {
      sources.push_back(m);
    } else if (m.IsSequence()) {
      for (const auto& s : m) sources.push_back(s);
    }
    if (sources.empty() && !m.IsSequence())
      ctx.fail_at(m, path, "merge key '<<' expects a mapping (e.g. *anchor) or a list of mappings");
    for (const YAML::Node& src : sources) {
      if (!src.IsMap()) ctx.fail_at(src, path, "merge key '<<' expects a mapping or a list of mappings");
      std::vector<YamlEntry> merged;
      resolve(ctx, src, path, depth + 1, merged);
      for (auto& e : merged) {
        bool present = std::any_of(out.begin(), out.end(), [&](const YamlEntry& o) { return o.key == e.key; });
        if (!present) out.push_back(std::move(e));
      }
    }
  }
}

std::string type_name(const YAML::Node& n) {
  if (!n.IsDefined() || n.IsNull()) return "null";
  if (n.IsSequence()) return "a list";
  if (n.IsMap()) return "a mapping";
  return fmt::format("'{}'", n.Scalar());
}

void spend(size_t& budget, const YamlContext& ctx, const YAML::Node& n, const std::string& path) {
  if (budget == 0) ctx.fail_at(n, path, "value is too large (alias expansion?)");
  --budget;
}

nlohmann::json to_json(const YamlContext& ctx, const YAML::Node& n, const std::string& path, size_t& budget) {
  spend(budget, ctx, n, path);
  if (!n.IsDefined() || n.IsNull()) return nullptr;
  if (n.IsSequence()) {
    nlohmann::json arr = nlohmann::json::array();
    size_t i = 0;
    for (const auto& item : n) arr.push_back(to_json(ctx, item, fmt::format("{}[{}]", path, i++), budget));
    return arr;
  }
  if (n.IsMap()) {
    nlohmann::json obj = nlohmann::json::object();
    for (const auto& e : map_entries(ctx, n, path)) obj[e.key] = to_json(ctx, e.value, path + "." + e.key, budget);
    return obj;
  }
  if (is_null_scalar(n)) return nullptr;
  if (is_plain(n)) {
    const std::string& s = n.Scalar();
    bool numeric_bool = s == "0" || s == "1";  // ints, not bools, in free-form values
    if (auto b = scalar_bool(n); b && !numeric_bool) return *b;
    if (auto i = scalar_int(n)) return *i;
    if (auto f = scalar_float(n)) return *f;
  }
  return n.Scalar();
}

}  // namespace

std::string YamlContext::where(const YAML::Node& node, const std::string& path) const {
  int line = line_of(node);
  if (line < 0) return fmt::format("{}: {}", source, path);
  return fmt::format("{}:{}: {}", source, line + 1, path);
}

void YamlContext::fail_at(const YAML::Node& node, const std::string& path, const std::string& what) const {
  fail("{}: {}", where(node, path), what);
}

void YamlContext::warn_at(const YAML::Node& node, const std::string& path, const std::string& what) const {
  if (warnings) warnings->push_back(fmt::format("{}: {}", where(node, path), what));
}

std::vector<YamlEntry> map_entries(const YamlContext& ctx, const YAML::Node& map, const std::string& path) {
  std::vector<YamlEntry> out;
  resolve(ctx, map, path, 0, out);
  return out;
}

bool is_null_scalar(const YAML::Node& n) {
  if (!n.IsDefined() || n.IsNull()) return true;
  if (!n.IsScalar() || !is_plain(n)) return false;
  const std::string& s = n.Scalar();
  return s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL";
}

std::optional<bool> scalar_bool(const YAML::Node& n) {
  if (!n.IsDefined() || !n.IsScalar()) return std::nullopt;
  static const char* kTrue[] = {"true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON", "1"};
  static const char* kFalse[] = {"false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF", "0"};
  const std::string& s = n.Scalar();
  for (const char* t : kTrue)
    if (s == t) return true;
  for (const char* f : kFalse)
    if (s == f) return false;
  return std::nullopt;
}

std::optional<int64_t> scalar_int(const YAML::Node& n) {
  if (!n.IsDefined() || !n.IsScalar()) return std::nullopt;
  static const std::regex kInt("[-+]?[0-9]+");
  const std::string& s = n.Scalar();
  if (!std::regex_match(s, kInt)) return std::nullopt;
  errno = 0;
  char* end = nullptr;
  long long v = std::strtoll(s.c_str(), &end, 10);
  if (errno == ERANGE) return std::nullopt;
  return static_cast<int64_t>(v);
}

std::optional<double> scalar_float(const YAML::Node& n) {
  if (!n.IsDefined() || !n.IsScalar()) return std::nullopt;
  static const std::regex kFloat("[-+]?([0-9]+\\.?[0-9]*|\\.[0-9]+)([eE][-+]?[0-9]+)?");
  const std::string& s = n.Scalar();
  if (!std::regex_match(s, kFloat)) return std::nullopt;
  return std::strtod(s.c_str(), nullptr);
}

std::string read_string(const YamlContext& ctx, const YAML::Node& n, const std::string& path) {
  if (!n.IsDefined() || !n.IsScalar() || is_null_scalar(n))
    ctx.fail_at(n, path, fmt::format("expected a string, got {}", type_name(n)));
  return n.Scalar();
}

bool read_bool(const YamlContext& ctx, const YAML::Node& n, const std::string& path) {
  if (auto b = scalar_bool(n)) return *b;
  ctx.fail_at(n, path, fmt::format("expected a boolean (true/false), got {}", type_name(n)));
}

int64_t read_int(const YamlContext& ctx, const YAML::Node& n, const std::string& path) {
  if (auto i = scalar_int(n)) return *i;
  ctx.fail_at(n, path, fmt::format("expected an integer, got {}", type_name(n)));
}

double read_float(const YamlContext& ctx, const YAML::Node& n, const std::string& path) {
  if (auto f = scalar_float(n)) return *f;
  ctx.fail_at(n, path, fmt::format("expected a number, got {}", type_name(n)));
}

std::vector<std::string> read_string_list(const YamlContext& ctx, const YAML::Node& n, const std::string& path) {
  if (!n.IsDefined() || !n.IsSequence())
    ctx.fail_at(n, path, fmt::format("expected a list of strings (e.g. [\"*mlp*\"]), got {}", type_name(n)));
  std::vector<std::string> out;
  size_t i = 0;
  for (const auto& item : n) out.push_back(read_string(ctx, item, fmt::format("{}[{}]", path, i++)));
  return out;
}

nlohmann::json yaml_to_json(const YamlContext& ctx, const YAML::Node& n, const std::string& path,
                            size_t max_nodes) {
  size_t budget = max_nodes;
  return to_json(ctx, n, path, budget);
}

}  // namespace lwq
