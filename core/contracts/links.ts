// The kit's network links (issues #14, #17): what kitd learns from the host's NetworkManager over
// D-Bus (firmware/links.ts) or from the sim board's links file, and what it shows in run/kitd.json →
// GET /v1/status → `popkit status`. Everything NetworkManager sends is outside input: each property
// kitd reads is declared here once and checked as it arrives; a property of the wrong shape is left
// out of the link (noted in `problems`), never trusted (docs/contracts.md#network-links).
import { type Static, Type } from '@sinclair/typebox';
import { contract, IsoTime, Nullable } from './common.ts';

export const LINK_TYPES = ['ethernet', 'wifi', 'modem', 'other'] as const;
export type LinkType = (typeof LINK_TYPES)[number];
export const LINK_STATES = ['connected', 'connecting', 'disconnected', 'unavailable'] as const;
export type LinkStateT = (typeof LINK_STATES)[number];
export const LINK_SOURCES = ['networkmanager', 'sim', 'off'] as const;
export type LinkSource = (typeof LINK_SOURCES)[number];

/** at most this many links are listed (a kit has two or three; the status travels to the hub) */
export const LINKS_MAX = 16;
/** at most this many addresses per link */
export const LINK_ADDRESSES_MAX = 8;
/** at most this many problems are kept per reading */
export const LINK_PROBLEMS_MAX = 8;

/**
 * A Linux interface name: IFNAMSIZ is 16 with the terminating NUL; NetworkManager's modem devices
 * name their control port (`cdc-wdm0`, `ttyUSB2`), which is no longer. No control character, no `/`.
 */
export const IfaceName = Type.String({
  minLength: 1,
  maxLength: 15,
  pattern: '^[^\\u0000-\\u0020\\u007f/]+$',
});
/** An IPv4 or IPv6 address with its prefix length, `192.0.2.10/24`. */
export const LinkAddress = Type.String({
  minLength: 3,
  maxLength: 64,
  pattern: '^(?:[0-9]{1,3}(?:\\.[0-9]{1,3}){3}|[0-9A-Fa-f:.]{2,45})/[0-9]{1,3}$',
});

export const LinkSchema = Type.Object(
  {
    iface: IfaceName,
    type: Type.Union(LINK_TYPES.map((t) => Type.Literal(t))),
    state: Type.Union(LINK_STATES.map((s) => Type.Literal(s))),
    /** true: metered (NetworkManager's yes or guess-yes); false: not; null: NetworkManager does not know */
    metered: Nullable(Type.Boolean()),
    /** carries the default route (NetworkManager's primary connection) */
    primary: Type.Boolean(),
    addresses: Type.Optional(Type.Array(LinkAddress, { maxItems: LINK_ADDRESSES_MAX })),
  },
  { additionalProperties: false },
);
export type Link = Static<typeof LinkSchema>;

/** Why the links are not known; `LINK_INVALID` marks one refused property or link in `problems`. */
export const LINK_CODES = [
  'LINKS_BUS_UNAVAILABLE',
  'LINKS_NM_ABSENT',
  'LINKS_TIMEOUT',
  'LINKS_NM_INVALID',
  'LINKS_SIM_INVALID',
] as const;
export type LinkCode = (typeof LINK_CODES)[number];

export const LinksViewSchema = Type.Object({
  source: Type.Union(LINK_SOURCES.map((s) => Type.Literal(s))),
  /** ok: `links` is the last reading; unavailable: the source did not answer (`code`, `reason`); off: not watched */
  state: Type.Union([Type.Literal('ok'), Type.Literal('unavailable'), Type.Literal('off')]),
  code: Type.Optional(Type.Union(LINK_CODES.map((c) => Type.Literal(c)))),
  reason: Type.Optional(Type.String({ maxLength: 300 })),
  links: Type.Array(LinkSchema, { maxItems: LINKS_MAX }),
  /** the primary link is metered: NetworkManager's own verdict, else the primary link's; null when unknown */
  primaryMetered: Nullable(Type.Boolean()),
  checkedAt: Nullable(IsoTime),
  /** the last reading that succeeded */
  lastOkAt: Nullable(IsoTime),
  /** properties or links refused in the last reading, `where: why` */
  problems: Type.Array(Type.String({ maxLength: 300 }), { maxItems: LINK_PROBLEMS_MAX }),
});
export type LinksView = Static<typeof LinksViewSchema>;

/** The sim board's links file (`POPKIT_LINKS_SIM_FILE`): what a vendor without a board edits to try. */
export const SimLinksFile = Type.Object(
  {
    links: Type.Array(LinkSchema, { maxItems: LINKS_MAX }),
    /** NetworkManager's manager-level verdict; when absent, the primary link's `metered` */
    primaryMetered: Type.Optional(Nullable(Type.Boolean())),
  },
  { additionalProperties: false },
);
export type SimLinksFileT = Static<typeof SimLinksFile>;
export const simLinksFile = contract(SimLinksFile);

// --- NetworkManager's D-Bus API, as kitd reads it (org.freedesktop.NetworkManager, NM 1.x) ----------
const U32 = Type.Integer({ minimum: 0, maximum: 0xffff_ffff });
/** a D-Bus object path as NetworkManager hands them out; `/` means none */
export const NmObjectPath = Type.String({ minLength: 1, maxLength: 255, pattern: '^/[A-Za-z0-9_/]*$' });

/** org.freedesktop.NetworkManager properties kitd reads (GetAll on /org/freedesktop/NetworkManager) */
export const NmManagerProps = {
  Devices: Type.Array(NmObjectPath, { maxItems: 256 }),
  PrimaryConnection: NmObjectPath,
  /** NMMetered of the primary connection (NM ≥ 1.2) */
  Metered: U32,
} as const;
/** org.freedesktop.NetworkManager.Device properties kitd reads */
export const NmDeviceProps = {
  Interface: IfaceName,
  /** NMDeviceType */
  DeviceType: U32,
  /** NMDeviceState */
  State: U32,
  /** NMMetered */
  Metered: U32,
  Ip4Config: NmObjectPath,
} as const;
/** org.freedesktop.NetworkManager.Connection.Active: the devices of the primary connection */
export const NmActiveProps = {
  Devices: Type.Array(NmObjectPath, { maxItems: 256 }),
} as const;
/** org.freedesktop.NetworkManager.IP4Config: AddressData, `[{address, prefix}]` */
export const NmAddressData = Type.Array(
  Type.Object({
    address: Type.String({ minLength: 7, maxLength: 15, pattern: '^[0-9]{1,3}(\\.[0-9]{1,3}){3}$' }),
    prefix: Type.Integer({ minimum: 0, maximum: 32 }),
  }),
  { maxItems: 64 },
);

/** NMMetered: 0 unknown, 1 yes, 2 no, 3 guess-yes, 4 guess-no. Anything else is not known. */
export function meteredFromNm(v: number): boolean | null {
  if (v === 1 || v === 3) return true;
  if (v === 2 || v === 4) return false;
  return null;
}

/** NMDeviceType: 1 ethernet, 2 wifi, 8 modem; the rest (bridge, bond, vlan, wifi-p2p …) is other. */
export function linkTypeFromNm(v: number): LinkType {
  if (v === 1) return 'ethernet';
  if (v === 2) return 'wifi';
  if (v === 8) return 'modem';
  return 'other';
}

/** NMDeviceType 32: the loopback device NetworkManager ≥ 1.42 lists; never a link. */
export const NM_DEVICE_TYPE_LOOPBACK = 32;
/** NMDeviceState 10: not managed by NetworkManager (balena's container bridges and veths). */
export const NM_DEVICE_STATE_UNMANAGED = 10;

/** NMDeviceState: 100 activated; 40–90 on the way; 30 disconnected, 110 deactivating, 120 failed. */
export function linkStateFromNm(v: number): LinkStateT {
  if (v === 100) return 'connected';
  if (v >= 40 && v <= 90) return 'connecting';
  if (v === 30 || v === 110 || v === 120) return 'disconnected';
  return 'unavailable';
}
