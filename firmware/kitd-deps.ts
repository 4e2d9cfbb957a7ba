// What kitd is given: its collaborators (KitdDeps: firmware/main.ts wires the real ones, tests the
// simulated ones) and its settings, from kitd's configuration and the board (firmware/config.ts holds
// the variables and their defaults).
import type { CheckoutClient } from '../core/checkout-client.ts';
import type { UpdatePolicy } from '../core/contracts/run-status.ts';
import type { BoardProfile } from '../hardware/boards/index.ts';
import type { GpioChipProvider } from '../hardware/gpio/types.ts';
import type { PowerSource } from '../hardware/power/reading.ts';
import type { SimGpio } from '../hardware/sim/gpio-sim.ts';
import { type ButtonMap, type ButtonOptions, parseButtonMap } from './buttons.ts';
import type { KitdConfigT } from './config.ts';
import type { TimerHost } from './edge-timer.ts';
import type { LinkMonitor, LinkSettings } from './links.ts';
import type { KitdBus } from './local-bus.ts';
import { capacityWhFromProfile, type PowerPolicyOptions } from './power-policy.ts';
import type { SupervisorClient } from './supervisor-client.ts';
import type { UpdateLock } from './update-lock.ts';
import type { WatchdogOptions } from './watchdog.ts';

export interface KitdSettings {
  plannedEventMin: number;
  capacityWh?: number;
  power: Partial<PowerPolicyOptions>;
  buttons: ButtonMap;
  buttonOptions: Partial<ButtonOptions>;
  watchdog: Partial<WatchdogOptions>;
  updatePolicy: UpdatePolicy;
  /** hub HTTP base for the network health probe */
  hubHttpUrl?: string;
  healthEveryMs: number;
  deviceEveryMs: number;
  /** checkout silent this long raises the fault overlay */
  checkoutFaultMs: number;
  /** buttons wired to ground with pull-ups read active-low; the simulator speaks logical levels */
  buttonsActiveLow: boolean;
  /** where and how often the network links are read (firmware/links.ts; firmware/main.ts builds the monitor) */
  links?: LinkSettings;
}

export interface KitdDeps {
  /**
   * services that are threads of kitd's own process (the combined kit of a small board, `popkit kit`):
   * that process restarts them when asked over the local bus; they are no balena service
   */
  inProcess?: readonly string[];
  kitId: string;
  dataDir: string;
  board: BoardProfile;
  gpio: GpioChipProvider;
  powerSources: PowerSource[];
  checkout: CheckoutClient;
  lock: UpdateLock;
  timers: TimerHost;
  settings: KitdSettings;
  bus?: KitdBus;
  supervisor?: SupervisorClient;
  /** the simulated chip when the board is `sim`, for `press` commands */
  simGpio?: SimGpio;
  /** the network links (firmware/links.ts); without it kitd shows them `off` and never holds for a metered one */
  links?: LinkMonitor;
}

export function kitdSettings(cfg: KitdConfigT, board: BoardProfile): KitdSettings {
  const capacityWh = cfg.POPKIT_BATTERY_WH ?? capacityWhFromProfile(board);
  return {
    plannedEventMin: cfg.POPKIT_EVENT_PLANNED_MIN,
    ...(capacityWh !== undefined ? { capacityWh } : {}),
    power: {
      lowSocPct: cfg.POPKIT_POWER_LOW_SOC,
      criticalSocPct: cfg.POPKIT_POWER_CRITICAL_SOC,
      criticalTtgMin: cfg.POPKIT_POWER_CRITICAL_TTG_MIN,
      hysteresisPct: cfg.POPKIT_POWER_HYSTERESIS,
    },
    buttons: parseButtonMap(cfg.POPKIT_BUTTONS),
    buttonOptions: { longMs: cfg.POPKIT_BUTTON_LONG_MS, stuckMs: cfg.POPKIT_BUTTON_STUCK_MS },
    watchdog: {
      services: cfg.POPKIT_WATCHDOG_SERVICES.split(',').filter(Boolean),
      staleMs: cfg.POPKIT_WATCHDOG_STALE_S * 1000,
      graceMs: cfg.POPKIT_WATCHDOG_GRACE_S * 1000,
    },
    updatePolicy: cfg.POPKIT_UPDATE_POLICY,
    hubHttpUrl: cfg.POPKIT_HUB_HTTP_URL.replace(/\/+$/, ''),
    healthEveryMs: 10_000,
    deviceEveryMs: 60_000,
    checkoutFaultMs: 10_000,
    buttonsActiveLow: board.id !== 'sim',
    links: {
      mode: cfg.POPKIT_LINKS,
      busAddress: cfg.DBUS_SYSTEM_BUS_ADDRESS,
      ...(cfg.POPKIT_LINKS_SIM_FILE ? { simFile: cfg.POPKIT_LINKS_SIM_FILE } : {}),
      everyMs: cfg.POPKIT_LINKS_POLL_S * 1000,
      graceMs: cfg.POPKIT_LINKS_GRACE_S * 1000,
    },
  };
}
