// The live stream media writes into <data>/hls/: GET /live/:file (playlists, segments, parts; CORS open).
// Low-latency HLS blocking reload (draft-pantos-hls-rfc8216bis §6.2.5.2): a playlist request with
// `_HLS_msn=M[&_HLS_part=P]` is held until the playlist holds segment M (or part P of it), at most three
// target durations, then 503 (hls.js retries; measured: it kept playing through a 40 s pause answered
// with 503s, bench/media-ll.ts); a request more than two segments ahead is refused at once. A part named
// by the playlist's EXT-X-PRELOAD-HINT that is not written yet is held until it is (bounded as well).
// Media writes every file by atomic rename, so whatever is read here is whole.
import fs from 'node:fs';
import path from 'node:path';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import {
  type ParsedPlaylist,
  parseMediaPlaylist,
  playlistPosition,
} from '../../../core/contracts/hls-playlist.ts';
import { KitError } from '../../../core/errors.ts';

export interface MediaRoutesOptions {
  hlsDir: string;
  /** told of each answered playlist, segment or part request (audience: in memory, no store write) */
  viewers?: { seen(address: string, userAgent: string | undefined): void };
  /** how often a held request looks at the playlist again (ms) */
  pollMs?: number;
}

/** How far ahead of the playlist a client may ask (segments), per the LL-HLS draft. */
export const MSN_AHEAD_LIMIT = 2;
/** A part index this high names no part (3 parts a second, segments of at most 10 s). */
const MAX_PART = 1000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Snapshot {
  data: Buffer;
  parsed: ParsedPlaylist | undefined;
}

async function readPlaylistFile(file: string): Promise<Snapshot | undefined> {
  try {
    const data = await fs.promises.readFile(file);
    return { data, parsed: parseMediaPlaylist(data.toString('utf8')) };
  } catch {
    return undefined;
  }
}

/** Has the playlist reached segment `msn` (whole), or part `part` of it? */
function reached(p: ParsedPlaylist, msn: number, part: number | undefined): boolean {
  const pos = playlistPosition(p);
  if (pos.lastMsn >= msn) return true;
  return part !== undefined && pos.lastMsn + 1 === msn && pos.openParts > part;
}

/** Three target durations, the longest a blocking request is held (bounded whatever the file says). */
function holdMs(p: ParsedPlaylist | undefined): number {
  const td = p && Number.isFinite(p.targetDuration) ? p.targetDuration : 1;
  return Math.min(30_000, Math.max(1000, 3 * td * 1000));
}

export const mediaRoutes: FastifyPluginAsyncTypebox<MediaRoutesOptions> = async (
  app,
  { hlsDir, pollMs = 20, viewers },
) => {
  app.get(
    '/live/:file',
    {
      schema: {
        params: Type.Object({ file: Type.String({ pattern: '^[A-Za-z0-9_-]+\\.(m3u8|ts|m4s|mp4)$' }) }),
        // Strings, checked by pattern: query values are never coerced here (app.ts ajv options).
        querystring: Type.Object({
          _HLS_msn: Type.Optional(Type.String({ pattern: '^[0-9]{1,15}$' })),
          _HLS_part: Type.Optional(Type.String({ pattern: '^[0-9]{1,4}$' })),
          // delta updates are not offered (no CAN-SKIP-UNTIL): accepted and answered in full
          _HLS_skip: Type.Optional(Type.String({ pattern: '^(YES|v2)$' })),
        }),
      },
    },
    async (req, reply) => {
      const name = req.params.file;
      const file = path.join(hlsDir, name);
      const playlist = name.endsWith('.m3u8');
      const q = req.query;
      const msn = q._HLS_msn === undefined ? undefined : Number(q._HLS_msn);
      const part = q._HLS_part === undefined ? undefined : Number(q._HLS_part);
      if (!playlist && (msn !== undefined || part !== undefined || q._HLS_skip !== undefined)) {
        throw new KitError('BAD_REQUEST', '_HLS_ query parameters apply to playlists only');
      }
      if (part !== undefined && msn === undefined) {
        throw new KitError('BAD_REQUEST', '_HLS_part needs _HLS_msn');
      }
      if (part !== undefined && part >= MAX_PART) throw new KitError('BAD_REQUEST', '_HLS_part out of range');
      reply.header('access-control-allow-origin', '*');

      if (playlist) {
        let snap = await readPlaylistFile(file);
        // Media renames playlists into place without fsync (hls-state.ts says why): after a power cut
        // one may be empty until media runs again. Never hand a player something that is not a playlist.
        if (!snap?.parsed) throw new KitError('NOT_FOUND', 'no live stream right now');
        if (msn !== undefined) {
          const p = snap.parsed;
          if (!p) throw new KitError('NOT_FOUND', 'no live stream right now');
          if (part !== undefined && p.partTarget === undefined) {
            throw new KitError('BAD_REQUEST', `${name} lists no parts: _HLS_part applies to the LL playlist`);
          }
          const pos = playlistPosition(p);
          if (msn > pos.lastMsn + MSN_AHEAD_LIMIT) {
            throw new KitError(
              'BAD_REQUEST',
              `_HLS_msn ${msn} is more than ${MSN_AHEAD_LIMIT} segments ahead of the playlist (last ${pos.lastMsn})`,
            );
          }
          const deadline = Date.now() + holdMs(p);
          let stamp = '';
          while (!(snap.parsed && reached(snap.parsed, msn, part))) {
            if (Date.now() > deadline) {
              throw new KitError(
                'NOT_READY',
                `the live playlist did not reach segment ${msn}${part === undefined ? '' : ` part ${part}`} in time`,
              );
            }
            if (req.raw.destroyed) return reply; // the player gave up: stop holding
            await sleep(pollMs);
            const st = await fs.promises.stat(file).catch(() => undefined);
            const now = st ? `${st.mtimeMs}:${st.size}:${st.ino}` : '';
            if (!st || now === stamp) continue;
            stamp = now;
            const next = await readPlaylistFile(file);
            if (next?.parsed) snap = next; // never trade a whole playlist for something that is not one
          }
          // a held answer is for this query only: caches may keep it (6 target durations, as the draft says)
          reply.header('cache-control', `max-age=${6 * Math.max(1, snap.parsed.targetDuration)}`);
        } else {
          reply.header('cache-control', 'no-cache');
        }
        reply.header('content-type', 'application/vnd.apple.mpegurl');
        viewers?.seen(req.ip, req.headers['user-agent']);
        return reply.send(snap.data);
      }

      let data: Buffer | undefined = await fs.promises.readFile(file).catch(() => undefined);
      if (!data) data = await awaitHintedPart(hlsDir, name, pollMs, () => req.raw.destroyed);
      if (!data) throw new KitError('NOT_FOUND', 'segment gone');
      reply.header('content-type', 'video/mp2t');
      reply.header('cache-control', 'max-age=60');
      viewers?.seen(req.ip, req.headers['user-agent']);
      return reply.send(data);
    },
  );
};

/** The part the LL playlist's preload hint names is being written: wait for it (bounded). */
async function awaitHintedPart(
  hlsDir: string,
  name: string,
  pollMs: number,
  gone: () => boolean,
): Promise<Buffer | undefined> {
  const ll = await readPlaylistFile(path.join(hlsDir, 'll.m3u8'));
  if (ll?.parsed?.preloadHint !== name) return undefined;
  const deadline = Date.now() + holdMs(ll.parsed);
  while (Date.now() < deadline && !gone()) {
    await sleep(pollMs);
    const data = await fs.promises.readFile(path.join(hlsDir, name)).catch(() => undefined);
    if (data) return data;
  }
  return undefined;
}
