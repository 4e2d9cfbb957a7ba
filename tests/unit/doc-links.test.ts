// Comments point at docs/ for what the code relies on (issue: "comments point there"); a link to a
// heading that was renamed or never written is caught here, not by a reader months later.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';

const root = path.resolve(import.meta.dirname, '../..');
const SOURCE_DIRS = [
  'core',
  'services',
  'firmware',
  'hardware',
  'cli',
  'bench',
  'tests',
  'scripts',
  'deploy',
  'bin',
];
const LINK = /docs\/([a-z0-9-]+\.md)(?:#([a-z0-9-]+))?/g;

/** GitHub's heading slug: lower case, punctuation dropped, spaces to hyphens. */
function slug(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-');
}

function anchors(doc: string): Set<string> {
  const out = new Set<string>();
  for (const line of fs.readFileSync(doc, 'utf8').split('\n')) {
    const m = /^#{1,6}\s+(.*)$/.exec(line);
    if (m?.[1]) out.add(slug(m[1]));
  }
  return out;
}

function files(dir: string): string[] {
  const abs = path.join(root, dir);
  if (!fs.existsSync(abs)) return [];
  return fs.readdirSync(abs, { recursive: true, withFileTypes: true }).flatMap((e) => {
    if (!e.isFile() || e.parentPath.includes('node_modules') || e.parentPath.includes(`${path.sep}fixtures`))
      return [];
    return /\.(ts|js|sh|conf|yml)$/.test(e.name) ? [path.join(e.parentPath, e.name)] : [];
  });
}

test('every docs/… link in the code names a doc and a heading that exist', () => {
  const cache = new Map<string, Set<string>>();
  const broken: string[] = [];
  let links = 0;
  for (const file of SOURCE_DIRS.flatMap(files)) {
    const text = fs.readFileSync(file, 'utf8');
    for (const m of text.matchAll(LINK)) {
      const [, doc, anchor] = m;
      const docPath = path.join(root, 'docs', doc as string);
      links++;
      if (!fs.existsSync(docPath)) {
        broken.push(`${path.relative(root, file)}: docs/${doc} does not exist`);
        continue;
      }
      if (!anchor) continue;
      if (!cache.has(docPath)) cache.set(docPath, anchors(docPath));
      if (!cache.get(docPath)?.has(anchor))
        broken.push(`${path.relative(root, file)}: docs/${doc}#${anchor} has no heading`);
    }
  }
  assert.ok(links >= 10, `expected the code to point at docs/ (found ${links} links)`);
  assert.deepEqual(broken, []);
});

test('the slug rule matches GitHub for the headings we use', () => {
  assert.equal(slug('GET /v1/status'), 'get-v1status');
  assert.equal(slug('Hub link (MQTT)'), 'hub-link-mqtt');
  assert.equal(slug('Trap: x264enc needs I420 pinned'), 'trap-x264enc-needs-i420-pinned');
  assert.equal(slug('The kit store (LMDB)'), 'the-kit-store-lmdb');
});
