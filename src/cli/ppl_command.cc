#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <cmath>

#include "cli/commands.h"
#include "data/tokenizer.h"
#include "models/causal_lm.h"
#include "models/perplexity.h"
#include "util/file_util.h"

namespace lwq {

CommandRunner add_ppl_command(CLI::App& app) {
  struct Options {
    std::string model, text;
    int ctx = 512;
  };
  auto opts = std::make_shared<Options>();
  app.add_option("--model", opts->model, "Hugging Face model folder")->required();
  app.add_option("--text", opts->text, "UTF-8 text file, scored as one document")->required()->check(CLI::ExistingFile);
  app.add_option("--ctx", opts->ctx, "Window length in tokens (consecutive windows; the last may be shorter)")
      ->check(CLI::PositiveNumber);
  return [opts] {
    Tokenizer tokenizer = Tokenizer::load(opts->model);
    CausalLM model = CausalLM::load(opts->model);
    std::vector<int32_t> tokens = tokenizer.encode_with_special(read_text_file(opts->text));
    PerplexityResult r = perplexity(tokens, opts->ctx, [&](std::span<const int32_t> window) {
      return model.logits(window);
    }, model.config().vocab_size);
    fmt::print("tokens: {}\n", r.scored_tokens);
    fmt::print("ppl: {:.4f}\n", r.ppl());
    return 0;
  };
}

}  // namespace lwq
