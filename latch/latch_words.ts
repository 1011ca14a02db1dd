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
  /** Whether the latch is exclusively held now. */
  isLocked(words: Int32Array, at: number): boolean;
  /** An even version to read under, waiting while held; -1 past `deadline`. */
  optimistic(words: Int32Array, at: number, deadline: number): number;
  /** Whether the version is still `version`. */
  validate(words: Int32Array, at: number, version: number): boolean;
  /** Takes the latch if its version is still the even `version`; never waits. */
  tryUpgrade(words: Int32Array, at: number, version: number): boolean;
  /** Takes the latch if it is free now; never waits. */
  tryLock(words: Int32Array, at: number): boolean;
  /** Leaves exclusive mode. */
  unlock(words: Int32Array, at: number): void;
  /** Waits while the latch is held; false past `deadline`. */
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
  /** Words one latch occupies. */
  words: LATCH_WORDS,

  /** Whether the latch is exclusively held now. */
  isLocked(words: Int32Array, at: number): boolean {
    return (Atomics.load(words, at) & 1) === 1;
  },

  /**
   * An even version to read under: waits (spinning, then parking) while
   * the latch is held. Returns -1 when `deadline` (a `performance.now()`
   * time) passes first.
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
   */
  validate(words: Int32Array, at: number, version: number): boolean {
    return Atomics.load(words, at) === version;
  },

  /**
   * Takes the latch exclusively if its version is still the even
   * `version`; never waits. An odd `version` (one read while the latch was
   * held) answers false.
   */
  tryUpgrade(words: Int32Array, at: number, version: number): boolean {
    return (version & 1) === 0 &&
      Atomics.compareExchange(words, at, version, (version + 1) | 0) === version;
  },

  /** Takes the latch exclusively if it is free now; never waits. */
  tryLock(words: Int32Array, at: number): boolean {
    const v = Atomics.load(words, at);
    return (v & 1) === 0 && Atomics.compareExchange(words, at, v, v + 1) === v;
  },

  /**
   * Leaves exclusive mode: the version becomes even again, two past the one
   * locked. Throws `SabreError`, having changed nothing, where the latch was
   * not held.
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
