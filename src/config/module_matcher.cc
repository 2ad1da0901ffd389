#include "config/module_matcher.h"

#include <fmt/format.h>

#include <cctype>
#include <optional>
#include <regex>

#include "util/error.h"

namespace lwq {
namespace {

// Index of the '}' closing the '{' at `open`, or npos.
size_t matching_brace(std::string_view s, size_t open) {
  int depth = 0;
  for (size_t i = open; i < s.size(); ++i) {
    if (s[i] == '\\') {
      ++i;
    } else if (s[i] == '{') {
      ++depth;
    } else if (s[i] == '}' && --depth == 0) {
      return i;
    }
  }
  return std::string_view::npos;
}

std::vector<std::string> split_top_level_commas(std::string_view body) {
  std::vector<std::string> parts;
  int depth = 0;
  size_t start = 0;
  for (size_t i = 0; i < body.size(); ++i) {
    if (body[i] == '\\') {
      ++i;
    } else if (body[i] == '{') {
      ++depth;
    } else if (body[i] == '}') {
      --depth;
    } else if (body[i] == ',' && depth == 0) {
      parts.emplace_back(body.substr(start, i - start));
      start = i + 1;
    }
  }
  parts.emplace_back(body.substr(start));
  return parts;
}

// "{1..5}", "{05..10..5}", "{a..e}" → the items, or nullopt if not a sequence.
std::optional<std::vector<std::string>> sequence(std::string_view body, size_t max_items) {
  static const std::regex kNum(R"(([-+]?\d+)\.\.([-+]?\d+)(?:\.\.([-+]?\d+))?)");
  static const std::regex kChar(R"(([A-Za-z])\.\.([A-Za-z])(?:\.\.([-+]?\d+))?)");
  std::string b(body);
  std::smatch m;
  std::vector<std::string> out;
  auto step_of = [](const std::ssub_match& s) -> long long {
    long long st = s.matched ? std::llabs(std::stoll(s.str())) : 1;
    return st == 0 ? 1 : st;
  };
  if (std::regex_match(b, m, kNum)) {
    if (m[1].length() > 18 || m[2].length() > 18) return std::nullopt;
    long long a = std::stoll(m[1].str()), z = std::stoll(m[2].str());
    long long step = step_of(m[3]);
    auto padded = [](const std::string& s) {
      size_t d = (s[0] == '-' || s[0] == '+') ? 1 : 0;
      return s.size() > d + 1 && s[d] == '0';
    };
    size_t width = (padded(m[1].str()) || padded(m[2].str())) ? std::max(m[1].length(), m[2].length()) : 0;
    for (long long v = a; a <= z ? v <= z : v >= z; v += a <= z ? step : -step) {
      if (out.size() >= max_items) fail("brace pattern '{{{}}}' expands to more than {} items", body, max_items);
      std::string digits = std::to_string(std::llabs(v));
      std::string sign = v < 0 ? "-" : "";
      if (digits.size() + sign.size() < width) digits.insert(0, width - digits.size() - sign.size(), '0');
      out.push_back(sign + digits);
    }
    return out;
  }
  if (std::regex_match(b, m, kChar)) {
    int a = m[1].str()[0], z = m[2].str()[0];
    long long step = step_of(m[3]);
    for (long long v = a; a <= z ? v <= z : v >= z; v += a <= z ? step : -step) out.push_back(std::string(1, char(v)));
    return out;
  }
  return std::nullopt;
}

void expand_into(std::string_view s, size_t max_patterns, std::vector<std::string>& out, int depth) {
  if (depth > 64) fail("brace pattern '{}' is nested too deeply", s);
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\') {
      ++i;
      continue;
    }
    if (s[i] != '{') continue;
    size_t close = matching_brace(s, i);
    if (close == std::string_view::npos) continue;  // unbalanced: a literal '{'
    std::string_view body = s.substr(i + 1, close - i - 1);
    std::vector<std::string> alternatives = split_top_level_commas(body);
    if (alternatives.size() < 2) {
      auto seq = sequence(body, max_patterns);
      if (!seq) continue;  // "{a}" is literal; braces inside it may still expand
      alternatives = std::move(*seq);
    }
    std::string prefix(s.substr(0, i));
    std::vector<std::string> tails;
    expand_into(s.substr(close + 1), max_patterns, tails, depth + 1);
    for (const auto& alt : alternatives) {
      std::vector<std::string> heads;
      expand_into(alt, max_patterns, heads, depth + 1);
      for (const auto& h : heads) {
        for (const auto& t : tails) {
          if (out.size() >= max_patterns)
            fail("brace pattern '{}' expands to more than {} patterns", s, max_patterns);
          out.push_back(prefix + h + t);
        }
      }
    }
    return;
  }
  out.emplace_back(s);
}

// One element of a compiled glob.
struct Token {
  enum Kind { Literal, AnyChar, Star, Class };
  explicit Token(Kind k, char ch = 0) : kind(k), c(ch) {}
  Kind kind;
  char c;
  bool negate = false;
  std::vector<bool> set;  // 256 entries for Class
};

bool posix_class(std::string_view name, unsigned char ch, bool& known) {
  known = true;
  if (name == "alnum") return std::isalnum(ch);
  if (name == "alpha") return std::isalpha(ch);
  if (name == "digit") return std::isdigit(ch);
  if (name == "lower") return std::islower(ch);
  if (name == "upper") return std::isupper(ch);
  if (name == "space") return std::isspace(ch);
  if (name == "punct") return std::ispunct(ch);
  if (name == "xdigit") return std::isxdigit(ch);
  if (name == "word") return std::isalnum(ch) || ch == '_';
  known = false;
  return false;
}

// Parses "[...]" starting at `open`; returns the index past ']' or npos when
// the bracket is not closed (then '[' is literal).
size_t parse_class(std::string_view p, size_t open, Token& tok) {
  tok = Token(Token::Class);
  tok.set.assign(256, false);
  size_t i = open + 1;
  if (i < p.size() && (p[i] == '!' || p[i] == '^')) {
    tok.negate = true;
    ++i;
  }
  bool first = true;
  while (i < p.size()) {
    char c = p[i];
    if (c == ']' && !first) return i + 1;
    first = false;
    if (c == '[' && i + 1 < p.size() && p[i + 1] == ':') {
      size_t end = p.find(":]", i + 2);
      if (end != std::string_view::npos) {
        std::string_view name = p.substr(i + 2, end - i - 2);
        bool known = false;
        posix_class(name, 'a', known);
        if (known) {
          for (int ch = 0; ch < 256; ++ch) {
            bool k;
            if (posix_class(name, static_cast<unsigned char>(ch), k)) tok.set[ch] = true;
          }
          i = end + 2;
          continue;
        }
      }
    }
    if (c == '\\' && i + 1 < p.size()) c = p[++i];
    unsigned char lo = static_cast<unsigned char>(c);
    if (i + 2 < p.size() && p[i + 1] == '-' && p[i + 2] != ']') {
      size_t hi_at = i + 2;
      if (p[hi_at] == '\\' && hi_at + 1 < p.size()) ++hi_at;
      unsigned char hi = static_cast<unsigned char>(p[hi_at]);
      for (int ch = lo; ch <= hi; ++ch) tok.set[ch] = true;
      i = hi_at + 1;
      continue;
    }
    tok.set[lo] = true;
    ++i;
  }
  return std::string_view::npos;
}

std::vector<Token> compile(std::string_view p) {
  std::vector<Token> toks;
  for (size_t i = 0; i < p.size(); ++i) {
    char c = p[i];
    if (c == '*') {
      if (toks.empty() || toks.back().kind != Token::Star) toks.emplace_back(Token::Star);
    } else if (c == '?') {
      toks.emplace_back(Token::AnyChar);
    } else if (c == '[') {
      Token t(Token::Class);
      size_t next = parse_class(p, i, t);
      if (next == std::string_view::npos) {
        toks.emplace_back(Token::Literal, '[');
      } else {
        toks.push_back(std::move(t));
        i = next - 1;
      }
    } else if (c == '\\' && i + 1 < p.size()) {
      toks.emplace_back(Token::Literal, p[++i]);
    } else {
      toks.emplace_back(Token::Literal, c);
    }
  }
  return toks;
}

bool token_matches(const Token& t, char c) {
  switch (t.kind) {
    case Token::Literal: return t.c == c;
    case Token::AnyChar: return true;
    case Token::Class: return t.set[static_cast<unsigned char>(c)] != t.negate;
    case Token::Star: return false;
  }
  return false;
}

// Greedy match with backtracking to the last star: O(len(p)·len(s)).
bool glob_match(const std::vector<Token>& toks, std::string_view s) {
  size_t ti = 0, si = 0;
  size_t star_t = std::string_view::npos, star_s = 0;
  while (si < s.size()) {
    if (ti < toks.size() && toks[ti].kind == Token::Star) {
      star_t = ti++;
      star_s = si;
    } else if (ti < toks.size() && token_matches(toks[ti], s[si])) {
      ++ti;
      ++si;
    } else if (star_t != std::string_view::npos) {
      ti = star_t + 1;
      si = ++star_s;
    } else {
      return false;
    }
  }
  while (ti < toks.size() && toks[ti].kind == Token::Star) ++ti;
  return ti == toks.size();
}

bool any_match(const std::vector<std::string>& patterns, std::string_view name) {
  for (const auto& p : patterns)
    if (fnmatch_brace(p, name)) return true;
  return false;
}

std::vector<std::string> unmatched(const std::vector<std::string>& patterns, const std::vector<bool>& hit) {
  std::vector<std::string> out;
  for (size_t i = 0; i < patterns.size(); ++i)
    if (!hit[i] && patterns[i] != "*") out.push_back(patterns[i]);
  return out;
}

}  // namespace

std::vector<std::string> expand_braces(std::string_view pattern, size_t max_patterns) {
  std::vector<std::string> out;
  expand_into(pattern, max_patterns, out, 0);
  return out;
}

bool fnmatch_brace(std::string_view pattern, std::string_view name) {
  if (pattern == name) return true;
  for (const auto& p : expand_braces(pattern))
    if (glob_match(compile(p), name)) return true;
  return false;
}

bool is_selected(const std::vector<std::string>& include, const std::vector<std::string>& exclude,
                 std::string_view name) {
  return any_match(include, name) && !any_match(exclude, name);
}

PatternUsage::PatternUsage(std::vector<std::string> include, std::vector<std::string> exclude)
    : include_(std::move(include)),
      exclude_(std::move(exclude)),
      include_hit_(include_.size(), false),
      exclude_hit_(exclude_.size(), false) {}

bool PatternUsage::select(std::string_view name) {
  bool included = false;
  for (size_t i = 0; i < include_.size(); ++i) {
    if (fnmatch_brace(include_[i], name)) {
      include_hit_[i] = true;
      included = true;
    }
  }
  if (!included) return false;
  bool excluded = false;
  for (size_t i = 0; i < exclude_.size(); ++i) {
    if (fnmatch_brace(exclude_[i], name)) {
      exclude_hit_[i] = true;
      excluded = true;
    }
  }
  return !excluded;
}

std::vector<std::string> PatternUsage::unmatched_include() const { return unmatched(include_, include_hit_); }
std::vector<std::string> PatternUsage::unmatched_exclude() const { return unmatched(exclude_, exclude_hit_); }

std::string PatternUsage::unmatched_warning() const {
  std::vector<std::string> all = unmatched_include();
  for (auto& p : unmatched_exclude()) all.push_back(std::move(p));
  if (all.empty()) return "";
  std::string list;
  for (const auto& p : all) list += fmt::format("{}'{}'", list.empty() ? "" : ", ", p);
  return fmt::format(
      "These include|exclude patterns are not matched any module, please ensure this is as expected: [{}]", list);
}

}  // namespace lwq
