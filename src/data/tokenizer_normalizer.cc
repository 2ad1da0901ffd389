#include "data/tokenizer_normalizer.h"

#include <nlohmann/json.hpp>

#include "data/tokenizer_json.h"
#include "data/tokenizer_unicode.h"
#include "util/error.h"

namespace lwq {
namespace {

std::string strip_whitespace(const std::string& text, bool left, bool right) {
  size_t begin = 0, end = text.size();
  if (left) {
    while (begin < end && unicode_is_whitespace(utf8_decode_at(text, begin)))
      begin += utf8_len(static_cast<unsigned char>(text[begin]));
  }
  if (right) {
    while (end > begin) {
      size_t p = end - 1;
      while (p > begin && (static_cast<unsigned char>(text[p]) & 0xC0) == 0x80) --p;
      if (!unicode_is_whitespace(utf8_decode_at(text, p))) break;
      end = p;
    }
  }
  return text.substr(begin, end - begin);
}

}  // namespace

TokRegex parse_replace_pattern(const nlohmann::json& j, const std::string& file,
                               const std::string& what) {
  auto it = j.find("pattern");
  if (it == j.end() || !it->is_object()) fail("{}: {} needs an object \"pattern\"", file, what);
  if (auto s = it->find("String"); s != it->end() && s->is_string())
    return TokRegex::literal(s->get<std::string>(), file + ": " + what);
  if (auto r = it->find("Regex"); r != it->end() && r->is_string())
    return TokRegex::pattern(r->get<std::string>(), file + ": " + what);
  fail("{}: {} pattern must be {{\"String\": ...}} or {{\"Regex\": ...}}", file, what);
}

TokNormalizer parse_normalizer(const nlohmann::json& j, const std::string& file) {
  std::string type = json_type(j, file, "normalizer");
  TokNormalizer n;
  using K = TokNormalizer::Kind;
  if (type == "Sequence") {
    n.kind = K::Sequence;
    for (const auto& child : json_array(j, "normalizers", file, "normalizer Sequence"))
      n.children.push_back(parse_normalizer(child, file));
  } else if (type == "NFC") {
    n.kind = K::NFC;
  } else if (type == "NFD") {
    n.kind = K::NFD;
  } else if (type == "NFKC") {
    n.kind = K::NFKC;
  } else if (type == "NFKD") {
    n.kind = K::NFKD;
  } else if (type == "Lowercase") {
    n.kind = K::Lowercase;
  } else if (type == "Replace") {
    n.kind = K::Replace;
    n.pattern = parse_replace_pattern(j, file, "normalizer Replace");
    n.content = json_string(j, "content", file, "normalizer Replace");
  } else if (type == "Prepend") {
    n.kind = K::Prepend;
    n.content = json_string(j, "prepend", file, "normalizer Prepend");
  } else if (type == "Strip") {
    n.kind = K::Strip;
    n.strip_left = json_bool_or(j, "strip_left", false);
    n.strip_right = json_bool_or(j, "strip_right", false);
  } else {
    fail("{}: unsupported normalizer type \"{}\"", file, type);
  }
  return n;
}

std::string replace_all(const TokRegex& pattern, const std::string& text, const std::string& content) {
  auto matches = pattern.find_all(text);
  if (matches.empty()) return text;
  std::string out;
  size_t prev = 0;
  for (auto [s, e] : matches) {
    out.append(text, prev, s - prev);
    out += content;
    prev = e;
  }
  out.append(text, prev, std::string::npos);
  return out;
}

std::string apply_normalizer(const TokNormalizer& n, std::string text) {
  using K = TokNormalizer::Kind;
  switch (n.kind) {
    case K::Sequence:
      for (const auto& child : n.children) text = apply_normalizer(child, std::move(text));
      return text;
    case K::NFC: return unicode_normalize(text, NormForm::NFC);
    case K::NFD: return unicode_normalize(text, NormForm::NFD);
    case K::NFKC: return unicode_normalize(text, NormForm::NFKC);
    case K::NFKD: return unicode_normalize(text, NormForm::NFKD);
    case K::Lowercase: return unicode_lowercase(text);
    case K::Replace: return replace_all(*n.pattern, text, n.content);
    case K::Prepend: return text.empty() ? text : n.content + text;
    case K::Strip: return strip_whitespace(text, n.strip_left, n.strip_right);
  }
  return text;
}

}  // namespace lwq
