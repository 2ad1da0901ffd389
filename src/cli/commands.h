#pragma once

#include <CLI/CLI.hpp>

namespace lwq {

// Parses the command line, runs the chosen subcommand, and returns the exit
// code. Every lwq::Error becomes "error: <message>" on stderr and exit code 1.
int run_cli(int argc, char** argv);

// Each subcommand registers its flags on `app` and returns the function that
// runs it after parsing.
using CommandRunner = std::function<int()>;
CommandRunner add_generate_command(CLI::App& app);
CommandRunner add_tokenize_command(CLI::App& app);
CommandRunner add_ppl_command(CLI::App& app);
CommandRunner add_quant_command(CLI::App& app);
CommandRunner add_inspect_command(CLI::App& app);
CommandRunner add_eval_command(CLI::App& app);

}  // namespace lwq
