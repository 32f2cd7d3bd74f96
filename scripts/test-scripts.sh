#!/usr/bin/env bash
# Tests the learner-facing scripts by running them for real, small and on
# ports the system picks (port 0), so they never collide with a lab that
# is running or with another test run. What a process test alone can
# show: that a script starts, answers, exits with the right status and
# leaves nothing running, also after Ctrl-C. (The benchmark's logic is
# unit-tested in Rust: cargo test -p lab-tools.)
#
#   demo.sh      a step end to end; the default step; a busy port;
#                Ctrl-C; an unknown step. Nothing may be left running:
#                every pid it started is gone and every port it used is
#                free again.
#   compare.sh   a row for every step whose numbers fit the step:
#                round robin exactly even, random uneven but complete,
#                one backend per kept-alive connection at layer 4, a
#                backend per request at layer 7.
#   exercise.sh  --list names every solution; an unknown exercise and
#                a missing id are clear errors (exit 2).
#   diff-steps.sh  a pair and the summary of every step against its
#                parent, which tutorial.md must print as the script does.
#   spawn-backends.sh  start, the same flags again, other flags (replaced,
#                and said so), restart over TLS, fault modes, stop: on
#                ports 0 with its pid and log in a folder of the test's
#                own (LAB_RUN_DIR), so a learner's running set is untouched.
#   bench.sh     --smoke with 04 and lb; Ctrl-C stops what it started.
#   bakeoff.sh   --quick: the report and its charts; no lb or bakeoff
#                process, and no port of theirs, left once it exits.
#
#   scripts/test-scripts.sh        run them all (scripts/check.sh does)
#   scripts/test-scripts.sh -h     this text
#
# The last line is "scripts: N passed, M failed"; the exit status is 1 if
# any failed. A part that needs a program CI does not have (curl, which
# scripts/check.sh installs) is skipped with a message. Every run of a
# script has a time limit; all traffic goes to 127.0.0.1.
set -euo pipefail
# For print_header and port_in_use; sourcing only defines functions.
# shellcheck source-path=SCRIPTDIR source=lib/lab.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/lab.sh"

lab_paths
scripts="$root/scripts"

case "${1:-}" in
  -h|--help)
    print_header "${BASH_SOURCE[0]}"
    exit 0
    ;;
  "") ;;
  *) echo "usage: scripts/test-scripts.sh (see --help)" >&2; exit 2 ;;
esac

work=$(mktemp -d "${TMPDIR:-/tmp}/lb-lab-test-scripts.XXXXXX")
own_pids=()
# TERM, then KILL after 5 s: a clean-up that cannot hang.
cleanup() {
  local pid tries
  for pid in "${own_pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
    tries=0
    while alive "$pid" && (( ++tries <= 50 )); do sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

passed=0
failed=0
skipped=0
pass() {
  echo "ok   - $1"
  passed=$(( passed + 1 ))
}
# fail NAME REASON [OUTPUT FILE]
fail() {
  echo "FAIL - $1: $2"
  if [[ -n "${3:-}" && -f "$3" ]]; then
    echo "       its output (last 30 lines):"
    tail -n 30 "$3" | sed 's/^/       | /'
  fi
  failed=$(( failed + 1 ))
}
skip() {
  echo "skip - $1: $2"
  skipped=$(( skipped + 1 ))
}

# run SECONDS OUTPUT COMMAND...: runs it with a time limit, stdout and
# stderr to OUTPUT, and sets `rc`.
run() {
  local limit=$1 out=$2
  shift 2
  rc=0
  timeout --kill-after=10 "$limit" "$@" >"$out" 2>&1 </dev/null || rc=$?
}

# ran_ok NAME OUTPUT || return 0: true if the last run exited 0; otherwise
# fails test NAME, showing OUTPUT, and is false. (return 0: a test that
# failed has said so; under set -e it must not stop the others.)
ran_ok() {
  (( rc == 0 )) && return 0
  fail "$1" "exited with $rc" "$2"
  return 1
}

# True if pid $1 still runs one of the lab's binaries (a pid the system
# gave to something else since does not count).
lab_process_alive() {
  [[ -r "/proc/$1/cmdline" ]] || return 1
  tr '\0' ' ' <"/proc/$1/cmdline" | grep -q "$target_dir/debug/"
}

# Checks that nothing a demo run left in its output (pids, ports) still
# runs or listens. Prints what is left; false if anything is.
nothing_left() {
  local out=$1 pid port left=0
  local pids ports
  pids=$(grep -Eo 'pids? [0-9 ]+' "$out" | grep -Eo '[0-9]+' || true)
  ports=$(grep -E '^   (balancer|backends) ' "$out" |
    grep -Eo '127\.0\.0\.1:[0-9]+' | sed 's/.*://' || true)
  if [[ -z "$pids" || -z "$ports" ]]; then
    echo "no pids or ports found in the output"
    return 1
  fi
  for pid in $pids; do
    if lab_process_alive "$pid"; then
      echo "pid $pid still runs"
      left=1
    fi
  done
  for port in $ports; do
    if port_in_use "$port"; then
      echo "port $port still accepts connections"
      left=1
    fi
  done
  return "$left"
}

# Runs a command in the background in its own process group, as a
# terminal runs a job (a script's background job ignores SIGINT
# otherwise), waits (at most 300 s) for PATTERN in OUT, then sends SIGINT
# as Ctrl-C would, and checks that it exits with 130. On failure it says
# so under NAME and returns 1.
interrupt_when_seen() {
  local name=$1 out=$2 pattern=$3 pid tries=0 rc=0
  shift 3
  : >"$out"
  set -m
  timeout --kill-after=10 300 "$@" >"$out" 2>&1 </dev/null &
  pid=$!
  set +m
  until grep -q -e "$pattern" "$out"; do
    if ! kill -0 "$pid" 2>/dev/null || (( ++tries > 3000 )); then
      kill -TERM "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
      fail "$name" "it never printed '$pattern'" "$out"
      return 1
    fi
    sleep 0.1
  done
  # timeout passes the signal on to the command.
  kill -INT "$pid"
  wait "$pid" || rc=$?
  if (( rc != 130 )); then
    fail "$name" "exit status $rc, not 130" "$out"
    return 1
  fi
}


# pass_if_nothing_left NAME OUTPUT: a demo test's last check. Passes NAME
# if nothing the run in OUTPUT started still runs or listens.
pass_if_nothing_left() {
  local left
  if left=$(nothing_left "$2"); then
    pass "$1"
  else
    fail "$1" "left behind: $left" "$2"
  fi
}

have_curl=true
command -v curl >/dev/null || have_curl=false
step_dir() {
  local dir
  for dir in "$root"/steps/"$1"-*/; do
    [[ -d "$dir" ]] && basename "$dir" && return 0
  done
  return 1
}

# ---------------------------------------------------------------------------
# Every script

test_help() {
  local name="every script answers --help, from any folder"
  local out="$work/help.out" script
  for script in "$scripts"/*.sh; do
    script=$(basename "$script" .sh)
    rc=0
    (cd / && timeout 30 "$scripts/$script.sh" --help) >"$out" 2>&1 || rc=$?
    # The header comment (gen-certs.sh: its program's --help), and nothing
    # of the code below it.
    if (( rc != 0 )) || grep -q 'set -euo' "$out" \
      || ! grep -q -e "scripts/$script.sh" -e "Usage: $script" "$out"; then
      fail "$name" "$script.sh --help (exit $rc)" "$out"; return
    fi
  done
  pass "$name"
}

# ---------------------------------------------------------------------------
# diff-steps.sh

test_exercise() {
  local name="exercise.sh: the list, an unknown exercise, a wrong command line"
  local out="$work/exercise.out" patches listed
  run 30 "$out" "$scripts/exercise.sh" --list
  patches=$(find "$root/solutions" -name '*.patch' | wc -l)
  listed=$(grep -c . "$out" || true)
  if (( rc != 0 || patches == 0 || listed != patches )); then
    fail "$name" "--list: $listed lines for $patches solutions (rc $rc)" "$out"
    return
  fi
  run 30 "$out" "$scripts/exercise.sh" 99-none
  if (( rc != 2 )) || ! grep -q 'no exercise 99-none' "$out"; then
    fail "$name" "an unknown exercise is not a clear error (rc $rc)" "$out"
    return
  fi
  run 30 "$out" "$scripts/exercise.sh" --solution
  if (( rc != 2 )) || ! grep -q '^usage:' "$out"; then
    fail "$name" "--solution without an id is not a usage error (rc $rc)" \
      "$out"
    return
  fi
  pass "$name"
}

test_diff_steps() {
  local name="diff-steps.sh: a pair, the summary, an unknown step"
  local out="$work/diff.out" steps count
  run 30 "$out" "$scripts/diff-steps.sh" 04 05
  if (( rc != 0 )); then
    fail "$name" "diff-steps.sh 04 05 exited with $rc" "$out"; return
  fi
  if ! grep -qx -- '--- steps/04-round-robin/src/lib.rs' "$out" ||
    ! grep -qx -- '+++ steps/05-random-robin/src/lib.rs' "$out" ||
    ! grep -q '^+.*--seed' "$out"; then
    fail "$name" "04 05 does not show lib.rs changing to --seed" "$out"
    return
  fi
  run 30 "$out" "$scripts/diff-steps.sh"
  steps=$(find "$root/steps" -mindepth 1 -maxdepth 1 -name '[0-9][0-9]-*' |
    wc -l)
  count=$(grep -Ec '^[0-9]{2} → [0-9]{2}: \+[0-9]+ −[0-9]+ lines' "$out" ||
    true)
  if (( rc != 0 || count != steps - 1 )); then
    fail "$name" "summary: $count pair lines for $steps steps (rc $rc)" "$out"
    return
  fi
  # tutorial.md prints this summary: it must still be what the script says.
  if ! awk '/^```/ { inside = 0 } inside { print }
    /^```text$/ { inside = 1 }' "$root/tutorial.md" \
    | grep -A "$((steps - 1))" -E "^01 → 02: " \
    | diff -u - "$out" >"$work/diff.diff"
  then
    fail "$name" "tutorial.md's summary differs from the script's" \
      "$work/diff.diff"
    return
  fi
  run 30 "$out" "$scripts/diff-steps.sh" 04 99
  if (( rc == 0 )) || ! grep -q 'no step "99"' "$out"; then
    fail "$name" "an unknown step is not a clear error (rc $rc)" "$out"
    return
  fi
  pass "$name"
}

# ---------------------------------------------------------------------------
# spawn-backends.sh

# spawn ARGS...: runs spawn-backends.sh with the test's own run folder.
spawn() {
  run 300 "$work/spawn.out" env LAB_RUN_DIR="$work/spawn-run" \
    "$scripts/spawn-backends.sh" "$@"
}

# Sets `spawned` to the pid in the last spawn's "backends running (pid
# N):" line, and remembers it for the clean-up, should this test fail
# half-way. False if there is none.
remember_spawned() {
  spawned=$(grep -Eo '^backends running \(pid [0-9]+\)' "$work/spawn.out" |
    grep -Eo '[0-9]+') || return 1
  own_pids+=("$spawned")
}

# The ports of the last spawn's listening lines, space-separated.
spawned_ports() {
  grep -E '^listening on ' "$work/spawn.out" | grep -Eo ':[0-9]+ ' |
    tr -d ': ' | xargs
}

test_spawn_backends() {
  local name="spawn-backends.sh: start, other flags, restart, fault, stop"
  local out="$work/spawn.out" certs="$work/spawn-certs"
  local first second third port spawned
  spawn start --ports 0,0
  ran_ok "$name" "$out" || return 0
  if ! remember_spawned || [[ $(spawned_ports | wc -w) != 2 ]]; then
    fail "$name" "start: no pid or not two backends" "$out"; return
  fi
  first=$spawned
  spawn start --ports 0,0
  grep -qx "backends already running (pid $first):" "$out" ||
    { fail "$name" "the same flags again did not say so" "$out"; return; }

  port=$(spawned_ports | cut -d' ' -f1)
  spawn fault "$port" stall
  grep -qx "backend-$port: fault stall (was none)" "$out" ||
    { fail "$name" "fault $port stall" "$out"; return; }
  rc=0
  curl -sS -m 0.5 "http://127.0.0.1:$port/" >"$work/curl.out" 2>&1 || rc=$?
  (( rc == 28 )) ||
    { fail "$name" "a stalled backend: curl exit $rc, not 28" \
      "$work/curl.out"; return; }
  spawn fault "$port"
  grep -qx stall "$out" || { fail "$name" "fault $port (show)" "$out"; return; }
  spawn fault "$port" stalled
  if (( rc != 1 )) ||
    ! grep -q '^error: unknown fault mode "stalled"' "$out"; then
    fail "$name" "a bad mode: no clear error (rc $rc)" "$out"; return
  fi

  spawn start --ports 0
  ran_ok "$name" "$out" || return 0
  remember_spawned || { fail "$name" "no pid" "$out"; return; }
  second=$spawned
  if ! grep -qx 'backends were running with other flags (--ports 0,0); restarting them' "$out" ||
    lab_process_alive "$first" || [[ $(spawned_ports | wc -w) != 1 ]]; then
    fail "$name" "other flags did not replace the set, saying so" "$out"
    return
  fi

  # TLS, with certificates of the test's own: `fault` finds the CA beside
  # --cert.
  run 300 "$work/certs.out" "$scripts/gen-certs.sh" --out "$certs"
  ran_ok "$name" "$work/certs.out" || return 0
  spawn restart --ports 0 --tls --cert "$certs/server.crt" \
    --key "$certs/server.key"
  ran_ok "$name" "$out" || return 0
  remember_spawned || { fail "$name" "no pid" "$out"; return; }
  third=$spawned
  if ! grep -qx "backends stopped (pid $second)" "$out" ||
    ! grep -q ', TLS)$' "$out" || lab_process_alive "$second"; then
    fail "$name" "restart over TLS" "$out"; return
  fi
  port=$(spawned_ports)
  spawn fault "$port" close
  grep -qx "backend-$port: fault close (was none)" "$out" ||
    { fail "$name" "fault $port close over TLS" "$out"; return; }
  rc=0
  curl -sS --cacert "$certs/ca.crt" "https://localhost:$port/" \
    >"$work/curl.out" 2>&1 || rc=$?
  (( rc == 52 )) ||
    { fail "$name" "a closing TLS backend: curl exit $rc, not 52" \
      "$work/curl.out"; return; }

  spawn stop
  if ! grep -qx "backends stopped (pid $third)" "$out" ||
    lab_process_alive "$third" || port_in_use "$port"; then
    fail "$name" "stop left the backends running" "$out"; return
  fi
  pass "$name"
}

# ---------------------------------------------------------------------------
# demo.sh

test_demo_round_robin() {
  local name="demo.sh 04: round robin shown, nothing left running"
  local out="$work/demo-04.out"
  run 600 "$out" "$scripts/demo.sh" 04 --port 0 --backend-ports 0,0,0 \
    --requests 6
  ran_ok "$name" "$out" || return 0
  if ! grep -Eq '^  answers: backend-[0-9]+ ×2, backend-[0-9]+ ×2, backend-[0-9]+ ×2$' "$out"; then
    fail "$name" "6 requests are not 2, 2 and 2" "$out"; return
  fi
  # "  backend-4444, backend-4444, backend-4444   (1 connection opened)"
  local kept
  kept=$(grep -E '^  backend-[0-9]+, .*\(1 connection opened\)$' "$out" |
    grep -Eo 'backend-[0-9]+' || true)
  if [[ $(wc -l <<<"$kept") != 3 || $(sort -u <<<"$kept" | wc -l) != 1 ]]
  then
    fail "$name" "a kept-alive connection did not stay on one backend" "$out"
    return
  fi
  pass_if_nothing_left "$name" "$out"
}

test_demo_default() {
  local name="demo.sh (default step 08): answers, nothing left running"
  local out="$work/demo-default.out"
  if ! step_dir 08 >/dev/null; then
    fail "$name" "steps/08-* does not exist"; return
  fi
  run 600 "$out" "$scripts/demo.sh" --port 0 --backend-ports 0,0,0
  ran_ok "$name" "$out" || return 0
  if ! grep -q "^== $(step_dir 08):" "$out" ||
    (( $(grep -Ec '^  request [0-9]+ → backend-[0-9]+ ' "$out") != 6 )); then
    fail "$name" "6 requests were not all answered by backends" "$out"
    return
  fi
  pass_if_nothing_left "$name" "$out"
}

test_demo_busy_port() {
  local name="demo.sh and compare.sh: a busy port is a clear error"
  local out="$work/busy.out" squatter="$work/squatter.out" port tries=0
  # Something of our own on a port, as a learner's running lab would be.
  (cd "$root" && cargo build --quiet --bin dummy-servers)
  : >"$squatter"
  "$target_dir/debug/dummy-servers" --ports 0 >"$squatter" 2>/dev/null &
  own_pids+=("$!")
  until grep -q '^listening on ' "$squatter"; do
    if (( ++tries > 300 )); then
      fail "$name" "the squatting backend did not start"; return
    fi
    sleep 0.1
  done
  port=$(awk '/^listening on /{print $3; exit}' "$squatter")
  port=${port##*:}
  run 60 "$out" "$scripts/demo.sh" 04 --port "$port" --backend-ports 0,0,0
  if (( rc == 0 )) || ! grep -qx \
    "error: port $port is in use: stop what runs there or pass --port N" \
    "$out"; then
    fail "$name" "demo.sh --port $port (busy): no clear error" "$out"
    return
  fi
  run 60 "$out" "$scripts/compare.sh" --port 0 --http-port 0 \
    --backend-ports "0,$port,0" --requests 3
  if (( rc == 0 )) || ! grep -q "^error: port $port is in use: .*--backend-ports" "$out"
  then
    fail "$name" "compare.sh --backend-ports 0,$port,0: no clear error" \
      "$out"
    return
  fi
  if ! port_in_use "$port"; then
    fail "$name" "the process that held port $port was stopped"; return
  fi
  pass "$name"
}

test_demo_interrupt() {
  local name="demo.sh --keep-running: Ctrl-C stops everything"
  local out="$work/demo-int.out"
  interrupt_when_seen "$name" "$out" '^Press Ctrl-C to stop' \
    "$scripts/demo.sh" 04 --port 0 --backend-ports 0,0,0 --requests 1 \
    --keep-running || return 0
  pass_if_nothing_left "$name" "$out"
}

test_demo_unknown_step() {
  local name="demo.sh: an unknown step is a clear error"
  local out="$work/demo-unknown.out"
  run 60 "$out" "$scripts/demo.sh" 99 --port 0 --backend-ports 0,0,0
  if (( rc == 0 )) || ! grep -q '^error: no step "99" in steps/ (known: 01-ping' \
    "$out"; then
    fail "$name" "exit $rc" "$out"; return
  fi
  pass "$name"
}

# ---------------------------------------------------------------------------
# compare.sh

# True if the kept-alive field $1 names one backend three times, on one
# connection: "b2 b2 b2".
pinned() {
  local a b c rest
  read -r a b c rest <<<"$1"
  [[ "$a" == b[123] && "$b" == "$a" && "$c" == "$a" && -z "$rest" ]]
}

# check_row TSV STEP WHAT: the row's fields (step sent b1 b2 b3 failed
# req/s kept-alive) against what the step is. Prints the mismatch.
check_row() {
  local tsv=$1 number=$2 n=$3 step row
  local f_sent b1 b2 b3 f_failed f_rate f_kept
  step=$(step_dir "$number") || { echo "steps/$number-* does not exist"; return 1; }
  row=$(grep "^$step"$'\t' "$tsv") || { echo "no row for $step"; return 1; }
  IFS=$'\t' read -r _ f_sent b1 b2 b3 f_failed f_rate f_kept <<<"$row"
  if [[ "$f_sent" != "$n" || "$f_failed" != 0 ]]; then
    echo "$step: sent $f_sent, failed $f_failed"; return 1
  fi
  [[ "$f_rate" =~ ^[0-9]+$ ]] || { echo "$step: req/s is $f_rate"; return 1; }
  local third=$(( n / 3 )) sum
  case "$number" in
    01)
      [[ "$b1 $b2 $b3" == "- - -" &&
        "$f_kept" == "pong pong pong (3 connections)" ]] ||
        { echo "$step: $row"; return 1; }
      ;;
    02|03)
      [[ "$b1 $b2 $b3" == "$n - -" && "$f_kept" == "b1 b1 b1" ]] ||
        { echo "$step: not all to its one backend: $row"; return 1; }
      ;;
    05)
      sum=$(( b1 + b2 + b3 ))
      if (( sum != n )) || [[ "$b1" == "$b2" && "$b2" == "$b3" ]]; then
        echo "$step: random should be uneven but complete: $row"; return 1
      fi
      pinned "$f_kept" ||
        { echo "$step: kept-alive not pinned: $row"; return 1; }
      ;;
    09)
      [[ "$b1 $b2 $b3" == "$third $third $third" ]] ||
        { echo "$step: round robin not exactly even: $row"; return 1; }
      [[ "$f_kept" == "b1 b2 b3" || "$f_kept" == "b2 b3 b1" ||
        "$f_kept" == "b3 b1 b2" ]] ||
        { echo "$step: kept-alive not a backend per request: $row"; return 1; }
      ;;
    *)
      [[ "$b1 $b2 $b3" == "$third $third $third" ]] ||
        { echo "$step: round robin not exactly even: $row"; return 1; }
      pinned "$f_kept" ||
        { echo "$step: kept-alive not pinned to one backend: $row"; return 1; }
      ;;
  esac
}

test_compare() {
  local name="compare.sh: a row per step, numbers that fit each step"
  local out="$work/compare.out" tsv="$work/compare.tsv" n=30
  run 300 "$out" "$scripts/compare.sh" --requests "$n" --port 0 \
    --http-port 0 --backend-ports 0,0,0 --tsv "$tsv"
  ran_ok "$name" "$out" || return 0
  local number problem problems=() steps
  # Every step Cargo knows (lab-tools' lab-steps), by number.
  # shellcheck disable=SC2119 # no names: every step
  steps=$(lab_steps | cut -c1-2)
  for number in $steps; do
    if ! problem=$(check_row "$tsv" "$number" "$n"); then
      problems+=("$problem")
    fi
  done
  # The table a learner reads has the same rows.
  local rows
  rows=$(grep -Ec '^[0-9]{2}-[a-z0-9-]+ ' "$out" || true)
  (( rows == $(wc -w <<<"$steps") )) ||
    problems+=("the printed table has $rows step rows")
  if (( ${#problems[@]} > 0 )); then
    fail "$name" "$(printf '%s; ' "${problems[@]}")" "$out"; return
  fi
  pass "$name"
}

# ---------------------------------------------------------------------------
# bench.sh

# A block of ports for bench.sh (--port-base), below the ephemeral ports
# (32768 on) and free right now: a parallel run may hold one.
bench_port_base() {
  local tries=0 base
  while (( ++tries <= 20 )); do
    base=$(( 20000 + RANDOM % 120 * 100 ))
    if ! port_in_use $(( base + 11 )) && ! port_in_use $(( base + 206 )); then
      echo "$base"
      return 0
    fi
  done
  echo 20000
}

test_bench_smoke() {
  local name="bench.sh --smoke with 04 and lb"
  local out="$work/bench.out" base
  base=$(bench_port_base)
  run 600 "$out" "$scripts/bench.sh" --smoke --contenders 04,lb \
    --port-base "$base" --out "$work/smoke.md"
  ran_ok "$name" "$out" || return 0
  if ! grep -q '^| lb | ' "$work/smoke.md"; then
    fail "$name" "no lb row in the report" "$out"; return
  fi
  pass "$name"
}

test_bench_interrupt() {
  local name="bench.sh: Ctrl-C stops everything it started"
  local out="$work/bench-int.out" base
  base=$(bench_port_base)
  # The backends are up once the first workload starts.
  interrupt_when_seen "$name" "$out" ' keepalive, backends: ' \
    "$scripts/bench.sh" --smoke --port-base "$base" \
    --out "$work/smoke-int.md" || return 0
  local port left=""
  for port in $(( base + 11 )) $(( base + 12 )) $(( base + 13 )) \
    $(( base + 201 )); do
    port_in_use "$port" && left+=" $port"
  done
  if [[ -n "$left" ]]; then
    fail "$name" "ports still accept connections:$left" "$out"; return
  fi
  pass "$name"
}

# bakeoff.sh --quick: the report and its charts, and nothing left running
# (no lb process, no port held by lb or bakeoff) once it has exited.
test_bakeoff_quick() {
  local name="bakeoff.sh --quick: a report, charts, nothing left running"
  local out="$work/bakeoff.out" report="$work/bakeoff"
  run 900 "$out" "$scripts/bakeoff.sh" --quick --out "$report"
  ran_ok "$name" "$out" || return 0
  local missing=""
  for file in report.md slow-requests.svg slow-latency.svg \
    added-requests.svg; do
    [[ -s "$report/$file" ]] || missing+=" $file"
  done
  if [[ -n "$missing" ]]; then
    fail "$name" "missing from $report:$missing" "$out"; return
  fi
  local pids ports
  pids=$(pgrep -f "^$target_dir/release/(lb|bakeoff)( |$)" || true)
  if [[ -n "$pids" ]]; then
    fail "$name" "still running: pids $pids" "$out"; return
  fi
  ports=$(ss -Hltnp 2>/dev/null | grep -E '"(lb|bakeoff)"' || true)
  if [[ -n "$ports" ]]; then
    fail "$name" "ports still held: $ports" "$out"; return
  fi
  pass "$name"
}

# ---------------------------------------------------------------------------

test_help
test_diff_steps
test_exercise
if $have_curl; then
  test_spawn_backends
  test_demo_round_robin
  test_demo_default
  test_demo_busy_port
  test_demo_interrupt
  test_demo_unknown_step
  test_compare
  test_bench_smoke
  test_bench_interrupt
  test_bakeoff_quick
else
  skip "spawn-backends.sh, demo.sh, compare.sh, bench.sh and bakeoff.sh (10 tests)" \
    "they need curl (scripts/check.sh installs it)"
fi
(( skipped == 0 )) || echo "($skipped skipped)"
echo "scripts: $passed passed, $failed failed"
(( failed == 0 ))
