import assert from 'node:assert/strict';
import { join } from 'node:path';
import { docker } from '../helpers/engine-cli.js';
import { useRigAgent } from '../helpers/rig-agent.js';
import { tempDir } from '../helpers/temp.js';
import { waitUntil } from '../helpers/wait.js';
import { rig } from '../setup.js';

const LAYER_ID = /^[a-f0-9]{12}$/;

describe('engine progress: layers only, real byte totals, mounted layers count as existing', function () {
  this.timeout(90_000);
  const rigAgent = useRigAgent();
  const events = rigAgent.events;
  const host = () => rig().registry.host;
  const source = () => `${host()}/yahboomtechnology/ros-foxy:3.3.9`;
  const ask = rigAgent.ask;

  async function agent(doc: Record<string, unknown> = {}): Promise<void> {
    const dir = tempDir('rfa-progress-');
    await rigAgent.start({
      images: { allow: [`${host()}/**`, 'yahboomtechnology/*'], pushAllow: [`${host()}/fleet/**`] },
      devices: { sysfsRoot: join(dir, 'no-sys'), devRoot: join(dir, 'no-dev') },
      snapshots: { repository: `${host()}/fleet/progress` },
      ...doc,
    });
  }

  it('pull.progress lists layers only (never the tag), with layersDone/layersTotal', async () => {
    await agent();
    const r = await ask('pull', { image: source() });
    assert.equal(r.ok, true, JSON.stringify(r));
    const progress = events.filter((e) => e.type === 'pull.progress');
    assert.ok(progress.length > 0, 'no pull.progress');
    for (const e of progress) {
      const keys = Object.keys(e.layers as Record<string, unknown>);
      for (const key of keys) assert.match(key, LAYER_ID, `pull.progress names ${key} as a layer`);
      assert.equal(e.layersTotal, keys.length);
      assert.ok((e.layersDone as number) <= (e.layersTotal as number));
    }
    const last = progress.at(-1)!;
    const inspected = JSON.parse(docker('image', 'inspect', source()))[0] as { RootFS: { Layers: string[] } };
    const layers = inspected.RootFS.Layers.length;
    assert.equal(last.layersTotal, layers, JSON.stringify(progress.map((e) => e.layers)));
    assert.equal(last.layersDone, layers);
    assert.ok((last.total as number) > 0 && last.current === last.total, JSON.stringify(last));
  });

  it('a snapshot push with base layers mounted: layersExisting names them; no 0/0 byte progress', async () => {
    docker('pull', source());
    await agent({ containers: { ros: { image: source(), stopTimeout: 1 } } });
    await waitUntil(() => rigAgent.subject.agent.store.get().containers[0]?.state === 'running', 30_000, 'ros running');
    docker('exec', 'ros', 'sh', '-c', 'echo student-work > /root/work.txt');
    const r = await ask('snapshot', { container: 'ros', push: true });
    assert.equal(r.ok, true, JSON.stringify(r));
    const result = r.result as { layers: number; pushed: { layersPushed: string[]; layersExisting: string[] } };
    assert.equal(result.pushed.layersPushed.length, 1, JSON.stringify(result.pushed));
    // The base went up before under yahboomtechnology/ros-foxy: "Mounted from" counts as existing.
    assert.equal(result.pushed.layersExisting.length, result.layers - 1, JSON.stringify(result.pushed));
    for (const id of [...result.pushed.layersExisting, ...result.pushed.layersPushed]) assert.match(id, LAYER_ID);
    const progress = events.filter((e) => e.type === 'snapshot.progress');
    assert.ok(progress.length > 0, 'no snapshot.progress');
    for (const e of progress) {
      for (const key of Object.keys(e.layers as Record<string, unknown>)) assert.match(key, LAYER_ID);
      if ('total' in e || 'current' in e) {
        assert.ok((e.total as number) > 0, `progress with byte counts but no total: ${JSON.stringify(e)}`);
        assert.ok((e.current as number) <= (e.total as number));
      }
      assert.equal(typeof e.layersTotal, 'number');
    }
    assert.equal(progress.at(-1)!.layersDone, result.layers);
  });
});
