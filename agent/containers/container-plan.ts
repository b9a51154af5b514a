import type { ContainerSpec } from '../config/types.js';
import type { DeviceMapping, ResolvedDevices } from './device-mappings.js';
import { isLiteralDevice } from './device-mappings.js';

/** What a container should be: its local spec, with image and enabled as the fleet last said. */
export interface DesiredContainer {
  name: string;
  spec: ContainerSpec;
  /** Familiar reference (yahboomtechnology/ros-foxy:3.4.0). */
  image: string;
  enabled: boolean;
  source: 'config' | 'desired';
  specHash: string;
}

/** What a managed container is, as the engine reports it. */
export interface ObservedContainer {
  id: string;
  name: string;
  /** The desired reference it was made for (label), even when it runs from a commit of it. */
  image: string;
  runImage: string;
  imageId: string;
  state: 'created' | 'running' | 'paused' | 'restarting' | 'removing' | 'exited' | 'dead';
  health: 'starting' | 'healthy' | 'unhealthy' | null;
  startedAt: string | null;
  restartCount: number;
  exitCode: number | null;
  specHash: string | undefined;
  /** Catalog device nodes as they were when it was created. */
  createdDevices: DeviceMapping[];
}

export type Step =
  | { action: 'pull'; name: string; image: string }
  | { action: 'run'; name: string; image: string }
  | { action: 'start'; name: string; id: string }
  | { action: 'stop'; name: string; id: string; reason: 'disabled' | 'held' | 'orphan' }
  | { action: 'recreate'; name: string; id: string; image: string; reason: 'spec' | 'devices' }
  /**
   * A new image for a container that exists, its gates passed (or forced): the update's journaled
   * replacement (pull first when needed, in the background; then swap, verify, roll back).
   */
  | { action: 'replace'; name: string; id: string; image: string; reason: 'update' };

/** What may hold an update's swap back, as the loop read it for this pass (update-gates.ts). */
export interface PlanGate {
  /** Inside the maintenance window (always, without update.window). */
  windowOpen: boolean;
  /** When it opens next, for the verdict (null: never, by its cron). */
  nextWindow: string | null;
  /** The robot's inhibit lock file is there. */
  locked: boolean;
}

/** A replacement the gates hold back this pass: what state.update says it waits for. */
export interface GatedReplace {
  name: string;
  id: string;
  image: string;
  waitingFor: 'window' | 'lock';
  nextWindow?: string | null;
}

export interface ContainerVerdict {
  inSync: boolean;
  /** Why not, for state: "pulling yahboomtechnology/ros-foxy:3.4.0", "waiting for lidar". */
  reason?: string;
}

export interface PlanInput {
  desired: DesiredContainer[];
  observed: ObservedContainer[];
  devices: ReadonlyMap<string, ResolvedDevices>;
  imagePresent: (image: string) => boolean;
  pulling: ReadonlySet<string>;
  /** Stopped by command: left stopped until started by command or a new desired state. */
  held: ReadonlySet<string>;
  /** Failed recently and backing off: no new step until their retry time. */
  backingOff: ReadonlySet<string>;
  /** The image id a reference names here now (a tag moved by a pull means an update). */
  imageIdOf?: (image: string) => string | undefined;
  /** Containers the update flow owns right now: the loop keeps its hands off. */
  updating?: ReadonlySet<string>;
  /** Containers whose update pulls its image in the background: the swap comes after. */
  preparing?: ReadonlySet<string>;
  /** Containers whose last background update failed, with when it may be tried again (ISO time). */
  updateRetry?: ReadonlyMap<string, string>;
  /** Targets an update rolled back from, by container: not tried again until asked anew. */
  rolledBack?: ReadonlyMap<string, { image: string; imageId?: string; reason: string }>;
  /** Asked to start by command: started when down, whatever the restart policy says. */
  startNow?: ReadonlySet<string>;
  /** The window and the inhibit lock now; without it, both are open. */
  updateGate?: PlanGate;
  /** Updates asked with force (update force, rollback, restore): the window does not hold them back. */
  forced?: ReadonlySet<string>;
  /** Updates a command waits for: not held back by a failed update's backoff (update.retry). */
  asked?: ReadonlySet<string>;
  /** Ids of containers whose spec left the config that the agent already stopped once. */
  orphansStopped?: ReadonlySet<string>;
}

export interface Plan {
  steps: Step[];
  verdicts: Map<string, ContainerVerdict>;
  /** Replacements held back by the window or the inhibit lock this pass. */
  gated: GatedReplace[];
}

/**
 * From what should be and what is, the steps that converge them (pure: no engine, no clock).
 * Each container is planned on its own; at most one step each per pass, since every step
 * changes what is observed and the next pass plans from there.
 */
export function planContainers(input: PlanInput): Plan {
  const steps: Step[] = [];
  const verdicts = new Map<string, ContainerVerdict>();
  const gated: GatedReplace[] = [];
  const observedByName = new Map(input.observed.map((o) => [o.name, o]));
  for (const want of input.desired) {
    const have = observedByName.get(want.name);
    const { step, verdict, gate } = planOne(want, have, input);
    if (step) steps.push(step);
    if (gate) gated.push(gate);
    verdicts.set(want.name, verdict);
  }
  const desiredNames = new Set(input.desired.map((d) => d.name));
  for (const have of input.observed) {
    // A container whose spec left the config is stopped once, never removed: its writable layer
    // may hold someone's work, and an operator who starts it again by hand is not fought.
    if (desiredNames.has(have.name) || !isUp(have) || input.orphansStopped?.has(have.id)) continue;
    if (input.backingOff.has(have.name)) continue;
    steps.push({ action: 'stop', name: have.name, id: have.id, reason: 'orphan' });
  }
  return { steps, verdicts, gated };
}

function planOne(
  want: DesiredContainer,
  have: ObservedContainer | undefined,
  input: PlanInput,
): { step?: Step; verdict: ContainerVerdict; gate?: GatedReplace } {
  const name = want.name;
  // The update flow owns it (swap, verification, rollback): nothing else touches it, not even a
  // stop, which would stop the new container and have the flow blame the new image.
  if (input.updating?.has(name)) return { verdict: { inSync: false, reason: `updating to ${want.image}` } };
  // Before any step, stops included: a step that failed is retried at its time, never sooner.
  // A command that waits for its update is not held back by an earlier failure of the loop's.
  if (input.backingOff.has(name) && !input.asked?.has(name))
    return { verdict: { inSync: false, reason: 'retrying after a failure' } };
  if (!want.enabled) {
    if (have && isUp(have))
      return {
        step: { action: 'stop', name, id: have.id, reason: 'disabled' },
        verdict: { inSync: false, reason: 'stopping: disabled' },
      };
    return { verdict: { inSync: true } };
  }
  if (input.held.has(name)) {
    if (have && isUp(have))
      return {
        step: { action: 'stop', name, id: have.id, reason: 'held' },
        verdict: { inSync: false, reason: 'stopping: stopped by command' },
      };
    return { verdict: { inSync: false, reason: 'stopped by command' } };
  }

  // A new image, or the same tag pulled anew, for a container that exists: the update flow.
  const targetId = input.imageIdOf?.(want.image);
  const newImage =
    have !== undefined &&
    (have.image !== want.image ||
      (have.runImage === have.image && targetId !== undefined && have.imageId !== targetId));
  if (have && newImage && have.specHash === want.specHash) {
    // A command asks anew: a target that rolled back is tried again when it says so.
    const refused = input.asked?.has(name) ? undefined : input.rolledBack?.get(name);
    if (refused && refused.image === want.image && (refused.imageId === undefined || refused.imageId === targetId)) {
      // The container it went back to is kept as any other (started when down, by policy or
      // command): only the refused image is not tried again.
      const kept = planOne({ ...want, image: have.image }, have, { ...input, rolledBack: new Map() });
      if (kept.step) return kept;
      const now = kept.verdict.inSync ? `running ${have.image}` : `${have.image}: ${kept.verdict.reason ?? have.state}`;
      const reason = `update to ${want.image} was rolled back (${refused.reason}); ${now}`;
      return { verdict: { inSync: false, reason } };
    }
    // Backing off after a failed update (update.retry): say so rather than "updating", which it is not.
    const retry = input.asked?.has(name) ? undefined : input.updateRetry?.get(name);
    if (retry) return { verdict: { inSync: false, reason: `update to ${want.image} failed; tried again at ${retry}` } };
    if (input.preparing?.has(name)) return { verdict: { inSync: false, reason: `pulling ${want.image}` } };
    const gate = input.updateGate ?? { windowOpen: true, nextWindow: null, locked: false };
    const waitingFor = !gate.windowOpen && !input.forced?.has(name) ? 'window' : gate.locked ? 'lock' : undefined;
    if (waitingFor) {
      // The download does not wait for the gates: the swap is then all that is left when they open.
      if (!input.imagePresent(want.image) && !input.pulling.has(want.image))
        return {
          step: { action: 'pull', name, image: want.image },
          verdict: { inSync: false, reason: `pulling ${want.image}` },
        };
      const when = gate.nextWindow ?? 'never, by update.window';
      const reason =
        waitingFor === 'window'
          ? `update to ${want.image} waits for the maintenance window (opens ${when})`
          : `update to ${want.image} waits for the inhibit lock to go`;
      const held: GatedReplace = { name, id: have.id, image: want.image, waitingFor };
      if (waitingFor === 'window') held.nextWindow = gate.nextWindow;
      return { verdict: { inSync: false, reason }, gate: held };
    }
    return {
      step: { action: 'replace', name, id: have.id, image: want.image, reason: 'update' },
      verdict: { inSync: false, reason: `updating to ${want.image}` },
    };
  }

  const matches = have !== undefined && have.image === want.image && have.specHash === want.specHash;
  if (!matches && !input.imagePresent(want.image)) {
    // Pull first, swap after: the running container keeps running on its old image meanwhile.
    if (input.pulling.has(want.image)) return { verdict: { inSync: false, reason: `pulling ${want.image}` } };
    return {
      step: { action: 'pull', name, image: want.image },
      verdict: { inSync: false, reason: `pulling ${want.image}` },
    };
  }
  const resolved = input.devices.get(name) ?? { mappings: [], missing: [] };
  const waitingFor = want.spec.required.filter((d) => resolved.missing.includes(d));
  const waiting = waitingFor.length > 0 ? `waiting for ${waitingFor.join(', ')}` : undefined;

  if (!have) {
    if (waiting) return { verdict: { inSync: false, reason: waiting } };
    return { step: { action: 'run', name, image: want.image }, verdict: { inSync: false, reason: 'creating' } };
  }
  if (!matches) {
    if (waiting) return { verdict: { inSync: false, reason: waiting } };
    return {
      step: { action: 'recreate', name, id: have.id, image: want.image, reason: 'spec' },
      verdict: { inSync: false, reason: 'recreating: spec changed' },
    };
  }
  if (
    want.spec.replug === 'recreate' &&
    have.state === 'running' &&
    devicesMoved(have.createdDevices, resolved.mappings)
  ) {
    return {
      step: { action: 'recreate', name, id: have.id, image: want.image, reason: 'devices' },
      verdict: { inSync: false, reason: 'recreating: devices moved' },
    };
  }
  if (!isUp(have) && (shouldStart(have, want.spec) || input.startNow?.has(name))) {
    if (waiting) return { verdict: { inSync: false, reason: waiting } };
    return { step: { action: 'start', name, id: have.id }, verdict: { inSync: false, reason: 'starting' } };
  }
  if (have.state === 'running' || have.state === 'restarting') return { verdict: { inSync: true } };
  return {
    verdict: {
      inSync: false,
      reason: `${have.state}${have.exitCode !== null ? ` (exit ${have.exitCode})` : ''}; restart policy ${want.spec.restart}`,
    },
  };
}

function isUp(have: ObservedContainer): boolean {
  return have.state === 'running' || have.state === 'restarting' || have.state === 'paused';
}

/** Mirrors Docker's restart policy for the cases the engine itself does not restart. */
function shouldStart(have: ObservedContainer, spec: ContainerSpec): boolean {
  if (have.state === 'created') return true;
  if (have.state !== 'exited') return false;
  switch (spec.restart) {
    case 'always':
    case 'unless-stopped':
      return true;
    case 'on-failure':
      return have.exitCode !== 0;
    default:
      return false;
  }
}

/**
 * For replug: recreate, whether a device present now has a node or path other than at creation.
 * A device that is only gone does not count: recreating for it would commit a layer now and
 * another when it returns, for nothing.
 */
export function devicesMoved(created: DeviceMapping[], now: DeviceMapping[]): boolean {
  const key = (m: DeviceMapping) => `${m.key}|${m.host}|${m.container}`;
  const before = new Set(created.map(key));
  return now.some((m) => !isLiteralDevice(m.device) && !before.has(key(m)));
}
