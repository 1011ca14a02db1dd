/**
 * Stack: a bounded LIFO stack of numbers, an array of Locs with a size;
 * kcas_data's `Stack` with a capacity (pushing onto a full stack waits,
 * like popping from an empty one). Built only on the public Loc/Xt API.
 *
 * @module
 */

import { type SharedHandle, type SharedHeap, tagOf } from "../../memory/mod.ts";
import { type CommitOptions, Loc, Retry, Xt } from "../mod.ts";
import { checkCapacity, checkNumber, placeRecord, readRecord } from "./_record.ts";

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
 * A bounded LIFO stack of numbers in shared memory. Blocking forms wait
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

  private constructor(locs: Loc[], offset: number) {
    this.#locs = locs;
    this.#capacity = locs.length - SLOTS;
    this.#offset = offset;
  }

  /** Creates an empty stack in `heap` holding up to `options.capacity` numbers (default 64, at most 65536). */
  static create(heap: SharedHeap, options?: { capacity?: number }): Stack {
    const capacity = checkCapacity(options?.capacity ?? 64, "Stack", 65536);
    const locs = Loc.makeArray(heap, SLOTS + capacity, 0);
    return new Stack(locs, placeRecord(heap, TAG, locs, capacity));
  }

  /** Rebuilds a stack from its handle; `HandleError` when it names none. */
  static attach(handle: StackHandle): Stack {
    const { locs, offset } = readRecord(handle, KIND, TAG, "Stack");
    return new Stack(locs, offset);
  }

  /** The handle to send to other workers. */
  get handle(): StackHandle {
    return { kind: KIND, version: 1, sab: this.#locs[0].heap.sab, offset: this.#offset };
  }

  /** How many numbers it can hold. */
  get capacity(): number {
    return this.#capacity;
  }

  /** How many numbers it holds now. */
  get length(): number {
    return this.#locs[SIZE].get();
  }

  /** In a transaction: pushes `value` if there is room; returns whether it did. */
  xtTryPush(xt: Xt, value: number): boolean {
    checkNumber(value, "push onto Stack");
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
    const size = xt.get(this.#locs[SIZE]);
    return size === 0 ? undefined : xt.get(this.#locs[SLOTS + size - 1]);
  }

  /** Pushes `value`, waiting while full. */
  push(value: number, options?: CommitOptions): void {
    Xt.commit((xt) => this.xtPush(xt, value), options);
  }

  /** Pushes `value` if there is room; returns whether it did. */
  tryPush(value: number): boolean {
    return Xt.commit((xt) => this.xtTryPush(xt, value));
  }

  /** Pops the top number, waiting while empty. */
  pop(options?: CommitOptions): number {
    return Xt.commit((xt) => this.xtPop(xt), options);
  }

  /** Pops the top number, waiting (asynchronously) while empty. */
  popAsync(options?: CommitOptions): Promise<number> {
    return Xt.commitAsync((xt) => this.xtPop(xt), options);
  }

  /** Pops the top number, or returns undefined when empty. */
  tryPop(): number | undefined {
    return Xt.commit((xt) => this.xtTryPop(xt));
  }

  /** The top number without popping it, or undefined when empty. */
  tryTop(): number | undefined {
    return Xt.commit((xt) => this.xtTryTop(xt));
  }
}
