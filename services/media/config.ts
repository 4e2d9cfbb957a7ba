// What `popkit media` reads from the environment, composed with BaseConfig (core/config.ts).
import { type Static, Type } from '@sinclair/typebox';
import { CheckoutConfig } from '../../core/config.ts';

const Int = (min: number, max: number, def: number, description: string) =>
  Type.Integer({ minimum: min, maximum: max, default: def, description });

export const MediaConfig = Type.Object({
  POPKIT_MEDIA_WIDTH: Type.Optional(Int(160, 7680, 1280, 'top-rung width (clamped to the board)')),
  POPKIT_MEDIA_HEIGHT: Type.Optional(Int(120, 4320, 720, 'top-rung height (clamped to the board)')),
  POPKIT_MEDIA_FPS: Type.Optional(Int(1, 120, 30, 'top-rung frame rate (clamped to the board)')),
  POPKIT_MEDIA_BITRATE_KBPS: Type.Optional(Int(64, 100_000, 2500, 'top-rung bitrate (clamped to the board)')),
  POPKIT_MEDIA_SEGMENT_S: Int(1, 10, 1, 'HLS segment length in seconds'),
  POPKIT_MEDIA_PLAYLIST_LENGTH: Int(3, 60, 5, 'segments listed in index.m3u8 and ll.m3u8'),
  POPKIT_MEDIA_MAX_FILES: Int(
    4,
    600,
    10,
    'unused since media writes the playlist itself (kept so existing settings stay valid)',
  ),
  POPKIT_MEDIA_UPSTREAM_URL: Type.Optional(
    Type.String({ pattern: '^(srt|rtmps?)://', description: 'optional upstream push (SRT or RTMP)' }),
  ),
  POPKIT_MEDIA_DEVICE: Type.Optional(Type.String({ minLength: 1, description: 'camera device for v4l2src' })),
  POPKIT_MEDIA_SIM_PATTERN: Type.String({
    pattern: '^[a-z0-9-]+$',
    default: 'ball',
    description: 'videotestsrc pattern on the sim board',
  }),
  POPKIT_MEDIA_STALL_MS: Int(500, 60_000, 3000, 'no new frame for this long restarts the pipeline'),
  POPKIT_MEDIA_MAX_RESTARTS: Int(1, 10_000, 20, 'consecutive failed restarts before the process exits 1'),
  // checkout's variable (one definition): media gives way above it (core/priorities.ts DISK_GIVE_WAY)
  POPKIT_STORE_RESERVE_MB: {
    ...CheckoutConfig.properties.POPKIT_STORE_RESERVE_MB,
    description: "checkout's reserve (same default); the stream stops below 3× it (core/priorities.ts)",
  },
  POPKIT_MEDIA_ORDERS_HIGH: Type.Number({
    minimum: 0,
    default: 20,
    description: 'orders/s that make media yield CPU',
  }),
});

export type MediaConfigT = Static<typeof MediaConfig>;
