/**
 * Mvar: a synchronizing variable, kcas_data's `Mvar`: a location that is
 * either empty or holds a number; `take` waits while it is empty, `put`
 * while it is full. Built only on the public Loc/Xt API: two Locs, a flag
 * and a value.
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
import { checkNumber, placeRecord, readRecord, retireRecord } from "./_record.ts";
import { freesMemory, timingOutAs, timingOutAsAsync } from "./_alloc.ts";

const KIND = "sabre.stm.Mvar";
const TAG = tagOf("MVAR");

/**
 * Handle of an {@linkcode Mvar}.
 *
 * @example
 * ```ts
 * import { Mvar, type MvarHandle } from "@sabre/sabre/stm/data";
 * import { SharedHeap } from "@sabre/sabre";
 * const handle: MvarHandle = Mvar.create(SharedHeap.create()).handle;
 * console.assert(Mvar.attach(handle).isEmpty());
 * ```
 */
export type MvarHandle = SharedHandle<"sabre.stm.Mvar">;

/**
 * A synchronizing variable in shared memory: empty, or full with a number.
 * Blocking forms wait with `Atomics.wait` (`…Async` with `waitAsync`) and
 * take `{ timeoutMs }` (`TimeoutError`); `try…` forms never wait; `xt…`
 * forms compose into transactions (they call `Retry.later()` where the
 * blocking form would wait).
 *
 * @example
 * ```ts
 * import { Mvar } from "@sabre/sabre/stm/data";
 * import { Xt } from "@sabre/sabre";
 * import { SharedHeap } from "@sabre/sabre";
 *
 * const heap = SharedHeap.create();
 * const forkA = Mvar.create(heap, 1);
 * const forkB = Mvar.create(heap, 2);
 * // Take both forks at once, or wait until both are there.
 * const [a, b] = Xt.commit((xt) => [forkA.xtTake(xt), forkB.xtTake(xt)]);
 * console.assert(a === 1 && b === 2 && forkA.isEmpty());
 * forkA.put(a);
 * console.assert(!forkA.tryPut(9) && forkA.tryTake() === 1 && forkA.tryTake() === undefined);
 * ```
 */
export class Mvar {
  readonly #full: Loc;
  readonly #value: Loc;
  readonly #offset: number;
  /** Set by destroy(): every later call on this object throws. */
  #destroyed = false;

  private constructor(full: Loc, value: Loc, offset: number) {
    this.#full = full;
    this.#value = value;
    this.#offset = offset;
  }

  /**
   * Creates an Mvar in `heap`, full with `value` if one is given, else empty.
   *
   * @example
   * ```ts
   * import { Mvar } from "@sabre/sabre/stm/data";
   * import { SharedHeap } from "@sabre/sabre";
   * const heap = SharedHeap.create();
   * console.assert(Mvar.create(heap).isEmpty());
   * console.assert(Mvar.create(heap, 5).tryPeek() === 5);
   * ```
   */
  static create(heap: SharedHeap, value?: number): Mvar {
    checkHeap(heap, "create Mvar");
    if (value !== undefined) checkNumber(value, "create Mvar");
    const full = Loc.make(heap, value === undefined ? 0 : 1, { kind: "i32" });
    const slot = Loc.make(heap, value ?? 0);
    return new Mvar(full, slot, placeRecord(heap, TAG, [full, slot], 0));
  }

  /**
   * Rebuilds an Mvar from its handle; `HandleError` when it names none.
   *
   * @example
   * ```ts
   * import { Mvar } from "@sabre/sabre/stm/data";
   * import { SharedHeap } from "@sabre/sabre";
   * const mvar = Mvar.create(SharedHeap.create(), 3);
   * // In another worker: Mvar.attach(handle), the handle sent with postMessage.
   * console.assert(Mvar.attach(mvar.handle).take() === 3 && mvar.isEmpty());
   * ```
   */
  static attach(handle: MvarHandle): Mvar {
    const { locs, offset } = readRecord(handle, KIND, TAG, "Mvar");
    return new Mvar(locs[0], locs[1], offset);
  }

  /**
   * The handle to send to other workers.
   *
   * @example
   * ```ts
   * import { Mvar } from "@sabre/sabre/stm/data";
   * import { SharedHeap } from "@sabre/sabre";
   * const mvar = Mvar.create(SharedHeap.create());
   * // worker.postMessage(mvar.handle)
   * console.assert(mvar.handle.kind === "sabre.stm.Mvar");
   * ```
   */
  get handle(): MvarHandle {
    if (this.#destroyed) throw new DestroyedError("Mvar");
    return this.#full.heap.handleOf(KIND, 1, this.#offset);
  }

  /**
   * Whether it is empty now.
   *
   * @example
   * ```ts
   * import { Mvar } from "@sabre/sabre/stm/data";
   * import { SharedHeap } from "@sabre/sabre";
   * const mvar = Mvar.create(SharedHeap.create());
   * console.assert(mvar.isEmpty());
   * mvar.put(1);
   * console.assert(!mvar.isEmpty());
   * ```
   */
  isEmpty(): boolean {
    if (this.#destroyed) throw new DestroyedError("Mvar");
    return this.#full.get() === 0;
  }

  /**
   * In a transaction: puts `value`, retrying while full.
   *
   * @example
   * ```ts
   * import { Mvar } from "@sabre/sabre/stm/data";
   * import { SharedHeap, Xt } from "@sabre/sabre";
   * const heap = SharedHeap.create();
   * const from = Mvar.create(heap, 1);
   * const to = Mvar.create(heap);
   * // Move the value across: waits while from is empty or to is full.
   * Xt.commit((xt) => to.xtPut(xt, from.xtTake(xt)), { timeoutMs: 100 });
   * console.assert(from.isEmpty() && to.tryTake() === 1);
   * ```
   */
  xtPut(xt: Xt, value: number): void {
    if (this.#destroyed) throw new DestroyedError("Mvar");
    checkNumber(value, "put into Mvar");
    freesMemory(xt); // (an Mvar allocates nothing)
    Retry.unless(xt.get(this.#full) === 0);
    xt.set(this.#full, 1);
    xt.set(this.#value, value);
  }

  /**
   * In a transaction: puts `value` if empty; returns whether it did.
   *
   * @example
   * ```ts
   * import { Mvar } from "@sabre/sabre/stm/data";
   * import { SharedHeap, Xt } from "@sabre/sabre";
   * const heap = SharedHeap.create();
   * const a = Mvar.create(heap, 0);
   * const b = Mvar.create(heap);
   * // Put 5 into the first of a and b that is empty.
   * console.assert(Xt.commit((xt) => a.xtTryPut(xt, 5) || b.xtTryPut(xt, 5)));
   * console.assert(a.tryTake() === 0 && b.tryTake() === 5);
   * ```
   */
  xtTryPut(xt: Xt, value: number): boolean {
    if (this.#destroyed) throw new DestroyedError("Mvar");
    checkNumber(value, "put into Mvar");
    freesMemory(xt); // (an Mvar allocates nothing)
    if (xt.get(this.#full) !== 0) return false;
    xt.set(this.#full, 1);
    xt.set(this.#value, value);
    return true;
  }

  /**
   * In a transaction: takes the value, retrying while empty.
   *
   * @example
   * ```ts
   * import { Mvar } from "@sabre/sabre/stm/data";
   * import { SharedHeap, Xt } from "@sabre/sabre";
   * const heap = SharedHeap.create();
   * const a = Mvar.create(heap);
   * const b = Mvar.create(heap, 2);
   * // Take from a, else from b; waits while both are empty.
   * const value = Xt.commit(
   *   Xt.first([(xt) => a.xtTake(xt), (xt) => b.xtTake(xt)]),
   *   { timeoutMs: 100 },
   * );
   * console.assert(value === 2 && b.isEmpty());
   * ```
   */
  xtTake(xt: Xt): number {
    if (this.#destroyed) throw new DestroyedError("Mvar");
    freesMemory(xt);
    Retry.unless(xt.get(this.#full) !== 0);
    xt.set(this.#full, 0);
    return xt.get(this.#value);
  }

  /**
   * In a transaction: takes the value, or returns undefined when empty.
   *
   * @example
   * ```ts
   * import { Mvar } from "@sabre/sabre/stm/data";
   * import { SharedHeap, Xt } from "@sabre/sabre";
   * const heap = SharedHeap.create();
   * const a = Mvar.create(heap, 1);
   * const b = Mvar.create(heap);
   * const taken = Xt.commit((xt) => [a.xtTryTake(xt), b.xtTryTake(xt)]);
   * console.assert(taken[0] === 1 && taken[1] === undefined && a.isEmpty());
   * ```
   */
  xtTryTake(xt: Xt): number | undefined {
    if (this.#destroyed) throw new DestroyedError("Mvar");
    freesMemory(xt);
    if (xt.get(this.#full) === 0) return undefined;
    xt.set(this.#full, 0);
    return xt.get(this.#value);
  }

  /**
   * In a transaction: the value without taking it, retrying while empty.
   *
   * @example
   * ```ts
   * import { Mvar } from "@sabre/sabre/stm/data";
   * import { SharedHeap, Xt } from "@sabre/sabre";
   * const heap = SharedHeap.create();
   * const x = Mvar.create(heap, 3);
   * const y = Mvar.create(heap, 4);
   * // Read both values at one instant, waiting until both are full.
   * const sum = Xt.commit((xt) => x.xtPeek(xt) + y.xtPeek(xt), { timeoutMs: 100 });
   * console.assert(sum === 7 && !x.isEmpty() && !y.isEmpty());
   * ```
   */
  xtPeek(xt: Xt): number {
    if (this.#destroyed) throw new DestroyedError("Mvar");
    Retry.unless(xt.get(this.#full) !== 0);
    return xt.get(this.#value);
  }

  /**
   * Puts `value`, waiting while full.
   *
   * @example
   * ```ts
   * import { Mvar } from "@sabre/sabre/stm/data";
   * import { SharedHeap, TimeoutError } from "@sabre/sabre";
   * const mvar = Mvar.create(SharedHeap.create());
   * mvar.put(1);
   * let timedOut = false;
   * try {
   *   mvar.put(2, { timeoutMs: 10 }); // full, and nobody takes
   * } catch (e) {
   *   timedOut = e instanceof TimeoutError;
   * }
   * console.assert(timedOut && mvar.take() === 1);
   * ```
   */
  put(value: number, options?: CommitOptions): void {
    timingOutAs("call Mvar.put", () => Xt.commit((xt) => this.xtPut(xt, value), options));
  }

  /**
   * Puts `value`, waiting (asynchronously) while full.
   *
   * @example
   * ```ts
   * import { Mvar } from "@sabre/sabre/stm/data";
   * import { SharedHeap } from "@sabre/sabre";
   * const mvar = Mvar.create(SharedHeap.create(), 1);
   * const putting = mvar.putAsync(2, { timeoutMs: 1000 }); // full: waits
   * console.assert(mvar.take() === 1);
   * await putting;
   * console.assert(mvar.take() === 2);
   * ```
   */
  putAsync(value: number, options?: CommitOptions): Promise<void> {
    return timingOutAsAsync(
      "call Mvar.putAsync",
      () => Xt.commitAsync((xt) => this.xtPut(xt, value), options),
    );
  }

  /**
   * Puts `value` if empty; returns whether it did.
   *
   * @example
   * ```ts
   * import { Mvar } from "@sabre/sabre/stm/data";
   * import { SharedHeap } from "@sabre/sabre";
   * const mvar = Mvar.create(SharedHeap.create());
   * console.assert(mvar.tryPut(1) && !mvar.tryPut(2) && mvar.take() === 1);
   * ```
   */
  tryPut(value: number): boolean {
    return Xt.commit((xt) => this.xtTryPut(xt, value));
  }

  /**
   * Takes the value, waiting while empty.
   *
   * @example
   * ```ts
   * import { Mvar } from "@sabre/sabre/stm/data";
   * import { SharedHeap } from "@sabre/sabre";
   * const mvar = Mvar.create(SharedHeap.create(), 4);
   * console.assert(mvar.take({ timeoutMs: 100 }) === 4 && mvar.isEmpty());
   * ```
   */
  take(options?: CommitOptions): number {
    return timingOutAs("call Mvar.take", () => Xt.commit((xt) => this.xtTake(xt), options));
  }

  /**
   * Takes the value, waiting (asynchronously) while empty.
   *
   * @example
   * ```ts
   * import { Mvar } from "@sabre/sabre/stm/data";
   * import { SharedHeap } from "@sabre/sabre";
   * const mvar = Mvar.create(SharedHeap.create());
   * const value = mvar.takeAsync({ timeoutMs: 1000 }); // empty: waits
   * mvar.put(8);
   * console.assert((await value) === 8 && mvar.isEmpty());
   * ```
   */
  takeAsync(options?: CommitOptions): Promise<number> {
    return timingOutAsAsync(
      "call Mvar.takeAsync",
      () => Xt.commitAsync((xt) => this.xtTake(xt), options),
    );
  }

  /**
   * Takes the value, or returns undefined when empty.
   *
   * @example
   * ```ts
   * import { Mvar } from "@sabre/sabre/stm/data";
   * import { SharedHeap } from "@sabre/sabre";
   * const mvar = Mvar.create(SharedHeap.create(), 1);
   * console.assert(mvar.tryTake() === 1 && mvar.tryTake() === undefined);
   * ```
   */
  tryTake(): number | undefined {
    return Xt.commit((xt) => this.xtTryTake(xt));
  }

  /**
   * The value without taking it, waiting while empty.
   *
   * @example
   * ```ts
   * import { Mvar } from "@sabre/sabre/stm/data";
   * import { SharedHeap } from "@sabre/sabre";
   * const mvar = Mvar.create(SharedHeap.create(), 5);
   * console.assert(mvar.peek({ timeoutMs: 100 }) === 5 && !mvar.isEmpty());
   * ```
   */
  peek(options?: CommitOptions): number {
    return timingOutAs("call Mvar.peek", () => Xt.commit((xt) => this.xtPeek(xt), options));
  }

  /**
   * The value without taking it, waiting (asynchronously) while empty.
   *
   * @example
   * ```ts
   * import { Mvar } from "@sabre/sabre/stm/data";
   * import { SharedHeap } from "@sabre/sabre";
   * const mvar = Mvar.create(SharedHeap.create());
   * const value = mvar.peekAsync({ timeoutMs: 1000 }); // empty: waits
   * mvar.put(6);
   * console.assert((await value) === 6 && !mvar.isEmpty());
   * ```
   */
  peekAsync(options?: CommitOptions): Promise<number> {
    return timingOutAsAsync(
      "call Mvar.peekAsync",
      () => Xt.commitAsync((xt) => this.xtPeek(xt), options),
    );
  }

  /**
   * The value without taking it, or undefined when empty.
   *
   * @example
   * ```ts
   * import { Mvar } from "@sabre/sabre/stm/data";
   * import { SharedHeap } from "@sabre/sabre";
   * const mvar = Mvar.create(SharedHeap.create());
   * console.assert(mvar.tryPeek() === undefined);
   * mvar.put(1);
   * console.assert(mvar.tryPeek() === 1 && !mvar.isEmpty());
   * ```
   */
  tryPeek(): number | undefined {
    return Xt.commit((xt) => this.xtTryPeek(xt));
  }

  /**
   * In a transaction: the value without taking it, or undefined when empty.
   *
   * @example
   * ```ts
   * import { Mvar } from "@sabre/sabre/stm/data";
   * import { SharedHeap, Xt } from "@sabre/sabre";
   * const heap = SharedHeap.create();
   * const a = Mvar.create(heap, 1);
   * const b = Mvar.create(heap);
   * console.assert(Xt.commit((xt) => [a.xtTryPeek(xt), b.xtTryPeek(xt)]).join() === "1,");
   * ```
   */
  xtTryPeek(xt: Xt): number | undefined {
    if (this.#destroyed) throw new DestroyedError("Mvar");
    return xt.get(this.#full) === 0 ? undefined : xt.get(this.#value);
  }

  /**
   * In a transaction: whether it is empty.
   *
   * @example
   * ```ts
   * import { Mvar } from "@sabre/sabre/stm/data";
   * import { SharedHeap, Xt } from "@sabre/sabre";
   * const mvar = Mvar.create(SharedHeap.create());
   * // Put only into an empty Mvar, in a larger transaction.
   * Xt.commit((xt) => {
   *   if (mvar.xtIsEmpty(xt)) mvar.xtPut(xt, 7);
   * });
   * console.assert(mvar.tryPeek() === 7);
   * ```
   */
  xtIsEmpty(xt: Xt): boolean {
    if (this.#destroyed) throw new DestroyedError("Mvar");
    return xt.get(this.#full) === 0;
  }

  /**
   * Gives the Mvar's memory back to the heap, through epochs, so
   * that a worker still inside an operation on it finishes safely. No
   * worker may use it afterwards: later calls on this object, a second
   * `destroy()` included, throw {@linkcode DestroyedError}, and `attach`
   * refuses its handle.
   *
   * @example
   * ```ts
   * import { Mvar } from "@sabre/sabre/stm/data";
   * import { SharedHeap } from "@sabre/sabre";
   * const mvar = Mvar.create(SharedHeap.create(), 1);
   * mvar.destroy();
   * ```
   */
  destroy(): void {
    if (this.#destroyed) throw new DestroyedError("Mvar", "destroy");
    // Done with either way, also when another object destroyed it first.
    this.#destroyed = true;
    retireRecord(this.#full.heap, this.#offset, TAG, "Mvar");
    this.#full.free();
    this.#value.free();
  }
}
