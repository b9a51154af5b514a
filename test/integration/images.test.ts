import assert from 'node:assert/strict';
import { startAgent, type AgentUnderTest } from '../helpers/agent-harness.js';
import { Contract } from '../helpers/contract.js';
import { cleanEngine, docker, localTags } from '../helpers/engine-cli.js';
import { FaultyRegistry } from '../helpers/faulty-registry.js';
import { MqttProbe } from '../helpers/mqtt-probe.js';
import { waitUntil } from '../helpers/wait.js';
import { freePort } from '../rig/net.js';
import { startRegistry, type RegistryRig } from '../rig/registry.js';
import { tempDir } from '../helpers/temp.js';
import { needRig, rig } from '../setup.js';
import type { AgentEvent } from '../../agent/state/event-bus.js';
import type { ImageSummary } from '../../agent/state/types.js';

describe('images on the rig', function () {
  this.timeout(60_000);
  const contract = new Contract();
  let subject: AgentUnderTest | undefined;
  let probe: MqttProbe | undefined;
  const events: AgentEvent[] = [];

  async function agent(images: Record<string, unknown> = {}, registries?: Record<string, unknown>): Promise<void> {
    const r = rig();
    subject = await startAgent({
      docker: { socketPath: r.docker.socketPath },
      images,
      registries: registries ?? { 'docker.io': { mirror: r.registry.url } },
    });
    subject.agent.bus.subscribe((e) => events.push(e));
    probe = await MqttProbe.connect(`mqtt://127.0.0.1:${subject.agent.embeddedBroker!.port}`, { protocolVersion: 4 });
    await probe.subscribe(`${subject.base}/#`);
    await waitUntil(() => subject!.agent.store.get().docker.available, 5000, 'docker available');
  }
  const ask = (command: string, body: Record<string, unknown>, ms = 30_000) =>
    probe!.request(subject!.base, command, { id: `${command}-${Date.now()}-${Math.random()}`, ...body }, ms);
  const errorCode = (r: Record<string, unknown>) => (r.ok ? 'ok' : (r.error as { code: string }).code);

  beforeEach(function () {
    needRig(this);
    events.length = 0;
    cleanEngine();
  });
  afterEach(async () => {
    await probe?.close();
    await subject?.stop();
    probe = undefined;
    subject = undefined;
    if (rig()) cleanEngine();
  });

  /** The registry's own word on the 3.4.0 manifest: what the plan must agree with. */
  async function registryLayers(tag: string): Promise<Array<{ digest: string; size: number }>> {
    const res = await fetch(`${rig().registry.url}/v2/${rig().fixtures.repository}/manifests/${tag}`, {
      headers: { accept: 'application/vnd.docker.distribution.manifest.v2+json' },
    });
    return ((await res.json()) as { layers: Array<{ digest: string; size: number }> }).layers;
  }

  it('plan for a tag sharing all but one layer with a local image reports exactly that layer', async () => {
    docker('pull', rig().fixtures.images.v339);
    await agent();
    const response = await ask('plan', { image: rig().fixtures.images.v340 });
    assert.equal(response.ok, true, JSON.stringify(response));
    const plan = response.result as {
      layers: number;
      present: number;
      bytesToDownload: number;
      bytesTotal: number;
      fits: boolean;
      source: string;
      missing: Array<{ digest: string; size: number }>;
      diskFree: number;
    };
    const layers = await registryLayers('3.4.0');
    assert.equal(plan.layers, 3);
    assert.equal(plan.present, 2);
    assert.equal(plan.bytesToDownload, layers[2]!.size);
    assert.deepEqual(plan.missing, [{ digest: layers[2]!.digest, size: layers[2]!.size }]);
    assert.equal(
      plan.bytesTotal,
      layers.reduce((s, l) => s + l.size, 0),
    );
    assert.equal(plan.fits, true);
    assert.equal(plan.source, 'mirror');
    assert.ok(plan.diskFree > 0);
    assert.deepEqual(contract.commandResultProblems('plan', plan), []);
    assert.deepEqual(localTags(), [rig().fixtures.images.v339], 'a plan moves nothing');
  });

  it('pull streams progress with the request id and lands the image under its canonical name', async () => {
    await agent();
    const id = 'pull-1';
    const response = await probe!.request(subject!.base, 'pull', { id, image: rig().fixtures.images.v340 }, 30_000);
    assert.equal(response.ok, true, JSON.stringify(response));
    const result = response.result as { image: string; imageId: string; source: string; bytesDownloaded: number };
    assert.equal(result.image, 'yahboomtechnology/ros-foxy:3.4.0');
    assert.equal(result.source, 'mirror');
    assert.deepEqual(contract.commandResultProblems('pull', result), []);
    assert.deepEqual(localTags(), ['yahboomtechnology/ros-foxy:3.4.0'], 'no mirror-named tag is left behind');
    const progress = probe!.received
      .filter((m) => m.topic.endsWith('/events'))
      .map((m) => JSON.parse(m.text) as AgentEvent)
      .filter((e) => e.type === 'pull.progress');
    assert.ok(progress.length >= 1, 'no pull.progress event');
    for (const e of progress) {
      assert.equal(e.id, id);
      contract.assert('event.json', e);
    }
    const last = progress.at(-1)! as unknown as { current: number; total: number };
    assert.ok(last.total > 0 && last.current === last.total, JSON.stringify(last));
    const done = await probe!.waitFor(
      (m) => m.topic.endsWith('/events') && m.text.includes('"pull.done"'),
      2000,
      'pull.done',
    );
    assert.equal((JSON.parse(done.text) as { id: string }).id, id);
    const image = await waitUntil(
      () => subject!.agent.store.get().images.find((i) => i.tags.includes('yahboomtechnology/ros-foxy:3.4.0')),
      3000,
      'inventory',
    );
    assert.deepEqual(
      image.layers,
      JSON.parse(
        docker('image', 'inspect', '--format', '{{json .RootFS.Layers}}', 'yahboomtechnology/ros-foxy:3.4.0'),
      ) as string[],
    );
    assert.equal(image.id, result.imageId);
  });

  it('state.images shows shared and unique bytes between two tags', async () => {
    docker('pull', rig().fixtures.images.v339);
    docker('pull', rig().fixtures.images.v340);
    await agent();
    const images = (await ask('images', {})).result as ImageSummary[];
    assert.equal(images.length, 2);
    for (const image of images) {
      assert.ok(image.sharedSize > 2 * 1024 * 1024, `shares the ~2 MiB ros layer: ${JSON.stringify(image)}`);
      assert.equal(image.uniqueSize, image.size - image.sharedSize);
      assert.equal(image.layers.length, 3);
    }
    contract.assert('state.json', { ...subject!.agent.store.get(), ts: new Date().toISOString() });
  });

  it('tag and remove by command; remove refuses an image a container uses', async () => {
    docker('pull', rig().fixtures.images.v339);
    await agent();
    const tagged = await ask('tag', {
      source: rig().fixtures.images.v339,
      target: 'yahboomtechnology/ros-foxy:student-copy',
    });
    assert.equal(tagged.ok, true, JSON.stringify(tagged));
    assert.ok(localTags().includes('yahboomtechnology/ros-foxy:student-copy'));
    const removed = await ask('remove', { image: 'yahboomtechnology/ros-foxy:student-copy' });
    assert.deepEqual((removed.result as { untagged: string[] }).untagged, ['yahboomtechnology/ros-foxy:student-copy']);
    docker('create', '--name', 'rfa-user', '--network', 'none', rig().fixtures.images.v339);
    const refused = await ask('remove', { image: rig().fixtures.images.v339 });
    assert.equal(errorCode(refused), 'in_use');
    assert.match((refused.error as { message: string }).message, /rfa-user/);
    assert.ok(localTags().includes(rig().fixtures.images.v339), 'nothing changed');
  });

  it('answers bad input with a code and changes nothing', async () => {
    const dead = await freePort();
    await agent({ allow: ['yahboomtechnology/*', `127.0.0.1:${dead}/**`] });
    assert.equal(errorCode(await ask('pull', { image: 'busybox:latest' })), 'not_allowed');
    assert.equal(errorCode(await ask('pull', { image: 'Yahboom Technology/ros' })), 'bad_reference');
    assert.equal(errorCode(await ask('pull', {})), 'invalid_args');
    assert.equal(errorCode(await ask('plan', { image: 'yahboomtechnology/ros-foxy:9.9.9' })), 'image_not_found');
    assert.equal(errorCode(await ask('pull', { image: 'yahboomtechnology/ros-foxy:9.9.9' })), 'image_not_found');
    assert.equal(
      errorCode(await ask('plan', { image: `127.0.0.1:${dead}/yahboomtechnology/ros-foxy:1` })),
      'registry_unreachable',
    );
    assert.equal(
      errorCode(
        await ask('tag', { source: 'yahboomtechnology/ros-foxy:nope', target: 'yahboomtechnology/ros-foxy:x' }),
      ),
      'image_not_found',
    );
    assert.equal(
      errorCode(await ask('tag', { source: rig().fixtures.images.v339, target: 'evil/backdoor:1' })),
      'not_allowed',
    );
    assert.equal(errorCode(await ask('remove', { image: 'yahboomtechnology/ros-foxy:nope' })), 'image_not_found');
    assert.ok(events.some((e) => e.type === 'pull.failed'));
    assert.deepEqual(localTags(), []);
    assert.equal((await ask('ping', {})).ok, true);
  });

  it('refuses a pull that does not fit on the disk before any byte moves', async () => {
    await agent({ diskReserve: 1e18 });
    const response = await ask('pull', { image: rig().fixtures.images.v340 });
    assert.equal(errorCode(response), 'insufficient_disk');
    assert.match((response.error as { message: string }).message, /needs \d+ bytes free/);
    assert.deepEqual(localTags(), []);
    assert.ok(!events.some((e) => e.type === 'pull.progress'));
  });

  it('falls back to the origin when the mirror is down, and the image keeps its name', async () => {
    const dead = await freePort();
    const r = rig();
    // The rig registry stands in for the origin of a private registry; the mirror is dead.
    await agent({ allow: [`${r.registry.host}/**`] }, { [r.registry.host]: { mirror: `http://127.0.0.1:${dead}` } });
    const response = await ask('pull', { image: r.fixtures.registryImages.v339 });
    assert.equal(response.ok, true, JSON.stringify(response));
    assert.equal((response.result as { source: string }).source, 'origin');
    assert.deepEqual(localTags(), [r.fixtures.registryImages.v339]);
  });
});

describe('images: a registry that misbehaves', function () {
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

  async function agentFor(host: string, images: Record<string, unknown> = {}): Promise<void> {
    subject = await startAgent({
      docker: { socketPath: rig().docker.socketPath },
      images: { allow: [`${host}/**`], ...images },
    });
    probe = await MqttProbe.connect(`mqtt://127.0.0.1:${subject.agent.embeddedBroker!.port}`, { protocolVersion: 4 });
    await probe.subscribe(`${subject.base}/#`);
    await waitUntil(() => subject!.agent.store.get().docker.available, 5000, 'docker available');
  }

  it('a registry answering 500 is registry_error, for plan and pull', async function () {
    needRig(this);
    faulty = await FaultyRegistry.start(rig().registry.url, 'error500');
    await agentFor(faulty.host);
    for (const command of ['plan', 'pull']) {
      const r = await probe!.request(subject!.base, command, {
        id: `${command}-500`,
        image: `${faulty.host}/yahboomtechnology/ros-foxy:3.3.9`,
      });
      assert.equal((r.error as { code: string }).code, 'registry_error', JSON.stringify(r));
    }
  });

  it('a pull that stops moving fails after images.stallTimeout, leaving no image behind', async function () {
    needRig(this);
    faulty = await FaultyRegistry.start(rig().registry.url, 'stall-layers');
    await agentFor(faulty.host, { stallTimeout: 5 });
    const image = `${faulty.host}/yahboomtechnology/ros-foxy:3.3.9`;
    const t0 = Date.now();
    const r = await probe!.request(subject!.base, 'pull', { id: 'stall', image }, 30_000);
    assert.equal((r.error as { code: string }).code, 'stalled', JSON.stringify(r));
    assert.ok(Date.now() - t0 >= 5000 && Date.now() - t0 < 15_000, `failed after ${Date.now() - t0} ms`);
    assert.equal(docker('image', 'ls', '-q', image), '', 'a half-pulled image is present');
    assert.equal((await probe!.request(subject!.base, 'ping', { id: 'alive' })).ok, true);
  });
});

describe('images: platforms and pull-through mirrors', function () {
  this.timeout(60_000);
  let subject: AgentUnderTest | undefined;
  let probe: MqttProbe | undefined;
  let proxy: RegistryRig | undefined;
  const V2 = 'application/vnd.docker.distribution.manifest.v2+json';

  afterEach(async () => {
    await probe?.close();
    await subject?.stop();
    await proxy?.stop();
    probe = undefined;
    subject = undefined;
    proxy = undefined;
    cleanEngine();
  });

  async function agentWith(config: Record<string, unknown>): Promise<void> {
    subject = await startAgent({ docker: { socketPath: rig().docker.socketPath }, ...config });
    probe = await MqttProbe.connect(`mqtt://127.0.0.1:${subject.agent.embeddedBroker!.port}`, { protocolVersion: 4 });
    await probe.subscribe(`${subject.base}/#`);
    await waitUntil(() => subject!.agent.store.get().docker.available, 5000, 'docker available');
  }

  /** Publishes a manifest list naming existing tags' manifests for the given platforms. */
  async function publishList(
    tag: string,
    entries: Array<{ from: string; architecture: string }>,
  ): Promise<Record<string, string>> {
    const base = `${rig().registry.url}/v2/${rig().fixtures.repository}`;
    const digests: Record<string, string> = {};
    const manifests = [];
    for (const e of entries) {
      const res = await fetch(`${base}/manifests/${e.from}`, { headers: { accept: V2 } });
      const body = Buffer.from(await res.arrayBuffer());
      digests[e.from] = res.headers.get('docker-content-digest')!;
      manifests.push({
        mediaType: V2,
        size: body.length,
        digest: digests[e.from],
        platform: { architecture: e.architecture, os: 'linux' },
      });
    }
    const list = {
      schemaVersion: 2,
      mediaType: 'application/vnd.docker.distribution.manifest.list.v2+json',
      manifests,
    };
    const put = await fetch(`${base}/manifests/${tag}`, {
      method: 'PUT',
      headers: { 'content-type': list.mediaType },
      body: JSON.stringify(list),
    });
    assert.equal(put.status, 201, await put.text());
    return digests;
  }

  it("plans and pulls the image of the engine's own platform from a multi-arch tag", async function () {
    needRig(this);
    const arch = JSON.parse(docker('version', '--format', '{{json .Server.Arch}}')) as string;
    const other = arch === 'amd64' ? 'arm64' : 'amd64';
    const digests = await publishList('multi', [
      { from: '3.4.0', architecture: other },
      { from: '3.3.9', architecture: arch },
    ]);
    await publishList('foreign', [{ from: '3.4.0', architecture: 's390x' }]);
    const r = rig();
    await agentWith({ images: { allow: [`${r.registry.host}/**`] } });
    const plan = await probe!.request(subject!.base, 'plan', {
      id: 'multi',
      image: `${r.registry.host}/${r.fixtures.repository}:multi`,
    });
    assert.equal((plan.result as { digest: string }).digest, digests['3.3.9'], JSON.stringify(plan));
    const pulled = await probe!.request(
      subject!.base,
      'pull',
      { id: 'multi-pull', image: `${r.registry.host}/${r.fixtures.repository}:multi` },
      30_000,
    );
    assert.equal(pulled.ok, true, JSON.stringify(pulled));
    assert.equal(
      docker(
        'run',
        '--rm',
        '--network',
        'none',
        `${r.registry.host}/${r.fixtures.repository}:multi`,
        'cat',
        '/etc/ros-version',
      ),
      '3.3.9',
    );
    const foreign = await probe!.request(subject!.base, 'plan', {
      id: 'foreign',
      image: `${r.registry.host}/${r.fixtures.repository}:foreign`,
    });
    assert.equal((foreign.error as { code: string }).code, 'platform_not_found');
    assert.match((foreign.error as { message: string }).message, /linux\/s390x/);
  });

  it('pulls through a site mirror (docker-registry in proxy mode) and names the image canonically', async function () {
    needRig(this);
    const r = rig();
    proxy = await startRegistry(tempDir('rfa-mirror-'), { proxyRemoteUrl: r.registry.url });
    await agentWith({
      images: { allow: [`${r.registry.host}/**`] },
      registries: { [r.registry.host]: { mirror: proxy.url } },
    });
    const image = r.fixtures.registryImages.v340;
    const pulled = await probe!.request(subject!.base, 'pull', { id: 'via-mirror', image }, 30_000);
    assert.equal(pulled.ok, true, JSON.stringify(pulled));
    assert.equal((pulled.result as { source: string }).source, 'mirror');
    assert.deepEqual(docker('image', 'ls', '--format', '{{.Repository}}:{{.Tag}}').split('\n').filter(Boolean), [
      image,
    ]);
    const cached = (await (await fetch(`${proxy.url}/v2/_catalog`)).json()) as { repositories: string[] };
    assert.ok(cached.repositories.includes(r.fixtures.repository), 'the mirror now holds the image for the next robot');
  });
});
