#include "cli/commands.h"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <map>

#include "util/error.h"

namespace lwq {
namespace {

// Logs go to stderr so that stdout carries only a command's result.
void init_logging(bool verbose) {
  auto logger = spdlog::stderr_color_mt("lwquant");
  logger->set_pattern("%Y-%m-%d %H:%M:%S %^%l%$ %v");
  spdlog::set_default_logger(logger);
  spdlog::set_level(verbose ? spdlog::level::debug : spdlog::level::info);
}

}  // namespace

int run_cli(int argc, char** argv) {
  CLI::App app{"lwquant: quantize large transformer checkpoints layer by layer, with memory close to one\n"
               "layer's size, into msModelSlim-compatible (ascendV1) checkpoints for vLLM-Ascend / MindIE."};
  app.set_version_flag("--version", "lwquant 0.1.0");
  bool verbose = false;
  app.add_flag("-v,--verbose", verbose, "Debug-level logs on stderr");
  app.require_subcommand(1);

  std::map<CLI::App*, CommandRunner> runners;
  auto add = [&](const char* name, const char* help, CommandRunner (*adder)(CLI::App&)) {
    CLI::App* sub = app.add_subcommand(name, help);
    runners[sub] = adder(*sub);
  };
  add("quant", "Quantize a Hugging Face checkpoint layer by layer (msModelSlim-compatible flags)",
      add_quant_command);
  add("eval", "Score a quantized folder against its float model (ascendV1 LLM on text, Qwen3-VL-MoE on image + text, or "
      "mindie_format DiT; deployed arithmetic)",
      add_eval_command);
  add("inspect", "Sizes of a checkpoint: largest layer and tensor (what layer-wise memory depends on)",
      add_inspect_command);
  add("generate", "Greedy text generation with a float model (checks the forward pass)", add_generate_command);
  add("tokenize", "Print the token ids of a text (no special tokens added)", add_tokenize_command);
  add("ppl", "Perplexity of a float model on a text file", add_ppl_command);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  init_logging(verbose);
  for (auto& [sub, runner] : runners) {
    if (!sub->parsed()) continue;
    try {
      return runner();
    } catch (const Error& e) {
      std::fprintf(stderr, "error: %s\n", e.what());
      return 1;
    } catch (const std::bad_alloc&) {
      std::fprintf(stderr, "error: out of memory\n");
      return 1;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "error: unexpected failure: %s\n", e.what());
      return 2;
    }
  }
  return 0;
}

}  // namespace lwq
