/**
 * The HybridLatch protocol on two words that a structure embeds wherever it
 * likes (a node header in a heap block, say), with no object per latch: the
 * form for structures with one latch per node, such as the B+ tree.
 *
 * Word `at` is the version: even when free, odd while exclusively held.
 * Locking moves it from an even `v` to `v + 1` with a CAS; unlocking adds 1,
 * so every exclusive section moves the version on by two and an optimistic
 * reader detects it by re-reading the version. Word `at + 1` counts parked
 * waiters, so that unlocking notifies only when somebody sleeps.
 *
 * Exclusive mode here is a try-lock from a version the caller read
 * optimistically ({@linkcode LatchWords.tryUpgrade}): a structure that never
 * blocks while it holds a latch cannot deadlock. A caller that finds a latch
 * held waits with {@linkcode LatchWords.waitUnlocked} while holding nothing,
 * then restarts. There is no shared mode: structures that use these words
 * publish copy-on-write content, which optimistic readers may read freely.
 *
 * Memory order: every access is an Atomics operation (sequentially
 * consistent). A waiter increments the count before it re-reads the version
 * and parks on it; an unlocker changes the version before it reads the
 * count. One of the two sees the other, so no wake-up is lost.
 *
 * @example
 * ```ts
 * import { LatchWords } from "@sabre/sabre";
 * const words = new Int32Array(new SharedArrayBuffer(8));
 * const v = LatchWords.optimistic(words, 0, Infinity);
 * console.assert(LatchWords.tryUpgrade(words, 0, v));
 * console.assert(!LatchWords.validate(words, 0, v));
 * LatchWords.unlock(words, 0);
 * console.assert(LatchWords.optimistic(words, 0, Infinity) === v + 2);
 * ```
 *
 * @module
 */

import { SabreError } from "../memory/mod.ts";
import { pause, remainingMs, SPIN_LIMIT, waitBlocking } from "./parking.ts";

/** Words a latch occupies: the version and the waiter count. */
const LATCH_WORDS = 2;

/**
 * The functions of {@linkcode LatchWords}.
 *
 * @example
 * ```ts
 * import { LatchWords, type LatchWordsApi } from "@sabre/sabre";
 * const api: LatchWordsApi = LatchWords;
 * console.assert(api.words === 2);
 * ```
 */
export interface LatchWordsApi {
  /** Words one latch occupies. */
  readonly words: number;
  /**
   * Whether the latch is exclusively held now (a hint: it may change right after).
   *
   * @example
   * ```ts
   * import { LatchWords } from "@sabre/sabre";
   * const words = new Int32Array(new SharedArrayBuffer(8));
   * console.assert(!LatchWords.isLocked(words, 0));
   * LatchWords.tryLock(words, 0);
   * console.assert(LatchWords.isLocked(words, 0));
   * LatchWords.unlock(words, 0);
   * ```
   */
  isLocked(words: Int32Array, at: number): boolean;
  /**
   * An even version to read under, waiting while the latch is held; -1 once
   * `deadline` (a `performance.now()` time) passes.
   *
   * @example
   * ```ts
   * import { LatchWords } from "@sabre/sabre";
   * const words = new Int32Array(new SharedArrayBuffer(8));
   * console.assert(LatchWords.optimistic(words, 0, Infinity) === 0);
   * LatchWords.tryLock(words, 0);
   * console.assert(LatchWords.optimistic(words, 0, performance.now() + 5) === -1);
   * LatchWords.unlock(words, 0);
   * ```
   */
  optimistic(words: Int32Array, at: number, deadline: number): number;
  /**
   * Whether the version is still `version`: no writer entered since it was read.
   *
   * @example
   * ```ts
   * import { LatchWords } from "@sabre/sabre";
   * const words = new Int32Array(new SharedArrayBuffer(8));
   * const v = LatchWords.optimistic(words, 0, Infinity);
   * console.assert(LatchWords.validate(words, 0, v));
   * LatchWords.tryLock(words, 0);
   * LatchWords.unlock(words, 0);
   * console.assert(!LatchWords.validate(words, 0, v));
   * ```
   */
  validate(words: Int32Array, at: number, version: number): boolean;
  /**
   * Takes the latch if its version is still the even `version`; never waits.
   *
   * @example
   * ```ts
   * import { LatchWords } from "@sabre/sabre";
   * const words = new Int32Array(new SharedArrayBuffer(8));
   * const v = LatchWords.optimistic(words, 0, Infinity);
   * console.assert(LatchWords.tryUpgrade(words, 0, v));
   * console.assert(!LatchWords.tryUpgrade(words, 0, v)); // held now
   * LatchWords.unlock(words, 0);
   * ```
   */
  tryUpgrade(words: Int32Array, at: number, version: number): boolean;
  /**
   * Takes the latch if it is free now, whatever its version; never waits.
   *
   * @example
   * ```ts
   * import { LatchWords } from "@sabre/sabre";
   * const words = new Int32Array(new SharedArrayBuffer(8));
   * console.assert(LatchWords.tryLock(words, 0));
   * console.assert(!LatchWords.tryLock(words, 0));
   * LatchWords.unlock(words, 0);
   * ```
   */
  tryLock(words: Int32Array, at: number): boolean;
  /**
   * Leaves exclusive mode; throws `SabreError` where the latch was not held.
   *
   * @example
   * ```ts
   * import { LatchWords } from "@sabre/sabre";
   * const words = new Int32Array(new SharedArrayBuffer(8));
   * LatchWords.tryLock(words, 0);
   * LatchWords.unlock(words, 0);
   * console.assert(!LatchWords.isLocked(words, 0));
   * console.assert(LatchWords.optimistic(words, 0, Infinity) === 2); // two past the locked 0
   * ```
   */
  unlock(words: Int32Array, at: number): void;
  /**
   * Waits while the latch is held; false once `deadline` passes. Call it holding no latch.
   *
   * @example
   * ```ts
   * import { LatchWords } from "@sabre/sabre";
   * const words = new Int32Array(new SharedArrayBuffer(8));
   * console.assert(LatchWords.waitUnlocked(words, 0, Infinity)); // free: at once
   * LatchWords.tryLock(words, 0);
   * console.assert(!LatchWords.waitUnlocked(words, 0, performance.now() + 5));
   * LatchWords.unlock(words, 0);
   * ```
   */
  waitUnlocked(words: Int32Array, at: number, deadline: number): boolean;
}

/**
 * Functions over an embedded latch at `words[at]` (version) and
 * `words[at + 1]` (parked waiters).
 *
 * @example
 * ```ts
 * import { LatchWords } from "@sabre/sabre";
 * const words = new Int32Array(new SharedArrayBuffer(8));
 * console.assert(LatchWords.words === 2 && !LatchWords.isLocked(words, 0));
 * ```
 */
export const LatchWords: LatchWordsApi = {
  /**
   * Words one latch occupies: latches laid out side by side are this far apart.
   *
   * @example
   * ```ts
   * import { LatchWords } from "@sabre/sabre";
   * const words = new Int32Array(new SharedArrayBuffer(3 * LatchWords.words * 4)); // 3 latches
   * const second = 1 * LatchWords.words; // latch i starts at word i * LatchWords.words
   * console.assert(LatchWords.tryLock(words, second) && !LatchWords.isLocked(words, 0));
   * LatchWords.unlock(words, second);
   * ```
   */
  words: LATCH_WORDS,

  /**
   * Whether the latch is exclusively held now: its version is odd.
   *
   * @example
   * ```ts
   * import { LatchWords } from "@sabre/sabre";
   * const words = new Int32Array(new SharedArrayBuffer(8));
   * const v = LatchWords.optimistic(words, 0, Infinity);
   * LatchWords.tryUpgrade(words, 0, v);
   * console.assert(LatchWords.isLocked(words, 0) && words[0] === v + 1);
   * LatchWords.unlock(words, 0);
   * ```
   */
  isLocked(words: Int32Array, at: number): boolean {
    return (Atomics.load(words, at) & 1) === 1;
  },

  /**
   * An even version to read under: waits (spinning, then parking) while
   * the latch is held. Returns -1 when `deadline` (a `performance.now()`
   * time) passes first.
   *
   * @example
   * ```ts
   * import { LatchWords } from "@sabre/sabre";
   * const words = new Int32Array(new SharedArrayBuffer(8));
   * const data = new Int32Array(new SharedArrayBuffer(4));
   * const v = LatchWords.optimistic(words, 0, performance.now() + 100);
   * const value = Atomics.load(data, 0); // read under the latch, then validate
   * console.assert(v === 0 && LatchWords.validate(words, 0, v) && value === 0);
   * ```
   */
  optimistic(words: Int32Array, at: number, deadline: number): number {
    for (;;) {
      const v = Atomics.load(words, at);
      if ((v & 1) === 0) return v;
      if (!LatchWords.waitUnlocked(words, at, deadline)) return -1;
    }
  },

  /**
   * Whether the version is still `version`: no exclusive section began
   * since it was read.
   *
   * @example
   * ```ts
   * import { LatchWords } from "@sabre/sabre";
   * const words = new Int32Array(new SharedArrayBuffer(8));
   * const v = LatchWords.optimistic(words, 0, Infinity);
   * LatchWords.tryLock(words, 0);
   * console.assert(!LatchWords.validate(words, 0, v)); // a writer is inside
   * LatchWords.unlock(words, 0);
   * ```
   */
  validate(words: Int32Array, at: number, version: number): boolean {
    return Atomics.load(words, at) === version;
  },

  /**
   * Takes the latch exclusively if its version is still the even
   * `version`; never waits. An odd `version` (one read while the latch was
   * held) answers false.
   *
   * @example
   * ```ts
   * import { LatchWords } from "@sabre/sabre";
   * const words = new Int32Array(new SharedArrayBuffer(8));
   * const stale = LatchWords.optimistic(words, 0, Infinity);
   * LatchWords.tryLock(words, 0);
   * LatchWords.unlock(words, 0); // another writer came and went
   * console.assert(!LatchWords.tryUpgrade(words, 0, stale) && !LatchWords.tryUpgrade(words, 0, 3));
   * ```
   */
  tryUpgrade(words: Int32Array, at: number, version: number): boolean {
    return (version & 1) === 0 &&
      Atomics.compareExchange(words, at, version, (version + 1) | 0) === version;
  },

  /**
   * Takes the latch exclusively if it is free now; never waits.
   *
   * @example
   * ```ts
   * import { LatchWords } from "@sabre/sabre";
   * const words = new Int32Array(new SharedArrayBuffer(8));
   * if (LatchWords.tryLock(words, 0)) {
   *   console.assert(LatchWords.isLocked(words, 0));
   *   LatchWords.unlock(words, 0);
   * }
   * console.assert(!LatchWords.isLocked(words, 0));
   * ```
   */
  tryLock(words: Int32Array, at: number): boolean {
    const v = Atomics.load(words, at);
    return (v & 1) === 0 && Atomics.compareExchange(words, at, v, v + 1) === v;
  },

  /**
   * Leaves exclusive mode: the version becomes even again, two past the one
   * locked. Throws `SabreError`, having changed nothing, where the latch was
   * not held.
   *
   * @example
   * ```ts
   * import { LatchWords, SabreError } from "@sabre/sabre";
   * const words = new Int32Array(new SharedArrayBuffer(8));
   * LatchWords.tryLock(words, 0);
   * LatchWords.unlock(words, 0);
   * let error: unknown;
   * try {
   *   LatchWords.unlock(words, 0); // not held
   * } catch (e) {
   *   error = e;
   * }
   * console.assert(error instanceof SabreError && words[0] === 2);
   * ```
   */
  unlock(words: Int32Array, at: number): void {
    const was = Atomics.add(words, at, 1);
    if ((was & 1) === 0) {
      Atomics.sub(words, at, 1);
      throw new SabreError(`Cannot unlock latch as it is not held: its version is ${was}`);
    }
    if (Atomics.load(words, at + 1) !== 0) Atomics.notify(words, at);
  },

  /**
   * Waits while the latch is held: spins, then parks until the holder
   * unlocks. Returns false when `deadline` passes first. Call it holding no
   * latch.
   *
   * @example
   * ```ts
   * import { LatchWords } from "@sabre/sabre";
   * const words = new Int32Array(new SharedArrayBuffer(8));
   * LatchWords.tryLock(words, 0);
   * setTimeout(() => LatchWords.unlock(words, 0), 0); // the holder leaves later
   * console.assert(!LatchWords.waitUnlocked(words, 0, performance.now() + 1)); // too soon
   * await new Promise((resolve) => setTimeout(resolve, 10));
   * console.assert(LatchWords.waitUnlocked(words, 0, performance.now() + 100));
   * ```
   */
  waitUnlocked(words: Int32Array, at: number, deadline: number): boolean {
    for (let spin = 0; spin < SPIN_LIMIT; spin++) {
      if ((Atomics.load(words, at) & 1) === 0) return true;
      pause();
    }
    Atomics.add(words, at + 1, 1);
    try {
      for (;;) {
        const v = Atomics.load(words, at);
        if ((v & 1) === 0) return true;
        const left = remainingMs(deadline);
        if (left <= 0) return false;
        waitBlocking(words, at, v, left === Infinity ? undefined : left);
      }
    } finally {
      Atomics.sub(words, at + 1, 1);
    }
  },
};
