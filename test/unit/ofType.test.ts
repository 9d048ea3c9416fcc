import { describe, expect, it } from 'vitest';
import { ofAction } from '../../operators/ofAction.js';
import { ofType, typeMatcher } from '../../operators/ofType.js';
import type { EntityEvent } from '../../src/model.js';
import { entity } from '../support/entities.js';
import { marbles } from '../support/marbles.js';

const ev = (type: string, action: EntityEvent['action'] = 'create'): EntityEvent => ({ action, origin: 'snapshot', entity: entity('x', 'UP', { type }), hash: type });

describe('ofType / ofAction', () => {
  it(
    'lets through only the given types, in order, completing with the source',
    marbles((m) => {
      const values = { i: ev('nova.instance'), p: ev('neutron.port'), h: ev('nova.host') };
      const source = m.hot('--i--p--h--|', values);
      m.expect(source.pipe(ofType('nova.instance', 'nova.host'))).toBeObservable('--i-----h--|', values);
      m.expect(source.pipe(ofType('neutron.*'))).toBeObservable('-----p-----|', values);
      m.expect(source.pipe(ofType())).toBeObservable('--i--p--h--|', values);
    }),
  );

  it(
    'composes with ofAction and passes errors on',
    marbles((m) => {
      const values = { c: ev('nova.instance'), d: ev('nova.instance', 'delete'), x: ev('nova.host', 'delete') };
      const source = m.cold('-c-d-x-#', values);
      m.expect(source.pipe(ofType('nova.instance'), ofAction('delete'))).toBeObservable('---d---#', values);
    }),
  );

  it('matches families only at a dot boundary', () => {
    const matches = typeMatcher(['nova.*']);
    expect([matches('nova.instance'), matches('novaish.thing'), matches('neutron.port')]).toEqual([true, false, false]);
  });
});
