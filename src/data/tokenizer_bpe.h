// The BPE model of a tokenizer.json (HF tokenizers semantics: merges applied
// lowest rank first with a heap over a linked list of symbols, byte fallback
// to <0xNN> tokens, optional fused unknown token).
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace lwq {

// Lets string-keyed maps be searched with a string_view without a copy.
struct TokStringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using TokVocab = std::unordered_map<std::string, int32_t, TokStringHash, std::equal_to<>>;

// Largest token id accepted (vocab and added tokens). Id-indexed tables are
// sized by the largest id, so a hostile id must not reach INT32_MAX (2^31
// strings); real vocabularies stay below 2^18.
inline constexpr int64_t kMaxTokenId = (int64_t{1} << 24) - 1;

class BpeModel {
 public:
  // `model` is the tokenizer.json "model" object; errors name `file`.
  static BpeModel parse(const nlohmann::json& model, const std::string& file);

  // Ids for one pre-token (appended to `out`).
  void tokenize(std::string_view word, std::vector<int32_t>& out) const;

  std::optional<int32_t> token_to_id(std::string_view token) const;
  // nullptr if `id` is not in the vocabulary.
  const std::string* id_to_token(int32_t id) const;
  int32_t max_id() const { return static_cast<int32_t>(id_to_token_.size()) - 1; }

 private:
  struct MergeInfo {
    uint32_t rank;
    int32_t new_id;
  };
  struct Cache;

  static uint64_t pair_key(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }
  std::vector<int32_t> merge_word(std::string_view word) const;

  TokVocab vocab_;
  std::vector<std::string> id_to_token_;
  std::vector<bool> has_id_;
  std::unordered_map<uint64_t, MergeInfo> merges_;
  std::optional<int32_t> unk_id_;
  std::string continuing_prefix_, end_suffix_;
  bool fuse_unk_ = false, byte_fallback_ = false, ignore_merges_ = false;
  std::array<int32_t, 256> byte_ids_{};  // <0xNN> token ids, -1 when absent
  std::shared_ptr<Cache> cache_;
};

}  // namespace lwq
