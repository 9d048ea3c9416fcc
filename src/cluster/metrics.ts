/**
 * The cluster's Prometheus metrics, added to the service's registry.
 *
 * | metric                                         | type    | labels                 |
 * |------------------------------------------------|---------|------------------------|
 * | synchronizer_cluster_info                      | gauge   | cluster, instance_id   |
 * | synchronizer_cluster_connected                 | gauge   |                        |
 * | synchronizer_cluster_instances                 | gauge   |                        |
 * | synchronizer_cluster_lease_held                | gauge   | source                 |
 * | synchronizer_cluster_leases_{taken,lost,released}_total | counter |               |
 * | synchronizer_cluster_mirrored_messages_total   | counter |                        |
 *
 * `instance_id`, not `instance`: Prometheus gives every scraped series an `instance` label of its own.
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import type { ClusterHealth } from './index.js';

export function registerClusterMetrics(registry: Registry, health: () => ClusterHealth): void {
  const registers = [registry];
  new Gauge({ name: 'synchronizer_cluster_info', help: 'This instance of a cluster (always 1).', labelNames: ['cluster', 'instance_id'], registers, collect() { const h = health(); this.set({ cluster: h.name, instance_id: h.instance }, 1); } });
  new Gauge({ name: 'synchronizer_cluster_connected', help: '1 while the lease connection to the broker is up.', registers, collect() { this.set(health().connected ? 1 : 0); } });
  new Gauge({ name: 'synchronizer_cluster_instances', help: 'Live instances of the cluster, as the broker counts them.', registers, collect() { this.set(health().instances); } });
  new Gauge({
    name: 'synchronizer_cluster_lease_held',
    help: '1 when this instance holds the source\'s lease (runs it).',
    labelNames: ['source'],
    registers,
    collect() {
      for (const [source, held] of Object.entries(health().leases)) this.set({ source }, held ? 1 : 0);
    },
  });
  const counter = (name: string, help: string, read: (h: ClusterHealth) => number): void => {
    new Counter({ name, help, registers, collect() { this.reset(); this.inc(read(health())); } });
  };
  counter('synchronizer_cluster_leases_taken_total', 'Leases this instance took (each starts a source here).', (h) => h.taken);
  counter('synchronizer_cluster_leases_lost_total', 'Leases lost with the broker connection (their sources stopped).', (h) => h.lost);
  counter('synchronizer_cluster_leases_released_total', 'Leases given back to spread the sources over more instances.', (h) => h.released);
  counter('synchronizer_cluster_mirrored_messages_total', 'Messages of other instances folded into the baseline.', (h) => h.mirror?.folded ?? 0);
}
