// An ascendV1 output folder read from its files alone: the description JSON,
// the safetensors shards and their index. Used by `lwquant eval`, which is
// thereby an independent check that the files mean what the spec says.
#pragma once

#include <filesystem>
#include <map>
#include <string>

#include "eval/deployed_linear.h"
#include "io/checkpoint.h"

namespace lwq {

class QuantizedFolder {
 public:
  // Validates that every described tensor exists and every stored tensor is
  // described, and that every type string is known.
  static QuantizedFolder open(const std::filesystem::path& dir);

  const std::string& model_quant_type() const { return model_quant_type_; }
  // The type string of a module prefix ("FLOAT" when only FLOAT tensors, or
  // absent, exist under `prefix.weight`).
  std::string linear_type(const std::string& prefix) const;
  bool contains(const std::string& tensor) const { return ckpt_.contains(tensor); }
  std::vector<std::string> tensor_names() const { return ckpt_.tensor_names(); }
  Tensor read(const std::string& tensor) const { return ckpt_.read(tensor); }
  // A quantized Linear's tensors, checked for dtype and shape.
  DeployedLinear load_linear(const std::string& prefix) const;

 private:
  QuantizedFolder(std::filesystem::path dir, Checkpoint ckpt) : dir_(std::move(dir)), ckpt_(std::move(ckpt)) {}
  std::filesystem::path dir_;
  Checkpoint ckpt_;
  std::map<std::string, std::string> types_;
  std::string model_quant_type_;
};

}  // namespace lwq
