import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createSources, parseConfig } from '../../src/config.js';
import { LOCAL_TYPES } from '../../src/scope.js';

const docs = (file: string): string => readFileSync(join(import.meta.dirname, '../../docs', file), 'utf8');

describe('scope (config and docs)', () => {
  it('is a key of every source: the created source carries it, its plugin never sees it as an option', async () => {
    const config = await parseConfig(
      { sources: [{ name: 'topology', use: 'static', scope: 'region-a', file: './topology.yaml' }, { name: 'plain', use: 'static', file: './topology.yaml' }], sinks: [] },
      process.cwd(),
    );
    expect(config.sources.map((s) => s.scope)).toEqual(['region-a', undefined]);
    expect(createSources(config.sources).map((s) => s.scope)).toEqual(['region-a', undefined]);
  });

  it('is refused with the path of the field when it cannot be part of a key', async () => {
    for (const bad of ['a/b', 'a:b', ' a', 'x'.repeat(64)]) {
      await expect(parseConfig({ sources: [{ name: 's', use: 'static', file: 'x.yaml' }, { name: 't', use: 'static', file: 'x.yaml', scope: bad }] }, process.cwd())).rejects.toThrow(
        /^sources\[1\]\.scope: a scope is 1 to 63 letters, digits/,
      );
    }
    for (const bad of ['', [], {}]) await expect(parseConfig({ sources: [{ name: 't', use: 'static', file: 'x.yaml', scope: bad }] }, process.cwd())).rejects.toThrow(/^sources\[0\]\.scope: /);
  });

  it('docs/scopes.md lists exactly the types a scope qualifies', () => {
    const table = docs('scopes.md').split('## Which ids are qualified')[1]!.split('\n## ')[0]!;
    const listed = [...table.matchAll(/^\| `([a-z.]+)`/gm)].map((m) => m[1]);
    expect(listed.sort()).toEqual([...LOCAL_TYPES].sort());
  });
});
