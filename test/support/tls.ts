/**
 * A private certificate authority for TLS tests, made with Debian's openssl (scripts/test.sh
 * installs it): a CA, a server certificate for 127.0.0.1/localhost, a client certificate, and a
 * second CA that signed none of them (the "wrong CA" case). EC P-256 keys: fast to make.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TestPki {
  dir: string;
  /** File paths (as clouds.yaml and tls: blocks take them) … */
  files: { ca: string; serverCert: string; serverKey: string; clientCert: string; clientKey: string; otherCa: string };
  /** … and their PEM text. */
  ca: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
  otherCa: string;
  dispose(): void;
}

const OPENSSL = '/usr/bin/openssl';

function run(args: string[], cwd: string): void {
  execFileSync(OPENSSL, args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

function selfSigned(cwd: string, name: string, cn: string): void {
  run(
    ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.crt`, '-days', '2', '-subj', `/CN=${cn}`,
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'],
    cwd,
  );
}

function signed(cwd: string, name: string, cn: string, ext: string): void {
  run(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`], cwd);
  const extFile = join(cwd, `${name}.ext`);
  execFileSync('sh', ['-c', `printf '%s\\n' "$1" > "$2"`, 'sh', ext, extFile]);
  run(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.crt`, '-days', '2', '-extfile', extFile], cwd);
}

/** Makes the PKI in a fresh temp folder; throws naming openssl when it is missing. */
export function makeTestPki(): TestPki {
  if (!existsSync(OPENSSL)) throw new Error(`${OPENSSL} not found: install the Debian package openssl (scripts/test.sh does)`);
  const dir = mkdtempSync(join(tmpdir(), 'sync-pki-'));
  selfSigned(dir, 'ca', 'synchronizer test CA');
  selfSigned(dir, 'other-ca', 'an unrelated CA');
  signed(dir, 'server', 'localhost', 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth');
  signed(dir, 'client', 'synchronizer', 'extendedKeyUsage=clientAuth');
  const files = {
    ca: join(dir, 'ca.crt'),
    serverCert: join(dir, 'server.crt'),
    serverKey: join(dir, 'server.key'),
    clientCert: join(dir, 'client.crt'),
    clientKey: join(dir, 'client.key'),
    otherCa: join(dir, 'other-ca.crt'),
  };
  const read = (f: string): string => readFileSync(f, 'utf8');
  return {
    dir,
    files,
    ca: read(files.ca),
    serverCert: read(files.serverCert),
    serverKey: read(files.serverKey),
    clientCert: read(files.clientCert),
    clientKey: read(files.clientKey),
    otherCa: read(files.otherCa),
    dispose: () => rmSync(dir, { recursive: true, force: true }),
  };
}
