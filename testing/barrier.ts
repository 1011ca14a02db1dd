/**
 * A reusable barrier for a fixed number of parties, in its own small
 * `SharedArrayBuffer`, so that workers can line up between the phases of a
 * test.
 *
 * ## Algorithm
 *
 * Five Int32 words, every access an Atomics operation (pattern (a) of the
 * design guide):
 *
 * - `MAGIC` and `PARTIES`: written once before the buffer is shared.
 * - `STATE`: the generation's low 16 bits and the number of parties that have
 *   arrived in it, `gen16 << 16 | count`. Arriving, withdrawing after a
 *   timeout and completing a generation are compare-and-swaps on this word,
 *   so they are totally ordered and a withdrawal can never take back an
 *   arrival of a later generation.
 * - `GEN`: the futex word the parties park on. Bit 31 marks the barrier
 *   broken; bits 0..30 count completed generations. The last party to arrive
 *   (the leader) first resets `STATE` to the next generation with zero
 *   arrivals, then advances `GEN` and wakes the sleepers.
 * - `WAITERS`: how many parties are parked or about to park; the leader calls
 *   `Atomics.notify` only when it is not zero.
 *
 * Invariant: a party reads `GEN` before it arrives, and `GEN` cannot move past
 * a generation until every party has arrived in it, so the value a party read
 * is the generation it joins. A released party returns only after it saw
 * `GEN` change, which happens after `STATE` was reset, so an early arrival in
 * the next generation always counts against a fresh `STATE`.
 *
 * Lost wake-ups cannot happen: a sleeper increments `WAITERS` before
 * `Atomics.wait` checks `GEN`, and the leader stores `GEN` before it reads
 * `WAITERS`. Atomics are sequentially consistent, so either the leader sees
 * the sleeper and notifies it, or the sleeper's `Atomics.wait` sees the new
 * `GEN` and returns at once.
 *
 * @module
 */

import { describeValue, HandleError, SabreError, SharedHeap, TimeoutError } from "../memory/mod.ts";

const KIND = "sabre.testing.Barrier";
const VERSION = 1;
const MAGIC_VALUE = 0x53424152; // "SBAR"

// Int32 word indices, relative to the barrier's offset.
const MAGIC = 0;
const PARTIES = 1;
const STATE = 2;
const GEN = 3;
const WAITERS = 4;
const WORDS = 5;
/** Bytes a barrier occupies (one cache line). */
const BYTES = 64;

const BROKEN_BIT = 1 << 31;
const GEN_MASK = 0x7fffffff;
const MAX_PARTIES = 0xffff;
/** Rounds of polling before a party parks: brief, a phase rarely ends this fast. */
const SPIN_ROUNDS = 64;
/** Longest delay setTimeout takes as it is. */
const MAX_TIMER_MS = 0x7fffffff;

/** Set by Barrier.attach around its call of the constructor (one realm, one thread). */
let attaching: { sab: SharedArrayBuffer; offset: number; i32: Int32Array } | undefined;

const pause: (iteration: number) => void =
  (Atomics as unknown as { pause?: (n?: number) => void }).pause?.bind(Atomics) ?? (() => {});

/**
 * The plain object that names a {@linkcode Barrier}: `postMessage` sends it as
 * it is, and {@linkcode Barrier.attach} rebuilds the barrier in the receiving
 * worker.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Barrier, type BarrierHandle } from "./barrier.ts";
 *
 * const handle: BarrierHandle = new Barrier(2).handle;
 * assert.equal(handle.kind, "sabre.testing.Barrier");
 * assert.ok(handle.sab instanceof SharedArrayBuffer);
 * ```
 */
export interface BarrierHandle {
  /** Always `"sabre.testing.Barrier"`. */
  readonly kind: "sabre.testing.Barrier";
  /** Layout version of the barrier's words. */
  readonly version: number;
  /** The buffer that holds the barrier's words. */
  readonly sab: SharedArrayBuffer;
  /** Byte offset of the barrier inside `sab`. */
  readonly offset: number;
}

/**
 * Thrown by {@linkcode Barrier.wait} and {@linkcode Barrier.waitAsync} once
 * the barrier has been broken with {@linkcode Barrier.break}: its phase can
 * never complete, because a party is gone.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Barrier, BrokenBarrierError } from "./barrier.ts";
 *
 * const barrier = new Barrier(2);
 * barrier.break();
 * assert.throws(() => barrier.wait(), BrokenBarrierError);
 * ```
 */
export class BrokenBarrierError extends SabreError {
  /** Creates the error for a barrier of `parties` parties. */
  constructor(parties: number) {
    super(
      `Cannot wait on the barrier of ${parties} parties as it is broken: a party left for good`,
    );
  }
}

/**
 * A reusable barrier: `parties` callers of {@linkcode Barrier.wait} (or
 * {@linkcode Barrier.waitAsync}) block until the last of them arrives, then
 * all return together and the barrier is ready for the next phase. Each such
 * round is a generation.
 *
 * Guarantees:
 *
 * - Everything a party did before its `wait` happens before everything any
 *   party does after its own `wait` of the same generation returns.
 * - Exactly one party per generation gets `true` back: the last to arrive.
 * - Waiting parks the thread with `Atomics.wait` after a brief spin; parties
 *   that wait burn no CPU, even with more workers than cores.
 * - A wait that times out withdraws its arrival and throws
 *   {@linkcode TimeoutError}; the barrier stays usable and the generation
 *   still needs all `parties`. If the generation completes while the timeout
 *   fires, the wait returns normally instead.
 * - After {@linkcode Barrier.break}, every pending and later wait throws
 *   {@linkcode BrokenBarrierError}, except for parties whose generation had
 *   already completed.
 *
 * Use `wait` in workers (and on Deno's main thread when blocking it is fine)
 * and `waitAsync` where the event loop must keep running.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Barrier } from "./barrier.ts";
 *
 * // A barrier of one party never blocks: every wait completes a generation.
 * const barrier = new Barrier(1);
 * assert.equal(barrier.wait(), true);
 * assert.equal(await barrier.waitAsync(), true);
 * assert.equal(barrier.generation, 2);
 * ```
 */
export class Barrier {
  readonly #i32: Int32Array;
  readonly #sab: SharedArrayBuffer;
  readonly #offset: number;
  readonly #parties: number;

  /**
   * Creates a barrier for `parties` parties, from 1 to 65535, in a new
   * `SharedArrayBuffer`. Throws `RangeError` naming the value otherwise.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { Barrier } from "./barrier.ts";
   *
   * assert.equal(new Barrier(4).parties, 4);
   * assert.throws(() => new Barrier(0), RangeError);
   * ```
   */
  constructor(parties: number) {
    if (!Number.isInteger(parties) || parties < 1 || parties > MAX_PARTIES) {
      throw new RangeError(
        `Cannot create Barrier as 'parties' must be an integer from 1 to ${MAX_PARTIES}: ` +
          `current value is ${describeValue(parties)}`,
      );
    }
    this.#parties = parties;
    if (attaching !== undefined) {
      // Called by attach(): adopt the existing words.
      this.#sab = attaching.sab;
      this.#offset = attaching.offset;
      this.#i32 = attaching.i32;
      return;
    }
    const sab = new SharedArrayBuffer(BYTES);
    const i32 = new Int32Array(sab, 0, WORDS);
    Atomics.store(i32, PARTIES, parties);
    Atomics.store(i32, MAGIC, MAGIC_VALUE);
    this.#sab = sab;
    this.#offset = 0;
    this.#i32 = i32;
  }

  /**
   * Rebuilds a barrier from its handle, in any worker. Throws
   * {@linkcode HandleError} naming what is wrong when `handle` does not
   * describe a barrier.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { Barrier } from "./barrier.ts";
   *
   * const barrier = new Barrier(3);
   * // In a worker: Barrier.attach(handleReceivedByPostMessage)
   * const again = Barrier.attach(structuredClone(barrier.handle));
   * assert.equal(again.parties, 3);
   * ```
   */
  static attach(handle: BarrierHandle): Barrier {
    const fail = (reason: string, value: unknown): never => {
      throw new HandleError(
        `Cannot attach Barrier as ${reason}: current value is ${describeValue(value)}`,
      );
    };
    if (typeof handle !== "object" || handle === null) fail("the handle is not an object", handle);
    if (handle.kind !== KIND) fail(`the handle's kind is not "${KIND}"`, handle.kind);
    if (handle.version !== VERSION) {
      fail(`the handle's version is not ${VERSION}`, handle.version);
    }
    const { sab, offset } = handle;
    if (!(sab instanceof SharedArrayBuffer)) {
      fail("the handle's 'sab' is not a SharedArrayBuffer", sab);
    }
    if (!Number.isInteger(offset) || offset < 0 || offset % 4 !== 0) {
      fail("the handle's offset is not a non-negative multiple of 4", offset);
    }
    if (offset + WORDS * 4 > sab.byteLength) {
      fail(`the handle's offset leaves no room in a buffer of ${sab.byteLength} bytes`, offset);
    }
    const i32 = new Int32Array(sab, offset, WORDS);
    if (Atomics.load(i32, MAGIC) !== MAGIC_VALUE) {
      fail(
        "the buffer holds no barrier at that offset (bad magic number)",
        Atomics.load(i32, MAGIC),
      );
    }
    const parties = Atomics.load(i32, PARTIES);
    if (parties < 1 || parties > MAX_PARTIES) {
      fail("the barrier's party count is corrupt", parties);
    }
    attaching = { sab, offset, i32 };
    try {
      return new Barrier(parties);
    } finally {
      attaching = undefined;
    }
  }

  /**
   * The handle to send to other workers.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { Barrier } from "./barrier.ts";
   *
   * const barrier = new Barrier(2);
   * // worker.postMessage({ barrier: barrier.handle });
   * assert.equal(barrier.handle.offset, 0);
   * ```
   */
  get handle(): BarrierHandle {
    return { kind: KIND, version: VERSION, sab: this.#sab, offset: this.#offset };
  }

  /**
   * How many parties each generation waits for.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { Barrier } from "./barrier.ts";
   *
   * assert.equal(new Barrier(8).parties, 8);
   * ```
   */
  get parties(): number {
    return this.#parties;
  }

  /**
   * How many generations have completed, modulo 2^31.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { Barrier } from "./barrier.ts";
   *
   * const barrier = new Barrier(1);
   * barrier.wait();
   * assert.equal(barrier.generation, 1);
   * ```
   */
  get generation(): number {
    return Atomics.load(this.#i32, GEN) & GEN_MASK;
  }

  /**
   * Whether {@linkcode Barrier.break} was called.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { Barrier } from "./barrier.ts";
   *
   * const barrier = new Barrier(2);
   * assert.equal(barrier.broken, false);
   * barrier.break();
   * assert.equal(barrier.broken, true);
   * ```
   */
  get broken(): boolean {
    return (Atomics.load(this.#i32, GEN) & BROKEN_BIT) !== 0;
  }

  /**
   * Arrives at the barrier and blocks until all parties have arrived in this
   * generation. Returns `true` in the last party to arrive, which releases
   * the others, and `false` in the others.
   *
   * Spins briefly, then parks with `Atomics.wait`. With `timeoutMs`, gives up
   * after that many milliseconds: the arrival is withdrawn and
   * {@linkcode TimeoutError} is thrown. Throws {@linkcode BrokenBarrierError}
   * if the barrier is or becomes broken before the generation completes, and
   * `RangeError` for a negative or NaN `timeoutMs`.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { TimeoutError } from "../memory/mod.ts";
   * import { Barrier } from "./barrier.ts";
   *
   * const barrier = new Barrier(2);
   * // Only one party arrives, so the wait times out and withdraws.
   * assert.throws(() => barrier.wait(10), TimeoutError);
   * assert.equal(barrier.generation, 0);
   * ```
   */
  wait(timeoutMs?: number): boolean {
    const limit = checkTimeout(timeoutMs);
    const i32 = this.#i32;
    const gen = this.#arrive();
    if (gen < 0) return true;
    for (let i = 0; i < SPIN_ROUNDS; i++) {
      if (Atomics.load(i32, GEN) !== gen) return this.#released(gen);
      pause(i);
    }
    const deadline = limit === Infinity ? Infinity : performance.now() + limit;
    // As before every blocking wait in sabre: a worker that read maps just
    // before must not hold back reclamation while it sleeps here.
    SharedHeap.releaseReadPins();
    Atomics.add(i32, WAITERS, 1);
    try {
      for (;;) {
        if (Atomics.load(i32, GEN) !== gen) return this.#released(gen);
        const remaining = deadline - performance.now();
        if (remaining <= 0) {
          if (this.#withdraw(gen)) throw new TimeoutError("call Barrier.wait", limit);
          // The generation completed (or the barrier broke) while we timed
          // out: GEN changes at once, and we are counted in WAITERS.
          Atomics.wait(i32, GEN, gen);
          continue;
        }
        Atomics.wait(i32, GEN, gen, remaining);
      }
    } finally {
      Atomics.sub(i32, WAITERS, 1);
    }
  }

  /**
   * Like {@linkcode Barrier.wait}, but resolves instead of blocking, using
   * `Atomics.waitAsync`: for the main thread or any code whose event loop must
   * keep running. Rejects with {@linkcode TimeoutError} or
   * {@linkcode BrokenBarrierError} in the same cases.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { Barrier } from "./barrier.ts";
   *
   * const barrier = new Barrier(2);
   * const [a, b] = await Promise.all([barrier.waitAsync(), barrier.waitAsync()]);
   * assert.equal(a !== b, true); // exactly one of them is the leader
   * ```
   */
  async waitAsync(timeoutMs?: number): Promise<boolean> {
    const limit = checkTimeout(timeoutMs);
    const i32 = this.#i32;
    const gen = this.#arrive();
    if (gen < 0) return true;
    const deadline = limit === Infinity ? Infinity : performance.now() + limit;
    Atomics.add(i32, WAITERS, 1);
    try {
      for (;;) {
        if (Atomics.load(i32, GEN) !== gen) return this.#released(gen);
        let remaining = deadline - performance.now();
        if (remaining <= 0) {
          if (this.#withdraw(gen)) throw new TimeoutError("call Barrier.waitAsync", limit);
          remaining = Infinity;
        }
        const outcome = Atomics.waitAsync(i32, GEN, gen);
        if (!outcome.async) continue;
        // The timer does two jobs. It ends the wait at the deadline. And it
        // keeps the event loop alive: Deno does not count a pending
        // Atomics.waitAsync as work, and would otherwise end the program
        // (or a test) before a notify from this same thread is delivered.
        // A waiter left behind by a timeout is resolved by a later notify.
        let timer: ReturnType<typeof setTimeout> | undefined;
        const tick = new Promise<void>((resolve) => {
          timer = setTimeout(resolve, Math.min(remaining, MAX_TIMER_MS));
        });
        try {
          await Promise.race([outcome.value, tick]);
        } finally {
          clearTimeout(timer);
        }
      }
    } finally {
      Atomics.sub(i32, WAITERS, 1);
    }
  }

  /**
   * Breaks the barrier for good: every party waiting now and every later
   * wait throws {@linkcode BrokenBarrierError}. Use it when a party is gone
   * (a terminated worker), so that the others fail instead of waiting
   * forever. Idempotent.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { Barrier, BrokenBarrierError } from "./barrier.ts";
   *
   * const barrier = new Barrier(2);
   * const waiting = barrier.waitAsync();
   * barrier.break();
   * await assert.rejects(waiting, BrokenBarrierError);
   * ```
   */
  break(): void {
    const i32 = this.#i32;
    Atomics.or(i32, GEN, BROKEN_BIT);
    Atomics.notify(i32, GEN);
  }

  /**
   * Counts this party in the current generation. Returns -1 in the leader
   * (the generation is complete and the others were released), otherwise the
   * value of GEN that the caller must wait to change.
   */
  #arrive(): number {
    const i32 = this.#i32;
    const parties = this.#parties;
    // Read before arriving: GEN cannot move past this generation before we
    // have arrived, so this is the generation we are joining.
    const gen = Atomics.load(i32, GEN);
    if ((gen & BROKEN_BIT) !== 0) throw new BrokenBarrierError(parties);
    for (;;) {
      const state = Atomics.load(i32, STATE);
      const count = state & 0xffff;
      if (count + 1 < parties) {
        if (Atomics.compareExchange(i32, STATE, state, state + 1) === state) return gen;
        continue;
      }
      const next = ((((state >>> 16) + 1) & 0xffff) << 16) | 0;
      if (Atomics.compareExchange(i32, STATE, state, next) !== state) continue;
      // Leader: STATE is reset, now publish the new generation and wake.
      let seen = gen;
      for (;;) {
        const advanced = (seen & BROKEN_BIT) | ((seen + 1) & GEN_MASK);
        const was = Atomics.compareExchange(i32, GEN, seen, advanced);
        if (was === seen) break;
        seen = was; // only break() can race with us here
      }
      if (Atomics.load(i32, WAITERS) > 0) Atomics.notify(i32, GEN);
      return -1;
    }
  }

  /** GEN moved away from `gen`: either our generation completed, or the barrier broke. */
  #released(gen: number): boolean {
    const now = Atomics.load(this.#i32, GEN);
    if ((now & GEN_MASK) !== (gen & GEN_MASK)) return false;
    throw new BrokenBarrierError(this.#parties);
  }

  /** Takes back an arrival in generation `gen`; false if that generation already completed. */
  #withdraw(gen: number): boolean {
    const i32 = this.#i32;
    const gen16 = gen & 0xffff;
    for (;;) {
      const state = Atomics.load(i32, STATE);
      if (state >>> 16 !== gen16 || (state & 0xffff) === 0) return false;
      if (Atomics.compareExchange(i32, STATE, state, state - 1) === state) return true;
    }
  }
}

/** Validates a `timeoutMs` argument; undefined and Infinity mean no limit. */
function checkTimeout(timeoutMs: number | undefined): number {
  if (timeoutMs === undefined) return Infinity;
  if (typeof timeoutMs !== "number" || !(timeoutMs >= 0)) {
    throw new RangeError(
      `Cannot wait on the barrier as 'timeoutMs' must be a non-negative number: ` +
        `current value is ${describeValue(timeoutMs)}`,
    );
  }
  return timeoutMs;
}
