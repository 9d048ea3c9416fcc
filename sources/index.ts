import type { SourcePlugin } from '../src/source.js';
import alertmanagerSource from './alertmanager.js';
import alertmanagerWebhookSource from './alertmanager-webhook.js';
import collectdSource from './collectd.js';
import eventsSource from './events.js';
import prometheusSource from './prometheus.js';
import zabbixSource from './zabbix.js';
import nagiosSource from './nagios.js';
import openstackNotificationsSource from './openstack/notifications.js';
import staticSource from './static.js';
import openstackNovaSource from './openstack/nova.js';
import openstackNeutronSource from './openstack/neutron.js';
import openstackCinderSource from './openstack/cinder.js';
import openstackHeatSource from './openstack/heat.js';
import { openstackAodhSource, openstackIronicSource, openstackOctaviaSource, openstackTroveSource } from './openstack/more.js';
import kubernetesSource from './kubernetes.js';

/**
 * The built-in sources, by the name a config's `use:` gives them. A `use:` that is not listed
 * here is a module path (relative to the config file) whose default export is a SourcePlugin.
 */
export const builtinSources: Readonly<Record<string, SourcePlugin<unknown>>> = {
  static: staticSource as SourcePlugin<unknown>,
  nagios: nagiosSource as SourcePlugin<unknown>,
  alertmanager: alertmanagerSource as SourcePlugin<unknown>,
  'alertmanager.webhook': alertmanagerWebhookSource as SourcePlugin<unknown>,
  collectd: collectdSource as SourcePlugin<unknown>,
  events: eventsSource as SourcePlugin<unknown>,
  prometheus: prometheusSource as SourcePlugin<unknown>,
  zabbix: zabbixSource as SourcePlugin<unknown>,
  'openstack.notifications': openstackNotificationsSource as SourcePlugin<unknown>,
  'openstack.nova': openstackNovaSource as SourcePlugin<unknown>,
  'openstack.neutron': openstackNeutronSource as SourcePlugin<unknown>,
  'openstack.cinder': openstackCinderSource as SourcePlugin<unknown>,
  'openstack.heat': openstackHeatSource as SourcePlugin<unknown>,
  ...{ 'openstack.aodh': openstackAodhSource, 'openstack.octavia': openstackOctaviaSource, 'openstack.ironic': openstackIronicSource, 'openstack.trove': openstackTroveSource },
  kubernetes: kubernetesSource as SourcePlugin<unknown>,
};

export { staticSource, nagiosSource, alertmanagerSource, alertmanagerWebhookSource, collectdSource, eventsSource, prometheusSource, zabbixSource, openstackNotificationsSource, openstackNovaSource, openstackNeutronSource, openstackCinderSource, openstackHeatSource };
export { default as kubernetesSource } from './kubernetes.js';
