#!/usr/bin/env bash
# Runs lb's fault suite at full size: backends that stall, reset or close,
# clients that stall, give up or reset, bursts, thousands of idle TLS
# connections, too few descriptors, SIGTERM mid-transfer, reloads and
# upgrades under load (n/a for step 08), and partial failures: every
# backend gone for a second, a stream broken mid-way, a flapping backend,
# slow readers against the memory bound, clients leaving the queue, a
# backend that is lb itself, max_connections held (those about health
# checks, the queue or limits are n/a for step 08). Each case says what
# must happen, does it to a release build of lb (and, to compare, of
# step 08), and prints what each did, measured through /proc.
#
#   scripts/faults.sh                       every case, lb and step 08
#   scripts/faults.sh never-answers burst   only the cases named
#   scripts/faults.sh --lb-only             lb alone (what CI runs)
#   scripts/faults.sh --list                the cases and what each checks
#
# Options:
#   --lb-only   run lb alone, without step 08 beside it
#   --list      list the cases, then exit
#   -h, --help  this text
#
# It builds lb, 08-final and faults in release mode, then runs faults in a
# network namespace of its own (unshare -n, as root), so that the
# kernel's count of listen-queue overflows counts its connects alone.
# Without one it says so, and that count is shown but not checked. All
# traffic stays on 127.0.0.1, on ports the system picks. FAULTS_LOG=1
# prints each balancer's log when its case ends. The same cases run at a
# small size in `cargo test --workspace` (balancer/tests/faults.rs).
# Exit status: 0 if lb passed every case, 1 if not.
set -euo pipefail
# For print_header and die; sourcing only defines functions.
# shellcheck source-path=SCRIPTDIR source=lib/lab.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/lab.sh"

lab_paths
bin_dir="$target_dir/release"

args=()
list=false
while (( $# > 0 )); do
  case "$1" in
    -h|--help) print_header "${BASH_SOURCE[0]}"; exit 0 ;;
    --lb-only) args+=(--no-step08) ;;
    --list) list=true ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) args+=("$1") ;;
  esac
  shift
done

echo "== building lb, 08-final and faults (release)"
(cd "$root" && cargo build --release --quiet \
  --bin lb --bin 08-final --bin faults)
faults=("$bin_dir/faults" --lb "$bin_dir/lb")
if [[ " ${args[*]} " != *" --no-step08 "* ]]; then
  faults+=(--step08 "$bin_dir/08-final")
fi
if $list; then
  exec "$bin_dir/faults" --list
fi

# A namespace of our own, with its loopback up, if this machine allows it.
if command -v unshare >/dev/null && command -v ip >/dev/null &&
  unshare -n true 2>/dev/null; then
  exec unshare -n bash -c 'ip link set lo up && exec "$@"' faults \
    "${faults[@]}" --private-network "${args[@]}"
fi
echo "note: no private network namespace here (unshare -n needs root and" \
  "the ip command); ListenOverflows will be shown, not checked"
exec "${faults[@]}" "${args[@]}"
