#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "eval/dit_evaluator.h"
#include "eval/evaluator.h"
#include "util/error.h"

namespace lwq {
namespace {

struct Options {
  EvalOptions eval;
  DitEvalOptions dit;
  bool json = false;
};

void print_llm(const EvalResult& r, bool json) {
  if (json) {
    nlohmann::ordered_json j = {{"ppl_float", r.ppl_float},       {"ppl_quantized", r.ppl_quantized},
                                {"delta_ppl", r.delta_ppl()},     {"kl", r.kl},
                                {"top1_agreement", r.top1_agreement}, {"tokens", r.tokens},
                                {"model_quant_type", r.model_quant_type}};
    fmt::print("{}\n", j.dump());
    return;
  }
  fmt::print("model_quant_type: {}\ntokens: {}\nppl_float: {:.4f}\nppl_quantized: {:.4f}\n", r.model_quant_type,
             r.tokens, r.ppl_float, r.ppl_quantized);
  fmt::print("delta_ppl: {:+.4f} ({:+.3f}%)\nkl: {:.6f}\ntop1_agreement: {:.4f}\n", r.delta_ppl(),
             100.0 * r.delta_ppl() / r.ppl_float, r.kl, r.top1_agreement);
}

void print_dit(const DitEvalResult& r, bool json) {
  if (json) {
    nlohmann::ordered_json blocks = nlohmann::ordered_json::array();
    for (size_t k = 0; k < r.blocks.size(); ++k)
      blocks.push_back({{"block", k}, {"rel_l2", r.blocks[k].rel_l2}, {"cosine", r.blocks[k].cosine}});
    nlohmann::ordered_json j = {{"mode", "dit"},           {"model_quant_type", r.model_quant_type},
                                {"inputs", r.inputs},      {"samples", r.samples},
                                {"tokens", r.tokens},      {"blocks", blocks},
                                {"final_rel_l2", r.final_output.rel_l2}, {"final_cosine", r.final_output.cosine}};
    fmt::print("{}\n", j.dump());
    return;
  }
  fmt::print("model_quant_type: {}\ninputs: {} ({} samples, {} tokens)\n", r.model_quant_type, r.inputs, r.samples,
             r.tokens);
  fmt::print("block  rel_l2      cosine\n");
  for (size_t k = 0; k < r.blocks.size(); ++k)
    fmt::print("{:<6} {:<11.4e} {:.8f}\n", k, r.blocks[k].rel_l2, r.blocks[k].cosine);
  fmt::print("final_rel_l2: {:.4e}\nfinal_cosine: {:.8f}\n", r.final_output.rel_l2, r.final_output.cosine);
}

// The flags of the other mode are refused, not ignored: a user passing --text
// to a DiT eval expects it to be used.
void check_mode_flags(const CLI::App& app, bool dit) {
  const char* llm_flags[] = {"--text", "--ctx", "--max-tokens"};
  const char* dit_flags[] = {"--calib_data", "--max_calib_samples", "--seed"};
  for (const char* f : dit ? llm_flags : dit_flags)
    if (app.count(f) > 0)
      fail("{} applies to {}; --model is {}", f, dit ? "language models" : "diffusion transformers (Wan2.1)",
           dit ? "a Wan2.1 DiT (scored on block inputs: --calib_data FILE.safetensors, or seeded random ones)"
               : "a language model");
  if (!dit && app.count("--text") == 0) fail("--text is required to evaluate a language model");
  if (dit && app.count("--max_calib_samples") > 0 && app.count("--calib_data") == 0)
    fail("--max_calib_samples limits the captured samples of --calib_data, which is not given");
  if (dit && app.count("--seed") > 0 && app.count("--calib_data") > 0)
    fail("--seed seeds the random inputs used without --calib_data; with captured inputs it has no effect");
}

}  // namespace

CommandRunner add_eval_command(CLI::App& app) {
  auto o = std::make_shared<Options>();
  app.add_option("--model", o->eval.float_dir,
                 "The float model folder (Hugging Face LLM, or a Wan2.1 DiT / diffusers pipeline folder)")
      ->required();
  app.add_option("--quantized", o->eval.quantized_dir,
                 "The folder written by `lwquant quant` (ascendV1 for an LLM, mindie_format for a DiT)")
      ->required();
  app.add_option("--text", o->eval.text, "LLM: UTF-8 text file, scored as one document")->check(CLI::ExistingFile);
  app.add_option("--ctx", o->eval.ctx, "LLM: window length in tokens (as `lwquant ppl`)")->check(CLI::Range(2, 1 << 20));
  app.add_option("--max-tokens", o->eval.max_tokens, "LLM: score only the first N tokens (0 = all)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--calib_data", o->dit.calib_data,
                 "DiT: block-0 inputs captured by tools/capture_wan_inputs.py (as for quant); default: seeded random "
                 "inputs of the model's shapes")
      ->check(CLI::ExistingFile);
  app.add_option("--max_calib_samples", o->dit.max_samples, "DiT: use at most N captured samples (0 = all)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--seed", o->dit.seed, "DiT: seed of the random inputs (default 0)");
  app.add_flag("--json", o->json, "Print one JSON object instead of text");
  return [o, &app] {
    const bool dit = is_dit_model(o->eval.float_dir);
    check_mode_flags(app, dit);
    if (dit) {
      o->dit.float_dir = o->eval.float_dir;
      o->dit.quantized_dir = o->eval.quantized_dir;
      print_dit(evaluate_dit(o->dit), o->json);
    } else {
      print_llm(evaluate(o->eval), o->json);
    }
    return 0;
  };
}

}  // namespace lwq
