#!/usr/bin/env bash
# Shows what a step changed in the step it builds on: the unified diff of
# their src/lib.rs, src/main.rs and Cargo.toml (less the tools' tables,
# [package.metadata.lab]), coloured on a terminal.
#
#   scripts/diff-steps.sh 04 05          what step 05 changed in step 04
#   scripts/diff-steps.sh 04-round-robin 05-random-robin   (same)
#   scripts/diff-steps.sh                one line per step and the step it
#                                        builds on: "04 → 06: +N −M lines"
#   scripts/diff-steps.sh --color=always 04 05 | less -R
#
# Options:
#   --color=WHEN   auto (default: colour only on a terminal), always, never
#   -h, --help     this text
#
# A step is named by its number ("04") or its folder ("04-round-robin").
# The step each one builds on is its `parent` in [package.metadata.lab] of
# its Cargo.toml (06 and 09 build on 04), read through `cargo metadata`.
# Works from any folder; reads files only.
set -euo pipefail
# For lab_paths, lab_steps and print_header; sourcing only defines them.
# shellcheck source-path=SCRIPTDIR source=lib/lab.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/lab.sh"

lab_paths
# The files that hold a step's lesson, its CLI and its dependencies.
files=(src/lib.rs src/main.rs Cargo.toml)

# File $2 of step $1 as the diff shows it. Cargo.toml without its
# [package.metadata.lab] tables: they tell the tools how to run the step
# (its parent, its demo), which is no part of the lesson.
lesson_file() {
  local path="$root/steps/$1/$2"
  if [[ "$2" == Cargo.toml && -f "$path" ]]; then
    awk '/^\[/ { skip = ($0 ~ /^\[package\.metadata\.lab[].]/) }
      !skip' "$path"
  elif [[ -f "$path" ]]; then
    cat "$path"
  fi
}

# diff exits 1 when the files differ: that is the normal case here.
diff_files() {
  diff "$@" || (( $? == 1 ))
}

show_diff() {
  local color=$1 a b
  a=$(lab_steps "$2" | cut -f1) || exit 2
  b=$(lab_steps "$3" | cut -f1) || exit 2
  local file
  for file in "${files[@]}"; do
    # A file that one step lacks shows as wholly added or removed.
    diff_files -u --color="$color" \
      --label "steps/$a/$file" --label "steps/$b/$file" \
      <(lesson_file "$a" "$file") <(lesson_file "$b" "$file")
  done
}

# "+N −M" for one pair: lines added and removed over the three files.
count_changes() {
  local a=$1 b=$2 file changes added=0 removed=0
  for file in "${files[@]}"; do
    # Print only changed lines, each as a bare "+" or "-".
    changes=$(diff_files --unchanged-line-format='' \
      --old-line-format=$'-\n' --new-line-format=$'+\n' \
      <(lesson_file "$a" "$file") <(lesson_file "$b" "$file"))
    added=$(( added + $(grep -c '^+' <<<"$changes" || true) ))
    removed=$(( removed + $(grep -c '^-' <<<"$changes" || true) ))
  done
  printf '+%d −%d' "$added" "$removed"
}

summary() {
  local step parent pairs=0
  while IFS=$'\t' read -r step parent _; do
    [[ "$parent" == - ]] && continue
    printf '%s → %s: %s lines   (%s → %s)\n' \
      "${parent%%-*}" "${step%%-*}" \
      "$(count_changes "$parent" "$step")" "$parent" "$step"
    pairs=$(( pairs + 1 ))
  done < <(lab_steps)
  if (( pairs == 0 )); then
    echo "error: no step in $root/steps names a parent" >&2
    exit 2
  fi
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
