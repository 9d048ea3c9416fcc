/**
 * Attaching alarms to the resources they concern: a source option (`attach:`) that turns a
 * monitoring system's name for a thing (a Nagios host name, an alert's labels) into parent
 * EntityRefs (`nova.host`, `nova.instance`, …), so a consumer can walk from an alarm to its
 * resource. Shared by the Nagios and Alertmanager sources so both read the same way:
 *
 * ```yaml
 * attach:
 *   - { label: instance_id, type: nova.instance }                 # the label's value is the id
 *   - { label: instance, type: nova.host, pattern: '^([^:.]+)' }   # compute-1.example:9100 → compute-1
 * ```
 */
import type { EntityRef, EntityType } from './model.js';
import type { OptionReader } from './options.js';

/** One rule: where the name comes from, which entity type it names, and how to cut the id out of it. */
export interface AttachRule {
  /** The alert label to read; absent where the source has only one name (the Nagios host name). */
  label?: string;
  type: EntityType;
  /**
   * Must match the value for the rule to apply; the id is its first capture group, or the whole
   * match when it has none. Absent: the whole value is the id.
   */
  pattern?: RegExp;
}

export interface ReadAttachOptions {
  /** Whether each rule names a label (`required`: Alertmanager) or must not (`forbidden`: Nagios). */
  label: 'required' | 'forbidden';
}

/**
 * Reads the `attach` list of a source's options; a bad rule fails with its config path
 * (`sources[2].attach[0].pattern: not a valid regular expression: …`).
 */
export function readAttachRules(read: OptionReader, key: string, { label }: ReadAttachOptions): AttachRule[] {
  return read.objectList(key).map((rule) => {
    const type = rule.string('type');
    const name = label === 'required' ? rule.string('label') : undefined;
    const source = rule.optionalString('pattern');
    let pattern: RegExp | undefined;
    if (source !== undefined) {
      try {
        pattern = new RegExp(source);
      } catch (e) {
        rule.fail('pattern', `not a valid regular expression: ${e instanceof Error ? e.message : String(e)}`);
      }
    }
    rule.done();
    return { type, ...(name !== undefined ? { label: name } : {}), ...(pattern ? { pattern } : {}) };
  });
}

/** The id a rule cuts out of a value, or undefined when the rule does not apply to it. */
function idFrom(rule: AttachRule, value: string): string | undefined {
  if (!rule.pattern) return value;
  const m = rule.pattern.exec(value);
  if (!m) return undefined;
  // A pattern with a group that did not take part in the match yields nothing rather than ''.
  const id = m.length > 1 ? m[1] : m[0];
  return id === undefined || id === '' ? undefined : id;
}

/**
 * The parent refs the rules give for one alarm: every rule whose value is present (and matches
 * its pattern) adds one ref, so an alert with both `instance_id` and `hostname` is attached to both.
 *
 * @param rules from {@link readAttachRules}.
 * @param valueOf the value a rule reads: an alert's label by name, or the host name when the rule has no label.
 * @returns the refs, in rule order, without duplicates.
 */
export function attachRefs(rules: readonly AttachRule[], valueOf: (label: string | undefined) => string | undefined): EntityRef[] {
  const refs: EntityRef[] = [];
  for (const rule of rules) {
    const value = valueOf(rule.label);
    if (value === undefined || value === '') continue;
    const id = idFrom(rule, value);
    if (id === undefined) continue;
    if (!refs.some((r) => r.type === rule.type && r.id === id)) refs.push({ type: rule.type, id });
  }
  return refs;
}
