import assert from 'node:assert/strict';
import { DockerodeEngine } from '../../agent/docker/dockerode-engine.js';
import { EngineError, engineMessage, isEngineFailure } from '../../agent/docker/engine.js';
import { AgentError } from '../../agent/core/errors.js';

/** An error as docker-modem makes it for an engine answer with an error status. */
function answered(statusCode: number, message: string): Error {
  const err = new Error(`(HTTP code ${statusCode}) unexpected - ${message}`);
  return Object.assign(err, { statusCode, json: { message } });
}

/** The engine as a client that fails every call with `err`. */
const over = (err: unknown) => new DockerodeEngine(() => failing(err) as never);
const coded = (code: string) => (e: unknown) => e instanceof AgentError && e.code === code;
const kind = (k: 'conflict' | 'not_found' | 'refused') => (e: unknown) => isEngineFailure(e, k);

/** A dockerode client whose every container and image call fails with `err`. */
function failing(err: unknown) {
  const fail = async () => {
    throw err;
  };
  const container = { inspect: fail, start: fail, stop: fail, restart: fail, rename: fail, remove: fail, commit: fail };
  return {
    listContainers: fail,
    createContainer: fail,
    getContainer: () => container,
    getImage: () => ({ inspect: fail, tag: fail }),
  };
}

describe('the Engine port over dockerode: engine status codes read once', () => {
  it('304 and 404 where they mean "nothing to do" are outcomes, not errors', async () => {
    const notModified = over(answered(304, 'container already started'));
    assert.equal(await notModified.startContainer('c1'), 'already_running');
    assert.equal(await notModified.stopContainer('c1', 5), 'already_stopped');
    const gone = over(answered(404, 'No such container: c1'));
    assert.equal(await gone.stopContainer('c1'), 'gone');
    assert.equal(await gone.removeContainer('c1'), 'gone');
    assert.equal(await gone.inspectContainer('c1'), undefined);
    assert.equal(await gone.inspectImage('ros:1'), undefined);
  });

  it('409, 404 on create and any other status are EngineErrors of their kind, with the engine sentence', async () => {
    const conflict = over(answered(409, 'Conflict. The container name "/ros" is already in use'));
    const err = await conflict.createContainer({ name: 'ros', Image: 'ros:1' }).catch((e: unknown) => e);
    assert.ok(err instanceof EngineError && isEngineFailure(err, 'conflict'));
    assert.equal(err.statusCode, 409);
    assert.equal(engineMessage(err), 'Conflict. The container name "/ros" is already in use');
    // The client's message as it was: what callers that report it under their own code showed.
    assert.match(err.message, /^\(HTTP code 409\)/);
    await assert.rejects(conflict.renameContainer('c1', 'ros'), kind('conflict'));
    const missing = over(answered(404, 'No such image: ros:1'));
    await assert.rejects(missing.createContainer({ name: 'ros', Image: 'ros:1' }), kind('not_found'));
    const broken = over(answered(500, 'driver failed'));
    await assert.rejects(broken.startContainer('c1'), kind('refused'));
    await assert.rejects(broken.listContainers(), kind('refused'));
  });

  it('an error that never reached the engine passes through (docker_unavailable, engine_deadline)', async () => {
    const away = new DockerodeEngine(() => {
      throw new AgentError('docker_unavailable', 'the Docker engine is not available: no socket');
    });
    await assert.rejects(away.startContainer('c1'), coded('docker_unavailable'));
    await assert.rejects(away.stopContainer('c1'), coded('docker_unavailable'));
    const slow = over(new AgentError('engine_deadline', 'did not stop within 40 s'));
    await assert.rejects(slow.removeContainer('c1'), coded('engine_deadline'));
    await assert.rejects(slow.inspectContainer('c1'), coded('engine_deadline'));
  });
});
