/**
 * Where an stm/data structure keeps the addresses of its Locs: one small
 * heap block `[tag, count, extra, address x count]`, written before the
 * Atomics store of the tag (pattern (b)), so that a handle names the whole
 * structure. Internal.
 *
 * @module
 */

import {
  describeValue,
  DestroyedError,
  HandleError,
  type SharedHandle,
  SharedHeap,
} from "../../memory/mod.ts";
import { Loc } from "../mod.ts";

/** Layout version of every stm/data record. */
export const DATA_VERSION = 1;

/** Places a record naming `locs`, with one extra number word. Returns its offset. */
export function placeRecord(
  heap: SharedHeap,
  tag: number,
  locs: readonly Loc[],
  extra: number,
): number {
  const block = heap.allocate(12 + 4 * locs.length);
  const i32 = heap.i32;
  const b = block >> 2;
  i32[b + 1] = locs.length;
  i32[b + 2] = extra;
  for (let i = 0; i < locs.length; i++) i32[b + 3 + i] = locs[i].address;
  Atomics.store(i32, b, tag);
  return block;
}

/**
 * The Locs and extra word of the record a handle names; HandleError when it
 * names none, or when the handle's version is not `version`.
 */
export function readRecord(
  handle: SharedHandle,
  kind: string,
  tag: number,
  what: string,
  version = DATA_VERSION,
): { heap: SharedHeap; locs: Loc[]; extra: number; offset: number } {
  const heap = SharedHeap.fromHandle(handle, kind, version, what);
  const offset = handle.offset;
  if (offset % 4 !== 0 || offset + 12 > heap.sab.byteLength) {
    throw new HandleError(
      `Cannot attach ${what} as the handle's offset does not leave room for it: current value is ${
        describeValue(offset)
      }`,
    );
  }
  heap.ensure(offset + 12);
  const b = offset >> 2;
  const seen = Atomics.load(heap.i32, b);
  if (seen !== tag) {
    throw new HandleError(
      `Cannot attach ${what} as the memory at offset ${offset} holds no ${what} (tag ${
        seen >>> 0
      })`,
    );
  }
  const count = heap.i32[b + 1];
  heap.ensure(offset + 12 + 4 * count);
  const i32 = heap.i32;
  const locs: Loc[] = [];
  for (let i = 0; i < count; i++) locs.push(Loc.fromAddress(heap, i32[b + 3 + i]));
  return { heap, locs, extra: i32[b + 2], offset };
}

/**
 * The first step of a structure's `destroy()`, once the object has marked
 * itself destroyed: clears the record's tag, so that one destroy wins and
 * `attach` refuses the handle from then on, and retires the record through
 * the heap's epochs. Throws `DestroyedError` when the tag is gone (another
 * object, maybe in another worker, destroyed the structure first). Then the
 * caller gives back its content and frees its Locs, which the record does
 * not hold.
 */
export function retireRecord(heap: SharedHeap, offset: number, tag: number, what: string): void {
  if (Atomics.compareExchange(heap.i32, offset >> 2, tag, 0) !== tag) {
    throw new DestroyedError(what, "destroy");
  }
  heap.retire(offset);
}

/** Checks a capacity option. */
export function checkCapacity(
  value: unknown,
  what: string,
  max: number,
  option = "capacity",
): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < 1 || value > max) {
    throw new RangeError(
      `Cannot create ${what} as '${option}' must be an integer from 1 to ${max}: current value is ${
        describeValue(value)
      }`,
    );
  }
  return value;
}

/** Checks a value (or, with `role`, a key) for a structure that holds f64 numbers. */
export function checkNumber(value: unknown, what: string, role = "value"): number {
  if (typeof value !== "number") {
    throw new TypeError(
      `Cannot ${what} as the ${role} must be a number: current value is ${describeValue(value)}`,
    );
  }
  return value;
}
