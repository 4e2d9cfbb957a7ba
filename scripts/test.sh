#!/usr/bin/env bash
# The whole suite: lint, type check, then every test tier this machine can run.
# `bash scripts/test.sh unit` (or integration, e2e, browser) runs one tier.
set -euo pipefail
cd "$(dirname "$0")/.."

# The skip policy's check, on a runner's spec-reporter output: every `﹣ name (…) # reason` line is a
# skipped test; each reason must match a pattern (extended regex, one a line; `#` lines are the why) of
# the allowlist. A skip without a reason and a todo test are never accepted. `bash scripts/test.sh --check-skips LOG ALLOWLIST`.
check_skips() {
  local log="$1" allow="$2" patterns skipped n_skip n_todo bad
  patterns="$(mktemp)"
  grep -vE '^[[:space:]]*(#|$)' "$allow" >"$patterns" 2>/dev/null || true
  # colours off, then the skipped lines as `name # reason`
  skipped="$(sed -E 's/\x1b\[[0-9;]*m//g' "$log" |
    sed -nE 's/^[[:space:]]*﹣ (.*) \([0-9.]+m?s\) # (.*)$/\1 # \2/p')"
  n_skip="$(sed -E 's/\x1b\[[0-9;]*m//g' "$log" | sed -nE 's/^ℹ skipped ([0-9]+)$/\1/p' | tail -1)"
  n_todo="$(sed -E 's/\x1b\[[0-9;]*m//g' "$log" | sed -nE 's/^ℹ todo ([0-9]+)$/\1/p' | tail -1)"
  bad=0
  if [ -n "$skipped" ]; then
    while IFS= read -r line; do
      # a skip without a reason (`# SKIP`) names nothing CI could accept
      if [ "${line% # SKIP}" = "$line" ] && [ -s "$patterns" ] && grep -qE -f "$patterns" <<<"$line"; then
        echo "== accepted skip: $line"
      else
        echo "== SKIPPED (not accepted in CI): $line" >&2
        bad=1
      fi
    done <<<"$skipped"
  fi
  if [ "${n_skip:-0}" -gt 0 ] && [ -z "$skipped" ]; then
    echo "== the runner skipped ${n_skip} tests that could not be listed" >&2
    bad=1
  fi
  if [ "${n_todo:-0}" -gt 0 ]; then
    echo "== ${n_todo} todo tests: a todo is not a pass" >&2
    bad=1
  fi
  rm -f "$patterns"
  if [ "$bad" = 1 ]; then
    echo "== skipped tests fail the run in CI; fix the cause, or add the reason to $allow with why CI may skip it" >&2
    return 1
  fi
}
if [ "${1:-}" = --check-skips ]; then check_skips "$2" "$3"; exit; fi
export NODE_ENV=test
tiers=("${@:-unit integration e2e browser}")
if [ "$#" -eq 0 ]; then
  echo "== lint (biome)"; npx biome check .
  echo "== type check (tsc --noEmit)"; npx tsc --noEmit
  tiers=(unit integration e2e browser)
fi
files=()
for t in "${tiers[@]}"; do
  while IFS= read -r f; do files+=("$f"); done < <(find "tests/$t" -name '*.test.ts' 2>/dev/null | sort)
done
if [ "${#files[@]}" -eq 0 ]; then echo "no test files found" >&2; exit 1; fi
# dist/ is built once, before any test starts: a test that rebuilt it (popkit-up runs the compiled kit)
# would empty it under every test running beside it.
if printf '%s\n' "${files[@]}" | grep -q '^tests/e2e/'; then
  echo "== build dist/ (scripts/build.sh)"; bash scripts/build.sh --hub-template
  export POPKIT_TEST_DIST_BUILT=1
fi
echo "== tests (${#files[@]} files)"
# Node's runner with the spec reporter, the longest files first (tests/support/suite-runner.ts: the order
# comes from tests/durations.json; POPKIT_TEST_DURATIONS_OUT=FILE writes this run's figures to FILE)
runner=(node --import tsx tests/support/suite-runner.ts --concurrency 2 --timeout 300000 "${files[@]}")

# No silent green. In CI (CI=true, or running as root, as .ci/run does) a skipped or todo test fails the run
# unless every skip's reason matches a pattern of tests/accepted-skips.txt; POPKIT_STRICT_SKIPS=1/0 forces
# the policy on/off. The runner's output is passed through as it comes, and its exit code is kept.
strict=0
if [ "${CI:-}" = true ] || [ "${CI:-}" = 1 ] || [ "$(id -u)" = 0 ]; then strict=1; fi
strict="${POPKIT_STRICT_SKIPS:-$strict}"
run() {
  if [ "$strict" != 1 ]; then exec "$@"; fi
  local log rc
  log="$(mktemp)"
  set +e
  "$@" | tee "$log"
  rc="${PIPESTATUS[0]}"
  set -e
  check_skips "$log" tests/accepted-skips.txt || rc=1
  rm -f "$log"
  exit "$rc"
}
# Coverage of the product code, printed after the runner's own summary. c8 hands NODE_V8_COVERAGE to
# the runner, so every process a test starts with the inherited environment (each test file, popkit
# children) writes its coverage too; c8 exits with the runner's exit code. POPKIT_COVERAGE=0 skips it.
if [ "${POPKIT_COVERAGE:-1}" = 0 ]; then run "${runner[@]}"; fi
if [ ! -x node_modules/.bin/c8 ]; then
  echo "== no coverage: c8 is not installed (npm ci installs it)" >&2
  run "${runner[@]}"
fi
run node_modules/.bin/c8 --reporter=text-summary --reports-dir=coverage --exclude-node-modules \
  --include='core/**' --include='services/**' --include='firmware/**' --include='hardware/**' \
  --include='cli/**' --include='bin/**' \
  "${runner[@]}"
