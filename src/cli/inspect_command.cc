#include <fmt/format.h>

#include "cli/commands.h"
#include "io/checkpoint.h"
#include "models/architecture.h"
#include "models/model_config.h"
#include "runner/progress.h"

namespace lwq {

// What a layer-wise run will hold in memory: the largest decoder layer and
// the largest single tensor, in stored bytes (the memory targets are stated
// in these).
CommandRunner add_inspect_command(CLI::App& app) {
  auto model = std::make_shared<std::string>();
  app.add_option("--model", *model, "Hugging Face model folder")->required();
  return [model] {
    ModelConfig cfg = load_model_config(*model);
    Checkpoint ckpt = Checkpoint::open(*model);
    uint64_t largest_layer = 0, largest_tensor = 0;
    std::string largest_tensor_name;
    for (const auto& name : ckpt.tensor_names()) {
      uint64_t n = ckpt.info(name).nbytes;
      if (n > largest_tensor) largest_tensor = n, largest_tensor_name = name;
    }
    uint64_t largest_resident = 0, largest_expert = 0;
    for (int k = 0; k < cfg.num_hidden_layers; ++k) {
      LayerDesc d = layer_desc(cfg, k);
      uint64_t bytes = 0;
      for (const auto& t : d.tensors) bytes += ckpt.info(d.prefix + "." + t.name).nbytes;
      largest_resident = std::max(largest_resident, bytes);
      if (d.num_experts > 0) {
        // Routed experts are streamed one at a time; the layer's size includes them all.
        uint64_t one = 0;
        for (const LinearDesc* l : d.expert_linears(0))
          one += static_cast<uint64_t>(l->out_features * l->in_features) * dtype_size(cfg.dtype);
        largest_expert = std::max(largest_expert, one);
        bytes += one * static_cast<uint64_t>(d.num_experts);
      }
      largest_layer = std::max(largest_layer, bytes);
    }
    fmt::print("model_type: {}\ndtype: {}\nlayers: {}\nhidden_size: {}\ntensors: {}\n", cfg.model_type,
               dtype_name(cfg.dtype), cfg.num_hidden_layers, cfg.hidden_size, ckpt.size());
    fmt::print("total_bytes: {} ({})\n", ckpt.total_bytes(), format_bytes(static_cast<double>(ckpt.total_bytes())));
    fmt::print("largest_layer_bytes: {} ({})\n", largest_layer, format_bytes(static_cast<double>(largest_layer)));
    if (largest_expert > 0) {
      fmt::print("largest_layer_without_experts_bytes: {} ({})\n", largest_resident,
                 format_bytes(static_cast<double>(largest_resident)));
      fmt::print("expert_bytes: {} ({})\n", largest_expert, format_bytes(static_cast<double>(largest_expert)));
    }
    fmt::print("largest_tensor_bytes: {} ({}, {})\n", largest_tensor, format_bytes(static_cast<double>(largest_tensor)),
               largest_tensor_name);
    return 0;
  };
}

}  // namespace lwq
