/**
 * Mvar: a synchronizing variable, kcas_data's `Mvar`: a location that is
 * either empty or holds a number; `take` waits while it is empty, `put`
 * while it is full. Built only on the public Loc/Xt API: two Locs, a flag
 * and a value.
 *
 * @module
 */

import type { SharedHandle, SharedHeap } from "../../memory/mod.ts";
import { type CommitOptions, Loc, Retry, Xt } from "../mod.ts";
import { tagOf } from "../../memory/mod.ts";
import { checkNumber, placeRecord, readRecord } from "./_record.ts";

const KIND = "sabre.stm.Mvar";
const TAG = tagOf("MVAR");

/**
 * Handle of an {@linkcode Mvar}.
 *
 * @example
 * ```ts
 * import { Mvar, type MvarHandle } from "@sabre/sabre/stm/data";
 * import { SharedHeap } from "@sabre/sabre";
 * const handle: MvarHandle = Mvar.create(SharedHeap.create()).handle;
 * console.assert(Mvar.attach(handle).isEmpty());
 * ```
 */
export type MvarHandle = SharedHandle<"sabre.stm.Mvar">;

/**
 * A synchronizing variable in shared memory: empty, or full with a number.
 * Blocking forms wait with `Atomics.wait` (`…Async` with `waitAsync`) and
 * take `{ timeoutMs }` (`TimeoutError`); `try…` forms never wait; `xt…`
 * forms compose into transactions (they call `Retry.later()` where the
 * blocking form would wait).
 *
 * @example
 * ```ts
 * import { Mvar } from "@sabre/sabre/stm/data";
 * import { Xt } from "@sabre/sabre";
 * import { SharedHeap } from "@sabre/sabre";
 *
 * const heap = SharedHeap.create();
 * const forkA = Mvar.create(heap, 1);
 * const forkB = Mvar.create(heap, 2);
 * // Take both forks at once, or wait until both are there.
 * const [a, b] = Xt.commit((xt) => [forkA.xtTake(xt), forkB.xtTake(xt)]);
 * console.assert(a === 1 && b === 2 && forkA.isEmpty());
 * forkA.put(a);
 * console.assert(!forkA.tryPut(9) && forkA.tryTake() === 1 && forkA.tryTake() === undefined);
 * ```
 */
export class Mvar {
  readonly #full: Loc;
  readonly #value: Loc;
  readonly #offset: number;

  private constructor(full: Loc, value: Loc, offset: number) {
    this.#full = full;
    this.#value = value;
    this.#offset = offset;
  }

  /** Creates an Mvar in `heap`, full with `value` if one is given, else empty. */
  static create(heap: SharedHeap, value?: number): Mvar {
    if (value !== undefined) checkNumber(value, "create Mvar");
    const full = Loc.make(heap, value === undefined ? 0 : 1, { kind: "i32" });
    const slot = Loc.make(heap, value ?? 0);
    return new Mvar(full, slot, placeRecord(heap, TAG, [full, slot], 0));
  }

  /** Rebuilds an Mvar from its handle; `HandleError` when it names none. */
  static attach(handle: MvarHandle): Mvar {
    const { locs, offset } = readRecord(handle, KIND, TAG, "Mvar");
    return new Mvar(locs[0], locs[1], offset);
  }

  /** The handle to send to other workers. */
  get handle(): MvarHandle {
    return this.#full.heap.handleOf(KIND, 1, this.#offset);
  }

  /** Whether it is empty now. */
  isEmpty(): boolean {
    return this.#full.get() === 0;
  }

  /** In a transaction: puts `value`, retrying while full. */
  xtPut(xt: Xt, value: number): void {
    checkNumber(value, "put into Mvar");
    Retry.unless(xt.get(this.#full) === 0);
    xt.set(this.#full, 1);
    xt.set(this.#value, value);
  }

  /** In a transaction: puts `value` if empty; returns whether it did. */
  xtTryPut(xt: Xt, value: number): boolean {
    checkNumber(value, "put into Mvar");
    if (xt.get(this.#full) !== 0) return false;
    xt.set(this.#full, 1);
    xt.set(this.#value, value);
    return true;
  }

  /** In a transaction: takes the value, retrying while empty. */
  xtTake(xt: Xt): number {
    Retry.unless(xt.get(this.#full) !== 0);
    xt.set(this.#full, 0);
    return xt.get(this.#value);
  }

  /** In a transaction: takes the value, or returns undefined when empty. */
  xtTryTake(xt: Xt): number | undefined {
    if (xt.get(this.#full) === 0) return undefined;
    xt.set(this.#full, 0);
    return xt.get(this.#value);
  }

  /** In a transaction: the value without taking it, retrying while empty. */
  xtPeek(xt: Xt): number {
    Retry.unless(xt.get(this.#full) !== 0);
    return xt.get(this.#value);
  }

  /** Puts `value`, waiting while full. */
  put(value: number, options?: CommitOptions): void {
    Xt.commit((xt) => this.xtPut(xt, value), options);
  }

  /** Puts `value`, waiting (asynchronously) while full. */
  putAsync(value: number, options?: CommitOptions): Promise<void> {
    return Xt.commitAsync((xt) => this.xtPut(xt, value), options);
  }

  /** Puts `value` if empty; returns whether it did. */
  tryPut(value: number): boolean {
    return Xt.commit((xt) => this.xtTryPut(xt, value));
  }

  /** Takes the value, waiting while empty. */
  take(options?: CommitOptions): number {
    return Xt.commit((xt) => this.xtTake(xt), options);
  }

  /** Takes the value, waiting (asynchronously) while empty. */
  takeAsync(options?: CommitOptions): Promise<number> {
    return Xt.commitAsync((xt) => this.xtTake(xt), options);
  }

  /** Takes the value, or returns undefined when empty. */
  tryTake(): number | undefined {
    return Xt.commit((xt) => this.xtTryTake(xt));
  }

  /** The value without taking it, waiting while empty. */
  peek(options?: CommitOptions): number {
    return Xt.commit((xt) => this.xtPeek(xt), options);
  }

  /** The value without taking it, waiting (asynchronously) while empty. */
  peekAsync(options?: CommitOptions): Promise<number> {
    return Xt.commitAsync((xt) => this.xtPeek(xt), options);
  }

  /** The value without taking it, or undefined when empty. */
  tryPeek(): number | undefined {
    return Xt.commit((xt) => (xt.get(this.#full) === 0 ? undefined : xt.get(this.#value)));
  }
}
