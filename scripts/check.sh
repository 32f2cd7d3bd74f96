#!/usr/bin/env bash
# Everything CI checks (.ci/run runs this), in the order a developer wants
# to hear about it:
#
#   cargo fmt --all --check
#   cargo clippy --workspace --all-targets -- -D warnings
#   cargo test --workspace          the README's test command
#   scripts/test-scripts.sh         the scripts, run as processes
#   scripts/walk-tutorial.sh        README.md and tutorial.md, command by
#                                   command, output compared with the text
#   scripts/exercise.sh --prove     each exercise's worked solution,
#                                   applied, passes its test
#   LAB_FULL_SIZE=1 cargo test ...  the tests whose issue names a size
#                                   too slow for every cargo test
#   scripts/faults.sh --lb-only     lb's fault suite at full size
#   scripts/test-browser.sh         lb's status page in headless Chromium
#   scripts/test-prometheus.sh      a real Prometheus scrapes lb's metrics
#   scripts/test-etcd.sh            two lbs share one backend list in etcd
#   scripts/test-service.sh         lb's systemd units (systemd-analyze
#                                   verify), lb under socket activation
#   a lint of the scripts           shellcheck, on scripts/ and .ci/run
#
# It installs what it needs besides Rust (shellcheck, curl, and for lb's
# `etcd` feature protoc, its .proto files and etcd) with apt-get;
# test-browser.sh installs chromium and chromium-driver the same way,
# test-prometheus.sh prometheus, and test-service.sh systemd.
#
#   scripts/check.sh                all of it
#   scripts/check.sh --help         this text
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib/lab.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/lab.sh"

if [[ "${1:-}" == -h || "${1:-}" == --help ]]; then
  print_header "${BASH_SOURCE[0]}"
  exit 0
fi
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Debian packages the checks and the script tests use.
missing=()
command -v shellcheck >/dev/null || missing+=(shellcheck)
command -v curl >/dev/null || missing+=(curl)
install_packages "${missing[@]}"
install_etcd

echo "== cargo fmt --all --check"
cargo fmt --all --check
echo "== cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings
# The code and tests behind a feature (Chromium's, Prometheus', etcd's),
# which the line above does not build.
cargo clippy -p balancer --features external-tests --all-targets -- -D warnings
cargo clippy -p balancer --features etcd --all-targets -- -D warnings
echo "== cargo test --workspace"
cargo test --workspace
echo "== scripts/test-scripts.sh (the scripts, run as processes)"
bash scripts/test-scripts.sh
echo "== scripts/walk-tutorial.sh (README.md and tutorial.md, command by command)"
bash scripts/walk-tutorial.sh
echo "== scripts/exercise.sh --prove (each solution passes its exercise's test)"
bash scripts/exercise.sh --prove
echo "== full-size tests (the sizes the issues name; cargo test runs them smaller)"
LAB_FULL_SIZE=1 cargo test -p balancer --test carry_over -- a_removed_backend
echo "== scripts/faults.sh --lb-only (lb's fault suite, full size)"
bash scripts/faults.sh --lb-only
echo "== scripts/test-browser.sh (the status page in headless Chromium)"
bash scripts/test-browser.sh
echo "== scripts/test-prometheus.sh (a real Prometheus scrapes lb)"
bash scripts/test-prometheus.sh
echo "== scripts/test-etcd.sh (two lbs share one backend list in etcd)"
bash scripts/test-etcd.sh
echo "== scripts/test-service.sh (lb's systemd units, socket activation)"
bash scripts/test-service.sh
echo "== shellcheck"
shellcheck scripts/*.sh scripts/lib/*.sh .ci/run
echo "== all checks passed"
