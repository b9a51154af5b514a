import assert from 'node:assert/strict';
import { runPrune, type PruneStep } from '../../agent/images/image-pruner.js';
import { FakeEngine } from '../helpers/fake-engine.js';

/** Three old images of one repository on the fake engine, each with its name; the last has two. */
function setUp() {
  const engine = new FakeEngine();
  const steps: PruneStep[] = [
    { imageId: engine.addImage('ros:1'), tags: ['ros:1'], size: 10 },
    { imageId: engine.addImage('ros:2'), tags: ['ros:2'], size: 20 },
    { imageId: engine.addImage('ros:3'), tags: ['ros:3', 'ros:old'], size: 30 },
  ];
  engine.images.set('ros:old', steps[2]!.imageId);
  engine.addImage('ros:4');
  return { engine, steps };
}

describe('image prune over the Engine port', () => {
  it('removes each planned name in order, never forced', async () => {
    const { engine, steps } = setUp();
    const outcome = await runPrune(engine, steps);
    assert.deepEqual(
      engine.calls.map((c) => [c.op, ...c.args]),
      [
        ['removeImage', 'ros:1', { force: false }],
        ['removeImage', 'ros:2', { force: false }],
        ['removeImage', 'ros:3', { force: false }],
        ['removeImage', 'ros:old', { force: false }],
      ],
    );
    assert.deepEqual(outcome, { removed: steps, failed: [] });
    assert.deepEqual([...engine.images.keys()], ['ros:4']);
  });

  for (const at of [0, 1, 2]) {
    it(`a refusal at image ${at + 1}: that one fails with the engine's sentence, the others go`, async () => {
      const { engine, steps } = setUp();
      engine.failNext('removeImage', 500, (args) => args[0] === steps[at]!.tags[0]);
      const outcome = await runPrune(engine, steps);
      assert.deepEqual(
        outcome.failed.map((f) => [f.imageId, f.error]),
        [[steps[at]!.imageId, 'fake engine refused removeImage']],
      );
      assert.deepEqual(
        outcome.removed,
        steps.filter((_s, i) => i !== at),
      );
      // The refused image keeps its names (a second name of it is not tried once the first failed).
      const left = [...engine.images.keys()].filter((k) => k !== 'ros:4').sort();
      assert.deepEqual(left, [...steps[at]!.tags].sort());
    });
  }

  it('an image a container came to use meanwhile is refused by the engine (conflict) and stays', async () => {
    const { engine, steps } = setUp();
    await engine.createContainer({ name: 'ros', Image: 'ros:2' });
    const outcome = await runPrune(engine, steps);
    assert.equal(outcome.failed.length, 1);
    assert.equal(outcome.failed[0]!.imageId, steps[1]!.imageId);
    assert.match(outcome.failed[0]!.error, /^conflict: unable to remove repository reference "ros:2"/);
    assert.ok(engine.images.has('ros:2'));
    assert.deepEqual(
      outcome.removed.map((s) => s.tags[0]),
      ['ros:1', 'ros:3'],
    );
  });
});
