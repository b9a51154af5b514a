/**
 * A FIFO with a hard cap: when full, the oldest item goes. Months offline on flaky Wi-Fi must
 * cost a fixed amount of memory, and the newest events are the ones a dashboard wants.
 */
export class BoundedQueue<T> {
  private items: T[] = [];
  private droppedCount = 0;

  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError('capacity must be a positive integer');
  }

  push(item: T): void {
    this.items.push(item);
    if (this.items.length > this.capacity) {
      this.items.shift();
      this.droppedCount += 1;
    }
  }

  /** Puts items back at the front (a flush that failed half-way), still within the cap. */
  unshift(items: readonly T[]): void {
    this.items = [...items, ...this.items];
    while (this.items.length > this.capacity) {
      this.items.shift();
      this.droppedCount += 1;
    }
  }

  drain(): T[] {
    const out = this.items;
    this.items = [];
    return out;
  }

  get length(): number {
    return this.items.length;
  }

  get dropped(): number {
    return this.droppedCount;
  }
}
