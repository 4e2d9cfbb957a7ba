#!/usr/bin/env bash
# Compile TypeScript to dist/ (plain node at run time: no loader thread, ~35 MB less RSS per process) and
# copy the non-TypeScript assets the code reads beside itself.
# `--hub-template` (npm start, npm run build, the tests): also the embedded hub's prebuilt empty database
# (services/hub/pglite-template.ts), made once per PGlite version and kept in .cache/; the kit images,
# which run no embedded hub, are built without it.
set -euo pipefail
cd "$(dirname "$0")/.."
hub_template=0
for arg in "$@"; do
  case "$arg" in
    --hub-template) hub_template=1 ;;
    *) echo "build.sh: unknown option $arg" >&2; exit 2 ;;
  esac
done
rm -rf dist
npx tsc -p tsconfig.build.json
find core cli services hardware firmware -type f \( -name '*.json' -o -name '*.html' -o -name '*.css' -o -name '*.js' -o -name '*.conf' -o -name '*.svg' \) |
  while IFS= read -r f; do mkdir -p "dist/$(dirname "$f")"; cp "$f" "dist/$f"; done
if [ "$hub_template" = 1 ]; then
  pglite="$(node -p "JSON.parse(require('fs').readFileSync('node_modules/@electric-sql/pglite/package.json','utf8')).version")"
  cache=".cache/pglite-template-$pglite"
  if [ ! -f "$cache/popkit-template.json" ]; then
    echo "build.sh: making the embedded hub's database template (PGlite $pglite initdb, once)" >&2
    node --input-type=module -e \
      "const m = await import('./dist/services/hub/pglite-template.js'); await m.makePgliteTemplate(process.argv[1]);" \
      "$cache"
  fi
  cp -r "$cache" dist/services/hub/pglite-template
fi
date -u +%FT%TZ > dist/.built
