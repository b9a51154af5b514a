import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { createLogger } from '../../agent/core/logger.js';
import { AgentError } from '../../agent/core/errors.js';
import { DockerEngineLink } from '../../agent/docker/engine-link.js';
import type { EngineDeadlines } from '../../agent/docker/engine-deadline.js';
import { EventBus, type AgentEvent } from '../../agent/state/event-bus.js';
import { StateStore } from '../../agent/state/state-store.js';
import { startAgent, type AgentUnderTest } from '../helpers/agent-harness.js';
import { cleanEngine, docker } from '../helpers/engine-cli.js';
import { FaultyRegistry } from '../helpers/faulty-registry.js';
import { MqttProbe } from '../helpers/mqtt-probe.js';
import { tempDir } from '../helpers/temp.js';
import { waitUntil } from '../helpers/wait.js';
import { needRig, rig } from '../setup.js';

/** A DockerEngineLink of its own on a socket, with its log lines and bus events kept. */
async function linkOn(socketPath: string, deadlines?: EngineDeadlines, stopSeconds?: number) {
  const holder = await startAgent();
  const store = new StateStore(holder.agent.store.get() as never);
  await holder.stop();
  const logs: Array<Record<string, unknown>> = [];
  const events: AgentEvent[] = [];
  const bus = new EventBus();
  bus.subscribe((e) => events.push(e));
  const write = (line: string) => logs.push(JSON.parse(line) as Record<string, unknown>);
  const logger = createLogger({ level: 'debug', write });
  const link = new DockerEngineLink({
    socketPath,
    store,
    bus,
    logger,
    ...(deadlines ? { deadlines } : {}),
    ...(stopSeconds ? { stopSeconds: () => stopSeconds } : {}),
    retry: { initialMs: 200, maxMs: 1000 },
  });
  return { link, logs, events, store };
}

/** The ROS stand-in image, local (the rig keeps it in its registry only). */
function localRosImage(): string {
  const r = rig();
  docker('pull', r.fixtures.registryImages.v339);
  return r.fixtures.registryImages.v339;
}

const SHORT: EngineDeadlines = { probe: 1, read: 1, change: 1, stopMargin: 1 };

describe('engine deadlines: each operation gets the time it needs, and no blanket timeout', function () {
  this.timeout(60_000);
  const made: string[] = [];
  let link: DockerEngineLink | undefined;

  afterEach(async () => {
    await link?.stop();
    link = undefined;
    for (const name of made.splice(0)) {
      try {
        docker('rm', '-f', name);
      } catch {
        // already gone
      }
    }
  });

  it('the event stream stays up over 40 s of a quiet engine: no docker.lost, events still arrive', async function () {
    needRig(this);
    this.timeout(70_000);
    const subject = await linkOn(rig().docker.socketPath);
    link = subject.link;
    const seen: string[] = [];
    link.onEngineEvent((e) => seen.push(`${e.Type}:${e.Action}:${e.Actor?.ID ?? ''}`));
    await link.start();
    await waitUntil(() => link!.available, 5000, 'link connected');
    // Nothing happens on this engine: the stream must not be cut for being quiet.
    await new Promise((resolve) => setTimeout(resolve, 40_000));
    assert.equal(link.available, true);
    assert.deepEqual(
      subject.events.filter((e) => e.type === 'docker.lost'),
      [],
    );
    assert.deepEqual(
      subject.logs.filter((l) => String(l.msg).includes('event stream')),
      [],
    );
    const name = `rfa-quiet-${Date.now()}`;
    await link.docker.createVolume({ Name: name });
    await link.docker.getVolume(name).remove();
    await waitUntil(() => seen.includes(`volume:destroy:${name}`), 5000, 'an event after 40 quiet seconds');
  });

  it('a stop that takes 25 s (stopTimeout 30) succeeds', async function () {
    needRig(this);
    const subject = await linkOn(rig().docker.socketPath, { probe: 10, read: 60, change: 120, stopMargin: 5 });
    link = subject.link;
    const name = `rfa-slowstop-${Date.now()}`;
    made.push(name);
    // The trap runs after the current `sleep 1`: the container takes 25-26 s to stop on TERM.
    const container = await link.docker.createContainer({
      name,
      Image: localRosImage(),
      Cmd: ['sh', '-c', "trap 'sleep 25; exit 0' TERM; while true; do sleep 1; done"],
      StopTimeout: 30,
    });
    await container.start();
    const t0 = Date.now();
    await container.stop({ t: 30 });
    const took = Date.now() - t0;
    assert.ok(took >= 24_000, `stopped after ${took} ms: the trap did not run?`);
    const state = (await container.inspect()).State;
    assert.equal(state.ExitCode, 0, 'exited by its own trap, not killed');
  });

  it('a commit of a large change is not cut by a deadline: commit has none', async function () {
    needRig(this);
    const subject = await linkOn(rig().docker.socketPath, SHORT);
    link = subject.link;
    const name = `rfa-bigcommit-${Date.now()}`;
    made.push(name);
    const container = await link.docker.createContainer({ name, Image: localRosImage() });
    await container.start();
    docker('exec', name, 'dd', 'if=/dev/zero', 'of=/big.bin', 'bs=1048576', 'count=300');
    const t0 = Date.now();
    const committed = (await container.commit({ repo: 'rfa/bigcommit', tag: 'x', pause: false })) as { Id: string };
    const took = Date.now() - t0;
    try {
      assert.match(committed.Id, /^sha256:/);
      assert.ok(took > SHORT.change * 1000, `the commit took ${took} ms: too quick to prove anything`);
      // The short deadlines hold for what they cover: a read still answers in time.
      assert.equal((await container.inspect()).Name, `/${name}`);
    } finally {
      docker('image', 'rm', '-f', 'rfa/bigcommit:x');
    }
  });

  it('a hung engine: engine_deadline per operation, docker_unresponsive only when ping fails', async function () {
    const socketPath = join(tempDir('rfa-mute-'), 'docker.sock');
    // Answers pings, hangs on everything else: a daemon stuck in one operation.
    const held = new Set<Socket>();
    let pingAnswers = true;
    const server: Server = createServer((socket) => {
      held.add(socket);
      socket.on('close', () => held.delete(socket));
      socket.on('data', (data) => {
        if (pingAnswers && /^(GET|HEAD) \/_ping/.test(data.toString())) {
          socket.write('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nOK');
        }
      });
    });
    await new Promise<void>((resolve) => server.listen(socketPath, resolve));
    try {
      const subject = await linkOn(socketPath, SHORT, 1);
      link = subject.link;
      const t0 = Date.now();
      const err = await link.docker
        .getContainer('ros')
        .inspect()
        .then(
          () => undefined,
          (e: unknown) => e,
        );
      assert.ok(err instanceof AgentError, String(err));
      assert.equal(err.code, 'engine_deadline');
      assert.match(err.message, /did not .*within 1 s/);
      assert.ok(Date.now() - t0 < 5000);
      assert.equal((await link.explain(err, 'inspect ros')).code, 'engine_deadline', 'the engine answers pings');
      const stop = await link.docker
        .getContainer('ros')
        .stop({ t: 1 })
        .then(
          () => undefined,
          (e: unknown) => e,
        );
      assert.equal((stop as AgentError).code, 'engine_deadline');
      assert.match((stop as AgentError).message, /stop container ros within 2 s/);
      pingAnswers = false;
      const explained = await link.explain(err, 'inspect ros');
      assert.equal(explained.code, 'docker_unresponsive');
      assert.match(explained.message, /does not answer pings/);
      // A commit has no deadline, but it does not wait for ever on an engine found gone.
      const commit = link.docker
        .getContainer('ros')
        .commit({ repo: 'x' })
        .then(
          () => undefined,
          (e: unknown) => e,
        );
      await link.start();
      const lost = (await commit) as AgentError;
      assert.equal(lost.code, 'docker_unresponsive', String(lost));
      assert.match(lost.message, /could not commit a container: the Docker engine is not available/);
      assert.equal(subject.store.get().docker.error?.code, 'docker_unresponsive');
    } finally {
      for (const socket of held) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});

describe('engine deadlines: a pull from a registry that stops answering', function () {
  this.timeout(60_000);
  let subject: AgentUnderTest | undefined;
  let probe: MqttProbe | undefined;
  let faulty: FaultyRegistry | undefined;

  afterEach(async () => {
    await probe?.close();
    await subject?.stop();
    await faulty?.stop();
    probe = undefined;
    subject = undefined;
    faulty = undefined;
  });

  it('is a stall after images.stallTimeout (17 s, past the old 15 s cut), not "engine unavailable"', async function () {
    needRig(this);
    // No layer of it may be here already, or nothing would need the stalled registry.
    cleanEngine();
    faulty = await FaultyRegistry.start(rig().registry.url, 'stall-layers');
    subject = await startAgent({
      docker: { socketPath: rig().docker.socketPath },
      images: { allow: [`${faulty.host}/**`], stallTimeout: 17 },
    });
    const events: AgentEvent[] = [];
    subject.agent.bus.subscribe((e) => events.push(e));
    probe = await MqttProbe.connect(`mqtt://127.0.0.1:${subject.agent.embeddedBroker!.port}`, { protocolVersion: 4 });
    await probe.subscribe(`${subject.base}/#`);
    await waitUntil(() => subject!.agent.store.get().docker.available, 5000, 'docker available');
    const image = `${faulty.host}/yahboomtechnology/ros-foxy:3.3.9`;
    const t0 = Date.now();
    const r = await probe.request(subject.base, 'pull', { id: 'stall-17', image }, 40_000);
    const took = Date.now() - t0;
    const error = r.error as { code: string; message: string };
    assert.equal(error.code, 'stalled', JSON.stringify(r));
    assert.match(error.message, /moved no byte for 17 s/);
    assert.ok(took >= 17_000 && took < 30_000, `failed after ${took} ms`);
    assert.equal(subject.agent.store.get().docker.available, true);
    assert.deepEqual(
      events.filter((e) => e.type === 'docker.lost'),
      [],
    );
  });
});
