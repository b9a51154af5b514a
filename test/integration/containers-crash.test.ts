import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { spawnAgent, type AgentProcess } from '../helpers/agent-process.js';
import { cleanEngine, docker } from '../helpers/engine-cli.js';
import { rosContainers } from '../helpers/ros-containers.js';
import { tempDir, writeYaml } from '../helpers/temp.js';
import { waitUntil } from '../helpers/wait.js';
import { needRig, rig } from '../setup.js';

/**
 * The agent as systemd runs it, killed with SIGKILL right after it journals each step of a
 * recreate (a changed spec): its next start settles what was left, then recreates again; at the
 * end exactly one `ros`, running with the new spec, and nothing left under ros-replaced-*.
 */
describe('recreate survives SIGKILL at every step', function () {
  this.timeout(120_000);
  let dir: string;
  let running: AgentProcess | undefined;

  function start(x: string, env: NodeJS.ProcessEnv = {}): AgentProcess {
    const r = rig();
    const config = writeYaml(dir, 'config.yaml', {
      robot: { id: `recreate-crash-${process.pid}` },
      docker: { socketPath: r.docker.socketPath },
      registries: { 'docker.io': { mirror: r.registry.url } },
      devices: { sysfsRoot: join(dir, 'no-sys'), devRoot: join(dir, 'no-dev') },
      mqtt: { embedded: { port: 0 } },
      state: { dir: join(dir, 'state') },
      update: { lockFile: join(dir, 'update.lock') },
      reconcile: { retry: { initial: 0.5, max: 2 } },
      containers: { ros: { image: r.fixtures.images.v339, stopTimeout: 1, restart: 'unless-stopped', env: { X: x } } },
    });
    running = spawnAgent(['run', '--config', config], env);
    return running;
  }

  async function stop(agent: AgentProcess): Promise<void> {
    agent.kill('SIGTERM');
    await agent.exited(10_000);
    running = undefined;
  }

  const env = () => docker('inspect', '-f', '{{range .Config.Env}}{{println .}}{{end}}', 'ros').split('\n');
  const onlyRos = (x: string) => () => {
    const all = rosContainers();
    const one = all.length === 1 && all[0]!.name === 'ros' && all[0]!.state === 'running';
    return one && env().includes(`X=${x}`) ? all : undefined;
  };

  beforeEach(function () {
    needRig(this);
    cleanEngine();
    dir = tempDir('rfa-rcrash-');
    docker('pull', rig().fixtures.images.v339);
  });

  afterEach(async () => {
    if (running) await stop(running).catch(() => running?.kill('SIGKILL'));
    if (rig()) cleanEngine();
  });

  for (const step of ['stopping', 'renaming', 'creating', 'starting', 'removing']) {
    it(`killed at ${step}: the next start settles it and recreates; one ros, with the new spec`, async () => {
      const first = start('1');
      await waitUntil(onlyRos('1'), 30_000, 'ros with X=1');
      await stop(first);
      const doomed = start('2', { ROBOT_AGENT_TEST_KILL_AT: `recreate:${step}` });
      assert.equal(await doomed.exited(40_000), 'SIGKILL', `the agent was to be killed at ${step}`);
      running = undefined;
      assert.ok(existsSync(join(dir, 'state', 'recreate-journal.json')), 'a journal was left behind');
      const next = start('2');
      await waitUntil(onlyRos('2'), 40_000, 'exactly one ros, with X=2');
      // The journal is cleared just after the replaced container is removed: the one ros above
      // may be seen in between on a loaded machine.
      await waitUntil(() => !existsSync(join(dir, 'state', 'recreate-journal.json')), 10_000, 'journal cleared');
      if (['creating', 'starting', 'removing'].includes(step)) {
        // Logged just after the settle: the one ros above may be seen before the line is read.
        const settled = await waitUntil(
          () => next.logs().find((l) => l.msg === 'settled a recreate interrupted by a restart'),
          10_000,
          'recovery logged',
        );
        assert.equal(settled.outcome, step === 'removing' ? 'completed' : 'restored');
      }
    });
  }
});
