#!/usr/bin/env bash
# Runs every step in turn against fresh dummy backends and prints one table:
# what each step teaches, who answered, what failed, how fast, and where
# three requests on one kept-alive connection went.
#
#   scripts/compare.sh                  300 requests per step
#   scripts/compare.sh --requests 30    fewer, faster
#
# Options:
#   --requests N         requests per step, each on a new connection
#                        (default 300; a multiple of 3 shows round robin
#                        exactly even)
#   --seed N             the seed step 05 picks with (default 7), so the
#                        table is the same on every run
#   --port N             where the layer-4 steps listen (default 3000)
#   --http-port N        where step 09 listens (default 8080)
#   --backend-ports A,B,C  the backends' ports (default 4444,4445,4446)
#                        Any port given as 0 is picked by the system.
#   --tsv FILE           also write the table, tab-separated, to FILE
#   -h, --help           this text
# LAB_PORT, LAB_HTTP_PORT, LAB_BACKEND_PORTS and LAB_REQUESTS set the same
# defaults.
#
# Each step gets its own run of target/debug/dummy-servers (plain or TLS as
# it needs), never scripts/spawn-backends.sh's, so call counts start at
# zero and backends you started are left alone: if a port is taken, it
# says so and starts nothing. Everything it starts is stopped by pid, also
# on Ctrl-C or failure. Traffic goes to 127.0.0.1 only. Needs curl.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
target_dir=${CARGO_TARGET_DIR:-$root/target}
[[ "$target_dir" == /* ]] || target_dir="$root/$target_dir"
bin_dir="$target_dir/debug"
certs_dir="$root/certs"

usage() {
  awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' \
    "${BASH_SOURCE[0]}"
}

die() {
  echo "error: $*" >&2
  exit 1
}

# ---------------------------------------------------------------------------
# The steps. The rows are the steps this table knows and any other folder
# in steps/; a step folder this table does not know yet is run as a plain
# layer-4 balancer over three plain backends.

known_steps=(01 02 03 04 05 06 07 08 09)

# Sets, for step folder $1: teaches, layer (4 or 7), front (http or https),
# backend_tls (one word per backend: plain or tls; empty for none).
step_spec() {
  teaches="a load balancer"
  layer=4
  front=http
  backend_tls=(plain plain plain)
  case "$1" in
    01*)
      teaches="listen; answer pong itself"
      backend_tls=()
      ;;
    02*)
      teaches="forward to one backend"
      backend_tls=(plain)
      ;;
    03*)
      teaches="the same, with a dial helper"
      backend_tls=(plain)
      ;;
    04*) teaches="round robin per connection" ;;
    05*) teaches="random per connection" ;;
    06*)
      teaches="TLS at the front"
      front=https
      ;;
    07*)
      teaches="TLS to the backends too"
      front=https
      backend_tls=(tls tls tls)
      ;;
    08*)
      teaches="plain + TLS backends, TLS front"
      front=https
      backend_tls=(plain tls tls)
      ;;
    09*)
      teaches="HTTP proxy, round robin per request"
      layer=7
      ;;
  esac
}

# The step's command line, one word per line: $1 = step folder, $2 =
# listen address, then backend addresses.
step_command() {
  local step=$1 listen=$2
  shift 2
  local backends
  backends=$(IFS=,; echo "$*")
  local command=("$bin_dir/$step" --listen "$listen")
  case "$step" in
    01-*) ;;
    02-*|03-*) command+=(--backend "$backends") ;;
    05-*) command+=(--backends "$backends" --seed "$seed") ;;
    08-*)
      # Each server is HOST:PORT (plain) or tls://HOST:PORT.
      local servers=() addr i=0
      for addr in "$@"; do
        if [[ "${backend_tls[i++]}" == tls ]]; then
          servers+=("tls://$addr")
        else
          servers+=("$addr")
        fi
      done
      command+=(--backends "$(IFS=,; echo "${servers[*]}")")
      [[ "$front" == https ]] && command+=(--tls-front)
      ;;
    *) command+=(--backends "$backends") ;;
  esac
  printf '%s\n' "${command[@]}"
}

# ---------------------------------------------------------------------------
# Processes: started in the background with their output in $work, stopped
# by pid.

pids=()
work=$(mktemp -d "${TMPDIR:-/tmp}/lb-lab-compare.XXXXXX")

# True while process $1 runs (a finished child not yet reaped is a zombie:
# kill -0 still finds it).
alive() {
  local state
  kill -0 "$1" 2>/dev/null || return 1
  read -r _ _ state _ <"/proc/$1/stat" 2>/dev/null || return 1
  [[ "$state" != Z ]]
}

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
}

on_exit() {
  local status=$?
  trap - EXIT INT TERM
  stop_all
  rm -rf "$work"
  exit "$status"
}
trap on_exit EXIT
# A command that fails unexpectedly (set -e) says where, before stopping.
set -E
trap 'echo "error: ${BASH_SOURCE[0]} line $LINENO failed" >&2' ERR
trap 'echo; echo "interrupted" >&2; exit 130' INT
trap 'exit 143' TERM

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
}

# Waits (at most 30 s) until the process started last has printed $2
# "listening on ADDR" lines, and puts the addresses in `listening`. On
# failure sets `start_error` and returns 1. $3 is the option that changes
# its ports, for the message when one is taken.
wait_listening() {
  local name=$1 want=$2 option=$3 pid=${pids[-1]} tries=0
  local out="$work/$name.out" log="$work/$name.log"
  start_error=""
  while (( $(grep -c '^listening on ' "$out" || true) < want )); do
    if ! alive "$pid"; then
      local port
      port=$(grep -o 'cannot listen on [^ ]*:[0-9]*' "$log" | head -n 1 |
        sed 's/.*://' || true)
      if [[ -n "$port" ]] && grep -q 'in use' "$log"; then
        start_error="port $port is in use: stop what runs there or pass $option"
      else
        start_error="$name exited: $(grep -m 1 . "$log" || echo 'no log')"
      fi
      return 1
    fi
    if (( ++tries > 300 )); then
      start_error="$name is not listening after 30 s"
      return 1
    fi
    sleep 0.1
  done
  mapfile -t listening < <(awk '/^listening on /{print $3}' "$out")
}

# Starts the backends and puts their addresses in `backend_addrs`: $1 =
# a name for their logs, $2 = comma-separated ports, then one word per
# port, plain or tls. Plain and TLS backends run as two dummy-servers
# processes, the second with --tls (its --tls-ports names ports, and a
# port 0 cannot be named). Returns 1, with `start_error`, on failure.
start_backends() {
  local name=$1 ports kinds=("${@:3}") plain=() tls=() i
  IFS=, read -r -a ports <<<"$2"
  for i in "${!kinds[@]}"; do
    if [[ "${kinds[$i]}" == tls ]]; then
      tls+=("${ports[$i]}")
    else
      plain+=("${ports[$i]}")
    fi
  done
  local plain_addrs=() tls_addrs=()
  if (( ${#plain[@]} > 0 )); then
    start "$name-backends" "$bin_dir/dummy-servers" \
      --ports "$(IFS=,; echo "${plain[*]}")"
    wait_listening "$name-backends" "${#plain[@]}" "--backend-ports A,B,C" ||
      return 1
    plain_addrs=("${listening[@]}")
  fi
  if (( ${#tls[@]} > 0 )); then
    start "$name-tls-backends" "$bin_dir/dummy-servers" --tls \
      --ports "$(IFS=,; echo "${tls[*]}")"
    wait_listening "$name-tls-backends" "${#tls[@]}" \
      "--backend-ports A,B,C" || return 1
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

# True if something accepts connections on 127.0.0.1:$1.
port_in_use() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# ---------------------------------------------------------------------------
# Arguments.

requests=${LAB_REQUESTS:-300}
seed=7
port=${LAB_PORT:-3000}
http_port=${LAB_HTTP_PORT:-8080}
backend_ports=${LAB_BACKEND_PORTS:-4444,4445,4446}
tsv=""
while (( $# > 0 )); do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --requests) requests=${2:?--requests needs a number}; shift ;;
    --requests=*) requests=${1#--requests=} ;;
    --seed) seed=${2:?--seed needs a number}; shift ;;
    --seed=*) seed=${1#--seed=} ;;
    --port) port=${2:?--port needs a number}; shift ;;
    --port=*) port=${1#--port=} ;;
    --http-port) http_port=${2:?--http-port needs a number}; shift ;;
    --http-port=*) http_port=${1#--http-port=} ;;
    --backend-ports) backend_ports=${2:?--backend-ports needs A,B,C}; shift ;;
    --backend-ports=*) backend_ports=${1#--backend-ports=} ;;
    --tsv) tsv=${2:?--tsv needs a file}; shift ;;
    --tsv=*) tsv=${1#--tsv=} ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
  shift
done

valid_port() {
  [[ "$1" =~ ^[0-9]+$ ]] && (( $1 <= 65535 ))
}
valid_port "$port" || die "--port takes 0-65535"
valid_port "$http_port" || die "--http-port takes 0-65535"
if ! [[ "$requests" =~ ^[0-9]+$ ]] || (( requests < 1 || requests > 100000 ))
then
  die "--requests takes a number from 1 to 100000"
fi
[[ "$seed" =~ ^[0-9]+$ ]] || die "--seed takes a number"
IFS=, read -r -a ports <<<"$backend_ports"
(( ${#ports[@]} == 3 )) || die "--backend-ports takes three ports, A,B,C"
for p in "${ports[@]}"; do
  valid_port "$p" || die "--backend-ports takes ports 0-65535"
done
command -v curl >/dev/null || die "curl is needed (apt-get install curl)"

# Fail before building if a fixed port is taken; ports given as 0 are
# picked by the system when binding.
if (( port != 0 )) && port_in_use "$port"; then
  die "port $port is in use: stop what runs there or pass --port N"
fi
if (( http_port != 0 )) && port_in_use "$http_port"; then
  die "port $http_port is in use: stop what runs there or pass --http-port N"
fi
for p in "${ports[@]}"; do
  if (( p != 0 )) && port_in_use "$p"; then
    die "port $p is in use: stop what runs there (the lab's own backends?" \
      "scripts/spawn-backends.sh stop) or pass --backend-ports A,B,C"
  fi
done

# ---------------------------------------------------------------------------
# The rows: every step this table knows, and every step folder.

rows=()
declare -A folder=()
for dir in "$root"/steps/[0-9][0-9]-*/; do
  [[ -d "$dir" ]] || continue
  name=$(basename "$dir")
  folder[${name%%-*}]=$name
done
mapfile -t rows < <(printf '%s\n' "${known_steps[@]}" "${!folder[@]}" |
  sort -u)

bins=(--bin dummy-servers)
needs_tls=false
for number in "${rows[@]}"; do
  [[ -n "${folder[$number]:-}" ]] || continue
  bins+=(--bin "${folder[$number]}")
  step_spec "${folder[$number]}"
  [[ "$front" == https ]] && needs_tls=true
  for kind in "${backend_tls[@]}"; do
    [[ "$kind" == tls ]] && needs_tls=true
  done
done

echo "== building the steps and dummy-servers (the first build takes a while)" >&2
(cd "$root" && cargo build --quiet "${bins[@]}")
if $needs_tls && [[ ! -f "$certs_dir/ca.crt" ]]; then
  echo "== making the lab certificates (scripts/gen-certs.sh)" >&2
  [[ -x "$root/scripts/gen-certs.sh" ]] ||
    die "the TLS steps need certificates, and scripts/gen-certs.sh is missing"
  "$root/scripts/gen-certs.sh" >&2
fi

# ---------------------------------------------------------------------------
# Measuring one step.

# Parses curl's output in $1 (each answer followed by a line
# "[curl CONNECTS CODE EXIT]") into `answers` (backend-4444, pong, or
# failed, one per request) and `connections` (how many curl opened).
parse_answers() {
  answers=()
  connections=0
  local line first=""
  while IFS= read -r line; do
    if [[ "$line" =~ ^\[curl\ ([0-9]+)\ ([0-9]+)\ ([0-9]+)\]$ ]]; then
      connections=$(( connections + BASH_REMATCH[1] ))
      if [[ "${BASH_REMATCH[2]}" != 200 || "${BASH_REMATCH[3]}" != 0 ]]; then
        answers+=(failed)
      elif [[ "$first" =~ ^(backend-[0-9]+)\ at\  ]]; then
        answers+=("${BASH_REMATCH[1]}")
      elif [[ "$first" == pong ]]; then
        answers+=(pong)
      else
        answers+=(failed)
      fi
      first=""
    elif [[ -z "$first" && -n "$line" ]]; then
      first=$line
    fi
  done <"$1"
}

# Runs step folder $1 and measures it; sets the row's fields.
measure() {
  local step=$1
  step_spec "$step"
  row_error=""
  local listen_port=$port
  (( layer == 7 )) && listen_port=$http_port

  local backend_addrs=() count=${#backend_tls[@]}
  if (( count > 0 )); then
    if ! start_backends "$step" "$(IFS=,; echo "${ports[*]:0:count}")" \
      "${backend_tls[@]}"; then
      row_error=$start_error
      return
    fi
  fi
  local command
  mapfile -t command < <(step_command "$step" "127.0.0.1:$listen_port" \
    "${backend_addrs[@]}")
  start "$step" "${command[@]}"
  local option="--port N"
  (( layer == 7 )) && option="--http-port N"
  if ! wait_listening "$step" 1 "$option"; then
    row_error=$start_error
    return
  fi
  local base="$front://${listening[0]}"
  local curl_args=(--silent --max-time 10
    --write-out '\n[curl %{num_connects} %{http_code} %{exitcode}]\n')
  [[ "$front" == https ]] && curl_args+=(--cacert "$certs_dir/ca.crt")

  # N requests, each on its own connection: "Connection: close" makes the
  # server hang up after answering, so curl dials again for the next URL.
  # curl expands [1-N] into N URLs itself.
  local began=$EPOCHREALTIME ended i
  curl "${curl_args[@]}" --header 'Connection: close' \
    "$base/request/[1-$requests]" >"$work/answers" 2>/dev/null || true
  ended=$EPOCHREALTIME
  parse_answers "$work/answers"
  # Backends by position: column i counts backend-<port of backend i>.
  counts=()
  local who n
  for (( i = 0; i < 3; i++ )); do
    if (( i < count )); then
      who="backend-${backend_addrs[$i]##*:}"
      n=0
      for answer in "${answers[@]}"; do
        [[ "$answer" == "$who" ]] && n=$(( n + 1 ))
      done
      counts+=("$n")
    else
      counts+=("-")
    fi
  done
  failed=0
  for answer in "${answers[@]}"; do
    [[ "$answer" == failed ]] && failed=$(( failed + 1 ))
  done
  # Requests curl never reported on count as failed too.
  failed=$(( failed + requests - ${#answers[@]} ))
  # Microseconds from EPOCHREALTIME ("seconds.micros", locale-proof).
  local micros=$(( ${ended/[.,]/} - ${began/[.,]/} ))
  (( micros > 0 )) || micros=1
  rate=$(( requests * 1000000 / micros ))

  # Three requests on one kept-alive connection.
  curl "${curl_args[@]}" "$base/kept/1" "$base/kept/2" "$base/kept/3" \
    >"$work/kept" 2>/dev/null || true
  parse_answers "$work/kept"
  # Named as the columns are: 4444 (or b1 for a port the system picked).
  spread=""
  for answer in "${answers[@]}"; do
    for (( i = 0; i < count; i++ )); do
      if [[ "$answer" == "backend-${backend_addrs[$i]##*:}" ]]; then
        answer=${columns[$i]}
      fi
    done
    spread+=" $answer"
  done
  spread=${spread# }
  (( connections != 1 )) && spread+=" ($connections connections)"
  return 0
}

# ---------------------------------------------------------------------------
# The table.

columns=()
for p in "${ports[@]}"; do
  if (( p == 0 )); then
    columns+=("b$(( ${#columns[@]} + 1 ))")
  else
    columns+=("$p")
  fi
done

format='%-18s %-36s %5s %5s %5s %5s %6s %6s  %s\n'
echo "Every step, side by side: $requests requests each, one after another," \
  "each on a new"
echo "connection; then 3 requests on one kept-alive connection" \
  "(curl URL URL URL)."
echo "req/s: a debug build and a single curl, for comparing the steps with" \
  "each other;"
echo "it is not a benchmark (scripts/bench.sh measures release builds)."
echo
# shellcheck disable=SC2059 # the format is ours, above
printf "$format" step teaches sent "${columns[@]}" failed req/s \
  "kept-alive"
[[ -n "$tsv" ]] && printf 'step\tsent\t%s\t%s\t%s\tfailed\treq/s\tkept-alive\n' \
  "${columns[@]}" >"$tsv"

began_all=${EPOCHREALTIME/[.,]/}
problems=0
for number in "${rows[@]}"; do
  step=${folder[$number]:-}
  if [[ -z "$step" ]]; then
    # shellcheck disable=SC2059
    printf "$format" "$number" "(not in steps/ yet)" - - - - - - -
    [[ -n "$tsv" ]] && printf '%s\tmissing\n' "$number" >>"$tsv"
    continue
  fi
  measure "$step"
  stop_all
  if [[ -n "$row_error" ]]; then
    # shellcheck disable=SC2059
    printf "$format" "$step" "$teaches" - - - - - - "did not run: $row_error"
    [[ -n "$tsv" ]] && printf '%s\terror\t%s\n' "$step" "$row_error" >>"$tsv"
    problems=$(( problems + 1 ))
    continue
  fi
  # shellcheck disable=SC2059
  printf "$format" "$step" "$teaches" "$requests" "${counts[@]}" "$failed" \
    "$rate" "$spread"
  [[ -n "$tsv" ]] && printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$step" \
    "$requests" "${counts[@]}" "$failed" "$rate" "$spread" >>"$tsv"
done
took=$(( ${EPOCHREALTIME/[.,]/} - began_all ))
echo
echo "sent: requests, each on a new connection. ${columns[*]}: answers from" \
  "each backend"
echo "  (- for a backend the step does not have; 01 answers \"pong\"" \
  "itself)."
echo "failed: no answer, or not 200 OK."
echo "kept-alive: who answered 3 requests sent on one connection."
printf 'took %d.%d s\n' "$(( took / 1000000 ))" "$(( took / 100000 % 10 ))"
(( problems == 0 )) || die "$problems step(s) did not run"
