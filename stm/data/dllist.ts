/**
 * Dllist: a doubly linked list of numbers whose nodes can be removed and
 * moved (to either end of the same or another list) in O(1), kcas_data's
 * `Dllist`. Built only on the public Loc/Xt API.
 *
 * ## Layout and memory-model patterns
 *
 * - A node is an immutable 24-byte block `[tag, prev, next, gen, value, sentinel]`
 *   (pattern (b): filled before it is first published) naming four Locs:
 *   `prev` and `next` hold the addresses of the neighbouring node blocks,
 *   `gen` counts the node's removals, `value` holds its number.
 * - A list is a sentinel node (its value unused) in a circle with its
 *   nodes: an empty list's sentinel points to itself both ways.
 * - **Nodes are type-stable**: a removed node (by `remove` or a `take…`) is
 *   never freed to the heap. The removing transaction bumps its `gen`, sets
 *   its `prev` to 0 (free) and pushes it on one of the heap's 16 free lists
 *   (a root shared by every Dllist of the heap, chained through `next`);
 *   a later insert pops it and links it again. A `DllistNode` handle
 *   remembers the `gen` it was made at, and every operation checks it in
 *   the same transaction, so a handle to a removed node, held by any
 *   worker, only gets `false` (or `HandleError` from `nodeAt`), even after
 *   the node was reused. Its block and Locs stay valid memory for good.
 *
 * @module
 */

import {
  checkHeap,
  describeValue,
  DestroyedError,
  HandleError,
  type SharedHandle,
  type SharedHeap,
  tagOf,
} from "../../memory/mod.ts";
import { type CommitOptions, Loc, Retry, Xt } from "../mod.ts";
import { checkNumber, placeRecord, readRecord, retireRecord } from "./_record.ts";
import {
  allocIn,
  commitTracked,
  freesMemory,
  makeLocIn,
  timingOutAs,
  timingOutAsAsync,
} from "./_alloc.ts";

const KIND = "sabre.stm.Dllist";
const TAG = tagOf("SDLL");
const NODE_TAG = tagOf("DLND");
const NODE_BYTES = 24;
/** Free lists of removed nodes, per heap: a root naming STRIPES "ref" Locs. */
const POOL_ROOT = "sabre.stm.dllist.free";
const POOL_KIND = "sabre.stm.DllistFree";
const POOL_TAG = tagOf("SDLF");
const STRIPES = 16;
/** Inserts between two scans of the other free lists when this worker's is empty. */
const SCAN_EVERY = 32;

let makeNode: (
  heap: SharedHeap,
  address: number,
  value: number,
  gen: number,
  locs: NodeLocs,
) => DllistNode;

/** The four Locs of a node block. */
interface NodeLocs {
  readonly prev: Loc;
  readonly next: Loc;
  readonly gen: Loc;
  readonly value: Loc;
}

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
 * that other workers turn back into the node with `Dllist.nodeAt`). Once
 * the node is removed, by any worker, operations through this handle do
 * nothing and return `false`; that stays true after the node's memory is
 * reused for a new node. An address names the memory, not the insert: to
 * hand a node to another worker, send `address` and `generation`, and
 * `nodeAt(address, generation)` there throws `HandleError` once that node
 * was removed (`nodeAt(address)` alone gives whatever node lives there
 * now). A node returned inside a transaction attempt that did not
 * commit (or was rolled back) must not be used. Operations throw
 * `TypeError` for a value that is not a node and `RangeError` for a node of
 * another heap.
 *
 * @example
 * ```ts
 * import { Dllist, type DllistNode } from "@sabre/sabre/stm/data";
 * import { SharedHeap } from "@sabre/sabre";
 * const list = Dllist.create(SharedHeap.create());
 * const node: DllistNode = list.addFirst(7);
 * // In another worker: list.nodeAt(address, generation).
 * console.assert(list.nodeAt(node.address, node.generation).value === 7);
 * console.assert(list.remove(node) && !list.remove(node));
 * ```
 */
export class DllistNode {
  /** Byte offset of the node's block. */
  readonly address: number;
  /** The node's value (a node's value never changes). */
  readonly value: number;
  /** How many times the node's memory was removed before this node was inserted there. */
  readonly generation: number;
  private readonly locs: NodeLocs;
  private readonly heap: SharedHeap;

  private constructor(
    heap: SharedHeap,
    address: number,
    value: number,
    gen: number,
    locs: NodeLocs,
  ) {
    this.heap = heap;
    this.address = address;
    this.value = value;
    this.generation = gen;
    this.locs = locs;
  }

  static {
    makeNode = (heap, address, value, gen, locs) => new DllistNode(heap, address, value, gen, locs);
  }
}

const locsOf = (node: DllistNode): NodeLocs => node["locs"];
const genOf = (node: DllistNode): number => node.generation;
const prevOf = (node: DllistNode): Loc => node["locs"].prev;
const nextOf = (node: DllistNode): Loc => node["locs"].next;

/** Checks that `node` is a node of `heap`, before anything is read or written. */
function checkNode(heap: SharedHeap, node: unknown, what: string): DllistNode {
  if (!(node instanceof DllistNode)) {
    throw new TypeError(
      `Cannot ${what} as 'node' is not a DllistNode: current value is ${describeValue(node)}`,
    );
  }
  if (node["heap"].sab !== heap.sab) {
    throw new RangeError(
      `Cannot ${what} as the node at offset ${node.address} belongs to another heap than the list`,
    );
  }
  return node;
}

/** The Locs of the node block at `address`, checking that one is there. */
function nodeLocs(heap: SharedHeap, address: number): NodeLocs {
  if (
    !Number.isInteger(address) || address <= 0 || address % 16 !== 0 ||
    address + NODE_BYTES > heap.sab.byteLength
  ) {
    throw new HandleError(
      `Cannot find Dllist node as the address is not a node: current value is ${
        describeValue(address)
      }`,
    );
  }
  if (address + NODE_BYTES > heap.mappedBytes) heap.ensure(address + NODE_BYTES);
  const i32 = heap.i32;
  const i = address >> 2;
  if (Atomics.load(i32, i) !== NODE_TAG) {
    throw new HandleError(`Cannot find Dllist node as the memory at offset ${address} holds none`);
  }
  // Immutable once tagged (and never freed), so plain reads are sound.
  return {
    prev: Loc.fromAddress(heap, i32[i + 1]),
    next: Loc.fromAddress(heap, i32[i + 2]),
    gen: Loc.fromAddress(heap, i32[i + 3]),
    value: Loc.fromAddress(heap, i32[i + 4]),
  };
}

/** In a transaction: the node linked at `address` (a neighbour, or a list's first or last). */
function linkedNode(xt: Xt, heap: SharedHeap, address: number): DllistNode {
  const locs = nodeLocs(heap, address);
  return makeNode(heap, address, xt.get(locs.value), xt.get(locs.gen), locs);
}

/** In a transaction: whether `node` is still the linked node its handle names. */
function isLive(xt: Xt, node: DllistNode): boolean {
  const locs = locsOf(node);
  return xt.get(locs.gen) === genOf(node) && xt.get(locs.prev) !== 0;
}

/** The heap's free lists of removed nodes, created on first use. */
const pools = new WeakMap<SharedHeap, Loc[]>();

function freeListsOf(heap: SharedHeap): Loc[] {
  let stripes = pools.get(heap);
  if (stripes !== undefined) return stripes;
  let handle = heap.root(POOL_ROOT);
  if (handle === undefined) {
    const made = Loc.makeArray(heap, STRIPES, 0, { kind: "ref" });
    const record = placeRecord(heap, POOL_TAG, made, 0);
    // Workers that race here agree on the first record; the others free theirs.
    handle = heap.setRootIfAbsent(POOL_ROOT, {
      kind: POOL_KIND,
      version: 1,
      sab: heap.sab,
      offset: record,
    });
    if (handle.offset !== record) {
      heap.free(record);
      for (const loc of made) loc.free();
    }
  }
  stripes = readRecord(handle, POOL_KIND, POOL_TAG, "Dllist free lists").locs;
  pools.set(heap, stripes);
  return stripes;
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
  /** The heap's free lists (see the module doc). */
  readonly #freeLists: Loc[];
  /** Inserts left before this worker scans the other free lists again. */
  #skipScans = 0;
  /** Set by destroy(): every later call on this object throws. */
  #destroyed = false;

  private constructor(heap: SharedHeap, sentinel: DllistNode, offset: number) {
    this.#heap = heap;
    this.#sentinel = sentinel;
    this.#offset = offset;
    this.#freeLists = freeListsOf(heap);
  }

  /**
   * Creates an empty list in `heap`.
   *
   * @example
   * ```ts
   * import { Dllist } from "@sabre/sabre/stm/data";
   * import { SharedHeap } from "@sabre/sabre";
   * console.assert(Dllist.create(SharedHeap.create()).isEmpty());
   * ```
   */
  static create(heap: SharedHeap): Dllist {
    checkHeap(heap, "create Dllist");
    const block = heap.allocate(NODE_BYTES);
    const locs: NodeLocs = {
      prev: Loc.make(heap, block, { kind: "ref" }),
      next: Loc.make(heap, block, { kind: "ref" }),
      gen: Loc.make(heap, 0),
      value: Loc.make(heap, 0),
    };
    fillNode(heap, block, locs, true);
    const sentinel = makeNode(heap, block, 0, 0, locs);
    return new Dllist(heap, sentinel, placeRecord(heap, TAG, [locs.prev, locs.next], block));
  }

  /**
   * Rebuilds a list from its handle; `HandleError` when it names none.
   *
   * @example
   * ```ts
   * import { Dllist } from "@sabre/sabre/stm/data";
   * import { SharedHeap } from "@sabre/sabre";
   * const list = Dllist.create(SharedHeap.create());
   * list.addLast(4);
   * console.assert(Dllist.attach(list.handle).toArray()[0] === 4);
   * ```
   */
  static attach(handle: DllistHandle): Dllist {
    const { heap, offset, extra } = readRecord(handle, KIND, TAG, "Dllist");
    return new Dllist(heap, makeNode(heap, extra, 0, 0, nodeLocs(heap, extra)), offset);
  }

  /**
   * The handle to send to other workers.
   *
   * @example
   * ```ts
   * import { Dllist } from "@sabre/sabre/stm/data";
   * import { SharedHeap } from "@sabre/sabre";
   * const list = Dllist.create(SharedHeap.create());
   * // worker.postMessage(list.handle)
   * console.assert(list.handle.kind === "sabre.stm.Dllist");
   * ```
   */
  get handle(): DllistHandle {
    if (this.#destroyed) throw new DestroyedError("Dllist");
    return this.#heap.handleOf(KIND, 1, this.#offset);
  }

  /**
   * The node at `address` (a {@linkcode DllistNode.address} of this heap).
   * `HandleError` when no node is there, when it is not in a list, or, with
   * `generation` (a {@linkcode DllistNode.generation}), when the node that
   * had it was removed since.
   *
   * @example
   * ```ts
   * import { Dllist } from "@sabre/sabre/stm/data";
   * import { SharedHeap } from "@sabre/sabre";
   * const list = Dllist.create(SharedHeap.create());
   * const { address, generation } = list.addLast(3);
   * console.assert(list.nodeAt(address, generation).value === 3);
   * ```
   */
  nodeAt(address: number, generation?: number): DllistNode {
    if (this.#destroyed) throw new DestroyedError("Dllist");
    const heap = this.#heap;
    if (generation !== undefined && !Number.isSafeInteger(generation)) {
      throw new TypeError(
        `Cannot find Dllist node as 'generation' is not an integer: current value is ${
          describeValue(generation)
        }`,
      );
    }
    const locs = nodeLocs(heap, address);
    if (heap.i32[(address >> 2) + 5] !== 0) {
      throw new HandleError(`Cannot find Dllist node as offset ${address} is a list's sentinel`);
    }
    return Xt.commit((xt) => {
      const gen = xt.get(locs.gen);
      if (xt.get(locs.prev) === 0 || (generation !== undefined && gen !== generation)) {
        throw new HandleError(
          `Cannot find Dllist node as the node at offset ${address}${
            generation === undefined ? "" : ` of generation ${generation}`
          } was removed`,
        );
      }
      return makeNode(heap, address, xt.get(locs.value), gen, locs);
    });
  }

  // ------------------------------------------------------------- xt forms

  /**
   * In a transaction: adds `value` at the front; returns its node.
   *
   * @example
   * ```ts
   * import { Dllist } from "@sabre/sabre/stm/data";
   * import { SharedHeap, Xt } from "@sabre/sabre";
   * const list = Dllist.create(SharedHeap.create());
   * list.addLast(2);
   * const node = Xt.commit((xt) => list.xtAddFirst(xt, 1));
   * console.assert(node.value === 1 && list.toArray().join() === "1,2");
   * ```
   */
  xtAddFirst(xt: Xt, value: number): DllistNode {
    if (this.#destroyed) throw new DestroyedError("Dllist");
    checkNumber(value, "add to Dllist");
    return this.#insert(xt, value, true);
  }

  /**
   * In a transaction: adds `value` at the back; returns its node.
   *
   * @example
   * ```ts
   * import { Dllist } from "@sabre/sabre/stm/data";
   * import { SharedHeap, Xt } from "@sabre/sabre";
   * const list = Dllist.create(SharedHeap.create());
   * // Both numbers appear at one instant.
   * Xt.commit((xt) => {
   *   list.xtAddLast(xt, 1);
   *   list.xtAddLast(xt, 2);
   * });
   * console.assert(list.toArray().join() === "1,2");
   * ```
   */
  xtAddLast(xt: Xt, value: number): DllistNode {
    if (this.#destroyed) throw new DestroyedError("Dllist");
    checkNumber(value, "add to Dllist");
    return this.#insert(xt, value, false);
  }

  /**
   * In a transaction: removes `node` (of any list of this heap). Returns
   * `false`, changing nothing, when the node was already removed.
   *
   * @example
   * ```ts
   * import { Dllist } from "@sabre/sabre/stm/data";
   * import { SharedHeap, Xt } from "@sabre/sabre";
   * const list = Dllist.create(SharedHeap.create());
   * const node = list.addLast(1);
   * list.addLast(2);
   * const removed = Xt.commit((xt) => [list.xtRemove(xt, node), list.xtRemove(xt, node)]);
   * console.assert(removed.join() === "true,false" && list.toArray().join() === "2");
   * ```
   */
  xtRemove(xt: Xt, node: DllistNode): boolean {
    if (this.#destroyed) throw new DestroyedError("Dllist");
    checkNode(this.#heap, node, "remove from Dllist");
    freesMemory(xt);
    if (!isLive(xt, node)) return false;
    this.#unlink(xt, node);
    this.#free(xt, node);
    return true;
  }

  /**
   * In a transaction: moves `node` (from wherever it is) to the front of
   * this list. Returns `false`, changing nothing, when it was removed.
   *
   * @example
   * ```ts
   * import { Dllist } from "@sabre/sabre/stm/data";
   * import { SharedHeap, Xt } from "@sabre/sabre";
   * const list = Dllist.create(SharedHeap.create());
   * list.addLast(1);
   * const node = list.addLast(2);
   * console.assert(Xt.commit((xt) => list.xtMoveFirst(xt, node)));
   * console.assert(list.toArray().join() === "2,1");
   * ```
   */
  xtMoveFirst(xt: Xt, node: DllistNode): boolean {
    if (this.#destroyed) throw new DestroyedError("Dllist");
    return this.#move(xt, node, true);
  }

  /**
   * In a transaction: moves `node` (from wherever it is) to the back of
   * this list. Returns `false`, changing nothing, when it was removed.
   *
   * @example
   * ```ts
   * import { Dllist } from "@sabre/sabre/stm/data";
   * import { SharedHeap, Xt } from "@sabre/sabre";
   * const heap = SharedHeap.create();
   * const todo = Dllist.create(heap);
   * const done = Dllist.create(heap);
   * const task = todo.addLast(1);
   * // Moves the node out of todo, into done.
   * console.assert(Xt.commit((xt) => done.xtMoveLast(xt, task)));
   * console.assert(todo.isEmpty() && done.toArray().join() === "1");
   * ```
   */
  xtMoveLast(xt: Xt, node: DllistNode): boolean {
    if (this.#destroyed) throw new DestroyedError("Dllist");
    return this.#move(xt, node, false);
  }

  /**
   * In a transaction: removes the first node and returns its value, or undefined when empty.
   *
   * @example
   * ```ts
   * import { Dllist } from "@sabre/sabre/stm/data";
   * import { SharedHeap, Xt } from "@sabre/sabre";
   * const list = Dllist.create(SharedHeap.create());
   * list.addLast(5);
   * const taken = Xt.commit((xt) => [list.xtTryTakeFirst(xt), list.xtTryTakeFirst(xt)]);
   * console.assert(taken[0] === 5 && taken[1] === undefined);
   * ```
   */
  xtTryTakeFirst(xt: Xt): number | undefined {
    if (this.#destroyed) throw new DestroyedError("Dllist");
    return this.#take(xt, true);
  }

  /**
   * In a transaction: removes the last node and returns its value, or undefined when empty.
   *
   * @example
   * ```ts
   * import { Dllist } from "@sabre/sabre/stm/data";
   * import { SharedHeap, Xt } from "@sabre/sabre";
   * const list = Dllist.create(SharedHeap.create());
   * list.addLast(1);
   * list.addLast(2);
   * const last = Xt.commit((xt) => list.xtTryTakeLast(xt));
   * console.assert(last === 2 && list.toArray().join() === "1");
   * ```
   */
  xtTryTakeLast(xt: Xt): number | undefined {
    if (this.#destroyed) throw new DestroyedError("Dllist");
    return this.#take(xt, false);
  }

  /**
   * In a transaction: like `xtTryTakeFirst`, retrying while empty.
   *
   * @example
   * ```ts
   * import { Dllist } from "@sabre/sabre/stm/data";
   * import { SharedHeap, Xt } from "@sabre/sabre";
   * const heap = SharedHeap.create();
   * const ready = Dllist.create(heap);
   * const running = Dllist.create(heap);
   * ready.addLast(1);
   * ready.addLast(2);
   * // Move the first ready number to running, waiting while ready is empty.
   * Xt.commit((xt) => running.xtAddLast(xt, ready.xtTakeFirst(xt)), { timeoutMs: 100 });
   * console.assert(ready.toArray().join() === "2" && running.toArray().join() === "1");
   * ```
   */
  xtTakeFirst(xt: Xt): number {
    if (this.#destroyed) throw new DestroyedError("Dllist");
    return this.#take(xt, true) ?? Retry.later();
  }

  /**
   * In a transaction: like `xtTryTakeLast`, retrying while empty.
   *
   * @example
   * ```ts
   * import { Dllist } from "@sabre/sabre/stm/data";
   * import { SharedHeap, Xt } from "@sabre/sabre";
   * const heap = SharedHeap.create();
   * const a = Dllist.create(heap);
   * const b = Dllist.create(heap);
   * b.addLast(1);
   * b.addLast(2);
   * // The last number of a, else of b; waits while both are empty.
   * const last = Xt.commit(
   *   Xt.first([(xt) => a.xtTakeLast(xt), (xt) => b.xtTakeLast(xt)]),
   *   { timeoutMs: 100 },
   * );
   * console.assert(last === 2 && b.toArray().join() === "1");
   * ```
   */
  xtTakeLast(xt: Xt): number {
    if (this.#destroyed) throw new DestroyedError("Dllist");
    return this.#take(xt, false) ?? Retry.later();
  }

  /**
   * In a transaction: whether the list is empty.
   *
   * @example
   * ```ts
   * import { Dllist } from "@sabre/sabre/stm/data";
   * import { SharedHeap, Xt } from "@sabre/sabre";
   * const list = Dllist.create(SharedHeap.create());
   * // Adds value only to an empty list.
   * const addIfEmpty = (value: number) =>
   *   Xt.commit((xt) => (list.xtIsEmpty(xt) ? list.xtAddLast(xt, value) : undefined));
   * console.assert(addIfEmpty(1) !== undefined && addIfEmpty(2) === undefined);
   * console.assert(list.toArray().join() === "1");
   * ```
   */
  xtIsEmpty(xt: Xt): boolean {
    if (this.#destroyed) throw new DestroyedError("Dllist");
    return xt.get(nextOf(this.#sentinel)) === this.#sentinel.address;
  }

  /**
   * In a transaction: the values from first to last (reads every node).
   *
   * @example
   * ```ts
   * import { Dllist } from "@sabre/sabre/stm/data";
   * import { SharedHeap, Xt } from "@sabre/sabre";
   * const heap = SharedHeap.create();
   * const a = Dllist.create(heap);
   * const b = Dllist.create(heap);
   * b.moveLast(a.addLast(1));
   * // Both lists at one instant.
   * const [xs, ys] = Xt.commit((xt) => [a.xtToArray(xt), b.xtToArray(xt)]);
   * console.assert(xs.length === 0 && ys.join() === "1");
   * ```
   */
  xtToArray(xt: Xt): number[] {
    if (this.#destroyed) throw new DestroyedError("Dllist");
    const out: number[] = [];
    const heap = this.#heap;
    const end = this.#sentinel.address;
    for (let p = xt.get(nextOf(this.#sentinel)); p !== end;) {
      const locs = nodeLocs(heap, p);
      out.push(xt.get(locs.value));
      p = xt.get(locs.next);
    }
    return out;
  }

  /**
   * In a transaction: the number of values. It walks the whole list, so it
   * reads every node, and any change to the list makes the transaction
   * retry: a count kept beside the links would instead make every insert
   * and removal conflict with every other one.
   *
   * @example
   * ```ts
   * import { Dllist } from "@sabre/sabre/stm/data";
   * import { SharedHeap, Xt } from "@sabre/sabre";
   * const list = Dllist.create(SharedHeap.create());
   * // Add only while the list holds fewer than 2 values.
   * const addBounded = (value: number) =>
   *   Xt.commit((xt) => list.xtLength(xt) < 2 && list.xtAddLast(xt, value) !== undefined);
   * console.assert(addBounded(1) && addBounded(2) && !addBounded(3));
   * ```
   */
  xtLength(xt: Xt): number {
    if (this.#destroyed) throw new DestroyedError("Dllist");
    const heap = this.#heap;
    const end = this.#sentinel.address;
    let length = 0;
    for (let p = xt.get(nextOf(this.#sentinel)); p !== end; length++) {
      p = xt.get(nodeLocs(heap, p).next);
    }
    return length;
  }

  /**
   * In a transaction: removes every node, as `remove` would each one (their
   * handles then get `false`, and their memory goes to the heap's free lists).
   *
   * @example
   * ```ts
   * import { Dllist } from "@sabre/sabre/stm/data";
   * import { SharedHeap, Xt } from "@sabre/sabre";
   * const heap = SharedHeap.create();
   * const pending = Dllist.create(heap);
   * const done = Dllist.create(heap);
   * pending.addLast(1);
   * pending.addLast(2);
   * // Mark every pending value done, in one commit.
   * Xt.commit((xt) => {
   *   for (const value of pending.xtToArray(xt)) done.xtAddLast(xt, value);
   *   pending.xtClear(xt);
   * });
   * console.assert(pending.isEmpty() && done.toArray().join() === "1,2");
   * ```
   */
  xtClear(xt: Xt): void {
    if (this.#destroyed) throw new DestroyedError("Dllist");
    while (this.#take(xt, true) !== undefined);
  }

  // --------------------------------------------------------- direct forms

  /**
   * Adds `value` at the front; returns its node.
   *
   * @example
   * ```ts
   * import { Dllist } from "@sabre/sabre/stm/data";
   * import { SharedHeap } from "@sabre/sabre";
   * const list = Dllist.create(SharedHeap.create());
   * list.addFirst(2);
   * const node = list.addFirst(1);
   * console.assert(node.value === 1 && list.toArray().join() === "1,2");
   * ```
   */
  addFirst(value: number): DllistNode {
    return commitTracked(this.#heap, (xt) => this.xtAddFirst(xt, value));
  }

  /**
   * Adds `value` at the back; returns its node.
   *
   * @example
   * ```ts
   * import { Dllist } from "@sabre/sabre/stm/data";
   * import { SharedHeap } from "@sabre/sabre";
   * const list = Dllist.create(SharedHeap.create());
   * list.addLast(1);
   * const node = list.addLast(2);
   * console.assert(node.value === 2 && list.toArray().join() === "1,2");
   * ```
   */
  addLast(value: number): DllistNode {
    return commitTracked(this.#heap, (xt) => this.xtAddLast(xt, value));
  }

  /**
   * Removes `node` from the list that holds it (any list of this heap);
   * `false` when it was already removed (by any worker).
   *
   * @example
   * ```ts
   * import { Dllist } from "@sabre/sabre/stm/data";
   * import { SharedHeap } from "@sabre/sabre";
   * const list = Dllist.create(SharedHeap.create());
   * const node = list.addLast(1);
   * list.addLast(2);
   * console.assert(list.remove(node) && !list.remove(node));
   * console.assert(list.toArray().join() === "2");
   * ```
   */
  remove(node: DllistNode): boolean {
    return Xt.commit((xt) => this.xtRemove(xt, node));
  }

  /**
   * Moves `node` to the front of this list; `false` when it was removed.
   *
   * @example
   * ```ts
   * import { Dllist } from "@sabre/sabre/stm/data";
   * import { SharedHeap } from "@sabre/sabre";
   * const list = Dllist.create(SharedHeap.create());
   * list.addLast(1);
   * list.addLast(2);
   * const node = list.addLast(3);
   * console.assert(list.moveFirst(node) && list.toArray().join() === "3,1,2");
   * ```
   */
  moveFirst(node: DllistNode): boolean {
    return Xt.commit((xt) => this.xtMoveFirst(xt, node));
  }

  /**
   * Moves `node` to the back of this list; `false` when it was removed.
   *
   * @example
   * ```ts
   * import { Dllist } from "@sabre/sabre/stm/data";
   * import { SharedHeap } from "@sabre/sabre";
   * const list = Dllist.create(SharedHeap.create());
   * const node = list.addLast(1);
   * list.addLast(2);
   * console.assert(list.moveLast(node) && list.toArray().join() === "2,1");
   * list.remove(node);
   * console.assert(!list.moveLast(node)); // removed: nothing to move
   * ```
   */
  moveLast(node: DllistNode): boolean {
    return Xt.commit((xt) => this.xtMoveLast(xt, node));
  }

  /**
   * Removes the first node and returns its value, or undefined when empty.
   *
   * @example
   * ```ts
   * import { Dllist } from "@sabre/sabre/stm/data";
   * import { SharedHeap } from "@sabre/sabre";
   * const list = Dllist.create(SharedHeap.create());
   * list.addLast(1);
   * list.addLast(2);
   * console.assert(list.tryTakeFirst() === 1 && list.toArray().join() === "2");
   * ```
   */
  tryTakeFirst(): number | undefined {
    return Xt.commit((xt) => this.xtTryTakeFirst(xt));
  }

  /**
   * Removes the last node and returns its value, or undefined when empty.
   *
   * @example
   * ```ts
   * import { Dllist } from "@sabre/sabre/stm/data";
   * import { SharedHeap } from "@sabre/sabre";
   * const list = Dllist.create(SharedHeap.create());
   * console.assert(list.tryTakeLast() === undefined);
   * list.addLast(1);
   * list.addLast(2);
   * console.assert(list.tryTakeLast() === 2 && list.toArray().join() === "1");
   * ```
   */
  tryTakeLast(): number | undefined {
    return Xt.commit((xt) => this.xtTryTakeLast(xt));
  }

  /**
   * Removes the first node and returns its value, waiting while empty.
   *
   * @example
   * ```ts
   * import { Dllist } from "@sabre/sabre/stm/data";
   * import { SharedHeap, TimeoutError } from "@sabre/sabre";
   * const list = Dllist.create(SharedHeap.create());
   * list.addLast(1);
   * console.assert(list.takeFirst() === 1);
   * let timedOut = false;
   * try {
   *   list.takeFirst({ timeoutMs: 10 }); // empty, and nobody adds
   * } catch (e) {
   *   timedOut = e instanceof TimeoutError;
   * }
   * console.assert(timedOut);
   * ```
   */
  takeFirst(options?: CommitOptions): number {
    return timingOutAs(
      "call Dllist.takeFirst",
      () => Xt.commit((xt) => this.xtTakeFirst(xt), options),
    );
  }

  /**
   * Removes the last node and returns its value, waiting while empty.
   *
   * @example
   * ```ts
   * import { Dllist } from "@sabre/sabre/stm/data";
   * import { SharedHeap } from "@sabre/sabre";
   * const list = Dllist.create(SharedHeap.create());
   * list.addLast(1);
   * list.addLast(2);
   * console.assert(list.takeLast({ timeoutMs: 100 }) === 2 && list.toArray().join() === "1");
   * ```
   */
  takeLast(options?: CommitOptions): number {
    return timingOutAs(
      "call Dllist.takeLast",
      () => Xt.commit((xt) => this.xtTakeLast(xt), options),
    );
  }

  /**
   * Removes the first node and returns its value, waiting (asynchronously) while empty.
   *
   * @example
   * ```ts
   * import { Dllist } from "@sabre/sabre/stm/data";
   * import { SharedHeap } from "@sabre/sabre";
   * const list = Dllist.create(SharedHeap.create());
   * const first = list.takeFirstAsync({ timeoutMs: 1000 }); // empty: waits
   * list.addLast(7);
   * console.assert((await first) === 7 && list.isEmpty());
   * ```
   */
  takeFirstAsync(options?: CommitOptions): Promise<number> {
    return timingOutAsAsync(
      "call Dllist.takeFirstAsync",
      () => Xt.commitAsync((xt) => this.xtTakeFirst(xt), options),
    );
  }

  /**
   * Removes the last node and returns its value, waiting (asynchronously) while empty.
   *
   * @example
   * ```ts
   * import { Dllist } from "@sabre/sabre/stm/data";
   * import { SharedHeap } from "@sabre/sabre";
   * const list = Dllist.create(SharedHeap.create());
   * const last = list.takeLastAsync({ timeoutMs: 1000 }); // empty: waits
   * list.addLast(1);
   * list.addLast(2);
   * console.assert((await last) === 2 && list.toArray().join() === "1");
   * ```
   */
  takeLastAsync(options?: CommitOptions): Promise<number> {
    return timingOutAsAsync(
      "call Dllist.takeLastAsync",
      () => Xt.commitAsync((xt) => this.xtTakeLast(xt), options),
    );
  }

  /**
   * Whether the list is empty.
   *
   * @example
   * ```ts
   * import { Dllist } from "@sabre/sabre/stm/data";
   * import { SharedHeap } from "@sabre/sabre";
   * const list = Dllist.create(SharedHeap.create());
   * console.assert(list.isEmpty());
   * list.addLast(1);
   * console.assert(!list.isEmpty());
   * ```
   */
  isEmpty(): boolean {
    return Xt.commit((xt) => this.xtIsEmpty(xt));
  }

  /**
   * The values from first to last, at one instant.
   *
   * @example
   * ```ts
   * import { Dllist } from "@sabre/sabre/stm/data";
   * import { SharedHeap } from "@sabre/sabre";
   * const list = Dllist.create(SharedHeap.create());
   * list.addFirst(2);
   * list.addFirst(1);
   * list.addLast(3);
   * console.assert(list.toArray().join() === "1,2,3");
   * ```
   */
  toArray(): number[] {
    return Xt.commit((xt) => this.xtToArray(xt));
  }

  /**
   * The number of values, at one instant. O(n): see `xtLength`.
   *
   * @example
   * ```ts
   * import { Dllist } from "@sabre/sabre/stm/data";
   * import { SharedHeap } from "@sabre/sabre";
   * const list = Dllist.create(SharedHeap.create());
   * list.addLast(1);
   * list.addFirst(0);
   * console.assert(list.length === 2);
   * ```
   */
  get length(): number {
    return Xt.commit((xt) => this.xtLength(xt));
  }

  /**
   * Removes every node at one instant (see `xtClear`).
   *
   * @example
   * ```ts
   * import { Dllist } from "@sabre/sabre/stm/data";
   * import { SharedHeap } from "@sabre/sabre";
   * const list = Dllist.create(SharedHeap.create());
   * const node = list.addLast(1);
   * list.addLast(2);
   * list.clear();
   * console.assert(list.isEmpty() && !list.remove(node));
   * ```
   */
  clear(): void {
    Xt.commit((xt) => this.xtClear(xt));
  }

  /**
   * Destroys the list: its nodes go to the heap's free lists, as removed
   * nodes do (handles to them then get `false`), and its sentinel and
   * record go back to the heap through epochs. No worker may use the list
   * afterwards: later calls on this object, a second `destroy()` included,
   * throw {@linkcode DestroyedError}, and `attach` refuses its handle.
   *
   * @example
   * ```ts
   * import { Dllist } from "@sabre/sabre/stm/data";
   * import { SharedHeap } from "@sabre/sabre";
   * const heap = SharedHeap.create();
   * const list = Dllist.create(heap);
   * const node = list.addLast(1);
   * list.destroy();
   * console.assert(!Dllist.create(heap).remove(node)); // the node was removed
   * ```
   */
  destroy(): void {
    if (this.#destroyed) throw new DestroyedError("Dllist", "destroy");
    // Done with either way, also when another object destroyed it first.
    this.#destroyed = true;
    const heap = this.#heap;
    retireRecord(heap, this.#offset, TAG, "Dllist");
    Xt.commit((xt) => {
      while (this.#take(xt, true) !== undefined);
    });
    const sentinel = this.#sentinel;
    const locs = locsOf(sentinel);
    heap.retire(sentinel.address);
    locs.prev.free();
    locs.next.free();
    locs.gen.free();
    locs.value.free();
  }

  // ------------------------------------------------------------ internals

  /** A node holding `value` (a free one when there is one), linked at the front or back. */
  #insert(xt: Xt, value: number, first: boolean): DllistNode {
    const heap = this.#heap;
    const free = this.#popFree(xt);
    if (free !== 0) {
      const locs = nodeLocs(heap, free);
      xt.set(locs.value, value);
      this.#link(xt, free, locs, first);
      return makeNode(heap, free, value, xt.get(locs.gen), locs);
    }
    const block = allocIn(heap, xt, NODE_BYTES);
    // Fresh Locs hold their final values outside the log (`#link` sets the
    // links in it); an attempt that does not commit frees them.
    const locs: NodeLocs = {
      prev: makeLocIn(heap, xt, block, "ref"),
      next: makeLocIn(heap, xt, block, "ref"),
      gen: makeLocIn(heap, xt, 0, "f64"),
      value: makeLocIn(heap, xt, value, "f64"),
    };
    fillNode(heap, block, locs);
    this.#link(xt, block, locs, first);
    return makeNode(heap, block, value, 0, locs);
  }

  /** xtMoveFirst and xtMoveLast. */
  #move(xt: Xt, node: DllistNode, first: boolean): boolean {
    checkNode(this.#heap, node, "move in Dllist");
    if (!isLive(xt, node)) return false;
    this.#unlink(xt, node);
    this.#link(xt, node.address, locsOf(node), first);
    return true;
  }

  /** Links the node at `address` (not in any list) at the front or back. */
  #link(xt: Xt, address: number, locs: NodeLocs, first: boolean): void {
    const heap = this.#heap;
    const s = this.#sentinel;
    if (first) {
      const other = xt.get(nextOf(s));
      xt.set(locs.prev, s.address);
      xt.set(locs.next, other);
      xt.set(nextOf(s), address);
      xt.set(nodeLocs(heap, other).prev, address);
    } else {
      const other = xt.get(prevOf(s));
      xt.set(locs.next, s.address);
      xt.set(locs.prev, other);
      xt.set(prevOf(s), address);
      xt.set(nodeLocs(heap, other).next, address);
    }
  }

  /** Unlinks the live `node` from its neighbours (its own links are left to the caller). */
  #unlink(xt: Xt, node: DllistNode): void {
    const heap = this.#heap;
    const p = xt.get(prevOf(node));
    const n = xt.get(nextOf(node));
    xt.set(nodeLocs(heap, p).next, n);
    xt.set(nodeLocs(heap, n).prev, p);
  }

  /** Marks the unlinked `node` removed (new gen, prev 0) and pushes it on this worker's free list. */
  #free(xt: Xt, node: DllistNode): void {
    const locs = locsOf(node);
    const stripe = this.#freeLists[this.#heap.join() % STRIPES];
    xt.set(locs.gen, genOf(node) + 1);
    xt.set(locs.prev, 0);
    xt.set(locs.next, xt.get(stripe));
    xt.set(stripe, node.address);
  }

  /**
   * Pops a removed node for reuse: from this worker's free list, else, once
   * every SCAN_EVERY inserts, from the first non-empty other one (reading
   * them all would put every free list in the read set of every insert).
   * Returns 0 when the caller should allocate.
   */
  #popFree(xt: Xt): number {
    const heap = this.#heap;
    const lists = this.#freeLists;
    const own = heap.join() % STRIPES;
    let head = xt.get(lists[own]);
    let from = own;
    if (head === 0) {
      if (this.#skipScans > 0) {
        this.#skipScans--;
        return 0;
      }
      for (let k = 1; k < STRIPES && head === 0; k++) {
        from = (own + k) % STRIPES;
        head = xt.get(lists[from]);
      }
      if (head === 0) {
        this.#skipScans = SCAN_EVERY;
        return 0;
      }
    }
    xt.set(lists[from], xt.get(nodeLocs(heap, head).next));
    return head;
  }

  #take(xt: Xt, first: boolean): number | undefined {
    freesMemory(xt);
    const s = this.#sentinel;
    const p = xt.get(first ? nextOf(s) : prevOf(s));
    if (p === s.address) return undefined;
    const node = linkedNode(xt, this.#heap, p);
    this.#unlink(xt, node);
    this.#free(xt, node);
    return node.value;
  }
}

function fillNode(heap: SharedHeap, block: number, locs: NodeLocs, sentinel = false): void {
  const i32 = heap.i32;
  const i = block >> 2;
  i32[i + 1] = locs.prev.address;
  i32[i + 2] = locs.next.address;
  i32[i + 3] = locs.gen.address;
  i32[i + 4] = locs.value.address;
  i32[i + 5] = sentinel ? 1 : 0;
  Atomics.store(i32, i, NODE_TAG);
}
