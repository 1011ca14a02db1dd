/**
 * RwLock: a reader-writer lock on futex words, usable from every worker.
 *
 * ## Fairness policy
 *
 * - **Writers never starve.** A writer that has to wait announces itself in
 *   the state word; from then on, newly arriving readers wait too, and the
 *   readers inside drain. The last of them wakes the writer.
 * - **Readers never starve either.** When a writer unlocks while readers are
 *   waiting, it starts a new read phase: every reader that was waiting is
 *   woken and may enter even though other writers are waiting. Readers that
 *   arrive after that wait for the next writer. Reads and writes therefore
 *   alternate in phases under contention.
 *
 * ## Words
 *
 * - STATE: bits 0–19 count readers inside, bits 20–30 count writers waiting,
 *   bit 31 marks a writer inside. All changes are Atomics RMW or CAS. No
 *   count may carry into the next field: a reader past 2^20 - 1 is refused
 *   (SabreError), and a writer that finds 2047 writers waiting waits
 *   unannounced, looking again every 10 ms, until one of them has entered.
 * - READERS_WAITING: readers parked or about to park.
 * - PHASE: bumped by a write unlock that admits waiting readers; readers park
 *   on it.
 * - WRITER_SEQ: bumped to wake a writer; writers park on it.
 * - STALE_WRITERS: bits 0–15 count the writers counted in STATE that
 *   readers take to be dead (see below); readers and barging writers defer
 *   only to writers past that count. Bits 16–31 number the times writers
 *   were taken for dead (the marking epoch).
 *
 * ## Writers that died waiting
 *
 * A worker terminated while it waited asynchronously for write access
 * (`writeAsync`) never withdraws its announcement, and its count in STATE
 * would hold every new reader back for good. So a reader parked behind
 * announced writers looks again after STALE_WRITER_MS: if in all that time
 * no writer entered, left or was woken, no reader left (PHASE and
 * WRITER_SEQ unchanged), and the lock is free, then no announced writer is
 * running, since a live one re-checks every park slice and enters a free
 * lock. It records the writers then waiting as stale, in a new marking
 * epoch, starts a read phase, and wakes every parked writer. Whoever later
 * sees fewer writers waiting than the stale count (one of them was alive
 * after all, and entered or gave up) lowers it. The count only decides who
 * defers to whom, never who may enter. A writer taken for dead by mistake
 * (one that did not run for STALE_WRITER_MS) takes itself off the count
 * when it next runs: it read the epoch before it announced itself, so an
 * epoch that has moved since means that a marking counted it. It then
 * holds new readers back again, and so is not starved by them.
 *
 * A parked party always announces itself (READERS_WAITING, or the writers
 * field of STATE) before it re-checks the state and parks on a sequence word
 * it read before announcing, and wakers change the state before they read
 * the announcements, so with sequentially consistent Atomics no wake-up is
 * lost.
 *
 * Memory order: acquisition and release are Atomics RMWs on STATE, so data
 * guarded by the lock may use plain reads and writes.
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
} from "../memory/mod.ts";
import {
  boundedBy,
  deadlineOf,
  type LockOptions,
  parkAsync,
  parkSync,
  pause,
  remainingMs,
  requireSyncFunction,
  SPIN_LIMIT,
  timedOut,
} from "./parking.ts";

/** Layout version of this object; attach() refuses newer ones. */
const LAYOUT_VERSION = 2;
const KIND = "sabre.RwLock";
const TAG = tagOf("RWLK");
const BYTES = 24;
const STATE = 1;
const READERS_WAITING = 2;
const PHASE = 3;
const WRITER_SEQ = 4;
const STALE_WRITERS = 5;
/** The stale count's bits in STALE_WRITERS; the marking epoch is above them. */
const STALE_COUNT_MASK = 0xffff;

const READER_MASK = (1 << 20) - 1;
const WRITER_WAITING_ONE = 1 << 20;
const WRITERS_WAITING_MASK = ((1 << 11) - 1) << 20;
const WRITER = 1 << 31; // as Int32: -2147483648
const READ_BLOCKERS = WRITER | WRITERS_WAITING_MASK;
/** How often a writer that found the writers field full looks again. */
const FULL_FIELD_POLL_MS = 10;
/**
 * How long a reader parked behind announced writers waits, with nothing
 * moving and the lock free, before it takes them for dead (module doc).
 */
const STALE_WRITER_MS = 1000;

/** Writers counted in the writers field of a STATE value. */
function writersWaitingIn(state: number): number {
  return (state & WRITERS_WAITING_MASK) >>> 20;
}

function tooManyReaders(): never {
  throw new SabreError(`Cannot read-lock RwLock as it has ${READER_MASK} readers already`);
}

/**
 * Handle of a {@linkcode RwLock}.
 *
 * @example
 * ```ts
 * import { RwLock, type RwLockHandle } from "@sabre/sabre";
 * const handle: RwLockHandle = RwLock.create().handle;
 * console.assert(handle.kind === "sabre.RwLock");
 * ```
 */
export type RwLockHandle = SharedHandle<"sabre.RwLock">;

/**
 * Shared access to a {@linkcode RwLock}; dispose it or call `unlock()`.
 *
 * @example
 * ```ts
 * import { RwLock } from "@sabre/sabre";
 * const lock = RwLock.create();
 * using _read = lock.read();
 * console.assert(lock.readers === 1);
 * ```
 */
export class RwLockReadGuard implements Disposable {
  #lock: RwLock | undefined;

  /** @internal Use `lock.read()`. */
  constructor(lock: RwLock) {
    this.#lock = lock;
  }

  /**
   * Whether this guard still holds shared access.
   *
   * @example
   * ```ts
   * import { RwLock } from "@sabre/sabre";
   * const guard = RwLock.create().read();
   * console.assert(guard.held);
   * guard.unlock();
   * console.assert(!guard.held);
   * ```
   */
  get held(): boolean {
    return this.#lock !== undefined;
  }

  /**
   * Releases shared access. Throws {@linkcode SabreError} if released already.
   *
   * @example
   * ```ts
   * import { RwLock } from "@sabre/sabre";
   * const lock = RwLock.create();
   * const guard = lock.read();
   * console.assert(lock.tryWrite() === undefined);
   * guard.unlock();
   * console.assert(lock.readers === 0);
   * ```
   */
  unlock(): void {
    const lock = this.#lock;
    if (lock === undefined) {
      throw new SabreError("Cannot unlock RwLock as this read guard has released it already");
    }
    this.#lock = undefined;
    lock.releaseRead();
  }

  /**
   * Releases shared access if still held: what `using` calls.
   *
   * @example
   * ```ts
   * import { RwLock } from "@sabre/sabre";
   * const lock = RwLock.create();
   * {
   *   using _a = lock.read();
   *   using _b = lock.read(); // readers share the lock
   *   console.assert(lock.readers === 2);
   * }
   * console.assert(lock.readers === 0);
   * ```
   */
  [Symbol.dispose](): void {
    if (this.#lock !== undefined) this.unlock();
  }
}

/**
 * Exclusive access to a {@linkcode RwLock}; dispose it or call `unlock()`.
 *
 * @example
 * ```ts
 * import { RwLock } from "@sabre/sabre";
 * const lock = RwLock.create();
 * const write = lock.write();
 * const read = write.downgrade(); // keeps readers' view consistent, lets readers in
 * read.unlock();
 * ```
 */
export class RwLockWriteGuard implements Disposable {
  #lock: RwLock | undefined;

  /** @internal Use `lock.write()`. */
  constructor(lock: RwLock) {
    this.#lock = lock;
  }

  /**
   * Whether this guard still holds exclusive access.
   *
   * @example
   * ```ts
   * import { RwLock } from "@sabre/sabre";
   * const guard = RwLock.create().write();
   * console.assert(guard.held);
   * guard.unlock();
   * console.assert(!guard.held);
   * ```
   */
  get held(): boolean {
    return this.#lock !== undefined;
  }

  /**
   * Releases exclusive access. Throws {@linkcode SabreError} if released already.
   *
   * @example
   * ```ts
   * import { RwLock } from "@sabre/sabre";
   * const lock = RwLock.create();
   * const guard = lock.write();
   * console.assert(lock.isWriteLocked);
   * guard.unlock();
   * console.assert(!lock.isWriteLocked);
   * ```
   */
  unlock(): void {
    const lock = this.#take("unlock");
    lock.releaseWrite();
  }

  /**
   * Turns exclusive access into shared access atomically: no writer can get
   * in between. This guard is spent; the returned one holds shared access.
   *
   * @example
   * ```ts
   * import { RwLock } from "@sabre/sabre";
   * const lock = RwLock.create();
   * const write = lock.write();
   * using read = write.downgrade();
   * console.assert(!write.held && read.held && lock.readers === 1 && !lock.isWriteLocked);
   * ```
   */
  downgrade(): RwLockReadGuard {
    const lock = this.#take("downgrade");
    lock.downgradeWrite();
    return new RwLockReadGuard(lock);
  }

  /**
   * Releases exclusive access if still held: what `using` calls.
   *
   * @example
   * ```ts
   * import { RwLock } from "@sabre/sabre";
   * const lock = RwLock.create();
   * {
   *   using _w = lock.write();
   *   console.assert(lock.tryRead() === undefined);
   * }
   * console.assert(!lock.isWriteLocked);
   * ```
   */
  [Symbol.dispose](): void {
    if (this.#lock !== undefined) this.unlock();
  }

  #take(what: string): RwLock {
    const lock = this.#lock;
    if (lock === undefined) {
      throw new SabreError(`Cannot ${what} RwLock as this write guard has released it already`);
    }
    this.#lock = undefined;
    return lock;
  }
}

/**
 * A reader-writer lock in shared memory: many readers or one writer.
 *
 * Every acquisition comes in four forms: blocking (`read`, `write`), async
 * (`readAsync`, `writeAsync`), non-blocking (`tryRead`, `tryWrite`), and with
 * `{ timeoutMs }` (throws {@linkcode TimeoutError}). Guards work with `using`;
 * `acquireRead`/`releaseRead` and `acquireWrite`/`releaseWrite` skip the
 * guard object for hot loops. See the module doc for the fairness policy:
 * neither writers nor readers starve.
 *
 * @example
 * ```ts
 * import { RwLock, SharedHeap } from "@sabre/sabre";
 *
 * const heap = SharedHeap.create();
 * const lock = RwLock.create(heap);
 * const pair = heap.allocateZeroed(8);
 * {
 *   using _w = lock.write();
 *   heap.i32[pair >> 2] = 1;
 *   heap.i32[(pair >> 2) + 1] = 1;
 * }
 * {
 *   using _r = lock.read();
 *   console.assert(heap.i32[pair >> 2] === heap.i32[(pair >> 2) + 1]);
 * }
 * ```
 */
export class RwLock {
  readonly #placement: Placement;
  readonly #words: Int32Array;
  /**
   * Set by destroy(), or where this object found the lock destroyed by
   * another worker: every later call on this object throws rather than
   * touch memory that the heap may have given to something else. The
   * acquiring fast paths test it only where the CAS alone would not stop
   * them.
   */
  #destroyed = false;

  private constructor(placement: Placement) {
    this.#placement = placement;
    this.#words = placement.words;
  }

  /**
   * Throws DestroyedError once this object knows the lock is gone. For the
   * releases and the tries, which would otherwise write freed memory: a
   * load of the tag there would fetch a contended line once more before
   * the RMW that takes it.
   */
  #checkLive(): void {
    if (this.#destroyed) throw new DestroyedError("RwLock");
  }

  /**
   * #checkLive, and also where the tag is gone: another worker destroyed
   * the lock, and no release would ever wake a wait on it. Where a wait may
   * begin, in the getters and in destroy().
   */
  #checkTag(operation: "use" | "destroy" = "use"): void {
    if (!this.#destroyed && Atomics.load(this.#words, 0) === TAG) return;
    this.#destroyed = true;
    throw new DestroyedError("RwLock", operation);
  }

  /**
   * Creates an unlocked RwLock in `heap`, or standalone.
   *
   * @example
   * ```ts
   * import { RwLock } from "@sabre/sabre";
   * console.assert(RwLock.create().readers === 0);
   * ```
   */
  static create(heap?: SharedHeap): RwLock {
    return new RwLock(placeObject(heap, BYTES, TAG, "RwLock"));
  }

  /**
   * Rebuilds a lock from its handle in any worker; throws
   * {@linkcode HandleError} for a handle that does not name an RwLock.
   *
   * @example
   * ```ts
   * import { RwLock } from "@sabre/sabre";
   * const lock = RwLock.create();
   * using _w = lock.write();
   * console.assert(RwLock.attach(lock.handle).tryRead() === undefined);
   * ```
   */
  static attach(handle: RwLockHandle): RwLock {
    return new RwLock(attachObject(handle, KIND, LAYOUT_VERSION, BYTES, TAG, "RwLock"));
  }

  /**
   * @internal For latches that embed an RwLock in their own memory: a lock
   * over the 8 Int32 words at byte `offset` of `sab`, initialized when
   * `init` is true.
   */
  static embedded(sab: SharedArrayBuffer, offset: number, init: boolean): RwLock {
    const words = new Int32Array(sab, offset, 8);
    if (init) Atomics.store(words, 0, TAG);
    else if (Atomics.load(words, 0) !== TAG) {
      throw new SabreError(`Cannot use the lock at offset ${offset} as it holds no RwLock`);
    }
    return new RwLock({ sab, offset, words, heap: undefined });
  }

  /**
   * The handle to send to other workers.
   *
   * @example
   * ```ts
   * import { RwLock } from "@sabre/sabre";
   * console.assert(RwLock.create().handle.kind === "sabre.RwLock");
   * ```
   */
  get handle(): RwLockHandle {
    this.#checkTag();
    return objectHandle(KIND, LAYOUT_VERSION, this.#placement);
  }

  /**
   * Readers inside at this moment (a hint).
   *
   * @example
   * ```ts
   * import { RwLock } from "@sabre/sabre";
   * const lock = RwLock.create();
   * lock.acquireRead();
   * console.assert(lock.readers === 1);
   * lock.releaseRead();
   * ```
   */
  get readers(): number {
    this.#checkTag();
    return Atomics.load(this.#words, STATE) & READER_MASK;
  }

  /**
   * Whether a writer is inside at this moment (a hint).
   *
   * @example
   * ```ts
   * import { RwLock } from "@sabre/sabre";
   * const lock = RwLock.create();
   * console.assert(!lock.isWriteLocked);
   * ```
   */
  get isWriteLocked(): boolean {
    this.#checkTag();
    return (Atomics.load(this.#words, STATE) & WRITER) !== 0;
  }

  // ---------------------------------------------------------------- readers

  /**
   * Blocks until shared access is granted.
   *
   * @example
   * ```ts
   * import { RwLock } from "@sabre/sabre";
   * const lock = RwLock.create();
   * using _r = lock.read({ timeoutMs: 50 });
   * ```
   */
  read(options?: LockOptions): RwLockReadGuard {
    this.acquireRead(options);
    return new RwLockReadGuard(this);
  }

  /**
   * Shared access if it can be had without waiting. Throws `SabreError`
   * when 2^20 - 1 readers are inside already.
   *
   * @example
   * ```ts
   * import { RwLock } from "@sabre/sabre";
   * const lock = RwLock.create();
   * lock.tryRead()?.unlock();
   * ```
   */
  tryRead(): RwLockReadGuard | undefined {
    return this.tryAcquireRead() ? new RwLockReadGuard(this) : undefined;
  }

  /**
   * Waits for shared access with `Atomics.waitAsync`.
   *
   * @example
   * ```ts
   * import { RwLock } from "@sabre/sabre";
   * const lock = RwLock.create();
   * using _r = await lock.readAsync();
   * ```
   */
  async readAsync(options?: LockOptions): Promise<RwLockReadGuard> {
    await this.acquireReadAsync(options);
    return new RwLockReadGuard(this);
  }

  /**
   * Runs `fn` with shared access.
   *
   * @example
   * ```ts
   * import { RwLock } from "@sabre/sabre";
   * console.assert(RwLock.create().withRead(() => "ok") === "ok");
   * ```
   */
  withRead<T>(fn: () => T, options?: LockOptions): T {
    requireSyncFunction(fn, "RwLock.withRead", "use withReadAsync");
    this.acquireRead(options);
    try {
      return fn();
    } finally {
      this.releaseRead();
    }
  }

  /**
   * `read()` without a guard object; pair with `releaseRead()`.
   *
   * @example
   * ```ts
   * import { RwLock } from "@sabre/sabre";
   * const lock = RwLock.create();
   * lock.acquireRead();
   * lock.releaseRead();
   * ```
   */
  acquireRead(options?: LockOptions): void {
    const words = this.#words;
    const seen = Atomics.load(words, STATE);
    // A full reader count goes to the slow path, which refuses it.
    if (
      options !== undefined || this.#destroyed || (seen & READ_BLOCKERS) !== 0 ||
      (seen & READER_MASK) === READER_MASK ||
      Atomics.compareExchange(words, STATE, seen, seen + 1) !== seen
    ) {
      this.#acquireReadSlow(options);
    }
  }

  /**
   * `tryRead()` without a guard object (and it throws as `tryRead()` does).
   *
   * @example
   * ```ts
   * import { RwLock } from "@sabre/sabre";
   * const lock = RwLock.create();
   * if (lock.tryAcquireRead()) lock.releaseRead();
   * ```
   */
  tryAcquireRead(): boolean {
    this.#checkLive();
    return this.#tryReadStep(false);
  }

  /**
   * `readAsync()` without a guard object.
   *
   * @example
   * ```ts
   * import { RwLock } from "@sabre/sabre";
   * const lock = RwLock.create();
   * await lock.acquireReadAsync();
   * lock.releaseRead();
   * ```
   */
  async acquireReadAsync(options?: LockOptions): Promise<void> {
    this.#checkTag();
    const deadline = deadlineOf(options, "read-lock RwLock");
    let bypass = false;
    for (;;) {
      if (this.#tryReadStep(bypass)) return;
      const phase = Atomics.load(this.#words, PHASE);
      Atomics.add(this.#words, READERS_WAITING, 1);
      let inTime = true;
      if (!this.#readerMayEnter(bypass)) {
        const writerSeq = Atomics.load(this.#words, WRITER_SEQ);
        const parked = await parkAsync(
          this.#words,
          PHASE,
          phase,
          boundedBy(deadline, STALE_WRITER_MS),
        );
        inTime = this.#readerParkEnded(parked, deadline, phase, writerSeq);
      }
      Atomics.sub(this.#words, READERS_WAITING, 1);
      if (Atomics.load(this.#words, PHASE) !== phase) bypass = true;
      if (!inTime) {
        if (this.#tryReadStep(bypass)) return;
        timedOut("read-lock RwLock", options);
      }
    }
  }

  /**
   * Releases shared access.
   *
   * @example
   * ```ts
   * import { RwLock } from "@sabre/sabre";
   * const lock = RwLock.create();
   * lock.acquireRead();
   * lock.releaseRead();
   * ```
   */
  releaseRead(): void {
    this.#checkLive();
    const words = this.#words;
    const was = Atomics.sub(words, STATE, 1);
    if ((was & READER_MASK) === 0) {
      Atomics.add(words, STATE, 1);
      throw new SabreError("Cannot release RwLock read access as no reader holds it");
    }
    // The last reader out wakes a waiting writer.
    if ((was & READER_MASK) === 1 && this.#liveWritersWaiting(was)) this.#wakeWriter();
  }

  /**
   * Whether `state` counts writers waiting beyond those taken for dead
   * (STALE_WRITERS); lowers that count to the writers counted where it is
   * higher.
   */
  #liveWritersWaiting(state: number): boolean {
    if ((state & WRITERS_WAITING_MASK) === 0) return false;
    const word = Atomics.load(this.#words, STALE_WRITERS);
    const stale = word & STALE_COUNT_MASK;
    if (stale === 0) return true;
    const waiting = writersWaitingIn(state);
    if (waiting < stale) {
      // One taken for dead entered or gave up. A failed CAS means another
      // worker changed the count meanwhile; either value is safe to act on.
      Atomics.compareExchange(
        this.#words,
        STALE_WRITERS,
        word,
        (word & ~STALE_COUNT_MASK) | waiting,
      );
      return false;
    }
    return waiting > stale;
  }

  /** Whether `state` lets a reader in: no writer inside, and none waiting unless `bypass`. */
  #readerAdmitted(state: number, bypass: boolean): boolean {
    if ((state & WRITER) !== 0) return false;
    return bypass || !this.#liveWritersWaiting(state);
  }

  #readerMayEnter(bypass: boolean): boolean {
    return this.#readerAdmitted(Atomics.load(this.#words, STATE), bypass);
  }

  /** One attempt to enter as a reader. */
  #tryReadStep(bypass: boolean): boolean {
    const words = this.#words;
    for (;;) {
      const seen = Atomics.load(words, STATE);
      if ((seen & READ_BLOCKERS) !== 0 && !this.#readerAdmitted(seen, bypass)) return false;
      if ((seen & READER_MASK) === READER_MASK) tooManyReaders();
      if (Atomics.compareExchange(words, STATE, seen, seen + 1) === seen) return true;
    }
  }

  /**
   * After a reader's park bounded by STALE_WRITER_MS (`parked`: whether it
   * ended before that bound): whether the reader is still in time. A park
   * cut by the bound rather than by `deadline` looks for dead writers.
   */
  #readerParkEnded(parked: boolean, deadline: number, phase: number, writerSeq: number): boolean {
    if (parked || remainingMs(deadline) <= 0) return parked;
    this.#markStaleWriters(phase, writerSeq);
    return true;
  }

  /**
   * A reader's park behind announced writers ran its full STALE_WRITER_MS:
   * if nothing moved meanwhile (`phase` and `writerSeq` as they were before
   * it parked) and the lock is free, the writers announced are not running.
   * Counts them as stale in a new marking epoch, starts a read phase for
   * the readers they held back, and wakes every parked writer, so that a
   * live one among them takes itself off the count. See the module doc.
   */
  #markStaleWriters(phase: number, writerSeq: number): void {
    const words = this.#words;
    if (Atomics.load(words, PHASE) !== phase || Atomics.load(words, WRITER_SEQ) !== writerSeq) {
      return;
    }
    for (;;) {
      const seen = Atomics.load(words, STATE);
      if ((seen & (WRITER | READER_MASK)) !== 0) return;
      const waiting = writersWaitingIn(seen);
      const word = Atomics.load(words, STALE_WRITERS);
      if (waiting <= (word & STALE_COUNT_MASK)) return;
      // The epoch wraps after 2^16 markings (<< keeps the low 32 bits).
      const marked = (((word >>> 16) + 1) << 16) | waiting;
      if (Atomics.compareExchange(words, STALE_WRITERS, word, marked) === word) break;
    }
    Atomics.add(words, PHASE, 1);
    Atomics.notify(words, PHASE);
    Atomics.add(words, WRITER_SEQ, 1);
    Atomics.notify(words, WRITER_SEQ);
  }

  /**
   * A waiting writer's check that no marking took it for dead: where the
   * marking epoch is no longer `epoch` (the one it read before announcing
   * itself, or at its last check), a marking counted it, so it takes one
   * off the stale count. Returns the epoch to check against next time.
   */
  #standUpIfTakenForDead(epoch: number): number {
    const words = this.#words;
    for (;;) {
      const word = Atomics.load(words, STALE_WRITERS);
      const now = word >>> 16;
      if (now === epoch) return epoch;
      // A count at 0 was lowered already, by one who saw fewer writers.
      if ((word & STALE_COUNT_MASK) === 0) return now;
      if (Atomics.compareExchange(words, STALE_WRITERS, word, word - 1) === word) return now;
    }
  }

  #acquireReadSlow(options: LockOptions | undefined): void {
    this.#checkTag();
    const deadline = deadlineOf(options, "read-lock RwLock");
    const words = this.#words;
    for (let spin = 0; spin < SPIN_LIMIT; spin++) {
      if (this.#tryReadStep(false)) return;
      pause();
    }
    let bypass = false;
    for (;;) {
      if (this.#tryReadStep(bypass)) return;
      const phase = Atomics.load(words, PHASE);
      Atomics.add(words, READERS_WAITING, 1);
      let inTime = true;
      if (!this.#readerMayEnter(bypass)) {
        const writerSeq = Atomics.load(words, WRITER_SEQ);
        const parked = parkSync(words, PHASE, phase, boundedBy(deadline, STALE_WRITER_MS));
        inTime = this.#readerParkEnded(parked, deadline, phase, writerSeq);
      }
      Atomics.sub(words, READERS_WAITING, 1);
      if (Atomics.load(words, PHASE) !== phase) bypass = true;
      if (!inTime) {
        if (this.#tryReadStep(bypass)) return;
        timedOut("read-lock RwLock", options);
      }
    }
  }

  // ---------------------------------------------------------------- writers

  /**
   * Blocks until exclusive access is granted.
   *
   * @example
   * ```ts
   * import { RwLock } from "@sabre/sabre";
   * const lock = RwLock.create();
   * using _w = lock.write({ timeoutMs: 50 });
   * ```
   */
  write(options?: LockOptions): RwLockWriteGuard {
    this.acquireWrite(options);
    return new RwLockWriteGuard(this);
  }

  /**
   * Exclusive access if it can be had without waiting.
   *
   * @example
   * ```ts
   * import { RwLock } from "@sabre/sabre";
   * const lock = RwLock.create();
   * using _r = lock.read();
   * console.assert(lock.tryWrite() === undefined);
   * ```
   */
  tryWrite(): RwLockWriteGuard | undefined {
    return this.tryAcquireWrite() ? new RwLockWriteGuard(this) : undefined;
  }

  /**
   * Waits for exclusive access with `Atomics.waitAsync`.
   *
   * @example
   * ```ts
   * import { RwLock } from "@sabre/sabre";
   * const lock = RwLock.create();
   * using _w = await lock.writeAsync();
   * ```
   */
  async writeAsync(options?: LockOptions): Promise<RwLockWriteGuard> {
    await this.acquireWriteAsync(options);
    return new RwLockWriteGuard(this);
  }

  /**
   * Waits for shared access as `readAsync()` does, runs `fn`, and releases
   * once `fn`'s result settles (an async `fn` reads across its awaits).
   * Rejects with {@linkcode TimeoutError}, without running `fn`, when
   * `timeoutMs` passes first.
   *
   * @example
   * ```ts
   * import { RwLock } from "@sabre/sabre";
   * const lock = RwLock.create();
   * const value = await lock.withReadAsync(async () => {
   *   await Promise.resolve();
   *   return lock.readers; // still held here
   * });
   * console.assert(value === 1 && lock.readers === 0);
   * ```
   */
  async withReadAsync<T>(fn: () => T | PromiseLike<T>, options?: LockOptions): Promise<T> {
    await this.acquireReadAsync(options);
    try {
      return await fn();
    } finally {
      this.releaseRead();
    }
  }

  /**
   * Runs `fn` with exclusive access.
   *
   * @example
   * ```ts
   * import { RwLock } from "@sabre/sabre";
   * console.assert(RwLock.create().withWrite(() => 1) === 1);
   * ```
   */
  withWrite<T>(fn: () => T, options?: LockOptions): T {
    requireSyncFunction(fn, "RwLock.withWrite", "use withWriteAsync");
    this.acquireWrite(options);
    try {
      return fn();
    } finally {
      this.releaseWrite();
    }
  }

  /**
   * Waits for exclusive access as `writeAsync()` does, runs `fn`, and
   * releases once `fn`'s result settles (an async `fn` writes across its
   * awaits, and other tasks of this worker wait their turn). Rejects with
   * {@linkcode TimeoutError}, without running `fn`, when `timeoutMs` passes
   * first.
   *
   * @example
   * ```ts
   * import { RwLock } from "@sabre/sabre";
   * const lock = RwLock.create();
   * const held = await lock.withWriteAsync(async () => {
   *   await Promise.resolve();
   *   return lock.isWriteLocked;
   * });
   * console.assert(held && !lock.isWriteLocked);
   * ```
   */
  async withWriteAsync<T>(fn: () => T | PromiseLike<T>, options?: LockOptions): Promise<T> {
    await this.acquireWriteAsync(options);
    try {
      return await fn();
    } finally {
      this.releaseWrite();
    }
  }

  /**
   * `write()` without a guard object; pair with `releaseWrite()`.
   *
   * @example
   * ```ts
   * import { RwLock } from "@sabre/sabre";
   * const lock = RwLock.create();
   * lock.acquireWrite();
   * lock.releaseWrite();
   * ```
   */
  acquireWrite(options?: LockOptions): void {
    if (
      options !== undefined || this.#destroyed ||
      Atomics.compareExchange(this.#words, STATE, 0, WRITER) !== 0
    ) {
      this.#acquireWriteSlow(options);
    }
  }

  /**
   * `tryWrite()` without a guard object. Succeeds only when nobody is inside
   * and no writer waits (but writers taken for dead: see the module doc).
   *
   * @example
   * ```ts
   * import { RwLock } from "@sabre/sabre";
   * const lock = RwLock.create();
   * if (lock.tryAcquireWrite()) lock.releaseWrite();
   * ```
   */
  tryAcquireWrite(): boolean {
    this.#checkLive();
    return Atomics.compareExchange(this.#words, STATE, 0, WRITER) === 0 || this.#tryWriteBarging();
  }

  /**
   * Enters as a writer that has not announced itself, where nobody is inside
   * and every writer counted in STATE is taken for dead (the module doc);
   * with none counted, this is the fast path's CAS from 0.
   */
  #tryWriteBarging(): boolean {
    const words = this.#words;
    const seen = Atomics.load(words, STATE);
    if ((seen & (WRITER | READER_MASK)) !== 0 || this.#liveWritersWaiting(seen)) return false;
    return Atomics.compareExchange(words, STATE, seen, seen | WRITER) === seen;
  }

  /**
   * `writeAsync()` without a guard object.
   *
   * @example
   * ```ts
   * import { RwLock } from "@sabre/sabre";
   * const lock = RwLock.create();
   * await lock.acquireWriteAsync();
   * lock.releaseWrite();
   * ```
   */
  async acquireWriteAsync(options?: LockOptions): Promise<void> {
    this.#checkTag();
    const deadline = deadlineOf(options, "write-lock RwLock");
    if (this.#tryWriteBarging()) return;
    let epoch: number;
    while ((epoch = this.#announceWriter()) < 0) {
      // The writers field is full: wait unannounced until one of them enters.
      const seq = Atomics.load(this.#words, WRITER_SEQ);
      await parkAsync(this.#words, WRITER_SEQ, seq, boundedBy(deadline, FULL_FIELD_POLL_MS));
      if (remainingMs(deadline) <= 0) timedOut("write-lock RwLock", options);
    }
    for (;;) {
      if (this.#tryWriteAsWaiter()) return;
      const seq = Atomics.load(this.#words, WRITER_SEQ);
      if (this.#writerMayEnter()) continue;
      const parked = await parkAsync(this.#words, WRITER_SEQ, seq, deadline);
      epoch = this.#standUpIfTakenForDead(epoch);
      if (!parked) {
        if (this.#tryWriteAsWaiter()) return;
        this.#abandonWrite();
        timedOut("write-lock RwLock", options);
      }
    }
  }

  /**
   * Releases exclusive access. Wakes the readers that waited, if any (a new
   * read phase), and one waiting writer.
   *
   * @example
   * ```ts
   * import { RwLock } from "@sabre/sabre";
   * const lock = RwLock.create();
   * lock.acquireWrite();
   * lock.releaseWrite();
   * ```
   */
  releaseWrite(): void {
    this.#checkLive();
    const words = this.#words;
    const was = Atomics.and(words, STATE, ~WRITER);
    if ((was & WRITER) === 0) {
      throw new SabreError("Cannot release RwLock write access as no writer holds it");
    }
    this.#afterWriterLeft(was);
  }

  /**
   * Atomically turns the caller's exclusive access into shared access.
   *
   * @example
   * ```ts
   * import { RwLock } from "@sabre/sabre";
   * const lock = RwLock.create();
   * lock.acquireWrite();
   * lock.downgradeWrite();
   * console.assert(lock.readers === 1 && !lock.isWriteLocked);
   * lock.releaseRead();
   * ```
   */
  downgradeWrite(): void {
    this.#checkLive();
    const words = this.#words;
    // WRITER off and one reader on, in one RMW: WRITER + 1 wraps bit 31 off.
    const was = Atomics.add(words, STATE, WRITER + 1);
    if ((was & WRITER) === 0) {
      Atomics.sub(words, STATE, WRITER + 1);
      throw new SabreError("Cannot downgrade RwLock as no writer holds it");
    }
    if (Atomics.load(words, READERS_WAITING) !== 0) {
      Atomics.add(words, PHASE, 1);
      Atomics.notify(words, PHASE);
    }
  }

  #afterWriterLeft(was: number): void {
    const words = this.#words;
    if (Atomics.load(words, READERS_WAITING) !== 0) {
      // A new read phase: the readers that waited may enter before the
      // writers that wait.
      Atomics.add(words, PHASE, 1);
      Atomics.notify(words, PHASE);
    }
    // Also wake one writer, in case the announced readers gave up meanwhile;
    // if readers did get in, it parks again until the last one leaves.
    if (this.#liveWritersWaiting(was)) this.#wakeWriter();
  }

  #wakeWriter(): void {
    Atomics.add(this.#words, WRITER_SEQ, 1);
    Atomics.notify(this.#words, WRITER_SEQ, 1);
  }

  /**
   * Counts the caller in the writers field of STATE, and returns the
   * marking epoch read just before (for #standUpIfTakenForDead); -1, having
   * changed nothing, while the field is full (WRITERS_WAITING_MASK writers
   * wait): one more would carry into WRITER.
   */
  #announceWriter(): number {
    const words = this.#words;
    for (;;) {
      const epoch = Atomics.load(words, STALE_WRITERS) >>> 16;
      const seen = Atomics.load(words, STATE);
      if ((seen & WRITERS_WAITING_MASK) === WRITERS_WAITING_MASK) return -1;
      if (Atomics.compareExchange(words, STATE, seen, seen + WRITER_WAITING_ONE) === seen) {
        return epoch;
      }
    }
  }

  /**
   * @internal Whether nobody holds or waits for the lock: no reader or
   * writer inside, no writer announced but those taken for dead, no reader
   * about to park.
   */
  get isIdle(): boolean {
    this.#checkTag();
    return this.#idleIn(Atomics.load(this.#words, STATE));
  }

  /** Whether `state` has nobody inside or announced, and no reader waits. */
  #idleIn(state: number): boolean {
    return (state & (WRITER | READER_MASK)) === 0 && !this.#liveWritersWaiting(state) &&
      Atomics.load(this.#words, READERS_WAITING) === 0;
  }

  #writerMayEnter(): boolean {
    return (Atomics.load(this.#words, STATE) & (WRITER | READER_MASK)) === 0;
  }

  /** Enter as an announced writer: drop our announcement and set WRITER in one CAS. */
  #tryWriteAsWaiter(): boolean {
    const words = this.#words;
    for (;;) {
      const seen = Atomics.load(words, STATE);
      if ((seen & (WRITER | READER_MASK)) !== 0) return false;
      const next = (seen - WRITER_WAITING_ONE) | WRITER;
      if (Atomics.compareExchange(words, STATE, seen, next) === seen) return true;
    }
  }

  /** A waiting writer gives up: withdraw, and release readers it was holding back. */
  #abandonWrite(): void {
    const words = this.#words;
    const was = Atomics.sub(words, STATE, WRITER_WAITING_ONE);
    if (!this.#liveWritersWaiting(was - WRITER_WAITING_ONE)) {
      if (Atomics.load(words, READERS_WAITING) !== 0) {
        Atomics.add(words, PHASE, 1);
        Atomics.notify(words, PHASE);
      }
    } else if ((was & (WRITER | READER_MASK)) === 0) {
      this.#wakeWriter(); // the lock is free: pass our turn on
    }
  }

  #acquireWriteSlow(options: LockOptions | undefined): void {
    this.#checkTag();
    const deadline = deadlineOf(options, "write-lock RwLock");
    const words = this.#words;
    if (this.#tryWriteBarging()) return;
    for (let spin = 0; spin < SPIN_LIMIT; spin++) {
      pause();
      if (this.#tryWriteBarging()) return;
    }
    let epoch: number;
    while ((epoch = this.#announceWriter()) < 0) {
      // The writers field is full: wait unannounced until one of them enters.
      parkSync(
        words,
        WRITER_SEQ,
        Atomics.load(words, WRITER_SEQ),
        boundedBy(deadline, FULL_FIELD_POLL_MS),
      );
      if (remainingMs(deadline) <= 0) timedOut("write-lock RwLock", options);
    }
    for (;;) {
      if (this.#tryWriteAsWaiter()) return;
      const seq = Atomics.load(words, WRITER_SEQ);
      if (this.#writerMayEnter()) continue;
      const parked = parkSync(words, WRITER_SEQ, seq, deadline);
      epoch = this.#standUpIfTakenForDead(epoch);
      if (!parked) {
        if (this.#tryWriteAsWaiter()) return;
        this.#abandonWrite();
        timedOut("write-lock RwLock", options);
      }
    }
  }

  /**
   * Frees the lock's memory in its heap (a standalone lock's buffer is left
   * to the garbage collector); nobody may use it afterwards. Every later
   * call on this object throws {@linkcode DestroyedError}, and so does a
   * second `destroy()` from any worker, or a wait for the lock that another
   * worker's object would begin. Throws {@linkcode SabreError} while the
   * lock is held or has waiters.
   *
   * @example
   * ```ts
   * import { RwLock, SharedHeap } from "@sabre/sabre";
   * RwLock.create(SharedHeap.create()).destroy();
   * ```
   */
  destroy(): void {
    this.#checkTag("destroy");
    const words = this.#words;
    const state = Atomics.load(words, STATE);
    // Write-locked for good, in one CAS from the idle state seen: a worker
    // that would take the lock from here on fails and reaches #checkTag,
    // which finds the tag cleared below.
    if (
      !this.#idleIn(state) || Atomics.compareExchange(words, STATE, state, state | WRITER) !== state
    ) {
      throw new SabreError("Cannot destroy RwLock as it is locked or has waiters");
    }
    this.#destroyed = true;
    releaseObject(this.#placement, TAG, "RwLock");
  }
}
