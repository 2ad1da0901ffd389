#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <cctype>
#include <cmath>
#include <cstdlib>

#include "cli/commands.h"
#include "config/quant_config.h"
#include "models/unit_model.h"
#include "runner/progress.h"
#include "runner/quant_runner.h"
#include "util/error.h"
#include "util/file_util.h"

namespace lwq {
namespace fs = std::filesystem;

namespace {

fs::path data_dir() {
  if (const char* env = std::getenv("LWQUANT_DATA_DIR")) return env;
  return LWQ_DATA_DIR;
}

// msModelSlim's --device forms: "cpu", "npu", "<type>:i,j,...". lwquant
// computes on the CPU; an NPU request is accepted with a warning so that
// existing scripts keep working.
void check_device(const std::string& device) {
  std::string type = device.substr(0, device.find(':'));
  if (type != "cpu" && type != "npu")
    fail("invalid --device '{}': supported device types are 'npu' and 'cpu' (e.g. cpu, npu, npu:0,1)", device);
  if (type == "cpu" && device.find(':') != std::string::npos && device != "cpu:0")
    fail("invalid --device '{}': cpu takes at most one device", device);
  if (type == "npu") spdlog::warn("--device {}: lwquant computes on the CPU; the output is the same format", device);
}

// --model_type names the reference's adapter; a Wan name on an LLM folder
// (or the reverse) would quantize a model other than the one meant.
void check_model_type(const std::string& model_type, const std::string& kind, const fs::path& dir) {
  if (model_type.empty()) return;
  std::string lower;
  for (char c : model_type) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  const bool says_wan = lower.rfind("wan", 0) == 0;
  if (says_wan && kind != "wan")
    fail("--model_type {} names a Wan2.1 model but {} holds a language model (config.json)", model_type, dir.string());
  if (!says_wan && kind == "wan")
    fail("--model_type {} does not name a Wan model but {} holds a Wan2.1 DiT (use --model_type Wan2.1)", model_type,
         dir.string());
  const bool says_vl = lower.find("-vl") != std::string::npos || lower.find("_vl") != std::string::npos;
  if (says_vl && kind != "vlm")
    fail("--model_type {} names a vision-language model but {} holds a {} (config.json)", model_type, dir.string(),
         kind == "wan" ? "Wan2.1 DiT" : "language model");
  if (!says_vl && kind == "vlm")
    fail("--model_type {} does not name a vision-language model but {} holds a Qwen3-VL-MoE (use e.g. --model_type "
         "Qwen3-VL-30B-A3B)", model_type, dir.string());
}

// The service's keys lwquant validates but does not act on (it never runs the
// float video pipeline), reported once.
void report_multimodal_sd_keys(const ServiceConfig& c) {
  if (!c.multimodal_sd) return;
  const MultimodalSdConfig& sd = *c.multimodal_sd;
  std::string keys;
  for (const auto& [k, v] : sd.inference.items()) keys += (keys.empty() ? "" : ", ") + k;
  spdlog::info("spec.multimodal_sd_config: lwquant does not run the float video pipeline, so dump_config "
               "(enable_dump {}, dump_data_dir '{}'){} {} not acted on; static schemes calibrate from block inputs "
               "captured by tools/capture_wan_inputs.py (--calib_data FILE.safetensors)",
               sd.enable_dump, sd.dump_data_dir,
               keys.empty() ? "" : fmt::format(" and {} keys ({})", sd.inference_key, keys), keys.empty() ? "is" : "are");
}

// "8GiB", "512MiB", "2G", "1048576": bytes, binary units.
uint64_t parse_memory_size(const std::string& text) {
  size_t used = 0;
  double value = 0;
  try {
    value = std::stod(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  std::string unit = text.substr(used);
  if (!unit.empty() && unit.back() == 'B') unit.pop_back();
  if (unit.size() == 2 && unit[1] == 'i') unit.pop_back();
  const std::string units = "KMGT";
  double scale = 1;
  if (unit.size() == 1 && units.find(static_cast<char>(std::toupper(static_cast<unsigned char>(unit[0])))) != std::string::npos)
    scale = std::pow(1024.0, 1 + static_cast<double>(units.find(static_cast<char>(std::toupper(static_cast<unsigned char>(unit[0]))))));
  else if (!unit.empty())
    used = 0;
  if (used == 0 || !(value > 0) || value * scale > 1e18)
    fail("--calib_memory_limit takes a positive size such as 8GiB, 512MiB or 1073741824 (bytes), got '{}'", text);
  return static_cast<uint64_t>(value * scale);
}

bool parse_bool_literal(const std::string& value) {
  if (value == "True") return true;
  if (value == "False") return false;
  fail("--trust_remote_code takes the literal True or False, got '{}'", value);
}

}  // namespace

CommandRunner add_quant_command(CLI::App& app) {
  struct Options {
    std::string model_path, save_path, config_path, quant_type, device = "cpu", model_type, calib_data;
    std::string trust_remote_code = "False";
    std::string moe_calibration = "all";
    std::string compute_dtype = "auto";
    std::string calib_memory_limit;
    std::vector<std::string> tags;
    bool overwrite = false, no_prefetch = false, no_report = false, full_report = false, allow_float_copy = false,
         allow_text_only_calib = false;
    int max_calib_samples = 0;
    double commit_interval = -1.0;
  };
  auto o = std::make_shared<Options>();
  app.add_option("--model_path", o->model_path, "Hugging Face model folder (config.json + safetensors)")->required();
  app.add_option("--save_path", o->save_path,
                 "Output folder; built under a temporary name and renamed when complete")->required();
  auto* config = app.add_option("--config_path", o->config_path,
                                "msModelSlim YAML practice (apiversion modelslim_v1, multimodal_sd_modelslim_v1 or "
                                "multimodal_vlm_modelslim_v1)")
                     ->check(CLI::ExistingFile);
  auto* qtype = app.add_option("--quant_type", o->quant_type,
                               "Built-in practice from configs/: w8a8 (static, calibrated), w8a8_dynamic, w8a16, "
                               "w4a8 (int4 MoE experts, int8 elsewhere; ssz), w8a8_mxfp8; MoE models use "
                               "configs/moe/ and Wan2.1 configs/wan/ (w8a8_dynamic, w8a8) where they have one")
                    ->check(CLI::IsMember({"w8a8", "w8a8_dynamic", "w8a16", "w4a8", "w8a8_mxfp8"}));
  config->excludes(qtype);
  app.add_option("--device", o->device, "cpu (default); npu[:i,j] is accepted for compatibility and runs on CPU");
  app.add_option("--model_type", o->model_type,
                 "Model type name as msModelSlim's (e.g. Qwen3-32B, Wan2.1; default: config.json's model_type); "
                 "checked against the model folder's family, otherwise informational");
  app.add_option("--calib_data", o->calib_data,
                 "Calibration file: prompts (.jsonl with inputs_pretokenized, or .json array) for language models, "
                 "captured block inputs (.safetensors from tools/capture_wan_inputs.py) for Wan2.1; overrides "
                 "spec.dataset");
  app.add_option("--trust_remote_code", o->trust_remote_code, "True or False (no remote code is ever run)");
  app.add_option("--tag", o->tags, "Scenario tags (accepted for compatibility; unused with --config_path)");
  app.add_flag("--overwrite", o->overwrite,
               "Replace a save_path that holds an earlier lwquant output, once the new result is complete "
               "(a folder lwquant did not write, or the model folder itself, is never replaced)");
  app.add_flag("--allow_float_copy", o->allow_float_copy,
               "Accept a configuration that quantizes no Linear (the output is then an all-FLOAT copy)");
  app.add_flag("--allow_text_only_calib", o->allow_text_only_calib,
               "Vision-language models: accept calibration entries without an image (msModelSlim refuses them)");
  app.add_option("--max_calib_samples", o->max_calib_samples, "Use at most N calibration prompts (0 = all)")
      ->check(CLI::NonNegativeNumber);
  app.add_flag("--no_prefetch", o->no_prefetch, "Do not read layer k+1 while layer k computes (lower peak memory)");
  app.add_option("--commit_interval", o->commit_interval,
                 "Seconds between resume commits (fsync of the output so far; a crashed run resumes from the last "
                 "one): a unit commits once this long has passed since the previous commit, the last unit always. "
                 "Default: 10 (units of large models take longer, so each commits; 0 = every unit)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--moe_calibration", o->moe_calibration,
                 "Routed experts under static activation schemes: all (default; every expert sees every calibration "
                 "token, the layer output stays top-k, as msModelSlim) or routed (only routed tokens; an expert that "
                 "gets none follows the data-free rule in docs/design.md)")
      ->check(CLI::IsMember({"all", "routed"}));
  app.add_option("--compute_dtype", o->compute_dtype,
                 "Arithmetic of the calibration forward: auto (default: f32, except that on a bfloat16 checkpoint "
                 "the smoothing processors' statistics forward multiplies the stored bf16 weights on bf16-rounded "
                 "inputs with f32 accumulation, about twice as fast; the forwards whose observations become "
                 "quantization parameters stay f32), f32 (every product in f32), or bf16 (bfloat16 checkpoints only: "
                 "every Linear takes bf16-rounded inputs against the stored bf16 weights with f32 accumulation, its "
                 "output and the hidden states between layers are rounded to bf16, as the bf16 model computes on "
                 "the reference's NPU); data-free schemes run no forward and are unaffected")
      ->check(CLI::IsMember({"auto", "f32", "bf16"}));
  app.add_option("--calib_memory_limit", o->calib_memory_limit,
                 "Memory the calibration stream's hidden states may take (e.g. 8GiB; default a quarter of physical "
                 "memory); beyond it they spill to a temporary file beside --save_path (long video sequences)");
  auto* no_report = app.add_flag("--no_report", o->no_report,
                                 "Skip the float reference forwards behind quant_report.json");
  app.add_flag("--full_report", o->full_report,
               "Measure quant_report.json on every calibration token (default: every 16th row of each Linear and "
               "every 16th sample for the layer output; full costs about 2x the calibrated run's time)")
      ->excludes(no_report);
  return [o] {
    parse_bool_literal(o->trust_remote_code);
    check_device(o->device);
    if (o->config_path.empty() && o->quant_type.empty())
      fail("give --config_path YAML or --quant_type (w8a8, w8a8_dynamic, w8a16, w4a8, w8a8_mxfp8)");
    if (!fs::is_directory(o->model_path)) fail("model folder {} does not exist", o->model_path);
    const fs::path model_dir = resolve_model_folder(o->model_path);
    if (model_dir != fs::path(o->model_path))
      spdlog::info("{} is a diffusers pipeline: quantizing its transformer ({})", o->model_path, model_dir.string());
    const std::string kind = model_kind(model_dir);
    check_model_type(o->model_type, kind, model_dir);
    // Mixture-of-experts and Wan models get their own practices where one
    // exists (configs/moe/: router FLOAT, routed experts W8A8_DYNAMIC under
    // w8a8, as static W8A8 is no MoE type in any engine; configs/wan/).
    fs::path yaml = o->config_path;
    if (yaml.empty()) {
      yaml = data_dir() / "configs" / (o->quant_type + ".yaml");
      const fs::path own = data_dir() / "configs" / kind / (o->quant_type + ".yaml");
      if (kind != "llm" && fs::exists(own)) yaml = own;
      else if (kind == "wan")
        fail("there is no built-in Wan2.1 practice for --quant_type {} (configs/wan/ has w8a8_dynamic and w8a8); "
             "give --config_path for other schemes", o->quant_type);
    }
    QuantJob job;
    job.model_path = model_dir;
    job.save_path = o->save_path;
    job.config = load_service_config(yaml);
    for (const auto& w : job.config.warnings) spdlog::warn("{}", w);
    if (job.config.apiversion == "multimodal_sd_modelslim_v1" && kind != "wan")
      fail("{}: apiversion multimodal_sd_modelslim_v1 is for diffusion transformers (Wan2.1), but {} holds a "
           "language model", yaml.string(), model_dir.string());
    if (job.config.apiversion == "multimodal_vlm_modelslim_v1" && kind != "vlm")
      fail("{}: apiversion multimodal_vlm_modelslim_v1 is for vision-language models (Qwen3-VL-MoE), but {} holds a "
           "{}", yaml.string(), model_dir.string(), kind == "wan" ? "Wan2.1 DiT" : "language model");
    report_multimodal_sd_keys(job.config);
    job.calib_data = o->calib_data;
    job.builtin_calib_dir = data_dir() / "calib";
    job.overwrite = o->overwrite;
    job.prefetch = !o->no_prefetch;
    job.commit_interval_s = o->commit_interval;
    job.report = !o->no_report;
    job.full_report = o->full_report;
    job.max_calib_samples = o->max_calib_samples;
    job.allow_float_copy = o->allow_float_copy;
    job.allow_text_only_calib = o->allow_text_only_calib;
    if (!o->calib_memory_limit.empty()) job.calib_memory_limit = parse_memory_size(o->calib_memory_limit);
    job.moe_calibration = o->moe_calibration == "routed" ? MoeCalibration::Routed : MoeCalibration::AllExperts;
    job.compute_dtype = o->compute_dtype == "bf16" ? ComputeDType::BF16 : ComputeDType::F32;
    job.bf16_statistics_products = o->compute_dtype == "auto";
    std::string model_type = o->model_type;
    if (model_type.empty())
      model_type = kind == "wan" ? "Wan2.1" : kind == "vlm" ? "qwen3_vl_moe" : load_model_config(model_dir).model_type;
    spdlog::info("quantization: model_type {} | model_path {} | save_path {} | config {} | runner {}", model_type,
                 o->model_path, o->save_path, yaml.string(), to_string(job.config.runner));
    if (job.config.runner == RunnerType::DpLayerWise)
      spdlog::warn("spec.runner dp_layer_wise: lwquant runs one process; using layer_wise (same numerics)");
    job.model_type = model_type;
    job.practice_yaml = read_text_file(yaml);
    QuantOutcome out = run_quantization(job);
    if (out.resumed_from_layer > 0)
      spdlog::info("resumed: layers 0-{} came from the interrupted run", out.resumed_from_layer - 1);
    spdlog::info("done in {} | peak RSS {} | {} tensors, {} written | model_quant_type {}",
                 format_duration(out.wall_seconds), format_bytes(static_cast<double>(out.peak_rss_bytes)),
                 out.tensors_written, format_bytes(static_cast<double>(out.bytes_written)), out.model_quant_type);
    return 0;
  };
}

}  // namespace lwq
