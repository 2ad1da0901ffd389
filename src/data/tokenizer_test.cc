#include "data/tokenizer.h"

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "data/tokenizer_regex.h"
#include "data/tokenizer_unicode.h"
#include "util/error.h"
#include "util/file_util.h"

namespace lwq {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const char* kStories = LWQ_SOURCE_DIR "/examples/stories260K";
const char* kGoldenDir = LWQ_SOURCE_DIR "/tests/data/tokenizer";
const char* kQwenDir = LWQ_SHARED_DIR "/tokenizers/qwen3";

std::vector<int32_t> ids_of(const json& j) { return j.get<std::vector<int32_t>>(); }

// Checks every {"text","ids"[,"decoded"]} case: encode exactly, and decode
// (with special tokens kept) exactly where the golden has it.
void check_cases(const Tokenizer& tok, const json& cases, const std::string& label) {
  ASSERT_TRUE(cases.is_array());
  ASSERT_GT(cases.size(), 0u);
  for (const auto& c : cases) {
    std::string text = c["text"];
    auto want = ids_of(c["ids"]);
    EXPECT_EQ(tok.encode(text), want) << label << " text: " << json(text).dump();
    if (c.contains("decoded")) {
      EXPECT_EQ(tok.decode(want, false), c["decoded"].get<std::string>())
          << label << " text: " << json(text).dump();
    }
  }
}

const Tokenizer& stories() {
  static const Tokenizer t = Tokenizer::load(kStories);
  return t;
}

TEST(Tokenizer, QwenGoldenIds) {
  if (!fs::exists(fs::path(kQwenDir) / "tokenizer.json"))
    GTEST_SKIP() << "shared folder missing: " << kQwenDir;
  auto start = std::chrono::steady_clock::now();
  Tokenizer tok = Tokenizer::load(fs::path(kQwenDir) / "tokenizer.json");
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  // Release loads it in ~0.4 s; the bound is loose for Debug builds on a busy CI machine.
  EXPECT_LT(secs, 10.0) << "loading the 11 MB Qwen3 tokenizer.json is too slow";
  json golden = json::parse(read_text_file(fs::path(kQwenDir) / "golden_ids.json"));
  check_cases(tok, golden, "qwen3 golden_ids");
  // Extra cases made with HF tokenizers by tools/make_tokenizer_goldens.py.
  check_cases(tok, json::parse(read_text_file(fs::path(kGoldenDir) / "qwen3_extra_golden.json")),
              "qwen3 extra");

  EXPECT_EQ(tok.vocab_size(), 151669u);
  EXPECT_EQ(tok.token_to_id("<|im_end|>"), 151645);
  EXPECT_EQ(tok.eos_id(), 151645);  // from tokenizer_config.json
  EXPECT_FALSE(tok.bos_id().has_value());
  EXPECT_FALSE(tok.adds_bos());
  EXPECT_EQ(tok.encode_with_special("hi"), tok.encode("hi"));
  std::vector<int32_t> chat = tok.encode("<|im_start|>user\nhi<|im_end|>");
  EXPECT_EQ(tok.decode(chat, true), "user\nhi");
  EXPECT_EQ(tok.decode(chat, false), "<|im_start|>user\nhi<|im_end|>");
  // Non-special added tokens survive skip_special_tokens.
  EXPECT_EQ(tok.decode(tok.encode("<think>x</think>"), true), "<think>x</think>");
  // Ids past the vocabulary (padded embedding rows) are skipped like HF does.
  std::vector<int32_t> padded = {tok.encode("ok")[0], 151900};
  EXPECT_EQ(tok.decode(padded), "ok");
}

TEST(Tokenizer, QwenDecodePrefixesOfMultiByteText) {
  if (!fs::exists(fs::path(kQwenDir) / "tokenizer.json"))
    GTEST_SKIP() << "shared folder missing: " << kQwenDir;
  Tokenizer tok = Tokenizer::load(kQwenDir);
  std::string text = "量化🤖 ok";
  auto ids = tok.encode(text);
  EXPECT_EQ(tok.decode(ids), text);
  for (size_t n = 0; n <= ids.size(); ++n) {
    std::string d = tok.decode(std::span<const int32_t>(ids.data(), n));
    EXPECT_TRUE(utf8_valid(d)) << n;  // split characters become U+FFFD, never broken UTF-8
  }
}

TEST(Tokenizer, StoriesBasics) {
  const Tokenizer& t = stories();
  EXPECT_EQ(t.vocab_size(), 512u);
  EXPECT_EQ(t.bos_id(), 1);
  EXPECT_EQ(t.eos_id(), 2);
  EXPECT_TRUE(t.adds_bos());
  // HF's Prepend leaves empty text alone, so only the template's <s> remains.
  EXPECT_EQ(t.encode_with_special(""), std::vector<int32_t>{1});
  EXPECT_TRUE(t.encode("").empty());
  EXPECT_EQ(t.id_to_token(403), "▁Once");
  EXPECT_EQ(t.token_to_id("<0x0A>"), 13);
  EXPECT_THROW(t.id_to_token(512), Error);
  EXPECT_THROW(t.id_to_token(-1), Error);
}

TEST(Tokenizer, StoriesHandCheckedEncodings) {
  const Tokenizer& t = stories();
  // Vocab: ▁Once=403 ▁upon=407 ▁a=261 ▁time=378; leading/trailing spaces are
  // removed by the Replace("^ +| +$") normalizer before "▁" is prepended.
  std::vector<int32_t> once = {403, 407, 261, 378};
  EXPECT_EQ(t.encode("Once upon a time"), once);
  EXPECT_EQ(t.encode("  Once   upon a time  "), once);
  EXPECT_EQ(t.encode_with_special("Once upon a time"), (std::vector<int32_t>{1, 403, 407, 261, 378}));
  // "Hello": merges give ▁He + ll + o.
  EXPECT_EQ(t.encode("Hello"), (std::vector<int32_t>{346, 306, 414}));
  // "中" is not in the vocab: byte fallback to <0xE4><0xB8><0xAD> after "▁" (410).
  EXPECT_EQ(t.encode("中"), (std::vector<int32_t>{410, 231, 187, 176}));
  EXPECT_EQ(t.id_to_token(231), "<0xE4>");
  EXPECT_EQ(t.decode(t.encode("中")), "中");
  // A newline has no piece of its own: <0x0A> = 13.
  EXPECT_EQ(t.encode("Lily\n"), (std::vector<int32_t>{317, 13}));
  // Special tokens in the raw text are matched before normalization.
  EXPECT_EQ(t.encode("<s>Once</s>"), (std::vector<int32_t>{1, 403, 2}));
}

TEST(Tokenizer, StoriesGreedyReference) {
  const Tokenizer& t = stories();
  auto ids = ids_of(json::parse(read_text_file(fs::path(kStories) / "reference/greedy_200_ids.json")));
  std::string text = read_text_file(fs::path(kStories) / "reference/greedy_200.txt");
  ASSERT_FALSE(text.empty());
  ASSERT_EQ(text.back(), '\n');
  text.pop_back();
  ASSERT_EQ(ids.size(), 201u);
  ASSERT_EQ(ids[0], 1);
  EXPECT_EQ(t.decode(ids), text);
  // The greedy ids are the canonical encoding of the text (checked with HF tokenizers).
  EXPECT_EQ(t.encode_with_special(text), ids);
  // Decoding every prefix never breaks and grows the text monotonically here (no split bytes).
  std::string prev;
  for (size_t n = 1; n <= ids.size(); ++n) {
    std::string d = t.decode(std::span<const int32_t>(ids.data(), n));
    ASSERT_EQ(d.compare(0, prev.size(), prev), 0) << n;
    prev = d;
  }
  // Special tokens are kept when asked; the decoder's Strip removes only one leading space.
  EXPECT_EQ(t.decode(std::vector<int32_t>{1, 403, 2}, false), "<s> Once</s>");
  EXPECT_EQ(t.decode(std::vector<int32_t>{1, 403, 2}, true), "Once");
}

TEST(Tokenizer, StoriesGoldenFromHf) {
  json golden = json::parse(read_text_file(fs::path(kGoldenDir) / "stories260K_golden.json"));
  check_cases(stories(), golden, "stories260K");
}

// Small tokenizers trained with HF (tools/make_tokenizer_goldens.py) cover the
// GPT-2 regex, add_prefix_space, Lowercase/NFKC/Strip, Metaspace schemes and
// added-token flags (lstrip/rstrip/single_word/normalized).
class SynthTokenizer : public ::testing::TestWithParam<const char*> {};

TEST_P(SynthTokenizer, MatchesHf) {
  json data = json::parse(read_text_file(fs::path(kGoldenDir) / GetParam()));
  Tokenizer tok = Tokenizer::from_json(data["tokenizer"].dump(), GetParam());
  check_cases(tok, data["cases"], GetParam());
}

INSTANTIATE_TEST_SUITE_P(Files, SynthTokenizer,
                         ::testing::Values("synth_bytelevel.json", "synth_metaspace_first.json",
                                           "synth_metaspace_always.json",
                                           "synth_metaspace_never.json"));

// A minimal BPE tokenizer.json around the given model fields.
std::string tiny_json(const std::string& merges, const std::string& extra = "") {
  return R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2, "c": 3, "abc": 4, "bc": 5},
             "merges": )" + merges + extra + "}}";
}

TEST(Tokenizer, MergesAsStringsOrPairs) {
  Tokenizer s = Tokenizer::from_json(tiny_json(R"(["a b", "ab c"])"), "strings");
  Tokenizer p = Tokenizer::from_json(tiny_json(R"([["a", "b"], ["ab", "c"]])"), "pairs");
  EXPECT_EQ(s.encode("abc"), std::vector<int32_t>{4});
  EXPECT_EQ(p.encode("abc"), std::vector<int32_t>{4});
  // Rank decides: "b c" first leaves a + bc (no "a bc" merge).
  Tokenizer r = Tokenizer::from_json(tiny_json(R"(["b c", "a b", "ab c"])"), "rank");
  EXPECT_EQ(r.encode("abc"), (std::vector<int32_t>{0, 5}));
  // No pre-tokenizer and no decoder: tokens joined with spaces, like HF.
  EXPECT_EQ(r.decode(std::vector<int32_t>{0, 5}), "a bc");
  // Unknown characters without unk/byte fallback are dropped, as in HF, and the
  // neighbours then merge.
  EXPECT_EQ(s.encode("axb"), std::vector<int32_t>{2});
}

TEST(Tokenizer, IgnoreMerges) {
  // With ignore_merges a whole word found in the vocab wins over the merges.
  Tokenizer with = Tokenizer::from_json(tiny_json(R"(["b c"])", R"(, "ignore_merges": true)"), "t");
  Tokenizer without = Tokenizer::from_json(tiny_json(R"(["b c"])"), "t");
  EXPECT_EQ(with.encode("abc"), std::vector<int32_t>{4});
  EXPECT_EQ(without.encode("abc"), (std::vector<int32_t>{0, 5}));
}

TEST(Tokenizer, ConfigOverridesBosEos) {
  std::string tj = read_text_file(fs::path(kStories) / "tokenizer.json");
  Tokenizer both = Tokenizer::from_json(
      tj, "x/tokenizer.json",
      std::string(R"({"add_bos_token": true, "add_eos_token": true, "bos_token": {"content": "<s>"},
                      "eos_token": "</s>"})"));
  EXPECT_EQ(both.encode_with_special("Once"), (std::vector<int32_t>{1, 403, 2}));
  Tokenizer none = Tokenizer::from_json(tj, "x/tokenizer.json", std::string(R"({"add_bos_token": false})"));
  EXPECT_FALSE(none.adds_bos());
  EXPECT_EQ(none.encode_with_special("Once"), std::vector<int32_t>{403});
  EXPECT_THROW(Tokenizer::from_json(tj, "x/tokenizer.json", std::string(R"({"bos_token": "<nope>"})")),
               Error);
}

TEST(Tokenizer, RegexWhitespaceIsUnicodeWhiteSpace) {
  // U+180E is not White_Space (Oniguruma, Rust) though PCRE2's own \s takes it.
  TokRegex re = TokRegex::pattern(R"(\s+)", "test");
  EXPECT_TRUE(re.find_all("a\xE1\xA0\x8E" "b").empty());
  EXPECT_EQ(re.find_all("a\xE2\x80\xA8 b").size(), 1u);  // U+2028 + space
  EXPECT_EQ(rewrite_whitespace_classes(R"([^\s\p{L}])").find("\\s"), std::string::npos);
  // Oniguruma's rule for empty matches: x* on "bxx" gives (0,0), (1,3).
  auto m = TokRegex::pattern("x*", "test").find_all("bxx");
  ASSERT_EQ(m.size(), 2u);
  EXPECT_EQ(m[0], (std::pair<size_t, size_t>{0, 0}));
  EXPECT_EQ(m[1], (std::pair<size_t, size_t>{1, 3}));
  // ^ and $ are line anchors, as in Oniguruma's Ruby syntax.
  EXPECT_EQ(TokRegex::pattern("^ +| +$", "test").find_all("a \n b").size(), 2u);
}

TEST(Tokenizer, Utf8Lossy) {
  EXPECT_EQ(utf8_lossy("a\xE4\xB8"), "a\xEF\xBF\xBD");           // one U+FFFD for a cut char
  EXPECT_EQ(utf8_lossy("\xFF\xE4\xB8\xAD"), "\xEF\xBF\xBD中");    // invalid byte, then a whole char
  EXPECT_EQ(utf8_lossy("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // surrogate
}

// ---- bad input: lwq::Error naming the file and the problem ----

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(Tokenizer, BadInputErrors) {
  auto has = [](const std::string& msg, const std::string& part) {
    return msg.find(part) != std::string::npos;
  };
  std::string m = error_of([] { Tokenizer::from_json("{not json", "bad.json"); });
  EXPECT_TRUE(has(m, "bad.json") && has(m, "invalid JSON")) << m;
  m = error_of([] { Tokenizer::from_json(R"({"normalizer": null})", "nomodel.json"); });
  EXPECT_TRUE(has(m, "nomodel.json") && has(m, "model")) << m;
  m = error_of([] { Tokenizer::from_json(R"({"model": {"type": "Unigram", "vocab": []}})", "u.json"); });
  EXPECT_TRUE(has(m, "u.json") && has(m, "Unigram")) << m;
  m = error_of([] {
    Tokenizer::from_json(tiny_json("[]").insert(1, R"("normalizer": {"type": "Precompiled"}, )"), "n.json");
  });
  EXPECT_TRUE(has(m, "n.json") && has(m, "Precompiled") && has(m, "normalizer")) << m;
  m = error_of([] {
    Tokenizer::from_json(tiny_json("[]").insert(1, R"("pre_tokenizer": {"type": "BertPreTokenizer"}, )"),
                         "p.json");
  });
  EXPECT_TRUE(has(m, "p.json") && has(m, "BertPreTokenizer")) << m;
  m = error_of([] {
    Tokenizer::from_json(tiny_json("[]").insert(1, R"("decoder": {"type": "WordPiece"}, )"), "d.json");
  });
  EXPECT_TRUE(has(m, "d.json") && has(m, "WordPiece")) << m;
  m = error_of([] { Tokenizer::from_json(tiny_json(R"(["a x"])"), "m.json"); });
  EXPECT_TRUE(has(m, "m.json") && has(m, "merge 1")) << m;
  m = error_of([] { Tokenizer::from_json(tiny_json(R"(["abc"])"), "m2.json"); });
  EXPECT_TRUE(has(m, "m2.json") && has(m, "merge 1")) << m;
  m = error_of([] {
    Tokenizer::from_json(
        tiny_json("[]").insert(1, R"("pre_tokenizer": {"type": "Split", "pattern": {"Regex": "(["},
                                     "behavior": "Isolated", "invert": false}, )"),
        "r.json");
  });
  EXPECT_TRUE(has(m, "r.json") && has(m, "regex")) << m;
  // Ids near INT32_MAX would size the id tables at 2^31 entries (and overflow max id + 1).
  m = error_of([] {
    Tokenizer::from_json(R"({"model": {"type": "BPE", "vocab": {"a": 2147483647}, "merges": []}})", "id.json");
  });
  EXPECT_TRUE(has(m, "id.json") && has(m, "vocab entry \"a\"")) << m;
  m = error_of([] {
    Tokenizer::from_json(tiny_json("[]").insert(1, R"("added_tokens": [{"id": 2147483648, "content": "<x>"}], )"),
                         "added.json");
  });
  EXPECT_TRUE(has(m, "added.json") && has(m, "<x>")) << m;
  m = error_of([] { Tokenizer::load("/nonexistent/tokenizer.json"); });
  EXPECT_TRUE(has(m, "/nonexistent/tokenizer.json") && has(m, "does not exist")) << m;
  m = error_of([] { Tokenizer::load(LWQ_SOURCE_DIR "/src"); });
  EXPECT_TRUE(has(m, "/src") && has(m, "no tokenizer.json")) << m;
  m = error_of([] { stories().encode("bad \xFF utf8"); });
  EXPECT_TRUE(has(m, "UTF-8")) << m;
  // A broken tokenizer_config.json next to a good tokenizer.json is named too.
  fs::path dir = fs::temp_directory_path() / "lwq_tok_test_cfg";
  fs::create_directories(dir);
  fs::copy_file(fs::path(kStories) / "tokenizer.json", dir / "tokenizer.json",
                fs::copy_options::overwrite_existing);
  std::ofstream(dir / "tokenizer_config.json") << "{oops";
  m = error_of([&] { Tokenizer::load(dir); });
  EXPECT_TRUE(has(m, "tokenizer_config.json") && has(m, "invalid JSON")) << m;
  fs::remove_all(dir);
}

}  // namespace
}  // namespace lwq
