// The kit's local MQTT bus: every topic is built here from the configured prefix
// (POPKIT_LOCAL_BUS_PREFIX), and every payload that travels on it is declared here, for the publisher
// and the subscriber alike (docs/contracts.md#local-bus-mqtt).
import { type Static, Type } from '@sinclair/typebox';
import { contract } from './common.ts';

export const DEFAULT_LOCAL_BUS_PREFIX = 'popkit/v1/local';
/** What a prefix may look like: topic levels without wildcards. */
export const LOCAL_BUS_PREFIX_PATTERN = '^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$';

/** Services that publish a sign of life the watchdog counts, and the leaves that count. */
export const HEARTBEAT_LEAVES = ['status', 'stats', 'heartbeat'] as const;

export interface LocalTopics {
  readonly prefix: string;
  kitdStatus: string;
  kitdEvents: string;
  kitdCmd: string;
  mediaStats: string;
  mediaCmd: string;
  syncCmd: string;
  supervisorCmd: string;
  /** `<prefix>/<service>/cmd` */
  cmd(service: string): string;
  /** every service's messages, for heartbeats: `<prefix>/+/+` */
  everything: string;
  /** `<prefix>/<service>/<leaf>` → its parts, or undefined for a topic outside the prefix */
  parse(topic: string): { service: string; leaf: string } | undefined;
}

export function localTopics(prefix: string = DEFAULT_LOCAL_BUS_PREFIX): LocalTopics {
  const p = prefix.replace(/\/+$/, '');
  const cmd = (service: string) => `${p}/${service}/cmd`;
  return {
    prefix: p,
    kitdStatus: `${p}/kitd/status`,
    kitdEvents: `${p}/kitd/events`,
    kitdCmd: cmd('kitd'),
    mediaStats: `${p}/media/stats`,
    mediaCmd: cmd('media'),
    syncCmd: cmd('sync'),
    supervisorCmd: cmd('supervisor'),
    cmd,
    everything: `${p}/+/+`,
    parse(topic) {
      if (!topic.startsWith(`${p}/`)) return undefined;
      const rest = topic.slice(p.length + 1).split('/');
      if (rest.length !== 2 || !rest[0] || !rest[1]) return undefined;
      return { service: rest[0], leaf: rest[1] };
    },
  };
}

/** kitd → sync: push the outbox now (critical power, safe shutdown). */
export const SyncCommandSchema = Type.Object({ v: Type.Literal(1), cmd: Type.Literal('flush') });
export type SyncCommand = Static<typeof SyncCommandSchema>;
export const syncCommand = contract(SyncCommandSchema);

/** kitd → the process supervisor of `popkit up` (on a board the balena supervisor does this over HTTP). */
export const SupervisorCommandSchema = Type.Object({
  v: Type.Literal(1),
  cmd: Type.Literal('restart'),
  service: Type.String({ pattern: '^[a-z][a-z0-9-]{0,31}$' }),
});
export type SupervisorCommand = Static<typeof SupervisorCommandSchema>;
export const supervisorCommand = contract(SupervisorCommandSchema);

export const BUTTON_ACTIONS = [
  'start-event',
  'stop-event',
  'toggle-event',
  'mark-moment',
  'identify',
  'safe-shutdown',
  'none',
] as const;
export type ButtonAction = (typeof BUTTON_ACTIONS)[number];

/** The host or a test → kitd on `<prefix>/kitd/cmd`. `press` works on the simulated board only. */
export const KitdCommandSchema = Type.Union([
  Type.Object({ v: Type.Optional(Type.Literal(1)), cmd: Type.Literal('identify') }),
  Type.Object({
    v: Type.Optional(Type.Literal(1)),
    cmd: Type.Literal('action'),
    action: Type.Union(BUTTON_ACTIONS.map((a) => Type.Literal(a))),
  }),
  Type.Object({
    v: Type.Optional(Type.Literal(1)),
    cmd: Type.Literal('press'),
    button: Type.Union([Type.Literal('a'), Type.Literal('b')]),
    ms: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 60_000 })),
  }),
]);
export type KitdCommand = Static<typeof KitdCommandSchema>;
export const kitdCommand = contract(KitdCommandSchema);
