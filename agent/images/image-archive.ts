import { readSync } from 'node:fs';
import { posix } from 'node:path';
import { AgentError } from '../core/errors.js';

/** The most tar entries read in a `docker save` tar (one per layer file and a few JSON files). */
export const MAX_ARCHIVE_ENTRIES = 100_000;
/** The largest manifest.json, repositories, index.json or PAX header read. */
export const MAX_ARCHIVE_JSON_BYTES = 1024 * 1024;

const BLOCK = 512;
/** Files whose contents name images when Docker loads the tar. */
const NAMING_FILES = new Set(['manifest.json', 'repositories', 'index.json']);
const REGULAR = new Set(['0', '\0', '7']);
/** Types whose size field Go's archive/tar ignores (no data follows). */
const HEADER_ONLY = new Set(['1', '2', '3', '4', '5', '6']);

/**
 * The image names a `docker save` tar would give when loaded, read from its headers before a
 * byte goes to the engine: manifest.json's RepoTags, the legacy repositories file and an OCI
 * index.json's image names. Positional reads over the open file: only headers and those small
 * files are read, whatever the tar's size. Anything Docker could read differently from this
 * parser (a compressed tar, two copies of a naming file, a naming file that is a link, an entry
 * under a link, sparse files) is refused rather than guessed.
 */
export function readArchiveNames(fd: number, size: number, what: string): string[] {
  const head = Buffer.alloc(6);
  readAt(fd, head, 0);
  if (isCompressed(head)) throw bad(what, 'it is compressed; load takes the uncompressed tar docker save writes');
  const names: string[] = [];
  const seen = new Set<string>();
  const links: string[] = [];
  let pos = 0;
  let pax: Record<string, string> = {};
  let longName: string | undefined;
  const header = Buffer.alloc(BLOCK);
  for (let entries = 0; ; entries += 1) {
    if (entries > MAX_ARCHIVE_ENTRIES) throw bad(what, `it has more than ${MAX_ARCHIVE_ENTRIES} entries`);
    if (pos + BLOCK > size) {
      if (entries === 0) throw bad(what, 'it is not a tar');
      break;
    }
    readAt(fd, header, pos);
    if (header.every((b) => b === 0)) break;
    if (!checksumOk(header)) throw bad(what, `the tar header at byte ${pos} is corrupt`);
    const type = String.fromCharCode(header[156]!);
    let dataSize = parseSize(header.subarray(124, 136), what);
    if (pax.size !== undefined) dataSize = Number(pax.size);
    if (!Number.isSafeInteger(dataSize) || dataSize < 0) throw bad(what, `an entry at byte ${pos} has a bad size`);
    const dataPos = pos + BLOCK;
    if (HEADER_ONLY.has(type)) dataSize = 0;
    const next = dataPos + Math.ceil(dataSize / BLOCK) * BLOCK;
    if (type === 'x' || type === 'L' || type === 'g' || type === 'K') {
      if (type !== 'g' && dataSize > MAX_ARCHIVE_JSON_BYTES) {
        throw bad(what, `an extended header at byte ${pos} is too large`);
      }
      if (type === 'x') pax = parsePax(readData(fd, dataPos, dataSize), what);
      if (type === 'L') longName = cString(readData(fd, dataPos, dataSize));
      pos = next;
      continue;
    }
    const sparse = type === 'S' || Object.keys(pax).some((k) => k.startsWith('GNU.sparse'));
    if (sparse) throw bad(what, 'it holds sparse files');
    const raw = pax.path ?? longName ?? fullName(header);
    pax = {};
    longName = undefined;
    const name = normalise(raw);
    if (name === null) throw bad(what, `the entry ${JSON.stringify(raw.slice(0, 200))} leads outside the archive`);
    if (links.some((l) => name.startsWith(`${l}/`))) throw bad(what, `the entry ${name} is under a link`);
    if (type === '1' || type === '2') links.push(name);
    if (NAMING_FILES.has(name)) {
      if (!REGULAR.has(type)) throw bad(what, `its ${name} is not a regular file`);
      if (seen.has(name)) throw bad(what, `it holds ${name} twice`);
      if (dataSize > MAX_ARCHIVE_JSON_BYTES) {
        throw bad(what, `its ${name} is larger than ${MAX_ARCHIVE_JSON_BYTES} bytes`);
      }
      seen.add(name);
      names.push(...namesIn(name, readData(fd, dataPos, dataSize).toString('utf8'), what));
    }
    if (next > size) throw bad(what, 'it is truncated');
    pos = next;
  }
  return [...new Set(names)];
}

function namesIn(file: string, text: string, what: string): string[] {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    throw bad(what, `its ${file} is not JSON`);
  }
  const out: string[] = [];
  if (file === 'manifest.json') {
    if (!Array.isArray(doc)) throw bad(what, 'its manifest.json is not a list');
    for (const entry of doc as Array<{ RepoTags?: unknown }>) {
      const tags = entry?.RepoTags ?? [];
      if (!Array.isArray(tags)) throw bad(what, 'its manifest.json has RepoTags that are not a list');
      for (const t of tags) out.push(String(t));
    }
  } else if (file === 'repositories') {
    if (typeof doc !== 'object' || doc === null) throw bad(what, 'its repositories is not an object');
    for (const [repo, tags] of Object.entries(doc as Record<string, unknown>)) {
      for (const tag of Object.keys((tags ?? {}) as object)) out.push(`${repo}:${tag}`);
    }
  } else {
    const manifests = (doc as { manifests?: Array<{ annotations?: Record<string, unknown> }> } | null)?.manifests ?? [];
    for (const m of Array.isArray(manifests) ? manifests : []) {
      const name = m?.annotations?.['io.containerd.image.name'];
      if (typeof name === 'string') out.push(name);
    }
  }
  return out;
}

/** As Docker extracts it: cleaned, relative to the archive's root; null when it leads out. */
function normalise(name: string): string | null {
  const clean = posix.normalize(`/${name}`).replace(/^\/+/, '').replace(/\/+$/, '');
  const plain = posix.normalize(name).replace(/^\/+/, '');
  if (plain === '..' || plain.startsWith('../')) return null;
  return clean;
}

function fullName(h: Buffer): string {
  const name = cString(h.subarray(0, 100));
  const ustar = h.subarray(257, 262).toString('latin1') === 'ustar';
  const prefix = ustar ? cString(h.subarray(345, 500)) : '';
  return prefix ? `${prefix}/${name}` : name;
}

function parseSize(field: Buffer, what: string): number {
  if (field[0]! & 0x80) {
    // Base-256, as GNU tar writes sizes of 8 GiB and more.
    let n = 0;
    for (let i = 1; i < field.length; i += 1) n = n * 256 + field[i]!;
    return n + (field[0]! & 0x7f) * 256 ** (field.length - 1);
  }
  const text = cString(field).trim();
  if (text === '') return 0;
  if (!/^[0-7]+$/.test(text)) throw bad(what, 'a tar header has a bad size field');
  return parseInt(text, 8);
}

function checksumOk(h: Buffer): boolean {
  const stored = cString(h.subarray(148, 156)).trim();
  let sum = 0;
  for (let i = 0; i < BLOCK; i += 1) sum += i >= 148 && i < 156 ? 32 : h[i]!;
  return stored !== '' && parseInt(stored, 8) === sum;
}

function parsePax(data: Buffer, what: string): Record<string, string> {
  const out: Record<string, string> = {};
  let text = data.toString('utf8');
  while (text.length > 0) {
    const space = text.indexOf(' ');
    const length = Number(text.slice(0, space));
    if (space <= 0 || !Number.isInteger(length) || length <= space) throw bad(what, 'it has a corrupt PAX header');
    const record = Buffer.from(text).subarray(0, length).toString('utf8');
    const body = record.slice(space + 1, record.endsWith('\n') ? -1 : undefined);
    const eq = body.indexOf('=');
    if (eq > 0) out[body.slice(0, eq)] = body.slice(eq + 1);
    text = Buffer.from(text).subarray(length).toString('utf8');
  }
  return out;
}

function cString(b: Buffer): string {
  const nul = b.indexOf(0);
  return b.subarray(0, nul >= 0 ? nul : b.length).toString('utf8');
}

function readData(fd: number, pos: number, length: number): Buffer {
  const buf = Buffer.alloc(length);
  readAt(fd, buf, pos);
  return buf;
}

function readAt(fd: number, buf: Buffer, pos: number): void {
  let done = 0;
  while (done < buf.length) {
    const n = readSync(fd, buf, done, buf.length - done, pos + done);
    if (n === 0) break;
    done += n;
  }
}

function isCompressed(h: Buffer): boolean {
  return (
    (h[0] === 0x1f && h[1] === 0x8b) ||
    h.subarray(0, 3).toString('latin1') === 'BZh' ||
    h.equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00])) ||
    (h[0] === 0x28 && h[1] === 0xb5 && h[2] === 0x2f && h[3] === 0xfd)
  );
}

function bad(what: string, why: string): AgentError {
  return new AgentError('bad_archive', `${what} cannot be loaded: ${why}`);
}
