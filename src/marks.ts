/**
 * Values the hub keeps about the objects it emits (an event's sequence number, the time of the
 * observation it came from, its hash once read), on the objects themselves.
 *
 * They were WeakMaps keyed by the event. A WeakMap's table holds an entry per key until a
 * collection finds the key dead, and grows (a new table, every entry moved) when it is full: with
 * 100,000 events of a first snapshot held in it and a thousand more a second, the growth came
 * every half minute or so and took 170–610 ms of the main thread on the 2-core benchmark machine
 * (one `set`, no collection in it: `node --trace-gc`), twice in a row as two maps grew together,
 * a 466 ms stall of the push path in the isolation benchmark's profile (docs/scale.md, "The
 * lead's runs of the merged session-12 code"). A property keyed by a symbol of this module's own,
 * not enumerable, is a field of the object: JSON, spread, structuredClone and deep equality do
 * not see it, and it goes with the object. An object that cannot take it (frozen) falls back to
 * a WeakMap.
 */
export interface Mark<T> {
  get(o: object): T | undefined;
  set(o: object, value: T): void;
}

export function mark<T>(name: string): Mark<T> {
  const key = Symbol(name);
  const frozen = new WeakMap<object, T>();
  // Objects frozen after their value was set hold a stale one in the property; the new value is
  // in `frozen`. Counted, so that get() looks there only once one such object was ever seen.
  let overridden = 0;
  return {
    get(o) {
      if (!(key in o)) return frozen.get(o);
      // Stryker disable next-line EqualityOperator,ConditionalExpression: looking in `frozen` every time gives the same answers, only slower
      return overridden > 0 && frozen.has(o) ? frozen.get(o) : (o as Record<symbol, T>)[key];
    },
    set(o, value) {
      if (key in o) {
        // Reflect.set answers false for a property made read-only since (a frozen object), where
        // an assignment would throw in this strict module.
        if (!Reflect.set(o, key, value)) {
          overridden += 1;
          frozen.set(o, value);
        }
      } else if (Object.isExtensible(o)) {
        Object.defineProperty(o, key, {
          value,
          writable: true,
          // Stryker disable next-line BooleanLiteral: nothing deletes or redefines the property (only this module has its key; it assigns once it is there)
          configurable: true,
          enumerable: false,
        });
      } else frozen.set(o, value);
    },
  };
}
