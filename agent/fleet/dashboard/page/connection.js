import { apply, changed, store } from './store.js';

// The page's one WebSocket to robot-fleet serve (the login cookie goes with it). It reconnects
// with a growing delay; every reconnect brings a fresh replay.
let ws = null;
let delay = 500;

export function connect() {
  ws = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`);
  ws.onopen = () => {
    store.connected = true;
    delay = 500;
    if (store.watching) send({ t: 'watch', robot: store.watching });
    changed();
  };
  ws.onmessage = (e) => {
    try {
      apply(JSON.parse(e.data));
    } catch (err) {
      console.error('dashboard: unreadable message', err);
    }
  };
  ws.onclose = (e) => {
    store.connected = false;
    store.closeReason = e.code === 1006 ? 'connection lost' : `${e.code} ${e.reason}`;
    changed();
    setTimeout(connect, delay);
    delay = Math.min(delay * 2, 15_000);
  };
}

export function send(m) {
  if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(m));
  else
    store.errors = [
      ...store.errors,
      { code: 'offline', message: 'not connected to the dashboard server', at: Date.now() },
    ];
}
