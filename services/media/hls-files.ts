// The HLS directory on disk: what the playlist lists, how fresh it is, and removal of segments that
// no playlist references any more (hlssink2's max-files only covers its own run's files).
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

/**
 * Delete `.ts` segments that the playlist no longer lists and that belong to an earlier run, once
 * they are older than `graceMs` (a screen may still be fetching one). Returns how many went.
 */
export function sweepSegments(hlsDir: string, currentPrefix: string, graceMs: number, nowMs: number): number {
  let names: string[];
  try {
    names = fs.readdirSync(hlsDir);
  } catch {
    return 0;
  }
  const listed = new Set((readPlaylist(hlsDir)?.entries ?? []).map((e) => path.basename(e.uri)));
  let removed = 0;
  for (const name of names) {
    if (!name.endsWith('.ts') || listed.has(name) || name.startsWith(`${currentPrefix}-`)) continue;
    const file = path.join(hlsDir, name);
    try {
      if (nowMs - fs.statSync(file).mtimeMs < graceMs) continue;
      fs.unlinkSync(file);
      removed += 1;
    } catch {
      // gone already, or being replaced: the next sweep sees it again
    }
  }
  return removed;
}
