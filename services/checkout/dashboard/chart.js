// The dashboard's live chart (#12): the kit's per-second series (GET /v1/series) on one time axis with
// uPlot (served by the kit, like everything on this page): orders per 10 s as bars over viewers, the
// checkout latency p95, the stream's ladder step, and markers for the event, drops opening and closing
// and stream level changes. It polls from a little before the last second it has; the window is 15 minutes.
// `window.popkitChart` is its handle (the dashboard's script starts it; the browser test reads it).
(() => {
  const WINDOW_S = 900;
  const BUCKET_S = 10;
  /** seconds before the newest one drawn that are asked again at each poll (a few write batches) */
  const OVERLAP_S = 30;
  const METRICS = [
    'popkit_orders_total',
    'popkit_revenue_cents_total',
    'popkit_viewers',
    'popkit_order_duration_seconds_p95',
    'popkit_stream_level',
  ];
  const MARK_STYLE = {
    event_start: ['#e8e8ea', 'event'],
    event_stop: ['#9aa0aa', 'end'],
    drop_open: ['#37c871', 'open'],
    drop_close: ['#ef4444', 'close'],
    stream_level: ['#f0b429', 'level'],
  };

  /** the seconds received (t → values), newest last; buckets are summed from them at each draw */
  const seconds = new Map();
  let markers = [];
  let lastT = 0;
  let plot;
  let el;
  let legendEl;
  let money = (cents) => (cents / 100).toFixed(2);

  /** per 10 s bucket: orders and revenue summed, viewers and level as last said, latency as its worst */
  function buckets(from) {
    const out = new Map();
    for (const [t, v] of seconds) {
      if (t < from) {
        seconds.delete(t);
        continue;
      }
      const b = t - (t % BUCKET_S);
      let x = out.get(b);
      if (!x) {
        x = { orders: 0, revenue: 0, viewers: null, p95: null, level: null, lastT: -1 };
        out.set(b, x);
      }
      x.orders += v.popkit_orders_total ?? 0;
      x.revenue += v.popkit_revenue_cents_total ?? 0;
      const late = t > x.lastT;
      if (late) x.lastT = t;
      if (v.popkit_viewers !== undefined && (late || x.viewers === null)) x.viewers = v.popkit_viewers;
      if (v.popkit_stream_level !== undefined && (late || x.level === null)) x.level = v.popkit_stream_level;
      const p = v.popkit_order_duration_seconds_p95;
      if (p !== undefined) x.p95 = Math.max(x.p95 ?? 0, p * 1000);
    }
    return out;
  }

  /** a second as the kit holds it now replaces what was received for it before */
  function add(samples) {
    for (const { t, v } of samples) {
      seconds.set(t, v);
      if (t > lastT) lastT = t;
    }
  }

  function columns(now) {
    const from = now - WINDOW_S;
    const start = from - (from % BUCKET_S);
    const bs = buckets(start);
    const xs = [];
    const cols = [[], [], [], [], []];
    // every bucket of the window, empty ones as gaps (null), so the axis is time, not samples
    for (let b = start; b <= now; b += BUCKET_S) {
      const x = bs.get(b);
      xs.push(b);
      cols[0].push(x ? x.orders : null);
      cols[1].push(x ? x.viewers : null);
      cols[2].push(x ? x.p95 : null);
      cols[3].push(x ? x.level : null);
      cols[4].push(x ? x.revenue : null);
    }
    return [xs, ...cols];
  }

  /** vertical lines at the markers, labelled at the top of the plot */
  const markerPlugin = {
    hooks: {
      draw: [
        (u) => {
          const { ctx, bbox } = u;
          ctx.save();
          ctx.font = `${Math.round(10 * devicePixelRatio)}px system-ui, sans-serif`;
          ctx.textBaseline = 'top';
          // labels of markers close together go on rows below each other, right-aligned near the end
          let lastX = -1e9;
          let row = 0;
          const rowH = Math.round(12 * devicePixelRatio);
          for (const m of [...markers].sort((a, b) => a.t - b.t)) {
            const x = Math.round(u.valToPos(m.t, 'x', true));
            if (x < bbox.left || x > bbox.left + bbox.width) continue;
            row = x - lastX < 130 * devicePixelRatio ? row + 1 : 0;
            lastX = x;
            const [color, word] = MARK_STYLE[m.kind] ?? ['#7c9cff', m.kind];
            ctx.strokeStyle = color;
            ctx.fillStyle = color;
            ctx.setLineDash(m.kind === 'stream_level' ? [4, 4] : []);
            ctx.lineWidth = devicePixelRatio;
            ctx.beginPath();
            ctx.moveTo(x, bbox.top);
            ctx.lineTo(x, bbox.top + bbox.height);
            ctx.stroke();
            const text = `${word} ${m.label}`.slice(0, 24);
            const right = x + ctx.measureText(text).width + 6 > bbox.left + bbox.width;
            ctx.textAlign = right ? 'right' : 'left';
            ctx.fillText(text, right ? x - 3 : x + 3, bbox.top + 2 + row * rowH);
          }
          ctx.restore();
        },
      ],
    },
  };

  function make(data) {
    const width = Math.max(300, el.clientWidth - 8);
    const bars = uPlot.paths.bars({ size: [0.8, 40] });
    const opts = {
      width,
      height: 260,
      plugins: [markerPlugin],
      cursor: { drag: { x: false, y: false } },
      scales: {
        x: { time: true, range: (_u, min, max) => [min, max + BUCKET_S] },
        orders: { range: (_u, _min, max) => [0, Math.max(5, max)] },
        level: { range: [0, 6] },
      },
      axes: [
        { stroke: '#9aa0aa', grid: { stroke: '#2a2e38' } },
        { scale: 'orders', label: 'orders / 10 s', stroke: '#7c9cff', grid: { stroke: '#2a2e38' } },
        { scale: 'viewers', side: 1, label: 'viewers', stroke: '#37c871', grid: { show: false } },
        { scale: 'ms', side: 1, label: 'p95 ms', stroke: '#f472b6', grid: { show: false } },
      ],
      series: [
        {},
        {
          label: 'orders / 10 s',
          scale: 'orders',
          stroke: '#7c9cff',
          fill: '#7c9cff55',
          paths: bars,
          points: { show: false },
        },
        { label: 'viewers', scale: 'viewers', stroke: '#37c871', width: 2, spanGaps: true },
        { label: 'checkout p95 (ms)', scale: 'ms', stroke: '#f472b6', width: 1 },
        {
          label: 'stream level',
          scale: 'level',
          stroke: '#f0b429',
          width: 1,
          paths: uPlot.paths.stepped({ align: 1 }),
          spanGaps: true,
        },
        { label: 'revenue / 10 s (cents)', scale: 'revenue', stroke: '#9aa0aa', width: 1, show: false },
      ],
    };
    plot = new uPlot(opts, data, el);
  }

  function headline(data) {
    const n = data[0].length;
    const last = (i) => {
      for (let k = n - 1; k >= 0; k--) if (data[i][k] !== null) return data[i][k];
      return null;
    };
    let orders = 0;
    let revenue = 0;
    for (let k = Math.max(0, n - 6); k < n; k++) {
      orders += data[1][k] ?? 0;
      revenue += data[5][k] ?? 0;
    }
    const v = last(2);
    const p = last(3);
    const l = last(4);
    legendEl.textContent = `last minute: ${orders} orders · ${money(revenue)} · viewers ${v ?? '—'} · p95 ${p === null ? '—' : `${p.toFixed(1)} ms`} · stream level ${l ?? '—'}`;
  }

  let polls = 0;
  /**
   * Fetch the seconds from a little before the last one drawn and redraw; the whole window again every
   * 30th time (a marker a restarted kit wrote for a past second shows then). `get(url)` answers the
   * parsed JSON, or null when the kit said no. The kit writes its seconds in batches, and a second can
   * be written again later (a second a restart split, a tick that ran late): the seconds re-read each
   * time replace what was drawn for them, so nothing written late is missed or counted twice.
   */
  async function refresh(get) {
    const now = Math.floor(Date.now() / 1000);
    const full = lastT === 0 || polls++ % 30 === 0;
    const from = full ? now - WINDOW_S : Math.max(now - WINDOW_S, lastT - OVERLAP_S);
    const body = await get(`/v1/series?from=${from}&to=${now}&metrics=${METRICS.join(',')}`);
    if (!body) return;
    if (full) {
      seconds.clear();
      markers = [];
      lastT = 0;
    }
    add(body.samples);
    const fresh = body.markers.filter(
      (m) => !markers.some((o) => o.t === m.t && o.kind === m.kind && o.label === m.label),
    );
    markers = [...markers, ...fresh].filter((m) => m.t >= now - WINDOW_S);
    const data = columns(now);
    if (!plot) make(data);
    else plot.setData(data);
    headline(data);
  }

  window.popkitChart = {
    init(container, legend, formatCents) {
      el = container;
      legendEl = legend;
      if (formatCents) money = formatCents;
      window.addEventListener('resize', () =>
        plot?.setSize({ width: Math.max(300, el.clientWidth - 8), height: 260 }),
      );
    },
    refresh,
    get plot() {
      return plot;
    },
    get markers() {
      return markers;
    },
    /** the newest second received */
    get lastSecond() {
      return lastT;
    },
  };
})();
