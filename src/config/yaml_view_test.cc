// The libyaml-based YAML layer: hostile input fails fast with one clear
// lwq::Error naming file, line and column; PyYAML's semantics are kept.
#include "config/yaml_view.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

#include "config/quant_config.h"
#include "util/error.h"

namespace lwq {
namespace {

// The message of the lwq::Error that parsing `yaml` as a practice throws.
std::string config_error(const std::string& yaml) {
  auto t0 = std::chrono::steady_clock::now();
  std::string msg;
  try {
    parse_service_config(yaml, "bad.yaml");
    ADD_FAILURE() << "expected lwq::Error for:\n" << yaml.substr(0, 200);
  } catch (const Error& e) {
    msg = e.what();
  }
  // "Fails fast": every case here is a few bytes to a few hundred kB.
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 2.0) << msg;
  EXPECT_LT(msg.size(), 600u) << msg;  // one readable line, not a dump
  return msg;
}

void expect_config_error(const std::string& yaml, const std::vector<std::string>& parts) {
  std::string msg = config_error(yaml);
  for (const auto& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "missing '" << p << "' in: " << msg;
}

YamlNode load_one(const std::string& yaml) {
  auto docs = load_yaml_documents(yaml, "t.yaml");
  EXPECT_EQ(docs.size(), 1u);
  return docs.empty() ? YamlNode() : docs[0];
}

const std::string kValid = R"(apiversion: modelslim_v1
spec:
  process:
    - type: linear_quant
      qconfig:
        weight: {scope: per_channel, dtype: int8, symmetric: true, method: minmax}
)";

TEST(YamlHostile, StrayTopLevelCommaFailsFast) {
  // yaml-cpp 0.7 looped forever on this one-character typo, its memory growing.
  expect_config_error("apiversion: modelslim_v1\n,\nspec: {}\n",
                      {"bad.yaml:2:1: YAML syntax error", "did not find expected key",
                       "while parsing a block mapping that starts at line 1, column 1"});
  expect_config_error(",\n", {"bad.yaml:1:1: YAML syntax error"});
  expect_config_error(kValid + ",", {"bad.yaml:7:1: YAML syntax error"});
  expect_config_error("apiversion: modelslim_v1,\n,\n,\n", {"bad.yaml:2:1: YAML syntax error"});
}

TEST(YamlHostile, Tabs) {
  expect_config_error("apiversion: modelslim_v1\nspec:\n\tprocess: []\n",
                      {"bad.yaml:3:1: YAML syntax error", "cannot start any token", "tab",
                       "YAML indents with spaces only"});
  // A tab inside a value is just text; a tab before a comment is whitespace.
  ServiceConfig c = parse_service_config(kValid + "  dataset: a\tb.jsonl\t# note\n", "ok.yaml");
  EXPECT_EQ(c.dataset, "a\tb.jsonl");
}

TEST(YamlHostile, UnclosedQuotesAndBrackets) {
  expect_config_error("apiversion: \"modelslim_v1\nspec: {}\n",
                      {"bad.yaml:3:1: YAML syntax error", "found unexpected end of stream",
                       "while scanning a quoted scalar that starts at line 1, column 13"});
  expect_config_error("apiversion: 'modelslim_v1\n", {"bad.yaml:2:1: YAML syntax error", "quoted scalar"});
  expect_config_error("apiversion: modelslim_v1\nspec:\n  process: [\n", {"bad.yaml:4:1: YAML syntax error"});
  expect_config_error("apiversion: modelslim_v1\nspec: {process: []\n",
                      {"bad.yaml:3:1: YAML syntax error", "did not find expected ',' or '}'",
                       "flow mapping that starts at line 2, column 7"});
}

TEST(YamlHostile, DeepNestingIsBounded) {
  expect_config_error(std::string(200000, '['), {"bad.yaml:1:257:", "nested more than 256 levels"});
  expect_config_error("a: " + std::string(100000, '{') , {"bad.yaml:1:", "nested more than 256 levels"});
  std::string block;
  for (int i = 0; i < 300; ++i) block += std::string(i, ' ') + "k:\n";
  expect_config_error(block, {"bad.yaml:257:257:", "nested more than 256 levels", "k.k.k", "..."});
  // 256 levels are fine for the loader (the schema then rejects the document).
  std::string ok = std::string(255, '[') + std::string(255, ']');
  EXPECT_NO_THROW(load_yaml_documents("a: " + ok, "t.yaml"));
}

TEST(YamlHostile, AliasBombBillionLaughs) {
  std::string yaml = "apiversion: modelslim_v1\na0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n";
  for (int i = 1; i < 10; ++i) {
    yaml += fmt::format("a{}: &a{} [", i, i);
    for (int j = 0; j < 10; ++j) yaml += fmt::format("{}*a{}", j ? ", " : "", i - 1);
    yaml += "]\n";
  }
  yaml += "spec: {dataset: *a9}\n";
  expect_config_error(yaml, {"bad.yaml:8:", "a6: value expands to more than 4000000 nodes", "alias bomb"});
}

TEST(YamlHostile, MergeKeyBomb) {
  std::string yaml = "apiversion: modelslim_v1\nm0: &m0 {k: 1}\n";
  for (int i = 1; i < 12; ++i) {
    yaml += fmt::format("m{}: &m{} {{<<: [", i, i);
    for (int j = 0; j < 10; ++j) yaml += fmt::format("{}*m{}", j ? ", " : "", i - 1);
    yaml += "]}\n";
  }
  expect_config_error(yaml, {"bad.yaml:", "expands to more than", "alias bomb"});
}

TEST(YamlHostile, EmptyAndNonMappingDocuments) {
  expect_config_error("", {"bad.yaml: empty document"});
  expect_config_error("# only a comment\n\n", {"bad.yaml: empty document"});
  expect_config_error("---\n", {"bad.yaml: empty document"});
  expect_config_error("~\n", {"bad.yaml: empty document"});
  expect_config_error("- apiversion: modelslim_v1\n", {"bad.yaml", "expected a mapping", "top level"});
  expect_config_error("modelslim_v1\n", {"bad.yaml", "expected a mapping", "top level"});
  expect_config_error("\"apiversion: modelslim_v1\"\n", {"bad.yaml", "expected a mapping", "top level"});
}

TEST(YamlHostile, NonUtf8Bytes) {
  expect_config_error(kValid + "  dataset: caf\xe9.jsonl\n",
                      {"bad.yaml:7:16: YAML syntax error", "UTF-8", "byte 0x2e at offset", "after e9"});
  expect_config_error(kValid + "  dataset: \xff\n", {"bad.yaml:7:12: YAML syntax error", "invalid leading UTF-8 octet",
                                                     "byte 0xff"});
  expect_config_error(kValid + "  dataset: \xe2\x82", {"bad.yaml:7:", "incomplete UTF-8 octet sequence"});
}

TEST(YamlHostile, NulAndControlBytes) {
  std::string nul = kValid + "  dataset: a";
  nul += '\0';
  nul += "b\n";
  expect_config_error(nul, {"bad.yaml:7:13: YAML syntax error", "control characters are not allowed", "U+0000"});
  expect_config_error(kValid + "  dataset: a\x01" "b\n", {"bad.yaml:7:13:", "U+0001"});
}

TEST(YamlHostile, AnchorsAndTags) {
  expect_config_error("apiversion: modelslim_v1\nspec: *nothing\n",
                      {"bad.yaml:2:7: spec: undefined alias '*nothing'"});
  expect_config_error("apiversion: modelslim_v1\na: &x 1\nb: &x 2\nspec: {}\n",
                      {"bad.yaml:3:4: b: duplicate anchor '&x', first defined at line 2"});
  expect_config_error("apiversion: modelslim_v1\nspec: &s {process: [*s]}\n",
                      {"bad.yaml:2:21: spec.process[0]: alias '*s' refers to a value that contains it"});
  expect_config_error("apiversion: modelslim_v1\nspec: !!python/object:os.system {}\n",
                      {"bad.yaml:2:7: spec: unsupported YAML tag '!!python/object:os.system'"});
  expect_config_error("apiversion: !custom modelslim_v1\n", {"bad.yaml:1:13", "unsupported YAML tag '!custom'"});
}

TEST(YamlHostile, LargeButHarmlessInputsStayLinear) {
  // 200k keys (every one twice) and a 200k-item list: no quadratic duplicate search.
  std::string keys;
  for (int i = 0; i < 200000; ++i) keys += fmt::format("k{}: 1\n", i % 100000);
  auto t0 = std::chrono::steady_clock::now();
  YamlNode map = load_one(keys);
  YamlContext ctx{"big.yaml", nullptr};
  EXPECT_EQ(map_entries(ctx, map, "x").size(), 100000u);
  std::string list = "[" + std::string(200000 * 3, ' ') + "]";
  for (size_t i = 0; i < 200000; ++i) list[1 + 3 * i] = '1', list[2 + 3 * i] = ',';
  EXPECT_EQ(load_one(list).size(), 200000u);
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 10.0);
}

// ---- the tree and PyYAML semantics

TEST(YamlTree, LinesKindsAndScalarStyles) {
  YamlNode root = load_one("a: 1\nb: \"1\"\nc: ~\nd:\n  - x\n  - 'y'\ne: !!str 2\nf: !!int 3\ng: ''\n");
  ASSERT_TRUE(root.is_map());
  ASSERT_EQ(root.size(), 7u);
  EXPECT_EQ(root.key(1).scalar(), "b");
  EXPECT_EQ(root.key(1).line(), 1);
  EXPECT_TRUE(root.value(0).is_plain());
  EXPECT_FALSE(root.value(1).is_plain());  // quoted: always a string
  EXPECT_TRUE(root.value(2).is_null());
  EXPECT_EQ(root.value(3).line(), 4);
  ASSERT_TRUE(root.value(3).is_sequence());
  std::vector<std::string> items;
  for (const auto& item : root.value(3)) items.push_back(item.scalar());
  EXPECT_EQ(items, (std::vector<std::string>{"x", "y"}));
  EXPECT_FALSE(root.value(4).is_plain());  // !!str
  EXPECT_TRUE(root.value(5).is_plain());   // !!int: typed by its text
  EXPECT_FALSE(root.value(6).is_null());   // '' is an empty string, not null
  EXPECT_FALSE(YamlNode().is_defined());
  EXPECT_TRUE(YamlNode().is_null());
}

TEST(YamlTree, ScalarTypingAndJson) {
  YamlNode root = load_one(
      "{i: 42, q: '42', f: 2.5, b: yes, qb: 'yes', z: 0, n: null, qn: 'null', s: hello, big: 99999999999999999999}");
  YamlContext ctx{"t.yaml", nullptr};
  nlohmann::json j = yaml_to_json(ctx, root, "x");
  EXPECT_EQ(j["i"], 42);
  EXPECT_EQ(j["q"], "42");
  EXPECT_EQ(j["f"], 2.5);
  EXPECT_EQ(j["b"], true);
  EXPECT_EQ(j["qb"], "yes");
  EXPECT_EQ(j["z"], 0);
  EXPECT_TRUE(j["n"].is_null());
  EXPECT_EQ(j["qn"], "null");
  EXPECT_EQ(j["s"], "hello");
  EXPECT_TRUE(j["big"].is_number_float());  // out of int64 range: a float, as before
}

TEST(YamlTree, MergeKeysFollowPyYaml) {
  YamlNode root = load_one(R"(
a: &a {x: 1, y: 1}
b: &b {x: 2, z: 2}
c:
  <<: *a
  <<: *b
d:
  <<: [*a, *b]
e: {<<: *a, x: 9, x: 10}
f: {<<: []}
)");
  std::vector<std::string> warnings;
  YamlContext ctx{"t.yaml", &warnings};
  auto obj = [&](size_t i) { return yaml_to_json(ctx, root.value(i), root.key(i).scalar()); };
  // Several '<<' keys: the later one wins (PyYAML), as yaml.safe_load gives
  // {'x': 2, 'y': 1, 'z': 2}.
  EXPECT_EQ(obj(2), nlohmann::json::parse(R"({"x": 2, "y": 1, "z": 2})"));
  // One '<<' list: the earlier mapping wins: {'x': 1, 'z': 2, 'y': 1}.
  EXPECT_EQ(obj(3), nlohmann::json::parse(R"({"x": 1, "y": 1, "z": 2})"));
  // Explicit keys beat merged ones; a duplicate explicit key: last wins, warned.
  EXPECT_EQ(obj(4), nlohmann::json::parse(R"({"x": 10, "y": 1})"));
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("t.yaml:9: e: duplicate key 'x'"), std::string::npos) << warnings[0];
  EXPECT_EQ(obj(5), nlohmann::json::object());
  // Document order of the explicit keys, then merged keys.
  auto entries = map_entries(ctx, root.value(4), "e");
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(entries[0].key, "x");
  EXPECT_EQ(entries[1].key, "y");
  EXPECT_EQ(entries[0].value.line(), 8);
}

TEST(YamlTree, MalformedMergesNameThePath) {
  expect_config_error("apiversion: modelslim_v1\nspec: {<<: 1}\n",
                      {"bad.yaml:2: spec: merge key '<<' expects a mapping"});
  expect_config_error("apiversion: modelslim_v1\nspec: {<<: [1]}\n",
                      {"bad.yaml:2: spec: merge key '<<' expects a mapping or a list of mappings"});
  // A quoted "<<" is an ordinary key.
  YamlNode n = load_one("{'<<': 1}");
  YamlContext ctx{"t.yaml", nullptr};
  EXPECT_EQ(yaml_to_json(ctx, n, "x"), nlohmann::json::parse(R"({"<<": 1})"));
}

TEST(YamlTree, EncodingsAndLineEndings) {
  ServiceConfig crlf = parse_service_config("\xef\xbb\xbf" "apiversion: modelslim_v1\r\nspec:\r\n  runner: layer_wise\r\n",
                                            "crlf.yaml");
  EXPECT_EQ(crlf.runner, RunnerType::LayerWise);
  expect_config_error("apiversion: modelslim_v1\r\nspec:\r\n  runner: fast\r\n", {"bad.yaml:3: spec.runner", "'fast'"});
  // UTF-16 with a byte order mark is YAML too (PyYAML reads it as well).
  std::string utf16 = "\xff\xfe";
  for (char c : std::string("apiversion: modelslim_v1\n")) utf16 += std::string{c, '\0'};
  ServiceConfig c16 = parse_service_config(utf16, "utf16.yaml");
  EXPECT_EQ(c16.apiversion, "modelslim_v1");
}

TEST(YamlTree, LoadsSeveralDocuments) {
  auto docs = load_yaml_documents("a: 1\n---\nb: 2\n--- 3\n", "t.yaml");
  ASSERT_EQ(docs.size(), 3u);
  EXPECT_EQ(docs[1].key(0).scalar(), "b");
  EXPECT_EQ(docs[2].scalar(), "3");
  EXPECT_TRUE(load_yaml_documents("", "t.yaml").empty());
  // Anchors are per document, as in PyYAML.
  EXPECT_THROW(load_yaml_documents("a: &x 1\n---\nb: *x\n", "t.yaml"), Error);
}

}  // namespace
}  // namespace lwq
