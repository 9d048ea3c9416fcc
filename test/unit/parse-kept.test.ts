/**
 * Unchanged records kept, on the parse worker (src/parseWorker.ts, src/keptDigests.ts) and the
 * main thread's side of it (src/parseOffThread.ts): a stream opened with `kept` remembers its
 * elements under its generation and sends those its base had as they are by id; ids the main
 * thread does not vouch for come in full before the end; old generations are dropped; a worker
 * that dies fails the stream.
 */
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import type { SelectKey } from '../../src/jsonStream.js';
import { DigestTable, digestOf, idHash, serialize, textOf } from '../../src/keptDigests.js';
import { silentLogger } from '../../src/log.js';
import { ParseWorkerError, type KeptStream, parseOffThread, parseWorkerForTests, parseWorkerMemory } from '../../src/parseOffThread.js';
import type { PickShape } from '../../src/pick.js';

const PICK: PickShape = { id: true, name: true, status: true, flavor: { original_name: true } };

interface Server {
  id?: unknown;
  name?: string;
  status?: string;
  flavor?: { original_name: string; ram?: number };
  updated?: string;
}

/** What the main thread got: elements in full (by id), ids it was asked about, the kept records handed over. */
interface Got {
  full: Server[];
  fullKeys: SelectKey[][];
  asked: string[];
  kept: string[];
  keptKeys: SelectKey[][];
  rest: unknown;
}

/** A marker the test's `onKept` hands over in place of an element. */
class Mark {
  constructor(readonly id: string) {}
}

let families = 0;
/** A family of its own per test: the worker is shared by the file's tests. */
const family = (): string => `test-${(families += 1)}`;

function body(servers: readonly Server[]): Buffer {
  return Buffer.from(JSON.stringify({ servers, servers_links: [] }));
}

/** Reads `servers` (cut into chunks of `chunk` bytes) as a stream of `kept`; `vouch` says which ids the "hub" vouches for. */
function read(servers: readonly Server[], kept: KeptStream, vouch: (id: string) => boolean = () => true, chunk = 300): Promise<Got> {
  return readBody(body(servers), kept, vouch, chunk);
}

/** Reads a body as it is written (`{"servers": [...]}`), with `pick`. */
async function readBody(bytes: Buffer, kept: KeptStream, vouch: (id: string) => boolean = () => true, chunk = 300, pick: PickShape = PICK): Promise<Got> {
  const got: Got = { full: [], fullKeys: [], asked: [], kept: [], keptKeys: [], rest: undefined };
  const parse = parseOffThread({
    select: 'servers[*]',
    pick,
    maxBytes: 1 << 20,
    maxElements: 1e6,
    maxDepth: 64,
    onElement: (e, keys) => {
      if (e instanceof Mark) {
        got.kept.push(e.id);
        got.keptKeys.push([...keys]);
      } else {
        got.full.push(e as Server);
        got.fullKeys.push([...keys]);
      }
    },
    kept: { ...kept, onKept: (id) => (got.asked.push(id), vouch(id) ? new Mark(id) : undefined) },
    log: silentLogger,
  });
  try {
    for (let at = 0; at < bytes.length; at += chunk) await parse.write(Buffer.from(bytes.subarray(at, at + chunk)));
    got.rest = await parse.end();
    return got;
  } finally {
    parse.drop();
  }
}

const server = (n: number, status = 'ACTIVE'): Server => ({ id: `s-${n}`, name: `vm-${n}`, status, flavor: { original_name: 'm1.small', ram: 512 }, updated: `2026-01-0${(n % 9) + 1}` });
const servers = (count: number): Server[] => Array.from({ length: count }, (_, n) => server(n));
const ids = (list: readonly Server[]): string[] => list.map((s) => String(s.id));

describe('the parse worker keeps what the base generation had as it is', () => {
  it('a first poll comes in full; the next one sends unchanged elements as ids, changed and new ones in full', async () => {
    const f = family();
    const first = await read(servers(300), { family: f, generation: 1, base: undefined, id: 'id' });
    expect(first.asked).toEqual([]);
    expect(ids(first.full)).toEqual(ids(servers(300)));
    // The pick is applied to what is sent in full (updated, flavor.ram left out).
    expect(first.full[0]).toEqual({ id: 's-0', name: 'vm-0', status: 'ACTIVE', flavor: { original_name: 'm1.small' } });

    const next = servers(300);
    next[7] = server(7, 'SHUTOFF');
    next[250]!.flavor = { original_name: 'm1.large', ram: 512 };
    next.push(server(300));
    // Outside the pick: not a change.
    next[9]!.updated = '2027-01-01';
    const second = await read(next, { family: f, generation: 2, base: 1, id: 'id' });
    expect(ids(second.full).sort()).toEqual(['s-250', 's-300', 's-7']);
    expect(second.full.find((s) => s.id === 's-7')!.status).toBe('SHUTOFF');
    expect(second.asked.length).toBe(298);
    expect([...second.kept].sort()).toEqual(ids(next).filter((id) => !['s-250', 's-300', 's-7'].includes(id)).sort());
    // Each kept record carries its element's keys (its index in the page), as a full one does.
    expect(second.keptKeys.every((keys, i) => keys.length === 1 && next[keys[0] as number]!.id === second.kept[i])).toBe(true);
    expect(second.rest).toEqual({ servers: [], servers_links: [] });
  });

  it('ids the main thread does not vouch for come in full, before the end', async () => {
    const f = family();
    await read(servers(500), { family: f, generation: 1, base: undefined, id: 'id' });
    const refused = (id: string): boolean => Number(id.slice(2)) % 3 === 0;
    const got = await read(servers(500), { family: f, generation: 2, base: 1, id: 'id' }, (id) => !refused(id));
    expect(got.asked.length).toBe(500);
    expect(ids(got.full).sort()).toEqual(got.asked.filter(refused).sort());
    expect(got.kept.sort()).toEqual(got.asked.filter((id) => !refused(id)).sort());
    // Sent in full as picked, with their own keys.
    expect(got.full.every((s, i) => s.flavor?.ram === undefined && servers(500)[got.fullKeys[i]![0] as number]!.id === s.id)).toBe(true);
    expect((await parseWorkerMemory()).streams).toBe(0);
  });

  it('a stream that ends while its batches are unanswered ends after the elements asked for (one chunk: every batch at once)', async () => {
    const f = family();
    await read(servers(1000), { family: f, generation: 1, base: undefined, id: 'id' }, undefined, 1 << 20);
    const got = await read(servers(1000), { family: f, generation: 2, base: 1, id: 'id' }, () => false, 1 << 20);
    expect(got.kept).toEqual([]);
    expect(ids(got.full).sort()).toEqual(ids(servers(1000)).sort());
  });

  it('the streams of one generation (its pages) add to it; the base is what all of them had', async () => {
    const f = family();
    const all = servers(400);
    await read(all.slice(0, 200), { family: f, generation: 1, base: undefined, id: 'id' });
    await read(all.slice(200), { family: f, generation: 1, base: undefined, id: 'id' });
    // The pages cut elsewhere the next time: an element kept from whichever page it was on.
    const got = await read(all.slice(150, 400), { family: f, generation: 2, base: 1, id: 'id' });
    expect(got.full).toEqual([]);
    expect(got.kept.length).toBe(250);
  });

  it('a base the worker does not hold (another family, an old or unknown generation) means every element in full', async () => {
    const f = family();
    await read(servers(100), { family: f, generation: 1, base: undefined, id: 'id' });
    expect((await read(servers(100), { family: family(), generation: 2, base: 1, id: 'id' })).full).toHaveLength(100);
    expect((await read(servers(100), { family: f, generation: 3, base: 99, id: 'id' })).full).toHaveLength(100);
  });

  it('elements without an id (or with one that is not a string or number) come in full; a number id is kept as a string', async () => {
    const f = family();
    const odd: Server[] = [{ name: 'no id' }, { id: null, name: 'null id' }, { id: { x: 1 }, name: 'object id' }, { id: 42, name: 'number id' }];
    await read(odd, { family: f, generation: 1, base: undefined, id: 'id' });
    const got = await read(odd, { family: f, generation: 2, base: 1, id: 'id' });
    expect(got.full.map((s) => s.name)).toEqual(['no id', 'null id', 'object id']);
    expect(got.kept).toEqual(['42']);
  });

  it('an id seen twice in a poll with different elements is never kept; a number id is not its string', async () => {
    const f = family();
    await read([{ id: 'a', name: 'one' }, { id: 'a', name: 'two' }, { id: 7, name: 'seven' }], { family: f, generation: 1, base: undefined, id: 'id' });
    const got = await read([{ id: 'a', name: 'one' }, { id: '7', name: 'seven' }], { family: f, generation: 2, base: 1, id: 'id' });
    expect(got.kept).toEqual([]);
    expect(got.full).toHaveLength(2);
  });

  it('keeps per family the generation being recorded, the base of the latest stream and the generation before the one recorded', async () => {
    const f = family();
    await read(servers(50), { family: f, generation: 1, base: undefined, id: 'id' });
    await read(servers(50), { family: f, generation: 2, base: 1, id: 'id' });
    expect((await parseWorkerMemory()).generations[f]).toEqual([1, 2]);
    await read(servers(50), { family: f, generation: 3, base: 2, id: 'id' });
    expect((await parseWorkerMemory()).generations[f]).toEqual([2, 3]);
    // A failed poll's generation (3) is never a base: the next compares with 2; 3 is the one before.
    const got = await read(servers(50), { family: f, generation: 4, base: 2, id: 'id' });
    expect(got.kept).toHaveLength(50);
    expect((await parseWorkerMemory()).generations[f]).toEqual([2, 3, 4]);
    await read(servers(50), { family: f, generation: 5, base: undefined, id: 'id' });
    expect((await parseWorkerMemory()).generations[f]).toEqual([4, 5]);
  });

  it("a poll's first page read before the hub applied the poll before it (its base is then the one before that) leaves that poll for its next pages", async () => {
    const f = family();
    const all = servers(400);
    await read(all, { family: f, generation: 1, base: undefined, id: 'id' });
    await read(all, { family: f, generation: 2, base: 1, id: 'id' });
    // Poll 3's first page opens while poll 2 is still being stepped: its base is 1.
    const first = await read(all.slice(0, 200), { family: f, generation: 3, base: 1, id: 'id' });
    expect(first.kept).toHaveLength(200);
    // Poll 2 is applied meanwhile: the next page names it, and finds it.
    const second = await read(all.slice(200), { family: f, generation: 3, base: 2, id: 'id' });
    expect(second.full).toEqual([]);
    expect(second.kept).toHaveLength(200);
  });

  it('an element whose bytes the base had is kept by its bytes, unparsed; one changed outside the pick is parsed, and kept by its digest', async () => {
    const f = family();
    await read(servers(300), { family: f, generation: 1, base: undefined, id: 'id' });
    const next = servers(300);
    next[7] = server(7, 'SHUTOFF');
    next[9]!.updated = '2027-01-01';
    const before = (await parseWorkerMemory()).byBytes;
    const got = await read(next, { family: f, generation: 2, base: 1, id: 'id' });
    expect(ids(got.full)).toEqual(['s-7']);
    expect(got.kept).toHaveLength(299);
    // s-9's bytes changed (outside the pick): parsed, and kept all the same.
    expect((await parseWorkerMemory()).byBytes - before).toBe(298);
    // Recorded by its bytes in generation 2 too: the next poll keeps every one of them so.
    const third = await read(next, { family: f, generation: 3, base: 2, id: 'id' });
    expect(third.kept).toHaveLength(300);
    expect((await parseWorkerMemory()).byBytes - before).toBe(298 + 300);
  });

  it('an element held by its bytes that the main thread wants comes parsed and picked, with its keys', async () => {
    const f = family();
    await read(servers(200), { family: f, generation: 1, base: undefined, id: 'id' });
    const before = (await parseWorkerMemory()).byBytes;
    const got = await read(servers(200), { family: f, generation: 2, base: 1, id: 'id' }, (id) => id !== 's-5' && id !== 's-150');
    expect((await parseWorkerMemory()).byBytes - before).toBe(200);
    expect(got.full).toEqual([
      { id: 's-5', name: 'vm-5', status: 'ACTIVE', flavor: { original_name: 'm1.small' } },
      { id: 's-150', name: 'vm-150', status: 'ACTIVE', flavor: { original_name: 'm1.small' } },
    ]);
    expect(got.fullKeys).toEqual([[5], [150]]);
  });

  it('the id of an element kept by its bytes is its own member: not one nested inside, and the last when it is written twice (as JSON.parse reads it)', async () => {
    const f = family();
    // Hostile bytes: the element's metadata names another server's id first; a member written
    // twice (JSON.parse keeps the last); a name written with an escape; spaces around it all.
    const text = (status: string): Buffer =>
      Buffer.from(
        `{"servers": [ {"metadata": {"id": "s-2"}, "id": "s-1", "name": "one", "status": "${status}"},` +
          ` {"id": "dup-first", "name": "two", "id" : "s-2" , "status": "ACTIVE"},` +
          ` { "\\u0069d" :\t"s-3", "name": "three", "status": "ACTIVE", "links": [{"id": "s-1"}]}], "servers_links": []}`,
      );
    const first = await readBody(text('ACTIVE'), { family: f, generation: 1, base: undefined, id: 'id' });
    expect(ids(first.full)).toEqual(['s-1', 's-2', 's-3']);
    const before = (await parseWorkerMemory()).byBytes;
    const got = await readBody(text('ACTIVE'), { family: f, generation: 2, base: 1, id: 'id' });
    expect(got.kept).toEqual(['s-1', 's-2', 's-3']);
    expect((await parseWorkerMemory()).byBytes - before).toBe(3);
    // s-1 changed: read in full; the others still by their bytes.
    const third = await readBody(text('SHUTOFF'), { family: f, generation: 3, base: 2, id: 'id' });
    expect(ids(third.full)).toEqual(['s-1']);
    expect(third.kept).toEqual(['s-2', 's-3']);
  });

  it('with `bytes: false` every element is parsed before it is compared: kept all the same, none by its bytes', async () => {
    const f = family();
    await read(servers(100), { family: f, generation: 1, base: undefined, id: 'id', bytes: false });
    const before = (await parseWorkerMemory()).byBytes;
    const got = await read(servers(100), { family: f, generation: 2, base: 1, id: 'id', bytes: false });
    expect(got.kept).toHaveLength(100);
    expect((await parseWorkerMemory()).byBytes - before).toBe(0);
    // The worker's time on a core is reported (Linux: /proc/thread-self/schedstat).
    expect((await parseWorkerMemory()).cpuMs).toBeGreaterThan(0);
  });

  it('bytes read under another pick or another id field are not kept by their bytes', async () => {
    const f = family();
    await read(servers(50), { family: f, generation: 1, base: undefined, id: 'id' });
    const before = (await parseWorkerMemory()).byBytes;
    // Another pick: the same bytes make other records (no status), so they are parsed and compared.
    const other = await readBody(body(servers(50)), { family: f, generation: 2, base: 1, id: 'id' }, undefined, 300, { id: true, name: true });
    expect(other.full).toHaveLength(50);
    expect(other.full[0]).toEqual({ id: 's-0', name: 'vm-0' });
    // Another id field (name): parsed; kept by nothing (the base recorded ids, not names).
    const byName = await read(servers(50), { family: f, generation: 3, base: 1, id: 'name' });
    expect(byName.full).toHaveLength(50);
    expect((await parseWorkerMemory()).byBytes - before).toBe(0);
  });

  it('a worker that dies while it holds a batch fails the stream (ParseWorkerError); the next worker holds no base', async () => {
    const f = family();
    await read(servers(300), { family: f, generation: 1, base: undefined, id: 'id' });
    let killed = false;
    const failure = read(servers(300), { family: f, generation: 2, base: 1, id: 'id' }, () => {
      // The first id asked about: the worker holds its batch, and dies before it is answered.
      if (!killed) void parseWorkerForTests()!.terminate();
      killed = true;
      return false;
    });
    await expect(failure).rejects.toBeInstanceOf(ParseWorkerError);
    expect(killed).toBe(true);
    const again = await read(servers(300), { family: f, generation: 3, base: 1, id: 'id' });
    expect(again.full).toHaveLength(300);
  });
});

describe("the worker's figures", () => {
  it('a process with nothing else to do waits for parseWorkerMemory to answer (the worker is referenced meanwhile)', () => {
    // An unreferenced worker let such a process exit at the await, silently (the parse benchmark did).
    const url = new URL('../../src/parseOffThread.ts', import.meta.url).href;
    const log = new URL('../../src/log.ts', import.meta.url).href;
    const script = `
      const { parseOffThread, parseWorkerMemory } = await import(${JSON.stringify(url)});
      const { silentLogger } = await import(${JSON.stringify(log)});
      const p = parseOffThread({ select: '[*]', maxBytes: 1e6, maxElements: 1e6, maxDepth: 64, onElement: () => {}, log: silentLogger });
      await p.write(Buffer.from('[1,2]'));
      await p.end();
      const m = await parseWorkerMemory();
      process.stdout.write('streams=' + m.streams + ' cpu=' + (m.cpuMs > 0));`;
    const out = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 30_000 });
    expect(out).toBe('streams=0 cpu=true');
  });
});

describe('the digests', () => {
  it('tell apart values JSON.stringify writes alike (-0 and 0, Infinity and null), and keys from values', () => {
    for (const [a, b] of [
      [{ n: -0 }, { n: 0 }],
      [[Infinity], [null]],
      [{ a: { b: [-Infinity] } }, { a: { b: [null] } }],
      [{ a: 'b' }, ['a', 'b']],
    ] as const) {
      expect(textOf(a)).not.toBe(textOf(b));
      expect(digestOf(a)).not.toEqual(digestOf(b));
    }
    expect(textOf({ id: 'x', n: [1, 'two', null, true] })).toBe(textOf({ id: 'x', n: [1, 'two', null, true] }));
    expect(serialize(-0)).not.toBe(serialize(0));
    expect(serialize(Infinity)).not.toBe(serialize(null));
    expect(serialize({ a: 'b' })).not.toBe(serialize(['a', 'b']));
    expect(serialize(['1'])).not.toBe(serialize([1]));
    expect(serialize({ a: { b: 1 } })).not.toBe(serialize({ a: '{"b":1}' }));
    expect(digestOf({ id: 'x', n: -0 })).not.toEqual(digestOf({ id: 'x', n: 0 }));
    expect(digestOf({ id: 'x', n: 1 })).toEqual(digestOf({ id: 'x', n: 1 }));
  });

  it('a table finds what it recorded through growth and collisions of the ids\' hashes, and nothing else', () => {
    const table = new DigestTable(4);
    const digests = Array.from({ length: 5000 }, (_, i) => digestOf({ id: `e${i}` }));
    // Every fourth element under one shared hash: a collision of ids' hashes, resolved by the digest only.
    const hashOf = (i: number): number => (i % 4 === 0 ? 12345 : idHash(`e${i}`));
    for (let i = 0; i < 5000; i += 1) table.add(hashOf(i), digests[i]!);
    for (let i = 0; i < 5000; i += 1) expect(table.has(hashOf(i), digests[i]!)).toBe(i % 4 !== 0);
    expect(table.has(idHash('e1'), digests[2]!)).toBe(false);
    expect(table.size).toBe(3751);
  });
});
