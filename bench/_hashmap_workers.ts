/**
 * Worker side of the HashMap benches (`hashmap_bench.ts`), and the pieces the
 * main thread shares with it:
 *
 * - key distributions: a seeded generator, a Zipf sampler, and precomputed
 *   key sequences, so that drawing keys costs the same (one array read) for
 *   every map and every distribution;
 * - {@linkcode LockedTable}: the simplest correct shared map, an
 *   open-addressing table over a SharedArrayBuffer with plain reads and
 *   writes under one sabre RwLock;
 * - the `sharedmap` npm package, typed by hand (its bundled typings do not
 *   describe its default export);
 * - {@linkcode concacheScenarios}: readers and writers of the four maps for a
 *   {@linkcode ContentionSuite};
 * - {@linkcode serveMapRequests}: a worker that owns a JS Map and answers
 *   get/set requests by message, run when this module is a worker's entry;
 * - {@linkcode insertTimed}: the worker of `hashmap_resize_latency.ts`.
 *
 * @module
 */

import sharedmapModule from "sharedmap";
import { HashMap, type HashMapHandle } from "../hashmap/mod.ts";
import { RwLock, type RwLockHandle } from "../latch/mod.ts";
import { faultInjection } from "../memory/mod.ts";
import type { Batch, Scenarios } from "./_contention.ts";
import { seededRandom, type WorkerContext } from "../testing/harness.ts";

// ---------------------------------------------------------------- keys

/** Keys of the concache-shaped benches: 0 to KEYS - 1. */
export const KEYS = 10_000;
/** Exponent of the skewed distribution, as in the concache and evmap benches. */
export const ZIPF_EXPONENT = 1.03;
/** Length of each precomputed key sequence (a power of two). */
export const SEQUENCE_LENGTH = 1 << 16;

/**
 * A sampler of ranks 0 to n - 1 with P(rank r) proportional to
 * 1 / (r + 1)^exponent: inverse transform sampling over the precomputed
 * cumulative distribution, by binary search.
 */
export function zipfSampler(n: number, exponent: number, random: () => number): () => number {
  const cdf = new Float64Array(n);
  let total = 0;
  for (let r = 0; r < n; r++) cdf[r] = total += 1 / Math.pow(r + 1, exponent);
  for (let r = 0; r < n; r++) cdf[r] /= total;
  cdf[n - 1] = 1;
  return () => {
    const u = random();
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (cdf[mid] <= u) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
}

/** The key distributions of the concache-shaped benches. */
export type Distribution = "uniform" | "zipf";

/**
 * `length` keys from 0 to `keys` - 1, drawn from `distribution`. Zipf ranks
 * go through a fixed random permutation, so the hot keys are not neighbours.
 */
export function keySequence(
  distribution: Distribution,
  keys: number,
  length: number,
  seed: number,
): Int32Array {
  const random = seededRandom(seed);
  const out = new Int32Array(length);
  if (distribution === "uniform") {
    for (let i = 0; i < length; i++) out[i] = Math.floor(random() * keys);
    return out;
  }
  const permutation = new Int32Array(keys);
  for (let i = 0; i < keys; i++) permutation[i] = i;
  const shuffle = seededRandom(0x5eed);
  for (let i = keys - 1; i > 0; i--) {
    const j = Math.floor(shuffle() * (i + 1));
    const t = permutation[i];
    permutation[i] = permutation[j];
    permutation[j] = t;
  }
  const rank = zipfSampler(keys, ZIPF_EXPONENT, random);
  for (let i = 0; i < length; i++) out[i] = permutation[rank()];
  return out;
}

/** The 16-character (16-byte UTF-8) string key of integer `i`. */
export function stringKey(i: number): string {
  return `key-${i.toString().padStart(12, "0")}`;
}

// ---------------------------------------------------------------- RwLock table

/** 32-bit integer mix (murmur3 finalizer), as sabre's HashMap uses for i32 keys. */
function mix32(x: number): number {
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b);
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35);
  return x ^ (x >>> 16);
}

/** What a worker needs to attach a {@linkcode LockedTable}. */
export interface LockedTableHandle {
  readonly lock: RwLockHandle;
  /** Two Int32 words per slot: key + 1 (0 when empty), value. */
  readonly slots: SharedArrayBuffer;
}

/**
 * The straightforward alternative to a lock-free map: a fixed-capacity
 * open-addressing table (linear probing) of non-negative i32 keys and i32
 * values in a SharedArrayBuffer, every operation under one RwLock. Reads
 * share the lock, so they exclude writers but not each other; inside the
 * lock every access is a plain read or write. No deletes, no growth.
 */
export class LockedTable {
  readonly #lock: RwLock;
  readonly #words: Int32Array;
  readonly #mask: number;

  constructor(handle: LockedTableHandle) {
    this.#lock = RwLock.attach(handle.lock);
    this.#words = new Int32Array(handle.slots);
    this.#mask = (this.#words.length >> 1) - 1;
  }

  /** A table of `capacity` slots (a power of two). */
  static create(capacity: number): LockedTableHandle {
    if ((capacity & (capacity - 1)) !== 0) {
      throw new RangeError(`Cannot create table as 'capacity' must be a power of two: ${capacity}`);
    }
    return { lock: RwLock.create().handle, slots: new SharedArrayBuffer(capacity * 8) };
  }

  get(key: number): number | undefined {
    const words = this.#words;
    const mask = this.#mask;
    const tag = key + 1;
    this.#lock.acquireRead();
    try {
      for (let i = mix32(key) & mask;; i = (i + 1) & mask) {
        const seen = words[i << 1];
        if (seen === tag) return words[(i << 1) + 1];
        if (seen === 0) return undefined;
      }
    } finally {
      this.#lock.releaseRead();
    }
  }

  set(key: number, value: number): void {
    this.#checkKey(key, "set");
    const words = this.#words;
    this.#lock.acquireWrite();
    try {
      const at = this.#slotForWrite(key, "set");
      words[at] = key + 1;
      words[at + 1] = value;
    } finally {
      this.#lock.releaseWrite();
    }
  }

  /** Adds `delta` to the value of `key` (absent counts as 0); returns the sum. */
  add(key: number, delta: number): number {
    this.#checkKey(key, "add");
    const words = this.#words;
    this.#lock.acquireWrite();
    try {
      const at = this.#slotForWrite(key, "add");
      if (words[at] === 0) {
        words[at] = key + 1;
        return words[at + 1] = delta;
      }
      return words[at + 1] += delta;
    } finally {
      this.#lock.releaseWrite();
    }
  }

  #checkKey(key: number, what: string): void {
    if (!(key >= 0 && key < 0x7fffffff && (key | 0) === key)) {
      throw new RangeError(`Cannot ${what} in table as keys must be from 0 to 2^31 - 2: ${key}`);
    }
  }

  /** Word index of `key`'s slot, or of the empty slot it would take. Caller holds the write lock. */
  #slotForWrite(key: number, what: string): number {
    const words = this.#words;
    const mask = this.#mask;
    const tag = key + 1;
    for (let i = mix32(key) & mask, n = 0; n <= mask; i = (i + 1) & mask, n++) {
      const seen = words[i << 1];
      if (seen === tag || seen === 0) return i << 1;
    }
    throw new RangeError(`Cannot ${what} in table as it is full`);
  }
}

// ---------------------------------------------------------------- sharedmap

/** The parts of the `sharedmap` package's class these benches use. */
export interface SharedMapLike {
  get(key: string): string | undefined;
  set(key: string, value: string | number): void;
  readonly length: number;
}

/** The `sharedmap` constructor: entries, key and value capacity in UTF-16 code units. */
export const SharedMap = sharedmapModule as unknown as {
  new (maxSize: number, keySize: number, objSize: number): SharedMapLike;
  prototype: SharedMapLike;
};

/**
 * Rebuilds a SharedMap received by structured clone: the clone keeps the
 * typed arrays over the same SharedArrayBuffer but loses the prototype (the
 * package's documented way).
 */
export function reviveSharedMap(clone: unknown): SharedMapLike {
  return Object.setPrototypeOf(clone as object, SharedMap.prototype) as SharedMapLike;
}

// ---------------------------------------------------------------- concache scenarios

/** The shared maps of the concache-shaped benches, each holding keys 0 to KEYS - 1. */
export interface ConcacheArgs {
  /** i32 → i32. */
  readonly sabreInt: HashMapHandle;
  /** 16-byte string (`stringKey(k)`) → i32. */
  readonly sabreString: HashMapHandle;
  readonly locked: LockedTableHandle;
  /** A `sharedmap` SharedMap, structured-cloned; string keys as for sabreString. */
  readonly sharedMap: unknown;
  readonly seed: number;
}

/** The maps of the concache-shaped benches, as named in scenario names. */
export const CONCACHE_MAPS = [
  "sharedmap",
  "RwLock table",
  "sabre HashMap i32 keys",
  "sabre HashMap string keys",
] as const;
/** A map of the concache-shaped benches. */
export type ConcacheMap = typeof CONCACHE_MAPS[number];

/**
 * Scenario name: the measured workers run `measured` operations ("reads" or
 * "writes"), the background workers the other kind until the batch ends.
 */
export function concacheScenario(
  map: ConcacheMap,
  distribution: Distribution,
  measured: "reads" | "writes",
): string {
  return `${map}, ${distribution}, ${measured} measured`;
}

/** Background workers check for the end of the batch every this many operations. */
const END_CHECK = 64;
const SEQUENCE_MASK = SEQUENCE_LENGTH - 1;

/** Throws when a reader sees a missing key or a value written for another key. */
function badRead(map: string, key: number, value: unknown): never {
  throw new Error(`${map} read ${String(value)} for key ${key}: every key is present`);
}

/**
 * The readers and writers of the concache-shaped benches. Every key is
 * present from the start and writers only overwrite, so a reader that misses
 * a key fails the bench; writers store `key + KEYS * n`, so the integer maps'
 * readers also check `value % KEYS === key`. Each worker has its own key
 * sequences and a cursor into each that runs on across batches.
 *
 * The loops are written out per map (no shared generic loop), so each call
 * site sees one map class only.
 */
export function concacheScenarios(args: ConcacheArgs, ctx: { index: number }): Scenarios {
  const sabreInt = HashMap.attach<number, number>(args.sabreInt);
  const sabreString = HashMap.attach<string, number>(args.sabreString);
  const locked = new LockedTable(args.locked);
  const shared = reviveSharedMap(args.sharedMap);
  const strings: string[] = [];
  for (let k = 0; k < KEYS; k++) strings.push(stringKey(k));
  const sequences: Record<Distribution, Int32Array> = {
    uniform: keySequence("uniform", KEYS, SEQUENCE_LENGTH, args.seed + ctx.index * 7919),
    zipf: keySequence("zipf", KEYS, SEQUENCE_LENGTH, args.seed + ctx.index * 7919 + 1),
  };
  let cursor = ctx.index * 4099;
  let stamp = 0;
  let sink = 0;

  // A measured worker runs batch.ops operations; a background one runs until
  // the batch ends, so its bound is Infinity and it polls batch.ended().
  const bound = (batch: Batch) => batch.measured ? batch.ops : Infinity;

  const scenarios: Record<string, (batch: Batch) => void> = {};
  for (const distribution of ["uniform", "zipf"] as const) {
    const seq = sequences[distribution];

    const sabreIntRead = (batch: Batch) => {
      const ops = bound(batch);
      let c = cursor;
      for (let i = 0; i < ops; i++) {
        const k = seq[c++ & SEQUENCE_MASK];
        const v = sabreInt.get(k);
        if (v === undefined || v % KEYS !== k) badRead("sabre HashMap", k, v);
        sink += v;
        if ((i & (END_CHECK - 1)) === 0 && !batch.measured && batch.ended()) break;
      }
      cursor = c;
    };
    const sabreIntWrite = (batch: Batch) => {
      const ops = bound(batch);
      let c = cursor;
      for (let i = 0; i < ops; i++) {
        const k = seq[c++ & SEQUENCE_MASK];
        sabreInt.set(k, k + KEYS * (stamp++ & 0xffff));
        if ((i & (END_CHECK - 1)) === 0 && !batch.measured && batch.ended()) break;
      }
      cursor = c;
    };
    const sabreStringRead = (batch: Batch) => {
      const ops = bound(batch);
      let c = cursor;
      for (let i = 0; i < ops; i++) {
        const k = seq[c++ & SEQUENCE_MASK];
        const v = sabreString.get(strings[k]);
        if (v === undefined || v % KEYS !== k) badRead("sabre HashMap", k, v);
        sink += v;
        if ((i & (END_CHECK - 1)) === 0 && !batch.measured && batch.ended()) break;
      }
      cursor = c;
    };
    const sabreStringWrite = (batch: Batch) => {
      const ops = bound(batch);
      let c = cursor;
      for (let i = 0; i < ops; i++) {
        const k = seq[c++ & SEQUENCE_MASK];
        sabreString.set(strings[k], k + KEYS * (stamp++ & 0xffff));
        if ((i & (END_CHECK - 1)) === 0 && !batch.measured && batch.ended()) break;
      }
      cursor = c;
    };
    const lockedRead = (batch: Batch) => {
      const ops = bound(batch);
      let c = cursor;
      for (let i = 0; i < ops; i++) {
        const k = seq[c++ & SEQUENCE_MASK];
        const v = locked.get(k);
        if (v === undefined || v % KEYS !== k) badRead("RwLock table", k, v);
        sink += v;
        if ((i & (END_CHECK - 1)) === 0 && !batch.measured && batch.ended()) break;
      }
      cursor = c;
    };
    const lockedWrite = (batch: Batch) => {
      const ops = bound(batch);
      let c = cursor;
      for (let i = 0; i < ops; i++) {
        const k = seq[c++ & SEQUENCE_MASK];
        locked.set(k, k + KEYS * (stamp++ & 0xffff));
        if ((i & (END_CHECK - 1)) === 0 && !batch.measured && batch.ended()) break;
      }
      cursor = c;
    };
    const sharedRead = (batch: Batch) => {
      const ops = bound(batch);
      let c = cursor;
      for (let i = 0; i < ops; i++) {
        const k = seq[c++ & SEQUENCE_MASK];
        const v = shared.get(strings[k]);
        if (v === undefined) badRead("sharedmap", k, v);
        sink += v.length;
        if ((i & (END_CHECK - 1)) === 0 && !batch.measured && batch.ended()) break;
      }
      cursor = c;
    };
    const sharedWrite = (batch: Batch) => {
      const ops = bound(batch);
      let c = cursor;
      for (let i = 0; i < ops; i++) {
        const k = seq[c++ & SEQUENCE_MASK];
        shared.set(strings[k], k + KEYS * (stamp++ & 0xffff));
        if ((i & (END_CHECK - 1)) === 0 && !batch.measured && batch.ended()) break;
      }
      cursor = c;
    };

    const pairs: Record<ConcacheMap, [(b: Batch) => void, (b: Batch) => void]> = {
      "sharedmap": [sharedRead, sharedWrite],
      "RwLock table": [lockedRead, lockedWrite],
      "sabre HashMap i32 keys": [sabreIntRead, sabreIntWrite],
      "sabre HashMap string keys": [sabreStringRead, sabreStringWrite],
    };
    for (const map of CONCACHE_MAPS) {
      const [read, write] = pairs[map];
      // Reads measured: the measured workers read, the background ones write.
      scenarios[concacheScenario(map, distribution, "reads")] = (batch) =>
        batch.measured ? read(batch) : write(batch);
      scenarios[concacheScenario(map, distribution, "writes")] = (batch) =>
        batch.measured ? write(batch) : read(batch);
    }
  }
  globalThis.addEventListener("unload", () => {
    if (sink === 0.5) console.log(sink);
  });
  return scenarios;
}

// ---------------------------------------------------------------- contended counters

/** The counters of the contended-add benches, each empty at the start. */
export interface CounterArgs {
  /** i32 → i32. */
  readonly sabreInt: HashMapHandle;
  /** 16-byte string (`stringKey(k)`) → i32. */
  readonly sabreString: HashMapHandle;
  readonly locked: LockedTableHandle;
  /** One Int32 counter per key: what a key space known in advance allows. */
  readonly array: SharedArrayBuffer;
  readonly seed: number;
}

/** The counters of the contended-add benches, as named in scenario names. */
export const COUNTER_MAPS = [
  "RwLock table",
  "sabre HashMap i32 keys",
  "sabre HashMap string keys",
  "Atomics.add on an Int32Array (no map)",
] as const;
/** A counter map of the contended-add benches. */
export type CounterMap = typeof COUNTER_MAPS[number];

/** The key sets of the contended-add benches: few hot keys, or Zipf over KEYS. */
export const COUNTER_KEY_SETS = ["16 keys uniform", `${KEYS} keys Zipf(1.03)`] as const;
/** A key set of the contended-add benches. */
export type CounterKeySet = typeof COUNTER_KEY_SETS[number];

/** Scenario name of the contended-add benches. */
export function counterScenario(map: CounterMap, keySet: CounterKeySet): string {
  return `${map}, ${keySet}, add`;
}

/**
 * Every worker is measured and adds 1 to keys of its own sequence, so all of
 * them write the same hot counters at once. The loops are written out per
 * map, as in concacheScenarios.
 */
export function counterScenarios(args: CounterArgs, ctx: { index: number }): Scenarios {
  const sabreInt = HashMap.attach<number, number>(args.sabreInt);
  const sabreString = HashMap.attach<string, number>(args.sabreString);
  const locked = new LockedTable(args.locked);
  const array = new Int32Array(args.array);
  const strings: string[] = [];
  for (let k = 0; k < KEYS; k++) strings.push(stringKey(k));
  const sequences: Record<CounterKeySet, Int32Array> = {
    "16 keys uniform": keySequence("uniform", 16, SEQUENCE_LENGTH, args.seed + ctx.index * 7919),
    [`${KEYS} keys Zipf(1.03)`]: keySequence(
      "zipf",
      KEYS,
      SEQUENCE_LENGTH,
      args.seed + ctx.index * 7919 + 1,
    ),
  } as Record<CounterKeySet, Int32Array>;
  let cursor = ctx.index * 4099;
  let sink = 0;
  const scenarios: Record<string, (batch: Batch) => void> = {};
  for (const keySet of COUNTER_KEY_SETS) {
    const seq = sequences[keySet];
    const loops: Record<CounterMap, (batch: Batch) => void> = {
      "RwLock table": (batch) => {
        let c = cursor;
        for (let i = 0; i < batch.ops; i++) sink += locked.add(seq[c++ & SEQUENCE_MASK], 1);
        cursor = c;
      },
      "sabre HashMap i32 keys": (batch) => {
        let c = cursor;
        for (let i = 0; i < batch.ops; i++) sink += sabreInt.add(seq[c++ & SEQUENCE_MASK], 1);
        cursor = c;
      },
      "sabre HashMap string keys": (batch) => {
        let c = cursor;
        for (let i = 0; i < batch.ops; i++) {
          sink += sabreString.add(strings[seq[c++ & SEQUENCE_MASK]], 1);
        }
        cursor = c;
      },
      "Atomics.add on an Int32Array (no map)": (batch) => {
        let c = cursor;
        for (let i = 0; i < batch.ops; i++) sink += Atomics.add(array, seq[c++ & SEQUENCE_MASK], 1);
        cursor = c;
      },
    };
    for (const map of COUNTER_MAPS) scenarios[counterScenario(map, keySet)] = loops[map];
  }
  globalThis.addEventListener("unload", () => {
    if (sink === 0.5) console.log(sink);
  });
  return scenarios;
}

// ---------------------------------------------------------------- message passing

/** A request to the map-owning worker: [GET, key] or [SET, key, value]. */
export type MapRequest =
  | readonly [op: typeof GET, key: number]
  | readonly [
    op: typeof SET,
    key: number,
    value: number,
  ];
/** Opcode of a get request; the reply is the value or `undefined`. */
export const GET = 0;
/** Opcode of a set request; the reply is `true`. */
export const SET = 1;

/**
 * What users do today without shared memory: one worker owns a JS Map and
 * answers each request message with one reply message. Its first message
 * gives the number of keys to fill (key k → k); it replies `true` when ready.
 */
export function serveMapRequests(): void {
  const scope = globalThis as unknown as {
    onmessage: ((event: MessageEvent) => void) | null;
    postMessage(message: unknown): void;
  };
  const map = new Map<number, number>();
  scope.onmessage = (event: MessageEvent) => {
    const keys = event.data as number;
    for (let k = 0; k < keys; k++) map.set(k, k);
    scope.onmessage = (event: MessageEvent<MapRequest>) => {
      const request = event.data;
      if (request[0] === GET) scope.postMessage(map.get(request[1]));
      else {
        map.set(request[1], request[2]);
        scope.postMessage(true);
      }
    };
    scope.postMessage(true);
  };
}

// ------------------------------------------------------------ resize latency

/** What `insertTimed` measures. */
export interface ResizeReport {
  /** From the start barrier to the last insert of this worker. */
  readonly ms: number;
  /** This worker's slowest `set`. */
  readonly slowestMs: number;
  /** Visits of each crash point (one per resize step) in this worker. */
  readonly sites: Record<string, number>;
}

/**
 * Inserts this worker's share of keys 0 to `keys` - 1 (every `workers`-th
 * one) into the map, timing each `set`, and counts the crash points passed
 * through the fault-injection hook.
 */
export function insertTimed(
  ctx: WorkerContext<{ map: HashMapHandle; keys: number }>,
): ResizeReport {
  const map = HashMap.attach<number, number>(ctx.args.map);
  const sites: Record<string, number> = {};
  faultInjection.hook = (site) => {
    sites[site] = (sites[site] ?? 0) + 1;
  };
  let slowestMs = 0;
  const start = performance.now();
  for (let k = ctx.index; k < ctx.args.keys; k += ctx.workers) {
    const before = performance.now();
    map.set(k, k);
    const took = performance.now() - before;
    if (took > slowestMs) slowestMs = took;
  }
  return { ms: performance.now() - start, slowestMs, sites };
}

if (import.meta.main) serveMapRequests();
