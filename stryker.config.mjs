// @ts-check
/**
 * Mutation testing (StrykerJS): `npm run mutate`. docs/testing.md, "Mutation testing", says what
 * this covers, how to read the result and why each surviving mutant is equivalent.
 *
 * The scope and the targets are data exported from here, so that test/unit/mutation-scope.test.ts
 * can check on every `npm test` that neither shrank, and scripts/mutation-score.mjs can hold each
 * part of the scope to its target.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import ts from 'typescript';

/**
 * Whole files mutated. The hub is src/synchronizer.ts, composing its parts in src/hub/, and the
 * marks it keeps on what it emits (src/marks.ts, which diffAgainstBaseline uses too).
 */
export const mutatedFiles = [
  'operators/concatEach.ts',
  'operators/diffAgainstBaseline.ts',
  'operators/normalizeEntity.ts',
  'operators/ofAction.ts',
  'operators/ofType.ts',
  'operators/standIns.ts',
  'src/hash.ts',
  'src/poll.ts',
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

/**
 * The mapping functions of the sources (record → entity draft, the `pick` of a page, payload →
 * facts), by name: the transport code around them (fetching, AMQP, options) is not mutated. A
 * name is a function, a `const`, or an object member (`map: …`) declared anywhere in the file;
 * a name that is no longer there fails the config, so a rename cannot drop a function silently.
 */
export const mutatedFunctions = {
  'sources/openstack/nova.ts': ['SERVER_PICK', 'pickServer', 'serverDraft', 'computeHosts', 'zoneOfHosts', 'zoneDraft', 'hypervisorDraft', 'novaRecordDraft'],
  'sources/openstack/neutron.ts': ['PORT_PICK', 'pickPort', 'defined', 'networkDraft', 'portInstance', 'portDraft', 'neutronRecordDraft'],
  'sources/openstack/cinder.ts': ['VOLUME_PICK', 'pickVolume', 'apiVolumeFacts', 'volumeDraft', 'map'],
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

/**
 * Minimum mutation score per part of the scope, % (a path ending in `/` is a folder). Every
 * mutated file must fall under one; scripts/mutation-score.mjs fails `npm run mutate` below it.
 */
export const mutationTargets = {
  'operators/': 90,
  'src/hash.ts': 90,
  'src/poll.ts': 80,
  'src/synchronizer.ts': 80,
  // The hub's mechanism for values kept on the objects it emits: held to the hub's target.
  'src/marks.ts': 80,
  'src/hub/': 80,
  'sources/': 80,
};

/** Line:column ranges (Stryker's `file:L:C-L:C`, lines from 1, columns from 0) of the named declarations. */
export function functionRanges(file, names) {
  const text = readFileSync(new URL(file, import.meta.url), 'utf8');
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
  const found = new Map(names.map((n) => [n, []]));
  const nameOf = (node) => {
    if ((ts.isFunctionDeclaration(node) || ts.isMethodDeclaration(node)) && node.name) return node.name.getText(source);
    if (ts.isVariableStatement(node) && node.declarationList.declarations.length === 1) return node.declarationList.declarations[0].name.getText(source);
    if (ts.isPropertyAssignment(node)) return node.name.getText(source);
    return undefined;
  };
  const visit = (node) => {
    const name = nameOf(node);
    const ranges = name === undefined ? undefined : found.get(name);
    if (ranges) {
      const start = source.getLineAndCharacterOfPosition(node.getStart(source));
      const end = source.getLineAndCharacterOfPosition(node.getEnd());
      ranges.push(`${file}:${start.line + 1}:${start.character}-${end.line + 1}:${end.character}`);
      return;
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  const missing = names.filter((n) => found.get(n).length === 0);
  if (missing.length > 0) throw new Error(`stryker.config.mjs: mutatedFunctions: ${file} declares no ${missing.join(', ')} (renamed? update the list)`);
  return [...found.values()].flat();
}

export const mutate = [...mutatedFiles, ...Object.entries(mutatedFunctions).flatMap(([file, names]) => functionRanges(file, names))];

/**
 * `MUTATE_ONLY=operators/,src/hash.ts npm run mutate` mutates only the entries under those
 * prefixes, with its own incremental file and report (a whole run takes long on a small box);
 * scripts/mutation-score.mjs reads every report, the newest one for each file.
 */
const only = (process.env.MUTATE_ONLY ?? '').split(',').filter((p) => p !== '');
const selected = only.length === 0 ? mutate : mutate.filter((m) => only.some((p) => m.startsWith(p)));
const part = only.length === 0 ? 'all' : only.map((p) => p.replace(/\W+/g, '-').replace(/^-|-$/g, '')).join('+');

/**
 * The TypeScript checker's project for this part: only the files mutated in it (`files`; what
 * they import is pulled in, what imports them is not). A mutant's type error shows in its own
 * file, or in a file of the part that uses what it changed; checking the whole program instead
 * re-checked every dependent of operators/ and src/hash.ts for each mutant (2–5 s of CPU a check
 * against about 1 s, docs/testing.md "Where the time goes"). Generated: reports/ is not committed,
 * and Stryker copies it into its sandbox, where the checker reads it.
 */
export function checkerProject(entries) {
  const files = [...new Set(entries.map((m) => m.replace(/:\d+:\d+-\d+:\d+$/, '')))].sort();
  return { extends: '../tsconfig.stryker.json', include: [], files: files.map((f) => `../${f}`) };
}
const checkerTsconfig = `reports/tsconfig.stryker-${part}.json`;
const checkerText = `${JSON.stringify(checkerProject(selected), null, 2)}\n`;
const checkerUrl = new URL(checkerTsconfig, import.meta.url);
let current;
try {
  current = readFileSync(checkerUrl, 'utf8');
} catch {
  current = undefined;
}
if (current !== checkerText) {
  mkdirSync(new URL('reports/', import.meta.url), { recursive: true });
  writeFileSync(checkerUrl, checkerText);
}

/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
export default {
  packageManager: 'npm',
  mutate: selected,
  testRunner: 'vitest',
  // The unit tests only, without the property tests: no RabbitMQ, no build (vitest.mutation.config.ts).
  vitest: { configFile: 'vitest.mutation.config.ts', related: true },
  // The default pattern also takes the HTML fixtures under test/ and fails to parse them.
  disableTypeChecks: '{operators,sources,src,test}/**/*.{ts,mts,cts}',
  checkers: ['typescript'],
  // The part's mutated files without the tests, nor the code that imports them (checkerProject).
  tsconfigFile: checkerTsconfig,
  typescriptChecker: { prioritizePerformanceOverAccuracy: true },
  coverageAnalysis: 'perTest',
  // Mutants in module-level constants would each rerun every unit test (minutes each); the
  // mapping tables they sit in are checked by the mapping tests, see docs/testing.md.
  ignoreStatic: true,
  // The machine is shared: two test processes at most.
  concurrency: 2,
  timeoutMS: 10_000,
  // Reruns only the mutants whose code or covering tests changed since the last run. The file
  // is not committed: the first run on a checkout builds it (`npm run mutate -- --force` redoes all).
  incremental: true,
  incrementalFile: `reports/stryker-incremental-${part}.json`,
  // event-recorder: each mutant's result as it is known (reports/mutation/events-<part>/), to follow a long run.
  reporters: ['clear-text', 'progress', 'json', 'html', 'event-recorder'],
  eventReporter: { baseDir: `reports/mutation/events-${part}` },
  jsonReporter: { fileName: `reports/mutation/${part}.json` },
  htmlReporter: { fileName: `reports/mutation/${part}.html` },
  clearTextReporter: { allowColor: false, logTests: false, reportScoreTable: true, reportMutants: true },
  tempDirName: '.stryker-tmp',
  cleanTempDir: 'always',
  // The score gate per folder/file is scripts/mutation-score.mjs (Stryker's own break is global).
  thresholds: { high: 90, low: 80, break: null },
};
