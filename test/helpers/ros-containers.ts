import { docker } from './engine-cli.js';

/** Every container, running or not, whose name is ros or starts with ros-: exactly one is the goal. */
export function rosContainers(): Array<{ name: string; state: string; image: string }> {
  return docker('ps', '-a', '--format', '{{.Names}}|{{.State}}|{{.Label "io.robot-agent.image"}}')
    .split('\n')
    .filter(Boolean)
    .map((line) => line.split('|'))
    .filter(([name]) => name === 'ros' || name!.startsWith('ros-'))
    .map(([name, state, image]) => ({ name: name!, state: state!, image: image! }));
}

export function rosVersion(): string {
  return docker('exec', 'ros', 'cat', '/etc/ros-version');
}
