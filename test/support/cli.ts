/** The real built CLI as a child process, for the tests that run it the way an operator does. */
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { EntityEvent } from '../../src/model.js';

export const root = fileURLToPath(new URL('../..', import.meta.url));
export const bin = join(root, 'bin', 'synchronizer.js');

/** The CLI with its stdout read line by line as events. */
export class Cli {
  readonly child: ChildProcessWithoutNullStreams;
  readonly events: EntityEvent[] = [];
  /** Lines that were not whole JSON (the process was killed while writing one). */
  readonly torn: string[] = [];
  stderr = '';
  private waiters: Array<() => void> = [];
  readonly exited: Promise<number | null>;

  constructor(args: string[]) {
    this.child = spawn(process.execPath, [bin, ...args], { cwd: root });
    createInterface({ input: this.child.stdout }).on('line', (line) => {
      try {
        this.events.push(JSON.parse(line) as EntityEvent);
      } catch {
        // A line cut off by kill -9: the crash test counts them.
        this.torn.push(line);
      }
      this.waiters.forEach((w) => w());
    });
    this.child.stderr.on('data', (d: Buffer) => (this.stderr += d.toString()));
    this.exited = new Promise((resolve) => this.child.on('exit', (code) => resolve(code)));
  }

  /** Waits until `count` events have arrived (or fails with what arrived). */
  async waitFor(count: number, timeoutMs = 15_000): Promise<EntityEvent[]> {
    const deadline = Date.now() + timeoutMs;
    while (this.events.length < count) {
      if (Date.now() > deadline) throw new Error(`expected ${count} events, got ${this.events.length}; stderr:\n${this.stderr}`);
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, 100);
      });
    }
    return this.events.slice(0, count);
  }
}

/** CLIs and folders of one test file, killed and removed after each test. */
export class CliRun {
  private readonly running: Cli[] = [];
  private readonly dirs: string[] = [];

  cli(...args: string[]): Cli {
    const c = new Cli(args);
    this.running.push(c);
    return c;
  }

  /** A fresh folder under .tmp/ in the repository. */
  workdir(prefix = 'cli-'): string {
    mkdirSync(join(root, '.tmp'), { recursive: true });
    const dir = mkdtempSync(join(root, '.tmp', prefix));
    this.dirs.push(dir);
    return dir;
  }

  cleanup(): void {
    this.running.splice(0).forEach((c) => c.child.kill('SIGKILL'));
    this.dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true }));
  }
}
