#include "data/tokenizer_unicode.h"

#include <unicode/uchar.h>
#include <unicode/unorm2.h>
#include <unicode/ustring.h>

#include <vector>

#include "util/error.h"

namespace lwq {
namespace {

// Length of the valid prefix of the UTF-8 sequence at text[pos] (0 if the lead
// byte itself is invalid), and whether it is complete. Follows the Unicode
// "maximal subpart" rule that Rust's lossy conversion uses.
struct Utf8Probe {
  size_t valid_len;
  bool complete;
};

Utf8Probe probe_utf8(std::string_view text, size_t pos) {
  auto b0 = static_cast<unsigned char>(text[pos]);
  if (b0 < 0x80) return {1, true};
  size_t need;
  unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    need = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    need = 3;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;  // no surrogates
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    need = 4;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    return {0, false};
  }
  size_t got = 1;
  while (got < need && pos + got < text.size()) {
    auto b = static_cast<unsigned char>(text[pos + got]);
    bool ok = got == 1 ? (b >= lo && b <= hi) : (b >= 0x80 && b <= 0xBF);
    if (!ok) break;
    ++got;
  }
  return {got, got == need};
}

std::u16string to_utf16(std::string_view text) {
  std::u16string out(text.size() + 1, u'\0');
  int32_t len = 0;
  UErrorCode err = U_ZERO_ERROR;
  u_strFromUTF8(reinterpret_cast<UChar*>(out.data()), static_cast<int32_t>(out.size()), &len,
                text.data(), static_cast<int32_t>(text.size()), &err);
  if (U_FAILURE(err)) fail("tokenizer: cannot convert text to UTF-16: {}", u_errorName(err));
  out.resize(len);
  return out;
}

std::string to_utf8(const std::u16string& text) {
  std::string out(text.size() * 3 + 1, '\0');
  int32_t len = 0;
  UErrorCode err = U_ZERO_ERROR;
  u_strToUTF8(out.data(), static_cast<int32_t>(out.size()), &len,
              reinterpret_cast<const UChar*>(text.data()), static_cast<int32_t>(text.size()), &err);
  if (U_FAILURE(err)) fail("tokenizer: cannot convert text to UTF-8: {}", u_errorName(err));
  out.resize(len);
  return out;
}

bool is_ascii(std::string_view text) {
  for (char c : text)
    if (static_cast<unsigned char>(c) >= 0x80) return false;
  return true;
}

}  // namespace

bool utf8_valid(std::string_view text) {
  for (size_t pos = 0; pos < text.size();) {
    Utf8Probe p = probe_utf8(text, pos);
    if (!p.complete) return false;
    pos += p.valid_len;
  }
  return true;
}

char32_t utf8_decode_at(std::string_view text, size_t pos) {
  auto b0 = static_cast<unsigned char>(text[pos]);
  size_t n = utf8_len(b0);
  if (n == 1) return b0;
  char32_t c = b0 & (0x7F >> n);
  for (size_t i = 1; i < n && pos + i < text.size(); ++i)
    c = (c << 6) | (static_cast<unsigned char>(text[pos + i]) & 0x3F);
  return c;
}

void utf8_append(std::string& out, char32_t c) {
  if (c < 0x80) {
    out += static_cast<char>(c);
  } else if (c < 0x800) {
    out += static_cast<char>(0xC0 | (c >> 6));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else if (c < 0x10000) {
    out += static_cast<char>(0xE0 | (c >> 12));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (c >> 18));
    out += static_cast<char>(0x80 | ((c >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  }
}

std::string utf8_lossy(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  for (size_t pos = 0; pos < bytes.size();) {
    Utf8Probe p = probe_utf8(bytes, pos);
    if (p.complete) {
      out.append(bytes.substr(pos, p.valid_len));
      pos += p.valid_len;
    } else {
      out += "\xEF\xBF\xBD";
      pos += p.valid_len == 0 ? 1 : p.valid_len;
    }
  }
  return out;
}

bool unicode_is_whitespace(char32_t c) {
  return u_hasBinaryProperty(static_cast<UChar32>(c), UCHAR_WHITE_SPACE);
}

bool unicode_is_word(char32_t c) {
  auto u = static_cast<UChar32>(c);
  if (u_hasBinaryProperty(u, UCHAR_ALPHABETIC) || u_hasBinaryProperty(u, UCHAR_JOIN_CONTROL))
    return true;
  int32_t mask = U_GET_GC_MASK(u);
  return (mask & (U_GC_M_MASK | U_GC_ND_MASK | U_GC_PC_MASK)) != 0;
}

const std::array<std::string, 256>& byte_level_chars() {
  static const std::array<std::string, 256> table = [] {
    std::array<std::string, 256> t;
    auto printable = [](int b) {
      return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    };
    int n = 0;
    for (int b = 0; b < 256; ++b) {
      char32_t c = printable(b) ? static_cast<char32_t>(b) : static_cast<char32_t>(256 + n++);
      utf8_append(t[b], c);
    }
    return t;
  }();
  return table;
}

std::optional<uint8_t> byte_level_byte(char32_t c) {
  static const std::array<int16_t, 512> inverse = [] {
    std::array<int16_t, 512> inv;
    inv.fill(-1);
    const auto& chars = byte_level_chars();
    for (int b = 0; b < 256; ++b) inv[utf8_decode_at(chars[b], 0)] = static_cast<int16_t>(b);
    return inv;
  }();
  if (c >= inverse.size() || inverse[c] < 0) return std::nullopt;
  return static_cast<uint8_t>(inverse[c]);
}

std::string unicode_normalize(std::string_view text, NormForm form) {
  if (is_ascii(text)) return std::string(text);  // ASCII is invariant under all four forms
  UErrorCode err = U_ZERO_ERROR;
  const UNormalizer2* norm = nullptr;
  switch (form) {
    case NormForm::NFC: norm = unorm2_getNFCInstance(&err); break;
    case NormForm::NFD: norm = unorm2_getNFDInstance(&err); break;
    case NormForm::NFKC: norm = unorm2_getNFKCInstance(&err); break;
    case NormForm::NFKD: norm = unorm2_getNFKDInstance(&err); break;
  }
  if (U_FAILURE(err)) fail("tokenizer: ICU normalizer unavailable: {}", u_errorName(err));
  std::u16string src = to_utf16(text);
  std::u16string dst(src.size() * 4 + 16, u'\0');
  int32_t len = unorm2_normalize(norm, reinterpret_cast<const UChar*>(src.data()),
                                 static_cast<int32_t>(src.size()), reinterpret_cast<UChar*>(dst.data()),
                                 static_cast<int32_t>(dst.size()), &err);
  if (err == U_BUFFER_OVERFLOW_ERROR) {
    err = U_ZERO_ERROR;
    dst.assign(len, u'\0');
    len = unorm2_normalize(norm, reinterpret_cast<const UChar*>(src.data()),
                           static_cast<int32_t>(src.size()), reinterpret_cast<UChar*>(dst.data()),
                           static_cast<int32_t>(dst.size()), &err);
  }
  if (U_FAILURE(err)) fail("tokenizer: ICU normalization failed: {}", u_errorName(err));
  dst.resize(len);
  return to_utf8(dst);
}

std::string unicode_lowercase(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t pos = 0; pos < text.size();) {
    auto b0 = static_cast<unsigned char>(text[pos]);
    size_t n = utf8_len(b0);
    if (n == 1) {
      out += static_cast<char>(b0 >= 'A' && b0 <= 'Z' ? b0 + 32 : b0);
    } else {
      // One character at a time, so ICU sees no context (no final-sigma rule).
      std::u16string src = to_utf16(text.substr(pos, n));
      UChar dst[16];
      UErrorCode err = U_ZERO_ERROR;
      int32_t len = u_strToLower(dst, 16, reinterpret_cast<const UChar*>(src.data()),
                                 static_cast<int32_t>(src.size()), "", &err);
      if (U_FAILURE(err)) fail("tokenizer: ICU lowercase failed: {}", u_errorName(err));
      out += to_utf8(std::u16string(reinterpret_cast<const char16_t*>(dst), len));
    }
    pos += n;
  }
  return out;
}

}  // namespace lwq
