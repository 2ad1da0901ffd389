#define PCRE2_CODE_UNIT_WIDTH 8
#include "data/tokenizer_regex.h"

#include <pcre2.h>

#include "data/tokenizer_unicode.h"
#include "util/error.h"

namespace lwq {

struct TokRegex::Code {
  pcre2_code* code = nullptr;
  ~Code() { pcre2_code_free(code); }
};

namespace {

// Unicode White_Space, written for use inside a character class.
constexpr const char* kWhiteSpaceRanges =
    "\\t-\\r\\x{20}\\x{85}\\x{a0}\\x{1680}\\x{2000}-\\x{200a}\\x{2028}\\x{2029}\\x{202f}"
    "\\x{205f}\\x{3000}";

std::shared_ptr<const TokRegex::Code> compile(const std::string& pattern, uint32_t options,
                                              const std::string& what) {
  int err = 0;
  PCRE2_SIZE offset = 0;
  // Oniguruma's newline is "\n" only, whatever PCRE2 was built with.
  pcre2_compile_context* ctx = pcre2_compile_context_create(nullptr);
  pcre2_set_newline(ctx, PCRE2_NEWLINE_LF);
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                   options | PCRE2_UTF | PCRE2_NO_UTF_CHECK, &err, &offset, ctx);
  pcre2_compile_context_free(ctx);
  if (!code) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof msg);
    fail("{}: cannot compile regex '{}' at offset {}: {}", what, pattern, offset,
         reinterpret_cast<const char*>(msg));
  }
  pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);  // best effort: the interpreter is the fallback
  auto holder = std::make_shared<TokRegex::Code>();
  holder->code = code;
  return holder;
}

}  // namespace

std::string rewrite_whitespace_classes(const std::string& regex) {
  std::string out;
  bool in_class = false;
  for (size_t i = 0; i < regex.size(); ++i) {
    char c = regex[i];
    if (c == '\\' && i + 1 < regex.size()) {
      char n = regex[i + 1];
      ++i;
      if (n == 's') {
        out += in_class ? std::string(kWhiteSpaceRanges) : "[" + std::string(kWhiteSpaceRanges) + "]";
      } else if (n == 'S' && !in_class) {
        out += "[^" + std::string(kWhiteSpaceRanges) + "]";
      } else {
        out += '\\';
        out += n;  // includes \S inside a class, left to PCRE2
      }
      continue;
    }
    if (c == '[' && !in_class) {
      in_class = true;
      out += c;
      // A ']' (after an optional '^') right at the start is a literal.
      if (i + 1 < regex.size() && regex[i + 1] == '^') out += regex[++i];
      if (i + 1 < regex.size() && regex[i + 1] == ']') out += regex[++i];
      continue;
    }
    if (c == '[' && in_class && i + 1 < regex.size() && regex[i + 1] == ':') {
      size_t end = regex.find(":]", i + 2);  // POSIX class like [:alpha:]
      if (end != std::string::npos) {
        out += regex.substr(i, end + 2 - i);
        i = end + 1;
        continue;
      }
    }
    if (c == ']' && in_class) in_class = false;
    out += c;
  }
  return out;
}

TokRegex TokRegex::pattern(const std::string& regex, const std::string& what) {
  TokRegex r;
  // Oniguruma's Ruby syntax: ^ and $ are always line anchors.
  r.code_ = compile(rewrite_whitespace_classes(regex), PCRE2_UCP | PCRE2_MULTILINE, what);
  return r;
}

TokRegex TokRegex::literal(const std::string& text, const std::string& what) {
  TokRegex r;
  r.code_ = compile(text, PCRE2_LITERAL, what);
  return r;
}

std::vector<std::pair<size_t, size_t>> TokRegex::find_all(std::string_view text) const {
  std::vector<std::pair<size_t, size_t>> out;
  pcre2_match_data* md = pcre2_match_data_create_from_pattern(code_->code, nullptr);
  auto subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t pos = 0;
  bool have_last = false;
  size_t last_end = 0;
  while (pos <= text.size()) {
    int rc = pcre2_match(code_->code, subject, text.size(), pos, PCRE2_NO_UTF_CHECK, md, nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      pcre2_match_data_free(md);
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(rc, msg, sizeof msg);
      fail("tokenizer: regex match failed: {}", reinterpret_cast<const char*>(msg));
    }
    PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    size_t s = ov[0], e = ov[1];
    if (s == e && have_last && last_end == e) {
      // Oniguruma's iterator skips an empty match touching the previous one.
      pos += pos < text.size() ? utf8_len(static_cast<unsigned char>(text[pos])) : 1;
      continue;
    }
    out.emplace_back(s, e);
    have_last = true;
    last_end = e;
    pos = e;
  }
  pcre2_match_data_free(md);
  return out;
}

}  // namespace lwq
