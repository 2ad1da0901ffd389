// Exact integer GEMM for the deployed W8A8 arithmetic: int8 activations times
// int8 weights summed in int32, as an NPU's cube unit does it, with no float
// emulation and no intermediate saturation on any CPU.
#pragma once

#include <cstdint>

namespace lwq {

// The deepest product whose int32 sums cannot overflow: every |product| is at
// most 128·128 = 2^14, so 2^17 − 1 of them stay below 2^31 (2^17 products of
// −128·−128 would sum to exactly 2^31, one past INT32_MAX).
inline constexpr int64_t kMaxS8Depth = (int64_t{1} << 17) - 1;

// y[rows, out] = x[rows, in] · w[out, in]ᵀ, exactly (in ≤ kMaxS8Depth).
// Threads: the caller's OpenMP team (set_compute_threads); inside an OpenMP
// parallel region it runs on the calling thread alone. Safe from any thread.
void matmul_nt_s8(const int8_t* x, int64_t rows, int64_t in, const int8_t* w, int64_t out, int32_t* y);

// Which kernel runs it. kAuto takes oneDNN's where its int8 GEMM is exact
// (VNNI, whose dot products accumulate in int32: AVX512-VNNI and newer);
// elsewhere oneDNN's AVX2/AVX-512 int8 kernels add u8·s8 pairs in saturating
// int16 (vpmaddubsw), so kPortable's int16 multiply-adds (Highway, exact on
// every target) run instead. Both are exposed for tests and benchmarks.
//
// kOneDnnAmx (CPUs with AMX-INT8): oneDNN's int8 matmul primitive where it
// runs its AMX kernel, whose tiles accumulate in int32 and store int32
// unconverted (1.3-1.7x the VNNI GEMM on calibration shapes); its other
// implementations (small products, which convert through float: a sum past
// 2^24 loses bits) are never used: those shapes take the VNNI GEMM. kAuto
// picks it only after a probe product past 2^24 came back exact.
//
// kAmx (CPUs with AMX-INT8): lwquant's own tile kernel (ops/amx_gemm.h),
// exact by construction (tiles sum in int32), 1.1-2.9x oneDNN's AMX matmul on
// calibration shapes; shapes it does not take (fewer than 16 rows, depth not
// a multiple of 64, out not a multiple of 16) run as kOneDnnAmx would. kAuto
// picks it wherever AMX-INT8 is usable.
enum class S8Kernel { kAuto, kOneDnnVnni, kPortable, kOneDnnAmx, kAmx };
void matmul_nt_s8(S8Kernel kernel, const int8_t* x, int64_t rows, int64_t in, const int8_t* w, int64_t out,
                  int32_t* y);
// What kAuto resolves to on this CPU.
S8Kernel s8_auto_kernel();
const char* s8_kernel_name(S8Kernel kernel);

}  // namespace lwq
