/**
 * The V8 heap of a running node process seen through its inspector (started with
 * --inspect=127.0.0.1:<port>): heap used after a full GC, and two heap snapshots compared by
 * constructor, so a soak can tell a JavaScript leak (heap grows) from a native one (RSS grows,
 * heap flat). Used by bench/soak.ts; on its own it diffs any agent started with --inspect:
 *
 *   node build/bench/heap-diff.js <inspector port> [seconds between snapshots, default 300]
 */
import WebSocket from 'ws';
import { runBench } from './bench-kit.js';

export interface MemoryAfterGc {
  heapUsed: number;
  heapTotal: number;
  external: number;
  arrayBuffers: number;
  rss: number;
}

/** Self size and count of live objects per constructor (or per V8 node type for non-objects). */
export type HeapSummary = Map<string, { count: number; size: number }>;

export interface HeapGrowth {
  name: string;
  countDelta: number;
  sizeDelta: number;
  count: number;
  size: number;
}

interface Pending {
  resolve: (value: Record<string, unknown>) => void;
  reject: (err: Error) => void;
}

/** A Chrome DevTools Protocol session over the inspector's WebSocket; one request at a time is enough here. */
export class InspectorSession {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly chunks: string[] = [];

  private constructor(private readonly socket: WebSocket) {
    // binaryType is ws's default, nodebuffer: every message is one Buffer (never an ArrayBuffer or a list).
    socket.on('message', (data: WebSocket.RawData) => {
      const message = JSON.parse((data as Buffer).toString()) as {
        id?: number;
        method?: string;
        params?: { chunk?: string };
        result?: Record<string, unknown>;
        error?: { message: string };
      };
      // Snapshot chunks arrive as events before the takeHeapSnapshot answer.
      if (message.method === 'HeapProfiler.addHeapSnapshotChunk') this.chunks.push(message.params?.chunk ?? '');
      if (message.id === undefined) return;
      const waiter = this.pending.get(message.id);
      this.pending.delete(message.id);
      if (message.error) waiter?.reject(new Error(message.error.message));
      else waiter?.resolve(message.result ?? {});
    });
    socket.on('close', () => {
      for (const waiter of this.pending.values()) waiter.reject(new Error('inspector closed'));
      this.pending.clear();
    });
  }

  /** Waits (polling /json/list) until the process's inspector listens, then attaches. */
  static async attach(port: number, ms = 15_000): Promise<InspectorSession> {
    const deadline = Date.now() + ms;
    let url: string | undefined;
    while (!url) {
      try {
        const answer = await fetch(`http://127.0.0.1:${port}/json/list`);
        const list = (await answer.json()) as Array<{ webSocketDebuggerUrl?: string }>;
        url = list[0]?.webSocketDebuggerUrl;
      } catch {
        // not listening yet
      }
      if (!url) {
        if (Date.now() > deadline) throw new Error(`no inspector on 127.0.0.1:${port} within ${ms} ms`);
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    const socket = new WebSocket(url, { perMessageDeflate: false, maxPayload: 512 * 1024 * 1024 });
    await new Promise<void>((resolve, reject) => {
      socket.once('open', () => resolve());
      socket.once('error', reject);
    });
    return new InspectorSession(socket);
  }

  send(method: string, params: Record<string, unknown> = {}, ms = 120_000): Promise<Record<string, unknown>> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`${method}: no answer from the inspector within ${ms} ms`));
      }, ms);
      this.pending.set(id, {
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      this.socket.send(JSON.stringify({ id, method, params }));
    });
  }

  /** A full (major, compacting) GC, then process.memoryUsage() read inside the process. */
  async memoryAfterGc(): Promise<MemoryAfterGc> {
    await this.send('HeapProfiler.collectGarbage');
    const answer = await this.send('Runtime.evaluate', {
      expression: 'JSON.stringify(process.memoryUsage())',
      returnByValue: true,
    });
    const value = (answer.result as { value?: string } | undefined)?.value;
    if (typeof value !== 'string') throw new Error(`process.memoryUsage() not readable: ${JSON.stringify(answer)}`);
    return JSON.parse(value) as MemoryAfterGc;
  }

  /** A heap snapshot (V8 collects garbage first), summarised per constructor. */
  async heapSummary(): Promise<HeapSummary> {
    this.chunks.length = 0;
    await this.send('HeapProfiler.enable');
    await this.send('HeapProfiler.takeHeapSnapshot', { reportProgress: false }, 300_000);
    const text = this.chunks.join('');
    this.chunks.length = 0;
    return summarise(JSON.parse(text) as RawSnapshot);
  }

  close(): void {
    this.socket.close();
  }
}

interface RawSnapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]] } };
  nodes: number[];
  strings: string[];
}

/** Groups nodes the way DevTools' summary does: objects by constructor name, the rest by V8 node type. */
export function summarise(raw: RawSnapshot): HeapSummary {
  const fields = raw.snapshot.meta.node_fields;
  const types = raw.snapshot.meta.node_types[0];
  const width = fields.length;
  const typeAt = fields.indexOf('type');
  const nameAt = fields.indexOf('name');
  const sizeAt = fields.indexOf('self_size');
  const summary: HeapSummary = new Map();
  for (let i = 0; i < raw.nodes.length; i += width) {
    const type = types[raw.nodes[i + typeAt]!] ?? 'unknown';
    const name = type === 'object' || type === 'native' ? (raw.strings[raw.nodes[i + nameAt]!] ?? '?') : `(${type})`;
    const entry = summary.get(name) ?? { count: 0, size: 0 };
    entry.count += 1;
    entry.size += raw.nodes[i + sizeAt]!;
    summary.set(name, entry);
  }
  return summary;
}

/** Constructors whose retained self size grew most from before to after. */
export function heapGrowth(before: HeapSummary, after: HeapSummary, top = 15): HeapGrowth[] {
  const names = new Set([...before.keys(), ...after.keys()]);
  const rows: HeapGrowth[] = [];
  for (const name of names) {
    const a = before.get(name) ?? { count: 0, size: 0 };
    const b = after.get(name) ?? { count: 0, size: 0 };
    rows.push({ name, countDelta: b.count - a.count, sizeDelta: b.size - a.size, count: b.count, size: b.size });
  }
  return rows.sort((x, y) => y.sizeDelta - x.sizeDelta).slice(0, top);
}

export function totalSize(summary: HeapSummary): number {
  let total = 0;
  for (const { size } of summary.values()) total += size;
  return total;
}

export function formatGrowth(rows: HeapGrowth[]): string[] {
  const kib = (n: number) => `${(n / 1024).toFixed(1)} KiB`;
  return rows.map(
    (r) =>
      `    ${r.name.slice(0, 48).padEnd(48)} ${(r.sizeDelta >= 0 ? '+' : '') + kib(r.sizeDelta)} ` +
      `(${r.countDelta >= 0 ? '+' : ''}${r.countDelta} objects; now ${r.count}, ${kib(r.size)})`,
  );
}

async function main(): Promise<void> {
  const port = Number(process.argv[2]);
  const seconds = Number(process.argv[3] ?? 300);
  if (!Number.isInteger(port) || port <= 0) throw new Error('usage: heap-diff.js <inspector port> [seconds]');
  const session = await InspectorSession.attach(port);
  try {
    const m0 = await session.memoryAfterGc();
    const before = await session.heapSummary();
    await new Promise((r) => setTimeout(r, seconds * 1000));
    const m1 = await session.memoryAfterGc();
    const after = await session.heapSummary();
    const mib = (n: number) => `${(n / 1024 / 1024).toFixed(2)} MiB`;
    console.log(
      `heap after full GC over ${seconds} s: used ${mib(m0.heapUsed)} -> ${mib(m1.heapUsed)}, ` +
        `external ${mib(m0.external)} -> ${mib(m1.external)}, RSS ${mib(m0.rss)} -> ${mib(m1.rss)}`,
    );
    console.log(`  snapshot self sizes ${mib(totalSize(before))} -> ${mib(totalSize(after))}; top growing:`);
    for (const line of formatGrowth(heapGrowth(before, after))) console.log(line);
  } finally {
    session.close();
  }
}

// Only when run as a script, not when bench/soak.ts imports it.
if (process.argv[1]?.endsWith('heap-diff.js')) runBench(main);
