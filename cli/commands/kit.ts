// `popkit kit`: checkout, sync and kitd in ONE process, each a worker thread (small boards: a Pi Zero 2 W
// has 512 MB for everything, and each Node process holds 45-65 MB of its own). Media stays a process of
// its own (a GStreamer fault must not take checkout down). Isolation as containers give it: a part whose
// worker ends (an uncaught exception, a heap over its limit, a stop asked by kitd's watchdog) is started
// again alone with backoff, the others keep running; orders are in LMDB, which lmdb-js shares between
// the threads of a process (one environment, as between processes). What a thread cannot isolate: a
// native crash (a segfault) ends the whole process, and then the container or `popkit up` restarts it.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import mqtt from 'mqtt';
import {
  BaseConfig,
  composeConfig,
  KitModeConfig,
  loadConfig,
  resolveDataDir,
  resolveKitId,
} from '../../core/config.ts';
import { localTopics, supervisorCommand } from '../../core/contracts/local-bus.ts';
import { writeRunStatus } from '../../core/contracts/run-status.ts';
import { KIT_PARTS, type KitPart, untilStopSignal } from '../../core/kit-part.ts';
import { KIT_MQTT_OPTIONS } from '../../core/mqtt-options.ts';
import { pollLoop } from '../../core/poll-loop.ts';
import { WorkerSupervisor } from '../../core/worker-supervisor.ts';
import type { KitWorkerData } from '../kit-worker.ts';

const KitProcessConfig = composeConfig(BaseConfig, KitModeConfig);

const here = path.dirname(fileURLToPath(import.meta.url));
/** The worker threads' entry, beside bin/popkit.js (from the sources and from dist/ alike). */
function workerEntry(): URL {
  for (let dir = here; ; dir = path.dirname(dir)) {
    const candidate = path.join(dir, 'bin/kit-worker.js');
    if (fs.existsSync(candidate)) return new URL(`file://${candidate}`);
    if (path.dirname(dir) === dir) throw new Error(`bin/kit-worker.js not found above ${here}`);
  }
}

export interface KitProcess {
  sup: WorkerSupervisor;
  stop(): Promise<void>;
}

/** The combined kit in this process: a supervised worker per part, its view in run/kit.json. */
export function startKitProcess(
  env: NodeJS.ProcessEnv = process.env,
  parts: readonly KitPart[] = KIT_PARTS,
): KitProcess {
  const cfg = loadConfig(KitProcessConfig, env);
  const dataDir = resolveDataDir(cfg);
  const kitId = resolveKitId(cfg);
  const sup = new WorkerSupervisor();
  sup.on('exit', (name: string, code: number, error: string | undefined, backoff: number) => {
    process.stdout.write(
      `popkit kit: ${name} ended (${error ?? `exit ${code}`}); restarting it in ${backoff} ms\n`,
    );
  });
  const filename = workerEntry();
  const resourceLimits = {
    ...(cfg.POPKIT_KIT_WORKER_HEAP_MB ? { maxOldGenerationSizeMb: cfg.POPKIT_KIT_WORKER_HEAP_MB } : {}),
    ...(cfg.POPKIT_KIT_WORKER_YOUNG_MB ? { maxYoungGenerationSizeMb: cfg.POPKIT_KIT_WORKER_YOUNG_MB } : {}),
  };
  for (const part of parts) {
    const workerData: KitWorkerData = { part };
    sup.add({
      name: part,
      filename,
      workerData,
      env: { ...env, POPKIT_KIT_MODE: 'combined' },
      ...(Object.keys(resourceLimits).length ? { resourceLimits } : {}),
    });
  }
  const beat = pollLoop(1000, () => writeRunStatus(dataDir, 'kit', { parts: sup.view() }), {
    unref: true,
    immediate: true,
    onError: () => undefined, // the data volume gone: the parts report it themselves
  });
  // kitd's watchdog asks for a part's restart over the local bus (off balena, or here where the
  // container is the whole kit): the worker is restarted, not the process
  const topic = localTopics(cfg.POPKIT_LOCAL_BUS_PREFIX).supervisorCmd;
  const bus = cfg.POPKIT_LOCAL_BUS_URL
    ? mqtt.connect(cfg.POPKIT_LOCAL_BUS_URL, {
        ...KIT_MQTT_OPTIONS,
        clientId: `popkit-kit-${kitId}-${process.pid}`,
        reconnectPeriod: 2000,
      })
    : undefined;
  bus?.on('connect', () => bus.subscribe(topic, { qos: 1 }));
  bus?.on('error', () => {});
  bus?.on('message', (t, payload) => {
    const cmd = t === topic ? supervisorCommand.parse(payload) : undefined;
    if (cmd && (parts as readonly string[]).includes(cmd.service) && sup.restart(cmd.service))
      process.stdout.write(`popkit kit: restarting ${cmd.service} (watchdog)\n`);
  });
  return {
    sup,
    stop: async () => {
      beat.stop();
      await bus?.endAsync(true);
      await sup.stop();
      writeRunStatus(dataDir, 'kit', { parts: sup.view() });
    },
  };
}

export async function run(_argv: string[]): Promise<number> {
  const kit = startKitProcess(process.env);
  process.stdout.write(`popkit kit: ${KIT_PARTS.join(', ')} as threads of process ${process.pid}\n`);
  await untilStopSignal();
  await kit.stop();
  return 0;
}
