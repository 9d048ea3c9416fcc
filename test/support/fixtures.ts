import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root (the folder holding package.json), from src or from dist. */
function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('cannot find the repository root above ' + fileURLToPath(import.meta.url));
    dir = up;
  }
  return dir;
}

/** Fixtures this project keeps: its own recordings, and `shared/`, a copy of ../shared/fixtures. */
export const LOCAL_FIXTURES = join(repoRoot(), 'test', 'fixtures');

/** ../shared/fixtures beside the repository (absent in a clone elsewhere). */
export const BESIDE = resolve(repoRoot(), '../shared/fixtures');

/**
 * The shared fixtures folder: $SYNCHRONIZER_FIXTURES; else ../shared/fixtures beside the
 * repository, when it is there; else the repository's copy of it (test/fixtures/shared), so a
 * clone anywhere runs its tests.
 */
export const FIXTURES = process.env.SYNCHRONIZER_FIXTURES ?? (existsSync(BESIDE) ? BESIDE : join(LOCAL_FIXTURES, 'shared'));

/**
 * Path of a fixture file, e.g. fixturePath('wire', 'alertmanager-v2-get-alerts.json'): in the
 * shared fixtures, or else in the project's own recordings under test/fixtures.
 */
export function fixturePath(...parts: string[]): string {
  const shared = join(FIXTURES, ...parts);
  if (existsSync(shared)) return shared;
  const local = join(LOCAL_FIXTURES, ...parts);
  return existsSync(local) ? local : shared;
}

/** A fixture file parsed as JSON. */
export function readFixture<T = unknown>(...parts: string[]): T {
  return JSON.parse(readFileSync(fixturePath(...parts), 'utf8')) as T;
}
