import { parseImageReference } from '../core/image-reference.js';
import { MQTT_API_VERSION } from './api-version.js';
import type { AgentState, ContainerState, ImageSummary, LidarHealthState, UpdateState } from '../state/types.js';

/**
 * What a fleet table needs of one robot, retained on <b>/state: small enough (1 KiB at most)
 * that a dashboard which connects can take thousands at once, and a robot that only says "still
 * here" costs a few hundred bytes a minute. Everything else is on <b>/state/<section>.
 */
export interface StateSummary {
  robot: string;
  status: SummaryStatus;
  /** Why it is not ok, worst first; empty when ok. Clipped and counted ("+N more") to fit. */
  why: string[];
  version: string;
  /**
   * The MQTT API version (agent/mqtt/api-version.ts). Optional to a reader: agents before 0.2.0
   * did not send it (apiVersionOf gives 1 then).
   */
  apiVersion?: number;
  docker: boolean;
  devices: {
    lidar: { present: boolean; health: LidarHealthState['status']; busy?: true };
    camera: { present: boolean };
    board: { present: boolean };
  };
  containers: {
    total: number;
    running: number;
    outdated: number;
    /** Worst first, then in config order; those left out to stay under 1 KiB are counted in omitted. */
    list: SummaryContainer[];
    omitted: number;
  };
  update: { status: UpdateState['status']; container?: string };
  /** Bytes available on the fuller of the agent's disks (state dir, Docker's root); null before a sample. */
  diskFree: number | null;
  /** When the summary last changed, anything but seen. */
  changed: string;
  /** When the robot last said it is here (every mqtt.heartbeat seconds, and with every change). */
  seen: string;
}

export type SummaryStatus = 'ok' | 'degraded' | 'updating' | 'error';

export interface SummaryContainer {
  name: string;
  state: ContainerState['state'];
  /** The image it should run. */
  image: string;
  /** The image it runs (a tag of it, the commit that keeps its changes, or its short id); null with no container. */
  runs: string | null;
  /** It runs something other than image (or an image built on it). */
  outdated: boolean;
}

/** The most a summary may take, in UTF-8 bytes of its JSON. */
export const SUMMARY_LIMIT_BYTES = 1024;
/** Below this share of a disk free, the robot is degraded: pulls and snapshots start failing. */
export const LOW_DISK_SHARE = 0.05;

const MAX_WHY = 100;
/** Reasons listed before the rest are counted: the summary says what is wrong, the sections say all. */
const MAX_REASONS = 5;
const MAX_IMAGE = 80;
const MAX_VERSION = 40;
const UPDATING: ReadonlyArray<UpdateState['status']> = ['waiting', 'pulling', 'swapping', 'verifying'];

/** The summary of a state (pure): the same store that the sections come from. */
export function summarise(state: AgentState, times: { changed: string; seen: string }): StateSummary {
  const containers = state.containers.map((c) => ({ c, row: containerRow(c, state.images) }));
  const problems = assess(state, containers);
  const status: SummaryStatus =
    problems.error.length > 0
      ? 'error'
      : problems.updating.length > 0
        ? 'updating'
        : problems.degraded.length > 0
          ? 'degraded'
          : 'ok';
  const ranked = containers
    .map((entry, index) => ({ ...entry, index, rank: severity(entry.c, entry.row) }))
    .sort((a, b) => b.rank - a.rank || a.index - b.index)
    .map((entry) => entry.row);
  const lidar = state.devices.lidar;
  const summary: StateSummary = {
    robot: state.robot,
    status,
    why: [...problems.error, ...problems.updating, ...problems.degraded].map((w) => clip(w, MAX_WHY)),
    version: clip(state.agent.version, MAX_VERSION),
    apiVersion: MQTT_API_VERSION,
    docker: state.docker.available,
    devices: {
      lidar: {
        present: lidar.present,
        health: lidar.present ? lidar.health.status : 'unknown',
        ...(lidar.present && lidar.health.busy ? { busy: true as const } : {}),
      },
      camera: { present: state.devices.camera.present },
      board: { present: state.devices.board.present },
    },
    containers: {
      total: containers.length,
      running: containers.filter(({ c }) => c.state === 'running').length,
      outdated: containers.filter(({ row }) => row.outdated).length,
      list: ranked,
      omitted: 0,
    },
    update: { status: state.update.status, ...(state.update.container ? { container: state.update.container } : {}) },
    diskFree: diskFree(state),
    changed: times.changed,
    seen: times.seen,
  };
  return fit(summary);
}

/** Its size in bytes as published. */
export function summaryBytes(summary: StateSummary): number {
  return Buffer.byteLength(JSON.stringify(summary), 'utf8');
}

/**
 * Keeps the first reasons and counts the rest, then leaves containers out (the healthiest
 * first, they are last in the list) but the worst, then folds more reasons, until it fits: the
 * counts above the list always cover every container.
 */
function fit(summary: StateSummary): StateSummary {
  const reasons = summary.why;
  const fold = (keep: number) =>
    reasons.length > keep ? [...reasons.slice(0, keep), `+${reasons.length - keep} more`] : reasons;
  const list = [...summary.containers.list];
  const out = { ...summary, containers: { ...summary.containers, list }, why: fold(MAX_REASONS) };
  const leaveOut = (keep: number) => {
    while (summaryBytes(out) > SUMMARY_LIMIT_BYTES && list.length > keep) {
      list.pop();
      out.containers.omitted += 1;
    }
  };
  // The worst container and the worst reason are the last to go.
  leaveOut(1);
  for (let keep = MAX_REASONS - 1; summaryBytes(out) > SUMMARY_LIMIT_BYTES && keep >= 1; keep -= 1) {
    out.why = fold(keep);
  }
  leaveOut(0);
  return out;
}

interface Problems {
  error: string[];
  updating: string[];
  degraded: string[];
}

/** What is wrong, sorted into the three levels of trouble; each a short sentence for an operator. */
function assess(state: AgentState, containers: Array<{ c: ContainerState; row: SummaryContainer }>): Problems {
  const p: Problems = { error: [], updating: [], degraded: [] };
  if (!state.docker.available) p.error.push(`Docker unavailable${codeOf(state.docker.error)}`);
  for (const [name, module] of Object.entries(state.agent.modules)) {
    if (module.status === 'failed') p.error.push(`module ${name} failed${codeOf(module.error)}`);
  }
  const lidar = state.devices.lidar;
  if (!lidar.present) p.degraded.push('lidar absent');
  else if (lidar.health.status === 'error') {
    const code = lidar.health.errorCode;
    p.error.push(`lidar health error${code !== null ? ` (0x${code.toString(16)})` : ''}`);
  } else if (lidar.health.status === 'warning') p.degraded.push('lidar health warning');
  if (!state.devices.camera.present) p.degraded.push('camera absent');
  if (!state.devices.board.present) p.degraded.push('board absent');
  if (UPDATING.includes(state.update.status)) {
    p.updating.push(`update ${state.update.status}${state.update.container ? ` (${state.update.container})` : ''}`);
  }
  for (const { c, row } of containers) {
    const failure = c.error?.code ?? (c.health === 'unhealthy' ? 'unhealthy' : c.state);
    if (containerFailed(c)) p.error.push(`${c.name}: ${failure}`);
    else if (!c.inSync) p.degraded.push(`${c.name}: ${c.reason ?? 'not in sync'}`);
    else if (row.outdated) p.degraded.push(`${c.name}: outdated`);
    if (c.missingDevices.length > 0) p.degraded.push(`${c.name}: missing ${c.missingDevices.join(', ')}`);
  }
  if (state.desired.rejected) p.degraded.push(`desired state refused (${state.desired.rejected.code})`);
  for (const disk of state.host.metrics?.disks ?? []) {
    const share = disk.total > 0 ? disk.available / disk.total : 1;
    if (share < LOW_DISK_SHARE) p.degraded.push(`${disk.role} disk ${Math.floor(share * 100)} % free`);
  }
  return p;
}

/** A step failed for it, it is dead, crash-looping or unhealthy: it needs someone. */
function containerFailed(c: ContainerState): boolean {
  if (c.error || c.state === 'dead' || c.state === 'restarting' || c.health === 'unhealthy') return true;
  return c.desired.enabled && c.state === 'exited' && c.exitCode !== null && c.exitCode !== 0;
}

function severity(c: ContainerState, row: SummaryContainer): number {
  if (containerFailed(c)) return 3;
  if (!c.inSync) return 2;
  return row.outdated ? 1 : 0;
}

function containerRow(c: ContainerState, images: ImageSummary[]): SummaryContainer {
  const should = c.desired.image || c.image;
  const wanted = imageNamed(images, should);
  const running = c.imageId ? images.find((i) => i.id === c.imageId) : undefined;
  let runs: string | null = null;
  if (c.imageId) {
    runs = c.runImage ?? (running && running.id === wanted?.id ? should : (running?.tags[0] ?? shortId(c.imageId)));
  }
  // A commit that keeps a container's changes is built on the image it should run: its layers
  // start with that image's layers. Anything else running is another image.
  const builtOnWanted = running !== undefined && wanted !== undefined && startsWith(running.layers, wanted.layers);
  const outdated = c.imageId !== null && (wanted === undefined || (c.imageId !== wanted.id && !builtOnWanted));
  const image = clipStart(should, MAX_IMAGE);
  return { name: c.name, state: c.state, image, runs: runs === null ? null : clipStart(runs, MAX_IMAGE), outdated };
}

/** The local image a reference names, by tag or digest, however the reference is spelled. */
function imageNamed(images: ImageSummary[], reference: string): ImageSummary | undefined {
  const wanted = familiar(reference);
  const named = (names: string[]) => names.some((name) => familiar(name) === wanted);
  return images.find((i) => named(i.tags) || named(i.digests));
}

function familiar(reference: string): string {
  try {
    const ref = parseImageReference(reference);
    return ref.digest ? `${ref.familiarRepository}@${ref.digest}` : ref.familiar;
  } catch {
    return reference;
  }
}

function startsWith(layers: string[], base: string[]): boolean {
  return base.length > 0 && base.length <= layers.length && base.every((layer, i) => layers[i] === layer);
}

function diskFree(state: AgentState): number | null {
  const disks = state.host.metrics?.disks ?? [];
  return disks.length === 0 ? null : Math.min(...disks.map((d) => d.available));
}

function codeOf(error: { code: string } | undefined): string {
  return error ? ` (${error.code})` : '';
}

function shortId(id: string): string {
  return id.replace(/^sha256:/, '').slice(0, 12);
}

/** Long text keeps its start (sentences). */
function clip(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

/** Image names keep their end: the tag is what tells two versions apart. */
function clipStart(text: string, max: number): string {
  return text.length <= max ? text : `…${text.slice(text.length - max + 1)}`;
}
