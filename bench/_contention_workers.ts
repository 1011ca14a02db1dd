/**
 * Worker bodies of the contention benches, and the code they share with the
 * single-thread benches: the textbook futex mutex used as a baseline, and
 * the record readers and writers of the seqlock benches. Each setup export
 * runs once in every worker of a {@linkcode ContentionSuite} and returns its
 * scenarios.
 *
 * @module
 */

import { Mutex as PeerMutex } from "multithreading";
import {
  Condvar,
  type CondvarHandle,
  HybridLatch,
  type HybridLatchHandle,
  Mutex,
  type MutexHandle,
  RwLock,
  type RwLockHandle,
} from "../latch/mod.ts";
import { SeqCell, type SeqCellHandle, SeqLock, type SeqLockHandle } from "../seqlock/mod.ts";
import type { Batch, Scenarios } from "./_contention.ts";

// ---------------------------------------------------------------- baseline

/**
 * The textbook three-state futex mutex (Drepper, "Futexes Are Tricky",
 * mutex 3), as a baseline: 0 unlocked, 1 locked, 2 locked with waiters
 * possible. Lock: CAS 0 → 1; if that fails, exchange in 2 and wait while the
 * word is 2 until the exchange returns 0. Unlock: subtract 1; if the old
 * value was not 1, someone may wait: store 0 and wake one. No spinning.
 */
export class TextbookMutex {
  readonly #words: Int32Array;
  readonly #index: number;

  constructor(words: Int32Array, index: number) {
    this.#words = words;
    this.#index = index;
  }

  lock(): void {
    const words = this.#words;
    const i = this.#index;
    let c = Atomics.compareExchange(words, i, 0, 1);
    if (c === 0) return;
    if (c !== 2) c = Atomics.exchange(words, i, 2);
    while (c !== 0) {
      Atomics.wait(words, i, 2);
      c = Atomics.exchange(words, i, 2);
    }
  }

  unlock(): void {
    const words = this.#words;
    const i = this.#index;
    if (Atomics.sub(words, i, 1) !== 1) {
      Atomics.store(words, i, 0);
      Atomics.notify(words, i, 1);
    }
  }
}

/** The empty scenario of every suite: the fixed cost of a batch. */
function empty(): void {}

// ---------------------------------------------------------------- mutex counter

/** Shared state of the contended-mutex scenarios; the parent creates it. */
export interface CounterArgs {
  readonly sabre: MutexHandle;
  /** Word 0: the textbook mutex. */
  readonly textbook: SharedArrayBuffer;
  /** The multithreading Mutex's own lock word (its constructor takes the buffer). */
  readonly peer: SharedArrayBuffer;
  /** One plain counter per scenario, each on its own 64-byte line. */
  readonly counters: SharedArrayBuffer;
}

/** Index in the counters buffer of each scenario's counter. */
export const COUNTER = { sabre: 0, textbook: 16, peer: 32 } as const;
/** Bytes of the counters buffer. */
export const COUNTER_BYTES = 48 * 4;

/**
 * Contended lock; increment a plain counter; unlock — `batch.ops` times in
 * every worker. The parent resets and checks the counters.
 */
export function counterScenarios(args: CounterArgs): Scenarios {
  const sabre = Mutex.attach(args.sabre);
  const textbook = new TextbookMutex(new Int32Array(args.textbook), 0);
  const peer = new PeerMutex(undefined, args.peer);
  const counters = new Int32Array(args.counters);
  return {
    empty,
    "sabre Mutex acquire/release": (batch: Batch) => {
      for (let i = batch.ops; i > 0; i--) {
        sabre.acquire();
        counters[COUNTER.sabre]++;
        sabre.release();
      }
    },
    "textbook futex mutex": (batch: Batch) => {
      for (let i = batch.ops; i > 0; i--) {
        textbook.lock();
        counters[COUNTER.textbook]++;
        textbook.unlock();
      }
    },
    "multithreading Mutex": (batch: Batch) => {
      for (let i = batch.ops; i > 0; i--) {
        const guard = peer.blockingLock();
        counters[COUNTER.peer]++;
        guard.dispose();
      }
    },
  };
}

// ---------------------------------------------------------------- records

/**
 * A record of four Int32 fields guarded by each primitive. Writers store
 * `(v, v + 1, v + 2, v + 3)`, so a reader can tell a torn read: the fields
 * must differ by exactly 1, 2 and 3 from the first.
 */
export interface RecordObjects {
  readonly seqLock: SeqLock;
  readonly seqLockData: Int32Array;
  readonly cell: SeqCell<RecordSchema>;
  readonly hybrid: HybridLatch;
  readonly hybridData: Int32Array;
  readonly rwLock: RwLock;
  readonly rwLockData: Int32Array;
  readonly mutex: Mutex;
  readonly mutexData: Int32Array;
}

/** The record's fields, as a SeqCell schema. */
export type RecordSchema = { a: "i32"; b: "i32"; c: "i32"; d: "i32" };
const RECORD_SCHEMA: RecordSchema = { a: "i32", b: "i32", c: "i32", d: "i32" };

/** What crosses to the workers: handles, and one data buffer per primitive. */
export interface RecordArgs {
  readonly seqLock: SeqLockHandle;
  readonly cell: SeqCellHandle;
  readonly hybrid: HybridLatchHandle;
  readonly rwLock: RwLockHandle;
  readonly mutex: MutexHandle;
  /** Four words per primitive, 64 bytes apart: SeqLock, HybridLatch, RwLock, Mutex. */
  readonly data: SharedArrayBuffer;
}

const DATA_LINE = 16;

function dataViews(data: SharedArrayBuffer): Int32Array[] {
  return [0, 1, 2, 3].map((line) => new Int32Array(data, line * DATA_LINE * 4, 4));
}

/** Creates the record primitives (in the parent), holding `(0, 1, 2, 3)`. */
export function createRecords(): { objects: RecordObjects; args: RecordArgs } {
  const data = new SharedArrayBuffer(4 * DATA_LINE * 4);
  const [seqLockData, hybridData, rwLockData, mutexData] = dataViews(data);
  const objects: RecordObjects = {
    seqLock: SeqLock.create(),
    seqLockData,
    cell: SeqCell.create(RECORD_SCHEMA),
    hybrid: HybridLatch.create(),
    hybridData,
    rwLock: RwLock.create(),
    rwLockData,
    mutex: Mutex.create(),
    mutexData,
  };
  const writers = recordWriters(objects);
  for (const write of Object.values(writers)) write(0);
  return {
    objects,
    args: {
      seqLock: objects.seqLock.handle,
      cell: objects.cell.handle,
      hybrid: objects.hybrid.handle,
      rwLock: objects.rwLock.handle,
      mutex: objects.mutex.handle,
      data,
    },
  };
}

/** Attaches the record primitives in a worker. */
export function attachRecords(args: RecordArgs): RecordObjects {
  const [seqLockData, hybridData, rwLockData, mutexData] = dataViews(args.data);
  return {
    seqLock: SeqLock.attach(args.seqLock),
    seqLockData,
    cell: SeqCell.attach<RecordSchema>(args.cell),
    hybrid: HybridLatch.attach(args.hybrid),
    hybridData,
    rwLock: RwLock.attach(args.rwLock),
    rwLockData,
    mutex: Mutex.attach(args.mutex),
    mutexData,
  };
}

/** The ways to read the record, in table order; the first is the baseline. */
export const RECORD_READS = [
  "RwLock acquireRead, plain reads, releaseRead",
  "SeqLock.read(fn), Atomics loads",
  "SeqLock readBegin/readRetry, Atomics loads",
  "SeqCell.readInto(target)",
  "SeqCell.read()",
  "HybridLatch.read(fn), Atomics loads",
  "HybridLatch optimisticOrSpin, Atomics loads, recheck",
  "Mutex acquire, plain reads, release",
] as const;

/** One of {@linkcode RECORD_READS}. */
export type RecordRead = typeof RECORD_READS[number];

/**
 * Record readers: each runs `ops` consistent reads of the record and
 * returns how many of them were torn (always 0 unless a primitive is
 * broken).
 */
export function recordReaders(o: RecordObjects): Record<RecordRead, (ops: number) => number> {
  // The read callbacks leave the fields here; the caller checks them.
  let a = 0, b = 0, c = 0, d = 0;
  const { seqLock, seqLockData: sd, cell, hybrid, hybridData: hd } = o;
  const { rwLock, rwLockData: rd, mutex, mutexData: md } = o;
  const readSeqLock = () => {
    a = Atomics.load(sd, 0);
    b = Atomics.load(sd, 1);
    c = Atomics.load(sd, 2);
    d = Atomics.load(sd, 3);
  };
  const readHybrid = () => {
    a = Atomics.load(hd, 0);
    b = Atomics.load(hd, 1);
    c = Atomics.load(hd, 2);
    d = Atomics.load(hd, 3);
  };
  const target = { a: 0, b: 0, c: 0, d: 0 };
  return {
    "RwLock acquireRead, plain reads, releaseRead": (ops) => {
      let torn = 0;
      for (let i = 0; i < ops; i++) {
        rwLock.acquireRead();
        a = rd[0];
        b = rd[1];
        c = rd[2];
        d = rd[3];
        rwLock.releaseRead();
        if (b - a !== 1 || c - a !== 2 || d - a !== 3) torn++;
      }
      return torn;
    },
    "SeqLock.read(fn), Atomics loads": (ops) => {
      let torn = 0;
      for (let i = 0; i < ops; i++) {
        seqLock.read(readSeqLock);
        if (b - a !== 1 || c - a !== 2 || d - a !== 3) torn++;
      }
      return torn;
    },
    "SeqLock readBegin/readRetry, Atomics loads": (ops) => {
      let torn = 0;
      for (let i = 0; i < ops; i++) {
        let a, b, c, d;
        do {
          const stamp = seqLock.readBegin();
          a = Atomics.load(sd, 0);
          b = Atomics.load(sd, 1);
          c = Atomics.load(sd, 2);
          d = Atomics.load(sd, 3);
          if (!seqLock.readRetry(stamp)) break;
        } while (true);
        if (b - a !== 1 || c - a !== 2 || d - a !== 3) torn++;
      }
      return torn;
    },
    "SeqCell.readInto(target)": (ops) => {
      let torn = 0;
      for (let i = 0; i < ops; i++) {
        const r = cell.readInto(target);
        if (r.b - r.a !== 1 || r.c - r.a !== 2 || r.d - r.a !== 3) torn++;
      }
      return torn;
    },
    "SeqCell.read()": (ops) => {
      let torn = 0;
      for (let i = 0; i < ops; i++) {
        const r = cell.read();
        if (r.b - r.a !== 1 || r.c - r.a !== 2 || r.d - r.a !== 3) torn++;
      }
      return torn;
    },
    "HybridLatch.read(fn), Atomics loads": (ops) => {
      let torn = 0;
      for (let i = 0; i < ops; i++) {
        hybrid.read(readHybrid);
        if (b - a !== 1 || c - a !== 2 || d - a !== 3) torn++;
      }
      return torn;
    },
    "HybridLatch optimisticOrSpin, Atomics loads, recheck": (ops) => {
      let torn = 0;
      for (let i = 0; i < ops; i++) {
        for (;;) {
          const guard = hybrid.optimisticOrSpin();
          a = Atomics.load(hd, 0);
          b = Atomics.load(hd, 1);
          c = Atomics.load(hd, 2);
          d = Atomics.load(hd, 3);
          if (guard.isValid()) break;
        }
        if (b - a !== 1 || c - a !== 2 || d - a !== 3) torn++;
      }
      return torn;
    },
    "Mutex acquire, plain reads, release": (ops) => {
      let torn = 0;
      for (let i = 0; i < ops; i++) {
        mutex.acquire();
        a = md[0];
        b = md[1];
        c = md[2];
        d = md[3];
        mutex.release();
        if (b - a !== 1 || c - a !== 2 || d - a !== 3) torn++;
      }
      return torn;
    },
  };
}

/** Record writers: each stores `(v, v + 1, v + 2, v + 3)` the way its primitive requires. */
export function recordWriters(o: RecordObjects): Record<RecordRead, (v: number) => void> {
  const { seqLock, seqLockData: sd, cell, hybrid, hybridData: hd } = o;
  const { rwLock, rwLockData: rd, mutex, mutexData: md } = o;
  const values = { a: 0, b: 0, c: 0, d: 0 };
  const seqLockWrite = (v: number) => {
    seqLock.beginWrite();
    Atomics.store(sd, 0, v);
    Atomics.store(sd, 1, v + 1);
    Atomics.store(sd, 2, v + 2);
    Atomics.store(sd, 3, v + 3);
    seqLock.endWrite();
  };
  const seqCellWrite = (v: number) => {
    values.a = v;
    values.b = v + 1;
    values.c = v + 2;
    values.d = v + 3;
    cell.write(values);
  };
  return {
    "RwLock acquireRead, plain reads, releaseRead": (v) => {
      rwLock.acquireWrite();
      rd[0] = v;
      rd[1] = v + 1;
      rd[2] = v + 2;
      rd[3] = v + 3;
      rwLock.releaseWrite();
    },
    "SeqLock.read(fn), Atomics loads": seqLockWrite,
    "SeqLock readBegin/readRetry, Atomics loads": seqLockWrite,
    "SeqCell.readInto(target)": seqCellWrite,
    "SeqCell.read()": seqCellWrite,
    "HybridLatch.read(fn), Atomics loads": (v) => writeHybrid(hybrid, hd, v),
    "HybridLatch optimisticOrSpin, Atomics loads, recheck": (v) => writeHybrid(hybrid, hd, v),
    "Mutex acquire, plain reads, release": (v) => {
      mutex.acquire();
      md[0] = v;
      md[1] = v + 1;
      md[2] = v + 2;
      md[3] = v + 3;
      mutex.release();
    },
  };
}

function writeHybrid(hybrid: HybridLatch, data: Int32Array, v: number): void {
  const guard = hybrid.exclusive();
  Atomics.store(data, 0, v);
  Atomics.store(data, 1, v + 1);
  Atomics.store(data, 2, v + 2);
  Atomics.store(data, 3, v + 3);
  guard.unlock();
}

/** Milliseconds between two writes of the slow writer: 100 Hz. */
export const SLOW_WRITE_INTERVAL_MS = 10;

/**
 * Scenario names of the record suite: `"<read> · slow writer"` (100 Hz) and
 * `"<read> · fast writer"` (as fast as it can), for each read of
 * {@linkcode RECORD_READS}.
 */
export function recordScenario(read: RecordRead, writer: "slow" | "fast"): string {
  return `${read} · ${writer} writer`;
}

/**
 * The record suite: measured workers read the record `batch.ops` times;
 * the background worker writes it, at 100 Hz or flat out, until the batch
 * ends. The slow writer keeps its schedule across batches, so it writes 100
 * times per second of wall time whatever the batch length.
 */
export function recordScenarios(args: RecordArgs): Scenarios {
  const objects = attachRecords(args);
  const readers = recordReaders(objects);
  const writers = recordWriters(objects);
  let value = 0;
  let nextWrite = 0;
  const table: Record<string, (batch: Batch) => void> = { empty };
  for (const read of RECORD_READS) {
    const reader = readers[read];
    const writer = writers[read];
    const check = (batch: Batch) => {
      const torn = reader(batch.ops);
      if (torn !== 0) {
        throw new Error(`${read}: ${torn} of ${batch.ops} reads were torn`);
      }
    };
    table[recordScenario(read, "slow")] = (batch) => {
      if (batch.measured) return check(batch);
      while (!batch.ended()) {
        const now = performance.now();
        if (now >= nextWrite) {
          writer(value = (value + 4) & 0x3fffffff);
          // Keep the period; after a gap between batches, start afresh (no burst).
          nextWrite += SLOW_WRITE_INTERVAL_MS;
          if (nextWrite <= now) nextWrite = now + SLOW_WRITE_INTERVAL_MS;
        }
        batch.sleep(nextWrite - performance.now());
      }
    };
    table[recordScenario(read, "fast")] = (batch) => {
      if (batch.measured) return check(batch);
      while (!batch.ended()) writer(value = (value + 4) & 0x3fffffff);
    };
  }
  return table;
}

// ---------------------------------------------------------------- idle waiters

/** Shared state of the idle-waiter scenarios (`cpu_idle_waiters.ts`). */
export interface WaiterArgs {
  readonly mutex: MutexHandle;
  readonly rwLock: RwLockHandle;
  readonly condvar: CondvarHandle;
  /** The mutex the condvar waits with. */
  readonly condvarMutex: MutexHandle;
  readonly seqLock: SeqLockHandle;
  readonly hybrid: HybridLatchHandle;
  /** The multithreading Mutex's lock word. */
  readonly peer: SharedArrayBuffer;
  /** Words, each on its own line: see {@linkcode WAITER_WORD}. */
  readonly words: SharedArrayBuffer;
}

/** Word indices in `WaiterArgs.words`. */
export const WAITER_WORD = {
  /** Waiters about to block in this batch; the parent waits for all of them. */
  arrived: 0,
  /** The condvar's condition: waiters wait while it is 0. */
  ready: 16,
  /** The naive spin lock: 0 free, 1 held. */
  spin: 32,
} as const;
/** Bytes of `WaiterArgs.words`. */
export const WAITER_WORDS_BYTES = 48 * 4;

/** The ways to wait for something the main thread holds, by name, in table order. */
export const WAITS = [
  "sabre Mutex.acquire()",
  "sabre RwLock.acquireWrite() behind a writer",
  "sabre RwLock.acquireRead() behind a writer",
  "sabre Condvar.waitWhile()",
  "sabre SeqLock.read(fn) behind a writer",
  "sabre SeqLock.beginWrite() behind a writer",
  "sabre HybridLatch.read(fn) behind an exclusive holder",
  "multithreading Mutex.blockingLock()",
  "naive spin lock (contrast)",
] as const;

/** One of {@linkcode WAITS}. */
export type Wait = typeof WAITS[number];

/**
 * The idle-waiter suite: in each batch every worker counts itself in
 * `arrived`, then blocks once on what the main thread holds, and releases
 * it again as soon as it gets it.
 */
export function waiterScenarios(args: WaiterArgs): Scenarios {
  const mutex = Mutex.attach(args.mutex);
  const rwLock = RwLock.attach(args.rwLock);
  const condvar = Condvar.attach(args.condvar);
  const condvarMutex = Mutex.attach(args.condvarMutex);
  const seqLock = SeqLock.attach(args.seqLock);
  const hybrid = HybridLatch.attach(args.hybrid);
  const peer = new PeerMutex(undefined, args.peer);
  const words = new Int32Array(args.words);
  const arrive = () => void Atomics.add(words, WAITER_WORD.arrived, 1);
  const notReady = () => Atomics.load(words, WAITER_WORD.ready) === 0;
  const nothing = () => 0;
  const table: Record<Wait, () => void> = {
    "sabre Mutex.acquire()": () => {
      arrive();
      mutex.acquire();
      mutex.release();
    },
    "sabre RwLock.acquireWrite() behind a writer": () => {
      arrive();
      rwLock.acquireWrite();
      rwLock.releaseWrite();
    },
    "sabre RwLock.acquireRead() behind a writer": () => {
      arrive();
      rwLock.acquireRead();
      rwLock.releaseRead();
    },
    "sabre Condvar.waitWhile()": () => {
      condvarMutex.acquire();
      arrive();
      condvar.waitWhile(condvarMutex, notReady);
      condvarMutex.release();
    },
    "sabre SeqLock.read(fn) behind a writer": () => {
      arrive();
      seqLock.read(nothing);
    },
    "sabre SeqLock.beginWrite() behind a writer": () => {
      arrive();
      seqLock.beginWrite();
      seqLock.endWrite();
    },
    "sabre HybridLatch.read(fn) behind an exclusive holder": () => {
      arrive();
      hybrid.read(nothing);
    },
    "multithreading Mutex.blockingLock()": () => {
      arrive();
      peer.blockingLock().dispose();
    },
    "naive spin lock (contrast)": () => {
      arrive();
      while (Atomics.compareExchange(words, WAITER_WORD.spin, 0, 1) !== 0) {
        // spin
      }
      Atomics.store(words, WAITER_WORD.spin, 0);
    },
  };
  return { empty, ...table };
}
