#include "data/tokenizer_decoder.h"

#include <nlohmann/json.hpp>

#include "data/tokenizer_json.h"
#include "data/tokenizer_normalizer.h"
#include "data/tokenizer_unicode.h"
#include "util/error.h"

namespace lwq {
namespace {

constexpr const char* kReplacementChar = "\xEF\xBF\xBD";

std::optional<uint8_t> byte_token(const std::string& t) {
  if (t.size() != 6 || t.compare(0, 3, "<0x") != 0 || t[5] != '>') return std::nullopt;
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  int hi = hex(t[3]), lo = hex(t[4]);
  if (hi < 0 || lo < 0) return std::nullopt;
  return static_cast<uint8_t>(hi * 16 + lo);
}

// Flushes collected <0xNN> bytes: the string if valid UTF-8, else one U+FFFD per byte.
void flush_bytes(std::string& bytes, std::vector<std::string>& out) {
  if (bytes.empty()) return;
  if (utf8_valid(bytes)) {
    out.push_back(bytes);
  } else {
    for (size_t i = 0; i < bytes.size(); ++i) out.emplace_back(kReplacementChar);
  }
  bytes.clear();
}

std::vector<std::string> byte_fallback(std::vector<std::string> tokens) {
  std::vector<std::string> out;
  std::string bytes;
  for (auto& t : tokens) {
    if (auto b = byte_token(t)) {
      bytes += static_cast<char>(*b);
    } else {
      flush_bytes(bytes, out);
      out.push_back(std::move(t));
    }
  }
  flush_bytes(bytes, out);
  return out;
}

std::vector<std::string> byte_level(const std::vector<std::string>& tokens) {
  std::string bytes;
  for (const auto& t : tokens) {
    std::string mapped;
    bool all = true;
    for (size_t pos = 0; pos < t.size() && all;) {
      auto b = byte_level_byte(utf8_decode_at(t, pos));
      if (b) mapped += static_cast<char>(*b);
      else all = false;
      pos += utf8_len(static_cast<unsigned char>(t[pos]));
    }
    bytes += all ? mapped : t;  // a token outside the alphabet passes through as is
  }
  return {utf8_lossy(bytes)};
}

std::string strip_chars(const std::string& token, char32_t c, size_t start, size_t stop) {
  std::vector<size_t> starts;  // byte offset of each char
  for (size_t pos = 0; pos < token.size(); pos += utf8_len(static_cast<unsigned char>(token[pos])))
    starts.push_back(pos);
  size_t n = starts.size();
  size_t first = 0, last = n;
  for (size_t i = 0; i < start && i < n; ++i) {
    if (utf8_decode_at(token, starts[i]) != c) break;
    first = i + 1;
  }
  for (size_t i = 0; i < stop && i < n; ++i) {
    size_t idx = n - i - 1;
    if (utf8_decode_at(token, starts[idx]) != c) break;
    last = idx;
  }
  if (first >= last) return "";
  size_t b = starts[first], e = last < n ? starts[last] : token.size();
  return token.substr(b, e - b);
}

}  // namespace

TokDecoder parse_decoder(const nlohmann::json& j, const std::string& file) {
  std::string type = json_type(j, file, "decoder");
  TokDecoder d;
  using K = TokDecoder::Kind;
  if (type == "Sequence") {
    d.kind = K::Sequence;
    for (const auto& child : json_array(j, "decoders", file, "decoder Sequence"))
      d.children.push_back(parse_decoder(child, file));
  } else if (type == "Replace") {
    d.kind = K::Replace;
    d.pattern = parse_replace_pattern(j, file, "decoder Replace");
    d.content = json_string(j, "content", file, "decoder Replace");
  } else if (type == "ByteFallback") {
    d.kind = K::ByteFallback;
  } else if (type == "Fuse") {
    d.kind = K::Fuse;
  } else if (type == "Strip") {
    d.kind = K::Strip;
    d.content = json_string(j, "content", file, "decoder Strip");
    if (d.content.empty() || utf8_len(d.content[0]) != d.content.size())
      fail("{}: decoder Strip content must be one character", file);
    d.start = j.value("start", size_t{0});
    d.stop = j.value("stop", size_t{0});
  } else if (type == "ByteLevel") {
    d.kind = K::ByteLevel;
  } else if (type == "Metaspace") {
    d.kind = K::Metaspace;
    d.content = json_string(j, "replacement", file, "decoder Metaspace");
    if (d.content.empty() || utf8_len(d.content[0]) != d.content.size())
      fail("{}: Metaspace replacement must be one character", file);
    std::string scheme = json_string_or(j, "prepend_scheme", "always");
    d.prepend_never = scheme == "never";
    if (auto it = j.find("add_prefix_space"); it != j.end() && it->is_boolean() && !it->get<bool>())
      d.prepend_never = true;
  } else {
    fail("{}: unsupported decoder type \"{}\"", file, type);
  }
  return d;
}

std::vector<std::string> apply_decoder(const TokDecoder& d, std::vector<std::string> tokens) {
  using K = TokDecoder::Kind;
  switch (d.kind) {
    case K::Sequence:
      for (const auto& child : d.children) tokens = apply_decoder(child, std::move(tokens));
      return tokens;
    case K::Replace:
      for (auto& t : tokens) t = replace_all(*d.pattern, t, d.content);
      return tokens;
    case K::ByteFallback:
      return byte_fallback(std::move(tokens));
    case K::Fuse: {
      std::string all;
      for (const auto& t : tokens) all += t;
      return {all};
    }
    case K::Strip: {
      char32_t c = utf8_decode_at(d.content, 0);
      for (auto& t : tokens) t = strip_chars(t, c, d.start, d.stop);
      return tokens;
    }
    case K::ByteLevel:
      return byte_level(tokens);
    case K::Metaspace: {
      for (size_t i = 0; i < tokens.size(); ++i) {
        std::string out;
        const std::string& t = tokens[i];
        for (size_t pos = 0; pos < t.size();) {
          size_t n = utf8_len(static_cast<unsigned char>(t[pos]));
          if (t.compare(pos, n, d.content) == 0) {
            if (i != 0 || d.prepend_never) out += ' ';  // the first token's marks vanish
          } else {
            out.append(t, pos, n);
          }
          pos += n;
        }
        tokens[i] = std::move(out);
      }
      return tokens;
    }
  }
  return tokens;
}

}  // namespace lwq
