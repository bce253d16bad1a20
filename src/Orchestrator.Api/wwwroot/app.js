// The dashboard: a tenant's VMs (live from the event stream), a VM's page (resources, CPU chart, events, console),
// and an operator's view of the cluster. Everything goes through the /v1 API with the key in the Authorization header;
// every value from the API reaches the page as text (textContent), never as markup.

const KEY = 'orchestrator.key';
const view = document.getElementById('view');
let session = null; // { key, admin }
let teardown = []; // what the current view must stop when it is left (streams, timers, sockets)

// ---------- the API ----------

class ApiError extends Error {
  constructor(status, problem) {
    super(describe(status, problem));
    this.status = status;
  }
}

/** The API's own words: its detail, and each field's messages. */
function describe(status, problem) {
  if (status === 404) return 'not found';
  if (!problem) return `request failed (${status})`;
  const fields = problem.errors ? Object.entries(problem.errors).map(([f, m]) => `${f}: ${m.join(', ')}`) : [];
  return [problem.detail || problem.title || `request failed (${status})`, ...fields.filter(f => !(problem.detail || '').includes(f))].join('\n');
}

async function api(method, path, body, key = session?.key) {
  const headers = { Authorization: `Bearer ${key}` };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await response.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { json = null; }
  if (!response.ok) throw new ApiError(response.status, json);
  return json;
}

/**
 * Follows a Server-Sent Events stream with fetch (an EventSource cannot send the key's header), resuming after the
 * last event seen when the connection drops. Returns a function that stops it.
 */
function follow(path, onEvent) {
  const abort = new AbortController();
  let after = null;
  (async () => {
    while (!abort.signal.aborted) {
      try {
        const url = new URL(path, location.origin);
        if (after !== null) {
          url.searchParams.delete('last');
          url.searchParams.set('after', after);
        }
        const response = await fetch(url, { headers: { Authorization: `Bearer ${session.key}` }, signal: abort.signal });
        if (!response.ok) return;
        const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value;
          let end;
          while ((end = buffer.indexOf('\n\n')) >= 0) {
            const block = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            const data = block.split('\n').filter(l => l.startsWith('data: ')).map(l => l.slice(6)).join('\n');
            if (!data) continue;
            const event = JSON.parse(data);
            after = event.id;
            onEvent(event);
          }
        }
      } catch (e) {
        if (abort.signal.aborted) return;
      }
      await new Promise(r => setTimeout(r, 1000));
    }
  })();
  return () => abort.abort();
}

// ---------- building the page ----------

/** An element with attributes and children; strings become text nodes. */
function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name.startsWith('on')) node.addEventListener(name.slice(2), value);
    else if (value !== false && value !== null && value !== undefined) node.setAttribute(name, value === true ? '' : value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function svg(tag, attributes = {}) {
  const node = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  return node;
}

function show(...children) {
  view.replaceChildren(...children);
}

function leaveView() {
  for (const stop of teardown) stop();
  teardown = [];
}

const millicores = m => (m === null || m === undefined ? '—' : `${(m / 1000).toFixed(2)} CPU`);
const stateCell = state => el('span', { class: `state state-${state}`, 'data-state': state }, state);
const eventLine = e => el('li', {}, `#${e.id} ${e.at ? new Date(e.at).toLocaleTimeString() : ''} ${e.type}${e.tenant ? ` [${e.tenant}]` : ''}`);

// ---------- tenant: VM list ----------

async function vmList() {
  const error = el('p', { class: 'error', id: 'create-error', role: 'alert' });
  const rows = el('tbody', { id: 'vm-rows' });
  const images = el('select', { name: 'image', id: 'create-image' });
  const form = el('form', { class: 'inline', id: 'create-form' },
    el('label', {}, 'Name', el('input', { name: 'name', id: 'create-name', required: true })),
    el('label', {}, 'vCPUs', el('input', { name: 'vcpus', id: 'create-vcpus', type: 'number', value: '1' })),
    el('label', {}, 'Memory MiB', el('input', { name: 'memoryMiB', id: 'create-memory', type: 'number', value: '128' })),
    el('label', {}, 'Image', images),
    el('button', { type: 'submit', id: 'create' }, 'Create'));
  show(el('h1', {}, 'Virtual machines'), form, error,
    el('table', {}, el('thead', {}, el('tr', {}, ['Name', 'State', 'vCPUs', 'Memory', 'Host', 'Actions'].map(h => el('th', {}, h)))), rows));

  api('GET', '/v1/images').then(list => images.replaceChildren(...list.map(i => el('option', { value: i.name }, i.name))),
    e => { error.textContent = e.message; });

  form.addEventListener('submit', async event => {
    event.preventDefault();
    error.textContent = '';
    const data = new FormData(form);
    // Numbers as typed: the API, not the page, says what is out of range.
    const number = name => (data.get(name) === '' ? null : Number(data.get(name)));
    try {
      await api('POST', '/v1/vms', { name: data.get('name'), vcpus: number('vcpus'), memoryMiB: number('memoryMiB'), image: data.get('image') });
      form.reset();
      refresh();
    } catch (e) {
      error.textContent = e.message;
    }
  });

  const action = (vm, verb, method = 'POST') => el('button', {
    type: 'button', class: 'quiet', 'data-action': verb,
    onclick: async () => {
      error.textContent = '';
      try {
        await api(method, method === 'DELETE' ? `/v1/vms/${encodeURIComponent(vm.name)}` : `/v1/vms/${encodeURIComponent(vm.name)}/${verb}`);
        refresh();
      } catch (e) { error.textContent = `${verb} ${vm.name}: ${e.message}`; }
    },
  }, verb);

  let pending = null;
  async function refresh() {
    clearTimeout(pending);
    pending = null;
    try {
      const vms = await api('GET', '/v1/vms');
      rows.replaceChildren(...vms.map(vm => el('tr', { 'data-vm': vm.name },
        el('td', {}, el('a', { href: `#/vm/${encodeURIComponent(vm.name)}` }, vm.name), session.admin ? el('span', { class: 'muted' }, ` (${vm.tenant})`) : null),
        el('td', {}, stateCell(vm.paused ? 'Paused' : vm.state)),
        el('td', {}, vm.vcpus), el('td', {}, `${vm.memoryMiB} MiB`), el('td', {}, vm.host || '—'),
        el('td', { class: 'actions' }, action(vm, 'start'), action(vm, 'stop'), action(vm, vm.paused ? 'resume' : 'pause'), action(vm, 'delete', 'DELETE')))));
      if (vms.length === 0) rows.append(el('tr', {}, el('td', { colspan: 6, class: 'muted' }, 'No VMs yet.')));
    } catch (e) {
      error.textContent = e.message;
    }
  }

  await refresh();
  // Live: each VM event the key may see refreshes the list (coalesced, so a burst costs one request).
  teardown.push(follow('/v1/events?last=1', event => {
    if (event.vmId && pending === null) pending = setTimeout(refresh, 100);
  }));
}

// ---------- tenant: one VM ----------

async function vmPage(name) {
  let vm;
  try {
    vm = await api('GET', `/v1/vms/${encodeURIComponent(name)}`);
  } catch (e) {
    // Another tenant's VM and a missing one read the same: the API answers 404 for both.
    show(el('p', { class: 'not-found', id: 'not-found' }, e.status === 404 || e.status === 403 ? 'not found' : e.message));
    return;
  }

  const facts = el('dl', { class: 'facts', id: 'vm-facts' });
  const chart = svg('svg', { class: 'chart', viewBox: '0 0 600 160', id: 'cpu-chart' });
  const events = el('ol', { class: 'events', id: 'vm-events' });
  const consoleOut = el('pre', { class: 'console', id: 'console', tabindex: '0' });
  const consoleState = el('span', { class: 'muted', id: 'console-state' }, 'closed');
  const typed = el('input', { id: 'console-input', placeholder: 'type a line, Enter sends it', disabled: true });
  const open = el('button', { type: 'button', id: 'console-open' }, 'Open console');
  show(el('h1', {}, `VM ${vm.name}`), facts,
    el('h2', {}, 'CPU ', el('span', { class: 'legend-used' }, '— used'), ' ', el('span', { class: 'legend-entitled' }, '- - entitled')), chart,
    el('div', { class: 'grid2' },
      el('div', {}, el('h2', {}, 'Events'), events),
      el('div', {}, el('h2', {}, 'Serial console ', consoleState), el('p', {}, open), consoleOut, typed)));

  const samples = [];
  const render = current => {
    const r = current.resources;
    const rows = [
      ['State', stateCell(current.paused ? 'Paused' : current.state)], ['Reason', current.reason || '—'],
      ['vCPUs', current.vcpus], ['Memory', `${current.memoryMiB} MiB`], ['Image', current.image], ['Host', current.host || '—'],
      ['CPU shares', r.cpuShares], ['Reservation', millicores(r.cpuReservationMillicores)], ['Limit', millicores(r.cpuLimitMillicores)],
      ['Entitled', millicores(r.entitledCpuMillicores)], ['Used', millicores(r.usedCpuMillicores)], ['Demand', millicores(r.demandCpuMillicores)],
      ['Restarts', current.restarts], ['Created', new Date(current.createdAt).toLocaleString()],
    ];
    facts.replaceChildren(...rows.flatMap(([k, v]) => [el('dt', {}, k), el('dd', { 'data-fact': k }, v)]));
    samples.push({ used: r.usedCpuMillicores ?? 0, entitled: r.entitledCpuMillicores ?? 0 });
    if (samples.length > 60) samples.shift();
    drawChart(chart, samples, current.vcpus * 1000);
  };
  render(vm);

  const poll = setInterval(async () => {
    try { render(await api('GET', `/v1/vms/${encodeURIComponent(name)}`)); } catch { /* the next poll tries again */ }
  }, 2000);
  teardown.push(() => clearInterval(poll));
  teardown.push(follow(`/v1/events?vm=${encodeURIComponent(name)}&last=50`, e => {
    events.prepend(eventLine(e));
  }));

  let socket = null;
  teardown.push(() => socket?.close());
  open.addEventListener('click', async () => {
    socket?.close();
    consoleState.textContent = 'connecting…';
    try {
      // The key never goes in a URL: a ticket, good once for a few seconds, opens the socket.
      const { ticket } = await api('POST', `/v1/vms/${encodeURIComponent(name)}/console/ticket`);
      const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
      socket = new WebSocket(`${scheme}//${location.host}/v1/console?ticket=${encodeURIComponent(ticket)}`);
    } catch (e) {
      consoleState.textContent = e.message;
      return;
    }
    socket.binaryType = 'arraybuffer';
    const decoder = new TextDecoder();
    socket.onmessage = message => {
      if (typeof message.data === 'string') {
        const notice = JSON.parse(message.data);
        consoleState.textContent = notice.type + (notice.mode ? ` (${notice.mode})` : '');
        typed.disabled = notice.mode !== 'write';
        return;
      }
      // A <pre>, not a terminal: carriage returns and escape sequences (colours, cursor queries) are left out.
      consoleOut.append(decoder.decode(message.data, { stream: true }).replace(/\r|\x1b\[[0-9;?]*[A-Za-z]/g, ''));
      consoleOut.scrollTop = consoleOut.scrollHeight;
    };
    socket.onclose = () => { consoleState.textContent = 'closed'; typed.disabled = true; };
  });
  typed.addEventListener('keydown', event => {
    if (event.key === 'Enter' && socket?.readyState === WebSocket.OPEN) {
      socket.send(new TextEncoder().encode(`${typed.value}\r`));
      typed.value = '';
    }
  });
}

/** Used (solid) and entitled (dashed) CPU over the last samples, on a scale of the VM's vCPUs. */
function drawChart(chart, samples, scale) {
  const width = 600, height = 160, top = Math.max(scale, ...samples.map(s => Math.max(s.used, s.entitled)), 1);
  const x = i => (samples.length < 2 ? 0 : (i / 59) * width);
  const y = v => height - 14 - (v / top) * (height - 28);
  const line = key => samples.map((s, i) => `${x(i).toFixed(1)},${y(s[key]).toFixed(1)}`).join(' ');
  const label = svg('text', { x: 4, y: 12 });
  label.textContent = `${(top / 1000).toFixed(2)} CPU`;
  chart.replaceChildren(svg('line', { class: 'axis', x1: 0, y1: y(0), x2: width, y2: y(0) }), label,
    svg('polyline', { class: 'entitled', points: line('entitled') }), svg('polyline', { class: 'used', points: line('used') }));
}

// ---------- admin: the cluster ----------

async function adminPage() {
  if (!session.admin) {
    show(el('p', { class: 'not-found', id: 'not-found' }, 'not found'));
    return;
  }

  const hosts = el('tbody', { id: 'host-rows' });
  const tenants = el('tbody', { id: 'tenant-rows' });
  const events = el('ol', { class: 'events', id: 'cluster-events' });
  const error = el('p', { class: 'error', role: 'alert' });
  const bar = (value, max) => el('span', {}, el('meter', { min: 0, max: Math.max(max, 1), value, high: max * 0.9 }), ` ${value} / ${max}`);
  const quota = (value, max) => (max === null || max === undefined ? `${value} (no quota)` : bar(value, max));
  show(el('h1', {}, 'Cluster'), error,
    el('h2', {}, 'Hosts'),
    el('table', {}, el('thead', {}, el('tr', {}, ['Host', 'State', 'Driver', 'VMs', 'vCPUs allocated', 'Memory allocated (MiB)'].map(h => el('th', {}, h)))), hosts),
    el('h2', {}, 'Tenants'),
    el('table', {}, el('thead', {}, el('tr', {}, ['Tenant', 'VMs', 'vCPUs', 'Memory (MiB)', 'Status'].map(h => el('th', {}, h)))), tenants),
    el('h2', {}, 'Cluster events'), events);

  async function refresh() {
    try {
      const [hostList, tenantList] = await Promise.all([api('GET', '/v1/hosts'), api('GET', '/v1/tenants')]);
      hosts.replaceChildren(...hostList.map(h => el('tr', { 'data-host': h.id },
        el('td', {}, h.id), el('td', {}, stateCell(h.state)), el('td', {}, `${h.driver}${h.accelerator ? ` (${h.accelerator})` : ''}`),
        el('td', {}, h.vms), el('td', {}, bar(h.allocatedVcpus, h.cpus)), el('td', {}, bar(h.allocatedMemoryMiB, h.memoryMiB)))));
      tenants.replaceChildren(...tenantList.map(t => el('tr', { 'data-tenant': t.id },
        el('td', {}, t.id), el('td', {}, quota(t.usage.vms, t.quota.vms)), el('td', {}, quota(t.usage.vcpus, t.quota.vcpus)),
        el('td', {}, quota(t.usage.memoryMiB, t.quota.memoryMiB)), el('td', {}, t.disabled ? 'disabled' : 'active'))));
    } catch (e) {
      error.textContent = e.message;
    }
  }

  await refresh();
  const timer = setInterval(refresh, 5000);
  teardown.push(() => clearInterval(timer));
  teardown.push(follow('/v1/events?last=50', e => {
    events.prepend(eventLine(e));
    while (events.children.length > 200) events.lastChild.remove();
  }));
}

// ---------- signing in, routing ----------

async function signIn(key) {
  await api('GET', '/v1/vms', undefined, key); // 401/403 here: the key is not accepted
  let admin = false;
  try { await api('GET', '/v1/hosts', undefined, key); admin = true; } catch { admin = false; }
  session = { key, admin };
  sessionStorage.setItem(KEY, key);
}

function signOut() {
  leaveView();
  session = null;
  sessionStorage.removeItem(KEY);
  location.hash = '#/';
  route();
}

async function route() {
  leaveView();
  const signedIn = session !== null;
  document.getElementById('sign-in').hidden = signedIn;
  document.getElementById('nav').hidden = !signedIn;
  if (!signedIn) {
    view.replaceChildren();
    return;
  }

  document.getElementById('nav-admin').hidden = !session.admin;
  document.getElementById('who').textContent = session.admin ? 'operator' : 'tenant';
  const hash = location.hash.replace(/^#/, '') || '/';
  const vm = hash.match(/^\/vm\/(.+)$/);
  if (vm) await vmPage(decodeURIComponent(vm[1]));
  else if (hash === '/admin') await adminPage();
  else await vmList();
}

document.getElementById('sign-in-form').addEventListener('submit', async event => {
  event.preventDefault();
  const error = document.getElementById('sign-in-error');
  error.textContent = '';
  const input = document.getElementById('key');
  try {
    await signIn(input.value.trim());
    input.value = '';
    route();
  } catch (e) {
    error.textContent = e.status === 401 || e.status === 403 ? 'That key is not accepted.' : e.message;
  }
});
document.getElementById('sign-out').addEventListener('click', signOut);
window.addEventListener('hashchange', route);

const saved = sessionStorage.getItem(KEY);
if (saved) {
  signIn(saved).then(route, () => { sessionStorage.removeItem(KEY); route(); });
} else {
  route();
}
