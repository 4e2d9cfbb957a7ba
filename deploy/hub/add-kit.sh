#!/usr/bin/env bash
# Register a kit with the hub broker: a password entry (user name = kit id) and read access to the
# catalogs of the events it sells at. Prints the kit's password once; give it to the kit as
# POPKIT_HUB_PASSWORD. Reload Mosquitto afterwards (kill -HUP, or `docker compose kill -s HUP mosquitto`).
# Refuses the hub's own names (popkit*, the workers' users in CONFIG_DIR/hub-passwd) and a kit already
# added (a new password for it: mosquitto_passwd -b CONFIG_DIR/passwd KIT_ID NEW_PASSWORD).
#   deploy/hub/add-kit.sh CONFIG_DIR KIT_ID EVENT_ID [EVENT_ID...]
set -euo pipefail
if [ "$#" -lt 3 ]; then echo "usage: $0 CONFIG_DIR KIT_ID EVENT_ID [EVENT_ID...]" >&2; exit 2; fi
dir=$1 kit=$2; shift 2
re='^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$'
[[ $kit =~ $re ]] || { echo "bad kit id: $kit" >&2; exit 2; }
# Reserved: the hub's own names. A kit called popkit-hub would get the workers' ACL block (all of
# popkit/v1/#); popkit-hub-<worker> is a worker's client id. Any case: ids are compared as typed.
shopt -s nocasematch
if [[ $kit == popkit* ]]; then echo "reserved kit id: $kit (names starting with 'popkit' are the hub's)" >&2; exit 2; fi
shopt -u nocasematch
if [ -f "$dir/hub-passwd" ] && cut -d: -f1 "$dir/hub-passwd" | grep -qxiF -- "$kit"; then
  echo "reserved kit id: $kit (a hub worker's user in $dir/hub-passwd)" >&2; exit 2
fi
if grep -qxF -- "user $kit" "$dir/acl" 2>/dev/null; then
  echo "kit $kit exists already (its ACL block is in $dir/acl)" >&2; exit 2
fi
for ev in "$@"; do [[ $ev =~ $re ]] || { echo "bad event id: $ev" >&2; exit 2; }; done
pass=${KIT_PASSWORD:-$(head -c 18 /dev/urandom | base64 | tr '+/' '-_')}
touch "$dir/passwd"
chmod 600 "$dir/passwd"
mosquitto_passwd -b "$dir/passwd" "$kit" "$pass"
{
  echo ""
  echo "user $kit"
  for ev in "$@"; do echo "topic read popkit/v1/events/$ev/catalog"; done
} >>"$dir/acl"
echo "$pass"
