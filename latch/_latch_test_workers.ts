/**
 * Worker bodies for the multi-worker tests of Mutex, RwLock, Condvar and
 * HybridLatch (`*_test.ts` beside this file), plus the main-thread helper
 * {@linkcode holdElsewhere} that keeps a lock held in a worker.
 *
 * Every export that takes a {@linkcode WorkerContext} runs inside a worker
 * started by the testing harness. Data guarded by a lock is addressed by a
 * {@linkcode Words} reference, so the same body serves heap-backed and
 * standalone primitives.
 *
 * @module
 */

import { type SharedHandle, type SharedHeap, TimeoutError } from "../memory/mod.ts";
import { spawnWorkers, type WorkerContext, type WorkerGroup } from "../testing/harness.ts";
import {
  HistoryClock,
  type HistoryClockHandle,
  HistoryRecorder,
  type OpRecord,
} from "../testing/history.ts";
import {
  Condvar,
  type CondvarHandle,
  type ExclusiveGuard,
  HybridLatch,
  type HybridLatchHandle,
  isUnwind,
  Mutex,
  type MutexHandle,
  pause,
  RwLock,
  type RwLockHandle,
  SharedGuard,
} from "./mod.ts";

/** Where some Int32 words live: a heap's buffer or a plain shared one. */
export interface Words {
  readonly sab: SharedArrayBuffer;
  /** Byte offset, a multiple of 4. */
  readonly offset: number;
  readonly length: number;
}

/** A fixed Int32 view over `words`. */
export function view(words: Words): Int32Array {
  return new Int32Array(words.sab, words.offset, words.length);
}

/** `length` zeroed words in `heap`, or in a buffer of their own without one. */
export function allocWords(heap: SharedHeap | undefined, length: number): Words {
  if (heap === undefined) {
    return { sab: new SharedArrayBuffer(length * 4), offset: 0, length };
  }
  return { sab: heap.sab, offset: heap.allocateZeroed(length * 4), length };
}

function spin(n: number): void {
  for (let i = 0; i < n; i++) pause();
}

function isTimeout(e: unknown): boolean {
  return e instanceof TimeoutError;
}

// ------------------------------------------------------------ holding a lock

/** How {@linkcode hold} holds its lock. */
export type HoldKind =
  | "mutex"
  | "mutex-async"
  | "rwlock-read"
  | "rwlock-write"
  | "hybrid-exclusive"
  | "hybrid-shared";

/** Arguments of {@linkcode hold}. */
export interface HoldArgs {
  readonly kind: HoldKind;
  readonly handle: SharedHandle;
  /** Int32 words: [0] the parent sets it to release, [1] set once released. */
  readonly control: SharedArrayBuffer;
}

/**
 * Takes the lock, posts "held", and keeps it until the parent sets the
 * release word; then releases it and returns "released". A stop request
 * while it holds the lock kills it there, still holding (the wait loop is
 * made of checkpoints).
 */
export async function hold(ctx: WorkerContext<HoldArgs>): Promise<string> {
  const { kind, handle } = ctx.args;
  const control = new Int32Array(ctx.args.control);
  let release: () => void;
  switch (kind) {
    case "mutex": {
      const guard = Mutex.attach(handle as MutexHandle).lock();
      release = () => guard.unlock();
      break;
    }
    case "mutex-async": {
      const guard = await Mutex.attach(handle as MutexHandle).lockAsync();
      release = () => guard.unlock();
      break;
    }
    case "rwlock-read": {
      const guard = RwLock.attach(handle as RwLockHandle).read();
      release = () => guard.unlock();
      break;
    }
    case "rwlock-write": {
      const guard = RwLock.attach(handle as RwLockHandle).write();
      release = () => guard.unlock();
      break;
    }
    case "hybrid-exclusive": {
      const guard = HybridLatch.attach(handle as HybridLatchHandle).exclusive();
      release = () => void guard.unlock();
      break;
    }
    case "hybrid-shared": {
      const guard = HybridLatch.attach(handle as HybridLatchHandle).shared();
      release = () => guard.unlock();
      break;
    }
  }
  ctx.post("held");
  while (Atomics.load(control, 0) === 0) {
    ctx.checkpoint();
    Atomics.wait(control, 0, 0, 20);
  }
  release();
  Atomics.store(control, 1, 1);
  Atomics.notify(control, 1);
  return "released";
}

/** A lock held by a worker, as the main thread sees it. */
export interface Holder {
  /**
   * Lets the worker release the lock and blocks this thread until it did,
   * without giving the event loop a turn.
   */
  releaseNow(): void;
  /** Lets the worker release the lock, and waits until it did and finished. */
  release(): Promise<void>;
  /** Stops the worker as if killed while it holds the lock (it never releases). */
  kill(): Promise<void>;
  readonly group: WorkerGroup<string>;
}

/**
 * Starts a worker that takes the lock `handle` names as `kind` says, and
 * resolves once it holds it.
 */
export async function holdElsewhere(
  kind: HoldKind,
  handle: SharedHandle,
  heap?: SharedHeap,
): Promise<Holder> {
  const control = new Int32Array(new SharedArrayBuffer(8));
  const group = spawnWorkers<HoldArgs, string>({
    module: new URL(import.meta.url),
    fn: "hold",
    workers: 1,
    heap,
    args: { kind, handle, control: control.buffer as SharedArrayBuffer },
    timeoutMs: 60_000,
  });
  const held = Promise.withResolvers<void>();
  group.onMessage(() => held.resolve());
  await Promise.race([held.promise, group.results]);
  let killed = false;
  const releaseNow = () => {
    if (killed || Atomics.load(control, 0) !== 0) return;
    Atomics.store(control, 0, 1);
    Atomics.notify(control, 0);
    while (Atomics.load(control, 1) === 0) Atomics.wait(control, 1, 0, 100);
  };
  return {
    group,
    releaseNow,
    async release() {
      if (killed) return;
      releaseNow();
      const [result] = await group.results;
      if (result !== "released") throw new Error(`holder ended with ${String(result)}`);
    },
    async kill() {
      if (killed || Atomics.load(control, 0) !== 0) return;
      killed = true;
      await group.terminate(0);
      await group.done;
    },
  };
}

/**
 * Resolves once the group's workers have posted `count` messages in all;
 * rejects if the group ends or fails first. Listens from the call on, so
 * call it before the first await that could let a message through.
 */
export function posted(group: WorkerGroup<unknown>, count = 1): Promise<void> {
  let seen = 0;
  const { promise, resolve } = Promise.withResolvers<void>();
  group.onMessage(() => {
    if (++seen === count) resolve();
  });
  const ended = group.results.then(() => {
    throw new Error(`the workers ended after ${seen} of ${count} messages`);
  });
  return Promise.race([promise, ended]);
}

/**
 * Polls `condition` every 2 ms until it holds; rejects if `group` ends or
 * fails first, so that a broken run fails instead of polling forever.
 */
export async function until(condition: () => boolean, group: WorkerGroup<unknown>): Promise<void> {
  let over = false;
  let failure: unknown;
  group.results.then(() => (over = true), (e) => {
    over = true;
    failure = e;
  });
  while (!condition()) {
    if (over) throw failure ?? new Error("the workers ended before the condition held");
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

// ------------------------------------------------------- single lock calls

/** Arguments of {@linkcode lockMutexOnce}. */
export interface LockOnceArgs {
  readonly mutex: MutexHandle;
  /** Bound of the lock() wait; a liveness bound only. */
  readonly timeoutMs: number;
}

/**
 * Posts "locking", then takes the mutex (waiting at most `timeoutMs`),
 * releases it and returns "locked", or "timed out".
 */
export function lockMutexOnce(ctx: WorkerContext<LockOnceArgs>): string {
  const mutex = Mutex.attach(ctx.args.mutex);
  ctx.post("locking");
  try {
    mutex.lock({ timeoutMs: ctx.args.timeoutMs }).unlock();
    return "locked";
  } catch (e) {
    if (isTimeout(e)) return "timed out";
    throw e;
  }
}

/** Arguments of {@linkcode tryForever}. */
export interface TryForeverArgs {
  readonly kind: "mutex" | "rwlock-read" | "rwlock-write";
  readonly handle: SharedHandle;
  /** Bound of each attempt. */
  readonly timeoutMs: number;
}

/**
 * Tries to take the lock with `timeoutMs` attempts until it gets it, posting
 * the number of timeouts after each failed attempt (each post is a
 * checkpoint, so a stop request kills it between attempts). Returns the
 * number of timeouts once it got and released the lock.
 */
export function tryForever(ctx: WorkerContext<TryForeverArgs>): number {
  const { kind, handle, timeoutMs } = ctx.args;
  const options = { timeoutMs };
  let timeouts = 0;
  for (;;) {
    try {
      if (kind === "mutex") {
        Mutex.attach(handle as MutexHandle).lock(options).unlock();
      } else if (kind === "rwlock-read") {
        RwLock.attach(handle as RwLockHandle).read(options).unlock();
      } else {
        RwLock.attach(handle as RwLockHandle).write(options).unlock();
      }
      return timeouts;
    } catch (e) {
      if (!isTimeout(e)) throw e;
      ctx.post(++timeouts);
    }
  }
}

/** Arguments of {@linkcode waitAsyncAndDie}. */
export interface WaitAsyncArgs {
  readonly kind: "mutex" | "rwlock-read" | "rwlock-write" | "condvar";
  readonly handle: SharedHandle;
  /** The Condvar's mutex, for kind "condvar". */
  readonly mutex?: MutexHandle;
}

/**
 * Starts an async acquisition (or Condvar.waitAsync) that has to wait,
 * posts "waiting" once it announced itself, then awaits it. The parent stops
 * it there: it dies parked. Returns "acquired" if it ever gets through.
 */
export async function waitAsyncAndDie(ctx: WorkerContext<WaitAsyncArgs>): Promise<string> {
  const { kind, handle } = ctx.args;
  let pending: Promise<unknown>;
  if (kind === "mutex") {
    pending = Mutex.attach(handle as MutexHandle).acquireAsync();
  } else if (kind === "rwlock-read") {
    pending = RwLock.attach(handle as RwLockHandle).acquireReadAsync();
  } else if (kind === "rwlock-write") {
    pending = RwLock.attach(handle as RwLockHandle).acquireWriteAsync();
  } else {
    const mutex = Mutex.attach(ctx.args.mutex!);
    mutex.acquire();
    pending = Condvar.attach(handle as CondvarHandle).waitAsync(mutex);
  }
  ctx.post("waiting");
  await pending;
  return "acquired";
}

// --------------------------------------------------------- mutual exclusion

/** Arguments of the counting bodies. */
export interface CountArgs {
  readonly handle: SharedHandle;
  /** Words: [0] counter, [1] owner mark, [2] copy of the counter. */
  readonly data: Words;
  readonly iterations: number;
}

/** What a counting worker saw. */
export interface CountResult {
  /** Increments this worker made. */
  readonly increments: number;
  /** Sections in which another worker's mark or a torn pair showed up. */
  readonly violations: number;
  /** Reads made (RwLock and HybridLatch bodies). */
  readonly reads: number;
  /** How many times each acquisition form was used. */
  readonly forms: Record<string, number>;
}

/**
 * The critical section of every counting body: a plain read-modify-write
 * of the counter, then, after a window, of its copy; an owner mark exposes
 * any overlap, and readers that get in during the window see the pair
 * differ. Returns 1 when another worker was seen inside.
 */
function increment(data: Int32Array, me: number, window: number): number {
  data[1] = me;
  const value = data[0];
  data[0] = value + 1;
  spin(window);
  const overlapped = data[1] !== me ? 1 : 0;
  data[2] = value + 1;
  return overlapped;
}

function tally(forms: Record<string, number>, form: string): void {
  forms[form] = (forms[form] ?? 0) + 1;
}

/** Plain increments under a Mutex, taken in every form at random. */
export async function countMutex(ctx: WorkerContext<CountArgs>): Promise<CountResult> {
  const mutex = Mutex.attach(ctx.args.handle as MutexHandle);
  const data = view(ctx.args.data);
  const me = ctx.index + 1;
  const forms: Record<string, number> = {};
  let violations = 0;
  for (let i = 0; i < ctx.args.iterations; i++) {
    if ((i & 255) === 0) ctx.checkpoint();
    const window = ctx.randomInt(8);
    const r = ctx.random();
    if (r < 0.35) {
      tally(forms, "acquire");
      mutex.acquire();
      violations += increment(data, me, window);
      mutex.release();
    } else if (r < 0.55) {
      tally(forms, "guard");
      using _guard = mutex.lock();
      violations += increment(data, me, window);
    } else if (r < 0.7) {
      tally(forms, "withLock");
      violations += mutex.withLock(() => increment(data, me, window));
    } else if (r < 0.85) {
      tally(forms, "tryLock");
      let guard = mutex.tryLock();
      for (let tries = 0; guard === undefined; tries++) {
        pause();
        guard = tries < 1000 ? mutex.tryLock() : mutex.lock();
      }
      violations += increment(data, me, window);
      guard.unlock();
    } else if (r < 0.98) {
      tally(forms, "timeout");
      for (;;) {
        try {
          mutex.acquire({ timeoutMs: ctx.random() * 2 });
          break;
        } catch (e) {
          if (!isTimeout(e)) throw e;
          tally(forms, "timedOut");
        }
      }
      violations += increment(data, me, window);
      mutex.release();
    } else if (r < 0.99) {
      tally(forms, "async");
      using _guard = await mutex.lockAsync();
      violations += increment(data, me, window);
    } else {
      // The increment spans an await of fn: held across it, no other
      // worker writes in between, and no increment is lost.
      tally(forms, "withLockAsync");
      violations += await mutex.withLockAsync(async () => {
        data[1] = me;
        const value = data[0];
        await Promise.resolve();
        spin(window);
        data[0] = value + 1;
        return data[1] !== me ? 1 : 0;
      });
    }
  }
  return { increments: ctx.args.iterations, violations, reads: 0, forms };
}

/**
 * Plain increments under an RwLock's write lock, taken in every form, mixed
 * with reads (every form) that check the counter and its copy agree, and
 * with downgrades that check no writer slips in.
 */
export async function countRwLock(ctx: WorkerContext<CountArgs>): Promise<CountResult> {
  const lock = RwLock.attach(ctx.args.handle as RwLockHandle);
  const data = view(ctx.args.data);
  const me = ctx.index + 1;
  const forms: Record<string, number> = {};
  let violations = 0;
  let increments = 0;
  let reads = 0;
  const check = () => {
    reads++;
    if (data[0] !== data[2]) violations++;
  };
  for (let i = 0; i < ctx.args.iterations; i++) {
    if ((i & 255) === 0) ctx.checkpoint();
    const window = ctx.randomInt(8);
    const r = ctx.random();
    if (r < 0.15) {
      tally(forms, "acquireWrite");
      lock.acquireWrite();
      violations += increment(data, me, window);
      lock.releaseWrite();
    } else if (r < 0.25) {
      tally(forms, "writeGuard");
      using _guard = lock.write();
      violations += increment(data, me, window);
    } else if (r < 0.32) {
      tally(forms, "withWrite");
      violations += lock.withWrite(() => increment(data, me, window));
    } else if (r < 0.39) {
      tally(forms, "tryWrite");
      let guard = lock.tryWrite();
      for (let tries = 0; guard === undefined; tries++) {
        pause();
        guard = tries < 1000 ? lock.tryWrite() : lock.write();
      }
      violations += increment(data, me, window);
      guard.unlock();
    } else if (r < 0.46) {
      tally(forms, "writeTimeout");
      for (;;) {
        try {
          lock.acquireWrite({ timeoutMs: ctx.random() * 2 });
          break;
        } catch (e) {
          if (!isTimeout(e)) throw e;
          tally(forms, "timedOut");
        }
      }
      violations += increment(data, me, window);
      lock.releaseWrite();
    } else if (r < 0.5) {
      tally(forms, "downgrade");
      const write = lock.write();
      violations += increment(data, me, window);
      const expected = data[0];
      const read = write.downgrade();
      spin(window);
      if (data[0] !== expected || data[2] !== expected) violations++;
      reads++;
      read.unlock();
    } else if (r < 0.51) {
      tally(forms, "writeAsync");
      using _guard = await lock.writeAsync();
      violations += increment(data, me, window);
    } else if (r < 0.75) {
      tally(forms, "read");
      lock.withRead(check);
      continue;
    } else if (r < 0.85) {
      tally(forms, "readGuard");
      using _guard = lock.read();
      spin(window);
      check();
      continue;
    } else if (r < 0.92) {
      tally(forms, "tryRead");
      const guard = lock.tryRead();
      if (guard !== undefined) {
        check();
        guard.unlock();
      }
      continue;
    } else if (r < 0.99) {
      tally(forms, "readTimeout");
      try {
        lock.acquireRead({ timeoutMs: ctx.random() * 2 });
      } catch (e) {
        if (!isTimeout(e)) throw e;
        tally(forms, "timedOut");
        continue;
      }
      check();
      lock.releaseRead();
      continue;
    } else {
      tally(forms, "readAsync");
      using _guard = await lock.readAsync();
      check();
      continue;
    }
    increments++;
  }
  return { increments, violations, reads, forms };
}

/**
 * Plain increments under a HybridLatch's exclusive mode in every form, among
 * them optimistic read then upgrade (which must refuse when a writer
 * intervened, or an increment is lost), mixed with optimistic and shared
 * reads that check the counter and its copy agree.
 */
export async function countHybrid(ctx: WorkerContext<CountArgs>): Promise<CountResult> {
  const latch = HybridLatch.attach(ctx.args.handle as HybridLatchHandle);
  const data = view(ctx.args.data);
  const me = ctx.index + 1;
  const forms: Record<string, number> = {};
  let violations = 0;
  let increments = 0;
  let reads = 0;
  for (let i = 0; i < ctx.args.iterations; i++) {
    if ((i & 255) === 0) ctx.checkpoint();
    const window = ctx.randomInt(8);
    const r = ctx.random();
    if (r < 0.15) {
      tally(forms, "exclusive");
      using _guard = latch.exclusive();
      violations += increment(data, me, window);
    } else if (r < 0.25) {
      tally(forms, "write");
      violations += latch.write(() => increment(data, me, window));
    } else if (r < 0.32) {
      tally(forms, "tryExclusive");
      let guard = latch.tryExclusive();
      for (let tries = 0; guard === undefined; tries++) {
        pause();
        guard = tries < 1000 ? latch.tryExclusive() : latch.exclusive();
      }
      violations += increment(data, me, window);
      guard.unlock();
    } else if (r < 0.39) {
      tally(forms, "exclusiveTimeout");
      let guard: ExclusiveGuard | undefined;
      while (guard === undefined) {
        try {
          guard = latch.exclusive({ timeoutMs: ctx.random() * 2 });
        } catch (e) {
          if (!isTimeout(e)) throw e;
          tally(forms, "timedOut");
        }
      }
      violations += increment(data, me, window);
      guard.unlock();
    } else if (r < 0.5) {
      // Read optimistically, then write what was read plus one: only sound
      // if toExclusive() refuses whenever a writer came in between.
      tally(forms, "upgrade");
      for (;;) {
        const optimistic = latch.optimisticOrSpin();
        const value = optimistic.load(data, 0);
        let guard: ExclusiveGuard;
        try {
          guard = optimistic.toExclusive();
        } catch (e) {
          if (!isUnwind(e)) throw e;
          tally(forms, "upgradeUnwound");
          continue;
        }
        data[1] = me;
        if (data[0] !== value) violations++;
        data[0] = value + 1;
        data[2] = value + 1;
        guard.unlock();
        break;
      }
    } else if (r < 0.51) {
      tally(forms, "exclusiveAsync");
      using _guard = await latch.exclusiveAsync();
      violations += increment(data, me, window);
    } else if (r < 0.8) {
      tally(forms, "optimisticRead");
      reads++;
      const [a, b] = latch.read((g) => [g.load(data, 0), g.load(data, 2)]);
      if (a !== b) violations++;
      continue;
    } else if (r < 0.9) {
      tally(forms, "shared");
      reads++;
      using _guard = latch.shared();
      spin(window);
      if (data[0] !== data[2]) violations++;
      continue;
    } else if (r < 0.99) {
      tally(forms, "optimisticOrShared");
      reads++;
      for (;;) {
        const guard = latch.optimisticOrShared();
        const a = guard.load(data, 0);
        const b = guard.load(data, 2);
        if (guard instanceof SharedGuard) {
          guard.unlock();
        } else if (!guard.isValid()) {
          continue;
        }
        if (a !== b) violations++;
        break;
      }
      continue;
    } else {
      tally(forms, "sharedAsync");
      reads++;
      using _guard = await latch.sharedAsync();
      if (data[0] !== data[2]) violations++;
      continue;
    }
    increments++;
  }
  return { increments, violations, reads, forms };
}

// ------------------------------------------------------ RwLock consistency

/** Arguments of {@linkcode rwPairs}. */
export interface PairsArgs {
  readonly lock: RwLockHandle;
  /** Words: [0] x, [1] y, [2] readers finished, [3] stop flag. */
  readonly data: Words;
  /** Workers below this index write, the others read. */
  readonly writers: number;
  /** Write sections per writer, or read sections per reader. */
  readonly iterations: number;
}

/**
 * Writers set x, then y = x, with plain writes under the write lock;
 * readers check x === y under the read lock. Returns the mismatches seen
 * (readers) or 0 (writers).
 */
export async function rwPairs(ctx: WorkerContext<PairsArgs>): Promise<number> {
  const lock = RwLock.attach(ctx.args.lock);
  const data = view(ctx.args.data);
  let bad = 0;
  if (ctx.index < ctx.args.writers) {
    for (let i = 0; i < ctx.args.iterations; i++) {
      if ((i & 63) === 0) ctx.checkpoint();
      using _w = i % 50 === 49 ? await lock.writeAsync() : lock.write();
      const next = data[0] + 1;
      data[0] = next;
      spin(ctx.randomInt(64));
      data[1] = next;
    }
    return 0;
  }
  for (let i = 0; i < ctx.args.iterations; i++) {
    if ((i & 63) === 0) ctx.checkpoint();
    using _r = i % 50 === 49 ? await lock.readAsync() : lock.read();
    const y = data[1];
    const x = data[0];
    spin(ctx.randomInt(16));
    if (x !== y || data[0] !== x || data[1] !== y) bad++;
  }
  return bad;
}

/** Arguments of {@linkcode starve}. */
export interface StarveArgs {
  readonly lock: RwLockHandle;
  /** Words: [0] stop flag, [1] x, [2] y, [3] finite workers done, [4] hammering workers started. */
  readonly data: Words;
  /** "writer": the finite side is the writers, hammering readers; "reader": the reverse. */
  readonly finite: "writer" | "reader";
  /** Workers below this index are the finite side. */
  readonly finiteWorkers: number;
  /** Acquisitions each finite worker must complete. */
  readonly acquisitions: number;
}

/**
 * Hammering workers take their side of the lock over and over, holding it a
 * little, until the stop flag is set; finite workers wait until all of them
 * are at it, then must each complete `acquisitions` of the other side (the last one to finish sets
 * the flag). Starvation shows up as the harness timing out. Returns the
 * acquisitions made and the mismatches seen.
 */
export function starve(ctx: WorkerContext<StarveArgs>): { done: number; bad: number } {
  const lock = RwLock.attach(ctx.args.lock);
  const data = view(ctx.args.data);
  const finite = ctx.index < ctx.args.finiteWorkers;
  const asWriter = finite === (ctx.args.finite === "writer");
  let done = 0;
  let bad = 0;
  const section = () => {
    if (asWriter) {
      lock.acquireWrite();
      const next = data[1] + 1;
      data[1] = next;
      spin(20);
      data[2] = next;
      lock.releaseWrite();
    } else {
      lock.acquireRead();
      const x = data[1];
      spin(40);
      if (data[2] !== x) bad++;
      lock.releaseRead();
    }
    done++;
  };
  if (finite) {
    // Start once every hammering worker is at it.
    const hammering = ctx.workers - ctx.args.finiteWorkers;
    while (Atomics.load(data, 4) < hammering) {
      ctx.checkpoint();
      Atomics.wait(data, 4, Atomics.load(data, 4), 1);
    }
    for (let i = 0; i < ctx.args.acquisitions; i++) {
      ctx.checkpoint();
      section();
    }
    if (Atomics.add(data, 3, 1) + 1 === ctx.args.finiteWorkers) Atomics.store(data, 0, 1);
  } else {
    section();
    Atomics.add(data, 4, 1);
    while (Atomics.load(data, 0) === 0) {
      ctx.checkpoint();
      section();
    }
  }
  return { done, bad };
}

// ----------------------------------------------------------------- Condvar

/** Arguments of {@linkcode produce} and {@linkcode consume}. */
export interface QueueArgs {
  readonly mutex: MutexHandle;
  readonly notEmpty: CondvarHandle;
  readonly notFull: CondvarHandle;
  /**
   * Words: [0] head, [1] count, [2] consumed so far, [3..3+capacity) the
   * ring, then one word per item: how many times it was consumed, then a
   * gate word that {@linkcode produceOnly} waits on.
   */
  readonly data: Words;
  readonly capacity: number;
  /** Items in all; producer p makes items p, p + P, p + 2P, … below it. */
  readonly items: number;
  readonly producers: number;
  /** Use waitWhile instead of a hand-written wait loop. */
  readonly waitWhile: boolean;
  /** Workers below this index produce, the others consume. */
  readonly producerWorkers: number;
}

const HEAD = 0;
const COUNT = 1;
const CONSUMED = 2;
const RING = 3;

/** Producer side of the bounded buffer; returns the sum of what it produced. */
function produce(ctx: WorkerContext<QueueArgs>, producer: number): number {
  const { capacity, items, producers } = ctx.args;
  const mutex = Mutex.attach(ctx.args.mutex);
  const notEmpty = Condvar.attach(ctx.args.notEmpty);
  const notFull = Condvar.attach(ctx.args.notFull);
  const data = view(ctx.args.data);
  let sum = 0;
  for (let item = producer; item < items; item += producers) {
    ctx.checkpoint();
    mutex.acquire();
    if (ctx.args.waitWhile) {
      notFull.waitWhile(mutex, () => data[COUNT] === capacity);
    } else {
      while (data[COUNT] === capacity) notFull.wait(mutex);
    }
    data[RING + (data[HEAD] + data[COUNT]) % capacity] = item;
    data[COUNT]++;
    // notifyOne is enough for one item, as every waiter on notEmpty is a consumer.
    notEmpty.notifyOne();
    mutex.release();
    sum += item;
  }
  return sum;
}

/**
 * Consumer side: takes items until every item was consumed, marking each
 * item's consumption count; returns the sum of what it consumed.
 */
function consume(ctx: WorkerContext<QueueArgs>): number {
  const { capacity, items } = ctx.args;
  const mutex = Mutex.attach(ctx.args.mutex);
  const notEmpty = Condvar.attach(ctx.args.notEmpty);
  const notFull = Condvar.attach(ctx.args.notFull);
  const data = view(ctx.args.data);
  const seen = RING + capacity;
  let sum = 0;
  for (;;) {
    ctx.checkpoint();
    mutex.acquire();
    const empty = () => data[COUNT] === 0 && data[CONSUMED] < items;
    if (ctx.args.waitWhile) {
      notEmpty.waitWhile(mutex, empty);
    } else {
      while (empty()) notEmpty.wait(mutex);
    }
    if (data[CONSUMED] === items) {
      mutex.release();
      return sum;
    }
    const item = data[RING + data[HEAD]];
    data[HEAD] = (data[HEAD] + 1) % capacity;
    data[COUNT]--;
    data[CONSUMED]++;
    Atomics.add(data, seen + item, 1);
    if (data[CONSUMED] === items) notEmpty.notifyAll(); // let the other consumers out
    notFull.notifyOne();
    mutex.release();
    sum += item;
  }
}

/** Producer or consumer, by index: the body of the producer/consumer tests. */
export function produceOrConsume(ctx: WorkerContext<QueueArgs>): number {
  return ctx.index < ctx.args.producerWorkers ? produce(ctx, ctx.index) : consume(ctx);
}

/**
 * Producer only, as producer number `index`, once the gate word is set: for
 * a consumer on the main thread.
 */
export function produceOnly(ctx: WorkerContext<QueueArgs>): number {
  const data = view(ctx.args.data);
  const gate = RING + ctx.args.capacity + ctx.args.items;
  while (Atomics.load(data, gate) === 0) {
    ctx.checkpoint();
    Atomics.wait(data, gate, 0, 20);
  }
  return produce(ctx, ctx.index);
}

/** Words a {@linkcode QueueArgs} buffer needs. */
export function queueWords(capacity: number, items: number): number {
  return RING + capacity + items + 1;
}

/** Arguments of {@linkcode awaitGate}. */
export interface GateArgs {
  readonly mutex: MutexHandle;
  readonly cv: CondvarHandle;
  /** Words: [0] the gate, open when non-zero. */
  readonly data: Words;
  readonly async: boolean;
}

/** Waits (waitWhile) until the gate opens; returns the gate's value. */
export async function awaitGate(ctx: WorkerContext<GateArgs>): Promise<number> {
  const mutex = Mutex.attach(ctx.args.mutex);
  const cv = Condvar.attach(ctx.args.cv);
  const data = view(ctx.args.data);
  if (ctx.args.async) {
    await mutex.acquireAsync();
    await cv.waitWhileAsync(mutex, () => data[0] === 0);
  } else {
    mutex.acquire();
    cv.waitWhile(mutex, () => data[0] === 0);
  }
  const value = data[0];
  mutex.release();
  return value;
}

// ------------------------------------------------------- HybridLatch stress

/** Arguments of {@linkcode hybridStress}. */
export interface HybridStressArgs {
  readonly latch: HybridLatchHandle;
  /** Words: [0] readers finished, [1..1+cells) the cells, all 1 at rest. */
  readonly data: Words;
  readonly cells: number;
  /** How long each reader runs, in ms. */
  readonly durationMs: number;
  /** Read mode of reader r: `modes[r % modes.length]`. */
  readonly modes: readonly ("read" | "spin" | "unwind" | "shared")[];
}

/** What a reader of {@linkcode hybridStress} saw; the writer reports its writes. */
export interface StressResult {
  readonly accepted: number;
  readonly unwinds: number;
  readonly bad: number;
  readonly writes: number;
}

/**
 * The HybridLatch stress test. Worker 0 writes: under exclusive mode it
 * sets a random cell to 2 (maybe another too) with Atomics.store, dawdles,
 * and sets them back to 1. The others read every cell optimistically in
 * their mode and, after validation, must only ever accept a snapshot whose
 * product is 1.
 */
export function hybridStress(ctx: WorkerContext<HybridStressArgs>): StressResult {
  const latch = HybridLatch.attach(ctx.args.latch);
  const data = view(ctx.args.data);
  const { cells, durationMs, modes } = ctx.args;
  const readers = ctx.workers - 1;
  if (ctx.index === 0) {
    let writes = 0;
    while (Atomics.load(data, 0) < readers) {
      if ((writes & 63) === 0) ctx.checkpoint();
      const a = 1 + ctx.randomInt(cells);
      const b = 1 + ctx.randomInt(cells);
      const guard = latch.exclusive();
      Atomics.store(data, a, 2);
      spin(ctx.randomInt(20));
      if (ctx.random() < 0.5) Atomics.store(data, b, 2);
      spin(ctx.randomInt(20));
      Atomics.store(data, b, 1);
      Atomics.store(data, a, 1);
      guard.unlock();
      writes++;
    }
    return { accepted: 0, unwinds: 0, bad: 0, writes };
  }
  const mode = modes[(ctx.index - 1) % modes.length];
  const product = (g: { load(v: Int32Array, i: number): number }) => {
    let p = 1;
    for (let i = 1; i <= cells; i++) p *= g.load(data, i);
    return p;
  };
  let accepted = 0;
  let unwinds = 0;
  let bad = 0;
  const end = performance.now() + durationMs;
  for (let round = 0; performance.now() < end; round++) {
    if ((round & 63) === 0) ctx.checkpoint();
    let p: number;
    if (mode === "read") {
      let attempts = 0;
      p = latch.read((g) => {
        attempts++;
        return product(g);
      });
      unwinds += attempts - 1;
    } else if (mode === "spin") {
      const guard = latch.optimisticOrSpin();
      p = product(guard);
      if (!guard.isValid()) {
        unwinds++;
        continue;
      }
    } else if (mode === "unwind") {
      try {
        const guard = latch.optimisticOrUnwind();
        p = product(guard);
        guard.recheck();
      } catch (e) {
        if (!isUnwind(e)) throw e;
        unwinds++;
        continue;
      }
    } else {
      const guard = latch.optimisticOrShared();
      p = product(guard);
      if (guard instanceof SharedGuard) {
        guard.unlock();
      } else {
        try {
          guard.recheck();
        } catch (e) {
          if (!isUnwind(e)) throw e;
          unwinds++;
          continue;
        }
      }
    }
    accepted++;
    if (p !== 1) bad++;
  }
  Atomics.add(data, 0, 1);
  return { accepted, unwinds, bad, writes: 0 };
}

// -------------------------------------------------------- linearizability

/** Arguments of {@linkcode mutexRegisterRounds} and {@linkcode rwCounterRounds}. */
export interface RoundsArgs {
  readonly lock: MutexHandle | RwLockHandle;
  /** One word per round: that round's register or counter, 0 at first. */
  readonly data: Words;
  readonly rounds: number;
  readonly opsPerRound: number;
  readonly clock: HistoryClockHandle;
}

/**
 * Per round (rounds start together on the group's barrier), random reads
 * and writes of that round's register under the Mutex, recorded as a
 * history. Written values are unique per worker and round.
 */
export function mutexRegisterRounds(ctx: WorkerContext<RoundsArgs>): OpRecord[][] {
  const mutex = Mutex.attach(ctx.args.lock as MutexHandle);
  const data = view(ctx.args.data);
  const clock = HistoryClock.attach(ctx.args.clock);
  const histories: OpRecord[][] = [];
  for (let round = 0; round < ctx.args.rounds; round++) {
    ctx.barrier.wait();
    const recorder = new HistoryRecorder(ctx.index, clock);
    for (let op = 0; op < ctx.args.opsPerRound; op++) {
      if (ctx.random() < 0.5) {
        const value = (ctx.index + 1) * 1000 + op;
        recorder.record("write", [value], () => {
          using _guard = mutex.lock();
          data[round] = value;
        });
      } else {
        recorder.record("read", [], () => mutex.withLock(() => data[round]));
      }
      spin(ctx.randomInt(50));
    }
    histories.push(recorder.records);
  }
  return histories;
}

/**
 * Per round, random fetch-and-adds (plain read-modify-write under the write
 * lock) and gets (under the read lock) of that round's counter, recorded.
 */
export function rwCounterRounds(ctx: WorkerContext<RoundsArgs>): OpRecord[][] {
  const lock = RwLock.attach(ctx.args.lock as RwLockHandle);
  const data = view(ctx.args.data);
  const clock = HistoryClock.attach(ctx.args.clock);
  const histories: OpRecord[][] = [];
  for (let round = 0; round < ctx.args.rounds; round++) {
    ctx.barrier.wait();
    const recorder = new HistoryRecorder(ctx.index, clock);
    for (let op = 0; op < ctx.args.opsPerRound; op++) {
      if (ctx.random() < 0.5) {
        const delta = 1 + ctx.randomInt(5);
        recorder.record("fetchAndAdd", [delta], () => {
          using _guard = lock.write();
          const before = data[round];
          data[round] = before + delta;
          return before;
        });
      } else {
        recorder.record("get", [], () => lock.withRead(() => data[round]));
      }
      spin(ctx.randomInt(50));
    }
    histories.push(recorder.records);
  }
  return histories;
}
