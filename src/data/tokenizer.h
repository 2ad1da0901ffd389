// A Hugging Face tokenizer.json BPE tokenizer that reproduces HF `tokenizers`:
// added tokens split out of the raw text, then normalizer, pre-tokenizer, BPE
// model, post-processor; decoding through the decoder chain. Covers the
// sentencepiece-style (Llama) and byte-level (GPT-2/Qwen) families.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "data/tokenizer_bpe.h"
#include "data/tokenizer_decoder.h"
#include "data/tokenizer_normalizer.h"
#include "data/tokenizer_pretokenizer.h"

namespace lwq {

class Tokenizer {
 public:
  // `path`: a tokenizer.json, or a folder holding one. Also reads tokenizer_config.json next to it
  // when present (add_bos_token / add_eos_token / bos_token / eos_token; bos/eos may be strings or
  // {"content": ...} objects). Throws lwq::Error naming the file on any problem.
  static Tokenizer load(const std::filesystem::path& path);
  // Same from in-memory JSON texts; `name` stands for the file in error messages.
  static Tokenizer from_json(std::string_view tokenizer_json, const std::string& name,
                             std::optional<std::string_view> config_json = std::nullopt);

  std::vector<int32_t> encode(std::string_view text) const;               // no special tokens added
  std::vector<int32_t> encode_with_special(std::string_view text) const;  // + post-processor
  // Unknown ids are skipped, as HF does. Incomplete UTF-8 comes out as U+FFFD.
  std::string decode(std::span<const int32_t> ids, bool skip_special_tokens = true) const;

  std::optional<int32_t> bos_id() const { return bos_id_; }
  std::optional<int32_t> eos_id() const { return eos_id_; }
  bool adds_bos() const;  // true if encode_with_special prepends BOS
  size_t vocab_size() const;  // max id + 1 including added tokens
  std::optional<int32_t> token_to_id(std::string_view token) const;
  std::string id_to_token(int32_t id) const;  // throws lwq::Error for an unknown id

 private:
  struct AddedToken {
    std::string content;
    std::string match;  // what is searched for: content, or its normalized form
    int32_t id = 0;
    bool special = false, lstrip = false, rstrip = false, single_word = false, normalized = false;
  };
  // Finds added tokens in `text`; a segment with id -1 is plain text.
  struct Segment {
    size_t start, end;
    int32_t id;
  };
  struct AddedMatcher {
    std::vector<size_t> tokens;                         // indices into added_
    std::array<std::vector<size_t>, 256> by_first_byte;  // longest first
  };

  std::vector<Segment> split_added(std::string_view text, const AddedMatcher& m) const;
  void encode_plain(std::string_view text, size_t orig_start, std::vector<int32_t>& out) const;

  std::string name_;
  std::optional<TokNormalizer> normalizer_;
  std::optional<TokPreTokenizer> pre_tokenizer_;
  std::optional<TokDecoder> decoder_;
  BpeModel model_;
  std::vector<AddedToken> added_;
  TokVocab added_by_content_;
  std::unordered_map<int32_t, size_t> added_by_id_;
  std::unordered_set<std::string> special_contents_;
  AddedMatcher raw_matcher_, normalized_matcher_;
  std::vector<int32_t> prefix_, suffix_;  // what encode_with_special adds
  std::optional<int32_t> bos_id_, eos_id_;
};

}  // namespace lwq
