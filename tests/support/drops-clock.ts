// A checkout app on real LMDB whose clocks a test moves by hand: the same pipeline main.ts wires (sale
// windows judged by the clock trust, the admission line for buyers) with injected ClockSources.
import { type ClockSources, ClockTrust, type ClockTrustOptions } from '../../core/clock-trust.ts';
import { dataLayout } from '../../core/data-dir.ts';
import { MonotonicIds } from '../../core/ids.ts';
import { moduleLogger } from '../../core/logger.ts';
import { openKitStore, readIdHighWater } from '../../core/store/index.ts';
import { openTokenVault } from '../../core/token-key.ts';
import {
  Admission,
  AdmissionGate,
  type AdmissionOptions,
  admissionFeature,
} from '../../services/checkout/admission.ts';
import { buildApp } from '../../services/checkout/app.ts';
import type { OrderFeature } from '../../services/checkout/order-features.ts';
import { OrderService } from '../../services/checkout/orders.ts';
import { saleWindowFeature } from '../../services/checkout/sale-windows.ts';
import { StoreGuard } from '../../services/checkout/store-guard.ts';
import { ADMIN, tempDir } from './checkout.ts';

export const T0 = Date.parse('2026-11-30T20:00:00Z');

/** Clocks moved by hand: `tick` moves wall and monotonic together, `jump` the wall clock alone. */
export class FakeClock implements ClockSources {
  wallMs = T0;
  monoMs = 10_000;
  ntp: boolean | undefined = undefined;
  rtc = false;
  boot = 'boot-1';
  wall = () => this.wallMs;
  mono = () => this.monoMs;
  bootId = () => this.boot;
  rtcSetClock = () => this.rtc;
  ntpSynced = async () => this.ntp;
  tick(ms: number) {
    this.wallMs += ms;
    this.monoMs += ms;
  }
  jump(ms: number) {
    this.wallMs += ms;
  }
  /** the instant `ms` after T0, as ISO */
  static at(ms: number): string {
    return new Date(T0 + ms).toISOString();
  }
}

export const CLOCK_OPTS: ClockTrustOptions = {
  jumpToleranceMs: 2000,
  hubAgreeMs: 120_000,
  ntpPollMs: 3_600_000,
  assume: false,
};

/** A checkout app with an injected clock; close() closes app and store. */
export async function clockedCheckout(
  clock: FakeClock,
  opts: { admission?: AdmissionOptions; dataDir?: string; features?: OrderFeature[] } = {},
) {
  const dataDir = opts.dataDir ?? tempDir('popkit-windows-');
  const store = openKitStore(dataDir);
  const tokenKey = openTokenVault(dataLayout(dataDir).tokenKey, undefined, () => false);
  const ids = new MonotonicIds(readIdHighWater(store));
  const trust = new ClockTrust(store, clock, CLOCK_OPTS);
  const saleClock = () => trust.saleClock();
  const line = new Admission(opts.admission ?? { concurrency: 4, queueMax: 100, maxWaitMs: 30_000 });
  const orders = new OrderService(store, ids, tokenKey.vault, {
    kitId: 'kit-windows',
    tokenTtlMs: 3_600_000,
    limits: {
      maxOrderCents: 50_000,
      maxUnsyncedCents: 5_000_000,
      maxUnsyncedOrders: 10_000,
      maxUnsyncedAgeS: 86_400,
    },
    caps: { cashMaxOrderCents: 100_000, buyerMaxOrderCents: 20_000 },
    clock: () => clock.wallMs,
    features: [saleWindowFeature({ saleClock, trust }), admissionFeature(line), ...(opts.features ?? [])],
    saleClock,
  });
  const guard = new StoreGuard(null, dataDir, 0);
  const app = await buildApp({
    store,
    orders,
    guard,
    kitId: 'kit-windows',
    board: 'sim',
    dataDir,
    adminToken: ADMIN,
    buyerRatePerMin: 10_000,
    tokenKey: tokenKey.status,
    logger: moduleLogger('checkout', {}),
    clockTrust: trust,
    admission: new AdmissionGate(line, store, orders),
  });
  return {
    app,
    store,
    trust,
    line,
    orders,
    dataDir,
    close: async () => {
      await app.close();
      await store.close();
    },
  };
}
