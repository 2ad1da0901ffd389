// LWQ_VECTOR_CLONES: compile a hot, memory-bound loop also for x86-64-v3
// (AVX2) and x86-64-v4 (AVX-512), the best chosen when the program loads,
// while the rest of the build targets the baseline x86-64 (SSE2) that every
// CPU runs. Only for loops whose result cannot depend on the ISA: integer
// arithmetic, conversions, min/max; never a float a·b + c, which the wider
// clones could contract into an FMA (rounded once instead of twice).
// Not under the sanitizers, whose runtime may start after an ifunc resolver runs.
#pragma once

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define LWQ_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define LWQ_SANITIZED 1
#endif
#endif
#if defined(__x86_64__) && !defined(LWQ_SANITIZED)
#define LWQ_VECTOR_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define LWQ_VECTOR_CLONES
#endif
