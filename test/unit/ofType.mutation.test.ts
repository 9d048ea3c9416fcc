import { describe, expect, it } from 'vitest';
import { typeMatcher } from '../../operators/ofType.js';

/** typeMatcher's cases one by one (docs/testing.md, "Mutation testing"). */
describe('typeMatcher', () => {
  it('matches everything with no types or an empty list', () => {
    for (const types of [undefined, []]) expect(['nova.instance', 'x', ''].map(typeMatcher(types))).toEqual([true, true, true]);
  });

  it('matches exact names only when there is no family', () => {
    const matches = typeMatcher(['nova.instance', 'nova.host']);
    expect(['nova.instance', 'nova.host', 'nova.zone', 'nova.instancex', 'nova'].map(matches)).toEqual([true, true, false, false, false]);
  });

  it('matches exact names and families together; a family never matches its bare prefix', () => {
    const matches = typeMatcher(['neutron.port', 'nova.*']);
    expect(['neutron.port', 'nova.instance', 'nova.', 'nova', 'neutron.network', 'xnova.instance'].map(matches)).toEqual([true, true, true, false, false, false]);
    // Several families: any one of them is enough.
    expect(['nova.host', 'neutron.port', 'cinder.volume'].map(typeMatcher(['nova.*', 'neutron.*']))).toEqual([true, true, false]);
    // A name that only ends in `*` without the dot is an exact name.
    expect(['nova*', 'novax'].map(typeMatcher(['nova*']))).toEqual([true, false]);
  });
});
