// `popkit media`: the media service alone (what the media container runs; `popkit up` spawns it).
import { parseArgs } from 'node:util';
import { runMedia } from '../../services/media/main.ts';

export async function run(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { help: { type: 'boolean', short: 'h' } } });
  if (values.help) {
    process.stdout.write(
      'usage: popkit media\n\nEncodes the board camera (videotestsrc on sim) to HLS in <dataDir>/hls/.\n' +
        'Env: POPKIT_BOARD, POPKIT_DATA_DIR, POPKIT_LOCAL_BUS_URL, POPKIT_MEDIA_* (services/media/config.ts).\n',
    );
    return 0;
  }
  // One pipeline's bus poll holds a libuv worker for good; leave room for fs work (docs/architecture.md#trap-gstreamer-superficial-starves-the-libuv-thread-pool).
  process.env['UV_THREADPOOL_SIZE'] ??= '8';
  return runMedia(process.env);
}
