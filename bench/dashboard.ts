/**
 * The dashboard at fleet size (issue 15.4): `robot-fleet serve` against a private Debian
 * mosquitto (configured as deploy/broker/fleet.conf) holding N robots' retained summaries, each
 * built by the agent's own summarise() over a simulated X3 state, and Debian's chromium.
 * Prints figures beside baselines measured in the same run, never pass/fail:
 *   - first paint: from opening the page until the table holds its rows, with N robots (target
 *     <= 2 s for 2,000), beside the same page with an empty fleet;
 *   - a change on one robot: from the robot's publish until its row shows it (target <= 1 s),
 *     beside the time a plain MQTT subscriber takes to get the same message.
 *
 *   npm run build && node build/bench/dashboard.js        env: DASH_N (2000), DASH_RUNS (5)
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import type { Page } from 'puppeteer-core';
import { startDashboard, type Dashboard } from '../agent/fleet/dashboard/serve.js';
import { summarise, type StateSummary } from '../agent/mqtt/summary.js';
import { launchBrowser } from '../test/helpers/browser.js';
import { startMosquitto } from '../test/rig/mosquitto.js';
import { median, runBench } from './bench-kit.js';
import { simRobotId } from './fleet-sim-fleet.js';
import { simState } from './fleet-sim-robot.js';

const N = Number(process.env.DASH_N ?? 2000);
const RUNS = Number(process.env.DASH_RUNS ?? 5);
const TOKENS = { read: 'bench-read-token-0123456789', operator: 'bench-operator-token-0123456789' };

// Evaluated in the page; the project compiles without the DOM library.
declare const document: {
  querySelector(s: string): { getAttribute(a: string): string | null } | null;
  querySelectorAll(s: string): { length: number };
};
declare const window: { dashboardPaintedAt?: number };

async function publish(client: MqttClient, base: string, n: number): Promise<void> {
  const now = new Date().toISOString();
  for (let at = 0; at < n; at += 200) {
    await Promise.all(
      Array.from({ length: Math.min(200, n - at) }, (_, k) => {
        const i = at + k;
        const id = simRobotId(i);
        const summary = summarise(simState(id, i), { changed: now, seen: now });
        return Promise.all([
          client.publishAsync(`${base}/${id}/availability`, 'online', { qos: 1, retain: true }),
          client.publishAsync(`${base}/${id}/state`, JSON.stringify(summary), { qos: 1, retain: true }),
        ]);
      }),
    );
  }
}

/** Opens the page (already logged in) and waits for its first paint with rows (or the empty fleet). */
async function firstPaint(page: Page, url: string, robots: number): Promise<{ wallMs: number; pageMs: number }> {
  const t0 = performance.now();
  await page.goto(url);
  await page.waitForFunction(
    (n: number) =>
      window.dashboardPaintedAt !== undefined &&
      (n === 0 || document.querySelectorAll('.rows [data-robot]').length > 0) &&
      document.querySelector('[data-shown]')?.getAttribute('data-shown') === String(n),
    { polling: 'raf', timeout: 30_000 },
    robots,
  );
  const wallMs = performance.now() - t0;
  const pageMs = await page.evaluate(() => window.dashboardPaintedAt!);
  return { wallMs, pageMs };
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'rfa-dash-bench-'));
  const broker = await startMosquitto(join(dir, 'mqtt'), {
    extraConfig: ['max_queued_messages 100000', 'max_queued_bytes 268435456', 'max_packet_size 1048576'],
  });
  const publisher = await mqtt.connectAsync(broker.url, { protocolVersion: 4 });
  const dashboards: Dashboard[] = [];
  const clients: MqttClient[] = [publisher];
  const browser = await launchBrowser();
  try {
    await publish(publisher, 'fleet', N);
    const open = async (base: string) => {
      const client = await mqtt.connectAsync(broker.url, { protocolVersion: 4 });
      clients.push(client);
      const d = await startDashboard({ base, client, host: '127.0.0.1', port: 0, tokens: TOKENS, timeoutMs: 30_000 });
      dashboards.push(d);
      return d;
    };
    const full = await open('fleet');
    const empty = await open('empty-fleet');
    console.log(
      `dashboard bench: ${N} robots held by the server (${full.model.robots.size}), chromium, ${RUNS} runs each`,
    );
    const page = await browser.newPage();
    await page.setViewport({ width: 1440, height: 900 });
    const paints = { empty: [] as number[], full: [] as number[], emptyPage: [] as number[], fullPage: [] as number[] };
    for (const [d, which, n] of [
      [empty, 'empty', 0],
      [full, 'full', N],
    ] as const) {
      await page.goto(`${d.url}login?token=${TOKENS.read}`);
      for (let run = 0; run < RUNS; run += 1) {
        const p = await firstPaint(page, d.url, n);
        paints[which].push(p.wallMs);
        paints[which === 'empty' ? 'emptyPage' : 'fullPage'].push(p.pageMs);
      }
    }
    const f = (ms: number) => `${Math.round(ms)} ms`;
    console.log(
      `first paint, empty fleet (baseline): median ${f(median(paints.empty))} ` +
        `(in page ${f(median(paints.emptyPage))}), runs ${paints.empty.map(f).join(', ')}`,
    );
    console.log(
      `first paint, ${N} robots:            median ${f(median(paints.full))} ` +
        `(in page ${f(median(paints.fullPage))}), runs ${paints.full.map(f).join(', ')}  target <= 2000 ms`,
    );

    // A change on one robot on screen (the first row): its summary turns error and back.
    await firstPaint(page, full.url, N);
    const id = simRobotId(0);
    const base = summarise(simState(id, 0), { changed: new Date().toISOString(), seen: new Date().toISOString() });
    const watcher = await mqtt.connectAsync(broker.url, { protocolVersion: 4 });
    clients.push(watcher);
    let heard: (() => void) | null = null;
    watcher.on('message', () => heard?.());
    await watcher.subscribeAsync(`fleet/${id}/state`, { qos: 1 });
    await new Promise((r) => setTimeout(r, 300));
    const onScreen: number[] = [];
    const overMqtt: number[] = [];
    for (let run = 0; run < RUNS; run += 1) {
      const status: StateSummary['status'] = run % 2 === 0 ? 'error' : 'ok';
      const changed: StateSummary = {
        ...base,
        status,
        why: status === 'ok' ? [] : [`bench change ${run}`],
        seen: new Date().toISOString(),
      };
      const mqttHeard = new Promise<number>((resolve) => (heard = () => resolve(performance.now())));
      const t0 = performance.now();
      await publisher.publishAsync(`fleet/${id}/state`, JSON.stringify(changed), { qos: 1, retain: true });
      await page.waitForFunction(
        (robot: string, s: string) =>
          document.querySelector(`[data-robot="${robot}"]`)?.getAttribute('data-status') === s,
        { polling: 'raf', timeout: 10_000 },
        id,
        status,
      );
      onScreen.push(performance.now() - t0);
      overMqtt.push((await mqttHeard) - t0);
      heard = null;
    }
    console.log(
      `a change, plain MQTT subscriber (baseline): median ${f(median(overMqtt))}, runs ${overMqtt.map(f).join(', ')}`,
    );
    console.log(
      `a change on one robot, on screen:          median ${f(median(onScreen))}, runs ${onScreen.map(f).join(', ')}  ` +
        'target <= 1000 ms',
    );
  } finally {
    await browser.close();
    for (const d of dashboards) await d.close();
    for (const c of clients) await c.endAsync(true);
    await broker.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

runBench(main);
