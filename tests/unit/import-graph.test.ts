// The import graph of the product code (core, services, firmware, hardware, cli, bin) has no cycle and no
// import that runs up the layer tables below. Every relative import counts: static, `import type`,
// `export … from`, `typeof import('…')` and lazy `import('…')` (a lazy import still couples two modules,
// and a cycle through one still means neither side can be understood or moved alone).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** The folders that hold product code; tests, bench, scripts, dist and node_modules are not walked. */
const PRODUCT_ROOTS = ['core', 'services', 'firmware', 'hardware', 'cli', 'bin'];
const CODE_FILE = /\.(ts|mts|js|mjs)$/;

/**
 * Top-level layers, lowest first. A file may import from its own layer's folder or a lower layer; two
 * folders on one layer are peers and must not import each other. `services/<name>` is a folder of its
 * own: no service imports another service's files.
 */
const AREA_LAYERS: string[][] = [['core'], ['hardware'], ['services/*', 'firmware'], ['cli'], ['bin']];

/**
 * Layers inside hardware/, lowest first, under the same rule (own folder or lower; peers apart). This
 * rule has no allowlist.
 */
const HARDWARE_LAYERS: string[][] = [
  ['hardware/power'], //     the power-reading contract and pure helpers (SoC curve, poll clock, source bases)
  ['hardware/boards'], //    board profiles: data, naming power devices by that contract
  ['hardware/gpio', 'hardware/i2c', 'hardware/serial'], // bus interfaces and their real adapters
  ['hardware/drivers'], //   device drivers over those buses, and their wire codecs
  ['hardware/sim'], //       simulated devices, speaking the drivers' wire codecs
  ['hardware/factories'], // assembly: drivers on real adapters or on simulators; GPIO provider choice
  ['hardware'], //           hardware/index.ts, the package entry
];

/** Exceptions to the layer rules: none. An entry would read `importer -> imported`; stale ones are printed. */
const KNOWN_VIOLATIONS_TO_REMOVE: readonly string[] = [];

type EdgeKind = 'static' | 'type' | 'dynamic';
interface Edge {
  from: string;
  to: string;
  kind: EdgeKind;
}
interface ImportGraph {
  files: string[];
  edges: Edge[];
}

/** Relative module specifiers of one file, with how each is imported. */
function importsOf(file: string, text: string): Array<{ spec: string; kind: EdgeKind }> {
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, false);
  const out: Array<{ spec: string; kind: EdgeKind }> = [];
  const visit = (node: ts.Node): void => {
    if (ts.isImportDeclaration(node) && ts.isStringLiteral(node.moduleSpecifier)) {
      const typeOnly =
        node.importClause?.isTypeOnly === true ||
        (node.importClause !== undefined &&
          node.importClause.name === undefined &&
          node.importClause.namedBindings !== undefined &&
          ts.isNamedImports(node.importClause.namedBindings) &&
          node.importClause.namedBindings.elements.length > 0 &&
          node.importClause.namedBindings.elements.every((e) => e.isTypeOnly));
      out.push({ spec: node.moduleSpecifier.text, kind: typeOnly ? 'type' : 'static' });
    } else if (
      ts.isExportDeclaration(node) &&
      node.moduleSpecifier !== undefined &&
      ts.isStringLiteral(node.moduleSpecifier)
    ) {
      out.push({ spec: node.moduleSpecifier.text, kind: node.isTypeOnly ? 'type' : 'static' });
    } else if (
      ts.isCallExpression(node) &&
      node.expression.kind === ts.SyntaxKind.ImportKeyword &&
      node.arguments[0] !== undefined &&
      ts.isStringLiteralLike(node.arguments[0])
    ) {
      out.push({ spec: node.arguments[0].text, kind: 'dynamic' });
    } else if (
      ts.isImportTypeNode(node) &&
      ts.isLiteralTypeNode(node.argument) &&
      ts.isStringLiteral(node.argument.literal)
    ) {
      out.push({ spec: node.argument.literal.text, kind: 'type' });
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return out.filter((i) => i.spec.startsWith('./') || i.spec.startsWith('../'));
}

/** The graph of `sources` (repo-relative POSIX path -> text); only edges between those files are kept. */
function buildGraph(sources: ReadonlyMap<string, string>): ImportGraph {
  const edges: Edge[] = [];
  for (const [file, text] of sources) {
    for (const { spec, kind } of importsOf(file, text)) {
      const target = path.posix.normalize(path.posix.join(path.posix.dirname(file), spec));
      const candidates = [target, target.replace(/\.js$/, '.ts'), `${target}.ts`, `${target}/index.ts`];
      const to = candidates.find((c) => sources.has(c));
      if (to !== undefined) edges.push({ from: file, to, kind });
    }
  }
  return { files: [...sources.keys()].sort(), edges };
}

/** One cycle path (a -> b -> … -> a) per strongly connected component that has a cycle (Tarjan). */
function findCycles(g: ImportGraph): string[][] {
  const next = new Map<string, string[]>(g.files.map((f) => [f, []]));
  for (const e of g.edges) next.get(e.from)?.push(e.to);
  for (const list of next.values()) list.sort();
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const components: string[][] = [];
  let counter = 0;
  const strong = (v: string): void => {
    index.set(v, counter);
    low.set(v, counter);
    counter++;
    stack.push(v);
    onStack.add(v);
    for (const w of next.get(v) ?? []) {
      if (!index.has(w)) {
        strong(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v)!, index.get(w)!));
      }
    }
    if (low.get(v) === index.get(v)) {
      const comp: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        comp.push(w);
      } while (w !== v);
      components.push(comp);
    }
  };
  for (const f of g.files) if (!index.has(f)) strong(f);

  const cycles: string[][] = [];
  for (const comp of components) {
    const inComp = new Set(comp);
    const start = [...comp].sort()[0]!;
    if (comp.length === 1 && !(next.get(start) ?? []).includes(start)) continue;
    // Breadth-first from start back to start inside the component: the shortest cycle through it.
    const parent = new Map<string, string>();
    const queue = [start];
    let found: string | undefined;
    while (queue.length && found === undefined) {
      const v = queue.shift()!;
      for (const w of next.get(v) ?? []) {
        if (!inComp.has(w)) continue;
        if (w === start) {
          found = v;
          break;
        }
        if (!parent.has(w)) {
          parent.set(w, v);
          queue.push(w);
        }
      }
    }
    const pathBack = [start];
    for (let v = found!; v !== start; v = parent.get(v)!) pathBack.push(v);
    cycles.push([...pathBack, start].reverse());
  }
  return cycles;
}

/** The layer table entry that owns a file: the longest matching folder (`services/*` matches one service). */
function placeIn(table: string[][], file: string): { layer: number; folder: string } | undefined {
  let best: { layer: number; folder: string } | undefined;
  table.forEach((folders, layer) => {
    for (const pattern of folders) {
      let folder = pattern;
      if (pattern.endsWith('/*')) {
        const base = pattern.slice(0, -1);
        if (!file.startsWith(base)) continue;
        const rest = file.slice(base.length).split('/');
        if (rest.length < 2) continue; // a file directly in services/ belongs to no service
        folder = base + rest[0];
      }
      if (!file.startsWith(`${folder}/`)) continue;
      if (!best || folder.length > best.folder.length) best = { layer, folder };
    }
  });
  return best;
}

interface Violation {
  edge: Edge;
  rule: string;
}

/** Edges that go up a layer table or sideways between two peer folders of one layer. */
function upwardImports(g: ImportGraph, table: string[][], rule: string): Violation[] {
  const out: Violation[] = [];
  for (const edge of g.edges) {
    const from = placeIn(table, edge.from);
    const to = placeIn(table, edge.to);
    if (!from || !to || from.folder === to.folder) continue;
    if (to.layer > from.layer || (to.layer === from.layer && to.folder !== from.folder)) {
      out.push({
        edge,
        rule: `${rule}: ${from.folder} (layer ${from.layer}) -> ${to.folder} (layer ${to.layer})`,
      });
    }
  }
  return out;
}

const key = (e: Edge): string => `${e.from} -> ${e.to}`;

function productSources(): Map<string, string> {
  const sources = new Map<string, string>();
  const walk = (dir: string): void => {
    for (const d of fs.readdirSync(path.join(ROOT, dir), { withFileTypes: true })) {
      const rel = `${dir}/${d.name}`;
      if (d.isDirectory()) {
        if (d.name !== 'node_modules' && d.name !== 'dist') walk(rel);
      } else if (CODE_FILE.test(d.name) && !d.name.endsWith('.d.ts')) {
        sources.set(rel, fs.readFileSync(path.join(ROOT, rel), 'utf8'));
      }
    }
  };
  for (const r of PRODUCT_ROOTS) if (fs.existsSync(path.join(ROOT, r))) walk(r);
  return sources;
}

test('the checker finds a synthetic cycle and synthetic upward imports (so it cannot pass vacuously)', () => {
  const g = buildGraph(
    new Map([
      ['core/a.ts', "import { b } from '../services/x/b.ts';\nexport const a = 1;"],
      ['services/x/b.ts', "import type { C } from './c.ts';\nexport const b = 2;"],
      ['services/x/c.ts', "export type C = 1;\nexport const lazy = () => import('../y/d.ts');"],
      ['services/y/d.ts', "export * from '../x/b.ts';\nimport '../../core/a.ts';"],
      ['hardware/power/e.ts', "const f: typeof import('../factories/f.ts') = null!;"],
      ['hardware/factories/f.ts', "import { e } from '../power/e.ts';"],
    ]),
  );
  assert.equal(g.edges.length, 7);
  assert.deepEqual(
    g.edges.map((e) => e.kind),
    ['static', 'type', 'dynamic', 'static', 'static', 'type', 'static'],
  );
  const cycles = findCycles(g);
  assert.deepEqual(cycles.map((c) => c.join(' -> ')).sort(), [
    'core/a.ts -> services/x/b.ts -> services/x/c.ts -> services/y/d.ts -> core/a.ts',
    'hardware/factories/f.ts -> hardware/power/e.ts -> hardware/factories/f.ts',
  ]);
  assert.deepEqual(
    upwardImports(g, AREA_LAYERS, 'areas').map((v) => key(v.edge)),
    [
      'core/a.ts -> services/x/b.ts',
      'services/x/c.ts -> services/y/d.ts',
      'services/y/d.ts -> services/x/b.ts',
    ],
  );
  assert.deepEqual(
    upwardImports(g, HARDWARE_LAYERS, 'hardware').map((v) => key(v.edge)),
    ['hardware/power/e.ts -> hardware/factories/f.ts'],
  );
  // Peers on one layer stay apart, and the package entry sits above every hardware folder.
  const peers = buildGraph(
    new Map([
      ['hardware/gpio/g.ts', "import '../serial/s.ts';"],
      ['hardware/serial/s.ts', ''],
      ['hardware/index.ts', "export * from './factories/f.ts';"],
      ['hardware/factories/f.ts', "import '../index.ts';"],
    ]),
  );
  assert.deepEqual(
    upwardImports(peers, HARDWARE_LAYERS, 'hardware').map((v) => key(v.edge)),
    ['hardware/gpio/g.ts -> hardware/serial/s.ts', 'hardware/factories/f.ts -> hardware/index.ts'],
  );
});

test('the product code has no import cycle and no upward import', (t) => {
  const g = buildGraph(productSources());
  const cycles = findCycles(g);
  const areaUp = upwardImports(g, AREA_LAYERS, 'areas');
  const hardwareUp = upwardImports(g, HARDWARE_LAYERS, 'hardware layers');
  const known = new Set(KNOWN_VIOLATIONS_TO_REMOVE);
  const allowed = areaUp.filter((v) => known.has(key(v.edge)));
  const unknown = areaUp.filter((v) => !known.has(key(v.edge)));
  const seen = new Set(areaUp.map((v) => key(v.edge)));
  const stale = KNOWN_VIOLATIONS_TO_REMOVE.filter((k) => !seen.has(k));

  t.diagnostic(
    `import graph: ${g.files.length} files, ${g.edges.length} edges, ${cycles.length} cycles, ` +
      `${areaUp.length + hardwareUp.length} upward imports (${allowed.length} in KNOWN_VIOLATIONS_TO_REMOVE, ` +
      `${hardwareUp.length} inside hardware/); a cycle is counted once per strongly connected group`,
  );
  for (const c of cycles) t.diagnostic(`cycle: ${c.join(' -> ')}`);
  for (const v of allowed) t.diagnostic(`known violation (to remove): ${key(v.edge)}`);
  for (const v of [...unknown, ...hardwareUp]) t.diagnostic(`upward import: ${key(v.edge)}  [${v.rule}]`);
  for (const k of stale) t.diagnostic(`stale KNOWN_VIOLATIONS_TO_REMOVE entry, remove it: ${k}`);

  assert.ok(g.files.length > 50 && g.edges.length > 100, 'the walk found the product code');
  assert.deepEqual(
    g.files.filter((f) => f.startsWith('hardware/') && placeIn(HARDWARE_LAYERS, f)?.folder === 'hardware'),
    ['hardware/index.ts'],
    'every hardware/ folder has a place in HARDWARE_LAYERS',
  );
  assert.deepEqual(
    KNOWN_VIOLATIONS_TO_REMOVE.filter((k) => k.startsWith('hardware/')),
    [],
    'hardware/ has no allowlist',
  );
  assert.deepEqual(
    cycles.map((c) => c.join(' -> ')),
    [],
    'import cycles',
  );
  assert.deepEqual(
    hardwareUp.map((v) => `${key(v.edge)}  [${v.rule}]`),
    [],
    'imports up the hardware layers',
  );
  assert.deepEqual(
    unknown.map((v) => `${key(v.edge)}  [${v.rule}]`),
    [],
    'imports up the area layers',
  );
});
