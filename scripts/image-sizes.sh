#!/usr/bin/env bash
# What Popkit adds to each kit image, computed without a Docker engine or a registry (docs/fleet.md#image-sizes):
#   apt    the run stage's `apt-get install` lines, read from each Dockerfile, resolved by apt itself
#          (--no-install-recommends, as the Dockerfiles do) against a package database that holds only
#          what debian:bookworm-slim holds (Priority: required + apt + usr-is-merged, which is what its
#          minbase build installs), and summed as the packages' Installed-Size. Per architecture: this
#          machine's own index, and arm64 from Debian's arm64 index fetched by apt into a temporary
#          directory (the machine's apt set-up and dpkg architectures are not changed).
#   node_modules   `npm ci --omit=dev --include=optional` in a temporary copy (postinstall included, so
#          native builds are what a build stage leaves), for THIS machine's architecture only.
#   dist   scripts/build.sh on a temporary copy of the sources the Dockerfiles COPY.
#   other  bin/, package.json and deploy/kit/entrypoint.sh, copied as they are.
# Not computed: the base images (no registry access here), Ubuntu's and NVIDIA's packages (Jetson
# image), Raspberry Pi's archive (Debian's libcamera stands in for it). MB = 10^6 bytes.
# Usage: bash scripts/image-sizes.sh [--no-arm64] [--no-npm]
#   --no-arm64  only this machine's architecture for apt (no index fetch)
#   --no-npm    skip npm ci and the build (apt figures only)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
ARM64=1
NPM=1
for a in "$@"; do
  case "$a" in
    --no-arm64) ARM64=0 ;;
    --no-npm) NPM=0 ;;
    *)
      echo "usage: $0 [--no-arm64] [--no-npm]" >&2
      exit 2
      ;;
  esac
done

TMP=$(mktemp -d "${TMPDIR:-/tmp}/popkit-image-sizes.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
HOST_ARCH=$(dpkg --print-architecture)

mb() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1000000 }'; }
bytes() { du -sb "$1" | cut -f1; }

# ---- the Dockerfiles: run stage base image and apt packages --------------------------------------------
DOCKERFILES=(Dockerfile.template Dockerfile.raspberrypi5 Dockerfile.jetson-orin-nx-xavier-nx-devkit)

# The Dockerfile's instructions as single lines (continuations joined, comments dropped).
instructions() {
  awk '/^[[:space:]]*#/ { next } { sub(/\\[[:space:]]*$/, " \\"); print }' "$1" |
    awk '{ if (sub(/ \\$/, " ")) { buf = buf $0 } else { print buf $0; buf = "" } }'
}
# The run stage (the last FROM) image.
run_base() { instructions "$1" | awk 'toupper($1) == "FROM" { img = $2 } END { print img }'; }
# Every package named by an `apt-get install` in the run stage (options dropped).
run_apt_packages() {
  instructions "$1" | awk '
    toupper($1) == "FROM" { run = 0; pk = "" }
    toupper($1) == "FROM" && tolower($NF) == "run" { run = 1 }
    run && toupper($1) == "RUN" {
      n = split($0, parts, /&&|;/)
      for (i = 1; i <= n; i++) {
        m = split(parts[i], w, /[[:space:]]+/); on = 0
        for (j = 1; j <= m; j++) {
          if (w[j] == "apt-get") { on = 1; continue }
          if (on == 1 && w[j] == "install") { on = 2; continue }
          if (on == 2 && w[j] != "" && w[j] !~ /^-/) print w[j]
        }
      }
    }' | sort -u
}

# ---- apt: a package database that holds debian:bookworm-slim, per architecture ---------------------------
# apt_opts ARCH: options that make apt-get/apt-cache use ARCH's index and the fake base image's status.
declare -A APT_LISTS
APT_LISTS[$HOST_ARCH]=/var/lib/apt/lists
apt_opts() {
  local arch=$1
  echo "-q -o APT::Architecture=$arch -o APT::Architectures::=$arch -o Dir::State::Lists=${APT_LISTS[$arch]}" \
    "-o Dir::State::status=$TMP/apt-$arch/status -o Dir::Cache=$TMP/apt-$arch/cache -o Debug::NoLocking=1" \
    "-o APT::Get::Show-Versions=0"
}
prepare_arch() {
  local arch=$1 d=$TMP/apt-$arch
  mkdir -p "$d/cache/archives/partial"
  : >"$d/status"
  if [ -z "${APT_LISTS[$arch]:-}" ]; then
    mkdir -p "$d/lists/partial"
    APT_LISTS[$arch]=$d/lists
    # shellcheck disable=SC2046
    if ! apt-get $(apt_opts "$arch") update >"$d/update.log" 2>&1; then
      echo "apt: could not fetch the $arch index (see below); $arch skipped" >&2
      tail -3 "$d/update.log" >&2
      return 1
    fi
  fi
  # debian:bookworm-slim = what a minbase bootstrap installs: Priority: required, apt, usr-is-merged
  # (apt would pick usrmerge + perl for init-system-helpers' `usrmerge | usr-is-merged`, bootstrap does not)
  local req
  # shellcheck disable=SC2046
  req=$(apt-cache $(apt_opts "$arch") dumpavail | awk '/^Package:/ { p = $2 } /^Priority: required$/ { print p }' | sort -u)
  # shellcheck disable=SC2046,SC2086
  apt-get $(apt_opts "$arch") -s install --no-install-recommends $req apt usr-is-merged 2>/dev/null |
    awk '/^Inst / { print $2 }' >"$d/base.txt"
  [ -s "$d/base.txt" ] || {
    echo "apt: no base package set for $arch" >&2
    return 1
  }
  # shellcheck disable=SC2046
  xargs apt-cache $(apt_opts "$arch") show --no-all-versions <"$d/base.txt" |
    awk '{ print } /^Package:/ { print "Status: install ok installed" }' >"$d/status.new"
  mv "$d/status.new" "$d/status"
}
# apt_size ARCH TAG PKG...: "<kB> <count>" of what `apt-get install --no-install-recommends` adds to the
# base; the packages by size go to $TMP/apt-ARCH/sizes-TAG.txt.
apt_size() {
  local arch=$1 tag=$2
  shift 2
  local d=$TMP/apt-$arch out
  # shellcheck disable=SC2046
  if ! out=$(apt-get $(apt_opts "$arch") -s install --no-install-recommends "$@" 2>&1); then
    echo "apt ($arch): $(echo "$out" | grep -E '^E:' | head -3)" >&2
    echo "- -"
    return
  fi
  echo "$out" | awk '/^Inst / { print $2 }' >"$d/last.txt"
  # shellcheck disable=SC2046
  xargs apt-cache $(apt_opts "$arch") show --no-all-versions <"$d/last.txt" |
    awk '/^Package:/ { p = $2 } /^Installed-Size:/ { print $2, p }' | sort -rn >"$d/sizes-$tag.txt"
  awk -v n="$(wc -l <"$d/last.txt")" '{ s += $1 } END { print s + 0, n }' "$d/sizes-$tag.txt"
}

ARCHES=("$HOST_ARCH")
[ "$ARM64" = 1 ] && [ "$HOST_ARCH" != arm64 ] && ARCHES+=(arm64)
READY=()
for arch in "${ARCHES[@]}"; do
  if prepare_arch "$arch"; then READY+=("$arch"); fi
done

# ---- the application layer ---------------------------------------------------------------------------------
NM_B=0 DIST_B=0
if [ "$NPM" = 1 ]; then
  mkdir -p "$TMP/app/scripts"
  cp package.json package-lock.json "$TMP/app/"
  cp -r patches "$TMP/app/"
  cp scripts/patch-deps.sh "$TMP/app/scripts/"
  echo "npm ci --omit=dev --include=optional ($(uname -m), node $(node -v)) ..." >&2
  (cd "$TMP/app" && nice npm ci --omit=dev --include=optional --no-audit --no-fund --loglevel=error >"$TMP/npm.log" 2>&1) || {
    tail -20 "$TMP/npm.log" >&2
    exit 1
  }
  NM_B=$(bytes "$TMP/app/node_modules")
  # sources the Dockerfiles COPY for the build, compiled with the repository's TypeScript
  mkdir -p "$TMP/src/scripts"
  cp -r package.json tsconfig.json tsconfig.build.json bin core cli hardware firmware services types "$TMP/src/"
  cp scripts/build.sh "$TMP/src/scripts/"
  ln -s "$ROOT/node_modules" "$TMP/src/node_modules"
  echo "scripts/build.sh ..." >&2
  (cd "$TMP/src" && nice bash scripts/build.sh >"$TMP/build.log" 2>&1) || {
    tail -20 "$TMP/build.log" >&2
    exit 1
  }
  DIST_B=$(bytes "$TMP/src/dist")
fi
OTHER_B=$(($(bytes bin) + $(bytes package.json) + $(bytes deploy/kit/entrypoint.sh)))

# ---- report -----------------------------------------------------------------------------------------------------
echo "Popkit image sizes ($(date -u +%F), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'))"
echo "MB = 10^6 bytes; apt = Installed-Size of the packages apt adds to debian:bookworm-slim (--no-install-recommends)"
echo
printf '%-44s %-22s %-8s %10s %6s %13s %8s %7s %14s\n' dockerfile "base (run stage)" arch "apt MB" pkgs "node_modules" dist other "Popkit adds"
for df in "${DOCKERFILES[@]}"; do
  base=$(run_base "$df")
  mapfile -t pkgs < <(run_apt_packages "$df")
  for arch in "${READY[@]}"; do
    note=""
    case "$base" in
      *bookworm*)
        read -r kb n < <(apt_size "$arch" "$df" "${pkgs[@]}")
        ;;
      *) kb=- n=- ;;
    esac
    if [ "$kb" = - ]; then
      apt_mb="n/c"
      total="n/c"
    else
      apt_mb=$(mb $((kb * 1024)))
      total=$(mb $((kb * 1024 + NM_B + DIST_B + OTHER_B)))
    fi
    nm=$(mb "$NM_B")
    [ "$arch" != "$HOST_ARCH" ] && nm="~$nm"
    [ "$NPM" = 0 ] && nm="-"
    printf '%-44s %-22s %-8s %10s %6s %13s %8s %7s %14s\n' "$df" "$base" "$arch" "$apt_mb" "$n" "$nm" \
      "$([ "$NPM" = 1 ] && mb "$DIST_B" || echo -)" "$(mb "$OTHER_B")" "$total$note"
  done
done
mq_base=$(awk 'toupper($1) == "FROM" { img = $2 } END { print img }' deploy/mosquitto/Dockerfile)
printf '%-44s %-22s %-8s %10s %6s %13s %8s %7s %14s\n' deploy/mosquitto/Dockerfile "$mq_base" any - - - - \
  "$(mb "$(bytes deploy/mosquitto/mosquitto.conf)")" "$(mb "$(bytes deploy/mosquitto/mosquitto.conf)")"
echo
echo "Not computed (n/c):"
echo "- base images (node:22-bookworm-slim, ubuntu:22.04, $mq_base): no registry access here"
for df in "${DOCKERFILES[@]}"; do
  case "$(run_base "$df")" in
    *bookworm*) ;;
    *) echo "- $df: apt packages ($(run_apt_packages "$df" | tr '\n' ' ')) come from $(run_base "$df") and NVIDIA's L4T repository, whose indices are not reachable here; it also copies the node binary from node:22-bookworm-slim" ;;
  esac
done
if grep -q archive.raspberrypi.com Dockerfile.raspberrypi5; then
  echo "- Dockerfile.raspberrypi5: libcamera-ipa and gstreamer1.0-libcamera come from Raspberry Pi's archive (not reachable here); the figure uses Debian's libcamera 0.0.3 in their place"
fi
[ "$ARM64" = 1 ] && [[ ! " ${READY[*]} " == *" arm64 "* ]] && echo "- arm64 apt figures: Debian's arm64 index could not be fetched"
echo
echo "Largest packages apt adds (Dockerfile.template, $HOST_ARCH, MB installed):"
head -15 "$TMP/apt-$HOST_ARCH/sizes-Dockerfile.template.txt" | while read -r kb p; do printf '  %7s  %s\n' "$(mb $((kb * 1024)))" "$p"; done
echo
echo "What each package of Dockerfile.template's apt line alone brings ($HOST_ARCH, MB saved if it were dropped):"
mapfile -t tpl < <(run_apt_packages Dockerfile.template)
read -r all_kb _ < <(apt_size "$HOST_ARCH" all "${tpl[@]}")
for p in "${tpl[@]}"; do
  rest=()
  for q in "${tpl[@]}"; do [ "$q" = "$p" ] || rest+=("$q"); done
  read -r kb _ < <(apt_size "$HOST_ARCH" without "${rest[@]}")
  printf '  %7s  %s\n' "$(mb $(((all_kb - kb) * 1024)))" "$p"
done
if [ "$NPM" = 1 ]; then
  echo
  echo "- node_modules is measured for $(uname -m) only: on arm64 the prebuilt and compiled native modules differ (~ marks the $HOST_ARCH figure)"
  echo
  echo "Largest production packages (node_modules, MB):"
  (cd "$TMP/app/node_modules" && for p in * @*/*; do
    case "$p" in @*/*) echo "$(bytes "$p") $p" ;; @*) ;; *) [ -d "$p" ] && echo "$(bytes "$p") $p" ;; esac
  done) | sort -rn | head -12 | while read -r b p; do printf '  %7s  %s\n' "$(mb "$b")" "$p"; done
  obj=$(find "$TMP/app/node_modules" -path '*/build/Release/obj.target' -prune -print -o -path '*/build/Release/.deps' -prune -print | xargs -r du -sbc | tail -1 | cut -f1)
  echo "  of which node-gyp intermediates (build/Release/obj.target, .deps): $(mb "${obj:-0}") MB"
fi
