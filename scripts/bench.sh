#!/usr/bin/env bash
# Measures the lab's balancers beside HAProxy and nginx on this machine, in
# one run, and writes the table to BENCHMARKS.md.
#
#   scripts/bench.sh           full run (about 25 min): writes BENCHMARKS.md
#                              (also --full)
#   scripts/bench.sh --quick   one short round of everything (< 2 min), for
#                              development: writes target/bench/quick.md
#   scripts/bench.sh --smoke   self-test in ~10 s, needing only curl: direct
#                              vs 04-round-robin (debug build), the dummy
#                              servers as backends, curl as the load;
#                              writes target/bench/smoke.md
#
# Options (after the mode):
#   --out FILE          where the table goes
#   --runs N            rounds per workload (full: 5; 3 with the dummy
#                       servers behind)
#   --duration S        seconds per load run (full: 5)
#   --connections N     wrk's connections (32)
#   --idle N            idle connections held for the memory row (5000)
#   --contenders LIST   a subset of: 04,08,09,haproxy,nginx
#   --workloads LIST    a subset of: memory,keepalive,close,bulk
#   --port-base P       ports used: P+1 .. P+399 on 127.0.0.1 (20000)
#   --also 'LABEL=CMD'  one more layer-4 contender (up to 4): CMD is run with
#                       {listen} and {backends} replaced, e.g.
#                       --also 'mine=target/release/mine --listen {listen}
#                       --backends {backends}'
#   --no-install        do not apt-get install missing tools
#   --keep              keep the temporary folder (configs, logs, raw data)
#
# Contenders, each on its own 127.0.0.1 port: "direct" (the client talks to
# a backend itself: the limit), 04-round-robin, 08-final, 09-http-proxy (HTTP
# workloads only: it is a layer-7 proxy), HAProxy (mode tcp, balance
# roundrobin) and nginx (stream, round robin). Every figure is the median of
# the rounds; every contender's run sits between two direct runs and its
# ratio is to their mean, so that the machine's drift hits all alike. Before
# each contender's run the script samples /proc/stat for a second and waits
# (bounded) while something else keeps the machine busy.
#
# Every process it starts is stopped on exit, failure or Ctrl-C, by PID.
set -euo pipefail
# A `die` inside $(...) must stop the run, not leave an empty figure.
shopt -s inherit_errexit

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
target_dir="${CARGO_TARGET_DIR:-$root/target}"
# cargo reads a relative CARGO_TARGET_DIR from the root, where it builds.
[[ "$target_dir" == /* ]] || target_dir="$root/$target_dir"
started_at=$(date +%s)
command_line="scripts/bench.sh"
(($# > 0)) && command_line+=$(printf ' %q' "$@")

# ---------------------------------------------------------------- options

mode=full
out=""
runs=""
duration=""
connections=32
idle=""
contenders_wanted="04,08,09,haproxy,nginx"
workloads_wanted="memory,keepalive,close,bulk"
port_base=20000
install=1
keep=0
extras=()

# The comment at the top of this file, without its "# ".
usage() {
  awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' \
    "${BASH_SOURCE[0]}"
}
die() { echo "bench.sh: error: $*" >&2; exit 1; }
log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

while (($# > 0)); do
  case "$1" in
    --quick) mode=quick ;;
    --smoke) mode=smoke ;;
    --full) mode=full ;;
    --out) out="${2:?--out needs a file}"; shift ;;
    --runs) runs="${2:?--runs needs a number}"; shift ;;
    --duration) duration="${2:?--duration needs seconds}"; shift ;;
    --connections) connections="${2:?--connections needs a number}"; shift ;;
    --idle) idle="${2:?--idle needs a number}"; shift ;;
    --contenders) contenders_wanted="${2:?--contenders needs a list}"; shift ;;
    --workloads) workloads_wanted="${2:?--workloads needs a list}"; shift ;;
    --port-base) port_base="${2:?--port-base needs a port}"; shift ;;
    --also) extras+=("${2:?--also needs LABEL=COMMAND}"); shift ;;
    --no-install) install=0 ;;
    --keep) keep=1 ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown option: $1" ;;
  esac
  shift
done

for number in "$connections" "$port_base" ${idle:+"$idle"} ${runs:+"$runs"} \
  ${duration:+"$duration"}; do
  [[ "$number" =~ ^[0-9]+$ ]] || die "not a whole number: $number"
done
((port_base >= 1024 && port_base + 400 <= 32768)) \
  || die "--port-base must leave P..P+399 between 1024 and 32767"

# What each mode runs. dummy_runs: rounds with the second backend set (the
# dummy servers). quiet_wait: how long to wait, at most, for a busy machine
# to calm down before a contender's run; quiet_budget: how long in all.
case "$mode" in
  full)
    runs=${runs:-5}; dummy_runs=$((runs < 3 ? runs : 3)); duration=${duration:-5}
    memory_runs=3; idle=${idle:-5000}
    quiet_sample=1; quiet_wait=120; quiet_budget=600
    out=${out:-$root/BENCHMARKS.md} ;;
  quick)
    runs=${runs:-1}; dummy_runs=0; duration=${duration:-2}
    memory_runs=1; idle=${idle:-1000}
    quiet_sample=0.5; quiet_wait=10; quiet_budget=30
    out=${out:-$target_dir/bench/quick.md} ;;
  smoke)
    runs=${runs:-2}; dummy_runs=0; duration=${duration:-1}
    memory_runs=1; idle=${idle:-100}
    quiet_sample=0.2; quiet_wait=0; quiet_budget=0
    contenders_wanted=04
    out=${out:-$target_dir/bench/smoke.md} ;;
esac
((runs >= 1)) || die "--runs must be at least 1"
for name in ${contenders_wanted//,/ }; do
  [[ " 04 08 09 haproxy nginx " == *" $name "* ]] \
    || die "--contenders: unknown \"$name\" (04, 08, 09, haproxy, nginx)"
done
for name in ${workloads_wanted//,/ }; do
  [[ " memory keepalive close bulk " == *" $name "* ]] \
    || die "--workloads: unknown \"$name\" (memory, keepalive, close, bulk)"
done
((duration >= 1)) || die "--duration must be at least 1"
# Above this share of both cores busy (other people's work: this script's
# own processes sit idle between runs), the machine counts as busy.
busy_limit=0.15

wants() { [[ ",$2," == *",$1,"* ]]; }
has_haproxy() { [[ " ${contenders[*]} " == *" haproxy "* ]]; }

# ---------------------------------------------------------------- cleanup

tmp=$(mktemp -d "${TMPDIR:-/tmp}/lb-bench.XXXXXX")
declare -A pid_of=()

# Stops one process we started: TERM, then KILL after 5 s.
stop_pid() {
  local pid=$1 tries=0
  kill -TERM "$pid" 2>/dev/null || return 0
  while kill -0 "$pid" 2>/dev/null; do
    if ((++tries > 50)); then
      kill -KILL "$pid" 2>/dev/null || true
      break
    fi
    sleep 0.1
  done
  wait "$pid" 2>/dev/null || true
}

stop() {
  local name=$1
  [[ -n "${pid_of[$name]:-}" ]] || return 0
  stop_pid "${pid_of[$name]}"
  unset "pid_of[$name]"
}

cleanup() {
  local status=$? name
  # A second Ctrl-C (or `timeout`, which signals its child and then its
  # whole group) must not cut the clean-up short and leave HAProxy, nginx
  # or iperf3 running. It is bounded: 5 s a process at most.
  trap - EXIT
  trap '' INT TERM
  for name in "${!pid_of[@]}"; do
    stop "$name"
  done
  if ((keep)); then
    echo "bench.sh: kept $tmp" >&2
  else
    rm -rf "$tmp"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'echo "bench.sh: interrupted" >&2; exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- ports

# Each contender gets one port per backend set: P + 100*set + slot.
declare -A slot=([04]=1 [08]=2 [09]=3 [haproxy]=4 [nginx]=5)
declare -A label=([direct]="direct" [04]="04-round-robin" [08]="08-final"
  [09]="09-http-proxy" [haproxy]="HAProxy" [nginx]="nginx stream")
declare -A set_number=([nginx]=1 [dummy]=2 [iperf]=3)
backend_ports_nginx=$((port_base + 1)),$((port_base + 2)),$((port_base + 3))
backend_ports_dummy=$((port_base + 11)),$((port_base + 12)),$((port_base + 13))
iperf_port=$((port_base + 21))
contender_port() { echo $((port_base + 100 * set_number[$2] + slot[$1])); }
direct_port() {
  case "$1" in
    nginx) echo $((port_base + 1)) ;;
    dummy) echo $((port_base + 11)) ;;
    iperf) echo "$iperf_port" ;;
  esac
}
backend_list() {
  local set=$1 ports
  case "$set" in
    nginx) ports=$backend_ports_nginx ;;
    dummy) ports=$backend_ports_dummy ;;
    # iperf3's control and data connections must reach the same server:
    # every slot points at the one iperf3 server.
    iperf) ports="$iperf_port,$iperf_port,$iperf_port" ;;
  esac
  local list="" port
  for port in ${ports//,/ }; do list+="${list:+,}127.0.0.1:$port"; done
  echo "$list"
}

# True when something listens on 127.0.0.1:PORT (or on every address).
is_listening() {
  local hex
  hex=$(printf ':%04X' "$1")
  awk -v port="$hex" 'NR > 1 && $4 == "0A" && \
    substr($2, length($2) - 4) == port { found = 1 } END { exit !found }' \
    /proc/net/tcp /proc/net/tcp6 2>/dev/null
}

check_ports_free() {
  local port busy=()
  for port in "$@"; do
    if is_listening "$port"; then busy+=("$port"); fi
  done
  ((${#busy[@]} == 0)) || die "ports already in use: ${busy[*]}" \
    "(choose another block with --port-base)"
}

# Waits (at most 15 s) until PORT listens, or the process NAME has died.
wait_listening() {
  local name=$1 port=$2 tries=0
  # Alive first: a contender that died on "address in use" must not pass
  # for listening because something else holds the port.
  while :; do
    if ! kill -0 "${pid_of[$name]}" 2>/dev/null; then
      echo "--- $tmp/$name.log:" >&2
      cat "$tmp/$name.log" >&2 || true
      die "$name exited before listening on $port"
    fi
    is_listening "$port" && return 0
    ((++tries <= 150)) || die "$name not listening on $port after 15 s"
    sleep 0.1
  done
}

# Starts a process in the background, remembers its PID under NAME, logs to
# $tmp/NAME.log.
launch() {
  local name=$1
  shift
  "$@" >"$tmp/$name.log" 2>&1 </dev/null &
  pid_of[$name]=$!
}

# ---------------------------------------------------------------- tools

missing_packages() {
  local packages=()
  command -v haproxy >/dev/null || packages+=(haproxy)
  command -v nginx >/dev/null || packages+=(nginx)
  [[ -f /usr/lib/nginx/modules/ngx_stream_module.so ]] \
    || packages+=(libnginx-mod-stream)
  command -v wrk >/dev/null || packages+=(wrk)
  command -v iperf3 >/dev/null || packages+=(iperf3)
  echo "${packages[*]}"
}

install_tools() {
  local packages
  packages=$(missing_packages)
  [[ -z "$packages" ]] && return 0
  ((install)) || die "missing: $packages (run without --no-install)"
  if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null; then
    die "missing: $packages (apt-get install -y $packages, as root)"
  fi
  log "installing $packages"
  apt-get update -qq
  # shellcheck disable=SC2086 # a list of package names
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $packages >/dev/null
}

# ---------------------------------------------------------------- build

declare -A binary=()
build_steps() {
  local profile=$1 dir=debug names=(dummy-servers 04-round-robin) name
  local flags=(--quiet)
  if [[ "$profile" == release ]]; then
    dir=release
    flags+=(--release)
  fi
  if wants 08 "$contenders_wanted" \
    && [[ -f "$root/steps/08-final/Cargo.toml" ]]; then
    names+=(08-final)
  fi
  if wants 09 "$contenders_wanted" \
    && [[ -f "$root/steps/09-http-proxy/Cargo.toml" ]]; then
    names+=(09-http-proxy)
  fi
  log "building ($profile): ${names[*]}"
  local built=()
  if (cd "$root" && cargo build "${flags[@]}" "${names[@]/#/--bin=}"); then
    built=("${names[@]}")
  else
    # A step still being written may not build: measure the others.
    log "the build failed; building the binaries one by one"
    for name in "${names[@]}"; do
      if (cd "$root" && cargo build "${flags[@]}" --bin "$name"); then
        built+=("$name")
      else
        log "skipping $name: it does not build"
      fi
    done
  fi
  for name in "${built[@]}"; do
    binary[$name]="$target_dir/$dir/$name"
  done
  [[ -n "${binary[dummy-servers]:-}" ]] || die "dummy-servers did not build"
  [[ -n "${binary[04-round-robin]:-}" ]] || die "04-round-robin did not build"
}

# ---------------------------------------------------------------- configs

# The benchmark's backends: one nginx answering a fixed small body on three
# ports, fast enough not to be what limits a balancer.
write_backend_config() {
  local file="$tmp/backend-nginx.conf" port listens=""
  for port in ${backend_ports_nginx//,/ }; do
    listens+="    listen 127.0.0.1:$port;"$'\n'
  done
  cat >"$file" <<EOF
worker_processes $cores;
daemon off;
pid $tmp/backend-nginx.pid;
error_log $tmp/backend-nginx.error.log warn;
worker_rlimit_nofile $nofile;
events { worker_connections $((nofile / 2)); }
http {
  access_log off;
  keepalive_requests 1000000000;
  keepalive_timeout 600s;
  client_header_timeout 600s;
  client_body_temp_path $tmp/nginx-temp;
  proxy_temp_path $tmp/nginx-temp;
  fastcgi_temp_path $tmp/nginx-temp;
  uwsgi_temp_path $tmp/nginx-temp;
  scgi_temp_path $tmp/nginx-temp;
  server {
$listens    location / {
      default_type text/plain;
      return 200 "backend answer: a small fixed body, one line of text.\n";
    }
  }
}
EOF
}

write_haproxy_config() {
  local set=$1 file="$tmp/haproxy-$1.cfg" servers="" i=0 backend
  for backend in $(backend_list "$set" | tr ',' ' '); do
    i=$((i + 1))
    servers+=$'\n'"  server s$i $backend"
  done
  cat >"$file" <<EOF
# No log lines, as the lab's balancers run with RUST_LOG=warn.
global
  nbthread $cores
  maxconn $(((nofile - 200) / 2))
defaults
  mode tcp
  timeout connect 5s
  timeout client 600s
  timeout server 600s
frontend balancer
  bind 127.0.0.1:$(contender_port haproxy "$set")
  default_backend servers
backend servers
  balance roundrobin$servers
EOF
}

write_nginx_stream_config() {
  local set=$1 file="$tmp/nginx-stream-$1.conf" servers="" backend
  for backend in $(backend_list "$set" | tr ',' ' '); do
    servers+="    server $backend;"$'\n'
  done
  cat >"$file" <<EOF
load_module /usr/lib/nginx/modules/ngx_stream_module.so;
worker_processes $cores;
daemon off;
pid $tmp/nginx-stream-$set.pid;
error_log $tmp/nginx-stream-$set.error.log warn;
worker_rlimit_nofile $nofile;
events { worker_connections $((nofile / 2)); }
stream {
  upstream servers {
$servers  }
  server {
    listen 127.0.0.1:$(contender_port nginx "$set");
    proxy_pass servers;
    proxy_timeout 600s;
  }
}
EOF
}

# ---------------------------------------------------------------- processes

start_backends() {
  local set=$1
  case "$set" in
    nginx)
      write_backend_config
      mkdir -p "$tmp/nginx-temp"
      launch backend-nginx nginx -e "$tmp/backend-nginx.error.log" \
        -p "$tmp" -c "$tmp/backend-nginx.conf"
      wait_listening backend-nginx "$(direct_port nginx)" ;;
    dummy)
      # RUST_LOG=warn: no log line per request, like the other backends.
      launch backend-dummy env RUST_LOG=warn "${binary[dummy-servers]}" \
        --ports "$backend_ports_dummy"
      wait_listening backend-dummy "$(direct_port dummy)" ;;
    iperf)
      launch backend-iperf iperf3 --server --bind 127.0.0.1 \
        --port "$iperf_port"
      wait_listening backend-iperf "$iperf_port" ;;
  esac
}

# The process name under which contender C for backend set S runs.
instance() { echo "$1-$2"; }

start_contender() {
  local c=$1 set=$2 name port backends
  name=$(instance "$c" "$set")
  port=$(contender_port "$c" "$set")
  backends=$(backend_list "$set")
  case "$c" in
    04|08|09)
      # The lab's binaries log one line per connection at info level; the
      # other contenders log nothing, so neither do these.
      launch "$name" env RUST_LOG=warn "${binary[${label[$c]}]}" \
        --listen "127.0.0.1:$port" --backends "$backends" ;;
    haproxy)
      write_haproxy_config "$set"
      launch "$name" haproxy -db -f "$tmp/haproxy-$set.cfg" ;;
    nginx)
      write_nginx_stream_config "$set"
      launch "$name" nginx -e "$tmp/nginx-stream-$set.error.log" \
        -p "$tmp" -c "$tmp/nginx-stream-$set.conf" ;;
    x*)
      local cmd=${extra_command[$c]//\{listen\}/127.0.0.1:$port}
      cmd=${cmd//\{backends\}/$backends}
      launch "$name" env RUST_LOG=warn bash -c "exec $cmd" ;;
  esac
  wait_listening "$name" "$port"
}

# A process and its children (nginx's workers).
process_tree() {
  local pid=$1
  echo "$pid"
  if command -v pgrep >/dev/null; then pgrep -P "$pid" || true; fi
}

# utime+stime of a process tree, in clock ticks.
cpu_ticks() {
  local pid total=0 stat fields
  for pid in $(process_tree "$1"); do
    stat=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
    # Fields after the ")" that ends the command name: utime is the 12th.
    read -r -a fields <<<"${stat##*) }"
    total=$((total + fields[11] + fields[12]))
  done
  echo "$total"
}

# Resident set size of a process tree, in KiB.
rss_kib() {
  local pid total=0 kib
  for pid in $(process_tree "$1"); do
    kib=$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status" 2>/dev/null) \
      || continue
    total=$((total + ${kib:-0}))
  done
  echo "$total"
}

# Open file descriptors of a process tree.
fd_count() {
  local pid total=0 n
  for pid in $(process_tree "$1"); do
    n=$(find "/proc/$pid/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
    total=$((total + n))
  done
  echo "$total"
}

# ---------------------------------------------------------------- quiet

busy_pairs=0
quiet_pairs=0
max_busy=0
waits=0
waited_total=0
others_seen=""

# Share of both cores busy over SECONDS, from /proc/stat (0 to 1).
cpu_busy() {
  local a b
  a=$(head -1 /proc/stat)
  sleep "$1"
  b=$(head -1 /proc/stat)
  awk -v a="$a" -v b="$b" 'BEGIN {
    n = split(a, x); split(b, y); total = 0
    for (i = 2; i <= 9 && i <= n; i++) total += y[i] - x[i]
    idle = (y[5] - x[5]) + (y[6] - x[6])
    printf "%.3f", (total > 0 ? (total - idle) / total : 0) }'
}

# Waits, at most quiet_wait seconds (and quiet_budget in all), until the
# machine is quiet; counts the runs that had to start busy anyway.
wait_quiet() {
  local busy waited=0 builds=""
  # pgrep (procps 4) matches this fine, but warns on stderr whenever a
  # pattern longer than 15 characters matches nothing: hence 2>/dev/null.
  if command -v pgrep >/dev/null; then
    builds=$(pgrep -l -x 'cargo|rustc|cc|cc1|ld|ld.lld|clippy-driver' \
      2>/dev/null | awk '{ print $2 }' || true)
  fi
  if [[ -n "$builds" ]]; then
    others_seen=$(printf '%s\n%s\n' "${others_seen// /$'\n'}" "$builds" \
      | grep . | sort -u | tr '\n' ' ')
  fi
  while :; do
    busy=$(cpu_busy "$quiet_sample")
    if awk -v b="$busy" -v l="$busy_limit" 'BEGIN { exit !(b <= l) }'; then
      quiet_pairs=$((quiet_pairs + 1))
      ((waited > 0)) && waits=$((waits + 1))
      waited_total=$((waited_total + waited))
      return 0
    fi
    if ((waited >= quiet_wait || quiet_budget <= 0)); then
      busy_pairs=$((busy_pairs + 1))
      waited_total=$((waited_total + waited))
      if awk -v b="$busy" -v m="$max_busy" 'BEGIN { exit !(b > m) }'; then
        max_busy=$busy
      fi
      log "machine busy (${busy} of both cores); going on after ${waited} s"
      return 0
    fi
    ((waited == 0)) && log "machine busy (${busy} of both cores); waiting"
    sleep 2
    waited=$((waited + 2))
    quiet_budget=$((quiet_budget - 2))
  done
}

# ---------------------------------------------------------------- loads

raw="$tmp/raw.tsv"
: >"$raw"
record() { printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$raw"; }
calc() { awk "BEGIN { printf \"%.6g\", $* }"; }

write_wrk_script() {
  cat >"$tmp/report.lua" <<'EOF'
-- One line for bench.sh: requests, duration (us), p50 and p99 latency
-- (us), errors of any kind.
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("WRK %d %d %d %d %d\n", summary.requests,
    summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.status + e.timeout))
end
EOF
}

# HTTP load on PORT: keepalive or close. Prints
# "req/s p50_us p99_us requests errors cpu_ticks" where cpu_ticks is what
# the process tree CPU_PID (if any) spent meanwhile.
http_load() {
  local workload=$1 port=$2 cpu_pid=${3:-} before after=0 line
  [[ -n "$cpu_pid" ]] && before=$(cpu_ticks "$cpu_pid")
  if [[ "$mode" == smoke ]]; then
    line=$(curl_load "$workload" "$port")
  else
    local header=()
    [[ "$workload" == close ]] && header=(-H "Connection: close")
    line=$(timeout $((duration + 30)) wrk -t1 -c"$connections" \
      -d"${duration}s" "${header[@]}" -s "$tmp/report.lua" \
      "http://127.0.0.1:$port/" | awk '$1 == "WRK" { $1 = ""; print }') \
      || true
    [[ -n "$line" ]] || die "wrk against port $port gave no result"
  fi
  [[ -n "$cpu_pid" ]] && after=$(($(cpu_ticks "$cpu_pid") - before))
  local requests us p50 p99 errors
  read -r requests us p50 p99 errors <<<"$line"
  echo "$(calc "$requests * 1000000 / $us") $p50 $p99 $requests $errors $after"
}

# The smoke test's load: curl fetching the same URL over one kept-alive
# connection, or with a new connection each time, for about `duration`.
curl_load() {
  local workload=$1 port=$2 count header=() start end
  count=$([[ "$workload" == close ]] && echo 30 || echo 100)
  [[ "$workload" == close ]] && header=(-H "Connection: close")
  local config="$tmp/curl-$port.cfg"
  for ((i = 0; i < count; i++)); do
    echo "url = \"http://127.0.0.1:$port/\""
    echo "output = \"/dev/null\""
  done >"$config"
  start=$EPOCHREALTIME
  curl -sS --fail --max-time $((duration + 30)) "${header[@]}" \
    -w '%{time_total}\n' --config "$config" >"$tmp/curl-times" || die "curl through port $port failed"
  end=$EPOCHREALTIME
  local us
  us=$(calc "($end - $start) * 1000000")
  sort -g "$tmp/curl-times" | awk -v n="$count" -v us="$us" \
    '{ t[NR] = $1 * 1000000 } END {
      p99 = int(NR * 0.99); if (p99 < 1) p99 = 1
      printf "%d %d %d %d %d\n", NR, us, t[int((NR + 1) / 2)], t[p99],
        n - NR }'
}

# Bulk transfer through PORT. Prints "Gbit/s gigabytes cpu_ticks".
bulk_load() {
  local port=$1 cpu_pid=${2:-} before after=0 line=""
  [[ -n "$cpu_pid" ]] && before=$(cpu_ticks "$cpu_pid")
  if [[ "$mode" == smoke ]]; then
    # No iperf3 here: the dummy servers' /bytes/N, read by curl.
    line=$(curl -sS --fail --max-time $((duration + 30)) -o /dev/null \
      -w '%{size_download} %{time_total}' \
      "http://127.0.0.1:$port/bytes/20000000" \
      | awk '{ printf "%.6g %.6g", $1 * 8 / $2 / 1e9, $1 / 1e9 }') \
      || die "curl /bytes through port $port failed"
  else
    for _ in 1 2 3; do
      # The receiver's line: "[  5] 0.00-5.00 sec 21.5 GBytes 36.9 Gbits/sec
      # receiver". The server may still be closing the last test: retry.
      line=$(timeout $((duration + 30)) iperf3 -c 127.0.0.1 -p "$port" \
        -t "$duration" -f g 2>&1 | awk '/receiver/ {
          for (i = 1; i <= NF; i++) {
            if ($i == "GBytes") gb = $(i - 1)
            if ($i == "MBytes") gb = $(i - 1) / 1024
            if ($i == "Gbits/sec") rate = $(i - 1)
          }
          print rate, gb }') || true
      [[ -n "$line" ]] && break
      sleep 1
    done
    [[ -n "$line" ]] || die "iperf3 through port $port gave no result"
  fi
  [[ -n "$cpu_pid" ]] && after=$(($(cpu_ticks "$cpu_pid") - before))
  echo "$line $after"
}

# Opens N connections to PORT and holds them, idle, until stopped; runs as
# process NAME. /dev/tcp needs nothing but bash.
hold_idle_connections() {
  local name=$1 port=$2 n=$3
  (
    ulimit -n "$(ulimit -Hn)"
    opened=0
    for ((i = 0; i < n; i++)); do
      exec {fd}<>"/dev/tcp/127.0.0.1/$port" || break
      opened=$((opened + 1))
      # A pause every 100: a listener with a short accept queue (128 is
      # the usual default) would otherwise overflow, and each dropped
      # SYN costs the client a one-second retry.
      ((opened % 100)) || sleep 0.05
    done
    : "$fd"
    echo "$opened" >"$tmp/$name.opened"
    exec sleep 100000
  ) 2>"$tmp/$name.log" &
  pid_of[$name]=$!
  local tries=0
  until [[ -s "$tmp/$name.opened" ]]; do
    kill -0 "${pid_of[$name]}" 2>/dev/null \
      || die "the idle client died: $(cat "$tmp/$name.log")"
    ((++tries <= 1200)) || die "opening $n connections took over 2 min"
    sleep 0.1
  done
  local opened
  opened=$(<"$tmp/$name.opened")
  ((opened == n)) || die "opened only $opened of $n idle connections"
}

# ---------------------------------------------------------------- workloads

# Contenders that take part in WORKLOAD: 09 is layer 7, HTTP only.
contenders_for() {
  local workload=$1 c list=()
  for c in "${contenders[@]}"; do
    [[ "$c" == 09 && "$workload" == bulk ]] && continue
    list+=("$c")
  done
  echo "${list[*]}"
}

# The contenders in a different order each round, so that no one always
# runs first after a pause or last in a warm machine.
rotate() {
  local shift_by=$1
  shift
  local items=("$@") n=$# i
  for ((i = 0; i < n; i++)); do
    echo -n "${items[(i + shift_by) % n]} "
  done
}

# One value of a direct run, for the ratio of the contender run between
# two of them.
direct_metric=""

run_direct() {
  local workload=$1 set=$2 round=$3 port
  port=$(direct_port "$set")
  local backend_pid=${pid_of[backend-$set]}
  if [[ "$workload" == bulk ]]; then
    local gbps gb ticks result
    result=$(bulk_load "$port")
    read -r gbps gb ticks <<<"$result"
    record "$workload" "$set" "$round" direct gbps "$gbps"
    direct_metric=$gbps
  else
    local rps p50 p99 requests errors ticks result
    result=$(http_load "$workload" "$port" "$backend_pid")
    read -r rps p50 p99 requests errors ticks <<<"$result"
    record "$workload" "$set" "$round" direct rps "$rps"
    record "$workload" "$set" "$round" direct p50 "$p50"
    record "$workload" "$set" "$round" direct p99 "$p99"
    record "$workload" "$set" "$round" direct errors "$errors"
    record "$workload" "$set" "$round" direct backend_cpu_us \
      "$(calc "$ticks * 1000000 / $clk_tck / $requests")"
    direct_metric=$rps
  fi
}

# Runs every contender once, each between two direct runs, and records
# its figures and its ratio to the mean of the two direct runs.
workload_round() {
  local workload=$1 set=$2 round=$3 c before metric
  local order taking_part
  read -r -a taking_part <<<"$(contenders_for "$workload")"
  read -r -a order <<<"$(rotate "$((round - 1))" "${taking_part[@]}")"
  wait_quiet
  run_direct "$workload" "$set" "$round"
  for c in "${order[@]}"; do
    wait_quiet
    before=$direct_metric
    local port pid
    port=$(contender_port "$c" "$set")
    pid=${pid_of[$(instance "$c" "$set")]}
    if [[ "$workload" == bulk ]]; then
      local gbps gb ticks result
      result=$(bulk_load "$port" "$pid")
      read -r gbps gb ticks <<<"$result"
      metric=$gbps
      record "$workload" "$set" "$round" "$c" gbps "$gbps"
      record "$workload" "$set" "$round" "$c" cpu_ms_gb \
        "$(calc "$ticks * 1000 / $clk_tck / $gb")"
    else
      local rps p50 p99 requests errors ticks result
      result=$(http_load "$workload" "$port" "$pid")
      read -r rps p50 p99 requests errors ticks <<<"$result"
      metric=$rps
      record "$workload" "$set" "$round" "$c" rps "$rps"
      record "$workload" "$set" "$round" "$c" p50 "$p50"
      record "$workload" "$set" "$round" "$c" p99 "$p99"
      record "$workload" "$set" "$round" "$c" errors "$errors"
      record "$workload" "$set" "$round" "$c" cpu_us \
        "$(calc "$ticks * 1000000 / $clk_tck / $requests")"
    fi
    run_direct "$workload" "$set" "$round"
    record "$workload" "$set" "$round" "$c" ratio \
      "$(calc "$metric * 2 / ($before + $direct_metric)")"
    log "  $workload/$set round $round: ${label[$c]} $(printf %.3g "$metric")" \
      "= $(calc "$metric * 2 / ($before + $direct_metric)") x direct"
  done
}

declare -A rounds_of=()
run_workload() {
  local workload=$1 set=$2 rounds=$3 round c
  ((rounds > 0)) || return 0
  rounds_of[$workload-$set]=$rounds
  log "$workload, backends: $set ($rounds rounds of ${duration} s runs)"
  for c in $(contenders_for "$workload"); do start_contender "$c" "$set"; done
  for ((round = 1; round <= rounds; round++)); do
    workload_round "$workload" "$set" "$round"
  done
  for c in $(contenders_for "$workload"); do stop "$(instance "$c" "$set")"; done
}

# Memory: a fresh balancer, N idle client connections through it, RSS
# before and after.
run_memory() {
  local set=$1 run c name port n=$idle
  log "memory: $n idle connections through each balancer, backends: $set"
  local taking_part
  read -r -a taking_part <<<"$(contenders_for memory)"
  for ((run = 1; run <= memory_runs; run++)); do
    for c in $(rotate "$((run - 1))" "${taking_part[@]}"); do
      start_contender "$c" "$set"
      name=$(instance "$c" "$set")
      port=$(contender_port "$c" "$set")
      local pid=${pid_of[$name]} rss0 fds0 rss1 fds previous=-1 tries=0
      sleep 0.5
      rss0=$(rss_kib "$pid")
      fds0=$(fd_count "$pid")
      hold_idle_connections idle-client "$port" "$n"
      # Wait until the balancer has accepted them all (and dialled its
      # backends): its descriptor count stops growing.
      while :; do
        sleep 0.5
        fds=$(fd_count "$pid")
        ((fds >= fds0 + n && fds == previous)) && break
        previous=$fds
        ((++tries <= 120)) || { log "  ${label[$c]}: fd count still moving"; break; }
      done
      sleep 0.5
      rss1=$(rss_kib "$pid")
      record memory "$set" "$run" "$c" rss_before_kib "$rss0"
      record memory "$set" "$run" "$c" rss_after_kib "$rss1"
      record memory "$set" "$run" "$c" fds_per_conn \
        "$(calc "($fds - $fds0) / $n")"
      record memory "$set" "$run" "$c" bytes_per_conn \
        "$(calc "($rss1 - $rss0) * 1024 / $n")"
      log "  ${label[$c]}: RSS $((rss0 / 1024)) -> $((rss1 / 1024)) MiB," \
        "$(calc "($rss1 - $rss0) * 1024 / $n") B per connection"
      stop idle-client
      rm -f "$tmp/idle-client.opened"
      stop "$name"
    done
  done
  # Ratio to HAProxy, run by run.
  if has_haproxy; then
    for ((run = 1; run <= memory_runs; run++)); do
      local h
      h=$(values memory "$set" haproxy bytes_per_conn "$run")
      for c in $(contenders_for memory); do
        record memory "$set" "$run" "$c" ratio_haproxy "$(calc \
          "$(values memory "$set" "$c" bytes_per_conn "$run") / $h")"
      done
    done
  fi
}

# ---------------------------------------------------------------- figures

# The values recorded for workload, set, contender, metric (one round).
values() {
  awk -F'\t' -v w="$1" -v s="$2" -v c="$3" -v m="$4" -v r="${5:-}" \
    '$1 == w && $2 == s && $4 == c && $5 == m && (r == "" || $3 == r) \
    { print $6 }' "$raw"
}

median() {
  sort -g | awk '{ v[NR] = $1 } END {
    if (NR == 0) exit
    if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

figure() { values "$@" | median; }

# "lowest-highest" of the values, formatted with FORMAT.
spread() {
  local format=$1
  shift
  values "$@" | sort -g | awk -v f="$format" '
    NR == 1 { low = $1 } { high = $1 }
    END { if (NR > 1) printf f "–" f "\n", low, high }'
}

# Ratio to HAProxy, round by round (each side already a ratio to direct).
add_haproxy_ratios() {
  local workload=$1 set=$2 round c h
  has_haproxy || return 0
  for ((round = 1; round <= ${rounds_of[$workload-$set]:-0}; round++)); do
    h=$(values "$workload" "$set" haproxy ratio "$round")
    [[ -n "$h" ]] || continue
    record "$workload" "$set" "$round" direct ratio_haproxy "$(calc "1 / $h")"
    for c in $(contenders_for "$workload"); do
      record "$workload" "$set" "$round" "$c" ratio_haproxy \
        "$(calc "$(values "$workload" "$set" "$c" ratio "$round") / $h")"
    done
  done
}

# Number formatting for the table: "—" when there is no figure.
fmt() {
  local format=$1 value=${2:-}
  [[ -n "$value" ]] || { echo "—"; return; }
  awk -v f="$format" -v v="$value" 'BEGIN {
    if (f == "int") {
      s = sprintf("%.0f", v); out = ""
      while (length(s) > 3) {
        out = "," substr(s, length(s) - 2) out
        s = substr(s, 1, length(s) - 3)
      }
      print s out
    } else printf f "\n", v }'
}

# The "× direct" cell, with the spread over the rounds: 1.00 for direct.
ratio_cell() {
  if [[ "$3" == direct ]]; then
    echo "1.00"
    return
  fi
  local range
  range=$(spread %.2f "$1" "$2" "$3" ratio)
  echo "$(fmt %.2f "$(figure "$1" "$2" "$3" ratio)")${range:+ ($range)}"
}

http_table() {
  local workload=$1 set=$2 c name errors cpu
  echo "| contender | req/s | × direct (range) | × HAProxy | p50 ms | p99 ms | CPU µs/req |"
  echo "|---|--:|--:|--:|--:|--:|--:|"
  for c in direct $(contenders_for "$workload"); do
    if [[ "$c" == direct ]]; then
      cpu="($(fmt %.1f "$(figure "$workload" "$set" direct backend_cpu_us)") backend)"
    else
      cpu=$(fmt %.1f "$(figure "$workload" "$set" "$c" cpu_us)")
    fi
    errors=$(values "$workload" "$set" "$c" errors \
      | awk '{ s += $1 } END { print s + 0 }')
    name=${label[$c]}
    ((errors > 0)) && name+=" ($errors errors)"
    echo "| $name" \
      "| $(fmt int "$(figure "$workload" "$set" "$c" rps)")" \
      "| $(ratio_cell "$workload" "$set" "$c")" \
      "| $(fmt %.2f "$(figure "$workload" "$set" "$c" ratio_haproxy)")" \
      "| $(fmt %.2f "$(figure "$workload" "$set" "$c" p50 | awk '{ print $1 / 1000 }')")" \
      "| $(fmt %.2f "$(figure "$workload" "$set" "$c" p99 | awk '{ print $1 / 1000 }')")" \
      "| $cpu |"
  done
}

bulk_table() {
  local set=$1 c
  echo "| contender | Gbit/s | × direct (range) | × HAProxy | CPU ms/GB |"
  echo "|---|--:|--:|--:|--:|"
  for c in direct $(contenders_for bulk); do
    echo "| ${label[$c]}" \
      "| $(fmt %.1f "$(figure bulk "$set" "$c" gbps)")" \
      "| $(ratio_cell bulk "$set" "$c")" \
      "| $(fmt %.2f "$(figure bulk "$set" "$c" ratio_haproxy)")" \
      "| $(fmt %.0f "$(figure bulk "$set" "$c" cpu_ms_gb)") |"
  done
}

memory_table() {
  local set=$1 c name
  echo "| contender | RSS idle, MiB | RSS with $idle connections, MiB | bytes per connection | × HAProxy | fds per connection |"
  echo "|---|--:|--:|--:|--:|--:|"
  for c in $(contenders_for memory); do
    name=${label[$c]}
    [[ "$c" == 09 ]] && name+=" (layer 7: an idle client holds no backend connection)"
    echo "| $name" \
      "| $(fmt %.1f "$(figure memory "$set" "$c" rss_before_kib | awk '{ print $1 / 1024 }')")" \
      "| $(fmt %.1f "$(figure memory "$set" "$c" rss_after_kib | awk '{ print $1 / 1024 }')")" \
      "| $(fmt int "$(figure memory "$set" "$c" bytes_per_conn)")" \
      "| $(fmt %.2f "$(figure memory "$set" "$c" ratio_haproxy)")" \
      "| $(fmt %.1f "$(figure memory "$set" "$c" fds_per_conn)") |"
  done
}

# "Median of 3 rounds", "One round".
median_of() {
  if (($1 == 1)); then echo "One $2"; else echo "Median of $1 ${2}s"; fi
}

first_line() { "$@" 2>&1 | head -1 || true; }

versions() {
  local list
  list="$(rustc -V 2>/dev/null || echo "rustc ?")"
  if [[ "$mode" == smoke ]]; then
    list+=", $(first_line curl -V | cut -d' ' -f1-2)"
  else
    list+=", $(first_line haproxy -v | cut -d' ' -f1-3)"
    list+=", $(first_line nginx -v | sed 's/^nginx version: //')"
    list+=", $(first_line wrk -v | cut -d' ' -f1-2)"
    list+=", $(first_line iperf3 -v | cut -d' ' -f1-2)"
  fi
  echo "$list"
}

release_profile() {
  awk '/^\[profile.release\]/ { on = 1; next } /^\[/ { on = 0 }
    on && NF && !/^#/ { printf "%s%s", sep, $0; sep = ", " }' \
    "$root/Cargo.toml"
}

# A section for WORKLOAD and SET if it ran: heading, table, a line of
# explanation.
report_section() {
  local workload=$1 set=$2 rounds=${rounds_of[$1-$2]:-0} set_name
  ((rounds > 0)) || return 0
  case "$set" in
    nginx) set_name="nginx answering a fixed body" ;;
    dummy) set_name="the lab's dummy servers (axum)" ;;
    iperf) set_name="one iperf3 server behind every slot" ;;
  esac
  echo
  case "$workload" in
    keepalive)
      echo "## Small HTTP requests over kept-alive connections"
      echo
      echo "Backends: $set_name. $(median_of "$rounds" round)."
      echo
      http_table keepalive "$set" ;;
    close)
      echo "## A new TCP connection per request (\`Connection: close\`)"
      echo
      echo "Backends: $set_name. $(median_of "$rounds" round)."
      echo
      http_table close "$set" ;;
    bulk)
      if [[ "$mode" == smoke ]]; then
        echo "## Bulk transfer: curl reading 20 MB of /bytes/N"
      else
        echo "## Bulk transfer: iperf3, one stream, client to server"
      fi
      echo
      echo "Backends: $set_name. Layer-4 balancers only. $(median_of "$rounds" round)."
      echo
      bulk_table "$set" ;;
  esac
}

write_report() {
  local elapsed=$(($(date +%s) - started_at)) conditions set
  local limit
  limit="$(calc "$busy_limit * 100")%"
  if ((busy_pairs == 0)); then
    conditions="quiet: all $quiet_pairs runs started with the machine under $limit busy"
    ((waits > 0)) && conditions+=", $waits of them after waiting ($waited_total s in all) for other work to finish"
  else
    conditions="NOT quiet: $busy_pairs of $((busy_pairs + quiet_pairs)) runs started while other work kept the machine over $limit busy (up to $(calc "$max_busy * 100")%)"
  fi
  [[ -n "$others_seen" ]] && conditions+="; builds seen running during the run: ${others_seen% }"
  local load="wrk -t1 -c$connections, ${duration} s per run"
  [[ "$mode" == smoke ]] \
    && load="curl: 100 requests over one kept-alive connection, 30 with a new connection each"
  {
    echo "# Benchmarks"
    echo
    echo "Written by \`scripts/bench.sh\` ($mode run). Run it on your machine for"
    echo "your own figures; between machines, or moments, compare the ratios."
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'); the run took $((elapsed / 60)) min $((elapsed % 60)) s"
    echo "- command: \`$command_line\`"
    echo "- machine: $cores cores, $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo), Linux $(uname -r)"
    echo "- conditions: $conditions"
    echo "- versions: $(versions)"
    if [[ "$mode" == smoke ]]; then
      echo "- lab binaries: \`cargo build\` (debug: a smoke test of the script, not a benchmark), run with \`RUST_LOG=warn\`"
    else
      echo "- lab binaries: \`cargo build --release\` ($(release_profile)), run with \`RUST_LOG=warn\`"
    fi
    echo "- load: $load"
    echo
    echo "## How to read the tables"
    echo
    echo "- **direct**: the client talks to a backend itself, with no balancer in"
    echo "  between: the most any balancer could get."
    echo "- **× direct**: a contender's figure divided by the mean of the direct runs"
    echo "  just before and just after it (the machine's speed drifts, so only"
    echo "  neighbouring runs are compared); the median over the rounds, and in"
    echo "  brackets the lowest and highest round."
    echo "- **× HAProxy**: a contender's × direct divided by HAProxy's in the same"
    echo "  round; the median over the rounds."
    echo "- **CPU**: user and system time of the balancer's processes during the run,"
    echo "  per request (per GB for bulk): the steadiest figure of efficiency. For"
    echo "  direct, the backend's own time."
    echo
    echo "## Contenders"
    echo
    echo "- **04-round-robin**, **08-final**: the lab's layer-4 steps, with their"
    echo "  defaults (tokio's multi-thread runtime, one worker per core: $cores)."
    echo "- **09-http-proxy**: the lab's layer-7 proxy (hyper): HTTP workloads only."
    if [[ "$mode" != smoke ]]; then
      echo "- **HAProxy**: \`mode tcp\`, \`balance roundrobin\`, \`nbthread $cores\`, no"
      echo "  logging, default buffers (16 KiB), no \`option splice-auto\`."
      echo "- **nginx stream**: \`stream { upstream ... }\` (round robin by default),"
      echo "  \`worker_processes $cores\`, no logging, default buffers (16 KiB)."
      echo "- backends: one nginx (\`worker_processes $cores\`, no access log) answering"
      echo "  a 54-byte body on three ports; the lab's dummy servers as a second set;"
      echo "  one iperf3 server, every balancer slot pointed at it, for bulk."
    fi
    local c
    for c in "${contenders[@]}"; do
      [[ "$c" == x* ]] && echo "- **${label[$c]}**: \`${extra_command[$c]}\`"
    done
    for set in nginx dummy; do
      report_section keepalive "$set"
      report_section close "$set"
    done
    report_section bulk iperf
    report_section bulk dummy
    local memory_set=$memory_set_used
    if [[ -n "$(values memory "$memory_set" "${contenders[0]}" bytes_per_conn)" ]]; then
      echo
      echo "## Memory: $idle idle client connections, each relayed to a backend"
      echo
      echo "Resident set size (VmRSS, summed over the balancer's processes) of a"
      echo "freshly started balancer, before and after opening $idle connections"
      echo "that send nothing. $(median_of "$memory_runs" run). RSS counts only"
      echo "the pages a process has touched: a buffer allocated but never written"
      echo "costs less here than it will once memory is reused."
      echo
      memory_table "$memory_set"
    fi
    if [[ "$mode" != smoke ]] && [[ -f "$tmp/haproxy-nginx.cfg" ]]; then
      echo
      echo "## Configurations"
      echo
      echo "As written by the script (the other backend sets differ only in ports)."
      local file
      for file in haproxy-nginx.cfg nginx-stream-nginx.conf backend-nginx.conf; do
        [[ -f "$tmp/$file" ]] || continue
        echo
        echo "<details><summary>${file}</summary>"
        echo
        echo '```'
        sed "s|$tmp|\$TMP|g" "$tmp/$file"
        echo '```'
        echo
        echo "</details>"
      done
    fi
  } >"$out.tmp"
  mv "$out.tmp" "$out"
}

# Fails unless every contender got a figure in every workload that ran.
check_complete() {
  local workload set c missing=()
  for workload in keepalive close bulk; do
    for set in nginx dummy iperf; do
      ((${rounds_of[$workload-$set]:-0} > 0)) || continue
      for c in direct $(contenders_for "$workload"); do
        [[ -n "$(values "$workload" "$set" "$c" rps)$(values "$workload" \
          "$set" "$c" gbps)" ]] || missing+=("$workload/$set/${label[$c]}")
      done
    done
  done
  if wants memory "$workloads_wanted"; then
    for c in $(contenders_for memory); do
      [[ -n "$(values memory "${memory_set_used}" "$c" bytes_per_conn)" ]] \
        || missing+=("memory/${label[$c]}")
    done
  fi
  ((${#missing[@]} == 0)) || die "no figure for: ${missing[*]}"
}

# ---------------------------------------------------------------- main

cores=$(nproc)
clk_tck=$(getconf CLK_TCK)
ulimit -n "$(ulimit -Hn)"
nofile=$(ulimit -n)
((nofile >= 2 * idle + 200)) \
  || die "$idle idle connections need $((2 * idle + 200)) open files; the limit is $nofile"

contenders=()
for c in 04 08 09 haproxy nginx; do
  wants "$c" "$contenders_wanted" && contenders+=("$c")
done
declare -A extra_command=()
((${#extras[@]} <= 4)) || die "at most 4 --also contenders"
for ((i = 0; i < ${#extras[@]}; i++)); do
  [[ "${extras[i]}" == *=* ]] || die "--also wants LABEL=COMMAND"
  c="x$((i + 1))"
  label[$c]=${extras[i]%%=*}
  extra_command[$c]=${extras[i]#*=}
  slot[$c]=$((6 + i))
  contenders+=("$c")
done
((${#contenders[@]} > 0)) || die "no contender chosen (--contenders)"

# Every port any of them could use, checked before anything is built or
# started.
mapfile -t all_ports < <(seq $((port_base + 1)) $((port_base + 21)))
for c in "${contenders[@]}"; do
  for set in nginx dummy iperf; do
    all_ports+=("$(contender_port "$c" "$set")")
  done
done
check_ports_free "${all_ports[@]}"

if [[ "$mode" == smoke ]]; then
  command -v curl >/dev/null || die "the smoke test needs curl"
  build_steps debug
else
  install_tools
  build_steps release
fi
# Drop the steps whose binaries are missing (a step not written yet).
available=()
for c in "${contenders[@]}"; do
  case "$c" in
    08) [[ -n "${binary[08-final]:-}" ]] || { log "no 08-final: skipped"; continue; } ;;
    09) [[ -n "${binary[09-http-proxy]:-}" ]] || { log "no 09-http-proxy: skipped"; continue; } ;;
  esac
  available+=("$c")
done
contenders=("${available[@]}")
mkdir -p "$(dirname "$out")"
write_wrk_script

memory_set_used=nginx
if [[ "$mode" == smoke ]]; then
  memory_set_used=dummy
  start_backends dummy
  wants memory "$workloads_wanted" && run_memory dummy
  for workload in keepalive close bulk; do
    wants "$workload" "$workloads_wanted" || continue
    run_workload "$workload" dummy "$runs"
  done
else
  start_backends nginx
  wants memory "$workloads_wanted" && run_memory nginx
  for workload in keepalive close; do
    wants "$workload" "$workloads_wanted" || continue
    run_workload "$workload" nginx "$runs"
  done
  if ((dummy_runs > 0)); then
    start_backends dummy
    for workload in keepalive close; do
      wants "$workload" "$workloads_wanted" || continue
      run_workload "$workload" dummy "$dummy_runs"
    done
    stop backend-dummy
  fi
  if wants bulk "$workloads_wanted"; then
    start_backends iperf
    run_workload bulk iperf "$runs"
    stop backend-iperf
  fi
fi

for workload in keepalive close bulk; do
  for set in nginx dummy iperf; do add_haproxy_ratios "$workload" "$set"; done
done
((keep)) && log "raw figures: $raw"
write_report
cat "$out"
log "wrote ${out#"$root"/} in $(($(date +%s) - started_at)) s"
check_complete
