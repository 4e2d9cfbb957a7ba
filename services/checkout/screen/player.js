// The venue screen's player: hls.js on the kit's live stream, recovering by itself, and counting what a
// viewer would notice (stalls, reloads) so the screen page, the player tests and bench:player read the
// same figures. Served by checkout at /screen/assets/player-<hash>.js (routes/screen.ts); plain browser
// JavaScript because it runs in the screen's browser as it is.
(() => {
  const STALL_MS = 500; // no progress for this long while playing counts as a stall a viewer sees
  // Stuck this long with the live edge ahead: jump to it. hls.js does not always do so by itself after the
  // playlist was unreachable for longer than its window (seen: buffered to 6 s, window at 23 s, waiting
  // forever without an error), so no fatal error would ever come to recover from.
  const JUMP_AFTER_MS = 4000;
  // Still stuck this long: a new hls.js.
  const RELOAD_AFTER_MS = 12000;
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
      /** a stall is going on now (the screen shows its LIVE badge waiting) */
      stalledNow: false,
      maxStallMs: 0,
      waiting: 0,
      ended: 0,
      reloads: 0,
      /** jumps to the live edge after being stuck (JUMP_AFTER_MS) */
      liveJumps: 0,
      mediaRecoveries: 0,
      fatal: [],
      errors: {},
      /** the newest few fatal errors' reasons as hls.js gives them (a playlist parsing error names both playlists) */
      fatalReasons: [],
      discontinuities: 0,
      levelsLoaded: 0,
      ptsJumps: 0,
      /** forward jumps of the playhead (hls.js skipping ahead, or a jump to the live edge) and their seconds */
      skips: 0,
      skippedS: 0,
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
    let lastJumpAt = 0;
    let lastSampleAt = performance.now();

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
        // in low-latency mode, play up to 1.5× until back at the target latency: 1.42 s instead of 2.1 s
        // capture to screen at 720p30 (npm run bench:media-ll); the plain playlist plays at 1×
        maxLiveSyncPlaybackRate: s.lowLatency ? 1.5 : 1,
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
        // In low-latency mode hls.js cuts a blocking playlist request after max(3 part targets, 0.8
        // target durations), about 1 s here, while checkout holds it up to 3 target durations and answers
        // the moment the part exists. Across a media restart the requests time out one after another:
        // ask again at once (the request waits at the kit, so this is no busy loop), not after 250 ms,
        // 500 ms, 1 s of backoff that the screen would spend frozen.
        playlistLoadPolicy: {
          default: {
            maxTimeToFirstByteMs: 4000,
            maxLoadTimeMs: 8000,
            timeoutRetry: s.lowLatency
              ? { maxNumRetry: 12, retryDelayMs: 0, maxRetryDelayMs: 0 }
              : { maxNumRetry: 4, retryDelayMs: 250, maxRetryDelayMs: 1000 },
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
        const reason = String(data.reason ?? data.error?.message ?? '');
        if (reason) s.fatalReasons = [...s.fatalReasons, reason.slice(0, 4000)].slice(-3);
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
        const step = ct - lastCt;
        // more than playback could have moved since the last sample: a jump, not playback
        if (step > ((now - lastSampleAt) / 1000) * 2 + 0.5) {
          s.skips += 1;
          s.skippedS += step;
        } else if (step > 0) s.played += step;
        else s.ptsJumps += 1; // the timeline went backwards: a reload or a broken timeline
        if (s.firstProgressAt === null) s.firstProgressAt = now;
        lastCt = ct;
        lastProgressAt = now;
        inStall = false;
        s.stalledNow = false;
      } else if (s.firstProgressAt !== null) {
        const stuck = now - lastProgressAt;
        if (stuck >= STALL_MS && !inStall) {
          inStall = true;
          s.stalledNow = true;
          s.stalls += 1;
        }
        if (stuck > s.maxStallMs) s.maxStallMs = Math.round(stuck);
        const edge = hls?.liveSyncPosition;
        if (stuck >= RELOAD_AFTER_MS) {
          lastProgressAt = now; // one reload per stuck spell
          reload('stuck', 0);
        } else if (
          stuck >= JUMP_AFTER_MS &&
          now - lastJumpAt >= JUMP_AFTER_MS &&
          Number.isFinite(edge) &&
          edge > ct + 1
        ) {
          lastJumpAt = now;
          s.liveJumps += 1;
          video.currentTime = edge;
          tryPlay();
        }
      }
      s.currentTime = ct;
      lastSampleAt = now;
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
