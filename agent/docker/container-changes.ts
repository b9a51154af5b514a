import type Docker from 'dockerode';

export interface ContainerChange {
  Path: string;
  Kind: number;
}

/**
 * `docker diff`, less the mount points Docker itself made in the writable layer (a bind mount's
 * target directory shows as added): those are not anyone's work. One answer to "did this
 * container change" for the snapshot schedule and for the commits before a recreate or update.
 */
export async function changesOf(
  container: Docker.Container,
  mounts: Array<{ Destination: string }>,
): Promise<ContainerChange[]> {
  const points = new Set(mounts.map((m) => m.Destination));
  // The engine answers `null` for a container with no changes, which dockerode hands over as the
  // raw bytes "null\n" (a Buffer, not a list): read as a list, that is five changes, and every
  // untouched container looked changed. Anything but a list is no changes.
  const answer: unknown = await container.changes();
  const all = Array.isArray(answer) ? (answer as ContainerChange[]) : [];
  return all.filter((c) => !points.has(c.Path));
}
