#include <fmt/format.h>

#include "cli/commands.h"
#include "io/checkpoint.h"
#include "models/unit_model.h"
#include "runner/progress.h"

namespace lwq {

// What a layer-wise run will hold in memory: the largest unit (decoder layer,
// DiT block) and the largest single tensor, in stored bytes (the memory
// targets are stated in these). Any family the runner opens.
CommandRunner add_inspect_command(CLI::App& app) {
  auto model = std::make_shared<std::string>();
  app.add_option("--model", *model, "Model folder (Hugging Face, Wan2.1, or a diffusers pipeline)")->required();
  return [model] {
    const std::filesystem::path dir = resolve_model_folder(*model);
    Checkpoint ckpt = Checkpoint::open(dir);
    std::unique_ptr<UnitModel> m = open_unit_model(dir, ckpt);
    uint64_t largest_layer = 0, largest_tensor = 0;
    std::string largest_tensor_name;
    for (const auto& name : ckpt.tensor_names()) {
      uint64_t n = ckpt.info(name).nbytes;
      if (n > largest_tensor) largest_tensor = n, largest_tensor_name = name;
    }
    uint64_t largest_resident = 0, largest_expert = 0;
    for (int k = 0; k < m->num_units(); ++k) {
      LayerDesc d = m->unit(k);
      uint64_t bytes = 0;
      for (const auto& t : d.tensors) bytes += ckpt.info(m->checkpoint_name(d.prefix + "." + t.name)).nbytes;
      largest_resident = std::max(largest_resident, bytes);
      if (d.num_experts > 0) {
        // Routed experts are streamed one at a time; the layer's size includes them all.
        uint64_t one = 0;
        for (const LinearDesc* l : d.expert_linears(0))
          one += static_cast<uint64_t>(l->out_features * l->in_features) * dtype_size(m->dtype());
        largest_expert = std::max(largest_expert, one);
        bytes += one * static_cast<uint64_t>(d.num_experts);
      }
      largest_layer = std::max(largest_layer, bytes);
    }
    fmt::print("model_type: {}\ndtype: {}\nlayers: {}\nhidden_size: {}\ntensors: {}\n", m->model_type(),
               dtype_name(m->dtype()), m->num_units(), m->width(), ckpt.size());
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
