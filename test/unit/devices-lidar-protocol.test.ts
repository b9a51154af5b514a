import assert from 'node:assert/strict';
import {
  Answer,
  Command,
  decodeHealth,
  decodeInfo,
  encodeDescriptor,
  encodeHealth,
  encodeInfo,
  encodeRequest,
  encodeScanSample,
  findAnswer,
} from '../../agent/devices/lidar-protocol.js';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

describe('RPLidar protocol', () => {
  it('encodes requests as the SDK does', () => {
    assert.deepEqual(encodeRequest(Command.STOP), hex('A5 25'));
    assert.deepEqual(encodeRequest(Command.GET_INFO), hex('A5 50'));
    assert.deepEqual(encodeRequest(Command.GET_HEALTH), hex('A5 52'));
    // With payload: A5 cmd len payload chk, chk = XOR of every byte before it.
    assert.deepEqual(encodeRequest(0x84, Uint8Array.from([0x70, 0, 0, 0])), hex('A5 84 04 70 00 00 00 55'));
  });

  it('encodes the descriptors of the notes byte for byte', () => {
    assert.deepEqual(encodeDescriptor({ length: 20, mode: 0, type: 0x04 }), hex('A5 5A 14 00 00 00 04'));
    assert.deepEqual(encodeDescriptor({ length: 3, mode: 0, type: 0x06 }), hex('A5 5A 03 00 00 00 06'));
    assert.deepEqual(encodeDescriptor({ length: 5, mode: 1, type: 0x81 }), hex('A5 5A 05 00 00 40 81'));
  });

  it('encodes scan samples as the vectors in the notes', () => {
    assert.deepEqual(
      encodeScanSample({ quality: 47, start: true, angleDeg: 0, distanceMm: 1000 }),
      hex('BD 01 00 A0 0F'),
    );
    assert.deepEqual(
      encodeScanSample({ quality: 47, start: false, angleDeg: 90, distanceMm: 1000 }),
      hex('BE 01 2D A0 0F'),
    );
  });

  const serial = hex('0123456789ABCDEF0011223344556677');
  const info = encodeInfo({ model: 0x18, firmwareMajor: 1, firmwareMinor: 29, hardware: 7, serial });

  it('decodes GET_INFO: A1M8, firmware 1.29, hardware 7, serial in byte order upper-case', () => {
    assert.deepEqual(decodeInfo(info), {
      model: 24,
      modelName: 'A1M8',
      firmware: '1.29',
      hardware: 7,
      serial: '0123456789ABCDEF0011223344556677',
    });
    assert.equal(
      decodeInfo(encodeInfo({ model: 0x18, firmwareMajor: 1, firmwareMinor: 5, hardware: 7, serial })).firmware,
      '1.05',
    );
    assert.throws(() => decodeInfo(info.subarray(0, 19)), RangeError);
  });

  it('decodes GET_HEALTH statuses and the little-endian error code', () => {
    assert.deepEqual(decodeHealth(hex('00 00 00')), { status: 'good', errorCode: 0 });
    assert.deepEqual(decodeHealth(hex('01 00 00')), { status: 'warning', errorCode: 0 });
    assert.deepEqual(decodeHealth(encodeHealth(2, 0x8001)), { status: 'error', errorCode: 0x8001 });
    assert.throws(() => decodeHealth(hex('07 00 00')), RangeError);
  });

  const infoFrame = Buffer.concat([encodeDescriptor({ length: 20, mode: 0, type: 0x04 }), info]);

  it('finds the answer after junk, stale scan samples, a scan descriptor and a reset banner', () => {
    const stale = Buffer.concat([
      Buffer.from('RP LIDAR System.\r\nFirmware Ver 1.29 - rtm, HW Ver 7\r\nModel: 18\r\n', 'ascii'),
      hex('A5 5A 05 00 00 40 81'),
      encodeScanSample({ quality: 47, start: true, angleDeg: 0, distanceMm: 1000 }),
      hex('A5 A5 00 5A'),
      encodeScanSample({ quality: 47, start: false, angleDeg: 90, distanceMm: 1000 }),
    ]);
    const found = findAnswer(Buffer.concat([stale, infoFrame, hex('FF')]), Answer.INFO);
    assert.ok(found.found);
    assert.deepEqual(found.payload, info);
    assert.equal(found.skipped, stale.length);
    assert.deepEqual(found.rest, hex('FF'));
  });

  it('waits for an answer cut across reads, keeping only what may become it', () => {
    const partial = findAnswer(Buffer.concat([hex('00 11'), infoFrame.subarray(0, 10)]), Answer.INFO);
    assert.equal(partial.found, false);
    assert.deepEqual(partial.rest, infoFrame.subarray(0, 10));
    const whole = findAnswer(Buffer.concat([partial.rest, infoFrame.subarray(10)]), Answer.INFO);
    assert.ok(whole.found);
    assert.deepEqual(whole.payload, info);
    const lone = findAnswer(hex('A5'), Answer.INFO);
    assert.deepEqual(lone.rest, hex('A5'));
  });

  it('does not take another answer for the one expected', () => {
    const health = Buffer.concat([encodeDescriptor({ length: 3, mode: 0, type: 0x06 }), hex('00 00 00')]);
    assert.equal(findAnswer(health, Answer.INFO).found, false);
  });
});
