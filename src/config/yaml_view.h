// YAML as PyYAML (msModelSlim's loader) sees it, parsed with libyaml (the C
// core of PyYAML; YAML 1.1) into a small owned tree: YAML 1.1 merge keys
// (`<<: *anchor`), YAML 1.1 scalar types, anchors and aliases, and error
// locations as "file:line: path".
//
// Hostile input is bounded: nesting depth, alias expansion (billion laughs)
// and merge-key expansion all have limits, every libyaml error becomes one
// lwq::Error naming the file, line, column and libyaml's problem.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace lwq {

struct YamlNodeData;
struct YamlStore;

// A read-only handle to one node of a loaded document (cheap to copy; keeps
// the document alive). A default-constructed node is "undefined": it stands
// for a missing value and behaves as null.
class YamlNode {
 public:
  enum class Kind { Undefined, Scalar, Sequence, Mapping };

  YamlNode() = default;

  Kind kind() const;
  bool is_defined() const { return d_ != nullptr; }
  bool is_scalar() const { return kind() == Kind::Scalar; }  // null-valued scalars included
  bool is_sequence() const { return kind() == Kind::Sequence; }
  bool is_map() const { return kind() == Kind::Mapping; }
  // Undefined, or a plain scalar spelled as YAML 1.1 null ("", ~, null, Null, NULL).
  bool is_null() const;
  // A scalar typed by its text (no quotes, no !!str or ! tag): YAML 1.1 plain.
  bool is_plain() const;
  const std::string& scalar() const;  // the scalar's text ("" for other kinds)
  const std::string& tag() const;     // explicit tag as written after resolution ("" if none)
  int line() const;                   // 0-based; -1 when undefined
  int column() const;                 // 0-based; -1 when undefined

  // Items of a sequence or pairs of a mapping (raw: merge keys unresolved,
  // duplicates kept; see map_entries); 0 for other kinds.
  size_t size() const;
  YamlNode item(size_t i) const;   // sequence item
  YamlNode key(size_t i) const;    // mapping pair i
  YamlNode value(size_t i) const;  // mapping pair i

  // Iterates the items of a sequence (nothing for other kinds).
  class iterator {
   public:
    using iterator_category = std::forward_iterator_tag;
    using value_type = YamlNode;
    using difference_type = std::ptrdiff_t;
    using pointer = void;
    using reference = YamlNode;
    iterator(const YamlNode* seq, size_t i) : seq_(seq), i_(i) {}
    YamlNode operator*() const { return seq_->item(i_); }
    iterator& operator++() {
      ++i_;
      return *this;
    }
    bool operator==(const iterator& o) const { return i_ == o.i_; }
    bool operator!=(const iterator& o) const { return i_ != o.i_; }

   private:
    const YamlNode* seq_;
    size_t i_;
  };
  iterator begin() const { return {this, 0}; }
  iterator end() const { return {this, is_sequence() ? size() : 0}; }

 private:
  friend class YamlBuilder;
  YamlNode(std::shared_ptr<const YamlStore> store, const YamlNodeData* d) : store_(std::move(store)), d_(d) {}
  std::shared_ptr<const YamlStore> store_;
  const YamlNodeData* d_ = nullptr;
};

// Bounds on what one document may make the loader do.
struct YamlLimits {
  // Collections nested inside one another.
  int max_depth = 256;
  // Nodes a value would have with every alias copied out (billion laughs);
  // checked for every node as it is completed, the whole document included.
  uint64_t max_expanded_nodes = 4'000'000;
};

// Parses every document of a YAML stream. Throws lwq::Error:
//   "<source>:<line>:<column>: YAML syntax error: <libyaml's problem> (<context>)"
// for anything libyaml rejects (bad syntax, tabs, unclosed quotes or brackets,
// non-UTF-8 bytes, control characters such as NUL), and
//   "<source>:<line>:<column>: <path>: <what>"
// for undefined, duplicate or recursive anchors, unsupported tags and the
// limits above. Touches no files: usable on fuzzer input.
std::vector<YamlNode> load_yaml_documents(std::string_view text, const std::string& source,
                                          const YamlLimits& limits = {});

// Where a YAML node came from; prefixes every message.
struct YamlContext {
  std::string source;                  // file name
  std::vector<std::string>* warnings;  // may be null: warnings dropped

  // "file:12: spec.process[0].qconfig" (line omitted when unknown).
  std::string where(const YamlNode& node, const std::string& path) const;
  [[noreturn]] void fail_at(const YamlNode& node, const std::string& path, const std::string& what) const;
  void warn_at(const YamlNode& node, const std::string& path, const std::string& what) const;
};

struct YamlEntry {
  std::string key;
  YamlNode key_node;
  YamlNode value;
};

// Entries of a mapping in document order with merge keys resolved as PyYAML
// does: explicit keys win over merged ones; within one `<<: [a, b]` list the
// earlier map wins; of several `<<` keys in one mapping the later one wins;
// nested merges are followed. Duplicate explicit keys: last wins, with a
// warning. Throws lwq::Error if `map` is not a mapping, a merge is malformed,
// or merges expand past a bound.
std::vector<YamlEntry> map_entries(const YamlContext& ctx, const YamlNode& map, const std::string& path);

// YAML 1.1 plain-scalar typing (PyYAML): quoted scalars are always strings.
bool is_null_scalar(const YamlNode& n);
std::optional<bool> scalar_bool(const YamlNode& n);     // true/yes/on..., also 0/1
std::optional<int64_t> scalar_int(const YamlNode& n);   // decimal integer
std::optional<double> scalar_float(const YamlNode& n);  // integer or decimal float

// Required-type readers: throw naming the path and the expected type.
std::string read_string(const YamlContext& ctx, const YamlNode& n, const std::string& path);
bool read_bool(const YamlContext& ctx, const YamlNode& n, const std::string& path);
int64_t read_int(const YamlContext& ctx, const YamlNode& n, const std::string& path);
double read_float(const YamlContext& ctx, const YamlNode& n, const std::string& path);
std::vector<std::string> read_string_list(const YamlContext& ctx, const YamlNode& n, const std::string& path);

// A free-form value (quantizer `ext`) as JSON, merges resolved and scalars
// typed. Throws if the value expands past `max_nodes` (alias bombs).
nlohmann::json yaml_to_json(const YamlContext& ctx, const YamlNode& n, const std::string& path,
                            size_t max_nodes = 100000);

}  // namespace lwq
