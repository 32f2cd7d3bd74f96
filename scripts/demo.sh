#!/usr/bin/env bash
# The lab in one command: builds what a step needs, makes the lab
# certificates if a TLS step needs them, starts the dummy backends and the
# step, sends a few requests through it with curl, shows which backend
# answered each and what it saw, and stops everything it started.
#
#   scripts/demo.sh                 the final step (08-final)
#   scripts/demo.sh 04              any step, by number or folder name
#   scripts/demo.sh 09 --keep-running   then leave it up for your own curl
#                                   commands, until Ctrl-C
#
# Options:
#   --port N             the balancer's port (default 3000, 8080 for 09);
#                        0 lets the system pick a free one
#   --backend-ports A,B,C  the backends' ports (default 4444,4445,4446);
#                        0 lets the system pick
#   --requests N         requests sent, each on a new connection (default 6)
#   --keep-running       after the demo, keep everything up until Ctrl-C
#   -h, --help           this text
# LAB_PORT, LAB_BACKEND_PORTS and LAB_REQUESTS set the same defaults.
#
# The backends are the demo's own: it runs target/debug/dummy-servers
# itself rather than scripts/spawn-backends.sh, so it never stops backends
# you started. If anything holds a port it needs, it says so and starts
# nothing. Everything it starts is stopped by pid on exit, on Ctrl-C and
# on failure. Traffic goes to 127.0.0.1 only. Needs curl.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib/lab.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/lab.sh"
lab_init demo --report-pids

# Ends the demo when a process it started does not listen (after
# wait_listening or start_backends): a taken port in one line, a process
# that exited or never listened with its log.
die_not_started() {
  local log="$work/$start_failed.log"
  case "$start_failure" in
    in-use) die "$start_error" ;;
    exited)
      echo "error: $start_failed exited; its log says:" >&2
      sed 's/^/  /' "$log" >&2
      exit 1
      ;;
    *) die "$start_failed is not listening after 30 s; its log: $(<"$log")" ;;
  esac
}

# ---------------------------------------------------------------------------
# Arguments.

step_arg=08
port=${LAB_PORT:-}
backend_ports=${LAB_BACKEND_PORTS:-4444,4445,4446}
requests=${LAB_REQUESTS:-6}
seed=7  # step 05's, as in compare.sh's table
keep_running=false
step_given=false
while (( $# > 0 )); do
  case "$1" in
    -h|--help) print_header "${BASH_SOURCE[0]}"; exit 0 ;;
    --port) port=${2:?--port needs a number}; shift ;;
    --port=*) port=${1#--port=} ;;
    --backend-ports) backend_ports=${2:?--backend-ports needs A,B,C}; shift ;;
    --backend-ports=*) backend_ports=${1#--backend-ports=} ;;
    --requests) requests=${2:?--requests needs a number}; shift ;;
    --requests=*) requests=${1#--requests=} ;;
    --keep-running) keep_running=true ;;
    -*) die "unknown option $1 (see --help)" ;;
    *)
      $step_given && die "one step at a time (see --help)"
      step_arg=$1
      step_given=true
      ;;
  esac
  shift
done

# "04", "4", "04-round-robin" or "steps/04-round-robin": lab_steps says
# which step, or why none.
step_line=$(lab_steps "$step_arg") || exit 1
step_spec "$step_line"
if [[ -z "$port" ]]; then
  port=3000
  (( layer == 7 )) && port=8080
fi
valid_port "$port" || die "--port takes 0-65535"
if ! [[ "$requests" =~ ^[0-9]+$ ]] || (( requests < 1 || requests > 1000 ))
then
  die "--requests takes a number from 1 to 1000"
fi
IFS=, read -r -a ports <<<"$backend_ports"
(( ${#ports[@]} >= ${#backend_tls[@]} )) ||
  die "--backend-ports: $step needs ${#backend_tls[@]} ports"
ports=("${ports[@]:0:${#backend_tls[@]}}")
for p in "${ports[@]}"; do
  valid_port "$p" ||
    die "--backend-ports takes ports 0-65535, comma-separated"
done
require_curl

# Fail before building if a fixed port is taken.
require_free_port "$port" "--port N"
require_free_backend_ports "${ports[@]}"

# ---------------------------------------------------------------------------
# Build, certificates, start.

echo "== building $step and dummy-servers (the first build takes a while)"
build_bins "$step_bin" dummy-servers

needs_tls=false
step_needs_tls && needs_tls=true
if $needs_tls; then
  make_certs "$step needs TLS certificates"
fi

backend_addrs=()
if (( ${#ports[@]} > 0 )); then
  start_backends dummy-servers "dummy-servers --tls" \
    "$(IFS=,; echo "${ports[*]}")" "${backend_tls[@]}" || die_not_started
fi

mapfile -t command < <(step_command "127.0.0.1:$port" \
  "${backend_addrs[@]}")
start "$step" "${command[@]}"
wait_listening "$step" 1 "--port N" || die_not_started
balancer=${listening[0]}

# ---------------------------------------------------------------------------
# Requests.

curl_args=(--silent --show-error --max-time 5)
[[ "$front" == https ]] && curl_args+=(--cacert "$certs_dir/ca.crt")
base="$front://$balancer"

echo
echo "== $step: $teaches"
echo "   balancer $base"
if (( ${#backend_addrs[@]} == 0 )); then
  echo "   backends none: this step answers by itself"
else
  shown=()
  for i in "${!backend_addrs[@]}"; do
    kind=http
    [[ "${backend_tls[$i]}" == tls ]] && kind="https"
    shown+=("$kind://${backend_addrs[$i]}")
  done
  echo "   backends ${shown[*]}"
fi

# One answer's facts, from the first line a backend sends:
#   backend-4444 at 127.0.0.1:4444, call #3
#   backend-4445 at 127.0.0.1:4445 over TLS, call #1
# Sets `who` (backend-4444, pong, or what went wrong), `call` and `how`
# ("" or ", over TLS").
read_answer() {
  local first
  first=$(head -n 1 <<<"$1")
  call=""
  how=""
  if [[ "$first" =~ ^(backend-[0-9]+)\ at\ ([^,]+),\ call\ \#([0-9]+)$ ]]
  then
    who=${BASH_REMATCH[1]}
    call=${BASH_REMATCH[3]}
    if [[ "${BASH_REMATCH[2]}" == *" over TLS" ]]; then
      how=", over TLS"
    fi
  elif [[ "$first" == pong ]]; then
    who=pong
  else
    who="unexpected answer: ${first:0:60}"
  fi
}

echo
shown_curl="curl $base/request/N"
[[ "$front" == https ]] &&
  shown_curl="curl --cacert certs/ca.crt $base/request/N"
echo "$requests requests, each on a new connection ($shown_curl):"
width=${#requests}
declare -A per_backend=()
first_answer=""
first_who=""
failed=0
for (( n = 1; n <= requests; n++ )); do
  if answer=$(curl "${curl_args[@]}" "$base/request/$n" 2>"$work/curl.err")
  then
    read_answer "$answer"
    if [[ -n "$call" ]]; then
      printf '  request %*s → %s (its call #%s%s)\n' "$width" "$n" "$who" \
        "$call" "$how"
    elif [[ "$who" == pong ]]; then
      printf '  request %*s → "pong", from the step itself\n' "$width" "$n"
    else
      printf '  request %*s → %s\n' "$width" "$n" "$who"
    fi
    per_backend[$who]=$(( ${per_backend[$who]:-0} + 1 ))
    if [[ -z "$first_answer" ]]; then
      first_answer=$answer
      first_who=$who
    fi
  else
    failed=$(( failed + 1 ))
    printf '  request %*s → failed: %s\n' "$width" "$n" \
      "$(head -n 1 "$work/curl.err")"
  fi
done
# Every backend in the order started, those that got nothing included.
tally=""
for addr in "${backend_addrs[@]}"; do
  who="backend-${addr##*:}"
  tally+=", $who ×${per_backend[$who]:-0}"
  unset "per_backend[$who]"
done
for who in "${!per_backend[@]}"; do
  tally+=", $who ×${per_backend[$who]}"
done
(( failed > 0 )) && tally+=", failed ×$failed"
echo "  answers: ${tally#, }"

# What the first answer shows about the request that arrived.
if [[ "$first_who" == pong ]]; then
  echo
  printf '%s\n' "What $step printed for request 1: the raw bytes curl sent," \
    '  with \r\n ending each line:'
  awk '/ sent [0-9]+ bytes:$/ { n++ } n == 1' "$work/$step.out" |
    sed 's/^/  /'
elif [[ -n "$first_answer" ]]; then
  echo
  echo "What $first_who saw for request 1 (request line and headers):"
  added=0
  while IFS= read -r line; do
    header=${line%%:*}
    case "$header" in
      host|user-agent|accept|GET\ *) echo "  $line" ;;
      *)
        printf '  %-38s ← added by the balancer\n' "$line"
        added=$(( added + 1 ))
        ;;
    esac
  done < <(tail -n +2 <<<"$first_answer")
  if (( added == 0 )) && [[ "$front" == https ]]; then
    echo "  → exactly what curl sent: the balancer ends curl's TLS session" \
      "(and starts"
    echo "    a new one to a TLS backend), but it does not read the HTTP" \
      "inside."
  elif (( added == 0 )); then
    echo "  → exactly what curl sent: a layer-4 balancer copies bytes," \
      "it does not read them."
  else
    echo "  → a layer-7 proxy reads each request and writes a new one," \
      "so it can add"
    echo "    headers, such as X-Forwarded-For: who the client was."
  fi
fi

echo
echo "3 requests on one kept-alive connection (curl URL URL URL):"
spread=()
connections=0
while IFS= read -r line; do
  if [[ "$line" =~ ^\[curl\ ([0-9]+)\ ([0-9]+)\]$ ]]; then
    connections=$(( connections + BASH_REMATCH[1] ))
    if [[ "${BASH_REMATCH[2]}" != 200 ]]; then
      spread+=("failed")
    else
      read_answer "$block"
      spread+=("$who")
    fi
    block=""
  elif [[ -z "${block:-}" ]]; then
    block=$line
  fi
done < <(curl "${curl_args[@]}" --write-out '\n[curl %{num_connects} %{http_code}]\n' \
  "$base/keep-alive/1" "$base/keep-alive/2" "$base/keep-alive/3" \
  2>"$work/curl.err" || true)
plural=connections
(( connections == 1 )) && plural=connection
spread_text=$(printf ', %s' "${spread[@]}")
echo "  ${spread_text#, }   ($connections $plural opened)"
if (( ${#backend_addrs[@]} == 0 )); then
  echo "  → $step hangs up after each answer (Connection: close), so curl" \
    "opened"
  echo "    a new connection for each request."
elif (( layer == 7 )); then
  echo "  → one connection, a backend per request: a layer-7 proxy" \
    "chooses for every"
  echo "    request it reads."
elif (( ${#backend_addrs[@]} == 1 )); then
  echo "  → this step has one backend; from step 04 on, see how a" \
    "kept-alive connection"
  echo "    stays with the backend it was given."
else
  echo "  → one connection, one backend: a layer-4 balancer chooses once" \
    "per"
  echo "    connection, then only copies bytes."
fi

# ---------------------------------------------------------------------------
# Keep running, or stop.

listen_ports=("${balancer##*:}")
for addr in "${backend_addrs[@]}"; do
  listen_ports+=("${addr##*:}")
done

if $keep_running; then
  echo
  echo "Still running: $base (and its backends). Try:"
  if [[ "$front" == https ]]; then
    echo "  curl --cacert certs/ca.crt $base/"
  else
    echo "  curl $base/"
  fi
  echo "Press Ctrl-C to stop."
  # `wait` returns as soon as a signal arrives, so Ctrl-C stops at once.
  wait "${pids[-1]}" || true
  die "$step stopped by itself; its log: $(<"$work/$step.log")"
fi

started=()
for i in "${!pids[@]}"; do
  started+=("${names[$i]} (pid ${pids[$i]})")
done
stop_all
echo
started_text=$(printf ', %s' "${started[@]}")
ports_text=$(printf ', %s' "${listen_ports[@]}")
echo "Stopped everything the demo started: ${started_text#, }."
if (( ${#listen_ports[@]} == 1 )); then
  echo "Port ${ports_text#, } is free again."
else
  echo "Ports ${ports_text#, } are free again."
fi
# The same by hand, on the article's ports.
hand=()
$needs_tls && hand+=("scripts/gen-certs.sh")
tls_ports=()
for i in "${!backend_tls[@]}"; do
  [[ "${backend_tls[$i]}" == tls ]] && tls_ports+=("$(( 4444 + i ))")
done
if (( ${#tls_ports[@]} == 0 )); then
  (( ${#backend_tls[@]} > 0 )) && hand+=("scripts/spawn-backends.sh")
elif (( ${#tls_ports[@]} == ${#backend_tls[@]} )); then
  hand+=("scripts/spawn-backends.sh start --tls")
else
  hand+=("scripts/spawn-backends.sh start --tls-ports $(IFS=,
    echo "${tls_ports[*]}")")
fi
default_port=3000
(( layer == 7 )) && default_port=8080
if [[ "$step" == 08-* && "$front" == https ]]; then
  hand+=("cargo run --bin $step -- --tls-front")
else
  hand+=("cargo run --bin $step")
fi
if [[ "$front" == https ]]; then
  hand+=("curl --cacert certs/ca.crt https://localhost:$default_port")
else
  hand+=("curl localhost:$default_port")
fi
echo "By hand, one terminal each:"
printf '  %s\n' "${hand[@]}"
