/**
 * Dllist: a doubly linked list of numbers whose nodes can be removed and
 * moved (to either end of the same or another list) in O(1), kcas_data's
 * `Dllist`. Built only on the public Loc/Xt API.
 *
 * ## Layout and memory-model patterns
 *
 * - A node is an immutable 24-byte block `[tag, prev, next, 0, f64 value]`
 *   (pattern (b): filled before the commit that links it) where `prev` and
 *   `next` are the addresses of two `"ref"` Locs holding the addresses of
 *   the neighbouring node blocks.
 * - A list is a sentinel node (its value unused) in a circle with its
 *   nodes: an empty list's sentinel points to itself both ways.
 * - A removed node (by `remove` or a `take…`) is freed after its commit:
 *   the block is retired through the heap's epochs, its Locs with
 *   `Loc.free`. It must not be used again, by any worker, after that
 *   commit; in particular, only one worker may remove a given node.
 *
 * @module
 */

import { HandleError, type SharedHandle, type SharedHeap, tagOf } from "../../memory/mod.ts";
import { type CommitOptions, Loc, Retry, Xt } from "../mod.ts";
import { checkNumber, placeRecord, readRecord } from "./_record.ts";
import { allocIn, commitTracked, makeLocIn } from "./_alloc.ts";

const KIND = "sabre.stm.Dllist";
const TAG = tagOf("SDLL");
const NODE_TAG = tagOf("DLND");
const NODE_BYTES = 24;

let makeNode: (address: number, value: number, prev: Loc, next: Loc) => DllistNode;

/**
 * Handle of a {@linkcode Dllist}.
 *
 * @example
 * ```ts
 * import { Dllist, type DllistHandle } from "@sabre/sabre/stm/data";
 * import { SharedHeap } from "@sabre/sabre";
 * const list = Dllist.create(SharedHeap.create());
 * list.addLast(1);
 * const handle: DllistHandle = list.handle;
 * console.assert(Dllist.attach(handle).toArray().join() === "1");
 * ```
 */
export type DllistHandle = SharedHandle<"sabre.stm.Dllist">;

/**
 * A node of a {@linkcode Dllist}: its value, and its `address` (a number
 * that other workers turn back into the node with `Dllist.nodeAt`). Valid
 * until the node is removed.
 *
 * @example
 * ```ts
 * import { Dllist, type DllistNode } from "@sabre/sabre/stm/data";
 * import { SharedHeap } from "@sabre/sabre";
 * const list = Dllist.create(SharedHeap.create());
 * const node: DllistNode = list.addFirst(7);
 * console.assert(node.value === 7 && list.nodeAt(node.address).value === 7);
 * ```
 */
export class DllistNode {
  /** Byte offset of the node's block. */
  readonly address: number;
  /** The node's value (a node's value never changes). */
  readonly value: number;
  private readonly prev: Loc;
  private readonly next: Loc;

  private constructor(address: number, value: number, prev: Loc, next: Loc) {
    this.address = address;
    this.value = value;
    this.prev = prev;
    this.next = next;
  }

  static {
    makeNode = (address, value, prev, next) => new DllistNode(address, value, prev, next);
  }
}

const prevOf = (node: DllistNode): Loc => node["prev"];
const nextOf = (node: DllistNode): Loc => node["next"];

function nodeOf(heap: SharedHeap, address: number): DllistNode {
  if (
    !Number.isInteger(address) || address <= 0 || address % 16 !== 0 ||
    address + NODE_BYTES > heap.sab.byteLength
  ) {
    throw new HandleError(
      `Cannot find Dllist node as the address is not a node: current value is ${address}`,
    );
  }
  if (address + NODE_BYTES > heap.mappedBytes) heap.ensure(address + NODE_BYTES);
  const i32 = heap.i32;
  const i = address >> 2;
  if (i32[i] !== NODE_TAG) {
    throw new HandleError(`Cannot find Dllist node as the memory at offset ${address} holds none`);
  }
  return makeNode(
    address,
    heap.f64[(address >> 3) + 2],
    Loc.fromAddress(heap, i32[i + 1]),
    Loc.fromAddress(heap, i32[i + 2]),
  );
}

/**
 * A doubly linked list of numbers in shared memory. `add…` return the new
 * node, which `remove`, `moveFirst` and `moveLast` take (moving works
 * between lists of one heap too). Direct forms are one transaction each;
 * `xt…` forms compose into larger ones; `takeFirst`/`takeLast` wait while
 * the list is empty.
 *
 * @example
 * ```ts
 * import { Dllist } from "@sabre/sabre/stm/data";
 * import { Xt } from "@sabre/sabre";
 * import { SharedHeap } from "@sabre/sabre";
 *
 * const heap = SharedHeap.create();
 * const todo = Dllist.create(heap);
 * const done = Dllist.create(heap);
 * const a = todo.addLast(1);
 * todo.addLast(2);
 * const c = todo.addLast(3);
 * todo.moveFirst(c);
 * // Move a to the other list and take the first of todo, atomically.
 * const first = Xt.commit((xt) => {
 *   done.xtMoveLast(xt, a);
 *   return todo.xtTryTakeFirst(xt);
 * });
 * console.assert(first === 3 && todo.toArray().join() === "2" && done.toArray().join() === "1");
 * ```
 */
export class Dllist {
  readonly #heap: SharedHeap;
  readonly #sentinel: DllistNode;
  readonly #offset: number;

  private constructor(heap: SharedHeap, sentinel: DllistNode, offset: number) {
    this.#heap = heap;
    this.#sentinel = sentinel;
    this.#offset = offset;
  }

  /** Creates an empty list in `heap`. */
  static create(heap: SharedHeap): Dllist {
    const block = heap.allocate(NODE_BYTES);
    const prev = Loc.make(heap, block, { kind: "ref" });
    const next = Loc.make(heap, block, { kind: "ref" });
    fillNode(heap, block, prev, next, 0);
    const sentinel = makeNode(block, 0, prev, next);
    return new Dllist(heap, sentinel, placeRecord(heap, TAG, [prev, next], block));
  }

  /** Rebuilds a list from its handle; `HandleError` when it names none. */
  static attach(handle: DllistHandle): Dllist {
    const { heap, locs, offset, extra } = readRecord(handle, KIND, TAG, "Dllist");
    return new Dllist(heap, makeNode(extra, 0, locs[0], locs[1]), offset);
  }

  /** The handle to send to other workers. */
  get handle(): DllistHandle {
    return { kind: KIND, version: 1, sab: this.#heap.sab, offset: this.#offset };
  }

  /**
   * The node at `address` (a {@linkcode DllistNode.address} of this heap),
   * which must not have been removed. `HandleError` when no node is there.
   */
  nodeAt(address: number): DllistNode {
    this.#heap.pin();
    try {
      return nodeOf(this.#heap, address);
    } finally {
      this.#heap.unpin();
    }
  }

  // ------------------------------------------------------------- xt forms

  /** In a transaction: adds `value` at the front; returns its node. */
  xtAddFirst(xt: Xt, value: number): DllistNode {
    checkNumber(value, "add to Dllist");
    return this.#insert(xt, value, this.#sentinel, true);
  }

  /** In a transaction: adds `value` at the back; returns its node. */
  xtAddLast(xt: Xt, value: number): DllistNode {
    checkNumber(value, "add to Dllist");
    return this.#insert(xt, value, this.#sentinel, false);
  }

  /** In a transaction: removes `node` (of any list of this heap) and frees it after the commit. */
  xtRemove(xt: Xt, node: DllistNode): void {
    this.#unlink(xt, node, false);
    const heap = this.#heap;
    xt.postCommit(() => {
      heap.retire(node.address);
      prevOf(node).free();
      nextOf(node).free();
    });
  }

  /** In a transaction: moves `node` (from wherever it is) to the front of this list. */
  xtMoveFirst(xt: Xt, node: DllistNode): void {
    this.#unlink(xt, node, true);
    this.#link(xt, node, this.#sentinel, true);
  }

  /** In a transaction: moves `node` (from wherever it is) to the back of this list. */
  xtMoveLast(xt: Xt, node: DllistNode): void {
    this.#unlink(xt, node, true);
    this.#link(xt, node, this.#sentinel, false);
  }

  /** In a transaction: removes the first node and returns its value, or undefined when empty. */
  xtTryTakeFirst(xt: Xt): number | undefined {
    return this.#take(xt, true);
  }

  /** In a transaction: removes the last node and returns its value, or undefined when empty. */
  xtTryTakeLast(xt: Xt): number | undefined {
    return this.#take(xt, false);
  }

  /** In a transaction: like `xtTryTakeFirst`, retrying while empty. */
  xtTakeFirst(xt: Xt): number {
    return this.#take(xt, true) ?? Retry.later();
  }

  /** In a transaction: like `xtTryTakeLast`, retrying while empty. */
  xtTakeLast(xt: Xt): number {
    return this.#take(xt, false) ?? Retry.later();
  }

  /** In a transaction: whether the list is empty. */
  xtIsEmpty(xt: Xt): boolean {
    return xt.get(nextOf(this.#sentinel)) === this.#sentinel.address;
  }

  /** In a transaction: the values from first to last (reads every node). */
  xtToArray(xt: Xt): number[] {
    const out: number[] = [];
    const heap = this.#heap;
    const end = this.#sentinel.address;
    for (let p = xt.get(nextOf(this.#sentinel)); p !== end;) {
      const node = nodeOf(heap, p);
      out.push(node.value);
      p = xt.get(nextOf(node));
    }
    return out;
  }

  // --------------------------------------------------------- direct forms

  /** Adds `value` at the front; returns its node. */
  addFirst(value: number): DllistNode {
    return commitTracked(this.#heap, (xt) => this.xtAddFirst(xt, value));
  }

  /** Adds `value` at the back; returns its node. */
  addLast(value: number): DllistNode {
    return commitTracked(this.#heap, (xt) => this.xtAddLast(xt, value));
  }

  /** Removes `node` and frees it. */
  remove(node: DllistNode): void {
    Xt.commit((xt) => this.xtRemove(xt, node));
  }

  /** Moves `node` to the front of this list. */
  moveFirst(node: DllistNode): void {
    Xt.commit((xt) => this.xtMoveFirst(xt, node));
  }

  /** Moves `node` to the back of this list. */
  moveLast(node: DllistNode): void {
    Xt.commit((xt) => this.xtMoveLast(xt, node));
  }

  /** Removes the first node and returns its value, or undefined when empty. */
  tryTakeFirst(): number | undefined {
    return Xt.commit((xt) => this.xtTryTakeFirst(xt));
  }

  /** Removes the last node and returns its value, or undefined when empty. */
  tryTakeLast(): number | undefined {
    return Xt.commit((xt) => this.xtTryTakeLast(xt));
  }

  /** Removes the first node and returns its value, waiting while empty. */
  takeFirst(options?: CommitOptions): number {
    return Xt.commit((xt) => this.xtTakeFirst(xt), options);
  }

  /** Removes the last node and returns its value, waiting while empty. */
  takeLast(options?: CommitOptions): number {
    return Xt.commit((xt) => this.xtTakeLast(xt), options);
  }

  /** Whether the list is empty. */
  isEmpty(): boolean {
    return Xt.commit((xt) => this.xtIsEmpty(xt));
  }

  /** The values from first to last, at one instant. */
  toArray(): number[] {
    return Xt.commit((xt) => this.xtToArray(xt));
  }

  // ------------------------------------------------------------ internals

  /** A new node holding `value`, linked next to `anchor` (after it when `after`). */
  #insert(xt: Xt, value: number, anchor: DllistNode, after: boolean): DllistNode {
    const heap = this.#heap;
    const other = xt.get(after ? nextOf(anchor) : prevOf(anchor));
    const block = allocIn(heap, xt, NODE_BYTES);
    // Born linked: its own Locs hold their final values, outside the log.
    const prev = makeLocIn(heap, xt, after ? anchor.address : other, "ref");
    const next = makeLocIn(heap, xt, after ? other : anchor.address, "ref");
    fillNode(heap, block, prev, next, value);
    const node = makeNode(block, value, prev, next);
    if (after) {
      xt.set(nextOf(anchor), block);
      xt.set(prevOf(nodeOf(heap, other)), block);
    } else {
      xt.set(prevOf(anchor), block);
      xt.set(nextOf(nodeOf(heap, other)), block);
    }
    return node;
  }

  /** Links the detached `node` next to `anchor`. */
  #link(xt: Xt, node: DllistNode, anchor: DllistNode, after: boolean): void {
    const heap = this.#heap;
    const other = xt.get(after ? nextOf(anchor) : prevOf(anchor));
    if (after) {
      xt.set(prevOf(node), anchor.address);
      xt.set(nextOf(node), other);
      xt.set(nextOf(anchor), node.address);
      xt.set(prevOf(nodeOf(heap, other)), node.address);
    } else {
      xt.set(nextOf(node), anchor.address);
      xt.set(prevOf(node), other);
      xt.set(prevOf(anchor), node.address);
      xt.set(nextOf(nodeOf(heap, other)), node.address);
    }
  }

  /** Unlinks `node` from its neighbours; `selfLink` leaves it pointing at itself. */
  #unlink(xt: Xt, node: DllistNode, selfLink: boolean): void {
    const heap = this.#heap;
    const p = xt.get(prevOf(node));
    const n = xt.get(nextOf(node));
    if (p === node.address) return; // detached
    xt.set(nextOf(nodeOf(heap, p)), n);
    xt.set(prevOf(nodeOf(heap, n)), p);
    if (selfLink) {
      xt.set(prevOf(node), node.address);
      xt.set(nextOf(node), node.address);
    }
  }

  #take(xt: Xt, first: boolean): number | undefined {
    const s = this.#sentinel;
    const p = xt.get(first ? nextOf(s) : prevOf(s));
    if (p === s.address) return undefined;
    const node = nodeOf(this.#heap, p);
    this.xtRemove(xt, node);
    return node.value;
  }
}

function fillNode(heap: SharedHeap, block: number, prev: Loc, next: Loc, value: number): void {
  const i32 = heap.i32;
  const i = block >> 2;
  i32[i + 1] = prev.address;
  i32[i + 2] = next.address;
  i32[i + 3] = 0;
  heap.f64[(block >> 3) + 2] = value;
  i32[i] = NODE_TAG;
}
