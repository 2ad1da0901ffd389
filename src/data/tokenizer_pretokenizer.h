// tokenizer.json "pre_tokenizer" components (HF tokenizers semantics).
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <optional>
#include <string>
#include <vector>

#include "data/tokenizer_regex.h"

namespace lwq {

// A piece of normalized text; `orig_start` is where it began in the input
// (Metaspace's prepend_scheme "first" only prepends at the very start).
struct PreToken {
  std::string text;
  size_t orig_start = 0;
};

enum class SplitBehavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };

struct TokPreTokenizer {
  enum class Kind { Sequence, Split, ByteLevel, Metaspace, Digits, WhitespaceSplit };
  enum class Prepend { Always, First, Never };
  Kind kind = Kind::Sequence;
  std::vector<TokPreTokenizer> children;  // Sequence
  std::optional<TokRegex> pattern;        // Split
  SplitBehavior behavior = SplitBehavior::Isolated;
  bool invert = false;                    // Split
  bool add_prefix_space = false;          // ByteLevel
  bool use_regex = true;                  // ByteLevel
  std::string replacement = "\xE2\x96\x81";  // Metaspace ("▁")
  Prepend prepend = Prepend::Always;      // Metaspace
  bool split = true;                      // Metaspace
  bool individual_digits = false;         // Digits
};

TokPreTokenizer parse_pre_tokenizer(const nlohmann::json& j, const std::string& file);

// Splits (and for ByteLevel, byte-maps) the pieces in place; drops empty pieces.
void apply_pre_tokenizer(const TokPreTokenizer& p, std::vector<PreToken>& pieces);

// Cuts `text` at the given (offsets, is_match) spans according to `behavior`.
struct Span {
  size_t start, end;
  bool is_match;
};
std::vector<PreToken> split_spans(const PreToken& piece, const std::vector<Span>& spans,
                                  SplitBehavior behavior);

}  // namespace lwq
