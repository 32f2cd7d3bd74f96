#!/usr/bin/env bash
# The algorithm bake-off: lb's six algorithms, one after the other, each
# against the same seeded workload (8 or more clients, one request per
# connection) and dummy backends the tool serves itself. Scenario
# "slow": one of three backends answers 20 ms later than the other two.
# "failure": one starts closing every connection half-way, until lb's
# health checks take it out. "added": a fourth joins half-way, through a
# reload (SIGHUP). Then how many of 10,000 client addresses
# change backend when a fifth backend is added to four, or one of five is
# removed: maglev, round robin and random through lb, and a modulo hash
# computed by the tool, to show why consistent hashing exists.
#
#   scripts/bakeoff.sh            full size (about 3 minutes once built)
#   scripts/bakeoff.sh --quick    short runs (under a minute once built)
#
# Options:
#   --quick      8 clients, 1.5 s per algorithm and scenario, 5,000 keys
#   --seed N     seeds the workload and lb's random algorithms (default 1)
#   --out DIR    where the report goes (default target/bakeoff)
#   -h, --help   this text
#
# It builds lb and bakeoff in release mode, shows a progress line while
# it runs and prints the table at the end, and writes DIR/report.md, its
# SVG charts and every request's record (records-SCENARIO.csv). All
# traffic stays on 127.0.0.1, on ports the system picks; each lb is
# stopped by its pid when its run ends, also on an error or Ctrl-C. The
# program is tools/bakeoff; `cargo test -p balancer --test bakeoff` runs
# it at a small size against lb.
set -euo pipefail
# For print_header, die and lab_paths; sourcing only defines functions.
# shellcheck source-path=SCRIPTDIR source=lib/lab.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/lab.sh"

lab_paths
out="$target_dir/bakeoff"
args=()
while (( $# > 0 )); do
  case "$1" in
    -h|--help) print_header "${BASH_SOURCE[0]}"; exit 0 ;;
    --quick) args+=(--quick) ;;
    --seed)
      [[ "${2:-}" =~ ^[0-9]+$ ]] || die "--seed needs a number (see --help)"
      args+=(--seed "$2")
      shift
      ;;
    --out)
      [[ -n "${2:-}" ]] || die "--out needs a folder (see --help)"
      out=$2
      shift
      ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
  shift
done

echo "== building lb and bakeoff (release)"
(cd "$root" && cargo build --release --quiet --bin lb --bin bakeoff)
exec "$target_dir/release/bakeoff" --lb "$target_dir/release/lb" \
  --out "$out" "${args[@]}"
