/**
 * Loc: a shared memory location that transactions ({@linkcode Xt}) and
 * multi-word CAS ({@linkcode Op}) work on, with atomic single-location
 * operations of its own.
 *
 * Layout and memory-model patterns: see `_kcas.ts`. A Loc block is 16 bytes
 * (tag, kind, loc word, domain); its loc word points to an immutable value
 * cell, or, during a commit, to an entry of the commit's descriptor.
 *
 * @module
 */

import {
  checkHeap,
  describeValue,
  DestroyedError,
  HandleError,
  type SharedHandle,
  SharedHeap,
} from "../memory/mod.ts";
import { pause } from "../latch/mod.ts";
import {
  Domain,
  KIND_CODES,
  KIND_NAMES,
  L_DOMAIN,
  L_KIND,
  L_TAG,
  L_WORD,
  LOC_BYTES,
  LOC_TAG,
  type LocKind,
  recoverFromFullHeap,
  STM_VERSION,
} from "./_kcas.ts";
import { Later } from "./retry.ts";
import { KERNEL_SLOW } from "../memory/_kernel.ts";
import { type CommitOptions, Xt } from "./xt.ts";
import { kernelForRead, kernelTrapped } from "../memory/_heap_hooks.ts";
import { checkOptionFields } from "../memory/_options.ts";

export type { LocKind } from "./_kcas.ts";

const LOC_KIND = "sabre.stm.Loc";
const I32_MIN = -0x80000000;
const I32_MAX = 0x7fffffff;
const KIND_I32 = 2;
const KIND_REF = 3;

/**
 * Handle of a {@linkcode Loc}: send it with `postMessage`, then
 * `Loc.attach(handle)` in the other worker.
 *
 * @example
 * ```ts
 * import { Loc, type LocHandle } from "@sabre/sabre";
 * import { SharedHeap } from "@sabre/sabre";
 * const handle: LocHandle = Loc.make(SharedHeap.create(), 1).handle;
 * console.assert(handle.kind === "sabre.stm.Loc");
 * ```
 */
export type LocHandle = SharedHandle<"sabre.stm.Loc">;

/**
 * Options of {@linkcode Loc.make}.
 *
 * @example
 * ```ts
 * import { Loc, type LocOptions } from "@sabre/sabre";
 * import { SharedHeap } from "@sabre/sabre";
 * const options: LocOptions = { kind: "i32" };
 * console.assert(Loc.make(SharedHeap.create(), 7, options).kind === "i32");
 * ```
 */
export interface LocOptions {
  /**
   * What the location holds: `"f64"` (default) any JS number, exactly (NaN,
   * -0 and infinities included); `"i32"` a 32-bit signed integer, with
   * wrapping arithmetic in `fetchAndAdd`; `"ref"` a heap pointer (an integer
   * from 0, meaning null, to 2^31 - 1), such as another Loc's `address`.
   */
  kind?: LocKind;
}

/** SameValueZero, as Map keys compare: NaN equals NaN, -0 equals 0. */
export function sameValueZero(a: number, b: number): boolean {
  return a === b || (a !== a && b !== b);
}

function kindName(code: number): LocKind {
  return KIND_NAMES[code];
}

/**
 * Checks `value` for a location of kind `code`; `what` names the operation
 * for the message. Throws TypeError for a non-number, RangeError for a
 * number the kind cannot hold.
 */
/** Throws TypeError naming `fn` where it is not a function. */
export function checkFn(fn: unknown, what: string): void {
  if (typeof fn !== "function") {
    throw new TypeError(
      `Cannot ${what} as 'fn' must be a function: current value is ${describeValue(fn)}`,
    );
  }
}

export function checkValue(code: number, value: unknown, what: string): number {
  if (typeof value !== "number") {
    throw new TypeError(
      `Cannot ${what} as the value must be a number: current value is ${describeValue(value)}`,
    );
  }
  if (code === KIND_I32) {
    if (!Number.isInteger(value) || value < I32_MIN || value > I32_MAX) {
      throw new RangeError(
        `Cannot ${what} as the value of an "i32" Loc must be an integer from ${I32_MIN} to ${I32_MAX}: current value is ${
          describeValue(value)
        }`,
      );
    }
    return value | 0; // -0 becomes 0
  } else if (code === KIND_REF) {
    if (!Number.isInteger(value) || value < 0 || value > I32_MAX) {
      throw new RangeError(
        `Cannot ${what} as the value of a "ref" Loc must be a heap offset from 0 to ${I32_MAX}: current value is ${
          describeValue(value)
        }`,
      );
    }
    return value | 0; // -0 becomes 0
  }
  return value;
}

/** `old + delta` in the arithmetic of kind `code`, checked. */
export function addValue(code: number, old: number, delta: unknown, what: string): number {
  if (typeof delta !== "number") {
    throw new TypeError(
      `Cannot ${what} as the amount must be a number: current value is ${describeValue(delta)}`,
    );
  }
  if (code === KIND_I32) {
    if (!Number.isInteger(delta)) {
      throw new RangeError(
        `Cannot ${what} as the amount for an "i32" Loc must be an integer: current value is ${
          describeValue(delta)
        }`,
      );
    }
    return (old + delta) | 0;
  }
  const sum = old + delta;
  return code === KIND_REF ? checkValue(code, sum, what) : sum;
}

/**
 * A shared memory location holding a number, in a {@linkcode SharedHeap}.
 *
 * Every operation is atomic and linearizable, also together with
 * transactions and `Op.atomically` on the same locations: a single-location
 * operation is a one-entry commit. `get` never blocks and never writes
 * shared memory other than the worker's epoch slot; the writing operations
 * are lock-free, except that a commit still installing its entries is given
 * a short spin before it is aborted.
 *
 * A Loc lives as long as its heap, or until {@linkcode Loc.free}. All
 * Locs of one heap belong to that heap's STM domain (created by the first
 * `Loc.make` in any worker; workers that race to create it agree on one),
 * and one transaction may only use Locs of one heap.
 *
 * @example
 * ```ts
 * import { Loc } from "@sabre/sabre";
 * import { SharedHeap } from "@sabre/sabre";
 *
 * const heap = SharedHeap.create();
 * const hits = Loc.make(heap, 0, { kind: "i32" });
 * hits.incr();
 * console.assert(hits.fetchAndAdd(10) === 1 && hits.get() === 11);
 * console.assert(hits.compareAndSet(11, 0) && hits.get() === 0);
 * // In a worker: Loc.attach(handleFromPostMessage).get()
 * console.assert(Loc.attach(hits.handle).get() === 0);
 * ```
 */
export class Loc {
  /** The heap's STM domain (internal: xt.ts and op.ts read it). */
  private readonly d: Domain;
  /** Int32 index of the loc word. */
  private readonly w: number;
  /** Byte offset of the Loc block. */
  private readonly a: number;
  /** Kind code. */
  private readonly k: number;

  /** Set by free(), which refuses to run twice on one object. */
  #freed = false;

  private constructor(domain: Domain, address: number, kind: number) {
    this.d = domain;
    this.a = address;
    this.w = (address >> 2) + L_WORD;
    this.k = kind;
  }

  static {
    // console.log shows the location, not its domain's words.
    const describe = function (this: Loc): string {
      const kind = Object.keys(KIND_CODES).find((name) =>
        KIND_CODES[name as keyof typeof KIND_CODES] === this.k
      );
      let value: string;
      try {
        value = String(this.get());
      } catch {
        value = "?";
      }
      return `Loc { kind: "${kind}", address: ${this.a}, value: ${value} }`;
    };
    for (const key of ["Deno.customInspect", "nodejs.util.inspect.custom"]) {
      Object.defineProperty(Loc.prototype, Symbol.for(key), { value: describe });
    }
  }

  /**
   * Creates a location in `heap` holding `value` (default 0). Throws
   * `TypeError` for a `heap` that is not a SharedHeap or a value that is not
   * a number, `RangeError` for a value the kind cannot hold or an unknown
   * kind, and `HeapExhaustedError` when the heap is full.
   *
   * @example
   * ```ts
   * import { Loc } from "@sabre/sabre";
   * import { SharedHeap } from "@sabre/sabre";
   * const heap = SharedHeap.create();
   * const price = Loc.make(heap, 9.99);
   * const next = Loc.make(heap, 0, { kind: "ref" }); // a pointer, null for now
   * next.set(price.address);
   * console.assert(Loc.fromAddress(heap, next.get()).get() === 9.99);
   * ```
   */
  static make(heap: SharedHeap, value: number = 0, options?: LocOptions): Loc {
    checkHeap(heap, "make Loc");
    checkOptionFields(options, ["kind"], "make Loc");
    const kindOption = options?.kind ?? "f64";
    const code = Object.hasOwn(KIND_CODES, kindOption) ? KIND_CODES[kindOption] : 0;
    if (code === 0) {
      throw new RangeError(
        `Cannot make Loc as 'kind' must be "f64", "i32" or "ref": current value is ${
          describeValue(kindOption)
        }`,
      );
    }
    value = checkValue(code, value, "make Loc");
    const domain = Domain.of(heap);
    const address = heap.allocate(LOC_BYTES);
    let cell: number;
    try {
      cell = domain.newCell(value);
    } catch (e) {
      heap.free(address); // never published
      throw e;
    }
    const i32 = heap.i32;
    const i = address >> 2;
    i32[i + L_KIND] = code;
    i32[i + L_DOMAIN] = domain.hdr;
    Atomics.store(i32, i + L_WORD, cell);
    Atomics.store(i32, i + L_TAG, LOC_TAG);
    return new Loc(domain, address, code);
  }

  /**
   * Creates `length` locations holding `value`, like `Loc.make` each.
   *
   * @example
   * ```ts
   * import { Loc } from "@sabre/sabre";
   * import { SharedHeap } from "@sabre/sabre";
   * const accounts = Loc.makeArray(SharedHeap.create(), 4, 100, { kind: "i32" });
   * console.assert(accounts.length === 4 && accounts[3].get() === 100);
   * ```
   */
  static makeArray(
    heap: SharedHeap,
    length: number,
    value: number = 0,
    options?: LocOptions,
  ): Loc[] {
    if (!Number.isInteger(length) || length < 0) {
      throw new RangeError(
        `Cannot make Loc array as 'length' must be an integer >= 0: current value is ${
          describeValue(length)
        }`,
      );
    }
    const locs: Loc[] = [];
    try {
      for (let i = 0; i < length; i++) locs.push(Loc.make(heap, value, options));
    } catch (e) {
      // A full heap: give back what was made (nobody else has seen it).
      for (const loc of locs) loc.free();
      throw e;
    }
    return locs;
  }

  /**
   * Rebuilds a location from its handle (in another worker, say). Throws
   * {@linkcode HandleError} when the handle does not name a Loc.
   *
   * @example
   * ```ts
   * import { Loc } from "@sabre/sabre";
   * import { SharedHeap } from "@sabre/sabre";
   * const loc = Loc.make(SharedHeap.create(), 5);
   * console.assert(Loc.attach(structuredClone(loc.handle)).get() === 5);
   * ```
   */
  static attach(handle: LocHandle): Loc {
    const heap = SharedHeap.fromHandle(handle, LOC_KIND, STM_VERSION, "Loc");
    return Loc.#at(heap, handle.offset, "attach Loc");
  }

  /**
   * The location whose block is at `address` (its {@linkcode Loc.address}),
   * as stored in a `"ref"` location. Throws {@linkcode HandleError} when no
   * Loc is there, `TypeError` when `heap` is not a SharedHeap.
   *
   * When Locs are freed (`free()`), read the address and use the Loc inside
   * one pinned section: inside a transaction (after its first logged access),
   * or inside `heap.pin()`. An address read outside of both may name a Loc
   * that another worker frees before this call.
   *
   * @example
   * ```ts
   * import { Loc } from "@sabre/sabre";
   * import { SharedHeap } from "@sabre/sabre";
   * const heap = SharedHeap.create();
   * const loc = Loc.make(heap, 3);
   * console.assert(Loc.fromAddress(heap, loc.address).get() === 3);
   * ```
   */
  static fromAddress(heap: SharedHeap, address: number): Loc {
    checkHeap(heap, "find Loc");
    return Loc.#at(heap, address, "find Loc");
  }

  static #at(heap: SharedHeap, address: number, what: string): Loc {
    if (
      typeof address !== "number" || !Number.isInteger(address) || address <= 0 ||
      address % 16 !== 0 || address + LOC_BYTES > heap.sab.byteLength
    ) {
      throw new HandleError(
        `Cannot ${what} as the offset is not a block of the heap: current value is ${
          describeValue(address)
        }`,
      );
    }
    heap.ensure(address + LOC_BYTES);
    const i32 = heap.i32;
    const i = address >> 2;
    const tag = Atomics.load(i32, i + L_TAG);
    if (tag !== LOC_TAG) {
      throw new HandleError(
        `Cannot ${what} as the memory at offset ${address} holds no Loc (tag ${tag >>> 0})`,
      );
    }
    const code = i32[i + L_KIND];
    const domain = Domain.at(heap, i32[i + L_DOMAIN]);
    return new Loc(domain, address, code);
  }

  /**
   * The handle to send to other workers.
   *
   * @example
   * ```ts
   * import { Loc } from "@sabre/sabre";
   * import { SharedHeap } from "@sabre/sabre";
   * const loc = Loc.make(SharedHeap.create());
   * // worker.postMessage(loc.handle);
   * console.assert(loc.handle.offset === loc.address);
   * ```
   */
  get handle(): LocHandle {
    return this.d.heap.handleOf(LOC_KIND, STM_VERSION, this.a);
  }

  /**
   * Byte offset of the location's block in its heap: what a `"ref"`
   * location stores to point at it (see {@linkcode Loc.fromAddress}).
   *
   * @example
   * ```ts
   * import { Loc } from "@sabre/sabre";
   * import { SharedHeap } from "@sabre/sabre";
   * console.assert(Loc.make(SharedHeap.create()).address > 0);
   * ```
   */
  get address(): number {
    return this.a;
  }

  /**
   * The heap the location lives in.
   *
   * @example
   * ```ts
   * import { Loc } from "@sabre/sabre";
   * import { SharedHeap } from "@sabre/sabre";
   * const heap = SharedHeap.create();
   * console.assert(Loc.make(heap).heap === heap);
   * ```
   */
  get heap(): SharedHeap {
    return this.d.heap;
  }

  /**
   * What the location holds: `"f64"`, `"i32"` or `"ref"`.
   *
   * @example
   * ```ts
   * import { Loc } from "@sabre/sabre";
   * import { SharedHeap } from "@sabre/sabre";
   * console.assert(Loc.make(SharedHeap.create()).kind === "f64");
   * ```
   */
  get kind(): LocKind {
    return kindName(this.k);
  }

  /**
   * The current value. Never blocks, never writes shared memory but the
   * epoch slot (nothing at all when the caller holds `heap.pin()`).
   *
   * @example
   * ```ts
   * import { Loc } from "@sabre/sabre";
   * import { SharedHeap } from "@sabre/sabre";
   * console.assert(Loc.make(SharedHeap.create(), -0).get() === 0);
   * ```
   */
  get(): number {
    const d = this.d;
    const heap = d.heap;
    const kernel = kernelForRead(heap);
    if (kernel !== null) {
      let value = KERNEL_SLOW;
      try {
        value = kernel.locGet(this.w << 2);
      } catch (e) {
        kernelTrapped(heap, e);
      }
      // A value equal to the sentinel is answered by the path below too.
      if (value !== KERNEL_SLOW) return value;
    }
    heap.pinForOperation();
    const p = Atomics.load(heap.i32, this.w);
    // Pattern (b): the cell was published by the CAS that our load saw.
    const value = (p & 1) === 0 && p + 16 <= heap.mappedBytes
      ? heap.f64[p >> 3]
      : d.valueOf(d.resolve(this.w));
    heap.unpin();
    return value;
  }

  /**
   * Calls `fn` with the current value and returns its result. When `fn`
   * calls `Retry.later()` (or `Retry.unless(false)`), blocks until the value
   * changes and calls it again; `options.timeoutMs` bounds the wait
   * (`TimeoutError`).
   *
   * @example
   * ```ts
   * import { Loc, Retry } from "@sabre/sabre";
   * import { SharedHeap } from "@sabre/sabre";
   * const answer = Loc.make(SharedHeap.create(), 42);
   * const seen = answer.getAs((x) => {
   *   Retry.unless(x !== 0);
   *   return `The answer is ${x}!`;
   * });
   * console.assert(seen === "The answer is 42!");
   * ```
   */
  getAs<R>(fn: (value: number) => R, options?: CommitOptions): R {
    checkFn(fn, "read Loc");
    try {
      return fn(this.get());
    } catch (e) {
      if (e !== Later) throw e;
    }
    return Xt.commit((xt) => fn(xt.get(this)), options);
  }

  /**
   * Writes `value`. Throws `TypeError`/`RangeError` for a value the kind
   * cannot hold, before anything is written.
   *
   * @example
   * ```ts
   * import { Loc } from "@sabre/sabre";
   * import { SharedHeap } from "@sabre/sabre";
   * const loc = Loc.make(SharedHeap.create(), 1);
   * loc.set(2);
   * console.assert(loc.get() === 2);
   * ```
   */
  set(value: number): void {
    this.#rmw(false, checkValue(this.k, value, "set Loc"));
  }

  /**
   * Writes `value` and returns the value it replaced.
   *
   * @example
   * ```ts
   * import { Loc } from "@sabre/sabre";
   * import { SharedHeap } from "@sabre/sabre";
   * const loc = Loc.make(SharedHeap.create(), 1);
   * console.assert(loc.exchange(5) === 1 && loc.get() === 5);
   * ```
   */
  exchange(value: number): number {
    return this.#rmw(false, checkValue(this.k, value, "exchange Loc"));
  }

  /**
   * The CAS loop of exchange (`add` false: the new value is `operand`) and
   * fetchAndAdd (`add` true: old value + `operand`); returns the old value.
   */
  #rmw(add: boolean, operand: number): number {
    try {
      return this.#rmwLoop(add, operand);
    } catch (e) {
      // A full heap: nothing was written; wait for reclamation, then once more.
      if (!recoverFromFullHeap(this.d, e)) throw e;
    }
    return this.#rmwLoop(add, operand);
  }

  #rmwLoop(add: boolean, operand: number): number {
    const d = this.d;
    const heap = d.heap;
    for (let backoff = 1;; backoff = Math.min(backoff * 2, 256)) {
      heap.pinForOperation();
      try {
        const cell = d.resolve(this.w);
        const old = d.valueOf(cell);
        const next = add ? addValue(this.k, old, operand, "fetchAndAdd Loc") : operand;
        if (d.casOne(this.a, cell, next, true)) return old;
      } finally {
        heap.unpin();
      }
      for (let i = 0; i < backoff; i++) pause();
    }
  }

  /**
   * Writes `desired` when the value is `expected` (SameValueZero: NaN
   * matches NaN, 0 matches -0); returns whether it did.
   *
   * @example
   * ```ts
   * import { Loc } from "@sabre/sabre";
   * import { SharedHeap } from "@sabre/sabre";
   * const loc = Loc.make(SharedHeap.create(), 1);
   * console.assert(!loc.compareAndSet(0, 9) && loc.compareAndSet(1, 9) && loc.get() === 9);
   * ```
   */
  compareAndSet(expected: number, desired: number): boolean {
    if (typeof expected !== "number") {
      throw new TypeError(
        `Cannot compareAndSet Loc as 'expected' must be a number: current value is ${
          describeValue(expected)
        }`,
      );
    }
    desired = checkValue(this.k, desired, "compareAndSet Loc");
    try {
      return this.#compareAndSetLoop(expected, desired);
    } catch (e) {
      // A full heap: nothing was written; wait for reclamation, then once more.
      if (!recoverFromFullHeap(this.d, e)) throw e;
    }
    return this.#compareAndSetLoop(expected, desired);
  }

  #compareAndSetLoop(expected: number, desired: number): boolean {
    const d = this.d;
    const heap = d.heap;
    for (let backoff = 1;; backoff = Math.min(backoff * 2, 256)) {
      heap.pinForOperation();
      try {
        const cell = d.resolve(this.w);
        if (!sameValueZero(d.valueOf(cell), expected)) return false;
        if (d.casOne(this.a, cell, desired, true)) return true;
      } finally {
        heap.unpin();
      }
      for (let i = 0; i < backoff; i++) pause();
    }
  }

  /**
   * Adds `delta` and returns the value before. `"i32"` locations wrap
   * around like Int32 arithmetic; `"ref"` ones throw `RangeError` when the
   * sum leaves their range.
   *
   * @example
   * ```ts
   * import { Loc } from "@sabre/sabre";
   * import { SharedHeap } from "@sabre/sabre";
   * const loc = Loc.make(SharedHeap.create(), 0x7fffffff, { kind: "i32" });
   * console.assert(loc.fetchAndAdd(1) === 0x7fffffff && loc.get() === -0x80000000);
   * ```
   */
  fetchAndAdd(delta: number): number {
    return this.#rmw(true, delta);
  }

  /**
   * Adds 1.
   *
   * @example
   * ```ts
   * import { Loc } from "@sabre/sabre";
   * import { SharedHeap } from "@sabre/sabre";
   * const loc = Loc.make(SharedHeap.create());
   * loc.incr();
   * console.assert(loc.get() === 1);
   * ```
   */
  incr(): void {
    this.fetchAndAdd(1);
  }

  /**
   * Subtracts 1.
   *
   * @example
   * ```ts
   * import { Loc } from "@sabre/sabre";
   * import { SharedHeap } from "@sabre/sabre";
   * const loc = Loc.make(SharedHeap.create());
   * loc.decr();
   * console.assert(loc.get() === -1);
   * ```
   */
  decr(): void {
    this.fetchAndAdd(-1);
  }

  /**
   * Replaces the value `v` by `fn(v)` atomically and returns `v`. `fn` may
   * run more than once under contention, so it should be pure; it may call
   * `Retry.later()` to wait for another value (bounded by
   * `options.timeoutMs`).
   *
   * @example
   * ```ts
   * import { Loc } from "@sabre/sabre";
   * import { SharedHeap } from "@sabre/sabre";
   * const loc = Loc.make(SharedHeap.create(), 3);
   * console.assert(loc.update((x) => x * 2) === 3 && loc.get() === 6);
   * ```
   */
  update(fn: (value: number) => number, options?: CommitOptions): number {
    checkFn(fn, "update Loc");
    let old: number | undefined;
    try {
      old = this.#updateLoop(fn);
    } catch (e) {
      // A full heap: nothing was written; wait for reclamation, then once more.
      if (!recoverFromFullHeap(this.d, e)) throw e;
      old = this.#updateLoop(fn);
    }
    // fn called Retry.later(): wait in a transaction.
    return old ?? Xt.commit((xt) => xt.update(this, fn), options);
  }

  /** update's CAS loop; undefined when `fn` calls `Retry.later()`. */
  #updateLoop(fn: (value: number) => number): number | undefined {
    const d = this.d;
    const heap = d.heap;
    for (let backoff = 1;; backoff = Math.min(backoff * 2, 256)) {
      heap.pinForOperation();
      try {
        const cell = d.resolve(this.w);
        const old = d.valueOf(cell);
        let next: number;
        try {
          next = checkValue(this.k, fn(old), "update Loc");
        } catch (e) {
          if (e !== Later) throw e;
          return undefined;
        }
        if (d.casOne(this.a, cell, next, true)) return old;
      } finally {
        heap.unpin();
      }
      for (let i = 0; i < backoff; i++) pause();
    }
  }

  /**
   * Gives the location's memory (its block and its current value cell) back
   * to the heap through epochs: it is freed once every worker pinned now
   * (every transaction in flight, say) has unpinned, so those may still read
   * it safely. The caller promises that no worker will use the Loc after
   * this call: unlink it from every shared structure in a committed
   * transaction first, and free it from that transaction's
   * {@linkcode Xt.postCommit} action (or free a Loc that no other worker
   * has seen). Using a freed Loc, or freeing it twice through two objects,
   * corrupts the heap; a second `free()` of the same object throws
   * {@linkcode DestroyedError}.
   *
   * @example
   * ```ts
   * import { Loc, Xt } from "@sabre/sabre";
   * import { SharedHeap } from "@sabre/sabre";
   * const heap = SharedHeap.create();
   * const slot = Loc.make(heap, 0, { kind: "ref" });
   * const node = Loc.make(heap, 42);
   * slot.set(node.address);
   * // Unlink the node, and free it once the unlinking has committed.
   * Xt.commit((xt) => {
   *   const old = Loc.fromAddress(heap, xt.exchange(slot, 0));
   *   xt.postCommit(() => old.free());
   * });
   * console.assert(slot.get() === 0);
   * ```
   */
  free(): void {
    const d = this.d;
    const heap = d.heap;
    // A second free through this object throws before it retires anything:
    // the block would be retired twice and handed out to two owners. (The
    // tag stays: transactions in flight that read the Loc's address before
    // it was unlinked may still look it up until their validation fails.)
    if (this.#freed) throw new DestroyedError("Loc", "destroy");
    this.#freed = true;
    heap.pinForOperation();
    try {
      // A commit still in flight on it can only fail (the caller's promise);
      // its cleanup puts back the cell resolved here.
      const cell = d.resolve(this.w);
      heap.retire(cell);
      heap.retire(this.a);
    } finally {
      heap.unpin();
    }
  }

  /**
   * Like {@linkcode Loc.update}, returning nothing.
   *
   * @example
   * ```ts
   * import { Loc } from "@sabre/sabre";
   * import { SharedHeap } from "@sabre/sabre";
   * const loc = Loc.make(SharedHeap.create(), 3);
   * loc.modify((x) => x + 1);
   * console.assert(loc.get() === 4);
   * ```
   */
  modify(fn: (value: number) => number, options?: CommitOptions): void {
    this.update(fn, options);
  }
}
