#include "cli/commands.h"

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include <cstdio>

#include "util/error.h"

namespace lwq {

int run_cli(int argc, char** argv) {
  CLI::App app{"lwquant: layer-by-layer LLM quantization"};
  app.require_subcommand(1);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return 0;
}

}  // namespace lwq
