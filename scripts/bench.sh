#!/usr/bin/env bash
# Measures the lab's balancers beside HAProxy and nginx on this machine, in
# one run, and writes the table to BENCHMARKS.md.
#
#   scripts/bench.sh           full run (about 50 min): writes BENCHMARKS.md
#                              and bench-ratios.svg
#   scripts/bench.sh --quick   one short round of everything (about 8 min)
#   scripts/bench.sh --smoke   a self-test in seconds, needing only curl
#   scripts/bench.sh --help    every option
#
# The program is lab-tools' lab-bench (tools/bench/src/bench/): this script
# only runs it, from any folder.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
exec cargo run --quiet -p lab-tools --bin lab-bench -- "$@"
