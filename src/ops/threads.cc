#include "ops/threads.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <thread>

namespace lwq {

void set_compute_threads(int n) {
  if (n <= 0) n = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  openblas_set_num_threads(n);
  omp_set_num_threads(n);
}

int compute_threads() { return omp_get_max_threads(); }

}  // namespace lwq
