/**
 * fetchAllPages with `kept` (src/http.ts, src/kept.ts) against a real local HTTP server: a poll
 * after one the lookup vouches for hands over the baseline's entities for the unchanged records,
 * the changed ones and those the lookup refuses in full, and pages on exactly as before (by
 * links, and by `limit` and the marker of a page's last record, kept or not).
 */
import { type IncomingMessage, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type KeptPages, createHttpClient, fetchAllPages } from '../../src/http.js';
import { type BaselineLookup, Kept, nextGeneration } from '../../src/kept.js';
import type { Entity } from '../../src/model.js';
import type { PickShape } from '../../src/pick.js';

interface Server {
  id: string;
  name: string;
  status: string;
  updated: string;
}

const PICK: PickShape = { id: true, name: true, status: true };
const PAGE = 100;
let servers: Server[] = [];
/** The markers each request asked with, in order. */
let asked: (string | null)[] = [];
let base = '';
const server = createServer((req: IncomingMessage, res: ServerResponse) => {
  const q = new URL(req.url!, base).searchParams;
  const marker = q.get('marker');
  asked.push(marker);
  const from = marker === null ? 0 : servers.findIndex((s) => s.id === marker) + 1;
  const page = servers.slice(from, from + PAGE);
  if (req.url!.startsWith('/bare')) return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(page));
  const links = from + PAGE < servers.length ? [{ rel: 'next', href: `${base}/servers/detail?marker=${page.at(-1)!.id}` }] : [];
  res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ servers: page, servers_links: links }));
});

beforeAll(async () => {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

/**
 * A lookup standing in for the hub's: it vouches for the ids of the last poll it was told was
 * applied (and that `vouch` allows), with an "entity" naming the id.
 */
function lookup(vouch: (id: string) => boolean = () => true): BaselineLookup & { applied: number | undefined; asked: string[] } {
  const l = {
    applied: undefined as number | undefined,
    asked: [] as string[],
    base: () => l.applied,
    kept: (type: string, id: string, b: number): Kept | undefined => {
      l.asked.push(id);
      if (type !== 'nova.instance' || b !== l.applied || !vouch(id)) return undefined;
      // Only the key is read by this test: a stand-in for the baseline's entity.
      return new Kept({ type, id, key: `${type}:${id}` } as unknown as Entity);
    },
  };
  return l;
}

interface Poll {
  pages: (Server | Kept)[][];
  generation: number;
}

async function poll(l: BaselineLookup, path = '/servers/detail'): Promise<Poll> {
  const http = createHttpClient({ baseUrl: base, retries: 0 });
  const generation = nextGeneration();
  const kept: KeptPages = { paging: { generation, family: 'nova', lookup: l }, type: 'nova.instance', id: 'id' };
  const pages: (Server | Kept)[][] = [];
  asked = [];
  const bare = path === '/bare';
  await fetchAllPages<Server>(http, path, { key: bare ? null : 'servers', pick: PICK, kept, onPage: (p: (Server | Kept)[]) => void pages.push(p), ...(bare ? { limit: PAGE } : {}) });
  return { pages, generation };
}

const idOf = (r: Server | Kept): string => (r instanceof Kept ? r.entity.id : r.id);
const full = (p: Poll): Server[] => p.pages.flat().filter((r): r is Server => !(r instanceof Kept));
const kept = (p: Poll): string[] => p.pages.flat().filter((r): r is Kept => r instanceof Kept).map((r) => r.entity.id);
const make = (n: number): Server => ({ id: `s-${String(n).padStart(4, '0')}`, name: `vm-${n}`, status: 'ACTIVE', updated: `t${n}` });

describe('fetchAllPages with kept records', () => {
  it('a poll with no change hands over only kept records, page by page, asking for the same pages', async () => {
    servers = Array.from({ length: 350 }, (_, n) => make(n));
    const l = lookup();
    const first = await poll(l);
    expect(kept(first)).toEqual([]);
    expect(first.pages.map((p) => p.length)).toEqual([100, 100, 100, 50]);
    const markers = asked;
    // Picked: the rest of the record is not read.
    expect(full(first)[0]).toEqual({ id: 's-0000', name: 'vm-0', status: 'ACTIVE' });

    l.applied = first.generation;
    const second = await poll(l);
    expect(asked).toEqual(markers);
    expect(full(second)).toEqual([]);
    expect(second.pages.map((p) => p.length)).toEqual([100, 100, 100, 50]);
    expect(second.pages.map((p) => p.map(idOf).sort())).toEqual(first.pages.map((p) => p.map(idOf).sort()));
  });

  it('a changed server comes in full; one moved to another page is kept there; new ones in full', async () => {
    servers = Array.from({ length: 350 }, (_, n) => make(n));
    const l = lookup();
    l.applied = (await poll(l)).generation;
    servers[120]!.status = 'SHUTOFF';
    // A server gone near the start: every later one moves up a place, some to the page before.
    servers.splice(3, 1);
    servers.push(make(900));
    servers[10]!.updated = 'not picked: no change';
    const next = await poll(l);
    expect(full(next)).toEqual([
      { id: 's-0120', name: 'vm-120', status: 'SHUTOFF' },
      { id: 's-0900', name: 'vm-900', status: 'ACTIVE' },
    ]);
    expect(kept(next)).toHaveLength(348);
    expect(next.pages.map((p) => p.map(idOf).sort())).toEqual([0, 100, 200, 300].map((from) => servers.slice(from, from + 100).map((s) => s.id).sort()));
  });

  it('ids the lookup refuses come in full, in their page', async () => {
    servers = Array.from({ length: 250 }, (_, n) => make(n));
    const refused = (id: string): boolean => id.endsWith('7');
    const l = lookup((id) => !refused(id));
    l.applied = (await poll(l)).generation;
    l.asked = [];
    const next = await poll(l);
    expect(l.asked).toHaveLength(250);
    expect(full(next).map((s) => s.id)).toEqual(servers.map((s) => s.id).filter(refused));
    expect(next.pages.map((p) => p.map(idOf).sort())).toEqual([0, 100, 200].map((from) => servers.slice(from, from + 100).map((s) => s.id).sort()));
    // Nothing is kept against a base the lookup no longer names (the hub applied something else since).
    l.applied = 12345;
    expect(kept(await poll(l))).toEqual([]);
  });

  it('paging by limit and marker: a page whose last record is kept pages on from its id', async () => {
    servers = Array.from({ length: 330 }, (_, n) => make(n));
    const l = lookup();
    const first = await poll(l, '/bare');
    const markers = asked;
    expect(markers).toEqual([null, 's-0099', 's-0199', 's-0299']);
    l.applied = first.generation;
    // The last record of the second page changes: it comes in full, after the page's kept ones.
    servers[199]!.name = 'renamed';
    const second = await poll(l, '/bare');
    expect(asked).toEqual(markers);
    expect(full(second).map((s) => s.id)).toEqual(['s-0199']);
    expect(second.pages.flat()).toHaveLength(330);
  });
});
