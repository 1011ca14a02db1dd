/**
 * Retry: how a transaction says "not now". `Retry.later()` blocks the
 * transaction until a location it read changes; `Retry.unless(cond)` does so
 * when `cond` is false; `Retry.invalid()` restarts the attempt at once.
 *
 * The signals are preallocated, so throwing one captures no stack: they are
 * control flow inside `Xt.commit`, and never reach the caller of a commit.
 * Each is an Error all the same, whose message says what went wrong where
 * one escapes: a `Retry` call outside any transaction.
 *
 * @module
 */

/**
 * The value thrown by {@linkcode Retry.later}. Catch-all handlers inside a
 * transaction should rethrow it (see {@linkcode isRetry}).
 *
 * @example
 * ```ts
 * import { Later, Retry } from "@sabre/sabre";
 * try {
 *   Retry.later();
 * } catch (e) {
 *   console.assert(e === Later);
 * }
 * ```
 */
export const Later: { readonly retry: "later" } = retrySignal(
  "later",
  "Retry.later() or Retry.unless() was called outside a transaction: it only means something inside the function given to Xt.commit",
);

/**
 * The value thrown by {@linkcode Retry.invalid} and by a read that finds the
 * attempt inconsistent.
 *
 * @example
 * ```ts
 * import { Invalid, Retry } from "@sabre/sabre";
 * try {
 *   Retry.invalid();
 * } catch (e) {
 *   console.assert(e === Invalid);
 * }
 * ```
 */
export const Invalid: { readonly retry: "invalid" } = retrySignal(
  "invalid",
  "Retry.invalid() was called outside a transaction: it only means something inside the function given to Xt.commit",
);

/**
 * A frozen Error carrying `retry`, with a stack of its message alone (the
 * place it was built says nothing about where it was thrown).
 */
function retrySignal<R extends string>(retry: R, message: string): { readonly retry: R } {
  const signal = new Error(message) as Error & { retry: R };
  signal.name = "RetrySignal";
  signal.stack = `RetrySignal: ${message}`;
  signal.retry = retry;
  return Object.freeze(signal);
}

/**
 * Whether `e` is one of the retry signals ({@linkcode Later} or
 * {@linkcode Invalid}). Code inside a transaction that catches everything
 * must rethrow these.
 *
 * @example
 * ```ts
 * import { isRetry, Later } from "@sabre/sabre";
 * console.assert(isRetry(Later) && !isRetry(new Error("x")));
 * ```
 */
export function isRetry(e: unknown): boolean {
  return e === Later || e === Invalid;
}

/**
 * Signals for blocking and restarting transactions and blocking
 * single-location operations (`Loc.getAs`, `Loc.update`, `Loc.modify`).
 *
 * @example
 * ```ts
 * import { Loc, Retry, Xt } from "@sabre/sabre";
 * import { SharedHeap } from "@sabre/sabre";
 *
 * const heap = SharedHeap.create();
 * const items = Loc.make(heap, 1);
 * // Take one item, or block until there is one (here: there is).
 * const left = Xt.commit((xt) => {
 *   const n = xt.get(items);
 *   Retry.unless(n > 0);
 *   xt.set(items, n - 1);
 *   return n - 1;
 * });
 * console.assert(left === 0);
 * ```
 */
export const Retry: {
  /**
   * Abandons the current attempt and blocks until one of the locations the
   * transaction has read so far is changed by another commit, then runs the
   * transaction again. Inside {@linkcode Xt.first}, moves on to the next
   * alternative instead. A transaction that read nothing blocks until its
   * timeout.
   *
   * @example
   * ```ts
   * import { Loc, Retry, SharedHeap, TimeoutError, Xt } from "@sabre/sabre";
   * const ready = Loc.make(SharedHeap.create(), 0);
   * let timedOut = false;
   * try {
   *   // Waits until ready is 1; nobody sets it here, so the wait times out.
   *   Xt.commit((xt) => (xt.get(ready) === 1 ? "go" : Retry.later()), { timeoutMs: 10 });
   * } catch (e) {
   *   timedOut = e instanceof TimeoutError;
   * }
   * console.assert(timedOut);
   * ```
   */
  later(): never;
  /**
   * `Retry.later()` when `condition` is false.
   *
   * @example
   * ```ts
   * import { Loc, Retry, SharedHeap, Xt } from "@sabre/sabre";
   * const stock = Loc.make(SharedHeap.create(), 3);
   * // Take 2 from stock, waiting while it holds less.
   * Xt.commit((xt) => {
   *   Retry.unless(xt.get(stock) >= 2);
   *   xt.fetchAndAdd(stock, -2);
   * }, { timeoutMs: 100 });
   * console.assert(stock.get() === 1);
   * ```
   */
  unless(condition: boolean): void;
  /**
   * Abandons the current attempt and runs the transaction again at once.
   *
   * @example
   * ```ts
   * import { Retry, Xt } from "@sabre/sabre";
   * let runs = 0;
   * // Abandon the first attempt: the transaction runs again at once.
   * const result = Xt.commit(() => (++runs === 1 ? Retry.invalid() : runs));
   * console.assert(result === 2 && runs === 2);
   * ```
   */
  invalid(): never;
} = {
  // The documentation is on the type above, which is what users see.
  later(): never {
    throw Later;
  },
  unless(condition: boolean): void {
    if (!condition) throw Later;
  },
  invalid(): never {
    throw Invalid;
  },
};
