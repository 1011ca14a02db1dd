/**
 * Worker bodies for the multi-worker BPlusTree tests (btree_workers_test.ts),
 * and the sorted model that the single-thread tests (btree_test.ts,
 * cursor_test.ts) compare the tree with. Each worker export runs inside a
 * worker started by the testing harness; a worker that sees something wrong
 * throws, which fails the test with its seed.
 *
 * @module
 */

import { BPlusTree, type BPlusTreeHandle } from "./mod.ts";
import { faultInjection, TimeoutError } from "../memory/mod.ts";
import type { WorkerContext } from "../testing/harness.ts";
import { checkTree } from "./_invariants.ts";
import {
  HistoryClock,
  type HistoryClockHandle,
  HistoryRecorder,
  type OpRecord,
} from "../testing/history.ts";

// ---------------------------------------------------------------------------
// Sorted model

/** Order of numbers and bigints: numeric. */
export function compareNumbers(a: unknown, b: unknown): number {
  return (a as number) < (b as number) ? -1 : (a as number) > (b as number) ? 1 : 0;
}

/** Order of strings as the tree keeps them: by code point (= UTF-8 byte order). */
export function compareCodePoints(a: unknown, b: unknown): number {
  const x = a as string;
  const y = b as string;
  let i = 0;
  let j = 0;
  while (i < x.length && j < y.length) {
    const p = x.codePointAt(i)!;
    const q = y.codePointAt(j)!;
    if (p !== q) return p < q ? -1 : 1;
    i += p > 0xffff ? 2 : 1;
    j += q > 0xffff ? 2 : 1;
  }
  return i < x.length ? 1 : j < y.length ? -1 : 0;
}

/** Order of byte arrays: lexicographic, a proper prefix first. */
export function compareBytes(a: unknown, b: unknown): number {
  const x = a as Uint8Array;
  const y = b as Uint8Array;
  const n = Math.min(x.length, y.length);
  for (let i = 0; i < n; i++) {
    if (x[i] !== y[i]) return x[i] < y[i] ? -1 : 1;
  }
  return x.length === y.length ? 0 : x.length < y.length ? -1 : 1;
}

/** The key order of a codec, written independently of the library. */
export function comparatorOf(codec: string): (a: unknown, b: unknown) => number {
  return codec === "string" ? compareCodePoints : codec === "bytes" ? compareBytes : compareNumbers;
}

/**
 * A sorted map on two parallel arrays, binary-searched: the reference the
 * tree is checked against. Keys must be normalized by the caller (`-0` as
 * `+0` for numeric keys).
 */
export class SortedModel<K = unknown, V = unknown> {
  keys: K[] = [];
  values: V[] = [];
  readonly compare: (a: K, b: K) => number;

  constructor(compare: (a: K, b: K) => number) {
    this.compare = compare;
  }

  get size(): number {
    return this.keys.length;
  }

  /** Index of the first key >= k. */
  lowerBound(k: K): number {
    let lo = 0;
    let hi = this.keys.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.compare(this.keys[mid], k) < 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Index of the first key > k. */
  upperBound(k: K): number {
    let lo = 0;
    let hi = this.keys.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.compare(this.keys[mid], k) <= 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Index of k, or -1. */
  indexOf(k: K): number {
    const i = this.lowerBound(k);
    return i < this.keys.length && this.compare(this.keys[i], k) === 0 ? i : -1;
  }

  has(k: K): boolean {
    return this.indexOf(k) >= 0;
  }

  get(k: K): V | undefined {
    const i = this.indexOf(k);
    return i < 0 ? undefined : this.values[i];
  }

  set(k: K, v: V): V | undefined {
    const i = this.lowerBound(k);
    if (i < this.keys.length && this.compare(this.keys[i], k) === 0) {
      const old = this.values[i];
      this.values[i] = v;
      return old;
    }
    this.keys.splice(i, 0, k);
    this.values.splice(i, 0, v);
    return undefined;
  }

  delete(k: K): V | undefined {
    const i = this.indexOf(k);
    if (i < 0) return undefined;
    const old = this.values[i];
    this.keys.splice(i, 1);
    this.values.splice(i, 1);
    return old;
  }

  entry(i: number): [K, V] | undefined {
    return i >= 0 && i < this.keys.length ? [this.keys[i], this.values[i]] : undefined;
  }

  /** What `range(options)` must return. */
  range(options: RangeOptions<K>): [K, V][] {
    let lo = 0;
    let hi = this.keys.length;
    if (options.gte !== undefined) lo = Math.max(lo, this.lowerBound(options.gte));
    if (options.gt !== undefined) lo = Math.max(lo, this.upperBound(options.gt));
    if (options.lte !== undefined) hi = Math.min(hi, this.upperBound(options.lte));
    if (options.lt !== undefined) hi = Math.min(hi, this.lowerBound(options.lt));
    const out: [K, V][] = [];
    const limit = options.limit ?? Infinity;
    if (options.reverse) {
      for (let i = hi - 1; i >= lo && out.length < limit; i--) {
        out.push([this.keys[i], this.values[i]]);
      }
    } else {
      for (let i = lo; i < hi && out.length < limit; i++) out.push([this.keys[i], this.values[i]]);
    }
    return out;
  }
}

/** The options of `tree.range()`. */
export interface RangeOptions<K> {
  gte?: K;
  gt?: K;
  lte?: K;
  lt?: K;
  reverse?: boolean;
  limit?: number;
}

/** Human-readable key or value for messages. */
export function show(x: unknown): string {
  if (x instanceof Uint8Array) return `bytes[${Array.from(x).join(",")}]`;
  if (typeof x === "bigint") return `${x}n`;
  if (typeof x === "string") return JSON.stringify(x);
  if (Object.is(x, -0)) return "-0";
  if (Array.isArray(x)) return `[${x.map(show).join(", ")}]`;
  return String(x);
}

// ---------------------------------------------------------------------------
// Linearizability of point operations

export interface LinearizableArgs {
  /** One fresh tree per round, i32 keys and i32 values. */
  readonly trees: readonly BPlusTreeHandle[];
  readonly clock: HistoryClockHandle;
  readonly opsPerRound: number;
  /** Tracked keys per round: 100, 200, ... (key i is 100 * (i + 1)). */
  readonly keys: number;
  /**
   * Untracked keys each worker inserts and deletes between its tracked
   * operations, right beside the tracked ones, so that the leaves holding
   * the tracked keys split and merge while tracked operations run.
   */
  readonly noise: number;
  /** Include first/last/popFirst/popLast (the history must then be checked whole). */
  readonly ends: boolean;
}

/** The function `update` applies in the histories (the model knows it as "updateStep"). */
export function updateStep(old: number | undefined, v: number): number | undefined {
  if (old === undefined) return v;
  return old % 3 === 0 ? undefined : old + 1;
}

/**
 * Per round (rounds start together on the group's barrier), random get,
 * has, set, insert, delete (recorded as the model's "remove": it returns
 * the removed value), getOrInsert and update on a few keys of that round's
 * tree, recorded on the shared clock. Values written are unique per worker
 * and operation.
 */
export function linearizableRounds(ctx: WorkerContext<LinearizableArgs>): OpRecord[][] {
  const { trees, opsPerRound, keys, noise, ends } = ctx.args;
  const clock = HistoryClock.attach(ctx.args.clock);
  const histories: OpRecord[][] = [];
  for (let round = 0; round < trees.length; round++) {
    const tree = BPlusTree.attach<number, number>(trees[round]);
    const recorder = new HistoryRecorder(ctx.index, clock);
    const noiseKeys: number[] = [];
    ctx.barrier.wait();
    for (let op = 0; op < opsPerRound; op++) {
      if (noise > 0 && ctx.random() < 0.6) {
        // Keys right beside the tracked ones, own to this worker.
        const burst = 1 + ctx.randomInt(Math.ceil((2 * noise) / opsPerRound));
        for (let j = 0; j < burst; j++) {
          const near = 100 * (1 + ctx.randomInt(keys + 1)) - 50 + 8 * ctx.index +
            ctx.randomInt(8) - 4 * ctx.workers;
          if (near % 100 === 0) continue;
          if (tree.insert(near, j)) noiseKeys.push(near);
        }
        if (ctx.random() < 0.5) {
          const gone = Math.min(noiseKeys.length, 1 + ctx.randomInt(burst + 1));
          for (let j = 0; j < gone; j++) {
            const at = ctx.randomInt(noiseKeys.length);
            const k = noiseKeys[at];
            noiseKeys[at] = noiseKeys[noiseKeys.length - 1];
            noiseKeys.pop();
            if (tree.delete(k) === undefined) throw new Error(`noise key ${k} was not there`);
          }
        }
      }
      const k = 100 * (1 + ctx.randomInt(keys));
      const value = (ctx.index + 1) * 1000 + op;
      const r = ctx.random();
      if (ends && r < 0.2) {
        const which = ctx.randomInt(4);
        if (which === 0) recorder.record("first", [], () => tree.first());
        else if (which === 1) recorder.record("last", [], () => tree.last());
        else if (which === 2) recorder.record("popFirst", [], () => tree.popFirst());
        else recorder.record("popLast", [], () => tree.popLast());
      } else if (r < 0.34) {
        recorder.record("get", [k], () => tree.get(k));
      } else if (r < 0.4) {
        recorder.record("has", [k], () => tree.has(k));
      } else if (r < 0.55) {
        recorder.record("set", [k, value], () => tree.set(k, value));
      } else if (r < 0.65) {
        recorder.record("insert", [k, value], () => tree.insert(k, value));
      } else if (r < 0.78) {
        recorder.record("remove", [k], () => tree.delete(k));
      } else if (r < 0.88) {
        recorder.record("getOrInsert", [k, value], () => tree.getOrInsert(k, value));
      } else {
        recorder.record(
          "updateStep",
          [k, value],
          () => tree.update(k, (old) => updateStep(old, value)),
        );
      }
    }
    for (const k of noiseKeys) tree.delete(k);
    histories.push(recorder.records);
  }
  return histories;
}

// ---------------------------------------------------------------------------
// Monotonic scans

/**
 * Keys: 4i ("stable", present throughout, value = key); 4i + 1 ("growing":
 * inserted once, in increasing order, by worker 0, some deleted once later
 * by worker 1); 4i + 2 ("churn": deleted and reinserted over and over by
 * worker 1); 4i + 3 never exist.
 */
export interface ScanArgs {
  readonly tree: BPlusTreeHandle;
  /** Number of key slots i: keys range over 0 .. 4 * slots - 1. */
  readonly slots: number;
  /** Workers 0 and 1 write; the others scan. */
  readonly clock: HistoryClockHandle;
  /**
   * Int32 words per slot i, at 4i: tick before the growing key's insert
   * started, tick after it finished, tick before its delete started, tick
   * after it finished (0 while not yet).
   */
  readonly ticks: SharedArrayBuffer;
  /** Int32 words: [0] writers done. */
  readonly flags: SharedArrayBuffer;
  /** Scans each scanner runs at least (and until the writers are done). */
  readonly minScans: number;
}

export interface ScanReport {
  readonly scans: number;
  readonly keysSeen: number;
  /** Growing keys seen that were inserted during the scan that saw them. */
  readonly seenWhileInserted: number;
}

export function monotonicScans(ctx: WorkerContext<ScanArgs>): ScanReport | number {
  const { slots, minScans } = ctx.args;
  const tree = BPlusTree.attach<number, number>(ctx.args.tree);
  const clock = HistoryClock.attach(ctx.args.clock);
  const ticks = new Int32Array(ctx.args.ticks);
  const flags = new Int32Array(ctx.args.flags);
  if (ctx.index === 0) {
    // Growing keys, in increasing order; a few bursts of descending ones too.
    let writes = 0;
    for (let i = 0; i < slots; i++) {
      const k = 4 * i + 1;
      Atomics.store(ticks, 4 * i, clock.tick());
      if (!tree.insert(k, k)) throw new Error(`growing key ${k} was present already`);
      Atomics.store(ticks, 4 * i + 1, clock.tick());
      writes++;
      if ((i & 255) === 0) ctx.checkpoint();
    }
    Atomics.add(flags, 0, 1);
    return writes;
  }
  if (ctx.index === 1) {
    let writes = 0;
    const present = new Uint8Array(slots).fill(1);
    // Churn keys at random, and delete growing keys that worker 0 inserted.
    let deleted = 0;
    for (let round = 0; Atomics.load(flags, 0) < 1 || round < 2000; round++) {
      const i = ctx.randomInt(slots);
      const k = 4 * i + 2;
      if (present[i]) {
        if (tree.delete(k) !== k) throw new Error(`churn key ${k} was missing`);
      } else if (!tree.insert(k, k)) {
        throw new Error(`churn key ${k} was present`);
      }
      present[i] ^= 1;
      writes++;
      if (round % 7 === 0) {
        // Delete a growing key that is inserted already (every third one).
        const j = 3 * ctx.randomInt(Math.ceil(slots / 3));
        if (
          j < slots && Atomics.load(ticks, 4 * j + 1) !== 0 && Atomics.load(ticks, 4 * j + 2) === 0
        ) {
          Atomics.store(ticks, 4 * j + 2, clock.tick());
          if (tree.delete(4 * j + 1) !== 4 * j + 1) {
            throw new Error(`growing key ${4 * j + 1} missing`);
          }
          Atomics.store(ticks, 4 * j + 3, clock.tick());
          deleted++;
        }
      }
      if ((round & 255) === 0) ctx.checkpoint();
    }
    // Leave every churn key present again.
    for (let i = 0; i < slots; i++) if (!present[i]) tree.insert(4 * i + 2, 4 * i + 2);
    Atomics.add(flags, 0, 1);
    return writes + deleted;
  }
  let scans = 0;
  let keysSeen = 0;
  let seenWhileInserted = 0;
  const max = 4 * slots;
  while (scans < minScans || Atomics.load(flags, 0) < 2) {
    ctx.checkpoint();
    // Random bounds of every kind.
    const a = ctx.randomInt(max + 8) - 4;
    const b = ctx.randomInt(max + 8) - 4;
    const lo = Math.min(a, b);
    const hi = Math.max(a, b);
    const options: RangeOptions<number> = {};
    const loKind = ctx.randomInt(3);
    const hiKind = ctx.randomInt(3);
    if (loKind === 1) options.gte = lo;
    else if (loKind === 2) options.gt = lo;
    if (hiKind === 1) options.lte = hi;
    else if (hiKind === 2) options.lt = hi;
    const reverse = ctx.random() < 0.5;
    options.reverse = reverse;
    const how = ctx.randomInt(4); // 0, 1: range(); 2: cursor; 3: range with a limit
    if (how === 3) options.limit = 1 + ctx.randomInt(200);
    const inBounds = (k: number) =>
      (options.gte === undefined || k >= options.gte) &&
      (options.gt === undefined || k > options.gt) &&
      (options.lte === undefined || k <= options.lte) &&
      (options.lt === undefined || k < options.lt);
    const seen: number[] = [];
    const t0 = clock.tick();
    if (how === 2) {
      using cursor = tree.cursor();
      if (reverse) {
        if (options.lte !== undefined) cursor.seekForPrev(options.lte);
        else if (options.lt !== undefined) cursor.seekForPrev(options.lt - 1);
        else cursor.seekToLast();
        for (let e = cursor.prev(); e !== undefined && inBounds(e[0]); e = cursor.prev()) {
          seen.push(e[0]);
          if (e[1] !== e[0]) throw new Error(`cursor: key ${e[0]} has value ${e[1]}`);
        }
      } else {
        if (options.gte !== undefined) cursor.seek(options.gte);
        else if (options.gt !== undefined) cursor.seek(options.gt + 1);
        else cursor.seekToFirst();
        for (let e = cursor.next(); e !== undefined && inBounds(e[0]); e = cursor.next()) {
          seen.push(e[0]);
          if (e[1] !== e[0]) throw new Error(`cursor: key ${e[0]} has value ${e[1]}`);
        }
      }
    } else {
      for (const [k, v] of tree.range(options)) {
        seen.push(k);
        if (v !== k) throw new Error(`range: key ${k} has value ${v}`);
      }
    }
    const t1 = clock.tick();
    const what = `${how === 2 ? "cursor" : "range"} ${JSON.stringify(options)}`;
    // Strictly monotonic (no duplicates), in bounds, never a key that never existed.
    for (let j = 0; j < seen.length; j++) {
      const k = seen[j];
      if (!inBounds(k)) throw new Error(`${what} returned ${k}, out of bounds`);
      if (j > 0 && (reverse ? seen[j - 1] <= k : seen[j - 1] >= k)) {
        throw new Error(`${what} returned ${seen[j - 1]} then ${k}`);
      }
      if (k < 0 || k >= max || k % 4 === 3) {
        throw new Error(`${what} returned ${k}, never inserted`);
      }
      if (k % 4 === 1) {
        const i = (k - 1) / 4;
        const insertStart = Atomics.load(ticks, 4 * i);
        const deleteEnd = Atomics.load(ticks, 4 * i + 3);
        if (insertStart === 0 || insertStart > t1) {
          throw new Error(
            `${what} returned ${k}, inserted only after the scan (${insertStart} > ${t1})`,
          );
        }
        if (deleteEnd !== 0 && deleteEnd < t0) {
          throw new Error(`${what} returned ${k}, deleted before the scan (${deleteEnd} < ${t0})`);
        }
        const insertEnd = Atomics.load(ticks, 4 * i + 1);
        if (insertEnd > t0) seenWhileInserted++;
      }
    }
    // Every key present throughout the scan is there, within the limit.
    const expected: number[] = [];
    for (let k = 0; k < max; k++) {
      if (!inBounds(k)) continue;
      if (k % 4 === 0) {
        expected.push(k);
      } else if (k % 4 === 1) {
        const i = (k - 1) / 4;
        const insertEnd = Atomics.load(ticks, 4 * i + 1);
        const deleteStart = Atomics.load(ticks, 4 * i + 2);
        if (insertEnd !== 0 && insertEnd < t0 && (deleteStart === 0 || deleteStart > t1)) {
          expected.push(k);
        }
      }
    }
    if (reverse) expected.reverse();
    const seenSet = new Set(seen);
    const limited = options.limit !== undefined && seen.length === options.limit;
    const last = seen[seen.length - 1];
    for (const k of expected) {
      if (limited && (reverse ? k < last : k > last)) break;
      if (!seenSet.has(k)) {
        throw new Error(
          `${what} missed ${k}, present throughout the scan (saw ${seen.length} keys)`,
        );
      }
    }
    if (options.limit !== undefined && seen.length > options.limit) {
      throw new Error(`${what} returned ${seen.length} entries`);
    }
    keysSeen += seen.length;
    scans++;
  }
  return { scans, keysSeen, seenWhileInserted };
}

// ---------------------------------------------------------------------------
// Splits and merges under load

export interface StressArgs {
  readonly tree: BPlusTreeHandle;
  /** Worker w owns keys k with k % workers === w, k from 0 to keysPerWorker * workers - 1. */
  readonly keysPerWorker: number;
  readonly rounds: number;
  /** String keys (`stressKey(k)`, long shared prefix) instead of the i32 keys k. */
  readonly stringKeys?: boolean;
}

export interface CursorStepArgs {
  readonly tree: BPlusTreeHandle;
  /** Keys are 0 .. keys - 1. */
  readonly keys: number;
  /** Writes each writer makes. */
  readonly writes: number;
  /** Int32 words: [0] writers done. */
  readonly flags: SharedArrayBuffer;
}

/**
 * Workers 0 and 1 set and delete random keys (splits, merges and
 * redistributions of small leaves); the others move cursors meanwhile and
 * return each step that came back on the wrong side of its key: `next()`
 * after `seek(k)` below k, `prev()` after `seekForPrev(k)` above k.
 */
export function cursorSteps(ctx: WorkerContext<CursorStepArgs>): string[] {
  const { keys, writes } = ctx.args;
  const tree = BPlusTree.attach<number, number>(ctx.args.tree);
  const flags = new Int32Array(ctx.args.flags);
  if (ctx.index < 2) {
    for (let i = 0; i < writes; i++) {
      const k = ctx.randomInt(keys);
      if (ctx.random() < 0.5) tree.set(k, k);
      else tree.delete(k);
      if ((i & 1023) === 0) ctx.checkpoint();
    }
    Atomics.add(flags, 0, 1);
    return [];
  }
  const wrong: string[] = [];
  const cursor = tree.cursor();
  for (let i = 0; Atomics.load(flags, 0) < 2; i++) {
    const k = ctx.randomInt(keys);
    if (ctx.random() < 0.5) {
      cursor.seek(k);
      const entry = cursor.next();
      if (entry !== undefined && entry[0] < k) wrong.push(`next() after seek(${k}): ${entry}`);
    } else {
      cursor.seekForPrev(k);
      const entry = cursor.prev();
      if (entry !== undefined && entry[0] > k) {
        wrong.push(`prev() after seekForPrev(${k}): ${entry}`);
      }
    }
    if ((i & 1023) === 0) ctx.checkpoint();
  }
  return wrong;
}

/** The string key of integer k in the string-keyed stress: string order = numeric order. */
export function stressKey(k: number): string {
  return "a long prefix shared by every key, é 😀 " + String(k).padStart(9, "0");
}

export interface StressReport {
  /** This worker's keys and values at the end, flattened [k0, v0, k1, v1, ...]. */
  readonly entries: number[];
  readonly ops: number;
}

/**
 * Every worker fills its keys (interleaved with everyone else's, so the same
 * leaves split and merge under several writers), then drains most of them,
 * round after round, with point reads, updates and short scans mixed in,
 * checking every result against its own model.
 */
export function splitMergeStress(ctx: WorkerContext<StressArgs>): StressReport {
  const { keysPerWorker, rounds } = ctx.args;
  const W = ctx.workers;
  const tree = BPlusTree.attach<unknown, number>(ctx.args.tree);
  const present = new Uint8Array(keysPerWorker);
  const values = new Int32Array(keysPerWorker);
  const stringKeys = ctx.args.stringKeys === true;
  const keyOf = (j: number): unknown =>
    stringKeys ? stressKey(j * W + ctx.index) : j * W + ctx.index;
  const numberOf = (key: unknown): number =>
    stringKeys ? Number((key as string).slice(-9)) : key as number;
  let ops = 0;
  let stamp = 0;
  const check = (what: string, got: unknown, wanted: unknown) => {
    if (got !== wanted) {
      throw new Error(`${what} returned ${got}, expected ${wanted} (round op ${ops})`);
    }
  };
  const step = (j: number, fill: boolean) => {
    const k = keyOf(j);
    const had = present[j] === 1;
    const old = values[j];
    const v = ((ctx.index + 1) << 24) | (++stamp & 0xffffff);
    const r = ctx.randomInt(10);
    ops++;
    if (fill ? r < 6 : r < 2) {
      if (r % 2 === 0) check(`set(${k})`, tree.set(k, v), had ? old : undefined);
      else {
        check(`insert(${k})`, tree.insert(k, v), !had);
        if (had) return;
      }
      present[j] = 1;
      values[j] = v;
    } else if (r < 8) {
      check(`delete(${k})`, tree.delete(k), had ? old : undefined);
      present[j] = 0;
    } else if (r < 9) {
      const next = had ? undefined : v;
      check(
        `update(${k})`,
        tree.update(k, (o) => {
          if (o !== (had ? old : undefined)) throw new Error(`update(${k}) saw ${o}`);
          return next;
        }),
        next,
      );
      present[j] = had ? 0 : 1;
      values[j] = v;
    } else {
      check(`get(${k})`, tree.get(k), had ? old : undefined);
      // A short scan over own and foreign keys: own keys must match.
      let prev = -Infinity;
      for (const [found, value] of tree.range({ gte: k, limit: 4 * W })) {
        const key = numberOf(found);
        if (key <= prev) throw new Error(`range after ${prev} returned ${key}`);
        prev = key;
        if (key % W === ctx.index) {
          const i = (key - ctx.index) / W;
          if (!present[i] || values[i] !== value) {
            throw new Error(
              `range returned own key ${key} => ${value}, model ${
                present[i] ? values[i] : "absent"
              }`,
            );
          }
        }
      }
    }
  };
  for (let round = 0; round < rounds; round++) {
    ctx.checkpoint();
    // Fill: mostly in increasing order (right-edge splits), else random.
    const ascending = round % 2 === 0;
    for (let n = 0; n < keysPerWorker * 2; n++) {
      step(ascending ? n % keysPerWorker : ctx.randomInt(keysPerWorker), true);
    }
    // Drain: all but a few keys.
    for (let n = 0; n < keysPerWorker * 3; n++) step(ctx.randomInt(keysPerWorker), false);
    for (let j = 0; j < keysPerWorker; j++) {
      if (present[j] && ctx.random() < 0.9) {
        check(`delete(${keyOf(j)})`, tree.delete(keyOf(j)), values[j]);
        present[j] = 0;
      }
    }
  }
  const entries: number[] = [];
  for (let j = 0; j < keysPerWorker; j++) {
    check(`final get(${keyOf(j)})`, tree.get(keyOf(j)), present[j] ? values[j] : undefined);
    if (present[j]) entries.push(j * W + ctx.index, values[j]);
  }
  return { entries, ops };
}

// ---------------------------------------------------------------------------
// Termination at crash points

export interface DyingArgs {
  readonly tree: BPlusTreeHandle;
  /** Worker w's keys are w * stride + j. */
  readonly stride: number;
  /** Key indexes j of worker 0 that `state` tracks (0 .. doomedKeys - 1). */
  readonly doomedKeys: number;
  /** Worker 0's keys present at the start: j = 4i for i below `preloaded`. */
  readonly preloaded: number;
  /** Key indexes j of each survivor that `state` tracks; even ones present at the start. */
  readonly survivorKeys: number;
  /**
   * Int32 words [present, value] per key index, after each completed
   * operation: worker 0's at 2j, survivor w's at 2 * (doomedKeys + (w - 1) * survivorKeys + j).
   */
  readonly state: SharedArrayBuffer;
  /** Int32 words per worker: [active, key index, present, value] of the operation in flight. */
  readonly pending: SharedArrayBuffer;
  /** Int32 words: [0] the doomed worker is dying, [1] writers done. */
  readonly flags: SharedArrayBuffer;
  /** Worker 0 dies at the `after`-th visit of crash point `site`. */
  readonly dieAt: { readonly site: string; readonly after: number };
  /**
   * What the doomed worker does until it dies: "grow" inserts new keys in
   * increasing order from the middle of its range on (splits, and root
   * growth once its keys dominate the tree); "shrink" deletes its keys from
   * the middle outwards (merges, and root shrinking once most are gone),
   * then inserts them again and starts over.
   */
  readonly doomed: "grow" | "shrink";
  /** Workers 1 .. writers write their own keys; the rest only read. */
  readonly writers: number;
  /** Operations each survivor runs after the death. */
  readonly opsAfter: number;
  /** The survivors' `tree.writeTimeoutMs`: a write that waits longer throws TimeoutError. */
  readonly writeTimeoutMs: number;
}

/** Where key index j of worker w is tracked in `state` (in [present, value] pairs). */
export function stateSlot(args: DyingArgs, w: number, j: number): number {
  return w === 0 ? j : args.doomedKeys + (w - 1) * args.survivorKeys + j;
}

/**
 * Worker 0 changes its own keys until it dies at its crash point; workers
 * 1 .. writers run random operations on their own keys (far from worker
 * 0's, in other subtrees), checked against a model, and keep going after
 * the death; the other workers only read, everywhere, worker 0's keys
 * included. Progress is published in `state` and `pending` so that a
 * newcomer knows what to expect.
 */
export interface SurvivorReport {
  /** Operations run. */
  readonly ops: number;
  /** Writes that gave up with TimeoutError (having changed nothing, as checked). */
  readonly timeouts: number;
}

export function dieAtCrashPoint(ctx: WorkerContext<DyingArgs>): SurvivorReport {
  const args = ctx.args;
  const { stride, dieAt, opsAfter, survivorKeys, writers } = args;
  const tree = BPlusTree.attach<number, number>(args.tree);
  const state = new Int32Array(args.state);
  const pending = new Int32Array(args.pending);
  const flags = new Int32Array(args.flags);
  const base = ctx.index * stride;
  const p = 4 * ctx.index;
  const announce = (j: number, isPresent: boolean, value: number) => {
    Atomics.store(pending, p + 1, j);
    Atomics.store(pending, p + 2, isPresent ? 1 : 0);
    Atomics.store(pending, p + 3, value);
    Atomics.store(pending, p, 1);
  };
  const settle = (j: number, isPresent: boolean, value: number) => {
    const s = 2 * stateSlot(args, ctx.index, j);
    Atomics.store(state, s + 1, value);
    Atomics.store(state, s, isPresent ? 1 : 0);
    Atomics.store(pending, p, 0);
  };
  if (ctx.index === 0) {
    let visits = 0;
    faultInjection.hook = (site) => {
      if (site === dieAt.site && ++visits === dieAt.after) {
        Atomics.store(flags, 0, 1);
        Atomics.notify(flags, 0);
        ctx.post("dying");
        ctx.hang();
      }
    };
    // It keeps going until it reaches its crash point: it needs nothing
    // from the others to get there.
    const { doomedKeys, preloaded } = args;
    const present = new Uint8Array(doomedKeys);
    const top = 4 * preloaded;
    for (let j = 0; j < top; j += 4) present[j] = 1;
    const put = (j: number, v: number) => {
      announce(j, true, v);
      tree.set(base + j, v);
      present[j] = 1;
      settle(j, true, v);
    };
    const remove = (j: number) => {
      announce(j, false, 0);
      tree.delete(base + j);
      present[j] = 0;
      settle(j, false, 0);
    };
    for (let cycle = 1; cycle < 100; cycle++) {
      if (args.doomed === "grow") {
        // The gaps between its keys from the middle of its range up (every
        // leaf there splits, far from the other workers' keys), then new
        // keys above its range.
        for (let j = top >> 1; j < doomedKeys; j++) if (!present[j]) put(j, cycle);
        for (let j = top >> 1; j < doomedKeys; j++) if (j % 4 !== 0 || j >= top) remove(j);
      } else {
        // From the middle outwards.
        for (let d = 0; d < preloaded; d++) {
          for (const j of [4 * (preloaded >> 1) + 4 * d, 4 * (preloaded >> 1) - 4 - 4 * d]) {
            if (j >= 0 && j < top && present[j]) remove(j);
          }
        }
        for (let j = 0; j < top; j += 4) put(j, cycle);
      }
      ctx.checkpoint();
    }
    throw new Error(`crash point ${dieAt.site} was never reached`);
  }
  if (ctx.index > writers) {
    // A reader: lookups and scans everywhere, worker 0's keys included.
    let reads = 0;
    let readsAfter = 0;
    const check = (k: number, v: number | undefined) => {
      if (v !== undefined && typeof v !== "number") throw new Error(`get(${k}) returned ${v}`);
    };
    // Readers never wait for writers: it finishes on its own after the death.
    while (Atomics.load(flags, 0) === 0 || readsAfter++ < opsAfter) {
      const w = ctx.randomInt(writers + 1);
      const k = w * stride + ctx.randomInt(w === 0 ? args.doomedKeys : survivorKeys);
      check(k, tree.get(k));
      let prev = -Infinity;
      for (const [key] of tree.range({ gte: k, limit: 20, reverse: ctx.random() < 0.5 })) {
        if (prev !== -Infinity && key === prev) throw new Error(`scan repeated ${key}`);
        prev = key;
      }
      reads++;
      if ((reads & 63) === 0) ctx.checkpoint();
    }
    return { ops: reads, timeouts: 0 };
  }
  const present = new Uint8Array(survivorKeys);
  const values = new Int32Array(survivorKeys);
  for (let j = 0; j < survivorKeys; j += 2) present[j] = 1;
  tree.writeTimeoutMs = args.writeTimeoutMs;
  let seq = 0;
  let timeouts = 0;
  const run = () => {
    const j = ctx.randomInt(survivorKeys);
    const k = base + j;
    const had = present[j] === 1;
    const old = values[j];
    const v = ++seq;
    const expect = (what: string, got: unknown, wanted: unknown) => {
      if (got !== wanted) throw new Error(`${what}(${k}) returned ${got}, expected ${wanted}`);
    };
    const r = ctx.randomInt(6);
    try {
      if (r < 2) {
        announce(j, true, v);
        expect("set", tree.set(k, v), had ? old : undefined);
        present[j] = 1;
        values[j] = v;
        settle(j, true, v);
      } else if (r < 4) {
        announce(j, false, 0);
        expect("delete", tree.delete(k), had ? old : undefined);
        present[j] = 0;
        settle(j, false, 0);
      } else {
        expect("get", tree.get(k), had ? old : undefined);
      }
    } catch (e) {
      if (!(e instanceof TimeoutError)) throw e;
      // It gave up having changed nothing.
      timeouts++;
      expect("get after a timed-out write", tree.get(k), had ? old : undefined);
      settle(j, had, old);
    }
  };
  // Until the doomed worker dies (it needs no help from us to get there).
  while (Atomics.load(flags, 0) === 0) {
    for (let i = 0; i < 16 && timeouts === 0; i++) run();
    ctx.checkpoint();
  }
  // After it: opsAfter operations, or fewer once writes keep timing out.
  for (let i = 0; i < opsAfter && timeouts < 3; i++) {
    run();
    if ((i & 63) === 0) ctx.checkpoint();
  }
  for (let j = 0; j < survivorKeys; j++) {
    const got = tree.get(base + j);
    const wanted = present[j] ? values[j] : undefined;
    if (got !== wanted) throw new Error(`own key ${base + j}: ${got}, expected ${wanted}`);
  }
  Atomics.add(flags, 1, 1);
  return { ops: seq, timeouts };
}

export interface ProbeReport {
  /** Writes to the key worker 0 was writing when it died that timed out (changing nothing). */
  readonly inFlightTimeouts: number;
  /** Writes to keys far from it (j = 0 .. 9) that went through. */
  readonly farWrites: number;
  /** Writes to the survivors' keys that went through. */
  readonly survivorWrites: number;
  /** ... and that timed out. */
  readonly survivorTimeouts: number;
}

/**
 * After the death, with a short writeTimeoutMs: a write to the key worker 0
 * was writing (in a node it left latched) must give up with TimeoutError
 * and change nothing; writes elsewhere go through. Run after newcomerReads.
 */
export function probeWrites(ctx: WorkerContext<NewcomerArgs>): ProbeReport {
  const { dying } = ctx.args;
  const tree = BPlusTree.attach<number, number>(dying.tree);
  tree.writeTimeoutMs = 50;
  const pending = new Int32Array(dying.pending);
  const j = pending[1];
  const k = j;
  const before = tree.get(k);
  let inFlightTimeouts = 0;
  for (const attempt of [() => tree.set(k, -7), () => tree.delete(k), () => tree.insert(k, -7)]) {
    try {
      attempt();
      // It went through: the node was not latched after all. Put it back.
      if (before === undefined) tree.delete(k);
      else tree.set(k, before);
    } catch (e) {
      if (!(e instanceof TimeoutError)) throw e;
      inFlightTimeouts++;
      if (tree.get(k) !== before) throw new Error(`a timed-out write changed key ${k}`);
    }
  }
  let farWrites = 0;
  for (let f = 0; f < 10; f++) {
    try {
      const old = tree.get(f);
      tree.set(f, old ?? 0);
      farWrites++;
    } catch (e) {
      if (!(e instanceof TimeoutError)) throw e;
    }
  }
  let survivorWrites = 0;
  let survivorTimeouts = 0;
  for (let w = 1; w <= dying.writers; w++) {
    const key = w * dying.stride + dying.survivorKeys + 7; // a key nobody tracks
    try {
      tree.set(key, 1);
      if (tree.delete(key) !== 1) throw new Error(`probe key ${key} lost`);
      survivorWrites++;
    } catch (e) {
      if (!(e instanceof TimeoutError)) throw e;
      survivorTimeouts++;
    }
  }
  return { inFlightTimeouts, farWrites, survivorWrites, survivorTimeouts };
}

export interface NewcomerArgs {
  readonly dying: DyingArgs;
  readonly workers: number;
}

/**
 * A newcomer, reading only: every key of every writer, worker 0 included,
 * holds what its owner last did (for an operation a worker left in flight,
 * what it did before or what the operation would have done), and a full
 * scan agrees with point reads. Returns the number of keys it checked.
 */
export function newcomerReads(ctx: WorkerContext<NewcomerArgs>): number {
  const { dying, workers } = ctx.args;
  const tree = BPlusTree.attach<number, number>(dying.tree);
  const state = new Int32Array(dying.state);
  const pending = new Int32Array(dying.pending);
  let checked = 0;
  const expected = new Map<number, number>();
  for (let w = 0; w <= dying.writers && w < workers; w++) {
    const inFlight = Atomics.load(pending, 4 * w) === 1
      ? { j: pending[4 * w + 1], present: pending[4 * w + 2] === 1, value: pending[4 * w + 3] }
      : undefined;
    const keys = w === 0 ? dying.doomedKeys : dying.survivorKeys;
    for (let j = 0; j < keys; j++) {
      const s = 2 * stateSlot(dying, w, j);
      const before = state[s] === 1 ? state[s + 1] : undefined;
      const after = inFlight?.j === j ? (inFlight.present ? inFlight.value : undefined) : before;
      const k = w * dying.stride + j;
      const got = tree.get(k);
      if (got !== before && got !== after) {
        throw new Error(`worker ${w}'s key ${k}: ${got}, expected ${before} or ${after}`);
      }
      if (got !== undefined) expected.set(k, got);
      checked++;
    }
  }
  let seen = 0;
  let prev = -Infinity;
  for (const [k, v] of tree) {
    if (k <= prev) throw new Error(`iteration: ${k} after ${prev}`);
    prev = k;
    if (expected.has(k) && expected.get(k) !== v) throw new Error(`iteration: ${k} => ${v}`);
    seen++;
  }
  if (seen !== expected.size) {
    throw new Error(`iteration saw ${seen} entries, expected ${expected.size}`);
  }
  if (tree.size !== expected.size) throw new Error(`size ${tree.size}, expected ${expected.size}`);
  return checked;
}

// ---------------------------------------------------------------------------
// Bad input and handles inside workers

export interface AttachArgs {
  readonly tree: BPlusTreeHandle;
  /** The string-keyed tree the parent filled with "k<i>" => i for i < prefilled. */
  readonly prefilled: number;
}

/**
 * Attaches a string → f64 tree from its posted handle, reads what the
 * parent wrote, checks that bad input is refused with the right error and
 * leaves the tree untouched, then writes keys of its own.
 */
export function attachedAndBadInput(ctx: WorkerContext<AttachArgs>): string[] {
  const tree = BPlusTree.attach<string, number>(ctx.args.tree);
  const { prefilled } = ctx.args;
  for (let i = 0; i < prefilled; i++) {
    if (tree.get(`k${i}`) !== i) throw new Error(`k${i}: ${tree.get(`k${i}`)}`);
  }
  // Nobody writes until every worker has checked its refusals.
  ctx.barrier.wait();
  const size = tree.size;
  const refusals: string[] = [];
  const bad: [
    string,
    () => unknown,
    ErrorConstructor | RangeErrorConstructor | TypeErrorConstructor,
  ][] = [
    ["set(1, 1)", () => (tree as unknown as BPlusTree<unknown, unknown>).set(1, 1), TypeError],
    [
      "set('x', '1')",
      () => (tree as unknown as BPlusTree<unknown, unknown>).set("x", "1"),
      TypeError,
    ],
    ["set(too long)", () => tree.set("x".repeat(ctx.args.prefilled + 10_000), 1), RangeError],
    ["insert(lone surrogate)", () => tree.insert("\uD800", 1), TypeError],
    ["get(null)", () => (tree as unknown as BPlusTree<unknown, unknown>).get(null), TypeError],
    [
      "delete(undefined)",
      () => (tree as unknown as BPlusTree<unknown, unknown>).delete(undefined),
      TypeError,
    ],
    ["update(bad result)", () => tree.update("k0", () => "no" as unknown as number), TypeError],
  ];
  for (const [what, call, errorClass] of bad) {
    try {
      call();
      throw new Error(`${what} did not throw`);
    } catch (e) {
      if (!(e instanceof errorClass)) {
        throw new Error(
          `${what} threw ${(e as Error).name}: ${
            (e as Error).message
          }, expected ${errorClass.name}`,
        );
      }
      refusals.push(`${what}: ${e.name}`);
    }
    if (tree.size !== size) throw new Error(`${what} changed the size to ${tree.size}`);
  }
  if (tree.get("k0") !== 0) throw new Error(`k0 changed to ${tree.get("k0")}`);
  ctx.barrier.wait();
  for (let i = 0; i < 200; i++) tree.set(`w${ctx.index}.${i}`, i + 0.5);
  return refusals;
}

// ---------------------------------------------------------------------------
// bulkLoad against a racing writer

/** Arguments of {@linkcode bulkLoadRace}. */
export interface BulkLoadRaceArgs {
  readonly rounds: number;
  /** Byte offset of a heap word: 1 once worker 0's bulkLoad went through. */
  readonly flag: number;
}
/**
 * Worker 0 bulk-loads a fresh tree each round while worker 1, the only
 * writer of key 0, inserts and deletes it: no insert may be lost, and the
 * tree must stay whole. Returns the problems seen.
 */
export function bulkLoadRace(ctx: WorkerContext<BulkLoadRaceArgs>): string[] {
  const heap = ctx.heap!;
  const flag = ctx.args.flag >> 2;
  const problems: string[] = [];
  let attempts = 0;
  for (let round = 0; round < ctx.args.rounds; round++) {
    if (ctx.index === 0) {
      const t = BPlusTree.create<number, number>(heap, { key: "i32", value: "i32" });
      heap.setRoot("t", t.handle);
      Atomics.store(heap.i32, flag, 0);
    }
    ctx.barrier.wait();
    const tree = BPlusTree.attach<number, number>(heap.root("t") as BPlusTreeHandle);
    ctx.barrier.wait();
    if (ctx.index === 0) {
      for (;;) {
        attempts++;
        try {
          tree.bulkLoad([[1, 1], [2, 2], [3, 3]]);
          break;
        } catch (e) {
          if (!/not empty|another worker/.test((e as Error).message)) throw e;
        }
      }
      Atomics.store(heap.i32, flag, 1);
    } else {
      let present = false;
      let after = 0;
      while (after < 20) {
        if (Atomics.load(heap.i32, flag) === 1) after++;
        if (!present) {
          if (!tree.insert(0, 7)) problems.push(`round ${round}: insert(0) found 0 present`);
          present = true;
        } else {
          const v = tree.delete(0);
          if (v !== 7) problems.push(`round ${round}: delete(0) returned ${v}: an insert was lost`);
          present = false;
        }
      }
    }
    ctx.barrier.wait();
    if (ctx.index === 0) {
      try {
        checkTree(tree, { strictFill: false });
      } catch (e) {
        problems.push(`round ${round}: checkTree: ${(e as Error).message.slice(0, 120)}`);
      }
    }
    ctx.barrier.wait();
    if (problems.length > 5) break;
  }
  void attempts;
  return problems;
}
