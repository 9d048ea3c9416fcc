/**
 * A docker daemon for the Dockerfile test: the one the environment points at when it answers,
 * else (as root, with Debian's docker.io installed) a private dockerd started here without
 * systemd — its own socket, data and exec roots under /var/tmp, no bridge and no iptables rules,
 * so it changes nothing on the machine's network; containers use the host's network and the test
 * binds loopback only. Its data root is kept between runs (one daemon at a time, by a lock) so
 * that the base image and the build's layers are reused.
 */
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { type RunningProgram, startProgram } from './program.js';

const run = promisify(execFile);
const DOCKERD = '/usr/sbin/dockerd';
const HOME = '/var/tmp/synchronizer-dockerd';

function answers(env: NodeJS.ProcessEnv): boolean {
  try {
    execFileSync('docker', ['info', '--format', '{{.ServerVersion}}'], { stdio: 'ignore', timeout: 10_000, env });
    return true;
  } catch {
    return false;
  }
}

function has(command: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** What is missing for a daemon (undefined: one answers, or a private one can be started). */
export function dockerMissing(): string | undefined {
  if (!has('docker')) return 'the docker command (Debian package docker.io)';
  if (answers(process.env)) return undefined;
  if (!existsSync(DOCKERD)) return 'a docker daemon: none answers and dockerd is not installed (Debian package docker.io)';
  if (process.getuid?.() !== 0) return 'a docker daemon: none answers, and a private dockerd needs root';
  return undefined;
}

export interface Docker {
  /** The environment of docker commands (DOCKER_HOST of a private daemon). */
  env: NodeJS.ProcessEnv;
  docker(args: readonly string[], options?: { cwd?: string }): Promise<string>;
  stop(): Promise<void>;
}

/** A daemon that answers: the environment's, or a private one. */
export async function startDocker(): Promise<Docker> {
  let daemon: RunningProgram | undefined;
  let env: NodeJS.ProcessEnv = process.env;
  if (!answers(process.env)) {
    mkdirSync(HOME, { recursive: true });
    const socket = join(HOME, 'docker.sock');
    env = { ...process.env, DOCKER_HOST: `unix://${socket}` };
    // flock: a second run waits for the first's daemon to end rather than share its data root.
    daemon = await startProgram(
      '/usr/bin/flock',
      ['-w', '900', join(HOME, 'lock'), DOCKERD, '--data-root', join(HOME, 'root'), '--exec-root', join(HOME, 'exec'), '--pidfile', join(HOME, 'dockerd.pid'), '-H', `unix://${socket}`, '--bridge=none', '--iptables=false', '--ip6tables=false'],
      { pkg: 'util-linux', ready: async () => answers(env), timeoutMs: 900_000 },
    );
  }
  const docker = async (args: readonly string[], options: { cwd?: string } = {}): Promise<string> => {
    try {
      // The legacy builder: the Dockerfile needs nothing of BuildKit, and the buildx plugin may be absent.
      return (await run('docker', [...args], { env: { ...env, DOCKER_BUILDKIT: '0' }, maxBuffer: 64 << 20, ...options })).stdout;
    } catch (e) {
      const { stdout, stderr } = e as { stdout?: string; stderr?: string };
      throw new Error(`docker ${args.join(' ')} failed:\n${(stdout ?? '').slice(-4000)}\n${(stderr ?? '').slice(-4000)}`);
    }
  };
  return { env, docker, stop: async () => daemon?.stop() };
}
