// Pure gst-launch descriptions from a board profile, a ladder rung and the outputs. No probing: the
// encoder comes from the profile alone (an nvv4l2h264enc probe can hang an Orin Nano).

import { KitError } from '../../core/errors.ts';
import type { BoardId, VideoProfile } from '../../hardware/boards/index.ts';
import { type LadderStep, v4l2Controls } from './ladder.ts';

export interface MediaOutputs {
  /** Absolute directory for the part files (hls-output.ts renames them and writes the playlists). */
  hlsDir: string;
  /** Part file prefix; changes per pipeline run so a rebuilt pipeline never overwrites live files. */
  segmentPrefix: string;
  /** Optional upstream push: srt://… or rtmp(s)://… */
  upstreamUrl?: string | undefined;
}

export interface SourceOptions {
  /** Camera device for v4l2src. */
  device?: string | undefined;
  /** videotestsrc pattern on `sim` (e.g. `ball`, `smpte`, `snow`: snow is incompressible). */
  simPattern?: string | undefined;
  /** Include a valve the simulator can close to simulate a stalled camera. */
  simFaults?: boolean | undefined;
}

export interface PipelineInput {
  board: BoardId;
  video: VideoProfile;
  step: LadderStep;
  outputs: MediaOutputs;
  source?: SourceOptions;
}

/** Element names the service looks up at run time. */
export const ELEMENT = {
  source: 'src',
  fault: 'simfault',
  encoder: 'enc',
  parser: 'parse',
  meter: 'meter',
  hls: 'hls',
} as const;

// gst-launch quoting: a value in double quotes may hold spaces; a double quote or backslash in a
// path or URL would break out of the description, so such values are refused instead of escaped.
function quoted(what: string, v: string): string {
  if (/["\\\n\r]/.test(v))
    throw new KitError('BAD_REQUEST', `${what} must not contain quotes, backslashes or newlines`);
  return `"${v}"`;
}

const IDENT = /^[A-Za-z0-9_-]+$/;

/** LL-HLS parts per second: a part is one GOP, so a GOP lasts a third of a second. */
export const PARTS_PER_SECOND = 3;

/** Frames per GOP (= per part) at a frame rate: every part starts with an IDR. */
export function partFrames(fps: number): number {
  return Math.max(1, Math.round(fps / PARTS_PER_SECOND));
}

/** The longest part at a frame rate, in seconds. */
export function partSeconds(fps: number): number {
  return partFrames(fps) / fps;
}

export function encoderElement(video: VideoProfile): VideoProfile['encoder'] {
  return video.encoder;
}

function sourceBranch(input: PipelineInput): string {
  const { video, step } = input;
  const src = input.source ?? {};
  const raw = `video/x-raw,width=${step.width},height=${step.height},framerate=${step.fps}/1`;
  switch (video.source) {
    case 'videotestsrc': {
      const pattern = src.simPattern ?? 'ball';
      if (!IDENT.test(pattern)) throw new KitError('BAD_REQUEST', `bad videotestsrc pattern '${pattern}'`);
      const fault = src.simFaults ? ` ! valve name=${ELEMENT.fault} drop=false` : '';
      // The clock overlay makes the test picture change every frame, as a live show does.
      return (
        `videotestsrc name=${ELEMENT.source} is-live=true pattern=${pattern} ! ${raw}` +
        ` ! clockoverlay time-format="%H:%M:%S" font-desc="Sans 24" shaded-background=true${fault}`
      );
    }
    case 'v4l2src':
      return (
        `v4l2src name=${ELEMENT.source} device=${quoted('camera device', src.device ?? '/dev/video0')}` +
        ` ! videoconvert ! videoscale ! videorate ! ${raw}`
      );
    case 'libcamerasrc':
      return `libcamerasrc name=${ELEMENT.source} ! ${raw} ! videoconvert`;
  }
}

/**
 * The encoder and what it needs right before and after it. An IDR every part (about 1/3 s) at every
 * rung: splitmuxsink cuts only at keyframes, and an independent part lets a low-latency player start
 * at any part. The cost is bits: at a constant quantizer the synthetic test picture takes 1.9× the bits
 * of an IDR a second (bench/media.ts section 5); at the ladder's fixed bitrates it is paid in quality.
 * Camera pictures, whose P-frames cost more, pay less.
 */
export function encoderBranch(video: VideoProfile, step: LadderStep): string {
  const gop = partFrames(step.fps);
  switch (video.encoder) {
    case 'x264enc':
      // I420 pinned: without it x264enc picks 4:4:4 10-bit, which browsers cannot play (docs/architecture.md#trap-x264enc-needs-i420-pinned).
      return (
        `videoconvert ! video/x-raw,format=I420 ! x264enc name=${ELEMENT.encoder} tune=zerolatency` +
        ` speed-preset=ultrafast bitrate=${step.bitrateKbps} key-int-max=${gop} ! video/x-h264,profile=constrained-baseline`
      );
    case 'v4l2h264enc': {
      const controls = v4l2Controls(step.bitrateKbps, gop);
      // The Pi 4 encoder refuses to start unless the level is pinned in caps (docs/architecture.md#trap-pi-4-encoder-needs-level-caps).
      const level = video.needsLevelCaps ? ',level=(string)4' : '';
      return (
        `videoconvert ! video/x-raw,format=I420 ! v4l2h264enc name=${ELEMENT.encoder}` +
        ` extra-controls="${controls}" ! video/x-h264${level}`
      );
    }
    case 'nvv4l2h264enc':
      return (
        // nvvidconv converts on the VIC, so no CPU videoconvert in front of it.
        `nvvidconv ! video/x-raw(memory:NVMM),format=NV12` +
        ` ! nvv4l2h264enc name=${ELEMENT.encoder} bitrate=${step.bitrateKbps * 1000} iframeinterval=${gop}` +
        ` idrinterval=${gop} insert-sps-pps=true ! video/x-h264`
      );
  }
}

function upstreamBranch(url: string): string {
  if (/^srt:\/\//.test(url)) {
    return `queue leaky=downstream max-size-time=2000000000 ! mpegtsmux ! srtsink uri=${quoted('upstream URL', url)} wait-for-connection=false async=false`;
  }
  if (/^rtmps?:\/\//.test(url)) {
    return `queue leaky=downstream max-size-time=2000000000 ! flvmux streamable=true ! rtmp2sink location=${quoted('upstream URL', url)} async=false`;
  }
  throw new KitError(
    'BAD_REQUEST',
    `upstream URL must start with srt://, rtmp:// or rtmps:// (got '${url}')`,
  );
}

/**
 * The whole description: source → (sim fault valve) → encoder → h264parse → tee → HLS parts, a metering
 * sink that counts frames and late drops (sync + qos + max-lateness, the only way QoS gets counted),
 * and an optional upstream push. A paused rung has no pipeline.
 */
export function buildPipeline(input: PipelineInput): string {
  const { step, outputs } = input;
  if (step.paused) throw new KitError('BAD_REQUEST', 'a paused rung has no pipeline');
  if (!IDENT.test(outputs.segmentPrefix)) {
    throw new KitError('BAD_REQUEST', `bad segment prefix '${outputs.segmentPrefix}'`);
  }
  const dir = outputs.hlsDir.replace(/\/+$/, '');
  // One file per GOP (max-size-time below one GOP, so every keyframe starts a new file), muxed as
  // MPEG-TS: parts concatenate byte for byte into whole segments (hls-output.ts).
  const partNs = Math.round((partSeconds(step.fps) * 1e9) / 2);
  const hls =
    `splitmuxsink name=${ELEMENT.hls} muxer-factory=mpegtsmux max-size-time=${partNs}` +
    ` location=${quoted('HLS directory', `${dir}/${outputs.segmentPrefix}-%05d.ts`)}`;
  const meter =
    `queue leaky=downstream max-size-buffers=60 ! fakesink name=${ELEMENT.meter} sync=true qos=true` +
    ` max-lateness=${Math.round(1e9 / step.fps) * 2} async=false`;
  const parts = [
    `${sourceBranch(input)} ! queue max-size-buffers=4 max-size-time=0 max-size-bytes=0 !`,
    `${encoderBranch(input.video, step)} ! h264parse name=${ELEMENT.parser} config-interval=-1 ! tee name=t`,
    `t. ! queue ! ${hls}`,
    `t. ! ${meter}`,
  ];
  if (outputs.upstreamUrl) parts.push(`t. ! ${upstreamBranch(outputs.upstreamUrl)}`);
  return parts.join(' ');
}
