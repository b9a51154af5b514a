import assert from 'node:assert/strict';
import { DEFAULT_ENGINE_DEADLINES, engineOperation } from '../../agent/docker/engine-deadline.js';

describe('engine deadlines: the deadline that fits each Engine API request', () => {
  const d = DEFAULT_ENGINE_DEADLINES;
  const op = (method: string, path: string, options?: Record<string, unknown>) =>
    engineOperation({ method, path, options }, d, 45);

  it('liveness probes are short: ping, version, info 10 s', () => {
    for (const [m, p] of [
      ['GET', '/_ping'],
      ['HEAD', '/_ping'],
      ['GET', '/version'],
      ['GET', '/info'],
    ]) {
      assert.equal(op(m!, p!).deadlineMs, 10_000, `${m} ${p}`);
    }
  });

  it('reads 60 s, changes 120 s', () => {
    assert.equal(op('GET', '/containers/abc/json?').deadlineMs, 60_000);
    assert.equal(op('GET', '/containers/json?').deadlineMs, 60_000);
    assert.equal(op('GET', '/images/ros%3A1/json').deadlineMs, 60_000);
    assert.equal(op('GET', '/containers/abc/logs?', { tail: 100, follow: false }).deadlineMs, 60_000);
    assert.equal(op('POST', '/containers/create?').deadlineMs, 120_000);
    assert.equal(op('POST', '/containers/abc/start?').deadlineMs, 120_000);
    assert.equal(op('POST', '/containers/abc/rename?').deadlineMs, 120_000);
    assert.equal(op('POST', '/images/ros/tag?').deadlineMs, 120_000);
    assert.equal(op('DELETE', '/containers/abc?').deadlineMs, 120_000);
    assert.equal(op('DELETE', '/images/ros%ZZ?').deadlineMs, 120_000, 'a malformed escape does not throw');
  });

  it("stop and restart: the container's own wait plus 30 s", () => {
    const stop = op('POST', '/containers/ros/stop?', { t: 30 });
    assert.deepEqual(stop, { what: 'stop container ros', deadlineMs: 60_000 });
    assert.equal(op('POST', '/containers/ros/restart?', { t: 5 }).deadlineMs, 35_000);
    assert.equal(op('POST', '/containers/ros/stop?', {}).deadlineMs, 75_000, 'no t: the longest stopTimeout');
  });

  it('streams, commit and wait have no fixed deadline', () => {
    for (const [m, p] of [
      ['GET', '/events?'],
      ['POST', '/commit?'],
      ['POST', '/containers/abc/wait?'],
      ['POST', '/images/create?'],
      ['POST', '/images/reg%3A5000%2Fros/push?'],
      ['POST', '/build?'],
      ['POST', '/images/load?'],
      ['GET', '/images/ros/get'],
      ['POST', '/exec/abc/start'],
      ['POST', '/containers/abc/attach?'],
    ]) {
      assert.equal(op(m!, p!).deadlineMs, undefined, `${m} ${p}`);
    }
    assert.equal(op('GET', '/containers/abc/logs?', { follow: true }).deadlineMs, undefined);
  });
});
