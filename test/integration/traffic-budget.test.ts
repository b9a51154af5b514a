import assert from 'node:assert/strict';
import { join } from 'node:path';
import type { StateSummary } from '../../agent/mqtt/summary.js';
import { startAgent, type AgentUnderTest } from '../helpers/agent-harness.js';
import { cleanEngine } from '../helpers/engine-cli.js';
import { FakeUsbBus, X3 } from '../helpers/fake-sysfs.js';
import { LidarSimulator } from '../helpers/lidar-simulator.js';
import { MqttProbe } from '../helpers/mqtt-probe.js';
import { tempDir } from '../helpers/temp.js';
import { formatTraffic, TrafficMeter } from '../helpers/traffic-meter.js';
import { sleep, waitUntil } from '../helpers/wait.js';
import { needRig, rig } from '../setup.js';

/** Issue 14.2: an idle robot sends at most 1 KiB a minute at the shipped defaults, everything included. */
const BUDGET_PER_MINUTE = 1024;
/** The shipped defaults, ten times faster: one "minute" of the robot lasts 6 s here. */
const SCALE = 10;
const MINUTE_S = 60 / SCALE;
const WINDOW_S = 60;

describe('traffic budget: an idle robot on the fleet broker', function () {
  this.timeout(180_000);
  let bus: FakeUsbBus;
  let sim: LidarSimulator | undefined;
  let subject: AgentUnderTest | undefined;
  let meter: TrafficMeter | undefined;
  let probe: MqttProbe | undefined;

  afterEach(async () => {
    await meter?.close();
    await probe?.close();
    await subject?.stop();
    await sim?.stop();
    meter = probe = subject = sim = undefined;
    if (rig()) cleanEngine();
  });

  it('sends at most 1 KiB a minute with the ROS container running and the X3 devices attached', async function () {
    const r = needRig(this);
    cleanEngine();
    bus = new FakeUsbBus(tempDir('rfa-usb-'));
    sim = await LidarSimulator.start();
    bus.plug(X3.lidar({ ttyTarget: sim.ptyPath }));
    bus.plug(X3.board());
    bus.plug(X3.cameraDepth());
    bus.plug(X3.cameraRgb());
    subject = await startAgent({
      mqtt: { url: r.mqtt.url, heartbeat: 60 / SCALE },
      docker: { socketPath: r.docker.socketPath },
      registries: { 'docker.io': { mirror: r.registry.url } },
      // The shipped periods scaled down (300 s lidar check, 60 s reconcile); metrics at their
      // floor of 5 s, which samples (and may publish) more often than a tenth of 30 s would not.
      devices: { sysfsRoot: bus.sysfsRoot, devRoot: bus.devRoot, lidar: { checkInterval: 300 / SCALE, timeout: 300 } },
      reconcile: { interval: 60 / SCALE },
      metrics: { interval: 5 },
      update: { lockFile: join(bus.root, 'no.lock') },
      containers: {
        // 136: the pty standing in for the lidar's ttyUSB on this rig.
        ros: {
          image: r.fixtures.images.v339,
          devices: ['lidar', 'camera', 'board'],
          deviceMajors: [188, 189, 81, 136],
          stopTimeout: 1,
        },
      },
      log: { level: 'info' },
    });
    const base = subject.base;
    meter = await TrafficMeter.start(r.mqtt.url, base);
    probe = await MqttProbe.connect(r.mqtt.url, { protocolVersion: 5 });
    await probe.subscribe(`${base}/state`);
    const store = () => subject!.agent.store.get();
    const settled = () => {
      const ros = store().containers[0];
      return ros?.state === 'running' && ros.inSync && store().devices.lidar.health.status === 'good';
    };
    await waitUntil(settled, 60_000, 'ros running with a good lidar');
    // Settled: a summary that is only a heartbeat (nothing changed since the one before it).
    const summaries = () => probe!.messagesOn(`${base}/state`).map((m) => JSON.parse(m.text) as StateSummary);
    await waitUntil(
      () => {
        const [previous, last] = summaries().slice(-2);
        return (
          previous && last && last.status === 'ok' && previous.changed === last.changed && last.seen > previous.seen
        );
      },
      6 * MINUTE_S * 1000,
      'a heartbeat with nothing changed',
    );

    const from = Date.now();
    await sleep(WINDOW_S * 1000);
    const report = meter.report(from);
    const perMinute = (report.bytes / report.seconds) * MINUTE_S;
    const lines = formatTraffic(report, MINUTE_S).join('\n');
    const said = `an idle robot sent ${perMinute.toFixed(0)} B a (scaled) minute:\n${lines}`;
    assert.ok(perMinute <= BUDGET_PER_MINUTE, said);
    // Last seen is still known: the summary went out on every heartbeat of the window.
    const beats = report.topics.find((t) => t.leaf === 'state')?.messages ?? 0;
    assert.ok(beats >= WINDOW_S / MINUTE_S - 1, `${beats} summaries in ${WINDOW_S} s:\n${lines}`);
    assert.equal(summaries().at(-1)!.status, 'ok');
  });
});
