/**
 * Spinning and parking on futex words: the blocking discipline of every sabre
 * latch, exported for structure implementers.
 *
 * Every blocking latch operation spins for a short bounded time (with
 * `Atomics.pause` where it exists), then parks with `Atomics.wait` (sync
 * forms) or `Atomics.waitAsync` (async forms) on a futex word. After the spin
 * budget nothing busy-waits: a parked worker uses no CPU until a waker calls
 * `Atomics.notify`, and wakers notify only when a waiter announced itself.
 *
 * @module
 */

import { describeValue, SharedHeap, TimeoutError } from "../memory/mod.ts";

const atomicsPause = (Atomics as unknown as { pause?: (n?: number) => void }).pause;

/**
 * One CPU-friendly spin step (`Atomics.pause` where the runtime has it).
 *
 * @example
 * ```ts
 * import { pause } from "@sabre/sabre";
 * for (let i = 0; i < 10; i++) pause();
 * ```
 */
export const pause: () => void = typeof atomicsPause === "function"
  ? () => atomicsPause()
  : () => {};

/**
 * Spin steps before a blocking operation parks.
 *
 * @example
 * ```ts
 * import { SPIN_LIMIT } from "@sabre/sabre";
 * console.assert(SPIN_LIMIT > 0);
 * ```
 */
export const SPIN_LIMIT = 100;

/**
 * Options of every blocking operation.
 *
 * @example
 * ```ts
 * import { type LockOptions, Mutex } from "@sabre/sabre";
 * const options: LockOptions = { timeoutMs: 100 };
 * Mutex.create().lock(options).unlock();
 * ```
 */
export interface LockOptions {
  /**
   * Give up after this many milliseconds and throw `TimeoutError`. A finite
   * number ≥ 0; 0 means a single attempt without waiting. Default: wait
   * forever.
   */
  timeoutMs?: number;
}

/**
 * Absolute deadline on the `performance.now()` clock for `options`, Infinity
 * for none. Throws `RangeError` naming `what` for a bad `timeoutMs`, and
 * `TypeError` for options that are not an object or that have a field other
 * than `timeoutMs` and `otherFields`.
 *
 * @example
 * ```ts
 * import { deadlineOf } from "@sabre/sabre";
 * console.assert(deadlineOf(undefined, "wait") === Infinity);
 * console.assert(deadlineOf({ timeoutMs: 10 }, "wait") > performance.now());
 * ```
 */
export function deadlineOf(
  options: LockOptions | undefined,
  what: string,
  otherFields?: readonly string[],
): number {
  if (options === undefined) return Infinity;
  if (typeof options !== "object" || options === null) {
    throw new TypeError(
      `Cannot ${what} as 'options' must be an object: current value is ${describeValue(options)}`,
    );
  }
  // A misspelt field would otherwise mean "wait forever".
  for (const field in options) {
    if (field !== "timeoutMs" && !(otherFields?.includes(field) ?? false)) {
      throw new TypeError(
        `Cannot ${what} as 'options' has no field ${describeValue(field)}: ` +
          `it takes ${["timeoutMs", ...(otherFields ?? [])].map((f) => `'${f}'`).join(", ")}`,
      );
    }
  }
  const timeoutMs = options.timeoutMs;
  if (timeoutMs === undefined || timeoutMs === Infinity) return Infinity;
  if (typeof timeoutMs !== "number" || !(timeoutMs >= 0)) {
    throw new (typeof timeoutMs === "number" ? RangeError : TypeError)(
      `Cannot ${what} as 'timeoutMs' must be a number >= 0: current value is ${
        describeValue(timeoutMs)
      }`,
    );
  }
  return performance.now() + timeoutMs;
}

/**
 * Milliseconds left before `deadline` (Infinity stays Infinity).
 *
 * @example
 * ```ts
 * import { remainingMs } from "@sabre/sabre";
 * console.assert(remainingMs(Infinity) === Infinity && remainingMs(0) === 0);
 * ```
 */
export function remainingMs(deadline: number): number {
  return deadline === Infinity ? Infinity : Math.max(0, deadline - performance.now());
}

/**
 * The end of one bounded park: `deadline`, or `ms` from now where that comes
 * first. For waiters that must look again now and then whatever wakes them.
 *
 * @example
 * ```ts
 * import { boundedBy } from "./parking.ts";
 * console.assert(boundedBy(Infinity, 10) <= performance.now() + 10);
 * console.assert(boundedBy(0, 10) === 0);
 * ```
 */
export function boundedBy(deadline: number, ms: number): number {
  return Math.min(deadline, performance.now() + ms);
}

/**
 * Checks `fn`, the section that a synchronous closure helper runs (`what`
 * names the helper): it must be a function, and not an async one, whose
 * code after its first await would run after the helper ended the section
 * (released the lock, or validated the read). `instead` says what to use.
 * A plain function that returns a promise passes: that promise is its
 * result. Reads one property of `fn`, which V8 caches.
 *
 * @example
 * ```ts
 * import { requireSyncFunction } from "./parking.ts";
 * requireSyncFunction(() => 1, "Mutex.withLock", "use withLockAsync");
 * ```
 */
export function requireSyncFunction(fn: unknown, what: string, instead: string): void {
  if (typeof fn !== "function") {
    throw new TypeError(
      `Cannot run ${what} as 'fn' must be a function: current value is ${describeValue(fn)}`,
    );
  }
  if ((fn as { [Symbol.toStringTag]?: unknown })[Symbol.toStringTag] === "AsyncFunction") {
    throw new TypeError(
      `Cannot run ${what} as 'fn' is an async function: the section ends when fn returns, ` +
        `which an async function does at its first await, with the rest of it still to run ` +
        `(${instead})`,
    );
  }
}

/**
 * `Atomics.wait`, after ending this worker's read pins
 * (`SharedHeap.releaseReadPins`): a worker blocked in sabre never holds back
 * the reclamation of memory that others retire. Every blocking wait in sabre
 * goes through here. `timeoutMs` undefined waits without a limit.
 *
 * @example
 * ```ts
 * import { waitBlocking } from "./parking.ts";
 * const words = new Int32Array(new SharedArrayBuffer(4));
 * waitBlocking(words, 0, 1, 0); // the word is not 1: returns at once
 * ```
 */
export function waitBlocking(
  words: Int32Array,
  index: number,
  expected: number,
  timeoutMs: number | undefined,
): void {
  SharedHeap.releaseReadPins();
  const deadline = timeoutMs === undefined ? Infinity : performance.now() + timeoutMs;
  for (;;) {
    const left = remainingMs(deadline);
    if (left <= 0) return;
    // In slices (see PARK_SLICE_MS): a slice that ends with the word
    // unchanged parks again, so callers see no wake-up that a notify or a
    // change of the word did not cause.
    const outcome = Atomics.wait(words, index, expected, Math.min(left, parkSliceMs));
    if (outcome !== "timed-out" || Atomics.load(words, index) !== expected) return;
  }
}

/**
 * Longest single `Atomics.wait` of a park. A waker that changes the word and
 * is terminated before its `Atomics.notify` (a Node worker can be stopped
 * between the two calls) would leave its waiters asleep for good; parked in
 * slices, they see the changed word within one slice and go on. A waiter
 * whose word does not change costs one wake-up per slice.
 */
const PARK_SLICE_MS = 100;

/** Whether parks are bounded for killed wakers (see {@linkcode setKilledWakerRecovery}). */
let recovering = true;
/** PARK_SLICE_MS, or Infinity while recovery is off. */
let parkSliceMs = PARK_SLICE_MS;

/**
 * Turns on or off, in the calling thread, the bounds that let waiters
 * survive a waker killed between its change and its notify: the park
 * slices here, and the bounds that callers take from
 * {@linkcode recoveryBound}. Returns the previous setting. For tests only:
 * with recovery off, a waker that forgets to notify leaves its waiter
 * parked until the waiter's own timeout, so a test sees the fault instead
 * of a wake-up a slice later.
 *
 * @example
 * ```ts
 * import { setKilledWakerRecovery } from "./parking.ts";
 * const was = setKilledWakerRecovery(false);
 * setKilledWakerRecovery(was);
 * ```
 */
export function setKilledWakerRecovery(on: boolean): boolean {
  const was = recovering;
  recovering = on;
  parkSliceMs = on ? PARK_SLICE_MS : Infinity;
  return was;
}

/**
 * `boundedBy(deadline, ms)` while recovery from killed wakers is on, else
 * `deadline`: for parks bounded only so that a waker killed before its
 * notify cannot leave the waiter parked for good.
 *
 * @example
 * ```ts
 * import { recoveryBound } from "./parking.ts";
 * console.assert(recoveryBound(Infinity, 10) <= performance.now() + 10);
 * ```
 */
export function recoveryBound(deadline: number, ms: number): number {
  return recovering ? boundedBy(deadline, ms) : deadline;
}

/**
 * Parks with `Atomics.wait` until `words[index]` is notified or no longer
 * equals `expected`. Returns false once the deadline has passed. May return
 * true spuriously: re-check the condition. It first ends the worker's read
 * pins (`SharedHeap.releaseReadPins`), as every blocking wait in sabre does.
 *
 * @example
 * ```ts
 * import { parkSync } from "@sabre/sabre";
 * const words = new Int32Array(new SharedArrayBuffer(4));
 * console.assert(!parkSync(words, 0, 0, performance.now() + 1)); // times out
 * ```
 */
export function parkSync(
  words: Int32Array,
  index: number,
  expected: number,
  deadline: number,
): boolean {
  const left = remainingMs(deadline);
  if (left <= 0) return false;
  waitBlocking(words, index, expected, left);
  return deadline === Infinity || performance.now() < deadline;
}

/**
 * Async twin of parkSync (`Atomics.waitAsync`), for threads that must not
 * block their event loop.
 *
 * A pending `Atomics.waitAsync` does not keep Deno's event loop alive, and
 * its resolution (by a notify or by its timeout) is only delivered while the
 * loop runs. So while parked we hold a timer that keeps the loop alive, and
 * drop it as soon as the wait ends.
 *
 * @example
 * ```ts
 * import { parkAsync } from "@sabre/sabre";
 * const words = new Int32Array(new SharedArrayBuffer(4));
 * console.assert(!(await parkAsync(words, 0, 0, performance.now() + 1)));
 * ```
 */
export async function parkAsync(
  words: Int32Array,
  index: number,
  expected: number,
  deadline: number,
): Promise<boolean> {
  const left = remainingMs(deadline);
  if (left <= 0) return false;
  let result = Atomics.waitAsync(words, index, expected, Math.min(left, parkSliceMs));
  if (result.async) {
    const keepAlive = setInterval(noop, KEEP_ALIVE_MS);
    try {
      // In slices, as in waitBlocking.
      while ((await result.value) === "timed-out" && Atomics.load(words, index) === expected) {
        const left = remainingMs(deadline);
        if (left <= 0) break;
        result = Atomics.waitAsync(words, index, expected, Math.min(left, parkSliceMs));
        if (!result.async) break;
      }
    } finally {
      clearInterval(keepAlive);
    }
  }
  return deadline === Infinity || performance.now() < deadline;
}

const KEEP_ALIVE_MS = 1 << 30;
function noop(): void {}

/**
 * Throws the {@linkcode TimeoutError} for `operation` given `options`.
 *
 * @example
 * ```ts
 * import { TimeoutError, timedOut } from "@sabre/sabre";
 * try {
 *   timedOut("lock Thing", { timeoutMs: 5 });
 * } catch (e) {
 *   console.assert(e instanceof TimeoutError);
 * }
 * ```
 */
export function timedOut(operation: string, options: LockOptions | undefined): never {
  throw new TimeoutError(operation, options?.timeoutMs ?? 0);
}
