// The status page: plain DOM and SVG over the service's /api/* (see src/status.ts). No build step.
const $ = (sel) => document.querySelector(sel);
const el = (tag, attrs = {}, ...children) => {
  const node = tag === 'svg' || ['g', 'rect', 'text', 'path', 'defs', 'marker', 'line', 'title'].includes(tag)
    ? document.createElementNS('http://www.w3.org/2000/svg', tag)
    : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'onclick') node.addEventListener('click', v);
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
};
const getJson = async (path) => {
  const res = await fetch(path, { cache: 'no-store' });
  if (!res.ok && res.status !== 404) throw new Error(`${path}: ${res.status}`);
  return res.json();
};
const entityLink = (ref) => el('a', { href: `#${encodeURIComponent(ref.key)}`, 'data-key': ref.key }, ref.name ? `${ref.key} (${ref.name})` : ref.key);

// Sources, counts, readiness: refreshed every few seconds and soon after events arrive.
let statusTimer;
async function refreshStatus() {
  clearTimeout(statusTimer);
  try {
    const status = await getJson('api/status');
    const rows = status.sources.map((s) => el('tr', { 'data-source': s.source },
      el('td', {}, s.source),
      el('td', { class: 'status' }, el('span', { class: `status-${s.status}` }, s.status)),
      el('td', { class: 'muted' }, new Date(s.since).toLocaleTimeString()),
      el('td', {}, s.error ? `${s.error}${s.retryInMs !== undefined ? ` (retry in ${Math.round(s.retryInMs / 1000)} s)` : ''}` : s.failures ? `${s.failures} failures` : '')));
    $('#sources tbody').replaceChildren(...rows);
    const counts = Object.entries(status.counts).sort(([a], [b]) => a.localeCompare(b));
    $('#counts tbody').replaceChildren(...counts.map(([type, n]) => el('tr', { 'data-type': type }, el('td', {}, type), el('td', { class: 'num' }, String(n)))));
    $('#entity-total').textContent = `${status.metrics.entities} in all`;
    const ready = status.sources.every((s) => s.ready);
    $('#ready').textContent = ready ? 'ready' : 'not ready';
    $('#ready').className = `badge ${ready ? 'ok' : 'bad'}`;
    $('#updated').textContent = `updated ${new Date(status.time).toLocaleTimeString()}`;
  } catch (e) {
    $('#updated').textContent = `cannot reach the service: ${e.message}`;
  }
  statusTimer = setTimeout(refreshStatus, 5000);
}
let soon;
const refreshSoon = () => {
  if (!soon) soon = setTimeout(() => { soon = undefined; refreshStatus(); }, 300);
};

// Latest events, pushed by the service (Server-Sent Events; the browser reconnects on its own).
const MAX_EVENTS = 200;
function follow() {
  const stream = new EventSource('api/events');
  stream.onopen = () => { $('#stream').textContent = 'live'; $('#events').replaceChildren(); };
  stream.onerror = () => { $('#stream').textContent = 'reconnecting…'; };
  stream.addEventListener('entity', (message) => {
    const e = JSON.parse(message.data);
    const li = el('li', { class: 'fresh', 'data-key': e.key, 'data-action': e.action },
      el('span', { class: 'muted' }, `${new Date(e.observedAt).toLocaleTimeString()} `),
      el('span', { class: `action-${e.action}` }, e.action.padEnd(7)),
      entityLink(e), ` ${e.state}`,
      el('span', { class: 'muted' }, ` ${e.origin}${e.changed ? ` [${e.changed.join(', ')}]` : ''}`));
    $('#events').prepend(li);
    while ($('#events').children.length > MAX_EVENTS) $('#events').lastElementChild.remove();
    refreshSoon();
  });
}

// Entity browser: search by key or name, then the entity with its parents and children as links.
async function search(q) {
  const { total, entities } = await getJson(`api/entities?q=${encodeURIComponent(q)}&limit=50`);
  $('#results').replaceChildren(...entities.map((e) => el('li', {}, entityLink(e), ` ${e.state}`)));
  if (total > entities.length) $('#results').append(el('li', { class: 'muted' }, `… ${total - entities.length} more`));
}
async function show(key) {
  const detail = await getJson(`api/entity?key=${encodeURIComponent(key)}`);
  if (detail.error) {
    $('#entity').replaceChildren(el('p', { class: 'muted' }, detail.error));
    return;
  }
  const { entity, parents, children } = detail;
  const refs = (list) => (list.length ? el('ul', {}, ...list.map((r) => el('li', {}, entityLink(r), r.known ? ` ${r.state}` : ' (not seen)'))) : el('span', { class: 'muted' }, 'none'));
  const attrs = Object.entries(entity.attributes).map(([k, v]) => `${k}: ${typeof v === 'string' ? v : JSON.stringify(v)}`).join('\n');
  $('#entity').replaceChildren(el('dl', {},
    el('dt', {}, 'key'), el('dd', { id: 'entity-key' }, entity.key),
    el('dt', {}, 'name'), el('dd', {}, entity.name ?? '—'),
    el('dt', {}, 'state'), el('dd', {}, entity.state),
    el('dt', {}, 'source'), el('dd', {}, `${entity.source}, observed ${entity.observedAt}`),
    el('dt', {}, 'parents'), el('dd', { id: 'entity-parents' }, refs(parents)),
    el('dt', {}, 'children'), el('dd', { id: 'entity-children' }, refs(children)),
    el('dt', {}, 'attributes'), el('dd', {}, el('pre', {}, attrs || '—'))));
  await topology(key);
}

// Topology: the entity in the middle, its ancestors above (instance → host → zone), what hangs
// off it below (ports, volumes, alarms), alarms on the ancestors beside them.
const LEVEL = { ancestor: -1, self: 0, descendant: 1, alarm: 1, related: 0 };
async function topology(key) {
  const graph = await getJson(`api/topology?key=${encodeURIComponent(key)}`);
  const svg = $('#topology');
  $('#topology-key').textContent = key;
  if (graph.error) return svg.replaceChildren();
  // Depth of each node: ancestors by how many parent steps up, the rest by steps down.
  const depth = new Map([[key, 0]]);
  for (let changed = true, i = 0; changed && i < 10; i++) {
    changed = false;
    for (const { from, to } of graph.edges) {
      if (depth.has(from) && !depth.has(to) && ['ancestor', 'related'].includes(graph.nodes.find((n) => n.key === to)?.role)) { depth.set(to, depth.get(from) - 1); changed = true; }
      if (depth.has(to) && !depth.has(from)) { depth.set(from, depth.get(to) + 1); changed = true; }
    }
  }
  const rows = new Map();
  for (const n of graph.nodes) {
    const d = depth.get(n.key) ?? LEVEL[n.role];
    if (!rows.has(d)) rows.set(d, []);
    rows.get(d).push(n);
  }
  const levels = [...rows.keys()].sort((a, b) => a - b);
  const W = 190, H = 40, GX = 18, GY = 46;
  const width = Math.max(600, ...[...rows.values()].map((r) => r.length * (W + GX) + GX));
  const height = levels.length * (H + GY) + GY;
  const pos = new Map();
  // Row by row, top down: each node goes under the mean x of what it is linked to above (fewer crossings).
  const linked = (key) => graph.edges.flatMap(({ from, to }) => (from === key ? [to] : to === key ? [from] : []));
  levels.forEach((d, row) => {
    const nodes = rows.get(d);
    const centre = (n) => {
      const xs = linked(n.key).filter((k) => pos.has(k)).map((k) => pos.get(k).x);
      return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : n.role === 'self' ? -1 : Infinity;
    };
    nodes.sort((a, b) => centre(a) - centre(b));
    const start = (width - nodes.length * (W + GX) + GX) / 2;
    nodes.forEach((n, i) => pos.set(n.key, { x: start + i * (W + GX), y: GY / 2 + row * (H + GY) }));
  });
  svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
  const defs = el('defs', {}, el('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: '10', refY: '5', markerWidth: '7', markerHeight: '7', orient: 'auto-start-reverse' }, el('path', { d: 'M 0 0 L 10 5 L 0 10 z', fill: '#9aa0a6' })));
  // An edge goes from a child to its parent: drawn from the child's top or bottom edge to the parent's.
  const edges = graph.edges.filter((e) => pos.has(e.from) && pos.has(e.to)).map(({ from, to }) => {
    const a = pos.get(from), b = pos.get(to);
    const down = b.y > a.y;
    const [x1, y1, x2, y2] = [a.x + W / 2, down ? a.y + H : a.y, b.x + W / 2, down ? b.y : b.y + H];
    return el('path', { class: 'edge', d: `M ${x1} ${y1} C ${x1} ${(y1 + y2) / 2}, ${x2} ${(y1 + y2) / 2}, ${x2} ${y2}`, 'data-from': from, 'data-to': to });
  });
  const nodes = graph.nodes.map((n) => {
    const { x, y } = pos.get(n.key);
    const label = n.name ?? n.key.slice(n.key.indexOf(':') + 1);
    const g = el('g', { class: `node ${n.role}`, 'data-key': n.key, transform: `translate(${x} ${y})`, onclick: () => { location.hash = encodeURIComponent(n.key); } },
      el('rect', { width: String(W), height: String(H) }),
      el('text', { x: '8', y: '15', class: 'type' }, `${n.type ?? n.key.slice(0, n.key.indexOf(':'))}${n.state ? ` · ${n.state}` : ''}`),
      el('text', { x: '8', y: '31' }, label.length > 28 ? `${label.slice(0, 27)}…` : label));
    g.append(el('title', {}, n.key));
    return g;
  });
  svg.replaceChildren(defs, ...edges, ...nodes);
}

$('#search').addEventListener('submit', (e) => { e.preventDefault(); search($('#q').value).catch((err) => { $('#results').textContent = err.message; }); });
window.addEventListener('hashchange', () => show(decodeURIComponent(location.hash.slice(1))));
refreshStatus();
follow();
search('');
if (location.hash.length > 1) show(decodeURIComponent(location.hash.slice(1)));
