import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig } from '../../agent/config/load-config.js';
import { AgentError } from '../../agent/core/errors.js';
import { packageRoot } from '../../agent/core/package-root.js';
import { spawnAgent, type AgentProcess } from '../helpers/agent-process.js';
import { MqttProbe } from '../helpers/mqtt-probe.js';
import { tempDir, writeYaml } from '../helpers/temp.js';
import { waitUntil } from '../helpers/wait.js';
import { freePort } from '../rig/net.js';
import { rig } from '../setup.js';

/**
 * Attack family "secrets in every output" (issue 12.7): a password holding `"` and `\` (which JSON
 * escapes, so redaction after escaping missed it) and URL delimiters never appears, in any form,
 * in what a real agent and robot-fleet print, publish or keep: logs, stderr, events, state,
 * command answers, check-config, robot-fleet's output and errors, state.dir.
 */
const SECRET = `pa"ss\\wo:rd@/%x-${process.pid}`;
const USER = 'fleet-user';

function forms(secret = SECRET, user = USER): string[] {
  const once = JSON.stringify(secret).slice(1, -1);
  const pair = Buffer.from(`${user}:${secret}`);
  const twice = JSON.stringify(once).slice(1, -1);
  return [secret, once, twice, encodeURIComponent(secret), pair.toString('base64'), pair.toString('base64url')];
}

function assertNoSecret(where: string, text: string): void {
  for (const form of forms()) {
    assert.ok(!text.includes(form), `${where} printed the secret as ${JSON.stringify(form)}:\n${text.slice(0, 2000)}`);
  }
}

interface Run {
  code: Promise<number>;
  out: () => string;
}

function fleet(args: string[]): Run {
  const main = join(packageRoot(), 'build/agent/fleet/main.js');
  const child = spawn(process.execPath, [main, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr.on('data', (c: Buffer) => (out += c.toString()));
  return { code: new Promise((resolve) => child.on('exit', (c) => resolve(c ?? -1))), out: () => out };
}

/** The agent's CLI to its end: exit code and everything it wrote. */
async function agentCli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | string; out: string }> {
  const agent = spawnAgent(args, env);
  const code = await agent.exited(20_000);
  return { code, out: [...agent.stdout, ...agent.stderr].join('\n') };
}

/** Every file under dir, as text. */
function filesUnder(dir: string): Array<[string, string]> {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' }).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isFile() ? [[path, readFileSync(path, 'latin1')] as [string, string]] : [];
  });
}

describe('security: secrets in every output (issue 12.7)', function () {
  this.timeout(90_000);
  let dir: string;
  let secretFile: string;
  let dockerConfig: string;
  let running: AgentProcess | undefined;

  beforeEach(() => {
    dir = tempDir('rfa-secrets-');
    secretFile = join(dir, 'secret');
    writeFileSync(secretFile, SECRET + '\n', { mode: 0o600 });
    dockerConfig = join(dir, 'docker-config.json');
    const auth = Buffer.from(`${USER}:${SECRET}`).toString('base64');
    writeFileSync(dockerConfig, JSON.stringify({ auths: { 'registry.lab.example:5000': { auth } } }));
  });

  afterEach(async () => {
    if (running && running.child.exitCode === null) {
      running.kill('SIGKILL');
      await running.exited().catch(() => undefined);
    }
    running = undefined;
  });

  const base = (extra: Record<string, unknown> = {}) => ({
    robot: { id: 'secret-bot' },
    docker: { socketPath: rig().docker.socketPath },
    state: { dir: join(dir, 'state') },
    log: { level: 'debug' },
    ...extra,
  });

  it('a password in mqtt.url is config_invalid, pointing to mqtt.passwordFile, and printed nowhere', async () => {
    const url = `mqtt://${USER}:${encodeURIComponent(SECRET)}@127.0.0.1:1883`;
    const config = writeYaml(dir, 'url.yaml', base({ mqtt: { url } }));
    assert.throws(
      () => loadConfig({ file: config, env: {} }),
      (err: unknown) => {
        assert.ok(err instanceof AgentError);
        assert.equal(err.code, 'config_invalid');
        const text = JSON.stringify({ message: err.message, details: err.details });
        assert.match(text, /mqtt\.url: holds a user name or password/);
        assert.match(text, /mqtt\.passwordFile/);
        assertNoSecret('the ConfigError', text);
        return true;
      },
    );
    for (const command of ['check-config', 'run']) {
      const result = await agentCli([command, '--config', config]);
      assert.equal(result.code, 2, result.out);
      assert.match(result.out, /mqtt\.url: holds a user name or password \(mqtt:\/\/\*\*\*@127\.0\.0\.1:1883\)/);
      assertNoSecret(`robot-agent ${command}`, result.out);
    }
    // The same URL from the environment.
    const plain = writeYaml(dir, 'plain.yaml', base());
    const fromEnv = await agentCli(['check-config', '--config', plain], { ROBOT_AGENT_MQTT_URL: url });
    assert.equal(fromEnv.code, 2, fromEnv.out);
    assertNoSecret('check-config with ROBOT_AGENT_MQTT_URL', fromEnv.out);
  });

  it('a registry mirror with credentials is refused the same way', async () => {
    const mirror = `https://${USER}:${encodeURIComponent(SECRET)}@mirror.lab.example/`;
    const config = writeYaml(dir, 'mirror.yaml', base({ registries: { 'docker.io': { mirror } } }));
    const result = await agentCli(['check-config', '--config', config]);
    assert.equal(result.code, 2, result.out);
    assert.match(result.out, /registries\.docker\.io\.mirror: holds a user name or password/);
    assert.match(result.out, /registries\.docker\.io\.passwordFile/);
    assertNoSecret('check-config (mirror)', result.out);
  });

  it('a malformed ROBOT_AGENT_CONTAINERS or Docker config.json is refused without echoing its text', async () => {
    const config = writeYaml(dir, 'plain.yaml', base());
    // Cut short: the closing brace is missing.
    const containers = `{"ros": {"image": "yahboomtechnology/ros-foxy:3.3.9", "env": {"PW": ${JSON.stringify(SECRET)}}`;
    const env = await agentCli(['check-config', '--config', config], { ROBOT_AGENT_CONTAINERS: containers });
    assert.equal(env.code, 2, env.out);
    assert.match(env.out, /containers: ROBOT_AGENT_CONTAINERS \(\d+ characters\) is not a valid JSON object/);
    assertNoSecret('check-config (ROBOT_AGENT_CONTAINERS)', env.out);

    const auth = Buffer.from(`${USER}:${SECRET}`).toString('base64');
    writeFileSync(dockerConfig, `{"auths": {"registry.lab.example:5000": {"auth": "${auth}"}`);
    const withDocker = writeYaml(dir, 'docker.yaml', base({ images: { dockerConfig } }));
    const docker = await agentCli(['check-config', '--config', withDocker]);
    assert.equal(docker.code, 2, docker.out);
    assert.match(docker.out, /images\.dockerConfig: cannot read .*: it is not valid JSON/);
    assertNoSecret('check-config (dockerConfig)', docker.out);
  });

  it('check-config and a run refused by the broker print none of the secrets they hold', async () => {
    const r = rig();
    const config = writeYaml(
      dir,
      'wrong.yaml',
      base({
        mqtt: { url: r.mqtt.authUrl, username: r.mqtt.username, passwordFile: secretFile },
        images: { dockerConfig },
        registries: { 'registry.lab.example:5000': { username: USER, passwordFile: secretFile } },
      }),
    );
    const check = await agentCli(['check-config', '--config', config]);
    assert.equal(check.code, 0, check.out);
    assertNoSecret('check-config', check.out);
    // The broker refuses the password: the agent retries, logging why, at debug level.
    running = spawnAgent(['run', '--config', config]);
    const agent = running;
    const refusedLogged = () => agent.logs().some((l) => l.msg === 'broker connection error');
    await waitUntil(refusedLogged, 20_000, 'a refused connection logged');
    agent.kill('SIGTERM');
    await agent.exited();
    assertNoSecret('the agent refused by the broker', [...agent.stdout, ...agent.stderr].join('\n'));
  });

  it('a real run on the embedded broker: logs, events, state, answers, robot-fleet, state.dir: no secret', async () => {
    const port = await freePort();
    const config = writeYaml(
      dir,
      'embedded.yaml',
      base({
        mqtt: { embedded: { port, username: USER, passwordFile: secretFile } },
        images: { dockerConfig, allow: ['yahboomtechnology/*'] },
        registries: { 'registry.lab.example:5000': { username: USER, passwordFile: secretFile } },
      }),
    );
    running = spawnAgent(['run', '--config', config]);
    const agent = running;
    await waitUntil(() => agent.logs().some((l) => l.msg === 'connected to broker'), 20_000, 'the agent on its broker');
    const broker = `mqtt://127.0.0.1:${port}`;
    const probe = await MqttProbe.connect(broker, { username: USER, password: SECRET, protocolVersion: 4 });
    try {
      await probe.subscribe('#');
      const robot = 'fleet/secret-bot';
      await probe.waitFor((m) => m.topic === `${robot}/state`, 10_000, 'retained state');
      for (const [command, body] of [
        ['ping', {}],
        ['state', {}],
        ['devices', {}],
        // Refused requests: their errors are published too.
        ['pull', { image: 'registry.lab.example:5000/evil:1' }],
        ['no-such-command', {}],
      ] as const) {
        await probe.request(robot, command, { id: `s-${command}`, ...body }, 10_000);
      }
      // robot-fleet with the password, then with it inside a URL to a broker that is not there.
      const ok = fleet([
        '--broker',
        broker,
        '--username',
        USER,
        '--password-file',
        secretFile,
        '--timeout',
        '10',
        'send',
        'secret-bot',
        'state',
      ]);
      assert.equal(await ok.code, 0, ok.out());
      const closed = await freePort();
      const withPassword = `mqtt://${USER}:${encodeURIComponent(SECRET)}@127.0.0.1:${closed}`;
      const refused = fleet(['--broker', withPassword, '--timeout', '3', 'list']);
      assert.equal(await refused.code, 3, refused.out());
      assert.match(refused.out(), /cannot reach the fleet broker at mqtt:\/\/\*\*\*@127\.0\.0\.1/);
      const wrong = fleet([
        '--broker',
        broker,
        '--username',
        USER,
        '--password-file',
        dockerConfig,
        '--timeout',
        '3',
        'list',
      ]);
      assert.equal(await wrong.code, 3, wrong.out());

      agent.kill('SIGTERM');
      assert.equal(await agent.exited(), 0);
      assertNoSecret('robot-fleet send', ok.out());
      assertNoSecret('robot-fleet with a password in --broker', refused.out());
      assertNoSecret('robot-fleet refused', wrong.out());
      assert.ok(probe.received.length > 5, 'the probe saw the agent publish');
      for (const m of probe.received) assertNoSecret(`MQTT ${m.topic}`, m.text);
      assertNoSecret('the agent (stdout and stderr)', [...agent.stdout, ...agent.stderr].join('\n'));
      for (const [path, text] of filesUnder(join(dir, 'state'))) assertNoSecret(path, text);
    } finally {
      await probe.close();
    }
  });
});
