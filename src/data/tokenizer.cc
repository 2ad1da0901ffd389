#include "data/tokenizer.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "data/tokenizer_json.h"
#include "data/tokenizer_unicode.h"
#include "util/error.h"
#include "util/file_util.h"

namespace lwq {
namespace {

using nlohmann::json;

// Rust regex `\w$` / `^\w` on the text before / after an added token.
bool ends_with_word(std::string_view text) {
  if (text.empty()) return false;
  size_t p = text.size() - 1;
  while (p > 0 && (static_cast<unsigned char>(text[p]) & 0xC0) == 0x80) --p;
  return unicode_is_word(utf8_decode_at(text, p));
}

bool starts_with_word(std::string_view text) {
  return !text.empty() && unicode_is_word(utf8_decode_at(text, 0));
}

// Start of the whitespace run that ends `text` (Rust `\s*$`).
size_t whitespace_run_start(std::string_view text) {
  size_t end = text.size();
  while (end > 0) {
    size_t p = end - 1;
    while (p > 0 && (static_cast<unsigned char>(text[p]) & 0xC0) == 0x80) --p;
    if (!unicode_is_whitespace(utf8_decode_at(text, p))) break;
    end = p;
  }
  return end;
}

// Length of the whitespace run that starts `text` (Rust `^\s*`).
size_t whitespace_run_len(std::string_view text) {
  size_t pos = 0;
  while (pos < text.size() && unicode_is_whitespace(utf8_decode_at(text, pos)))
    pos += utf8_len(static_cast<unsigned char>(text[pos]));
  return pos;
}

// bos_token / eos_token: a string, a {"content": ...} object, null, or absent.
std::optional<std::optional<std::string>> config_token(const json& config, const char* key) {
  auto it = config.find(key);
  if (it == config.end()) return std::nullopt;
  if (it->is_string()) return std::optional<std::string>(it->get<std::string>());
  if (it->is_object() && it->contains("content") && (*it)["content"].is_string())
    return std::optional<std::string>((*it)["content"].get<std::string>());
  return std::optional<std::string>();
}

std::optional<bool> config_flag(const json& config, const char* key) {
  auto it = config.find(key);
  if (it == config.end() || !it->is_boolean()) return std::nullopt;
  return it->get<bool>();
}

struct PostProcessorIds {
  std::vector<int32_t> prefix, suffix;
};

void parse_post_processor(const json& j, const std::string& file, PostProcessorIds& out) {
  std::string type = json_type(j, file, "post_processor");
  if (type == "ByteLevel") return;  // only trims offsets
  if (type == "Sequence") {
    for (const auto& child : json_array(j, "processors", file, "post_processor Sequence"))
      parse_post_processor(child, file, out);
    return;
  }
  if (type == "TemplateProcessing") {
    const auto& specials = j.value("special_tokens", json::object());
    bool after_sequence = false;
    for (const auto& item : json_array(j, "single", file, "TemplateProcessing")) {
      if (item.contains("Sequence")) {
        after_sequence = true;
        continue;
      }
      if (!item.contains("SpecialToken"))
        fail("{}: TemplateProcessing item must be SpecialToken or Sequence", file);
      std::string id = json_string(item["SpecialToken"], "id", file, "TemplateProcessing SpecialToken");
      auto sp = specials.find(id);
      if (sp == specials.end() || !sp->contains("ids"))
        fail("{}: TemplateProcessing special token \"{}\" is not in special_tokens", file, id);
      for (const auto& v : (*sp)["ids"]) {
        if (!v.is_number_integer()) fail("{}: special token \"{}\" has a non-integer id", file, id);
        (after_sequence ? out.suffix : out.prefix).push_back(v.get<int32_t>());
      }
    }
    return;
  }
  if (type == "RobertaProcessing" || type == "BertProcessing") {
    auto id_of = [&](const char* key) {
      auto it = j.find(key);
      if (it == j.end() || !it->is_array() || it->size() != 2 || !(*it)[1].is_number_integer())
        fail("{}: {} needs \"{}\" as [token, id]", file, type, key);
      return (*it)[1].get<int32_t>();
    };
    out.prefix.push_back(id_of("cls"));
    out.suffix.insert(out.suffix.begin(), id_of("sep"));
    return;
  }
  fail("{}: unsupported post_processor type \"{}\"", file, type);
}

}  // namespace

Tokenizer Tokenizer::load(const std::filesystem::path& path) {
  std::filesystem::path file = path;
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    file = path / "tokenizer.json";
    if (!std::filesystem::exists(file, ec)) fail("tokenizer: folder {} has no tokenizer.json", path.string());
  } else if (!std::filesystem::exists(path, ec)) {
    fail("tokenizer: {} does not exist", path.string());
  }
  std::string text = read_text_file(file);
  std::filesystem::path config_path = file.parent_path() / "tokenizer_config.json";
  std::optional<std::string> config;
  if (std::filesystem::exists(config_path, ec)) config = read_text_file(config_path);
  if (!config) return from_json(text, file.string());
  return from_json(text, file.string(), *config);
}

Tokenizer Tokenizer::from_json(std::string_view tokenizer_json, const std::string& name,
                               std::optional<std::string_view> config_json) {
  Tokenizer t;
  t.name_ = name;
  const std::string& file = name;
  json root;
  try {
    root = json::parse(tokenizer_json);
  } catch (const json::exception& e) {
    fail("{}: invalid JSON: {}", file, e.what());
  }
  try {
    if (!root.is_object()) fail("{}: top level must be a JSON object", file);
    auto model = root.find("model");
    if (model == root.end() || !model->is_object()) fail("{}: missing \"model\" object", file);
    std::string model_type = json_string_or(*model, "type", "BPE");
    if (model_type != "BPE")
      fail("{}: unsupported model type \"{}\" (only BPE is supported)", file, model_type);
    t.model_ = BpeModel::parse(*model, file);

    if (auto n = root.find("normalizer"); n != root.end() && !n->is_null())
      t.normalizer_ = parse_normalizer(*n, file);
    if (auto p = root.find("pre_tokenizer"); p != root.end() && !p->is_null())
      t.pre_tokenizer_ = parse_pre_tokenizer(*p, file);
    if (auto d = root.find("decoder"); d != root.end() && !d->is_null())
      t.decoder_ = parse_decoder(*d, file);
    PostProcessorIds post;
    if (auto p = root.find("post_processor"); p != root.end() && !p->is_null())
      parse_post_processor(*p, file, post);

    if (auto added = root.find("added_tokens"); added != root.end() && !added->is_null()) {
      if (!added->is_array()) fail("{}: \"added_tokens\" must be an array", file);
      for (const auto& a : *added) {
        AddedToken tok;
        tok.content = json_string(a, "content", file, "added token");
        if (!a.contains("id") || !a["id"].is_number_integer() || a["id"].get<int64_t>() < 0 ||
            a["id"].get<int64_t>() > kMaxTokenId)
          fail("{}: added token \"{}\" needs an integer \"id\" in [0, {}]", file, tok.content, kMaxTokenId);
        tok.id = a["id"].get<int32_t>();
        tok.special = json_bool_or(a, "special", false);
        tok.lstrip = json_bool_or(a, "lstrip", false);
        tok.rstrip = json_bool_or(a, "rstrip", false);
        tok.single_word = json_bool_or(a, "single_word", false);
        tok.normalized = json_bool_or(a, "normalized", !tok.special);
        if (tok.content.empty()) continue;  // HF ignores empty added tokens
        tok.match = tok.normalized && t.normalizer_ ? apply_normalizer(*t.normalizer_, tok.content)
                                                    : tok.content;
        if (tok.match.empty()) continue;
        if (tok.special) t.special_contents_.insert(tok.content);
        t.added_by_content_[tok.content] = tok.id;
        t.added_by_id_[tok.id] = t.added_.size();
        t.added_.push_back(std::move(tok));
      }
    }
    for (size_t i = 0; i < t.added_.size(); ++i) {
      AddedMatcher& m = t.added_[i].normalized ? t.normalized_matcher_ : t.raw_matcher_;
      m.tokens.push_back(i);
      m.by_first_byte[static_cast<unsigned char>(t.added_[i].match[0])].push_back(i);
    }
    for (AddedMatcher* m : {&t.raw_matcher_, &t.normalized_matcher_})
      for (auto& list : m->by_first_byte)
        std::stable_sort(list.begin(), list.end(), [&](size_t a, size_t b) {
          return t.added_[a].match.size() > t.added_[b].match.size();
        });

    t.prefix_ = post.prefix;
    t.suffix_ = post.suffix;
    if (!t.prefix_.empty()) t.bos_id_ = t.prefix_.front();
    if (!t.suffix_.empty()) t.eos_id_ = t.suffix_.back();
  } catch (const json::exception& e) {
    fail("{}: malformed tokenizer: {}", file, e.what());
  }

  if (config_json) {
    std::string config_name =
        (std::filesystem::path(name).parent_path() / "tokenizer_config.json").string();
    json config;
    try {
      config = json::parse(*config_json);
    } catch (const json::exception& e) {
      fail("{}: invalid JSON: {}", config_name, e.what());
    }
    if (!config.is_object()) fail("{}: top level must be a JSON object", config_name);
    auto resolve = [&](const char* key, std::optional<int32_t>& slot) {
      auto tok = config_token(config, key);
      if (!tok) return;  // not mentioned: keep what the post-processor implies
      slot.reset();
      if (*tok) {
        slot = t.token_to_id(**tok);
        if (!slot) fail("{}: {} \"{}\" is not in the vocabulary", config_name, key, **tok);
      }
    };
    resolve("bos_token", t.bos_id_);
    resolve("eos_token", t.eos_id_);
    // Like transformers' Llama tokenizers, explicit flags override the template.
    if (auto add = config_flag(config, "add_bos_token"); add && t.bos_id_) {
      bool has = !t.prefix_.empty() && t.prefix_.front() == *t.bos_id_;
      if (*add && !has) t.prefix_.insert(t.prefix_.begin(), *t.bos_id_);
      if (!*add && has) t.prefix_.erase(t.prefix_.begin());
    }
    if (auto add = config_flag(config, "add_eos_token"); add && t.eos_id_) {
      bool has = !t.suffix_.empty() && t.suffix_.back() == *t.eos_id_;
      if (*add && !has) t.suffix_.push_back(*t.eos_id_);
      if (!*add && has) t.suffix_.pop_back();
    }
  }
  return t;
}

std::vector<Tokenizer::Segment> Tokenizer::split_added(std::string_view text,
                                                       const AddedMatcher& m) const {
  std::vector<Segment> out;
  if (m.tokens.empty()) {
    if (!text.empty()) out.push_back({0, text.size(), -1});
    return out;
  }
  // Leftmost-longest, non-overlapping matches (HF's Aho-Corasick), found first so
  // that lstrip/rstrip adjustments do not change which matches exist.
  struct Match {
    size_t start, end, token;
  };
  std::vector<Match> matches;
  for (size_t pos = 0; pos < text.size();) {
    bool found = false;
    for (size_t idx : m.by_first_byte[static_cast<unsigned char>(text[pos])]) {
      const std::string& pat = added_[idx].match;
      if (text.compare(pos, pat.size(), pat) == 0) {
        matches.push_back({pos, pos + pat.size(), idx});
        pos += pat.size();
        found = true;
        break;
      }
    }
    if (!found) ++pos;
  }
  size_t start_offset = 0;
  for (const Match& mt : matches) {
    const AddedToken& tok = added_[mt.token];
    size_t start = mt.start, stop = mt.end;
    if (tok.single_word) {
      bool start_space = start == 0 || !ends_with_word(text.substr(0, start));
      bool stop_space = stop == text.size() || !starts_with_word(text.substr(stop));
      if (!start_space || !stop_space) continue;
    }
    if (tok.lstrip) start = std::max(whitespace_run_start(text.substr(0, start)), start_offset);
    if (tok.rstrip) stop += whitespace_run_len(text.substr(stop));
    if (start_offset < start) out.push_back({start_offset, start, -1});
    out.push_back({start, stop, tok.id});
    start_offset = stop;
  }
  if (start_offset < text.size()) out.push_back({start_offset, text.size(), -1});
  return out;
}

void Tokenizer::encode_plain(std::string_view text, size_t orig_start,
                             std::vector<int32_t>& out) const {
  std::string normalized = normalizer_ ? apply_normalizer(*normalizer_, std::string(text))
                                       : std::string(text);
  for (const Segment& seg : split_added(normalized, normalized_matcher_)) {
    if (seg.id >= 0) {
      out.push_back(seg.id);
      continue;
    }
    std::vector<PreToken> pieces{
        {normalized.substr(seg.start, seg.end - seg.start), orig_start + seg.start}};
    if (pre_tokenizer_) apply_pre_tokenizer(*pre_tokenizer_, pieces);
    for (const auto& piece : pieces) model_.tokenize(piece.text, out);
  }
}

std::vector<int32_t> Tokenizer::encode(std::string_view text) const {
  if (!utf8_valid(text)) fail("{}: cannot encode text that is not valid UTF-8", name_);
  std::vector<int32_t> out;
  for (const Segment& seg : split_added(text, raw_matcher_)) {
    if (seg.id >= 0) out.push_back(seg.id);
    else encode_plain(text.substr(seg.start, seg.end - seg.start), seg.start, out);
  }
  return out;
}

std::vector<int32_t> Tokenizer::encode_with_special(std::string_view text) const {
  std::vector<int32_t> out = prefix_;
  std::vector<int32_t> body = encode(text);
  out.insert(out.end(), body.begin(), body.end());
  out.insert(out.end(), suffix_.begin(), suffix_.end());
  return out;
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool skip_special_tokens) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int32_t id : ids) {
    const std::string* tok = nullptr;
    if (auto it = added_by_id_.find(id); it != added_by_id_.end()) {
      // Normalized added tokens decode from their normalized form, as HF does.
      tok = &added_[it->second].match;
      if (skip_special_tokens && added_[it->second].special) continue;
    } else {
      tok = model_.id_to_token(id);
      if (!tok) continue;  // HF skips ids it does not know
      if (skip_special_tokens && special_contents_.count(*tok)) continue;
    }
    tokens.push_back(*tok);
  }
  std::string out;
  if (decoder_) {
    for (const auto& piece : apply_decoder(*decoder_, std::move(tokens))) out += piece;
  } else {
    for (size_t i = 0; i < tokens.size(); ++i) out += (i ? " " : "") + tokens[i];
  }
  return out;
}

bool Tokenizer::adds_bos() const {
  return bos_id_ && !prefix_.empty() && prefix_.front() == *bos_id_;
}

size_t Tokenizer::vocab_size() const {
  int32_t max_id = model_.max_id();
  for (const auto& tok : added_) max_id = std::max(max_id, tok.id);
  return static_cast<size_t>(max_id + 1);
}

std::optional<int32_t> Tokenizer::token_to_id(std::string_view token) const {
  if (auto it = added_by_content_.find(token); it != added_by_content_.end()) return it->second;
  return model_.token_to_id(token);
}

std::string Tokenizer::id_to_token(int32_t id) const {
  if (auto it = added_by_id_.find(id); it != added_by_id_.end()) return added_[it->second].content;
  if (const std::string* tok = model_.id_to_token(id)) return *tok;
  fail("{}: token id {} is not in the vocabulary (size {})", name_, id, vocab_size());
}

}  // namespace lwq
