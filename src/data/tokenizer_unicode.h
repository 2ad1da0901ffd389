// UTF-8 and Unicode helpers for the tokenizer, matching what HF `tokenizers`
// (Rust) does: char::is_whitespace, String::from_utf8_lossy, the GPT-2
// byte<->char table, and ICU for normalization forms and lowercasing.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace lwq {

// True if `text` is well-formed UTF-8 (no surrogates, no overlongs).
bool utf8_valid(std::string_view text);

// Length in bytes of the character starting at `lead` (valid UTF-8 assumed).
inline size_t utf8_len(unsigned char lead) {
  return lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4;
}

// Decodes the character at text[pos] (valid UTF-8 assumed).
char32_t utf8_decode_at(std::string_view text, size_t pos);

void utf8_append(std::string& out, char32_t c);

// Like Rust's String::from_utf8_lossy: each maximal invalid subpart becomes U+FFFD.
std::string utf8_lossy(std::string_view bytes);

// Unicode White_Space (what Rust's char::is_whitespace and regex \s test).
bool unicode_is_whitespace(char32_t c);

// Rust regex \w: Alphabetic, Mark, Decimal_Number, Connector_Punctuation, Join_Control.
bool unicode_is_word(char32_t c);

// GPT-2 byte-level alphabet: the UTF-8 text of the char that stands for byte b.
const std::array<std::string, 256>& byte_level_chars();
// Inverse of byte_level_chars(); nullopt for chars outside the alphabet.
std::optional<uint8_t> byte_level_byte(char32_t c);

enum class NormForm { NFC, NFD, NFKC, NFKD };
std::string unicode_normalize(std::string_view text, NormForm form);

// Per-character full lowercase mapping (like Rust's char::to_lowercase, so no
// context-dependent final sigma).
std::string unicode_lowercase(std::string_view text);

}  // namespace lwq
