// Which GStreamer elements the boards' pipelines use and which Debian 12 package provides each, so a
// machine that lacks one is told what to install instead of a bare "unavailable" (issue #14: a fresh
// Debian 12 had no clockoverlay because gstreamer1.0-x was not installed).
//
// The element list is not written by hand: it is parsed out of the descriptions the real builder
// (pipeline.ts) produces for every board, so a new element without a package entry fails
// tests/integration/media-elements.test.ts. The packages were checked with `dpkg -S` on the plugin
// file `gst-inspect-1.0 <element>` names, on Debian 12 (GStreamer 1.22); that test re-checks them.
import { spawnSync } from 'node:child_process';
import { BOARD_IDS, type BoardId, getBoardProfile } from '../../hardware/boards/index.ts';
import { buildLadder, ladderTopFor } from './ladder.ts';
import { buildPipeline } from './pipeline.ts';

export interface ElementSource {
  /** the Debian 12 package, or `undefined` where Debian has none */
  debian?: string;
  /** who provides it where Debian does not (vendor userspace) */
  vendor?: string;
  /** when installing the package is not the whole story */
  note?: string;
}

const base = { debian: 'gstreamer1.0-plugins-base' };
const good = { debian: 'gstreamer1.0-plugins-good' };
const bad = { debian: 'gstreamer1.0-plugins-bad' };
const core = { debian: 'libgstreamer1.0-0' };
const l4t = { vendor: 'NVIDIA L4T (not in Debian)', note: "install NVIDIA's L4T GStreamer userspace" };

/** Every element any board's pipeline uses (with or without an upstream push), by factory name. */
export const GST_ELEMENT_PACKAGES: Readonly<Record<string, ElementSource>> = {
  // core (libgstcoreelements.so)
  queue: core,
  tee: core,
  fakesink: core, // caps in a description are capsfilters, in the same core plugin
  valve: core,
  // sources
  videotestsrc: base,
  v4l2src: good,
  libcamerasrc: {
    debian: 'gstreamer1.0-libcamera',
    note: "Debian 12's libcamera (0.0.3) predates the Pi 5: use Raspberry Pi's libcamera there",
  },
  // picture
  clockoverlay: { debian: 'gstreamer1.0-x' }, // the pango plugin
  videoconvert: base,
  videoscale: base,
  videorate: base,
  nvvidconv: l4t,
  // encoders and parsing
  x264enc: { debian: 'gstreamer1.0-plugins-ugly' },
  v4l2h264enc: {
    ...good,
    note: 'registered only where the kernel has a V4L2 H.264 encoder (/dev/video11 on a Pi 4 with gpu_mem set)',
  },
  nvv4l2h264enc: l4t,
  h264parse: bad,
  // outputs
  splitmuxsink: good,
  mpegtsmux: bad,
  srtsink: bad,
  flvmux: good,
  rtmp2sink: bad,
};

// --- element names out of a gst-launch description ---------------------------------------------

/** Words and `!` links of a description; a double-quoted value stays inside its word. */
function words(desc: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (const ch of desc) {
    if (ch === '"') quoted = !quoted;
    if (!quoted && (ch === ' ' || ch === '\t' || ch === '\n' || ch === '!')) {
      if (cur) out.push(cur);
      cur = '';
      if (ch === '!') out.push('!');
      continue;
    }
    cur += ch;
  }
  if (cur) out.push(cur);
  return out;
}

// a factory name (`3gppmux` starts with a digit); never with `-`, so never an option to gst-inspect
const FACTORY = /^[A-Za-z0-9][A-Za-z0-9_-]*$/;

/**
 * The element factory names a description instantiates, in order, each once: every word that is not
 * a property (`k=v`), caps (`video/x-raw,…`) or a pad reference (`t.`), plus the values of
 * `*-factory` properties (splitmuxsink's `muxer-factory=mpegtsmux` makes a mpegtsmux).
 */
export function pipelineElements(desc: string): string[] {
  const seen = new Set<string>();
  for (const w of words(desc)) {
    if (w === '!') continue;
    const eq = w.indexOf('=');
    const slash = w.indexOf('/');
    if (slash >= 0 && (eq < 0 || slash < eq)) continue; // caps
    if (eq >= 0) {
      const key = w.slice(0, eq);
      const value = w.slice(eq + 1).replace(/^"|"$/g, '');
      if (key.endsWith('-factory') && FACTORY.test(value)) seen.add(value);
      continue;
    }
    if (w.includes('.')) continue; // a reference to a named element's pad
    if (FACTORY.test(w)) seen.add(w);
  }
  return [...seen];
}

/** A board's pipeline descriptions as the media service builds them: bare, with an SRT and an RTMP push. */
export function boardDescriptions(board: BoardId): string[] {
  const profile = getBoardProfile(board);
  const step = buildLadder(ladderTopFor(profile.video)).find((s) => !s.paused);
  if (!step) return [];
  return [undefined, 'srt://hub.invalid:9000', 'rtmp://hub.invalid/live/kit'].map((upstreamUrl) =>
    buildPipeline({
      board,
      video: profile.video,
      step,
      outputs: { hlsDir: '/var/lib/popkit/hls', segmentPrefix: 'w0-1', upstreamUrl },
      source: { simFaults: board === 'sim' },
    }),
  );
}

/** Every element a board's pipeline can use. */
export function boardElements(board: BoardId): string[] {
  return [...new Set(boardDescriptions(board).flatMap(pipelineElements))];
}

/** Every element of every board. */
export function allBoardElements(): string[] {
  return [...new Set(BOARD_IDS.flatMap(boardElements))].sort();
}

// --- is it installed here? -----------------------------------------------------------------------

export type ElementPresence = 'present' | 'missing' | 'unknown';

/**
 * `gst-inspect-1.0 --exists <name>` (exit 0 present, 1 missing), bounded by a timeout. `unknown` when
 * the tool is absent (gstreamer1.0-tools), times out, or the name is not a factory name.
 */
export function elementPresence(name: string, timeoutMs = 3000): ElementPresence {
  if (!FACTORY.test(name)) return 'unknown';
  const r = spawnSync('gst-inspect-1.0', ['--exists', name], { timeout: timeoutMs, stdio: 'ignore' });
  if (r.error || r.signal) return 'unknown';
  if (r.status === 0) return 'present';
  return r.status === 1 ? 'missing' : 'unknown';
}

/** The element a gst_parse_launch error names (`no element "clockoverlay"`), if it names one. */
export function elementInParseError(message: string): string | undefined {
  const m = /no element "([^"]+)"/i.exec(message);
  return m?.[1] && FACTORY.test(m[1]) ? m[1] : undefined;
}

/**
 * The missing elements of a description: each element checked once with gst-inspect, plus the one the
 * parse error names (GStreamer stops at the first, and gst-inspect may be absent).
 */
export function missingElements(
  desc: string,
  parseError: string,
  presence: (name: string) => ElementPresence = elementPresence,
): string[] {
  const missing = new Set<string>();
  const named = elementInParseError(parseError);
  for (const name of pipelineElements(desc)) {
    if (name === named || presence(name) === 'missing') missing.add(name);
  }
  if (named) missing.add(named);
  return [...missing];
}

/** How to get one element: `apt-get install <package>` or the vendor, with the note where there is one. */
export function installHint(
  name: string,
  table: Readonly<Record<string, ElementSource>> = GST_ELEMENT_PACKAGES,
): string {
  const src = Object.hasOwn(table, name) ? table[name] : undefined;
  if (!src) return `${name}: not in Popkit's package table (services/media/gst-elements.ts)`;
  const how = src.debian ? `apt-get install ${src.debian}` : (src.vendor ?? 'no known package');
  return src.note ? `${name}: ${how} (${src.note})` : `${name}: ${how}`;
}

/** The status reason for a pipeline that cannot be built because elements are missing. */
export function missingElementsReason(board: BoardId, missing: readonly string[]): string {
  const list = missing.join(', ');
  return (
    `GStreamer element${missing.length === 1 ? '' : 's'} missing for the ${board} pipeline: ${list}; ` +
    missing.map((m) => installHint(m)).join('; ')
  );
}
