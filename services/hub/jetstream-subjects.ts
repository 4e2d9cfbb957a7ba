// The NATS subjects of the kits' MQTT topics (POPKIT_HUB_INGEST=jetstream). The NATS server's MQTT
// gateway turns a topic into a subject level by level: `/` becomes `.` and an empty level `/`. A `.`
// inside a level (a kit id may hold one: ID_LEVEL) is refused by nats-server 2.9 (Debian's, here: it
// closes the kit's connection, no PUBACK: such a kit cannot use a NATS region) and mapped to `//` by
// 2.10 and later; the worker reads `//` back, so a newer server needs no change here. A subject off the
// stream is read back into the MQTT topic it came from and is accepted only in the exact shape
// kitIdFromTopic accepts, with a kit id that is a valid ID_LEVEL; anything else is refused (and
// terminated, never retried).
import { ID_LEVEL } from '../../core/contracts/common.ts';

/** POPKIT_HUB_NATS_URL: one NATS URL or several, comma-separated, no spaces nor control characters */
export const NATS_URL_LIST_PATTERN =
  '^(nats|tls)://[^,\\s\\u0000-\\u001f\\u007f]+(,(nats|tls)://[^,\\s\\u0000-\\u001f\\u007f]+)*$';

/** the stream's subjects: a kit's orders, telemetry and receipts (its status stays on MQTT, retained) */
export const STREAM_SUBJECTS = [
  'popkit.v1.kits.*.orders',
  'popkit.v1.kits.*.telemetry',
  'popkit.v1.kits.*.receipts',
] as const;
/** the card checks' subject (a core NATS queue group: one worker answers each) */
export const AUTHORIZE_SUBJECT = 'popkit.v1.kits.*.authorize';

const LEAVES = new Set(['orders', 'telemetry', 'receipts', 'authorize']);
const KIT_ID = new RegExp(ID_LEVEL);
/** 5 levels of at most 64 characters, each `.` of a kit id at most two */
const MAX_SUBJECT = 256;

/** The MQTT level of a kit id as the gateway puts it in a subject token. */
export function kitIdToken(kitId: string): string {
  return kitId.replaceAll('.', '//');
}

/** A subject of the stream (or the card checks) read back into its MQTT topic and kit; else undefined. */
export function topicFromSubject(
  subject: unknown,
): { topic: string; kitId: string; leaf: 'orders' | 'telemetry' | 'receipts' | 'authorize' } | undefined {
  if (typeof subject !== 'string' || subject.length === 0 || subject.length > MAX_SUBJECT) return undefined;
  const parts = subject.split('.');
  if (parts.length !== 5 || parts[0] !== 'popkit' || parts[1] !== 'v1' || parts[2] !== 'kits')
    return undefined;
  const token = parts[3]!;
  const leaf = parts[4]!;
  if (!LEAVES.has(leaf)) return undefined;
  const kitId = token.replaceAll('//', '.');
  // a `/` left over is not something the gateway makes of a valid kit id
  if (kitId.includes('/') || !KIT_ID.test(kitId) || kitId.length > 64) return undefined;
  return {
    topic: `popkit/v1/kits/${kitId}/${leaf}`,
    kitId,
    leaf: leaf as 'orders' | 'telemetry' | 'receipts' | 'authorize',
  };
}
