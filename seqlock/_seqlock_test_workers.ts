/**
 * Worker bodies for the multi-worker tests of SeqLock and SeqCell
 * (`*_test.ts` beside this file), plus the main-thread helper
 * {@linkcode holdElsewhere} that keeps a write section open in a worker.
 *
 * Every export that takes a {@linkcode WorkerContext} runs inside a worker
 * started by the testing harness.
 *
 * @module
 */

import { type SharedHandle, type SharedHeap, TimeoutError } from "../memory/mod.ts";
import { pause } from "../latch/mod.ts";
import { spawnWorkers, type WorkerContext, type WorkerGroup } from "../testing/harness.ts";
import {
  HistoryClock,
  type HistoryClockHandle,
  HistoryRecorder,
  type OpRecord,
} from "../testing/history.ts";
import {
  SeqCell,
  type SeqCellHandle,
  type SeqCellRecord,
  SeqLock,
  type SeqLockHandle,
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

function tally(forms: Record<string, number>, form: string): void {
  forms[form] = (forms[form] ?? 0) + 1;
}

// --------------------------------------------------------- holding a write

/** How {@linkcode hold} holds the writer side. */
export type HoldKind = "seqlock-write" | "seqcell-update";

/** Arguments of {@linkcode hold}. */
export interface HoldArgs {
  readonly kind: HoldKind;
  readonly handle: SharedHandle;
  /** Int32 words: [0] the parent sets it to release, [1] set once released. */
  readonly control: SharedArrayBuffer;
}

/**
 * Opens a write section (SeqLock.writeLock, or SeqCell.update with a
 * callback that does not return yet), posts "held", and keeps it open until
 * the parent sets the release word. A stop request meanwhile kills it there,
 * inside the section.
 */
export function hold(ctx: WorkerContext<HoldArgs>): string {
  const control = new Int32Array(ctx.args.control);
  const wait = () => {
    ctx.post("held");
    while (Atomics.load(control, 0) === 0) {
      ctx.checkpoint();
      Atomics.wait(control, 0, 0, 20);
    }
  };
  if (ctx.args.kind === "seqlock-write") {
    const guard = SeqLock.attach(ctx.args.handle as SeqLockHandle).writeLock();
    wait();
    guard.unlock();
  } else {
    const cell = SeqCell.attach<{ v: "i32" }>(ctx.args.handle as SeqCellHandle);
    cell.update((current) => {
      wait();
      return { v: current.v + 1 };
    });
  }
  Atomics.store(control, 1, 1);
  Atomics.notify(control, 1);
  return "released";
}

/** A write section held open by a worker, as the main thread sees it. */
export interface Holder {
  /** Lets the worker close the section and blocks until it did (no event loop turn). */
  releaseNow(): void;
  /** Lets the worker close the section, and waits until it finished. */
  release(): Promise<void>;
  /** Stops the worker as if killed inside the section. */
  kill(): Promise<void>;
  readonly group: WorkerGroup<string>;
}

/** Starts a worker holding the writer side of `handle`; resolves once it does. */
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

// ---------------------------------------------------------- SeqLock stress

/** Arguments of {@linkcode seqLockStress}. */
export interface SeqLockStressArgs {
  readonly lock: SeqLockHandle;
  /** Words: [0] readers finished, [1..1+cells) the cells, all 1 at rest. */
  readonly data: Words;
  readonly cells: number;
  readonly durationMs: number;
  /** Read mode of reader r: `modes[r % modes.length]`. */
  readonly modes: readonly ("read" | "manual" | "try")[];
}

/** What a reader saw; the writer reports its writes. */
export interface StressResult {
  readonly accepted: number;
  readonly retries: number;
  readonly bad: number;
  readonly writes: number;
}

/**
 * The reference stress test on a SeqLock. Worker 0 writes: inside a write
 * section it sets a random cell (and maybe another) to 2 with Atomics.store,
 * dawdles, and sets them back to 1. The others read every cell and must
 * never accept a snapshot whose product is not 1.
 */
export function seqLockStress(ctx: WorkerContext<SeqLockStressArgs>): StressResult {
  const lock = SeqLock.attach(ctx.args.lock);
  const data = view(ctx.args.data);
  const { cells, durationMs, modes } = ctx.args;
  if (ctx.index === 0) {
    let writes = 0;
    while (Atomics.load(data, 0) < ctx.workers - 1) {
      if ((writes & 63) === 0) ctx.checkpoint();
      const a = 1 + ctx.randomInt(cells);
      const b = 1 + ctx.randomInt(cells);
      const twice = ctx.random() < 0.5;
      const dawdle = ctx.randomInt(20);
      lock.write(() => {
        Atomics.store(data, a, 2);
        spin(dawdle);
        if (twice) Atomics.store(data, b, 2);
        spin(dawdle);
        Atomics.store(data, b, 1);
        Atomics.store(data, a, 1);
      });
      writes++;
    }
    return { accepted: 0, retries: 0, bad: 0, writes };
  }
  const mode = modes[(ctx.index - 1) % modes.length];
  const product = () => {
    let p = 1;
    for (let i = 1; i <= cells; i++) p *= Atomics.load(data, i);
    return p;
  };
  let accepted = 0;
  let retries = 0;
  let bad = 0;
  const end = performance.now() + durationMs;
  for (let round = 0; performance.now() < end; round++) {
    if ((round & 63) === 0) ctx.checkpoint();
    let p: number | undefined;
    if (mode === "read") {
      let attempts = 0;
      p = lock.read(() => {
        attempts++;
        return product();
      });
      retries += attempts - 1;
    } else if (mode === "manual") {
      const stamp = lock.readBegin();
      p = product();
      if (lock.readRetry(stamp)) {
        retries++;
        continue;
      }
    } else {
      p = lock.tryRead(product);
      if (p === undefined) {
        retries++;
        continue;
      }
    }
    accepted++;
    if (p !== 1) bad++;
  }
  Atomics.add(data, 0, 1);
  return { accepted, retries, bad, writes: 0 };
}

// --------------------------------------------------------- SeqLock counting

/** Arguments of {@linkcode countSeqLock}. */
export interface CountArgs {
  readonly handle: SeqLockHandle;
  /** Words: [0] counter, [1] owner mark, [2] and [3] a pair for readers. */
  readonly data: Words;
  /** Write sections per worker. */
  readonly iterations: number;
}

/** What a counting worker saw. */
export interface CountResult {
  readonly violations: number;
  /** Validated reads, and torn pairs among them. */
  readonly reads: number;
  readonly torn: number;
  readonly forms: Record<string, number>;
}

/**
 * A write section's work: a plain increment of the counter with an owner
 * mark that exposes overlapping writers, and the reader-visible pair set
 * with Atomics stores, one after the other.
 */
function increment(data: Int32Array, me: number, window: number): number {
  data[1] = me;
  const value = data[0];
  Atomics.store(data, 2, value + 1);
  spin(window);
  const overlapped = data[1] !== me ? 1 : 0;
  data[0] = value + 1;
  Atomics.store(data, 3, value + 1);
  return overlapped;
}

/**
 * Plain increments inside SeqLock write sections opened in every form,
 * interleaved with reads (read, readBegin/readRetry, tryRead) that must
 * never accept a torn pair.
 */
export async function countSeqLock(ctx: WorkerContext<CountArgs>): Promise<CountResult> {
  const lock = SeqLock.attach(ctx.args.handle);
  const data = view(ctx.args.data);
  const me = ctx.index + 1;
  const forms: Record<string, number> = {};
  let violations = 0;
  let reads = 0;
  let torn = 0;
  const pair = () => [Atomics.load(data, 2), Atomics.load(data, 3)];
  const check = (seen: number[] | undefined) => {
    if (seen === undefined) return;
    reads++;
    if (seen[0] !== seen[1]) torn++;
  };
  for (let i = 0; i < ctx.args.iterations; i++) {
    if ((i & 255) === 0) ctx.checkpoint();
    const window = ctx.randomInt(8);
    const read = ctx.random();
    if (read < 0.3) {
      check(lock.read(pair));
    } else if (read < 0.45) {
      const stamp = lock.readBegin();
      const seen = pair();
      if (!lock.readRetry(stamp)) check(seen);
    } else if (read < 0.6) {
      check(lock.tryRead(pair));
    }
    const r = ctx.random();
    if (r < 0.3) {
      tally(forms, "write");
      violations += lock.write(() => increment(data, me, window));
    } else if (r < 0.5) {
      tally(forms, "writeLock");
      using _guard = lock.writeLock();
      violations += increment(data, me, window);
    } else if (r < 0.7) {
      tally(forms, "beginWrite");
      lock.beginWrite();
      violations += increment(data, me, window);
      lock.endWrite();
    } else if (r < 0.82) {
      tally(forms, "tryWriteLock");
      let guard = lock.tryWriteLock();
      for (let tries = 0; guard === undefined; tries++) {
        pause();
        guard = tries < 1000 ? lock.tryWriteLock() : lock.writeLock();
      }
      violations += increment(data, me, window);
      guard.unlock();
    } else if (r < 0.98) {
      tally(forms, "timeout");
      for (;;) {
        try {
          lock.beginWrite({ timeoutMs: ctx.random() * 2 });
          break;
        } catch (e) {
          if (!(e instanceof TimeoutError)) throw e;
          tally(forms, "timedOut");
        }
      }
      violations += increment(data, me, window);
      lock.endWrite();
    } else {
      tally(forms, "async");
      using _guard = await lock.writeLockAsync();
      violations += increment(data, me, window);
    }
  }
  return { violations, reads, torn, forms };
}

// ---------------------------------------------------------- SeqCell stress

/** Arguments of {@linkcode seqCellStress}. */
export interface CellStressArgs {
  /** A cell with fields k: "i32" and a, b, c of `type`. */
  readonly cell: SeqCellHandle;
  readonly type: "i32" | "f64";
  /** Words: [0] readers finished. */
  readonly data: Words;
  readonly durationMs: number;
}

type CellSchema = { k: "i32"; a: "i32" | "f64"; b: "i32" | "f64"; c: "i32" | "f64" };

/** The value field `a` has for version `k`: both words of an f64 change every time. */
export function cellValue(type: "i32" | "f64", k: number): number {
  return type === "i32" ? k : k * Math.PI;
}

/**
 * Worker 0 publishes k, a = b = value(k), c = -value(k) for k = 1, 2, …
 * (write, tryWrite, update or writeAsync); the others read with read,
 * readInto, tryRead and get, and check every snapshot: a === b, c === -a,
 * a === value(k), and k never goes back.
 */
export async function seqCellStress(ctx: WorkerContext<CellStressArgs>): Promise<StressResult> {
  const cell = SeqCell.attach<CellSchema>(ctx.args.cell);
  const data = view(ctx.args.data);
  const { type, durationMs } = ctx.args;
  if (ctx.index === 0) {
    let k = cell.get("k");
    while (Atomics.load(data, 0) < ctx.workers - 1) {
      if ((k & 63) === 0) ctx.checkpoint();
      k++;
      const v = cellValue(type, k);
      const r = ctx.random();
      if (r < 0.6) {
        cell.write({ k, a: v, b: v, c: -v });
      } else if (r < 0.8) {
        while (!cell.tryWrite({ k, a: v, b: v, c: -v })) pause();
      } else if (r < 0.99) {
        cell.update(() => ({ k, a: v, b: v, c: -v }));
      } else {
        await cell.writeAsync({ k, a: v, b: v, c: -v });
      }
    }
    return { accepted: 0, retries: 0, bad: 0, writes: k };
  }
  let accepted = 0;
  let retries = 0;
  let bad = 0;
  let lastK = 0;
  const target = { k: 0, a: 0, b: 0, c: 0 } as SeqCellRecord<CellSchema>;
  /** Whether `x` is the value of some version: a torn f64 is not. */
  const isValue = (x: number) =>
    x === cellValue(type, type === "i32" ? x : Math.round(x / Math.PI));
  const check = (s: SeqCellRecord<CellSchema>) => {
    accepted++;
    const v = cellValue(type, s.k);
    if (s.a !== s.b || s.c !== -s.a || s.a !== v || s.k < lastK) bad++;
    lastK = s.k;
  };
  const end = performance.now() + durationMs;
  for (let round = 0; performance.now() < end; round++) {
    if ((round & 63) === 0) ctx.checkpoint();
    const r = ctx.random();
    if (r < 0.4) {
      check(cell.read());
    } else if (r < 0.6) {
      check(cell.readInto(target));
    } else if (r < 0.8) {
      const s = cell.tryRead();
      if (s === undefined) retries++;
      else check(s);
    } else {
      // One field alone: an f64 must never come out torn.
      accepted++;
      if (!isValue(cell.get("a")) || !isValue(-cell.get("c"))) bad++;
    }
  }
  Atomics.add(data, 0, 1);
  return { accepted, retries, bad, writes: 0 };
}

// ---------------------------------------------------- SeqCell mixed updates

/** Arguments of {@linkcode seqCellCount}. */
export interface CellCountArgs {
  /** A cell with fields n: "u32", m: "i32", x: "f64". */
  readonly cell: SeqCellHandle;
  readonly iterations: number;
}

type CountSchema = { n: "u32"; m: "i32"; x: "f64" };

/**
 * Mixed updates and reads: half the operations are read-modify-writes that
 * add 1 to n, subtract 1 from m and keep x = n / 4 (update(), or a timed
 * update that retries on timeout); the rest read and check m === -n and
 * x === n / 4. Returns the updates made and the bad snapshots seen.
 */
export function seqCellCount(
  ctx: WorkerContext<CellCountArgs>,
): { updates: number; bad: number; reads: number } {
  const cell = SeqCell.attach<CountSchema>(ctx.args.cell);
  let updates = 0;
  let bad = 0;
  let reads = 0;
  const next = (s: SeqCellRecord<CountSchema>) => ({ n: s.n + 1, m: s.m - 1, x: (s.n + 1) / 4 });
  const check = (s: SeqCellRecord<CountSchema>) => {
    reads++;
    if (s.m !== -s.n || s.x !== s.n / 4) bad++;
  };
  for (let i = 0; i < ctx.args.iterations; i++) {
    if ((i & 255) === 0) ctx.checkpoint();
    const r = ctx.random();
    if (r < 0.35) {
      cell.update(next);
      updates++;
    } else if (r < 0.5) {
      for (;;) {
        try {
          cell.update(next, { timeoutMs: ctx.random() * 2 });
          break;
        } catch (e) {
          if (!(e instanceof TimeoutError)) throw e;
        }
      }
      updates++;
    } else if (r < 0.8) {
      check(cell.read());
    } else {
      const s = cell.tryRead();
      if (s !== undefined) check(s);
    }
  }
  return { updates, bad, reads };
}

// -------------------------------------------------------- linearizability

/** Arguments of {@linkcode seqCellRegisterRounds}. */
export interface CellRoundsArgs {
  /** One cell with a single field v: "i32" per round, 0 at first. */
  readonly cells: readonly SeqCellHandle[];
  readonly opsPerRound: number;
  readonly clock: HistoryClockHandle;
}

/**
 * Per round (rounds start together on the group's barrier), random writes
 * and reads of that round's cell, recorded as a register history. Reads
 * alternate between get("v"), read().v and tryRead (a failed tryRead is not
 * recorded: it returned nothing).
 */
export function seqCellRegisterRounds(ctx: WorkerContext<CellRoundsArgs>): OpRecord[][] {
  const clock = HistoryClock.attach(ctx.args.clock);
  const cells = ctx.args.cells.map((handle) => SeqCell.attach<{ v: "i32" }>(handle));
  const histories: OpRecord[][] = [];
  for (const cell of cells) {
    ctx.barrier.wait();
    const recorder = new HistoryRecorder(ctx.index, clock);
    for (let op = 0; op < ctx.args.opsPerRound; op++) {
      const r = ctx.random();
      if (r < 0.5) {
        const value = (ctx.index + 1) * 1000 + op;
        recorder.record("write", [value], () => cell.write({ v: value }));
      } else if (r < 0.7) {
        recorder.record("read", [], () => cell.get("v"));
      } else if (r < 0.9) {
        recorder.record("read", [], () => cell.read().v);
      } else {
        const id = recorder.invoke("read", []);
        const snapshot = cell.tryRead();
        if (snapshot !== undefined) {
          recorder.respond(id, snapshot.v);
        } else {
          recorder.records.pop(); // nothing was read: drop the record
        }
      }
      spin(ctx.randomInt(50));
    }
    histories.push(recorder.records);
  }
  return histories;
}
