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

import {
  checkHeap,
  DestroyedError,
  type SharedHandle,
  type SharedHeap,
  tagOf,
} from "../../memory/mod.ts";
import { type CommitOptions, Loc, Retry, Xt } from "../mod.ts";
import { checkCapacity, checkNumber, placeRecord, readRecord, retireRecord } from "./_record.ts";
import {
  allocNodesIn,
  commitTracked,
  commitTrackedAsync,
  cons,
  fillNode,
  freesMemory,
  nodeCount,
  nodeNext,
  nodeValue,
  retireAfter,
  timingOutAs,
  timingOutAsAsync,
} from "./_alloc.ts";
import { checkOptionFields } from "../../memory/_options.ts";

const KIND = "sabre.stm.Queue";
const TAG = tagOf("SQUE");
const HEAD = 0;
const TAIL = 1;
const SLOTS = 2;
const BACK = 0;
const MIDDLE = 1;
const FRONT = 2;
/** Nodes at the old end of `middle` already taken (see the module doc). */
const CUT = 3;
/** Handle and record version: 2 added CUT. */
const VERSION = 2;

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
  /** Set by destroy(): every later call on this object throws. */
  #destroyed = false;

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
   *
   * @example
   * ```ts
   * import { Queue } from "@sabre/sabre/stm/data";
   * import { SharedHeap } from "@sabre/sabre";
   * const heap = SharedHeap.create();
   * console.assert(Queue.create(heap).capacity === Infinity);
   * console.assert(Queue.create(heap, { capacity: 3 }).capacity === 3);
   * ```
   */
  static create(heap: SharedHeap, options?: { capacity?: number }): Queue {
    checkHeap(heap, "create Queue");
    checkOptionFields(options, ["capacity"], "create Queue");
    const wanted = options?.capacity ?? Infinity;
    if (wanted === Infinity) {
      const locs = Loc.makeArray(heap, 4, 0, { kind: "ref" });
      return new Queue(locs, placeRecord(heap, TAG, locs, 0), false);
    }
    const capacity = checkCapacity(wanted, "Queue", 65536);
    const locs = Loc.makeArray(heap, SLOTS + capacity, 0);
    return new Queue(locs, placeRecord(heap, TAG, locs, capacity), true);
  }

  /**
   * Rebuilds a queue from its handle; `HandleError` when it names none.
   *
   * @example
   * ```ts
   * import { Queue } from "@sabre/sabre/stm/data";
   * import { SharedHeap } from "@sabre/sabre";
   * const queue = Queue.create(SharedHeap.create());
   * queue.add(5);
   * // In another worker: Queue.attach(handle), the handle sent with postMessage.
   * console.assert(Queue.attach(queue.handle).take() === 5 && queue.length === 0);
   * ```
   */
  static attach(handle: QueueHandle): Queue {
    const { locs, offset, extra } = readRecord(handle, KIND, TAG, "Queue", VERSION);
    return new Queue(locs, offset, extra !== 0);
  }

  /**
   * The handle to send to other workers.
   *
   * @example
   * ```ts
   * import { Queue } from "@sabre/sabre/stm/data";
   * import { SharedHeap } from "@sabre/sabre";
   * const queue = Queue.create(SharedHeap.create());
   * // worker.postMessage(queue.handle)
   * console.assert(queue.handle.kind === "sabre.stm.Queue");
   * ```
   */
  get handle(): QueueHandle {
    if (this.#destroyed) throw new DestroyedError("Queue");
    return this.#locs[0].heap.handleOf(KIND, VERSION, this.#offset);
  }

  /**
   * How many numbers it can hold (`Infinity` when unbounded).
   *
   * @example
   * ```ts
   * import { Queue } from "@sabre/sabre/stm/data";
   * import { SharedHeap } from "@sabre/sabre";
   * const queue = Queue.create(SharedHeap.create(), { capacity: 2 });
   * console.assert(queue.capacity === 2 && queue.tryAdd(1) && queue.tryAdd(2) && !queue.tryAdd(3));
   * ```
   */
  get capacity(): number {
    if (this.#destroyed) throw new DestroyedError("Queue");
    return this.#capacity;
  }

  /**
   * How many numbers it holds now.
   *
   * @example
   * ```ts
   * import { Queue } from "@sabre/sabre/stm/data";
   * import { SharedHeap } from "@sabre/sabre";
   * const queue = Queue.create(SharedHeap.create());
   * queue.add(1);
   * queue.add(2);
   * console.assert(queue.length === 2);
   * ```
   */
  get length(): number {
    return Xt.commit((xt) => this.xtLength(xt));
  }

  /**
   * In a transaction: how many numbers it holds.
   *
   * @example
   * ```ts
   * import { Queue } from "@sabre/sabre/stm/data";
   * import { SharedHeap, Xt } from "@sabre/sabre";
   * const queue = Queue.create(SharedHeap.create());
   * const length = Xt.commit((xt) => {
   *   queue.xtAdd(xt, 1);
   *   return queue.xtLength(xt); // sees the add of this transaction
   * });
   * console.assert(length === 1 && queue.length === 1);
   * ```
   */
  xtLength(xt: Xt): number {
    if (this.#destroyed) throw new DestroyedError("Queue");
    if (!this.#bounded) {
      const heap = this.#heap;
      const l = this.#locs;
      const middle = xt.get(l[MIDDLE]);
      const cut = middle === 0 ? 0 : xt.get(l[CUT]);
      return nodeCount(heap, xt.get(l[FRONT])) + nodeCount(heap, middle) - cut +
        nodeCount(heap, xt.get(l[BACK]));
    }
    return xt.get(this.#locs[TAIL]) - xt.get(this.#locs[HEAD]);
  }

  /**
   * In a transaction: adds `value` at the back if there is room; returns whether it did.
   *
   * @example
   * ```ts
   * import { Queue } from "@sabre/sabre/stm/data";
   * import { SharedHeap, Xt } from "@sabre/sabre";
   * const queue = Queue.create(SharedHeap.create(), { capacity: 1 });
   * const added = Xt.commit((xt) => [queue.xtTryAdd(xt, 1), queue.xtTryAdd(xt, 2)]);
   * console.assert(added.join() === "true,false" && queue.length === 1);
   * ```
   */
  xtTryAdd(xt: Xt, value: number): boolean {
    if (this.#destroyed) throw new DestroyedError("Queue");
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

  /**
   * In a transaction: adds `value` at the back, retrying while full.
   *
   * @example
   * ```ts
   * import { Queue } from "@sabre/sabre/stm/data";
   * import { SharedHeap, Xt } from "@sabre/sabre";
   * const heap = SharedHeap.create();
   * const inbox = Queue.create(heap);
   * const outbox = Queue.create(heap, { capacity: 1 });
   * inbox.add(8);
   * // Move a number from inbox to outbox: waits while inbox is empty or outbox full.
   * Xt.commit((xt) => outbox.xtAdd(xt, inbox.xtTake(xt)), { timeoutMs: 100 });
   * console.assert(outbox.tryTake() === 8 && inbox.length === 0);
   * ```
   */
  xtAdd(xt: Xt, value: number): void {
    Retry.unless(this.xtTryAdd(xt, value));
  }

  /**
   * In a transaction: takes the front number, or returns undefined when empty.
   *
   * @example
   * ```ts
   * import { Queue } from "@sabre/sabre/stm/data";
   * import { SharedHeap, Xt } from "@sabre/sabre";
   * const queue = Queue.create(SharedHeap.create());
   * queue.add(1);
   * const taken = Xt.commit((xt) => [queue.xtTryTake(xt), queue.xtTryTake(xt)]);
   * console.assert(taken[0] === 1 && taken[1] === undefined);
   * ```
   */
  xtTryTake(xt: Xt): number | undefined {
    if (this.#destroyed) throw new DestroyedError("Queue");
    if (!this.#bounded) return this.#takeList(xt);
    const head = xt.get(this.#locs[HEAD]);
    if (head === xt.get(this.#locs[TAIL])) return undefined;
    xt.set(this.#locs[HEAD], head + 1);
    return xt.get(this.#locs[SLOTS + (head % this.#capacity)]);
  }

  /**
   * In a transaction: takes the front number, retrying while empty.
   *
   * @example
   * ```ts
   * import { Queue } from "@sabre/sabre/stm/data";
   * import { SharedHeap, Xt } from "@sabre/sabre";
   * const heap = SharedHeap.create();
   * const urgent = Queue.create(heap);
   * const normal = Queue.create(heap);
   * normal.add(2);
   * // Take from urgent, else from normal; waits while both are empty.
   * const next = Xt.commit(
   *   Xt.first([(xt) => urgent.xtTake(xt), (xt) => normal.xtTake(xt)]),
   *   { timeoutMs: 100 },
   * );
   * console.assert(next === 2 && normal.length === 0);
   * ```
   */
  xtTake(xt: Xt): number {
    const value = this.xtTryTake(xt);
    return value ?? Retry.later();
  }

  /**
   * In a transaction: the front number without taking it, or undefined.
   *
   * @example
   * ```ts
   * import { Queue } from "@sabre/sabre/stm/data";
   * import { SharedHeap, Xt } from "@sabre/sabre";
   * const queue = Queue.create(SharedHeap.create());
   * queue.add(1);
   * queue.add(2);
   * console.assert(Xt.commit((xt) => queue.xtTryPeek(xt)) === 1 && queue.length === 2);
   * ```
   */
  xtTryPeek(xt: Xt): number | undefined {
    if (this.#destroyed) throw new DestroyedError("Queue");
    if (!this.#bounded) {
      const heap = this.#heap;
      const l = this.#locs;
      const f = xt.get(l[FRONT]);
      if (f !== 0) return nodeValue(heap, f);
      let p = xt.get(l[MIDDLE]);
      const cut = p === 0 ? 0 : xt.get(l[CUT]);
      if (p === 0) p = xt.get(l[BACK]);
      if (p === 0) return undefined;
      // The oldest is the last live node, whose count is cut + 1. Immutable
      // nodes: no log accesses needed.
      while (nodeCount(heap, p) > cut + 1) p = nodeNext(heap, p);
      return nodeValue(heap, p);
    }
    const head = xt.get(this.#locs[HEAD]);
    if (head === xt.get(this.#locs[TAIL])) return undefined;
    return xt.get(this.#locs[SLOTS + (head % this.#capacity)]);
  }

  /**
   * In a transaction: the front number without taking it, retrying while empty.
   *
   * @example
   * ```ts
   * import { Queue } from "@sabre/sabre/stm/data";
   * import { SharedHeap, Xt } from "@sabre/sabre";
   * const heap = SharedHeap.create();
   * const queue = Queue.create(heap);
   * const copies = Queue.create(heap);
   * queue.add(4);
   * // Copy the front number into copies, leaving it in queue (waits while empty).
   * Xt.commit((xt) => copies.xtAdd(xt, queue.xtPeek(xt)), { timeoutMs: 100 });
   * console.assert(copies.tryTake() === 4 && queue.tryTake() === 4);
   * ```
   */
  xtPeek(xt: Xt): number {
    return this.xtTryPeek(xt) ?? Retry.later();
  }

  /**
   * In a transaction: removes every number. The memory of an unbounded
   * queue's nodes goes back to the heap through epochs once it commits.
   *
   * @example
   * ```ts
   * import { Queue } from "@sabre/sabre/stm/data";
   * import { SharedHeap, Xt } from "@sabre/sabre";
   * const queue = Queue.create(SharedHeap.create());
   * queue.add(1);
   * queue.add(2);
   * // Empty the queue and count what it held, at one instant.
   * const dropped = Xt.commit((xt) => {
   *   const length = queue.xtLength(xt);
   *   queue.xtClear(xt);
   *   return length;
   * });
   * console.assert(dropped === 2 && queue.tryTake() === undefined);
   * ```
   */
  xtClear(xt: Xt): void {
    if (this.#destroyed) throw new DestroyedError("Queue");
    this.#clear(xt);
  }

  #clear(xt: Xt): void {
    if (this.#bounded) {
      xt.set(this.#locs[HEAD], xt.get(this.#locs[TAIL]));
      return;
    }
    freesMemory(xt);
    const heap = this.#heap;
    const l = this.#locs;
    for (const which of [FRONT, MIDDLE, BACK]) {
      const list = xt.exchange(l[which], 0);
      // Middle's nodes past the cut were retired when they were taken.
      const cut = which === MIDDLE && list !== 0 ? xt.exchange(l[CUT], 0) : 0;
      // (Counted, not tested by each count: the node below the live ones
      // may already be freed and reused.)
      let p = list;
      for (let k = nodeCount(heap, list) - cut; k > 0; k--, p = nodeNext(heap, p)) {
        retireAfter(heap, xt, p);
      }
    }
  }

  /**
   * Adds `value` at the back, waiting while full.
   *
   * @example
   * ```ts
   * import { Queue } from "@sabre/sabre/stm/data";
   * import { SharedHeap, TimeoutError } from "@sabre/sabre";
   * const queue = Queue.create(SharedHeap.create(), { capacity: 1 });
   * queue.add(1);
   * let timedOut = false;
   * try {
   *   queue.add(2, { timeoutMs: 10 }); // full, and nobody takes
   * } catch (e) {
   *   timedOut = e instanceof TimeoutError;
   * }
   * console.assert(timedOut && queue.take() === 1 && queue.length === 0);
   * ```
   */
  add(value: number, options?: CommitOptions): void {
    timingOutAs(
      "call Queue.add",
      () => commitTracked(this.#heap, (xt) => this.xtAdd(xt, value), options),
    );
  }

  /**
   * Adds `value` at the back, waiting (asynchronously) while full.
   *
   * @example
   * ```ts
   * import { Queue } from "@sabre/sabre/stm/data";
   * import { SharedHeap } from "@sabre/sabre";
   * const queue = Queue.create(SharedHeap.create(), { capacity: 1 });
   * queue.add(1);
   * const adding = queue.addAsync(2, { timeoutMs: 1000 }); // full: waits for room
   * console.assert(queue.take() === 1);
   * await adding;
   * console.assert(queue.take() === 2);
   * ```
   */
  addAsync(value: number, options?: CommitOptions): Promise<void> {
    return timingOutAsAsync(
      "call Queue.addAsync",
      () => commitTrackedAsync(this.#heap, (xt) => this.xtAdd(xt, value), options),
    );
  }

  /**
   * Adds `value` if there is room; returns whether it did.
   *
   * @example
   * ```ts
   * import { Queue } from "@sabre/sabre/stm/data";
   * import { SharedHeap } from "@sabre/sabre";
   * const queue = Queue.create(SharedHeap.create(), { capacity: 1 });
   * console.assert(queue.tryAdd(1) && !queue.tryAdd(2) && queue.length === 1);
   * ```
   */
  tryAdd(value: number): boolean {
    return commitTracked(this.#heap, (xt) => this.xtTryAdd(xt, value));
  }

  /**
   * Takes the front number, waiting while empty.
   *
   * @example
   * ```ts
   * import { Queue } from "@sabre/sabre/stm/data";
   * import { SharedHeap } from "@sabre/sabre";
   * const queue = Queue.create(SharedHeap.create());
   * queue.add(1);
   * queue.add(2);
   * console.assert(queue.take() === 1 && queue.take({ timeoutMs: 100 }) === 2);
   * ```
   */
  take(options?: CommitOptions): number {
    return timingOutAs(
      "call Queue.take",
      () => commitTracked(this.#heap, (xt) => this.xtTake(xt), options),
    );
  }

  /**
   * Takes the front number, waiting (asynchronously) while empty.
   *
   * @example
   * ```ts
   * import { Queue } from "@sabre/sabre/stm/data";
   * import { SharedHeap } from "@sabre/sabre";
   * const queue = Queue.create(SharedHeap.create());
   * const next = queue.takeAsync({ timeoutMs: 1000 }); // empty: waits
   * queue.add(3);
   * console.assert((await next) === 3 && queue.length === 0);
   * ```
   */
  takeAsync(options?: CommitOptions): Promise<number> {
    return timingOutAsAsync(
      "call Queue.takeAsync",
      () => commitTrackedAsync(this.#heap, (xt) => this.xtTake(xt), options),
    );
  }

  /**
   * Takes the front number, or returns undefined when empty.
   *
   * @example
   * ```ts
   * import { Queue } from "@sabre/sabre/stm/data";
   * import { SharedHeap } from "@sabre/sabre";
   * const queue = Queue.create(SharedHeap.create());
   * queue.add(1);
   * console.assert(queue.tryTake() === 1 && queue.tryTake() === undefined);
   * ```
   */
  tryTake(): number | undefined {
    return commitTracked(this.#heap, (xt) => this.xtTryTake(xt));
  }

  /** Unbounded take: pop `front`, or refill it from `middle` or `back`. */
  #takeList(xt: Xt): number | undefined {
    freesMemory(xt);
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
    let list = xt.get(l[MIDDLE]);
    let cut = 0;
    const fromBack = list === 0;
    if (!fromBack) {
      cut = xt.get(l[CUT]);
    } else {
      // Another worker may have emptied middle, or added to back since.
      list = xt.get(l[BACK]);
      if (list === 0) return undefined;
    }
    // The live nodes, newest first: the last is the one to take; the rest
    // becomes front, oldest first.
    // (Counted: the node below the live ones may already be freed and reused.)
    const live = nodeCount(heap, list) - cut;
    const nodes: number[] = [];
    for (let k = 0, p = list; k < live; k++, p = nodeNext(heap, p)) nodes.push(p);
    const blocks = allocNodesIn(heap, xt, live - 1);
    // On a full heap only the oldest blocks.length + 1 move; the others
    // stay in middle, above a higher cut.
    const moved = blocks.length + 1;
    let front = 0;
    for (let i = live - moved, b = 0; i < live - 1; i++, b++) {
      front = fillNode(heap, blocks[b], nodeValue(heap, nodes[i]), front);
    }
    if (front !== 0) xt.set(l[FRONT], front);
    if (moved === live) {
      xt.set(l[fromBack ? BACK : MIDDLE], 0);
      xt.set(l[CUT], 0); // (0 already when from back: no write)
    } else {
      // The taken nodes stay linked below the live ones, but no reader
      // passes the cut, so they are retired like the others.
      if (fromBack) {
        xt.set(l[MIDDLE], list); // empty, as read above
        xt.set(l[BACK], 0);
      }
      xt.set(l[CUT], cut + moved);
    }
    for (let i = live - moved; i < live; i++) retireAfter(heap, xt, nodes[i]);
    return nodeValue(heap, nodes[live - 1]);
  }

  #backToMiddle(): void {
    const l = this.#locs;
    Xt.commit((xt) => {
      freesMemory(xt); // (allocates nothing)
      const back = xt.get(l[BACK]);
      if (back === 0 || xt.get(l[MIDDLE]) !== 0) return;
      xt.set(l[MIDDLE], back);
      xt.set(l[BACK], 0);
    });
  }

  /**
   * The front number without taking it, or undefined when empty.
   *
   * @example
   * ```ts
   * import { Queue } from "@sabre/sabre/stm/data";
   * import { SharedHeap } from "@sabre/sabre";
   * const queue = Queue.create(SharedHeap.create());
   * console.assert(queue.tryPeek() === undefined);
   * queue.add(1);
   * queue.add(2);
   * console.assert(queue.tryPeek() === 1 && queue.length === 2);
   * ```
   */
  tryPeek(): number | undefined {
    return Xt.commit((xt) => this.xtTryPeek(xt));
  }

  /**
   * The front number without taking it, waiting while empty.
   *
   * @example
   * ```ts
   * import { Queue } from "@sabre/sabre/stm/data";
   * import { SharedHeap } from "@sabre/sabre";
   * const queue = Queue.create(SharedHeap.create());
   * queue.add(6);
   * console.assert(queue.peek({ timeoutMs: 100 }) === 6 && queue.tryTake() === 6);
   * ```
   */
  peek(options?: CommitOptions): number {
    return timingOutAs("call Queue.peek", () => Xt.commit((xt) => this.xtPeek(xt), options));
  }

  /**
   * The front number without taking it, waiting (asynchronously) while empty.
   *
   * @example
   * ```ts
   * import { Queue } from "@sabre/sabre/stm/data";
   * import { SharedHeap } from "@sabre/sabre";
   * const queue = Queue.create(SharedHeap.create());
   * const front = queue.peekAsync({ timeoutMs: 1000 }); // empty: waits
   * queue.add(9);
   * console.assert((await front) === 9 && queue.length === 1);
   * ```
   */
  peekAsync(options?: CommitOptions): Promise<number> {
    return timingOutAsAsync(
      "call Queue.peekAsync",
      () => Xt.commitAsync((xt) => this.xtPeek(xt), options),
    );
  }

  /**
   * Removes every number, at one instant.
   *
   * @example
   * ```ts
   * import { Queue } from "@sabre/sabre/stm/data";
   * import { SharedHeap } from "@sabre/sabre";
   * const queue = Queue.create(SharedHeap.create());
   * queue.add(1);
   * queue.add(2);
   * queue.clear();
   * console.assert(queue.length === 0 && queue.tryTake() === undefined);
   * ```
   */
  clear(): void {
    Xt.commit((xt) => this.xtClear(xt));
  }

  /**
   * Gives the queue's memory back to the heap (its Locs, and the nodes of an unbounded one), through epochs, so
   * that a worker still inside an operation on it finishes safely. No
   * worker may use it afterwards: later calls on this object, a second
   * `destroy()` included, throw {@linkcode DestroyedError}, and `attach`
   * refuses its handle.
   *
   * @example
   * ```ts
   * import { Queue } from "@sabre/sabre/stm/data";
   * import { SharedHeap } from "@sabre/sabre";
   * const heap = SharedHeap.create();
   * const queue = Queue.create(heap);
   * queue.add(1);
   * const handle = queue.handle;
   * queue.destroy();
   * let refused = false;
   * try {
   *   Queue.attach(handle);
   * } catch {
   *   refused = true;
   * }
   * console.assert(refused);
   * ```
   */
  destroy(): void {
    if (this.#destroyed) throw new DestroyedError("Queue", "destroy");
    // Done with either way, also when another object destroyed it first.
    this.#destroyed = true;
    retireRecord(this.#heap, this.#offset, TAG, "Queue");
    // The clear retires the nodes once it commits; then the Locs go.
    Xt.commit((xt) => this.#clear(xt));
    for (const loc of this.#locs) loc.free();
  }
}
