import { execFileSync } from 'node:child_process';
import { rig } from '../setup.js';

/** The docker CLI against the rig's engine (or another rig engine's cliArgs). */
export function docker(...args: string[]): string {
  return dockerAt(rig().docker.cliArgs, ...args);
}

export function dockerAt(cliArgs: string[], ...args: string[]): string {
  return execFileSync('docker', [...cliArgs, ...args], { stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 << 20 })
    .toString()
    .trim();
}

export function localTags(): string[] {
  return docker('image', 'ls', '--format', '{{.Repository}}:{{.Tag}}')
    .split('\n')
    .filter((t) => t && !t.endsWith(':<none>'));
}

/**
 * No containers and no images: each image test starts from an empty engine. Untagged images go
 * too (a rebuilt tag leaves its old image dangling, as the agent image test does): the image
 * tests count and list every image the engine has.
 */
export function cleanEngine(): void {
  for (const c of docker('ps', '-aq').split('\n').filter(Boolean)) docker('rm', '-f', c);
  const tags = localTags();
  if (tags.length) docker('image', 'rm', '-f', ...tags);
  docker('image', 'prune', '-f');
}
