// Loads the optional native GStreamer binding. Injected into the service so tests can make it fail
// and a machine without GStreamer reports `unavailable` instead of crashing.
import { createRequire } from 'node:module';
import type * as Gst from 'gstreamer-superficial';

export type GstModule = typeof Gst;
export type GstLoader = () => GstModule;

export type GstLoad = { ok: true; gst: GstModule } | { ok: false; reason: string };

export const defaultGstLoader: GstLoader = () =>
  createRequire(import.meta.url)('gstreamer-superficial') as GstModule;

export function loadGst(loader: GstLoader = defaultGstLoader): GstLoad {
  try {
    const gst = loader();
    if (typeof gst?.Pipeline !== 'function') {
      return { ok: false, reason: 'gstreamer-superficial loaded but has no Pipeline export' };
    }
    return { ok: true, gst };
  } catch (err) {
    const msg = err instanceof Error ? err.message.split('\n')[0] : String(err);
    return {
      ok: false,
      reason:
        `GStreamer binding unavailable (${msg}); install libgstreamer1.0-dev, ` +
        'libgstreamer-plugins-base1.0-dev and the gstreamer1.0-plugins-* packages, then npm rebuild gstreamer-superficial',
    };
  }
}

/** A pipeline description that names an element GStreamer does not have: a missing plugin, not a fault. */
export function isMissingElement(message: string): boolean {
  return /no element|no such element|could not (?:link|find)|erroneous pipeline: no/i.test(message);
}
