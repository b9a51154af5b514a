import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, symlinkSync, copyFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const ROS_REPOSITORY = 'yahboomtechnology/ros-foxy';

export interface Fixtures {
  repository: string;
  /** Docker Hub names, as on the robots; pulled through the rig registry acting as mirror. */
  images: { v339: string; v340: string; crash: string; unhealthy: string; healthy: string };
  /** The same images under the rig registry's own host. */
  registryImages: Record<keyof Fixtures['images'], string>;
  tags: string[];
}

const APPLETS = [
  'sh',
  'sleep',
  'echo',
  'cat',
  'ls',
  'mkdir',
  'mknod',
  'rm',
  'touch',
  'test',
  'true',
  'false',
  'date',
  'env',
  'wc',
  'head',
  'tail',
  'grep',
  'sed',
  'ps',
  'kill',
  'stat',
  'dd',
  'id',
  'cp',
  'mv',
  'chmod',
];

/** Deterministic pseudo-random bytes: the same "ROS" layer, byte for byte, on every run. */
function rosLibrary(size: number): Buffer {
  const out = Buffer.alloc(size);
  let block = createHash('sha256').update('ros-foxy').digest();
  for (let off = 0; off < size; off += block.length) {
    block.copy(out, off);
    block = createHash('sha256').update(block).digest();
  }
  return out;
}

/**
 * Builds the ROS stand-in images from busybox-static (no internet, so nothing is pulled) and
 * pushes them to the rig registry, then removes them from the engine so tests start clean:
 *   3.3.9 and 3.4.0 share the busybox and "ros" layers and differ by their last (version) layer;
 *   crash exits 3 after ~3 s; unhealthy fails its HEALTHCHECK; healthy passes it.
 */
export function buildFixtures(o: { dir: string; docker: string[]; registryHost: string }): Fixtures {
  const docker = (args: string[], input?: Buffer): Buffer => {
    try {
      return execFileSync('docker', [...o.docker, ...args], {
        input,
        stdio: [input ? 'pipe' : 'ignore', 'pipe', 'pipe'],
        maxBuffer: 64 << 20,
      });
    } catch (err) {
      const stderr = (err as { stderr?: Buffer }).stderr?.toString() ?? '';
      throw new Error(`docker ${args.join(' ')} failed: ${stderr.trim() || (err as Error).message}`);
    }
  };
  const rootfs = join(o.dir, 'rootfs');
  mkdirSync(join(rootfs, 'bin'), { recursive: true });
  for (const d of ['etc', 'tmp', 'root', 'proc', 'sys', 'dev']) mkdirSync(join(rootfs, d), { recursive: true });
  copyFileSync('/bin/busybox', join(rootfs, 'bin', 'busybox'));
  for (const applet of APPLETS) symlinkSync('busybox', join(rootfs, 'bin', applet));
  writeFileSync(join(rootfs, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
  const tar = execFileSync('tar', ['-C', rootfs, '-c', '.'], { maxBuffer: 64 << 20 });
  docker(['import', '-', 'rig/busybox:base'], tar);

  const build = (name: string, files: Record<string, string | Buffer>, dockerfile: string) => {
    const ctx = join(o.dir, name.replace(/[/:]/g, '_'));
    mkdirSync(ctx, { recursive: true });
    for (const [file, content] of Object.entries(files)) writeFileSync(join(ctx, file), content);
    writeFileSync(join(ctx, 'Dockerfile'), dockerfile);
    docker(['build', '-q', '--network', 'none', '-t', name, ctx]);
  };
  const loop = `CMD ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]\n`;
  build(
    'rig/ros-base:1',
    { 'lib.bin': rosLibrary(2 * 1024 * 1024) },
    'FROM rig/busybox:base\nCOPY lib.bin /opt/ros/lib.bin\n',
  );
  const tagged = (tag: string) => `${ROS_REPOSITORY}:${tag}`;
  build(
    tagged('3.3.9'),
    { 'ros-version': '3.3.9\n' },
    `FROM rig/ros-base:1\nCOPY ros-version /etc/ros-version\n${loop}`,
  );
  build(
    tagged('3.4.0'),
    { 'ros-version': '3.4.0\n' },
    `FROM rig/ros-base:1\nCOPY ros-version /etc/ros-version\n${loop}`,
  );
  build(tagged('crash'), {}, `FROM ${tagged('3.3.9')}\nCMD ["sh", "-c", "sleep 3; exit 3"]\n`);
  build(
    tagged('unhealthy'),
    {},
    `FROM ${tagged('3.3.9')}\nHEALTHCHECK --interval=1s --timeout=1s --retries=2 CMD false\n`,
  );
  build(
    tagged('healthy'),
    {},
    `FROM ${tagged('3.4.0')}\nHEALTHCHECK --interval=1s --timeout=1s --retries=2 CMD true\n`,
  );

  const tags = ['3.3.9', '3.4.0', 'crash', 'unhealthy', 'healthy'];
  for (const tag of tags) {
    const remote = `${o.registryHost}/${tagged(tag)}`;
    docker(['tag', tagged(tag), remote]);
    docker(['push', remote]);
  }
  // Untagging every reference deletes the images and their now-dangling parents.
  const local = docker(['image', 'ls', '--format', '{{.Repository}}:{{.Tag}}']).toString().split('\n').filter(Boolean);
  if (local.length > 0) docker(['image', 'rm', ...local]);

  const names = { v339: '3.3.9', v340: '3.4.0', crash: 'crash', unhealthy: 'unhealthy', healthy: 'healthy' } as const;
  const images = Object.fromEntries(Object.entries(names).map(([k, t]) => [k, tagged(t)])) as Fixtures['images'];
  const registryImages = Object.fromEntries(
    Object.entries(names).map(([k, t]) => [k, `${o.registryHost}/${tagged(t)}`]),
  ) as Fixtures['registryImages'];
  return { repository: ROS_REPOSITORY, images, registryImages, tags };
}
