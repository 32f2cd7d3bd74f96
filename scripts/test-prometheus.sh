#!/usr/bin/env bash
# Runs a real Prometheus against lb (balancer/tests/prometheus.rs): the
# test starts the lb binary with its admin listener, two backends and an
# address that refuses connects, sends clients through it, and starts
# Debian's prometheus scraping lb's /metrics every second on a free port
# of 127.0.0.1. PromQL over Prometheus' HTTP API must show, per backend,
# exactly the connections, bytes and failed connects the test caused.
# It also runs `promtool check metrics` on lb's exposition.
#
#   scripts/test-prometheus.sh           install what is missing, run it
#   scripts/test-prometheus.sh --help    this text
#
# It installs Debian's prometheus (which holds promtool) with apt-get if
# it is missing (as root), then runs
#   cargo test -p balancer --features external-tests --test prometheus -- --ignored
# A plain `cargo test` builds them not at all (they need the feature),
# so it needs no Prometheus; built, they run only when asked (--ignored).
set -euo pipefail
# For print_header; sourcing only defines functions. (SC1091: shellcheck
# follows it when given lib/lab.sh too, as check.sh does; alone, it
# would only say that it did not.)
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

# The test starts both by path: Debian's package puts them there.
if [[ ! -x /usr/bin/prometheus || ! -x /usr/bin/promtool ]]; then
  # Without its recommends: they add the node exporter, another service.
  install_packages --no-recommends prometheus
  # Under systemd the package starts its own service, on :9090. The test
  # needs none of it (it runs its own Prometheus on a free port), so it
  # is stopped. In a container without systemd nothing was started.
  if [[ -d /run/systemd/system ]] \
    && systemctl is-active --quiet prometheus; then
    echo "== the package started prometheus.service on :9090; stopping it"
    echo "   (systemctl disable prometheus keeps it from starting at boot)"
    systemctl stop prometheus
  fi
fi

cargo test -p balancer --features external-tests --test prometheus -- --ignored
