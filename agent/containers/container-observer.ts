import type { ContainerDetails, ContainerSummary, Engine } from '../docker/engine.js';
import { LABELS, parseDevicesLabel } from './container-spec.js';
import type { ObservedContainer } from './container-plan.js';

type InspectInfo = Pick<ContainerDetails, 'Id' | 'Name' | 'Image' | 'RestartCount'> & {
  Config: Pick<ContainerDetails['Config'], 'Image' | 'Labels'>;
  State: Omit<ContainerDetails['State'], 'Running'>;
  HostConfig: ContainerDetails['HostConfig'];
};

/** A managed container as observed, plus the in-container device paths Docker made at its start. */
export interface Observation extends ObservedContainer {
  devicePaths: string[];
}

const NEVER = '0001-01-01T00:00:00Z';

/** Every container the agent made (by label), inspected. A container gone mid-list is skipped. */
export async function observeContainers(engine: Engine): Promise<Observation[]> {
  const list = await engine.listContainers({ label: [`${LABELS.managed}=true`] });
  const out: Observation[] = [];
  for (const summary of list) {
    const info = await engine.inspectContainer(summary.Id);
    if (!info) continue;
    const observation = toObservation(info);
    // A container the update flow moved aside (<name>-previous-...) keeps its name label; it is
    // the flow's to finish or undo, not a second copy of the container for the loop to act on.
    if (info.Config.Labels?.[LABELS.name] !== undefined && info.Config.Labels[LABELS.name] !== observation.name)
      continue;
    out.push(observation);
  }
  return out;
}

/**
 * The managed container that holds this name now, by Docker's name: never one the update flow
 * moved aside, which keeps the name label of the container it was.
 */
export async function findManagedContainer(engine: Engine, name: string): Promise<ContainerSummary | undefined> {
  const list = await engine.listContainers({ label: [`${LABELS.managed}=true`, `${LABELS.name}=${name}`] });
  return list.find((c) => c.Names.includes(`/${name}`));
}

export function toObservation(info: InspectInfo): Observation {
  const labels = info.Config.Labels ?? {};
  const health = info.State.Health?.Status;
  const status = info.State.Status;
  return {
    id: info.Id,
    name: info.Name.replace(/^\//, ''),
    image: labels[LABELS.image] ?? info.Config.Image,
    runImage: info.Config.Image,
    imageId: info.Image,
    state: status,
    health: health === 'starting' || health === 'healthy' || health === 'unhealthy' ? health : null,
    startedAt: info.State.StartedAt && info.State.StartedAt !== NEVER ? info.State.StartedAt : null,
    restartCount: info.RestartCount,
    exitCode: status === 'exited' || status === 'dead' ? info.State.ExitCode : null,
    specHash: labels[LABELS.spec],
    createdDevices: parseDevicesLabel(labels[LABELS.devices]),
    devicePaths: (info.HostConfig.Devices ?? []).map((d) => d.PathInContainer),
  };
}
