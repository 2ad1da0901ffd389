#include "config/yaml_view.h"

#include <fmt/format.h>
#include <yaml.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <deque>
#include <regex>
#include <unordered_map>
#include <unordered_set>

#include "util/error.h"

namespace lwq {

struct YamlNodeData {
  YamlNode::Kind kind = YamlNode::Kind::Undefined;
  bool plain = false;  // scalars: typed by their text
  int line = -1, column = -1;
  uint64_t expanded = 1;  // nodes with every alias copied out (saturating)
  std::string text;       // scalars
  std::string tag;
  // Sequence: items. Mapping: key, value, key, value, ... Aliases point at
  // the anchored node, so a document is a DAG (never a cycle).
  std::vector<const YamlNodeData*> children;
};

struct YamlStore {
  std::deque<YamlNodeData> nodes;  // stable addresses
};

namespace {

const std::string kEmpty;
constexpr int kMaxMergeDepth = 32;
constexpr size_t kMaxMergeEntries = 1'000'000;
constexpr std::string_view kYamlTagPrefix = "tag:yaml.org,2002:";

}  // namespace

// ---------------------------------------------------------------- YamlNode

YamlNode::Kind YamlNode::kind() const { return d_ ? d_->kind : Kind::Undefined; }

bool YamlNode::is_null() const {
  if (!d_) return true;
  if (d_->kind != Kind::Scalar || !d_->plain) return false;
  const std::string& s = d_->text;
  return s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL";
}

bool YamlNode::is_plain() const { return d_ && d_->kind == Kind::Scalar && d_->plain; }
const std::string& YamlNode::scalar() const { return d_ && d_->kind == Kind::Scalar ? d_->text : kEmpty; }
const std::string& YamlNode::tag() const { return d_ ? d_->tag : kEmpty; }
int YamlNode::line() const { return d_ ? d_->line : -1; }
int YamlNode::column() const { return d_ ? d_->column : -1; }

size_t YamlNode::size() const {
  if (!d_) return 0;
  if (d_->kind == Kind::Sequence) return d_->children.size();
  if (d_->kind == Kind::Mapping) return d_->children.size() / 2;
  return 0;
}

YamlNode YamlNode::item(size_t i) const {
  if (!is_sequence() || i >= d_->children.size()) return {};
  return {store_, d_->children[i]};
}

YamlNode YamlNode::key(size_t i) const {
  if (!is_map() || 2 * i >= d_->children.size()) return {};
  return {store_, d_->children[2 * i]};
}

YamlNode YamlNode::value(size_t i) const {
  if (!is_map() || 2 * i + 1 >= d_->children.size()) return {};
  return {store_, d_->children[2 * i + 1]};
}

// ---------------------------------------------------------------- loading

namespace {

// Line/column (both 0-based, columns in characters) of a byte offset.
std::pair<size_t, size_t> line_col_of_offset(std::string_view text, size_t offset) {
  size_t line = 0, col = 0;
  offset = std::min(offset, text.size());
  for (size_t i = 0; i < offset; ++i) {
    auto c = static_cast<unsigned char>(text[i]);
    if (c == '\n') {
      ++line;
      col = 0;
    } else if ((c & 0xC0) != 0x80) {
      ++col;
    }
  }
  return {line, col};
}

// The byte at a libyaml mark (0-based line and character column), if any.
std::optional<unsigned char> byte_at(std::string_view text, size_t line, size_t column) {
  size_t i = 0;
  for (size_t l = 0; l < line; ++l) {
    i = text.find('\n', i);
    if (i == std::string_view::npos) return std::nullopt;
    ++i;
  }
  for (size_t c = 0; i < text.size(); ++i) {
    auto b = static_cast<unsigned char>(text[i]);
    if ((b & 0xC0) == 0x80) continue;
    if (c++ == column) return b;
  }
  return std::nullopt;
}

// ", after e9" for a bad UTF-8 continuation: the bytes of the sequence so far.
std::string bytes_before(std::string_view text, size_t offset) {
  if (offset > text.size()) return "";
  size_t begin = offset;
  while (begin > 0 && offset - begin < 3) {
    auto b = static_cast<unsigned char>(text[begin - 1]);
    if ((b & 0x80) == 0) break;  // ASCII: not part of the sequence
    --begin;
    if ((b & 0xC0) == 0xC0) break;  // the sequence's leading byte
  }
  if (begin == offset) return "";
  std::string out = ", after";
  for (size_t i = begin; i < offset; ++i) out += fmt::format(" {:02x}", static_cast<unsigned char>(text[i]));
  return out;
}

std::string show_tag(const std::string& tag) {
  if (tag.rfind(kYamlTagPrefix, 0) == 0) return "!!" + tag.substr(kYamlTagPrefix.size());
  return tag;
}

struct Parser {
  yaml_parser_t p;
  Parser() {
    if (!yaml_parser_initialize(&p)) throw std::bad_alloc();
  }
  ~Parser() { yaml_parser_delete(&p); }
  Parser(const Parser&) = delete;
  Parser& operator=(const Parser&) = delete;
};

struct Event {
  yaml_event_t e{};
  bool live = false;
  ~Event() {
    if (live) yaml_event_delete(&e);
  }
};

}  // namespace

class YamlBuilder {
 public:
  YamlBuilder(std::string_view text, const std::string& source, const YamlLimits& limits)
      : text_(text), source_(source), limits_(limits), store_(std::make_shared<YamlStore>()) {}

  std::vector<YamlNode> run() {
    Parser parser;
    yaml_parser_set_input_string(&parser.p, reinterpret_cast<const unsigned char*>(text_.data()), text_.size());
    std::vector<YamlNode> docs;
    for (;;) {
      Event ev;
      if (!yaml_parser_parse(&parser.p, &ev.e)) syntax_error(parser.p);
      ev.live = true;
      const yaml_event_t& e = ev.e;
      switch (e.type) {
        case YAML_STREAM_START_EVENT:
          break;
        case YAML_NO_EVENT:  // only after the end of the stream
        case YAML_STREAM_END_EVENT:
          return docs;
        case YAML_DOCUMENT_START_EVENT:
          anchors_.clear();  // anchors are per document, as in PyYAML
          open_anchors_.clear();
          root_ = nullptr;
          break;
        case YAML_DOCUMENT_END_EVENT:
          docs.push_back(YamlNode(store_, root_));
          break;
        case YAML_ALIAS_EVENT:
          alias(e);
          break;
        case YAML_SCALAR_EVENT:
          scalar(e);
          break;
        case YAML_SEQUENCE_START_EVENT:
          open(e, YamlNode::Kind::Sequence, e.data.sequence_start.anchor, e.data.sequence_start.tag);
          break;
        case YAML_MAPPING_START_EVENT:
          open(e, YamlNode::Kind::Mapping, e.data.mapping_start.anchor, e.data.mapping_start.tag);
          break;
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT:
          close();
          break;
      }
    }
  }

 private:
  struct Frame {
    YamlNodeData* node;
    std::string anchor;
  };

  [[noreturn]] void syntax_error(const yaml_parser_t& p) const {
    const char* problem = p.problem ? p.problem : "unknown error";
    if (p.error == YAML_MEMORY_ERROR) fail("{}: YAML parser out of memory", source_);
    if (p.error == YAML_READER_ERROR) {
      auto [line, col] = line_col_of_offset(text_, p.problem_offset);
      std::string byte;
      if (p.problem_value < 0)
        byte = fmt::format("at byte offset {}", p.problem_offset);
      else if (std::string_view(problem).find("octet") != std::string_view::npos)
        byte = fmt::format("byte 0x{:02x} at offset {}{}", p.problem_value, p.problem_offset,
                           bytes_before(text_, p.problem_offset));
      else
        byte = fmt::format("character U+{:04X} at byte offset {}", p.problem_value, p.problem_offset);
      fail("{}:{}:{}: YAML syntax error: {} ({}; YAML files must be UTF-8 text without control characters)", source_,
           line + 1, col + 1, problem, byte);
    }
    std::string msg = fmt::format("{}:{}:{}: YAML syntax error: {}", source_, p.problem_mark.line + 1,
                                  p.problem_mark.column + 1, problem);
    if (p.context)
      msg += fmt::format(" ({} that starts at line {}, column {})", p.context, p.context_mark.line + 1,
                         p.context_mark.column + 1);
    auto c = byte_at(text_, p.problem_mark.line, p.problem_mark.column);
    if (c == '\t') msg += "; the character there is a tab: YAML indents with spaces only";
    throw Error(msg);
  }

  // "spec.process[0].qconfig" for the node being completed (from the open frames).
  std::string path() const {
    std::string out;
    for (const Frame& f : stack_) {
      const auto& ch = f.node->children;
      if (f.node->kind == YamlNode::Kind::Sequence) {
        out += fmt::format("[{}]", ch.size());
      } else if (ch.size() % 2 == 1) {  // a key is waiting for its value
        const YamlNodeData* k = ch.back();
        out += (out.empty() ? "" : ".") + (k->kind == YamlNode::Kind::Scalar ? k->text : std::string("<key>"));
      }
    }
    if (out.empty()) return "<top level>";
    if (out.size() > 100) out = out.substr(0, 48) + "..." + out.substr(out.size() - 48);  // nesting bombs
    return out;
  }

  [[noreturn]] void fail_at(const yaml_mark_t& m, const std::string& what) const {
    fail("{}:{}:{}: {}: {}", source_, m.line + 1, m.column + 1, path(), what);
  }

  void check_tag(const yaml_event_t& e, const unsigned char* tag, YamlNode::Kind kind) const {
    if (!tag) return;
    std::string t(reinterpret_cast<const char*>(tag));
    if (t == "!") return;  // non-specific: a string, a list or a mapping as written
    static const std::unordered_set<std::string> kScalarTags = {"str", "null", "bool", "int", "float"};
    if (t.rfind(kYamlTagPrefix, 0) == 0) {
      std::string name = t.substr(kYamlTagPrefix.size());
      if (kind == YamlNode::Kind::Scalar && kScalarTags.count(name)) return;
      if (kind == YamlNode::Kind::Sequence && name == "seq") return;
      if (kind == YamlNode::Kind::Mapping && name == "map") return;
    }
    fail_at(e.start_mark, fmt::format("unsupported YAML tag '{}' (lwquant configs hold plain strings, numbers, "
                                      "booleans, lists and mappings)",
                                      show_tag(t)));
  }

  YamlNodeData& new_node(const yaml_event_t& e, YamlNode::Kind kind) {
    YamlNodeData& n = store_->nodes.emplace_back();
    n.kind = kind;
    n.line = static_cast<int>(std::min<size_t>(e.start_mark.line, INT32_MAX));
    n.column = static_cast<int>(std::min<size_t>(e.start_mark.column, INT32_MAX));
    return n;
  }

  void check_anchor(const yaml_event_t& e, const std::string& anchor) const {
    if (anchors_.count(anchor) || open_anchors_.count(anchor)) {
      const YamlNodeData* first = anchors_.count(anchor) ? anchors_.at(anchor) : nullptr;
      fail_at(e.start_mark, fmt::format("duplicate anchor '&{}'{} (PyYAML rejects a redefined anchor too)", anchor,
                                        first ? fmt::format(", first defined at line {}", first->line + 1) : ""));
    }
  }

  // Attaches a finished node to the open collection (or makes it the root).
  void attach(const yaml_event_t& e, const YamlNodeData* n) {
    if (n->expanded > limits_.max_expanded_nodes)
      fail_at(e.start_mark, fmt::format("value expands to more than {} nodes once aliases are copied out (alias "
                                        "bomb?)",
                                        limits_.max_expanded_nodes));
    if (stack_.empty()) {
      root_ = n;
      return;
    }
    YamlNodeData* parent = stack_.back().node;
    parent->children.push_back(n);
    parent->expanded = std::min(parent->expanded + n->expanded, limits_.max_expanded_nodes + 1);
  }

  void scalar(const yaml_event_t& e) {
    const auto& s = e.data.scalar;
    std::string anchor = s.anchor ? reinterpret_cast<const char*>(s.anchor) : "";
    if (!anchor.empty()) check_anchor(e, anchor);
    check_tag(e, s.tag, YamlNode::Kind::Scalar);
    YamlNodeData& n = new_node(e, YamlNode::Kind::Scalar);
    n.text.assign(reinterpret_cast<const char*>(s.value), s.length);
    if (s.tag) n.tag = reinterpret_cast<const char*>(s.tag);
    bool string_tag = n.tag == "!" || n.tag == std::string(kYamlTagPrefix) + "str";
    n.plain = s.style == YAML_PLAIN_SCALAR_STYLE && !string_tag;
    if (!anchor.empty()) anchors_[anchor] = &n;
    attach(e, &n);
  }

  void alias(const yaml_event_t& e) {
    std::string anchor = reinterpret_cast<const char*>(e.data.alias.anchor);
    if (open_anchors_.count(anchor))
      fail_at(e.start_mark, fmt::format("alias '*{}' refers to a value that contains it (recursive aliases are "
                                        "not supported)",
                                        anchor));
    auto it = anchors_.find(anchor);
    if (it == anchors_.end())
      fail_at(e.start_mark, fmt::format("undefined alias '*{}' (an anchor '&{}' must come before its use)", anchor,
                                        anchor));
    attach(e, it->second);
  }

  void open(const yaml_event_t& e, YamlNode::Kind kind, const unsigned char* anchor_c, const unsigned char* tag) {
    if (static_cast<int>(stack_.size()) >= limits_.max_depth)
      fail_at(e.start_mark, fmt::format("lists and mappings nested more than {} levels deep", limits_.max_depth));
    std::string anchor = anchor_c ? reinterpret_cast<const char*>(anchor_c) : "";
    if (!anchor.empty()) check_anchor(e, anchor);
    check_tag(e, tag, kind);
    YamlNodeData& n = new_node(e, kind);
    if (tag) n.tag = reinterpret_cast<const char*>(tag);
    if (!anchor.empty()) open_anchors_.insert(anchor);
    stack_.push_back({&n, anchor});
  }

  void close() {
    Frame f = stack_.back();
    stack_.pop_back();
    if (!f.anchor.empty()) {
      open_anchors_.erase(f.anchor);
      anchors_[f.anchor] = f.node;
    }
    yaml_event_t at{};
    at.start_mark.line = static_cast<size_t>(std::max(f.node->line, 0));
    at.start_mark.column = static_cast<size_t>(std::max(f.node->column, 0));
    attach(at, f.node);
  }

  std::string_view text_;
  const std::string& source_;
  YamlLimits limits_;
  std::shared_ptr<YamlStore> store_;
  std::vector<Frame> stack_;
  std::unordered_map<std::string, const YamlNodeData*> anchors_;
  std::unordered_set<std::string> open_anchors_;
  const YamlNodeData* root_ = nullptr;
};

std::vector<YamlNode> load_yaml_documents(std::string_view text, const std::string& source, const YamlLimits& limits) {
  return YamlBuilder(text, source, limits).run();
}

// ---------------------------------------------------------------- views

namespace {

bool is_merge_key(const YamlNode& key) { return key.is_plain() && key.scalar() == "<<"; }

struct MergeState {
  std::vector<YamlEntry>& out;
  std::unordered_map<std::string, size_t> index;  // key -> position in out
  size_t budget = kMaxMergeEntries;
};

void resolve(const YamlContext& ctx, const YamlNode& map, const std::string& path, int depth, MergeState& st) {
  if (depth > kMaxMergeDepth) ctx.fail_at(map, path, "merge keys ('<<') nested too deeply");
  if (!map.is_map()) ctx.fail_at(map, path, "expected a mapping");
  std::vector<YamlNode> merges;
  std::vector<YamlEntry> local;  // this mapping's own keys, duplicates resolved
  std::unordered_map<std::string, size_t> local_index;
  for (size_t i = 0; i < map.size(); ++i) {
    if (st.budget == 0)
      ctx.fail_at(map, path, fmt::format("merge keys ('<<') expand to more than {} entries (alias bomb?)",
                                         kMaxMergeEntries));
    --st.budget;
    YamlNode key = map.key(i), value = map.value(i);
    if (is_merge_key(key)) {
      merges.push_back(value);
      continue;
    }
    if (!key.is_scalar() || key.is_null()) ctx.fail_at(key, path, "mapping keys must be plain strings");
    auto [it, inserted] = local_index.emplace(key.scalar(), local.size());
    if (!inserted) {
      ctx.warn_at(key, path, fmt::format("duplicate key '{}': the last value wins (as in PyYAML)", key.scalar()));
      local[it->second].key_node = key;
      local[it->second].value = value;
    } else {
      local.push_back({key.scalar(), key, value});
    }
  }
  for (auto& e : local) {
    if (st.index.count(e.key)) continue;  // an earlier (higher-precedence) source has it
    st.index.emplace(e.key, st.out.size());
    st.out.push_back(std::move(e));
  }
  // PyYAML: of several '<<' keys the later one wins; within one '<<' list the
  // earlier mapping wins. First-present wins here, so walk keys backwards.
  for (auto m = merges.rbegin(); m != merges.rend(); ++m) {
    std::vector<YamlNode> sources;
    if (m->is_map()) {
      sources.push_back(*m);
    } else if (m->is_sequence()) {
      for (const auto& s : *m) sources.push_back(s);
    } else {
      ctx.fail_at(*m, path, "merge key '<<' expects a mapping (e.g. *anchor) or a list of mappings");
    }
    for (const YamlNode& src : sources) {
      if (!src.is_map()) ctx.fail_at(src, path, "merge key '<<' expects a mapping or a list of mappings");
      resolve(ctx, src, path, depth + 1, st);
    }
  }
}

std::string type_name(const YamlNode& n) {
  if (n.is_null()) return "null";
  if (n.is_sequence()) return "a list";
  if (n.is_map()) return "a mapping";
  return fmt::format("'{}'", n.scalar());
}

void spend(size_t& budget, const YamlContext& ctx, const YamlNode& n, const std::string& path) {
  if (budget == 0) ctx.fail_at(n, path, "value is too large (alias expansion?)");
  --budget;
}

nlohmann::json to_json(const YamlContext& ctx, const YamlNode& n, const std::string& path, size_t& budget) {
  spend(budget, ctx, n, path);
  if (n.is_null()) return nullptr;
  if (n.is_sequence()) {
    nlohmann::json arr = nlohmann::json::array();
    size_t i = 0;
    for (const auto& item : n) arr.push_back(to_json(ctx, item, fmt::format("{}[{}]", path, i++), budget));
    return arr;
  }
  if (n.is_map()) {
    nlohmann::json obj = nlohmann::json::object();
    for (const auto& e : map_entries(ctx, n, path)) obj[e.key] = to_json(ctx, e.value, path + "." + e.key, budget);
    return obj;
  }
  if (n.is_plain()) {
    const std::string& s = n.scalar();
    bool numeric_bool = s == "0" || s == "1";  // ints, not bools, in free-form values
    if (auto b = scalar_bool(n); b && !numeric_bool) return *b;
    if (auto i = scalar_int(n)) return *i;
    if (auto f = scalar_float(n)) return *f;
  }
  return n.scalar();
}

}  // namespace

std::string YamlContext::where(const YamlNode& node, const std::string& path) const {
  int line = node.line();
  if (line < 0) return fmt::format("{}: {}", source, path);
  return fmt::format("{}:{}: {}", source, line + 1, path);
}

void YamlContext::fail_at(const YamlNode& node, const std::string& path, const std::string& what) const {
  fail("{}: {}", where(node, path), what);
}

void YamlContext::warn_at(const YamlNode& node, const std::string& path, const std::string& what) const {
  if (warnings) warnings->push_back(fmt::format("{}: {}", where(node, path), what));
}

std::vector<YamlEntry> map_entries(const YamlContext& ctx, const YamlNode& map, const std::string& path) {
  std::vector<YamlEntry> out;
  MergeState st{out, {}, kMaxMergeEntries};
  resolve(ctx, map, path, 0, st);
  return out;
}

bool is_null_scalar(const YamlNode& n) { return n.is_null(); }

std::optional<bool> scalar_bool(const YamlNode& n) {
  if (!n.is_scalar()) return std::nullopt;
  static const char* kTrue[] = {"true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON", "1"};
  static const char* kFalse[] = {"false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF", "0"};
  const std::string& s = n.scalar();
  for (const char* t : kTrue)
    if (s == t) return true;
  for (const char* f : kFalse)
    if (s == f) return false;
  return std::nullopt;
}

std::optional<int64_t> scalar_int(const YamlNode& n) {
  if (!n.is_scalar()) return std::nullopt;
  static const std::regex kInt("[-+]?[0-9]+");
  const std::string& s = n.scalar();
  if (s.size() > 64 || !std::regex_match(s, kInt)) return std::nullopt;
  errno = 0;
  char* end = nullptr;
  long long v = std::strtoll(s.c_str(), &end, 10);
  if (errno == ERANGE) return std::nullopt;
  return static_cast<int64_t>(v);
}

std::optional<double> scalar_float(const YamlNode& n) {
  if (!n.is_scalar()) return std::nullopt;
  static const std::regex kFloat("[-+]?([0-9]+\\.?[0-9]*|\\.[0-9]+)([eE][-+]?[0-9]+)?");
  const std::string& s = n.scalar();
  if (s.size() > 512 || !std::regex_match(s, kFloat)) return std::nullopt;
  return std::strtod(s.c_str(), nullptr);
}

std::string read_string(const YamlContext& ctx, const YamlNode& n, const std::string& path) {
  if (!n.is_scalar() || is_null_scalar(n))
    ctx.fail_at(n, path, fmt::format("expected a string, got {}", type_name(n)));
  return n.scalar();
}

bool read_bool(const YamlContext& ctx, const YamlNode& n, const std::string& path) {
  if (auto b = scalar_bool(n)) return *b;
  ctx.fail_at(n, path, fmt::format("expected a boolean (true/false), got {}", type_name(n)));
}

int64_t read_int(const YamlContext& ctx, const YamlNode& n, const std::string& path) {
  if (auto i = scalar_int(n)) return *i;
  ctx.fail_at(n, path, fmt::format("expected an integer, got {}", type_name(n)));
}

double read_float(const YamlContext& ctx, const YamlNode& n, const std::string& path) {
  if (auto f = scalar_float(n)) return *f;
  ctx.fail_at(n, path, fmt::format("expected a number, got {}", type_name(n)));
}

std::vector<std::string> read_string_list(const YamlContext& ctx, const YamlNode& n, const std::string& path) {
  if (!n.is_sequence())
    ctx.fail_at(n, path, fmt::format("expected a list of strings (e.g. [\"*mlp*\"]), got {}", type_name(n)));
  std::vector<std::string> out;
  size_t i = 0;
  for (const auto& item : n) out.push_back(read_string(ctx, item, fmt::format("{}[{}]", path, i++)));
  return out;
}

nlohmann::json yaml_to_json(const YamlContext& ctx, const YamlNode& n, const std::string& path,
                            size_t max_nodes) {
  size_t budget = max_nodes;
  return to_json(ctx, n, path, budget);
}

}  // namespace lwq
