/**
 * `parse`: what the parse worker (src/parseWorker.ts) spends on a big poll in the steady state.
 * N Nova servers (the local OpenStack's, 1,000 per page, as `isolation` polls them), 1 % of them
 * changing before each poll, read through the parse worker with Nova's pick as the transport reads
 * them, unchanged elements sent as ids (every id vouched for, so the main thread's part is
 * nothing but receiving). Each round polls twice, alternately first: once with elements kept by
 * their bytes (the default: an element whose bytes the base poll had is not parsed) and once
 * with every element parsed before it is compared (`kept.bytes: false`), each in a family of its
 * own. The figure is the worker thread's time on a core (/proc/thread-self/schedstat) per
 * element, the median of the rounds; `ratio` is bytes / parsed, the median of each round's own
 * ratio (a pair run back to back sees the same machine). `keptByBytesShare`: the elements kept
 * by their bytes, of all read in the byte polls.
 *
 * PARSE_BENCH_N overrides N (default 100,000); PARSE_BENCH_ROUNDS the rounds (default 7).
 */
import { silentLogger } from '../../src/log.js';
import { type KeptStream, parseOffThread, parseWorkerForTests, parseWorkerMemory } from '../../src/parseOffThread.js';
import { SERVER_PICK } from '../../sources/openstack/nova.js';
import { startOpenStackServer } from '../support/openstack-server.js';
import type { Bench, BenchRow } from './run.js';

const N = Number(process.env.PARSE_BENCH_N ?? 100_000);
const ROUNDS = Number(process.env.PARSE_BENCH_ROUNDS ?? 7);
const PAGE = 1_000;
/** A socket read's size. */
const CHUNK = 64 * 1024;

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

/** A marker handed over in place of a kept element. */
const KEPT = Symbol('kept');

/** Reads the pages as one poll of `kept`; the elements read, and those handed over in full. */
async function poll(pages: readonly Buffer[], kept: KeptStream): Promise<{ elements: number; full: number }> {
  let elements = 0;
  let full = 0;
  for (const page of pages) {
    const parse = parseOffThread({
      select: 'servers[*]',
      pick: SERVER_PICK,
      maxBytes: 1 << 26,
      maxElements: 1e7,
      maxDepth: 512,
      onElement: (e) => {
        elements += 1;
        if (e !== KEPT) full += 1;
      },
      kept: { ...kept, onKept: () => KEPT },
      log: silentLogger,
    });
    try {
      // Copies: a chunk is transferred to the worker, and the page is read again next round.
      for (let at = 0; at < page.length; at += CHUNK) await parse.write(Buffer.from(page.subarray(at, at + CHUNK)));
      await parse.end();
    } finally {
      parse.drop();
    }
  }
  return { elements, full };
}

const bench: Bench = {
  name: 'parse',
  title: `the parse worker's time on a core per element of a ${N}-server Nova poll (1 % churn), elements kept by their bytes vs every element parsed first`,
  async run(): Promise<BenchRow[]> {
    const os = await startOpenStackServer({ servers: N });
    const servers = os.state.servers as Record<string, unknown>[];
    await os.close();
    const render = (): Buffer[] => {
      const pages: Buffer[] = [];
      for (let from = 0; from < servers.length; from += PAGE) pages.push(Buffer.from(JSON.stringify({ servers: servers.slice(from, from + PAGE), servers_links: [] })));
      return pages;
    };
    const modes = [
      { name: 'bytes', family: 'parse-bench bytes', bytes: true, us: [] as number[], last: 0 },
      { name: 'parsed', family: 'parse-bench parsed', bytes: false, us: [] as number[], last: 0 },
    ];
    let generation = 1;
    let pages = render();
    // The first poll of each: every element new, read in full.
    for (const mode of modes) {
      await poll(pages, { family: mode.family, generation, base: undefined, id: 'id', bytes: mode.bytes });
      mode.last = generation;
    }
    const ratios: number[] = [];
    let byBytes = 0;
    let readByBytes = 0;
    for (let round = 0; round < ROUNDS; round += 1) {
      // 1 % of the servers change (a run of consecutive ones, as the isolation benchmark's cloud does).
      const churn = Math.ceil(N / 100);
      const first = (round * churn) % N;
      for (let i = first; i < Math.min(N, first + churn); i += 1) servers[i]!.status = servers[i]!.status === 'SHUTOFF' ? 'ACTIVE' : 'SHUTOFF';
      pages = render();
      generation += 1;
      const order = round % 2 === 0 ? modes : [...modes].reverse();
      const us: Record<string, number> = {};
      for (const mode of order) {
        const before = await parseWorkerMemory();
        const read = await poll(pages, { family: mode.family, generation, base: mode.last, id: 'id', bytes: mode.bytes });
        const after = await parseWorkerMemory();
        if (read.elements !== N) throw new Error(`parse bench: ${read.elements} elements read, expected ${N}`);
        if (read.full > churn) throw new Error(`parse bench: ${read.full} elements in full, at most ${churn} changed`);
        us[mode.name] = ((after.cpuMs - before.cpuMs) * 1000) / read.elements;
        mode.us.push(us[mode.name]!);
        mode.last = generation;
        if (mode.bytes) {
          byBytes += after.byBytes - before.byBytes;
          readByBytes += read.elements;
        }
      }
      ratios.push(us.bytes! / us.parsed!);
    }
    const memory = await parseWorkerMemory();
    await parseWorkerForTests()?.terminate();
    return [
      {
        bench: 'parse',
        n: N,
        rounds: ROUNDS,
        bytesUsPerElement: Number(median(modes[0]!.us).toFixed(2)),
        parsedUsPerElement: Number(median(modes[1]!.us).toFixed(2)),
        ratio: Number(median(ratios).toFixed(3)),
        keptByBytesShare: Number((byBytes / readByBytes).toFixed(4)),
        // Both families' tables (three generations at most each): the worker's memory for them.
        workerKeptBytesPerElement: Number((memory.keptBytes / (2 * N)).toFixed(1)),
      },
    ];
  },
};

export default bench;
