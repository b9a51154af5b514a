import { h, render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import htm from 'htm';
import { connect } from './connection.js';
import { FleetPage } from './fleet-table.js';
import { RobotPage } from './robot-page.js';
import { store, subscribe } from './store.js';

const html = htm.bind(h);

function route() {
  const m = /^#\/robot\/(.+)$/.exec(location.hash);
  return m ? { robot: decodeURIComponent(m[1]) } : {};
}

function App() {
  const [, setTick] = useState(0);
  const [where, setWhere] = useState(route());
  const [now, setNow] = useState(Date.now());
  useEffect(() => subscribe(() => setTick((t) => t + 1)), []);
  useEffect(() => {
    const onHash = () => setWhere(route());
    window.addEventListener('hashchange', onHash);
    // "Last seen" and staleness move with the clock, not only with messages.
    const clock = setInterval(() => setNow(Date.now()), 5000);
    return () => {
      window.removeEventListener('hashchange', onHash);
      clearInterval(clock);
    };
  }, []);
  useEffect(() => {
    if (store.replayed && !window.dashboardPaintedAt)
      requestAnimationFrame(() => (window.dashboardPaintedAt = performance.now()));
  });
  return html`
    <header class="top">
      <a class="brand" href="#/">Robot fleet</a>
      <span class=${`conn ${store.connected ? 'up' : 'down'}`} data-connected=${String(store.connected)}>
        ${store.connected ? (store.replayed ? 'live' : 'loading…') : `disconnected (${store.closeReason ?? 'connecting'})`}</span>
      <span class="role" data-role=${store.role}>${store.role === 'operator' ? 'operator' : store.role === 'read' ? 'read-only' : ''}</span>
    </header>
    ${store.warning ? html`<p class="warning">${store.warning}</p>` : null}
    ${
      store.errors.length
        ? html`<p class="errors" data-error-code=${store.errors[store.errors.length - 1].code}>
      ${store.errors[store.errors.length - 1].message}</p>`
        : null
    }
    <main>${where.robot ? html`<${RobotPage} robot=${where.robot} now=${now} />` : html`<${FleetPage} now=${now} />`}</main>`;
}

document.getElementById('app').textContent = '';
render(html`<${App} />`, document.getElementById('app'));
connect();
