// An in-process media service on the sim board for tests that need a real stream (real GStreamer)
// but must not have it moved by the machine: CPU load reads as zero, orders never push the ladder,
// and dropped frames (another test file loading the machine) never restart the pipeline.

import { getBoardProfile } from '../../hardware/boards/index.ts';
import type { GstLoad } from '../../services/media/gst-loader.ts';
import { MediaService } from '../../services/media/media-service.ts';

export function quietSimMedia(opts: {
  gst: GstLoad;
  dataDir: string;
  bitrateKbps: number;
  bootId?: string;
}): MediaService {
  return new MediaService({
    gst: opts.gst,
    board: getBoardProfile('sim'),
    dataDir: opts.dataDir,
    ...(opts.bootId ? { bootId: opts.bootId } : {}),
    cpu: { sample: () => ({ machine: 0, processCores: 0 }) },
    settings: {
      top: { width: 320, height: 240, fps: 30, bitrateKbps: opts.bitrateKbps },
      segmentSeconds: 1,
      playlistLength: 5,
      maxRestarts: 10,
      ladder: { dropHigh: 2, cpuHigh: 2, ordersHigh: Number.POSITIVE_INFINITY },
      watchdog: { dropRestartRatio: 1 },
    },
  });
}
