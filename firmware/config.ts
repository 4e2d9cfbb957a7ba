// kitd's own environment: thresholds of the power policy, button mapping, watchdog and update-lock
// settings. Composed with BaseConfig (core/config.ts) at start; a bad value stops kitd with one line each.
import { type Static, Type } from '@sinclair/typebox';
import { BaseConfig, composeConfig, SECRET } from '../core/config.ts';

const Pct = (def: number, description: string) =>
  Type.Number({ minimum: 0, maximum: 100, default: def, description });

export const KitdOwnConfig = Type.Object({
  POPKIT_HTTP_PORT: Type.Integer({ minimum: 1, maximum: 65535, default: 8080, description: 'checkout API' }),
  POPKIT_CHECKOUT_URL: Type.Optional(
    Type.String({ pattern: '^https?://', description: 'checkout base URL (default http://127.0.0.1:PORT)' }),
  ),
  POPKIT_ADMIN_TOKEN: Type.Optional(Type.String({ minLength: 16 })),
  POPKIT_HUB_HTTP_URL: Type.String({
    pattern: '^https?://',
    default: 'http://127.0.0.1:8090',
    description: "the hub's HTTP API, for jitter/loss probes and the gateway check",
  }),
  POPKIT_HUB_ADMIN_TOKEN: Type.Optional(
    Type.String({
      ...SECRET,
      minLength: 16,
      description:
        "the hub's admin token, for popkit preflight's payment check (GET /v1/gateway); give it to that run, do not store it on kits",
    }),
  ),
  POPKIT_POWER_LOW_SOC: Pct(30, 'SOC % below which media steps down'),
  POPKIT_POWER_CRITICAL_SOC: Pct(8, 'SOC % at which the kit flushes and shuts down'),
  POPKIT_POWER_CRITICAL_TTG_MIN: Type.Number({
    minimum: 0,
    default: 10,
    description: 'time-to-go (minutes) at which the kit flushes and shuts down',
  }),
  POPKIT_POWER_HYSTERESIS: Pct(5, 'SOC points above a threshold before a level is left'),
  POPKIT_EVENT_PLANNED_MIN: Type.Number({
    minimum: 0,
    default: 240,
    description: 'planned event duration; time-to-go shorter than what is left of it counts as low',
  }),
  // redundant uplinks (#17): `popkit preflight` reaches the hub over each link on its own
  POPKIT_PREFLIGHT_REDUNDANCY: Type.Union([Type.Literal('required'), Type.Literal('off')], {
    default: 'off',
    description:
      "required: the event needs redundant uplinks, and pre-flight fails unless at least two of kitd's links (NetworkManager's) each reach the hub's /healthz on their own; off: each link is still probed and listed, and the check passes",
  }),
  POPKIT_BATTERY_WH: Type.Optional(
    Type.Number({ exclusiveMinimum: 0, description: 'usable battery energy for time-to-go' }),
  ),
  POPKIT_BUTTONS: Type.String({
    default: 'a.short=mark-moment,a.double=identify,a.long=toggle-event,b.long=safe-shutdown',
    description: 'button.class=action, comma-separated',
  }),
  POPKIT_BUTTON_LONG_MS: Type.Integer({ minimum: 500, default: 3000 }),
  POPKIT_BUTTON_STUCK_MS: Type.Integer({ minimum: 2000, default: 15_000 }),
  POPKIT_GPIO: Type.Optional(
    Type.Union([Type.Literal('sim'), Type.Literal('sysfs'), Type.Literal('libgpiod')], {
      description:
        'force a GPIO backend (default: sim on the sim board, sysfs where /sys/class/gpio exists, else libgpiod)',
    }),
  ),
  POPKIT_WATCHDOG_SERVICES: Type.String({
    default: 'checkout,sync,media',
    description: 'services whose heartbeat the watchdog watches and restarts',
    pattern: '^([a-z][a-z0-9-]*)?(,[a-z][a-z0-9-]*)*$',
  }),
  POPKIT_WATCHDOG_STALE_S: Type.Number({ minimum: 1, default: 15 }),
  POPKIT_WATCHDOG_GRACE_S: Type.Number({ minimum: 0, default: 60 }),
  POPKIT_UPDATE_POLICY: Type.Union(
    [Type.Literal('after-event'), Type.Literal('when-idle'), Type.Literal('immediate')],
    { default: 'after-event', description: 'when an OTA update may land' },
  ),
  POPKIT_UPDATE_LOCK_MAX_H: Type.Number({
    exclusiveMinimum: 0,
    default: 18,
    description: 'longest the update lock is held in one go (a lease)',
  }),
  // network links (firmware/links.ts, docs/fleet.md#updates-that-never-land-mid-drop)
  POPKIT_LINKS: Type.Union(
    [Type.Literal('auto'), Type.Literal('networkmanager'), Type.Literal('sim'), Type.Literal('off')],
    {
      default: 'auto',
      description:
        "where kitd learns the kit's network links: the host's NetworkManager over the system D-Bus, the sim board's links file, or off. auto: sim on the sim board; networkmanager on balena or where a system bus socket exists; else off",
    },
  ),
  DBUS_SYSTEM_BUS_ADDRESS: Type.Optional(
    Type.String({
      minLength: 1,
      maxLength: 1024,
      pattern: '^(unix|tcp):[^\\u0000-\\u001f\\u007f]*$',
      description:
        'the system D-Bus (balena: unix:path=/host/run/dbus/system_bus_socket with the io.balena.features.dbus label); default that socket when present, else unix:path=/run/dbus/system_bus_socket',
    }),
  ),
  POPKIT_LINKS_POLL_S: Type.Number({
    minimum: 1,
    maximum: 3600,
    default: 5,
    description: 'how often kitd reads the links',
  }),
  POPKIT_LINKS_GRACE_S: Type.Number({
    minimum: 0,
    maximum: 86_400,
    default: 60,
    description:
      'a metered primary link still holds the update lock this long after the links stopped answering (a NetworkManager restart is no window for a download)',
  }),
  POPKIT_LINKS_SIM_FILE: Type.Optional(
    Type.String({
      minLength: 1,
      maxLength: 4096,
      pattern: '^[^\\u0000]*$',
      description:
        'sim board: the links file, {"links": [{iface, type, state, metered, primary, addresses?}]}, re-read at every poll (default <data>/links-sim.json; absent: Ethernet up, a modem idle)',
    }),
  ),
  POPKIT_SIM_SOC: Type.Optional(Pct(80, 'sim board: starting battery SOC')),
  POPKIT_SIM_LOAD_W: Type.Optional(Type.Number({ minimum: 0, description: 'sim board: load in W' })),
  POPKIT_SIM_SPEED: Type.Optional(
    Type.Number({ exclusiveMinimum: 0, description: 'sim board: simulated seconds per second' }),
  ),
  BALENA_SUPERVISOR_ADDRESS: Type.Optional(Type.String({ pattern: '^https?://' })),
  BALENA_SUPERVISOR_API_KEY: Type.Optional(Type.String()),
  BALENA_APP_ID: Type.Optional(Type.String({ pattern: '^[0-9]+$' })),
});

export const KitdConfig = composeConfig(BaseConfig, KitdOwnConfig);
export type KitdConfigT = Static<typeof KitdConfig>;
