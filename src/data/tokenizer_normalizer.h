// tokenizer.json "normalizer" components (HF tokenizers semantics).
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <optional>
#include <string>
#include <vector>

#include "data/tokenizer_regex.h"

namespace lwq {

struct TokNormalizer {
  enum class Kind { Sequence, NFC, NFD, NFKC, NFKD, Lowercase, Replace, Prepend, Strip };
  Kind kind = Kind::Sequence;
  std::vector<TokNormalizer> children;  // Sequence
  std::optional<TokRegex> pattern;      // Replace
  std::string content;                  // Replace: replacement; Prepend: prefix
  bool strip_left = false, strip_right = false;
};

// Throws lwq::Error naming `file` and the type for unknown or malformed components.
TokNormalizer parse_normalizer(const nlohmann::json& j, const std::string& file);

std::string apply_normalizer(const TokNormalizer& n, std::string text);

// Replaces every match of `pattern` in `text` by `content`.
std::string replace_all(const TokRegex& pattern, const std::string& text, const std::string& content);

// Builds a Replace pattern from {"String": s} or {"Regex": r}.
TokRegex parse_replace_pattern(const nlohmann::json& j, const std::string& file,
                               const std::string& what);

}  // namespace lwq
