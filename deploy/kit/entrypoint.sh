#!/bin/sh
# Entrypoint of the kit image (Dockerfile.template). It runs as root only long enough to:
#  1. make, in the container's own /dev, the device nodes of the classes this service may use
#     (POPKIT_DEVICE_CLASSES, set per service in docker-compose.yml), owned by the service user:
#     every node of those classes the kernel has now (major:minor read from sysfs), and the USB serial
#     ports in advance at the numbers the kernel's devices.txt fixes for them (ttyUSBn = 188:n,
#     ttyACMn = 166:n), so a charger cable plugged in after start opens without a restart. Which
#     nodes may actually be opened is decided by the service's device_cgroup_rules, not here;
#  2. hand files in the data volume written by root (releases before the image dropped root), and the
#     supervisor's update lock directory, to the service user;
#  3. drop to the service user for good (no capabilities, no new privileges) and exec the command.
# POPKIT_DEV_DIR, POPKIT_SYS_DIR and POPKIT_LOCK_DIR exist for tests/unit/deploy-images.test.ts (a fake sysfs tree).
set -eu

DEV=${POPKIT_DEV_DIR:-/dev}
SYS=${POPKIT_SYS_DIR:-/sys}
RUN_AS=${POPKIT_RUN_AS:-node}
CLASSES=${POPKIT_DEVICE_CLASSES:-}
# serial ports made in advance per kind (ttyUSB0..N-1, ttyACM0..N-1)
SERIAL_AHEAD=${POPKIT_SERIAL_AHEAD:-4}

say() { echo "popkit-entrypoint: $*" >&2; }
die() { say "$1: $2"; exit 64; }

if [ "$(id -u)" != 0 ]; then
  # started unprivileged already (a `user:` in a compose file): nothing to prepare, nothing to drop
  exec "$@"
fi

case "$SERIAL_AHEAD" in
  '' | *[!0-9]*) die POPKIT_SERIAL_AHEAD_INVALID "'$SERIAL_AHEAD' is not a whole number" ;;
esac
[ "$SERIAL_AHEAD" -le 64 ] || die POPKIT_SERIAL_AHEAD_INVALID "$SERIAL_AHEAD is more than 64"
case "$RUN_AS" in
  root | 0) die POPKIT_RUN_AS_ROOT "the kit services run unprivileged; device access comes from device_cgroup_rules" ;;
  '' | *[!a-z0-9_-]*) die POPKIT_RUN_AS_INVALID "'$RUN_AS' is not a user name" ;;
esac
uid=$(id -u "$RUN_AS" 2>/dev/null) || die POPKIT_RUN_AS_UNKNOWN "no user '$RUN_AS' in the image"
gid=$(id -g "$RUN_AS")

# mk NAME MAJOR MINOR: a character node DEV/NAME owned by the service user (an existing one is re-owned);
# NAME may be in a directory (dma_heap/linux,cma)
mk() {
  node="$DEV/$1"
  case "$1" in */*) mkdir -p "$(dirname "$node")" ;; esac
  if [ ! -e "$node" ]; then
    if ! mknod -m 0660 "$node" c "$2" "$3" 2>/dev/null; then
      say "cannot make $node ($2:$3): no CAP_MKNOD or not allowed by the device cgroup"
      return 0
    fi
  fi
  chown "$uid:$gid" "$node"
}

# from_sys GLOB MAJOR [DIR]: a node (in DEV/DIR) for every sysfs device matching GLOB (its `dev` file
# holds "major:minor"); MAJOR is the one the device_cgroup_rules allow, `dynamic` for the kernel's
# dynamic range (234-254 in devices.txt), `any` for no check
from_sys() {
  for f in $1; do
    [ -r "$f" ] || continue
    IFS=: read -r maj min < "$f" || continue
    case "$maj$min" in '' | *[!0-9]*) say "ignoring $f: '$maj:$min' is not major:minor"; continue ;; esac
    name=${3:+$3/}$(basename "$(dirname "$f")")
    mk "$name" "$maj" "$min"
    if [ "$2" = dynamic ]; then
      if [ "$maj" -lt 234 ] || [ "$maj" -gt 254 ]; then
        say "POPKIT_DEVICE_RULE_MISSING: $name is $maj:$min, outside the dynamic majors 234-254 the device_cgroup_rules allow (add 'c $maj:* rwm')"
      fi
    elif [ "$2" != any ] && [ "$maj" != "$2" ]; then
      say "POPKIT_DEVICE_RULE_MISSING: $name is $maj:$min; device_cgroup_rules allow $2:* only (add 'c $maj:* rwm')"
    fi
  done
}

for class in $CLASSES; do
  case "$class" in
    serial)
      from_sys "$SYS/class/tty/ttyUSB*/dev" 188
      from_sys "$SYS/class/tty/ttyACM*/dev" 166
      n=0
      while [ "$n" -lt "$SERIAL_AHEAD" ]; do
        mk "ttyUSB$n" 188 "$n"
        mk "ttyACM$n" 166 "$n"
        n=$((n + 1))
      done
      ;;
    i2c) from_sys "$SYS/class/i2c-dev/i2c-*/dev" 89 ;;
    # the GPIO character device's major is dynamic (devices.txt: 234-254 for dynamic assignment);
    # 254 is what the Pi and Jetson kernels give it, and the rule check above says when it is not
    gpio) from_sys "$SYS/bus/gpio/devices/gpiochip*/dev" 254 ;;
    video) from_sys "$SYS/class/video4linux/video*/dev" 81 ;;
    # what libcamera opens besides /dev/video*: the sensor's sub-devices (81, video4linux), the media
    # controller (/dev/media*) and the DMA heaps it allocates frames from (/dev/dma_heap/*); the last
    # two have dynamic majors that differ between kernels, so media's rules allow the dynamic range
    camera)
      from_sys "$SYS/class/video4linux/v4l-subdev*/dev" 81
      from_sys "$SYS/bus/media/devices/media*/dev" dynamic
      from_sys "$SYS/class/dma_heap/*/dev" dynamic dma_heap
      ;;
    *) die POPKIT_DEVICE_CLASS_UNKNOWN "'$class' (known: serial i2c gpio video camera)" ;;
  esac
done

# the update lock directory the supervisor mounts (/tmp/balena, root's): the unprivileged kitd must be
# able to create and remove updates.lock in it (firmware/update-lock.ts); the supervisor is root anyway
lockdir=${POPKIT_LOCK_DIR:-/tmp/balena}
if [ -d "$lockdir" ] && [ ! -L "$lockdir" ]; then
  chown "$uid:$gid" "$lockdir"
fi

data=${POPKIT_DATA_DIR:-}
if [ -n "$data" ] && [ -d "$data" ]; then
  find "$data" -xdev ! -user "$uid" -exec chown -h "$uid:$gid" {} +
fi

exec setpriv --reuid="$uid" --regid="$gid" --init-groups --inh-caps=-all --bounding-set=-all --no-new-privs -- "$@"
