// Composition root of `popkit kitd`: configuration, board, GPIO (simulated on the sim board), power
// sources, local bus, checkout client, balena supervisor when present; runs until SIGTERM/SIGINT.
import path from 'node:path';
import { CheckoutClient, readAdminToken } from '../core/checkout-client.ts';
import { loadConfig, resolveDataDir, resolveKitId } from '../core/config.ts';
import { mkdirDurable } from '../core/durable-file.ts';
import { type RunningPart, untilStopSignal } from '../core/kit-part.ts';
import { moduleLogger } from '../core/logger.ts';
import { onBalena } from '../core/secrets.ts';
import { detectBoard } from '../hardware/boards/index.ts';
import { createGpioProvider } from '../hardware/factories/gpio-providers.ts';
import { createPowerSources } from '../hardware/factories/power-sources.ts';
import { BatteryModel } from '../hardware/sim/battery-model.ts';
import { SimGpio } from '../hardware/sim/gpio-sim.ts';
import { KitdConfig } from './config.ts';
import { systemTimers } from './edge-timer.ts';
import { Kitd } from './kitd.ts';
import { kitdSettings } from './kitd-deps.ts';
import { createLinkMonitor } from './links.ts';
import { MqttKitdBus } from './local-bus.ts';
import { SupervisorClient } from './supervisor-client.ts';
import { UpdateLock } from './update-lock.ts';

export interface RunningKitd {
  kitd: Kitd;
  bus: MqttKitdBus | undefined;
  stop(): Promise<void>;
}

export async function createKitd(env: NodeJS.ProcessEnv = process.env): Promise<RunningKitd> {
  const cfg = loadConfig(KitdConfig, env);
  const dataDir = resolveDataDir(cfg);
  // durable: kitd may be the first to create the data dir, and a lost directory loses all inside it
  mkdirDurable(dataDir);
  const kitId = resolveKitId(cfg);
  const board = detectBoard(env);
  const sim = board.id === 'sim';
  const settings = kitdSettings(cfg, board);
  // onoff where sysfs GPIO exists, libgpiod where not, the simulator on `sim`; a line that cannot be
  // opened becomes a fault overlay, never a crash
  const gpio = createGpioProvider(board, env);
  const simGpio = gpio instanceof SimGpio ? gpio : undefined;
  const battery = sim
    ? new BatteryModel({
        socPct: cfg.POPKIT_SIM_SOC ?? 80,
        loadW: cfg.POPKIT_SIM_LOAD_W ?? 25,
        speed: cfg.POPKIT_SIM_SPEED ?? 1,
        ...(settings.capacityWh ? { capacityWh: settings.capacityWh } : {}),
      })
    : undefined;
  const powerSources = createPowerSources(board, { sim, ...(battery ? { battery } : {}), env });
  const bus = cfg.POPKIT_LOCAL_BUS_URL
    ? new MqttKitdBus(cfg.POPKIT_LOCAL_BUS_URL, cfg.POPKIT_LOCAL_BUS_PREFIX, kitId)
    : undefined;
  bus?.start();
  const checkout = new CheckoutClient(
    (cfg.POPKIT_CHECKOUT_URL ?? `http://127.0.0.1:${cfg.POPKIT_HTTP_PORT}`).replace(/\/+$/, ''),
    () => readAdminToken(dataDir, cfg.POPKIT_ADMIN_TOKEN),
  );
  const supervisor = SupervisorClient.fromEnv(env);
  const lock = new UpdateLock(cfg.POPKIT_UPDATE_LOCK_MAX_H * 3_600_000, env);
  // the kit's network links: the host's NetworkManager over D-Bus, or the sim board's links file
  const linkSettings = settings.links ?? { mode: 'off' as const, everyMs: 5000, graceMs: 0 };
  const links = createLinkMonitor(
    { ...linkSettings, simFile: linkSettings.simFile ?? path.join(dataDir, 'links-sim.json') },
    { sim, balena: onBalena(env), now: () => systemTimers.now() },
  );
  const kitd = new Kitd({
    // the combined kit (`popkit kit`): checkout and sync are threads of this process, restarted by it
    ...(env['POPKIT_KIT_MODE'] === 'combined' ? { inProcess: ['checkout', 'sync'] } : {}),
    kitId,
    dataDir,
    board,
    gpio,
    powerSources,
    checkout,
    lock,
    timers: systemTimers,
    settings,
    links,
    ...(bus ? { bus } : {}),
    ...(supervisor ? { supervisor } : {}),
    ...(simGpio ? { simGpio } : {}),
  });
  await kitd.start();
  return {
    kitd,
    bus,
    stop: async () => {
      await kitd.stop();
      await bus?.close({ state: kitd.lifecycle.state === 'off' ? 'off' : 'stopped' });
    },
  };
}

/**
 * kitd started in this thread, its start line printed; stop() ends it. The same for `popkit kitd` (a
 * process) and the kitd worker of the combined kit process (core/kit-part.ts).
 */
export async function startKitd(env: NodeJS.ProcessEnv = process.env): Promise<RunningPart> {
  const log = moduleLogger('kitd');
  const k = await createKitd(env);
  const st = k.kitd.status();
  process.stdout.write(
    `popkit kitd: ${st['state']} on ${detectBoard(env).id}, supervisor ${st['supervisor']}, local bus ${k.bus ? 'on' : 'off'}, links ${st.links?.source ?? 'off'}\n`,
  );
  // keep the event loop alive: kitd's own timers are unref'd so tests never hang on them
  const keepAlive = setInterval(() => undefined, 60_000);
  return {
    stop: async () => {
      clearInterval(keepAlive);
      log.info('stopping');
      await k.stop();
    },
  };
}

/** `popkit kitd`: run until SIGTERM/SIGINT. */
export async function runKitd(env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const running = await startKitd(env);
  await untilStopSignal();
  await running.stop();
  return 0;
}
