// Fuzz target: a .safetensors file (src/io/safetensors_reader.h), parsed in
// memory, opened as a file and as a one-file checkpoint; every tensor it
// describes is read and, for float dtypes, converted to float32 as the
// quantizer would.
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz/fuzz_util.h"
#include "io/checkpoint.h"
#include "io/safetensors_reader.h"

namespace {

void use(const lwq::Tensor& t) {
  if (lwq::is_float(t.dtype)) (void)lwq::to_f32(t);
  (void)lwq::shape_str(t.shape);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  lwq::fuzz::quiet();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  lwq::fuzz::expect_lwq_error_only([&] {
    auto file = lwq::SafetensorsFile::parse(std::string(reinterpret_cast<const char*>(data), size), "fuzz input");
    for (const auto& info : file.tensors()) use(file.read(info));
  });
  const auto path = lwq::fuzz::scratch_dir() / "model.safetensors";
  lwq::fuzz::write_file(path, data, size);
  lwq::fuzz::expect_lwq_error_only([&] {
    auto file = lwq::SafetensorsFile::open(path);
    for (const auto& info : file.tensors()) use(file.read(info));
    (void)file.metadata();
  });
  lwq::fuzz::expect_lwq_error_only([&] {
    auto ckpt = lwq::Checkpoint::open(path);
    for (const auto& name : ckpt.tensor_names()) use(ckpt.read(name));
    (void)ckpt.total_bytes();
  });
  return 0;
}
