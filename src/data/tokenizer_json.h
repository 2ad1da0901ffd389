// Small checked accessors for tokenizer.json: every failure names the file,
// the component and the key.
#pragma once

#include <nlohmann/json.hpp>

#include <string>

#include "util/error.h"

namespace lwq {

// The "type" of a component object, e.g. "NFC" for a normalizer.
inline std::string json_type(const nlohmann::json& j, const std::string& file, const char* what) {
  if (!j.is_object()) fail("{}: {} must be a JSON object, got {}", file, what, j.type_name());
  auto it = j.find("type");
  if (it == j.end() || !it->is_string()) fail("{}: {} has no string \"type\"", file, what);
  return it->get<std::string>();
}

inline std::string json_string(const nlohmann::json& j, const char* key, const std::string& file,
                               const std::string& what) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_string())
    fail("{}: {} needs a string \"{}\"", file, what, key);
  return it->get<std::string>();
}

inline std::string json_string_or(const nlohmann::json& j, const char* key, std::string fallback) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : fallback;
}

inline bool json_bool_or(const nlohmann::json& j, const char* key, bool fallback) {
  auto it = j.find(key);
  return it != j.end() && it->is_boolean() ? it->get<bool>() : fallback;
}

inline const nlohmann::json& json_array(const nlohmann::json& j, const char* key,
                                        const std::string& file, const std::string& what) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_array()) fail("{}: {} needs an array \"{}\"", file, what, key);
  return *it;
}

}  // namespace lwq
