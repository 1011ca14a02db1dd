/**
 * StmPromise: a write-once shared value, kcas_data's `Promise` (named so as
 * not to shadow JavaScript's `Promise`). Built on two Locs.
 *
 * @module
 */

import {
  checkHeap,
  describeValue,
  DestroyedError,
  SabreError,
  type SharedHandle,
  type SharedHeap,
  tagOf,
} from "../../memory/mod.ts";
import { type CommitOptions, Loc, Retry, Xt } from "../mod.ts";
import { checkNumber, placeRecord, readRecord, retireRecord } from "./_record.ts";
import { timingOutAs, timingOutAsAsync } from "./_alloc.ts";

const KIND = "sabre.stm.Promise";
const TAG = tagOf("SPRM");

/**
 * Handle of a {@linkcode StmPromise}.
 *
 * @example
 * ```ts
 * import { StmPromise, type StmPromiseHandle } from "@sabre/sabre/stm/data";
 * import { SharedHeap } from "@sabre/sabre";
 * const handle: StmPromiseHandle = StmPromise.create(SharedHeap.create()).handle;
 * console.assert(!StmPromise.attach(handle).isResolved());
 * ```
 */
export type StmPromiseHandle = SharedHandle<"sabre.stm.Promise">;

/**
 * A value that is resolved once, by any worker, and awaited by any number
 * of workers: `await` blocks (`Atomics.wait`), `awaitAsync` does not block
 * the event loop, both take `{ timeoutMs }`; `xtAwait` composes into a
 * transaction.
 *
 * @example
 * ```ts
 * import { StmPromise } from "@sabre/sabre/stm/data";
 * import { SharedHeap } from "@sabre/sabre";
 *
 * const answer = StmPromise.create(SharedHeap.create());
 * const later = answer.awaitAsync();
 * answer.resolve(42);
 * console.assert((await later) === 42 && answer.await() === 42 && answer.peek() === 42);
 * console.assert(!answer.tryResolve(7));
 * ```
 */
export class StmPromise {
  readonly #state: Loc;
  readonly #value: Loc;
  readonly #offset: number;
  /** Set by destroy(): every later call on this object throws. */
  #destroyed = false;

  private constructor(state: Loc, value: Loc, offset: number) {
    this.#state = state;
    this.#value = value;
    this.#offset = offset;
  }

  /**
   * Creates an unresolved promise in `heap`.
   *
   * @example
   * ```ts
   * import { StmPromise } from "@sabre/sabre/stm/data";
   * import { SharedHeap } from "@sabre/sabre";
   * const promise = StmPromise.create(SharedHeap.create());
   * console.assert(!promise.isResolved() && promise.peek() === undefined);
   * ```
   */
  static create(heap: SharedHeap): StmPromise {
    checkHeap(heap, "create StmPromise");
    const state = Loc.make(heap, 0, { kind: "i32" });
    const value = Loc.make(heap, 0);
    return new StmPromise(state, value, placeRecord(heap, TAG, [state, value], 0));
  }

  /**
   * Rebuilds a promise from its handle; `HandleError` when it names none.
   *
   * @example
   * ```ts
   * import { StmPromise } from "@sabre/sabre/stm/data";
   * import { SharedHeap } from "@sabre/sabre";
   * const promise = StmPromise.create(SharedHeap.create());
   * // In another worker: StmPromise.attach(handle), the handle sent with postMessage.
   * const same = StmPromise.attach(promise.handle);
   * promise.resolve(42);
   * console.assert(same.peek() === 42);
   * ```
   */
  static attach(handle: StmPromiseHandle): StmPromise {
    const { locs, offset } = readRecord(handle, KIND, TAG, "StmPromise");
    return new StmPromise(locs[0], locs[1], offset);
  }

  /**
   * The handle to send to other workers.
   *
   * @example
   * ```ts
   * import { StmPromise } from "@sabre/sabre/stm/data";
   * import { SharedHeap } from "@sabre/sabre";
   * const promise = StmPromise.create(SharedHeap.create());
   * // worker.postMessage(promise.handle)
   * console.assert(promise.handle.kind === "sabre.stm.Promise");
   * ```
   */
  get handle(): StmPromiseHandle {
    if (this.#destroyed) throw new DestroyedError("StmPromise");
    return this.#state.heap.handleOf(KIND, 1, this.#offset);
  }

  /**
   * Whether it has been resolved.
   *
   * @example
   * ```ts
   * import { StmPromise } from "@sabre/sabre/stm/data";
   * import { SharedHeap } from "@sabre/sabre";
   * const promise = StmPromise.create(SharedHeap.create());
   * console.assert(!promise.isResolved());
   * promise.resolve(1);
   * console.assert(promise.isResolved());
   * ```
   */
  isResolved(): boolean {
    if (this.#destroyed) throw new DestroyedError("StmPromise");
    return this.#state.get() !== 0;
  }

  /**
   * In a transaction: resolves with `value` if unresolved; returns whether it did.
   *
   * @example
   * ```ts
   * import { StmPromise } from "@sabre/sabre/stm/data";
   * import { SharedHeap, Xt } from "@sabre/sabre";
   * const heap = SharedHeap.create();
   * const a = StmPromise.create(heap);
   * const b = StmPromise.create(heap);
   * // Resolve both in one commit.
   * console.assert(Xt.commit((xt) => a.xtTryResolve(xt, 1) && b.xtTryResolve(xt, 2)));
   * console.assert(a.peek() === 1 && b.peek() === 2);
   * console.assert(!Xt.commit((xt) => a.xtTryResolve(xt, 3)) && a.peek() === 1);
   * ```
   */
  xtTryResolve(xt: Xt, value: number): boolean {
    if (this.#destroyed) throw new DestroyedError("StmPromise");
    checkNumber(value, "resolve StmPromise");
    if (xt.get(this.#state) !== 0) return false;
    xt.set(this.#state, 1);
    xt.set(this.#value, value);
    return true;
  }

  /**
   * In a transaction: the value, retrying until it is resolved.
   *
   * @example
   * ```ts
   * import { StmPromise } from "@sabre/sabre/stm/data";
   * import { SharedHeap, Xt } from "@sabre/sabre";
   * const heap = SharedHeap.create();
   * const slow = StmPromise.create(heap);
   * const fast = StmPromise.create(heap);
   * fast.resolve(1);
   * // The value of whichever is resolved; waits while neither is.
   * const first = Xt.commit(
   *   Xt.first([(xt) => slow.xtAwait(xt), (xt) => fast.xtAwait(xt)]),
   *   { timeoutMs: 100 },
   * );
   * console.assert(first === 1);
   * ```
   */
  xtAwait(xt: Xt): number {
    if (this.#destroyed) throw new DestroyedError("StmPromise");
    Retry.unless(xt.get(this.#state) !== 0);
    return xt.get(this.#value);
  }

  /**
   * Resolves with `value` if unresolved; returns whether it did.
   *
   * @example
   * ```ts
   * import { StmPromise } from "@sabre/sabre/stm/data";
   * import { SharedHeap } from "@sabre/sabre";
   * const promise = StmPromise.create(SharedHeap.create());
   * console.assert(promise.tryResolve(1) && !promise.tryResolve(2) && promise.peek() === 1);
   * ```
   */
  tryResolve(value: number): boolean {
    return Xt.commit((xt) => this.xtTryResolve(xt, value));
  }

  /**
   * Resolves with `value`; throws `SabreError` when it was already resolved.
   *
   * @example
   * ```ts
   * import { StmPromise } from "@sabre/sabre/stm/data";
   * import { SabreError, SharedHeap } from "@sabre/sabre";
   * const promise = StmPromise.create(SharedHeap.create());
   * promise.resolve(1);
   * let threw = false;
   * try {
   *   promise.resolve(2);
   * } catch (e) {
   *   threw = e instanceof SabreError;
   * }
   * console.assert(threw && promise.peek() === 1);
   * ```
   */
  resolve(value: number): void {
    if (!this.tryResolve(value)) {
      throw new SabreError(
        `Cannot resolve StmPromise as it is already resolved: current value is ${
          describeValue(this.peek())
        }`,
      );
    }
  }

  /**
   * The value, waiting until it is resolved.
   *
   * @example
   * ```ts
   * import { StmPromise } from "@sabre/sabre/stm/data";
   * import { SharedHeap, TimeoutError } from "@sabre/sabre";
   * const promise = StmPromise.create(SharedHeap.create());
   * let timedOut = false;
   * try {
   *   promise.await({ timeoutMs: 10 }); // unresolved, and nobody resolves it
   * } catch (e) {
   *   timedOut = e instanceof TimeoutError;
   * }
   * promise.resolve(3);
   * console.assert(timedOut && promise.await() === 3);
   * ```
   */
  await(options?: CommitOptions): number {
    return timingOutAs("call StmPromise.await", () => Xt.commit((xt) => this.xtAwait(xt), options));
  }

  /**
   * The value, waiting (asynchronously) until it is resolved.
   *
   * @example
   * ```ts
   * import { StmPromise } from "@sabre/sabre/stm/data";
   * import { SharedHeap } from "@sabre/sabre";
   * const promise = StmPromise.create(SharedHeap.create());
   * const value = promise.awaitAsync({ timeoutMs: 1000 }); // unresolved: waits
   * promise.resolve(5);
   * console.assert((await value) === 5);
   * ```
   */
  awaitAsync(options?: CommitOptions): Promise<number> {
    return timingOutAsAsync(
      "call StmPromise.awaitAsync",
      () => Xt.commitAsync((xt) => this.xtAwait(xt), options),
    );
  }

  /**
   * The value, or undefined while unresolved.
   *
   * @example
   * ```ts
   * import { StmPromise } from "@sabre/sabre/stm/data";
   * import { SharedHeap } from "@sabre/sabre";
   * const promise = StmPromise.create(SharedHeap.create());
   * console.assert(promise.peek() === undefined);
   * promise.resolve(2);
   * console.assert(promise.peek() === 2);
   * ```
   */
  peek(): number | undefined {
    return Xt.commit((xt) => this.xtPeek(xt));
  }

  /**
   * In a transaction: the value, or undefined while unresolved.
   *
   * @example
   * ```ts
   * import { StmPromise } from "@sabre/sabre/stm/data";
   * import { SharedHeap, Xt } from "@sabre/sabre";
   * const promise = StmPromise.create(SharedHeap.create());
   * promise.resolve(4);
   * console.assert(Xt.commit((xt) => promise.xtPeek(xt)) === 4);
   * ```
   */
  xtPeek(xt: Xt): number | undefined {
    if (this.#destroyed) throw new DestroyedError("StmPromise");
    return xt.get(this.#state) === 0 ? undefined : xt.get(this.#value);
  }

  /**
   * In a transaction: whether it has been resolved.
   *
   * @example
   * ```ts
   * import { StmPromise } from "@sabre/sabre/stm/data";
   * import { SharedHeap, Xt } from "@sabre/sabre";
   * const promise = StmPromise.create(SharedHeap.create());
   * console.assert(!Xt.commit((xt) => promise.xtIsResolved(xt)));
   * ```
   */
  xtIsResolved(xt: Xt): boolean {
    if (this.#destroyed) throw new DestroyedError("StmPromise");
    return xt.get(this.#state) !== 0;
  }

  /**
   * Gives the promise's memory back to the heap, through epochs, so
   * that a worker still inside an operation on it finishes safely. No
   * worker may use it afterwards: later calls on this object, a second
   * `destroy()` included, throw {@linkcode DestroyedError}, and `attach`
   * refuses its handle.
   *
   * @example
   * ```ts
   * import { StmPromise } from "@sabre/sabre/stm/data";
   * import { SharedHeap } from "@sabre/sabre";
   * const promise = StmPromise.create(SharedHeap.create());
   * promise.resolve(1);
   * promise.destroy();
   * ```
   */
  destroy(): void {
    if (this.#destroyed) throw new DestroyedError("StmPromise", "destroy");
    // Done with either way, also when another object destroyed it first.
    this.#destroyed = true;
    retireRecord(this.#state.heap, this.#offset, TAG, "StmPromise");
    this.#state.free();
    this.#value.free();
  }
}
