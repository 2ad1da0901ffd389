#include "cli/commands.h"

int main(int argc, char** argv) { return lwq::run_cli(argc, argv); }
