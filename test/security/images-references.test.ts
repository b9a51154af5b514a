import assert from 'node:assert/strict';
import { defaultConfigFile, loadConfig } from '../../agent/config/load-config.js';
import { allowedReference, isAllowed, parseImageReference } from '../../agent/core/image-reference.js';

/**
 * Image reference tricks: names that parse differently in the engine and in the agent, or that
 * slip past a pattern. What the agent cannot read exactly as the engine does, it refuses.
 */
describe('security: image reference tricks', () => {
  const digest = `sha256:${'a'.repeat(64)}`;
  const code = (input: unknown, patterns: string[]) => {
    try {
      allowedReference(input, patterns);
      return 'ok';
    } catch (err) {
      return (err as { code: string }).code;
    }
  };

  it('a pattern pinning a tag does not allow that tag with a digest beside it (the engine takes the digest)', () => {
    const pinned = ['yahboomtechnology/ros-foxy:3.3.9'];
    assert.equal(code(`yahboomtechnology/ros-foxy:3.3.9@${digest}`, pinned), 'not_allowed');
    assert.equal(code(`yahboomtechnology/ros-foxy@${digest}`, ['yahboomtechnology/ros-foxy:*']), 'not_allowed');
    // A repository pattern allows any content of the repository, digests included.
    assert.equal(code(`yahboomtechnology/ros-foxy:3.3.9@${digest}`, ['yahboomtechnology/*']), 'ok');
  });

  it('refuses upper case, .., empty components, bad digests and names over 255 characters', () => {
    for (const bad of [
      'Yahboomtechnology/ros-foxy:1',
      'yahboomtechnology/../evil:1',
      'yahboomtechnology//ros:1',
      'yahboomtechnology/ros-foxy@sha256:abc',
      `yahboomtechnology/${'a'.repeat(250)}`,
      'yahboomtechnology/ros-foxy:.hidden',
      'yahboomtechnology/ros foxy',
      'a:b/c',
      '',
      42,
    ]) {
      assert.equal(code(bad, ['**']), 'bad_reference', String(bad));
    }
  });

  it('a registry host or port in front is another image: it does not match a Docker Hub pattern', () => {
    for (const other of [
      'localhost/yahboomtechnology/ros-foxy:1',
      'localhost:5000/yahboomtechnology/ros-foxy:1',
      'docker.io:443/yahboomtechnology/ros-foxy:1',
      'Docker.io/yahboomtechnology/ros-foxy:1',
      'evil.example/yahboomtechnology/ros-foxy:1',
      'yahboomtechnology/ros-foxy/extra:1',
      'yahboomtechnologyx/ros-foxy:1',
    ]) {
      assert.equal(code(other, ['yahboomtechnology/*']), 'not_allowed', other);
    }
    // Spellings the engine reads as the same Docker Hub image are the same image here too.
    for (const same of ['docker.io/yahboomtechnology/ros-foxy:1', 'index.docker.io/yahboomtechnology/ros-foxy:1']) {
      assert.equal(parseImageReference(same).familiar, 'yahboomtechnology/ros-foxy:1');
      assert.equal(code(same, ['yahboomtechnology/*']), 'ok');
    }
    assert.equal(parseImageReference('ubuntu').familiar, 'ubuntu:latest');
    assert.ok(!isAllowed(parseImageReference('docker.io/library/ubuntu'), ['yahboomtechnology/*']));
  });

  it('the default snapshot repository is local only: registry localhost, not Docker Hub (issue 12.9)', () => {
    const { config } = loadConfig({ file: defaultConfigFile(), env: {}, hostname: 'rosmaster-07' });
    const ref = parseImageReference(`${config.snapshots.repository}:t`);
    assert.equal(ref.registry, 'localhost');
    assert.equal(config.snapshots.repository, 'localhost/robot-snapshots/ros');
    assert.ok(!isAllowed(ref, config.images.allow), 'snapshots must not pass images.allow by default');
    assert.ok(!isAllowed(ref, config.images.pushAllow), 'nothing is pushed by default');
    assert.equal(config.images.exportMaxBytes, 32 * 1024 ** 3);
  });
});
