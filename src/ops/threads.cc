#include "ops/threads.h"

#include <cblas.h>
#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <thread>
#include <vector>

namespace lwq {

void set_compute_threads(int n) {
  if (n <= 0) n = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  openblas_set_num_threads(n);
  omp_set_num_threads(n);
}

int compute_threads() { return omp_get_max_threads(); }

void use_passive_openmp_waits(char** argv) {
  if (!argv || !argv[0]) return;
  // Set before exec, so the new image sees them and does not exec again.
  std::vector<const char*> set;
  if (!std::getenv("OMP_WAIT_POLICY") && !std::getenv("GOMP_SPINCOUNT") && setenv("OMP_WAIT_POLICY", "PASSIVE", 1) == 0)
    set.push_back("OMP_WAIT_POLICY");
  if (!std::getenv("OPENBLAS_THREAD_TIMEOUT") && !std::getenv("GOTO_THREAD_TIMEOUT") &&
      setenv("OPENBLAS_THREAD_TIMEOUT", "4", 1) == 0)
    set.push_back("OPENBLAS_THREAD_TIMEOUT");
  if (set.empty()) return;
  execv("/proc/self/exe", argv);
  // exec failed (no /proc): run on with the libraries' default waits.
  for (const char* name : set) unsetenv(name);
}

}  // namespace lwq
