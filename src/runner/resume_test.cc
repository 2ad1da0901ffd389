// Resume after a crash: the lwquant binary is killed with SIGKILL at chosen
// points (LWQUANT_TEST_KILL_AT) and at a random layer, then run again with the
// same command; the result must equal an uninterrupted run byte for byte.
#include <gtest/gtest.h>
#include <sys/file.h>
#include <sys/wait.h>

#include <chrono>
#include <cstdlib>
#include <fcntl.h>
#include <fstream>
#include <random>

#include "io/safetensors_writer.h"
#include "runner/quant_runner.h"
#include "runner/runner_test_util.h"
#include "util/error.h"

namespace lwq {
namespace {

using namespace testing_util;

struct RunResult {
  bool killed = false;
  int exit_code = -1;
};

// `lwquant quant` on stories260K; `kill_at` (may be empty) is the test hook.
RunResult run_cli(const fs::path& save, const std::string& quant_type, const std::string& kill_at,
                  const fs::path& log, const std::string& extra = "") {
  std::string cmd = (kill_at.empty() ? std::string() : "LWQUANT_TEST_KILL_AT=" + kill_at + " ") + LWQ_BINARY +
                    " quant --model_path " + stories().string() + " --save_path " + save.string() +
                    (quant_type.empty() ? std::string() : " --quant_type " + quant_type) + " --max_calib_samples 3 " + extra + " >" + log.string() +
                    " 2>&1";
  int status = std::system(cmd.c_str());
  RunResult r;
  r.killed = WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
  // std::system runs /bin/sh, which reports a child killed by a signal as 128 + signal.
  if (WIFEXITED(status) && WEXITSTATUS(status) == 128 + SIGKILL) r.killed = true;
  if (WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
  return r;
}

fs::path work_folder(const fs::path& save) { return save.parent_path() / ("." + save.filename().string() + ".lwquant-partial"); }

class Resume : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    for (const char* type : {"w8a8", "w8a16"}) {
      RunResult r = run_cli(*dir_ / (std::string("clean_") + type), type, "", *dir_ / "clean.log");
      ASSERT_EQ(r.exit_code, 0) << read_text_file(*dir_ / "clean.log");
    }
  }
  static void TearDownTestSuite() { delete dir_; }
  static fs::path clean(const std::string& type) { return *dir_ / ("clean_" + type); }
  static TempDir* dir_;
};
TempDir* Resume::dir_ = nullptr;

void kill_then_resume(const fs::path& save, const std::string& type, const std::string& kill_at, const fs::path& clean,
                      int expect_resume_layer, const std::string& extra = "") {
  SCOPED_TRACE(type + " killed at " + kill_at + " " + extra);
  fs::path log = save.parent_path() / "run.log";
  RunResult first = run_cli(save, type, kill_at, log, extra);
  ASSERT_TRUE(first.killed) << read_text_file(log);
  EXPECT_FALSE(fs::exists(save)) << "a killed run must not leave a finished-looking folder";
  ASSERT_TRUE(fs::exists(work_folder(save) / "resume.json") || expect_resume_layer == 0);
  RunResult second = run_cli(save, type, "", log);
  ASSERT_EQ(second.exit_code, 0) << read_text_file(log);
  std::string text = read_text_file(log);
  if (expect_resume_layer > 0)
    EXPECT_NE(text.find("resuming an interrupted run: " + std::to_string(expect_resume_layer) + " of 5"),
              std::string::npos) << text;
  expect_same_folder(save, clean);
  EXPECT_FALSE(fs::exists(work_folder(save)));
  EXPECT_FALSE(fs::exists(save / "resume.json"));
}

TEST_F(Resume, KilledBeforeAndAfterCommitsFinishesByteIdentical) {
  TempDir tmp;
  // Killed after layer 1 is saved but before it is committed: resumes at layer 1.
  kill_then_resume(tmp / "a", "w8a8", "1:saved", clean("w8a8"), 1, "--commit_interval 0");
  // Killed right after layer 3's commit: resumes at layer 4.
  kill_then_resume(tmp / "b", "w8a8", "3:committed", clean("w8a8"), 4, "--commit_interval 0");
  // The last layer committed, non-layer tensors and finish still to do.
  kill_then_resume(tmp / "c", "w8a16", "4:committed", clean("w8a16"), 5);
  // Killed before anything is committed: a fresh start in the same work folder.
  kill_then_resume(tmp / "d", "w8a16", "0:saved", clean("w8a16"), 0);
}

// Runs commit every kCommitSeconds by default (and after the last layer):
// this run takes well under that, so a kill before the last layer restarts
// from scratch; with --commit_interval 0 every layer commits.
TEST_F(Resume, DataFreeRunsCommitByTime) {
  TempDir tmp;
  kill_then_resume(tmp / "e", "w8a16", "3:saved", clean("w8a16"), 0);
  // The hook fires only where a commit happens: never at layer 2 by default.
  const fs::path log = tmp / "run.log";
  EXPECT_EQ(run_cli(tmp / "f", "w8a16", "2:committed", log).exit_code, 0) << read_text_file(log);
  expect_same_folder(tmp / "f", clean("w8a16"));
  kill_then_resume(tmp / "g", "w8a16", "2:committed", clean("w8a16"), 3, "--commit_interval 0");
  // Calibrated runs follow the same default (these take well under 10 s) unless told otherwise.
  EXPECT_EQ(run_cli(tmp / "h", "w8a8", "1:committed", log, "--commit_interval 3600").exit_code, 0) << read_text_file(log);
  expect_same_folder(tmp / "h", clean("w8a8"));
}

TEST_F(Resume, KilledAtARandomLayerOfACalibratedRun) {
  unsigned seed = static_cast<unsigned>(std::chrono::steady_clock::now().time_since_epoch().count());
  std::mt19937 rng(seed);
  int layer = static_cast<int>(rng() % 5);
  const char* phase = rng() % 2 ? "saved" : "committed";
  SCOPED_TRACE("seed " + std::to_string(seed));
  TempDir tmp;
  kill_then_resume(tmp / "r", "w8a8", std::to_string(layer) + ":" + phase, clean("w8a8"),
                   std::string(phase) == "saved" ? layer : layer + 1, "--commit_interval 0");
}

// Outlier suppression resumes too: quarot's rotated calibration states come
// back from the manifest (not rotated twice), smoothing is per layer, and the
// rotated head and optional/quarot.safetensors are written at the end.
TEST_F(Resume, QuarotAndIterSmoothResumeByteIdentical) {
  TempDir tmp;
  const fs::path yaml = tmp / "rot.yaml";
  std::ofstream(yaml) << R"(apiversion: modelslim_v1
spec:
  process:
    - type: quarot
      block_size: 32
    - type: iter_smooth
    - type: linear_quant
      qconfig:
        act: {scope: per_tensor, dtype: int8, symmetric: false, method: minmax}
        weight: {scope: per_channel, dtype: int8, symmetric: true, method: minmax}
  save:
    - type: ascendv1_saver
  dataset: calib_zh_en.jsonl
)";
  const std::string extra = "--config_path " + yaml.string();
  fs::path log = tmp / "run.log";
  ASSERT_EQ(run_cli(tmp / "clean", "", "", log, extra).exit_code, 0) << read_text_file(log);
  ASSERT_TRUE(fs::exists(tmp / "clean" / "optional" / "quarot.safetensors"));
  ASSERT_TRUE(run_cli(tmp / "r", "", "2:committed", log, extra + " --commit_interval 0").killed) << read_text_file(log);
  ASSERT_EQ(run_cli(tmp / "r", "", "", log, extra).exit_code, 0) << read_text_file(log);
  EXPECT_NE(read_text_file(log).find("resuming an interrupted run: 3 of 5"), std::string::npos) << read_text_file(log);
  expect_same_folder(tmp / "r", tmp / "clean");
}

// A single-file output (part_file_size 0) after a full disk; shard closing
// and finish() are covered by the writer's own resume tests (src/io).
TEST_F(Resume, SingleFileOutputResumesAfterDiskFull) {
  TempDir tmp;
  QuantJob job = make_job(stories(), tmp / "clean", (repo() / "configs/w8a16.yaml").string());
  job.config.save = {SaverConfig{"ascendv1_saver", 0, "spec.save[0]"}};
  job.commit_interval_s = 0;  // every layer commits (data-free runs default to every 10 s)
  run_quantization(job);
  // In-process crash stand-in: a full disk after at least one commit.
  job.save_path = tmp / "crashed";
  set_write_fault_after_bytes_for_testing(100000);
  EXPECT_THROW(run_quantization(job), Error);
  set_write_fault_after_bytes_for_testing(-1);
  EXPECT_TRUE(fs::exists(work_folder(tmp / "crashed") / "resume.json"));
  QuantOutcome out = run_quantization(job);
  EXPECT_GT(out.resumed_from_layer, 0);
  expect_same_folder(tmp / "crashed", tmp / "clean");
}

TEST_F(Resume, ADifferentJobStartsAfresh) {
  TempDir tmp;
  fs::path log = tmp / "run.log";
  ASSERT_TRUE(run_cli(tmp / "x", "w8a8", "2:committed", log, "--commit_interval 0").killed);
  ASSERT_EQ(run_cli(tmp / "x", "w8a16", "", log).exit_code, 0);
  std::string text = read_text_file(log);
  EXPECT_NE(text.find("starting afresh"), std::string::npos) << text;
  expect_same_folder(tmp / "x", clean("w8a16"));
}

TEST_F(Resume, ASecondLiveRunOnTheSameSavePathIsRefused) {
  TempDir tmp;
  fs::create_directories(work_folder(tmp / "y"));
  int fd = ::open((work_folder(tmp / "y") / ".lock").c_str(), O_RDWR | O_CREAT, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::flock(fd, LOCK_EX | LOCK_NB), 0);
  fs::path log = tmp / "run.log";
  RunResult r = run_cli(tmp / "y", "w8a16", "", log);
  ::close(fd);
  EXPECT_EQ(r.exit_code, 1) << read_text_file(log);
  EXPECT_NE(read_text_file(log).find("another lwquant run"), std::string::npos) << read_text_file(log);
  EXPECT_FALSE(fs::exists(tmp / "y"));
}

// Temporary folders of dead runs of earlier versions are removed.
TEST_F(Resume, DeadRunsTemporaryFoldersAreRemoved) {
  TempDir tmp;
  fs::create_directories(tmp / ".z.lwquant-tmp-999999999");
  std::ofstream(tmp / ".z.lwquant-tmp-999999999" / "junk") << "x";
  fs::path log = tmp / "run.log";
  ASSERT_EQ(run_cli(tmp / "z", "w8a16", "", log).exit_code, 0) << read_text_file(log);
  EXPECT_FALSE(fs::exists(tmp / ".z.lwquant-tmp-999999999"));
}

}  // namespace
}  // namespace lwq
