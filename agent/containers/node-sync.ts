import { AgentError } from '../core/errors.js';
import type { NumberedMapping } from './device-mappings.js';
import type { Engine } from '../docker/engine.js';

export interface NodeSyncPlan {
  make: NumberedMapping[];
  remove: string[];
}

/**
 * Which device nodes to make inside a running container and which stale ones to remove (pure).
 * Every wanted node is listed: the script inside skips one whose numbers are already right, so
 * a node in use is never pulled from under the ROS driver for nothing.
 */
export function planNodeSync(wanted: NumberedMapping[], previouslyMade: ReadonlySet<string>): NodeSyncPlan {
  const paths = new Set(wanted.map((m) => m.container));
  return { make: wanted, remove: [...previouslyMade].filter((p) => !paths.has(p)).sort() };
}

/**
 * Runs inside the container (sh, rm, mkdir, mknod and stat, as in any ROS image) rather than
 * through /proc/<pid>/root on the host: there an absolute symlink planted in the container's
 * /dev would resolve against the host's root, and a root agent would make nodes where the
 * container chose. Arguments, not string interpolation, carry every path and number.
 */
const SCRIPT = `
while [ "$#" -gt 0 ]; do
  case "$1" in
    r) if [ -e "$2" ]; then rm -f "$2" || exit 1; echo "removed $2"; fi; shift 2 ;;
    c) if [ "$(stat -c %t:%T "$2" 2>/dev/null)" != "$5" ]; then
         rm -f "$2"; mkdir -p "\${2%/*}" && mknod -m "$6" "$2" c "$3" "$4" || exit 1
         echo "made $2"
       fi; shift 6 ;;
    *) exit 2 ;;
  esac
done`;

export function nodeSyncArgs(plan: NodeSyncPlan): string[] {
  const args: string[] = [];
  for (const path of plan.remove) args.push('r', path);
  for (const m of plan.make)
    args.push(
      'c',
      m.container,
      String(m.major),
      String(m.minor),
      `${m.major.toString(16)}:${m.minor.toString(16)}`,
      m.mode.toString(8),
    );
  return args;
}

export interface NodeSyncOutcome {
  made: string[];
  removed: string[];
}

/**
 * Applies a plan with one exec as root in the container and says what it really changed;
 * fails with node_sync_failed and what the script printed.
 */
export async function applyNodeSync(engine: Engine, id: string, plan: NodeSyncPlan): Promise<NodeSyncOutcome> {
  if (plan.make.length === 0 && plan.remove.length === 0) return { made: [], removed: [] };
  const cmd = ['sh', '-c', SCRIPT, 'robot-agent-nodes', ...nodeSyncArgs(plan)];
  const result = await engine.execInContainer(id, cmd, { user: '0' });
  if (result.exitCode !== 0) {
    const said = (result.stderr + result.stdout).trim().slice(0, 500);
    throw new AgentError(
      'node_sync_failed',
      `could not update device nodes inside the container (exit ${result.exitCode}): ${said || 'no output'}`,
    );
  }
  const lines = result.stdout.split('\n');
  return {
    made: lines.filter((l) => l.startsWith('made ')).map((l) => l.slice(5)),
    removed: lines.filter((l) => l.startsWith('removed ')).map((l) => l.slice(8)),
  };
}
