// Fuzz target: a calibration file (src/data/calib_dataset.h), read both as a
// .json array and as JSON Lines (the reader picks the format by suffix).
#include <cstddef>
#include <cstdint>

#include "data/calib_dataset.h"
#include "fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  lwq::fuzz::quiet();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  for (const char* name : {"calib.json", "calib.jsonl"}) {
    const auto path = lwq::fuzz::scratch_dir() / name;
    lwq::fuzz::write_file(path, data, size);
    lwq::fuzz::expect_lwq_error_only([&] { (void)lwq::load_calib_prompts(path); });
  }
  return 0;
}
