#!/usr/bin/env bash
# Makes the lab's development CA and a server certificate it signed, for
# localhost, 127.0.0.1 and ::1, in certs/ (see certs/README.md).
#
#   scripts/gen-certs.sh              make them, or keep the ones that are
#                                     still valid
#   scripts/gen-certs.sh --force      make new ones anyway
#   scripts/gen-certs.sh --help       every flag (--out DIR, --names ...)
#
# The work is done with rcgen by lab-common's gen-certs binary; this script
# only runs it from the root of the repository, wherever it is called from.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# --quiet hides cargo's progress: say why the first run takes a while.
echo "building gen-certs if needed (the first time takes a minute or two)..." >&2
exec cargo run --quiet -p lab-common --bin gen-certs -- "$@"
