import { type Server, createServer } from 'node:http';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './ports.js';
import { answers, startProgram } from './program.js';

/** The Debian package's binary (prometheus 2.42). */
export const PROMETHEUS_BIN = process.env.PROMETHEUS_BIN ?? '/usr/bin/prometheus';

export interface RunningPrometheus {
  /** `http://127.0.0.1:<port>` */
  url: string;
  /** `127.0.0.1:<port>` of the test's exporter (the `instance` label). */
  exporter: string;
  /** Sets the gauge `demo_value` the exporter serves (the alert rule fires above 5). */
  setValue(value: number): void;
  stop(): Promise<void>;
}

/**
 * A tiny exporter of the test's own (`demo_value`) and a private Prometheus scraping it every
 * second, with the alert rule `DemoValueHigh` (`demo_value > 5`, `for: 0s`, severity critical)
 * evaluated every second and sent to `alertmanagerUrl`.
 */
export async function startPrometheus(alertmanagerUrl: string): Promise<RunningPrometheus> {
  let value = 0;
  const exporter: Server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
    res.end(`# TYPE demo_value gauge\ndemo_value ${value}\n`);
  });
  await new Promise<void>((resolve) => exporter.listen(0, '127.0.0.1', () => resolve()));
  const exporterAddress = `127.0.0.1:${(exporter.address() as { port: number }).port}`;
  const dir = await mkdtemp(join(tmpdir(), 'prometheus-'));
  const am = new URL(alertmanagerUrl);
  await writeFile(
    join(dir, 'prometheus.yml'),
    `global: {scrape_interval: 1s, evaluation_interval: 1s}
alerting:
  alertmanagers: [{static_configs: [{targets: ['${am.host}']}]}]
rule_files: [rules.yml]
scrape_configs:
  - job_name: demo
    static_configs: [{targets: ['${exporterAddress}']}]
`,
  );
  await writeFile(
    join(dir, 'rules.yml'),
    `groups:
  - name: demo
    interval: 1s
    rules:
      - alert: DemoValueHigh
        expr: demo_value > 5
        for: 0s
        labels: {severity: critical}
        annotations: {summary: 'demo_value is {{ $value }}', description: 'The gauge is above 5.'}
`,
  );
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const program = await startProgram(
    PROMETHEUS_BIN,
    [`--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn'],
    { pkg: 'prometheus', ready: () => answers(`${url}/-/ready`) },
  ).catch(async (e: unknown) => {
    exporter.close();
    await rm(dir, { recursive: true, force: true });
    throw e;
  });
  return {
    url,
    exporter: exporterAddress,
    setValue: (v) => {
      value = v;
    },
    stop: async () => {
      await program.stop();
      exporter.closeAllConnections();
      exporter.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
