// The venue screen's player: hls.js on the kit's live stream, recovering by itself, and counting what a
// viewer would notice (stalls, reloads) so the screen page, the player tests and bench:player read the
// same figures. Served by checkout at /screen/assets/player-<hash>.js (routes/screen.ts); plain browser
// JavaScript because it runs in the screen's browser as it is.
(() => {
  const STALL_MS = 500; // no progress for this long while playing counts as a stall a viewer sees
  const SAMPLE_MS = 100;

  /**
   * Play `src` into `video` for good. `opts.lowLatency` plays the LL-HLS playlist with hls.js's
   * low-latency mode. Returns a handle whose `stats()` is a plain object (for tests and benchmarks).
   */
  function start(video, src, opts = {}) {
    const Hls = window.Hls;
    const s = {
      src,
      lowLatency: Boolean(opts.lowLatency),
      supported: Boolean(Hls?.isSupported()),
      startedAt: null,
      // the player's own clock: page time (performance.now) of the first progress
      firstProgressAt: null,
      currentTime: 0,
      played: 0,
      stalls: 0,
      maxStallMs: 0,
      waiting: 0,
      ended: 0,
      reloads: 0,
      mediaRecoveries: 0,
      fatal: [],
      errors: {},
      discontinuities: 0,
      levelsLoaded: 0,
      ptsJumps: 0,
      latencyS: null,
      edgeLatencyS: null,
      latencySamples: [],
      playingDate: null,
    };
    let hls;
    let lastCt = 0;
    let lastProgressAt = performance.now();
    let inStall = false;
    let lastMediaRecovery = 0;
    let reloadTimer = null;
    let lastCc = null;

    const note = (what) => {
      s.errors[what] = (s.errors[what] ?? 0) + 1;
    };

    // A new hls.js on the same element: the last resort, after recoverable paths failed (or the stream
    // ended, which a live stream must never do).
    const reload = (why, delayMs) => {
      if (reloadTimer) return;
      note(`reload:${why}`);
      reloadTimer = setTimeout(() => {
        reloadTimer = null;
        s.reloads += 1;
        create();
      }, delayMs);
    };

    function create() {
      if (hls) hls.destroy();
      hls = new Hls({
        lowLatencyMode: s.lowLatency,
        // a screen runs for hours: do not hoard decoded video behind the playhead
        backBufferLength: 10,
        // the playlist may be missing for a moment while media restarts: keep asking, then recover here
        manifestLoadPolicy: {
          default: {
            maxTimeToFirstByteMs: 4000,
            maxLoadTimeMs: 8000,
            timeoutRetry: { maxNumRetry: 4, retryDelayMs: 250, maxRetryDelayMs: 1000 },
            errorRetry: { maxNumRetry: 20, retryDelayMs: 250, maxRetryDelayMs: 1000 },
          },
        },
        playlistLoadPolicy: {
          default: {
            maxTimeToFirstByteMs: 4000,
            maxLoadTimeMs: 8000,
            timeoutRetry: { maxNumRetry: 4, retryDelayMs: 250, maxRetryDelayMs: 1000 },
            errorRetry: { maxNumRetry: 20, retryDelayMs: 250, maxRetryDelayMs: 1000 },
          },
        },
      });
      hls.on(Hls.Events.LEVEL_LOADED, (_e, data) => {
        s.levelsLoaded += 1;
        if (data.details?.endList) note('endlist');
      });
      hls.on(Hls.Events.FRAG_CHANGED, (_e, data) => {
        // the discontinuity sequence of what is on screen: a restart the player played across
        const cc = data.frag?.cc;
        if (typeof cc !== 'number') return;
        if (lastCc !== null && cc > lastCc) s.discontinuities += cc - lastCc;
        lastCc = cc;
      });
      hls.on(Hls.Events.ERROR, (_e, data) => {
        note(`${data.type}:${data.details}`);
        if (!data.fatal) return;
        s.fatal.push(`${data.type}:${data.details}`);
        if (data.type === Hls.ErrorTypes.MEDIA_ERROR) {
          const now = performance.now();
          // twice within 3 s: the decoder state is beyond repair, start over
          if (now - lastMediaRecovery > 3000) {
            lastMediaRecovery = now;
            s.mediaRecoveries += 1;
            hls.recoverMediaError();
          } else reload('media', 0);
        } else reload(data.type === Hls.ErrorTypes.NETWORK_ERROR ? 'network' : 'other', 1000);
      });
      hls.attachMedia(video);
      hls.loadSource(src);
    }

    video.muted = true; // autoplay is allowed for muted video only; a venue screen carries no sound
    video.playsInline = true;
    video.addEventListener('waiting', () => {
      s.waiting += 1;
    });
    video.addEventListener('ended', () => {
      s.ended += 1;
      reload('ended', 0);
    });
    const tryPlay = () => video.play().catch(() => {});
    video.addEventListener('canplay', tryPlay);
    video.addEventListener('pause', () => {
      // nobody pauses a venue screen: a pause is the element giving up (e.g. after a reload)
      setTimeout(tryPlay, 200);
    });

    setInterval(() => {
      const now = performance.now();
      const ct = video.currentTime;
      if (ct !== lastCt) {
        if (ct > lastCt) s.played += ct - lastCt;
        else s.ptsJumps += 1; // the timeline went backwards: a reload or a broken timeline
        if (s.firstProgressAt === null) s.firstProgressAt = now;
        lastCt = ct;
        lastProgressAt = now;
        inStall = false;
      } else if (s.firstProgressAt !== null) {
        const stuck = now - lastProgressAt;
        if (stuck >= STALL_MS && !inStall) {
          inStall = true;
          s.stalls += 1;
        }
        if (stuck > s.maxStallMs) s.maxStallMs = Math.round(stuck);
      }
      s.currentTime = ct;
      if (hls) {
        const pd = hls.playingDate;
        s.playingDate = pd ? pd.getTime() : null;
        // the wall clock against the program date-time of what is on screen now
        s.latencyS = pd ? (Date.now() - pd.getTime()) / 1000 : null;
        s.edgeLatencyS = Number.isFinite(hls.latency) ? hls.latency : null;
      }
    }, SAMPLE_MS);

    if (!s.supported) return { stats: () => ({ ...s }), hls: () => undefined };
    s.startedAt = performance.now();
    create();
    tryPlay();
    return {
      stats: () => ({ ...s, errors: { ...s.errors }, fatal: [...s.fatal] }),
      hls: () => hls,
      /** the latency now (s), kept for the benchmark's distribution */
      sampleLatency: () => {
        if (s.latencyS !== null) s.latencySamples.push(s.latencyS);
        return s.latencyS;
      },
    };
  }

  window.popkitPlayer = { start };
})();
