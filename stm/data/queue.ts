/**
 * Queue: a FIFO queue of numbers, kcas_data's `Queue`. Built only on the
 * public Loc/Xt API, in one of two layouts:
 *
 * - **unbounded** (the default): three `"ref"` Locs, `back`, `middle` and
 *   `front`, each pointing to an immutable list of 16-byte nodes
 *   `[f64 value, i32 next, i32 count]` (pattern (b): filled before the
 *   commit that publishes them, never changed, retired through epochs).
 *   `add` conses onto `back` (newest first). `take` pops `front` (oldest
 *   first); when `front` is empty it first moves `back` to an empty
 *   `middle` in a quick separate commit (when neither is in the caller's
 *   log yet), so that the slow reversal into `front` races only other
 *   takers, not adders. That helping commit does not change the queue's
 *   contents. Nodes made inside an attempt that does not commit are freed
 *   again (see `_alloc.ts`).
 * - **bounded** (`capacity` given): a ring of Locs with head and tail
 *   counters; adding to a full queue waits, like taking from an empty one.
 *
 * @module
 */

import { type SharedHandle, type SharedHeap, tagOf } from "../../memory/mod.ts";
import { type CommitOptions, Loc, Retry, Xt } from "../mod.ts";
import { checkCapacity, checkNumber, placeRecord, readRecord } from "./_record.ts";
import {
  commitTracked,
  commitTrackedAsync,
  cons,
  nodeCount,
  nodeNext,
  nodeValue,
  retireAfter,
} from "./_alloc.ts";

const KIND = "sabre.stm.Queue";
const TAG = tagOf("SQUE");
const HEAD = 0;
const TAIL = 1;
const SLOTS = 2;
const BACK = 0;
const MIDDLE = 1;
const FRONT = 2;

/**
 * Handle of a {@linkcode Queue}.
 *
 * @example
 * ```ts
 * import { Queue, type QueueHandle } from "@sabre/sabre/stm/data";
 * import { SharedHeap } from "@sabre/sabre";
 * const handle: QueueHandle = Queue.create(SharedHeap.create(), { capacity: 4 }).handle;
 * console.assert(Queue.attach(handle).capacity === 4);
 * ```
 */
export type QueueHandle = SharedHandle<"sabre.stm.Queue">;

/**
 * A FIFO queue of numbers in shared memory, unbounded unless created with
 * a `capacity`. Blocking forms wait
 * with `Atomics.wait` (`…Async` with `waitAsync`) and take
 * `{ timeoutMs }`; `try…` forms never wait; `xt…` forms compose into
 * transactions.
 *
 * @example
 * ```ts
 * import { Queue } from "@sabre/sabre/stm/data";
 * import { Xt } from "@sabre/sabre";
 * import { SharedHeap } from "@sabre/sabre";
 *
 * const heap = SharedHeap.create();
 * const a = Queue.create(heap, { capacity: 2 });
 * const b = Queue.create(heap, { capacity: 2 });
 * a.add(1);
 * a.add(2);
 * console.assert(!a.tryAdd(3) && a.length === 2);
 * // Move the head of a to b, atomically.
 * Xt.commit((xt) => b.xtAdd(xt, a.xtTake(xt)));
 * console.assert(a.take() === 2 && b.tryTake() === 1 && b.tryTake() === undefined);
 * ```
 */
export class Queue {
  readonly #locs: Loc[];
  readonly #capacity: number;
  readonly #offset: number;
  readonly #heap: SharedHeap;
  readonly #bounded: boolean;

  private constructor(locs: Loc[], offset: number, bounded: boolean) {
    this.#locs = locs;
    this.#capacity = bounded ? locs.length - SLOTS : Infinity;
    this.#offset = offset;
    this.#heap = locs[0].heap;
    this.#bounded = bounded;
  }

  /**
   * Creates an empty queue in `heap`: unbounded by default, or holding up
   * to `options.capacity` numbers (an integer from 1 to 65536; `Infinity`
   * means unbounded).
   */
  static create(heap: SharedHeap, options?: { capacity?: number }): Queue {
    const wanted = options?.capacity ?? Infinity;
    if (wanted === Infinity) {
      const locs = Loc.makeArray(heap, 3, 0, { kind: "ref" });
      return new Queue(locs, placeRecord(heap, TAG, locs, 0), false);
    }
    const capacity = checkCapacity(wanted, "Queue", 65536);
    const locs = Loc.makeArray(heap, SLOTS + capacity, 0);
    return new Queue(locs, placeRecord(heap, TAG, locs, capacity), true);
  }

  /** Rebuilds a queue from its handle; `HandleError` when it names none. */
  static attach(handle: QueueHandle): Queue {
    const { locs, offset, extra } = readRecord(handle, KIND, TAG, "Queue");
    return new Queue(locs, offset, extra !== 0);
  }

  /** The handle to send to other workers. */
  get handle(): QueueHandle {
    return this.#locs[0].heap.handleOf(KIND, 1, this.#offset);
  }

  /** How many numbers it can hold (`Infinity` when unbounded). */
  get capacity(): number {
    return this.#capacity;
  }

  /** How many numbers it holds now. */
  get length(): number {
    return Xt.commit((xt) => this.xtLength(xt));
  }

  /** In a transaction: how many numbers it holds. */
  xtLength(xt: Xt): number {
    if (!this.#bounded) {
      const heap = this.#heap;
      const l = this.#locs;
      return nodeCount(heap, xt.get(l[FRONT])) + nodeCount(heap, xt.get(l[MIDDLE])) +
        nodeCount(heap, xt.get(l[BACK]));
    }
    return xt.get(this.#locs[TAIL]) - xt.get(this.#locs[HEAD]);
  }

  /** In a transaction: adds `value` at the back if there is room; returns whether it did. */
  xtTryAdd(xt: Xt, value: number): boolean {
    checkNumber(value, "add to Queue");
    if (!this.#bounded) {
      const back = this.#locs[BACK];
      xt.set(back, cons(this.#heap, xt, value, xt.get(back)));
      return true;
    }
    const tail = xt.get(this.#locs[TAIL]);
    if (tail - xt.get(this.#locs[HEAD]) >= this.#capacity) return false;
    xt.set(this.#locs[SLOTS + (tail % this.#capacity)], value);
    xt.set(this.#locs[TAIL], tail + 1);
    return true;
  }

  /** In a transaction: adds `value` at the back, retrying while full. */
  xtAdd(xt: Xt, value: number): void {
    Retry.unless(this.xtTryAdd(xt, value));
  }

  /** In a transaction: takes the front number, or returns undefined when empty. */
  xtTryTake(xt: Xt): number | undefined {
    if (!this.#bounded) return this.#takeList(xt);
    const head = xt.get(this.#locs[HEAD]);
    if (head === xt.get(this.#locs[TAIL])) return undefined;
    xt.set(this.#locs[HEAD], head + 1);
    return xt.get(this.#locs[SLOTS + (head % this.#capacity)]);
  }

  /** In a transaction: takes the front number, retrying while empty. */
  xtTake(xt: Xt): number {
    const value = this.xtTryTake(xt);
    return value ?? Retry.later();
  }

  /** In a transaction: the front number without taking it, or undefined. */
  xtTryPeek(xt: Xt): number | undefined {
    if (!this.#bounded) {
      const heap = this.#heap;
      const l = this.#locs;
      const f = xt.get(l[FRONT]);
      if (f !== 0) return nodeValue(heap, f);
      let p = xt.get(l[MIDDLE]);
      if (p === 0) p = xt.get(l[BACK]);
      if (p === 0) return undefined;
      // The oldest is the last node. Immutable nodes: no log accesses needed.
      for (let next = nodeNext(heap, p); next !== 0; next = nodeNext(heap, p)) p = next;
      return nodeValue(heap, p);
    }
    const head = xt.get(this.#locs[HEAD]);
    if (head === xt.get(this.#locs[TAIL])) return undefined;
    return xt.get(this.#locs[SLOTS + (head % this.#capacity)]);
  }

  /** In a transaction: the front number without taking it, retrying while empty. */
  xtPeek(xt: Xt): number {
    return this.xtTryPeek(xt) ?? Retry.later();
  }

  /**
   * In a transaction: removes every number. The memory of an unbounded
   * queue's nodes goes back to the heap through epochs once it commits.
   */
  xtClear(xt: Xt): void {
    if (this.#bounded) {
      xt.set(this.#locs[HEAD], xt.get(this.#locs[TAIL]));
      return;
    }
    const heap = this.#heap;
    for (const which of [FRONT, MIDDLE, BACK]) {
      const list = xt.exchange(this.#locs[which], 0);
      for (let p = list; p !== 0; p = nodeNext(heap, p)) retireAfter(heap, xt, p);
    }
  }

  /** Adds `value` at the back, waiting while full. */
  add(value: number, options?: CommitOptions): void {
    commitTracked(this.#heap, (xt) => this.xtAdd(xt, value), options);
  }

  /** Adds `value` at the back, waiting (asynchronously) while full. */
  addAsync(value: number, options?: CommitOptions): Promise<void> {
    return commitTrackedAsync(this.#heap, (xt) => this.xtAdd(xt, value), options);
  }

  /** Adds `value` if there is room; returns whether it did. */
  tryAdd(value: number): boolean {
    return commitTracked(this.#heap, (xt) => this.xtTryAdd(xt, value));
  }

  /** Takes the front number, waiting while empty. */
  take(options?: CommitOptions): number {
    return commitTracked(this.#heap, (xt) => this.xtTake(xt), options);
  }

  /** Takes the front number, waiting (asynchronously) while empty. */
  takeAsync(options?: CommitOptions): Promise<number> {
    return commitTrackedAsync(this.#heap, (xt) => this.xtTake(xt), options);
  }

  /** Takes the front number, or returns undefined when empty. */
  tryTake(): number | undefined {
    return commitTracked(this.#heap, (xt) => this.xtTryTake(xt));
  }

  /** Unbounded take: pop `front`, or refill it from `middle` or `back`. */
  #takeList(xt: Xt): number | undefined {
    const heap = this.#heap;
    const l = this.#locs;
    const f = xt.get(l[FRONT]);
    if (f !== 0) {
      xt.set(l[FRONT], nodeNext(heap, f));
      retireAfter(heap, xt, f);
      return nodeValue(heap, f);
    }
    // A helping step, committed on its own: only when it cannot poison our
    // log (neither location read yet), as in kcas's three-stack queue.
    if (!xt.isInLog(l[MIDDLE]) && !xt.isInLog(l[BACK])) this.#backToMiddle();
    let list = xt.exchange(l[MIDDLE], 0);
    // Another worker may have emptied middle, or added to back since.
    if (list === 0) list = xt.exchange(l[BACK], 0);
    if (list === 0) return undefined;
    // list is newest first: its last node is the one to take; the rest
    // becomes front, oldest first.
    const nodes: number[] = [];
    for (let p = list; p !== 0; p = nodeNext(heap, p)) nodes.push(p);
    let front = 0;
    for (let i = 0; i < nodes.length - 1; i++) {
      front = cons(heap, xt, nodeValue(heap, nodes[i]), front);
    }
    if (front !== 0) xt.set(l[FRONT], front);
    for (const p of nodes) retireAfter(heap, xt, p);
    return nodeValue(heap, nodes[nodes.length - 1]);
  }

  #backToMiddle(): void {
    const l = this.#locs;
    Xt.commit((xt) => {
      const back = xt.get(l[BACK]);
      if (back === 0 || xt.get(l[MIDDLE]) !== 0) return;
      xt.set(l[MIDDLE], back);
      xt.set(l[BACK], 0);
    });
  }

  /** The front number without taking it, or undefined when empty. */
  tryPeek(): number | undefined {
    return Xt.commit((xt) => this.xtTryPeek(xt));
  }

  /** The front number without taking it, waiting while empty. */
  peek(options?: CommitOptions): number {
    return Xt.commit((xt) => this.xtPeek(xt), options);
  }

  /** The front number without taking it, waiting (asynchronously) while empty. */
  peekAsync(options?: CommitOptions): Promise<number> {
    return Xt.commitAsync((xt) => this.xtPeek(xt), options);
  }

  /** Removes every number, at one instant. */
  clear(): void {
    Xt.commit((xt) => this.xtClear(xt));
  }
}
