// The media service: runs one GStreamer pipeline built from the board profile, meters it, moves it
// along the degradation ladder, restarts it when it stalls, and reports through run-status and the
// local bus. All native work stays in this process (see docs/architecture.md: media out of process).
import fs from 'node:fs';
import path from 'node:path';
import type { BusMessage, GstElementHandle, Pipeline } from 'gstreamer-superficial';
import {
  type MediaCommand,
  type MediaState,
  type MediaStats,
  parseMediaCommand,
} from '../../core/contracts/media.ts';
import { readRunStatus, statusAgeMs, writeRunStatus } from '../../core/contracts/run-status.ts';
import { dataLayout } from '../../core/data-dir.ts';
import { isKitError, KitError } from '../../core/errors.ts';
import { type Logger, moduleLogger } from '../../core/logger.ts';
import { type PollLoop, pollLoop } from '../../core/poll-loop.ts';
import type { BoardProfile } from '../../hardware/boards/index.ts';
import { type CpuSample, CpuSampler } from './cpu-load.ts';
import { missingElements, missingElementsReason } from './gst-elements.ts';
import { type GstLoad, isMissingElement } from './gst-loader.ts';
import { readPlaylist } from './hls-files.ts';
import { HlsOutput } from './hls-output.ts';
import { readBootId } from './hls-state.ts';
import {
  buildLadder,
  DegradationLadder,
  type LadderPolicy,
  type LadderStep,
  type LadderTop,
  liveBitrateSetting,
  planTransition,
  settingTook,
} from './ladder.ts';
import type { MediaBus } from './local-bus.ts';
import { buildPipeline, ELEMENT, PARTS_PER_SECOND, partFrames, partSeconds } from './pipeline.ts';
import { Watchdog, type WatchdogPolicy } from './watchdog.ts';

export interface MediaSettings {
  top: LadderTop;
  segmentSeconds: number;
  playlistLength: number;
  /** unused since media writes the playlist itself (hlssink2's per-run file limit) */
  maxFiles?: number;
  upstreamUrl?: string | undefined;
  device?: string | undefined;
  simPattern?: string | undefined;
  maxRestarts: number;
  statusIntervalMs?: number;
  watchIntervalMs?: number;
  ladder?: Partial<LadderPolicy>;
  watchdog?: Partial<WatchdogPolicy>;
}

export interface MediaServiceDeps {
  gst: GstLoad;
  board: BoardProfile;
  dataDir: string;
  settings: MediaSettings;
  bus?: MediaBus | undefined;
  log?: Logger;
  now?: () => number;
  cpu?: { sample(): CpuSample };
  /** Called when media cannot go on in this process; the CLI exits non-zero so the supervisor restarts it. */
  onFatal?: (reason: string) => void;
  /** the data volume's free space (core/priorities.ts DiskWatch): media gives way to orders when low */
  disk?: { givesWay(who: 'media'): boolean } | undefined;
  /** kernel boot id (hls-state.ts): a new one means a power cut or reboot happened since the last run */
  bootId?: string;
}

interface MeterReading {
  rendered: number;
  dropped: number;
}

function parseSinkStats(v: unknown): MeterReading | undefined {
  if (typeof v !== 'string') return undefined;
  const rendered = /rendered=\(guint64\)(\d+)/.exec(v);
  const dropped = /dropped=\(guint64\)(\d+)/.exec(v);
  if (!rendered || !dropped) return undefined;
  return { rendered: Number(rendered[1]), dropped: Number(dropped[1]) };
}

const round = (n: number, d = 1) => Math.round(n * 10 ** d) / 10 ** d;

export class MediaService {
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly cpu: { sample(): CpuSample };
  private readonly ladder: DegradationLadder;
  private readonly watchdog: Watchdog;
  private readonly hlsDir: string;
  private readonly hls: HlsOutput;

  private state: MediaState = 'starting';
  private reason: string | undefined;
  private pipeline: Pipeline | undefined;
  private meter: GstElementHandle | undefined;
  private generation = 0;
  private runSeq = 0;
  private readonly runBase = Date.now().toString(36);
  private prefix = '';
  private activeStep: LadderStep;
  private startedAt = 0;
  private restartTimer: NodeJS.Timeout | undefined;
  private loops: PollLoop[] = [];
  private readonly loopError = (err: unknown) =>
    this.log.error({ err: (err as Error).message }, 'media: periodic task failed');
  private stoppedForGood = false;
  /** stopped because the data volume is low (core/priorities.ts DISK_GIVE_WAY) */
  private diskHeld = false;

  // Counters: cumulative over the process, per-run parts folded in when a run ends.
  private restarts = 0;
  private rebuilds = 0;
  private lastRestartReason: string | undefined;
  private droppedBefore = 0;
  private runMeter: MeterReading = { rendered: 0, dropped: 0 };
  private runQosDrops = new Map<string, number>();
  private prevForRate: { at: number; rendered: number; dropped: number } | undefined;
  private fps = 0;
  private dropRatio = 0;
  private lastCpu: CpuSample = { machine: Number.NaN, processCores: Number.NaN };

  constructor(private readonly deps: MediaServiceDeps) {
    this.log = deps.log ?? moduleLogger('media');
    this.now = deps.now ?? Date.now;
    this.cpu = deps.cpu ?? new CpuSampler();
    this.ladder = new DegradationLadder(buildLadder(deps.settings.top), deps.settings.ladder);
    this.watchdog = new Watchdog(deps.settings.watchdog);
    const layout = dataLayout(deps.dataDir);
    this.hlsDir = layout.hls;
    this.activeStep = this.ladder.current;
    const seg = deps.settings.segmentSeconds;
    this.hls = new HlsOutput({
      hlsDir: this.hlsDir,
      stateFile: path.join(layout.run, 'media-hls.json'),
      bootId: deps.bootId ?? readBootId(),
      log: this.log,
      now: this.now,
      shape: {
        targetS: seg,
        partTargetS: Math.max(...this.ladder.steps.map((s) => Math.ceil(partSeconds(s.fps) * 1000) / 1000)),
        partsPerSegment: seg * PARTS_PER_SECOND,
        windowSegments: deps.settings.playlistLength,
      },
    });
  }

  get ladderSteps(): readonly LadderStep[] {
    return this.ladder.steps;
  }

  start(): void {
    const { deps } = this;
    deps.bus?.onCommand((payload) => {
      try {
        this.handleCommand(parseMediaCommand(payload));
      } catch (err) {
        this.log.warn({ err: (err as Error).message }, 'media: command refused');
      }
    });
    const statusEvery = deps.settings.statusIntervalMs ?? 1000;
    this.loops.push(pollLoop(statusEvery, () => this.statusTick(), { onError: this.loopError }));
    if (!deps.gst.ok) {
      this.becomeUnavailable(deps.gst.reason);
      return;
    }
    try {
      this.hls.open();
    } catch (err) {
      this.becomeUnavailable(`cannot open the HLS directory: ${(err as Error).message}`);
      return;
    }
    this.loops.push(
      pollLoop(deps.settings.watchIntervalMs ?? 250, () => this.watchTick(), { onError: this.loopError }),
    );
    this.startPipeline();
    this.statusTick();
  }

  async stop(): Promise<void> {
    this.stoppedForGood = true;
    for (const l of this.loops) l.stop();
    this.loops = [];
    if (this.restartTimer) clearTimeout(this.restartTimer);
    this.stopPipeline();
    this.watchdog.stopped();
    if (this.state !== 'unavailable') this.state = 'paused';
    this.reason = this.state === 'unavailable' ? this.reason : 'stopped';
    this.writeStatus();
  }

  /** Apply a command as the local bus would deliver it (validated). Throws KitError on a bad one. */
  handleCommand(cmd: MediaCommand): void {
    if (cmd.cmd === 'sim-fault') {
      this.simFault(cmd.fault);
      return;
    }
    const decision = this.ladder.command(cmd, this.now());
    this.log.info({ cmd: cmd.cmd, step: decision.step.index }, 'media: command');
    if (decision.changed) this.moveTo(decision.step, decision.reason);
    this.statusTick();
  }

  stats(): MediaStats {
    const step = this.activeStep;
    const pl = this.state === 'unavailable' ? undefined : readPlaylist(this.hlsDir);
    const s: MediaStats = {
      state: this.state,
      board: this.deps.board.id,
      encoder: this.deps.board.video.encoder,
      fps: round(this.fps),
      droppedFrames: this.droppedTotal(),
      bitrateKbps: step.bitrateKbps,
      measuredKbps: pl?.newestKbps !== undefined ? Math.round(pl.newestKbps) : null,
      ladderStep: step.index,
      ladderSteps: this.ladder.steps.length,
      width: step.width,
      height: step.height,
      targetFps: step.fps,
      restarts: this.restarts,
      rebuilds: this.rebuilds,
      newestSegmentAgeMs: pl ? Math.max(0, Math.round(this.now() - pl.mtimeMs)) : null,
      cpuCores: Number.isFinite(this.lastCpu.processCores) ? round(this.lastCpu.processCores, 2) : null,
      machineCpu: Number.isFinite(this.lastCpu.machine) ? round(this.lastCpu.machine, 2) : null,
      playlist: '/live/index.m3u8',
    };
    if (this.lastRestartReason) s.lastRestartReason = this.lastRestartReason;
    if (this.reason) s.reason = this.reason;
    return s;
  }

  // --- pipeline lifecycle -------------------------------------------------------------------

  private startPipeline(): void {
    const step = this.ladder.current;
    this.activeStep = step;
    // Unavailable stays unavailable in this process: a missing plugin does not appear by retrying.
    if (this.stoppedForGood || !this.deps.gst.ok || this.state === 'unavailable' || this.diskHeld) return;
    if (step.paused) {
      this.state = 'paused';
      return;
    }
    this.runSeq += 1;
    this.prefix = `w${this.runBase}-${this.runSeq}`;
    const { board, settings } = this.deps;
    let desc: string;
    try {
      desc = buildPipeline({
        board: board.id,
        video: board.video,
        step,
        outputs: {
          hlsDir: this.hlsDir,
          segmentPrefix: this.prefix,
          upstreamUrl: settings.upstreamUrl,
        },
        source: { device: settings.device, simPattern: settings.simPattern, simFaults: board.id === 'sim' },
      });
    } catch (err) {
      this.becomeUnavailable(isKitError(err) ? `${err.code}: ${err.message}` : String(err));
      return;
    }
    let p: Pipeline;
    try {
      // Recreated on every run: a wiped directory (an unplugged USB disk) is a fault to recover from.
      fs.mkdirSync(this.hlsDir, { recursive: true });
      p = new this.deps.gst.gst.Pipeline(desc);
    } catch (err) {
      const msg = (err as Error).message ?? String(err);
      const missing = isMissingElement(msg) ? missingElements(desc, msg) : [];
      if (missing.length > 0) {
        // names each missing element and the package that provides it (gst-elements.ts)
        this.becomeUnavailable(missingElementsReason(board.id, missing));
      } else if (isMissingElement(msg)) {
        this.becomeUnavailable(`GStreamer cannot build the ${board.id} pipeline: ${msg}`);
      } else {
        this.scheduleRestart(`pipeline did not build: ${msg}`);
      }
      return;
    }
    const gen = ++this.generation;
    this.pipeline = p;
    this.meter = p.findChild(ELEMENT.meter);
    this.runMeter = { rendered: 0, dropped: 0 };
    this.runQosDrops = new Map();
    this.prevForRate = undefined;
    this.fps = 0;
    this.dropRatio = 0;
    p.pollBus((msg) => {
      if (gen === this.generation) this.onBusMessage(msg);
    });
    try {
      // durable before anything of the run is published: its discontinuity number (hls-state.ts)
      this.hls.startRun(this.prefix, Date.now());
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'media: cannot record the run');
    }
    p.play();
    this.startedAt = this.now();
    this.watchdog.started(this.startedAt);
    this.state = step.index > 0 ? 'degraded' : 'playing';
    this.reason = undefined;
    this.log.info(
      { step: step.index, w: step.width, h: step.height, fps: step.fps, kbps: step.bitrateKbps },
      'media: pipeline playing',
    );
  }

  private stopPipeline(): void {
    const p = this.pipeline;
    if (!p) return;
    this.foldRunCounters();
    this.generation += 1; // late bus messages from this pipeline are ignored from here on
    this.pipeline = undefined;
    this.meter = undefined;
    try {
      p.stop();
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'media: pipeline stop failed');
    }
    try {
      // the newest segment closes with the parts it has; no ENDLIST: the show goes on
      this.hls.endRun();
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'media: cannot close the run in the playlist');
    }
  }

  private scheduleRestart(reason: string): void {
    if (this.stoppedForGood || this.restartTimer) return;
    this.stopPipeline();
    this.restarts += 1;
    this.lastRestartReason = reason;
    this.state = 'restarting';
    const delay = this.watchdog.nextDelayMs();
    this.log.warn({ reason, delayMs: delay, restarts: this.restarts }, 'media: restarting pipeline');
    if (this.watchdog.consecutiveFailures > this.deps.settings.maxRestarts) {
      const why = `${this.watchdog.consecutiveFailures - 1} restarts in a row without a stable run (last: ${reason})`;
      this.state = 'unavailable';
      this.reason = why;
      this.writeStatus();
      this.deps.onFatal?.(why);
      return;
    }
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined;
      this.startPipeline();
    }, delay);
  }

  private becomeUnavailable(reason: string): void {
    this.stopPipeline();
    this.state = 'unavailable';
    this.reason = reason;
    this.log.error(`media unavailable: ${reason}`);
    this.writeStatus();
  }

  private moveTo(step: LadderStep, why: string): void {
    const from = this.activeStep;
    const plan = planTransition(this.deps.board.video, from, step);
    this.log.info({ from: from.index, to: step.index, plan: plan.kind, why }, 'media: ladder move');
    switch (plan.kind) {
      case 'none':
        this.activeStep = step;
        return;
      case 'live-bitrate': {
        const enc = this.pipeline?.findChild(ELEMENT.encoder);
        const setting = liveBitrateSetting(this.deps.board.video, plan.bitrateKbps, partFrames(step.fps));
        if (!enc || !setting) {
          this.rebuild();
          return;
        }
        enc[setting.property] = setting.value;
        // an unpatched binding leaves extra-controls as it was (GObject refuses a string): rebuild then
        if (!settingTook(setting, enc[setting.property])) {
          this.log.warn(
            { property: setting.property },
            'the encoder did not take the live bitrate: rebuilding',
          );
          this.rebuild();
          return;
        }
        this.activeStep = step;
        this.state = step.index > 0 ? 'degraded' : 'playing';
        return;
      }
      case 'rebuild':
        this.rebuild();
        return;
      case 'pause':
        this.stopPipeline();
        this.watchdog.stopped();
        this.activeStep = step;
        this.state = 'paused';
        return;
      case 'resume':
        this.startPipeline();
        return;
    }
  }

  private rebuild(): void {
    if (this.restartTimer) return; // a restart is pending; it builds the current rung anyway
    this.stopPipeline();
    this.rebuilds += 1;
    this.startPipeline();
  }

  private simFault(fault: 'stall' | 'kill'): void {
    if (this.deps.board.id !== 'sim') {
      throw new KitError('BAD_REQUEST', 'simulated faults exist on the sim board only');
    }
    const p = this.pipeline;
    if (!p) throw new KitError('EVENT_STATE', 'no pipeline is running');
    this.log.warn({ fault }, 'media: simulated fault');
    if (fault === 'stall') {
      const valve = p.findChild(ELEMENT.fault);
      if (valve) valve['drop'] = true;
    } else {
      // Dies without a word: no error, no EOS; only the watchdog can notice.
      p.stop();
    }
  }

  // --- observation --------------------------------------------------------------------------

  private onBusMessage(msg: BusMessage): void {
    switch (msg.type) {
      case 'error':
        this.log.error({ element: msg._src_element_name, err: msg.message }, 'media: pipeline error');
        this.scheduleRestart(`error from ${msg._src_element_name ?? '?'}: ${msg.message ?? 'unknown'}`);
        return;
      case 'eos':
        this.scheduleRestart('end of stream from a live source');
        return;
      case 'element':
        try {
          this.hls.onMessage(msg);
        } catch (err) {
          // a wiped directory or a full disk: the pipeline errors too and the watchdog restarts it
          this.log.warn({ err: (err as Error).message }, 'media: cannot publish a part');
        }
        return;
      case 'qos': {
        const src = msg._src_element_name ?? '?';
        const dropped = Number(msg['dropped']);
        // The meter's own late drops are read from its stats; count everyone else's here.
        if (src !== ELEMENT.meter && Number.isFinite(dropped)) {
          this.runQosDrops.set(src, Math.max(this.runQosDrops.get(src) ?? 0, dropped));
        }
        return;
      }
      default:
        return;
    }
  }

  private readMeter(): MeterReading | undefined {
    const m = this.meter;
    if (!m) return undefined;
    const r = parseSinkStats(m['stats']);
    if (r) this.runMeter = r;
    return r;
  }

  private foldRunCounters(): void {
    this.readMeter();
    this.droppedBefore += this.runMeter.dropped + [...this.runQosDrops.values()].reduce((a, b) => a + b, 0);
    this.runMeter = { rendered: 0, dropped: 0 };
    this.runQosDrops = new Map();
  }

  private droppedTotal(): number {
    return (
      this.droppedBefore + this.runMeter.dropped + [...this.runQosDrops.values()].reduce((a, b) => a + b, 0)
    );
  }

  private watchTick(): void {
    if (!this.pipeline) return;
    const r = this.readMeter() ?? this.runMeter;
    const verdict = this.watchdog.observe(this.now(), r.rendered, this.dropRatio);
    if (verdict.restart) this.scheduleRestart(verdict.reason);
  }

  /** Stop the stream and free its segments while the volume is low; play again when space returns. */
  private giveWayOnDisk(): void {
    if (this.state === 'unavailable' || this.stoppedForGood) return;
    const low = this.deps.disk?.givesWay('media') ?? false;
    if (low && !this.diskHeld) {
      this.diskHeld = true;
      clearTimeout(this.restartTimer);
      this.restartTimer = undefined;
      this.stopPipeline();
      this.hls.clear();
      this.state = 'paused';
      this.reason = 'data volume low: the stream gives way to orders';
      this.log.warn('media: data volume low, stream stopped and its segments removed');
    } else if (!low && this.diskHeld) {
      this.diskHeld = false;
      this.reason = undefined;
      this.log.info('media: space returned, stream resumes');
      this.startPipeline();
    }
  }

  private statusTick(): void {
    this.giveWayOnDisk();
    const now = this.now();
    this.lastCpu = this.cpu.sample();
    if (this.pipeline) {
      const r = this.readMeter() ?? this.runMeter;
      const drops = r.dropped + [...this.runQosDrops.values()].reduce((a, b) => a + b, 0);
      const prev = this.prevForRate;
      if (prev && now > prev.at) {
        const dt = (now - prev.at) / 1000;
        this.fps = (r.rendered - prev.rendered) / dt;
        const expected = this.activeStep.fps * dt;
        const lost = Math.max(drops - prev.dropped, expected - (r.rendered - prev.rendered));
        // The first seconds of a run include encoder warm-up: not evidence of overload.
        this.dropRatio = now - this.startedAt > 2000 ? Math.min(1, Math.max(0, lost / expected)) : 0;
      }
      this.prevForRate = { at: now, rendered: r.rendered, dropped: drops };
      const checkout = readRunStatus(this.deps.dataDir, 'checkout');
      const orders = checkout && statusAgeMs(checkout, now) < 5000 ? checkout.ordersPerSec : undefined;
      const cpuLoad = Number.isFinite(this.lastCpu.machine) ? this.lastCpu.machine : 0;
      const decision = this.ladder.sample({ dropRatio: this.dropRatio, cpuLoad, ordersPerSec: orders }, now);
      if (decision.changed) this.moveTo(decision.step, decision.reason);
    }
    try {
      this.hls.sweep();
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'media: cannot remove old segments');
    }
    this.writeStatus();
  }

  private writeStatus(): void {
    const s = this.stats();
    try {
      writeRunStatus(this.deps.dataDir, 'media', s);
    } catch (err) {
      // a body that breaks its contract (checked under NODE_ENV=test) is a bug, not a disk problem
      if (isKitError(err) && err.code === 'INTERNAL') throw err;
      this.log.warn({ err: (err as Error).message }, 'media: cannot write status');
    }
    this.deps.bus?.publishStats(s);
  }
}
