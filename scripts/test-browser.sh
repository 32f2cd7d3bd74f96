#!/usr/bin/env bash
# Runs lb's status page in a real browser (balancer/tests/browser.rs):
# headless Chromium, driven by chromedriver, against the real lb binary
# and three backends. The page must list the backends, show one that
# stops as down within two of its refreshes, and say so when lb is gone.
# It saves a screenshot to target/admin/status-page.png.
#
#   scripts/test-browser.sh           install what is missing, run the test
#   scripts/test-browser.sh --help    this text
#
# It installs Debian's chromium and chromium-driver with apt-get if they
# are missing (as root), then runs
#   cargo test -p balancer --features external-tests --test browser -- --ignored
# A plain `cargo test` builds it not at all (it needs the feature), so
# it needs no browser; built, it runs only when asked (--ignored).
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

# The test starts these two by path: Debian's packages put them there.
missing=()
[[ -x /usr/bin/chromium ]] || missing+=(chromium)
[[ -x /usr/bin/chromedriver ]] || missing+=(chromium-driver)
install_packages "${missing[@]}"

cargo test -p balancer --features external-tests --test browser -- --ignored
