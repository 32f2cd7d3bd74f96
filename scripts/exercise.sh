#!/usr/bin/env bash
# The tutorial's exercises: each chapter asks you to write some code, and
# a test that fails until you have checks your answer. The tests are
# ignored by `cargo test --workspace`; this script runs the one you name.
#
#   scripts/exercise.sh --list              every exercise, its chapter
#   scripts/exercise.sh ID                  check your answer to one
#   scripts/exercise.sh --solution ID       show its worked solution
#   scripts/exercise.sh --prove [ID...]     apply each solution in turn,
#                                           run its test, take it out
#                                           again (scripts/check.sh does)
#
# A solution is solutions/ID.patch: a few lines that say which exercise
# it answers and which test checks it (Exercise:, Chapter:, Package:,
# Test:), a paragraph on why it is written so, then the change as
# `git diff` prints it. --prove needs the files a solution changes to
# have no change of yours (it refuses otherwise) and puts them back as
# they were, also when it is interrupted.
#
# Exit status: 0 done (or every solution passed), 1 not done yet (or a
# solution failed), 2 an unknown exercise or a wrong command line.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib/lab.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/lab.sh"

lab_paths
cd "$root"
solutions="$root/solutions"

usage() {
  echo "usage: scripts/exercise.sh ID | --list | --solution ID | --prove [ID...]" >&2
  exit 2
}

# The value of field $2 ("Package") in the preamble of solution file $1.
field() {
  awk -v key="$2:" '/^diff --git / { exit } $1 == key { sub(/^[^:]*: */, ""); print; exit }' "$1"
}

# The files solution $1 changes, one a line.
changed_files() {
  awk '/^diff --git / { sub(/^b\//, "", $4); print $4 }' "$1"
}

patch_of() {
  local patch="$solutions/$1.patch"
  if [[ ! -f "$patch" ]]; then
    echo "error: no exercise $1 (scripts/exercise.sh --list names them)" >&2
    exit 2
  fi
  echo "$patch"
}

# Runs the test of exercise $1 and keeps what cargo printed in `output`;
# its status is cargo's.
run_test() {
  local patch package test
  patch=$(patch_of "$1")
  package=$(field "$patch" Package)
  test=$(field "$patch" Test)
  [[ -n "$package" && -n "$test" ]] ||
    die "$patch: its preamble needs Package: and Test: lines"
  output=$(RUST_BACKTRACE=0 cargo test -q -p "$package" --test exercises -- \
    --ignored --exact "$test" 2>&1)
}

# What the test said when it failed: the panic's message, indented.
panic_message() {
  awk '
    /panicked at / { taking = 1; next }
    taking && (/^note: / || /^$/ || /^stack backtrace/ || /^----/) { exit }
    taking { print "  " $0 }
  ' <<<"$output"
}

check() {
  local id=$1 patch files
  patch=$(patch_of "$id")
  files=$(changed_files "$patch" | paste -sd ' ' | sed 's/ /, /g')
  if run_test "$id"; then
    if grep -q "test result: ok. 1 passed" <<<"$output"; then
      echo "exercise $id: done, its test passes."
      return 0
    fi
    die "exercise $id: its test did not run (cargo's output follows)"$'\n'"$output"
  fi
  if grep -q "^test result: FAILED" <<<"$output"; then
    echo "exercise $id: not done yet, its test fails:"
    panic_message
  else
    echo "exercise $id: not done yet, it does not build:"
    grep -E -A12 '^error(\[|:)' <<<"$output" | head -40 | sed 's/^/  /'
  fi
  echo "Change $files and run this again."
  echo "Stuck? scripts/exercise.sh --solution $id"
  return 1
}

list() {
  local patch id
  for patch in "$solutions"/*.patch; do
    id=$(basename "$patch" .patch)
    printf '%-26s %s (%s)\n' "$id" "$(field "$patch" Exercise)" \
      "$(field "$patch" Chapter)"
  done
}

# The solution being proved, to be taken out again however the script
# ends.
applied=""
take_out() {
  if [[ -n "$applied" ]]; then
    git apply -R "$applied"
    applied=""
  fi
}

prove() {
  local ids=("$@") id patch passed=0 failed=0 file
  if (( ${#ids[@]} == 0 )); then
    for patch in "$solutions"/*.patch; do
      ids+=("$(basename "$patch" .patch)")
    done
  fi
  trap take_out EXIT
  trap 'take_out; exit 130' INT
  trap 'take_out; exit 143' TERM
  for id in "${ids[@]}"; do
    patch=$(patch_of "$id")
    while read -r file; do
      git diff --quiet -- "$file" ||
        die "$file has changes of yours; commit or stash them before --prove"
    done < <(changed_files "$patch")
    git apply --check "$patch" ||
      die "solutions/$id.patch no longer applies: the code it changes moved"
    git apply "$patch"
    applied=$patch
    if run_test "$id" && grep -q "test result: ok. 1 passed" <<<"$output"; then
      echo "ok   $id"
      passed=$((passed + 1))
    else
      echo "FAIL $id: its test fails with the solution applied:"
      tail -40 <<<"$output" | sed 's/^/  /'
      failed=$((failed + 1))
    fi
    take_out
  done
  echo "solutions: $passed passed, $failed failed"
  (( failed == 0 ))
}

case "${1:-}" in
  -h|--help) print_header "${BASH_SOURCE[0]}" ;;
  --list) list ;;
  --solution) [[ $# == 2 ]] || usage; cat "$(patch_of "$2")" ;;
  --prove) shift; prove "$@" ;;
  ""|-*) usage ;;
  *) [[ $# == 1 ]] || usage; check "$1" ;;
esac
