// The kit store, reachable only through these per-domain modules (docs/architecture.md#the-kit-store-lmdb):
// open (environment, sub-dbs, value types), catalog & stock, orders, outbox & acks, tokens, risk budget,
// event state, recent declines. Nothing outside core/store/ touches a sub-database or opens a
// transaction itself (tests/unit/store-boundary.test.ts keeps it so).

export { LANES, type LaneName } from '../contracts/lanes.ts';
export * from './audience.ts';
export * from './catalog.ts';
export * from './catalog-epoch.ts';
export * from './declines.ts';
export * from './event.ts';
export * from './open.ts';
export * from './orders.ts';
export * from './outbox.ts';
export * from './risk.ts';
export * from './shared-stock.ts';
export * from './telemetry.ts';
export * from './terminals.ts';
export * from './tokens.ts';
