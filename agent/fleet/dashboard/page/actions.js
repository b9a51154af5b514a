import { h } from 'preact';
import { useState } from 'preact/hooks';
import htm from 'htm';
import { send } from './connection.js';
import { newId, percent } from './format.js';
import { startAction, store } from './store.js';

const html = htm.bind(h);

/** What each button asks for before it is confirmed. */
const KINDS = {
  update: { label: 'Update…', fields: ['container', 'image'], verb: 'Update' },
  snapshot: { label: 'Snapshot…', fields: ['container', 'push'], verb: 'Snapshot' },
  restart: { label: 'Restart', fields: ['name'], verb: 'Restart' },
  start: { label: 'Start', fields: ['name'], verb: 'Start' },
  stop: { label: 'Stop', fields: ['name'], verb: 'Stop' },
};

/** Sends an action (after its confirmation) and registers it so its outcomes are shown. */
export function act(command, args, robots) {
  const id = newId(command);
  startAction(id, command, args, robots);
  send({ t: 'act', id, command, robots, args });
  return id;
}

export function ActionBar({ selected, clear }) {
  const [asking, setAsking] = useState(null);
  return html`
    <section class="actions" aria-label="actions">
      <span class="selcount" data-selected=${selected.length}>${selected.length} selected</span>
      ${Object.entries(KINDS).map(
        ([command, k]) => html`
        <button class="act" data-action=${command} disabled=${selected.length === 0}
          onClick=${() => setAsking(command)}>${k.label}</button>`,
      )}
      ${selected.length ? html`<button class="link" onClick=${clear}>clear selection</button>` : null}
    </section>
    ${asking ? html`<${Confirm} command=${asking} robots=${selected} close=${() => setAsking(null)} />` : null}
    <${Outcomes} />`;
}

/** The confirmation: what will be sent, to how many robots, with the arguments it needs. */
export function Confirm({ command, robots, close, preset = {} }) {
  const k = KINDS[command] ?? { fields: Object.keys(preset), verb: command[0].toUpperCase() + command.slice(1) };
  const [args, setArgs] = useState({ container: 'ros', name: 'ros', image: '', push: false, ...preset });
  const body = {};
  for (const f of k.fields) {
    if (f === 'push') {
      if (args.push) body.push = true;
    } else body[f] = args[f];
  }
  const missing = k.fields.filter((f) => f !== 'push' && !String(args[f] ?? '').trim());
  const go = () => {
    act(command, body, robots);
    close();
  };
  return html`
    <div class="dialog-back"><div class="dialog" role="dialog" aria-label="confirm action">
      <h2>${k.verb} ${robots.length === 1 ? robots[0] : `${robots.length} robots`}?</h2>
      ${k.fields.map((f) =>
        f === 'push'
          ? html`<label><input type="checkbox" name="push" checked=${args.push}
            onChange=${(e) => setArgs({ ...args, push: e.currentTarget.checked })} /> push to the fleet registry</label>`
          : html`<label>${f} <input name=${f} value=${args[f]} readonly=${preset[f] !== undefined}
            list=${f === 'image' ? 'known-images' : undefined}
            onInput=${(e) => setArgs({ ...args, [f]: e.currentTarget.value })} /></label>`,
      )}
      <datalist id="known-images">${knownImages().map((i) => html`<option value=${i} />`)}</datalist>
      <p class="note">Each robot checks this against its own configuration and may refuse it.</p>
      <div class="buttons">
        <button class="cancel" onClick=${close}>Cancel</button>
        <button class="confirm" data-confirm=${command} disabled=${missing.length > 0} onClick=${go}>${k.verb}</button>
      </div>
    </div></div>`;
}

/** Every action of this session (and of other pages): per robot, progress then outcome. */
export function Outcomes() {
  const actions = [...store.actions.values()].reverse();
  if (actions.length === 0) return null;
  return html`<section class="outcomes" aria-label="action outcomes">
    ${actions.map((a) => {
      const rows = [...a.robots.entries()];
      const done = rows.filter(([, o]) => o.phase === 'done').length;
      const failed = rows.filter(([, o]) => o.phase === 'done' && !o.ok).length;
      return html`<details class="outcome" data-action-id=${a.id} open=${rows.length <= 10}>
        <summary>${a.command} ${describe(a.args)} — ${done}/${rows.length} done${failed ? `, ${failed} failed` : ''}
          ${a.refused ? html` <span class="badge st-error">${a.refused.code}: ${a.refused.message}</span>` : null}</summary>
        <ul>${rows.slice(0, 200).map(
          ([robot, o]) => html`<li data-outcome-robot=${robot} data-phase=${o.phase}
            data-ok=${o.phase === 'done' ? String(o.ok) : undefined} data-progress-events=${o.progressEvents ?? 0}>
          <b>${robot}</b> ${
            o.phase === 'done'
              ? o.ok
                ? html`<span class="badge st-ok">done</span>`
                : html`<span class="badge st-error" data-error-code=${o.error?.code}>${o.error?.code}</span> ${o.error?.message}`
              : html`${o.event ?? o.phase} <${SmallBar} p=${percent(o.progress)} />`
          }
        </li>`,
        )}</ul>
      </details>`;
    })}
  </section>`;
}

/**
 * The images the fleet's robots should run, to pick from: each robot still checks the one given
 * against its own images.allow. Names the summary clipped (they start with …) are left out.
 */
function knownImages() {
  const seen = new Set();
  for (const r of store.robots.values()) {
    for (const c of r.state?.containers.list ?? []) if (!c.image.startsWith('…')) seen.add(c.image);
    if (seen.size >= 50) break;
  }
  return [...seen].sort();
}

function SmallBar({ p }) {
  return html`<span class="bar" role="progressbar" data-progress=${p ?? ''}>
    <span class=${`fill ${p === null ? 'busy' : ''}`} style=${`width:${p === null ? 100 : p}%`}></span></span>`;
}

function describe(args) {
  return Object.entries(args)
    .map(([k, v]) => `${k}=${v}`)
    .join(' ');
}
