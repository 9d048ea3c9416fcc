import { relative } from 'node:path';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

/**
 * The order of test files in a mutation run (vitest.mutation.config.ts). Vitest runs the longest
 * files first, which suits parallel workers; a mutant's run is one worker that stops at the first
 * failing test (Stryker's bail), so a mutant is killed soonest when the tests written to kill
 * mutants (`*.mutation.test.ts`) run first, then the others from the quickest to the slowest.
 */
export default class FastestFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const duration = (spec: TestSpecification): number =>
      this.ctx.cache.getFileTestResults(`${spec.project.name}:${relative(this.ctx.config.root, spec.moduleId)}`)?.duration ?? Number.MAX_SAFE_INTEGER;
    const rank = (spec: TestSpecification): number => (spec.moduleId.endsWith('.mutation.test.ts') ? 0 : 1);
    return [...files].sort((a, b) => rank(a) - rank(b) || duration(a) - duration(b));
  }
}
