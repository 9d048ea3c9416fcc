/**
 * `npm run bench [-- --json] [-- name…]`: runs the benchmarks and prints a table (or, with
 * --json, one JSON object per line). Each benchmark is a module with a default export of type
 * Bench; add new ones to BENCHES.
 */
import { parseArgs } from 'node:util';

export type BenchRow = { bench: string } & Record<string, string | number | boolean>;

export interface Bench {
  name: string;
  /** What it measures, one line (printed above its table). */
  title: string;
  /** What it needs beyond Node (shown before it runs). */
  needs?: string;
  /** What of `needs` is missing on this machine, if anything: the benchmark is then skipped. */
  missing?(): string | undefined;
  run(): Promise<BenchRow[]>;
}

const BENCHES: Record<string, () => Promise<{ default: Bench }>> = {
  diff: () => import('./diff.js'),
  poll: () => import('./poll.js'),
  amqp: () => import('./amqp.js'),
  persist: () => import('./persist.js'),
  webhook: () => import('./webhook.js'),
  hostile: () => import('./hostile.js'),
  cluster: () => import('./cluster.js'),
  isolation: () => import('./isolation.js'),
  parse: () => import('./parse.js'),
  expiry: () => import('./expiry.js'),
};

function table(rows: BenchRow[]): string {
  const keys = [...new Set(rows.flatMap((r) => Object.keys(r)))];
  const cell = (v: unknown): string => (typeof v === 'number' ? (Number.isInteger(v) ? String(v) : v.toFixed(v < 10 ? 2 : 0)) : String(v ?? ''));
  const widths = keys.map((k) => Math.max(k.length, ...rows.map((r) => cell(r[k]).length)));
  const line = (values: string[]): string => values.map((v, i) => v.padStart(widths[i]!)).join('  ');
  return [line(keys), line(widths.map((w) => '-'.repeat(w))), ...rows.map((r) => line(keys.map((k) => cell(r[k]))))].join('\n');
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({ options: { json: { type: 'boolean' } }, allowPositionals: true });
  const names = positionals.length > 0 ? positionals : Object.keys(BENCHES);
  for (const name of names) {
    const load = BENCHES[name];
    if (!load) throw new Error(`unknown benchmark ${name}: one of ${Object.keys(BENCHES).join(', ')}`);
    const bench = (await load()).default;
    if (!values.json) process.stdout.write(`\n${bench.name}: ${bench.title}\n${bench.needs ? `needs: ${bench.needs}\n` : ''}`);
    const missing = bench.missing?.();
    if (missing !== undefined) {
      // Skipped, loudly: on stderr, and as a row in --json output.
      process.stderr.write(`bench: SKIPPED ${bench.name}: missing ${missing}\n`);
      if (values.json) process.stdout.write(JSON.stringify({ bench: bench.name, skipped: `missing ${missing}` }) + '\n');
      continue;
    }
    const rows = await bench.run();
    if (values.json) for (const row of rows) process.stdout.write(JSON.stringify(row) + '\n');
    else process.stdout.write(table(rows) + '\n');
  }
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    process.stderr.write(`bench: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exit(1);
  },
);
