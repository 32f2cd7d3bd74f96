#!/usr/bin/env bash
# Runs lb's etcd discovery against a real etcd (balancer/tests/discovery.rs):
# the test starts etcd on free ports of 127.0.0.1 with its data in a
# temporary folder, two lb processes built with the `etcd` feature, and
# dummy backends; it adds, deletes and leases keys with etcd's own client,
# stops etcd for ten seconds under traffic and starts it again.
#
#   scripts/test-etcd.sh           install what is missing, run it
#   scripts/test-etcd.sh --help    this text
#
# It installs Debian's etcd-server, etcd-client (etcdctl, which the
# tutorial uses), and protobuf-compiler and libprotobuf-dev (protoc and
# the .proto files that etcd's import, which the etcd-client crate needs to
# build) with apt-get if they are missing (as root), then runs
#   cargo test -p balancer --features etcd --test discovery
# A plain `cargo test` builds neither the feature nor this test.
set -euo pipefail
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

install_etcd
cargo test -p balancer --features etcd --test discovery
