#!/usr/bin/env bash
# Checks lb as a systemd service: the unit files in balancer/ as systemd
# reads them, and lb under socket activation.
#
#   systemd-analyze verify   balancer/lb.service and balancer/lb.socket
#                            (systemd need not be PID 1 for it). The unit
#                            runs /usr/local/bin/lb, which is installed
#                            only on a machine that runs the service:
#                            that one message, and only it, is let
#                            through.
#   cargo test ... --test service
#                            lb started by systemd-socket-activate serves
#                            a client through the socket it was passed;
#                            and READY=1, RELOADING=1, STOPPING=1 and an
#                            upgrade's MAINPID= on a NOTIFY_SOCKET.
#
#   scripts/test-service.sh           install what is missing, run it
#   scripts/test-service.sh --help    this text
#
# It installs Debian's systemd with apt-get if systemd-analyze or
# systemd-socket-activate is missing (as root), then runs
#   cargo test -p balancer --features external-tests --test service
# A plain `cargo test` runs the notification tests but not the one that
# needs systemd-socket-activate.
set -euo pipefail
# For print_header and install_packages; sourcing only defines functions.
# shellcheck source-path=SCRIPTDIR source=lib/lab.sh disable=SC1091
source "$(dirname "${BASH_SOURCE[0]}")/lib/lab.sh"

if [[ "${1:-}" == -h || "${1:-}" == --help ]]; then
  print_header "${BASH_SOURCE[0]}"
  exit 0
fi
if (( $# > 0 )); then
  echo "error: unexpected argument '$1' (see --help)" >&2
  exit 2
fi
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! command -v systemd-analyze >/dev/null ||
  ! command -v systemd-socket-activate >/dev/null; then
  install_packages systemd
fi

# What systemd-analyze says of a unit, less the line about the missing
# executable at its install path (see above). Fails if anything else is
# said, or if it fails for another reason.
verify() {
  local unit=$1 out rc=0 rest
  out=$(systemd-analyze verify "$unit" 2>&1) || rc=$?
  rest=$(grep -v -F 'Command /usr/local/bin/lb is not executable: No such file or directory' <<<"$out" || true)
  if [[ -n "$rest" ]]; then
    echo "FAIL - systemd-analyze verify $unit:" >&2
    echo "$rest" >&2
    return 1
  fi
  if (( rc != 0 )) && [[ -z "$out" ]]; then
    echo "FAIL - systemd-analyze verify $unit exited with $rc" >&2
    return 1
  fi
  echo "ok   - systemd-analyze verify $unit"
}
verify balancer/lb.service
verify balancer/lb.socket

echo "== cargo test -p balancer --features external-tests --test service"
cargo test -p balancer --features external-tests --test service
