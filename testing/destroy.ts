/**
 * Shared by the tests of `destroy()`: the heap's use once reclamation has
 * settled, key/value samples for several codec pairs, and the check that
 * every call on a destroyed object throws. For tests only.
 *
 * @module
 */

import assert from "node:assert/strict";
import { type CodecName, DestroyedError, SharedHeap } from "../memory/mod.ts";

/**
 * A predicate for `assert.throws`: a DestroyedError for a call on
 * `structure`, or, with `operation` "destroy", for a second destroy.
 */
export function destroyedAs(structure: string, operation: "use" | "destroy" = "use") {
  return (e: unknown): boolean =>
    e instanceof DestroyedError && e.structure === structure &&
    e.message === new DestroyedError(structure, operation).message;
}

/**
 * Checks that every method and getter of `object`'s class (its prototype's
 * own keys, symbols included, but `constructor` and `destroy`) throws
 * DestroyedError naming `structure`, with the message of a use; a method
 * whose name ends in "Async" must instead return a promise that rejects
 * with it. `calls` gives how to call each name; a name of the class missing
 * from `calls` (a method added later) fails the check, as does a name that
 * the class lacks.
 */
export async function assertEveryCallDestroyed(
  object: object,
  structure: string,
  calls: Readonly<Record<string, (o: never) => unknown>>,
): Promise<void> {
  const names = Reflect.ownKeys(Object.getPrototypeOf(object)).map(String)
    .filter((name) => name !== "constructor" && name !== "destroy");
  assert.deepEqual(
    Object.keys(calls).sort(),
    names.sort(),
    `${structure}: the calls cover every method and getter`,
  );
  const destroyed = destroyedAs(structure);
  for (const name of names) {
    const what = `${structure}.${name} after destroy()`;
    if (name.endsWith("Async")) {
      let result: unknown;
      assert.doesNotThrow(() => void (result = calls[name](object as never)), `${what} rejects`);
      assert.ok(result instanceof Promise, `${what} returns a Promise`);
      await assert.rejects(result, destroyed, what);
    } else {
      assert.throws(() => calls[name](object as never), destroyed, what);
    }
  }
}

/** Live blocks and bytes after four `collect()` calls. */
export function settledUse(heap: SharedHeap): { blocks: number; bytes: number } {
  for (let i = 0; i < 4; i++) heap.collect();
  const { liveBlocks, liveBytes } = heap.stats();
  return { blocks: liveBlocks, bytes: liveBytes };
}

/** A codec pair and the i-th key and value of a sample for it. */
export interface DestroySample {
  readonly name: string;
  readonly options: { readonly key: CodecName; readonly value: CodecName };
  readonly key: (i: number) => unknown;
  readonly value: (i: number) => unknown;
}

/** Fixed-size, variable-size (with non-ASCII keys) and mixed codec pairs. */
export const DESTROY_SAMPLES: readonly DestroySample[] = [
  {
    name: "i32 -> i32",
    options: { key: "i32", value: "i32" },
    key: (i) => i * 3,
    value: (i) => -i,
  },
  {
    name: "string -> string",
    options: { key: "string", value: "string" },
    key: (i) => (i % 2 === 0 ? `k${i}` : `ключ ${i}`),
    value: (i) => "v".repeat(i % 40),
  },
  {
    name: "f64 -> bytes",
    options: { key: "f64", value: "bytes" },
    key: (i) => i + 0.5,
    value: (i) => new Uint8Array(i % 9),
  },
];

/**
 * A kind of lock or cell for {@linkcode testDestroyAcrossObjects}: how to
 * make one in a heap, how to attach a second object to it (as another
 * worker would), and calls of such a second object that would wait on it,
 * each bounded by a timeout so that a wait that does not fail fast fails
 * the test rather than hang it.
 */
export interface DestroyKind<T extends { readonly handle: { offset: number }; destroy(): void }> {
  readonly name: string;
  readonly create: (heap: SharedHeap) => T;
  readonly attach: (object: T) => T;
  readonly waits: readonly ((object: T) => unknown)[];
}

/**
 * Registers two tests per kind: destroy() twice throws DestroyedError from
 * the object destroyed and from another object of the same structure, and
 * frees the block once; and each of `waits` on another object throws
 * DestroyedError at once rather than wait for a release that never comes.
 */
export function testDestroyAcrossObjects(
  // deno-lint-ignore no-explicit-any
  kinds: readonly DestroyKind<any>[],
): void {
  for (const kind of kinds) {
    Deno.test(`${kind.name}: destroy() twice throws DestroyedError, from either object`, () => {
      const heap = SharedHeap.create();
      const object = kind.create(heap);
      const other = kind.attach(object);
      object.destroy();
      for (const o of [object, other]) {
        assert.throws(() => o.destroy(), (e: unknown) => {
          assert.ok(e instanceof DestroyedError);
          assert.equal(e.message, `Cannot destroy ${kind.name} as it was destroyed already`);
          return true;
        });
      }
      // The block went back to the heap once: two new objects get two blocks.
      assert.notEqual(kind.create(heap).handle.offset, kind.create(heap).handle.offset);
    });

    Deno.test(`${kind.name}: another object's wait on a destroyed one throws DestroyedError`, async () => {
      const heap = SharedHeap.create();
      const object = kind.create(heap);
      const others = kind.waits.map(() => kind.attach(object));
      object.destroy();
      for (const [i, wait] of kind.waits.entries()) {
        // Each wait is bounded: one that waited out its timeout throws
        // TimeoutError instead, and fails below.
        let caught: unknown;
        try {
          await wait(others[i]);
        } catch (e) {
          caught = e;
        }
        assert.ok(caught instanceof DestroyedError, `wait ${i} gave ${caught}`);
        assert.equal(caught.structure, kind.name);
      }
    });
  }
}
