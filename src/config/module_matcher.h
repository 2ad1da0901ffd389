// include/exclude module-name matching as msModelSlim does it (spec §1.7):
// wcmatch.fnmatch with the BRACE flag, case-sensitive, over the whole dotted
// module name. `*` matches any run of characters including dots.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace lwq {

// Brace expansion as bracex (wcmatch's BRACE): "{a,b}", nested braces, and
// sequences "{1..3}", "{a..c}", "{0..10..2}". A brace without a top-level
// comma or ".." is literal ("{a}"); unbalanced braces are literal; "\x"
// escapes x. Throws lwq::Error past `max_patterns` expansions.
std::vector<std::string> expand_braces(std::string_view pattern, size_t max_patterns = 100000);

// fnmatch after brace expansion: `*`, `?`, `[abc]`, `[a-z]`, `[!..]`/`[^..]`,
// `[[:digit:]]`-style classes, `\` escapes; the whole name must match. A
// pattern equal to the name always matches.
bool fnmatch_brace(std::string_view pattern, std::string_view name);

// Selected iff it matches any include pattern and no exclude pattern.
bool is_selected(const std::vector<std::string>& include, const std::vector<std::string>& exclude,
                 std::string_view name);

// One processor's include/exclude lists plus a record of which patterns ever
// matched, so the runner can warn at the end about patterns that matched
// nothing (msModelSlim: "These include|exclude patterns are not matched any
// module, please ensure this is as expected: [...]"). An exclude pattern
// counts as matched when it matches a name that an include pattern selected.
class PatternUsage {
 public:
  PatternUsage() = default;
  PatternUsage(std::vector<std::string> include, std::vector<std::string> exclude);

  // is_selected(), recording matches.
  bool select(std::string_view name);

  const std::vector<std::string>& include() const { return include_; }
  const std::vector<std::string>& exclude() const { return exclude_; }
  // Patterns other than "*" that never matched, in list order.
  std::vector<std::string> unmatched_include() const;
  std::vector<std::string> unmatched_exclude() const;
  // The warning line, or "" when every pattern matched something.
  std::string unmatched_warning() const;

 private:
  std::vector<std::string> include_, exclude_;
  std::vector<bool> include_hit_, exclude_hit_;
};

}  // namespace lwq
