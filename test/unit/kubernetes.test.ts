import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { V1Node, V1Pod } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSource } from '../../src/index.js';
import { loadKubeConfig } from '../../src/kubernetes.js';
import { kubeRecordDraft, nodeDraft, novaServerOf, podDraft } from '../../sources/kubernetes.js';
import { KubeApiServer, node, pod } from '../support/kube-apiserver.js';

const UUID = '5b1f4a7e-0c1d-4e55-9d6f-2b7f0c1e9a01';

describe('kubernetes mapping', () => {
  it('finds the Nova server in an OpenStack providerID, and nothing in another provider', () => {
    expect(novaServerOf(`openstack:///${UUID}`)).toEqual({ type: 'nova.instance', id: UUID });
    expect(novaServerOf(`openstack://RegionOne/${UUID.toUpperCase()}`)).toEqual({ type: 'nova.instance', id: UUID });
    expect(novaServerOf('aws:///eu-west-1a/i-0abc')).toBeUndefined();
    expect(novaServerOf('openstack:///not-a-uuid')).toBeUndefined();
    expect(novaServerOf(undefined)).toBeUndefined();
  });

  it('maps a node: state from Ready, pressure conditions, and no change when only heartbeats move', () => {
    const a = node('worker-1', UUID) as unknown as V1Node;
    const draft = nodeDraft(a)!;
    expect(draft).toMatchObject({ type: 'kubernetes.node', id: 'worker-1', state: 'READY', parents: [{ type: 'nova.instance', id: UUID }] });
    expect(draft.attributes).toEqual({ providerID: `openstack:///${UUID}`, conditions: [], internalIP: '10.0.0.5', kubeletVersion: 'v1.31.2', unschedulable: false });
    const later = structuredClone(a);
    for (const c of later.status!.conditions!) c.lastHeartbeatTime = new Date(Date.now() + 60_000);
    expect(nodeDraft(later)).toEqual(draft);
    const pressed = structuredClone(a);
    pressed.status!.conditions![0]!.status = 'True';
    expect(nodeDraft(pressed)!.attributes!.conditions).toEqual(['MemoryPressure']);
    expect(nodeDraft(node('w', UUID, 'False') as unknown as V1Node)!.state).toBe('NOT_READY');
    expect(nodeDraft({ metadata: { name: 'bare' } })).toMatchObject({ state: 'UNKNOWN', parents: [] });
  });

  it('maps a pod by uid onto its node; TERMINATING whether deletionTimestamp is a string (watch) or a Date (list)', () => {
    const p = { ...pod('shop', 'web-0', 'worker-1', 'Running', 3), metadata: { name: 'web-0', namespace: 'shop', uid: 'u-1' } } as unknown as V1Pod;
    expect(podDraft(p)).toMatchObject({
      type: 'kubernetes.pod',
      id: 'u-1',
      name: 'shop/web-0',
      state: 'RUNNING',
      parents: [{ type: 'kubernetes.node', id: 'worker-1' }],
      attributes: { namespace: 'shop', ready: true, restarts: 3, podIP: '10.244.0.7' },
    });
    const fromWatch = { ...p, metadata: { ...p.metadata, deletionTimestamp: '2026-11-30T04:00:00Z' } } as unknown as V1Pod;
    const fromList = { ...p, metadata: { ...p.metadata, deletionTimestamp: new Date('2026-11-30T04:00:00Z') } };
    expect(podDraft(fromWatch)!.state).toBe('TERMINATING');
    expect(podDraft(fromList)).toEqual(podDraft(fromWatch));
    const pending = { ...pod('shop', 'web-1', undefined, 'Pending'), metadata: { name: 'web-1', namespace: 'shop', uid: 'u-2' } } as unknown as V1Pod;
    expect(podDraft(pending)).toMatchObject({ state: 'PENDING', parents: [], attributes: { ready: false, waiting: 'ContainerCreating' } });
    expect(kubeRecordDraft({ kind: 'pod', object: { metadata: { name: 'x' } } })).toBeUndefined();
  });
});

describe('kubernetes options', () => {
  let dir: string;
  let api: KubeApiServer;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sync-k8s-opt-'));
    api = new KubeApiServer();
    api.url = 'http://127.0.0.1:1';
    await writeFile(join(dir, 'kubeconfig'), api.kubeconfig('staging'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('refuses a bad field with its path', async () => {
    await expect(createSource({ name: 'k', use: 'kubernetes', kubeconfig: 'kubeconfig', types: ['kubernetes.deployment'] }, { configDir: dir })).rejects.toThrow(
      'sources[0].types[0]: expected one of kubernetes.node, kubernetes.pod, kubernetes.service, got "kubernetes.deployment"',
    );
    await expect(createSource({ name: 'k', use: 'kubernetes', kubeconfig: 'kubeconfig', inCluster: true })).rejects.toThrow('sources[0].inCluster: inCluster and kubeconfig exclude each other');
    await expect(createSource({ name: 'k', use: 'kubernetes', kubeconfig: 'kubeconfig', pagesize: 10 })).rejects.toThrow('sources[0].pagesize: is not a known option here');
    await expect(createSource({ name: 'k', use: 'kubernetes', kubeconfig: 'kubeconfig', watchTimeout: '0s' })).rejects.toThrow('sources[0].watchTimeout: must be at least 1s');
  });

  it('names the kubeconfig file or context it cannot use', async () => {
    await expect(createSource({ name: 'k', use: 'kubernetes', kubeconfig: 'missing' }, { configDir: dir })).rejects.toThrow(`kubeconfig ${join(dir, 'missing')}:`);
    // The kubeconfig's content is read when the source starts (client-node loads then).
    await expect(loadKubeConfig({ kubeconfig: 'kubeconfig', context: 'prod', inCluster: false }, dir)).rejects.toThrow(`kubeconfig ${join(dir, 'kubeconfig')}: no context named "prod"`);
    expect((await loadKubeConfig({ kubeconfig: join(dir, 'kubeconfig'), context: 'staging', inCluster: false }, '/')).getCurrentCluster()?.server).toBe('http://127.0.0.1:1');
    const source = await createSource({ name: 'k', use: 'kubernetes', kubeconfig: 'kubeconfig', context: 'staging' }, { configDir: dir });
    expect(source.types).toEqual(['kubernetes.node', 'kubernetes.pod']);
  });

  it('inCluster needs the service environment of a pod', async () => {
    const saved = { host: process.env.KUBERNETES_SERVICE_HOST, port: process.env.KUBERNETES_SERVICE_PORT };
    delete process.env.KUBERNETES_SERVICE_HOST;
    delete process.env.KUBERNETES_SERVICE_PORT;
    try {
      await expect(createSource({ name: 'k', use: 'kubernetes', inCluster: true })).rejects.toThrow('inCluster: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set');
      process.env.KUBERNETES_SERVICE_HOST = '10.96.0.1';
      process.env.KUBERNETES_SERVICE_PORT = '443';
      const source = await createSource({ name: 'k', use: 'kubernetes', inCluster: true, types: ['kubernetes.service'] });
      expect(source.types).toEqual(['kubernetes.service']);
    } finally {
      if (saved.host === undefined) delete process.env.KUBERNETES_SERVICE_HOST;
      else process.env.KUBERNETES_SERVICE_HOST = saved.host;
      if (saved.port === undefined) delete process.env.KUBERNETES_SERVICE_PORT;
      else process.env.KUBERNETES_SERVICE_PORT = saved.port;
    }
  });
});
