import type { SourcePlugin } from '../../src/source.js';
import aodh from './aodh.js';
import ironic from './ironic.js';
import octavia from './octavia.js';
import trove from './trove.js';

/** The OpenStack sources beyond the core four (issue 14), registered by one line in sources/index.ts. */
export const openstackAodhSource = aodh as SourcePlugin<unknown>;
export const openstackOctaviaSource = octavia as SourcePlugin<unknown>;
export const openstackIronicSource = ironic as SourcePlugin<unknown>;
export const openstackTroveSource = trove as SourcePlugin<unknown>;
