#!/usr/bin/env bash
# Starts the lab's three dummy backends (127.0.0.1:4444, 4445, 4446) in the
# background, and stops them again.
#
#   scripts/spawn-backends.sh              start them (same as `start`)
#   scripts/spawn-backends.sh start [FLAGS] start, passing FLAGS to
#                                          dummy-servers (see its --help)
#   scripts/spawn-backends.sh status       say whether they run
#   scripts/spawn-backends.sh stop         stop exactly the process started
#
# The pid and the log live in .lab-run/ at the root of the repository
# (git-ignored). Starting twice does not start a second set.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib/lab.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/lab.sh"

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
run_dir="$root/.lab-run"
pid_file="$run_dir/backends.pid"
log_file="$run_dir/backends.log"
target_dir=${CARGO_TARGET_DIR:-$root/target}
# cargo reads a relative CARGO_TARGET_DIR from the root, where it builds.
[[ "$target_dir" == /* ]] || target_dir="$root/$target_dir"
binary="$target_dir/debug/dummy-servers"

# The pid in the pid file, if that process is still our dummy-servers (a
# pid can be reused by an unrelated process after ours exits).
running_pid() {
  [[ -f "$pid_file" ]] || return 1
  local pid
  pid=$(<"$pid_file")
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  [[ -r "/proc/$pid/cmdline" ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q dummy-servers || return 1
  echo "$pid"
}

listening_lines() {
  grep '^listening on ' "$log_file" 2>/dev/null || true
}

# How many backends the flags ask for: one per port in --ports (3 without).
expected_backends() {
  local port_list="4444,4445,4446"
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --ports) port_list="${2:-}"; shift ;;
      --ports=*) port_list="${1#--ports=}" ;;
    esac
    shift
  done
  tr "," "\n" <<<"$port_list" | grep -c .
}

cmd_start() {
  local pid
  if pid=$(running_pid); then
    echo "backends already running (pid $pid):"
    listening_lines
    echo "stop them with: scripts/spawn-backends.sh stop"
    return 0
  fi
  echo "building dummy-servers..."
  (cd "$root" && cargo build --quiet -p dummy-servers)
  mkdir -p "$run_dir"
  # setsid: the backends outlive this script and ignore the terminal's
  # Ctrl-C, until `stop`.
  setsid "$binary" "$@" >"$log_file" 2>&1 </dev/null &
  pid=$!
  echo "$pid" >"$pid_file"

  local want
  want=$(expected_backends "$@")
  # Wait (at most 30 s) for every backend's "listening on" line: each is
  # printed after its port is bound, so a connection is then accepted.
  local tries=0
  while (( $(listening_lines | wc -l) < want )); do
    if ! kill -0 "$pid" 2>/dev/null; then
      rm -f "$pid_file"
      echo "error: dummy-servers exited; its log ($log_file) says:" >&2
      cat "$log_file" >&2
      return 1
    fi
    if (( ++tries > 300 )); then
      kill "$pid" 2>/dev/null || true
      rm -f "$pid_file"
      echo "error: backends not listening after 30 s; see $log_file" >&2
      return 1
    fi
    sleep 0.1
  done
  echo "backends running (pid $pid):"
  listening_lines
  echo "log: ${log_file#"$root"/}   stop: scripts/spawn-backends.sh stop"
}

cmd_stop() {
  local pid
  if ! pid=$(running_pid); then
    rm -f "$pid_file"
    echo "backends are not running"
    return 0
  fi
  # It may have exited since running_pid looked.
  kill "$pid" 2>/dev/null || true
  local tries=0
  while kill -0 "$pid" 2>/dev/null; do
    if (( ++tries > 100 )); then
      kill -9 "$pid" 2>/dev/null || true
      break
    fi
    sleep 0.1
  done
  rm -f "$pid_file"
  echo "backends stopped (pid $pid)"
}

cmd_status() {
  local pid
  if pid=$(running_pid); then
    echo "backends running (pid $pid):"
    listening_lines
  else
    echo "backends are not running"
    return 3
  fi
}

subcommand="${1:-start}"
[[ $# -gt 0 ]] && shift
case "$subcommand" in
  start) cmd_start "$@" ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  -h|--help|help) print_header "${BASH_SOURCE[0]}" ;;
  *)
    echo "usage: scripts/spawn-backends.sh [start [FLAGS]|stop|status]" >&2
    exit 2
    ;;
esac
