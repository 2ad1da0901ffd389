#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <chrono>

#include "cli/commands.h"
#include "data/tokenizer.h"
#include "models/causal_lm.h"
#include "util/error.h"

namespace lwq {

// stdout: exactly the prompt followed by the generated text and a final
// newline, as llama2.c's run.c prints it. The prompt is encoded like
// llama2.c / sentencepiece: BOS (when the tokenizer has one), then the text.
CommandRunner add_generate_command(CLI::App& app) {
  struct Options {
    std::string model, prompt;
    int max_new_tokens = 64;
  };
  auto opts = std::make_shared<Options>();
  app.add_option("--model", opts->model, "Hugging Face model folder")->required();
  app.add_option("--prompt", opts->prompt, "Prompt text (may be empty)")->required();
  app.add_option("--max-new-tokens", opts->max_new_tokens, "Number of tokens to generate")
      ->check(CLI::NonNegativeNumber);
  return [opts] {
    Tokenizer tokenizer = Tokenizer::load(opts->model);
    CausalLM model = CausalLM::load(opts->model);
    std::vector<int32_t> prompt = tokenizer.encode_with_special(opts->prompt);
    if (prompt.empty()) fail("the prompt encodes to no tokens and the tokenizer has no BOS token");
    auto start = std::chrono::steady_clock::now();
    std::vector<int32_t> ids = model.greedy(prompt, opts->max_new_tokens, tokenizer.eos_id());
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const size_t n_generated = ids.size() - prompt.size();
    // The text after the prompt is the decoded whole minus the decoded prompt:
    // this keeps the space a sentencepiece tokenizer puts between them, and
    // strips the leading one right after BOS exactly where llama2.c does.
    std::string whole = tokenizer.decode(ids), prompt_text = tokenizer.decode(prompt);
    std::string text = whole.substr(std::min(prompt_text.size(), whole.size()));
    fmt::print("{}{}\n", opts->prompt, text);
    spdlog::info("generated {} tokens in {:.2f} s ({:.1f} tokens/s)", n_generated, seconds,
                 static_cast<double>(n_generated) / std::max(seconds, 1e-9));
    return 0;
  };
}

}  // namespace lwq
