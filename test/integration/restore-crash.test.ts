import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { spawnAgent, type AgentProcess } from '../helpers/agent-process.js';
import { uniqueRobotId } from '../helpers/agent-harness.js';
import { cleanEngine, docker } from '../helpers/engine-cli.js';
import { MqttProbe, type Received } from '../helpers/mqtt-probe.js';
import { rosContainers } from '../helpers/ros-containers.js';
import { tempDir, writeYaml } from '../helpers/temp.js';
import { waitUntil } from '../helpers/wait.js';
import { needRig, rig } from '../setup.js';

/**
 * A restore is the same replacement transaction as an update (issue 13): the agent as systemd
 * runs it, killed with SIGKILL right after it journals each step of a restore asked by command,
 * must at its next start leave exactly one `ros` container, running, and no other.
 */
describe('restores survive SIGKILL at every step of the replacement', function () {
  this.timeout(150_000);
  let dir: string;
  let robot: string;
  let running: AgentProcess | undefined;
  let probe: MqttProbe | undefined;

  function start(env: NodeJS.ProcessEnv = {}): AgentProcess {
    const r = rig();
    const config = writeYaml(dir, 'config.yaml', {
      robot: { id: robot },
      docker: { socketPath: r.docker.socketPath },
      registries: { 'docker.io': { mirror: r.registry.url } },
      devices: { sysfsRoot: join(dir, 'no-sys'), devRoot: join(dir, 'no-dev') },
      mqtt: { url: r.mqtt.url },
      state: { dir: join(dir, 'state') },
      update: { stableSeconds: 2, healthTimeout: 8, lockFile: join(dir, 'update.lock') },
      reconcile: { retry: { initial: 0.5, max: 2 } },
      containers: { ros: { image: r.fixtures.images.v339, stopTimeout: 1, restart: 'unless-stopped' } },
    });
    running = spawnAgent(['run', '--config', config], env);
    return running;
  }

  async function stop(agent: AgentProcess): Promise<void> {
    agent.kill('SIGTERM');
    await agent.exited(10_000);
    running = undefined;
  }

  const only = (images: string[]) => () => {
    const all = rosContainers();
    const one = all.length === 1 && all[0]!.name === 'ros' && all[0]!.state === 'running';
    return one && images.includes(all[0]!.image) ? all : undefined;
  };

  beforeEach(async function () {
    needRig(this);
    cleanEngine();
    dir = tempDir('rfa-restore-crash-');
    robot = uniqueRobotId('restore-crash');
    docker('pull', rig().fixtures.images.v339);
    docker('pull', rig().fixtures.images.v340);
    probe = await MqttProbe.connect(rig().mqtt.url, { protocolVersion: 5 });
  });

  afterEach(async () => {
    if (running) await stop(running).catch(() => running?.kill('SIGKILL'));
    await probe?.close();
    probe = undefined;
    if (rig()) cleanEngine();
  });

  for (const step of ['preparing', 'stopping', 'renaming', 'creating', 'starting', 'verifying', 'verified']) {
    it(`killed at ${step}: the next start leaves one ros, running`, async () => {
      const { images } = rig().fixtures;
      const first = start();
      await waitUntil(only([images.v339]), 30_000, 'ros on 3.3.9');
      await stop(first);
      const base = `fleet/${robot}`;
      await probe!.subscribe(`${base}/#`);
      const doomed = start({ ROBOT_AGENT_TEST_KILL_AT: step });
      // A request sent before the agent subscribed is lost (no session yet): asked until it begins.
      const exited = doomed.exited(90_000);
      let begun = false;
      void exited.then(
        () => (begun = true),
        () => undefined,
      );
      while (!begun) {
        const id = `restore-${Date.now()}`;
        const since = Date.now();
        const body = JSON.stringify({ id, container: 'ros', image: images.v340 });
        await probe!.client.publishAsync(`${base}/request/restore`, body, { qos: 1 });
        const event = (m: Received) => m.at >= since && m.topic === `${base}/events` && m.text.includes(`"id":"${id}"`);
        await probe!.waitFor(event, 3_000, 'the restore to begin').then(
          () => (begun = true),
          () => undefined,
        );
      }
      assert.equal(await exited, 'SIGKILL', `the agent was to be killed at ${step}`);
      running = undefined;
      assert.ok(existsSync(join(dir, 'state', 'update-journal.json')), 'a journal was left behind');
      const next = start();
      const recovered = await waitUntil(
        () => next.logs().find((l) => l.msg === 'finished an update interrupted by a restart'),
        30_000,
        'recovery logged',
      );
      const outcome = step === 'verified' ? 'completed' : step === 'preparing' ? 'untouched' : 'rolledback';
      assert.equal(recovered.outcome, outcome);
      // Killed before the image was pinned (preparing), the robot keeps 3.3.9; after, the loop
      // takes the restore's image up again. Either way: one ros, running.
      const image = step === 'preparing' ? images.v339 : images.v340;
      await waitUntil(only([image]), 40_000, `exactly one ros, on ${image}`);
      assert.ok(!existsSync(join(dir, 'state', 'update-journal.json')), 'journal cleared');
    });
  }
});
