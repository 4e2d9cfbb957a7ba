// The HLS directory as the status reads it: what index.m3u8 lists, how fresh it is, the newest
// segment's bitrate. (Writing it is hls-output.ts.)
import fs from 'node:fs';
import path from 'node:path';

export interface PlaylistEntry {
  uri: string;
  durationS: number;
}

export function parsePlaylist(text: string): PlaylistEntry[] {
  const out: PlaylistEntry[] = [];
  let duration: number | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line.startsWith('#EXTINF:')) duration = Number.parseFloat(line.slice(8));
    else if (line && !line.startsWith('#') && duration !== undefined) {
      out.push({ uri: line, durationS: duration });
      duration = undefined;
    }
  }
  return out;
}

export interface PlaylistState {
  entries: PlaylistEntry[];
  mtimeMs: number;
  /** Bits per second of the newest listed segment, from its file size and EXTINF. */
  newestKbps: number | undefined;
}

export function readPlaylist(hlsDir: string): PlaylistState | undefined {
  const file = path.join(hlsDir, 'index.m3u8');
  try {
    const st = fs.statSync(file);
    const entries = parsePlaylist(fs.readFileSync(file, 'utf8'));
    const last = entries[entries.length - 1];
    let newestKbps: number | undefined;
    if (last && last.durationS > 0) {
      try {
        newestKbps =
          (fs.statSync(path.join(hlsDir, path.basename(last.uri))).size * 8) / last.durationS / 1000;
      } catch {
        newestKbps = undefined;
      }
    }
    return { entries, mtimeMs: st.mtimeMs, newestKbps };
  } catch {
    return undefined;
  }
}
