// A small client of Mosquitto 2's dynamic security plugin (docs/fleet.md#provisioning-with-dynamic-security):
// the hub adds and removes kits at the broker by publishing JSON commands to `$CONTROL/dynamic-security/v1`
// and reading the answers on `.../response`, instead of editing a password file and an ACL file and
// sending SIGHUP (deploy/hub/add-kit.sh). Each kit gets a client (user name = kit id, a random password
// returned once) and a role of its own with the same topic rules as deploy/hub/acl's per-kit patterns,
// plus read access to its events' catalogs. Deleting the client disconnects a connected kit at once.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import mqtt, { type MqttClient } from 'mqtt';
import { ID_LEVEL } from '../../core/contracts/common.ts';
import { ENROLL_EVENTS_MAX } from '../../core/contracts/enrollment.ts';
import { topics } from '../../core/contracts/hub-wire.ts';
import { KitError } from '../../core/errors.ts';

export const DYNSEC_TOPIC = '$CONTROL/dynamic-security/v1';
export const DYNSEC_RESPONSE_TOPIC = `${DYNSEC_TOPIC}/response`;
/** events one kit may be enrolled for at once */
export { ENROLL_EVENTS_MAX };

const ID_RE = new RegExp(ID_LEVEL);

/**
 * A kit id or event id that may go into a topic and a dynsec name: the project's id rule (no `+`, `#`,
 * `/`, NUL, space; at most 64 characters), and for kits, not one of the hub's own names (`popkit*`,
 * any case) nor the dynsec admin's user name. Throws a coded VALIDATION error otherwise.
 */
export function checkId(kind: 'kit' | 'event', id: unknown, reserved: readonly string[] = []): string {
  if (typeof id !== 'string' || !ID_RE.test(id)) {
    throw new KitError('VALIDATION', `bad ${kind} id: must match ${ID_LEVEL}`, {
      [kind === 'kit' ? 'kitId' : 'eventId']: typeof id === 'string' ? id.slice(0, 80) : typeof id,
    });
  }
  if (kind === 'kit') {
    const lower = id.toLowerCase();
    if (lower.startsWith('popkit') || reserved.some((r) => r.toLowerCase() === lower)) {
      throw new KitError('VALIDATION', `reserved kit id: ${id} (the hub's own names)`, { kitId: id });
    }
  }
  return id;
}

export type AclType = 'publishClientSend' | 'publishClientReceive' | 'subscribeLiteral';
export interface DynsecAcl {
  acltype: AclType;
  topic: string;
  allow: boolean;
  priority?: number;
}

/** The dynsec role of one kit (its name). */
export function kitRoleName(kitId: string): string {
  return `kit-${kitId}`;
}

/**
 * The role template of a kit: deploy/hub/acl's per-kit patterns with the kit id substituted, and
 * read access to the catalogs of its events. Ids are checked here too, so nothing else reaches a topic.
 */
export function kitRoleAcls(kitId: string, eventIds: readonly string[]): DynsecAcl[] {
  checkId('kit', kitId);
  for (const ev of eventIds) checkId('event', ev);
  const send = [topics.orders, topics.telemetry, topics.status, topics.receipts, topics.authorize];
  const read = [
    topics.acks(kitId),
    topics.authorizations(kitId),
    // its own share of its events' stock (shared-stock.ts), one retained statement per event
    topics.kitAllocations(kitId),
    // the hub's telemetry seal key, signed (core/telemetry-seal.ts): the same for every kit
    topics.sealKey,
    ...eventIds.map((e) => topics.catalog(e)),
  ];
  return [
    ...send.map((t): DynsecAcl => ({ acltype: 'publishClientSend', topic: t(kitId), allow: true })),
    ...read.flatMap((t): DynsecAcl[] => [
      { acltype: 'subscribeLiteral', topic: t, allow: true },
      { acltype: 'publishClientReceive', topic: t, allow: true },
    ]),
  ];
}

/** A fresh broker password: 24 random bytes, base64url (32 characters). */
export function generatePassword(): string {
  return randomBytes(24).toString('base64url');
}

export interface DynsecOptions {
  url: string;
  username: string;
  password: string;
  /** CA bundle file for mqtts:// (read at connect, as ingest and authorize do) */
  caFile?: string | undefined;
  /** bound on connecting and on every command's answer (default 5000 ms) */
  timeoutMs?: number;
  clientId?: string;
}

interface DynsecResponse {
  command?: unknown;
  error?: unknown;
  data?: unknown;
  correlationData?: unknown;
}

type Command = Record<string, unknown> & { command: string };

interface Pending {
  resolve: (r: DynsecResponse[]) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

/** Plugin error text → a coded error (the plugin answers in words: "Client already exists", …). */
function codedError(cmd: string, error: string, subject: Record<string, unknown>): KitError {
  const e = error.toLowerCase();
  if (e.includes('already exists')) return new KitError('CONFLICT', `${cmd}: ${error}`, subject);
  if (e.includes('not found')) return new KitError('NOT_FOUND', `${cmd}: ${error}`, subject);
  if (e.includes('invalid') || e.includes('missing'))
    return new KitError('VALIDATION', `${cmd}: ${error}`, subject);
  return new KitError('BROKER_UNAVAILABLE', `dynamic security ${cmd} failed: ${error}`, subject);
}

export interface EnrolledKit {
  kitId: string;
  username: string;
  /** returned once; the broker keeps only its hash */
  password: string;
}

export class DynsecClient {
  private client: MqttClient | undefined;
  private connecting: Promise<MqttClient> | undefined;
  private readonly pending = new Map<string, Pending>();
  private seq = 0;
  private readonly prefix = randomBytes(6).toString('hex');
  private readonly timeoutMs: number;

  constructor(private readonly opts: DynsecOptions) {
    this.timeoutMs = opts.timeoutMs ?? 5000;
  }

  /** names a kit may not take: the admin's own user name */
  get reserved(): readonly string[] {
    return [this.opts.username];
  }

  private connect(): Promise<MqttClient> {
    if (this.client?.connected) return Promise.resolve(this.client);
    if (this.connecting) return this.connecting;
    this.connecting = new Promise<MqttClient>((resolve, reject) => {
      const c = mqtt.connect(this.opts.url, {
        username: this.opts.username,
        password: this.opts.password,
        clientId: this.opts.clientId ?? `popkit-hub-dynsec-${this.prefix}`,
        connectTimeout: this.timeoutMs,
        reconnectPeriod: 0,
        ...(this.opts.caFile ? { ca: fs.readFileSync(this.opts.caFile) } : {}),
      });
      const fail = (err: Error) => {
        clearTimeout(timer);
        c.end(true);
        reject(new KitError('BROKER_UNAVAILABLE', `dynamic security broker unreachable: ${err.message}`));
      };
      const timer = setTimeout(() => fail(new Error(`no CONNACK in ${this.timeoutMs} ms`)), this.timeoutMs);
      c.once('error', fail);
      c.once('connect', () => {
        c.subscribe(DYNSEC_RESPONSE_TOPIC, { qos: 1 }, (err, granted) => {
          clearTimeout(timer);
          if (err || !granted || granted.some((g) => g.qos > 2)) {
            fail(err ?? new Error('not allowed to read the dynamic security responses'));
            return;
          }
          c.removeListener('error', fail);
          c.on('error', () => {});
          this.client = c;
          resolve(c);
        });
      });
      c.on('message', (topic, payload) => {
        if (topic === DYNSEC_RESPONSE_TOPIC) this.onResponse(payload);
      });
      c.on('close', () => {
        if (this.client === c) this.client = undefined;
        for (const [id, p] of this.pending) {
          clearTimeout(p.timer);
          this.pending.delete(id);
          p.reject(
            new KitError('BROKER_UNAVAILABLE', 'dynamic security connection closed before its answer'),
          );
        }
      });
    }).finally(() => {
      this.connecting = undefined;
    });
    return this.connecting;
  }

  private onResponse(payload: Buffer): void {
    let body: unknown;
    try {
      body = JSON.parse(payload.toString('utf8'));
    } catch {
      return; // not ours to judge: another admin's answer or noise
    }
    const responses = (body as { responses?: unknown })?.responses;
    if (!Array.isArray(responses) || responses.length === 0) return;
    const first = responses[0] as DynsecResponse;
    if (typeof first?.correlationData !== 'string') return;
    const batch = first.correlationData.split(':')[0] ?? '';
    const p = this.pending.get(batch);
    if (!p) return;
    clearTimeout(p.timer);
    this.pending.delete(batch);
    p.resolve(responses as DynsecResponse[]);
  }

  /** Send one batch of commands; resolves with one answer per command, in order. Bounded by timeoutMs. */
  async run(commands: readonly Command[]): Promise<DynsecResponse[]> {
    const c = await this.connect();
    const batch = `${this.prefix}-${++this.seq}`;
    const body = { commands: commands.map((cmd, i) => ({ ...cmd, correlationData: `${batch}:${i}` })) };
    const answers = new Promise<DynsecResponse[]>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(batch);
        reject(new KitError('BROKER_UNAVAILABLE', `no dynamic security answer in ${this.timeoutMs} ms`));
      }, this.timeoutMs);
      this.pending.set(batch, { resolve, reject, timer });
    });
    c.publish(DYNSEC_TOPIC, JSON.stringify(body), { qos: 1 }, (err) => {
      const p = this.pending.get(batch);
      if (err && p) {
        clearTimeout(p.timer);
        this.pending.delete(batch);
        p.reject(new KitError('BROKER_UNAVAILABLE', `dynamic security command not sent: ${err.message}`));
      }
    });
    const got = await answers;
    // answers by their correlation data, so a reordered reply cannot be taken for another command's
    return commands.map((cmd, i) => {
      const r = got.find((x) => x.correlationData === `${batch}:${i}`);
      if (!r) throw new KitError('BROKER_UNAVAILABLE', `dynamic security gave no answer to ${cmd.command}`);
      return r;
    });
  }

  /** Run commands and throw the first plugin error as a coded KitError. */
  private async must(
    commands: readonly Command[],
    subject: Record<string, unknown>,
  ): Promise<DynsecResponse[]> {
    const answers = await this.run(commands);
    answers.forEach((r, i) => {
      if (typeof r.error === 'string' && r.error)
        throw codedError(commands[i]?.command ?? '?', r.error, subject);
    });
    return answers;
  }

  /** The dynsec client of a kit, or undefined when there is none. */
  async getKit(kitId: string): Promise<{ username: string; roles: string[]; disabled: boolean } | undefined> {
    checkId('kit', kitId, this.reserved);
    const [r] = await this.run([{ command: 'getClient', username: kitId }]);
    if (typeof r?.error === 'string' && r.error) {
      if (r.error.toLowerCase().includes('not found')) return undefined;
      throw codedError('getClient', r.error, { kitId });
    }
    const client = (r?.data as { client?: Record<string, unknown> } | undefined)?.client ?? {};
    const roles = Array.isArray(client['roles'])
      ? client['roles'].map((x) => String((x as { rolename?: unknown }).rolename))
      : [];
    return { username: String(client['username'] ?? kitId), roles, disabled: client['disabled'] === true };
  }

  /** Create or replace the role of a kit (its own topics and its events' catalogs). */
  async ensureKitRole(kitId: string, eventIds: readonly string[]): Promise<string> {
    const acls = kitRoleAcls(kitId, eventIds);
    const rolename = kitRoleName(kitId);
    const [del] = await this.run([{ command: 'deleteRole', rolename }]);
    if (typeof del?.error === 'string' && del.error && !del.error.toLowerCase().includes('not found')) {
      throw codedError('deleteRole', del.error, { kitId });
    }
    await this.must([{ command: 'createRole', rolename, acls }], { kitId });
    return rolename;
  }

  /**
   * Enroll a kit: a client with a generated password and its role. 409 CONFLICT when the kit exists
   * (nothing of it is changed). The password is returned here only.
   */
  async addKit(kitId: string, eventIds: readonly string[]): Promise<EnrolledKit> {
    checkId('kit', kitId, this.reserved);
    if (eventIds.length === 0 || eventIds.length > ENROLL_EVENTS_MAX) {
      throw new KitError('VALIDATION', `a kit is enrolled for 1 to ${ENROLL_EVENTS_MAX} events`, { kitId });
    }
    for (const ev of eventIds) checkId('event', ev);
    const password = generatePassword();
    // the client first: "already exists" stops here, before its role is touched
    await this.must([{ command: 'createClient', username: kitId, password }], { kitId });
    try {
      const rolename = await this.ensureKitRole(kitId, [...new Set(eventIds)]);
      await this.must([{ command: 'addClientRole', username: kitId, rolename, priority: 1 }], { kitId });
    } catch (err) {
      await this.run([{ command: 'deleteClient', username: kitId }]).catch(() => undefined);
      throw err;
    }
    return { kitId, username: kitId, password };
  }

  /** Revoke a kit: delete its client (the broker disconnects it at once) and its role. 404 when unknown. */
  async revokeKit(kitId: string): Promise<void> {
    checkId('kit', kitId, this.reserved);
    await this.must([{ command: 'deleteClient', username: kitId }], { kitId });
    const [r] = await this.run([{ command: 'deleteRole', rolename: kitRoleName(kitId) }]);
    if (typeof r?.error === 'string' && r.error && !r.error.toLowerCase().includes('not found')) {
      throw codedError('deleteRole', r.error, { kitId });
    }
  }

  async close(): Promise<void> {
    const c = this.client;
    this.client = undefined;
    if (c) await c.endAsync();
  }
}
