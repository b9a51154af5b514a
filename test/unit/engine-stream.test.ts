import assert from 'node:assert/strict';
import { ByteRing, EngineFrameReader } from '../../agent/docker/engine-stream.js';

describe('engine streams read in bounded memory', () => {
  it('a ring keeps exactly the newest bytes, whatever the chunk sizes', () => {
    const ring = new ByteRing(10);
    let all = '';
    for (const piece of ['abc', 'defgh', 'ij', 'klmnop', 'q', 'rstuvwxyz0123456789AB', 'C']) {
      ring.write(Buffer.from(piece));
      all += piece;
      assert.equal(ring.contents().toString(), all.slice(-10), `after ${piece}`);
    }
    assert.equal(ring.overflowed, true);
    const exact = new ByteRing(4);
    exact.write(Buffer.from('abcd'));
    assert.equal(exact.overflowed, false, 'exactly full is not cut');
  });

  it('multiplexed frames are read across any chunk boundary', () => {
    const frame = (type: number, text: string) => {
      const header = Buffer.alloc(8);
      header[0] = type;
      header.writeUInt32BE(Buffer.byteLength(text), 4);
      return Buffer.concat([header, Buffer.from(text)]);
    };
    const data = Buffer.concat([frame(1, 'hello\n'), frame(2, 'an error\n'), frame(1, 'x'.repeat(100))]);
    for (let size = 1; size <= data.length; size++) {
      let out = '';
      const reader = new EngineFrameReader(false, (payload) => (out += payload.toString()));
      for (let i = 0; i < data.length; i += size) reader.write(data.subarray(i, i + size));
      assert.equal(out, `hello\nan error\n${'x'.repeat(100)}`, `chunks of ${size}`);
    }
  });
});
