/**
 * Keystone v3 for the OpenStack sources: credentials (config, clouds.yaml or OS_* variables, as
 * the OpenStack tools find them), project-scoped tokens renewed before they expire and once on a
 * 401, and endpoint lookup in the token's service catalog.
 */
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { type Observable, type SchedulerLike, asyncScheduler, defer, finalize, firstValueFrom, from, map, of, share, tap } from 'rxjs';
import { type HttpAuth, type HttpClient, createHttpClient } from '../../src/http.js';
import { type Logger, errorMessage, silentLogger } from '../../src/log.js';
import { ConfigError, type OptionReader } from '../../src/options.js';
import { parseYamlQuietly } from '../../src/secrets.js';
import { type TlsOptions, readPem, readTlsOptions } from '../../src/tls.js';

export type EndpointInterface = 'public' | 'internal' | 'admin';
export const INTERFACES: readonly EndpointInterface[] = ['public', 'internal', 'admin'];

/** What authenticates: clouds.yaml's `auth:` keys (snake_case, as users paste them). */
export interface KeystoneCredentials {
  authUrl: string;
  authType: 'password' | 'application_credential';
  username?: string;
  userId?: string;
  password?: string;
  userDomainName?: string;
  userDomainId?: string;
  projectName?: string;
  projectId?: string;
  projectDomainName?: string;
  projectDomainId?: string;
  applicationCredentialId?: string;
  applicationCredentialName?: string;
  applicationCredentialSecret?: string;
}

/** Credentials plus where to find the services. */
export interface CloudConfig {
  credentials: KeystoneCredentials;
  region?: string;
  interface: EndpointInterface;
  /** Where the credentials came from, for messages: `auth`, `clouds.yaml cloud "x" (path)`, `OS_* environment`. */
  origin: string;
  /** TLS of Keystone and every catalog endpoint: clouds.yaml cacert/cert/key/verify, OS_CACERT…, or the source's `tls:`. */
  tls?: TlsOptions;
}

/** One endpoint of the catalog. */
export interface CatalogEndpoint {
  interface?: string;
  region?: string | null;
  region_id?: string | null;
  url: string;
}

export interface CatalogService {
  type: string;
  name?: string;
  endpoints: CatalogEndpoint[];
}

/** A Keystone token as this module needs it (the secret id never appears in messages). */
export interface KeystoneToken {
  id: string;
  /** ms since the epoch. */
  expiresAt: number;
  issuedAt: number;
  projectId?: string;
  catalog: CatalogService[];
}

type Env = Record<string, string | undefined>;

const AUTH_KEYS: Record<string, keyof KeystoneCredentials> = {
  auth_url: 'authUrl',
  username: 'username',
  user_id: 'userId',
  password: 'password',
  user_domain_name: 'userDomainName',
  user_domain_id: 'userDomainId',
  project_name: 'projectName',
  tenant_name: 'projectName',
  project_id: 'projectId',
  tenant_id: 'projectId',
  project_domain_name: 'projectDomainName',
  project_domain_id: 'projectDomainId',
  application_credential_id: 'applicationCredentialId',
  application_credential_name: 'applicationCredentialName',
  application_credential_secret: 'applicationCredentialSecret',
};

/** `domain_name`/`domain_id` stand for both user and project domain, as in openstacksdk. */
function applyDefaultDomain(c: Partial<KeystoneCredentials>, domainName?: string, domainId?: string): void {
  if (domainName) {
    c.userDomainName ??= domainName;
    c.projectDomainName ??= domainName;
  }
  if (domainId) {
    c.userDomainId ??= domainId;
    c.projectDomainId ??= domainId;
  }
}

/** Checks that a set of credentials can authenticate; `where` names their origin in the error. */
function complete(c: Partial<KeystoneCredentials>, authType: string | undefined, where: string, path: string): KeystoneCredentials {
  const type = (authType ?? (c.applicationCredentialId || c.applicationCredentialName ? 'application_credential' : 'password')).replace(/^v3/, '').replace(/^applicationcredential$/, 'application_credential');
  if (type !== 'password' && type !== 'application_credential') {
    throw new ConfigError(path, `${where}: auth_type ${JSON.stringify(authType)} is not supported (use password or application_credential)`);
  }
  if (!c.authUrl) throw new ConfigError(path, `${where}: auth_url is required`);
  if (type === 'password') {
    if (!c.username && !c.userId) throw new ConfigError(path, `${where}: username or user_id is required for password auth`);
    if (!c.password) throw new ConfigError(path, `${where}: password is required for password auth`);
    if (!c.projectId && !c.projectName) throw new ConfigError(path, `${where}: project_name or project_id is required (the sources need a project-scoped token)`);
  } else {
    if (!c.applicationCredentialSecret) throw new ConfigError(path, `${where}: application_credential_secret is required`);
    if (!c.applicationCredentialId && !(c.applicationCredentialName && (c.userId || c.username))) {
      throw new ConfigError(path, `${where}: application_credential_id (or application_credential_name with the user) is required`);
    }
  }
  return { ...c, authUrl: c.authUrl, authType: type };
}

/** clouds.yaml locations, in the order the OpenStack tools search them. */
export function cloudsYamlPaths(env: Env = process.env, cwd = process.cwd()): string[] {
  const paths: string[] = [];
  if (env.OS_CLIENT_CONFIG_FILE) paths.push(env.OS_CLIENT_CONFIG_FILE);
  paths.push(join(cwd, 'clouds.yaml'), join(env.HOME ?? homedir(), '.config', 'openstack', 'clouds.yaml'), '/etc/openstack/clouds.yaml');
  return paths;
}

/**
 * secure.yaml locations, searched as the OpenStack tools do: the first that exists holds the
 * secrets (passwords, application credential secrets) kept out of clouds.yaml.
 */
export function secureYamlPaths(env: Env = process.env, cwd = process.cwd()): string[] {
  const paths: string[] = [];
  if (env.OS_CLIENT_SECURE_FILE) paths.push(env.OS_CLIENT_SECURE_FILE);
  paths.push(join(cwd, 'secure.yaml'), join(env.HOME ?? homedir(), '.config', 'openstack', 'secure.yaml'), '/etc/openstack/secure.yaml');
  return paths;
}

function isMapping(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** `over` laid onto `base`, mappings merged key by key (secure.yaml onto clouds.yaml). */
function overlay(base: unknown, over: unknown): unknown {
  if (!isMapping(base) || !isMapping(over)) return over === undefined ? base : over;
  const out: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(over)) out[key] = overlay(base[key], value);
  return out;
}

function readClouds(file: string, path: string): Record<string, unknown> {
  let doc: unknown;
  try {
    doc = parseYamlQuietly(readFileSync(file, 'utf8'), file);
  } catch (e) {
    throw new ConfigError(path, `cannot read ${file}: ${errorMessage(e)}`);
  }
  const clouds = (doc as { clouds?: unknown } | null)?.clouds;
  return clouds !== null && typeof clouds === 'object' && !Array.isArray(clouds) ? (clouds as Record<string, unknown>) : {};
}

function credentialsFrom(auth: Record<string, unknown>): Partial<KeystoneCredentials> {
  const c: Partial<KeystoneCredentials> = {};
  for (const [key, field] of Object.entries(AUTH_KEYS)) {
    const v = auth[key];
    if (typeof v === 'string' && v !== '') (c as Record<string, string>)[field] ??= v;
    else if (typeof v === 'number') (c as Record<string, string>)[field] ??= String(v);
  }
  applyDefaultDomain(c, typeof auth.domain_name === 'string' ? auth.domain_name : undefined, typeof auth.domain_id === 'string' ? auth.domain_id : undefined);
  return c;
}

function truthy(v: unknown): boolean {
  return v === true || (typeof v === 'string' && /^(1|true|yes|on)$/i.test(v.trim()));
}

/**
 * TLS as openstacksdk reads it: a cloud's `cacert`, `cert`, `key`, `verify` (false, or a CA
 * bundle path) and `insecure`, each falling back to OS_CACERT, OS_CERT, OS_KEY, OS_INSECURE.
 * Paths are taken as the OpenStack tools take them (relative to the working folder).
 */
export function cloudTls(entry: Record<string, unknown>, env: Env, cwd: string, path: string): TlsOptions | undefined {
  const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);
  const verify = entry.verify;
  const caFile = str(entry.cacert) ?? (typeof verify === 'string' && !/^(true|false)$/i.test(verify) ? verify : undefined) ?? str(env.OS_CACERT);
  const certFile = str(entry.cert) ?? str(env.OS_CERT);
  const keyFile = str(entry.key) ?? str(env.OS_KEY);
  const insecure = entry.insecure !== undefined ? truthy(entry.insecure) : verify === false || (typeof verify === 'string' && /^false$/i.test(verify)) || (verify === undefined && truthy(env.OS_INSECURE));
  if (certFile !== undefined && keyFile === undefined) {
    // openstacksdk allows a cert that holds its key too.
    const cert = readPem(certFile, cwd, path, 'client certificate (cert / OS_CERT)');
    if (!/PRIVATE KEY-----/.test(cert)) throw new ConfigError(path, `cert ${certFile} holds no private key and no key (or OS_KEY) is given`);
    return { ...(caFile ? { ca: readPem(caFile, cwd, path, 'CA (cacert / OS_CACERT)') } : {}), cert, key: cert, ...(insecure ? { insecure } : {}) };
  }
  if (keyFile !== undefined && certFile === undefined) throw new ConfigError(path, 'key (or OS_KEY) is given without cert (OS_CERT)');
  if (caFile === undefined && certFile === undefined && !insecure) return undefined;
  return {
    ...(caFile !== undefined ? { ca: readPem(caFile, cwd, path, 'CA (cacert / OS_CACERT)') } : {}),
    ...(certFile !== undefined ? { cert: readPem(certFile, cwd, path, 'client certificate (cert / OS_CERT)') } : {}),
    ...(keyFile !== undefined ? { key: readPem(keyFile, cwd, path, 'client key (key / OS_KEY)') } : {}),
    ...(insecure ? { insecure } : {}),
  };
}

function pickInterface(value: unknown, path: string): EndpointInterface | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  const v = String(value).replace(/URL$/, '');
  if (!INTERFACES.includes(v as EndpointInterface)) throw new ConfigError(path, `expected one of ${INTERFACES.join(', ')}, got ${JSON.stringify(value)}`);
  return v as EndpointInterface;
}

/**
 * Reads an OpenStack source's connection options: `auth: {...}` (clouds.yaml's keys), or
 * `cloud: name` (a clouds.yaml entry), or else the OS_* environment (OS_CLOUD included), plus
 * `region` and `interface` (default public), and TLS: the source's `tls:` block when given, else
 * the cloud's (see {@link cloudTls}).
 */
export function readCloudOptions(read: OptionReader, env: Env = process.env, cwd = process.cwd()): CloudConfig {
  const own = readTlsOptions(read);
  const withTls = (config: CloudConfig, tls: TlsOptions | undefined): CloudConfig => {
    const chosen = own ?? tls;
    return chosen ? { ...config, tls: chosen } : config;
  };
  const auth = read.optionalObject('auth');
  const cloudName = read.optionalString('cloud');
  const region = read.optionalString('region');
  const iface = pickInterface(read.raw('interface'), read.at('interface'));
  if (auth && cloudName) read.fail('auth', 'give either auth or cloud, not both');
  if (auth) {
    const value = auth.value;
    for (const key of Object.keys(value)) {
      if (!(key in AUTH_KEYS) && key !== 'domain_name' && key !== 'domain_id' && key !== 'auth_type') auth.fail(key, 'is not a known Keystone auth option');
    }
    const authType = typeof value.auth_type === 'string' ? value.auth_type : undefined;
    return withTls(
      {
        credentials: complete(credentialsFrom(value), authType, 'auth', auth.path),
        ...(region ? { region } : {}),
        interface: iface ?? 'public',
        origin: `${auth.path}`,
      },
      own ? undefined : cloudTls({}, env, cwd, read.path),
    );
  }
  const name = cloudName ?? env.OS_CLOUD;
  if (name) {
    const at = cloudName ? read.at('cloud') : read.path;
    // As openstacksdk: the first clouds.yaml found is the one read, the others are never looked at.
    const file = cloudsYamlPaths(env, cwd).find((f) => existsSync(f));
    if (file === undefined) throw new ConfigError(at, `no clouds.yaml found for cloud ${JSON.stringify(name)} (looked in ${cloudsYamlPaths(env, cwd).join(', ')})`);
    const secureFile = secureYamlPaths(env, cwd).find((f) => existsSync(f));
    const secure = secureFile === undefined ? undefined : readClouds(secureFile, at)[name];
    const cloud = readClouds(file, at)[name];
    if (cloud === undefined) {
      throw new ConfigError(at, `no cloud ${JSON.stringify(name)} in clouds.yaml ${file} (the first clouds.yaml found is the only one read, as the OpenStack tools do)`);
    }
    const entry = (overlay(cloud ?? {}, secure) ?? {}) as Record<string, unknown>;
    const where = `clouds.yaml cloud ${JSON.stringify(name)} (${file}${secure !== undefined ? `, secrets from ${secureFile}` : ''})`;
    const cloudAuth = (entry.auth ?? {}) as Record<string, unknown>;
    const cloudRegion = typeof entry.region_name === 'string' ? entry.region_name : undefined;
    return withTls(
      {
        credentials: complete(credentialsFrom(cloudAuth), typeof entry.auth_type === 'string' ? entry.auth_type : undefined, where, at),
        ...((region ?? cloudRegion) ? { region: region ?? cloudRegion } : {}),
        interface: iface ?? pickInterface(entry.interface, at) ?? 'public',
        origin: where,
      },
      own ? undefined : cloudTls(entry, env, cwd, at),
    );
  }
  if (!env.OS_AUTH_URL) {
    throw new ConfigError(read.path, 'no OpenStack credentials: give auth: {...} or cloud: <clouds.yaml entry>, or set OS_CLOUD or OS_AUTH_URL and the other OS_* variables');
  }
  const c: Partial<KeystoneCredentials> = {};
  const fromEnv: Record<string, string> = {};
  for (const key of Object.keys(AUTH_KEYS)) {
    const v = env[`OS_${key.toUpperCase()}`];
    if (v) fromEnv[key] = v;
  }
  Object.assign(c, credentialsFrom(fromEnv));
  applyDefaultDomain(c, env.OS_DOMAIN_NAME, env.OS_DOMAIN_ID);
  return withTls(
    {
      credentials: complete(c, env.OS_AUTH_TYPE, 'OS_* environment', read.path),
      ...((region ?? env.OS_REGION_NAME) ? { region: region ?? env.OS_REGION_NAME } : {}),
      interface: iface ?? pickInterface(env.OS_INTERFACE ?? env.OS_ENDPOINT_TYPE, read.path) ?? 'public',
      origin: 'OS_* environment',
    },
    own ? undefined : cloudTls({}, env, cwd, read.path),
  );
}

/** The /v3 root of an auth_url given with or without its version. */
export function identityRoot(authUrl: string): string {
  const trimmed = authUrl.replace(/\/+$/, '');
  return /\/v3$/.test(trimmed) ? trimmed : `${trimmed}/v3`;
}

function domain(name?: string, id?: string): { id: string } | { name: string } {
  return id ? { id } : { name: name ?? 'Default' };
}

/** The body of POST /v3/auth/tokens for these credentials (project-scoped for password auth). */
export function authRequestBody(c: KeystoneCredentials): unknown {
  if (c.authType === 'application_credential') {
    const user = c.userId ? { id: c.userId } : { name: c.username, domain: domain(c.userDomainName, c.userDomainId) };
    const credential = c.applicationCredentialId
      ? { id: c.applicationCredentialId, secret: c.applicationCredentialSecret }
      : { name: c.applicationCredentialName, secret: c.applicationCredentialSecret, user };
    // An application credential is scoped already; a scope in the request is refused.
    return { auth: { identity: { methods: ['application_credential'], application_credential: credential } } };
  }
  const user = c.userId ? { id: c.userId, password: c.password } : { name: c.username, domain: domain(c.userDomainName, c.userDomainId), password: c.password };
  const project = c.projectId ? { id: c.projectId } : { name: c.projectName, domain: domain(c.projectDomainName, c.projectDomainId) };
  return { auth: { identity: { methods: ['password'], password: { user } }, scope: { project } } };
}

/** The catalog's well-formed services and endpoints; anything else is left out, never read blindly. */
function readCatalog(catalog: unknown[]): CatalogService[] {
  const services: CatalogService[] = [];
  for (const s of catalog) {
    if (s === null || typeof s !== 'object' || typeof (s as { type?: unknown }).type !== 'string') continue;
    const { type, name, endpoints } = s as { type: string; name?: unknown; endpoints?: unknown };
    const usable = Array.isArray(endpoints)
      ? endpoints.filter((e): e is CatalogEndpoint => e !== null && typeof e === 'object' && typeof (e as { url?: unknown }).url === 'string').map((e) => ({
          url: e.url,
          ...(typeof e.interface === 'string' ? { interface: e.interface } : {}),
          ...(typeof e.region === 'string' ? { region: e.region } : {}),
          ...(typeof e.region_id === 'string' ? { region_id: e.region_id } : {}),
        }))
      : [];
    services.push({ type, ...(typeof name === 'string' ? { name } : {}), endpoints: usable });
  }
  return services;
}

/** Reads a token response (`X-Subject-Token` header + `token` body). */
export function parseTokenResponse(subjectToken: string | undefined, body: unknown, where: string): KeystoneToken {
  if (!subjectToken) throw new Error(`${where}: the answer has no X-Subject-Token header`);
  const token = (body as { token?: Record<string, unknown> } | null)?.token;
  if (!token || typeof token.expires_at !== 'string') throw new Error(`${where}: expected {"token": {"expires_at": …}} in the answer`);
  const expiresAt = Date.parse(token.expires_at);
  if (Number.isNaN(expiresAt)) throw new Error(`${where}: unreadable expires_at ${JSON.stringify(token.expires_at)}`);
  const issued = typeof token.issued_at === 'string' ? Date.parse(token.issued_at) : NaN;
  const project = token.project as { id?: unknown } | undefined;
  return {
    id: subjectToken,
    expiresAt,
    issuedAt: Number.isNaN(issued) ? expiresAt - 3_600_000 : issued,
    ...(typeof project?.id === 'string' ? { projectId: project.id } : {}),
    catalog: Array.isArray(token.catalog) ? readCatalog(token.catalog) : [],
  };
}

/**
 * Whether a token may still be used at `now`: renewal happens `renewBeforeMs` before it expires,
 * or at half its lifetime for tokens that live shorter than twice that (so a short-lived token is
 * not renewed on every request).
 */
export function tokenIsFresh(token: Pick<KeystoneToken, 'expiresAt' | 'issuedAt'>, now: number, renewBeforeMs: number): boolean {
  const margin = Math.min(renewBeforeMs, Math.max(0, (token.expiresAt - token.issuedAt) / 2));
  return now < token.expiresAt - margin;
}

/**
 * The URL of a service in the catalog: by type (first of `types` that is there), interface and
 * region (any region when none is given).
 */
export function findEndpoint(catalog: readonly CatalogService[], types: readonly string[], iface: EndpointInterface, region?: string): string {
  for (const type of types) {
    const service = catalog.find((s) => s.type === type);
    if (!service) continue;
    const endpoint = service.endpoints.find((e) => (e.interface ?? 'public').replace(/URL$/, '') === iface && (!region || e.region_id === region || e.region === region));
    if (endpoint) return endpoint.url;
    const offered = service.endpoints.map((e) => `${e.interface}@${e.region_id ?? e.region ?? '?'}`).join(', ');
    throw new Error(`the catalog's ${type} service has no ${iface} endpoint${region ? ` in region ${region}` : ''} (it has ${offered || 'none'})`);
  }
  throw new Error(`no service of type ${types.join(' or ')} in the catalog (it has ${catalog.map((s) => s.type).join(', ') || 'nothing'})`);
}

export interface KeystoneSessionOptions {
  scheduler?: SchedulerLike;
  log?: Logger;
  /** Renew this long before expiry, ms (default 5 min; at most half the token's lifetime). */
  renewBeforeMs?: number;
  /** Timeout of one Keystone request, ms. */
  timeoutMs?: number;
  /** Cap of a token response (its catalog), bytes. */
  maxResponseBytes?: number;
  /** Fetches a new token; defaults to POST {auth_url}/v3/auth/tokens. Tests replace it. */
  authenticate?: () => Observable<KeystoneToken>;
}

/**
 * A Keystone session: one token at a time, shared by every request (and every source using the
 * same credentials), fetched on demand, renewed before it expires and when a service refuses it.
 * Concurrent requests that need a new token wait for the same authentication.
 */
export class KeystoneSession {
  private current: KeystoneToken | undefined;
  private pending: Observable<KeystoneToken> | undefined;
  private readonly scheduler: SchedulerLike;
  private readonly renewBeforeMs: number;
  private readonly authenticate: () => Observable<KeystoneToken>;
  private readonly http: HttpClient;
  /** Number of authentications so far (metrics, tests). */
  authentications = 0;

  constructor(
    readonly cloud: CloudConfig,
    options: KeystoneSessionOptions = {},
  ) {
    this.scheduler = options.scheduler ?? asyncScheduler;
    this.renewBeforeMs = options.renewBeforeMs ?? 300_000;
    const root = identityRoot(cloud.credentials.authUrl);
    this.http = createHttpClient({
      baseUrl: root,
      scheduler: this.scheduler,
      log: options.log ?? silentLogger,
      timeoutMs: options.timeoutMs ?? 30_000,
      name: `keystone (${cloud.origin})`,
      ...(cloud.tls ? { tls: cloud.tls } : {}),
      ...(options.maxResponseBytes !== undefined ? { maxResponseBytes: options.maxResponseBytes } : {}),
    });
    this.authenticate =
      options.authenticate ??
      (() =>
        from(this.http.post<unknown>('/auth/tokens', authRequestBody(cloud.credentials))).pipe(
          map((response) => parseTokenResponse(response.headers['x-subject-token'], response.data, `POST ${root}/auth/tokens`)),
        ));
  }

  /** A usable token: the current one while fresh, else a new one (one authentication for all waiting). */
  token$(): Observable<KeystoneToken> {
    return defer(() => {
      const now = this.scheduler.now();
      if (this.current && tokenIsFresh(this.current, now, this.renewBeforeMs)) return of(this.current);
      this.pending ??= defer(() => {
        this.authentications += 1;
        return this.authenticate();
      }).pipe(
        tap((token) => (this.current = token)),
        finalize(() => (this.pending = undefined)),
        share(),
      );
      return this.pending;
    });
  }

  /** A usable token. */
  token(): Promise<KeystoneToken> {
    return firstValueFrom(this.token$());
  }

  /** A service refused `tokenId`: forget it so the next request authenticates again. */
  invalidate(tokenId: string): void {
    if (this.current?.id === tokenId) this.current = undefined;
  }

  /** The session as an HttpAuth: `X-Auth-Token`, renewed once on a 401. */
  get auth(): HttpAuth {
    return {
      headers: () => this.token$().pipe(map((t) => ({ 'X-Auth-Token': t.id }))),
      unauthorized: (headers) => {
        const id = headers['X-Auth-Token'];
        if (id) this.invalidate(id);
      },
    };
  }

  /** The endpoint of a service for this session's interface and region (from a fresh token's catalog). */
  async endpoint(types: readonly string[]): Promise<string> {
    const token = await this.token();
    return findEndpoint(token.catalog, types, this.cloud.interface, this.cloud.region);
  }
}

const sessions = new Map<string, KeystoneSession>();

/**
 * The session for these credentials, shared by every source that uses the same ones (one token
 * for nova, neutron, cinder and heat instead of four).
 */
export function sharedSession(cloud: CloudConfig, options: KeystoneSessionOptions = {}): KeystoneSession {
  const key = JSON.stringify([cloud.credentials, cloud.region ?? null, cloud.interface, cloud.tls ?? null]);
  let session = sessions.get(key);
  // A session bound to another scheduler (tests in virtual time) is not shared.
  if (!session || (options.scheduler && options.scheduler !== asyncScheduler) || options.authenticate) {
    session = new KeystoneSession(cloud, options);
    if (!options.authenticate && (!options.scheduler || options.scheduler === asyncScheduler)) sessions.set(key, session);
  }
  return session;
}
