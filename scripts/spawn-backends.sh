#!/usr/bin/env bash
# Starts the lab's three dummy backends (127.0.0.1:4444, 4445, 4446) in the
# background, stops them again, and makes one fail on purpose.
#
#   scripts/spawn-backends.sh                  start them (same as `start`)
#   scripts/spawn-backends.sh start [FLAGS]    start, passing FLAGS to
#                                              dummy-servers (see its --help);
#                                              a set running with other flags
#                                              is stopped and replaced
#   scripts/spawn-backends.sh restart [FLAGS]  stop them if they run, then
#                                              start with FLAGS
#   scripts/spawn-backends.sh fault PORT MODE  set the fault mode of the
#                                              backend on PORT (plain or TLS)
#   scripts/spawn-backends.sh fault PORT       show its fault mode
#   scripts/spawn-backends.sh status           say whether they run
#   scripts/spawn-backends.sh stop             stop exactly the process started
#
# FLAGS, for example: --tls (every backend over TLS), --tls-ports 4445,4446
# (those two over TLS), --ports 4444,4446 (two backends only),
# --proxy-ports 4444 (expects a PROXY header first, as behind lb's
# send_proxy; `curl --haproxy-protocol localhost:4444` sends one).
#
# Fault modes, one per backend, none at start (curl -X POST
# localhost:PORT/fault/MODE does the same as `fault PORT MODE`):
#   none         normal
#   unhealthy    /health answers 503, the rest as usual
#   stall        every request is read and never answered (/health too)
#   slow/MS      every answer waits MS milliseconds first
#   close        every connection is closed without an answer
#
# The pid and the log live in .lab-run/ at the root of the repository
# (git-ignored; LAB_RUN_DIR puts them elsewhere, for tests). There is never
# a second set: `start` says "already running" when the same flags run.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib/lab.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/lab.sh"

lab_paths
run_dir=${LAB_RUN_DIR:-$root/.lab-run}
pid_file="$run_dir/backends.pid"
log_file="$run_dir/backends.log"
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

die() {
  echo "error: $*" >&2
  exit 1
}

# The flags the running set was started with (pid $1), one per line: what
# follows the program's name in its command line.
running_flags() {
  local words=()
  [[ -r "/proc/$1/cmdline" ]] && mapfile -d '' -t words <"/proc/$1/cmdline"
  (( ${#words[@]} > 1 )) && printf '%s\n' "${words[@]:1}"
  return 0
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
  local pid replacing=false
  if pid=$(running_pid); then
    local flags=()
    mapfile -t flags < <(running_flags "$pid")
    if [[ "${flags[*]@Q}" == "${*@Q}" ]]; then
      echo "backends already running (pid $pid):"
      listening_lines
      echo "stop them with: scripts/spawn-backends.sh stop"
      return 0
    fi
    echo "backends were running with other flags (${flags[*]:-no flags});" \
      "restarting them"
    replacing=true
  fi
  echo "building dummy-servers..."
  (cd "$root" && cargo build --quiet -p dummy-servers)
  # Stopped only now, so the old set serves while the new one builds.
  if $replacing; then
    stop_backends "$pid"
  fi
  launch "$@"
}

# Starts dummy-servers with FLAGS and waits for every backend to listen.
launch() {
  local pid
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

cmd_restart() {
  local pid
  # Built before the old set stops, so no port is down during a build.
  echo "building dummy-servers..."
  (cd "$root" && cargo build --quiet -p dummy-servers)
  if pid=$(running_pid); then
    stop_backends "$pid"
    echo "backends stopped (pid $pid)"
  fi
  launch "$@"
}

# Stops our dummy-servers, pid $1 (running_pid checked it is ours): TERM,
# then KILL if it is still there after 10 s.
stop_backends() {
  local pid=$1 tries=0
  # It may have exited since running_pid looked.
  kill "$pid" 2>/dev/null || true
  while kill -0 "$pid" 2>/dev/null; do
    if (( ++tries > 100 )); then
      kill -9 "$pid" 2>/dev/null || true
      break
    fi
    sleep 0.1
  done
  rm -f "$pid_file"
}

cmd_stop() {
  local pid
  if ! pid=$(running_pid); then
    rm -f "$pid_file"
    echo "backends are not running"
    return 0
  fi
  stop_backends "$pid"
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

# Sets (or, without MODE, shows) the fault mode of the running backend on
# port PORT, over HTTP or HTTPS as that backend speaks.
cmd_fault() {
  local port=${1:-} mode=${2:-}
  if (( $# < 1 || $# > 2 )) || [[ ! "$port" =~ ^[0-9]+$ ]]; then
    echo "usage: scripts/spawn-backends.sh fault PORT [MODE]" >&2
    exit 2
  fi
  if [[ $# == 2 && ! "$mode" =~ ^[a-z]+(/[0-9]+)?$ ]]; then
    die "bad fault mode \"$mode\": one of none, unhealthy, stall, slow/MS, close"
  fi
  command -v curl >/dev/null || die "fault needs curl (apt-get install curl)"
  local pid
  pid=$(running_pid) ||
    die "backends are not running; start them: scripts/spawn-backends.sh"
  # "listening on 127.0.0.1:4445 (backend-4445, TLS)"
  local line
  line=$(listening_lines | grep -E ":$port \(backend-" | head -n 1) || true
  if [[ -z "$line" ]]; then
    local ports
    ports=$(listening_lines | grep -Eo ':[0-9]+ ' | tr -d ': ' | xargs)
    die "no backend of ours on port $port (they are on: $ports)"
  fi
  local addr=${line#listening on }
  addr=${addr%% *}
  local host=${addr%:*}
  case "$host" in
    0.0.0.0) host=127.0.0.1 ;;
    "[::]") host="[::1]" ;;
  esac
  # The URL names localhost, which the lab certificate is for, and
  # --connect-to sends it to the address the backend is bound to.
  local curl_args=(--silent --max-time 10 --connect-to "localhost:$port:$host:$port")
  local scheme=http
  if [[ "$line" == *", TLS)" ]]; then
    scheme=https
    local ca
    ca=$(ca_of "$pid")
    [[ -f "$ca" ]] ||
      die "cannot check the certificate of backend-$port: no CA at $ca"
    curl_args+=(--cacert "$ca")
  fi
  local url="$scheme://localhost:$port/fault"
  if [[ -n "$mode" ]]; then
    curl_args+=(--request POST)
    url+="/$mode"
  fi
  local answer rc=0
  answer=$(curl "${curl_args[@]}" --write-out '\n%{http_code}' "$url") ||
    rc=$?
  (( rc == 0 )) || die "no answer from backend-$port at $url (curl exit $rc)"
  # The answer's text (one line), then the status curl wrote after it.
  local status=${answer##*$'\n'}
  answer=${answer%$'\n'*}
  answer=${answer%$'\n'}
  [[ "$status" == 200 ]] || die "$answer"
  echo "$answer"
}

# The CA that signed the certificate of our dummy-servers (pid $1): the
# lab's, or with --cert FILE the ca.crt beside FILE, as
# scripts/gen-certs.sh --out DIR writes them.
ca_of() {
  local flags=() cert="" i
  mapfile -t flags < <(running_flags "$1")
  for (( i = 0; i < ${#flags[@]}; i++ )); do
    case "${flags[i]}" in
      --cert) cert=${flags[i + 1]:-} ;;
      --cert=*) cert=${flags[i]#--cert=} ;;
    esac
  done
  if [[ -z "$cert" ]]; then
    echo "$root/certs/ca.crt"
    return
  fi
  # A relative path is relative to where the backends were started.
  [[ "$cert" == /* ]] || cert="$(readlink "/proc/$1/cwd")/$cert"
  echo "$(dirname "$cert")/ca.crt"
}

subcommand="${1:-start}"
[[ $# -gt 0 ]] && shift
case "$subcommand" in
  start) cmd_start "$@" ;;
  restart) cmd_restart "$@" ;;
  fault) cmd_fault "$@" ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  -h|--help|help) print_header "${BASH_SOURCE[0]}" ;;
  *)
    echo "usage: scripts/spawn-backends.sh" \
      "[start [FLAGS]|restart [FLAGS]|fault PORT [MODE]|stop|status]" \
      "(see --help)" >&2
    exit 2
    ;;
esac
