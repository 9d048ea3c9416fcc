/** `null`, `''` and `undefined` all mean "not set" in OpenStack's records and notifications. */
export function present(value: string | null | undefined): string | undefined {
  return value === null || value === '' ? undefined : value;
}
