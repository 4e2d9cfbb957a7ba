#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian 12 machine: Debian packages, npm packages, and (with
# --services) the local Mosquitto and PostgreSQL that the tests talk to. Safe to run every time.
set -euo pipefail
cd "$(dirname "$0")/.."

want_services=0
for a in "$@"; do [ "$a" = "--services" ] && want_services=1; done

log() { printf '[setup] %s\n' "$*" >&2; }

SUDO=""
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else log "not root and no sudo: Debian packages cannot be installed"; fi
fi

# What the kit and its tests use from Debian: GStreamer (headers for the binding, plugins, tools),
# socat (pty pairs for serial tests), Mosquitto (broker), PostgreSQL (hub ledger in tests),
# Chromium (dashboard browser tests), ffmpeg (ffprobe checks segments), strace (the test that a 201
# follows the fsync of its commit), fuse3 + python3-fusepy (the power-cut tests mount the data dir on
# tests/support/pcfs.py, a FUSE filesystem that forgets unsynced writes). gstreamer1.0-x carries
# the pango plugin (clockoverlay, textoverlay), which --no-install-recommends does not bring.
# dbus (dbus-daemon) + python3-dbusmock: the link monitor's tests run a private bus with dbusmock's
# NetworkManager template on it (tests/support/nm-mock.ts; /usr/bin/python3, Debian's Python).
# iproute2 (ip, ss): the redundant-uplinks test makes network namespaces and veth pairs and reads which
# link a connection uses (tests/integration/sync-uplinks-netns.test.ts); socat binds sync's hub
# connection to a link (core/uplinks.ts).
PKGS=(build-essential iproute2 python3 libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly
  gstreamer1.0-tools gstreamer1.0-x socat mosquitto mosquitto-clients chromium ffmpeg strace
  fuse3 python3-fusepy dbus python3-dbusmock)
# nats-server: the clustered-region tests start a three-node NATS cluster of their own
# (tests/support/nats-cluster.ts, docs/scaling.md#a-nats-cluster)
[ "$want_services" = 1 ] && PKGS+=(postgresql nats-server)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  log "installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# npm packages, exactly as locked. Reinstall when the lock or a patch of patches/ (applied by the
# postinstall, scripts/patch-deps.sh) changed since the last install.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ] ||
  [ -n "$(find patches -type f -newer node_modules/.package-lock.json 2>/dev/null)" ]; then
  log "installing npm packages (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error
fi

# The GStreamer binding is optional: it builds only where the headers exist. If the headers came
# after the npm install, build it now.
if ! node -e "require('gstreamer-superficial')" >/dev/null 2>&1 && pkg-config --exists gstreamer-1.0 2>/dev/null; then
  log "building gstreamer-superficial against the installed GStreamer"
  npm rebuild gstreamer-superficial --loglevel=error >/dev/null 2>&1 || log "gstreamer-superficial did not build: media will report itself unavailable"
fi

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") >/dev/null 2>&1; }

if [ "$want_services" = 1 ]; then
  if ! port_open 1883; then
    log "starting Mosquitto on 127.0.0.1:1883"
    # without an init system (containers, chroots) nothing creates its pid-file directory
    $SUDO install -d -o mosquitto -g mosquitto /run/mosquitto 2>/dev/null || $SUDO mkdir -p /run/mosquitto
    $SUDO mosquitto -d -c /etc/mosquitto/mosquitto.conf || $SUDO mosquitto -d -p 1883
  fi
  if ! port_open 5432; then
    log "starting PostgreSQL on 127.0.0.1:5432"
    ver=$(ls /etc/postgresql 2>/dev/null | sort -n | tail -1)
    if [ -n "$ver" ]; then
      # trust auth on loopback, as on CI machines; only touched when we start the server ourselves
      hba="/etc/postgresql/$ver/main/pg_hba.conf"
      grep -q '^host all all 127.0.0.1/32 trust' "$hba" || $SUDO sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
      $SUDO pg_ctlcluster --skip-systemctl-redirect "$ver" main start || true
    fi
  fi
  for _ in $(seq 1 30); do port_open 1883 && port_open 5432 && break; sleep 1; done
  port_open 1883 || { log "Mosquitto is not reachable on 127.0.0.1:1883"; exit 1; }
  port_open 5432 || { log "PostgreSQL is not reachable on 127.0.0.1:5432"; exit 1; }
  if command -v psql >/dev/null 2>&1; then
    psql -h 127.0.0.1 -U postgres -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname='test'" 2>/dev/null | grep -q 1 ||
      psql -h 127.0.0.1 -U postgres -d postgres -c 'CREATE DATABASE test' >/dev/null 2>&1 || true
  fi
fi
