#pragma once

namespace lwq {
// Parses the command line, runs the chosen subcommand, and returns the exit
// code. Every lwq::Error becomes "error: <message>" on stderr and exit code 1.
int run_cli(int argc, char** argv);
}  // namespace lwq
