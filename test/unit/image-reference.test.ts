import assert from 'node:assert/strict';
import { AgentError } from '../../agent/core/errors.js';
import { allowedReference, isAllowed, parseImageReference } from '../../agent/core/image-reference.js';

const code = (fn: () => unknown): string => {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof AgentError);
    return err.code;
  }
  return 'no error';
};

describe('image references', () => {
  it('normalises like the engine', () => {
    const r = parseImageReference('yahboomtechnology/ros-foxy:3.3.9');
    assert.deepEqual(r, {
      registry: 'docker.io',
      repository: 'yahboomtechnology/ros-foxy',
      tag: '3.3.9',
      digest: undefined,
      familiar: 'yahboomtechnology/ros-foxy:3.3.9',
      familiarRepository: 'yahboomtechnology/ros-foxy',
    });
    assert.equal(parseImageReference('ubuntu').repository, 'library/ubuntu');
    assert.equal(parseImageReference('ubuntu').familiar, 'ubuntu:latest');
    assert.equal(parseImageReference('docker.io/library/ubuntu:22.04').familiar, 'ubuntu:22.04');
    const local = parseImageReference('127.0.0.1:5000/yahboomtechnology/ros-foxy:3.4.0');
    assert.deepEqual(
      [local.registry, local.repository, local.tag, local.familiarRepository],
      ['127.0.0.1:5000', 'yahboomtechnology/ros-foxy', '3.4.0', '127.0.0.1:5000/yahboomtechnology/ros-foxy'],
    );
    const digest = `sha256:${'a'.repeat(64)}`;
    assert.deepEqual(
      [parseImageReference(`a/b@${digest}`).tag, parseImageReference(`a/b@${digest}`).digest],
      [undefined, digest],
    );
    assert.equal(parseImageReference('localhost/x:1').registry, 'localhost');
  });

  for (const bad of ['', 'UPPER/case', 'a//b', 'a/b:', 'a/b:-x', 'a/b@sha256:zz', ':tag', 'a/b c', 'x'.repeat(300)]) {
    it(`refuses ${JSON.stringify(bad.slice(0, 20))} with bad_reference`, () => {
      assert.equal(
        code(() => parseImageReference(bad)),
        'bad_reference',
      );
    });
  }
  it('refuses a non-string', () =>
    assert.equal(
      code(() => parseImageReference(42)),
      'bad_reference',
    ));

  it('allows by glob from the local config only', () => {
    const allow = ['yahboomtechnology/*'];
    assert.ok(isAllowed(parseImageReference('yahboomtechnology/ros-foxy:3.3.9'), allow));
    assert.ok(!isAllowed(parseImageReference('yahboomtechnology/ros/foxy:1'), allow), '* does not cross /');
    assert.ok(isAllowed(parseImageReference('yahboomtechnology/ros/foxy:1'), ['yahboomtechnology/**']));
    assert.ok(!isAllowed(parseImageReference('evil/ros-foxy:3.3.9'), allow));
    assert.ok(
      !isAllowed(parseImageReference('registry.evil/yahboomtechnology/ros-foxy:3.3.9'), allow),
      'another registry is another image',
    );
    assert.ok(isAllowed(parseImageReference('yahboomtechnology/ros-foxy:3.3.9'), ['yahboomtechnology/ros-foxy:3.*']));
    assert.ok(!isAllowed(parseImageReference('yahboomtechnology/ros-foxy:4.0'), ['yahboomtechnology/ros-foxy:3.*']));
    assert.equal(
      code(() => allowedReference('evil/x:1', allow)),
      'not_allowed',
    );
    assert.equal(
      code(() => allowedReference('bad ref', allow)),
      'bad_reference',
    );
  });
});
