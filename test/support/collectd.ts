import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type RunningProgram, startProgram } from './program.js';

/** The Debian package's daemon (collectd-core 5.12). */
export const COLLECTD_BIN = process.env.COLLECTD_BIN ?? '/usr/sbin/collectd';

export interface RunningCollectd {
  /** The host name collectd reports (the `instance` label). */
  host: string;
  /** Sets the gauge exec-demo/gauge-value (threshold: WarningMax 3, FailureMax 5). */
  setValue(value: number): Promise<void>;
  stop(): Promise<void>;
}

/**
 * A private collectd (foreground, 1 s interval): the `exec` plugin reads a value from a file the
 * test writes (as `nobody`: collectd refuses to run exec children as root, so the folder is
 * world-readable), the `threshold` plugin watches it, and `write_http` posts the notifications as
 * JSON to `url` with basic auth. It is running once the process is up; its first notification is
 * an OKAY for the value in range.
 */
export async function startCollectd(url: string, auth: { username: string; password: string }): Promise<RunningCollectd> {
  const dir = await mkdtemp(join(tmpdir(), 'collectd-'));
  await chmod(dir, 0o755);
  const valueFile = join(dir, 'value');
  await writeFile(valueFile, '0\n', { mode: 0o644 });
  const script = join(dir, 'value.sh');
  await writeFile(script, `#!/bin/sh\nwhile :; do\n  echo "PUTVAL \\"collectd-test/exec-demo/gauge-value\\" interval=1 N:$(cat '${valueFile}')"\n  sleep 1\ndone\n`, { mode: 0o755 });
  const config = join(dir, 'collectd.conf');
  await writeFile(
    config,
    `Hostname "collectd-test"
FQDNLookup false
Interval 1
BaseDir "${dir}"
PIDFile "${join(dir, 'collectd.pid')}"
PluginDir "/usr/lib/collectd"
TypesDB "/usr/share/collectd/types.db"
LoadPlugin exec
LoadPlugin threshold
LoadPlugin write_http
<Plugin exec>
  Exec "nobody" "${script}"
</Plugin>
<Plugin threshold>
  <Plugin "exec">
    Instance "demo"
    <Type "gauge">
      Instance "value"
      WarningMax 3
      FailureMax 5
      Hits 1
      Persist false
    </Type>
  </Plugin>
</Plugin>
<Plugin write_http>
  <Node "notify">
    URL "${url}"
    Format "JSON"
    Metrics false
    Notifications true
    User "${auth.username}"
    Password "${auth.password}"
  </Node>
</Plugin>
`,
  );
  let program: RunningProgram;
  try {
    program = await startProgram(COLLECTD_BIN, ['-f', '-C', config], { pkg: 'collectd-core', ready: async () => true });
  } catch (e) {
    await rm(dir, { recursive: true, force: true });
    throw e;
  }
  return {
    host: 'collectd-test',
    setValue: (value) => writeFile(valueFile, `${value}\n`),
    stop: async () => {
      await program.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
