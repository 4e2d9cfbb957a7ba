#!/usr/bin/env bash
# The whole suite: lint, type check, then every test tier this machine can run.
# `bash scripts/test.sh unit` (or integration, e2e, browser) runs one tier.
set -euo pipefail
cd "$(dirname "$0")/.."
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
  echo "== build dist/ (scripts/build.sh)"; bash scripts/build.sh
  export POPKIT_TEST_DIST_BUILT=1
fi
echo "== tests (${#files[@]} files)"
runner=(node --import tsx --test --test-concurrency=2 --test-timeout=300000 --test-reporter=spec "${files[@]}")
# Coverage of the product code, printed after the runner's own summary. c8 hands NODE_V8_COVERAGE to
# the runner, so every process a test starts with the inherited environment (each test file, popkit
# children) writes its coverage too; c8 exits with the runner's exit code. POPKIT_COVERAGE=0 skips it.
if [ "${POPKIT_COVERAGE:-1}" = 0 ]; then exec "${runner[@]}"; fi
if [ ! -x node_modules/.bin/c8 ]; then
  echo "== no coverage: c8 is not installed (npm ci installs it)" >&2
  exec "${runner[@]}"
fi
exec node_modules/.bin/c8 --reporter=text-summary --reports-dir=coverage --exclude-node-modules \
  --include='core/**' --include='services/**' --include='firmware/**' --include='hardware/**' \
  --include='cli/**' --include='bin/**' \
  "${runner[@]}"
