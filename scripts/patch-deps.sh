#!/bin/bash
# npm's postinstall: apply patches/ to the installed packages (patch-package), then rebuild a native
# package whose source a patch changed, since npm built it before this script ran.
#   gstreamer-superficial: a string set on a property of another type (v4l2h264enc's extra-controls,
#   a GstStructure) is parsed as gst-launch parses it, so the Pi 4 changes bitrate without a rebuild
#   (docs/architecture.md#trap-bitrate-is-fixed-while-playing-on-the-pi-4).
set -euo pipefail
cd "$(dirname "$0")/.."
node node_modules/patch-package/index.js --error-on-fail
# optional: where the GStreamer headers were missing it did not build, and scripts/setup.sh builds it
# (already patched) once they are there
if [ -f node_modules/gstreamer-superficial/build/Release/gstreamer-superficial.node ]; then
  npm rebuild gstreamer-superficial --loglevel=error
fi
