// Fuzz target: a vision-language calibration index (src/data/vlm_dataset.h),
// read both as index.json (an array) and index.jsonl (one entry a line);
// image paths it names are checked for existence only.
#include <cstddef>
#include <cstdint>

#include "data/vlm_dataset.h"
#include "fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  lwq::fuzz::quiet();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  for (const char* name : {"index.json", "index.jsonl"}) {
    const auto path = lwq::fuzz::scratch_dir() / name;
    lwq::fuzz::write_file(path, data, size);
    lwq::fuzz::expect_lwq_error_only([&] { (void)lwq::load_vlm_dataset(path, "Describe this image in detail."); });
  }
  return 0;
}
