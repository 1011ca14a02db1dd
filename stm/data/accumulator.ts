/**
 * Accumulator: a sharded counter, kcas_data's `Accumulator`. Each worker
 * adds into its own shard (chosen by its heap slot), so concurrent `add`s
 * rarely conflict; reading the total sums every shard in one read-only
 * transaction, so it is consistent.
 *
 * @module
 */

import {
  checkHeap,
  DestroyedError,
  type SharedHandle,
  type SharedHeap,
  tagOf,
} from "../../memory/mod.ts";
import { Loc, Xt } from "../mod.ts";
import { checkCapacity, checkNumber, placeRecord, readRecord, retireRecord } from "./_record.ts";
import { checkOptionFields } from "../../memory/_options.ts";

const KIND = "sabre.stm.Accumulator";
const TAG = tagOf("SACC");

/**
 * Handle of an {@linkcode Accumulator}.
 *
 * @example
 * ```ts
 * import { Accumulator, type AccumulatorHandle } from "@sabre/sabre/stm/data";
 * import { SharedHeap } from "@sabre/sabre";
 * const handle: AccumulatorHandle = Accumulator.create(SharedHeap.create()).handle;
 * console.assert(Accumulator.attach(handle).get() === 0);
 * ```
 */
export type AccumulatorHandle = SharedHandle<"sabre.stm.Accumulator">;

/**
 * A number that many workers add to at once. Values are f64: exact for
 * integers up to 2^53.
 *
 * @example
 * ```ts
 * import { Accumulator } from "@sabre/sabre/stm/data";
 * import { Xt } from "@sabre/sabre";
 * import { SharedHeap } from "@sabre/sabre";
 *
 * const hits = Accumulator.create(SharedHeap.create(), { shards: 4 });
 * hits.add(5);
 * hits.incr();
 * console.assert(hits.get() === 6);
 * Xt.commit((xt) => hits.xtSet(xt, 100));
 * console.assert(hits.get() === 100);
 * ```
 */
export class Accumulator {
  readonly #shards: Loc[];
  readonly #offset: number;
  /** Set by destroy(): every later call on this object throws. */
  #destroyed = false;

  private constructor(shards: Loc[], offset: number) {
    this.#shards = shards;
    this.#offset = offset;
  }

  /**
   * Creates an accumulator at 0 in `heap` with `options.shards` shards (default 8, at most 256).
   *
   * @example
   * ```ts
   * import { Accumulator } from "@sabre/sabre/stm/data";
   * import { SharedHeap } from "@sabre/sabre";
   * const hits = Accumulator.create(SharedHeap.create(), { shards: 2 });
   * console.assert(hits.get() === 0);
   * ```
   */
  static create(heap: SharedHeap, options?: { shards?: number }): Accumulator {
    checkHeap(heap, "create Accumulator");
    checkOptionFields(options, ["shards"], "create Accumulator");
    const count = checkCapacity(options?.shards ?? 8, "Accumulator", 256, "shards");
    const shards = Loc.makeArray(heap, count, 0);
    return new Accumulator(shards, placeRecord(heap, TAG, shards, 0));
  }

  /**
   * Rebuilds an accumulator from its handle; `HandleError` when it names none.
   *
   * @example
   * ```ts
   * import { Accumulator } from "@sabre/sabre/stm/data";
   * import { SharedHeap } from "@sabre/sabre";
   * const hits = Accumulator.create(SharedHeap.create());
   * hits.add(3);
   * // In another worker: Accumulator.attach(handle), the handle sent with postMessage.
   * console.assert(Accumulator.attach(hits.handle).get() === 3);
   * ```
   */
  static attach(handle: AccumulatorHandle): Accumulator {
    const { locs, offset } = readRecord(handle, KIND, TAG, "Accumulator");
    return new Accumulator(locs, offset);
  }

  /**
   * The handle to send to other workers.
   *
   * @example
   * ```ts
   * import { Accumulator } from "@sabre/sabre/stm/data";
   * import { SharedHeap } from "@sabre/sabre";
   * const hits = Accumulator.create(SharedHeap.create());
   * // worker.postMessage(hits.handle)
   * console.assert(hits.handle.kind === "sabre.stm.Accumulator");
   * ```
   */
  get handle(): AccumulatorHandle {
    if (this.#destroyed) throw new DestroyedError("Accumulator");
    return this.#shards[0].heap.handleOf(KIND, 1, this.#offset);
  }

  #mine(): Loc {
    return this.#shards[this.#shards[0].heap.slot % this.#shards.length];
  }

  /**
   * Adds `delta` (into this worker's shard).
   *
   * @example
   * ```ts
   * import { Accumulator } from "@sabre/sabre/stm/data";
   * import { SharedHeap } from "@sabre/sabre";
   * const total = Accumulator.create(SharedHeap.create());
   * total.add(2.5);
   * total.add(-1);
   * console.assert(total.get() === 1.5);
   * ```
   */
  add(delta: number): void {
    if (this.#destroyed) throw new DestroyedError("Accumulator");
    this.#mine().fetchAndAdd(checkNumber(delta, "add to Accumulator"));
  }

  /**
   * Adds 1.
   *
   * @example
   * ```ts
   * import { Accumulator } from "@sabre/sabre/stm/data";
   * import { SharedHeap } from "@sabre/sabre";
   * const hits = Accumulator.create(SharedHeap.create());
   * hits.incr();
   * hits.incr();
   * console.assert(hits.get() === 2);
   * ```
   */
  incr(): void {
    if (this.#destroyed) throw new DestroyedError("Accumulator");
    this.#mine().fetchAndAdd(1);
  }

  /**
   * Subtracts 1.
   *
   * @example
   * ```ts
   * import { Accumulator } from "@sabre/sabre/stm/data";
   * import { SharedHeap } from "@sabre/sabre";
   * const open = Accumulator.create(SharedHeap.create());
   * open.decr();
   * console.assert(open.get() === -1);
   * ```
   */
  decr(): void {
    if (this.#destroyed) throw new DestroyedError("Accumulator");
    this.#mine().fetchAndAdd(-1);
  }

  /**
   * The total, consistent across shards.
   *
   * @example
   * ```ts
   * import { Accumulator } from "@sabre/sabre/stm/data";
   * import { SharedHeap } from "@sabre/sabre";
   * const hits = Accumulator.create(SharedHeap.create());
   * hits.add(5);
   * hits.incr();
   * console.assert(hits.get() === 6);
   * ```
   */
  get(): number {
    return Xt.commit((xt) => this.xtGet(xt));
  }

  /**
   * Sets the total to `value`.
   *
   * @example
   * ```ts
   * import { Accumulator } from "@sabre/sabre/stm/data";
   * import { SharedHeap } from "@sabre/sabre";
   * const hits = Accumulator.create(SharedHeap.create());
   * hits.add(5);
   * hits.set(1);
   * console.assert(hits.get() === 1);
   * ```
   */
  set(value: number): void {
    Xt.commit((xt) => this.xtSet(xt, value));
  }

  /**
   * In a transaction: adds `delta`.
   *
   * @example
   * ```ts
   * import { Accumulator } from "@sabre/sabre/stm/data";
   * import { Loc, SharedHeap, Xt } from "@sabre/sabre";
   * const heap = SharedHeap.create();
   * const sales = Accumulator.create(heap);
   * const last = Loc.make(heap);
   * // Count a sale of 30 and remember it as the last one, in one commit.
   * Xt.commit((xt) => {
   *   sales.xtAdd(xt, 30);
   *   xt.set(last, 30);
   * });
   * console.assert(sales.get() === 30 && last.get() === 30);
   * ```
   */
  xtAdd(xt: Xt, delta: number): void {
    if (this.#destroyed) throw new DestroyedError("Accumulator");
    xt.fetchAndAdd(this.#mine(), checkNumber(delta, "add to Accumulator"));
  }

  /**
   * In a transaction: adds 1.
   *
   * @example
   * ```ts
   * import { Accumulator } from "@sabre/sabre/stm/data";
   * import { SharedHeap, Xt } from "@sabre/sabre";
   * const heap = SharedHeap.create();
   * const open = Accumulator.create(heap);
   * const opened = Accumulator.create(heap);
   * // Count a connection as open and as opened, in one commit.
   * Xt.commit((xt) => {
   *   open.xtIncr(xt);
   *   opened.xtIncr(xt);
   * });
   * console.assert(open.get() === 1 && opened.get() === 1);
   * ```
   */
  xtIncr(xt: Xt): void {
    if (this.#destroyed) throw new DestroyedError("Accumulator");
    xt.fetchAndAdd(this.#mine(), 1);
  }

  /**
   * In a transaction: subtracts 1.
   *
   * @example
   * ```ts
   * import { Accumulator } from "@sabre/sabre/stm/data";
   * import { SharedHeap, Xt } from "@sabre/sabre";
   * const heap = SharedHeap.create();
   * const open = Accumulator.create(heap);
   * const closed = Accumulator.create(heap);
   * open.add(2);
   * // Move one connection from open to closed, in one commit.
   * Xt.commit((xt) => {
   *   open.xtDecr(xt);
   *   closed.xtIncr(xt);
   * });
   * console.assert(open.get() === 1 && closed.get() === 1);
   * ```
   */
  xtDecr(xt: Xt): void {
    if (this.#destroyed) throw new DestroyedError("Accumulator");
    xt.fetchAndAdd(this.#mine(), -1);
  }

  /**
   * In a transaction: the total.
   *
   * @example
   * ```ts
   * import { Accumulator } from "@sabre/sabre/stm/data";
   * import { SharedHeap, Xt } from "@sabre/sabre";
   * const hits = Accumulator.create(SharedHeap.create());
   * hits.add(7);
   * // Read the total and reset it to 0, at one instant.
   * const seen = Xt.commit((xt) => {
   *   const total = hits.xtGet(xt);
   *   hits.xtSet(xt, 0);
   *   return total;
   * });
   * console.assert(seen === 7 && hits.get() === 0);
   * ```
   */
  xtGet(xt: Xt): number {
    if (this.#destroyed) throw new DestroyedError("Accumulator");
    let sum = 0;
    for (const shard of this.#shards) sum += xt.get(shard);
    return sum;
  }

  /**
   * In a transaction: sets the total to `value`, exactly: this worker's
   * shard takes `value` and every other shard 0 (a difference against the
   * other shards would be rounded in f64).
   *
   * @example
   * ```ts
   * import { Accumulator } from "@sabre/sabre/stm/data";
   * import { SharedHeap, Xt } from "@sabre/sabre";
   * const total = Accumulator.create(SharedHeap.create());
   * total.add(4);
   * Xt.commit((xt) => total.xtSet(xt, total.xtGet(xt) * 2));
   * console.assert(total.get() === 8);
   * ```
   */
  xtSet(xt: Xt, value: number): void {
    if (this.#destroyed) throw new DestroyedError("Accumulator");
    checkNumber(value, "set Accumulator");
    const mine = this.#mine();
    for (const shard of this.#shards) xt.set(shard, shard === mine ? value : 0);
  }

  /**
   * Gives the accumulator's memory back to the heap (its shards), through epochs, so
   * that a worker still inside an operation on it finishes safely. No
   * worker may use it afterwards: later calls on this object, a second
   * `destroy()` included, throw {@linkcode DestroyedError}, and `attach`
   * refuses its handle.
   *
   * @example
   * ```ts
   * import { Accumulator } from "@sabre/sabre/stm/data";
   * import { DestroyedError, SharedHeap } from "@sabre/sabre";
   * const total = Accumulator.create(SharedHeap.create());
   * total.add(5);
   * total.destroy();
   * let caught: unknown;
   * try {
   *   total.get();
   * } catch (e) {
   *   caught = e;
   * }
   * console.assert(caught instanceof DestroyedError);
   * ```
   */
  destroy(): void {
    if (this.#destroyed) throw new DestroyedError("Accumulator", "destroy");
    // Done with either way, also when another object destroyed it first.
    this.#destroyed = true;
    retireRecord(this.#shards[0].heap, this.#offset, TAG, "Accumulator");
    for (const shard of this.#shards) shard.free();
  }
}
