// Regex matching for tokenizer.json patterns. HF `tokenizers` uses Oniguruma;
// PCRE2 (UTF + UCP) accepts the same syntax for the patterns tokenizers ship.
// Oniguruma (Ruby syntax) differences handled: `^`/`$` are line anchors
// (multiline), newline is LF only, and `\s` / `\S` mean Unicode White_Space
// (PCRE2's own \s also takes U+180E), so they are rewritten.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace lwq {

class TokRegex {
 public:
  // Throws lwq::Error (with `what` in the message) if the pattern does not compile.
  static TokRegex pattern(const std::string& regex, const std::string& what);
  // Matches `text` literally (a tokenizer.json {"String": ...} pattern).
  static TokRegex literal(const std::string& text, const std::string& what);

  // All non-overlapping matches as [start, end) byte offsets, leftmost first,
  // with Oniguruma's rule for empty matches (none right after a previous match).
  // `text` must be valid UTF-8.
  std::vector<std::pair<size_t, size_t>> find_all(std::string_view text) const;

 struct Code;  // the compiled PCRE2 pattern

 private:
  std::shared_ptr<const Code> code_;
};

// Exposed for tests: the pattern with \s and \S replaced by explicit White_Space classes.
std::string rewrite_whitespace_classes(const std::string& regex);

}  // namespace lwq
