// msModelSlim's `model_quant_type`: the highest-priority type among the
// exported Linears (spec §3.8). Types outside the list (W4A8_DYNAMIC, C8, ...)
// never change it.
#pragma once

#include <string>
#include <string_view>

namespace lwq {

class ModelQuantType {
 public:
  void update(std::string_view type);
  const std::string& value() const { return value_; }

 private:
  std::string value_ = "Unknown";
};

}  // namespace lwq
