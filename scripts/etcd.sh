#!/usr/bin/env bash
# Runs one etcd on 127.0.0.1:2379, in the foreground until Ctrl-C, for
# lb's [discovery] (the tutorial's "lb — More than one"). Its data lives
# in .lab-run/etcd-PORT, kept when it stops, so that etcd started again
# has its keys, as a real one would; its log goes to .lab-run/etcd-PORT.log.
# It prints "etcd listening on http://127.0.0.1:2379" once etcd serves.
#
#   scripts/etcd.sh                start it (port 2379, peers on 2380)
#   scripts/etcd.sh --fresh        the same, with the data of earlier runs removed
#   scripts/etcd.sh --port 23790   on another port (peers on the next one)
#   scripts/etcd.sh --help         this text
#
# It installs Debian's etcd-server, etcd-client (etcdctl), and
# protobuf-compiler and libprotobuf-dev (which `cargo build --features
# etcd` needs) with apt-get if they are missing (as root).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib/lab.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/lab.sh"

port=2379
fresh=false
while (( $# > 0 )); do
  case "$1" in
    -h|--help) print_header "${BASH_SOURCE[0]}"; exit 0 ;;
    --fresh) fresh=true; shift ;;
    --port)
      if [[ $# -lt 2 ]] || ! valid_port "$2" || (( $2 == 0 || $2 == 65535 )); then
        die "--port takes a port from 1 to 65534"
      fi
      port=$2
      shift 2
      ;;
    *) echo "error: unexpected argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done

install_etcd
lab_init etcd
run_dir=${LAB_RUN_DIR:-$root/.lab-run}
data="$run_dir/etcd-$port"
log="$run_dir/etcd-$port.log"
mkdir -p "$run_dir"
if $fresh; then
  rm -rf "$data"
fi
client="http://127.0.0.1:$port"
peer="http://127.0.0.1:$((port + 1))"
# As lib/lab.sh's `start`, but its log beside its data, where it stays.
: >"$log"
etcd --name lab --data-dir "$data" \
  --listen-client-urls "$client" --advertise-client-urls "$client" \
  --listen-peer-urls "$peer" --initial-advertise-peer-urls "$peer" \
  --initial-cluster "lab=$peer" >"$log" 2>&1 </dev/null &
pids+=("$!")
names+=(etcd)
# etcd says when it serves; bounded at 30 s, as the lab's other starts.
tries=0
until grep -q 'ready to serve client requests' "$log"; do
  if ! alive "${pids[-1]}"; then
    tail -n 5 "$log" >&2
    die "etcd stopped before it served (is port $port or $((port + 1)) taken?)"
  fi
  (( ++tries <= 300 )) || die "etcd did not serve within 30 s"
  sleep 0.1
done
echo "etcd listening on $client"
# Until Ctrl-C (the trap of lab_init stops etcd) or etcd ends by itself.
status=0
wait "${pids[-1]}" || status=$?
exit "$status"
