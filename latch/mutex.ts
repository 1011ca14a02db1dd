/**
 * Mutex: a mutual-exclusion lock on one futex word, usable from every worker.
 *
 * State word: 0 unlocked, 1 locked, 2 locked and maybe contended. Lock takes
 * 0 → 1 with one CAS. When that fails it spins briefly, then swaps in 2 and
 * parks while the word reads 2; a worker that had to park always leaves 2
 * behind, so the unlock that follows knows to notify. Unlock swaps in 0 and
 * notifies one waiter only when the old state was 2. This is the classic
 * three-state futex mutex, plus a bounded spin before parking.
 *
 * Memory order: the acquiring CAS/exchange and the releasing exchange are
 * Atomics (sequentially consistent) on the same word, so everything a holder
 * wrote, plain writes included, happens-before everything the next holder
 * reads. Data guarded by a Mutex may therefore use plain reads and writes.
 *
 * Not robust: a worker terminated while holding the lock leaves it locked.
 * Use `timeoutMs` where that can happen.
 *
 * @module
 */

import {
  attachObject,
  DestroyedError,
  objectHandle,
  type Placement,
  placeObject,
  releaseObject,
  SabreError,
  type SharedHandle,
  type SharedHeap,
  tagOf,
} from "../memory/mod.ts";
import {
  deadlineOf,
  type LockOptions,
  parkAsync,
  parkSync,
  pause,
  requireSyncFunction,
  SPIN_LIMIT,
  timedOut,
} from "./parking.ts";

/** Layout version of this object; attach() refuses newer ones. */
const LAYOUT_VERSION = 1;
const KIND = "sabre.Mutex";
const TAG = tagOf("MUTX");
const BYTES = 8;
const STATE = 1;
const UNLOCKED = 0;
const LOCKED = 1;
const CONTENDED = 2;

/**
 * Handle of a {@linkcode Mutex}: send it with `postMessage`, then
 * `Mutex.attach(handle)`.
 *
 * @example
 * ```ts
 * import { Mutex, type MutexHandle } from "@sabre/sabre";
 * const handle: MutexHandle = Mutex.create().handle;
 * console.assert(handle.kind === "sabre.Mutex");
 * ```
 */
export type MutexHandle = SharedHandle<"sabre.Mutex">;

/**
 * Proof of holding a {@linkcode Mutex}. Dispose it (`using`) or call
 * `unlock()` to release the lock; releasing twice throws.
 *
 * @example
 * ```ts
 * import { Mutex } from "@sabre/sabre";
 * const mutex = Mutex.create();
 * {
 *   using _guard = mutex.lock();
 *   console.assert(mutex.isLocked);
 * }
 * console.assert(!mutex.isLocked);
 * ```
 */
export class MutexGuard implements Disposable {
  #mutex: Mutex | undefined;

  /** @internal Use `mutex.lock()`. */
  constructor(mutex: Mutex) {
    this.#mutex = mutex;
  }

  /**
   * Whether this guard still holds the lock.
   *
   * @example
   * ```ts
   * import { Mutex } from "@sabre/sabre";
   * const guard = Mutex.create().lock();
   * console.assert(guard.held);
   * guard.unlock();
   * console.assert(!guard.held);
   * ```
   */
  get held(): boolean {
    return this.#mutex !== undefined;
  }

  /**
   * Releases the lock. Throws {@linkcode SabreError} if this guard released it already.
   *
   * @example
   * ```ts
   * import { Mutex, SabreError } from "@sabre/sabre";
   * const mutex = Mutex.create();
   * const guard = mutex.lock();
   * guard.unlock();
   * let error: unknown;
   * try {
   *   guard.unlock();
   * } catch (e) {
   *   error = e;
   * }
   * console.assert(!mutex.isLocked && error instanceof SabreError);
   * ```
   */
  unlock(): void {
    const mutex = this.#mutex;
    if (mutex === undefined) {
      throw new SabreError("Cannot unlock Mutex as this guard has released it already");
    }
    this.#mutex = undefined;
    mutex.release();
  }

  /**
   * Releases the lock if this guard still holds it: what `using` calls, also when the block throws.
   *
   * @example
   * ```ts
   * import { Mutex } from "@sabre/sabre";
   * const mutex = Mutex.create();
   * try {
   *   using _guard = mutex.lock();
   *   throw new Error("failed inside the critical section");
   * } catch {
   *   // the guard was disposed as the block ended
   * }
   * console.assert(!mutex.isLocked);
   * ```
   */
  [Symbol.dispose](): void {
    if (this.#mutex !== undefined) this.unlock();
  }
}

/**
 * A mutual-exclusion lock in shared memory.
 *
 * `lock()` blocks with `Atomics.wait` (workers, and Deno's main thread);
 * `lockAsync()` waits with `Atomics.waitAsync` for code that must not block
 * its event loop; `tryLock()` never waits; `{ timeoutMs }` bounds the wait and
 * throws {@linkcode TimeoutError}. Each returns a guard for `using`. In hot
 * loops, `acquire()`/`release()` do the same without a guard object (a
 * `using` block costs about 0.13 µs in V8 itself).
 *
 * Not reentrant, and not robust: a worker terminated while holding the lock
 * leaves it locked.
 *
 * @example
 * ```ts
 * import { Mutex, SharedHeap } from "@sabre/sabre";
 *
 * const heap = SharedHeap.create();
 * const mutex = Mutex.create(heap); // or Mutex.create() for a standalone one
 * const counter = heap.allocateZeroed(4);
 * {
 *   using _guard = mutex.lock();
 *   heap.i32[counter >> 2] += 1; // plain access is fine under the lock
 * }
 * // In another worker: Mutex.attach(handle) with handle = mutex.handle.
 * console.assert(Mutex.attach(mutex.handle).tryLock() !== undefined);
 * ```
 */
export class Mutex {
  readonly #placement: Placement;
  readonly #words: Int32Array;
  /**
   * Set by destroy(): every later call on this object throws rather than
   * touch memory that the heap may have given to something else. The lock
   * paths test it only where the CAS alone would not stop them.
   */
  #destroyed = false;
  /** What the errors of the lock paths name: the structure that embeds this mutex, if any. */
  #lockWhat = "lock Mutex";

  private constructor(placement: Placement) {
    this.#placement = placement;
    this.#words = placement.words;
  }

  /**
   * Creates an unlocked mutex in `heap`, or in its own small buffer when no
   * heap is given.
   *
   * @example
   * ```ts
   * import { Mutex } from "@sabre/sabre";
   * console.assert(!Mutex.create().isLocked);
   * ```
   */
  static create(heap?: SharedHeap): Mutex {
    return new Mutex(placeObject(heap, BYTES, TAG, "Mutex"));
  }

  /**
   * Rebuilds a mutex from its handle, in any worker. Throws
   * {@linkcode HandleError} when the handle does not name a Mutex.
   *
   * @example
   * ```ts
   * import { Mutex } from "@sabre/sabre";
   * const mutex = Mutex.create();
   * const same = Mutex.attach(structuredClone(mutex.handle));
   * using _guard = mutex.lock();
   * console.assert(same.isLocked);
   * ```
   */
  static attach(handle: MutexHandle): Mutex {
    return new Mutex(attachObject(handle, KIND, LAYOUT_VERSION, BYTES, TAG, "Mutex"));
  }

  /**
   * @internal For structures that embed a Mutex in their own words: a mutex
   * over the 8 bytes at `offset`, initialized when `init` is true. Its
   * errors for bad options and timeouts name `lockWhat` ("write SeqLock"),
   * the operation that the user called, not the mutex.
   */
  static embedded(
    sab: SharedArrayBuffer,
    offset: number,
    init: boolean,
    lockWhat: string,
  ): Mutex {
    const words = new Int32Array(sab, offset, 2);
    if (init) Atomics.store(words, 0, TAG);
    else if (Atomics.load(words, 0) !== TAG) {
      throw new SabreError(`Cannot use the lock at offset ${offset} as it holds no Mutex`);
    }
    const mutex = new Mutex({ sab, offset, words, heap: undefined });
    mutex.#lockWhat = lockWhat;
    return mutex;
  }

  /**
   * The handle to send to other workers.
   *
   * @example
   * ```ts
   * import { Mutex } from "@sabre/sabre";
   * const mutex = Mutex.create();
   * // worker.postMessage(mutex.handle)
   * console.assert(mutex.handle.offset === 0);
   * ```
   */
  get handle(): MutexHandle {
    if (this.#destroyed) throw new DestroyedError("Mutex");
    return objectHandle(KIND, LAYOUT_VERSION, this.#placement);
  }

  /**
   * Whether some worker holds the lock at this moment (a hint: it may change
   * right after).
   *
   * @example
   * ```ts
   * import { Mutex } from "@sabre/sabre";
   * const mutex = Mutex.create();
   * mutex.acquire();
   * console.assert(mutex.isLocked);
   * mutex.release();
   * ```
   */
  get isLocked(): boolean {
    if (this.#destroyed) throw new DestroyedError("Mutex");
    return Atomics.load(this.#words, STATE) !== UNLOCKED;
  }

  /**
   * Blocks until the lock is free, takes it, and returns the guard. Throws
   * {@linkcode TimeoutError} when `timeoutMs` passes first.
   *
   * @example
   * ```ts
   * import { Mutex } from "@sabre/sabre";
   * const mutex = Mutex.create();
   * using _guard = mutex.lock({ timeoutMs: 100 });
   * ```
   */
  lock(options?: LockOptions): MutexGuard {
    this.acquire(options);
    return new MutexGuard(this);
  }

  /**
   * Takes the lock if it is free, without waiting.
   *
   * @example
   * ```ts
   * import { Mutex } from "@sabre/sabre";
   * const mutex = Mutex.create();
   * const guard = mutex.tryLock();
   * console.assert(guard !== undefined && mutex.tryLock() === undefined);
   * guard?.unlock();
   * ```
   */
  tryLock(): MutexGuard | undefined {
    return this.tryAcquire() ? new MutexGuard(this) : undefined;
  }

  /**
   * Waits with `Atomics.waitAsync`, so the calling thread's event loop keeps
   * running. Rejects with {@linkcode TimeoutError} when `timeoutMs` passes.
   *
   * @example
   * ```ts
   * import { Mutex } from "@sabre/sabre";
   * const mutex = Mutex.create();
   * using _guard = await mutex.lockAsync();
   * ```
   */
  async lockAsync(options?: LockOptions): Promise<MutexGuard> {
    await this.acquireAsync(options);
    return new MutexGuard(this);
  }

  /**
   * Runs `fn` while holding the lock, and releases it however `fn` ends.
   *
   * @example
   * ```ts
   * import { Mutex } from "@sabre/sabre";
   * const mutex = Mutex.create();
   * console.assert(mutex.withLock(() => 42) === 42);
   * ```
   */
  withLock<T>(fn: () => T, options?: LockOptions): T {
    requireSyncFunction(fn, "Mutex.withLock", "use withLockAsync");
    this.acquire(options);
    try {
      return fn();
    } finally {
      this.release();
    }
  }

  /**
   * Waits for the lock as `lockAsync()` does, runs `fn`, and releases the
   * lock once `fn`'s result settles: an async `fn` holds the lock across
   * its awaits, and other tasks of this worker that want it wait their
   * turn. Rejects with {@linkcode TimeoutError}, without running `fn`, when
   * `timeoutMs` passes first.
   *
   * @example
   * ```ts
   * import { Mutex } from "@sabre/sabre";
   * const mutex = Mutex.create();
   * const log: string[] = [];
   * const step = async (name: string) => {
   *   log.push(`${name} in`);
   *   await new Promise((resolve) => setTimeout(resolve, 1));
   *   log.push(`${name} out`);
   * };
   * await Promise.all([mutex.withLockAsync(() => step("a")), mutex.withLockAsync(() => step("b"))]);
   * console.assert(log.join() === "a in,a out,b in,b out");
   * ```
   */
  async withLockAsync<T>(fn: () => T | PromiseLike<T>, options?: LockOptions): Promise<T> {
    await this.acquireAsync(options);
    try {
      return await fn();
    } finally {
      this.release();
    }
  }

  /**
   * `lock()` without a guard object: pair it with `release()`.
   *
   * @example
   * ```ts
   * import { Mutex } from "@sabre/sabre";
   * const mutex = Mutex.create();
   * mutex.acquire();
   * try {
   *   // critical section
   * } finally {
   *   mutex.release();
   * }
   * ```
   */
  acquire(options?: LockOptions): void {
    if (
      options !== undefined || this.#destroyed ||
      Atomics.compareExchange(this.#words, STATE, UNLOCKED, LOCKED) !== UNLOCKED
    ) {
      this.#acquireSlow(options);
    }
  }

  /**
   * `tryLock()` without a guard object.
   *
   * @example
   * ```ts
   * import { Mutex } from "@sabre/sabre";
   * const mutex = Mutex.create();
   * if (mutex.tryAcquire()) mutex.release();
   * ```
   */
  tryAcquire(): boolean {
    if (this.#destroyed) throw new DestroyedError("Mutex");
    return Atomics.compareExchange(this.#words, STATE, UNLOCKED, LOCKED) === UNLOCKED;
  }

  /**
   * `lockAsync()` without a guard object.
   *
   * @example
   * ```ts
   * import { Mutex } from "@sabre/sabre";
   * const mutex = Mutex.create();
   * await mutex.acquireAsync();
   * mutex.release();
   * ```
   */
  async acquireAsync(options?: LockOptions): Promise<void> {
    if (this.#destroyed) throw new DestroyedError("Mutex");
    const words = this.#words;
    const deadline = deadlineOf(options, this.#lockWhat);
    if (Atomics.compareExchange(words, STATE, UNLOCKED, LOCKED) === UNLOCKED) return;
    this.#checkTag();
    for (;;) {
      if (Atomics.exchange(words, STATE, CONTENDED) === UNLOCKED) return;
      if (!(await parkAsync(words, STATE, CONTENDED, deadline))) {
        // Last try, which also leaves CONTENDED behind: we may have consumed
        // a notify meant for a waiter still parked (see #acquireSlow).
        if (Atomics.exchange(words, STATE, CONTENDED) === UNLOCKED) return;
        timedOut(this.#lockWhat, options);
      }
    }
  }

  /**
   * Releases a lock taken with `acquire()`, `tryAcquire()` or
   * `acquireAsync()`. Throws when the mutex is not locked. Any worker may
   * release: the mutex does not track its owner.
   *
   * @example
   * ```ts
   * import { Mutex } from "@sabre/sabre";
   * const mutex = Mutex.create();
   * mutex.acquire();
   * mutex.release();
   * ```
   */
  release(): void {
    if (this.#destroyed) throw new DestroyedError("Mutex");
    const words = this.#words;
    const was = Atomics.exchange(words, STATE, UNLOCKED);
    if (was === CONTENDED) {
      Atomics.notify(words, STATE, 1);
    } else if (was !== LOCKED) {
      throw new SabreError("Cannot release Mutex as it is not locked");
    }
  }

  /**
   * Frees the mutex's memory in its heap (a standalone mutex's buffer is
   * left to the garbage collector). No worker may use it afterwards: every
   * later call on this object throws {@linkcode DestroyedError}, and so does
   * a second `destroy()` from any worker, or a lock that another worker's
   * object would wait for. Throws {@linkcode SabreError} while the mutex is
   * locked.
   *
   * @example
   * ```ts
   * import { Mutex, SharedHeap } from "@sabre/sabre";
   * const mutex = Mutex.create(SharedHeap.create());
   * mutex.destroy();
   * ```
   */
  destroy(): void {
    if (this.#destroyed) throw new DestroyedError("Mutex", "destroy");
    const words = this.#words;
    // Taken for good: a worker that would lock it from here on fails its
    // CAS and reaches #checkTag, which finds the tag cleared below.
    if (Atomics.compareExchange(words, STATE, UNLOCKED, LOCKED) !== UNLOCKED) {
      this.#checkTag("destroy");
      throw new SabreError("Cannot destroy Mutex as it is locked");
    }
    this.#destroyed = true;
    releaseObject(this.#placement, TAG, "Mutex");
  }

  /**
   * Throws DestroyedError where the tag is gone: a mutex that another
   * worker destroyed, which no unlock would ever wake this one from.
   */
  #checkTag(operation: "use" | "destroy" = "use"): void {
    if (Atomics.load(this.#words, 0) !== TAG) {
      this.#destroyed = true;
      throw new DestroyedError("Mutex", operation);
    }
  }

  #acquireSlow(options: LockOptions | undefined): void {
    if (this.#destroyed) throw new DestroyedError("Mutex");
    const words = this.#words;
    const deadline = deadlineOf(options, this.#lockWhat);
    if (Atomics.compareExchange(words, STATE, UNLOCKED, LOCKED) === UNLOCKED) return;
    this.#checkTag();
    for (let spin = 0; spin < SPIN_LIMIT; spin++) {
      pause();
      const seen = Atomics.load(words, STATE);
      if (
        seen === UNLOCKED &&
        Atomics.compareExchange(words, STATE, UNLOCKED, LOCKED) === UNLOCKED
      ) return;
      if (seen === CONTENDED) break; // others are parked already: join them
    }
    // Leave CONTENDED behind when we take it: a parked worker may remain.
    while (Atomics.exchange(words, STATE, CONTENDED) !== UNLOCKED) {
      if (!parkSync(words, STATE, CONTENDED, deadline)) {
        // Last try. It must leave CONTENDED behind even when it fails: a
        // notify may have woken us just as our deadline passed, and a worker
        // that then took the lock with a plain 0 -> 1 CAS would release it
        // without notifying, stranding whoever still sleeps behind us.
        if (Atomics.exchange(words, STATE, CONTENDED) === UNLOCKED) return;
        timedOut(this.#lockWhat, options);
      }
    }
  }
}
