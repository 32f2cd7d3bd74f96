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

# shellcheck source-path=SCRIPTDIR source=lib/lab.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/lab.sh"
lab_init compare

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
    -h|--help) print_header "${BASH_SOURCE[0]}"; exit 0 ;;
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
require_curl

# Fail before building if a fixed port is taken.
require_free_port "$port" "--port N"
require_free_port "$http_port" "--http-port N"
require_free_backend_ports "${ports[@]}"

# ---------------------------------------------------------------------------
# The rows: every step, as Cargo records them (lab_steps).

# shellcheck disable=SC2119 # every step: no names
mapfile -t rows < <(lab_steps)
(( ${#rows[@]} > 0 )) || die "no steps found in $root/steps"

bins=(dummy-servers)
needs_tls=false
for row in "${rows[@]}"; do
  step_spec "$row"
  bins+=("$step_bin")
  step_needs_tls && needs_tls=true
done

echo "== building the steps and dummy-servers (the first build takes a while)" >&2
build_bins "${bins[@]}"
if $needs_tls; then
  make_certs "the TLS steps need certificates" >&2
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

# Runs the step of lab_steps line $1 and measures it; sets the row's
# fields.
measure() {
  step_spec "$1"
  row_error=""
  local listen_port=$port
  (( layer == 7 )) && listen_port=$http_port

  local backend_addrs=() count=${#backend_tls[@]}
  if (( count > 0 )); then
    if ! start_backends "$step-backends" "$step-tls-backends" \
      "$(IFS=,; echo "${ports[*]:0:count}")" "${backend_tls[@]}"; then
      row_error=$start_error
      return
    fi
  fi
  local command
  mapfile -t command < <(step_command "127.0.0.1:$listen_port" \
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

format='%-18s %-4s %-36s %5s %5s %5s %5s %6s %6s  %s\n'
echo "Every step, side by side: $requests requests each, one after another," \
  "each on a new"
echo "connection; then 3 requests on one kept-alive connection" \
  "(curl URL URL URL)."
echo "req/s: a debug build and a single curl, for comparing the steps with" \
  "each other;"
echo "it is not a benchmark (scripts/bench.sh measures release builds)."
echo
# shellcheck disable=SC2059 # the format is ours, above
printf "$format" step from teaches sent "${columns[@]}" failed req/s \
  "kept-alive"
[[ -n "$tsv" ]] && printf 'step\tsent\t%s\t%s\t%s\tfailed\treq/s\tkept-alive\n' \
  "${columns[@]}" >"$tsv"

began_all=${EPOCHREALTIME/[.,]/}
problems=0
for row in "${rows[@]}"; do
  measure "$row"
  stop_all
  from=${parent%%-*}
  [[ -n "$from" ]] || from=-
  if [[ -n "$row_error" ]]; then
    # shellcheck disable=SC2059
    printf "$format" "$step" "$from" "$teaches" - - - - - - \
      "did not run: $row_error"
    [[ -n "$tsv" ]] && printf '%s\terror\t%s\n' "$step" "$row_error" >>"$tsv"
    problems=$(( problems + 1 ))
    continue
  fi
  # shellcheck disable=SC2059
  printf "$format" "$step" "$from" "$teaches" "$requests" "${counts[@]}" \
    "$failed" "$rate" "$spread"
  [[ -n "$tsv" ]] && printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$step" \
    "$requests" "${counts[@]}" "$failed" "$rate" "$spread" >>"$tsv"
done
took=$(( ${EPOCHREALTIME/[.,]/} - began_all ))
echo
echo "from: the step it builds on (scripts/diff-steps.sh FROM STEP shows" \
  "the change)."
echo "sent: requests, each on a new connection. ${columns[*]}: answers from" \
  "each backend"
echo "  (- for a backend the step does not have; 01 answers \"pong\"" \
  "itself)."
echo "failed: no answer, or not 200 OK."
echo "kept-alive: who answered 3 requests sent on one connection."
printf 'took %d.%d s\n' "$(( took / 1000000 ))" "$(( took / 100000 % 10 ))"
(( problems == 0 )) || die "$problems step(s) did not run"
