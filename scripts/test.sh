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
echo "== tests (${#files[@]} files)"
exec node --import tsx --test --test-concurrency=2 --test-timeout=300000 --test-reporter=spec "${files[@]}"
