/**
 * Latches and locks in shared memory, usable at once from every worker:
 * {@linkcode Mutex}, {@linkcode RwLock}, {@linkcode Condvar} and the
 * LeanStore-style {@linkcode HybridLatch} with optimistic, shared and
 * exclusive modes.
 *
 * Each can live in a {@linkcode SharedHeap} (`Mutex.create(heap)`) or in a
 * small buffer of its own (`Mutex.create()`), and crosses to other workers as
 * its `handle` (`Mutex.attach(handle)` there).
 *
 * Blocking follows one rule everywhere: spin briefly, then park on a futex
 * word with `Atomics.wait`, and wake only when someone waits, so blocked
 * workers use no CPU. Every way to take a lock has a sync form, an async form
 * (`Atomics.waitAsync`, for threads that must not block their event loop), a
 * `try` form that never waits, and a `{ timeoutMs }` option that throws
 * `TimeoutError`. Guards release with `using`. The closure helpers have
 * async twins that wait with `Atomics.waitAsync` and release once fn's
 * result settles, so an async fn holds the lock across its awaits:
 * `withLockAsync`, `withReadAsync`, `withWriteAsync`, `HybridLatch.writeAsync`
 * (and `HybridLatch.readAsync`), and `SeqLock.writeAsync`, whose fn must be
 * synchronous, as a write section should be. The synchronous helpers refuse
 * an async fn with a `TypeError` before they take anything, since they
 * would end the section at its first await.
 *
 * @example
 * ```ts
 * import { Mutex, RwLock } from "@sabre/sabre/latch";
 *
 * const mutex = Mutex.create();
 * {
 *   using _guard = mutex.lock({ timeoutMs: 1000 });
 *   // critical section
 * }
 * const lock = RwLock.create();
 * const readers = lock.withRead(() => lock.readers);
 * console.assert(readers === 1);
 * ```
 *
 * @module
 */

export { Mutex, MutexGuard, type MutexHandle } from "./mutex.ts";
export { RwLock, type RwLockHandle, RwLockReadGuard, RwLockWriteGuard } from "./rwlock.ts";
export { Condvar, type CondvarHandle } from "./condvar.ts";
export {
  ExclusiveGuard,
  GuardReads,
  HybridLatch,
  type HybridLatchHandle,
  isUnwind,
  OPTIMISTIC_ATTEMPTS,
  OptimisticGuard,
  SharedGuard,
  storeF64,
  Unwind,
} from "./hybrid_latch.ts";
export { LatchWords, type LatchWordsApi } from "./latch_words.ts";
export {
  deadlineOf,
  type LockOptions,
  parkAsync,
  parkSync,
  pause,
  remainingMs,
  SPIN_LIMIT,
  timedOut,
} from "./parking.ts";
