/**
 * Xt: transactions over {@linkcode Loc}s with an explicitly passed log, in
 * the style of kcas's `Xt`. A transaction is a function of the log; commit
 * runs it, and re-runs it until its accesses can be committed atomically.
 *
 * The log lives in the worker's own JS memory. Every first access of a
 * location reads it (resolving, and helping to decide, a commit in flight)
 * and records the cell read; reads are checked for consistency against the
 * domain's commit counter (opacity), and the commit is one multi-word CAS
 * over the log (see `_kcas.ts` and the module doc of `mod.ts`).
 *
 * @module
 */

import { describeValue, TimeoutError } from "../memory/mod.ts";
import { deadlineOf, parkAsync, parkSync, pause, remainingMs } from "../latch/mod.ts";
import { recoveryBound } from "../latch/parking.ts";
import {
  type CommitMode,
  type Domain,
  H_COUNTER,
  L_WORD,
  orderByAddress,
  recoverFromFullHeap,
} from "./_kcas.ts";
import { addValue, checkFn, checkValue, Loc, sameValueZero } from "./loc.ts";
import { Invalid, Later } from "./retry.ts";

/**
 * A transaction: a function of the log that reads and writes locations
 * through it and returns a result. It may run several times, so it should
 * have no other side effects (use {@linkcode Xt.postCommit} for those).
 *
 * @example
 * ```ts
 * import { Loc, type Tx, Xt } from "@sabre/sabre";
 * import { SharedHeap } from "@sabre/sabre";
 * const loc = Loc.make(SharedHeap.create(), 1);
 * const double: Tx<number> = (xt) => xt.update(loc, (x) => x * 2);
 * console.assert(Xt.commit(double) === 1 && loc.get() === 2);
 * ```
 */
export type Tx<T> = (xt: Xt) => T;

/**
 * Options of {@linkcode Xt.commit}, {@linkcode Xt.commitAsync} and the
 * blocking single-location operations.
 *
 * @example
 * ```ts
 * import { type CommitOptions, Loc, Xt } from "@sabre/sabre";
 * import { SharedHeap } from "@sabre/sabre";
 * const options: CommitOptions = { timeoutMs: 50, mode: "lock-free" };
 * const loc = Loc.make(SharedHeap.create(), 1);
 * console.assert(Xt.commit((xt) => xt.get(loc), options) === 1);
 * ```
 */
export interface CommitOptions {
  /**
   * Give up blocking (in `Retry.later`) after this many milliseconds and
   * throw `TimeoutError`. A number >= 0; default: wait forever.
   */
  timeoutMs?: number;
  /**
   * How locations that the transaction only read take part in its commit:
   * `"obstruction-free"` (default) validates them without writing, so
   * readers of the same locations never disturb each other;
   * `"lock-free"` installs them like writes, so that one of several
   * conflicting commits always succeeds. After two failed attempts an
   * obstruction-free commit switches to lock-free.
   */
  mode?: CommitMode;
}

/**
 * A point of a transaction's log to return to with {@linkcode Xt.rollback}.
 *
 * @example
 * ```ts
 * import { Loc, Xt, type XtSnapshot } from "@sabre/sabre";
 * import { SharedHeap } from "@sabre/sabre";
 * const loc = Loc.make(SharedHeap.create(), 1);
 * Xt.commit((xt) => {
 *   const snap: XtSnapshot = xt.snapshot();
 *   xt.set(loc, 2);
 *   xt.rollback(snap);
 * });
 * console.assert(loc.get() === 1);
 * ```
 */
export interface XtSnapshot {
  /** Entries in the log when it was taken. */
  readonly entries: number;
}

interface Snap extends XtSnapshot {
  readonly attempt: number;
  readonly values: number[];
  readonly post: number;
}

/** Log size from which lookups use a Map. */
const INDEX_FROM = 8;
/** Failed obstruction-free attempts before a commit switches to lock-free. */
const SWITCH_AFTER = 2;

const OK = 0;
const BLOCK = 1;
const AGAIN = 2;
/** The attempt found the heap full, and reclamation freed blocks since: try again at once. */
const RECOVERED = 3;

const pool: Xt[] = [];
/** A word nobody notifies: where a transaction that read nothing waits for its timeout. */
const nowhere = new Int32Array(new SharedArrayBuffer(4));
let attempts = 0;
/**
 * Longest park of a blocked transaction before it runs again. A committer
 * that dies between winning its status CAS and notifying leaves the waiters
 * of its locations parked; re-running every RECHECK_MS bounds that delay.
 * A blocked transaction re-runs its function at most this often otherwise.
 */
const RECHECK_MS = 250;

/** The fields of CommitOptions besides timeoutMs. */
const COMMIT_FIELDS = ["mode"] as const;

function checkMode(options: CommitOptions | undefined): CommitMode {
  const mode = options?.mode ?? "obstruction-free";
  if (mode !== "obstruction-free" && mode !== "lock-free") {
    throw new RangeError(
      `Cannot commit transaction as 'mode' must be "obstruction-free" or "lock-free": current value is ${
        describeValue(mode)
      }`,
    );
  }
  return mode;
}

/**
 * A transaction function returned a Promise (it is async): what it does after
 * its first await would run after the attempt ended. Nothing is committed.
 */
function throwAsyncTx(result: Promise<unknown>): never {
  // Its rejection, once it touches the ended attempt, is expected: keep it
  // from being reported as unhandled.
  result.catch(() => {});
  throw new TypeError(
    "Cannot commit transaction as its function returned a Promise: a transaction runs synchronously, so it cannot be an async function (await outside it; Xt.commitAsync waits for a retry asynchronously)",
  );
}

function checkTx(tx: unknown): void {
  if (typeof tx !== "function") {
    throw new TypeError(
      `Cannot commit transaction as 'tx' must be a function: current value is ${describeValue(tx)}`,
    );
  }
}

function checkLoc(loc: unknown, what: string): void {
  if (!(loc instanceof Loc)) {
    throw new TypeError(
      `Cannot ${what} as 'loc' is not a Loc: current value is ${describeValue(loc)}`,
    );
  }
}

/**
 * The log of one transaction attempt, passed to the transaction function.
 * Accesses through it are recorded, not performed: the commit performs them
 * all at once, or runs the transaction again.
 *
 * Guarantees:
 *
 * - **Strict serializability**: committed transactions take effect in an
 *   order that respects real time, each at one instant.
 * - **Opacity**: within one attempt, every read is consistent with every
 *   earlier read of the attempt (all of them held at one instant), even in
 *   an attempt that later fails. A read that would break this abandons the
 *   attempt, which then runs again.
 * - A transaction that throws (anything but a retry signal) commits nothing
 *   and the error reaches the caller of `commit`.
 *
 * An Xt is valid only during the call of the transaction function it was
 * passed to: do not keep it. Xt objects are reused, so one kept past its
 * attempt throws `TypeError` while idle, but during a later transaction of
 * the same worker it would act as that transaction's log.
 *
 * @example
 * ```ts
 * import { Loc, Xt } from "@sabre/sabre";
 * import { SharedHeap } from "@sabre/sabre";
 *
 * const heap = SharedHeap.create();
 * const a = Loc.make(heap, 10);
 * const b = Loc.make(heap, 52);
 * const x = Loc.make(heap, 0);
 * Xt.commit((xt) => xt.set(x, xt.get(b) - xt.get(a)));
 * console.assert(x.get() === 42);
 * ```
 */
export class Xt {
  #active = false;
  #attempt = 0;
  #domain: Domain | undefined = undefined;
  #n = 0;
  readonly #addrs: number[] = [];
  readonly #cells: number[] = [];
  readonly #orig: number[] = [];
  readonly #values: number[] = [];
  readonly #writes: boolean[] = [];
  readonly #order: number[] = [];
  #index: Map<number, number> | undefined = undefined;
  #seen = 0;
  readonly #post: (() => void)[] = [];
  #result: unknown = undefined;
  #bucket = -1;
  #bucketSeen = 0;
  /** Whether this attempt's commit may use the domain's reserve (see allowReserve). */
  #reserve = false;

  private constructor() {}

  /**
   * Internal, for stm/data (called as `xt["allowReserve"]()`): marks this
   * attempt as one that frees memory (a take, a remove, a clear), so that
   * its commit may use the cells and descriptors that each worker keeps for
   * a full heap. Not for an attempt that adds data: the reserves are kept
   * for commits that could not run otherwise.
   */
  private allowReserve(): void {
    this.#reserve = true;
  }

  // ------------------------------------------------------------- committing

  /**
   * Runs `tx` and commits its accesses atomically, re-running it when a
   * concurrent commit interferes, and returns its result. When `tx` calls
   * `Retry.later()`, blocks (`Atomics.wait`) until another commit changes a
   * location it read, then runs it again. Throws `TimeoutError` when a
   * blocked transaction waits past `options.timeoutMs`; rethrows whatever
   * else `tx` throws, having committed nothing. Post-commit actions run
   * after the commit, in order.
   *
   * @example
   * ```ts
   * import { Loc, Xt } from "@sabre/sabre";
   * import { SharedHeap } from "@sabre/sabre";
   * const heap = SharedHeap.create();
   * const from = Loc.make(heap, 100);
   * const to = Loc.make(heap, 0);
   * Xt.commit((xt) => {
   *   xt.fetchAndAdd(from, -30);
   *   xt.fetchAndAdd(to, 30);
   * });
   * console.assert(from.get() === 70 && to.get() === 30);
   * ```
   */
  static commit<T>(tx: Tx<T>, options?: CommitOptions): T {
    checkTx(tx);
    let mode = checkMode(options);
    const deadline = deadlineOf(options, "commit transaction", COMMIT_FIELDS);
    const xt = pool.pop() ?? new Xt();
    try {
      for (let failures = 0, backoff = 1, recovered = false;;) {
        const outcome = xt.#runOrRecover(tx, mode, recovered);
        if (outcome === OK) return xt.#finish() as T;
        if (outcome === RECOVERED) {
          recovered = true;
          continue;
        }
        if (outcome === BLOCK) {
          const domain = xt.#domain;
          const b = xt.#bucket;
          xt.#release();
          let inTime: boolean;
          if (b >= 0 && domain !== undefined) {
            domain.parkSync(b, xt.#bucketSeen, recoveryBound(deadline, RECHECK_MS));
            domain.unregister(b);
            inTime = remainingMs(deadline) > 0;
          } else {
            // Read nothing: nothing can wake it; wait for the timeout.
            inTime = parkSync(nowhere, 0, 0, deadline);
          }
          if (!inTime) throw new TimeoutError("commit transaction", options?.timeoutMs ?? 0);
          continue;
        }
        xt.#release();
        if (++failures >= SWITCH_AFTER) mode = "lock-free";
        for (let i = 0; i < backoff; i++) pause();
        backoff = Math.min(backoff * 2, 1024);
      }
    } finally {
      xt.#release();
      pool.push(xt);
    }
  }

  /**
   * Like {@linkcode Xt.commit}, but blocks with `Atomics.waitAsync`, so that
   * the event loop keeps running while the transaction waits. `tx` itself
   * runs synchronously.
   *
   * @example
   * ```ts
   * import { Loc, Retry, Xt } from "@sabre/sabre";
   * import { SharedHeap } from "@sabre/sabre";
   * const flag = Loc.make(SharedHeap.create(), 0);
   * const waiting = Xt.commitAsync((xt) => {
   *   Retry.unless(xt.get(flag) === 1);
   *   return "set";
   * });
   * flag.set(1);
   * console.assert((await waiting) === "set");
   * ```
   */
  static async commitAsync<T>(tx: Tx<T>, options?: CommitOptions): Promise<T> {
    checkTx(tx);
    let mode = checkMode(options);
    const deadline = deadlineOf(options, "commit transaction", COMMIT_FIELDS);
    for (let failures = 0, backoff = 1, recovered = false;;) {
      // One log per step: another async commit may run while we wait.
      const xt = pool.pop() ?? new Xt();
      let domain: Domain | undefined;
      let b = -1;
      let seen = 0;
      let blocked = false;
      try {
        const outcome = xt.#runOrRecover(tx, mode, recovered);
        if (outcome === OK) return xt.#finish() as T;
        if (outcome === RECOVERED) {
          recovered = true;
        } else if (outcome === BLOCK) {
          blocked = true;
          domain = xt.#domain;
          b = xt.#bucket;
          seen = xt.#bucketSeen;
        } else {
          if (++failures >= SWITCH_AFTER) mode = "lock-free";
          for (let i = 0; i < backoff; i++) pause();
          backoff = Math.min(backoff * 2, 1024);
        }
      } finally {
        xt.#release();
        pool.push(xt);
      }
      if (b >= 0 && domain !== undefined) {
        let inTime: boolean;
        try {
          await domain.parkAsync(b, seen, recoveryBound(deadline, RECHECK_MS));
          inTime = remainingMs(deadline) > 0;
        } finally {
          domain.unregister(b);
        }
        if (!inTime) throw new TimeoutError("commit transaction", options?.timeoutMs ?? 0);
      } else if (blocked) {
        if (!(await parkAsync(nowhere, 0, 0, deadline))) {
          throw new TimeoutError("commit transaction", options?.timeoutMs ?? 0);
        }
      }
    }
  }

  /**
   * A transaction that tries `alternatives` in order and returns the result
   * of the first one that does not call `Retry.later()`; the writes of an
   * alternative that retried are rolled back first, and what it read stays
   * in the log as reads, so the commit holds only if it would still retry.
   * When all of them retry, the transaction blocks until a location that
   * any of them read changes. Throws `TypeError` for an empty list or a
   * non-function.
   *
   * @example
   * ```ts
   * import { Loc, Retry, Xt } from "@sabre/sabre";
   * import { SharedHeap } from "@sabre/sabre";
   * const heap = SharedHeap.create();
   * const [a, b, c, d] = [10, 20, 30, 27].map((v) => Loc.make(heap, v));
   * const transfer = (amount: number, source: Loc, target: Loc) => (xt: Xt) => {
   *   Retry.unless(xt.fetchAndAdd(source, -amount) >= amount);
   *   xt.fetchAndAdd(target, amount);
   * };
   * Xt.commit(Xt.first([transfer(15, a, d), transfer(15, b, d), transfer(15, c, d)]));
   * console.assert([a, b, c, d].map((l) => l.get()).join() === "10,5,30,42");
   * ```
   */
  static first<T>(alternatives: readonly Tx<T>[]): Tx<T> {
    if (!Array.isArray(alternatives) || alternatives.length === 0) {
      throw new TypeError(
        `Cannot combine alternatives as 'alternatives' must be a non-empty array: current value is ${
          describeValue(alternatives)
        }`,
      );
    }
    for (const alternative of alternatives) checkTx(alternative);
    const list = alternatives.slice();
    return (xt: Xt): T => {
      const last = list.length - 1;
      for (let i = 0; i < last; i++) {
        const result = xt.#unlessRetried(list[i]);
        if (result !== Later) return result as T;
      }
      return list[last](xt);
    };
  }

  /**
   * #run; when the attempt throws `HeapExhaustedError` and has not
   * `recovered` yet, ends it and waits for reclamation
   * (recoverFromFullHeap): RECOVERED when that freed or refilled blocks.
   * Deleted or replaced data of committed transactions is retired through
   * epochs, so a heap that is full right after many takes or removes
   * usually has room again two epochs later.
   */
  #runOrRecover(tx: Tx<unknown>, mode: CommitMode, recovered: boolean): number {
    // After a recovery the commit may use the reserve: the recovery refilled
    // it first, from the very blocks this attempt would otherwise take.
    if (recovered) this.#reserve = true;
    try {
      return this.#run(tx, mode);
    } catch (e) {
      const domain = this.#domain;
      this.#release();
      if (!recovered && recoverFromFullHeap(domain, e)) return RECOVERED;
      throw e;
    }
  }

  /** One attempt: OK (committed), BLOCK (registered to wait) or AGAIN. */
  #run(tx: Tx<unknown>, mode: CommitMode): number {
    this.#active = true;
    this.#attempt = ++attempts;
    try {
      const result = tx(this);
      if (result instanceof Promise) throwAsyncTx(result);
      this.#result = result;
      return this.#commitLog(mode) ? OK : AGAIN;
    } catch (e) {
      if (e === Invalid) return AGAIN;
      if (e !== Later) throw e;
      return this.#register();
    }
  }

  /** Registers as a waiter on everything in the log (rolled-back accesses included). */
  #register(): number {
    const domain = this.#domain;
    if (domain === undefined) {
      // Read nothing: wait for the timeout (any commit may wake us early).
      this.#bucket = -1;
      return BLOCK;
    }
    const b = domain.register(this.#n, this.#addrs, this.#cells);
    if (b < 0) return AGAIN;
    this.#bucket = b;
    this.#bucketSeen = domain.seen;
    return BLOCK;
  }

  #finish(): unknown {
    const result = this.#result;
    const post = this.#post;
    if (post.length === 0) return result;
    const actions = post.slice();
    this.#release();
    for (const action of actions) action();
    return result;
  }

  /** Ends the attempt: unpins and empties the log. Idempotent. */
  #release(): void {
    this.#active = false;
    this.#reserve = false;
    const domain = this.#domain;
    if (domain !== undefined) {
      this.#domain = undefined;
      domain.heap.unpin();
    }
    this.#n = 0;
    this.#index = undefined;
    // Setting an array's length is a runtime call in V8: only when needed.
    if (this.#post.length !== 0) this.#post.length = 0;
    this.#result = undefined;
  }

  #commitLog(mode: CommitMode): boolean {
    const n = this.#n;
    if (n === 0) return true;
    const domain = this.#domain!;
    const values = this.#values;
    const orig = this.#orig;
    const writes = this.#writes;
    let written = 0;
    for (let i = 0; i < n; i++) {
      // !Object.is(v, o), inline: -0 and 0 differ, NaN equals NaN.
      const v = values[i];
      const o = orig[i];
      const w = v === o ? v === 0 && 1 / v !== 1 / o : v === v || o === o;
      writes[i] = w;
      if (w) written++;
    }
    if (written === 0) {
      // Read-only: every read held at the instant of the last one (that is
      // what the per-read checks ensure), which lies inside this commit.
      return true;
    }
    if (n === 1) return domain.casOne(this.#addrs[0], this.#cells[0], values[0], this.#reserve);
    const order = this.#order;
    const addrs = this.#addrs;
    orderByAddress(n, addrs, order);
    return domain.commit(n, order, addrs, this.#cells, values, writes, mode, this.#reserve);
  }

  // -------------------------------------------------------------- the log

  #find(addr: number): number {
    const n = this.#n;
    if (n <= INDEX_FROM) {
      const addrs = this.#addrs;
      for (let i = 0; i < n; i++) if (addrs[i] === addr) return i;
      return -1;
    }
    let index = this.#index;
    if (index === undefined) {
      index = this.#index = new Map();
      for (let i = 0; i < n; i++) index.set(this.#addrs[i], i);
    }
    return index.get(addr) ?? -1;
  }

  /** Index of `loc`'s entry, reading it into the log first if needed. */
  #entry(loc: Loc, what: string): number {
    if (!this.#active) {
      throw new TypeError(
        `Cannot ${what} as this Xt belongs to a transaction attempt that has ended`,
      );
    }
    // Only Locs hold a Domain (not exported), so a match proves a Loc.
    const maybe = (loc as Loc | undefined)?.["d"];
    if (this.#domain === maybe && maybe !== undefined) {
      const found = this.#find(loc["a"]);
      if (found >= 0) return found;
    } else {
      checkLoc(loc, what);
    }
    const d = loc["d"];
    const addr = loc["a"];
    if (this.#domain !== d) {
      if (this.#domain !== undefined) {
        throw new RangeError(
          `Cannot ${what} as the Loc at offset ${addr} belongs to another heap (or STM domain) than the transaction's other locations`,
        );
      }
      d.heap.pinForOperation();
      this.#domain = d;
      // Before the first read (opacity: see #revalidate).
      this.#seen = Atomics.load(d.words, H_COUNTER);
    }
    const cell = d.resolve(loc["w"]);
    const value = d.valueOf(cell);
    const i = this.#n++;
    this.#addrs[i] = addr;
    this.#cells[i] = cell;
    this.#orig[i] = value;
    this.#values[i] = value;
    if (this.#index !== undefined) this.#index.set(addr, i);
    // A lone first read is consistent with itself: the counter value loaded
    // before it already covers it (no commit changes it unseen afterwards).
    if (i !== 0) {
      const c = Atomics.load(d.words, H_COUNTER);
      if (c !== this.#seen) this.#revalidate(c);
    }
    return i;
  }

  /**
   * Checks that every logged location still resolves to the cell read
   * (counter value `c` was loaded before the checks); abandons the attempt
   * otherwise.
   */
  #revalidate(c: number): void {
    const d = this.#domain!;
    const n = this.#n;
    for (let i = 0; i < n; i++) {
      if (d.resolve((this.#addrs[i] >> 2) + L_WORD) !== this.#cells[i]) throw Invalid;
    }
    this.#seen = c;
  }

  // ------------------------------------------------------------- accesses

  /**
   * The location's value as this transaction sees it.
   *
   * @example
   * ```ts
   * import { Loc, Xt } from "@sabre/sabre";
   * import { SharedHeap } from "@sabre/sabre";
   * const loc = Loc.make(SharedHeap.create(), 7);
   * console.assert(Xt.commit((xt) => xt.get(loc)) === 7);
   * ```
   */
  get(loc: Loc): number {
    return this.#values[this.#entry(loc, "get in transaction")];
  }

  /**
   * Sets the location's value (on commit). Throws `TypeError`/`RangeError`
   * for a value the location's kind cannot hold.
   *
   * @example
   * ```ts
   * import { Loc, Xt } from "@sabre/sabre";
   * import { SharedHeap } from "@sabre/sabre";
   * const loc = Loc.make(SharedHeap.create());
   * Xt.commit((xt) => xt.set(loc, 3));
   * console.assert(loc.get() === 3);
   * ```
   */
  set(loc: Loc, value: number): void {
    const i = this.#entry(loc, "set in transaction");
    this.#values[i] = checkValue(loc["k"], value, "set in transaction");
  }

  /**
   * Replaces the value `v` by `fn(v)` and returns `v`.
   *
   * @example
   * ```ts
   * import { Loc, Xt } from "@sabre/sabre";
   * import { SharedHeap } from "@sabre/sabre";
   * const loc = Loc.make(SharedHeap.create(), 2);
   * console.assert(Xt.commit((xt) => xt.update(loc, (x) => x + 1)) === 2 && loc.get() === 3);
   * ```
   */
  update(loc: Loc, fn: (value: number) => number): number {
    checkFn(fn, "update in transaction");
    const i = this.#entry(loc, "update in transaction");
    const old = this.#values[i];
    this.#values[i] = checkValue(loc["k"], fn(old), "update in transaction");
    return old;
  }

  /**
   * Replaces the value `v` by `fn(v)`.
   *
   * @example
   * ```ts
   * import { Loc, Xt } from "@sabre/sabre";
   * import { SharedHeap } from "@sabre/sabre";
   * const loc = Loc.make(SharedHeap.create(), 2);
   * Xt.commit((xt) => xt.modify(loc, (x) => x * 10));
   * console.assert(loc.get() === 20);
   * ```
   */
  modify(loc: Loc, fn: (value: number) => number): void {
    this.update(loc, fn);
  }

  /**
   * Sets the value and returns the one it replaces.
   *
   * @example
   * ```ts
   * import { Loc, Xt } from "@sabre/sabre";
   * import { SharedHeap } from "@sabre/sabre";
   * const loc = Loc.make(SharedHeap.create(), 2);
   * console.assert(Xt.commit((xt) => xt.exchange(loc, 5)) === 2 && loc.get() === 5);
   * ```
   */
  exchange(loc: Loc, value: number): number {
    const i = this.#entry(loc, "exchange in transaction");
    const old = this.#values[i];
    this.#values[i] = checkValue(loc["k"], value, "exchange in transaction");
    return old;
  }

  /**
   * Swaps the values of two locations.
   *
   * @example
   * ```ts
   * import { Loc, Xt } from "@sabre/sabre";
   * import { SharedHeap } from "@sabre/sabre";
   * const heap = SharedHeap.create();
   * const a = Loc.make(heap, 1);
   * const b = Loc.make(heap, 2);
   * Xt.commit((xt) => xt.swap(a, b));
   * console.assert(a.get() === 2 && b.get() === 1);
   * ```
   */
  swap(a: Loc, b: Loc): void {
    const i = this.#entry(a, "swap in transaction");
    const j = this.#entry(b, "swap in transaction");
    const va = this.#values[i];
    const vb = this.#values[j];
    this.#values[i] = checkValue(a["k"], vb, "swap in transaction");
    this.#values[j] = checkValue(b["k"], va, "swap in transaction");
  }

  /**
   * Adds `delta` and returns the value before (Int32 wrapping for `"i32"`
   * locations).
   *
   * @example
   * ```ts
   * import { Loc, Xt } from "@sabre/sabre";
   * import { SharedHeap } from "@sabre/sabre";
   * const loc = Loc.make(SharedHeap.create(), 5);
   * console.assert(Xt.commit((xt) => xt.fetchAndAdd(loc, 2)) === 5 && loc.get() === 7);
   * ```
   */
  fetchAndAdd(loc: Loc, delta: number): number {
    const i = this.#entry(loc, "fetchAndAdd in transaction");
    const old = this.#values[i];
    this.#values[i] = addValue(loc["k"], old, delta, "fetchAndAdd in transaction");
    return old;
  }

  /**
   * Adds 1.
   *
   * @example
   * ```ts
   * import { Loc, Xt } from "@sabre/sabre";
   * import { SharedHeap } from "@sabre/sabre";
   * const loc = Loc.make(SharedHeap.create());
   * Xt.commit((xt) => xt.incr(loc));
   * console.assert(loc.get() === 1);
   * ```
   */
  incr(loc: Loc): void {
    this.fetchAndAdd(loc, 1);
  }

  /**
   * Subtracts 1.
   *
   * @example
   * ```ts
   * import { Loc, Xt } from "@sabre/sabre";
   * import { SharedHeap } from "@sabre/sabre";
   * const loc = Loc.make(SharedHeap.create());
   * Xt.commit((xt) => xt.decr(loc));
   * console.assert(loc.get() === -1);
   * ```
   */
  decr(loc: Loc): void {
    this.fetchAndAdd(loc, -1);
  }

  /**
   * Sets `desired` when the value is `expected` (SameValueZero); returns
   * the value seen either way.
   *
   * @example
   * ```ts
   * import { Loc, Xt } from "@sabre/sabre";
   * import { SharedHeap } from "@sabre/sabre";
   * const loc = Loc.make(SharedHeap.create(), 1);
   * console.assert(Xt.commit((xt) => xt.compareAndSwap(loc, 1, 2)) === 1 && loc.get() === 2);
   * ```
   */
  compareAndSwap(loc: Loc, expected: number, desired: number): number {
    const i = this.#entry(loc, "compareAndSwap in transaction");
    const old = this.#values[i];
    if (sameValueZero(old, expected)) {
      this.#values[i] = checkValue(loc["k"], desired, "compareAndSwap in transaction");
    }
    return old;
  }

  /**
   * Sets `desired` when the value is `expected` (SameValueZero); returns
   * whether it did.
   *
   * @example
   * ```ts
   * import { Loc, Xt } from "@sabre/sabre";
   * import { SharedHeap } from "@sabre/sabre";
   * const loc = Loc.make(SharedHeap.create(), 1);
   * console.assert(!Xt.commit((xt) => xt.compareAndSet(loc, 0, 2)) && loc.get() === 1);
   * ```
   */
  compareAndSet(loc: Loc, expected: number, desired: number): boolean {
    const i = this.#entry(loc, "compareAndSet in transaction");
    if (!sameValueZero(this.#values[i], expected)) return false;
    this.#values[i] = checkValue(loc["k"], desired, "compareAndSet in transaction");
    return true;
  }

  // -------------------------------------------------------------- control

  /**
   * Registers `action` to run once, after this attempt commits (not when it
   * is abandoned). Actions run in registration order, outside the
   * transaction.
   *
   * @example
   * ```ts
   * import { Loc, Xt } from "@sabre/sabre";
   * import { SharedHeap } from "@sabre/sabre";
   * const loc = Loc.make(SharedHeap.create());
   * const log: string[] = [];
   * Xt.commit((xt) => {
   *   xt.incr(loc);
   *   xt.postCommit(() => log.push("sent"));
   * });
   * console.assert(log.length === 1);
   * ```
   */
  postCommit(action: () => void): void {
    if (!this.#active) {
      throw new TypeError("Cannot add post-commit action as this Xt's attempt has ended");
    }
    if (typeof action !== "function") {
      throw new TypeError(
        `Cannot add post-commit action as 'action' must be a function: current value is ${
          describeValue(action)
        }`,
      );
    }
    this.#post.push(action);
  }

  /**
   * A snapshot of the log, to undo later accesses with `rollback`.
   *
   * @example
   * ```ts
   * import { Loc, Xt } from "@sabre/sabre";
   * import { SharedHeap } from "@sabre/sabre";
   * const loc = Loc.make(SharedHeap.create(), 1);
   * const seen = Xt.commit((xt) => {
   *   const snap = xt.snapshot();
   *   xt.set(loc, 9);
   *   xt.rollback(snap);
   *   return xt.get(loc);
   * });
   * console.assert(seen === 1);
   * ```
   */
  snapshot(): XtSnapshot {
    if (!this.#active) throw new TypeError("Cannot take snapshot as this Xt's attempt has ended");
    const snap: Snap = {
      entries: this.#n,
      attempt: this.#attempt,
      values: this.#values.slice(0, this.#n),
      post: this.#post.length,
    };
    return snap;
  }

  /**
   * Returns the log to `snapshot` (taken in this attempt): writes since then
   * are undone, post-commit actions registered since are dropped. Locations
   * first accessed since the snapshot stay in the log as reads, as in kcas:
   * the commit succeeds only if they still hold the values read, and a
   * later `Retry.later()` also waits for them to change. Throws `TypeError`
   * for a snapshot of another attempt.
   *
   * @example
   * ```ts
   * import { Loc, Xt } from "@sabre/sabre";
   * import { SharedHeap } from "@sabre/sabre";
   * const loc = Loc.make(SharedHeap.create(), 1);
   * Xt.commit((xt) => {
   *   const snap = xt.snapshot();
   *   xt.incr(loc);
   *   xt.rollback(snap);
   * });
   * console.assert(loc.get() === 1);
   * ```
   */
  rollback(snapshot: XtSnapshot): void {
    const snap = snapshot as Snap;
    if (
      !this.#active || typeof snap !== "object" || snap === null ||
      snap.attempt !== this.#attempt || !(snap.entries <= this.#n)
    ) {
      throw new TypeError(
        `Cannot roll back as the snapshot was not taken in this transaction attempt: current value is ${
          describeValue(snapshot)
        }`,
      );
    }
    const keep = snap.entries;
    const values = this.#values;
    for (let i = 0; i < keep; i++) values[i] = snap.values[i];
    // Locations first accessed since the snapshot stay in the log as reads
    // of the value they had (as in kcas): what the undone accesses saw may
    // have decided the rest of the transaction (Xt.first tries the next
    // alternative because this one found a queue empty), so the commit
    // must check that it still holds, and a block waits for it to change.
    const orig = this.#orig;
    for (let i = keep; i < this.#n; i++) values[i] = orig[i];
    this.#post.length = snap.post;
  }

  /**
   * Whether the transaction has accessed `loc` (an access that was rolled
   * back stays in the log as a read, so it counts).
   *
   * @example
   * ```ts
   * import { Loc, Xt } from "@sabre/sabre";
   * import { SharedHeap } from "@sabre/sabre";
   * const loc = Loc.make(SharedHeap.create());
   * console.assert(Xt.commit((xt) => [xt.isInLog(loc), (xt.get(loc), xt.isInLog(loc))].join()) === "false,true");
   * ```
   */
  isInLog(loc: Loc): boolean {
    checkLoc(loc, "check log");
    return this.#active && this.#domain === loc["d"] && this.#find(loc["a"]) >= 0;
  }

  /**
   * Checks that `loc`, if the transaction accessed it, has not been changed
   * by another commit since; otherwise abandons the attempt (it runs
   * again). Reads are already kept consistent with each other
   * automatically; this is for checking early.
   *
   * @example
   * ```ts
   * import { Loc, Xt } from "@sabre/sabre";
   * import { SharedHeap } from "@sabre/sabre";
   * const loc = Loc.make(SharedHeap.create(), 1);
   * Xt.commit((xt) => {
   *   xt.get(loc);
   *   xt.validate(loc);
   * });
   * ```
   */
  validate(loc: Loc): void {
    checkLoc(loc, "validate");
    if (!this.#active || this.#domain !== loc["d"]) return;
    const i = this.#find(loc["a"]);
    if (i >= 0 && this.#domain.resolve(loc["w"]) !== this.#cells[i]) throw Invalid;
  }

  /**
   * Runs `tx` inside this transaction and returns its result, except that a
   * result of `undefined` means "not yet": the attempt then blocks as
   * `Retry.later()` does, until a location read so far changes. Turns a
   * transaction that answers `undefined` when it has nothing (a `tryTake`,
   * say) into one that waits (kcas's `to_blocking`). Throws `TypeError` for
   * a non-function, or once the attempt has ended.
   *
   * @example
   * ```ts
   * import { Loc, Xt } from "@sabre/sabre";
   * import { SharedHeap } from "@sabre/sabre";
   * const slot = Loc.make(SharedHeap.create(), 7);
   * // Take the slot's value, or wait while it is 0.
   * const tryTake = (xt: Xt) => {
   *   const value = xt.exchange(slot, 0);
   *   return value === 0 ? undefined : value;
   * };
   * console.assert(Xt.commit((xt) => xt.toBlocking(tryTake)) === 7 && slot.get() === 0);
   * ```
   */
  toBlocking<T>(tx: (xt: Xt) => T | undefined): T {
    this.#checkNested(tx, "make transaction blocking");
    const value = tx(this);
    if (value === undefined) throw Later;
    return value;
  }

  /**
   * Runs `tx` inside this transaction and returns its result, or
   * `undefined` where it calls `Retry.later()` (or `Retry.unless(false)`).
   * Then the writes and post-commit actions that `tx` added are rolled
   * back, as by `rollback`: the locations it accessed stay in the log as
   * reads, which the commit checks and a later block waits on. The opposite
   * of `toBlocking` (kcas's `to_nonblocking`). Other
   * errors, `Retry.invalid()` among them, pass through. A `tx` that itself
   * returns `undefined` looks the same as one that retried, so give such
   * transactions another result for "done". Throws `TypeError` for a
   * non-function, or once the attempt has ended.
   *
   * @example
   * ```ts
   * import { Loc, Retry, Xt } from "@sabre/sabre";
   * import { SharedHeap } from "@sabre/sabre";
   * const stock = Loc.make(SharedHeap.create(), 2);
   * const take = (n: number) => (xt: Xt) => {
   *   Retry.unless(xt.get(stock) >= n);
   *   xt.fetchAndAdd(stock, -n);
   *   return n;
   * };
   * // Take 5 if there are 5, else whatever is left, without waiting.
   * const got = Xt.commit((xt) => xt.toNonblocking(take(5)) ?? xt.exchange(stock, 0));
   * console.assert(got === 2 && stock.get() === 0);
   * ```
   */
  toNonblocking<T>(tx: Tx<T>): T | undefined {
    this.#checkNested(tx, "make transaction non-blocking");
    const result = this.#unlessRetried(tx);
    return result === Later ? undefined : result as T;
  }

  /**
   * Runs `tx` in this attempt; where it calls `Retry.later()`, rolls back
   * what it logged and returns Later. Other errors pass through.
   */
  #unlessRetried<T>(tx: Tx<T>): T | typeof Later {
    const snap = this.snapshot();
    try {
      return tx(this);
    } catch (e) {
      if (e !== Later) throw e;
      this.rollback(snap);
      return Later;
    }
  }

  #checkNested(tx: unknown, what: string): void {
    if (!this.#active) throw new TypeError(`Cannot ${what} as this Xt's attempt has ended`);
    if (typeof tx !== "function") {
      throw new TypeError(
        `Cannot ${what} as 'tx' must be a function: current value is ${describeValue(tx)}`,
      );
    }
  }
}
