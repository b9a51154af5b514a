import { createHash, type KeyObject } from 'node:crypto';
import type { AgentConfig } from '../config/types.js';
import { findManagedContainer } from '../containers/container-observer.js';
import { LABELS } from '../containers/container-spec.js';
import { AgentError, toErrorInfo } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import {
  engineMessage,
  type ContainerDetails,
  type ContainerSummary,
  type Engine,
  type ImageListItem,
} from '../docker/engine.js';
import { ImageFiles } from '../images/image-files.js';
import { pushImage, type PushResult } from '../images/image-pusher.js';
import { allowedReference, parseImageReference, type ImageReference } from '../core/image-reference.js';
import { signImageDigest } from '../images/image-signer.js';
import type { RegistryClient } from '../images/registry-client.js';
import type { EventBus } from '../state/event-bus.js';
import type { StateStore } from '../state/state-store.js';
import type { SnapshotSummary } from '../state/types.js';
import type { SavedWork } from '../update/saved-work.js';
import { SNAPSHOT_LABELS, type SnapshotRecords } from './snapshot-records.js';
import { workDigest } from './work-identity.js';
import type { CommandArgs, CommandResult } from '../commands/command.js';

/** What `snapshot` is asked (docs/schemas/commands/snapshot.json, as the command map types it). */
export type SnapshotArgs = CommandArgs<'snapshot'>;

/** What `snapshot` answers (docs/schemas/commands/snapshot.json, as the command map types it). */
export type SnapshotResult = CommandResult<'snapshot'>;

/** Docker refuses images deeper than about 127 layers; snapshot-restore cycles stack them. */
const LAYER_WARNING = 100;

export interface SnapshotterDeps {
  config: Pick<AgentConfig, 'snapshots' | 'images' | 'robot'>;
  /** The Engine port (it refuses with docker_unavailable while the engine is away). */
  engine: Engine;
  registry: RegistryClient;
  bus: EventBus;
  store: StateStore;
  logger: Logger;
  records: SnapshotRecords;
  /** The config's container spec by name (unknown_container otherwise). */
  specOf: (name: string) => unknown;
  /** Image ids something else needs (an update's way back): retention keeps them. */
  protectedImages: () => Set<string>;
  /** The agent's one ImageFiles (saves in flight count once against images.exportMaxBytes). */
  files?: ImageFiles;
  /** snapshots.signKeyFile, read at start: signs what a snapshot push sent. */
  signKey?: KeyObject;
}

/**
 * `docker commit` of a robot's container as the fleet needs it: author, message and labels
 * saying where it came from, one layer on its source, pushed (only the new layer goes up when
 * the registry has the base) or saved to a tar, and a few kept per container.
 */
export class Snapshotter {
  private readonly files: ImageFiles;

  constructor(private readonly d: SnapshotterDeps) {
    this.files = d.files ?? new ImageFiles({ engine: d.engine, config: d.config.images });
  }

  async take(
    args: SnapshotArgs,
    ctx: { requestId?: string; progress?: (f: Record<string, unknown>) => void } = {},
  ): Promise<SnapshotResult> {
    const id = ctx.requestId ? { id: ctx.requestId } : {};
    try {
      const result = await this.commitAndShip(args, ctx);
      this.d.bus.emit('snapshot.done', {
        ...id,
        container: args.container,
        image: result.image,
        layers: result.layers,
        ...(result.pushed ? { pushed: result.pushed.image } : {}),
        ...(result.savedTo ? { savedTo: result.savedTo.file } : {}),
      });
      return result;
    } catch (caught) {
      // The engine's refusal (a container gone mid-way, a full disk) is the snapshot's, said in its words.
      const err =
        caught instanceof AgentError
          ? caught
          : new AgentError(
              'snapshot_failed',
              `snapshot of ${args.container} failed: the Docker engine refused: ${engineMessage(caught)}`,
              { cause: caught },
            );
      // A commit left behind (or removed) is named, so nobody has to guess what the failure kept.
      const details = err.details;
      const left = details?.imageId
        ? { image: details.image, imageId: details.imageId, kept: details.removed !== true }
        : {};
      const error = toErrorInfo(err, 'snapshot_failed');
      this.d.bus.emit('snapshot.failed', { ...id, container: args.container, error, ...left });
      throw err;
    }
  }

  /** What the schedule would snapshot now: changes since the last snapshot of this container. */
  async fingerprint(container: string): Promise<{ fingerprint: string | null; last: string | undefined }> {
    const found = await this.find(container);
    const info = await this.inspectWithSize(found.Id);
    const changes = await this.d.engine.containerChanges(found.Id);
    const fingerprint = changes.length === 0 ? null : digestOf(changes, info.SizeRw ?? 0);
    const last = (await this.snapshotsOf(container))[0];
    return { fingerprint, last: last?.Labels?.[SNAPSHOT_LABELS.fingerprint] };
  }

  private async commitAndShip(
    args: SnapshotArgs,
    ctx: { requestId?: string; progress?: (f: Record<string, unknown>) => void },
  ): Promise<SnapshotResult> {
    const cfg = this.d.config;
    this.d.specOf(args.container);
    // Every check that can refuse comes before the commit: bad input changes nothing.
    const ref = parseImageReference(`${cfg.snapshots.repository}:${args.tag ?? defaultTag(cfg.robot.id)}`);
    if (args.push) allowedReference(ref.familiar, cfg.images.pushAllow, 'images.pushAllow');
    if (args.save !== undefined) await this.files.checkSave(args.save);
    const engine = this.d.engine;
    if (await imageExists(engine, ref.familiar))
      throw new AgentError('snapshot_exists', `${ref.familiar} exists already; give another tag`);
    const found = await this.find(args.container);
    const info = await this.inspectWithSize(found.Id);
    const changes = await engine.containerChanges(found.Id);
    const sourceImage = info.Config.Labels?.[LABELS.image] ?? found.Image;
    const sourceDigest = (await engine.inspectImage(info.Image))?.RepoDigests?.[0] ?? '';
    const created = new Date().toISOString();
    const labels: Record<string, string> = {
      [SNAPSHOT_LABELS.robot]: cfg.robot.id,
      [SNAPSHOT_LABELS.container]: args.container,
      [SNAPSHOT_LABELS.sourceImage]: sourceImage,
      [SNAPSHOT_LABELS.sourceDigest]: sourceDigest,
      [SNAPSHOT_LABELS.created]: created,
      [SNAPSHOT_LABELS.devices]: info.Config.Labels?.[LABELS.devices] ?? '[]',
      [SNAPSHOT_LABELS.fingerprint]: digestOf(changes, info.SizeRw ?? 0),
    };
    try {
      await engine.commitContainer(found.Id, {
        repo: ref.familiarRepository,
        tag: ref.tag,
        comment: args.message ?? `snapshot of ${args.container} on ${cfg.robot.id}`,
        author: args.author ?? `robot-agent@${cfg.robot.id}`,
        pause: args.pause ?? cfg.snapshots.pause,
        changes: labelChanges(labels),
      });
    } catch (err) {
      throw new AgentError('commit_failed', `docker commit of ${args.container} failed: ${(err as Error).message}`);
    }
    const image = await this.committed(ref.familiar, args.container);
    await this.recordOrRemove(ref.familiar, image.Id, args.container);
    try {
      return await this.ship(args, ctx, { ref, image, info, sourceImage, created });
    } catch (err) {
      // The commit stays (the work is in it): the answer names it, so a retry need not commit again.
      const failure = toErrorInfo(err, 'snapshot_failed');
      const kept = `the snapshot ${ref.familiar} (${image.Id.slice(7, 19)}) was committed and is kept on this robot`;
      throw new AgentError(failure.code, `${failure.message}; ${kept}`, {
        cause: err,
        details: { image: ref.familiar, imageId: image.Id },
      });
    }
  }

  /**
   * What restore trusts is the image id this robot committed (a label anyone can set; this record
   * only we write). A commit that cannot be recorded (state.dir full) is not trusted by anything,
   * so it is removed and the answer says so: nothing half-done is left behind.
   */
  private async recordOrRemove(tag: string, imageId: string, container: string): Promise<void> {
    this.d.records.markCommitted(imageId);
    try {
      await this.d.records.save();
    } catch (err) {
      this.d.records.forget(imageId);
      const removed = await this.d.engine.removeImage(tag).then(
        () => true,
        () => false,
      );
      const info = toErrorInfo(err);
      const left = removed
        ? 'the commit was removed'
        : `the commit ${tag} (${imageId.slice(7, 19)}) could not be removed and is left`;
      const full = info.code === 'enospc';
      const why = full
        ? `the robot's state directory is full`
        : `the agent could not write its snapshot records (${info.message})`;
      const message = `snapshot of ${container} not kept: ${why}; ${left}`;
      throw new AgentError(full ? 'disk_full' : 'state_write_failed', message, {
        cause: err,
        details: { image: tag, imageId, removed },
      });
    }
  }

  private async ship(
    args: SnapshotArgs,
    ctx: { requestId?: string; progress?: (f: Record<string, unknown>) => void },
    c: {
      ref: ImageReference;
      image: { Id: string; Size?: number; RootFS?: { Layers?: string[] } };
      info: { Mounts?: Array<{ Type?: string; Source?: string; Destination: string }> };
      sourceImage: string;
      created: string;
    },
  ): Promise<SnapshotResult> {
    const cfg = this.d.config;
    const engine = this.d.engine;
    const { ref, image, info, sourceImage, created } = c;
    const history = await engine.imageHistory(ref.familiar);
    const layers = image.RootFS?.Layers?.length ?? 0;
    const result: SnapshotResult = {
      image: ref.familiar,
      id: image.Id,
      container: args.container,
      sourceImage,
      created,
      size: image.Size ?? 0,
      layerBytes: history[0]?.Size ?? 0,
      layers,
      ...(layers > LAYER_WARNING
        ? {
            warning: `${ref.familiar} has ${layers} layers; Docker refuses about 127. Snapshot from the original image's lineage (restore the base image first) rather than on top of snapshots.`,
          }
        : {}),
      excluded: (info.Mounts ?? []).map((m) => ({
        type: m.Type ?? '',
        source: m.Source ?? '',
        destination: m.Destination,
      })),
      removed: [],
    };
    this.d.logger.info('snapshot taken', {
      container: args.container,
      image: ref.familiar,
      layers,
      layerBytes: result.layerBytes,
    });
    if (args.push) {
      const pushed: PushResult = await pushImage({
        engine,
        registry: this.d.registry,
        config: cfg.images,
        ref,
        progress: (f) => ctx.progress?.(f),
      });
      result.pushed = pushed;
      this.d.records.markPushed(image.Id, ref.familiar);
      if (this.d.signKey) pushed.signature = await this.sign(ref, pushed.digest);
    }
    if (args.save !== undefined) {
      result.savedTo = await this.files.save(ref, args.save);
      this.d.records.markSaved(image.Id, result.savedTo.file);
    }
    result.removed = await this.applyRetention(args.container);
    await this.d.records.save();
    await this.refreshState();
    return result;
  }

  /**
   * Keeps the work in a container an update or a restore is about to replace, as a snapshot of
   * this robot (labels, records, listed in state.snapshots) in snapshots.repository, never the
   * vendor's repository. Nothing when the container has no changes (other than its mount
   * points); an identical snapshot already saved (same source image, same changes) is reused, so
   * a retried update never commits the same work twice.
   */
  async saveWork(name: string, containerId: string, why: string): Promise<SavedWork | undefined> {
    const cfg = this.d.config;
    const engine = this.d.engine;
    const info = await this.inspectWithSize(containerId);
    const changes = await engine.containerChanges(containerId);
    if (changes.length === 0) return undefined;
    const listed = changes.slice(0, 10).map((c) => `${c.Kind}${c.Path}`);
    this.d.logger.debug('saving the work in a changed container', { name, changes: listed });
    const fingerprint = digestOf(changes, info.SizeRw ?? 0);
    const sourceImage = info.Config.Labels?.[LABELS.image] ?? info.Image;
    // Identical only by content (an edit that keeps a file's size must not be lost to a reuse).
    const work = await workDigest(engine, containerId, changes, info.SizeRw ?? 0);
    for (const known of work ? await this.snapshotsOf(name) : []) {
      const labels = known.Labels ?? {};
      const same =
        labels[SNAPSHOT_LABELS.work] === work &&
        labels[SNAPSHOT_LABELS.sourceImage] === sourceImage &&
        known.ParentId === info.Image;
      if (!same || !this.d.records.committedHere(known.Id)) continue;
      const tag = (known.RepoTags ?? []).find((t) => t !== '<none>:<none>');
      if (!tag) continue;
      this.d.bus.emit('container.committed', { name, image: tag, changes: changes.length, reused: true });
      return { image: tag, id: known.Id, reused: true };
    }
    const ref = parseImageReference(`${cfg.snapshots.repository}:${name}-${stampNow()}`);
    const labels: Record<string, string> = {
      [SNAPSHOT_LABELS.robot]: cfg.robot.id,
      [SNAPSHOT_LABELS.container]: name,
      [SNAPSHOT_LABELS.sourceImage]: sourceImage,
      [SNAPSHOT_LABELS.sourceDigest]: '',
      [SNAPSHOT_LABELS.created]: new Date().toISOString(),
      [SNAPSHOT_LABELS.devices]: info.Config.Labels?.[LABELS.devices] ?? '[]',
      [SNAPSHOT_LABELS.fingerprint]: fingerprint,
      ...(work ? { [SNAPSHOT_LABELS.work]: work } : {}),
    };
    try {
      // Not paused: the container is about to be stopped, and its robot should not freeze first.
      const comment = `robot-agent: the work in ${name} (from ${sourceImage}) before ${why}`;
      const author = `robot-agent@${cfg.robot.id}`;
      const changes = labelChanges(labels);
      await engine.commitContainer(containerId, {
        repo: ref.familiarRepository,
        tag: ref.tag,
        comment,
        author,
        pause: false,
        changes,
      });
    } catch (err) {
      const message = `could not save the work in ${name} before ${why}, so nothing was changed: ${engineMessage(err)}`;
      throw new AgentError('commit_failed', message);
    }
    const id = (await this.committed(ref.familiar, name)).Id;
    await this.recordOrRemove(ref.familiar, id, name);
    this.d.bus.emit('container.committed', { name, image: ref.familiar, changes: changes.length });
    await this.refreshState().catch(() => undefined);
    return { image: ref.familiar, id, reused: false };
  }

  /**
   * The robot vouches for what it pushed: the digest the push reported, signed with its own key
   * beside the image (cosign's layout). A failure fails the snapshot (sign_failed): the image is
   * pushed but robots that verify would refuse it, which the operator must hear.
   */
  private async sign(ref: ImageReference, digest: string | null): Promise<string> {
    try {
      if (!digest) throw new Error('the push did not report the digest it made');
      return (await signImageDigest({ registry: this.d.registry, ref, digest, key: this.d.signKey! })).signature;
    } catch (err) {
      const message =
        `${ref.familiar} was pushed but could not be signed with snapshots.signKeyFile: ${toErrorInfo(err).message}; ` +
        'robots that verify this repository will refuse it until it is signed (robot-fleet sign)';
      throw new AgentError('sign_failed', message, { cause: err });
    }
  }

  /**
   * Whether restore may run an image images.allow does not allow: only a snapshot this robot
   * committed, in snapshots.repository, present here with the very image id recorded when it was
   * committed (so nothing is pulled, and nothing pushed to that repository by others can run).
   */
  async isOwnSnapshot(ref: ImageReference): Promise<boolean> {
    const repository = parseImageReference(`${this.d.config.snapshots.repository}:x`).familiarRepository;
    if (ref.familiarRepository !== repository || ref.digest) return false;
    const image = await this.d.engine.inspectImage(ref.familiar).catch(() => undefined);
    if (!image) return false;
    const labelled = image.Config?.Labels?.[SNAPSHOT_LABELS.robot] === this.d.config.robot.id;
    return this.d.records.committedHere(image.Id) && labelled;
  }

  /** Keeps the newest snapshots.keep of a container; never one in use or protected. */
  async applyRetention(container: string): Promise<string[]> {
    const engine = this.d.engine;
    const inUse = new Set((await engine.listContainers()).map((c) => c.ImageID));
    const keep = new Set(this.d.protectedImages());
    const removed: string[] = [];
    for (const old of (await this.snapshotsOf(container)).slice(this.d.config.snapshots.keep)) {
      if (inUse.has(old.Id) || keep.has(old.Id)) continue;
      for (const tag of (old.RepoTags ?? []).filter((t) => t !== '<none>:<none>')) {
        try {
          await engine.removeImage(tag);
          removed.push(tag);
        } catch (err) {
          this.d.logger.warn('could not remove an old snapshot', { image: tag, error: toErrorInfo(err) });
        }
      }
    }
    for (const tag of removed) this.d.bus.emit('snapshot.removed', { container, image: tag });
    return removed;
  }

  /** This robot's snapshots of a container on the engine, newest first. */
  private async snapshotsOf(container: string): Promise<ImageListItem[]> {
    const list = await this.d.engine.listImages({
      label: [`${SNAPSHOT_LABELS.container}=${container}`, `${SNAPSHOT_LABELS.robot}=${this.d.config.robot.id}`],
    });
    return list.sort((a, b) =>
      (b.Labels?.[SNAPSHOT_LABELS.created] ?? '').localeCompare(a.Labels?.[SNAPSHOT_LABELS.created] ?? ''),
    );
  }

  /** Rebuilds state.snapshots (the newest 20) from the engine's labels and sizes and the records. */
  async refreshState(): Promise<SnapshotSummary[]> {
    const engine = this.d.engine;
    const list = await engine.listImages({ label: [`${SNAPSHOT_LABELS.robot}=${this.d.config.robot.id}`] });
    list.sort((a, b) =>
      (b.Labels?.[SNAPSHOT_LABELS.created] ?? '').localeCompare(a.Labels?.[SNAPSHOT_LABELS.created] ?? ''),
    );
    const summaries: SnapshotSummary[] = [];
    for (const image of list.slice(0, 20)) {
      const history = await engine.imageHistory(image.Id).catch(() => []);
      summaries.push({
        image: (image.RepoTags ?? []).find((t) => t !== '<none>:<none>') ?? image.Id,
        id: image.Id,
        container: image.Labels?.[SNAPSHOT_LABELS.container] ?? '',
        created: image.Labels?.[SNAPSHOT_LABELS.created] ?? new Date(image.Created * 1000).toISOString(),
        size: image.Size,
        layerBytes: history[0]?.Size ?? 0,
        pushed: this.d.records.pushedAs(image.Id),
        savedTo: this.d.records.savedTo(image.Id),
      });
    }
    await this.d.records.save(new Set(list.map((i) => i.Id))).catch(() => undefined);
    this.d.store.update('snapshots', () => summaries);
    return summaries;
  }

  private async find(container: string): Promise<ContainerSummary> {
    const found = await findManagedContainer(this.d.engine, container);
    if (!found) throw new AgentError('not_found', `container ${container} does not exist on this robot yet`);
    return found;
  }

  /** The container with SizeRw, its writable layer's bytes; gone meanwhile is not_found. */
  private async inspectWithSize(id: string): Promise<ContainerDetails> {
    const info = await this.d.engine.inspectContainer(id, { size: true });
    if (!info) throw new AgentError('not_found', `container ${id.slice(0, 12)} is gone from this robot`);
    return info;
  }

  /** The image a commit has just made. */
  private async committed(
    tag: string,
    container: string,
  ): Promise<{ Id: string; Size?: number; RootFS?: { Layers?: string[] } }> {
    const image = await this.d.engine.inspectImage(tag);
    if (!image) throw new AgentError('commit_failed', `docker commit of ${container} left no image ${tag}`);
    return image;
  }
}

function labelChanges(labels: Record<string, string>): string {
  return `LABEL ${Object.entries(labels)
    .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
    .join(' ')}`;
}

/** 20261124T013000123Z: sortable, to the millisecond, valid in a tag. */
function stampNow(): string {
  return new Date().toISOString().replace(/[-:.]/g, '');
}

function defaultTag(robot: string): string {
  const now = new Date().toISOString();
  return `${robot}-${now.slice(0, 10).replace(/-/g, '')}-${now.slice(11, 19).replace(/:/g, '')}`;
}

function digestOf(changes: Array<{ Path: string; Kind: number }>, sizeRw: number): string {
  const sorted = [...changes].sort((a, b) => (a.Path < b.Path ? -1 : 1)).map((c) => `${c.Kind}${c.Path}`);
  return createHash('sha256')
    .update(`${sizeRw}\n${sorted.join('\n')}`)
    .digest('hex')
    .slice(0, 16);
}

async function imageExists(engine: Engine, ref: string): Promise<boolean> {
  try {
    return (await engine.inspectImage(ref)) !== undefined;
  } catch {
    return false;
  }
}
