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
  const all = ((await container.changes()) as ContainerChange[] | null) ?? [];
  return all.filter((c) => !points.has(c.Path));
}
