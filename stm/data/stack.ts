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
   */
  static create(heap: SharedHeap, options?: { capacity?: number }): Stack {
    const wanted = options?.capacity ?? Infinity;
    if (wanted === Infinity) {
      const head = Loc.make(heap, 0, { kind: "ref" });
      return new Stack([head], placeRecord(heap, TAG, [head], 0), false);
    }
    const capacity = checkCapacity(wanted, "Stack", 65536);
    const locs = Loc.makeArray(heap, SLOTS + capacity, 0);
    return new Stack(locs, placeRecord(heap, TAG, locs, capacity), true);
  }

  /** Rebuilds a stack from its handle; `HandleError` when it names none. */
  static attach(handle: StackHandle): Stack {
    const { locs, offset, extra } = readRecord(handle, KIND, TAG, "Stack");
    return new Stack(locs, offset, extra !== 0);
  }

  /** The handle to send to other workers. */
  get handle(): StackHandle {
    return this.#locs[0].heap.handleOf(KIND, 1, this.#offset);
  }

  /** How many numbers it can hold (`Infinity` when unbounded). */
  get capacity(): number {
    return this.#capacity;
  }

  /** How many numbers it holds now. */
  get length(): number {
    const head = this.#head;
    if (head === undefined) return this.#locs[SIZE].get();
    return Xt.commit((xt) => this.xtLength(xt));
  }

  /** In a transaction: how many numbers it holds. */
  xtLength(xt: Xt): number {
    const head = this.#head;
    if (head === undefined) return xt.get(this.#locs[SIZE]);
    return nodeCount(this.#heap, xt.get(head));
  }

  /** In a transaction: pushes `value` if there is room; returns whether it did. */
  xtTryPush(xt: Xt, value: number): boolean {
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

  /** In a transaction: pushes `value`, retrying while full. */
  xtPush(xt: Xt, value: number): void {
    Retry.unless(this.xtTryPush(xt, value));
  }

  /** In a transaction: pops the top number, or returns undefined when empty. */
  xtTryPop(xt: Xt): number | undefined {
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

  /** In a transaction: pops the top number, retrying while empty. */
  xtPop(xt: Xt): number {
    const value = this.xtTryPop(xt);
    return value ?? Retry.later();
  }

  /** In a transaction: the top number without popping it, or undefined. */
  xtTryTop(xt: Xt): number | undefined {
    const head = this.#head;
    if (head !== undefined) {
      const top = xt.get(head);
      return top === 0 ? undefined : nodeValue(this.#heap, top);
    }
    const size = xt.get(this.#locs[SIZE]);
    return size === 0 ? undefined : xt.get(this.#locs[SLOTS + size - 1]);
  }

  /** In a transaction: the top number without popping it, retrying while empty. */
  xtTop(xt: Xt): number {
    return this.xtTryTop(xt) ?? Retry.later();
  }

  /**
   * In a transaction: removes every number. The memory of an unbounded
   * stack's nodes goes back to the heap through epochs once it commits.
   */
  xtClear(xt: Xt): void {
    const head = this.#head;
    if (head === undefined) {
      xt.set(this.#locs[SIZE], 0);
      return;
    }
    const heap = this.#heap;
    for (let p = xt.exchange(head, 0); p !== 0; p = nodeNext(heap, p)) retireAfter(heap, xt, p);
  }

  /** Pushes `value`, waiting while full. */
  push(value: number, options?: CommitOptions): void {
    commitTracked(this.#heap, (xt) => this.xtPush(xt, value), options);
  }

  /** Pushes `value`, waiting (asynchronously) while full. */
  pushAsync(value: number, options?: CommitOptions): Promise<void> {
    return commitTrackedAsync(this.#heap, (xt) => this.xtPush(xt, value), options);
  }

  /** Pushes `value` if there is room; returns whether it did. */
  tryPush(value: number): boolean {
    return commitTracked(this.#heap, (xt) => this.xtTryPush(xt, value));
  }

  /** Pops the top number, waiting while empty. */
  pop(options?: CommitOptions): number {
    return commitTracked(this.#heap, (xt) => this.xtPop(xt), options);
  }

  /** Pops the top number, waiting (asynchronously) while empty. */
  popAsync(options?: CommitOptions): Promise<number> {
    return commitTrackedAsync(this.#heap, (xt) => this.xtPop(xt), options);
  }

  /** Pops the top number, or returns undefined when empty. */
  tryPop(): number | undefined {
    return commitTracked(this.#heap, (xt) => this.xtTryPop(xt));
  }

  /** The top number without popping it, or undefined when empty. */
  tryTop(): number | undefined {
    return Xt.commit((xt) => this.xtTryTop(xt));
  }

  /** The top number without popping it, waiting while empty. */
  top(options?: CommitOptions): number {
    return Xt.commit((xt) => this.xtTop(xt), options);
  }

  /** The top number without popping it, waiting (asynchronously) while empty. */
  topAsync(options?: CommitOptions): Promise<number> {
    return Xt.commitAsync((xt) => this.xtTop(xt), options);
  }

  /** Removes every number, at one instant. */
  clear(): void {
    Xt.commit((xt) => this.xtClear(xt));
  }
}
