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

// Image + text mode: no perplexity (a prompt is not a document), the mean
// NLL of the text positions instead.
void print_images(const EvalResult& r, bool json) {
  if (json) {
    nlohmann::ordered_json j = {{"mode", "images"},      {"model_quant_type", r.model_quant_type},
                                {"samples", r.samples},  {"images", r.images},
                                {"tokens", r.tokens},    {"kl", r.kl},
                                {"top1_agreement", r.top1_agreement}, {"nll_tokens", r.nll_tokens},
                                {"nll_float", r.nll_float}, {"nll_quantized", r.nll_quantized}};
    fmt::print("{}\n", j.dump());
    return;
  }
  fmt::print("model_quant_type: {}\nsamples: {} ({} with an image)\ntokens: {}\nkl: {:.6f}\ntop1_agreement: {:.4f}\n",
             r.model_quant_type, r.samples, r.images, r.tokens, r.kl, r.top1_agreement);
  fmt::print("nll_tokens: {}\nnll_float: {:.4f}\nnll_quantized: {:.4f} ({:+.4f})\n", r.nll_tokens, r.nll_float,
             r.nll_quantized, r.nll_quantized - r.nll_float);
}

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

// The flags of another mode are refused, not ignored: a user passing --text
// to a DiT eval expects it to be used.
void check_mode_flags(const CLI::App& app, bool dit) {
  if (dit) {
    for (const char* f : {"--text", "--ctx", "--max-tokens", "--images", "--default_text"})
      if (app.count(f) > 0)
        fail("{} applies to language models; --model is a Wan2.1 DiT (scored on block inputs: --calib_data "
             "FILE.safetensors, or seeded random ones)", f);
    if (app.count("--max_calib_samples") > 0 && app.count("--calib_data") == 0)
      fail("--max_calib_samples limits the captured samples of --calib_data, which is not given");
    if (app.count("--seed") > 0 && app.count("--calib_data") > 0)
      fail("--seed seeds the random inputs used without --calib_data; with captured inputs it has no effect");
    return;
  }
  for (const char* f : {"--calib_data", "--seed"})
    if (app.count(f) > 0)
      fail("{} applies to diffusion transformers (Wan2.1); --model is a language model (a Qwen3-VL-MoE takes its "
           "image + text samples as --images)", f);
  const bool images = app.count("--images") > 0, text = app.count("--text") > 0;
  if (images && text) fail("--text and --images select two eval modes (plain text, image + text samples): pass one");
  if (!images && !text)
    fail("--text is required to evaluate a language model (or --images for a Qwen3-VL-MoE's image + text samples)");
  for (const char* f : {"--ctx", "--max-tokens"})
    if (images && app.count(f) > 0) fail("{} applies to --text; --images scores whole image + text samples", f);
  for (const char* f : {"--max_calib_samples", "--default_text"})
    if (text && app.count(f) > 0) fail("{} applies to --images (image + text samples), not --text", f);
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
  app.add_option("--images", o->eval.images,
                 "Qwen3-VL-MoE: image + text samples, as quant's --calib_data for this family (an index.json(l) of "
                 "{text, image} entries, or a folder of images)")
      ->check(CLI::ExistingPath);
  app.add_option("--default_text", o->eval.default_text,
                 "Qwen3-VL-MoE: the prompt of --images entries without text (default \"Describe this image in "
                 "detail.\")");
  app.add_option("--calib_data", o->dit.calib_data,
                 "DiT: block-0 inputs captured by tools/capture_wan_inputs.py (as for quant); default: seeded random "
                 "inputs of the model's shapes")
      ->check(CLI::ExistingFile);
  app.add_option("--max_calib_samples", o->dit.max_samples, "DiT: use at most N captured samples; Qwen3-VL-MoE: at most N --images entries (0 = all)")
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
    } else if (!o->eval.images.empty()) {
      o->eval.max_samples = o->dit.max_samples;
      print_images(evaluate(o->eval), o->json);
    } else {
      print_llm(evaluate(o->eval), o->json);
    }
    return 0;
  };
}

}  // namespace lwq
