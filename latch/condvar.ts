/**
 * Condvar: waits for a condition guarded by a {@linkcode Mutex}.
 *
 * Words: a sequence number and a count of waiters. A waiter reads the
 * sequence while it still holds the mutex, announces itself, releases the
 * mutex and parks while the sequence is unchanged. A notifier bumps the
 * sequence and calls `Atomics.notify` only when someone announced itself.
 * Because the waiter read the sequence before releasing the mutex, a notify
 * that follows any change made under the mutex is never lost: either the
 * waiter sees the new sequence and does not park, or it is parked and woken.
 *
 * Like every condition variable, a wait may return without a notify
 * (spuriously): wait in a loop on the condition, or use `waitWhile`.
 *
 * @module
 */

import {
  attachObject,
  describeValue,
  DestroyedError,
  objectHandle,
  type Placement,
  placeObject,
  releaseObject,
  SabreError,
  type SharedHandle,
  type SharedHeap,
  tagOf,
  TimeoutError,
} from "../memory/mod.ts";
import { Mutex } from "./mutex.ts";
import { deadlineOf, type LockOptions, parkAsync, parkSync, timedOut } from "./parking.ts";

/** Layout version of this object; attach() refuses newer ones. */
const LAYOUT_VERSION = 1;
const KIND = "sabre.Condvar";
const TAG = tagOf("CVAR");
const BYTES = 12;
const SEQ = 1;
const WAITERS = 2;
/**
 * WAITERS once destroy() closed the condvar: so far below zero that no
 * count of waiters reaches it, so a wait that adds itself after the close
 * sees a negative count and leaves.
 */
const CLOSED = -0x40000000;

/**
 * Handle of a {@linkcode Condvar}.
 *
 * @example
 * ```ts
 * import { Condvar, type CondvarHandle } from "@sabre/sabre";
 * const handle: CondvarHandle = Condvar.create().handle;
 * console.assert(handle.kind === "sabre.Condvar");
 * ```
 */
export type CondvarHandle = SharedHandle<"sabre.Condvar">;

function checkMutex(mutex: unknown): asserts mutex is Mutex {
  if (!(mutex instanceof Mutex)) {
    throw new TypeError(
      `Cannot wait on Condvar as 'mutex' is not a Mutex: current value is ${describeValue(mutex)}`,
    );
  }
}

/**
 * Releases the caller's mutex after it announced itself as a waiter; if the
 * release throws (the caller did not hold the mutex), takes the announcement
 * back first, so that a misuse does not leave a phantom waiter behind.
 */
function releaseOrWithdraw(words: Int32Array, mutex: Mutex): void {
  try {
    mutex.release();
  } catch (e) {
    Atomics.sub(words, WAITERS, 1);
    if (e instanceof DestroyedError || mutex.isLocked) throw e;
    throw new SabreError(
      "Cannot wait on Condvar as its mutex is not locked: a wait must be called with the mutex held",
    );
  }
}

/**
 * A condition variable in shared memory, used with a {@linkcode Mutex}.
 *
 * `wait(mutex)` must be called while holding `mutex`; it releases the mutex,
 * parks until notified, and takes the mutex again before it returns (also
 * when it throws {@linkcode TimeoutError}). `waitAsync` parks with
 * `Atomics.waitAsync`. Waits may wake spuriously: prefer `waitWhile`.
 *
 * @example
 * ```ts
 * import { Condvar, Mutex, SharedHeap } from "@sabre/sabre";
 *
 * const heap = SharedHeap.create();
 * const mutex = Mutex.create(heap);
 * const ready = Condvar.create(heap);
 * const flag = heap.allocateZeroed(4);
 *
 * // Producer (any worker):
 * mutex.withLock(() => {
 *   heap.i32[flag >> 2] = 1;
 *   ready.notifyAll();
 * });
 * // Consumer (any worker):
 * mutex.acquire();
 * ready.waitWhile(mutex, () => heap.i32[flag >> 2] === 0, { timeoutMs: 1000 });
 * mutex.release();
 * ```
 */
export class Condvar {
  readonly #placement: Placement;
  readonly #words: Int32Array;
  /**
   * Set by destroy(), or where this object found the condvar destroyed by
   * another worker: every later call on this object throws.
   */
  #destroyed = false;

  private constructor(placement: Placement) {
    this.#placement = placement;
    this.#words = placement.words;
  }

  /**
   * Throws DestroyedError once this object knows that the condvar is gone,
   * or where its tag is: another worker destroyed it.
   */
  #checkTag(): void {
    if (this.#destroyed) throw new DestroyedError("Condvar");
    // A load on the line that the call touches anyway: another worker's
    // destroy() cleared the tag.
    if (Atomics.load(this.#words, 0) !== TAG) {
      this.#destroyed = true;
      throw new DestroyedError("Condvar");
    }
  }

  /**
   * Creates a condition variable in `heap`, or standalone.
   *
   * @example
   * ```ts
   * import { Condvar } from "@sabre/sabre";
   * Condvar.create().notifyOne(); // nobody waits: a no-op
   * ```
   */
  static create(heap?: SharedHeap): Condvar {
    return new Condvar(placeObject(heap, BYTES, TAG, "Condvar"));
  }

  /**
   * Rebuilds a condition variable from its handle in any worker.
   *
   * @example
   * ```ts
   * import { Condvar } from "@sabre/sabre";
   * const cv = Condvar.create();
   * console.assert(Condvar.attach(cv.handle).waiters === 0);
   * ```
   */
  static attach(handle: CondvarHandle): Condvar {
    return new Condvar(attachObject(handle, KIND, LAYOUT_VERSION, BYTES, TAG, "Condvar"));
  }

  /**
   * The handle to send to other workers.
   *
   * @example
   * ```ts
   * import { Condvar } from "@sabre/sabre";
   * console.assert(Condvar.create().handle.kind === "sabre.Condvar");
   * ```
   */
  get handle(): CondvarHandle {
    if (this.#destroyed) throw new DestroyedError("Condvar");
    return objectHandle(KIND, LAYOUT_VERSION, this.#placement);
  }

  /**
   * Workers waiting at this moment (a hint).
   *
   * @example
   * ```ts
   * import { Condvar } from "@sabre/sabre";
   * console.assert(Condvar.create().waiters === 0);
   * ```
   */
  get waiters(): number {
    this.#checkTag();
    return Math.max(0, Atomics.load(this.#words, WAITERS));
  }

  /**
   * Releases `mutex` (which the caller holds), parks until notified, then
   * re-acquires `mutex`. Throws {@linkcode TimeoutError}, holding the mutex,
   * when `timeoutMs` passes first.
   *
   * @example
   * ```ts
   * import { Condvar, Mutex, TimeoutError } from "@sabre/sabre";
   * const mutex = Mutex.create();
   * const cv = Condvar.create();
   * mutex.acquire();
   * try {
   *   cv.wait(mutex, { timeoutMs: 5 });
   * } catch (e) {
   *   console.assert(e instanceof TimeoutError && mutex.isLocked);
   * }
   * mutex.release();
   * ```
   */
  wait(mutex: Mutex, options?: LockOptions): void {
    checkMutex(mutex);
    const deadline = deadlineOf(options, "wait on Condvar");
    const words = this.#words;
    const seq = Atomics.load(words, SEQ);
    this.#addWaiter();
    releaseOrWithdraw(words, mutex);
    let inTime: boolean;
    try {
      inTime = parkSync(words, SEQ, seq, deadline);
    } finally {
      Atomics.sub(words, WAITERS, 1);
      mutex.acquire();
    }
    if (!inTime && Atomics.load(words, SEQ) === seq) timedOut("wait on Condvar", options);
  }

  /**
   * Async twin of `wait`: parks with `Atomics.waitAsync` and re-acquires the
   * mutex with `acquireAsync`.
   *
   * @example
   * ```ts
   * import { Condvar, Mutex } from "@sabre/sabre";
   * const mutex = Mutex.create();
   * const cv = Condvar.create();
   * await mutex.acquireAsync();
   * const waiting = cv.waitAsync(mutex);
   * mutex.withLock(() => cv.notifyOne());
   * await waiting;
   * mutex.release();
   * ```
   */
  async waitAsync(mutex: Mutex, options?: LockOptions): Promise<void> {
    checkMutex(mutex);
    const deadline = deadlineOf(options, "wait on Condvar");
    const words = this.#words;
    const seq = Atomics.load(words, SEQ);
    this.#addWaiter();
    releaseOrWithdraw(words, mutex);
    let inTime: boolean;
    try {
      inTime = await parkAsync(words, SEQ, seq, deadline);
    } finally {
      Atomics.sub(words, WAITERS, 1);
      await mutex.acquireAsync();
    }
    if (!inTime && Atomics.load(words, SEQ) === seq) timedOut("wait on Condvar", options);
  }

  /**
   * Waits while `condition()` is true. `condition` runs with `mutex` held;
   * so does the caller when this returns. Throws {@linkcode TimeoutError}
   * when the condition still holds at the deadline.
   *
   * @example
   * ```ts
   * import { Condvar, Mutex } from "@sabre/sabre";
   * const mutex = Mutex.create();
   * const cv = Condvar.create();
   * let items = 1;
   * mutex.acquire();
   * cv.waitWhile(mutex, () => items === 0);
   * items--;
   * mutex.release();
   * ```
   */
  waitWhile(mutex: Mutex, condition: () => boolean, options?: LockOptions): void {
    this.#checkTag();
    const deadline = deadlineOf(options, "wait on Condvar");
    try {
      while (condition()) {
        const left = deadline === Infinity ? undefined : Math.max(0, deadline - performance.now());
        this.wait(mutex, left === undefined ? undefined : { timeoutMs: left });
      }
    } catch (e) {
      // The error reports the caller's timeoutMs, not the time that was left.
      if (e instanceof TimeoutError) timedOut("wait on Condvar", options);
      throw e;
    }
  }

  /**
   * Async twin of `waitWhile`.
   *
   * @example
   * ```ts
   * import { Condvar, Mutex } from "@sabre/sabre";
   * const mutex = Mutex.create();
   * const cv = Condvar.create();
   * await mutex.acquireAsync();
   * await cv.waitWhileAsync(mutex, () => false);
   * mutex.release();
   * ```
   */
  async waitWhileAsync(
    mutex: Mutex,
    condition: () => boolean,
    options?: LockOptions,
  ): Promise<void> {
    this.#checkTag();
    const deadline = deadlineOf(options, "wait on Condvar");
    try {
      while (condition()) {
        const left = deadline === Infinity ? undefined : Math.max(0, deadline - performance.now());
        await this.waitAsync(mutex, left === undefined ? undefined : { timeoutMs: left });
      }
    } catch (e) {
      if (e instanceof TimeoutError) timedOut("wait on Condvar", options);
      throw e;
    }
  }

  /**
   * Wakes one waiter, if any.
   *
   * @example
   * ```ts
   * import { Condvar } from "@sabre/sabre";
   * Condvar.create().notifyOne();
   * ```
   */
  notifyOne(): void {
    this.#checkTag();
    const words = this.#words;
    Atomics.add(words, SEQ, 1);
    if (Atomics.load(words, WAITERS) !== 0) Atomics.notify(words, SEQ, 1);
  }

  /**
   * Wakes every waiter.
   *
   * @example
   * ```ts
   * import { Condvar } from "@sabre/sabre";
   * Condvar.create().notifyAll();
   * ```
   */
  notifyAll(): void {
    this.#checkTag();
    const words = this.#words;
    Atomics.add(words, SEQ, 1);
    if (Atomics.load(words, WAITERS) !== 0) Atomics.notify(words, SEQ);
  }

  /**
   * Frees the condition variable's memory in its heap (a standalone one's
   * buffer is left to the garbage collector). Every later call on this
   * object throws {@linkcode DestroyedError}, and so does a second
   * `destroy()` or a wait from any worker. Throws {@linkcode SabreError}
   * while workers wait on it.
   *
   * @example
   * ```ts
   * import { Condvar, SharedHeap } from "@sabre/sabre";
   * Condvar.create(SharedHeap.create()).destroy();
   * ```
   */
  destroy(): void {
    if (this.#destroyed) throw new DestroyedError("Condvar", "destroy");
    const words = this.#words;
    const waiters = Atomics.compareExchange(words, WAITERS, 0, CLOSED);
    if (waiters !== 0) {
      if (waiters < 0) {
        this.#destroyed = true;
        throw new DestroyedError("Condvar", "destroy");
      }
      throw new SabreError("Cannot destroy Condvar as workers wait on it");
    }
    this.#destroyed = true;
    releaseObject(this.#placement, TAG, "Condvar");
  }

  /**
   * Counts the caller as a waiter, or throws DestroyedError where destroy()
   * closed the count first (the CAS there and the add here order the two).
   */
  #addWaiter(): void {
    this.#checkTag();
    const words = this.#words;
    if (Atomics.add(words, WAITERS, 1) < 0) {
      Atomics.sub(words, WAITERS, 1);
      this.#destroyed = true;
      throw new DestroyedError("Condvar");
    }
  }
}
