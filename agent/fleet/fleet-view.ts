import { apiVersionOf, MQTT_API_VERSION } from '../mqtt/api-version.js';
import type { AgentEvent } from '../state/event-bus.js';
import type { AgentState, StateSection } from '../state/types.js';
import {
  DEFAULT_STALE_MS,
  liveness,
  sortRobots,
  type Liveness,
  type RobotView,
  type SortKey,
  type Totals,
} from './fleet-select.js';

export type { RobotView } from './fleet-select.js';

export interface TableOptions {
  sort?: SortKey;
  staleAfterMs?: number;
}

/**
 * The `robot-fleet list` table (pure), from the summaries alone: one line per robot, the columns
 * an operator scans for a robot in trouble: online, status and why, devices and the lidar's
 * health, containers (outdated ones marked), the update, and when the robot was last heard of.
 * A row that is not live (OFFLINE, or STALE: no summary for a while) shows its status as "was
 * ..."; the rest of that row is the robot's last word, not how it is now.
 */
export function renderFleetTable(robots: RobotView[], now = Date.now(), o: TableOptions = {}): string {
  const header = ['ROBOT', 'ONLINE', 'STATUS', 'LIDAR', 'CAMERA', 'BOARD', 'CONTAINERS', 'UPDATE', 'DISK FREE'];
  header.push('LAST SEEN', 'WHY');
  const rows = sortRobots(robots, o.sort).map((r) => row(r, now, o.staleAfterMs ?? DEFAULT_STALE_MS));
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((cells) => cells[i]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

const LIVENESS: Record<Liveness, string> = { online: 'online', offline: 'OFFLINE', stale: 'STALE', unknown: '?' };

function row(r: RobotView, now: number, staleAfterMs: number): string[] {
  const s = r.state;
  const live = liveness(r, now, staleAfterMs);
  const online = LIVENESS[live];
  if (!s) return [r.robot, online, '-', '-', '-', '-', '-', '-', '-', 'never', ''];
  const l = s.devices.lidar;
  const lidar = l.present ? `${l.health}${l.busy ? ' (busy)' : ''}` : 'ABSENT';
  const camera = s.devices.camera.present ? 'ok' : 'ABSENT';
  const board = s.devices.board.present ? 'ok' : 'ABSENT';
  const listed = s.containers.list.map((c) => `${c.name}:${c.state}${c.outdated ? ' OUTDATED' : ''}`);
  if (s.containers.omitted > 0) listed.push(`+${s.containers.omitted}`);
  const containers = s.docker ? listed.join(',') || '-' : 'NO DOCKER';
  const update = `${s.update.status}${s.update.container ? ` ${s.update.container}` : ''}`;
  const disk = s.diskFree === null ? '-' : `${(s.diskFree / 1e9).toFixed(1)} GB`;
  const verdict = s.status === 'ok' ? 'ok' : s.status.toUpperCase();
  const status = live === 'offline' || live === 'stale' ? `was ${verdict}` : verdict;
  const seen = age(now - Date.parse(s.seen));
  const why = s.why.join('; ').slice(0, 120);
  return [r.robot, online, status, lidar, camera, board, containers, update, disk, seen, why];
}

/**
 * The totals line under the table (pure): the whole fleet as listed, and how many rows the
 * filters kept when they left some out.
 */
export function renderTotals(t: Totals, shown: number): string {
  const live = [`${t.online} online`, `${t.offline} offline`];
  if (t.stale > 0) live.push(`${t.stale} stale`);
  if (t.unknown > 0) live.push(`${t.unknown} unknown`);
  const status = [`${t.error} error`, `${t.degraded} degraded`, `${t.updating} updating`, `${t.outdated} outdated`];
  const robots = `${t.robots} robot${t.robots === 1 ? '' : 's'}`;
  const filtered = shown === t.robots ? '' : ` (${shown} shown)`;
  return `${robots}${filtered}: ${live.join(', ')}; ${status.join(', ')}`;
}

function age(ms: number): string {
  if (!Number.isFinite(ms)) return '?';
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.round(s / 60)}m ago`;
  return `${Math.round(s / 3600)}h ago`;
}

/** One line of `robot-fleet watch` (pure): time, robot, type, and what matters of the event. */
export function renderEvent(robot: string, event: AgentEvent, width = 30): string {
  const time = event.ts.slice(11, 19);
  const head = `${time} ${robot} ${event.type}`;
  if (
    event.type.endsWith('.progress') &&
    typeof event.current === 'number' &&
    typeof event.total === 'number' &&
    event.total > 0
  ) {
    const image = typeof event.image === 'string' ? event.image : '';
    return `${head} ${image} ${progressBar(event.current, event.total, width)}`;
  }
  const skip = new Set(['type', 'ts', 'layers']);
  const fields = Object.entries(event)
    .filter(([k]) => !skip.has(k))
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(' ');
  return `${head}${fields ? ` ${fields}` : ''}`.slice(0, 400);
}

export function progressBar(current: number, total: number, width = 30): string {
  const share = Math.min(1, Math.max(0, current / total));
  const filled = Math.round(share * width);
  return `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${(share * 100).toFixed(0).padStart(3)}% ${mb(current)}/${mb(total)} MB`;
}

function mb(bytes: number): string {
  return (bytes / 1e6).toFixed(1);
}

/** One robot as `robot-fleet status` reads it: the summary and whatever sections the broker holds. */
export interface RobotDetail extends RobotView {
  sections: Partial<Pick<AgentState, StateSection>>;
}

/**
 * `robot-fleet status <robot>` (pure): the summary's verdict, then a line per section read from
 * <b>/state/<section>, so an operator sees the details without asking the robot for its state.
 */
export function renderRobotDetail(d: RobotDetail, now = Date.now()): string {
  const s = d.state;
  const online = d.online === null ? '?' : d.online ? 'online' : 'OFFLINE';
  const since = (iso: string) => age(now - Date.parse(iso));
  const status = s ? (s.status === 'ok' ? 'ok' : s.status.toUpperCase()) : '';
  const verdict = s ? `${status}  seen ${since(s.seen)}, changed ${since(s.changed)}` : 'no state';
  const lines = [`${d.robot}  ${online}  ${verdict}`];
  if (s && s.why.length > 0) lines.push(`  why         ${s.why.join('; ')}`);
  // A fleet runs mixed versions: an older robot (no apiVersion) is API 1 and reads as before; a
  // newer, incompatible one is shown with what this robot-fleet may misread.
  const api = apiVersionOf(s ?? d.sections.agent);
  if (api > MQTT_API_VERSION) {
    lines.push(
      `  WARNING     this robot speaks MQTT API ${api}, this robot-fleet knows ${MQTT_API_VERSION}: ` +
        'some of it may not show; upgrade robot-fleet',
    );
  }
  const { agent, docker, devices, containers, images, update, host, snapshots, desired } = d.sections;
  if (agent) {
    const modules = Object.entries(agent.modules);
    const failed = modules
      .filter(([, m]) => m.status === 'failed')
      .map(([name, m]) => `${name} (${m.error?.code ?? '?'})`);
    const failures = failed.length ? `, FAILED: ${failed.join(', ')}` : '';
    const reconnects = agent.mqtt.reconnects;
    const version = `${agent.version} (MQTT API ${api})`;
    lines.push(`  agent       ${version}, ${modules.length} modules${failures}, reconnects ${reconnects}`);
    const signing = agent.commandSigning;
    if (signing) {
      const how = signing.required ? `signed (keys ${signing.keys.join(', ')})` : 'UNSIGNED accepted';
      lines.push(`  commands    ${how}${signing.warning ? `: ${signing.warning}` : ''}`);
    }
  }
  if (docker) {
    const engine = docker.available
      ? `${docker.version ?? '?'} (API ${docker.apiVersion ?? '?'})`
      : `UNAVAILABLE: ${docker.error?.message ?? '?'}`;
    lines.push(`  docker      ${engine}`);
  }
  if (devices) {
    const l = devices.lidar;
    const identity = l.info ? ` ${l.info.modelName} fw ${l.info.firmware}` : '';
    const busy = l.health.busy ? ' (busy)' : '';
    const lidar = l.present ? `lidar ${l.health.status}${busy}${identity} at ${l.path}` : 'lidar ABSENT';
    const board = devices.board.present ? `ok at ${devices.board.path}` : 'ABSENT';
    lines.push(`  devices     ${lidar}; camera ${devices.camera.present ? 'ok' : 'ABSENT'}; board ${board}`);
  }
  for (const c of containers ?? []) {
    const sync = c.inSync ? 'in sync' : `NOT IN SYNC: ${c.reason ?? '?'}`;
    const runs = c.runImage ? ` (runs ${c.runImage})` : '';
    const health = c.health ? ` (${c.health})` : '';
    lines.push(`  container   ${c.name} ${c.state}${health} ${c.image}${runs}, ${sync}, restarts ${c.restarts}`);
  }
  if (images) lines.push(`  images      ${images.length}, ${gb(images.reduce((n, i) => n + i.uniqueSize, 0))} unique`);
  if (update) {
    const r = update.lastResult;
    const last = r ? `; last: ${r.status} ${r.container} ${r.from ?? '?'} -> ${r.to}` : '';
    lines.push(`  update      ${update.status}${update.container ? ` ${update.container}` : ''}${last}`);
  }
  if (desired?.rejected) lines.push(`  desired     REFUSED: ${desired.rejected.message}`);
  const m = host?.metrics;
  if (m) {
    const disks = m.disks.map((disk) => `${disk.role} ${gb(disk.available)} free`).join(', ');
    const temperature = m.cpuTemperature === null ? '' : `, ${m.cpuTemperature} °C`;
    const memory = `${gb(m.memory.total - m.memory.available)}/${gb(m.memory.total)}`;
    const sampled = `(sampled ${age(now - Date.parse(m.sampledAt))})`;
    lines.push(`  host        cpu ${m.cpuLoad ?? '?'} %, memory ${memory}, ${disks}${temperature} ${sampled}`);
  }
  if (snapshots) lines.push(`  snapshots   ${snapshots.length}${snapshots[0] ? `, newest ${snapshots[0].image}` : ''}`);
  return lines.join('\n');
}

function gb(bytes: number): string {
  return `${(bytes / 1e9).toFixed(1)} GB`;
}
