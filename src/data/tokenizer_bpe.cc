#include "data/tokenizer_bpe.h"

#include <fmt/format.h>

#include <mutex>
#include <nlohmann/json.hpp>
#include <queue>

#include "data/tokenizer_json.h"
#include "data/tokenizer_unicode.h"
#include "util/error.h"

namespace lwq {

// Results for repeated pre-tokens; bounded like HF's (10k words, short ones only).
struct BpeModel::Cache {
  static constexpr size_t kCapacity = 10000;
  static constexpr size_t kMaxWordBytes = 256;
  std::mutex mu;
  std::unordered_map<std::string, std::vector<int32_t>> words;
};

namespace {

std::pair<std::string, std::string> parse_merge(const nlohmann::json& m, size_t rank,
                                                const std::string& file) {
  if (m.is_string()) {
    const std::string& s = m.get_ref<const std::string&>();
    size_t sp = s.find(' ');
    if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos)
      fail("{}: merge {} (\"{}\") must be two tokens separated by one space", file, rank + 1, s);
    return {s.substr(0, sp), s.substr(sp + 1)};
  }
  if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string())
    return {m[0].get<std::string>(), m[1].get<std::string>()};
  fail("{}: merge {} must be \"a b\" or [\"a\", \"b\"]", file, rank + 1);
}

}  // namespace

BpeModel BpeModel::parse(const nlohmann::json& model, const std::string& file) {
  BpeModel m;
  const auto& vocab = model.find("vocab");
  if (vocab == model.end() || !vocab->is_object()) fail("{}: BPE model needs an object \"vocab\"", file);
  m.vocab_.reserve(vocab->size() * 2);
  int32_t max_id = -1;
  for (const auto& [token, id] : vocab->items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > kMaxTokenId)
      fail("{}: vocab entry \"{}\" must map to an integer id in [0, {}]", file, token, kMaxTokenId);
    auto v = static_cast<int32_t>(id.get<int64_t>());
    m.vocab_.emplace(token, v);
    max_id = std::max(max_id, v);
  }
  m.id_to_token_.resize(max_id + 1);
  m.has_id_.assign(max_id + 1, false);
  for (const auto& [token, id] : m.vocab_) {
    m.id_to_token_[id] = token;
    m.has_id_[id] = true;
  }

  if (auto it = model.find("unk_token"); it != model.end() && it->is_string()) {
    auto id = m.token_to_id(it->get<std::string>());
    if (!id) fail("{}: BPE unk_token \"{}\" is not in the vocab", file, it->get<std::string>());
    m.unk_id_ = id;
  }
  m.continuing_prefix_ = json_string_or(model, "continuing_subword_prefix", "");
  m.end_suffix_ = json_string_or(model, "end_of_word_suffix", "");
  m.fuse_unk_ = json_bool_or(model, "fuse_unk", false);
  m.byte_fallback_ = json_bool_or(model, "byte_fallback", false);
  m.ignore_merges_ = json_bool_or(model, "ignore_merges", false);
  if (auto it = model.find("dropout"); it != model.end() && it->is_number() && it->get<double>() > 0)
    fail("{}: BPE dropout is not supported (encoding would be random)", file);
  for (int b = 0; b < 256; ++b) {
    auto id = m.token_to_id(fmt::format("<0x{:02X}>", b));
    m.byte_ids_[b] = id ? *id : -1;
  }

  const auto& merges = json_array(model, "merges", file, "BPE model");
  m.merges_.reserve(merges.size() * 2);
  std::string joined;
  uint32_t rank = 0;
  for (const auto& entry : merges) {
    if (entry.is_string() && entry.get_ref<const std::string&>().starts_with("#version")) continue;
    auto [a, b] = parse_merge(entry, rank, file);
    auto a_id = m.token_to_id(a), b_id = m.token_to_id(b);
    if (!a_id || !b_id)
      fail("{}: merge {} (\"{} {}\") uses a token missing from the vocab", file, rank + 1, a, b);
    std::string_view b_tail(b);
    if (b_tail.starts_with(m.continuing_prefix_)) b_tail.remove_prefix(m.continuing_prefix_.size());
    joined.assign(a).append(b_tail);
    auto new_id = m.token_to_id(joined);
    if (!new_id)
      fail("{}: merge {} (\"{} {}\") makes \"{}\", which is not in the vocab", file, rank + 1, a, b,
           joined);
    m.merges_[pair_key(*a_id, *b_id)] = {rank, *new_id};
    ++rank;
  }
  m.cache_ = std::make_shared<Cache>();
  return m;
}

std::optional<int32_t> BpeModel::token_to_id(std::string_view token) const {
  auto it = vocab_.find(token);
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

const std::string* BpeModel::id_to_token(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= id_to_token_.size() || !has_id_[id]) return nullptr;
  return &id_to_token_[id];
}

std::vector<int32_t> BpeModel::merge_word(std::string_view word) const {
  struct Symbol {
    int32_t id;
    int prev, next;
    bool alive;
  };
  std::vector<Symbol> syms;
  auto add = [&](int32_t id) {
    int idx = static_cast<int>(syms.size());
    syms.push_back({id, idx - 1, idx + 1, true});
  };
  int32_t pending_unk = -1;  // HF defers the unk so that runs can fuse
  std::string piece;
  for (size_t pos = 0; pos < word.size();) {
    size_t n = utf8_len(static_cast<unsigned char>(word[pos]));
    bool first = pos == 0, last = pos + n >= word.size();
    piece.assign(first ? "" : continuing_prefix_).append(word.substr(pos, n));
    if (last) piece += end_suffix_;
    pos += n;
    if (auto id = token_to_id(piece)) {
      if (pending_unk >= 0) add(pending_unk), pending_unk = -1;
      add(*id);
      continue;
    }
    if (byte_fallback_) {
      bool all = true;
      for (unsigned char b : piece) all = all && byte_ids_[b] >= 0;
      if (all) {
        for (unsigned char b : piece) add(byte_ids_[b]);
        continue;
      }
    }
    if (unk_id_) {
      if (pending_unk >= 0 && !fuse_unk_) add(pending_unk);
      pending_unk = *unk_id_;
    }
  }
  if (pending_unk >= 0) add(pending_unk);
  if (syms.empty()) return {};
  syms.back().next = -1;

  struct Item {
    uint32_t rank;
    int pos;
    int32_t new_id;
    bool operator>(const Item& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::priority_queue<Item, std::vector<Item>, std::greater<Item>> queue;
  auto push_pair = [&](int left) {
    int right = syms[left].next;
    if (right < 0) return;
    auto it = merges_.find(pair_key(syms[left].id, syms[right].id));
    if (it != merges_.end()) queue.push({it->second.rank, left, it->second.new_id});
  };
  for (int i = 0; i + 1 < static_cast<int>(syms.size()); ++i) push_pair(i);
  while (!queue.empty()) {
    Item top = queue.top();
    queue.pop();
    Symbol& left = syms[top.pos];
    if (!left.alive || left.next < 0) continue;
    Symbol& right = syms[left.next];
    auto it = merges_.find(pair_key(left.id, right.id));
    if (it == merges_.end() || it->second.new_id != top.new_id) continue;  // stale entry
    left.id = top.new_id;
    right.alive = false;
    left.next = right.next;
    if (left.next >= 0) syms[left.next].prev = top.pos;
    if (left.prev >= 0) push_pair(left.prev);
    push_pair(top.pos);
  }
  std::vector<int32_t> ids;
  for (const auto& s : syms)
    if (s.alive) ids.push_back(s.id);
  return ids;
}

void BpeModel::tokenize(std::string_view word, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  if (ignore_merges_) {
    if (auto id = token_to_id(word)) {
      out.push_back(*id);
      return;
    }
  }
  bool cacheable = word.size() < Cache::kMaxWordBytes;
  std::string key;
  if (cacheable) {
    key.assign(word);
    std::lock_guard lock(cache_->mu);
    if (auto it = cache_->words.find(key); it != cache_->words.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int32_t> ids = merge_word(word);
  out.insert(out.end(), ids.begin(), ids.end());
  if (cacheable) {
    std::lock_guard lock(cache_->mu);
    if (cache_->words.size() < Cache::kCapacity) cache_->words.emplace(std::move(key), std::move(ids));
  }
}

}  // namespace lwq
