// suite-runner: shared process — short, and changes nothing process-wide (tests/support/suite-runner.ts)
// Media gives up after its restart budget: with POPKIT_MEDIA_MAX_RESTARTS=2 and a pipeline that always
// fails (real GStreamer: a source that cannot open, so every run ends in an error on the bus), `popkit
// media` restarts it twice, then exits 1 (its supervisor restarts the process) with the reason in its
// run status. The camera pipeline's description is swapped for the failing one; everything else is the
// service's own code.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { readRunStatus } from '../../core/contracts/run-status.ts';
import { type GstModule, loadGst } from '../../services/media/gst-loader.ts';
import { runMedia } from '../../services/media/main.ts';

const gst = loadGst();
const dirs: string[] = [];
after(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

/** The real binding, whose every pipeline is one that fails once playing; counts the runs. */
function alwaysFailing(real: GstModule) {
  const runs: string[] = [];
  const Real = real.Pipeline;
  class FailingPipeline extends Real {
    constructor(desc: string) {
      runs.push(desc);
      super('filesrc location=/nonexistent/popkit-media-budget.ts ! fakesink');
    }
  }
  const loader = () => ({ ...real, Pipeline: FailingPipeline }) as unknown as GstModule;
  return { loader, runs };
}

test('an always-failing pipeline: two restarts, then the process exits 1 with the reason', {
  skip: gst.ok ? false : `GStreamer binding missing: ${gst.ok ? '' : gst.reason}`,
  timeout: 60_000,
}, async () => {
  assert.ok(gst.ok);
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'popkit-media-budget-'));
  dirs.push(dataDir);
  const failing = alwaysFailing(gst.gst);
  const code = await runMedia(
    {
      NODE_ENV: 'test',
      POPKIT_LOG_LEVEL: 'silent',
      POPKIT_BOARD: 'sim',
      POPKIT_DATA_DIR: dataDir,
      POPKIT_MEDIA_MAX_RESTARTS: '2',
      POPKIT_MEDIA_WIDTH: '320',
      POPKIT_MEDIA_HEIGHT: '240',
    },
    { loader: failing.loader },
  );
  assert.equal(code, 1, 'media must exit 1 once its restart budget is spent');
  assert.equal(failing.runs.length, 3, 'the first run and two restarts, then no more');
  const status = readRunStatus(dataDir, 'media');
  assert.equal(status?.state, 'unavailable');
  assert.match(String(status?.reason), /2 restarts in a row without a stable run \(last: error from /);
});
