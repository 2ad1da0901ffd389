// Fuzz target: an image file (src/data/image.h) decoded as JPEG or PNG by its
// signature, then, when it decodes, put through the Qwen-VL processor (resize
// and patch layout) at small pixel limits.
#include <cstddef>
#include <cstdint>

#include "data/image.h"
#include "data/qwen_vl_processor.h"
#include "fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  lwq::fuzz::quiet();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto path = lwq::fuzz::scratch_dir() / "image.bin";
  lwq::fuzz::write_file(path, data, size);
  lwq::fuzz::expect_lwq_error_only([&] {
    // 4 M pixels: a few hundred bytes of JPEG may claim 70 M, which decode in
    // 0.1 s in a release build but take 30 s under the sanitizers (a
    // "timeout" that is no hang); the parsing paths are the same below it.
    const lwq::RgbImage image = lwq::read_image(path, uint64_t{1} << 22);
    lwq::QwenVlImageSettings s;
    s.min_pixels = 32 * 32;
    s.max_pixels = 64 * 64;
    (void)lwq::qwen_vl_pixels(image, s);
  });
  return 0;
}
