#include "ops/threads.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

namespace lwq {
namespace {

// Restores an environment variable when the test ends.
class EnvGuard {
 public:
  explicit EnvGuard(const char* name) : name_(name) {
    if (const char* v = std::getenv(name)) had_ = true, value_ = v;
  }
  ~EnvGuard() { had_ ? setenv(name_, value_.c_str(), 1) : unsetenv(name_); }

 private:
  const char* name_;
  bool had_ = false;
  std::string value_;
};

// A user's own choice is kept: no exec happens (if one did, this test program
// would start over instead of reaching the expectations).
TEST(Threads, UserSettingsAreKept) {
  EnvGuard policy("OMP_WAIT_POLICY"), spin("GOMP_SPINCOUNT"), blas("OPENBLAS_THREAD_TIMEOUT");
  char name[] = "ops_test";
  char* argv[] = {name, nullptr};
  setenv("OPENBLAS_THREAD_TIMEOUT", "28", 1);
  setenv("OMP_WAIT_POLICY", "ACTIVE", 1);
  unsetenv("GOMP_SPINCOUNT");
  use_passive_openmp_waits(argv);
  EXPECT_STREQ(std::getenv("OMP_WAIT_POLICY"), "ACTIVE");
  unsetenv("OMP_WAIT_POLICY");
  setenv("GOMP_SPINCOUNT", "1000", 1);
  use_passive_openmp_waits(argv);
  EXPECT_EQ(std::getenv("OMP_WAIT_POLICY"), nullptr);
  EXPECT_STREQ(std::getenv("OPENBLAS_THREAD_TIMEOUT"), "28");
}

// Run only in the child below: the re-executed program sees the policy.
TEST(Threads, ReexecutedChildSeesPassivePolicy) {
  if (!std::getenv("LWQ_THREADS_TEST_CHILD")) GTEST_SKIP() << "runs as the child of ReexecutesWithPassivePolicy";
  EXPECT_STREQ(std::getenv("OMP_WAIT_POLICY"), "PASSIVE");
  EXPECT_STREQ(std::getenv("OPENBLAS_THREAD_TIMEOUT"), "4");
}

// Without a user setting the program is re-executed (same argv) with
// OMP_WAIT_POLICY=PASSIVE: a child process runs this test program again,
// filtered to the test above, which fails unless the policy arrived.
TEST(Threads, ReexecutesWithPassivePolicy) {
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    unsetenv("OMP_WAIT_POLICY");
    unsetenv("GOMP_SPINCOUNT");
    unsetenv("OPENBLAS_THREAD_TIMEOUT");
    unsetenv("GOTO_THREAD_TIMEOUT");
    setenv("LWQ_THREADS_TEST_CHILD", "1", 1);
    char name[] = "ops_test", filter[] = "--gtest_filter=Threads.ReexecutedChildSeesPassivePolicy";
    char* argv[] = {name, filter, nullptr};
    use_passive_openmp_waits(argv);
    _exit(97);  // reached only if exec failed
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "97: exec failed; 1: the child did not see OMP_WAIT_POLICY=PASSIVE and OPENBLAS_THREAD_TIMEOUT=4";
}

}  // namespace
}  // namespace lwq
