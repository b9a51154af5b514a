import assert from 'node:assert/strict';
import { silentLogger } from '../../agent/core/logger.js';
import { EngineError } from '../../agent/docker/engine.js';
import { ImageInventory } from '../../agent/images/image-inventory.js';
import { StateStore } from '../../agent/state/state-store.js';
import type { AgentState } from '../../agent/state/types.js';

describe('retry: the image inventory after a failed read', () => {
  it('a read that failed leaves it stale: the next current() reads the engine again, not the old list', async () => {
    let reads = 0;
    let failing = true;
    const image = {
      Id: 'sha256:a',
      RepoTags: ['ros:1'],
      RepoDigests: [],
      Created: 1,
      Size: 10,
      SharedSize: 0,
      Containers: 0,
    };
    const api = {
      imageDiskUsage: async () => {
        reads += 1;
        if (failing) throw new EngineError('refused', 500, '(HTTP code 500) engine busy', 'engine busy');
        return [image];
      },
      inspectImage: async (id: string) => ({
        Id: id,
        RootFS: { Layers: ['sha256:l1'] },
        Created: '2026-01-01T00:00:00Z',
      }),
    };
    const off = () => () => undefined;
    const engine = { available: false, onConnected: off, onEngineEvent: off };
    const store = new StateStore({ images: [] } as unknown as AgentState);
    const inventory = new ImageInventory({ engine, api, store, logger: silentLogger });
    await assert.rejects(inventory.current(), /engine busy/);
    failing = false;
    // The engine answers again: the loop's next look must see ros:1, not the empty list of before.
    const images = await inventory.current();
    assert.equal(reads, 2);
    assert.deepEqual(
      images.map((i) => i.tags),
      [['ros:1']],
    );
    // Read once it succeeded: no event since, no new read.
    await inventory.current();
    assert.equal(reads, 2);
  });
});
