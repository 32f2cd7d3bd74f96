# shellcheck shell=bash
# What the scripts share: the lab's paths, the
# steps as Cargo records them (what each teaches, its layer, TLS at the
# front and per backend, its command line), building, certificates, port
# checks, and processes started in the background and stopped by pid.
#
# Sourced, not run:
#   # shellcheck source=lib/lab.sh
#   source "$(dirname "${BASH_SOURCE[0]}")/lib/lab.sh"
# Sourcing only defines functions; lab_init starts using them. They work
# under set -euo pipefail, and talk through the globals each one names.

# ---------------------------------------------------------------------------
# Setting up.

# Sets root (the clone) and target_dir (Cargo's, absolute: cargo reads a
# relative CARGO_TARGET_DIR from the root, where it builds).
lab_paths() {
  root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
  target_dir=${CARGO_TARGET_DIR:-$root/target}
  [[ "$target_dir" == /* ]] || target_dir="$root/$target_dir"
}

# Sets the paths (root, target_dir, bin_dir, certs_dir), makes `work`, a
# new folder lb-lab-$1.XXXXXX in $TMPDIR, and sets the traps: on exit,
# also on failure, on Ctrl-C (status 130) and on TERM (143), everything
# started is stopped by pid and `work` removed. A command that fails
# unexpectedly (set -e) first says where. With --report-pids as $2, a run
# that fails also says which pids it stopped: "stopped what the $1 started
# (pids ...)".
lab_init() {
  lab_paths
  bin_dir="$target_dir/debug"
  certs_dir="$root/certs"

  pids=()
  names=()
  lab_script=$1
  lab_report_pids=false
  [[ "${2:-}" == --report-pids ]] && lab_report_pids=true
  work=$(mktemp -d "${TMPDIR:-/tmp}/lb-lab-$1.XXXXXX")
  trap lab_on_exit EXIT
  set -E
  trap 'echo "error: ${BASH_SOURCE[0]} line $LINENO failed" >&2' ERR
  trap 'echo; echo "interrupted" >&2; exit 130' INT
  trap 'exit 143' TERM
}

lab_on_exit() {
  local status=$?
  local stopped=("${pids[@]}")
  # A second Ctrl-C must not cut the clean-up short and leave processes
  # behind: it comes often, from an impatient hand, or from `timeout`,
  # which passes a signal to its child and then to its whole group. The
  # clean-up is bounded (stop_all waits at most 5 s a process).
  trap - EXIT
  trap '' INT TERM
  stop_all
  if $lab_report_pids && (( status != 0 && ${#stopped[@]} > 0 )); then
    echo "stopped what the $lab_script started (pids ${stopped[*]})" >&2
  fi
  rm -rf "$work"
  exit "$status"
}

# Prints the comment block at the top of script $1, without the #s: its
# --help.
print_header() {
  awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$1"
}

die() {
  echo "error: $*" >&2
  exit 1
}

# Installs Debian packages with apt-get (as root; `apt-get update` first),
# or says which are missing and exits 1 where it cannot. Without
# --no-recommends apt's recommended packages come too (Chromium's fonts).
#   install_packages [--no-recommends] PACKAGE...
install_packages() {
  local flags=()
  if [[ "${1:-}" == --no-recommends ]]; then
    flags+=(--no-install-recommends)
    shift
  fi
  (( $# > 0 )) || return 0
  if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null; then
    die "install $* (needs apt-get as root)"
  fi
  echo "== installing $*"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${flags[@]}" "$@" \
    >/dev/null
}

# What lb's `etcd` feature needs: protoc to build it (Debian's
# protobuf-compiler, with the well-known types' .proto files that etcd's
# own import, in libprotobuf-dev: only a recommendation of protoc's, so
# named here), etcd to run against, and etcdctl (etcd-client) to change
# its keys. Under systemd the etcd-server package starts its own
# etcd on :2379; the tests and the tutorial run their own, so it is
# stopped.
#   install_etcd
install_etcd() {
  local needed=()
  command -v protoc >/dev/null || needed+=(protobuf-compiler)
  [[ -e /usr/include/google/protobuf/descriptor.proto ]] \
    || needed+=(libprotobuf-dev)
  command -v etcd >/dev/null || needed+=(etcd-server)
  command -v etcdctl >/dev/null || needed+=(etcd-client)
  (( ${#needed[@]} > 0 )) || return 0
  install_packages --no-recommends "${needed[@]}"
  if [[ -d /run/systemd/system ]] && systemctl is-active --quiet etcd; then
    echo "== the package started etcd.service on :2379; stopping it"
    systemctl stop etcd
  fi
}

# ---------------------------------------------------------------------------
# The steps: every folder in steps/, read from Cargo (lab-tools' lab-steps,
# over `cargo metadata`) with what [package.metadata.lab] of its
# Cargo.toml says: the step it builds on, and how to run it.

# Prints one line per step named (every step if none): folder, parent,
# binary, layer, front, backends, teaches, flags, tab-separated. A name
# that is no step: its error on stderr, status 2.
lab_steps() {
  (cd "$root" && cargo run --quiet -p lab-tools --bin lab-steps -- "$@")
}

# Sets, from a line of lab_steps: step (the folder), parent, step_bin (its
# binary), layer (4 or
# 7), front (http or https), backend_tls (one word per backend: plain or
# tls; empty for none), teaches (a few words), and step_args (its flags,
# with {listen}, {backends}, {servers} and {seed} to fill in).
# shellcheck disable=SC2034 # the globals are for the scripts
step_spec() {
  local backends args
  IFS=$'\t' read -r step parent step_bin layer front backends teaches args \
    <<<"$1"
  backend_tls=()
  [[ "$backends" == - ]] || IFS=, read -r -a backend_tls <<<"$backends"
  read -r -a step_args <<<"$args"
}

# True if the step step_spec described last needs the lab certificates:
# TLS at the front or to any backend.
step_needs_tls() {
  [[ "$front" == https || " ${backend_tls[*]} " == *" tls "* ]]
}

# The step's command line, one word per line: its binary and its flags
# with the placeholders filled in. $1 = listen address, then the backend
# addresses; step_spec must have described the step, and `seed` be set.
step_command() {
  local listen=$1
  shift
  local backends servers=() addr i=0 arg
  backends=$(IFS=,; echo "$*")
  for addr in "$@"; do
    if [[ "${backend_tls[i++]}" == tls ]]; then
      servers+=("tls://$addr")
    else
      servers+=("$addr")
    fi
  done
  echo "$bin_dir/$step_bin"
  for arg in "${step_args[@]}"; do
    arg=${arg//\{listen\}/$listen}
    arg=${arg//\{backends\}/$backends}
    arg=${arg//\{servers\}/$(IFS=,; echo "${servers[*]}")}
    echo "${arg//\{seed\}/$seed}"
  done
}

# ---------------------------------------------------------------------------
# Before starting: ports, binaries, certificates.

# True if something accepts connections on 127.0.0.1:$1.
port_in_use() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Stops the script if port $1 is fixed (not 0) and taken; $2 is the option
# that changes it. Ports given as 0 are picked by the system when binding.
require_free_port() {
  if (( $1 != 0 )) && port_in_use "$1"; then
    die "port $1 is in use: stop what runs there or pass $2"
  fi
}

# The same for the backends' ports, $@.
require_free_backend_ports() {
  local p
  for p in "$@"; do
    if (( p != 0 )) && port_in_use "$p"; then
      die "port $p is in use: stop what runs there (the lab's own backends?" \
        "scripts/spawn-backends.sh stop) or pass --backend-ports A,B,C"
    fi
  done
}

require_curl() {
  command -v curl >/dev/null || die "curl is needed (apt-get install curl)"
}

# Builds the debug binaries $@ (cargo build --bin each).
build_bins() {
  local args=() bin
  for bin in "$@"; do
    args+=(--bin "$bin")
  done
  (cd "$root" && cargo build --quiet "${args[@]}")
}

# Makes the lab certificates (scripts/gen-certs.sh) unless certs/ca.crt
# exists. $1 says who needs them, for the error if gen-certs.sh is missing:
# "$1, and scripts/gen-certs.sh is missing".
make_certs() {
  [[ ! -f "$certs_dir/ca.crt" ]] || return 0
  echo "== making the lab certificates (scripts/gen-certs.sh)"
  [[ -x "$root/scripts/gen-certs.sh" ]] ||
    die "$1, and scripts/gen-certs.sh is missing"
  "$root/scripts/gen-certs.sh"
}

# ---------------------------------------------------------------------------
# Processes: started in the background with their output in $work, stopped
# by pid. `pids` and `names` list those running, in the order started.

# True while process $1 runs (a finished child not yet reaped is a zombie:
# kill -0 still finds it).
alive() {
  local state
  kill -0 "$1" 2>/dev/null || return 1
  # The error redirection first: it must be in place before the file is
  # opened, and a process that exits between the two lines has no file.
  read -r _ _ state _ 2>/dev/null <"/proc/$1/stat" || return 1
  [[ "$state" != Z ]]
}

# Stops every process started (TERM, then KILL after 5 s) and forgets them.
stop_all() {
  local pid tries
  for pid in "${pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    tries=0
    while alive "$pid" && (( ++tries <= 50 )); do
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  pids=()
  names=()
}

# Runs the command in $2.. in the background as process "$1": stdout to
# $work/$1.out, stderr to $work/$1.log.
start() {
  local name=$1
  shift
  # Made here, not by the child's redirection, so that reading them
  # never races with its start.
  : >"$work/$name.out"
  : >"$work/$name.log"
  "$@" >"$work/$name.out" 2>"$work/$name.log" </dev/null &
  pids+=("$!")
  names+=("$name")
}

# A port number as the scripts take it: 0-65535, no leading zero (bash
# would read 08 as a bad octal number).
valid_port() {
  [[ "$1" =~ ^(0|[1-9][0-9]{0,4})$ ]] && (( $1 <= 65535 ))
}

# Waits (at most 30 s) until the process started last, "$1", has printed
# $2 "listening on ADDR" lines, and puts the addresses in `listening`. $3
# is the option that changes its ports, for the message when one is
# taken. If it does not listen, returns 1 and sets `start_failed` (its
# name), `start_failure` (in-use, exited or silent) and `start_error` (why,
# in a line).
# shellcheck disable=SC2034 # the start_ globals are for the scripts
wait_listening() {
  local name=$1 want=$2 option=$3 pid=${pids[-1]} tries=0
  local out="$work/$name.out" log="$work/$name.log"
  start_failed=$name
  start_failure=""
  start_error=""
  while (( $(grep -c '^listening on ' "$out" || true) < want )); do
    if ! alive "$pid"; then
      local port
      # The binaries say "cannot listen on 127.0.0.1:3000: Address
      # already in use": keep the digits after the last colon of the address.
      port=$(grep -o 'cannot listen on [^ ]*' "$log" | head -n 1 |
        sed 's/:$//; s/.*://' || true)
      if [[ -n "$port" ]] && grep -q 'in use' "$log"; then
        start_failure=in-use
        start_error="port $port is in use: stop what runs there or pass $option"
      else
        start_failure=exited
        start_error="$name exited: $(grep -m 1 . "$log" || echo 'no log')"
      fi
      return 1
    fi
    if (( ++tries > 300 )); then
      start_failure=silent
      start_error="$name is not listening after 30 s"
      return 1
    fi
    sleep 0.1
  done
  mapfile -t listening < <(awk '/^listening on /{print $3}' "$out")
}

# Starts the backends and puts their addresses in `backend_addrs`: $1 and
# $2 = names for the plain and the TLS backends' process, $3 =
# comma-separated ports, then one word per port, plain or tls. Plain and
# TLS backends run as two dummy-servers processes, the second with --tls
# (its --tls-ports names ports, and a port 0 cannot be named). Returns 1,
# as wait_listening does, if one does not start.
start_backends() {
  local plain_name=$1 tls_name=$2 ports kinds=("${@:4}") plain=() tls=() i
  IFS=, read -r -a ports <<<"$3"
  for i in "${!kinds[@]}"; do
    if [[ "${kinds[$i]}" == tls ]]; then
      tls+=("${ports[$i]}")
    else
      plain+=("${ports[$i]}")
    fi
  done
  local plain_addrs=() tls_addrs=()
  if (( ${#plain[@]} > 0 )); then
    start "$plain_name" "$bin_dir/dummy-servers" \
      --ports "$(IFS=,; echo "${plain[*]}")"
    wait_listening "$plain_name" "${#plain[@]}" "--backend-ports A,B,C" ||
      return 1
    plain_addrs=("${listening[@]}")
  fi
  if (( ${#tls[@]} > 0 )); then
    start "$tls_name" "$bin_dir/dummy-servers" --tls \
      --ports "$(IFS=,; echo "${tls[*]}")"
    wait_listening "$tls_name" "${#tls[@]}" "--backend-ports A,B,C" ||
      return 1
    tls_addrs=("${listening[@]}")
  fi
  backend_addrs=()
  local p=0 t=0
  for i in "${!kinds[@]}"; do
    if [[ "${kinds[$i]}" == tls ]]; then
      backend_addrs+=("${tls_addrs[t++]}")
    else
      backend_addrs+=("${plain_addrs[p++]}")
    fi
  done
}
