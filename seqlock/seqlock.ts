/**
 * SeqLock: a sequence lock. Writers are serialized by a {@linkcode Mutex}
 * and make the sequence odd while they write; readers write nothing (but a
 * count when they park), read
 * the sequence, read the data, and retry when the sequence moved.
 *
 * ## Why the data reads must be Atomics
 *
 * The C and Rust seqlock reads the data with plain loads between two
 * sequence loads. JavaScript does not order plain reads against Atomics, and
 * on ARM64 `Atomics.load` is a load-acquire with no fence before it, so a
 * plain data load may be satisfied after the second sequence load and see a
 * write that the check missed. So: the writer stores protected words with
 * `Atomics.store`, the reader loads them with `Atomics.load` (pattern (a) of
 * the design guide). Every access is then sequentially consistent, and a
 * reader that saw any word of a write also sees the writer's odd sequence on
 * its re-check, so it retries. Float64 values are two Int32 words.
 *
 * ## Words
 *
 * `[tag, seq, mutex (2 words), parked]`. seq is even at rest and odd while a
 * writer is inside; each write adds 2. A reader that meets an odd sequence
 * spins briefly, then counts itself in `parked` and parks on the sequence
 * word until the writer's notify at the end of the write (or its timeout).
 * That count is the only shared memory a reader ever writes, and only when
 * it parks; a writer calls `Atomics.notify` only when the count is not 0.
 * A reader terminated while parked leaves the count raised: writers then
 * notify on every write, as they would without the count.
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
  TimeoutError,
} from "../memory/mod.ts";
import { deadlineOf, type LockOptions, Mutex, parkAsync, pause, SPIN_LIMIT } from "../latch/mod.ts";
import { requireSyncFunction, waitBlocking } from "../latch/parking.ts";

/** Layout version of this object; attach() accepts only this one. */
const LAYOUT_VERSION = 2;
const KIND = "sabre.SeqLock";
const TAG = tagOf("SEQL");
const BYTES = 20;
/** Word index of the sequence number. */
export const SEQ = 1;
/** Byte offset of the embedded writer mutex. */
export const MUTEX_OFFSET = 8;
/** Word index of the count of readers parked on the sequence. */
const PARKED = 4;
/** What `#readAt` answers when the read must be tried again. */
const AGAIN: unique symbol = Symbol("again");

/**
 * Throws DestroyedError where the tag in word 0 is gone: `what` was
 * destroyed by another worker, which left its sequence odd for good.
 */
function checkTag(words: Int32Array, tag: number, what: string): void {
  if (Atomics.load(words, 0) !== tag) throw new DestroyedError(what);
}

/**
 * Takes `writers`, the mutex embedded in a SeqLock or SeqCell (`what`):
 * the mutex of one that another worker destroyed is gone with it. (Its
 * errors for bad options and timeouts name `what` already: see
 * `Mutex.embedded`.)
 */
export function acquireWriters(
  writers: Mutex,
  options: LockOptions | undefined,
  what: string,
): void {
  try {
    writers.acquire(options);
  } catch (e) {
    throw e instanceof DestroyedError ? new DestroyedError(what) : e;
  }
}

/** Async twin of {@linkcode acquireWriters}. */
export async function acquireWritersAsync(
  writers: Mutex,
  options: LockOptions | undefined,
  what: string,
): Promise<void> {
  try {
    await writers.acquireAsync(options);
  } catch (e) {
    throw e instanceof DestroyedError ? new DestroyedError(what) : e;
  }
}

/** The sequence, after spinning up to SPIN_LIMIT steps while it is odd. */
function spinWhileOdd(words: Int32Array): number {
  let seq = Atomics.load(words, SEQ);
  for (let spin = 0; (seq & 1) === 1 && spin < SPIN_LIMIT; spin++) {
    pause();
    seq = Atomics.load(words, SEQ);
  }
  return seq;
}

/**
 * Waits while `words[SEQ]` is odd (a writer is inside) and returns the even
 * sequence. Spins first; then announces itself in `words[parked]` and parks
 * until the writer's notify. Throws TimeoutError (reporting `timeoutMs`,
 * the caller's option) after `deadline`. Shared by SeqLock and SeqCell,
 * which keep their count of parked readers at different words.
 */
export function waitEvenSequence(
  words: Int32Array,
  parked: number,
  tag: number,
  deadline: number,
  what: string,
  timeoutMs = 0,
): number {
  let seq = spinWhileOdd(words);
  if ((seq & 1) === 0) return seq;
  checkTag(words, tag, what);
  // Announce before the next look at the sequence: a writer that ends its
  // write after that look then sees the count and notifies (all of it
  // seq-cst, so one of the two sees the other), and one that ended before it
  // left an even sequence, so we do not park.
  Atomics.add(words, parked, 1);
  try {
    for (;;) {
      seq = Atomics.load(words, SEQ);
      if ((seq & 1) === 0) return seq;
      const left = deadline - performance.now();
      if (left <= 0) throw new TimeoutError(`read ${what}`, timeoutMs);
      waitBlocking(words, SEQ, seq, left === Infinity ? undefined : left);
    }
  } finally {
    Atomics.sub(words, parked, 1);
  }
}

/** Async twin of {@linkcode waitEvenSequence}: parks with `Atomics.waitAsync`. */
export async function waitEvenSequenceAsync(
  words: Int32Array,
  parked: number,
  tag: number,
  deadline: number,
  what: string,
  timeoutMs = 0,
): Promise<number> {
  let seq = spinWhileOdd(words);
  if ((seq & 1) === 0) return seq;
  checkTag(words, tag, what);
  Atomics.add(words, parked, 1); // as in waitEvenSequence
  try {
    for (;;) {
      seq = Atomics.load(words, SEQ);
      if ((seq & 1) === 0) return seq;
      if (!(await parkAsync(words, SEQ, seq, deadline))) {
        seq = Atomics.load(words, SEQ);
        if ((seq & 1) === 0) return seq;
        throw new TimeoutError(`read ${what}`, timeoutMs);
      }
    }
  } finally {
    Atomics.sub(words, parked, 1);
  }
}

/**
 * destroy() of a SeqLock or SeqCell (`what`), up to the release of its
 * block: throws DestroyedError where its tag is gone, and SabreError during
 * a write or while a writer waits. Otherwise the writers' mutex is taken for
 * good (its own destroy(): one CAS from unlocked, and its tag cleared) and
 * the sequence is left odd, so that another worker's reader or writer waits,
 * and its wait finds a tag cleared.
 */
export function destroySequenced(
  words: Int32Array,
  writers: Mutex,
  what: string,
  tag: number,
): void {
  if (Atomics.load(words, 0) !== tag) throw new DestroyedError(what, "destroy");
  const busy = `Cannot destroy ${what} during a write or while a writer waits`;
  if ((Atomics.load(words, SEQ) & 1) === 1) throw new SabreError(busy);
  try {
    writers.destroy();
  } catch (e) {
    throw e instanceof DestroyedError ? new DestroyedError(what, "destroy") : new SabreError(busy);
  }
  Atomics.add(words, SEQ, 1);
}

/**
 * Ends a write: the sequence becomes even again, and the readers parked on
 * it (counted in `words[parked]`) wake. With none parked it skips
 * `Atomics.notify`, which costs a lock of the engine's waiter list even
 * when nobody waits.
 */
export function endWrite(words: Int32Array, parked: number): void {
  Atomics.add(words, SEQ, 1);
  if (Atomics.load(words, parked) !== 0) Atomics.notify(words, SEQ);
}

/**
 * Handle of a {@linkcode SeqLock}.
 *
 * @example
 * ```ts
 * import { SeqLock, type SeqLockHandle } from "@sabre/sabre";
 * const handle: SeqLockHandle = SeqLock.create().handle;
 * console.assert(handle.kind === "sabre.SeqLock");
 * ```
 */
export type SeqLockHandle = SharedHandle<"sabre.SeqLock">;

/**
 * A write section of a {@linkcode SeqLock}: dispose it (or call `unlock()`)
 * to publish the write.
 *
 * @example
 * ```ts
 * import { SeqLock } from "@sabre/sabre";
 * const lock = SeqLock.create();
 * {
 *   using _w = lock.writeLock();
 *   console.assert(lock.sequence % 2 === 1);
 * }
 * console.assert(lock.sequence === 2);
 * ```
 */
export class SeqLockWriteGuard implements Disposable {
  #lock: SeqLock | undefined;

  /** @internal Use `lock.writeLock()`. */
  constructor(lock: SeqLock) {
    this.#lock = lock;
  }

  /**
   * Whether the write section is still open.
   *
   * @example
   * ```ts
   * import { SeqLock } from "@sabre/sabre";
   * const guard = SeqLock.create().writeLock();
   * console.assert(guard.held);
   * guard.unlock();
   * console.assert(!guard.held);
   * ```
   */
  get held(): boolean {
    return this.#lock !== undefined;
  }

  /**
   * Ends the write section, publishing the write. Throws {@linkcode SabreError} if ended already.
   *
   * @example
   * ```ts
   * import { SeqLock } from "@sabre/sabre";
   * const lock = SeqLock.create();
   * const guard = lock.writeLock();
   * console.assert(lock.tryRead(() => "read") === undefined); // a write is open
   * guard.unlock();
   * console.assert(lock.sequence === 2 && lock.tryRead(() => "read") === "read");
   * ```
   */
  unlock(): void {
    const lock = this.#lock;
    if (lock === undefined) {
      throw new SabreError("Cannot unlock SeqLock as this write guard has released it already");
    }
    this.#lock = undefined;
    lock.endWrite();
  }

  /**
   * Ends the write section if still open: what `using` calls.
   *
   * @example
   * ```ts
   * import { SeqLock } from "@sabre/sabre";
   * const lock = SeqLock.create();
   * const cell = new Int32Array(new SharedArrayBuffer(4));
   * {
   *   using _w = lock.writeLock();
   *   Atomics.store(cell, 0, 5);
   * }
   * console.assert(lock.read(() => Atomics.load(cell, 0), { timeoutMs: 100 }) === 5);
   * ```
   */
  [Symbol.dispose](): void {
    if (this.#lock !== undefined) this.unlock();
  }
}

/**
 * A sequence lock in shared memory: readers never block writers and write
 * nothing unless they park; writers exclude each other with a
 * {@linkcode Mutex}.
 *
 * Readers: `read(fn)` runs `fn` until it sees no concurrent write, or use
 * `readBegin()`/`readRetry(stamp)` by hand. Inside, load protected words with
 * `Atomics.load`. Writers: `write(fn)` or `using _ = lock.writeLock()`, and
 * store protected words with `Atomics.store`.
 *
 * @example
 * ```ts
 * import { SeqLock, SharedHeap } from "@sabre/sabre";
 *
 * const heap = SharedHeap.create();
 * const lock = SeqLock.create(heap);
 * const point = new Int32Array(heap.sab, heap.allocateZeroed(8), 2);
 *
 * lock.write(() => {
 *   Atomics.store(point, 0, 3);
 *   Atomics.store(point, 1, 4);
 * });
 * const [x, y] = lock.read(() => [Atomics.load(point, 0), Atomics.load(point, 1)]);
 * console.assert(x === 3 && y === 4);
 * ```
 */
export class SeqLock {
  readonly #placement: Placement;
  readonly #words: Int32Array;
  readonly #writers: Mutex;
  /**
   * Set by destroy(): every later call on this object throws rather than
   * touch memory that the heap may have given to something else. Another
   * worker's objects learn it once they wait: destroy() leaves the sequence
   * odd and the writers' mutex locked, with both tags cleared.
   */
  #destroyed = false;

  private constructor(placement: Placement, init: boolean) {
    this.#placement = placement;
    this.#words = placement.words;
    this.#writers = Mutex.embedded(
      placement.sab,
      placement.offset + MUTEX_OFFSET,
      init,
      "write SeqLock",
    );
  }

  #checkLive(): void {
    if (this.#destroyed) throw new DestroyedError("SeqLock");
  }

  /**
   * Creates a sequence lock in `heap`, or standalone.
   *
   * @example
   * ```ts
   * import { SeqLock } from "@sabre/sabre";
   * console.assert(SeqLock.create().sequence === 0);
   * ```
   */
  static create(heap?: SharedHeap): SeqLock {
    return new SeqLock(placeObject(heap, BYTES, TAG, "SeqLock"), true);
  }

  /**
   * Rebuilds a sequence lock from its handle in any worker.
   *
   * @example
   * ```ts
   * import { SeqLock } from "@sabre/sabre";
   * const lock = SeqLock.create();
   * lock.write(() => {});
   * console.assert(SeqLock.attach(lock.handle).sequence === 2);
   * ```
   */
  static attach(handle: SeqLockHandle): SeqLock {
    return new SeqLock(attachObject(handle, KIND, LAYOUT_VERSION, BYTES, TAG, "SeqLock"), false);
  }

  /**
   * The handle to send to other workers.
   *
   * @example
   * ```ts
   * import { SeqLock } from "@sabre/sabre";
   * console.assert(SeqLock.create().handle.kind === "sabre.SeqLock");
   * ```
   */
  get handle(): SeqLockHandle {
    this.#checkLive();
    return objectHandle(KIND, LAYOUT_VERSION, this.#placement);
  }

  /**
   * The sequence number now: even at rest, odd during a write.
   *
   * @example
   * ```ts
   * import { SeqLock } from "@sabre/sabre";
   * console.assert(SeqLock.create().sequence === 0);
   * ```
   */
  get sequence(): number {
    this.#checkLive();
    return Atomics.load(this.#words, SEQ);
  }

  /**
   * Starts a read: waits while a writer is inside and returns the stamp to
   * pass to `readRetry`. Throws {@linkcode TimeoutError} after `timeoutMs`.
   *
   * @example
   * ```ts
   * import { SeqLock } from "@sabre/sabre";
   * const lock = SeqLock.create();
   * const stamp = lock.readBegin();
   * console.assert(!lock.readRetry(stamp));
   * ```
   */
  readBegin(options?: LockOptions): number {
    this.#checkLive();
    const seq = Atomics.load(this.#words, SEQ);
    if ((seq & 1) === 0 && options === undefined) return seq;
    const deadline = deadlineOf(options, "read SeqLock");
    return waitEvenSequence(this.#words, PARKED, TAG, deadline, "SeqLock", options?.timeoutMs);
  }

  /**
   * Whether a write happened since `readBegin` returned `stamp`: if so, the
   * reads made in between must be discarded and retried.
   *
   * @example
   * ```ts
   * import { SeqLock } from "@sabre/sabre";
   * const lock = SeqLock.create();
   * const stamp = lock.readBegin();
   * lock.write(() => {});
   * console.assert(lock.readRetry(stamp));
   * ```
   */
  readRetry(stamp: number): boolean {
    this.#checkLive();
    return Atomics.load(this.#words, SEQ) !== stamp;
  }

  /**
   * Runs `fn` until it completes with no write in between, and returns its
   * result. An error thrown by `fn` while a write intervened counts as a
   * retry (the data it saw was torn); otherwise it propagates. Throws
   * {@linkcode TimeoutError} if no consistent read completes by `timeoutMs`.
   *
   * @example
   * ```ts
   * import { SeqLock } from "@sabre/sabre";
   * const lock = SeqLock.create();
   * const cell = new Int32Array(new SharedArrayBuffer(4));
   * console.assert(lock.read(() => Atomics.load(cell, 0)) === 0);
   * ```
   */
  read<T>(fn: () => T, options?: LockOptions): T {
    this.#checkLive();
    requireSyncFunction(fn, "SeqLock.read", "read what you need synchronously, and await after");
    const deadline = deadlineOf(options, "read SeqLock");
    const words = this.#words;
    for (;;) {
      let stamp = Atomics.load(words, SEQ);
      if ((stamp & 1) === 1) {
        stamp = waitEvenSequence(words, PARKED, TAG, deadline, "SeqLock", options?.timeoutMs);
      }
      const result = this.#readAt(fn, stamp, deadline, options);
      if (result !== AGAIN) return result;
    }
  }

  /**
   * Like `read`, but waits for a writer inside with `Atomics.waitAsync`, so
   * that the thread's event loop keeps running. `fn` itself runs
   * synchronously.
   *
   * @example
   * ```ts
   * import { SeqLock } from "@sabre/sabre";
   * const lock = SeqLock.create();
   * const cell = new Int32Array(new SharedArrayBuffer(4));
   * lock.beginWrite();
   * const reading = lock.readAsync(() => Atomics.load(cell, 0), { timeoutMs: 1000 });
   * Atomics.store(cell, 0, 7);
   * lock.endWrite();
   * console.assert((await reading) === 7);
   * ```
   */
  async readAsync<T>(fn: () => T, options?: LockOptions): Promise<T> {
    this.#checkLive();
    requireSyncFunction(
      fn,
      "SeqLock.readAsync",
      "read what you need synchronously, and await after",
    );
    const deadline = deadlineOf(options, "read SeqLock");
    const words = this.#words;
    for (;;) {
      let stamp = Atomics.load(words, SEQ);
      if ((stamp & 1) === 1) {
        stamp = await waitEvenSequenceAsync(
          words,
          PARKED,
          TAG,
          deadline,
          "SeqLock",
          options?.timeoutMs,
        );
      }
      const result = this.#readAt(fn, stamp, deadline, options);
      if (result !== AGAIN) return result;
    }
  }

  /**
   * Runs `fn` after the even sequence `stamp` was read: its result, or
   * AGAIN when a write intervened (an error thrown by `fn` then counts as
   * torn data). Past the deadline, an intervened write is a timeout.
   */
  #readAt<T>(
    fn: () => T,
    stamp: number,
    deadline: number,
    options: LockOptions | undefined,
  ): T | typeof AGAIN {
    const words = this.#words;
    let result: T;
    try {
      result = fn();
    } catch (e) {
      if (Atomics.load(words, SEQ) !== stamp) return AGAIN;
      throw e;
    }
    if (Atomics.load(words, SEQ) === stamp) return result;
    if (performance.now() >= deadline) {
      throw new TimeoutError("read SeqLock", options?.timeoutMs ?? 0);
    }
    return AGAIN;
  }

  /**
   * One read attempt: `fn`'s result if no writer was inside or intervened,
   * else `undefined`. Never waits.
   *
   * @example
   * ```ts
   * import { SeqLock } from "@sabre/sabre";
   * const lock = SeqLock.create();
   * console.assert(lock.tryRead(() => 5) === 5);
   * ```
   */
  tryRead<T>(fn: () => T): T | undefined {
    this.#checkLive();
    requireSyncFunction(fn, "SeqLock.tryRead", "read what you need synchronously, and await after");
    const stamp = Atomics.load(this.#words, SEQ);
    if ((stamp & 1) === 1) return undefined;
    const result = this.#readAt(fn, stamp, Infinity, undefined);
    return result === AGAIN ? undefined : result;
  }

  /**
   * Runs `fn` as a write section and returns its result.
   *
   * @example
   * ```ts
   * import { SeqLock } from "@sabre/sabre";
   * const lock = SeqLock.create();
   * console.assert(lock.write(() => "done") === "done" && lock.sequence === 2);
   * ```
   */
  write<T>(fn: () => T, options?: LockOptions): T {
    requireSyncFunction(
      fn,
      "SeqLock.write",
      "a write section must be synchronous: await before or after it",
    );
    this.beginWrite(options);
    try {
      return fn();
    } finally {
      this.endWrite();
    }
  }

  /**
   * `write(fn)` that waits for the other writers with `Atomics.waitAsync`,
   * so the calling thread's event loop keeps running; `fn` then runs at
   * once, as the write section. `fn` must be synchronous, as in `write`:
   * readers spin or wait for as long as a write section lasts, and the work
   * of an async `fn` after its first await would fall outside it. Rejects
   * with {@linkcode TimeoutError}, without running `fn`, when `timeoutMs`
   * passes first.
   *
   * @example
   * ```ts
   * import { SeqLock } from "@sabre/sabre";
   * const lock = SeqLock.create();
   * console.assert((await lock.writeAsync(() => "done")) === "done" && lock.sequence === 2);
   * ```
   */
  async writeAsync<T>(fn: () => T, options?: LockOptions): Promise<T> {
    this.#checkLive();
    requireSyncFunction(
      fn,
      "SeqLock.writeAsync",
      "a write section must be synchronous: await before or after it",
    );
    await acquireWritersAsync(this.#writers, options, "SeqLock");
    Atomics.add(this.#words, SEQ, 1);
    try {
      return fn();
    } finally {
      this.endWrite();
    }
  }

  /**
   * Opens a write section (blocking while another writer is inside).
   *
   * @example
   * ```ts
   * import { SeqLock } from "@sabre/sabre";
   * const lock = SeqLock.create();
   * lock.writeLock({ timeoutMs: 100 }).unlock();
   * ```
   */
  writeLock(options?: LockOptions): SeqLockWriteGuard {
    this.beginWrite(options);
    return new SeqLockWriteGuard(this);
  }

  /**
   * Opens a write section if no other writer is inside.
   *
   * @example
   * ```ts
   * import { SeqLock } from "@sabre/sabre";
   * const lock = SeqLock.create();
   * const w = lock.tryWriteLock();
   * console.assert(w !== undefined && lock.tryWriteLock() === undefined);
   * w?.unlock();
   * ```
   */
  tryWriteLock(): SeqLockWriteGuard | undefined {
    this.#checkLive();
    if (!this.#writers.tryAcquire()) return undefined;
    Atomics.add(this.#words, SEQ, 1);
    return new SeqLockWriteGuard(this);
  }

  /**
   * Opens a write section, waiting for other writers with
   * `Atomics.waitAsync`.
   *
   * @example
   * ```ts
   * import { SeqLock } from "@sabre/sabre";
   * using _w = await SeqLock.create().writeLockAsync();
   * ```
   */
  async writeLockAsync(options?: LockOptions): Promise<SeqLockWriteGuard> {
    this.#checkLive();
    await acquireWritersAsync(this.#writers, options, "SeqLock");
    Atomics.add(this.#words, SEQ, 1);
    return new SeqLockWriteGuard(this);
  }

  /**
   * Guard-free start of a write section; pair with `endWrite()`.
   *
   * @example
   * ```ts
   * import { SeqLock } from "@sabre/sabre";
   * const lock = SeqLock.create();
   * lock.beginWrite();
   * lock.endWrite();
   * ```
   */
  beginWrite(options?: LockOptions): void {
    this.#checkLive();
    acquireWriters(this.#writers, options, "SeqLock");
    Atomics.add(this.#words, SEQ, 1);
  }

  /**
   * Ends a write section opened with `beginWrite()`.
   *
   * @example
   * ```ts
   * import { SeqLock } from "@sabre/sabre";
   * const lock = SeqLock.create();
   * lock.beginWrite();
   * lock.endWrite();
   * console.assert(lock.sequence === 2);
   * ```
   */
  endWrite(): void {
    this.#checkLive();
    if ((Atomics.load(this.#words, SEQ) & 1) === 0) {
      throw new SabreError("Cannot end a SeqLock write as no write section is open");
    }
    endWrite(this.#words, PARKED);
    this.#writers.release();
  }

  /**
   * Frees the lock's memory in its heap (a standalone lock's buffer is left
   * to the garbage collector). Throws {@linkcode SabreError} during a write
   * or while a writer waits; readers must be done with it too. Every later
   * call on this object throws {@linkcode DestroyedError}, and so does a
   * second `destroy()` from any worker, or a wait on the lock that another
   * worker's object would begin.
   *
   * @example
   * ```ts
   * import { SeqLock, SharedHeap } from "@sabre/sabre";
   * SeqLock.create(SharedHeap.create()).destroy();
   * ```
   */
  destroy(): void {
    if (this.#destroyed) throw new DestroyedError("SeqLock", "destroy");
    try {
      destroySequenced(this.#words, this.#writers, "SeqLock", TAG);
    } catch (e) {
      if (e instanceof DestroyedError) this.#destroyed = true;
      throw e;
    }
    this.#destroyed = true;
    releaseObject(this.#placement, TAG, "SeqLock");
  }
}
