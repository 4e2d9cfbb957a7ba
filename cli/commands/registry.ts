// The names of the popkit commands and their one-line summaries. Plain data with no imports, so a
// command that asks which others exist (`popkit up` starts the hub only where `hub` is one) does not
// import cli/popkit.ts, which lazily imports every command: that made a cycle.
export const COMMANDS = {
  up: { summary: 'the whole kit on this machine (sim hardware, embedded hub)' },
  checkout: { summary: 'the checkout API alone' },
  sync: { summary: 'store-and-forward of orders to the hub' },
  kit: { summary: 'checkout, sync and kitd as threads of one process (small boards: POPKIT_KIT_MODE)' },
  hub: { summary: 'the regional hub worker (ledger, catalogs, API)' },
  power: { summary: 'power read --driver D: read a charge controller or monitor' },
  kitd: { summary: 'control plane: LEDs, buttons, power' },
  preflight: { summary: 'pre-flight checklist [--json]' },
  config: { summary: 'every environment variable, its default and meaning [--markdown]' },
  status: { summary: 'one screen: state, LEDs, power, health, backlog, stream' },
  media: { summary: 'the media service alone (HLS, ladder, watchdog)' },
  catalog: { summary: 'catalog load FILE: load a catalog JSON into a running kit' },
  terminal: { summary: 'terminal pair|list|revoke: staff terminals paired by the admin (code + QR)' },
  fleet: { summary: 'fleet provision: per-kit identities, hub enrollment, balena variables' },
  report: { summary: 'report --event E --out DIR: the post-event report (html, pdf, json) [--suggest]' },
  loyalty: { summary: 'loyalty issue|double-uses: signed loyalty passes through the hub (text + QR)' },
} as const satisfies Record<string, { summary: string }>;

export type CommandName = keyof typeof COMMANDS;
