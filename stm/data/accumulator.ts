/**
 * Accumulator: a sharded counter, kcas_data's `Accumulator`. Each worker
 * adds into its own shard (chosen by its heap slot), so concurrent `add`s
 * rarely conflict; reading the total sums every shard in one read-only
 * transaction, so it is consistent.
 *
 * @module
 */

import { type SharedHandle, type SharedHeap, tagOf } from "../../memory/mod.ts";
import { Loc, Xt } from "../mod.ts";
import { checkCapacity, checkNumber, placeRecord, readRecord } from "./_record.ts";

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

  private constructor(shards: Loc[], offset: number) {
    this.#shards = shards;
    this.#offset = offset;
  }

  /** Creates an accumulator at 0 in `heap` with `options.shards` shards (default 8, at most 256). */
  static create(heap: SharedHeap, options?: { shards?: number }): Accumulator {
    const count = checkCapacity(options?.shards ?? 8, "Accumulator", 256, "shards");
    const shards = Loc.makeArray(heap, count, 0);
    return new Accumulator(shards, placeRecord(heap, TAG, shards, 0));
  }

  /** Rebuilds an accumulator from its handle; `HandleError` when it names none. */
  static attach(handle: AccumulatorHandle): Accumulator {
    const { locs, offset } = readRecord(handle, KIND, TAG, "Accumulator");
    return new Accumulator(locs, offset);
  }

  /** The handle to send to other workers. */
  get handle(): AccumulatorHandle {
    return this.#shards[0].heap.handleOf(KIND, 1, this.#offset);
  }

  #mine(): Loc {
    return this.#shards[this.#shards[0].heap.slot % this.#shards.length];
  }

  /** Adds `delta` (into this worker's shard). */
  add(delta: number): void {
    this.#mine().fetchAndAdd(checkNumber(delta, "add to Accumulator"));
  }

  /** Adds 1. */
  incr(): void {
    this.#mine().fetchAndAdd(1);
  }

  /** Subtracts 1. */
  decr(): void {
    this.#mine().fetchAndAdd(-1);
  }

  /** The total, consistent across shards. */
  get(): number {
    return Xt.commit((xt) => this.xtGet(xt));
  }

  /** Sets the total to `value`. */
  set(value: number): void {
    Xt.commit((xt) => this.xtSet(xt, value));
  }

  /** In a transaction: adds `delta`. */
  xtAdd(xt: Xt, delta: number): void {
    xt.fetchAndAdd(this.#mine(), checkNumber(delta, "add to Accumulator"));
  }

  /** In a transaction: the total. */
  xtGet(xt: Xt): number {
    let sum = 0;
    for (const shard of this.#shards) sum += xt.get(shard);
    return sum;
  }

  /**
   * In a transaction: sets the total to `value`, exactly: this worker's
   * shard takes `value` and every other shard 0 (a difference against the
   * other shards would be rounded in f64).
   */
  xtSet(xt: Xt, value: number): void {
    checkNumber(value, "set Accumulator");
    const mine = this.#mine();
    for (const shard of this.#shards) xt.set(shard, shard === mine ? value : 0);
  }
}
