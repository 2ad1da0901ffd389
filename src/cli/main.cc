#include "cli/commands.h"
#include "ops/threads.h"

int main(int argc, char** argv) {
  lwq::use_passive_openmp_waits(argv);  // may re-exec the program: first, before any work
  return lwq::run_cli(argc, argv);
}
