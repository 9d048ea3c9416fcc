/**
 * Secrets kept out of the config file, and YAML read without echoing secrets: any string value of
 * the config may reference an environment variable (`${NAME}`) or a file (`${file:PATH}`, relative
 * to the config file, its trailing newline dropped); `$${` is a literal `${`. A reference that
 * cannot be resolved is a config error naming the key path, never a silent empty string.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parse } from 'yaml';
import { errorMessage } from './log.js';
import { ConfigError } from './options.js';

const REFERENCE = /\$\$\{|\$\{([^}]*)\}|\$\{/g;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

type Env = Record<string, string | undefined>;

/** One string with its references replaced; `path` names it in errors. */
export function resolveString(value: string, path: string, dir: string, env: Env = process.env): string {
  if (!value.includes('${')) return value;
  return value.replace(REFERENCE, (whole, inner: string | undefined) => {
    if (whole === '$${') return '${';
    if (inner === undefined) throw new ConfigError(path, 'a ${ with no closing }: write ${NAME} or ${file:PATH}, or $${ for a literal ${');
    if (inner.startsWith('file:')) {
      const file = resolve(dir, inner.slice(5).trim());
      try {
        return readFileSync(file, 'utf8').replace(/\r?\n$/, '');
      } catch (e) {
        throw new ConfigError(path, `cannot read the secret file ${file}: ${errorMessage(e)}`);
      }
    }
    const name = inner.trim();
    if (!ENV_NAME.test(name)) throw new ConfigError(path, `${JSON.stringify(whole)} is not a reference: write \${NAME} (letters, digits, _) or \${file:PATH}`);
    const v = env[name];
    if (v === undefined) throw new ConfigError(path, `references the environment variable ${name}, which is not set`);
    return v;
  });
}

/** The config document with every string's references resolved (a copy; keys are left alone). */
export function resolveReferences(doc: unknown, dir: string, env: Env = process.env, path = ''): unknown {
  if (typeof doc === 'string') return resolveString(doc, path, dir, env);
  if (Array.isArray(doc)) return doc.map((item, i) => resolveReferences(item, dir, env, `${path}[${i}]`));
  if (doc !== null && typeof doc === 'object') {
    const out: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(doc)) out[key] = resolveReferences(value, dir, env, path ? `${path}.${key}` : key);
    return out;
  }
  return doc;
}

/**
 * Parses YAML that may hold secrets (the config, clouds.yaml, secure.yaml). The yaml library's
 * errors quote the offending line, which may be a password: this one says where, not what.
 */
export function parseYamlQuietly(text: string, file: string): unknown {
  try {
    return parse(text, { prettyErrors: false });
  } catch (e) {
    const err = e as { code?: unknown; pos?: [number, number] };
    const at = Math.min(err.pos?.[0] ?? 0, text.length);
    const before = text.slice(0, at);
    const line = before.split('\n').length;
    const where = err.pos ? `line ${line}, column ${at - before.lastIndexOf('\n')}` : 'an unknown place';
    const code = typeof err.code === 'string' ? err.code : 'YAMLError';
    throw new Error(`${file} is not valid YAML: ${code} at ${where} (the line is not shown: it may hold a secret)`);
  }
}
