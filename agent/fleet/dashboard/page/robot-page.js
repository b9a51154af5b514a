import { h } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import htm from 'htm';
import { liveness, seenAgo } from '../../fleet-select.ts';
import { Confirm, Outcomes } from './actions.js';
import { send } from './connection.js';
import { ago, bytes } from './format.js';
import { changed, store } from './store.js';

const html = htm.bind(h);

/** One robot: everything its retained sections say, its live events, its log on demand. */
export function RobotPage({ robot, now }) {
  useEffect(() => {
    store.watching = robot;
    store.sections = {};
    store.events = [];
    store.logs = null;
    send({ t: 'watch', robot });
    changed();
    return () => {
      store.watching = null;
      send({ t: 'watch', robot: null });
    };
  }, [robot]);
  const [asking, setAsking] = useState(null);
  const r = store.robots.get(robot);
  const s = store.sections;
  const operator = store.role === 'operator';
  const live = r ? liveness(r, now, store.staleAfterMs) : 'unknown';
  return html`
    <p><a href="#/">← the fleet</a></p>
    <h1 class="robot-name">${robot} <span class=${`badge live-${live}`}>${live}</span>
      ${r?.state ? html`<span class=${`badge st-${r.state.status}`}>${r.state.status}</span>` : null}</h1>
    <p class="sub">last seen ${ago(r ? seenAgo(r, now) : null)}${r?.state ? ` · agent ${r.state.version}` : ''}
      ${r?.state?.why.length ? ` · ${r.state.why.join('; ')}` : ''}</p>
    <div class="panels">
      <${Devices} d=${s.devices} />
      <${Containers} list=${s.containers} />
      <${Images} list=${s.images} />
      <${Update} u=${s.update} />
      <${Snapshots} list=${s.snapshots} operator=${operator} restore=${(snap) => setAsking(snap)} />
      <${Logs} robot=${robot} containers=${s.containers} />
      <${Events} />
    </div>
    ${
      asking
        ? html`<${Confirm} command="restore" robots=${[robot]} close=${() => setAsking(null)}
      preset=${{ container: asking.container, image: asking.image }} />`
        : null
    }
    <${Outcomes} />`;
}

function Panel({ title, name, children }) {
  return html`<section class="panel" data-panel=${name}><h2>${title}</h2>${children}</section>`;
}

function Devices({ d }) {
  if (!d)
    return html`<${Panel} title="Devices" name="devices"><p class="muted">waiting for the robot's devices…</p><//>`;
  const l = d.lidar;
  return html`<${Panel} title="Devices" name="devices">
    <dl>
      <dt>Lidar</dt><dd data-device="lidar">${
        l.present
          ? html`present at ${l.path ?? l.node}
        ${l.info ? html`<br />${l.info.modelName} · firmware ${l.info.firmware} · serial <code>${l.info.serial}</code>` : null}
        <br />health <b class=${`h-${l.health.status}`}>${l.health.status}</b>
        ${l.health.errorCode !== null ? ` (0x${l.health.errorCode.toString(16)})` : ''}
        ${l.health.checkedAt ? ` · checked ${l.health.checkedAt}` : ''}`
          : 'absent'
      }</dd>
      <dt>Camera</dt><dd data-device="camera">${d.camera.present ? `present${d.camera.rgb ? ` (${d.camera.rgb.video.join(', ')})` : ''}` : 'absent'}</dd>
      <dt>Board</dt><dd data-device="board">${d.board.present ? `present at ${d.board.path ?? d.board.node}` : 'absent'}</dd>
    </dl><//>`;
}

/**
 * A panel holding one table of a state section: "waiting…" until the section has come, `empty`
 * for an empty list, else a row per item.
 */
function TablePanel({ title, name, list, empty, head, row }) {
  let body;
  if (!list) body = html`<p class="muted">waiting…</p>`;
  else if (list.length === 0 && empty) body = html`<p class="muted">${empty}</p>`;
  else
    body = html`<table><thead><tr>${head.map((h) => html`<th>${h}</th>`)}</tr></thead><tbody>${list.map(row)}</tbody></table>`;
  return html`<${Panel} title=${title} name=${name}>${body}<//>`;
}

function Containers({ list }) {
  const row = (c) => html`<tr data-container=${c.name}><td>${c.name}</td>
        <td>${c.state}${c.health ? ` (${c.health})` : ''}${c.error ? html`<br /><span class="badge st-error">${c.error.code}</span>` : null}</td>
        <td>${c.runImage ?? c.image}${c.desired.image && c.desired.image !== (c.runImage ?? c.image) ? html`<br />wanted ${c.desired.image}` : null}</td>
        <td title=${c.devices.map((d) => `${d.host} → ${d.container}`).join('\n')}>${[...new Set(c.devices.map((d) => d.device))].join(', ') || '—'}${c.missingDevices.length ? html`<br />missing ${c.missingDevices.join(', ')}` : null}</td>
      </tr>`;
  const head = ['name', 'state', 'image', 'devices inside'];
  return html`<${TablePanel} title="Containers" name="containers" list=${list} empty="none configured" head=${head} row=${row} />`;
}

function Images({ list }) {
  const row = (
    i,
  ) => html`<tr data-image=${i.tags[0] ?? i.id}><td>${i.tags.join(', ') || i.id.slice(7, 19)}</td><td>${bytes(i.size)}</td>
        <td>${bytes(i.sharedSize)}</td><td>${bytes(i.uniqueSize)}</td>
        <td><details><summary>${i.layers.length}</summary><ol class="layers">
          ${i.layers.map((l) => html`<li><code title=${l}>${l.replace(/^sha256:/, '').slice(0, 12)}</code></li>`)}</ol></details></td><td>${i.containers}</td></tr>`;
  const head = ['image', 'size', 'shared', 'own', 'layers', 'used by'];
  return html`<${TablePanel} title="Images" name="images" list=${list} head=${head} row=${row} />`;
}

function Update({ u }) {
  if (!u) return html`<${Panel} title="Update" name="update"><p class="muted">waiting…</p><//>`;
  const last = u.lastResult;
  return html`<${Panel} title="Update" name="update">
    <p>status <b>${u.status}</b>${u.container ? ` · ${u.container}` : ''}${u.to ? ` → ${u.to}` : ''}
      ${u.waitingFor ? ` · waiting for the ${u.waitingFor}` : ''}</p>
    ${
      last
        ? html`<p>last: <b>${last.status}</b> ${last.container} ${last.from ?? '—'} → ${last.to} at ${last.at}
      ${last.error ? html` <span class="badge st-error">${last.error.code}</span> ${last.error.message}` : null}</p>`
        : html`<p class="muted">no update yet</p>`
    }<//>`;
}

function Snapshots({ list, operator, restore }) {
  const row = (s) => html`<tr data-snapshot=${s.image}><td>${s.image}</td><td>${s.container}</td><td>${s.created}</td>
        <td>${bytes(s.layerBytes)}</td><td>${s.pushed ? 'yes' : 'no'}</td>
        <td>${operator ? html`<button data-restore=${s.image} onClick=${() => restore(s)}>Restore…</button>` : null}</td></tr>`;
  const head = ['image', 'container', 'created', 'size', 'pushed', ''];
  return html`<${TablePanel} title="Snapshots" name="snapshots" list=${list} empty="none" head=${head} row=${row} />`;
}

function Logs({ robot, containers }) {
  const [name, setName] = useState('');
  const chosen = name || containers?.[0]?.name || '';
  const logs = store.logs && store.logs.robot === robot ? store.logs : null;
  return html`<${Panel} title="Log" name="logs">
    <select aria-label="container" onChange=${(e) => setName(e.currentTarget.value)}>
      ${(containers ?? []).map((c) => html`<option value=${c.name} selected=${c.name === chosen}>${c.name}</option>`)}
    </select>
    <button data-logs disabled=${!chosen} onClick=${() => send({ t: 'logs', robot, name: chosen, tail: 100 })}>Last 100 lines</button>
    ${
      logs
        ? logs.ok
          ? html`<pre class="log">${logs.lines.join('\n') || '(empty)'}</pre>`
          : html`<p><span class="badge st-error">${logs.error.code}</span> ${logs.error.message}</p>`
        : null
    }<//>`;
}

function Events() {
  return html`<${Panel} title="Live events" name="events">
    ${
      store.events.length === 0
        ? html`<p class="muted">none since this page opened</p>`
        : html`<ol class="events">
      ${store.events.slice(0, 50).map(
        (e) => html`<li data-event=${e.type}><time>${e.ts?.slice(11, 19)}</time> <b>${e.type}</b>${' '}
        ${e.container ?? e.name ?? e.image ?? ''}${e.error ? ` ${e.error.code}` : ''}
        ${typeof e.current === 'number' && e.total ? ` ${Math.round((e.current / e.total) * 100)} %` : ''}</li>`,
      )}
    </ol>`
    }<//>`;
}
