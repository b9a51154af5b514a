import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import Docker from 'dockerode';
import mqtt from 'mqtt';
import { readFileSync } from 'node:fs';
import { needRig } from '../setup.js';

/** The rig is what makes the other tests mean something: prove it is the real thing. */
describe('test rig', function () {
  it('runs a real Docker engine 20.10 with overlay2 on its own socket', async function () {
    const rig = needRig(this);
    const docker = new Docker({ socketPath: rig.docker.socketPath });
    const version = await docker.version();
    assert.match(version.Version, /^20\.10\./);
    const info = (await docker.info()) as { Driver: string; DockerRootDir: string };
    assert.equal(info.Driver, 'overlay2');
    assert.equal(info.DockerRootDir, rig.docker.dataRoot);
  });

  it("serves the robots' image names through the registry acting as Docker Hub mirror, layers shared like the real ones", async function () {
    this.timeout(60_000);
    const rig = needRig(this);
    const docker = (...args: string[]) =>
      execFileSync('docker', [...rig.docker.cliArgs, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
        .toString()
        .trim();
    docker('pull', rig.fixtures.images.v339);
    docker('pull', rig.fixtures.images.v340);
    const layers = (image: string) =>
      JSON.parse(docker('image', 'inspect', '--format', '{{json .RootFS.Layers}}', image)) as string[];
    const a = layers(rig.fixtures.images.v339);
    const b = layers(rig.fixtures.images.v340);
    assert.equal(a.length, 3);
    assert.equal(b.length, 3);
    assert.deepEqual(a.slice(0, -1), b.slice(0, -1), 'base and ros layers are shared');
    assert.notEqual(a[2], b[2], 'the version layer differs');
    assert.equal(
      docker('run', '--rm', '--network', 'none', rig.fixtures.images.v340, 'cat', '/etc/ros-version'),
      '3.4.0',
    );
    docker('image', 'rm', rig.fixtures.images.v339, rig.fixtures.images.v340);
  });

  it('lists every fixture tag in the registry', async function () {
    const rig = needRig(this);
    const res = await fetch(`${rig.registry.url}/v2/${rig.fixtures.repository}/tags/list`);
    const body = (await res.json()) as { tags: string[] };
    // Other tests add tags (multi-arch lists); every fixture must be there.
    for (const tag of rig.fixtures.tags)
      assert.ok(body.tags.includes(tag), `${tag} missing from ${body.tags.join(', ')}`);
  });

  it('has a broker that speaks MQTT 5, checks passwords, and requires a trusted client certificate over TLS', async function () {
    const rig = needRig(this);
    const m = rig.mqtt;
    const v5 = await mqtt.connectAsync(m.url, { protocolVersion: 5, reconnectPeriod: 0 });
    assert.equal(v5.options.protocolVersion, 5);
    await v5.endAsync();
    await assert.rejects(mqtt.connectAsync(m.authUrl, { username: m.username, password: 'wrong', reconnectPeriod: 0 }));
    const authed = await mqtt.connectAsync(m.authUrl, {
      username: m.username,
      password: m.password,
      reconnectPeriod: 0,
    });
    await authed.endAsync();
    const tls = { ca: readFileSync(m.certs.ca), rejectUnauthorized: true, reconnectPeriod: 0, connectTimeout: 3000 };
    const mtls = await mqtt.connectAsync(m.tlsUrl, {
      ...tls,
      cert: readFileSync(m.certs.clientCert),
      key: readFileSync(m.certs.clientKey),
    });
    await mtls.endAsync();
    await assert.rejects(mqtt.connectAsync(m.tlsUrl, tls));
    await assert.rejects(
      mqtt.connectAsync(m.tlsUrl, {
        ...tls,
        cert: readFileSync(m.certs.strangerCert),
        key: readFileSync(m.certs.strangerKey),
      }),
    );
  });
});
