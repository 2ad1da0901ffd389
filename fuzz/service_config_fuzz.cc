// Fuzz target: a modelslim_v1 practice YAML (src/config/quant_config.h,
// parse_service_config: the from-text entry point).
#include <cstddef>
#include <cstdint>
#include <string>

#include "config/quant_config.h"
#include "fuzz/fuzz_util.h"

namespace {

void use(const lwq::ProcessorConfig& p) {
  if (p.type == "linear_quant") {
    (void)lwq::describe(p.qconfig);
    lwq::fuzz::expect_lwq_error_only([&] { (void)lwq::export_type_of(p.qconfig); });
    lwq::fuzz::expect_lwq_error_only([&] { (void)lwq::is_data_free(p.qconfig); });
  }
  for (const auto& child : p.configs) use(child);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  lwq::fuzz::quiet();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  lwq::fuzz::expect_lwq_error_only([&] {
    lwq::ServiceConfig c = lwq::parse_service_config(text, "fuzz.yaml");
    for (const auto& p : c.process) use(p);
    (void)lwq::to_string(c.runner);
  });
  return 0;
}
