import type { AgentEvent } from '../state/event-bus.js';
import type { StateSummary } from '../state/summary.js';

/** What the fleet broker holds for one robot: its retained summary (<b>/state) and availability. */
export interface RobotView {
  robot: string;
  online: boolean | null;
  state: StateSummary | null;
}

/**
 * The `robot-fleet list` table (pure), from the summaries alone: one line per robot, the columns
 * an operator scans for a robot in trouble: online, status and why, devices and the lidar's
 * health, containers (outdated ones marked), the update, and when the robot was last heard of.
 */
export function renderFleetTable(robots: RobotView[], now = Date.now()): string {
  const header = ['ROBOT', 'ONLINE', 'STATUS', 'LIDAR', 'CAMERA', 'BOARD', 'CONTAINERS', 'UPDATE', 'DISK FREE', 'LAST SEEN', 'WHY'];
  const rows = [...robots].sort((a, b) => a.robot.localeCompare(b.robot)).map((r) => row(r, now));
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((cells) => cells[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

function row(r: RobotView, now: number): string[] {
  const s = r.state;
  const online = r.online === null ? '?' : r.online ? 'online' : 'OFFLINE';
  if (!s) return [r.robot, online, '-', '-', '-', '-', '-', '-', '-', 'never', ''];
  const lidar = s.devices.lidar.present ? `${s.devices.lidar.health}${s.devices.lidar.busy ? ' (busy)' : ''}` : 'ABSENT';
  const camera = s.devices.camera.present ? 'ok' : 'ABSENT';
  const board = s.devices.board.present ? 'ok' : 'ABSENT';
  const listed = s.containers.list.map((c) => `${c.name}:${c.state}${c.outdated ? ' OUTDATED' : ''}`);
  if (s.containers.omitted > 0) listed.push(`+${s.containers.omitted}`);
  const containers = s.docker ? listed.join(',') || '-' : 'NO DOCKER';
  const update = `${s.update.status}${s.update.container ? ` ${s.update.container}` : ''}`;
  const disk = s.diskFree === null ? '-' : `${(s.diskFree / 1e9).toFixed(1)} GB`;
  const status = s.status === 'ok' ? 'ok' : s.status.toUpperCase();
  return [r.robot, online, status, lidar, camera, board, containers, update, disk, age(now - Date.parse(s.seen)), s.why.join('; ').slice(0, 120)];
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
  if (event.type.endsWith('.progress') && typeof event.current === 'number' && typeof event.total === 'number' && event.total > 0) {
    return `${head} ${String(event.image ?? '')} ${progressBar(event.current, event.total, width)}`;
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
