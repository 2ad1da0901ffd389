#include <fmt/format.h>
#include <fmt/ranges.h>

#include "cli/commands.h"
#include "data/tokenizer.h"

namespace lwq {

CommandRunner add_tokenize_command(CLI::App& app) {
  struct Options {
    std::string tokenizer, text;
  };
  auto opts = std::make_shared<Options>();
  app.add_option("--tokenizer", opts->tokenizer, "A tokenizer.json, or a folder holding one")->required();
  app.add_option("--text", opts->text, "The text to encode")->required();
  return [opts] {
    Tokenizer tokenizer = Tokenizer::load(opts->tokenizer);
    std::vector<int32_t> ids = tokenizer.encode(opts->text);
    fmt::print("{}\n", fmt::join(ids, " "));
    return 0;
  };
}

}  // namespace lwq
