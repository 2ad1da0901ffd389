// tokenizer.json "decoder" components (HF tokenizers semantics): each turns
// the list of token strings into a new list; the results are concatenated.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <optional>
#include <string>
#include <vector>

#include "data/tokenizer_regex.h"

namespace lwq {

struct TokDecoder {
  enum class Kind { Sequence, Replace, ByteFallback, Fuse, Strip, ByteLevel, Metaspace };
  Kind kind = Kind::Sequence;
  std::vector<TokDecoder> children;      // Sequence
  std::optional<TokRegex> pattern;       // Replace
  std::string content;                   // Replace: replacement; Strip: char; Metaspace: replacement
  size_t start = 0, stop = 0;            // Strip
  bool prepend_never = false;            // Metaspace
};

TokDecoder parse_decoder(const nlohmann::json& j, const std::string& file);

std::vector<std::string> apply_decoder(const TokDecoder& d, std::vector<std::string> tokens);

}  // namespace lwq
