#include "ops/onednn_matmul.h"

#include <unordered_map>

#include "util/error.h"

namespace lwq {

bool onednn_matmul_nt(const OneDnnMatmulTypes& types, const void* x, int64_t m, int64_t k, const void* w, int64_t n,
                      void* y, int64_t ldy, const float* bias, std::string_view only_impl, const char* what) {
  using dnnl::memory;
  static const dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  const memory::desc src({m, k}, types.src, memory::dims{k, 1});
  const memory::desc wei({k, n}, types.weights, memory::dims{1, k});
  const memory::desc dst({m, n}, types.dst, memory::dims{ldy, 1});
  const memory::desc bia = bias ? memory::desc({1, n}, memory::data_type::f32, memory::dims{n, 1}) : memory::desc();
  try {
    // Primitives are cached by oneDNN (same shapes reuse the JIT kernel).
    dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(src, wei, bia, dst), engine);
    if (!only_impl.empty() && !std::string_view(pd.impl_info_str()).starts_with(only_impl)) return false;
    dnnl::stream stream(engine);
    memory ms(src, engine, const_cast<void*>(x)), mw(wei, engine, const_cast<void*>(w)), md(dst, engine, y);
    std::unordered_map<int, memory> args{{DNNL_ARG_SRC, ms}, {DNNL_ARG_WEIGHTS, mw}, {DNNL_ARG_DST, md}};
    if (bias) args.emplace(DNNL_ARG_BIAS, memory(bia, engine, const_cast<float*>(bias)));
    dnnl::matmul(pd).execute(stream, args);
    stream.wait();
  } catch (const dnnl::error& e) {
    fail("{}: oneDNN {}x{}x{} failed: {} (status {})", what, m, n, k, e.what(), static_cast<int>(e.status));
  }
  return true;
}

}  // namespace lwq
