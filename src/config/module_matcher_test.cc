#include "config/module_matcher.h"

#include <gtest/gtest.h>

#include "util/error.h"

namespace lwq {
namespace {

using V = std::vector<std::string>;

TEST(ExpandBraces, ListsNestingAndSequences) {
  EXPECT_EQ(expand_braces("model.layers.{1,2,8}.mlp.up_proj"),
            (V{"model.layers.1.mlp.up_proj", "model.layers.2.mlp.up_proj", "model.layers.8.mlp.up_proj"}));
  EXPECT_EQ(expand_braces("a{b,{c,d}e}f"), (V{"abf", "acef", "adef"}));
  EXPECT_EQ(expand_braces("{a,b}{1,2}"), (V{"a1", "a2", "b1", "b2"}));
  EXPECT_EQ(expand_braces("x{,y}"), (V{"x", "xy"}));
  EXPECT_EQ(expand_braces("l{1..3}"), (V{"l1", "l2", "l3"}));
  EXPECT_EQ(expand_braces("l{3..1}"), (V{"l3", "l2", "l1"}));
  EXPECT_EQ(expand_braces("{08..10}"), (V{"08", "09", "10"}));
  EXPECT_EQ(expand_braces("{0..6..3}"), (V{"0", "3", "6"}));
  EXPECT_EQ(expand_braces("{a..c}"), (V{"a", "b", "c"}));
  // Not expansions: single item, empty, unbalanced, escaped.
  EXPECT_EQ(expand_braces("{a}"), (V{"{a}"}));
  EXPECT_EQ(expand_braces("{}"), (V{"{}"}));
  EXPECT_EQ(expand_braces("a{b,c"), (V{"a{b,c"}));
  EXPECT_EQ(expand_braces("a{b{c,d}"), (V{"a{bc", "a{bd"}));
  EXPECT_EQ(expand_braces("\\{a,b}"), (V{"\\{a,b}"}));
  EXPECT_EQ(expand_braces("{a}{b,c}"), (V{"{a}b", "{a}c"}));
  EXPECT_THROW(expand_braces("{0..100000}", 1000), Error);
  EXPECT_THROW(expand_braces("{a,b}{a,b}{a,b}{a,b}", 10), Error);
}

TEST(Fnmatch, StarCrossesDots) {
  EXPECT_TRUE(fnmatch_brace("*", "model.layers.3.mlp.experts.17.down_proj"));
  EXPECT_TRUE(fnmatch_brace("*self_attn*", "model.layers.0.self_attn.q_proj"));
  EXPECT_TRUE(fnmatch_brace("*mlp*", "model.layers.3.mlp.experts.17.down_proj"));
  EXPECT_TRUE(fnmatch_brace("model.*.down_proj", "model.layers.3.mlp.experts.17.down_proj"));
  EXPECT_FALSE(fnmatch_brace("*mlp", "model.layers.3.mlp.up_proj"));  // whole string
  EXPECT_FALSE(fnmatch_brace("mlp*", "model.layers.3.mlp.up_proj"));
  EXPECT_TRUE(fnmatch_brace("*.*.*", "a.b.c"));
  EXPECT_FALSE(fnmatch_brace("*.*.*.*", "a.b.c"));
  EXPECT_TRUE(fnmatch_brace("**a", "bba"));
  EXPECT_TRUE(fnmatch_brace("", ""));
  EXPECT_FALSE(fnmatch_brace("", "a"));
  EXPECT_TRUE(fnmatch_brace("*", ""));
}

TEST(Fnmatch, BracesInPatterns) {
  const std::string p = "model.layers.{1,2,8}.mlp.up_proj";
  EXPECT_TRUE(fnmatch_brace(p, "model.layers.1.mlp.up_proj"));
  EXPECT_TRUE(fnmatch_brace(p, "model.layers.8.mlp.up_proj"));
  EXPECT_FALSE(fnmatch_brace(p, "model.layers.3.mlp.up_proj"));
  EXPECT_FALSE(fnmatch_brace(p, "model.layers.18.mlp.up_proj"));
  EXPECT_TRUE(fnmatch_brace("*.{self_attn.{q,k}_proj,mlp.gate_proj}", "m.layers.0.self_attn.k_proj"));
  EXPECT_TRUE(fnmatch_brace("*.{self_attn.{q,k}_proj,mlp.gate_proj}", "m.layers.0.mlp.gate_proj"));
  EXPECT_FALSE(fnmatch_brace("*.{self_attn.{q,k}_proj,mlp.gate_proj}", "m.layers.0.self_attn.v_proj"));
  EXPECT_TRUE(fnmatch_brace("*layers.{41..47}.mlp.experts*", "model.layers.44.mlp.experts.3.up_proj"));
  EXPECT_FALSE(fnmatch_brace("*layers.{41..47}.mlp.experts*", "model.layers.48.mlp.experts.3.up_proj"));
}

TEST(Fnmatch, QuestionMarkAndClasses) {
  EXPECT_TRUE(fnmatch_brace("model.layers.?.mlp", "model.layers.7.mlp"));
  EXPECT_FALSE(fnmatch_brace("model.layers.?.mlp", "model.layers.17.mlp"));
  EXPECT_TRUE(fnmatch_brace("*self_attn.[qkv]_proj", "x.self_attn.v_proj"));
  EXPECT_FALSE(fnmatch_brace("*self_attn.[qkv]_proj", "x.self_attn.o_proj"));
  EXPECT_TRUE(fnmatch_brace("*self_attn.[!qkv]_proj", "x.self_attn.o_proj"));
  EXPECT_FALSE(fnmatch_brace("*self_attn.[!qkv]_proj", "x.self_attn.q_proj"));
  EXPECT_TRUE(fnmatch_brace("*self_attn.[^qkv]_proj", "x.self_attn.o_proj"));
  EXPECT_TRUE(fnmatch_brace("layers.[0-9][0-9]", "layers.42"));
  EXPECT_FALSE(fnmatch_brace("layers.[0-9][0-9]", "layers.4a"));
  EXPECT_TRUE(fnmatch_brace("layers.[[:digit:]]", "layers.4"));
  EXPECT_FALSE(fnmatch_brace("layers.[[:digit:]]", "layers.x"));
  EXPECT_TRUE(fnmatch_brace("a[]]b", "a]b"));        // ']' first in a class is literal
  EXPECT_TRUE(fnmatch_brace("a[b", "a[b"));          // unclosed '[' is literal
  EXPECT_TRUE(fnmatch_brace("a\\*b", "a*b"));        // escaped star
  EXPECT_FALSE(fnmatch_brace("a\\*b", "axxb"));
}

TEST(Fnmatch, CaseSensitiveAndExactName) {
  EXPECT_FALSE(fnmatch_brace("*MLP*", "model.layers.0.mlp.up_proj"));
  EXPECT_TRUE(fnmatch_brace("model.layers.0.mlp.up_proj", "model.layers.0.mlp.up_proj"));
  EXPECT_FALSE(fnmatch_brace("model.layers.0.mlp.up_proj", "model.layers.0.mlp.up_proj2"));
  // A name with glob characters still matches itself exactly.
  EXPECT_TRUE(fnmatch_brace("weird[0].name", "weird[0].name"));
}

TEST(IsSelected, ExcludeWins) {
  V include = {"*mlp*"}, exclude = {"*mlp.gate", "model.layers.{41,42}.*"};
  EXPECT_TRUE(is_selected(include, exclude, "model.layers.0.mlp.up_proj"));
  EXPECT_FALSE(is_selected(include, exclude, "model.layers.0.mlp.gate"));
  EXPECT_FALSE(is_selected(include, exclude, "model.layers.41.mlp.up_proj"));
  EXPECT_FALSE(is_selected(include, exclude, "model.layers.0.self_attn.q_proj"));
  EXPECT_FALSE(is_selected({}, {}, "anything"));  // no include pattern selects nothing
  EXPECT_TRUE(is_selected({"*"}, {}, "lm_head"));
}

TEST(PatternUsage, ReportsPatternsThatNeverMatched) {
  PatternUsage usage({"*", "*self_attn*", "*typo_proj*"}, {"*mlp.gate", "*never*"});
  EXPECT_TRUE(usage.select("model.layers.0.self_attn.q_proj"));
  EXPECT_FALSE(usage.select("model.layers.0.mlp.gate"));
  EXPECT_EQ(usage.unmatched_include(), (V{"*typo_proj*"}));
  EXPECT_EQ(usage.unmatched_exclude(), (V{"*never*"}));
  EXPECT_EQ(usage.unmatched_warning(),
            "These include|exclude patterns are not matched any module, please ensure this is as expected: "
            "['*typo_proj*', '*never*']");
  PatternUsage all({"*"}, {});
  EXPECT_EQ(all.unmatched_warning(), "");  // "*" is never reported
}

}  // namespace
}  // namespace lwq
