// Every GStreamer element of every board's pipeline has a Debian package in gst-elements.ts, the sim
// board's (this machine's) are all installed here, the table's packages are what dpkg says owns each
// installed element's plugin file, and scripts/setup.sh installs what the sim board needs (issue #14:
// a fresh Debian 12 lacked clockoverlay because gstreamer1.0-x was not installed).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { BOARD_IDS } from '../../hardware/boards/index.ts';
import {
  allBoardElements,
  boardElements,
  elementPresence,
  GST_ELEMENT_PACKAGES,
  installHint,
  pipelineElements,
} from '../../services/media/gst-elements.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');

/** The plugin file `gst-inspect-1.0 <element>` names on its Filename line. */
function pluginFile(element: string): string | undefined {
  const r = spawnSync('gst-inspect-1.0', [element], { encoding: 'utf8', timeout: 10_000 });
  if (r.status !== 0) return undefined;
  return /^\s*Filename\s+(\S+)\s*$/m.exec(r.stdout)?.[1];
}

/** The Debian package owning a file; tries the merged-/usr spelling too (gst reports /lib/…). */
function owningPackage(file: string): string | undefined {
  const candidates = [file, fs.realpathSync(file)];
  if (file.startsWith('/lib/')) candidates.push(`/usr${file}`);
  for (const c of candidates) {
    const r = spawnSync('dpkg', ['-S', c], { encoding: 'utf8', timeout: 10_000 });
    if (r.status === 0) return r.stdout.split(':')[0]?.trim();
  }
  return undefined;
}

describe('element names out of a description', () => {
  test('properties, caps, pad references and quoted values are not elements; *-factory values are', () => {
    const desc =
      'videotestsrc name=src is-live=true ! video/x-raw,width=2,height=2 ! clockoverlay ' +
      'time-format="%H:%M ! not-an-element" font-desc="Sans 24" ! nvvidconv ! ' +
      'video/x-raw(memory:NVMM),format=NV12 ! tee name=t t. ! queue ! splitmuxsink muxer-factory=mpegtsmux ' +
      'location="/tmp/a b/x-%05d.ts" t. ! fakesink';
    assert.deepEqual(pipelineElements(desc), [
      'videotestsrc',
      'clockoverlay',
      'nvvidconv',
      'tee',
      'queue',
      'splitmuxsink',
      'mpegtsmux',
      'fakesink',
    ]);
  });

  test('a factory value that is not a factory name is not taken', () => {
    assert.deepEqual(pipelineElements('splitmuxsink muxer-factory="x;rm -rf /" ! fakesink'), [
      'splitmuxsink',
      'fakesink',
    ]);
  });

  test('an element outside the table gets no invented package', () => {
    assert.match(installHint('popkitnosuchelement'), /not in Popkit's package table/);
    assert.match(installHint('__proto__'), /not in Popkit's package table/);
    assert.equal(installHint('clockoverlay'), 'clockoverlay: apt-get install gstreamer1.0-x');
  });
});

describe('the package table covers every board', () => {
  test('each board has a source, an encoder and the HLS sink among its elements', () => {
    for (const b of BOARD_IDS) {
      const els = boardElements(b);
      assert.ok(els.includes('splitmuxsink') && els.includes('h264parse'), `${b}: ${els.join(' ')}`);
      assert.ok(
        els.some((e) => /src$/.test(e)),
        `${b} has no source: ${els.join(' ')}`,
      );
    }
    assert.ok(boardElements('sim').includes('clockoverlay'));
    assert.ok(boardElements('jetson-orin-nx').includes('nvv4l2h264enc'));
  });

  test('every element of every board has a package entry, and no entry is unused', () => {
    const all = allBoardElements();
    const unmapped = all.filter((e) => !Object.hasOwn(GST_ELEMENT_PACKAGES, e));
    assert.deepEqual(unmapped, [], `add these to services/media/gst-elements.ts: ${unmapped.join(', ')}`);
    const unused = Object.keys(GST_ELEMENT_PACKAGES).filter((e) => !all.includes(e));
    assert.deepEqual(unused, [], `no board uses these table entries: ${unused.join(', ')}`);
    for (const e of all) {
      const src = GST_ELEMENT_PACKAGES[e];
      assert.ok(src?.debian || src?.vendor, `${e} names neither a Debian package nor a vendor`);
    }
  });
});

describe('this machine (sim board)', () => {
  test('every element of the sim pipeline exists here per gst-inspect-1.0 --exists', () => {
    const missing = boardElements('sim').filter((e) => elementPresence(e, 10_000) !== 'present');
    assert.deepEqual(missing, [], `missing here: ${missing.map((m) => installHint(m)).join('; ')}`);
  });

  test("for each installed element, the table's package is the one dpkg -S says owns its plugin", () => {
    let checked = 0;
    for (const e of allBoardElements()) {
      if (elementPresence(e, 10_000) !== 'present') continue;
      const src = GST_ELEMENT_PACKAGES[e];
      assert.ok(src?.debian, `${e} is installed here but the table says only ${src?.vendor}`);
      const file = pluginFile(e);
      assert.ok(file, `gst-inspect-1.0 ${e} names no plugin file`);
      assert.equal(owningPackage(file), src.debian, `${e} (${file})`);
      checked += 1;
    }
    // at least the whole sim pipeline is installed here (previous test), so this checked something
    assert.ok(checked >= boardElements('sim').length, `checked only ${checked}`);
  });

  test('scripts/setup.sh installs every package the sim pipeline needs', () => {
    const setup = fs.readFileSync(path.join(ROOT, 'scripts/setup.sh'), 'utf8');
    const array = /^PKGS=\(([^)]*)\)/m.exec(setup);
    assert.ok(array?.[1], 'setup.sh has no PKGS=( … ) array');
    const pkgs = array[1].split(/\s+/).filter(Boolean);
    // a package setup.sh does not name still comes if one it names depends on it (dpkg's record)
    const depends = new Set<string>();
    for (const p of pkgs.filter((p) => p.startsWith('gstreamer1.0-'))) {
      // biome-ignore lint/suspicious/noTemplateCurlyInString: dpkg-query's own field syntax
      const r = spawnSync('dpkg-query', ['-W', '-f', '${Depends}', p], { encoding: 'utf8' });
      for (const d of r.stdout.split(',')) depends.add(d.trim().split(/[\s:]/)[0] ?? '');
    }
    const needed = [...new Set(boardElements('sim').map((e) => GST_ELEMENT_PACKAGES[e]?.debian))];
    for (const p of needed) {
      assert.ok(p, 'a sim element has no Debian package');
      assert.ok(pkgs.includes(p) || depends.has(p), `setup.sh does not install ${p}`);
    }
    assert.ok(pkgs.includes('gstreamer1.0-x'), 'clockoverlay (the pango plugin) comes from gstreamer1.0-x');
  });
});
