// Shared pieces of the libFuzzer harnesses (docs/reliability.md).
//
// The contract every harness checks: whatever bytes a file holds, lwquant
// either accepts it or throws lwq::Error (the CLI's "error: ..." and exit 1).
// Crashes, sanitizer reports, hangs and leaks are findings, and so is any
// other exception escaping a reader (the CLI reports those as an "unexpected
// failure" with exit 2): the harness prints its type and aborts.
#pragma once

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <string>
#include <string_view>
#include <system_error>
#include <typeinfo>

#include "util/error.h"

namespace lwq::fuzz {

// A scratch folder of this process under $TMPDIR, removed at a normal exit.
inline const std::filesystem::path& scratch_dir() {
  struct Dir {
    std::filesystem::path path;
    Dir() {
      std::string tmpl = (std::filesystem::temp_directory_path() / "lwq_fuzz_XXXXXX").string();
      if (!::mkdtemp(tmpl.data())) {
        std::perror("lwq fuzz: mkdtemp");
        std::abort();
      }
      path = tmpl;
    }
    ~Dir() {
      std::error_code ec;
      std::filesystem::remove_all(path, ec);
    }
  };
  static const Dir dir;
  return dir.path;
}

// Writes the bytes with plain POSIX calls (cheap per execution); aborts on failure,
// which would be a problem of the fuzzing machine, not of lwquant.
inline void write_file(const std::filesystem::path& path, const void* data, size_t size) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    std::perror("lwq fuzz: open");
    std::abort();
  }
  const auto* p = static_cast<const char*>(data);
  while (size > 0) {
    ssize_t n = ::write(fd, p, size);
    if (n <= 0) {
      std::perror("lwq fuzz: write");
      std::abort();
    }
    p += n;
    size -= static_cast<size_t>(n);
  }
  ::close(fd);
}

inline void write_file(const std::filesystem::path& path, std::string_view text) {
  write_file(path, text.data(), text.size());
}

// LWQ_FUZZ_VERBOSE=1 prints each refusal's message (to see why an input is
// refused when running a harness on single files).
inline bool verbose() {
  static const bool on = [] {
    const char* v = std::getenv("LWQ_FUZZ_VERBOSE");
    return v && *v && std::string_view(v) != "0";
  }();
  return on;
}

// Runs `body`; lwq::Error is the expected way to refuse an input.
template <typename Body>
void expect_lwq_error_only(Body&& body) {
  try {
    body();
    if (verbose()) std::fprintf(stderr, "lwq fuzz: accepted\n");
  } catch (const lwq::Error& e) {
    if (verbose()) std::fprintf(stderr, "lwq fuzz: refused: %s\n", e.what());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lwq fuzz: exception other than lwq::Error escaped: %s: %s\n", typeid(e).name(), e.what());
    std::abort();
  }
}

// Logging off: refusals are expected by the thousand.
inline void quiet() { spdlog::set_level(spdlog::level::off); }

}  // namespace lwq::fuzz
