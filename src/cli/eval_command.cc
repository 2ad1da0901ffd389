#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "eval/evaluator.h"

namespace lwq {

CommandRunner add_eval_command(CLI::App& app) {
  struct Options {
    EvalOptions eval;
    bool json = false;
  };
  auto o = std::make_shared<Options>();
  app.add_option("--model", o->eval.float_dir, "The float Hugging Face model folder")->required();
  app.add_option("--quantized", o->eval.quantized_dir, "The ascendV1 folder written by `lwquant quant`")->required();
  app.add_option("--text", o->eval.text, "UTF-8 text file, scored as one document")->required()->check(CLI::ExistingFile);
  app.add_option("--ctx", o->eval.ctx, "Window length in tokens (as `lwquant ppl`)")->check(CLI::Range(2, 1 << 20));
  app.add_option("--max-tokens", o->eval.max_tokens, "Score only the first N tokens (0 = all)")
      ->check(CLI::NonNegativeNumber);
  app.add_flag("--json", o->json, "Print one JSON object instead of text");
  return [o] {
    EvalResult r = evaluate(o->eval);
    if (o->json) {
      nlohmann::ordered_json j = {{"ppl_float", r.ppl_float},       {"ppl_quantized", r.ppl_quantized},
                                  {"delta_ppl", r.delta_ppl()},     {"kl", r.kl},
                                  {"top1_agreement", r.top1_agreement}, {"tokens", r.tokens},
                                  {"model_quant_type", r.model_quant_type}};
      fmt::print("{}\n", j.dump());
    } else {
      fmt::print("model_quant_type: {}\ntokens: {}\nppl_float: {:.4f}\nppl_quantized: {:.4f}\n", r.model_quant_type,
                 r.tokens, r.ppl_float, r.ppl_quantized);
      fmt::print("delta_ppl: {:+.4f} ({:+.3f}%)\nkl: {:.6f}\ntop1_agreement: {:.4f}\n", r.delta_ppl(),
                 100.0 * r.delta_ppl() / r.ppl_float, r.kl, r.top1_agreement);
    }
    return 0;
  };
}

}  // namespace lwq
