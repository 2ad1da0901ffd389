#include "data/calib_dataset.h"

#include <gtest/gtest.h>

#include <fstream>

#include "util/error.h"

namespace lwq {
namespace {

namespace fs = std::filesystem;

class CalibDatasetTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("lwq_calib_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path write(const std::string& name, const std::string& text) {
    fs::path p = dir_ / name;
    std::ofstream(p) << text;
    return p;
  }
  fs::path dir_;
};

// "inputs_pretokenized" (msModelSlim), then "text" (HF datasets; a deliberate
// difference), else the raw line with its newline, as msModelSlim does.
TEST_F(CalibDatasetTest, JsonLinesTakeInputsPretokenizedThenTextElseRawLine) {
  auto p = write("a.jsonl",
                 "{\"inputs_pretokenized\": \"hello\"}\n\n{\"text\": \"x\"}\n{\"prompt\": \"y\"}\n"
                 "{\"text\": \"t\", \"inputs_pretokenized\": \"i\"}\n");
  auto prompts = load_calib_prompts(p);
  ASSERT_EQ(prompts.size(), 4u);
  EXPECT_EQ(prompts[0], "hello");
  EXPECT_EQ(prompts[1], "x");
  EXPECT_EQ(prompts[2], "{\"prompt\": \"y\"}\n");
  EXPECT_EQ(prompts[3], "i");
  EXPECT_THROW(load_calib_prompts(write("b.jsonl", "{\"text\": 5}\n")), Error);
}

TEST_F(CalibDatasetTest, JsonArrayOfStrings) {
  auto prompts = load_calib_prompts(write("a.json", "[\"Hello!\", \"你好\"]"));
  EXPECT_EQ(prompts, (std::vector<std::string>{"Hello!", "你好"}));
}

TEST_F(CalibDatasetTest, BadLineIsReportedWithItsNumber) {
  auto p = write("bad.jsonl", "{\"inputs_pretokenized\": \"a\"}\n{not json\n");
  try {
    load_calib_prompts(p);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("line 2"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("bad.jsonl"), std::string::npos) << e.what();
  }
}

TEST_F(CalibDatasetTest, EmptyAndMissingAndWrongTypesFail) {
  EXPECT_THROW(load_calib_prompts(write("empty.jsonl", "\n\n")), Error);
  EXPECT_THROW(load_calib_prompts(write("empty.json", "[]")), Error);
  EXPECT_THROW(load_calib_prompts(write("obj.json", "{\"a\": 1}")), Error);
  EXPECT_THROW(load_calib_prompts(write("num.json", "[1, 2]")), Error);
  EXPECT_THROW(load_calib_prompts(dir_ / "missing.jsonl"), Error);
}

TEST_F(CalibDatasetTest, ResolvesBuiltinNames) {
  fs::path builtin = fs::path(LWQ_SOURCE_DIR) / "calib";
  auto p = resolve_dataset_path("calib_zh_en.jsonl", builtin);
  auto prompts = load_calib_prompts(p);
  EXPECT_EQ(prompts.size(), 64u);
  EXPECT_THROW(resolve_dataset_path("no_such_set.jsonl", builtin), Error);
}

}  // namespace
}  // namespace lwq
