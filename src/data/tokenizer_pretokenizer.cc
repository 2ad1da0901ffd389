#include "data/tokenizer_pretokenizer.h"

#include <unicode/uchar.h>

#include <algorithm>
#include <functional>
#include <nlohmann/json.hpp>

#include "data/tokenizer_json.h"
#include "data/tokenizer_normalizer.h"
#include "data/tokenizer_unicode.h"
#include "util/error.h"

namespace lwq {
namespace {

const TokRegex& gpt2_regex() {
  static const TokRegex re = TokRegex::pattern(
      R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)",
      "ByteLevel pre-tokenizer");
  return re;
}

SplitBehavior parse_behavior(const std::string& s, const std::string& file) {
  if (s == "Removed") return SplitBehavior::Removed;
  if (s == "Isolated") return SplitBehavior::Isolated;
  if (s == "MergedWithPrevious") return SplitBehavior::MergedWithPrevious;
  if (s == "MergedWithNext") return SplitBehavior::MergedWithNext;
  if (s == "Contiguous") return SplitBehavior::Contiguous;
  fail("{}: unknown Split behavior \"{}\"", file, s);
}

// Spans covering all of `text`, from regex matches (HF Pattern::find_matches).
std::vector<Span> regex_spans(const TokRegex& re, const std::string& text) {
  std::vector<Span> spans;
  if (text.empty()) return {{0, 0, false}};
  size_t prev = 0;
  for (auto [s, e] : re.find_all(text)) {
    if (prev != s) spans.push_back({prev, s, false});
    spans.push_back({s, e, true});
    prev = e;
  }
  if (prev != text.size()) spans.push_back({prev, text.size(), false});
  return spans;
}

// Spans from a per-character predicate: every matching char is its own match.
std::vector<Span> char_spans(const std::string& text, const std::function<bool(char32_t)>& pred) {
  std::vector<Span> spans;
  if (text.empty()) return {{0, 0, false}};
  size_t last = 0;
  for (size_t pos = 0; pos < text.size();) {
    size_t n = utf8_len(static_cast<unsigned char>(text[pos]));
    if (pred(utf8_decode_at(text, pos))) {
      if (last < pos) spans.push_back({last, pos, false});
      spans.push_back({pos, pos + n, true});
      last = pos + n;
    }
    pos += n;
  }
  if (last < text.size()) spans.push_back({last, text.size(), false});
  return spans;
}

bool is_numeric(char32_t c) {
  int32_t mask = U_GET_GC_MASK(static_cast<UChar32>(c));
  return (mask & (U_GC_ND_MASK | U_GC_NL_MASK | U_GC_NO_MASK)) != 0;
}

std::string byte_level_map(const std::string& text) {
  const auto& chars = byte_level_chars();
  std::string out;
  out.reserve(text.size() * 2);
  for (unsigned char b : text) out += chars[b];
  return out;
}

template <typename F>
void split_each(std::vector<PreToken>& pieces, F&& split_one) {
  std::vector<PreToken> out;
  out.reserve(pieces.size());
  for (auto& piece : pieces) {
    for (auto& sub : split_one(piece))
      if (!sub.text.empty()) out.push_back(std::move(sub));
  }
  pieces = std::move(out);
}

}  // namespace

std::vector<PreToken> split_spans(const PreToken& piece, const std::vector<Span>& spans,
                                  SplitBehavior behavior) {
  // (start, end, remove) like NormalizedString::split.
  std::vector<Span> cuts;
  switch (behavior) {
    case SplitBehavior::Isolated:
      for (auto s : spans) cuts.push_back({s.start, s.end, false});
      break;
    case SplitBehavior::Removed:
      cuts = spans;
      break;
    case SplitBehavior::Contiguous: {
      bool prev_match = false;
      for (auto s : spans) {
        if (s.is_match == prev_match && !cuts.empty()) cuts.back().end = s.end;
        else cuts.push_back({s.start, s.end, false});
        prev_match = s.is_match;
      }
      break;
    }
    case SplitBehavior::MergedWithPrevious: {
      bool prev_match = false;
      for (auto s : spans) {
        if (s.is_match && !prev_match && !cuts.empty()) cuts.back().end = s.end;
        else cuts.push_back({s.start, s.end, false});
        prev_match = s.is_match;
      }
      break;
    }
    case SplitBehavior::MergedWithNext: {
      bool prev_match = false;
      for (auto it = spans.rbegin(); it != spans.rend(); ++it) {
        if (it->is_match && !prev_match && !cuts.empty()) cuts.back().start = it->start;
        else cuts.push_back({it->start, it->end, false});
        prev_match = it->is_match;
      }
      std::reverse(cuts.begin(), cuts.end());
      break;
    }
  }
  std::vector<PreToken> out;
  for (auto c : cuts) {
    if (c.is_match || c.start == c.end) continue;  // is_match here means "remove"
    out.push_back({piece.text.substr(c.start, c.end - c.start), piece.orig_start + c.start});
  }
  return out;
}

TokPreTokenizer parse_pre_tokenizer(const nlohmann::json& j, const std::string& file) {
  std::string type = json_type(j, file, "pre_tokenizer");
  TokPreTokenizer p;
  using K = TokPreTokenizer::Kind;
  if (type == "Sequence") {
    p.kind = K::Sequence;
    for (const auto& child : json_array(j, "pretokenizers", file, "pre_tokenizer Sequence"))
      p.children.push_back(parse_pre_tokenizer(child, file));
  } else if (type == "Split") {
    p.kind = K::Split;
    p.pattern = parse_replace_pattern(j, file, "pre_tokenizer Split");
    p.behavior = parse_behavior(json_string(j, "behavior", file, "pre_tokenizer Split"), file);
    p.invert = json_bool_or(j, "invert", false);
  } else if (type == "ByteLevel") {
    p.kind = K::ByteLevel;
    p.add_prefix_space = json_bool_or(j, "add_prefix_space", true);
    p.use_regex = json_bool_or(j, "use_regex", true);
  } else if (type == "Metaspace") {
    p.kind = K::Metaspace;
    p.replacement = json_string(j, "replacement", file, "pre_tokenizer Metaspace");
    if (p.replacement.empty() || utf8_len(p.replacement[0]) != p.replacement.size())
      fail("{}: Metaspace replacement must be one character", file);
    std::string scheme = json_string_or(j, "prepend_scheme", "always");
    if (scheme == "always") p.prepend = TokPreTokenizer::Prepend::Always;
    else if (scheme == "first") p.prepend = TokPreTokenizer::Prepend::First;
    else if (scheme == "never") p.prepend = TokPreTokenizer::Prepend::Never;
    else fail("{}: unknown Metaspace prepend_scheme \"{}\"", file, scheme);
    // Older files only carry add_prefix_space.
    if (auto it = j.find("add_prefix_space"); it != j.end() && it->is_boolean() && !it->get<bool>())
      p.prepend = TokPreTokenizer::Prepend::Never;
    p.split = json_bool_or(j, "split", true);
  } else if (type == "Digits") {
    p.kind = K::Digits;
    p.individual_digits = json_bool_or(j, "individual_digits", false);
  } else if (type == "WhitespaceSplit") {
    p.kind = K::WhitespaceSplit;
  } else {
    fail("{}: unsupported pre_tokenizer type \"{}\"", file, type);
  }
  return p;
}

void apply_pre_tokenizer(const TokPreTokenizer& p, std::vector<PreToken>& pieces) {
  using K = TokPreTokenizer::Kind;
  switch (p.kind) {
    case K::Sequence:
      for (const auto& child : p.children) apply_pre_tokenizer(child, pieces);
      return;
    case K::Split:
      split_each(pieces, [&](const PreToken& piece) {
        auto spans = regex_spans(*p.pattern, piece.text);
        if (p.invert)
          for (auto& s : spans) s.is_match = !s.is_match;
        return split_spans(piece, spans, p.behavior);
      });
      return;
    case K::ByteLevel:
      split_each(pieces, [&](PreToken piece) {
        if (p.add_prefix_space && (piece.text.empty() || piece.text[0] != ' '))
          piece.text = " " + piece.text;
        if (!p.use_regex) return std::vector<PreToken>{piece};
        return split_spans(piece, regex_spans(gpt2_regex(), piece.text), SplitBehavior::Isolated);
      });
      for (auto& piece : pieces) piece.text = byte_level_map(piece.text);
      return;
    case K::Metaspace: {
      char32_t rep = utf8_decode_at(p.replacement, 0);
      static const TokRegex space = TokRegex::literal(" ", "Metaspace");
      split_each(pieces, [&](PreToken piece) {
        piece.text = replace_all(space, piece.text, p.replacement);
        bool starts = piece.text.compare(0, p.replacement.size(), p.replacement) == 0;
        bool prepend = p.prepend == TokPreTokenizer::Prepend::Always ||
                       (p.prepend == TokPreTokenizer::Prepend::First && piece.orig_start == 0);
        // HF prepends only to non-empty text (NormalizedString::prepend).
        if (prepend && !starts && !piece.text.empty()) piece.text.insert(0, p.replacement);
        if (!p.split) return std::vector<PreToken>{piece};
        return split_spans(piece, char_spans(piece.text, [rep](char32_t c) { return c == rep; }),
                           SplitBehavior::MergedWithNext);
      });
      return;
    }
    case K::Digits:
      split_each(pieces, [&](const PreToken& piece) {
        return split_spans(piece, char_spans(piece.text, is_numeric),
                           p.individual_digits ? SplitBehavior::Isolated : SplitBehavior::Contiguous);
      });
      return;
    case K::WhitespaceSplit:
      split_each(pieces, [&](const PreToken& piece) {
        return split_spans(piece, char_spans(piece.text, unicode_is_whitespace),
                           SplitBehavior::Removed);
      });
      return;
  }
}

}  // namespace lwq
