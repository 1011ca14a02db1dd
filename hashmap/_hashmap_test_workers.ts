/**
 * Worker bodies for the multi-worker HashMap tests (hashmap_workers_test.ts).
 * Each export runs inside a worker started by the testing harness; a worker
 * that sees something wrong throws, which fails the test with its seed.
 *
 * @module
 */

import { HashMap, type HashMapHandle } from "./mod.ts";
import { faultInjection, HeapExhaustedError, SharedHeap } from "../memory/mod.ts";
import { Mutex, type MutexHandle } from "../latch/mod.ts";
import type { WorkerContext } from "../testing/harness.ts";
import { installRetireAudit, type RetireAudit } from "../testing/retire_audit.ts";
import {
  HistoryClock,
  type HistoryClockHandle,
  HistoryRecorder,
  type OpRecord,
} from "../testing/history.ts";
import { epochWordAt, heapKernel } from "../memory/_heap_hooks.ts";

function heapOf(ctx: WorkerContext<unknown>): SharedHeap {
  if (ctx.heap === undefined) throw new Error("this worker needs a heap");
  return ctx.heap;
}

/** Waits until word `at` of `flags` reaches `value`, staying stoppable. */
function awaitWord(ctx: WorkerContext<unknown>, flags: Int32Array, at: number, value: number) {
  while (Atomics.load(flags, at) < value) {
    ctx.checkpoint();
    Atomics.wait(flags, at, Atomics.load(flags, at), 20);
  }
}

// ---------------------------------------------------------------------------
// Stale views: a worker whose views of the heap predate its growth

export interface StaleViewArgs {
  /** Int32 words: [0] this worker is ready, [1] go. */
  readonly flags: SharedArrayBuffer;
  /** What to do once told to go. */
  readonly action: "delete-absent" | "read-write";
  /** For "read-write": keys 0..n-1 hold value ~k. */
  readonly n: number;
}

/**
 * Signals that it is running (its views now cover the heap as it is), waits
 * for the go, then finds the map under the heap root "map" and uses it.
 * Returns how many bytes its views covered just before, so the test can
 * tell that they really were stale.
 */
export function afterGrowth(ctx: WorkerContext<StaleViewArgs>): number {
  const heap = heapOf(ctx);
  const flags = new Int32Array(ctx.args.flags);
  Atomics.store(flags, 0, 1);
  Atomics.notify(flags, 0);
  awaitWord(ctx, flags, 1, 1);
  const mapped = heap.mappedBytes;
  const map = HashMap.attach<number, number>(heap.root("map") as HashMapHandle);
  if (ctx.args.action === "delete-absent") {
    if (map.delete(-1)) throw new Error("deleted a key that was never set");
    return mapped;
  }
  const { n } = ctx.args;
  for (let k = 0; k < n; k++) {
    const got = map.get(k);
    if (got !== ~k) throw new Error(`get(${k}) returned ${got}, expected ${~k}`);
  }
  for (let k = 0; k < n; k++) map.set(k, k);
  for (let k = n; k < 2 * n; k++) map.set(k, k);
  for (let k = 0; k < 2 * n; k++) {
    if (map.get(k) !== k) throw new Error(`get(${k}) after writing returned ${map.get(k)}`);
  }
  return mapped;
}

// ---------------------------------------------------------------------------
// Linearizability

export interface LinearizableArgs {
  /** One fresh map per round, all with i32 values (string values with `longValues`). */
  readonly maps: readonly HashMapHandle[];
  /**
   * String values of over 64 bytes (longValueOf), which deletes shed, in
   * place of i32 values; `add` is then not among the operations.
   */
  readonly longValues?: boolean;
  readonly clock: HistoryClockHandle;
  readonly opsPerRound: number;
  /** Tracked keys per round. */
  readonly keys: number;
  /** Whether the maps have string keys (else i32). */
  readonly stringKeys: boolean;
  /**
   * Untracked keys each worker inserts per round, in bursts between its
   * tracked operations, so that tables grow and migrate while tracked
   * operations run. 0 for none.
   */
  readonly noise: number;
}

/**
 * Per round (rounds start together on the group's barrier), random get, set
 * (swap, so that the previous value is known), delete, take (the model's
 * remove), deleteIf, getOrInsert, getOrInsertComputed (as getOrInsert),
 * compareAndSet and add on a few keys of that round's map, recorded on the
 * shared clock. Values written are unique per worker and operation.
 */
/** A string value of over 64 bytes for `v`, as linearizableRounds writes with `longValues`. */
export function longValueOf(v: number): string {
  return `${v}`.padEnd(100, "#");
}

export function linearizableRounds(ctx: WorkerContext<LinearizableArgs>): OpRecord[][] {
  const { maps, opsPerRound, keys, stringKeys, noise } = ctx.args;
  const valueOf = ctx.args.longValues ? longValueOf : (v: number) => v;
  const clock = HistoryClock.attach(ctx.args.clock);
  const histories: OpRecord[][] = [];
  const keyOf = (i: number): unknown => stringKeys ? `key ${i}` : i + 1;
  const noiseKey = (round: number, j: number): unknown =>
    stringKeys ? `noise ${ctx.index}.${round}.${j}` : 1_000_000 * (ctx.index + 1) + j;
  for (let round = 0; round < maps.length; round++) {
    const map = HashMap.attach<unknown, unknown>(maps[round]);
    const recorder = new HistoryRecorder(ctx.index, clock);
    const lastSeen = new Map<unknown, unknown>();
    let inserted = 0;
    let deleted = 0;
    ctx.barrier.wait();
    for (let op = 0; op < opsPerRound; op++) {
      if (noise > 0 && ctx.random() < 0.6) {
        const burst = 1 + ctx.randomInt(Math.ceil((2 * noise) / opsPerRound));
        for (let j = 0; j < burst; j++) map.set(noiseKey(round, inserted++), valueOf(j));
        if (ctx.random() < 0.3) {
          const gone = Math.min(inserted - deleted, 1 + ctx.randomInt(burst));
          for (let j = 0; j < gone; j++) map.delete(noiseKey(round, deleted++));
        }
      }
      const k = keyOf(ctx.randomInt(keys));
      const value = valueOf((ctx.index + 1) * 1000 + op);
      const r = ctx.random();
      if (r < 0.22) {
        lastSeen.set(k, recorder.record("get", [k], () => map.get(k)));
      } else if (r < 0.42) {
        recorder.record("set", [k, value], () => map.swap(k, value));
        lastSeen.set(k, value);
      } else if (r < 0.45) {
        recorder.record("delete", [k], () => map.delete(k));
        lastSeen.set(k, undefined);
      } else if (r < 0.49) {
        recorder.record("remove", [k], () => map.take(k));
        lastSeen.set(k, undefined);
      } else if (r < 0.52) {
        // The value last seen, or one that no worker wrote.
        const expected = lastSeen.get(k) ?? valueOf(1000 + op);
        if (recorder.record("deleteIf", [k, expected], () => map.deleteIf(k, expected))) {
          lastSeen.set(k, undefined);
        }
      } else if (r < 0.58) {
        lastSeen.set(
          k,
          recorder.record("getOrInsert", [k, value], () => map.getOrInsert(k, value)),
        );
      } else if (r < 0.62) {
        lastSeen.set(
          k,
          recorder.record(
            "getOrInsert",
            [k, value],
            () => map.getOrInsertComputed(k, () => value),
          ),
        );
      } else if (r < 0.85) {
        const pick = ctx.random();
        const expected = pick < 0.6 ? lastSeen.get(k) : pick < 0.8 ? undefined : valueOf(1000 + op);
        const done = recorder.record(
          "compareAndSet",
          [k, expected, value],
          () => map.compareAndSet(k, expected, value),
        );
        if (done) lastSeen.set(k, value);
      } else if (!ctx.args.longValues) {
        const delta = 1 + ctx.randomInt(3);
        lastSeen.set(k, recorder.record("add", [k, delta], () => map.add(k, delta as never)));
      } else {
        lastSeen.set(k, recorder.record("get", [k], () => map.get(k)));
      }
    }
    histories.push(recorder.records);
  }
  return histories;
}

// ---------------------------------------------------------------------------
// Counters under resizing

export interface CountersArgs {
  readonly map: HashMapHandle;
  /** Workers 0..writers-1 write; the others read. */
  readonly writers: number;
  /** Shared counter keys 0..counters-1. */
  readonly counters: number;
  /** Steps per writer. */
  readonly steps: number;
  /** Length of each writer's chain of keys, incremented in order every step. */
  readonly chain: number;
  /** Int32 words: [0] writers done. */
  readonly flags: SharedArrayBuffer;
}

export interface WriterReport {
  /** Increments of each shared counter by this writer. */
  readonly increments: number[];
}

export interface ReaderReport {
  /** Complete passes over every counter and chain. */
  readonly passes: number;
  /** Passes during which the table was replaced. */
  readonly passesAcrossResize: number;
}

const CHAIN_BASE = 10_000_000;

/** The key of link `j` of writer `w`'s chain. */
export function chainKey(w: number, chain: number, j: number): number {
  return CHAIN_BASE + w * chain + j;
}

/** Increments `key` by one, by one of several read-modify-write forms. */
function increment(map: HashMap<number, number>, key: number, how: number): void {
  switch (how % 4) {
    case 0:
      map.add(key, 1);
      return;
    case 1:
      map.update(key, (v) => (v ?? 0) + 1);
      return;
    case 2:
      for (;;) {
        const current = map.get(key);
        if (map.compareAndSet(key, current, (current ?? 0) + 1)) return;
      }
    default: {
      let current = map.getOrInsert(key, 0);
      while (!map.compareAndSet(key, current, current + 1)) current = map.get(key) ?? 0;
    }
  }
}

/**
 * Writers increment counters (shared ones at random, and their own chain of
 * keys in order, every step) and churn keys of their own so that the table
 * grows, rehashes and shrinks all along (and the first reader finishes
 * resizes between its passes). Readers check, pass after pass,
 * that no counter ever goes down and that each chain read backwards never
 * goes up: link j is incremented before link j+1, so a reader that saw
 * link j+1 at n cannot see link j below n afterwards.
 */
export function counters(ctx: WorkerContext<CountersArgs>): WriterReport | ReaderReport {
  const { writers, counters: n, steps, chain } = ctx.args;
  const map = HashMap.attach<number, number>(ctx.args.map);
  const flags = new Int32Array(ctx.args.flags);
  if (ctx.index < writers) {
    const increments = new Array<number>(n).fill(0);
    const churnBase = 20_000_000 + ctx.index * 1_000_000;
    let churned = 0;
    let oldest = 0;
    for (let step = 0; step < steps; step++) {
      for (let j = 0; j < chain; j++) increment(map, chainKey(ctx.index, chain, j), step + j);
      for (let i = 0; i < 4; i++) {
        const k = ctx.randomInt(n);
        increment(map, k, ctx.randomInt(4));
        increments[k]++;
      }
      // Churn: bursts of new keys, then most of them go again.
      if (ctx.random() < 0.3) { for (let i = 0; i < 24; i++) map.set(churnBase + churned++, i); }
      while (churned - oldest > 400) map.delete(churnBase + oldest++);
      if (step % 200 === 199) { while (oldest < churned) map.delete(churnBase + oldest++); }
    }
    while (oldest < churned) map.delete(churnBase + oldest++);
    Atomics.add(flags, 0, 1);
    Atomics.notify(flags, 0);
    return { increments };
  }
  const last = new Int32Array(n);
  const lastChain = new Int32Array(writers * chain);
  let passes = 0;
  let passesAcrossResize = 0;
  while (Atomics.load(flags, 0) < writers) {
    ctx.checkpoint();
    const capacity = map.capacity;
    for (let k = 0; k < n; k++) {
      const v = map.get(k) ?? 0;
      if (v < last[k]) throw new Error(`counter ${k} went down from ${last[k]} to ${v}`);
      last[k] = v;
    }
    for (let w = 0; w < writers; w++) {
      let later = 0;
      for (let j = chain - 1; j >= 0; j--) {
        const v = map.get(chainKey(w, chain, j)) ?? 0;
        if (v < later) {
          throw new Error(
            `writer ${w}'s chain link ${j} reads ${v} after link ${j + 1} read ${later}`,
          );
        }
        if (v < lastChain[w * chain + j]) {
          throw new Error(`writer ${w}'s chain link ${j} went down to ${v}`);
        }
        lastChain[w * chain + j] = v;
        later = v;
      }
    }
    passes++;
    if (map.capacity !== capacity) passesAcrossResize++;
    // The first reader also finishes resizes beside the writers that help
    // with them (its reads above must hold all the same).
    if (ctx.index === writers) map.finishResize();
  }
  return { passes, passesAcrossResize };
}

// ---------------------------------------------------------------------------
// String values read while they are replaced

export interface ReplacedValuesArgs {
  readonly map: HashMapHandle;
  /** Workers 0..writers-1 write; the others read. */
  readonly writers: number;
  /** Keys of each writer. */
  readonly keysPerWriter: number;
  readonly steps: number;
  /** Word 0: writers finished. */
  readonly flags: SharedArrayBuffer;
}

/** Key j of writer w: ASCII, so `get` and `has` look it up in the kernel. */
export function replacedKey(w: number, j: number): string {
  return `key ${w}.${j}`;
}

/** The value of `key` at `version`: names its key, and its length varies. */
export function replacedValue(key: string, version: number): string {
  return `${key}=${version};`.padEnd(12 + (version % 41), "#");
}

/**
 * Writers replace the string values of their own keys with ever newer
 * versions, and churn keys of their own so that tables grow and shrink;
 * replaced entries are freed and their blocks reused at once. Readers
 * check that every value they read is whole and belongs to its key, and
 * that no key's version goes back. A value read from a freed entry would
 * show another key's bytes or a torn length.
 */
export function readReplacedValues(ctx: WorkerContext<ReplacedValuesArgs>): number {
  const { writers, keysPerWriter, steps } = ctx.args;
  const map = HashMap.attach<string, string>(ctx.args.map);
  const flags = new Int32Array(ctx.args.flags);
  if (ctx.index < writers) {
    const versions = new Int32Array(keysPerWriter);
    replaceAndChurn(ctx, map, (n) => `churn ${ctx.index}.${n}`, "x", () => {
      const j = ctx.randomInt(keysPerWriter);
      const key = replacedKey(ctx.index, j);
      map.set(key, replacedValue(key, ++versions[j]));
    });
    return steps;
  }
  return readReplaced(ctx, flags, replacedKey, (key) => {
    const value = map.get(key);
    if (value === undefined) {
      if (map.has(key) && map.get(key) === undefined) throw new Error(`${key}: has but no get`);
      return 0;
    }
    const version = Number(value.slice(key.length + 1, value.indexOf(";")));
    if (!value.startsWith(`${key}=`) || value !== replacedValue(key, version)) {
      throw new Error(`${key} read ${JSON.stringify(value)}`);
    }
    if (!map.has(key)) throw new Error(`${key}: get but no has`);
    return version;
  });
}

/**
 * The readers' loop of the replaced-values tests: until every writer has
 * counted itself done in flag word 0, reads key `j` of writer `w`, both at
 * random, through `versionOf`, which throws on a bad value and answers its
 * version (0: absent). A key once seen must not vanish, and its version
 * must never go back. Returns how many reads it made.
 */
function readReplaced<Key>(
  ctx: WorkerContext<{ readonly writers: number; readonly keysPerWriter: number }>,
  flags: Int32Array,
  keyOf: (w: number, j: number) => Key,
  versionOf: (key: Key, j: number) => number,
): number {
  const { writers, keysPerWriter } = ctx.args;
  const last = new Int32Array(writers * keysPerWriter);
  let reads = 0;
  while (Atomics.load(flags, 0) < writers) {
    ctx.checkpoint();
    const w = ctx.randomInt(writers);
    const j = ctx.randomInt(keysPerWriter);
    const key = keyOf(w, j);
    const version = versionOf(key, j);
    reads++;
    const at = w * keysPerWriter + j;
    if (version === 0) {
      if (last[at] !== 0) throw new Error(`${key} vanished`);
      continue;
    }
    if (version < last[at]) throw new Error(`${key} went back from ${last[at]} to ${version}`);
    last[at] = version;
  }
  return reads;
}

/**
 * The writers' loop of the replaced-values tests: `steps` times, replaces a
 * value of its own (`replace`), and now and then adds 64 keys named by
 * `churnKey`, deleting the oldest past 600 (and all at the end), so that
 * the map's tables grow and shrink. Then counts itself done in flag word 0.
 */
function replaceAndChurn<K, V>(
  ctx: WorkerContext<ReplacedValuesArgs>,
  map: HashMap<K, V>,
  churnKey: (n: number) => K,
  churnValue: V,
  replace: () => void,
): void {
  let churned = 0;
  let oldest = 0;
  for (let step = 0; step < ctx.args.steps; step++) {
    replace();
    if (ctx.random() < 0.05) {
      for (let i = 0; i < 64; i++) map.set(churnKey(churned++), churnValue);
    }
    while (churned - oldest > 600 || (step % 997 === 0 && oldest < churned)) {
      map.delete(churnKey(oldest++));
    }
  }
  while (oldest < churned) map.delete(churnKey(oldest++));
  Atomics.add(new Int32Array(ctx.args.flags), 0, 1);
}

/** ReplacedValuesArgs for readReplacedNumbers: a map of i32 or string keys to i32 values. */
export interface ReplacedNumbersArgs extends ReplacedValuesArgs {
  readonly stringKeys: boolean;
}

/** Key j of writer w for readReplacedNumbers: an ASCII string or an i32. */
export function replacedNumberKey(w: number, j: number, stringKeys: boolean): string | number {
  return stringKeys ? replacedKey(w, j) : w * 100_003 + j * 7;
}

/** Keys per writer at most, so that a value's low bits name its key. */
const REPLACED_KEY_BITS = 10;

/** readReplacedNumbers' value for key index j at `version`. */
function replacedNumber(version: number, j: number): number {
  return version * (1 << REPLACED_KEY_BITS) + j;
}

/** The key index that a readReplacedNumbers value names. */
export function replacedKeyIndex(value: number): number {
  return value & ((1 << REPLACED_KEY_BITS) - 1);
}

/**
 * readReplacedValues for numbers, whose gets the kernel answers on its own
 * (value included): a value is replacedNumber(version, key index). Writers
 * replace values and churn keys of their own, so that entries and whole
 * tables are freed and their blocks reused while readers look. Readers
 * check that a key, once seen, stays present, that its value names it, and
 * that its version never goes back. A lookup that read a freed block would
 * show another key's index, a key gone missing, or an old version.
 */
export function readReplacedNumbers(ctx: WorkerContext<ReplacedNumbersArgs>): number {
  const { writers, keysPerWriter, steps, stringKeys } = ctx.args;
  if (keysPerWriter > 1 << REPLACED_KEY_BITS) throw new RangeError("too many keys per writer");
  const map = HashMap.attach<string | number, number>(ctx.args.map);
  const flags = new Int32Array(ctx.args.flags);
  const keyOf = (w: number, j: number) => replacedNumberKey(w, j, stringKeys);
  const churnKey = (n: number) =>
    stringKeys ? `churn ${ctx.index}.${n}` : -1 - (ctx.index * 1e6 + n);
  if (ctx.index < writers) {
    const versions = new Int32Array(keysPerWriter);
    replaceAndChurn(ctx, map, churnKey, 0, () => {
      const j = ctx.randomInt(keysPerWriter);
      map.set(keyOf(ctx.index, j), replacedNumber(++versions[j], j));
    });
    return steps;
  }
  return readReplaced(ctx, flags, keyOf, (key, j) => {
    const value = map.get(key);
    if (value === undefined) return 0;
    const version = value >> REPLACED_KEY_BITS;
    if (replacedKeyIndex(value) !== j || version < 1) {
      const index = replacedKeyIndex(value);
      throw new Error(`${key} read ${value}, which names key ${index} version ${version}`);
    }
    return version;
  });
}

// ---------------------------------------------------------------------------
// Iteration under change

export interface IterationArgs {
  readonly map: HashMapHandle;
  /** Keys "stable 0" .. "stable n-1" are present throughout. */
  readonly stable: number;
  /** Workers 0..iterators-1 iterate; the others change the map. */
  readonly iterators: number;
  /** Rounds of churn per mutator. */
  readonly rounds: number;
  /** Int32 words: [0] mutators done. */
  readonly flags: SharedArrayBuffer;
  /**
   * Iterators end their iteration's pin (SharedHeap.releaseReadPins, as at
   * the end of a task) before about one step in this many, so that steps
   * resume after a pause, often after a resize; 0 never.
   */
  readonly pauseEvery?: number;
}

export interface IteratorReport {
  readonly passes: number;
  readonly passesAcrossResize: number;
  /** Pauses after which the map's capacity had changed at the next step. */
  readonly pausesAcrossResize: number;
}

/**
 * Mutators insert bursts of new keys (growing the table), delete them again
 * (shrinking it) and overwrite stable keys; iterators check on every pass
 * that each stable key is yielded exactly once and no key twice.
 */
export function iterateWhileChanging(ctx: WorkerContext<IterationArgs>): IteratorReport | number {
  const { stable, iterators, rounds } = ctx.args;
  const map = HashMap.attach<string, number>(ctx.args.map);
  const flags = new Int32Array(ctx.args.flags);
  const mutators = ctx.workers - iterators;
  if (ctx.index >= iterators) {
    let writes = 0;
    for (let round = 0; round < rounds; round++) {
      const burst = 200 + ctx.randomInt(1500);
      const prefix = `churn ${ctx.index}.${round}.`;
      for (let i = 0; i < burst; i++, writes++) {
        map.set(prefix + i, i);
        if (i % 16 === 0) map.set(`stable ${ctx.randomInt(stable)}`, writes);
      }
      for (let i = 0; i < burst; i++) map.delete(prefix + i);
    }
    Atomics.add(flags, 0, 1);
    return writes;
  }
  const pauseEvery = ctx.args.pauseEvery ?? 0;
  const pauseWord = new Int32Array(new SharedArrayBuffer(4));
  let passes = 0;
  let passesAcrossResize = 0;
  let pausesAcrossResize = 0;
  const counts = new Map<string, number>();
  while (passes < 2 || Atomics.load(flags, 0) < mutators) {
    ctx.checkpoint();
    counts.clear();
    const capacity = map.capacity;
    let pausedAt = -1;
    for (const [key] of map.entries()) {
      if (pausedAt >= 0 && map.capacity !== pausedAt) pausesAcrossResize++;
      pausedAt = -1;
      const seen = (counts.get(key) ?? 0) + 1;
      if (seen > 1) throw new Error(`pass ${passes} yielded ${JSON.stringify(key)} twice`);
      counts.set(key, seen);
      if (pauseEvery > 0 && ctx.randomInt(pauseEvery) === 0) {
        SharedHeap.releaseReadPins();
        pausedAt = map.capacity;
        // Now and then, let the mutators run.
        if (ctx.randomInt(4) === 0) Atomics.wait(pauseWord, 0, 0, ctx.random() * 0.2);
      }
    }
    for (let i = 0; i < stable; i++) {
      if (counts.get(`stable ${i}`) !== 1) {
        throw new Error(`pass ${passes} missed "stable ${i}" (${counts.size} keys seen)`);
      }
    }
    passes++;
    if (map.capacity !== capacity) passesAcrossResize++;
  }
  return { passes, passesAcrossResize, pausesAcrossResize };
}

// ---------------------------------------------------------------------------
// Memory under churn

export interface ChurnArgs {
  readonly map: HashMapHandle;
  readonly keysPerWorker: number;
  /** Set-or-delete operations per worker. */
  readonly ops: number;
  readonly valueBytes: number;
}

export interface ChurnReport {
  readonly maxLiveBlocks: number;
  readonly maxHeapBytes: number;
}

/**
 * Each worker sets and deletes its own keys at random (about half present
 * at any time), sampling the heap's counters as it goes, then deletes all.
 */
export function churn(ctx: WorkerContext<ChurnArgs>): ChurnReport {
  const heap = heapOf(ctx);
  const { keysPerWorker, ops, valueBytes } = ctx.args;
  const map = HashMap.attach<number, string>(ctx.args.map);
  const base = ctx.index * keysPerWorker;
  const present = new Uint8Array(keysPerWorker);
  const value = "v".repeat(valueBytes);
  let maxLiveBlocks = 0;
  let maxHeapBytes = 0;
  for (let i = 0; i < ops; i++) {
    const j = ctx.randomInt(keysPerWorker);
    if (present[j] === 0) {
      map.set(base + j, value);
      present[j] = 1;
    } else {
      if (!map.delete(base + j)) throw new Error(`key ${base + j} was not there to delete`);
      present[j] = 0;
    }
    if ((i & 4095) === 0) {
      const stats = heap.stats();
      maxLiveBlocks = Math.max(maxLiveBlocks, stats.liveBlocks);
      maxHeapBytes = Math.max(maxHeapBytes, stats.heapBytes);
    }
  }
  for (let j = 0; j < keysPerWorker; j++) {
    if ((map.get(base + j) !== undefined) !== (present[j] === 1)) {
      throw new Error(`key ${base + j} should be ${present[j] ? "present" : "absent"}`);
    }
    if (present[j] === 1) map.delete(base + j);
  }
  return { maxLiveBlocks, maxHeapBytes };
}

// ---------------------------------------------------------------------------
// Size: keys added by some workers and deleted by others

export interface HandOffArgs {
  /** u32 -> u32. */
  readonly map: HashMapHandle;
  readonly keys: number;
  /** Int32 words: [0] workers started, [1] workers done, [2] stop. */
  readonly flags: SharedArrayBuffer;
}

/**
 * Even workers add keys 0..keys-1 over and over, odd workers delete them,
 * until told to stop: the size stripes of the adders climb and those of the
 * deleters sink below zero, while their sum stays within 0..keys.
 */
export function handOff(ctx: WorkerContext<HandOffArgs>): number {
  const { keys } = ctx.args;
  const map = HashMap.attach<number, number>(ctx.args.map);
  const flags = new Int32Array(ctx.args.flags);
  const adds = ctx.index % 2 === 0;
  Atomics.add(flags, 0, 1);
  let ops = 0;
  try {
    while (Atomics.load(flags, 2) === 0) {
      for (let i = 0; i < keys; i++) {
        if (adds) map.set(i, i);
        else map.delete(i);
      }
      ops += keys;
    }
  } finally {
    Atomics.add(flags, 1, 1);
  }
  return ops;
}

// ---------------------------------------------------------------------------
// Read pins: a reader in one long task, and a reader that blocks

export interface ChurnBesideReaderArgs extends ChurnArgs {
  /** i32 -> i32, keys 0..readKeys-1 holding ~k, for worker 0 to read. */
  readonly readMap: HashMapHandle;
  readonly readKeys: number;
  /** Int32 words: [0] writers done. */
  readonly flags: SharedArrayBuffer;
}

export interface PinnedReaderReport {
  /** Gets done. */
  readonly gets: number;
  /** Samples of this worker's epoch word that showed a pin. */
  readonly pinnedSamples: number;
}

/**
 * Worker 0 reads `readMap` in one synchronous task (its read pin is never
 * released by a task's end) until the others are done; the others churn as
 * churn() does, on keys past worker 0's share.
 */
export function churnBesideReader(
  ctx: WorkerContext<ChurnBesideReaderArgs>,
): ChurnReport | PinnedReaderReport {
  const flags = new Int32Array(ctx.args.flags);
  if (ctx.index !== 0) {
    try {
      return churn(ctx);
    } finally {
      Atomics.add(flags, 0, 1);
    }
  }
  const heap = heapOf(ctx);
  if (heapKernel(heap) === null) throw new Error("this reader needs the kernel");
  const map = HashMap.attach<number, number>(ctx.args.readMap);
  const { readKeys } = ctx.args;
  const epochWord = epochWordAt(heap) >> 2;
  const writers = ctx.workers - 1;
  let gets = 0;
  let pinnedSamples = 0;
  while (Atomics.load(flags, 0) < writers) {
    for (let i = 0; i < 1024; i++, gets++) {
      const k = gets % readKeys;
      const got = map.get(k);
      if (got !== ~k) throw new Error(`get(${k}) returned ${got}, expected ${~k}`);
    }
    if (Atomics.load(heap.i32, epochWord) !== 0) pinnedSamples++;
  }
  return { gets, pinnedSamples };
}

export interface ReadThenBlockArgs {
  /** Int32 words: [0] set to 1 after the get, [1] this worker's epoch word index. */
  readonly flags: SharedArrayBuffer;
  readonly mutex: MutexHandle;
}

/**
 * Reads the map under the heap root "map" (key 1 holds 10), checks that the
 * get left a read pin, tells the test where its epoch word is, and then
 * blocks on the mutex, which the test holds. Returns the epoch it was
 * pinned at.
 */
export function readThenBlock(ctx: WorkerContext<ReadThenBlockArgs>): number {
  const heap = heapOf(ctx);
  if (heapKernel(heap) === null) throw new Error("this reader needs the kernel");
  const map = HashMap.attach<number, number>(heap.root("map") as HashMapHandle);
  const mutex = Mutex.attach(ctx.args.mutex);
  const flags = new Int32Array(ctx.args.flags);
  if (map.get(1) !== 10) throw new Error(`get(1) returned ${map.get(1)}`);
  const epochWord = epochWordAt(heap) >> 2;
  const pinnedAt = Atomics.load(heap.i32, epochWord);
  if (pinnedAt === 0) throw new Error("the get left no read pin");
  Atomics.store(flags, 1, epochWord);
  Atomics.store(flags, 0, 1);
  Atomics.notify(flags, 0);
  using _guard = mutex.lock();
  return pinnedAt;
}

// ---------------------------------------------------------------------------
// Resizes both ways under a double-retire audit

export interface AuditedResizesArgs {
  readonly map: HashMapHandle;
  readonly audit: RetireAudit;
  /** Keys of each worker; the map grows to about workers * keysPerWorker. */
  readonly keysPerWorker: number;
  /** Fill and drain rounds. */
  readonly rounds: number;
}

/**
 * Fills its own keys, overwrites some, then deletes nearly all of them,
 * round after round: with the others doing the same, the map grows and
 * shrinks again and again, so tables are migrated and retired while writers
 * replace and delete entries that tables share. Every retire goes through
 * the audit; the worker checks its keys after each phase.
 */
export function auditedResizes(ctx: WorkerContext<AuditedResizesArgs>): number {
  const heap = heapOf(ctx);
  installRetireAudit(heap, ctx.args.audit);
  const { keysPerWorker, rounds } = ctx.args;
  const map = HashMap.attach<number, number>(ctx.args.map);
  const base = ctx.index * keysPerWorker;
  const value = new Int32Array(keysPerWorker);
  let writes = 0;
  for (let round = 0; round < rounds; round++) {
    for (let j = 0; j < keysPerWorker; j++) {
      value[j] = round * keysPerWorker + j;
      map.set(base + j, value[j]);
      writes++;
      // Overwrite a random earlier key now and then: a replaced entry may
      // be one that an older table still shares.
      if (ctx.random() < 0.3) {
        const k = ctx.randomInt(j + 1);
        value[k] = ~value[k];
        map.set(base + k, value[k]);
        writes++;
      }
    }
    for (let j = 0; j < keysPerWorker; j++) {
      const got = map.get(base + j);
      if (got !== value[j]) {
        throw new Error(`round ${round}: key ${base + j} is ${got}, not ${value[j]}`);
      }
    }
    const keep = ctx.randomInt(8);
    for (let j = keep; j < keysPerWorker; j++) {
      if (!map.delete(base + j)) throw new Error(`round ${round}: key ${base + j} was gone`);
      writes++;
    }
    for (let j = 0; j < keysPerWorker; j++) {
      const got = map.get(base + j);
      if (got !== (j < keep ? value[j] : undefined)) {
        throw new Error(`round ${round}, drained: key ${base + j} is ${got}`);
      }
    }
  }
  return writes;
}

/** keysPerWorker: the keys a worker keeps at most (2 with 4 workers stay in a spare). */
export interface FullHeapCyclesArgs extends AuditedResizesArgs {
  /** Int32 words: [0] arrivals at the barriers. */
  readonly flags: SharedArrayBuffer;
  readonly workers: number;
}

/**
 * Fills the heap with blocks of its own beside the map, then, round after
 * round, deletes its keys and inserts fresh ones: the table fills with
 * deleted keys, and each claim past 7/8 needs a new table that only the
 * map's spare (and the tables it recycles) can provide, while the others do
 * the same. Checks its keys after each round; returns how many it inserted.
 */
export function fullHeapCycles(ctx: WorkerContext<FullHeapCyclesArgs>): number {
  const heap = heapOf(ctx);
  installRetireAudit(heap, ctx.args.audit);
  const { keysPerWorker, rounds, workers } = ctx.args;
  const flags = new Int32Array(ctx.args.flags);
  const barrier = (phase: number) => {
    SharedHeap.releaseReadPins(); // a wait outside sabre must not hold the epoch back
    Atomics.add(flags, 0, 1);
    Atomics.notify(flags, 0);
    awaitWord(ctx, flags, 0, phase * workers);
  };
  const map = HashMap.attach<number, number>(ctx.args.map);
  const keyOf = (round: number, j: number) => (round * keysPerWorker + j) * workers + ctx.index;
  for (let j = 0; j < keysPerWorker; j++) map.set(keyOf(0, j), j);
  barrier(1);
  const ballast: number[] = [];
  for (const size of [1 << 16, 4096, 512, 64, 8]) {
    for (;;) {
      try {
        ballast.push(heap.allocate(size));
      } catch (e) {
        if (!(e instanceof HeapExhaustedError)) throw e;
        break;
      }
    }
  }
  barrier(2);
  let inserted = 0;
  let present = keysPerWorker;
  for (let round = 1; round <= rounds; round++) {
    for (let j = 0; j < present; j++) {
      if (!map.delete(keyOf(round - 1, j))) throw new Error(`round ${round}: key ${j} was gone`);
    }
    present = 0;
    for (; present < keysPerWorker; present++) {
      const key = keyOf(round, present);
      try {
        map.set(key, round);
      } catch (e) {
        if (!(e instanceof HeapExhaustedError)) throw e;
        if (map.has(key)) throw new Error(`round ${round}: a failed set left ${key}`);
        break;
      }
    }
    inserted += present;
    for (let j = 0; j < keysPerWorker; j++) {
      const got = map.get(keyOf(round, j));
      if (got !== (j < present ? round : undefined)) {
        throw new Error(`round ${round}: key ${keyOf(round, j)} is ${got}`);
      }
      if (map.has(keyOf(round - 1, j))) throw new Error(`round ${round}: a deleted key is back`);
    }
  }
  for (let j = 0; j < present; j++) map.delete(keyOf(rounds, j));
  barrier(3);
  for (const block of ballast) heap.free(block);
  return inserted;
}

export interface PauseInRetirementArgs {
  readonly map: HashMapHandle;
  /** Int32 words: [0] set when this worker has stopped, [1] set to let it go on. */
  readonly flags: SharedArrayBuffer;
}

/**
 * Inserts keys 0, 1, ... until its own write helps retire an old table,
 * stops inside the first slot it retires until told to go on, then returns
 * how many keys it inserted.
 */
export function pauseInRetirement(ctx: WorkerContext<PauseInRetirementArgs>): number {
  const map = HashMap.attach<number, number>(ctx.args.map);
  const flags = new Int32Array(ctx.args.flags);
  let paused = false;
  faultInjection.hook = (site) => {
    if (site !== "hashmap.retire.slot" || paused) return;
    paused = true;
    Atomics.store(flags, 0, 1);
    Atomics.notify(flags, 0);
    awaitWord(ctx, flags, 1, 1);
  };
  let k = 0;
  while (!paused) {
    if (k === 1_000_000) throw new Error("no write of this worker helped a retirement");
    map.set(k, k);
    k++;
  }
  faultInjection.hook = undefined;
  return k;
}

export interface InsertUntilDeathArgs {
  readonly map: HashMapHandle;
  /** The crash point where this worker stops for good. */
  readonly site: string;
}

/**
 * Inserts keys 0, 1, ... (each the value of its own key) until one of its
 * writes reaches crash point `site`; there it posts the key in flight and
 * hangs until the parent terminates it.
 */
export function insertUntilDeath(ctx: WorkerContext<InsertUntilDeathArgs>): number {
  const map = HashMap.attach<number, number>(ctx.args.map);
  let k = 0;
  faultInjection.hook = (site) => {
    if (site !== ctx.args.site) return;
    ctx.post(k);
    ctx.hang();
  };
  for (; k < 1_000_000; k++) map.set(k, k);
  throw new Error(`no write reached ${ctx.args.site}`);
}

// ---------------------------------------------------------------------------
// Termination at crash points

export interface OwnedKeysArgs {
  readonly map: HashMapHandle;
  /** Keys each worker may use; worker w owns indexes w*perWorker ... */
  readonly perWorker: number;
  /** Int32 words per key index: [present, value], updated after each completed operation. */
  readonly state: SharedArrayBuffer;
  /** Int32 words per worker: [active, key index, present, value] of the operation in flight. */
  readonly pending: SharedArrayBuffer;
  /** Int32 words: [0] the doomed worker is dying, [1] workers done. */
  readonly flags: SharedArrayBuffer;
  /** Operations each survivor runs before and after the death (at least). */
  readonly opsBefore: number;
  readonly opsAfter: number;
  /** Worker 0 dies at the `after`-th visit of crash point `site`. */
  readonly dieAt: { readonly site: string; readonly after: number } | undefined;
  /**
   * Instead: worker 0 posts its heap slot once under way, then runs until
   * the parent terminates it, at whatever point it has reached, adding 1 to
   * word 0 of this buffer before each operation (so the parent sees when it
   * has stopped).
   */
  readonly killedAtRandom?: SharedArrayBuffer;
  /** Whether the map has string keys (ownedStringKey) rather than i32 keys. */
  readonly stringKeys?: boolean;
}

/** The map key of key index `i`: spread out, and never 0. */
export function ownedKey(i: number): number {
  return Math.imul(i + 1, 0x9e3779b1) | 1;
}

/** The string key of key index `i`, for maps with string keys: 8 to 17 ASCII bytes. */
export function ownedStringKey(i: number): string {
  return `owned-${ownedKey(i)}`;
}

/** ownedKey or ownedStringKey, as `stringKeys` says. */
function ownedKeyOf(stringKeys: boolean | undefined): (i: number) => number | string {
  return stringKeys === true ? ownedStringKey : ownedKey;
}

/**
 * Random operations, each on a key this worker owns, checked against a
 * model of those keys: every result must be what the model says. Each
 * completed operation's effect is published in `state`; the one in flight
 * is described in `pending`, so that the parent knows what a worker that
 * died in the middle of an operation may have done.
 */
export function ownedKeys(ctx: WorkerContext<OwnedKeysArgs>): number {
  const { perWorker, opsBefore, opsAfter, dieAt } = ctx.args;
  const map = HashMap.attach<number | string, number>(ctx.args.map);
  const keyOf = ownedKeyOf(ctx.args.stringKeys);
  const state = new Int32Array(ctx.args.state);
  const pending = new Int32Array(ctx.args.pending);
  const flags = new Int32Array(ctx.args.flags);
  const doomed = dieAt !== undefined && ctx.index === 0;
  if (doomed) {
    let visits = 0;
    faultInjection.hook = (site) => {
      if (site === dieAt.site && ++visits === dieAt.after) {
        Atomics.store(flags, 0, 1);
        Atomics.notify(flags, 0);
        ctx.post("dying");
        ctx.hang();
      }
    };
  }
  const base = ctx.index * perWorker;
  const present = new Uint8Array(perWorker);
  const values = new Int32Array(perWorker);
  let used = 64; // keys in play; grows so that new keys keep coming
  let seq = 0;
  const p = ctx.index * 4;
  const run = (): void => {
    if (used < perWorker && ctx.random() < 0.3) used = Math.min(perWorker, used + 8);
    const j = ctx.random() < 0.5 ? Math.max(0, used - 1 - ctx.randomInt(16)) : ctx.randomInt(used);
    const key = keyOf(base + j);
    const had = present[j] === 1;
    const old = values[j];
    const fresh = ((ctx.index + 1) << 24) + (++seq & 0xffffff);
    const expect = (what: string, got: unknown, wanted: unknown) => {
      if (!Object.is(got, wanted)) {
        throw new Error(`${what} on key ${key} returned ${got}, expected ${wanted} (op ${seq})`);
      }
    };
    const announce = (isPresent: boolean, value: number) => {
      Atomics.store(pending, p + 1, base + j);
      Atomics.store(pending, p + 2, isPresent ? 1 : 0);
      Atomics.store(pending, p + 3, value);
      Atomics.store(pending, p, 1);
    };
    const settle = (isPresent: boolean, value: number) => {
      present[j] = isPresent ? 1 : 0;
      values[j] = value;
      Atomics.store(state, 2 * (base + j) + 1, value);
      Atomics.store(state, 2 * (base + j), isPresent ? 1 : 0);
      Atomics.store(pending, p, 0);
    };
    const r = ctx.randomInt(10);
    switch (r) {
      case 0:
      case 1:
        announce(true, fresh);
        map.set(key, fresh);
        return settle(true, fresh);
      case 2:
        announce(true, fresh);
        expect("swap", map.swap(key, fresh), had ? old : undefined);
        return settle(true, fresh);
      case 3:
        announce(false, 0);
        expect("delete", map.delete(key), had);
        return settle(false, 0);
      case 4: {
        const sum = (had ? old : 0) + 5;
        announce(true, sum);
        expect("add", map.add(key, 5), sum);
        return settle(true, sum);
      }
      case 5: {
        // Right or wrong expectation, half and half.
        const right = ctx.random() < 0.5;
        const expected = right ? (had ? old : undefined) : had ? old + 1 : 7;
        if (right) announce(true, fresh);
        expect("compareAndSet", map.compareAndSet(key, expected, fresh), right);
        if (right) settle(true, fresh);
        return;
      }
      case 6:
        if (!had) announce(true, fresh);
        expect("getOrInsert", map.getOrInsert(key, fresh), had ? old : fresh);
        if (!had) settle(true, fresh);
        return;
      case 7:
        if (had) announce(false, 0);
        expect("deleteIf", map.deleteIf(key, old), had);
        if (had) settle(false, 0);
        return;
      default:
        expect("get", map.get(key), had ? old : undefined);
        expect("has", map.has(key), had);
    }
  };
  if (doomed) {
    for (let i = 0; i < 2_000_000; i++) run();
    throw new Error(`crash point ${dieAt.site} was never reached`);
  }
  const heartbeat = ctx.args.killedAtRandom;
  if (heartbeat !== undefined && ctx.index === 0) {
    const beats = new Int32Array(heartbeat);
    for (let i = 0; i < 1000; i++) run();
    ctx.post(ctx.heap!.slot);
    for (;;) {
      Atomics.add(beats, 0, 1);
      run();
    }
  }
  for (let i = 0; i < opsBefore; i++) run();
  if (dieAt !== undefined) awaitWord(ctx, flags, 0, 1);
  for (let i = 0; i < opsAfter; i++) run();
  // Everything this worker did is there, as it left it.
  for (let j = 0; j < perWorker; j++) {
    const got = map.get(keyOf(base + j));
    const wanted = present[j] === 1 ? values[j] : undefined;
    if (got !== wanted) throw new Error(`key ${keyOf(base + j)}: ${got}, expected ${wanted}`);
  }
  return seq;
}

export interface VerifyArgs {
  readonly map: HashMapHandle;
  /** Key indexes 0..keys-1, with `state` and `pending` as ownedKeys left them. */
  readonly keys: number;
  readonly state: SharedArrayBuffer;
  readonly pending: SharedArrayBuffer;
  readonly workers: number;
  /** New keys to insert afterwards (key indexes from `keys` on). */
  readonly grow: number;
  /** Whether the map has string keys, as in OwnedKeysArgs. */
  readonly stringKeys?: boolean;
  /**
   * How far `size` may be off the keys found (default 0): 1 where a worker
   * was killed at a random moment while the map ran without the kernel,
   * whose JavaScript paths make a write's CAS and its count in two calls.
   */
  readonly sizeSlack?: number;
}

/** The newcomer's arguments after `workers` workers ran ownedKeys with `owned`. */
export function verifyArgsAfter(
  owned: OwnedKeysArgs,
  workers: number,
  grow: number,
): VerifyArgs {
  const { map, perWorker, state, pending, stringKeys } = owned;
  return { map, keys: workers * perWorker, state, pending, workers, grow, stringKeys };
}

/**
 * A newcomer: every key holds what its owner last did (or, for an operation
 * a dying worker left in flight, what that operation would have done);
 * then it rewrites, deletes and inserts keys and checks them all again.
 * Returns the number of keys present at the end.
 */
export function verifyAndRewrite(ctx: WorkerContext<VerifyArgs>): number {
  const { keys, workers, grow } = ctx.args;
  const map = HashMap.attach<number | string, number>(ctx.args.map);
  const keyOf = ownedKeyOf(ctx.args.stringKeys);
  const state = new Int32Array(ctx.args.state);
  const pending = new Int32Array(ctx.args.pending);
  const inFlight = new Map<number, [boolean, number]>();
  for (let w = 0; w < workers; w++) {
    if (Atomics.load(pending, w * 4) === 1) {
      inFlight.set(pending[w * 4 + 1], [pending[w * 4 + 2] === 1, pending[w * 4 + 3]]);
    }
  }
  const expected = new Map<number | string, number>();
  for (let i = 0; i < keys; i++) {
    const key = keyOf(i);
    const got = map.get(key);
    const before = state[2 * i] === 1 ? state[2 * i + 1] : undefined;
    const flight = inFlight.get(i);
    const after = flight === undefined ? before : flight[0] ? flight[1] : undefined;
    if (got !== before && got !== after) {
      throw new Error(`key index ${i}: ${got}, expected ${before}${flight ? ` or ${after}` : ""}`);
    }
    if (got !== undefined) expected.set(key, got);
  }
  // Exact even after a kill, where the kernel runs: every write makes its
  // CAS and its count in one kernel call, where V8 cannot stop a terminated
  // worker between the two.
  const offset = map.size - expected.size;
  if (Math.abs(offset) > (ctx.args.sizeSlack ?? 0)) {
    throw new Error(`size ${map.size}, expected ${expected.size}`);
  }
  let i = 0;
  for (const key of [...expected.keys()]) {
    if (i++ % 3 === 0) {
      if (!map.delete(key)) throw new Error(`could not delete ${key}`);
      expected.delete(key);
    } else {
      map.set(key, -i);
      expected.set(key, -i);
    }
  }
  for (let j = keys; j < keys + grow; j++) {
    map.set(keyOf(j), j);
    expected.set(keyOf(j), j);
  }
  for (const [key, value] of expected) {
    if (map.get(key) !== value) throw new Error(`after rewriting, ${key}: ${map.get(key)}`);
  }
  const seen = new Set<number | string>();
  for (const [key, value] of map) {
    if (seen.has(key)) throw new Error(`iteration yielded ${key} twice`);
    seen.add(key);
    if (expected.get(key) !== value) throw new Error(`iteration: ${key} => ${value}`);
  }
  if (seen.size !== expected.size) {
    throw new Error(`iteration saw ${seen.size} of ${expected.size}`);
  }
  if (map.size !== expected.size + offset) {
    throw new Error(`size ${map.size} after rewriting, expected ${expected.size + offset}`);
  }
  return expected.size;
}

// ---------------------------------------------------------------------------
// Oversubscription

export interface MixedArgs {
  readonly map: HashMapHandle;
  readonly ops: number;
  /** Keys each worker owns (set/delete/compareAndSet), beside the shared counters. */
  readonly owned: number;
  /** Shared counters 0..counters-1, incremented with add by everyone. */
  readonly counters: number;
}

/**
 * Mixed operations: own keys (checked against a model), shared counters
 * (add), reads of anything, occasional iteration. Returns this worker's
 * increments per counter.
 */
export function mixed(ctx: WorkerContext<MixedArgs>): number[] {
  const { ops, owned, counters: n } = ctx.args;
  const map = HashMap.attach<number, number>(ctx.args.map);
  const mine = new Map<number, number>();
  const increments = new Array<number>(n).fill(0);
  const base = 1_000_000 * (ctx.index + 1);
  for (let i = 0; i < ops; i++) {
    const r = ctx.randomInt(20);
    const key = base + ctx.randomInt(owned);
    if (r < 6) {
      map.set(key, i);
      mine.set(key, i);
    } else if (r < 9) {
      if (map.delete(key) !== mine.delete(key)) throw new Error(`delete(${key}) disagreed`);
    } else if (r < 11) {
      const ok = map.compareAndSet(key, mine.get(key), -i);
      if (!ok) throw new Error(`compareAndSet(${key}) failed on an owned key`);
      mine.set(key, -i);
    } else if (r < 15) {
      const k = ctx.randomInt(n);
      map.add(k, 1);
      increments[k]++;
    } else if (r < 19) {
      if (map.get(key) !== mine.get(key)) throw new Error(`get(${key}) disagreed`);
      map.get(1_000_000 * (1 + ctx.randomInt(ctx.workers)) + ctx.randomInt(owned));
    } else if (i % 50 === 0) {
      let count = 0;
      for (const _ of map.keys()) count++;
      if (count < mine.size) throw new Error(`iteration saw ${count} keys, I own ${mine.size}`);
    }
    if ((i & 1023) === 0) ctx.checkpoint();
  }
  for (const [key, value] of mine) {
    if (map.get(key) !== value) throw new Error(`final get(${key}) disagreed`);
  }
  return increments;
}
