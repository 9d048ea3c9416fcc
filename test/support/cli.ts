/** The real built CLI as a child process, for the tests that run it the way an operator does. */
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { EntityEvent } from '../../src/model.js';
import { waitFor } from './wait.js';

export const root = fileURLToPath(new URL('../..', import.meta.url));
export const bin = join(root, 'bin', 'synchronizer.js');

/** A fresh folder under the repository's .tmp/ (the caller removes it). */
export function cliWorkdir(prefix = 'cli-'): string {
  mkdirSync(join(root, '.tmp'), { recursive: true });
  return mkdtempSync(join(root, '.tmp', prefix));
}

/** The real CLI as a child process, with its stdout read line by line as events. */
export class Cli {
  readonly child: ChildProcessWithoutNullStreams;
  readonly events: EntityEvent[] = [];
  /** Lines that began as JSON but were not whole (the process was killed while writing one). */
  readonly torn: string[] = [];
  stderr = '';
  /** Every stdout line that is not an event (--version, --help). */
  stdout = '';
  private waiters: Array<() => void> = [];
  readonly exited: Promise<number | null>;

  constructor(args: string[], env: NodeJS.ProcessEnv = process.env) {
    this.child = spawn(process.execPath, [bin, ...args], { cwd: root, env });
    createInterface({ input: this.child.stdout }).on('line', (line) => {
      if (!line.startsWith('{')) {
        this.stdout += `${line}\n`;
        return;
      }
      try {
        this.events.push(JSON.parse(line) as EntityEvent);
      } catch {
        // A line cut off by kill -9: the crash test counts them.
        this.torn.push(line);
      }
      this.waiters.forEach((w) => w());
    });
    this.child.stderr.on('data', (d: Buffer) => (this.stderr += d.toString()));
    // 'close', not 'exit': every line of stdout and stderr has been read by then.
    this.exited = new Promise((resolve) => this.child.on('close', (code) => resolve(code)));
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

  /** The listener's `host:port`, from the log line that announces it. */
  listenAddress(timeoutMs = 15_000): Promise<string> {
    return waitFor('the CLI to log its listen address', () => /"msg":"serving health and metrics","listen":"([^"]+)"/.exec(this.stderr)?.[1], {
      timeoutMs,
      context: () => this.stderr,
    });
  }
}

/** CLIs and folders of one test file, killed and removed after each test. */
export class CliRun {
  private readonly running: Cli[] = [];
  private readonly dirs: string[] = [];

  cli(...args: string[]): Cli {
    return this.cliWithEnv(process.env, ...args);
  }

  cliWithEnv(env: NodeJS.ProcessEnv, ...args: string[]): Cli {
    const c = new Cli(args, env);
    this.running.push(c);
    return c;
  }

  /** A fresh folder under .tmp/ in the repository. */
  workdir(prefix = 'cli-'): string {
    const dir = cliWorkdir(prefix);
    this.dirs.push(dir);
    return dir;
  }

  cleanup(): void {
    this.running.splice(0).forEach((c) => c.child.kill('SIGKILL'));
    this.dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true }));
  }
}
