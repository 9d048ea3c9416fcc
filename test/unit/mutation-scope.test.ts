import { describe, expect, it } from 'vitest';
import mutationVitest from '../../vitest.mutation.config.js';

/**
 * `npm run mutate` is too slow for every CI run, so this fast check runs with the normal tests
 * instead: the mutation scope and the score targets in stryker.config.mjs may grow, never shrink
 * below what was committed here, and every named mapping function still exists (the config
 * throws otherwise). Growing the scope: add to the config; shrinking it: change this file too,
 * in the same commit, and say why.
 */

const FILES = [
  'operators/concatEach.ts',
  'operators/diffAgainstBaseline.ts',
  'operators/normalizeEntity.ts',
  'operators/ofAction.ts',
  'operators/ofType.ts',
  // Stand-ins: kept and dropped records in place of mapped ones (session 12).
  'operators/standIns.ts',
  'src/hash.ts',
  'src/poll.ts',
  // The hub: src/synchronizer.ts composes its parts in src/hub/; src/marks.ts keeps its values on the objects it emits.
  'src/synchronizer.ts',
  'src/marks.ts',
  'src/hub/baseline.ts',
  'src/hub/commit.ts',
  'src/hub/health.ts',
  'src/hub/intake.ts',
  'src/hub/kept.ts',
  'src/hub/metrics.ts',
  'src/hub/ownership.ts',
  'src/hub/register.ts',
  'src/hub/replay.ts',
  'src/hub/slicing.ts',
  'sources/openstack/fields.ts',
  'sources/openstack/instance.ts',
];

const FUNCTIONS: Record<string, string[]> = {
  'sources/openstack/nova.ts': ['pickServer', 'serverDraft', 'computeHosts', 'zoneOfHosts', 'zoneDraft', 'hypervisorDraft', 'novaRecordDraft'],
  'sources/openstack/neutron.ts': ['pickPort', 'defined', 'networkDraft', 'portInstance', 'portDraft', 'neutronRecordDraft'],
  'sources/openstack/cinder.ts': ['pickVolume', 'apiVolumeFacts', 'volumeDraft', 'map'],
  'sources/openstack/heat.ts': ['projectFromLinks', 'apiStackFacts', 'stackDraft', 'map'],
  'sources/openstack/notifications.ts': [
    'idOf',
    'optString',
    'novaData',
    'legacyImage',
    'legacyInstanceFacts',
    'versionedInstanceFacts',
    'neutronRecord',
    'volumeFacts',
    'stackFacts',
    'notificationDraft',
  ],
  'sources/alertmanager.ts': ['alertDraft', 'map'],
  'sources/nagios.ts': ['nagiosDraft', 'stableRecords', 'map'],
  'sources/static.ts': ['map'],
};

const TARGETS: Record<string, number> = {
  'operators/': 90,
  'src/hash.ts': 90,
  'src/poll.ts': 80,
  'src/synchronizer.ts': 80,
  'src/marks.ts': 80,
  'src/hub/': 80,
  'sources/': 80,
};

interface StrykerConfigModule {
  mutatedFiles: string[];
  mutatedFunctions: Record<string, string[]>;
  mutationTargets: Record<string, number>;
  mutate: string[];
  checkerProject: (entries: string[]) => { extends: string; include: string[]; files: string[] };
  default: {
    mutate: string[];
    testRunner: string;
    checkers: string[];
    concurrency: number;
    incremental: boolean;
    ignoreStatic: boolean;
    vitest: { configFile: string };
  };
}

// A computed specifier: the config is plain JS (Stryker loads it), with no declarations for tsc.
const configUrl = new URL('../../stryker.config.mjs', import.meta.url).href;
const config = (await import(configUrl)) as StrykerConfigModule;

describe('the mutation testing scope (stryker.config.mjs)', () => {
  it('still mutates every file committed to the scope, whole', () => {
    for (const file of FILES) expect(config.mutatedFiles, file).toContain(file);
    for (const file of FILES) expect(config.mutate, file).toContain(file);
    // No exclusion pattern can take a file back out.
    expect(config.mutate.filter((p) => p.startsWith('!'))).toEqual([]);
  });

  it('still mutates every mapping function committed to the scope, and each resolves to a range in its file', () => {
    for (const [file, names] of Object.entries(FUNCTIONS)) {
      for (const name of names) expect(config.mutatedFunctions[file], `${file} ${name}`).toContain(name);
      const ranges = config.mutate.filter((p) => p.startsWith(`${file}:`));
      expect(ranges.length, file).toBeGreaterThanOrEqual(names.length);
      for (const range of ranges) expect(range).toMatch(/^[\w/.-]+\.ts:\d+:\d+-\d+:\d+$/);
    }
  });

  it('holds every part to at least its committed target, and every mutated file to one', () => {
    for (const [part, target] of Object.entries(TARGETS)) expect(config.mutationTargets[part], part).toBeGreaterThanOrEqual(target);
    const files = [...config.mutatedFiles, ...Object.keys(config.mutatedFunctions)];
    const covered = (file: string): boolean => Object.keys(config.mutationTargets).some((k) => (k.endsWith('/') ? file.startsWith(k) : file === k));
    expect(files.filter((f) => !covered(f))).toEqual([]);
  });

  it('runs the unit tests only, type-checks mutants, reruns incrementally and stays within two processes', () => {
    expect(config.default.testRunner).toBe('vitest');
    expect(config.default.vitest.configFile).toBe('vitest.mutation.config.ts');
    expect(config.default.checkers).toContain('typescript');
    expect(config.default.incremental).toBe(true);
    expect(config.default.concurrency).toBeLessThanOrEqual(2);
    // Each mutant's run gets fresh modules of ours: shared ones carry one mutant's state into the
    // next. Either vitest isolates the files, or the setup file re-evaluates our modules per file.
    const fresh = mutationVitest.test?.isolate !== false || [mutationVitest.test?.setupFiles ?? []].flat().includes('test/support/fresh-modules.ts');
    expect(fresh, 'isolate: false without test/support/fresh-modules.ts').toBe(true);
    expect(mutationVitest.test?.include).toEqual(['test/unit/**/*.test.ts']);
  });

  it("type-checks each mutant in a project of its part's files, every one of them", () => {
    const project = config.checkerProject(config.mutate);
    expect(project.extends).toBe('../tsconfig.stryker.json');
    expect(project.include).toEqual([]);
    const files = [...config.mutatedFiles, ...Object.keys(config.mutatedFunctions)].map((f) => `../${f}`);
    expect([...project.files].sort()).toEqual([...files].sort());
  });
});
