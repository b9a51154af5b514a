import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startAgent, type AgentUnderTest } from '../helpers/agent-harness.js';
import { docker, dockerAt } from '../helpers/engine-cli.js';
import { MqttProbe } from '../helpers/mqtt-probe.js';
import { tempDir } from '../helpers/temp.js';
import { waitUntil } from '../helpers/wait.js';
import { removeDockerDir, startDockerd, type DockerRig } from '../rig/dockerd.js';
import { needRig, rig } from '../setup.js';

/**
 * A robot whose disk fills while a pull extracts: an engine of its own on a 40 MiB tmpfs, and
 * an image whose layer downloads as a few kilobytes and extracts to 96 MiB of zeros, so the plan
 * (told to assume no extraction overhead) lets it start and the disk runs out mid-way.
 */
describe('images: a disk that fills mid-pull', function () {
  this.timeout(120_000);
  let small: DockerRig | undefined;
  let mountPoint: string | undefined;
  let subject: AgentUnderTest | undefined;
  let probe: MqttProbe | undefined;
  const image = () => `${rig().registry.host}/yahboomtechnology/ros-foxy:zeros`;

  before(async function () {
    needRig(this);
    const ctx = tempDir('rfa-zeros-');
    writeFileSync(join(ctx, 'zeros.bin'), Buffer.alloc(96 * 1024 * 1024));
    writeFileSync(
      join(ctx, 'Dockerfile'),
      `FROM ${rig().fixtures.registryImages.v339}\nCOPY zeros.bin /opt/ros/zeros.bin\n`,
    );
    docker('pull', rig().fixtures.registryImages.v339);
    docker('build', '-q', '--network', 'none', '-t', image(), ctx);
    docker('push', image());
    docker('image', 'rm', image(), rig().fixtures.registryImages.v339);
    mountPoint = tempDir('rfa-small-');
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=40m', 'tmpfs', mountPoint]);
    mkdirSync(join(mountPoint, 'd'));
    small = await startDockerd(join(mountPoint, 'd'));
  });

  after(async () => {
    await probe?.close();
    await subject?.stop();
    await small?.stop();
    if (mountPoint) {
      removeDockerDir(join(mountPoint, 'd'));
      execFileSync('umount', ['-l', mountPoint]);
    }
  });

  it('fails with disk_full, leaves no image, and the agent carries on', async function () {
    needRig(this);
    subject = await startAgent({
      docker: { socketPath: small!.socketPath },
      images: { allow: [`${rig().registry.host}/**`], diskFactor: 1, diskReserve: 0 },
    });
    probe = await MqttProbe.connect(`mqtt://127.0.0.1:${subject.agent.embeddedBroker!.port}`, { protocolVersion: 4 });
    await probe.subscribe(`${subject.base}/#`);
    await waitUntil(() => subject!.agent.store.get().docker.available, 5000, 'the small engine');
    const plan = await probe.request(subject.base, 'plan', { id: 'plan', image: image() });
    assert.equal(
      (plan.result as { fits: boolean }).fits,
      true,
      'the plan must let it start for this test to mean anything',
    );
    const pulled = await probe.request(subject.base, 'pull', { id: 'fill', image: image() }, 90_000);
    assert.equal((pulled.error as { code: string } | undefined)?.code, 'disk_full', JSON.stringify(pulled));
    const left = dockerAt(small!.cliArgs, 'image', 'ls', '-q');
    assert.equal(left, '', 'a half-pulled image is present');
    assert.equal((await probe.request(subject.base, 'ping', { id: 'alive' })).ok, true);
  });
});
