/**
 * HybridLatch: a LeanStore-style latch with optimistic, shared and exclusive
 * modes, over a version word and an {@linkcode RwLock}.
 *
 * - Exclusive mode takes the RwLock for writing and makes the version odd;
 *   unlocking makes it even again (one higher), so every exclusive section
 *   moves the version on by two.
 * - Shared mode takes the RwLock for reading; the version stays put.
 * - Optimistic mode writes nothing: it reads an even version, lets the
 *   caller read, and validates by re-reading the version. A changed version
 *   means a writer intervened and the reads must be thrown away: the guard
 *   signals Unwind.
 *
 * ## Reads under an optimistic guard must be Atomics
 *
 * In C++ or Rust the optimistic pattern reads the data with plain loads and
 * re-checks the version with an acquire load. JavaScript gives no such
 * guarantee: plain reads are unordered, and on ARM64 `Atomics.load` compiles
 * to a load-acquire with no fence before it, so an earlier plain load may be
 * satisfied after the re-check and return data written after it. The
 * validation then passes on torn data. Under an optimistic guard, read every
 * word a writer may change with `Atomics.load` (the guard's `load`, `loadF64`
 * and `loadBigInt64` helpers do this), or only read memory that is immutable
 * since it was published with an Atomics store (copy-on-write nodes). Writers
 * in exclusive mode write those words with `Atomics.store`. Shared and
 * exclusive guards hold the RwLock, so plain reads are fine under them.
 *
 * ## Unwinding
 *
 * `recheck()` and the other validating calls throw the singleton
 * {@linkcode Unwind} value, not an Error: nothing is allocated and no stack
 * trace is captured. `read(fn)` catches it and retries; after 40 failed
 * optimistic attempts it falls back to shared mode, as LeanStore does.
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
import { deadlineOf, type LockOptions, pause, requireSyncFunction, SPIN_LIMIT } from "./parking.ts";
import { RwLock } from "./rwlock.ts";

/** Layout version of this object; attach() refuses newer ones. */
const LAYOUT_VERSION = 2;
const KIND = "sabre.HybridLatch";
const TAG = tagOf("HLAT");
const BYTES = 64;
const VERSION = 1;
const LOCK_OFFSET = 32;
/** Marks "no validated result" inside `read`. */
const NO_RESULT: unique symbol = Symbol("no result");

/** Options with the time left before `deadline` (undefined when unbounded). */
function timeLeft(deadline: number): LockOptions | undefined {
  return deadline === Infinity
    ? undefined
    : { timeoutMs: Math.max(0, deadline - performance.now()) };
}

/**
 * `error`, or where it is the TimeoutError of the RwLock inside, one that
 * names the latch's own operation and the caller's `timeoutMs`.
 */
function renamed(error: unknown, operation: string, caller: LockOptions | undefined): unknown {
  if (error instanceof TimeoutError) return new TimeoutError(operation, caller?.timeoutMs ?? 0);
  // The lock of a latch that another worker destroyed.
  if (error instanceof DestroyedError) return new DestroyedError("HybridLatch");
  return error;
}

const EXCLUSIVELY = "lock HybridLatch exclusively";
const SHARED = "lock HybridLatch shared";

/**
 * Optimistic attempts of `read(fn)` before it falls back to shared mode.
 *
 * @example
 * ```ts
 * import { HybridLatch, OPTIMISTIC_ATTEMPTS, SharedGuard } from "@sabre/sabre";
 * const latch = HybridLatch.create();
 * let calls = 0;
 * const mode = latch.read((g) => {
 *   calls++;
 *   latch.tryExclusive()?.unlock(); // a writer intervenes in every optimistic attempt
 *   return g instanceof SharedGuard ? "shared" : "optimistic";
 * });
 * console.assert(mode === "shared" && calls === OPTIMISTIC_ATTEMPTS + 1);
 * ```
 */
export const OPTIMISTIC_ATTEMPTS = 40;

/**
 * The signal that an optimistic read was invalidated by a writer. It is a
 * single preallocated value, thrown without a stack trace; catch it with
 * {@linkcode isUnwind} and retry.
 *
 * @example
 * ```ts
 * import { HybridLatch, isUnwind, Unwind } from "@sabre/sabre";
 * const latch = HybridLatch.create();
 * const guard = latch.optimisticOrSpin();
 * latch.exclusive().unlock();
 * try {
 *   guard.recheck();
 * } catch (e) {
 *   console.assert(isUnwind(e) && e === Unwind.signal);
 * }
 * ```
 */
export class Unwind {
  /**
   * The one value that is ever thrown: not an `Error`, and carrying no stack trace.
   *
   * @example
   * ```ts
   * import { isUnwind, Unwind } from "@sabre/sabre";
   * console.assert(isUnwind(Unwind.signal) && !(Unwind.signal instanceof Error));
   * ```
   */
  static readonly signal: Unwind = new Unwind();
  private constructor() {}
  /**
   * Describes the signal.
   *
   * @example
   * ```ts
   * import { Unwind } from "@sabre/sabre";
   * console.assert(String(Unwind.signal).startsWith("Unwind:"));
   * ```
   */
  toString(): string {
    return "Unwind: an optimistic read was invalidated by a writer";
  }
}

/**
 * Whether `e` is the {@linkcode Unwind} signal.
 *
 * @example
 * ```ts
 * import { isUnwind } from "@sabre/sabre";
 * console.assert(!isUnwind(new Error("x")));
 * ```
 */
export function isUnwind(e: unknown): e is Unwind {
  return e === Unwind.signal;
}

/**
 * Handle of a {@linkcode HybridLatch}.
 *
 * @example
 * ```ts
 * import { HybridLatch, type HybridLatchHandle } from "@sabre/sabre";
 * const handle: HybridLatchHandle = HybridLatch.create().handle;
 * console.assert(handle.kind === "sabre.HybridLatch");
 * ```
 */
export type HybridLatchHandle = SharedHandle<"sabre.HybridLatch">;

/**
 * Reads that are sound under any HybridLatch guard: Atomics loads, as the
 * module documentation explains. Base of {@linkcode OptimisticGuard} and
 * {@linkcode SharedGuard}.
 *
 * @example
 * ```ts
 * import { GuardReads, HybridLatch } from "@sabre/sabre";
 * const guard = HybridLatch.create().optimisticOrSpin();
 * console.assert(guard instanceof GuardReads);
 * ```
 */
export class GuardReads {
  /**
   * `Atomics.load(view, index)`: the sound way to read a word a writer may
   * change under an optimistic guard.
   *
   * @example
   * ```ts
   * import { HybridLatch } from "@sabre/sabre";
   * const latch = HybridLatch.create();
   * const words = new Int32Array(new SharedArrayBuffer(4));
   * latch.write(() => Atomics.store(words, 0, 9));
   * console.assert(latch.read((g) => g.load(words, 0)) === 9);
   * ```
   */
  load(view: Int32Array, index: number): number {
    return Atomics.load(view, index);
  }

  /**
   * Reads a float64 stored (by {@linkcode storeF64}) as two Int32 words at
   * `view[index]` (low) and `view[index + 1]` (high), each with Atomics.
   * Validate before use: the two halves may come from different writes.
   *
   * @example
   * ```ts
   * import { HybridLatch, storeF64 } from "@sabre/sabre";
   * const latch = HybridLatch.create();
   * const words = new Int32Array(new SharedArrayBuffer(8));
   * latch.write(() => storeF64(words, 0, -0.5));
   * console.assert(latch.read((g) => g.loadF64(words, 0)) === -0.5);
   * ```
   */
  loadF64(view: Int32Array, index: number): number {
    scratchI32[0] = Atomics.load(view, index);
    scratchI32[1] = Atomics.load(view, index + 1);
    return scratchF64[0];
  }

  /**
   * `Atomics.load` on a BigInt64Array: one untearable 64-bit read.
   *
   * @example
   * ```ts
   * import { HybridLatch } from "@sabre/sabre";
   * const latch = HybridLatch.create();
   * const big = new BigInt64Array(new SharedArrayBuffer(8));
   * latch.write(() => Atomics.store(big, 0, 1n << 40n));
   * console.assert(latch.read((g) => g.loadBigInt64(big, 0)) === 1n << 40n);
   * ```
   */
  loadBigInt64(view: BigInt64Array, index: number): bigint {
    return Atomics.load(view, index);
  }
}

const scratchF64 = new Float64Array(1);
const scratchI32 = new Int32Array(scratchF64.buffer);

/**
 * Writes a float64 as two Int32 words with Atomics stores, for data read by
 * optimistic readers through `guard.loadF64`.
 *
 * @example
 * ```ts
 * import { HybridLatch, storeF64 } from "@sabre/sabre";
 * const latch = HybridLatch.create();
 * const words = new Int32Array(new SharedArrayBuffer(8));
 * latch.exclusive().unlock();
 * const x = latch.exclusive();
 * storeF64(words, 0, 2.5);
 * x.unlock();
 * console.assert(latch.read((g) => g.loadF64(words, 0)) === 2.5);
 * ```
 */
export function storeF64(view: Int32Array, index: number, value: number): void {
  scratchF64[0] = value;
  Atomics.store(view, index, scratchI32[0]);
  Atomics.store(view, index + 1, scratchI32[1]);
}

/**
 * Optimistic access: nothing was written to take it, so it must be validated
 * with `recheck()` before any result is used or any side effect happens.
 *
 * @example
 * ```ts
 * import { HybridLatch } from "@sabre/sabre";
 * const latch = HybridLatch.create();
 * const words = new Int32Array(new SharedArrayBuffer(4));
 * const guard = latch.optimisticOrSpin();
 * const seen = guard.load(words, 0);
 * guard.recheck(); // throws Unwind if a writer intervened
 * console.assert(seen === 0);
 * ```
 */
export class OptimisticGuard extends GuardReads {
  readonly #latch: HybridLatch;
  /**
   * The (even) version this guard validates against.
   *
   * @example
   * ```ts
   * import { HybridLatch } from "@sabre/sabre";
   * const latch = HybridLatch.create();
   * latch.write(() => {}); // one exclusive section: version 0 -> 2
   * console.assert(latch.optimisticOrSpin().version === 2);
   * ```
   */
  readonly version: number;

  /** @internal Use the latch's optimistic methods. */
  constructor(latch: HybridLatch, version: number) {
    super();
    this.#latch = latch;
    this.version = version;
  }

  /**
   * The latch this guard reads under.
   *
   * @example
   * ```ts
   * import { HybridLatch } from "@sabre/sabre";
   * const latch = HybridLatch.create();
   * console.assert(latch.optimisticOrSpin().latch === latch);
   * ```
   */
  get latch(): HybridLatch {
    return this.#latch;
  }

  /**
   * Whether no writer has entered since this guard was taken. Never throws.
   *
   * @example
   * ```ts
   * import { HybridLatch } from "@sabre/sabre";
   * const latch = HybridLatch.create();
   * const guard = latch.optimisticOrSpin();
   * console.assert(guard.isValid());
   * latch.write(() => {});
   * console.assert(!guard.isValid());
   * ```
   */
  isValid(): boolean {
    return this.#latch.currentVersion() === this.version;
  }

  /**
   * Validates every read made since this guard was taken; throws
   * {@linkcode Unwind} if a writer intervened.
   *
   * @example
   * ```ts
   * import { HybridLatch, isUnwind } from "@sabre/sabre";
   * const latch = HybridLatch.create();
   * const guard = latch.optimisticOrSpin();
   * guard.recheck(); // no writer yet: returns
   * latch.write(() => {});
   * let unwound = false;
   * try {
   *   guard.recheck();
   * } catch (e) {
   *   unwound = isUnwind(e);
   * }
   * console.assert(unwound);
   * ```
   */
  recheck(): void {
    if (this.#latch.currentVersion() !== this.version) throw Unwind.signal;
  }

  /**
   * Upgrades to exclusive access if no writer intervened, else throws
   * {@linkcode Unwind} (at once when the guard is already out of date).
   * Blocks while other holders leave (and throws {@linkcode TimeoutError}
   * after `timeoutMs`).
   *
   * @example
   * ```ts
   * import { HybridLatch } from "@sabre/sabre";
   * const latch = HybridLatch.create();
   * const guard = latch.optimisticOrSpin();
   * const exclusive = guard.toExclusive({ timeoutMs: 100 });
   * console.assert(exclusive.version === guard.version + 1);
   * exclusive.unlock();
   * ```
   */
  toExclusive(options?: LockOptions): ExclusiveGuard {
    return this.#latch.upgradeToExclusive(this.version, options);
  }

  /**
   * Upgrades to shared access if no writer intervened and shared access can
   * be had at once, else throws {@linkcode Unwind}: also when a writer only
   * waits (it holds new readers back). Never blocks.
   *
   * @example
   * ```ts
   * import { HybridLatch } from "@sabre/sabre";
   * const latch = HybridLatch.create();
   * const guard = latch.optimisticOrSpin();
   * using shared = guard.toShared();
   * console.assert(shared.version === guard.version && latch.tryExclusive() === undefined);
   * ```
   */
  toShared(): SharedGuard {
    return this.#latch.upgradeToShared(this.version);
  }
}

/**
 * Shared access: the RwLock is held for reading, so no writer is inside and
 * reads need no validation. Dispose it or call `unlock()`.
 *
 * @example
 * ```ts
 * import { HybridLatch } from "@sabre/sabre";
 * const latch = HybridLatch.create();
 * using shared = latch.shared();
 * shared.recheck(); // always valid
 * ```
 */
export class SharedGuard extends GuardReads implements Disposable {
  #latch: HybridLatch | undefined;
  /**
   * The version while shared access is held (even: no writer is inside).
   *
   * @example
   * ```ts
   * import { HybridLatch } from "@sabre/sabre";
   * const latch = HybridLatch.create();
   * latch.write(() => {});
   * using shared = latch.shared();
   * console.assert(shared.version === 2 && shared.version === latch.currentVersion());
   * ```
   */
  readonly version: number;

  /** @internal Use `latch.shared()`. */
  constructor(latch: HybridLatch, version: number) {
    super();
    this.#latch = latch;
    this.version = version;
  }

  /**
   * Whether this guard still holds shared access.
   *
   * @example
   * ```ts
   * import { HybridLatch } from "@sabre/sabre";
   * const shared = HybridLatch.create().shared();
   * console.assert(shared.held);
   * shared.unlock();
   * console.assert(!shared.held);
   * ```
   */
  get held(): boolean {
    return this.#latch !== undefined;
  }

  /**
   * Returns while held, since no writer can be inside: shared reads never
   * unwind. Throws {@linkcode SabreError} once the guard is released.
   *
   * @example
   * ```ts
   * import { HybridLatch, SabreError } from "@sabre/sabre";
   * const shared = HybridLatch.create().shared();
   * shared.recheck(); // held: always passes
   * shared.unlock();
   * let error: unknown;
   * try {
   *   shared.recheck();
   * } catch (e) {
   *   error = e;
   * }
   * console.assert(error instanceof SabreError);
   * ```
   */
  recheck(): void {
    if (this.#latch === undefined) {
      throw new SabreError("Cannot recheck a SharedGuard that was released");
    }
  }

  /**
   * An optimistic guard at this version: valid until a writer enters after
   * this shared access ends. Throws {@linkcode SabreError} once released.
   *
   * @example
   * ```ts
   * import { HybridLatch } from "@sabre/sabre";
   * const latch = HybridLatch.create();
   * const shared = latch.shared();
   * const guard = shared.asOptimistic();
   * shared.unlock();
   * console.assert(guard.isValid()); // no writer yet
   * latch.write(() => {});
   * console.assert(!guard.isValid());
   * ```
   */
  asOptimistic(): OptimisticGuard {
    const latch = this.#latch;
    if (latch === undefined) {
      throw new SabreError("Cannot use a SharedGuard that was released");
    }
    return new OptimisticGuard(latch, this.version);
  }

  /**
   * Releases shared access. Throws {@linkcode SabreError} if released already.
   *
   * @example
   * ```ts
   * import { HybridLatch } from "@sabre/sabre";
   * const latch = HybridLatch.create();
   * const shared = latch.shared();
   * console.assert(latch.tryExclusive() === undefined);
   * shared.unlock();
   * const exclusive = latch.tryExclusive();
   * console.assert(exclusive !== undefined);
   * exclusive?.unlock();
   * ```
   */
  unlock(): void {
    const latch = this.#latch;
    if (latch === undefined) {
      throw new SabreError(
        "Cannot unlock HybridLatch as this shared guard has released it already",
      );
    }
    this.#latch = undefined;
    latch.lock.releaseRead();
  }

  /**
   * Releases shared access if still held: what `using` calls.
   *
   * @example
   * ```ts
   * import { HybridLatch } from "@sabre/sabre";
   * const latch = HybridLatch.create();
   * {
   *   using _shared = latch.shared();
   *   console.assert(latch.tryExclusive() === undefined);
   * }
   * console.assert(latch.write(() => true, { timeoutMs: 100 })); // released at the block's end
   * ```
   */
  [Symbol.dispose](): void {
    if (this.#latch !== undefined) this.unlock();
  }
}

/**
 * Exclusive access: the version is odd until `unlock()`, which returns an
 * optimistic guard at the new version. Disposing unlocks without returning one.
 *
 * @example
 * ```ts
 * import { HybridLatch } from "@sabre/sabre";
 * const latch = HybridLatch.create();
 * const exclusive = latch.exclusive();
 * const after = exclusive.unlock();
 * console.assert(after.version === exclusive.version + 1 && after.isValid());
 * ```
 */
export class ExclusiveGuard implements Disposable {
  #latch: HybridLatch | undefined;
  /**
   * The (odd) version while exclusive access is held.
   *
   * @example
   * ```ts
   * import { HybridLatch } from "@sabre/sabre";
   * const latch = HybridLatch.create();
   * using exclusive = latch.exclusive();
   * console.assert(exclusive.version === 1 && latch.currentVersion() === 1);
   * ```
   */
  readonly version: number;

  /** @internal Use `latch.exclusive()`. */
  constructor(latch: HybridLatch, version: number) {
    this.#latch = latch;
    this.version = version;
  }

  /**
   * Whether this guard still holds exclusive access.
   *
   * @example
   * ```ts
   * import { HybridLatch } from "@sabre/sabre";
   * const exclusive = HybridLatch.create().exclusive();
   * console.assert(exclusive.held);
   * exclusive.unlock();
   * console.assert(!exclusive.held);
   * ```
   */
  get held(): boolean {
    return this.#latch !== undefined;
  }

  /**
   * Returns while held, since no other writer can be inside. Throws
   * {@linkcode SabreError} once the guard is released.
   *
   * @example
   * ```ts
   * import { HybridLatch, SabreError } from "@sabre/sabre";
   * const exclusive = HybridLatch.create().exclusive();
   * exclusive.recheck(); // held: always passes
   * exclusive.unlock();
   * let error: unknown;
   * try {
   *   exclusive.recheck();
   * } catch (e) {
   *   error = e;
   * }
   * console.assert(error instanceof SabreError);
   * ```
   */
  recheck(): void {
    if (this.#latch === undefined) {
      throw new SabreError("Cannot recheck an ExclusiveGuard that was released");
    }
  }

  /**
   * Ends exclusive access (the version becomes even, one higher) and returns
   * an optimistic guard at that version, valid until the next writer enters.
   * Throws {@linkcode SabreError} if released already.
   *
   * @example
   * ```ts
   * import { HybridLatch } from "@sabre/sabre";
   * const latch = HybridLatch.create();
   * const words = new Int32Array(new SharedArrayBuffer(4));
   * const exclusive = latch.exclusive();
   * Atomics.store(words, 0, 1);
   * const after = exclusive.unlock();
   * console.assert(after.version === 2 && after.load(words, 0) === 1);
   * after.recheck(); // no writer since: the read above stands
   * ```
   */
  unlock(): OptimisticGuard {
    const latch = this.#latch;
    if (latch === undefined) {
      throw new SabreError(
        "Cannot unlock HybridLatch as this exclusive guard has released it already",
      );
    }
    this.#latch = undefined;
    return latch.releaseExclusive(this.version);
  }

  /**
   * Ends exclusive access if still held: what `using` calls.
   *
   * @example
   * ```ts
   * import { HybridLatch } from "@sabre/sabre";
   * const latch = HybridLatch.create();
   * {
   *   using _exclusive = latch.exclusive();
   *   console.assert(latch.currentVersion() === 1);
   * }
   * console.assert(latch.currentVersion() === 2);
   * ```
   */
  [Symbol.dispose](): void {
    if (this.#latch !== undefined) this.unlock();
  }
}

/**
 * A hybrid latch with optimistic, shared and exclusive modes, in shared
 * memory. See the module documentation for why optimistic reads must be
 * Atomics loads in JavaScript.
 *
 * @example
 * ```ts
 * import { HybridLatch, SharedHeap } from "@sabre/sabre";
 *
 * const heap = SharedHeap.create();
 * const latch = HybridLatch.create(heap);
 * const cell = heap.allocateZeroed(8);
 * const words = new Int32Array(heap.sab, cell, 2);
 *
 * { // writer: both words change together
 *   using _x = latch.exclusive();
 *   Atomics.store(words, 0, 7);
 *   Atomics.store(words, 1, -7);
 * }
 * // reader: optimistic, retried on conflict, shared after 40 tries
 * const sum = latch.read((g) => g.load(words, 0) + g.load(words, 1));
 * console.assert(sum === 0);
 * ```
 */
export class HybridLatch {
  readonly #placement: Placement;
  readonly #words: Int32Array;
  /** @internal The RwLock behind shared and exclusive modes. */
  readonly lock: RwLock;
  /**
   * Set by destroy(): every later call on this object throws rather than
   * touch memory that the heap may have given to something else. Another
   * worker's objects learn it from the embedded lock, which destroy()
   * leaves write-locked with its tag cleared, once they wait for it.
   */
  #destroyed = false;

  private constructor(placement: Placement, init: boolean) {
    this.#placement = placement;
    this.#words = placement.words;
    this.lock = RwLock.embedded(placement.sab, placement.offset + LOCK_OFFSET, init);
  }

  #checkLive(): void {
    if (this.#destroyed) throw new DestroyedError("HybridLatch");
  }

  /**
   * Creates a latch (version 0, unlocked) in `heap`, or standalone.
   *
   * @example
   * ```ts
   * import { HybridLatch } from "@sabre/sabre";
   * console.assert(HybridLatch.create().currentVersion() === 0);
   * ```
   */
  static create(heap?: SharedHeap): HybridLatch {
    return new HybridLatch(placeObject(heap, BYTES, TAG, "HybridLatch"), true);
  }

  /**
   * Rebuilds a latch from its handle in any worker.
   *
   * @example
   * ```ts
   * import { HybridLatch } from "@sabre/sabre";
   * const latch = HybridLatch.create();
   * latch.exclusive().unlock();
   * console.assert(HybridLatch.attach(latch.handle).currentVersion() === 2);
   * ```
   */
  static attach(handle: HybridLatchHandle): HybridLatch {
    return new HybridLatch(
      attachObject(handle, KIND, LAYOUT_VERSION, BYTES, TAG, "HybridLatch"),
      false,
    );
  }

  /**
   * The handle to send to other workers.
   *
   * @example
   * ```ts
   * import { HybridLatch } from "@sabre/sabre";
   * console.assert(HybridLatch.create().handle.kind === "sabre.HybridLatch");
   * ```
   */
  get handle(): HybridLatchHandle {
    this.#checkLive();
    return objectHandle(KIND, LAYOUT_VERSION, this.#placement);
  }

  /**
   * The version word now: odd while a writer is inside.
   *
   * @example
   * ```ts
   * import { HybridLatch } from "@sabre/sabre";
   * const latch = HybridLatch.create();
   * using x = latch.exclusive();
   * console.assert(latch.currentVersion() % 2 === 1);
   * ```
   */
  currentVersion(): number {
    this.#checkLive();
    return Atomics.load(this.#words, VERSION);
  }

  /**
   * Exclusive access, blocking until every other holder has left. Throws
   * {@linkcode TimeoutError} after `timeoutMs`.
   *
   * @example
   * ```ts
   * import { HybridLatch } from "@sabre/sabre";
   * const latch = HybridLatch.create();
   * using _x = latch.exclusive({ timeoutMs: 100 });
   * ```
   */
  exclusive(options?: LockOptions): ExclusiveGuard {
    this.#checkLive();
    this.#acquireWrite(options, EXCLUSIVELY, options);
    return this.#enterExclusive();
  }

  /**
   * Exclusive access if it is free now.
   *
   * @example
   * ```ts
   * import { HybridLatch } from "@sabre/sabre";
   * const latch = HybridLatch.create();
   * using _s = latch.shared();
   * console.assert(latch.tryExclusive() === undefined);
   * ```
   */
  tryExclusive(): ExclusiveGuard | undefined {
    this.#checkLive();
    return this.lock.tryAcquireWrite() ? this.#enterExclusive() : undefined;
  }

  /**
   * Exclusive access, waiting with `Atomics.waitAsync`.
   *
   * @example
   * ```ts
   * import { HybridLatch } from "@sabre/sabre";
   * const latch = HybridLatch.create();
   * using _x = await latch.exclusiveAsync();
   * ```
   */
  async exclusiveAsync(options?: LockOptions): Promise<ExclusiveGuard> {
    this.#checkLive();
    await this.#acquireWriteAsync(options, EXCLUSIVELY, options);
    return this.#enterExclusive();
  }

  /**
   * Shared access, blocking while a writer is inside or waiting.
   *
   * @example
   * ```ts
   * import { HybridLatch } from "@sabre/sabre";
   * const latch = HybridLatch.create();
   * using _s = latch.shared({ timeoutMs: 100 });
   * ```
   */
  shared(options?: LockOptions): SharedGuard {
    this.#checkLive();
    return this.#shared(options, SHARED, options);
  }

  /**
   * Shared access if it can be had without waiting.
   *
   * @example
   * ```ts
   * import { HybridLatch } from "@sabre/sabre";
   * HybridLatch.create().tryShared()?.unlock();
   * ```
   */
  tryShared(): SharedGuard | undefined {
    this.#checkLive();
    return this.lock.tryAcquireRead()
      ? new SharedGuard(this, Atomics.load(this.#words, VERSION))
      : undefined;
  }

  /**
   * Shared access, waiting with `Atomics.waitAsync`.
   *
   * @example
   * ```ts
   * import { HybridLatch } from "@sabre/sabre";
   * using _s = await HybridLatch.create().sharedAsync();
   * ```
   */
  async sharedAsync(options?: LockOptions): Promise<SharedGuard> {
    this.#checkLive();
    return await this.#sharedAsync(options, SHARED, options);
  }

  /**
   * Optimistic access, waiting while a writer is inside: it spins briefly,
   * then waits for the writer by taking and dropping shared access (so a
   * long writer costs no CPU). Throws {@linkcode TimeoutError} when a writer
   * is still inside after `timeoutMs`.
   *
   * @example
   * ```ts
   * import { HybridLatch } from "@sabre/sabre";
   * const guard = HybridLatch.create().optimisticOrSpin({ timeoutMs: 100 });
   * console.assert(guard.version === 0);
   * ```
   */
  optimisticOrSpin(options?: LockOptions): OptimisticGuard {
    this.#checkLive();
    const words = this.#words;
    let version = Atomics.load(words, VERSION);
    if ((version & 1) === 0) return new OptimisticGuard(this, version);
    const deadline = deadlineOf(options, "wait for HybridLatch");
    for (let spin = 0; (version & 1) === 1; spin++) {
      if (spin < SPIN_LIMIT) {
        pause();
      } else {
        this.#acquireRead(timeLeft(deadline), "wait for HybridLatch", options);
        this.lock.releaseRead();
        spin = 0;
      }
      version = Atomics.load(words, VERSION);
    }
    return new OptimisticGuard(this, version);
  }

  /**
   * Async twin of `optimisticOrSpin`: waits for a writer with
   * `Atomics.waitAsync` instead of blocking.
   *
   * @example
   * ```ts
   * import { HybridLatch } from "@sabre/sabre";
   * const guard = await HybridLatch.create().optimisticOrSpinAsync();
   * console.assert(guard.isValid());
   * ```
   */
  async optimisticOrSpinAsync(options?: LockOptions): Promise<OptimisticGuard> {
    this.#checkLive();
    const words = this.#words;
    const deadline = deadlineOf(options, "wait for HybridLatch");
    let version = Atomics.load(words, VERSION);
    while ((version & 1) === 1) {
      await this.#acquireReadAsync(timeLeft(deadline), "wait for HybridLatch", options);
      this.lock.releaseRead();
      version = Atomics.load(words, VERSION);
    }
    return new OptimisticGuard(this, version);
  }

  /**
   * Optimistic access, or {@linkcode Unwind} at once if a writer is inside.
   *
   * @example
   * ```ts
   * import { HybridLatch, isUnwind } from "@sabre/sabre";
   * const latch = HybridLatch.create();
   * const x = latch.exclusive();
   * try {
   *   latch.optimisticOrUnwind();
   * } catch (e) {
   *   console.assert(isUnwind(e));
   * }
   * x.unlock();
   * ```
   */
  optimisticOrUnwind(): OptimisticGuard {
    this.#checkLive();
    const version = Atomics.load(this.#words, VERSION);
    if ((version & 1) === 1) throw Unwind.signal;
    return new OptimisticGuard(this, version);
  }

  /**
   * Optimistic access, or shared access (which may block) if a writer is
   * inside.
   *
   * @example
   * ```ts
   * import { HybridLatch, OptimisticGuard } from "@sabre/sabre";
   * const guard = HybridLatch.create().optimisticOrShared();
   * console.assert(guard instanceof OptimisticGuard);
   * ```
   */
  optimisticOrShared(options?: LockOptions): OptimisticGuard | SharedGuard {
    this.#checkLive();
    const version = Atomics.load(this.#words, VERSION);
    if ((version & 1) === 0) return new OptimisticGuard(this, version);
    return this.shared(options);
  }

  /**
   * Optimistic access, or exclusive access (which may block) if a writer is
   * inside.
   *
   * @example
   * ```ts
   * import { ExclusiveGuard, HybridLatch } from "@sabre/sabre";
   * const latch = HybridLatch.create();
   * const guard = latch.optimisticOrExclusive();
   * if (guard instanceof ExclusiveGuard) guard.unlock();
   * ```
   */
  optimisticOrExclusive(options?: LockOptions): OptimisticGuard | ExclusiveGuard {
    this.#checkLive();
    const version = Atomics.load(this.#words, VERSION);
    if ((version & 1) === 0) return new OptimisticGuard(this, version);
    return this.exclusive(options);
  }

  /**
   * Runs `fn` optimistically and returns its result once validated,
   * retrying when a writer intervened. After {@linkcode OPTIMISTIC_ATTEMPTS}
   * failed attempts it runs `fn` once more under shared access (waiting at
   * most `timeoutMs`, else {@linkcode TimeoutError}). An error thrown by `fn`
   * during an invalidated attempt is treated as a conflict (the data was
   * torn); a validated one propagates. `fn` must not have side effects
   * before its reads are validated, and the guard it gets is only valid
   * inside it.
   *
   * @example
   * ```ts
   * import { HybridLatch } from "@sabre/sabre";
   * const latch = HybridLatch.create();
   * const words = new Int32Array(new SharedArrayBuffer(8));
   * const pair = latch.read((g) => [g.load(words, 0), g.load(words, 1)]);
   * console.assert(pair[0] === pair[1]);
   * ```
   */
  read<T>(fn: (guard: OptimisticGuard | SharedGuard) => T, options?: LockOptions): T {
    this.#checkLive();
    requireSyncFunction(
      fn,
      "HybridLatch.read",
      "read what you need synchronously, and await after",
    );
    const deadline = options === undefined ? Infinity : deadlineOf(options, "read HybridLatch");
    const result = this.#readOptimistically(fn);
    if (result !== NO_RESULT) return result as T;
    const shared = this.#shared(timeLeft(deadline), "read HybridLatch", options);
    try {
      return fn(shared);
    } finally {
      shared.unlock();
    }
  }

  /**
   * Async twin of `read`: the optimistic attempts run at once; the shared
   * fallback waits with `Atomics.waitAsync`.
   *
   * @example
   * ```ts
   * import { HybridLatch } from "@sabre/sabre";
   * const latch = HybridLatch.create();
   * console.assert((await latch.readAsync((g) => g.version)) === 0);
   * ```
   */
  async readAsync<T>(
    fn: (guard: OptimisticGuard | SharedGuard) => T,
    options?: LockOptions,
  ): Promise<T> {
    this.#checkLive();
    requireSyncFunction(
      fn,
      "HybridLatch.readAsync",
      "read what you need synchronously, and await after",
    );
    const deadline = options === undefined ? Infinity : deadlineOf(options, "read HybridLatch");
    const result = this.#readOptimistically(fn);
    if (result !== NO_RESULT) return result as T;
    const shared = await this.#sharedAsync(timeLeft(deadline), "read HybridLatch", options);
    try {
      return fn(shared);
    } finally {
      shared.unlock();
    }
  }

  /** Up to OPTIMISTIC_ATTEMPTS validated runs of `fn`; NO_RESULT if all failed. */
  #readOptimistically<T>(fn: (guard: OptimisticGuard) => T): T | typeof NO_RESULT {
    const words = this.#words;
    for (let attempt = 0; attempt < OPTIMISTIC_ATTEMPTS; attempt++) {
      const version = Atomics.load(words, VERSION);
      if ((version & 1) === 1) {
        pause();
        continue;
      }
      let result: T;
      try {
        result = fn(new OptimisticGuard(this, version));
      } catch (e) {
        if (isUnwind(e) || Atomics.load(words, VERSION) !== version) continue;
        throw e;
      }
      if (Atomics.load(words, VERSION) === version) return result;
    }
    return NO_RESULT;
  }

  /**
   * Runs `fn` under exclusive access and returns its result.
   *
   * @example
   * ```ts
   * import { HybridLatch } from "@sabre/sabre";
   * const latch = HybridLatch.create();
   * console.assert(latch.write(() => 3) === 3 && latch.currentVersion() === 2);
   * ```
   */
  write<T>(fn: (guard: ExclusiveGuard) => T, options?: LockOptions): T {
    requireSyncFunction(fn, "HybridLatch.write", "use writeAsync");
    const guard = this.exclusive(options);
    try {
      return fn(guard);
    } finally {
      if (guard.held) guard.unlock();
    }
  }

  /**
   * Waits for exclusive access as `exclusiveAsync()` does, runs `fn`, and
   * unlocks once `fn`'s result settles (an async `fn` holds the latch
   * across its awaits; optimistic readers meanwhile fall back to waiting).
   * Rejects with {@linkcode TimeoutError}, without running `fn`, when
   * `timeoutMs` passes first.
   *
   * @example
   * ```ts
   * import { HybridLatch } from "@sabre/sabre";
   * const latch = HybridLatch.create();
   * const version = await latch.writeAsync(async (guard) => {
   *   await Promise.resolve();
   *   return guard.held ? latch.currentVersion() : -1;
   * });
   * console.assert(version === 1 && latch.currentVersion() === 2);
   * ```
   */
  async writeAsync<T>(
    fn: (guard: ExclusiveGuard) => T | PromiseLike<T>,
    options?: LockOptions,
  ): Promise<T> {
    const guard = await this.exclusiveAsync(options);
    try {
      return await fn(guard);
    } finally {
      if (guard.held) guard.unlock();
    }
  }

  /**
   * Frees the latch's memory in its heap (a standalone latch's buffer is
   * left to the garbage collector). Every later call on this object throws
   * {@linkcode DestroyedError}, and so does a second `destroy()` from any
   * worker, or a wait for the latch that another worker's object would
   * begin. Throws {@linkcode SabreError} while the latch is held or has
   * waiters.
   *
   * @example
   * ```ts
   * import { HybridLatch, SharedHeap } from "@sabre/sabre";
   * HybridLatch.create(SharedHeap.create()).destroy();
   * ```
   */
  destroy(): void {
    if (this.#destroyed) throw new DestroyedError("HybridLatch", "destroy");
    const words = this.#words;
    if (Atomics.load(words, 0) !== TAG) {
      this.#destroyed = true;
      throw new DestroyedError("HybridLatch", "destroy");
    }
    // The lock's destroy() leaves it write-locked for good, in one CAS from
    // idle, with its tag cleared; an odd version then sends optimistic
    // readers to that lock, whose wait fails.
    const held = "Cannot destroy HybridLatch as it is held or has waiters";
    if ((Atomics.load(words, VERSION) & 1) === 1) throw new SabreError(held);
    try {
      this.lock.destroy();
    } catch (e) {
      if (!(e instanceof DestroyedError)) throw new SabreError(held);
      this.#destroyed = true;
      throw new DestroyedError("HybridLatch", "destroy");
    }
    Atomics.add(words, VERSION, 1);
    this.#destroyed = true;
    releaseObject(this.#placement, TAG, "HybridLatch");
  }

  // The RwLock's acquisitions, whose timeouts name `operation` and the
  // caller's timeoutMs (`lockOptions` may hold only the time left of it).

  #shared(
    lockOptions: LockOptions | undefined,
    operation: string,
    caller?: LockOptions,
  ): SharedGuard {
    this.#acquireRead(lockOptions, operation, caller);
    return new SharedGuard(this, Atomics.load(this.#words, VERSION));
  }

  async #sharedAsync(
    lockOptions: LockOptions | undefined,
    operation: string,
    caller?: LockOptions,
  ): Promise<SharedGuard> {
    await this.#acquireReadAsync(lockOptions, operation, caller);
    return new SharedGuard(this, Atomics.load(this.#words, VERSION));
  }

  #acquireWrite(
    lockOptions: LockOptions | undefined,
    operation: string,
    caller?: LockOptions,
  ): void {
    try {
      this.lock.acquireWrite(lockOptions);
    } catch (e) {
      throw renamed(e, operation, caller);
    }
  }

  async #acquireWriteAsync(
    lockOptions: LockOptions | undefined,
    operation: string,
    caller?: LockOptions,
  ): Promise<void> {
    try {
      await this.lock.acquireWriteAsync(lockOptions);
    } catch (e) {
      throw renamed(e, operation, caller);
    }
  }

  #acquireRead(
    lockOptions: LockOptions | undefined,
    operation: string,
    caller?: LockOptions,
  ): void {
    try {
      this.lock.acquireRead(lockOptions);
    } catch (e) {
      throw renamed(e, operation, caller);
    }
  }

  async #acquireReadAsync(
    lockOptions: LockOptions | undefined,
    operation: string,
    caller?: LockOptions,
  ): Promise<void> {
    try {
      await this.lock.acquireReadAsync(lockOptions);
    } catch (e) {
      throw renamed(e, operation, caller);
    }
  }

  #enterExclusive(): ExclusiveGuard {
    // Only the RwLock's writer changes the version, so add is exact.
    const version = (Atomics.add(this.#words, VERSION, 1) + 1) | 0;
    return new ExclusiveGuard(this, version);
  }

  /** @internal */
  releaseExclusive(version: number): OptimisticGuard {
    this.#checkLive();
    const next = (version + 1) | 0;
    Atomics.store(this.#words, VERSION, next);
    this.lock.releaseWrite();
    return new OptimisticGuard(this, next);
  }

  /** @internal */
  upgradeToExclusive(version: number, options?: LockOptions): ExclusiveGuard {
    this.#checkLive();
    // An out-of-date guard fails at once rather than after waiting its turn.
    if (Atomics.load(this.#words, VERSION) !== version) throw Unwind.signal;
    this.#acquireWrite(options, EXCLUSIVELY, options);
    const next = (version + 1) | 0;
    if (Atomics.compareExchange(this.#words, VERSION, version, next) !== version) {
      this.lock.releaseWrite();
      throw Unwind.signal;
    }
    return new ExclusiveGuard(this, next);
  }

  /** @internal */
  upgradeToShared(version: number): SharedGuard {
    this.#checkLive();
    if (!this.lock.tryAcquireRead()) throw Unwind.signal;
    if (Atomics.load(this.#words, VERSION) !== version) {
      this.lock.releaseRead();
      throw Unwind.signal;
    }
    return new SharedGuard(this, version);
  }
}
