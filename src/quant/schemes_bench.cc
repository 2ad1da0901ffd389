// Quality and speed of the weight quantizers (docs/quality.md, docs/benchmarks.md):
//   schemes_bench quality   minmax vs ssz vs gptq at int8 / int4, per channel
//                           and groups of 32/64/128, on a synthetic Linear with
//                           outlier input channels: weight and layer-output error
//   schemes_bench mx        MXFP4 minmax vs dual-scale (W4A4_MXFP4_DUALSCALE)
//                           on the same Linear: weight error, weight-only and
//                           W4A4 (activations quantized the same way) output error
//   schemes_bench speed     ssz and gptq on a 4096 × 4096 Linear (gptq with
//                           128 × 512 calibration tokens): wall time and GFLOP/s
// A plain program (own main): the figures are tables, not microbenchmarks.
#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "ops/gemm.h"
#include "quant/fp_formats.h"
#include "quant/gptq.h"
#include "quant/ssz.h"
#include "quant/weight_quant.h"

namespace lwq {
namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// A Linear whose inputs have a few outlier channels (×25, as LLM activations
// do) and correlated features, with heavy-tailed (Student-t, 4 dof) weights.
struct Layer {
  int64_t out, in, calib_rows, test_rows;
  std::vector<float> w, x_calib, x_test;
};

Layer make_layer(int64_t out, int64_t in, int64_t calib_rows, int64_t test_rows, unsigned seed) {
  Layer l{out, in, calib_rows, test_rows, {}, {}, {}};
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::student_t_distribution<float> heavy(4.0f);
  l.w.resize(static_cast<size_t>(out * in));
  for (auto& v : l.w) v = 0.02f * heavy(rng);
  std::vector<float> gain(static_cast<size_t>(in), 1.0f);
  for (int64_t i = 0; i < in; i += 97) gain[static_cast<size_t>(i)] = 25.0f;
  auto fill = [&](std::vector<float>& x, int64_t rows) {
    x.resize(static_cast<size_t>(rows * in));
    for (int64_t r = 0; r < rows; ++r) {
      const float a = nd(rng), b = nd(rng);
      for (int64_t i = 0; i < in; ++i)
        x[static_cast<size_t>(r * in + i)] = gain[static_cast<size_t>(i)] * (nd(rng) + 0.5f * (i % 2 ? a : b));
    }
  };
  fill(l.x_calib, calib_rows);
  fill(l.x_test, test_rows);
  return l;
}

struct Errors {
  double weight, output;
};

Errors errors(const Layer& l, const QuantizedWeight& qw) {
  std::vector<float> wq(l.w.size());
  dequantize_weight(qw, wq.data());
  double ew = 0, nw = 0;
  for (size_t k = 0; k < wq.size(); ++k) {
    ew += std::pow(static_cast<double>(wq[k]) - l.w[k], 2);
    nw += static_cast<double>(l.w[k]) * l.w[k];
  }
  std::vector<float> y(static_cast<size_t>(l.test_rows * l.out)), yq(y.size());
  matmul_nt(l.x_test.data(), l.test_rows, l.in, l.w.data(), l.out, y.data(), nullptr);
  matmul_nt(l.x_test.data(), l.test_rows, l.in, wq.data(), l.out, yq.data(), nullptr);
  double eo = 0, no = 0;
  for (size_t k = 0; k < y.size(); ++k) {
    eo += std::pow(static_cast<double>(yq[k]) - y[k], 2);
    no += static_cast<double>(y[k]) * y[k];
  }
  return {std::sqrt(ew / nw), std::sqrt(eo / no)};
}

int quality() {
  const Layer l = make_layer(1024, 1024, 4096, 1024, 1);
  HessianAccumulator acc(l.in);
  for (int64_t r = 0; r < l.calib_rows; r += 512) acc.add(l.x_calib.data() + r * l.in, std::min<int64_t>(512, l.calib_rows - r));
  const std::vector<double> h = acc.hessian();
  fmt::print("Synthetic Linear [{} out, {} in]: Student-t(4) weights, inputs with every 97th channel ×25;\n"
             "GPTQ Hessian from {} calibration rows, errors on {} held-out rows. Relative L2 errors.\n\n",
             l.out, l.in, l.calib_rows, l.test_rows);
  fmt::print("| bits | granularity | method | weight error | layer-output error |\n|---|---|---|---:|---:|\n");
  for (int bits : {8, 4})
    for (int64_t g : {int64_t{0}, int64_t{128}, int64_t{64}, int64_t{32}}) {
      const std::string gran = g ? fmt::format("group {}", g) : "per channel";
      auto row = [&](const char* method, const QuantizedWeight& qw) {
        Errors e = errors(l, qw);
        fmt::print("| int{} | {} | {} | {:.5f} | {:.5f} |\n", bits, gran, method, e.weight, e.output);
      };
      row("minmax", quantize_weight_per_group_minmax(l.w.data(), l.out, l.in, bits, true, g));
      if (g == 0) row("ssz", quantize_weight_ssz(l.w.data(), l.out, l.in, bits, 50).weight);
      row("gptq", gptq_quantize(l.w, l.out, l.in, h, {bits, true, g, 0.01, 128}, "synthetic"));
      if (g) row("gptq asym", gptq_quantize(l.w, l.out, l.in, h, {bits, false, g, 0.01, 128}, "synthetic"));
    }
  return 0;
}

// ‖X̂ Ŵᵀ − X Wᵀ‖ / ‖X Wᵀ‖ on the held-out rows, X̂ the activations as `act` quantizes them.
template <class ActQuant>
double w4a4_output_error(const Layer& l, const QuantizedWeight& qw, ActQuant act) {
  std::vector<float> wq(l.w.size()), xq(l.x_test);
  dequantize_weight(qw, wq.data());
  act(xq.data(), l.test_rows, l.in);
  std::vector<float> y(static_cast<size_t>(l.test_rows * l.out)), yq(y.size());
  matmul_nt(l.x_test.data(), l.test_rows, l.in, l.w.data(), l.out, y.data(), nullptr);
  matmul_nt(xq.data(), l.test_rows, l.in, wq.data(), l.out, yq.data(), nullptr);
  double eo = 0, no = 0;
  for (size_t k = 0; k < y.size(); ++k) {
    eo += std::pow(static_cast<double>(yq[k]) - y[k], 2);
    no += static_cast<double>(y[k]) * y[k];
  }
  return std::sqrt(eo / no);
}

int mx_quality() {
  const Layer l = make_layer(1024, 1024, 0, 1024, 1);
  fmt::print("Synthetic Linear [{} out, {} in] as for `quality`; errors on {} held-out rows. Relative L2 errors;\n"
             "W4A4: activations quantized by the same scheme (MXFP4 blocks / dual-scale blocks).\n\n",
             l.out, l.in, l.test_rows);
  fmt::print("| scheme | weight error | output error, float activations | output error, W4A4 |\n|---|---:|---:|---:|\n");
  const QuantizedWeight plain = quantize_weight_mx(l.w.data(), l.out, l.in, QDtype::MxFp4);
  const Errors e = errors(l, plain);
  fmt::print("| W4A4_MXFP4 (minmax) | {:.5f} | {:.5f} | {:.5f} |\n", e.weight, e.output,
             w4a4_output_error(l, plain, [](float* x, int64_t r, int64_t c) { fake_quant_mx(x, r, c, QDtype::MxFp4); }));
  for (int64_t d : {int64_t{32}, int64_t{128}, int64_t{512}, int64_t{1024}}) {
    const QuantizedWeight qw = quantize_weight_mxfp4_dualscale(l.w.data(), l.out, l.in, d);
    const Errors ed = errors(l, qw);
    fmt::print("| W4A4_MXFP4_DUALSCALE, dual_block_size {} | {:.5f} | {:.5f} | {:.5f} |\n", d, ed.weight, ed.output,
               w4a4_output_error(l, qw, [d](float* x, int64_t r, int64_t c) { fake_quant_mxfp4_dualscale(x, r, c, d); }));
  }
  return 0;
}

int speed(bool gptq) {
  const int64_t n = 4096, tokens = 128 * 512;
  std::mt19937 rng(2);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> w(static_cast<size_t>(n * n));
  for (auto& v : w) v = 0.02f * nd(rng);
  fmt::print("4096 × 4096 Linear (out × in), float32 weights.\n\n");
  fmt::print("| step | wall s | FLOP (convention) | GFLOP/s |\n|---|---:|---|---:|\n");
  for (int bits : {8, 4}) {
    auto t = Clock::now();
    SszResult r = quantize_weight_ssz(w.data(), n, n, bits, 50);
    const double s = since(t);
    // Per iteration and element: quantize (div, round, clamp ≈ 3), product and square sums (4), requantize and
    // squared error (≈ 6): 13 flop; plus the minmax start and final quantization (≈ 2 passes of 4).
    const double flop = (13.0 * static_cast<double>(r.iterations) + 8.0) * n * n;
    fmt::print("| ssz int{} ({} iterations, mse {:.3g} → {:.3g}) | {:.2f} | {:.3g} (13·iter + 8 per element) | {:.1f} |\n",
               bits, r.iterations, r.mse_minmax, r.mse_final, s, flop, flop / s / 1e9);
  }
  if (!gptq) return 0;
  // Calibration: 128 × 512 tokens fed as 128 calls of 512 rows, as a layer's calibration forwards would.
  HessianAccumulator acc(n);
  std::vector<float> x(static_cast<size_t>(512 * n));
  double hess_s = 0;
  for (int call = 0; call < 128; ++call) {
    for (auto& v : x) v = nd(rng);
    auto t = Clock::now();
    acc.add(x.data(), 512);
    hess_s += since(t);
  }
  const double hess_flop = static_cast<double>(n) * (n + 1) * tokens;  // ssyrk: n(n+1)/2 · k multiply-adds
  fmt::print("| gptq Hessian (ssyrk, 128 calls × 512 tokens) | {:.2f} | {:.3g} (n(n+1)·tokens) | {:.1f} |\n", hess_s,
             hess_flop, hess_flop / hess_s / 1e9);
  std::vector<double> h = acc.hessian();
  for (int bits : {8, 4})
    for (int64_t g : {int64_t{0}, int64_t{128}}) {
      GptqStats st;
      auto t = Clock::now();
      gptq_quantize(w, n, n, h, {bits, true, g, 0.01, 128}, "bench", &st);
      const double total = since(t);
      const double chol_flop = 4.0 / 3.0 * n * n * n;             // dpotrf + dpotri + dpotrf
      const double sweep_flop = static_cast<double>(n) * n * n + static_cast<double>(n) * n * 128;  // lazy GEMM + in-block
      fmt::print("| gptq int{} {}: Cholesky inverse (f64 LAPACK) | {:.2f} | {:.3g} (4n³/3) | {:.1f} |\n", bits,
                 g ? "group 128" : "per channel", st.seconds_cholesky, chol_flop, chol_flop / st.seconds_cholesky / 1e9);
      fmt::print("| gptq int{} {}: column sweep (block 128) | {:.2f} | {:.3g} (out·in² + out·in·128) | {:.1f} |\n", bits,
                 g ? "group 128" : "per channel", st.seconds_sweep, sweep_flop, sweep_flop / st.seconds_sweep / 1e9);
      fmt::print("| gptq int{} {}: total quantize (excl. Hessian) | {:.2f} | | |\n", bits, g ? "group 128" : "per channel",
                 total);
    }
  return 0;
}

}  // namespace
}  // namespace lwq

int main(int argc, char** argv) {
  const std::string what = argc > 1 ? argv[1] : "";
  if (what == "quality") return lwq::quality();
  if (what == "mx") return lwq::mx_quality();
  if (what == "speed") return lwq::speed(true);
  if (what == "speed_ssz") return lwq::speed(false);
  fmt::print(stderr, "usage: schemes_bench quality|mx|speed|speed_ssz\n");
  return 2;
}
