#!/usr/bin/env bash
# Shows what changed in the code between two steps: the unified diff of
# their src/lib.rs, src/main.rs and Cargo.toml, coloured on a terminal.
#
#   scripts/diff-steps.sh 04 05          what step 05 changed in step 04
#   scripts/diff-steps.sh 04-round-robin 05-random-robin   (same)
#   scripts/diff-steps.sh                one line per neighbouring pair:
#                                        "04 → 05: +N −M lines"
#   scripts/diff-steps.sh --color=always 04 05 | less -R
#
# Options:
#   --color=WHEN   auto (default: colour only on a terminal), always, never
#   -h, --help     this text
#
# A step is named by its number ("04") or its folder ("04-round-robin").
# Works from any folder; reads files only.
set -euo pipefail
# For print_header; sourcing only defines functions.
# shellcheck source-path=SCRIPTDIR source=lib/lab.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/lab.sh"

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# The files that hold a step's lesson, its CLI and its dependencies.
files=(src/lib.rs src/main.rs Cargo.toml)

# Every step folder name, in order: 01-ping 02-forward ...
all_steps() {
  local dir
  for dir in "$root"/steps/[0-9][0-9]-*/; do
    [[ -d "$dir" ]] && basename "$dir"
  done
}

# "04", "4", "04-round-robin" or "steps/04-round-robin/" -> "04-round-robin".
resolve_step() {
  local name=${1%/}
  name=${name#steps/}
  [[ "$name" =~ ^[0-9]$ ]] && name="0$name"
  local step
  for step in $(all_steps); do
    if [[ "$step" == "$name" || "${step%%-*}" == "$name" ]]; then
      echo "$step"
      return 0
    fi
  done
  {
    echo "error: no step \"$1\" in steps/"
    echo "known steps: $(all_steps | tr '\n' ' ')"
  } >&2
  return 2
}

# diff exits 1 when the files differ: that is the normal case here.
diff_files() {
  diff "$@" || (( $? == 1 ))
}

show_diff() {
  local a b color=$1
  a=$(resolve_step "$2") || exit 2
  b=$(resolve_step "$3") || exit 2
  local file
  for file in "${files[@]}"; do
    # -N: a file that one step lacks shows as wholly added or removed.
    diff_files -u -N --color="$color" \
      --label "steps/$a/$file" --label "steps/$b/$file" \
      "$root/steps/$a/$file" "$root/steps/$b/$file"
  done
}

# "+N −M" for one pair: lines added and removed over the three files.
count_changes() {
  local a=$1 b=$2 file changes added=0 removed=0
  for file in "${files[@]}"; do
    # Print only changed lines, each as a bare "+" or "-".
    changes=$(diff_files -N --unchanged-line-format='' \
      --old-line-format=$'-\n' --new-line-format=$'+\n' \
      "$root/steps/$a/$file" "$root/steps/$b/$file")
    added=$(( added + $(grep -c '^+' <<<"$changes" || true) ))
    removed=$(( removed + $(grep -c '^-' <<<"$changes" || true) ))
  done
  printf '+%d −%d' "$added" "$removed"
}

summary() {
  local steps previous="" step
  mapfile -t steps < <(all_steps)
  if (( ${#steps[@]} < 2 )); then
    echo "error: fewer than two steps in $root/steps" >&2
    exit 2
  fi
  for step in "${steps[@]}"; do
    if [[ -n "$previous" ]]; then
      printf '%s → %s: %s lines   (%s → %s)\n' \
        "${previous%%-*}" "${step%%-*}" \
        "$(count_changes "$previous" "$step")" "$previous" "$step"
    fi
    previous=$step
  done
  echo "details: scripts/diff-steps.sh A B   (e.g. 04 05)"
}

color=auto
args=()
while (( $# > 0 )); do
  case "$1" in
    -h|--help) print_header "${BASH_SOURCE[0]}"; exit 0 ;;
    --color=*) color=${1#--color=} ;;
    --color) color=${2:?--color needs auto, always or never}; shift ;;
    -*) echo "error: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) args+=("$1") ;;
  esac
  shift
done
case "$color" in
  auto|always|never) ;;
  *) echo "error: --color takes auto, always or never" >&2; exit 2 ;;
esac

case ${#args[@]} in
  0) summary ;;
  2) show_diff "$color" "${args[0]}" "${args[1]}" ;;
  *)
    echo "usage: scripts/diff-steps.sh [A B]   (see --help)" >&2
    exit 2
    ;;
esac
