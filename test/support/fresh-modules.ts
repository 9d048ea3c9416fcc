import { vi } from 'vitest';

/**
 * Setup file of the mutation runs (vitest.mutation.config.ts shares modules between test files):
 * every test file re-evaluates our modules (operators/, src/, sources/) from Vite's cache, so a
 * cache or buffer filled while one mutant was active never answers for the next. Packages under
 * node_modules are loaded by Node itself and stay loaded, which is what makes the run fast.
 */
vi.resetModules();
