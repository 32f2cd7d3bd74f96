#!/usr/bin/env bash
# Walks README.md and tutorial.md as a reader would: runs every command
# in order (the ones "in another terminal" in the background, stopped
# where the text says Ctrl-C) and compares what each prints with the text
# (lab-walk; its conventions are in tools/walker/src/lib.rs).
#
#   scripts/walk-tutorial.sh                     README.md, then tutorial.md
#   scripts/walk-tutorial.sh --only "Step 04"    one chapter of tutorial.md
#   scripts/walk-tutorial.sh --from "Step 06"    from a chapter to the end
#   scripts/walk-tutorial.sh README.md           the files named, in order
#   scripts/walk-tutorial.sh --fail-fast ...     other flags: lab-walk --help
#
# It runs in private namespaces (unshare): its own network, so the
# tutorial's fixed ports (2379-2380, 3000-3003, 4444-4447, 8080, 9000)
# meet nothing else on the machine; its own processes, so nothing it
# started outlives it; and its own mounts, so it starts from a fresh
# clone's state (no certificates in certs/, no backends in .lab-run/, an
# empty /tmp) without touching yours.
# That needs root, or unprivileged user namespaces. Without either it says
# so and walks on this machine's network, if the ports are free and the
# state is fresh.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib/lab.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/lab.sh"

if [[ "${1:-}" == -h || "${1:-}" == --help ]]; then
  print_header "${BASH_SOURCE[0]}"
  exit 0
fi

lab_paths
cd "$root"
walker="$target_dir/debug/lab-walk"

# The files named first, else both (or only the tutorial, for --only and
# --from, which name its chapters).
files=()
while [[ "${1:-}" == *.md ]]; do
  files+=("$1")
  shift
done
if (( ${#files[@]} == 0 )); then
  if (( $# == 0 )); then files=(README.md tutorial.md); else files=(tutorial.md); fi
fi
for file in "${files[@]}"; do
  [[ -f "$file" ]] || die "no $file in $root"
done

echo "building lab-walk..."
cargo build --quiet -p lab-walk
# "lb — More than one" runs etcd and etcdctl, and builds lb with its
# `etcd` feature (protoc).
install_etcd

# Run inside the namespaces: loopback up, fresh certs/, .lab-run/ and
# /tmp (tmpfs, gone with the namespace), then the walk. bash stays as the
# namespace's first process, which reaps what the walk's commands leave
# behind; when it exits, the kernel ends everything still in there.
# shellcheck disable=SC2016 # expanded by the inner bash
inner='
set -euo pipefail
ip link set lo up
root=$1
walker=$2
shift 2
# A fresh /tmp hides a clone that lives under /tmp: through a descriptor
# opened before, the clone is mounted back at its own path (first, so
# that the mounts over certs/ and .lab-run/ below are made on it).
exec 3<"$root"
mount -t tmpfs lab-walk-tmp /tmp
if [[ ! -e "$root/Cargo.toml" ]]; then
  mkdir -p "$root"
  mount --no-canonicalize --bind /proc/self/fd/3 "$root"
fi
exec 3<&-
cd "$root"
readme=$(cat certs/README.md)
mount -t tmpfs lab-walk-certs certs
printf "%s\n" "$readme" >certs/README.md
mkdir -p .lab-run
mount -t tmpfs lab-walk-run .lab-run
files=()
while [[ "${1:-}" == *.md ]]; do files+=("$1"); shift; done
status=0
for file in "${files[@]}"; do
  "$walker" "$file" "$@" || status=$?
  (( status != 130 )) || break
done
exit "$status"
'
namespaces=(--net --mount --pid --fork --mount-proc --kill-child)
if unshare "${namespaces[@]}" true 2>/dev/null; then
  echo "walking ${files[*]} in private namespaces (network, processes, mounts)"
  exec unshare "${namespaces[@]}" \
    bash -c "$inner" walk "$root" "$walker" "${files[@]}" "$@"
fi
if unshare --user --map-root-user "${namespaces[@]}" true 2>/dev/null; then
  echo "walking ${files[*]} in private namespaces (as root of a user namespace)"
  exec unshare --user --map-root-user "${namespaces[@]}" \
    bash -c "$inner" walk "$root" "$walker" "${files[@]}" "$@"
fi

echo "warning: cannot make private namespaces here (unshare needs root or" \
  "unprivileged user namespaces): walking on this machine's own network" \
  "and files" >&2
for port in 2379 2380 3000 3001 3002 3003 4444 4445 4446 4447 8080 9000; do
  if port_in_use "$port"; then
    die "port $port is in use: the walk needs 2379-2380, 3000-3003," \
      "4444-4447, 8080 and 9000 free" \
      "(stop what runs there, or run this as root)"
  fi
done
if compgen -G "certs/*.crt" >/dev/null; then
  die "certs/ holds certificates, and the walk starts from a fresh clone:" \
    "move them away (the walk makes new ones), or run this as root"
fi
for leftover in /tmp/lab-other /tmp/file.bin; do
  [[ ! -e "$leftover" ]] ||
    die "$leftover is left from an earlier walk: remove it, or run as root"
done
status=0
for file in "${files[@]}"; do
  "$walker" "$file" "$@" || status=$?
  (( status != 130 )) || break
done
exit "$status"
