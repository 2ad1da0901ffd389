// Test helper shared by the Wan runner and eval tests: block 0's captured
// inputs (the format of models/wan_model.h) made from a golden's
// reference.safetensors — sample 0 the golden's own, sample 1 its rows × 1.5.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "io/checkpoint.h"
#include "io/safetensors_writer.h"

namespace lwq::test {

inline std::filesystem::path write_wan_captured_inputs(const std::filesystem::path& golden,
                                                       const std::filesystem::path& file) {
  Checkpoint ref = Checkpoint::open(golden / "reference.safetensors");
  SafetensorsWriter w(file);
  for (int i = 0; i < 2; ++i) {
    const std::string p = std::to_string(i) + ".";
    std::vector<float> x = to_f32(ref.read("block0_in"));
    for (float& v : x) v *= i == 0 ? 1.0f : 1.5f;
    w.add(p + "x", tensor_f32(ref.info("block0_in").shape, x));
    w.add(p + "e0", ref.read("temb"));
    w.add(p + "context", ref.read("context"));
    w.add(p + "grid", ref.read("grid"));
  }
  w.finish();
  return file;
}

}  // namespace lwq::test
