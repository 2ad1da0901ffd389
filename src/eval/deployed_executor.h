// A LinearExecutor that runs each quantized Linear of the resident layer or
// block with the deployed arithmetic (deployed_linear.h) and every other
// Linear in plain f32 from the layer's own weights. Shared by the decoder-LLM
// eval and the DiT eval.
#pragma once

#include <map>
#include <string>

#include "eval/deployed_linear.h"
#include "models/decoder_layer.h"

namespace lwq {

class DeployedExecutor : public LinearExecutor {
 public:
  std::map<std::string, DeployedLinear> linears;  // by name relative to the layer

  bool needs_float_weight(const std::string& name) const override { return !linears.count(name); }

  void run(const std::string& name, const float* x, int64_t rows, int64_t in, const float* weight, const float* bias,
           int64_t out, float* y) override {
    auto it = linears.find(name);
    if (it == linears.end()) return LinearExecutor::run(name, x, rows, in, weight, bias, out, y);
    deployed_linear_forward(it->second, x, rows, y);
  }
};

}  // namespace lwq
