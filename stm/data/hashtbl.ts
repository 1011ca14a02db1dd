/**
 * Hashtbl: a hash table from numbers to numbers, kcas_data's `Hashtbl`
 * (and the rehashable table of kcas's tour), built only on the public
 * Loc/Xt API.
 *
 * ## Layout and memory-model patterns
 *
 * - Three Locs: `size` (i32), `pending` (i32: 0, or the capacity of a
 *   rehash to do), `data` (ref to the bucket table).
 * - Bucket table: an immutable block `[capacity, 0, f64 uid, loc x
 *   capacity]` naming one `"ref"` Loc per bucket: pattern (b), filled
 *   before the commit that publishes it through `data`, retired (with its
 *   bucket Locs) after the commit that replaces it.
 * - Each bucket Loc points to an immutable chain of 24-byte entries
 *   `[f64 key, f64 value, i32 next]`: pattern (b). Changing a chain copies
 *   the entries before the one changed; the replaced ones are retired
 *   through epochs after the commit.
 *
 * Keys compare by SameValueZero (NaN is one key, -0 and 0 are one key).
 *
 * **Rehashing** follows the tour: a mutator that finds the table too full
 * (more than 2 entries per bucket) or too empty (fewer than 1 per 8
 * buckets, down to the initial capacity) first marks `pending` in a quick
 * commit of its own (when `pending` is not yet in its log), and then every
 * set that sees a growth pending does it inside its transaction; one of
 * them wins, the others re-run. Removes shrink, each in a commit of its
 * own (so that on a full heap the shrink fails, not the remove). Lookups
 * never rehash.
 *
 * @module
 */

import {
  checkHeap,
  DestroyedError,
  HeapExhaustedError,
  type SharedHandle,
  type SharedHeap,
  tagOf,
} from "../../memory/mod.ts";
import { type CommitOptions, Loc, Xt } from "../mod.ts";
import { checkCapacity, checkNumber, placeRecord, readRecord, retireRecord } from "./_record.ts";
import {
  allocIn,
  commitTracked,
  freesMemory,
  makeLocIn,
  retireAfter,
  timingOutAs,
} from "./_alloc.ts";
import { checkOptionFields } from "../../memory/_options.ts";

const KIND = "sabre.stm.Hashtbl";
const TAG = tagOf("SHTB");
const SIZE = 0;
const PENDING = 1;
const DATA = 2;
const ENTRY_BYTES = 24;
const T_HEADER = 16;
/** Removes that leave shrinks alone after a shrink found the heap full. */
const SHRINK_BACKOFF = 64;

const scratch = new Float64Array(1);
const scratchWords = new Int32Array(scratch.buffer);

function hashOf(key: number): number {
  if (key === 0 || key !== key) key = key === 0 ? 0 : NaN;
  scratch[0] = key;
  let h = Math.imul(scratchWords[0] ^ 0x27d4eb2f, 0x85ebca6b) ^ scratchWords[1];
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d);
  h = Math.imul(h ^ (h >>> 15), 0x846ca68b);
  return (h ^ (h >>> 16)) >>> 0;
}

function sameKey(a: number, b: number): boolean {
  return a === b || (a !== a && b !== b);
}

/**
 * Handle of a {@linkcode Hashtbl}.
 *
 * @example
 * ```ts
 * import { Hashtbl, type HashtblHandle } from "@sabre/sabre/stm/data";
 * import { SharedHeap } from "@sabre/sabre";
 * const table = Hashtbl.create(SharedHeap.create());
 * table.set(1, 2);
 * const handle: HashtblHandle = table.handle;
 * console.assert(Hashtbl.attach(handle).get(1) === 2);
 * ```
 */
export type HashtblHandle = SharedHandle<"sabre.stm.Hashtbl">;

/**
 * A hash table from numbers to numbers in shared memory, with direct forms
 * (each one transaction) and `xt…` forms that compose into larger
 * transactions. It grows and shrinks by rehashing (see the module notes).
 * Lookups that find nothing commit nothing and never block others.
 *
 * @example
 * ```ts
 * import { Hashtbl } from "@sabre/sabre/stm/data";
 * import { Xt } from "@sabre/sabre";
 * import { SharedHeap } from "@sabre/sabre";
 *
 * const heap = SharedHeap.create();
 * const stock = Hashtbl.create(heap);
 * stock.set(101, 5);
 * stock.set(42, 0);
 * // Move one unit from item 101 to item 42, atomically.
 * Xt.commit((xt) => {
 *   stock.xtSet(xt, 101, stock.xtGet(xt, 101)! - 1);
 *   stock.xtSet(xt, 42, (stock.xtGet(xt, 42) ?? 0) + 1);
 * });
 * console.assert(stock.get(101) === 4 && stock.get(42) === 1 && stock.length === 2);
 * console.assert(stock.remove(42) === 1 && !stock.has(42));
 * ```
 */
export class Hashtbl {
  readonly #heap: SharedHeap;
  readonly #size: Loc;
  readonly #pending: Loc;
  readonly #data: Loc;
  readonly #minCapacity: number;
  readonly #offset: number;
  /** Bucket Locs of the last table seen, by its uid (a table block never changes). */
  #cacheUid = -1;
  #cache: (Loc | undefined)[] = [];
  /** Set by destroy(): every later call on this object throws. */
  #destroyed = false;
  /** Removes left before this object tries a shrink again (see #shrinkAside). */
  #shrinkSkips = 0;

  private constructor(locs: Loc[], minCapacity: number, offset: number) {
    this.#heap = locs[0].heap;
    this.#size = locs[SIZE];
    this.#pending = locs[PENDING];
    this.#data = locs[DATA];
    this.#minCapacity = minCapacity;
    this.#offset = offset;
  }

  /**
   * Creates an empty table in `heap` with `options.capacity` buckets
   * (default 8; a power of two from 1 to 2^20), which is also the least it
   * shrinks to.
   *
   * @example
   * ```ts
   * import { Hashtbl } from "@sabre/sabre/stm/data";
   * import { SharedHeap } from "@sabre/sabre";
   * const heap = SharedHeap.create();
   * console.assert(Hashtbl.create(heap).capacity === 8);
   * console.assert(Hashtbl.create(heap, { capacity: 64 }).capacity === 64);
   * ```
   */
  static create(heap: SharedHeap, options?: { capacity?: number }): Hashtbl {
    checkHeap(heap, "create Hashtbl");
    checkOptionFields(options, ["capacity"], "create Hashtbl");
    const capacity = checkCapacity(options?.capacity ?? 8, "Hashtbl", 1 << 20);
    if ((capacity & (capacity - 1)) !== 0) {
      throw new RangeError(
        `Cannot create Hashtbl as 'capacity' must be a power of two: current value is ${capacity}`,
      );
    }
    const block = heap.allocate(T_HEADER + 4 * capacity);
    const buckets = Loc.makeArray(heap, capacity, 0, { kind: "ref" });
    fillTable(heap, block, buckets.map((b) => b.address));
    const size = Loc.make(heap, 0, { kind: "i32" });
    const pending = Loc.make(heap, 0, { kind: "i32" });
    const data = Loc.make(heap, block, { kind: "ref" });
    const locs = [size, pending, data];
    return new Hashtbl(locs, capacity, placeRecord(heap, TAG, locs, capacity));
  }

  /**
   * Rebuilds a table from its handle; `HandleError` when it names none.
   *
   * @example
   * ```ts
   * import { Hashtbl } from "@sabre/sabre/stm/data";
   * import { SharedHeap } from "@sabre/sabre";
   * const table = Hashtbl.create(SharedHeap.create());
   * table.set(1, 2);
   * // In another worker: Hashtbl.attach(handle), the handle sent with postMessage.
   * console.assert(Hashtbl.attach(table.handle).get(1) === 2);
   * ```
   */
  static attach(handle: HashtblHandle): Hashtbl {
    const { locs, offset, extra } = readRecord(handle, KIND, TAG, "Hashtbl");
    return new Hashtbl(locs, extra, offset);
  }

  /**
   * The handle to send to other workers.
   *
   * @example
   * ```ts
   * import { Hashtbl } from "@sabre/sabre/stm/data";
   * import { SharedHeap } from "@sabre/sabre";
   * const table = Hashtbl.create(SharedHeap.create());
   * // worker.postMessage(table.handle)
   * console.assert(table.handle.kind === "sabre.stm.Hashtbl");
   * ```
   */
  get handle(): HashtblHandle {
    if (this.#destroyed) throw new DestroyedError("Hashtbl");
    return this.#heap.handleOf(KIND, 1, this.#offset);
  }

  /**
   * How many keys it holds.
   *
   * @example
   * ```ts
   * import { Hashtbl } from "@sabre/sabre/stm/data";
   * import { SharedHeap } from "@sabre/sabre";
   * const table = Hashtbl.create(SharedHeap.create());
   * table.set(1, 10);
   * table.set(1, 11); // same key: replaces
   * table.set(2, 20);
   * console.assert(table.length === 2);
   * ```
   */
  get length(): number {
    if (this.#destroyed) throw new DestroyedError("Hashtbl");
    return this.#size.get();
  }

  /**
   * How many buckets it has now (changes when it rehashes).
   *
   * @example
   * ```ts
   * import { Hashtbl } from "@sabre/sabre/stm/data";
   * import { SharedHeap } from "@sabre/sabre";
   * const table = Hashtbl.create(SharedHeap.create(), { capacity: 1 });
   * for (let key = 0; key < 10; key++) table.set(key, key);
   * console.assert(table.capacity > 1); // grew by rehashing
   * table.clear();
   * console.assert(table.capacity === 1);
   * ```
   */
  get capacity(): number {
    if (this.#destroyed) throw new DestroyedError("Hashtbl");
    return Xt.commit((xt) => this.#capacityOf(xt.get(this.#data)));
  }

  // ------------------------------------------------------------- xt forms

  /**
   * In a transaction: how many keys it holds.
   *
   * @example
   * ```ts
   * import { Hashtbl } from "@sabre/sabre/stm/data";
   * import { SharedHeap, Xt } from "@sabre/sabre";
   * const table = Hashtbl.create(SharedHeap.create());
   * const length = Xt.commit((xt) => {
   *   table.xtSet(xt, 1, 10);
   *   return table.xtLength(xt); // sees the set of this transaction
   * });
   * console.assert(length === 1 && table.length === 1);
   * ```
   */
  xtLength(xt: Xt): number {
    if (this.#destroyed) throw new DestroyedError("Hashtbl");
    return xt.get(this.#size);
  }

  /**
   * In a transaction: the value of `key`, or undefined.
   *
   * @example
   * ```ts
   * import { Hashtbl } from "@sabre/sabre/stm/data";
   * import { SharedHeap, Xt } from "@sabre/sabre";
   * const counts = Hashtbl.create(SharedHeap.create());
   * const bump = (key: number) =>
   *   Xt.commit((xt) => counts.xtSet(xt, key, (counts.xtGet(xt, key) ?? 0) + 1));
   * bump(7);
   * bump(7);
   * console.assert(counts.get(7) === 2);
   * ```
   */
  xtGet(xt: Xt, key: number): number | undefined {
    if (this.#destroyed) throw new DestroyedError("Hashtbl");
    checkNumber(key, "get from Hashtbl", "key");
    const heap = this.#heap;
    for (let p = xt.get(this.#bucket(xt, key)); p !== 0; p = entryNext(heap, p)) {
      if (sameKey(entryKey(heap, p), key)) return entryValue(heap, p);
    }
    return undefined;
  }

  /**
   * In a transaction: whether it holds `key`.
   *
   * @example
   * ```ts
   * import { Hashtbl } from "@sabre/sabre/stm/data";
   * import { SharedHeap, Xt } from "@sabre/sabre";
   * const owners = Hashtbl.create(SharedHeap.create());
   * // Sets key to value unless the key is there already; returns whether it did.
   * const claim = (key: number, value: number) =>
   *   Xt.commit((xt) => {
   *     if (owners.xtHas(xt, key)) return false;
   *     owners.xtSet(xt, key, value);
   *     return true;
   *   });
   * console.assert(claim(1, 10) && !claim(1, 20) && owners.get(1) === 10);
   * ```
   */
  xtHas(xt: Xt, key: number): boolean {
    return this.xtGet(xt, key) !== undefined;
  }

  /**
   * In a transaction: sets the value of `key` (adding it when absent).
   *
   * @example
   * ```ts
   * import { Hashtbl } from "@sabre/sabre/stm/data";
   * import { SharedHeap, Xt } from "@sabre/sabre";
   * const table = Hashtbl.create(SharedHeap.create());
   * table.set(1, 10);
   * table.set(2, 20);
   * // Swap the values of keys 1 and 2, at one instant.
   * Xt.commit((xt) => {
   *   const one = table.xtGet(xt, 1)!;
   *   table.xtSet(xt, 1, table.xtGet(xt, 2)!);
   *   table.xtSet(xt, 2, one);
   * });
   * console.assert(table.get(1) === 20 && table.get(2) === 10);
   * ```
   */
  xtSet(xt: Xt, key: number, value: number): void {
    if (this.#destroyed) throw new DestroyedError("Hashtbl");
    checkNumber(key, "set in Hashtbl", "key");
    checkNumber(value, "set in Hashtbl");
    const heap = this.#heap;
    let bucket = this.#bucket(xt, key);
    const chain = xt.get(bucket);
    const before: number[] = [];
    for (let p = chain; p !== 0; p = entryNext(heap, p)) {
      if (sameKey(entryKey(heap, p), key)) {
        if (Object.is(entryValue(heap, p), value)) return;
        const rest = newEntry(heap, xt, key, value, entryNext(heap, p));
        xt.set(bucket, this.#copy(xt, before, rest));
        retireAfter(heap, xt, p);
        return;
      }
      before.push(p);
    }
    // A new key: grow first where it calls for that (which may replace the
    // table, so find the bucket again). Overwrites never rehash.
    this.#maybeGrow(xt);
    bucket = this.#bucket(xt, key);
    xt.set(bucket, newEntry(heap, xt, key, value, xt.get(bucket)));
    xt.incr(this.#size);
  }

  /**
   * In a transaction: removes `key`; returns its value, or undefined when absent.
   *
   * @example
   * ```ts
   * import { Hashtbl } from "@sabre/sabre/stm/data";
   * import { SharedHeap, Xt } from "@sabre/sabre";
   * const table = Hashtbl.create(SharedHeap.create());
   * table.set(1, 10);
   * // Move the value of key 1 to key 2, at one instant.
   * Xt.commit((xt) => {
   *   const value = table.xtRemove(xt, 1);
   *   if (value !== undefined) table.xtSet(xt, 2, value);
   * });
   * console.assert(!table.has(1) && table.get(2) === 10);
   * ```
   */
  xtRemove(xt: Xt, key: number): number | undefined {
    if (this.#destroyed) throw new DestroyedError("Hashtbl");
    checkNumber(key, "remove from Hashtbl", "key");
    freesMemory(xt);
    if (this.xtGet(xt, key) === undefined) return undefined;
    this.#shrinkAside(xt);
    const heap = this.#heap;
    const bucket = this.#bucket(xt, key);
    const before: number[] = [];
    for (let p = xt.get(bucket); p !== 0; p = entryNext(heap, p)) {
      if (sameKey(entryKey(heap, p), key)) {
        const value = entryValue(heap, p);
        xt.set(bucket, this.#copy(xt, before, entryNext(heap, p)));
        retireAfter(heap, xt, p);
        xt.decr(this.#size);
        return value;
      }
      before.push(p);
    }
    return undefined; // unreachable: xtGet found it in the same snapshot
  }

  /**
   * In a transaction: every `[key, value]`, in no particular order.
   *
   * @example
   * ```ts
   * import { Hashtbl } from "@sabre/sabre/stm/data";
   * import { SharedHeap, Xt } from "@sabre/sabre";
   * const table = Hashtbl.create(SharedHeap.create());
   * table.set(1, 10);
   * table.set(2, 20);
   * const sum = Xt.commit((xt) => table.xtEntries(xt).reduce((acc, [, value]) => acc + value, 0));
   * console.assert(sum === 30);
   * ```
   */
  xtEntries(xt: Xt): [number, number][] {
    if (this.#destroyed) throw new DestroyedError("Hashtbl");
    const heap = this.#heap;
    const table = xt.get(this.#data);
    const capacity = this.#capacityOf(table);
    const out: [number, number][] = [];
    for (let i = 0; i < capacity; i++) {
      for (let p = xt.get(this.#bucketLoc(table, i)); p !== 0; p = entryNext(heap, p)) {
        out.push([entryKey(heap, p), entryValue(heap, p)]);
      }
    }
    return out;
  }

  /**
   * In a transaction: removes every key and goes back to the capacity it
   * was created with. The entries and the old table go back to the heap
   * through epochs once it commits.
   *
   * @example
   * ```ts
   * import { Hashtbl } from "@sabre/sabre/stm/data";
   * import { SharedHeap, Xt } from "@sabre/sabre";
   * const table = Hashtbl.create(SharedHeap.create());
   * table.set(1, 10);
   * table.set(2, 20);
   * // Take out every entry, at one instant.
   * const drained = Xt.commit((xt) => {
   *   const entries = table.xtEntries(xt);
   *   table.xtClear(xt);
   *   return entries;
   * });
   * console.assert(drained.length === 2 && table.length === 0);
   * ```
   */
  xtClear(xt: Xt): void {
    if (this.#destroyed) throw new DestroyedError("Hashtbl");
    freesMemory(xt);
    const heap = this.#heap;
    const old = xt.get(this.#data);
    const oldCapacity = this.#capacityOf(old);
    if (xt.get(this.#size) === 0 && oldCapacity === this.#minCapacity) return;
    // Reading every bucket makes the clear conflict with any write to it.
    const oldLocs: Loc[] = [];
    for (let i = 0; i < oldCapacity; i++) {
      const loc = this.#bucketLoc(old, i);
      oldLocs.push(loc);
      for (let p = xt.get(loc); p !== 0; p = entryNext(heap, p)) retireAfter(heap, xt, p);
    }
    xt.set(this.#size, 0);
    xt.set(this.#pending, 0);
    this.#install(xt, new Array<number>(this.#minCapacity).fill(0), old, oldLocs);
  }

  // --------------------------------------------------------- direct forms

  /**
   * The value of `key`, or undefined.
   *
   * @example
   * ```ts
   * import { Hashtbl } from "@sabre/sabre/stm/data";
   * import { SharedHeap } from "@sabre/sabre";
   * const table = Hashtbl.create(SharedHeap.create());
   * table.set(-0, 1); // keys compare by SameValueZero: -0 and 0 are one key
   * console.assert(table.get(0) === 1 && table.get(2) === undefined);
   * ```
   */
  get(key: number): number | undefined {
    return Xt.commit((xt) => this.xtGet(xt, key));
  }

  /**
   * Whether it holds `key`.
   *
   * @example
   * ```ts
   * import { Hashtbl } from "@sabre/sabre/stm/data";
   * import { SharedHeap } from "@sabre/sabre";
   * const table = Hashtbl.create(SharedHeap.create());
   * table.set(NaN, 1); // NaN is a key like any other
   * console.assert(table.has(NaN) && !table.has(0));
   * ```
   */
  has(key: number): boolean {
    return Xt.commit((xt) => this.xtHas(xt, key));
  }

  /**
   * Sets the value of `key`.
   *
   * @example
   * ```ts
   * import { Hashtbl } from "@sabre/sabre/stm/data";
   * import { SharedHeap } from "@sabre/sabre";
   * const table = Hashtbl.create(SharedHeap.create());
   * table.set(1, 10);
   * table.set(1, 11);
   * console.assert(table.get(1) === 11 && table.length === 1);
   * ```
   */
  set(key: number, value: number, options?: CommitOptions): void {
    timingOutAs(
      "call Hashtbl.set",
      () => commitTracked(this.#heap, (xt) => this.xtSet(xt, key, value), options),
    );
  }

  /**
   * Removes `key`; returns its value, or undefined when absent.
   *
   * @example
   * ```ts
   * import { Hashtbl } from "@sabre/sabre/stm/data";
   * import { SharedHeap } from "@sabre/sabre";
   * const table = Hashtbl.create(SharedHeap.create());
   * table.set(1, 10);
   * console.assert(table.remove(1) === 10 && table.remove(1) === undefined && table.length === 0);
   * ```
   */
  remove(key: number, options?: CommitOptions): number | undefined {
    return timingOutAs(
      "call Hashtbl.remove",
      () => commitTracked(this.#heap, (xt) => this.xtRemove(xt, key), options),
    );
  }

  /**
   * Removes every key, at one instant, and goes back to the initial
   * capacity. It builds a new table and commits a descriptor with an entry
   * per bucket, so on a heap with no room for them it throws
   * `HeapExhaustedError` with nothing changed (an empty table then only
   * keeps its capacity): `remove` each key instead, which needs no room
   * but a chain's copy, or `destroy()` the table.
   *
   * @example
   * ```ts
   * import { Hashtbl } from "@sabre/sabre/stm/data";
   * import { SharedHeap } from "@sabre/sabre";
   * const table = Hashtbl.create(SharedHeap.create());
   * table.set(1, 10);
   * table.set(2, 20);
   * table.clear();
   * console.assert(table.length === 0 && !table.has(1));
   * ```
   */
  clear(options?: CommitOptions): void {
    try {
      timingOutAs(
        "call Hashtbl.clear",
        () => commitTracked(this.#heap, (xt) => this.xtClear(xt), options),
      );
    } catch (e) {
      // Only the capacity was left to go back: nothing a caller could miss.
      if (!(e instanceof HeapExhaustedError) || this.length !== 0) throw e;
    }
  }

  /**
   * Every `[key, value]` at one instant, in no particular order.
   *
   * @example
   * ```ts
   * import { Hashtbl } from "@sabre/sabre/stm/data";
   * import { SharedHeap } from "@sabre/sabre";
   * const table = Hashtbl.create(SharedHeap.create());
   * table.set(2, 20);
   * table.set(1, 10);
   * const sorted = table.entries().sort((a, b) => a[0] - b[0]);
   * console.assert(sorted.join(";") === "1,10;2,20");
   * ```
   */
  entries(): [number, number][] {
    return Xt.commit((xt) => this.xtEntries(xt));
  }

  // ------------------------------------------------------------ internals

  #capacityOf(table: number): number {
    const heap = this.#heap;
    if (table + T_HEADER > heap.mappedBytes) heap.ensure(table + T_HEADER);
    const capacity = heap.i32[table >> 2];
    heap.ensure(table + T_HEADER + 4 * capacity);
    return capacity;
  }

  /** The Loc of bucket `i` of the table block `table` (pinned caller). */
  #bucketLoc(table: number, i: number): Loc {
    const heap = this.#heap;
    const uid = heap.f64[(table >> 3) + 1];
    if (uid !== this.#cacheUid) {
      this.#cacheUid = uid;
      this.#cache = [];
    }
    let loc = this.#cache[i];
    if (loc === undefined) {
      loc = this.#cache[i] = Loc.fromAddress(heap, heap.i32[(table >> 2) + 4 + i]);
    }
    return loc;
  }

  #bucket(xt: Xt, key: number): Loc {
    const table = xt.get(this.#data);
    const capacity = this.#capacityOf(table);
    return this.#bucketLoc(table, hashOf(key) & (capacity - 1));
  }

  /** Copies the entries `before` (in chain order) in front of `rest`, retiring the originals. */
  #copy(xt: Xt, before: number[], rest: number): number {
    const heap = this.#heap;
    for (let i = before.length - 1; i >= 0; i--) {
      const p = before[i];
      rest = newEntry(heap, xt, entryKey(heap, p), entryValue(heap, p), rest);
      retireAfter(heap, xt, p);
    }
    return rest;
  }

  /**
   * Marks a rehash as pending when `size + delta` calls for one: a growth
   * for a set (`delta` 1; it replaces a pending shrink), a shrink for a
   * remove (-1). Quick, own commit.
   */
  #prepareRehash(xt: Xt, delta: number): void {
    const tx = (x: Xt): void => {
      const pending = x.get(this.#pending);
      const size = Math.max(1, x.get(this.#size) + delta);
      const capacity = this.#capacityOf(x.get(this.#data));
      if (delta > 0) {
        if (pending <= capacity && size > 2 * capacity) x.set(this.#pending, capacity * 2);
      } else if (pending === 0 && 8 * size < capacity && capacity > this.#minCapacity) {
        x.set(this.#pending, capacity / 2);
      }
    };
    // Once pending is in our log, a separate commit would poison it.
    if (xt.isInLog(this.#pending)) tx(xt);
    else Xt.commit(tx);
  }

  /** Whether `size + delta` entries call for a growth of the current table. */
  #growthDue(xt: Xt, delta: number): boolean {
    const size = Math.max(1, xt.get(this.#size) + delta);
    return size > 2 * this.#capacityOf(xt.get(this.#data));
  }

  /** A set's rehash: a growth that is due or pending (shrinks are the removes', #shrinkAside). */
  #maybeGrow(xt: Xt): void {
    this.#prepareRehash(xt, 1);
    const capacity = xt.get(this.#pending);
    const current = this.#capacityOf(xt.get(this.#data));
    if (capacity === 0 || capacity < current) return;
    xt.set(this.#pending, 0);
    // A growth that a full heap refused stays pending while removes empty
    // the table: then it is no longer due.
    if (!this.#growthDue(xt, 1)) return;
    this.#rehash(xt, capacity);
  }

  /**
   * A remove's rehash: a shrink that is due, done in a commit of its own,
   * so that on a heap too full for the smaller table the shrink fails, not
   * the remove (this object then leaves shrinks alone for SHRINK_BACKOFF
   * removes). A pending growth waits for the next set, and a transaction
   * that has `pending` in its log leaves it all to a later one. When the
   * shrink commits, the caller's attempt (which read the old table) runs
   * again, and then finds nothing to do here. Like the Queue's helping
   * step, it stays committed where the caller's transaction then throws or
   * rolls back: it changes the capacity, never the contents.
   */
  #shrinkAside(xt: Xt): void {
    if (xt.isInLog(this.#pending)) return;
    if (this.#shrinkSkips > 0) {
      this.#shrinkSkips--;
      return;
    }
    try {
      commitTracked(this.#heap, (x) => {
        // A growth that a full heap refused, no longer due, gives way.
        const pending = x.get(this.#pending); // in the log: #prepareRehash marks it here
        if (pending > this.#capacityOf(x.get(this.#data)) && !this.#growthDue(x, -1)) {
          x.set(this.#pending, 0);
        }
        this.#prepareRehash(x, -1);
        const capacity = x.get(this.#pending);
        if (capacity === 0 || capacity > this.#capacityOf(x.get(this.#data))) return;
        x.set(this.#pending, 0);
        this.#rehash(x, capacity);
      });
    } catch (e) {
      if (!(e instanceof HeapExhaustedError)) throw e;
      this.#shrinkSkips = SHRINK_BACKOFF;
    }
  }

  #rehash(xt: Xt, capacity: number): void {
    const heap = this.#heap;
    const old = xt.get(this.#data);
    const oldCapacity = this.#capacityOf(old);
    const heads = new Array<number>(capacity).fill(0);
    const oldLocs: Loc[] = [];
    for (let i = 0; i < oldCapacity; i++) {
      const loc = this.#bucketLoc(old, i);
      oldLocs.push(loc);
      for (let p = xt.get(loc); p !== 0; p = entryNext(heap, p)) {
        const key = entryKey(heap, p);
        const h = hashOf(key) & (capacity - 1);
        heads[h] = newEntry(heap, xt, key, entryValue(heap, p), heads[h]);
        retireAfter(heap, xt, p);
      }
    }
    this.#install(xt, heads, old, oldLocs);
  }

  /** Publishes a new table with chains `heads`; the old table and its buckets go after the commit. */
  #install(xt: Xt, heads: number[], old: number, oldLocs: Loc[]): void {
    const heap = this.#heap;
    const addrs = heads.map((head) => makeLocIn(heap, xt, head, "ref").address);
    const block = allocIn(heap, xt, T_HEADER + 4 * heads.length);
    fillTable(heap, block, addrs);
    xt.set(this.#data, block);
    xt.postCommit(() => {
      heap.retire(old);
      for (const loc of oldLocs) loc.free();
    });
  }

  /**
   * Gives the table's memory back to the heap (its Locs, bucket table and entries), through epochs, so
   * that a worker still inside an operation on it finishes safely. No
   * worker may use it afterwards: later calls on this object, a second
   * `destroy()` included, throw {@linkcode DestroyedError}, and `attach`
   * refuses its handle.
   *
   * @example
   * ```ts
   * import { Hashtbl } from "@sabre/sabre/stm/data";
   * import { SharedHeap } from "@sabre/sabre";
   * const heap = SharedHeap.create();
   * const table = Hashtbl.create(heap);
   * table.set(1, 2);
   * table.destroy();
   * heap.collect();
   * ```
   */
  destroy(): void {
    if (this.#destroyed) throw new DestroyedError("Hashtbl", "destroy");
    // Done with either way, also when another object destroyed it first.
    this.#destroyed = true;
    const heap = this.#heap;
    retireRecord(heap, this.#offset, TAG, "Hashtbl");
    const buckets: Loc[] = [];
    const entries: number[] = [];
    const table = Xt.commit((xt) => {
      buckets.length = 0;
      entries.length = 0;
      const table = xt.get(this.#data);
      const capacity = this.#capacityOf(table);
      for (let i = 0; i < capacity; i++) {
        const loc = this.#bucketLoc(table, i);
        buckets.push(loc);
        for (let p = xt.get(loc); p !== 0; p = entryNext(heap, p)) entries.push(p);
      }
      return table;
    });
    for (const p of entries) heap.retire(p);
    heap.retire(table);
    for (const loc of buckets) loc.free();
    this.#size.free();
    this.#pending.free();
    this.#data.free();
  }
}

function fillTable(heap: SharedHeap, block: number, addrs: number[]): void {
  heap.i32[block >> 2] = addrs.length;
  heap.i32[(block >> 2) + 1] = 0;
  heap.f64[(block >> 3) + 1] = Math.floor(Math.random() * 2 ** 52);
  const i32 = heap.i32;
  for (let i = 0; i < addrs.length; i++) i32[(block >> 2) + 4 + i] = addrs[i];
}

function entryNext(heap: SharedHeap, p: number): number {
  if (p + ENTRY_BYTES > heap.mappedBytes) heap.ensure(p + ENTRY_BYTES);
  return heap.i32[(p >> 2) + 4];
}

function newEntry(heap: SharedHeap, xt: Xt, key: number, value: number, next: number): number {
  const p = allocIn(heap, xt, ENTRY_BYTES);
  heap.f64[p >> 3] = key;
  heap.f64[(p >> 3) + 1] = value;
  heap.i32[(p >> 2) + 4] = next;
  return p;
}

function entryKey(heap: SharedHeap, p: number): number {
  if (p + ENTRY_BYTES > heap.mappedBytes) heap.ensure(p + ENTRY_BYTES);
  return heap.f64[p >> 3];
}

function entryValue(heap: SharedHeap, p: number): number {
  if (p + ENTRY_BYTES > heap.mappedBytes) heap.ensure(p + ENTRY_BYTES);
  return heap.f64[(p >> 3) + 1];
}
