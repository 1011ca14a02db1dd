/**
 * Cursors over a {@linkcode BPlusTree}: a shared {@linkcode Cursor} that
 * moves in both directions, and an {@linkcode ExclusiveCursor} that also
 * writes at its position.
 *
 * A cursor sits in a gap between two entries. `next()` returns the entry
 * after the gap and moves past it; `prev()` returns the one before. Each move
 * is one linearizable lookup of the next (or previous) key from the cursor's
 * remembered position, so a cursor holds no latch and pins nothing between
 * calls, and entries that other workers insert or remove around it are seen
 * or not as if it looked right now. A walk with `next()` returns strictly
 * increasing keys. A move that stays inside a leaf no writer latched since
 * the last move, while the heap's reclamation epoch has not moved, costs one
 * check of that leaf's latch version instead of a walk from the root.
 *
 * @module
 */

import { type BPlusTree, type TreeInternals, treeInternals } from "./btree.ts";
import { SabreError } from "../memory/mod.ts";

const START = 0;
const END = 1;
const BEFORE = 2;
const AFTER = 3;

/**
 * A cursor over a {@linkcode BPlusTree}, from `tree.cursor()`. It holds no
 * shared resource; `close()` (or `using`) only ends its use.
 *
 * @example
 * ```ts
 * import { BPlusTree, SharedHeap } from "@sabre/sabre";
 * const tree = BPlusTree.create<string, number>(SharedHeap.create(), { key: "string", value: "i32" });
 * for (const [i, k] of ["a", "b", "c"].entries()) tree.set(k, i);
 * using cursor = tree.cursor();
 * cursor.seekForPrev("bb");
 * console.assert(cursor.prev()?.[0] === "b" && cursor.prev()?.[0] === "a" && cursor.prev() === undefined);
 * ```
 */
export class Cursor<K, V> implements Disposable {
  /**
   * The tree this cursor walks.
   *
   * @example
   * ```ts
   * import { BPlusTree, SharedHeap } from "@sabre/sabre";
   * const heap = SharedHeap.create();
   * const tree = BPlusTree.create(heap, { key: "i32", value: "i32" });
   * using cursor = tree.cursor();
   * console.assert(cursor.tree === tree);
   * ```
   */
  readonly tree: BPlusTree<K, V>;
  readonly #internals: TreeInternals<K, V>;
  #gap = START;
  #key: K | undefined = undefined;
  #closed = false;
  /**
   * Where the entry last returned lies, while the cursor sits next to it:
   * [leaf node, its latch version, content block, index, heap epoch]
   * (node 0: none). A later move inside an unchanged leaf, while the heap's
   * epoch has not moved, then costs one epoch and one version check.
   */
  readonly #hint = new Int32Array(5);
  /** Key of the entry last returned by next() or prev(), while it is the cursor's neighbour. */
  protected lastKey: K | undefined = undefined;
  /** Whether `lastKey` is set. */
  protected hasLast = false;

  /**
   * Creates a cursor before the first entry of `tree`; `tree.cursor()` does
   * the same and is the usual way.
   *
   * @example
   * ```ts
   * import { BPlusTree, Cursor, SharedHeap } from "@sabre/sabre";
   * const heap = SharedHeap.create();
   * const tree = BPlusTree.create<number, number>(heap, { key: "i32", value: "i32" });
   * tree.set(7, 70);
   * using cursor = new Cursor(tree);
   * console.assert(cursor.next()?.[1] === 70);
   * ```
   */
  constructor(tree: BPlusTree<K, V>) {
    this.tree = tree;
    this.#internals = treeInternals(tree);
  }

  /** Throws when the cursor is closed. */
  protected checkOpen(what: string): void {
    if (this.#closed) throw new SabreError(`Cannot ${what} as the cursor is closed`);
  }

  /** `key` checked by the tree's key codec. */
  protected checkKey(key: K): K {
    return this.#internals.checkKey(key);
  }

  /** Moves the cursor to a gap (START, END, BEFORE or AFTER `key`). */
  protected place(gap: number, key: K | undefined): void {
    this.#gap = gap;
    this.#key = key;
    this.hasLast = false;
    this.#hint[0] = 0;
  }

  /**
   * The move's entry from the hint, when it holds: the hinted entry is
   * just before the gap (AFTER it) or just after it (BEFORE it), so `next`
   * wants the index after the gap and `prev` the one before. Null when the
   * full step must run.
   */
  #fromHint(backward: boolean): [K, V] | undefined | null {
    const hint = this.#hint;
    if (hint[0] === 0) return null;
    const at = hint[3];
    const index = this.#gap === AFTER ? (backward ? at : at + 1) : (backward ? at - 1 : at);
    return this.#internals.stepHinted(hint, index);
  }

  /** Moves past `entry` (or to the edge when undefined), keeping the hint the step left. */
  #moved(entry: [K, V] | undefined, backward: boolean): [K, V] | undefined {
    if (entry === undefined) {
      this.place(backward ? START : END, undefined);
      return undefined;
    }
    this.#gap = backward ? BEFORE : AFTER;
    this.#key = entry[0];
    this.lastKey = entry[0];
    this.hasLast = true;
    return entry;
  }

  /**
   * Positions the cursor so that `next()` returns the first entry with a
   * key ≥ `key`.
   *
   * @example
   * ```ts
   * import { BPlusTree, SharedHeap } from "@sabre/sabre";
   * const heap = SharedHeap.create();
   * const tree = BPlusTree.create<number, number>(heap, { key: "i32", value: "i32" });
   * for (const k of [10, 20, 30]) tree.set(k, k);
   * using cursor = tree.cursor();
   * cursor.seek(15);
   * console.assert(cursor.next()?.[0] === 20);
   * cursor.seek(20);
   * console.assert(cursor.next()?.[0] === 20);
   * ```
   */
  seek(key: K): void {
    this.checkOpen("seek");
    this.place(BEFORE, this.#internals.checkKey(key));
  }

  /**
   * Positions the cursor so that `prev()` returns the last entry with a
   * key ≤ `key`.
   *
   * @example
   * ```ts
   * import { BPlusTree, SharedHeap } from "@sabre/sabre";
   * const heap = SharedHeap.create();
   * const tree = BPlusTree.create<number, number>(heap, { key: "i32", value: "i32" });
   * for (const k of [10, 20, 30]) tree.set(k, k);
   * using cursor = tree.cursor();
   * cursor.seekForPrev(25);
   * console.assert(cursor.prev()?.[0] === 20);
   * cursor.seekForPrev(30);
   * console.assert(cursor.prev()?.[0] === 30);
   * ```
   */
  seekForPrev(key: K): void {
    this.checkOpen("seek");
    this.place(AFTER, this.#internals.checkKey(key));
  }

  /**
   * Positions the cursor just before `key` and tells whether it is present
   * (then `next()` returns it, unless another worker removes it first).
   *
   * @example
   * ```ts
   * import { BPlusTree, SharedHeap } from "@sabre/sabre";
   * const heap = SharedHeap.create();
   * const tree = BPlusTree.create<number, number>(heap, { key: "i32", value: "i32" });
   * tree.set(10, 1);
   * tree.set(20, 2);
   * using cursor = tree.cursor();
   * console.assert(cursor.seekExact(20) && cursor.next()?.[0] === 20);
   * console.assert(!cursor.seekExact(15) && cursor.next()?.[0] === 20);
   * ```
   */
  seekExact(key: K): boolean {
    this.checkOpen("seek");
    this.place(BEFORE, this.#internals.checkKey(key));
    return this.tree.has(key);
  }

  /**
   * Positions the cursor before the first entry.
   *
   * @example
   * ```ts
   * import { BPlusTree, SharedHeap } from "@sabre/sabre";
   * const heap = SharedHeap.create();
   * const tree = BPlusTree.create<number, number>(heap, { key: "i32", value: "i32" });
   * for (const k of [3, 1, 2]) tree.set(k, k);
   * using cursor = tree.cursor();
   * cursor.seek(3);
   * cursor.seekToFirst();
   * console.assert(cursor.next()?.[0] === 1 && cursor.prev()?.[0] === 1);
   * console.assert(cursor.prev() === undefined);
   * ```
   */
  seekToFirst(): void {
    this.checkOpen("seek");
    this.place(START, undefined);
  }

  /**
   * Positions the cursor after the last entry.
   *
   * @example
   * ```ts
   * import { BPlusTree, SharedHeap } from "@sabre/sabre";
   * const heap = SharedHeap.create();
   * const tree = BPlusTree.create<number, number>(heap, { key: "i32", value: "i32" });
   * for (const k of [3, 1, 2]) tree.set(k, k);
   * using cursor = tree.cursor();
   * cursor.seekToLast();
   * console.assert(cursor.next() === undefined && cursor.prev()?.[0] === 3);
   * ```
   */
  seekToLast(): void {
    this.checkOpen("seek");
    this.place(END, undefined);
  }

  /**
   * Returns the entry after the cursor and moves past it; undefined at the
   * end, where the cursor stays.
   *
   * @example
   * ```ts
   * import { BPlusTree, SharedHeap } from "@sabre/sabre";
   * const heap = SharedHeap.create();
   * const tree = BPlusTree.create<string, number>(heap, { key: "string", value: "i32" });
   * tree.set("b", 2);
   * tree.set("a", 1);
   * using cursor = tree.cursor();
   * const keys: string[] = [];
   * for (let e = cursor.next(); e !== undefined; e = cursor.next()) keys.push(e[0]);
   * console.assert(keys.join() === "a,b");
   * ```
   */
  next(): [K, V] | undefined {
    this.checkOpen("move");
    const gap = this.#gap;
    if (gap === END) return undefined;
    const hinted = this.#fromHint(false);
    if (hinted !== null) return this.#moved(hinted, false);
    const entry = gap === START
      ? this.#internals.step(false, undefined, false, this.#hint)
      : this.#internals.step(false, this.#key, gap === AFTER, this.#hint);
    return this.#moved(entry, false);
  }

  /**
   * Returns the entry before the cursor and moves before it; undefined at
   * the start, where the cursor stays.
   *
   * @example
   * ```ts
   * import { BPlusTree, SharedHeap } from "@sabre/sabre";
   * const heap = SharedHeap.create();
   * const tree = BPlusTree.create<number, string>(heap, { key: "i32", value: "string" });
   * tree.set(1, "a");
   * tree.set(2, "b");
   * using cursor = tree.cursor();
   * cursor.seekToLast();
   * console.assert(cursor.prev()?.[1] === "b" && cursor.prev()?.[1] === "a");
   * console.assert(cursor.prev() === undefined);
   * ```
   */
  prev(): [K, V] | undefined {
    this.checkOpen("move");
    const gap = this.#gap;
    if (gap === START) return undefined;
    const hinted = this.#fromHint(true);
    if (hinted !== null) return this.#moved(hinted, true);
    const entry = gap === END
      ? this.#internals.step(true, undefined, false, this.#hint)
      : this.#internals.step(true, this.#key, gap === BEFORE, this.#hint);
    return this.#moved(entry, true);
  }

  /**
   * Ends the cursor's use: every later call but `close()` throws.
   *
   * @example
   * ```ts
   * import { BPlusTree, SharedHeap } from "@sabre/sabre";
   * const heap = SharedHeap.create();
   * const tree = BPlusTree.create(heap, { key: "i32", value: "i32" });
   * const cursor = tree.cursor();
   * cursor.close();
   * let caught: unknown;
   * try {
   *   cursor.next();
   * } catch (e) {
   *   caught = e;
   * }
   * console.assert(caught instanceof Error && caught.message.includes("closed"));
   * ```
   */
  close(): void {
    this.#closed = true;
  }

  /**
   * Same as `close()`, for `using`.
   *
   * @example
   * ```ts
   * import { BPlusTree, SharedHeap } from "@sabre/sabre";
   * const heap = SharedHeap.create();
   * const tree = BPlusTree.create(heap, { key: "i32", value: "i32" });
   * const cursor = tree.cursor();
   * {
   *   using _open = cursor;
   * }
   * let caught: unknown;
   * try {
   *   cursor.seekToFirst();
   * } catch (e) {
   *   caught = e;
   * }
   * console.assert(caught instanceof Error && caught.message.includes("closed"));
   * ```
   */
  [Symbol.dispose](): void {
    this.close();
  }
}

/**
 * A cursor that also writes, from `tree.cursorMut()`. Every write is one
 * linearizable tree operation.
 *
 * @example
 * ```ts
 * import { BPlusTree, SharedHeap } from "@sabre/sabre";
 * const tree = BPlusTree.create<number, number>(SharedHeap.create(), { key: "i32", value: "i32" });
 * using cursor = tree.cursorMut();
 * cursor.insert(5, 50);
 * console.assert(cursor.prev()?.[0] === 5);
 * cursor.remove(5);
 * console.assert(tree.size === 0);
 * ```
 */
export class ExclusiveCursor<K, V> extends Cursor<K, V> {
  /**
   * Sets `key` to `value` anywhere in the tree and returns the previous
   * value; the cursor then sits just after `key`.
   *
   * @example
   * ```ts
   * import { BPlusTree, SharedHeap } from "@sabre/sabre";
   * const heap = SharedHeap.create();
   * const tree = BPlusTree.create<number, number>(heap, { key: "i32", value: "i32" });
   * tree.set(1, 10);
   * using cursor = tree.cursorMut();
   * console.assert(cursor.insert(2, 20) === undefined && cursor.insert(1, 11) === 10);
   * console.assert(cursor.next()?.[0] === 2 && tree.get(1) === 11);
   * ```
   */
  insert(key: K, value: V): V | undefined {
    this.checkOpen("insert");
    const old = this.tree.set(key, value);
    this.place(AFTER, this.checkKey(key));
    return old;
  }

  /**
   * Removes `key` anywhere in the tree and returns its value; the cursor
   * then sits where the key was.
   *
   * @example
   * ```ts
   * import { BPlusTree, SharedHeap } from "@sabre/sabre";
   * const heap = SharedHeap.create();
   * const tree = BPlusTree.create<number, number>(heap, { key: "i32", value: "i32" });
   * for (const k of [1, 2, 3]) tree.set(k, k * 10);
   * using cursor = tree.cursorMut();
   * console.assert(cursor.remove(2) === 20 && cursor.remove(2) === undefined);
   * console.assert(cursor.prev()?.[0] === 1); // the cursor sits where 2 was
   * console.assert(cursor.next()?.[0] === 1 && cursor.next()?.[0] === 3);
   * ```
   */
  remove(key: K): V | undefined {
    this.checkOpen("remove");
    const old = this.tree.delete(key);
    this.place(BEFORE, this.checkKey(key));
    return old;
  }

  /**
   * Replaces the value of the entry that `next()` or `prev()` returned
   * last. Throws when there is none, or when another worker removed it.
   *
   * @example
   * ```ts
   * import { BPlusTree, SharedHeap } from "@sabre/sabre";
   * const heap = SharedHeap.create();
   * const tree = BPlusTree.create<number, number>(heap, { key: "i32", value: "i32" });
   * for (const k of [1, 2, 3]) tree.set(k, k);
   * using cursor = tree.cursorMut();
   * for (let e = cursor.next(); e !== undefined; e = cursor.next()) cursor.setValue(e[1] * 100);
   * console.assert(tree.get(1) === 100 && tree.get(3) === 300);
   * ```
   */
  setValue(value: V): void {
    this.checkOpen("set a value");
    if (!this.hasLast) {
      throw new SabreError(
        "Cannot set a value as the cursor has not returned an entry since it moved",
      );
    }
    const key = this.lastKey as K;
    let present = false;
    this.tree.update(key, (old) => {
      present = old !== undefined;
      return present ? value : undefined;
    });
    if (!present) {
      throw new SabreError("Cannot set a value as its entry was removed by another worker");
    }
  }
}
