import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { spawnAgent, type AgentProcess } from '../helpers/agent-process.js';
import { cleanEngine, docker } from '../helpers/engine-cli.js';
import { tempDir, writeYaml } from '../helpers/temp.js';
import { waitUntil } from '../helpers/wait.js';
import { needRig, rig } from '../setup.js';
import { rosContainers } from '../helpers/ros-containers.js';

/**
 * The agent as systemd runs it, killed with SIGKILL right after it journals each step of a
 * swap: its next start must leave exactly one `ros` container, running, and no other.
 */
describe('updates survive SIGKILL at every step of the swap', function () {
  this.timeout(120_000);
  let dir: string;
  let running: AgentProcess | undefined;

  function start(image: string, env: NodeJS.ProcessEnv = {}, stableSeconds = 2): AgentProcess {
    const r = rig();
    const config = writeYaml(dir, 'config.yaml', {
      robot: { id: `crash-${process.pid}` },
      docker: { socketPath: r.docker.socketPath },
      registries: { 'docker.io': { mirror: r.registry.url } },
      devices: { sysfsRoot: join(dir, 'no-sys'), devRoot: join(dir, 'no-dev') },
      mqtt: { embedded: { port: 0 } },
      state: { dir: join(dir, 'state') },
      update: { stableSeconds, healthTimeout: 8, lockFile: join(dir, 'update.lock') },
      reconcile: { retry: { initial: 0.5, max: 2 } },
      containers: { ros: { image, stopTimeout: 1, restart: 'unless-stopped' } },
    });
    running = spawnAgent(['run', '--config', config], env);
    return running;
  }

  async function stop(agent: AgentProcess): Promise<void> {
    agent.kill('SIGTERM');
    await agent.exited(10_000);
    running = undefined;
  }

  const only = (image: string) => () => {
    const all = rosContainers();
    return all.length === 1 && all[0]!.state === 'running' && all[0]!.image === image ? all : undefined;
  };

  beforeEach(function () {
    needRig(this);
    cleanEngine();
    dir = tempDir('rfa-crash-');
    docker('pull', rig().fixtures.images.v339);
    docker('pull', rig().fixtures.images.v340);
  });

  afterEach(async () => {
    if (running) await stop(running).catch(() => running?.kill('SIGKILL'));
    if (rig()) cleanEngine();
  });

  async function killedAt(step: string, target: string, stableSeconds = 2): Promise<AgentProcess> {
    const { images } = rig().fixtures;
    const first = start(images.v339);
    await waitUntil(only(images.v339), 30_000, 'ros on 3.3.9');
    await stop(first);
    const doomed = start(target, { ROBOT_AGENT_TEST_KILL_AT: step }, stableSeconds);
    assert.equal(await doomed.exited(40_000), 'SIGKILL', `the agent was to be killed at ${step}`);
    running = undefined;
    assert.ok(existsSync(join(dir, 'state', 'update-journal.json')), 'a journal was left behind');
    return start(target, {}, stableSeconds);
  }

  for (const step of ['stopping', 'renaming', 'creating', 'starting', 'verifying', 'verified']) {
    it(`killed at ${step}: the next start settles it, then the update completes; one ros at the end`, async () => {
      const { images } = rig().fixtures;
      const next = await killedAt(step, images.v340);
      const recovered = await waitUntil(
        () => next.logs().find((l) => l.msg === 'finished an update interrupted by a restart'),
        30_000,
        'recovery logged',
      );
      assert.equal(recovered.outcome, step === 'verified' ? 'completed' : 'rolledback');
      await waitUntil(only(images.v340), 40_000, 'exactly one ros, on 3.4.0');
      assert.equal(docker('exec', 'ros', 'cat', '/etc/ros-version'), '3.4.0');
      assert.ok(!existsSync(join(dir, 'state', 'update-journal.json')), 'journal cleared');
    });
  }

  it('killed while rolling back an image that crashes: the old one is back, and stays', async () => {
    const { images } = rig().fixtures;
    docker('pull', images.crash);
    // The crash image exits after ~3 s: it must not look stable before that.
    const next = await killedAt('rolling-back', images.crash, 5);
    const recovered = await waitUntil(
      () => next.logs().find((l) => l.msg === 'finished an update interrupted by a restart'),
      30_000,
      'recovery logged',
    );
    assert.equal(recovered.outcome, 'rolledback');
    await waitUntil(
      () => next.logs().some((l) => l.msg === 'update rolled back'),
      40_000,
      'the retried update rolled back too',
    );
    await waitUntil(only(images.v339), 10_000, 'exactly one ros, on 3.3.9');
    assert.equal(docker('exec', 'ros', 'cat', '/etc/ros-version'), '3.3.9');
  });
});
