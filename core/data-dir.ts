// The data dir's layout, in one place. A kit's POPKIT_DATA_DIR (`./.popkit` in a checkout, `/data` on a
// board) holds the LMDB store, the keys, each service's run status, the HLS output and, under `popkit
// up`, the logs, the local broker and the embedded hub. The hub's own data dir has a layout of its own
// (docs/architecture.md#data-directory).
import path from 'node:path';

export interface KitDataLayout {
  root: string;
  /** the LMDB environment (lmdb-js keeps its lock file beside it) */
  store: string;
  keys: string;
  /** the staff bearer token, generated on first boot (0600) */
  adminToken: string;
  /** the AES-256 device key sealing payment tokens (0600) */
  tokenKey: string;
  /** the HMAC key of buyer device tokens (drain-proofing, 0600) */
  deviceKey: string;
  run: string;
  runStatus(service: string): string;
  hls: string;
  /** product images sync fetched from the hub, `<sha256>` each, verified (docs/architecture.md#product-media) */
  productMedia: string;
  /** `popkit report --suggest`'s suggest.json for the next event; `popkit preflight` reads its top SKUs */
  suggestion: string;
  logs: string;
  log(service: string): string;
  /** `popkit up`: the local bus broker's config and persistence */
  bus: string;
  /** `popkit up`: the embedded hub's broker */
  hubBroker: string;
  /** `popkit up`: the embedded hub's data dir (a HubDataLayout) */
  hub: string;
}

export function dataLayout(root: string): KitDataLayout {
  const keys = path.join(root, 'keys');
  const run = path.join(root, 'run');
  const logs = path.join(root, 'logs');
  return {
    root,
    store: path.join(root, 'kit.lmdb'),
    keys,
    adminToken: path.join(keys, 'admin.token'),
    tokenKey: path.join(keys, 'token.key'),
    deviceKey: path.join(keys, 'device.key'),
    run,
    runStatus: (service) => path.join(run, `${service}.json`),
    hls: path.join(root, 'hls'),
    productMedia: path.join(root, 'product-media'),
    suggestion: path.join(root, 'suggest.json'),
    logs,
    log: (service) => path.join(logs, `${service}.log`),
    bus: path.join(root, 'bus'),
    hubBroker: path.join(root, 'hub-broker'),
    hub: path.join(root, 'hub'),
  };
}

export interface HubDataLayout {
  root: string;
  keys: string;
  /** ed25519 catalog signing key (0600) and its public half for kits */
  signingKey: string;
  signingPub: string;
  adminToken: string;
  /** AES-256 key sealing tokens held while the gateway is unreachable */
  heldTokenKey: string;
  /** X25519, PKCS#8 PEM: opens the kits' sealed telemetry (core/telemetry-seal.ts) */
  sealKey: string;
  /** the embedded PGlite database, when no PostgreSQL URL is configured */
  pglite: string;
}

export function hubDataLayout(root: string): HubDataLayout {
  const keys = path.join(root, 'keys');
  return {
    root,
    keys,
    signingKey: path.join(keys, 'hub-signing.key'),
    signingPub: path.join(keys, 'hub-signing.pub'),
    adminToken: path.join(keys, 'hub-admin.token'),
    heldTokenKey: path.join(keys, 'hub-held-token.key'),
    sealKey: path.join(keys, 'hub-seal.key'),
    pglite: path.join(root, 'hub-db'),
  };
}
