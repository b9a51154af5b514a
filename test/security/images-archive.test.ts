import assert from 'node:assert/strict';
import { closeSync, openSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { readArchiveNames } from '../../agent/images/image-archive.js';
import { tempDir } from '../helpers/temp.js';

/** One tar entry as bytes: a ustar header (checksum and all) and its padded data. */
function entry(name: string, data: string | Buffer = '', type = '0', o: { size?: number } = {}): Buffer {
  const body = Buffer.isBuffer(data) ? data : Buffer.from(data);
  const h = Buffer.alloc(512);
  h.write(name.slice(0, 100), 0, 'utf8');
  h.write('0000644\0', 100);
  h.write('0000000\0', 108);
  h.write('0000000\0', 116);
  h.write(`${(o.size ?? body.length).toString(8).padStart(11, '0')}\0`, 124);
  h.write('00000000000\0', 136);
  h.write('        ', 148);
  h.write(type, 156);
  h.write('ustar\0', 257);
  h.write('00', 263);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
  const padded = Buffer.alloc(Math.ceil(body.length / 512) * 512);
  body.copy(padded);
  return Buffer.concat([h, type === '2' || type === '1' ? Buffer.alloc(0) : padded]);
}
function pax(records: Record<string, string>): Buffer {
  const text = Object.entries(records)
    .map(([k, v]) => {
      const line = ` ${k}=${v}\n`;
      let len = line.length + 1;
      while (`${len}${line}`.length !== len) len += 1;
      return `${len}${line}`;
    })
    .join('');
  return entry('PaxHeaders/x', text, 'x');
}
const manifest = (tags: string[]) => JSON.stringify([{ Config: 'c.json', RepoTags: tags, Layers: [] }]);
const end = Buffer.alloc(1024);
const CONTAINERD_NAME = 'io.containerd.image.name';
const tarOf = (...entries: Buffer[]) => Buffer.concat([...entries, end]);

describe('security: image reference tricks in docker save tars (load reads the names first)', () => {
  const names = (tar: Buffer): string[] => {
    const file = join(tempDir('rfa-tar-'), 'x.tar');
    writeFileSync(file, tar);
    const fd = openSync(file, 'r');
    try {
      return readArchiveNames(fd, statSync(file).size, 'x.tar');
    } finally {
      closeSync(fd);
    }
  };
  const refused = (tar: Buffer, code = 'bad_archive') =>
    assert.throws(
      () => names(tar),
      (err: { code?: string }) => err.code === code,
    );

  it('reads manifest.json RepoTags, repositories and an OCI index.json name', () => {
    const tar = Buffer.concat([
      entry('abc/layer.tar', Buffer.alloc(3000)),
      entry('manifest.json', manifest(['yahboomtechnology/ros-foxy:3.3.9', 'acc-base:1'])),
      entry('repositories', JSON.stringify({ 'evil/x': { '2': 'abc' } })),
      entry('index.json', JSON.stringify({ manifests: [{ annotations: { [CONTAINERD_NAME]: 'other/y:3' } }] })),
      end,
    ]);
    assert.deepEqual(names(tar), ['yahboomtechnology/ros-foxy:3.3.9', 'acc-base:1', 'evil/x:2', 'other/y:3']);
  });

  it('sees a manifest.json renamed by a PAX header or a GNU long name, and one spelled ./manifest.json', () => {
    const renamed = pax({ path: 'manifest.json' });
    assert.deepEqual(names(tarOf(renamed, entry('innocent.txt', manifest(['acc-base:1'])))), ['acc-base:1']);
    const longName = entry('././@LongLink', 'manifest.json\0', 'L');
    assert.deepEqual(names(tarOf(longName, entry('innocent.txt', manifest(['acc-base:2'])))), ['acc-base:2']);
    assert.deepEqual(names(tarOf(entry('./x/../manifest.json', manifest(['acc-base:3'])))), ['acc-base:3']);
  });

  it('follows a PAX size as the engine does (data hidden behind a lying size field is still read)', () => {
    const hidden = entry('manifest.json', manifest(['acc-base:1']));
    // The header says 0 bytes, PAX says the next 1024 bytes are its data: the manifest is not an entry then.
    const tar = Buffer.concat([pax({ size: String(hidden.length) }), entry('blob', '', '0', { size: 0 }), hidden, end]);
    assert.deepEqual(names(tar), []);
  });

  it('skips no data after a link header with a non-zero size (Go ignores that size)', () => {
    const tar = tarOf(entry('l', '', '2', { size: 512 }), entry('manifest.json', manifest(['acc-base:1'])));
    assert.deepEqual(names(tar), ['acc-base:1']);
  });

  it('refuses what Docker could read differently: two manifests, a manifest that is a link, one under a link', () => {
    const twice = [manifest(['yahboomtechnology/a:1']), manifest(['acc-base:1'])].map((m) => entry('manifest.json', m));
    refused(tarOf(...twice));
    refused(Buffer.concat([entry('manifest.json', '', '2'), end]));
    refused(Buffer.concat([entry('d', '', '2'), entry('d/manifest.json', manifest(['acc-base:1'])), end]));
    refused(Buffer.concat([entry('../manifest.json', manifest(['acc-base:1'])), end]));
  });

  it('refuses compressed tars, corrupt headers, sparse files and non-JSON manifests', () => {
    refused(gzipSync(Buffer.concat([entry('manifest.json', manifest(['acc-base:1'])), end])));
    const corrupt = Buffer.concat([entry('manifest.json', manifest(['acc-base:1'])), end]);
    corrupt[10] = 0x41;
    refused(corrupt);
    refused(Buffer.concat([entry('s', '', 'S'), end]));
    refused(Buffer.concat([entry('manifest.json', 'not json'), end]));
    refused(Buffer.from('not a tar at all'));
  });

  it('refuses a manifest larger than 1 MiB', () => {
    refused(Buffer.concat([entry('manifest.json', Buffer.alloc(1024 * 1024 + 1, 0x20)), end]));
  });
});
