import { EventEmitter } from 'node:events';
import type { AgentState, StateSection } from './types.js';

/**
 * The one store of observed state. Modules replace their own section; listeners learn that
 * something changed and read the whole state when they publish, so a burst of updates costs one
 * publish, not one per update.
 */
export class StateStore {
  private state: AgentState;
  private readonly changes = new EventEmitter();

  constructor(initial: AgentState) {
    this.state = initial;
  }

  get(): Readonly<AgentState> {
    return this.state;
  }

  /** Replaces a section with what fn returns from the current one; no event when nothing changed. */
  update<K extends StateSection>(section: K, fn: (current: AgentState[K]) => AgentState[K]): void {
    const next = fn(this.state[section]);
    if (next === this.state[section] || JSON.stringify(next) === JSON.stringify(this.state[section])) return;
    this.state = { ...this.state, [section]: next };
    this.changes.emit('change', section);
  }

  onChange(listener: (section: StateSection) => void): () => void {
    this.changes.on('change', listener);
    return () => this.changes.off('change', listener);
  }
}
