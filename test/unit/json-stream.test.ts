/**
 * The streaming JSON reader (src/jsonStream.ts) against JSON.parse: the real recorded answers of
 * Nagios, Alertmanager and Prometheus, and arbitrary documents, cut into chunks at arbitrary
 * places, give exactly the elements and the rest that JSON.parse's value gives; a text JSON.parse
 * refuses is refused, whatever the cuts; and the bounds hold.
 */
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { JsonSelectStream, JsonStreamError, type SelectKey, memberSpan, parseSelector } from '../../src/jsonStream.js';
import { WIRE, byKeys, expectedSelection } from '../support/json-select.js';
import { fixturePath } from '../support/fixtures.js';

/** Reads `bytes` cut at `cuts` (offsets, any order, repeats allowed). */
function readInChunks(bytes: Buffer, select: string, cuts: number[], options: { maxBytes?: number; maxElements?: number; maxDepth?: number } = {}): { elements: [SelectKey[], unknown][]; rest: unknown } {
  const elements: [SelectKey[], unknown][] = [];
  const reader = new JsonSelectStream({ select, onElement: (e, keys) => elements.push([[...keys], e]), ...options });
  const at = [...new Set(cuts.map((c) => Math.min(c, bytes.length)))].sort((a, b) => a - b);
  let from = 0;
  for (const to of [...at, bytes.length]) {
    reader.write(bytes.subarray(from, to));
    from = to;
  }
  return { elements, rest: reader.end() };
}

const cutsOf = (length: number) => fc.array(fc.integer({ min: 0, max: length }), { maxLength: 40 });

const shapes = fc.oneof(
  fc.record({ select: fc.constant('[*]'), doc: fc.array(fc.jsonValue()) }),
  fc.record({ select: fc.constant('data.items[*]'), doc: fc.record({ status: fc.jsonValue(), data: fc.record({ items: fc.array(fc.jsonValue()), other: fc.jsonValue() }) }) }),
  fc.record({ select: fc.constant('data.*.*'), doc: fc.record({ data: fc.dictionary(fc.string(), fc.oneof(fc.dictionary(fc.string(), fc.jsonValue()), fc.jsonValue())) }) }),
  // Arbitrary documents: the path fits them or (mostly) not.
  fc.record({ select: fc.constantFrom('[*]', 'a.*', 'a[*].b', '*', 'a.b.c[*]'), doc: fc.jsonValue() }),
);
const formatted = fc.tuple(shapes, fc.constantFrom(undefined, 0, 1, 2, '\t', ' \r\n')).map(([{ select, doc }, indent]) => ({ select, text: JSON.stringify(doc, null, indent) }));

describe('the streaming JSON reader gives what JSON.parse gives', () => {
  it('the real answers, every chunking', () => {
    for (const [file, select] of WIRE) {
      const bytes = readFileSync(fixturePath(...file));
      const want = expectedSelection(bytes.toString('utf8'), select);
      fc.assert(
        fc.property(cutsOf(bytes.length), (cuts) => {
          const got = readInChunks(bytes, select, cuts);
          expect(byKeys(got.elements)).toEqual(byKeys(want.elements));
          expect(got.rest).toEqual(want.rest);
        }),
        { numRuns: 60 },
      );
    }
  });

  it('one byte at a time, and the elements in the order of the body', () => {
    const bytes = readFileSync(fixturePath('wire', 'prometheus', 'targets.json'));
    const got = readInChunks(bytes, 'data.activeTargets[*]', [...Array(bytes.length).keys()]);
    const doc = JSON.parse(bytes.toString('utf8')) as { data: { activeTargets: unknown[] } };
    expect(got.elements).toEqual(doc.data.activeTargets.map((t, i) => [[i], t]));
    expect(got.rest).toEqual({ ...doc, data: { ...doc.data, activeTargets: [] } });
  });

  it('arbitrary documents, every chunking, with every kind of spacing', () => {
    fc.assert(
      fc.property(formatted, fc.array(fc.nat(), { maxLength: 30 }), ({ select, text }, rawCuts) => {
        const bytes = Buffer.from(text);
        const want = expectedSelection(text, select);
        const got = readInChunks(bytes, select, rawCuts.map((c) => c % (bytes.length + 1)));
        expect(byKeys(got.elements)).toEqual(byKeys(want.elements));
        expect(got.rest).toEqual(want.rest);
      }),
      { numRuns: 500 },
    );
  });

  it('a text JSON.parse refuses is refused (a JsonStreamError naming a byte), one it takes is taken: mutated real and arbitrary answers', () => {
    const real = WIRE.map(([file, select]) => ({ select, text: readFileSync(fixturePath(...file), 'utf8') }));
    const texts = fc.oneof(fc.constantFrom(...real), formatted);
    const mutation = fc.record({ at: fc.nat(), what: fc.constantFrom('delete', 'insert', 'replace'), char: fc.constantFrom(...'{}[]",:\\ 0123456789.eE+-tfnaulrx\u0001\n') });
    fc.assert(
      fc.property(texts, fc.array(mutation, { minLength: 1, maxLength: 3 }), fc.array(fc.nat(), { maxLength: 10 }), ({ select, text }, mutations, rawCuts) => {
        let t = text;
        for (const m of mutations) {
          const at = m.at % (t.length + 1);
          t = m.what === 'delete' ? t.slice(0, at) + t.slice(at + 1) : m.what === 'insert' ? t.slice(0, at) + m.char + t.slice(at) : t.slice(0, at) + m.char + t.slice(at + 1);
        }
        let parsed = true;
        try {
          JSON.parse(t);
        } catch {
          parsed = false;
        }
        const bytes = Buffer.from(t);
        const cuts = rawCuts.map((c) => c % (bytes.length + 1));
        if (parsed) {
          // Taken, not compared: a mutation may name a member twice, which JSON.parse keeps once
          // and a stream hands over twice (the properties above compare unmutated documents).
          expect(() => readInChunks(bytes, select, cuts)).not.toThrow();
        } else {
          let error: unknown;
          try {
            readInChunks(bytes, select, cuts);
          } catch (e) {
            error = e;
          }
          expect(error, `accepted ${JSON.stringify(t)}`).toBeInstanceOf(JsonStreamError);
          expect((error as JsonStreamError).message).toMatch(/at byte \d+/);
          expect((error as JsonStreamError).offset).toBeLessThanOrEqual(bytes.length);
        }
      }),
      { numRuns: 1500 },
    );
  });

  it('a byte order mark is skipped however the body is cut; strings keep their escapes and non-ASCII text across cuts', () => {
    const text = '\uFEFF[{"a":"x\\"y\\\\","é":"日本\\u00e9"},"\\\\",2]';
    const bytes = Buffer.from(text);
    for (let cut = 0; cut <= bytes.length; cut += 1) {
      for (let second = cut; second <= bytes.length; second += 3) {
        expect(readInChunks(bytes, '[*]', [cut, second]).elements.map(([, e]) => e)).toEqual(JSON.parse(text.slice(1)) as unknown[]);
      }
    }
  });

  it('"__proto__" stays a member of the rest, as JSON.parse makes it', () => {
    const { rest } = readInChunks(Buffer.from('{"__proto__":{"polluted":1},"items":[1]}'), 'items[*]', []);
    expect(Object.getPrototypeOf(rest)).toBe(Object.prototype);
    expect(Object.keys(rest as object)).toEqual(['__proto__', 'items']);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});

describe('errors and bounds', () => {
  const read = (text: string, select = '[*]', options: Parameters<typeof readInChunks>[3] = {}) => () => readInChunks(Buffer.from(text), select, [3, 7], options);

  it('names what is wrong and the byte', () => {
    expect(read('[1 2]')).toThrow('unexpected "2", expected "," or "]" at byte 3');
    expect(read('[1,]')).toThrow('unexpected "]", expected a value at byte 3');
    expect(read('{"a":1}', 'a[*]')).not.toThrow();
    expect(read('{"a" 1}', 'a[*]')).toThrow('unexpected "1", expected ":" at byte 5');
    expect(read('{a:1}', 'a[*]')).toThrow('unexpected "a", expected a member name or "}" at byte 1');
    expect(read('[1] x')).toThrow('unexpected "x" after the end of the document at byte 4');
    expect(read('[{"a":tru}]')).toThrow(/in the value "\{\\"a\\":tru\}" at byte 1/);
    expect(read('')).toThrow('the body is empty (at byte 0): expected JSON');
    expect(read('[{"a":1}')).toThrow('the body ended before the document did (at byte 8): expected JSON');
    expect(read('[{"a":"b')).toThrow('the body ended inside a value (at byte 8): expected JSON');
  });

  it('one element larger than maxBytes fails as soon as it is, naming the path and where it starts', () => {
    const big = `[1,{"a":"${'x'.repeat(5000)}"},2]`;
    expect(read(big, '[*]', { maxBytes: 5008 })).not.toThrow();
    const error = (() => {
      try {
        readInChunks(Buffer.from(big), '[*]', [10, 100, 1000], { maxBytes: 1000 });
      } catch (e) {
        return e as JsonStreamError;
      }
      return undefined;
    })();
    expect(error?.message).toBe('an element of [*] starting at byte 3 is larger than 1000 bytes');
    expect(error?.kind).toBe('bytes');
  });

  it('the document around the elements is bounded too (a huge member next to the list)', () => {
    const text = `{"junk":"${'x'.repeat(3000)}","items":[1,2]}`;
    expect(read(text, 'items[*]', { maxBytes: 1000 })).toThrow(/^the document around items\[\*\] is larger than 1000 bytes/);
    // Many small elements are not "the document around" them: only their own size counts.
    expect(readInChunks(Buffer.from(`[${Array(2000).fill('{"a":1}').join(',')}]`), '[*]', [], { maxBytes: 100 }).elements).toHaveLength(2000);
  });

  it('more elements than maxElements fail; nesting deeper than maxDepth fails without recursion', () => {
    expect(read(`[${Array(11).fill(0).join(',')}]`, '[*]', { maxElements: 10 })).toThrow('more than 10 elements at [*] (at byte 21)');
    expect(read(`[${Array(10).fill(0).join(',')}]`, '[*]', { maxElements: 10 })).not.toThrow();
    const deep = `[${'['.repeat(100_000)}${']'.repeat(100_000)}]`;
    expect(read(deep, '[*]', { maxDepth: 512, maxBytes: 1e9 })).toThrow('a value nested deeper than 512 levels at byte 513');
    expect(read(`[${'['.repeat(512)}${']'.repeat(512)}]`, '[*]', { maxDepth: 512 })).not.toThrow();
  });

  it('paths: names, .*, [*]; anything else is refused', () => {
    expect(parseSelector('data.servicelist.*.*')).toEqual([{ kind: 'name', name: 'data' }, { kind: 'name', name: 'servicelist' }, { kind: 'member' }, { kind: 'member' }]);
    expect(parseSelector('[*]')).toEqual([{ kind: 'item' }]);
    expect(parseSelector('result[*]')).toEqual([{ kind: 'name', name: 'result' }, { kind: 'item' }]);
    expect(() => parseSelector('')).toThrow('expected at least one step');
    expect(() => parseSelector('a..b')).toThrow('cannot read it at character 1');
    expect(() => parseSelector('a[0]')).toThrow('cannot read it at character 1');
  });
});

describe('elements offered as bytes first (onRaw)', () => {
  it("each element's bytes are its text exactly, however the body is cut; one taken is not parsed, the others are", () => {
    fc.assert(
      fc.property(formatted, fc.array(fc.nat(), { maxLength: 30 }), fc.nat(), ({ select, text }, rawCuts, seed) => {
        const bytes = Buffer.from(text);
        const want = expectedSelection(text, select);
        const raw: [SelectKey[], string][] = [];
        const parsed: [SelectKey[], unknown][] = [];
        // Takes every other element (which ones depends on the seed).
        let n = seed;
        const reader = new JsonSelectStream({
          select,
          onElement: (e, keys) => parsed.push([[...keys], e]),
          onRaw: (b, keys) => {
            raw.push([[...keys], b.toString('utf8')]);
            n += 1;
            return n % 2 === 0;
          },
        });
        const cuts = [...new Set(rawCuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
        let from = 0;
        for (const to of [...cuts, bytes.length]) {
          reader.write(bytes.subarray(from, to));
          from = to;
        }
        expect(reader.end()).toEqual(want.rest);
        // Every element was offered, as text JSON.parse reads as the element.
        expect(byKeys(raw.map(([keys, t]) => [keys, JSON.parse(t)]))).toEqual(byKeys(want.elements));
        // Those not taken were parsed, and only those.
        const notTaken = raw.filter((_, i) => (seed + i + 1) % 2 !== 0);
        expect(byKeys(parsed)).toEqual(byKeys(notTaken.map(([keys, t]) => [keys, JSON.parse(t)])));
      }),
      { numRuns: 300 },
    );
  });

  it('an element taken raw counts towards maxElements; what onRaw throws stops the stream', () => {
    const reader = new JsonSelectStream({ select: '[*]', maxElements: 2, onElement: () => undefined, onRaw: () => true });
    expect(() => reader.write(Buffer.from('[1,2,3]'))).toThrow(/more than 2 elements/);
    const failing = new JsonSelectStream({
      select: '[*]',
      onElement: () => undefined,
      onRaw: () => {
        throw new Error('refused');
      },
    });
    expect(() => failing.write(Buffer.from('[{"a":1}]'))).toThrow('refused');
  });
});

describe('memberSpan: where a member of an object is in its text', () => {
  const span = (text: string, field: string): string | undefined => {
    const b = Buffer.from(text);
    const at = memberSpan(b, field);
    return at === undefined ? undefined : b.toString('utf8', at[0], at[1]);
  };

  it("the object's own member, not one nested inside; the last of a name written twice; names with escapes decoded", () => {
    expect(span('{"metadata":{"id":"x"},"links":[{"id":"y"}],"id":"z"}', 'id')).toBe('"z"');
    expect(span('{"id":"first","n":1,"id" : "second"}', 'id')).toBe('"second"');
    expect(span(' {\n "\\u0069d"\t:\r\n 42 , "b":[1,{"c":"}"}]}', 'id')).toBe('42');
    expect(span('{"name":"a \\"id\\": 1","id":true}', 'id')).toBe('true');
    expect(span('{"é":"x","id":null}', 'é')).toBe('"x"');
    expect(span('{"ids":1,"i":2}', 'id')).toBeUndefined();
    expect(span('{}', 'id')).toBeUndefined();
    expect(span('[{"id":1}]', 'id')).toBeUndefined();
    expect(span('"id"', 'id')).toBeUndefined();
    // Not JSON: undefined, never a guess.
    expect(span('{"id" 1}', 'id')).toBeUndefined();
    expect(span('{"id":"open', 'id')).toBeUndefined();
    expect(span('{"a":[1,2', 'id')).toBeUndefined();
    expect(span('{"id":1;', 'id')).toBeUndefined();
    expect(span('{"id":}', 'id')).toBeUndefined();
  });

  it('arbitrary objects, with any spacing: the member JSON.parse reads, or undefined when it has none', () => {
    const field = fc.constantFrom('id', 'a', '', 'é', '__proto__', 'x y');
    fc.assert(
      fc.property(fc.dictionary(fc.oneof(field, fc.string()), fc.jsonValue()), field, fc.constantFrom(undefined, 0, 1, '\t', ' \r\n'), (object, name, indent) => {
        const text = JSON.stringify(object, null, indent);
        const parsed = JSON.parse(text) as Record<string, unknown>;
        const got = span(text, name);
        if (!Object.hasOwn(parsed, name)) expect(got).toBeUndefined();
        else expect(JSON.parse(got!)).toEqual(parsed[name]);
      }),
      { numRuns: 1000 },
    );
  });
});
