/**
 * Where a latch's words live: a block of a SharedHeap, or a small standalone
 * SharedArrayBuffer of its own. Internal.
 *
 * Every latch object starts with a tag word that names its kind, written at
 * creation, so that `attach()` can refuse a handle that points at something
 * else. Each object gets its own fixed-length Int32Array over exactly its
 * words: a fixed view at a fixed offset stays valid when the heap grows, so
 * latch code never needs `heap.ensure`.
 *
 * @module
 */

import {
  describeValue,
  DestroyedError,
  HandleError,
  type SharedHandle,
  SharedHeap,
} from "../memory/mod.ts";
import { CODEC_IDS } from "./codec.ts";
import { checkOptionFields } from "./_options.ts";

/**
 * Layout version of every latch object in this build.
 *
 * @example
 * ```ts
 * import { LATCH_VERSION, Mutex } from "@sabre/sabre";
 * console.assert(Mutex.create().handle.version === LATCH_VERSION);
 * ```
 */
export const LATCH_VERSION = 1;

/**
 * A shared object's words and where they are, as {@linkcode placeObject}
 * returns them.
 *
 * @example
 * ```ts
 * import { type Placement, placeObject, tagOf } from "@sabre/sabre";
 * const placement: Placement = placeObject(undefined, 8, tagOf("DEMO"), "Demo");
 * console.assert(placement.heap === undefined && placement.words.length >= 2);
 * ```
 */
export interface Placement {
  /** The buffer: a heap's, or the object's own. */
  readonly sab: SharedArrayBuffer;
  /** Byte offset of word 0 (the tag). */
  readonly offset: number;
  /** Fixed view over the object's words, rounded up to a cache line. */
  readonly words: Int32Array;
  /** The heap it lives in, or undefined when standalone. */
  readonly heap: SharedHeap | undefined;
}

/**
 * Throws `TypeError`, naming `action` ("create Queue") and the value, unless
 * `heap` is a SharedHeap: the check of a `heap` argument.
 *
 * @example
 * ```ts
 * import { checkHeap, SharedHeap } from "@sabre/sabre";
 * checkHeap(SharedHeap.create(), "create Demo");
 * let error: unknown;
 * try {
 *   checkHeap({}, "create Demo");
 * } catch (e) {
 *   error = e;
 * }
 * console.assert(error instanceof TypeError);
 * ```
 */
export function checkHeap(heap: unknown, action: string): asserts heap is SharedHeap {
  if (!(heap instanceof SharedHeap)) {
    throw new TypeError(
      `Cannot ${action} as 'heap' is not a SharedHeap: current value is ${describeValue(heap)}`,
    );
  }
}

/**
 * Allocates `bytes` (rounded up to a 64-byte cache line) in `heap`, or in a
 * new standalone buffer when `heap` is undefined, zeroes them, and writes the
 * tag into word 0 last. Throws `TypeError` when `heap` is not a SharedHeap.
 *
 * @example
 * ```ts
 * import { placeObject, SharedHeap, tagOf } from "@sabre/sabre";
 * const placement = placeObject(SharedHeap.create(), 8, tagOf("DEMO"), "Demo");
 * console.assert(Atomics.load(placement.words, 0) === tagOf("DEMO"));
 * ```
 */
export function placeObject(
  heap: SharedHeap | undefined,
  bytes: number,
  tag: number,
  what: string,
): Placement {
  const size = Math.ceil(bytes / 64) * 64;
  let placement: Placement;
  if (heap === undefined) {
    const sab = new SharedArrayBuffer(size);
    placement = { sab, offset: 0, words: new Int32Array(sab, 0, size >> 2), heap };
  } else {
    checkHeap(heap, `create ${what}`);
    const offset = heap.allocateZeroed(size);
    placement = {
      sab: heap.sab,
      offset,
      words: new Int32Array(heap.sab, offset, size >> 2),
      heap,
    };
  }
  Atomics.store(placement.words, 0, tag);
  return placement;
}

/**
 * The last step of a placed object's `destroy()`, once the caller has made
 * sure that no worker holds or waits on it: clears the tag with one CAS, so
 * that of two workers that destroy the object one wins and `attach` refuses
 * its handle from then on, then frees its block (a standalone object's
 * buffer is left to the garbage collector). Throws
 * {@linkcode DestroyedError} when the tag is gone: the object was destroyed
 * already, by this worker or another.
 *
 * @example
 * ```ts
 * import { DestroyedError, placeObject, releaseObject, SharedHeap, tagOf } from "@sabre/sabre";
 * const placement = placeObject(SharedHeap.create(), 8, tagOf("DEMO"), "Demo");
 * releaseObject(placement, tagOf("DEMO"), "Demo");
 * try {
 *   releaseObject(placement, tagOf("DEMO"), "Demo");
 * } catch (e) {
 *   console.assert(e instanceof DestroyedError);
 * }
 * ```
 */
export function releaseObject(placement: Placement, tag: number, what: string): void {
  if (Atomics.compareExchange(placement.words, 0, tag, 0) !== tag) {
    throw new DestroyedError(what, "destroy");
  }
  if (placement.heap !== undefined) placement.heap.free(placement.offset);
}

/**
 * Validates the handle of a placed object and returns its placement. Throws
 * {@linkcode HandleError} for a wrong kind, a version newer than
 * `supportedVersion`, a truncated handle, a bad buffer, or a buffer whose
 * words at `offset` do not carry `tag`.
 *
 * @example
 * ```ts
 * import { attachObject, objectHandle, placeObject, tagOf } from "@sabre/sabre";
 * const placed = placeObject(undefined, 8, tagOf("DEMO"), "Demo");
 * const handle = objectHandle("app.Demo", 1, placed);
 * const again = attachObject(handle, "app.Demo", 1, 8, tagOf("DEMO"), "Demo");
 * console.assert(again.sab === placed.sab);
 * ```
 */
export function attachObject(
  handle: SharedHandle,
  kind: string,
  supportedVersion: number,
  bytes: number,
  tag: number,
  what: string,
): Placement {
  const size = Math.ceil(bytes / 64) * 64;
  const sab = typeof handle === "object" && handle !== null ? handle.sab : undefined;
  let heap: SharedHeap | undefined;
  if (sab instanceof SharedArrayBuffer && sab.growable) {
    heap = SharedHeap.fromHandle(handle, kind, supportedVersion, what);
  } else {
    // Standalone buffer: the same field checks, minus the heap's.
    if (typeof handle !== "object" || handle === null) {
      throw new HandleError(
        `Cannot attach ${what} as the handle is not an object: current value is ${
          describeValue(handle)
        }`,
      );
    }
    for (const field of ["kind", "version", "sab", "offset"] as const) {
      if (!(field in handle)) {
        throw new HandleError(
          `Cannot attach ${what} as the handle has no '${field}' field (truncated handle?): current value is ${
            describeValue(handle)
          }`,
        );
      }
    }
    if (handle.kind !== kind) {
      throw new HandleError(
        `Cannot attach ${what} as the handle's kind is not "${kind}": current value is ${
          describeValue(handle.kind)
        }`,
      );
    }
    if (handle.version !== supportedVersion) {
      throw new HandleError(
        `Cannot attach ${what} as this build reads version ${supportedVersion} only: current value is ${
          describeValue(handle.version)
        }`,
      );
    }
    if (!(sab instanceof SharedArrayBuffer)) {
      throw new HandleError(
        `Cannot attach ${what} as the handle's 'sab' is not a SharedArrayBuffer: current value is ${
          describeValue(sab)
        }`,
      );
    }
  }
  const offset = handle.offset;
  if (
    !Number.isInteger(offset) || offset < 0 || offset % 4 !== 0 || offset + size > sab.byteLength
  ) {
    throw new HandleError(
      `Cannot attach ${what} as the handle's offset does not leave room for it: current value is ${
        describeValue(offset)
      }`,
    );
  }
  const words = new Int32Array(sab, offset, size >> 2);
  const seen = Atomics.load(words, 0);
  if (seen !== tag) {
    throw new HandleError(
      `Cannot attach ${what} as the memory at offset ${offset} holds no ${what} (tag ${
        seen >>> 0
      }, expected ${tag >>> 0})`,
    );
  }
  return { sab, offset, words, heap };
}

/**
 * {@linkcode attachObject} for an object that can only live in a
 * {@linkcode SharedHeap}: also throws {@linkcode HandleError} when the
 * handle points into a standalone (non-growable) buffer.
 *
 * @example
 * ```ts
 * import { attachHeapObject, objectHandle, placeObject, SharedHeap, tagOf } from "@sabre/sabre";
 * const placed = placeObject(SharedHeap.create(), 8, tagOf("DEMO"), "Demo");
 * const again = attachHeapObject(objectHandle("app.Demo", 1, placed), "app.Demo", 1, 8, tagOf("DEMO"), "Demo");
 * console.assert(again.heap === placed.heap);
 * ```
 */
export function attachHeapObject(
  handle: SharedHandle,
  kind: string,
  supportedVersion: number,
  bytes: number,
  tag: number,
  what: string,
): Placement & { readonly heap: SharedHeap } {
  const placement = attachObject(handle, kind, supportedVersion, bytes, tag, what);
  if (placement.heap === undefined) {
    throw new HandleError(
      `Cannot attach ${what} as its handle does not point into a SharedHeap: current value is a non-growable buffer`,
    );
  }
  return placement as Placement & { readonly heap: SharedHeap };
}

/**
 * The handle of a placed object.
 *
 * @example
 * ```ts
 * import { objectHandle, placeObject, tagOf } from "@sabre/sabre";
 * const handle = objectHandle("app.Demo", 1, placeObject(undefined, 8, tagOf("DEMO"), "Demo"));
 * console.assert(handle.kind === "app.Demo" && handle.offset === 0);
 * ```
 */
export function objectHandle<K extends string>(
  kind: K,
  version: number,
  placement: Placement,
): SharedHandle<K> {
  return placement.heap === undefined
    ? { kind, version, sab: placement.sab, offset: placement.offset }
    : placement.heap.handleOf(kind, version, placement.offset);
}

/**
 * Four ASCII characters as a tag word.
 *
 * @example
 * ```ts
 * import { tagOf } from "@sabre/sabre";
 * console.assert(tagOf("ABCD") === 0x44434241);
 * ```
 */
export function tagOf(name: string): number {
  let tag = 0;
  for (let i = 0; i < 4; i++) tag |= name.charCodeAt(i) << (8 * i);
  return tag;
}

/**
 * Checks what every keyed structure's `create` takes: `heap` must be a
 * SharedHeap, `options` an object whose `key` and `value` name codecs (own
 * names of {@linkcode CODEC_IDS} only: "toString" and the like are in every
 * object). With `allowed`, the names the options may have besides `key` and
 * `value`, any other own field is refused too, so that a misspelt option
 * does not pass unnoticed. Throws `TypeError` naming `what`, the argument
 * and its value.
 *
 * @example
 * ```ts
 * import { checkKeyedOptions, SharedHeap } from "@sabre/sabre";
 * checkKeyedOptions("Demo", SharedHeap.create(), { key: "i32", value: "string" });
 * try {
 *   checkKeyedOptions("Demo", SharedHeap.create(), { key: "int", value: "string" });
 * } catch (e) {
 *   console.assert(e instanceof TypeError);
 * }
 * try {
 *   checkKeyedOptions("Demo", SharedHeap.create(), { key: "i32", value: "i32", size: 1 }, []);
 * } catch (e) {
 *   console.assert(e instanceof TypeError);
 * }
 * ```
 */
export function checkKeyedOptions(
  what: string,
  heap: unknown,
  options: unknown,
  allowed?: readonly string[],
): void {
  checkHeap(heap, `create ${what}`);
  if (typeof options !== "object" || options === null) {
    throw new TypeError(
      `Cannot create ${what} as 'options' must be an object: current value is ${
        describeValue(options)
      }`,
    );
  }
  const fields = options as Record<string, unknown>;
  for (const field of ["key", "value"] as const) {
    const name = fields[field];
    if (typeof name !== "string" || !Object.hasOwn(CODEC_IDS, name)) {
      throw new TypeError(
        `Cannot create ${what} as '${field}' must be one of ${
          Object.keys(CODEC_IDS).join(", ")
        }: current value is ${describeValue(name)}`,
      );
    }
  }
  if (allowed !== undefined) {
    checkOptionFields(options, ["key", "value", ...allowed], `create ${what}`);
  }
}
