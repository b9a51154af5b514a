import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import type { Browser, Page } from 'puppeteer-core';
import { startDashboard, type Dashboard } from '../../agent/fleet/dashboard/serve.js';
import { startAgent, type AgentUnderTest } from '../helpers/agent-harness.js';
import { haveChromium, launchBrowser, shoot } from '../helpers/browser.js';
import { cleanEngine } from '../helpers/engine-cli.js';
import { FakeUsbBus, X3 } from '../helpers/fake-sysfs.js';
import { fakeFleet, publishFleet } from '../helpers/fleet-robots.js';
import { LidarSimulator } from '../helpers/lidar-simulator.js';
import { tempDir } from '../helpers/temp.js';
import { waitUntil } from '../helpers/wait.js';
import { needRig, rig } from '../setup.js';

// These run inside the page (puppeteer evaluates them there); the project compiles without the DOM library.
declare const document: {
  querySelector(s: string): { textContent: string | null; getAttribute(a: string): string | null } | null;
  querySelectorAll(s: string): Iterable<{ getAttribute(a: string): string | null }>;
};
declare const getComputedStyle: (e: unknown) => { display: string };
type HTMLInputElement = { value: string };

const READ = 'browser-read-token-0123456789';
const OPERATOR = 'browser-operator-token-0123456789';

describe('the dashboard page in chromium: two real agents and 300 simulated robots', function () {
  this.timeout(180_000);
  const base = `dashb-${process.pid}-${Math.random().toString(36).slice(2, 6)}`;
  const fleet = fakeFleet(300);
  let x3: AgentUnderTest;
  let bare: AgentUnderTest;
  let bus: FakeUsbBus;
  let sim: LidarSimulator;
  let client: MqttClient;
  let dash: Dashboard;
  let browser: Browser;
  let page: Page;
  let clear: (() => Promise<void>) | undefined;
  const pageErrors: string[] = [];
  const host = () => rig().registry.host;
  const shown = () => page.$eval('[data-shown]', (e) => Number(e.getAttribute('data-shown')));

  before(async function () {
    needRig(this);
    if (!haveChromium()) throw new Error('chromium is missing: run scripts/rig-deps.sh as root');
    cleanEngine();
    const r = rig();
    const dir = tempDir('rfa-dashb-');
    clear = await publishFleet(r.mqtt.url, base, fleet);
    bus = new FakeUsbBus(tempDir('rfa-usb-'));
    sim = await LidarSimulator.start();
    bus.plug(X3.lidar({ ttyTarget: sim.ptyPath }));
    bus.plug(X3.board());
    bus.plug(X3.cameraDepth());
    bus.plug(X3.cameraRgb());
    mkdirSync(join(dir, 'export'), { recursive: true });
    x3 = await startAgent({
      robot: { id: 'rosmaster-a' },
      mqtt: { url: r.mqtt.url, baseTopic: base },
      docker: { socketPath: r.docker.socketPath },
      images: {
        allow: [`${host()}/**`, 'yahboomtechnology/*'],
        pushAllow: [`${host()}/fleet/**`],
        exportDir: join(dir, 'export'),
      },
      snapshots: { repository: `${host()}/fleet/snapshots` },
      update: { stableSeconds: 1, healthTimeout: 10, lockFile: join(dir, 'no.lock') },
      devices: { sysfsRoot: bus.sysfsRoot, devRoot: bus.devRoot, pollInterval: 100, lidar: { timeout: 300 } },
      containers: {
        ros: {
          image: `${host()}/yahboomtechnology/ros-foxy:3.3.9`,
          devices: ['lidar', 'camera', 'board'],
          deviceMajors: [188, 189, 81, 136],
          stopTimeout: 1,
        },
      },
    });
    bare = await startAgent({
      robot: { id: 'rosmaster-b' },
      mqtt: { url: r.mqtt.url, baseTopic: base },
      devices: { sysfsRoot: join(dir, 'none'), devRoot: join(dir, 'none') },
    });
    await waitUntil(
      () => x3.agent.store.get().containers[0]?.state === 'running' && x3.agent.store.get().devices.lidar.info !== null,
      40_000,
      'rosmaster-a running ros with its lidar known',
    );
    await waitUntil(() => bare.agent.store.get().agent.mqtt.connected, 10_000, 'rosmaster-b connected');
    client = await mqtt.connectAsync(r.mqtt.url, { protocolVersion: 4 });
    dash = await startDashboard({
      base,
      client,
      host: '127.0.0.1',
      port: 0,
      tokens: { read: READ, operator: OPERATOR },
      timeoutMs: 15_000,
    });
    browser = await launchBrowser();
    page = await browser.newPage();
    page.on('pageerror', (err) => pageErrors.push(String(err)));
    page.on('console', (m) => m.type() === 'error' && pageErrors.push(m.text()));
    await page.setViewport({ width: 1440, height: 900 });
    await page.goto(`${dash.url}login?token=${OPERATOR}`);
    await page.waitForSelector('[data-connected="true"]');
  });

  after(async () => {
    await browser?.close();
    await dash?.close();
    await client?.endAsync(true);
    await x3?.stop();
    await bare?.stop();
    await sim?.stop();
    await clear?.();
    if (rig()) cleanEngine();
  });

  it('shows every robot with totals, drawing only the rows on screen', async () => {
    await page.waitForFunction(
      (n) => document.querySelector('[data-total="robots"] b')?.textContent === String(n),
      {},
      fleet.length + 2,
    );
    await waitUntil(async () => (await shown()) === fleet.length + 2, 10_000, 'every robot shown');
    const drawn = await page.$$eval('.rows [data-robot]', (rows) => rows.length);
    assert.ok(drawn > 10 && drawn < 100, `${drawn} rows in the document`);
    const offline = await page.$eval('[data-total="offline"] b', (e) => Number(e.textContent));
    // Every 10th robot is offline; number 3 is online but its summary is an hour old (stale).
    assert.equal(offline, 31);
    await shoot(page, 'dashboard-fleet');
  });

  it('filters combine, search narrows, sort orders', async () => {
    await page.click('input[name="filter-offline"]');
    await waitUntil(async () => (await shown()) === 31, 5000, 'the offline robots');
    await page.click('input[name="filter-outdated"]');
    // Offline AND outdated: numbers divisible by 10 and by 11 (110, 220).
    await waitUntil(async () => (await shown()) === 2, 5000, 'offline and outdated');
    await page.click('input[name="filter-offline"]');
    await page.click('input[name="filter-outdated"]');
    await page.type('input.search', 'lab-000');
    await waitUntil(async () => (await shown()) === 9, 5000, 'the search');
    await page.$eval('input.search', (e) => ((e as HTMLInputElement).value = ''));
    await page.type('input.search', 'rosmaster-?');
    await waitUntil(async () => (await shown()) === 2, 5000, 'the pattern');
    const status = await page.$$eval('.rows [data-robot]', (rows) => rows.map((r) => r.getAttribute('data-robot')));
    assert.deepEqual(status.sort(), ['rosmaster-a', 'rosmaster-b']);
    // Status sort puts the agent without Docker (error) first.
    await page.click('[data-sort="status"]');
    await page.waitForFunction(
      () => document.querySelector('.rows [data-robot]')?.getAttribute('data-robot') === 'rosmaster-b',
    );
    await shoot(page, 'dashboard-search');
  });

  it('a robot page shows its devices with the lidar identity, its containers and images', async () => {
    await page.goto(`${dash.url}#/robot/rosmaster-a`);
    await page.waitForFunction(() => /serial/.test(document.querySelector('[data-device="lidar"]')?.textContent ?? ''));
    const lidar = await page.$eval('[data-device="lidar"]', (e) => e.textContent ?? '');
    assert.match(lidar, /health\s+good/);
    await page.waitForSelector('[data-panel="containers"] [data-container="ros"]');
    const ros = await page.$eval('[data-container="ros"]', (e) => e.textContent ?? '');
    assert.match(ros, /running/);
    assert.match(ros, /ros-foxy:3\.3\.9/);
    await page.waitForSelector('[data-panel="images"] [data-image]');
    const images = await page.$$eval('[data-panel="images"] [data-image]', (rows) =>
      rows.map((r) => r.textContent ?? ''),
    );
    assert.ok(
      images.some((t) => /ros-foxy:3\.3\.9/.test(t)),
      images.join('\n'),
    );
    await page.click('[data-logs]');
    await page.waitForSelector('pre.log');
    await shoot(page, 'dashboard-robot');
  });

  it('a snapshot started from the page completes, with its progress shown', async () => {
    await page.goto(`${dash.url}#/`);
    await page.waitForSelector('input.search');
    await page.$eval('input.search', (e) => ((e as HTMLInputElement).value = ''));
    await page.type('input.search', 'rosmaster-a');
    await waitUntil(async () => (await shown()) === 1, 5000, 'rosmaster-a alone');
    await page.click('[data-robot="rosmaster-a"] input[type="checkbox"]');
    await page.click('[data-action="snapshot"]');
    await page.click('.dialog input[name="push"]');
    await page.click('[data-confirm="snapshot"]');
    const done = await page.waitForSelector(
      '[data-action-id^="snapshot-"] [data-outcome-robot="rosmaster-a"][data-phase="done"]',
      { timeout: 90_000 },
    );
    const ok = await done!.evaluate((e) => ({
      ok: e.getAttribute('data-ok'),
      events: Number(e.getAttribute('data-progress-events')),
      text: e.textContent,
    }));
    assert.equal(ok.ok, 'true', ok.text ?? '');
    assert.ok(ok.events > 0, 'no progress event was relayed');
    await shoot(page, 'dashboard-snapshot');
    await waitUntil(() => x3.agent.store.get().snapshots.length > 0, 10_000, 'the snapshot in the state');
  });

  it("an action the robot's config refuses shows the robot's error code", async () => {
    await page.click('[data-action="update"]');
    await page.type('.dialog input[name="image"]', 'evil/miner:1');
    await page.click('[data-confirm="update"]');
    await page.waitForFunction(
      () =>
        [...document.querySelectorAll('[data-outcome-robot="rosmaster-a"] [data-error-code]')].some(
          (e) => e.getAttribute('data-error-code') === 'not_allowed',
        ),
      { timeout: 30_000 },
    );
    await shoot(page, 'dashboard-refused');
  });

  it('a snapshot restored from the robot page, after its confirmation, runs through the update flow', async () => {
    const snapshot = x3.agent.store.get().snapshots[0]!.image;
    await page.goto(`${dash.url}#/robot/rosmaster-a`);
    await page.waitForSelector(`[data-restore="${snapshot}"]`);
    await page.click(`[data-restore="${snapshot}"]`);
    const image = await page.$eval('.dialog input[name="image"]', (e) => (e as HTMLInputElement).value);
    assert.equal(image, snapshot);
    await page.click('[data-confirm="restore"]');
    const done = await page.waitForSelector(
      '[data-action-id^="restore-"] [data-outcome-robot="rosmaster-a"][data-phase="done"]',
      { timeout: 90_000 },
    );
    const outcome = await done!.evaluate((e) => ({ ok: e.getAttribute('data-ok'), text: e.textContent }));
    assert.equal(outcome.ok, 'true', outcome.text ?? '');
    await waitUntil(
      () =>
        x3.agent.store.get().containers[0]?.runImage === snapshot ||
        x3.agent.store.get().containers[0]?.image === snapshot,
      10_000,
      'ros running the snapshot',
    );
    await shoot(page, 'dashboard-restore');
  });

  it('the page raised no error and logged none', () => {
    assert.deepEqual(pageErrors, []);
  });

  it('a read-only page has no actions, and columns fold on a phone', async () => {
    const ro = await browser.createBrowserContext();
    const p = await ro.newPage();
    try {
      await p.setViewport({ width: 390, height: 800 });
      await p.goto(`${dash.url}login?token=${READ}`);
      await p.waitForSelector('[data-role="read"]');
      await p.waitForSelector('.rows [data-robot]');
      assert.equal(await p.$('[data-action]'), null);
      const visible = await p.$eval(
        '.row.head',
        (row) => [...row.children].filter((c) => getComputedStyle(c).display !== 'none').length,
      );
      assert.ok(visible <= 4, `${visible} columns on a phone`);
      await shoot(p, 'dashboard-phone');
    } finally {
      await ro.close();
    }
  });
});
