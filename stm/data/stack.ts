/**
 * Stack: a LIFO stack of numbers, kcas_data's `Stack`. Built only on the
 * public Loc/Xt API, in one of two layouts:
 *
 * - **unbounded** (the default): one `"ref"` Loc pointing to an immutable
 *   list of 16-byte nodes `[f64 value, i32 next, i32 count]` (pattern (b):
 *   filled before the commit that publishes them, never changed). A push
 *   allocates a node inside the transaction (freed again when the attempt
 *   does not commit: see `_alloc.ts`); a pop retires the node through the
 *   heap's epochs after its commit.
 * - **bounded** (`capacity` given): an array of Locs with a size; pushing
 *   onto a full stack waits, like popping from an empty one.
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
  commitTracked,
  commitTrackedAsync,
  cons,
  freesMemory,
  nodeCount,
  nodeNext,
  nodeValue,
  retireAfter,
  timingOutAs,
  timingOutAsAsync,
} from "./_alloc.ts";
import { checkOptionFields } from "../../memory/_options.ts";

const KIND = "sabre.stm.Stack";
const TAG = tagOf("SSTK");
const SIZE = 0;
const SLOTS = 1;

/**
 * Handle of a {@linkcode Stack}.
 *
 * @example
 * ```ts
 * import { Stack, type StackHandle } from "@sabre/sabre/stm/data";
 * import { SharedHeap } from "@sabre/sabre";
 * const handle: StackHandle = Stack.create(SharedHeap.create(), { capacity: 8 }).handle;
 * console.assert(Stack.attach(handle).capacity === 8);
 * ```
 */
export type StackHandle = SharedHandle<"sabre.stm.Stack">;

/**
 * A LIFO stack of numbers in shared memory, unbounded unless created with
 * a `capacity`. Blocking forms wait
 * with `Atomics.wait` (`…Async` with `waitAsync`) and take
 * `{ timeoutMs }`; `try…` forms never wait; `xt…` forms compose into
 * transactions.
 *
 * @example
 * ```ts
 * import { Stack } from "@sabre/sabre/stm/data";
 * import { Xt } from "@sabre/sabre";
 * import { SharedHeap } from "@sabre/sabre";
 *
 * const stack = Stack.create(SharedHeap.create(), { capacity: 4 });
 * Xt.commit((xt) => {
 *   stack.xtPush(xt, 3);
 *   stack.xtPush(xt, 1);
 *   stack.xtPush(xt, 4);
 * });
 * console.assert(stack.pop() === 4 && stack.tryTop() === 1 && stack.length === 2);
 * ```
 */
export class Stack {
  readonly #locs: Loc[];
  readonly #capacity: number;
  readonly #offset: number;
  readonly #heap: SharedHeap;
  /** Unbounded: the head Loc; bounded: undefined. */
  readonly #head: Loc | undefined;
  /** Set by destroy(): every later call on this object throws. */
  #destroyed = false;

  private constructor(locs: Loc[], offset: number, bounded: boolean) {
    this.#locs = locs;
    this.#capacity = bounded ? locs.length - SLOTS : Infinity;
    this.#offset = offset;
    this.#heap = locs[0].heap;
    this.#head = bounded ? undefined : locs[0];
  }

  /**
   * Creates an empty stack in `heap`: unbounded by default, or holding up
   * to `options.capacity` numbers (an integer from 1 to 65536; `Infinity`
   * means unbounded).
   *
   * @example
   * ```ts
   * import { Stack } from "@sabre/sabre/stm/data";
   * import { SharedHeap } from "@sabre/sabre";
   * const heap = SharedHeap.create();
   * console.assert(Stack.create(heap).capacity === Infinity);
   * console.assert(Stack.create(heap, { capacity: 3 }).capacity === 3);
   * ```
   */
  static create(heap: SharedHeap, options?: { capacity?: number }): Stack {
    checkHeap(heap, "create Stack");
    checkOptionFields(options, ["capacity"], "create Stack");
    const wanted = options?.capacity ?? Infinity;
    if (wanted === Infinity) {
      const head = Loc.make(heap, 0, { kind: "ref" });
      return new Stack([head], placeRecord(heap, TAG, [head], 0), false);
    }
    const capacity = checkCapacity(wanted, "Stack", 65536);
    const locs = Loc.makeArray(heap, SLOTS + capacity, 0);
    return new Stack(locs, placeRecord(heap, TAG, locs, capacity), true);
  }

  /**
   * Rebuilds a stack from its handle; `HandleError` when it names none.
   *
   * @example
   * ```ts
   * import { Stack } from "@sabre/sabre/stm/data";
   * import { SharedHeap } from "@sabre/sabre";
   * const stack = Stack.create(SharedHeap.create());
   * stack.push(5);
   * // In another worker: Stack.attach(handle), the handle sent with postMessage.
   * console.assert(Stack.attach(stack.handle).pop() === 5 && stack.length === 0);
   * ```
   */
  static attach(handle: StackHandle): Stack {
    const { locs, offset, extra } = readRecord(handle, KIND, TAG, "Stack");
    return new Stack(locs, offset, extra !== 0);
  }

  /**
   * The handle to send to other workers.
   *
   * @example
   * ```ts
   * import { Stack } from "@sabre/sabre/stm/data";
   * import { SharedHeap } from "@sabre/sabre";
   * const stack = Stack.create(SharedHeap.create());
   * // worker.postMessage(stack.handle)
   * console.assert(stack.handle.kind === "sabre.stm.Stack");
   * ```
   */
  get handle(): StackHandle {
    if (this.#destroyed) throw new DestroyedError("Stack");
    return this.#locs[0].heap.handleOf(KIND, 1, this.#offset);
  }

  /**
   * How many numbers it can hold (`Infinity` when unbounded).
   *
   * @example
   * ```ts
   * import { Stack } from "@sabre/sabre/stm/data";
   * import { SharedHeap } from "@sabre/sabre";
   * const stack = Stack.create(SharedHeap.create(), { capacity: 1 });
   * console.assert(stack.capacity === 1 && stack.tryPush(1) && !stack.tryPush(2));
   * ```
   */
  get capacity(): number {
    if (this.#destroyed) throw new DestroyedError("Stack");
    return this.#capacity;
  }

  /**
   * How many numbers it holds now.
   *
   * @example
   * ```ts
   * import { Stack } from "@sabre/sabre/stm/data";
   * import { SharedHeap } from "@sabre/sabre";
   * const stack = Stack.create(SharedHeap.create());
   * stack.push(1);
   * stack.push(2);
   * console.assert(stack.length === 2);
   * ```
   */
  get length(): number {
    if (this.#destroyed) throw new DestroyedError("Stack");
    const head = this.#head;
    if (head === undefined) return this.#locs[SIZE].get();
    return Xt.commit((xt) => this.xtLength(xt));
  }

  /**
   * In a transaction: how many numbers it holds.
   *
   * @example
   * ```ts
   * import { Stack } from "@sabre/sabre/stm/data";
   * import { SharedHeap, Xt } from "@sabre/sabre";
   * const stack = Stack.create(SharedHeap.create());
   * const length = Xt.commit((xt) => {
   *   stack.xtPush(xt, 1);
   *   return stack.xtLength(xt); // sees the push of this transaction
   * });
   * console.assert(length === 1 && stack.length === 1);
   * ```
   */
  xtLength(xt: Xt): number {
    if (this.#destroyed) throw new DestroyedError("Stack");
    const head = this.#head;
    if (head === undefined) return xt.get(this.#locs[SIZE]);
    return nodeCount(this.#heap, xt.get(head));
  }

  /**
   * In a transaction: pushes `value` if there is room; returns whether it did.
   *
   * @example
   * ```ts
   * import { Stack } from "@sabre/sabre/stm/data";
   * import { SharedHeap, Xt } from "@sabre/sabre";
   * const stack = Stack.create(SharedHeap.create(), { capacity: 1 });
   * const pushed = Xt.commit((xt) => [stack.xtTryPush(xt, 1), stack.xtTryPush(xt, 2)]);
   * console.assert(pushed.join() === "true,false" && stack.length === 1);
   * ```
   */
  xtTryPush(xt: Xt, value: number): boolean {
    if (this.#destroyed) throw new DestroyedError("Stack");
    checkNumber(value, "push onto Stack");
    const head = this.#head;
    if (head !== undefined) {
      xt.set(head, cons(this.#heap, xt, value, xt.get(head)));
      return true;
    }
    const size = xt.get(this.#locs[SIZE]);
    if (size >= this.#capacity) return false;
    xt.set(this.#locs[SLOTS + size], value);
    xt.set(this.#locs[SIZE], size + 1);
    return true;
  }

  /**
   * In a transaction: pushes `value`, retrying while full.
   *
   * @example
   * ```ts
   * import { Stack } from "@sabre/sabre/stm/data";
   * import { SharedHeap, Xt } from "@sabre/sabre";
   * const heap = SharedHeap.create();
   * const from = Stack.create(heap);
   * const to = Stack.create(heap, { capacity: 4 });
   * from.push(1);
   * from.push(2);
   * // Move the top number across: waits while from is empty or to is full.
   * Xt.commit((xt) => to.xtPush(xt, from.xtPop(xt)), { timeoutMs: 100 });
   * console.assert(to.tryTop() === 2 && from.tryTop() === 1);
   * ```
   */
  xtPush(xt: Xt, value: number): void {
    Retry.unless(this.xtTryPush(xt, value));
  }

  /**
   * In a transaction: pops the top number, or returns undefined when empty.
   *
   * @example
   * ```ts
   * import { Stack } from "@sabre/sabre/stm/data";
   * import { SharedHeap, Xt } from "@sabre/sabre";
   * const stack = Stack.create(SharedHeap.create());
   * stack.push(1);
   * const popped = Xt.commit((xt) => [stack.xtTryPop(xt), stack.xtTryPop(xt)]);
   * console.assert(popped[0] === 1 && popped[1] === undefined);
   * ```
   */
  xtTryPop(xt: Xt): number | undefined {
    if (this.#destroyed) throw new DestroyedError("Stack");
    freesMemory(xt);
    const head = this.#head;
    if (head !== undefined) {
      const heap = this.#heap;
      const top = xt.get(head);
      if (top === 0) return undefined;
      xt.set(head, nodeNext(heap, top));
      retireAfter(heap, xt, top);
      return nodeValue(heap, top);
    }
    const size = xt.get(this.#locs[SIZE]);
    if (size === 0) return undefined;
    xt.set(this.#locs[SIZE], size - 1);
    return xt.get(this.#locs[SLOTS + size - 1]);
  }

  /**
   * In a transaction: pops the top number, retrying while empty.
   *
   * @example
   * ```ts
   * import { Stack } from "@sabre/sabre/stm/data";
   * import { SharedHeap, Xt } from "@sabre/sabre";
   * const heap = SharedHeap.create();
   * const xs = Stack.create(heap);
   * const ys = Stack.create(heap);
   * xs.push(1);
   * ys.push(2);
   * // Pop one number from each, or wait until both have one.
   * const pair = Xt.commit((xt) => [xs.xtPop(xt), ys.xtPop(xt)], { timeoutMs: 100 });
   * console.assert(pair.join() === "1,2" && xs.length === 0 && ys.length === 0);
   * ```
   */
  xtPop(xt: Xt): number {
    const value = this.xtTryPop(xt);
    return value ?? Retry.later();
  }

  /**
   * In a transaction: the top number without popping it, or undefined.
   *
   * @example
   * ```ts
   * import { Stack } from "@sabre/sabre/stm/data";
   * import { SharedHeap, Xt } from "@sabre/sabre";
   * const stack = Stack.create(SharedHeap.create());
   * stack.push(1);
   * stack.push(2);
   * console.assert(Xt.commit((xt) => stack.xtTryTop(xt)) === 2 && stack.length === 2);
   * ```
   */
  xtTryTop(xt: Xt): number | undefined {
    if (this.#destroyed) throw new DestroyedError("Stack");
    const head = this.#head;
    if (head !== undefined) {
      const top = xt.get(head);
      return top === 0 ? undefined : nodeValue(this.#heap, top);
    }
    const size = xt.get(this.#locs[SIZE]);
    return size === 0 ? undefined : xt.get(this.#locs[SLOTS + size - 1]);
  }

  /**
   * In a transaction: the top number without popping it, retrying while empty.
   *
   * @example
   * ```ts
   * import { Stack } from "@sabre/sabre/stm/data";
   * import { SharedHeap, Xt } from "@sabre/sabre";
   * const stack = Stack.create(SharedHeap.create());
   * stack.push(4);
   * // Pop the top number only when it is even (waits while the stack is empty).
   * const popped = Xt.commit(
   *   (xt) => (stack.xtTop(xt) % 2 === 0 ? stack.xtPop(xt) : undefined),
   *   { timeoutMs: 100 },
   * );
   * console.assert(popped === 4 && stack.length === 0);
   * ```
   */
  xtTop(xt: Xt): number {
    return this.xtTryTop(xt) ?? Retry.later();
  }

  /**
   * In a transaction: removes every number. The memory of an unbounded
   * stack's nodes goes back to the heap through epochs once it commits.
   *
   * @example
   * ```ts
   * import { Stack } from "@sabre/sabre/stm/data";
   * import { SharedHeap, Xt } from "@sabre/sabre";
   * const stack = Stack.create(SharedHeap.create());
   * stack.push(1);
   * stack.push(2);
   * // Replace the whole contents by one number, at one instant.
   * Xt.commit((xt) => {
   *   stack.xtClear(xt);
   *   stack.xtPush(xt, 9);
   * });
   * console.assert(stack.length === 1 && stack.tryPop() === 9);
   * ```
   */
  xtClear(xt: Xt): void {
    if (this.#destroyed) throw new DestroyedError("Stack");
    this.#clear(xt);
  }

  #clear(xt: Xt): void {
    freesMemory(xt);
    const head = this.#head;
    if (head === undefined) {
      xt.set(this.#locs[SIZE], 0);
      return;
    }
    const heap = this.#heap;
    for (let p = xt.exchange(head, 0); p !== 0; p = nodeNext(heap, p)) retireAfter(heap, xt, p);
  }

  /**
   * Pushes `value`, waiting while full.
   *
   * @example
   * ```ts
   * import { Stack } from "@sabre/sabre/stm/data";
   * import { SharedHeap, TimeoutError } from "@sabre/sabre";
   * const stack = Stack.create(SharedHeap.create(), { capacity: 1 });
   * stack.push(1);
   * let timedOut = false;
   * try {
   *   stack.push(2, { timeoutMs: 10 }); // full, and nobody pops
   * } catch (e) {
   *   timedOut = e instanceof TimeoutError;
   * }
   * console.assert(timedOut && stack.pop() === 1 && stack.length === 0);
   * ```
   */
  push(value: number, options?: CommitOptions): void {
    timingOutAs(
      "call Stack.push",
      () => commitTracked(this.#heap, (xt) => this.xtPush(xt, value), options),
    );
  }

  /**
   * Pushes `value`, waiting (asynchronously) while full.
   *
   * @example
   * ```ts
   * import { Stack } from "@sabre/sabre/stm/data";
   * import { SharedHeap } from "@sabre/sabre";
   * const stack = Stack.create(SharedHeap.create(), { capacity: 1 });
   * stack.push(1);
   * const pushing = stack.pushAsync(2, { timeoutMs: 1000 }); // full: waits for room
   * console.assert(stack.pop() === 1);
   * await pushing;
   * console.assert(stack.pop() === 2);
   * ```
   */
  pushAsync(value: number, options?: CommitOptions): Promise<void> {
    return timingOutAsAsync(
      "call Stack.pushAsync",
      () => commitTrackedAsync(this.#heap, (xt) => this.xtPush(xt, value), options),
    );
  }

  /**
   * Pushes `value` if there is room; returns whether it did.
   *
   * @example
   * ```ts
   * import { Stack } from "@sabre/sabre/stm/data";
   * import { SharedHeap } from "@sabre/sabre";
   * const stack = Stack.create(SharedHeap.create(), { capacity: 1 });
   * console.assert(stack.tryPush(1) && !stack.tryPush(2) && stack.length === 1);
   * ```
   */
  tryPush(value: number): boolean {
    return commitTracked(this.#heap, (xt) => this.xtTryPush(xt, value));
  }

  /**
   * Pops the top number, waiting while empty.
   *
   * @example
   * ```ts
   * import { Stack } from "@sabre/sabre/stm/data";
   * import { SharedHeap } from "@sabre/sabre";
   * const stack = Stack.create(SharedHeap.create());
   * stack.push(1);
   * stack.push(2);
   * console.assert(stack.pop() === 2 && stack.pop({ timeoutMs: 100 }) === 1);
   * ```
   */
  pop(options?: CommitOptions): number {
    return timingOutAs(
      "call Stack.pop",
      () => commitTracked(this.#heap, (xt) => this.xtPop(xt), options),
    );
  }

  /**
   * Pops the top number, waiting (asynchronously) while empty.
   *
   * @example
   * ```ts
   * import { Stack } from "@sabre/sabre/stm/data";
   * import { SharedHeap } from "@sabre/sabre";
   * const stack = Stack.create(SharedHeap.create());
   * const next = stack.popAsync({ timeoutMs: 1000 }); // empty: waits
   * stack.push(3);
   * console.assert((await next) === 3 && stack.length === 0);
   * ```
   */
  popAsync(options?: CommitOptions): Promise<number> {
    return timingOutAsAsync(
      "call Stack.popAsync",
      () => commitTrackedAsync(this.#heap, (xt) => this.xtPop(xt), options),
    );
  }

  /**
   * Pops the top number, or returns undefined when empty.
   *
   * @example
   * ```ts
   * import { Stack } from "@sabre/sabre/stm/data";
   * import { SharedHeap } from "@sabre/sabre";
   * const stack = Stack.create(SharedHeap.create());
   * stack.push(1);
   * console.assert(stack.tryPop() === 1 && stack.tryPop() === undefined);
   * ```
   */
  tryPop(): number | undefined {
    return commitTracked(this.#heap, (xt) => this.xtTryPop(xt));
  }

  /**
   * The top number without popping it, or undefined when empty.
   *
   * @example
   * ```ts
   * import { Stack } from "@sabre/sabre/stm/data";
   * import { SharedHeap } from "@sabre/sabre";
   * const stack = Stack.create(SharedHeap.create());
   * console.assert(stack.tryTop() === undefined);
   * stack.push(1);
   * stack.push(2);
   * console.assert(stack.tryTop() === 2 && stack.length === 2);
   * ```
   */
  tryTop(): number | undefined {
    return Xt.commit((xt) => this.xtTryTop(xt));
  }

  /**
   * The top number without popping it, waiting while empty.
   *
   * @example
   * ```ts
   * import { Stack } from "@sabre/sabre/stm/data";
   * import { SharedHeap } from "@sabre/sabre";
   * const stack = Stack.create(SharedHeap.create());
   * stack.push(6);
   * console.assert(stack.top({ timeoutMs: 100 }) === 6 && stack.length === 1);
   * ```
   */
  top(options?: CommitOptions): number {
    return timingOutAs("call Stack.top", () => Xt.commit((xt) => this.xtTop(xt), options));
  }

  /**
   * The top number without popping it, waiting (asynchronously) while empty.
   *
   * @example
   * ```ts
   * import { Stack } from "@sabre/sabre/stm/data";
   * import { SharedHeap } from "@sabre/sabre";
   * const stack = Stack.create(SharedHeap.create());
   * const top = stack.topAsync({ timeoutMs: 1000 }); // empty: waits
   * stack.push(9);
   * console.assert((await top) === 9 && stack.length === 1);
   * ```
   */
  topAsync(options?: CommitOptions): Promise<number> {
    return timingOutAsAsync(
      "call Stack.topAsync",
      () => Xt.commitAsync((xt) => this.xtTop(xt), options),
    );
  }

  /**
   * Removes every number, at one instant.
   *
   * @example
   * ```ts
   * import { Stack } from "@sabre/sabre/stm/data";
   * import { SharedHeap } from "@sabre/sabre";
   * const stack = Stack.create(SharedHeap.create());
   * stack.push(1);
   * stack.push(2);
   * stack.clear();
   * console.assert(stack.length === 0 && stack.tryPop() === undefined);
   * ```
   */
  clear(): void {
    Xt.commit((xt) => this.xtClear(xt));
  }

  /**
   * Gives the stack's memory back to the heap (its Locs, and the nodes of an unbounded one), through epochs, so
   * that a worker still inside an operation on it finishes safely. No
   * worker may use it afterwards: later calls on this object, a second
   * `destroy()` included, throw {@linkcode DestroyedError}, and `attach`
   * refuses its handle.
   *
   * @example
   * ```ts
   * import { Stack } from "@sabre/sabre/stm/data";
   * import { SharedHeap } from "@sabre/sabre";
   * const heap = SharedHeap.create();
   * const stack = Stack.create(heap);
   * stack.push(1);
   * stack.destroy();
   * let again = false;
   * try {
   *   stack.destroy();
   * } catch {
   *   again = true;
   * }
   * console.assert(again);
   * ```
   */
  destroy(): void {
    if (this.#destroyed) throw new DestroyedError("Stack", "destroy");
    // Done with either way, also when another object destroyed it first.
    this.#destroyed = true;
    retireRecord(this.#heap, this.#offset, TAG, "Stack");
    // The clear retires the nodes once it commits; then the Locs go.
    Xt.commit((xt) => this.#clear(xt));
    for (const loc of this.#locs) loc.free();
  }
}
