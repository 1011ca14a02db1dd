/**
 * Queue: a bounded FIFO queue of numbers, a ring of Locs with head and tail
 * counters; kcas_data's `Queue` with a capacity (adding to a full queue
 * waits, like taking from an empty one). Built only on the public Loc/Xt
 * API.
 *
 * @module
 */

import { type SharedHandle, type SharedHeap, tagOf } from "../../memory/mod.ts";
import { type CommitOptions, Loc, Retry, Xt } from "../mod.ts";
import { checkCapacity, checkNumber, placeRecord, readRecord } from "./_record.ts";

const KIND = "sabre.stm.Queue";
const TAG = tagOf("SQUE");
const HEAD = 0;
const TAIL = 1;
const SLOTS = 2;

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
 * A bounded FIFO queue of numbers in shared memory. Blocking forms wait
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

  private constructor(locs: Loc[], offset: number) {
    this.#locs = locs;
    this.#capacity = locs.length - SLOTS;
    this.#offset = offset;
  }

  /** Creates an empty queue in `heap` holding up to `options.capacity` numbers (default 64, at most 65536). */
  static create(heap: SharedHeap, options?: { capacity?: number }): Queue {
    const capacity = checkCapacity(options?.capacity ?? 64, "Queue", 65536);
    const locs = Loc.makeArray(heap, SLOTS + capacity, 0);
    return new Queue(locs, placeRecord(heap, TAG, locs, capacity));
  }

  /** Rebuilds a queue from its handle; `HandleError` when it names none. */
  static attach(handle: QueueHandle): Queue {
    const { locs, offset } = readRecord(handle, KIND, TAG, "Queue");
    return new Queue(locs, offset);
  }

  /** The handle to send to other workers. */
  get handle(): QueueHandle {
    return { kind: KIND, version: 1, sab: this.#locs[0].heap.sab, offset: this.#offset };
  }

  /** How many numbers it can hold. */
  get capacity(): number {
    return this.#capacity;
  }

  /** How many numbers it holds now. */
  get length(): number {
    return Xt.commit((xt) => this.xtLength(xt));
  }

  /** In a transaction: how many numbers it holds. */
  xtLength(xt: Xt): number {
    return xt.get(this.#locs[TAIL]) - xt.get(this.#locs[HEAD]);
  }

  /** In a transaction: adds `value` at the back if there is room; returns whether it did. */
  xtTryAdd(xt: Xt, value: number): boolean {
    checkNumber(value, "add to Queue");
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
    const head = xt.get(this.#locs[HEAD]);
    if (head === xt.get(this.#locs[TAIL])) return undefined;
    return xt.get(this.#locs[SLOTS + (head % this.#capacity)]);
  }

  /** Adds `value` at the back, waiting while full. */
  add(value: number, options?: CommitOptions): void {
    Xt.commit((xt) => this.xtAdd(xt, value), options);
  }

  /** Adds `value` at the back, waiting (asynchronously) while full. */
  addAsync(value: number, options?: CommitOptions): Promise<void> {
    return Xt.commitAsync((xt) => this.xtAdd(xt, value), options);
  }

  /** Adds `value` if there is room; returns whether it did. */
  tryAdd(value: number): boolean {
    return Xt.commit((xt) => this.xtTryAdd(xt, value));
  }

  /** Takes the front number, waiting while empty. */
  take(options?: CommitOptions): number {
    return Xt.commit((xt) => this.xtTake(xt), options);
  }

  /** Takes the front number, waiting (asynchronously) while empty. */
  takeAsync(options?: CommitOptions): Promise<number> {
    return Xt.commitAsync((xt) => this.xtTake(xt), options);
  }

  /** Takes the front number, or returns undefined when empty. */
  tryTake(): number | undefined {
    return Xt.commit((xt) => this.xtTryTake(xt));
  }

  /** The front number without taking it, or undefined when empty. */
  tryPeek(): number | undefined {
    return Xt.commit((xt) => this.xtTryPeek(xt));
  }
}
