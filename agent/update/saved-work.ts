/**
 * Work saved before a container was replaced: the snapshot that holds it. The update flow asks for
 * it through its `work` dependency (updater.ts); snapshot/snapshotter.ts is what answers.
 */
export interface SavedWork {
  image: string;
  id: string;
  /** An identical snapshot saved before (a retried update) was used instead of a new commit. */
  reused: boolean;
}
