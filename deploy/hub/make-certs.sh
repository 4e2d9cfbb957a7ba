#!/usr/bin/env bash
# Make a private CA and the hub broker's TLS certificate (openssl), for the kits' listener (8883):
#   deploy/hub/make-certs.sh CERTS_DIR HUB_NAME [HUB_NAME|IP ...]
# writes, in CERTS_DIR:
#   ca.crt      the private CA: give it to every kit as POPKIT_HUB_CA_FILE
#   ca.key      the CA's key (0600): keep it off the broker, offline if you can; it signs new certificates
#   server.crt  the broker's certificate for the names given (subjectAltName), signed by the CA
#   server.key  its key (0600; owned by Mosquitto's user 1883 when run as root, the container reads it)
# An existing CA is kept (kits already trust it); the server certificate is made anew. With a public
# certificate (e.g. Let's Encrypt) instead, put its chain and key at server.crt / server.key.
set -euo pipefail
if [ "$#" -lt 2 ]; then echo "usage: $0 CERTS_DIR HUB_NAME [HUB_NAME|IP ...]" >&2; exit 2; fi
dir=$1; shift
days=${CERT_DAYS:-825}
ca_days=${CA_DAYS:-3650}
san=""
for name in "$@"; do
  if [[ $name =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}$ || $name =~ ^[0-9A-Fa-f:]+:[0-9A-Fa-f:]*$ ]]; then
    san+="${san:+,}IP:$name"
  elif [[ $name =~ ^[A-Za-z0-9*]([A-Za-z0-9.-]{0,252})$ ]]; then
    san+="${san:+,}DNS:$name"
  else
    echo "bad host name: $name" >&2; exit 2
  fi
done
mkdir -p "$dir"
umask 077
if [ ! -s "$dir/ca.key" ] || [ ! -s "$dir/ca.crt" ]; then
  openssl req -x509 -newkey rsa:3072 -nodes -sha256 -days "$ca_days" -subj "/CN=Popkit hub private CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -keyout "$dir/ca.key" -out "$dir/ca.crt" 2>/dev/null
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf 'subjectAltName=%s\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n' \
  "$san" >"$tmp/ext.cnf"
openssl req -newkey rsa:2048 -nodes -sha256 -subj "/CN=$1" -keyout "$tmp/server.key" -out "$tmp/server.csr" 2>/dev/null
openssl x509 -req -sha256 -days "$days" -in "$tmp/server.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" \
  -set_serial "0x$(openssl rand -hex 16)" -extfile "$tmp/ext.cnf" -out "$tmp/server.crt" 2>/dev/null
mv "$tmp/server.key" "$dir/server.key"
mv "$tmp/server.crt" "$dir/server.crt"
chmod 644 "$dir/ca.crt" "$dir/server.crt"
chmod 600 "$dir/ca.key" "$dir/server.key"
# Mosquitto 2 drops root before it reads the key: in the container it runs as user 1883
if [ "$(id -u)" = 0 ]; then chown 1883:1883 "$dir/server.key"; else
  echo "note: the broker container reads server.key as uid 1883: sudo chown 1883:1883 $dir/server.key" >&2
fi
echo "made $dir/server.crt for $san, signed by $dir/ca.crt (give ca.crt to the kits as POPKIT_HUB_CA_FILE)"
