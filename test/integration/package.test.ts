/**
 * The package as users get it: `npm pack` (which runs prepack, the build), the tarball installed
 * into a fresh project, and used there as a library and as a CLI.
 *
 * It packs a copy of the sources, never the checkout itself: prepack's build rewrites dist/ file by
 * file, and the CLI tests running beside this one would load a half-written module (CI saw
 * `./metrics.js does not provide an export named createServiceMetrics`).
 */
import { execFile } from 'node:child_process';
import { copyFileSync, cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { root } from '../support/cli.js';

const run = promisify(execFile);
const npm = (args: string[], cwd: string): Promise<{ stdout: string; stderr: string }> =>
  run('npm', [...args, '--no-audit', '--no-fund', '--loglevel=error'], { cwd, maxBuffer: 64 << 20 });

/** What the build and the package read, copied into `to` (node_modules linked, dist/ left out). */
function copySources(to: string): void {
  for (const entry of ['package.json', 'tsconfig.json', 'tsconfig.build.json', 'LICENSE', 'CHANGELOG.md', 'README.md', 'src', 'operators', 'sources', 'bin', 'web', 'docs', 'test/bench', 'test/support']) {
    cpSync(join(root, entry), join(to, entry), { recursive: true, filter: (from) => !from.startsWith(join(root, 'docs', 'api')) });
  }
  symlinkSync(join(root, 'node_modules'), join(to, 'node_modules'), 'dir');
}

describe('the npm package', () => {
  const dir = mkdtempSync(join(tmpdir(), 'synchronizer-pack-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('packs without tests or dangling source maps, installs into a new project, and works there', { timeout: 240_000 }, async () => {
    const sources = join(dir, 'sources');
    copySources(sources);
    const { stdout } = await npm(['pack', '--json', '--pack-destination', dir], sources);
    const [packed] = JSON.parse(stdout) as Array<{ filename: string; files: Array<{ path: string }>; size: number }>;
    const files = packed!.files.map((f) => f.path);
    expect(files).toEqual(expect.arrayContaining(['LICENSE', 'CHANGELOG.md', 'README.md', 'package.json', 'bin/synchronizer.js', 'dist/src/index.js', 'dist/src/index.d.ts', 'dist/operators/index.js', 'dist/sources/index.js', 'web/index.html', 'docs/examples/demo.yaml']));
    expect(files.filter((f) => /(^|\/)test\/|\.test\.|\.map$|^src\/|\.ts$/.test(f) && !f.endsWith('.d.ts'))).toEqual([]);

    const project = join(dir, 'project');
    await run('mkdir', ['-p', project]);
    writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'uses-synchronizer', version: '1.0.0', private: true, type: 'module' }));
    await npm(['install', '--prefer-offline', join(dir, packed!.filename)], project);
    // rxjs is a peer: npm installs it beside the package, and both use the same copy.
    const installed = JSON.parse(readFileSync(join(project, 'node_modules', 'synchronizer', 'package.json'), 'utf8')) as { peerDependencies: Record<string, string> };
    expect(Object.keys(installed.peerDependencies)).toEqual(['rxjs']);
    // No source map is shipped, so no shipped file may name one (a debugger or bundler would look for it).
    const named = files.filter((f) => /\.(js|d\.ts)$/.test(f) && readFileSync(join(project, 'node_modules', 'synchronizer', f), 'utf8').includes('sourceMappingURL'));
    expect(named).toEqual([]);

    writeFileSync(
      join(project, 'use.js'),
      `import { of } from 'rxjs';
import { createSynchronizer } from 'synchronizer';
import { ofType } from 'synchronizer/operators';
const source = {
  name: 'static',
  types: ['nova.instance'],
  signal$: of({ kind: 'snapshot', source: 'static', types: ['nova.instance'], at: new Date().toISOString(), records: [{ id: 'vm-1', status: 'active' }] }),
  map: (r) => ({ type: 'nova.instance', id: r.id, state: r.status }),
};
const sync = createSynchronizer({ sources: [source] });
sync.entity$.pipe(ofType('nova.instance')).subscribe((e) => console.log(e.action, e.entity.key, e.entity.state));
sync.start();
`,
    );
    const used = await run(process.execPath, ['use.js'], { cwd: project });
    expect(used.stdout).toBe('create nova.instance:vm-1 ACTIVE\n');

    const bin = join(project, 'node_modules', '.bin', 'synchronizer');
    const version = await run(bin, ['--version'], { cwd: project });
    expect(version.stdout).toBe(`synchronizer ${(JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version}\n`);
    const demo = join(project, 'node_modules', 'synchronizer', 'docs', 'examples', 'demo.yaml');
    const check = await run(bin, ['--check', '--config', demo], { cwd: project });
    expect(check.stderr).toContain('is valid (1 sources)');
  });

  it('has metadata npm takes as written: `npm pkg fix` changes nothing (npm publish would otherwise correct it, e.g. drop the bin)', { timeout: 60_000 }, async () => {
    const copy = join(dir, 'fix');
    mkdirSync(join(copy, 'bin'), { recursive: true });
    const original = readFileSync(join(root, 'package.json'), 'utf8');
    writeFileSync(join(copy, 'package.json'), original);
    copyFileSync(join(root, 'bin', 'synchronizer.js'), join(copy, 'bin', 'synchronizer.js'));
    await npm(['pkg', 'fix'], copy);
    expect(JSON.parse(readFileSync(join(copy, 'package.json'), 'utf8'))).toEqual(JSON.parse(original));
  });
});
