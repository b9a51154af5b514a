import assert from 'node:assert/strict';
import { join } from 'node:path';
import { spawnAgent, type AgentProcess } from '../helpers/agent-process.js';
import { freePort } from '../rig/net.js';
import { tempDir } from '../helpers/temp.js';
import { waitUntil } from '../helpers/wait.js';

/**
 * Issue 18.5: two agents on one state.dir kicked each other off the broker every second (one
 * client id). The second must refuse to start, naming the process that holds the robot; a crash
 * of the first must not leave a lock behind.
 */
describe('one agent per state.dir (spawned)', function () {
  this.timeout(60_000);
  const agents: AgentProcess[] = [];

  afterEach(() => {
    for (const a of agents.splice(0)) if (a.child.exitCode === null && a.child.signalCode === null) a.kill('SIGKILL');
  });

  async function start(stateDir: string): Promise<AgentProcess> {
    const dir = tempDir();
    const agent = spawnAgent(['run'], {
      ROBOT_AGENT_ROBOT_ID: `lock-${process.pid}`,
      ROBOT_AGENT_MQTT_EMBEDDED_PORT: String(await freePort()),
      ROBOT_AGENT_STATE_DIR: stateDir,
      ROBOT_AGENT_DOCKER_SOCKET_PATH: join(dir, 'docker.sock'),
    });
    agents.push(agent);
    return agent;
  }

  const started = (a: AgentProcess) => () => a.logs().some((l) => l.msg === 'agent started');

  it("a second agent refuses to start, names the first one's PID, and exits 1 without touching the broker", async () => {
    const state = join(tempDir(), 'state');
    const first = await start(state);
    await waitUntil(started(first), 20_000, `the first agent to start:\n${first.stderr.join('\n')}`);

    const second = await start(state);
    assert.equal(await second.exited(20_000), 1);
    const said = second.stderr.join('\n');
    assert.match(said, /state_dir_locked: another robot agent \(PID (\d+)/);
    assert.equal(Number(/PID (\d+)/.exec(said)![1]), first.child.pid, said);
    assert.ok(said.includes(state), said);
    assert.equal(second.logs().length, 0, 'the second agent logged nothing: it started nothing');
    assert.equal(first.child.exitCode, null, 'the first agent still runs');
  });

  it('a crashed agent (SIGKILL) leaves no lock: the next one starts', async () => {
    const state = join(tempDir(), 'state');
    const first = await start(state);
    await waitUntil(started(first), 20_000, 'the first agent to start');
    first.kill('SIGKILL');
    assert.equal(await first.exited(), 'SIGKILL');

    const next = await start(state);
    await waitUntil(started(next), 20_000, `the next agent to start:\n${next.stderr.join('\n')}`);
  });

  it('logs "stopped" as its last line on SIGTERM, and the lock is free after', async () => {
    const state = join(tempDir(), 'state');
    const first = await start(state);
    await waitUntil(started(first), 20_000, 'the agent to start');
    first.kill('SIGTERM');
    assert.equal(await first.exited(), 0);
    const logs = first.logs();
    assert.equal(logs[logs.length - 1]?.msg, 'stopped', JSON.stringify(logs.slice(-3)));

    const next = await start(state);
    await waitUntil(started(next), 20_000, 'the next agent to start');
  });
});
