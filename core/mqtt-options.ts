// What every kit-side MQTT client (mqtt.js) is created with. mqtt-packet, by default, fills a cache of
// 65 536 two-byte Buffers (one per 16-bit number: packet ids, topic and property lengths) on the first
// packet it writes: about 8 MB of V8 heap in every isolate that has a client (6 MB of Buffer objects
// plus the table holding them). The kit has four such isolates (the combined kit's main thread, sync,
// kitd, media: bench/kit-memory.ts), so the cache alone was ~30 MB of a small board's 160 MB goal
// (docs/scaling.md#small-boards). Without it, mqtt-packet allocates the two bytes when it writes a number
// (a few per packet), which at a kit's message rates costs nothing measurable.
import type { IClientOptions } from 'mqtt';

export const KIT_MQTT_OPTIONS = { writeCache: false } as const satisfies IClientOptions;
