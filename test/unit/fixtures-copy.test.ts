import { readFileSync, readdirSync, statSync } from 'node:fs';
import { existsSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BESIDE, LOCAL_FIXTURES } from '../support/fixtures.js';

/** Every file below `dir`, as paths relative to it. */
function files(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((f) => statSync(join(dir, f)).isFile())
    .sort();
}

/**
 * A clone without ../shared beside it runs on test/fixtures/shared: when ../shared is here, that
 * copy must hold every shared fixture unchanged, or the tests pass here and fail in such a clone.
 */
describe('the copy of the shared fixtures (test/fixtures/shared)', () => {
  it.skipIf(!existsSync(BESIDE))('holds every file of ../shared/fixtures, unchanged (refresh: cp -r ../shared/fixtures/. test/fixtures/shared/)', () => {
    const copy = join(LOCAL_FIXTURES, 'shared');
    const missing = files(BESIDE).filter((f) => !existsSync(join(copy, f)));
    expect(missing).toEqual([]);
    const changed = files(BESIDE).filter((f) => !readFileSync(join(BESIDE, f)).equals(readFileSync(join(copy, f))));
    expect(changed.map((f) => relative('.', f))).toEqual([]);
  });
});
