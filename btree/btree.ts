/**
 * BPlusTree: a concurrent ordered map in a SharedHeap, a B+ tree with
 * optimistic lock coupling and copy-on-write nodes.
 *
 * ## Layout
 *
 * - **Header** (one block): tag, codec ids and limits, capacities, the root
 *   latch (two words), the root node pointer, the height, a node counter and
 *   16 size stripes on their own cache lines.
 * - **Node header** (16 bytes, never moves while the node lives): latch
 *   version, latch waiters, content pointer. See `LatchWords`.
 * - **Content** (one block per version of a node): count, fences, keys and
 *   values or children, as `btree/_node.ts` describes. Never changed after
 *   the header points at it.
 *
 * ## Memory-model patterns
 *
 * - Latch words, root pointer, height, size stripes, content pointers: (a)
 *   all-atomic.
 * - Content blocks: (b). A writer fills a new block with plain stores and
 *   publishes it with an Atomics store of the content pointer; readers load
 *   the pointer with Atomics and read the block with plain reads. Replaced
 *   blocks and removed node headers are retired through the heap's epochs,
 *   and every operation runs pinned.
 *
 * ## Reads
 *
 * A lookup writes nothing but its epoch slot. It descends from the root,
 * loading each node's content pointer once; the content is a consistent
 * snapshot of that node at the moment of the load. The snapshot's fence
 * keys validate the step: a node holds exactly the keys between its fences
 * (a split or merge publishes new fences), so a snapshot whose fences contain
 * the key is the truth for that key at that moment, and one whose fences do
 * not (or a removed node, whose content pointer is 0) sends the reader back
 * to the root. Readers therefore never wait for writers and never retry
 * because of a write to the leaf they read.
 *
 * ## Writes: optimistic lock coupling
 *
 * A writer descends optimistically: at each node it reads the latch version
 * (waiting while the node is latched), the content and the child pointer,
 * then the child's version, and validates the parent's version; a change
 * restarts from the root. At the leaf it upgrades to exclusive with a CAS from
 * the version it read, builds the new content, publishes it and unlocks. A
 * writer never waits while holding a latch (every further latch is taken with
 * a CAS, and a failed one releases everything and restarts), so there is no
 * deadlock.
 *
 * ## Structure changes
 *
 * - **Split** of a full node: latch the parent and the node (the root latch
 *   and the node for the root); build the two halves and the new parent; the
 *   new right node starts latched. Publish the right node, then the parent
 *   (now both the old node and the right node hold the moved keys, equal
 *   since both are latched), then the left half; unlock. A full parent is
 *   split first.
 * - **Merge** of a node under 40% full with a sibling (parent, node, then the
 *   sibling by try-lock): if both fit in one node they merge into the left
 *   one and the right node is removed (content pointer 0, header retired);
 *   otherwise they share their entries evenly. The writer then descends
 *   again and repairs the next underfull node on its path (a parent the
 *   merge left underfull, say), until none is left; a root left with one
 *   child hands the root to it. Merges are best effort under contention: a
 *   failed try-lock leaves the node underfull until a later repair whose
 *   path crosses it (any delete that leaves a leaf underfull below it).
 *
 * ## Limits
 *
 * Latches are not robust: a worker that dies inside a structure change
 * leaves its latches held, and writers to those nodes wait (readers do not).
 * In Deno, a worker only dies between operations (see ARCHITECTURE.md), and an
 * exception inside an operation (heap exhaustion, a throwing `update`
 * callback) releases every latch and leaves the tree as it was.
 *
 * @module
 */

import {
  attachHeapObject,
  checkKeyedOptions,
  type Codec,
  codec,
  CODEC_IDS,
  type CodecName,
  codecNameOf,
  type CodecValue,
  crashPoint,
  describeValue,
  DestroyedError,
  HeapExhaustedError,
  objectHandle,
  type Placement,
  placeObject,
  SabreError,
  type SharedHandle,
  type SharedHeap,
  tagOf,
  TimeoutError,
} from "../memory/mod.ts";
import { LatchWords } from "../latch/mod.ts";
import {
  buildFromArrays,
  C_BYTES,
  C_FLAGS,
  C_KEYS,
  countOf,
  Format,
  HIGH_INF,
  HIGH_REF,
  INFINITE,
  isLeaf,
  LOW_INF,
  LOW_REF,
  N_CONTENT,
  N_VERSION,
  NODE_BYTES,
  STAGED,
} from "./_node.ts";
import { Cursor, ExclusiveCursor } from "./cursor.ts";
import { checkOptionFields } from "../memory/_options.ts";

const KIND = "sabre.BPlusTree";
const LAYOUT_VERSION = 1;
const TAG = tagOf("BPTR");

const H_KEY_CODEC = 1;
const H_VALUE_CODEC = 2;
const H_KEY_MAX = 3;
const H_VALUE_MAX = 4;
const H_LEAF_CAPACITY = 5;
const H_INNER_CAPACITY = 6;
const H_ROOT_LATCH = 16; // and 17: waiters
const H_ROOT = 18;
const H_HEIGHT = 19;
const H_NODE_SEQ = 20;
const STRIPES = 16;
const STRIPE_WORDS = 16;
const STRIPES_AT = 32;
const HEADER_BYTES = 4 * (STRIPES_AT + STRIPES * STRIPE_WORDS);

const DEFAULT_CAPACITY = 128;
const MIN_CAPACITY = 4;
const MAX_CAPACITY = 1024;
const MAX_LIMIT_BYTES = 1 << 16;
const MAX_HEIGHT = 48;

// Descent modes.
const TO_KEY = 0;
const TO_MIN = 1;
const TO_MAX = 2;
/** To the leaf holding the keys just below the staged key. */
const TO_BELOW = 3;

// Write modes.
const W_SET = 0;
const W_INSERT = 1;
const W_DELETE = 2;
const W_GET_OR_INSERT = 3;
const W_UPDATE = 4;

// BPlusTree.#unusable
const USABLE = 0;
const DESTROYED = 1;
const IN_UPDATE_FN = 2;

/** A scan's position and bounds. */
interface ScanState<K> {
  /** The next leaf is the one for this key (undefined: the edge). */
  at: K | undefined;
  /** Whether `at` itself is excluded. */
  open: boolean;
  stop: K | undefined;
  stopOpen: boolean;
  reverse: boolean;
  /** Entries still wanted. */
  left: number;
  done: boolean;
}

const SIGN_BIT = 0x80000000 | 0;

/** What cursors and the invariant checker see of a tree. Internal. */
export interface TreeInternals<K, V> {
  /**
   * The first entry with key ≥ `key` (> when `open`; the first of all when
   * undefined), or with `backward` the last ≤ `key` (< when `open`).
   */
  step(
    backward: boolean,
    key: K | undefined,
    open: boolean,
    hint?: Int32Array,
  ): [K, V] | undefined;
  /**
   * The entry at index `index` of the leaf a cursor's `hint` remembers,
   * when that leaf is unchanged since the hint was taken; null when the
   * caller must take the full step instead (see `#stepHinted`).
   */
  stepHinted(hint: Int32Array, index: number): [K, V] | undefined | null;
  /** `key` checked by the key codec. */
  checkKey(key: K): K;
  /** The root node. */
  root(): number;
  format: Format<K, V>;
  /** Minimum fill of non-root leaves (entries) and inner nodes (children). */
  minFill: { leaf: number; inner: number };
}

let internalsOf: <K, V>(tree: BPlusTree<K, V>) => TreeInternals<K, V>;

/** The internals of `tree`, for cursors and the invariant checker. Internal. */
export function treeInternals<K, V>(tree: BPlusTree<K, V>): TreeInternals<K, V> {
  return internalsOf(tree);
}

const ENTRIES = 0;
const KEYS = 1;
const VALUES = 2;

/**
 * The global `Iterator` where the runtime has it (Deno, browsers, Node 22
 * and later), else a plain base class: the iterators then lack the helpers.
 */
const IteratorBase: typeof Iterator = (globalThis as { Iterator?: typeof Iterator }).Iterator ??
  (class {} as unknown as typeof Iterator);

/**
 * The iterator of range(), keys(), values() and entries(): it reads one
 * leaf snapshot at a time into two arrays (pinned only while reading), then
 * hands the entries out. An `Iterator`, so it has the iterator helpers
 * (`map`, `filter`, `take`, `toArray`...).
 */
class ScanIterator<K, V> extends IteratorBase<[K, V], undefined> {
  readonly #kind: number;
  readonly #state: ScanState<K>;
  readonly #read: (state: ScanState<K>, keys: K[], values: V[], ints?: IntBatch) => void;
  #keys: K[] = [];
  #values: V[] = [];
  #at = 0;
  /** For i32/u32 entries: raw words instead of JS arrays. */
  readonly #ints: IntBatch | undefined;
  readonly #keyFlip: number;
  readonly #unsignedValues: boolean;

  constructor(
    kind: number,
    state: ScanState<K>,
    read: (state: ScanState<K>, keys: K[], values: V[], ints?: IntBatch) => void,
    intEntries: number,
    leafCapacity: number,
  ) {
    super();
    this.#kind = kind;
    this.#state = state;
    this.#read = read;
    this.#ints = intEntries === 0 ? undefined : {
      keys: new Int32Array(8 * leafCapacity),
      values: new Int32Array(8 * leafCapacity),
      count: 0,
    };
    this.#keyFlip = intEntries & 1 ? 0 : SIGN_BIT;
    this.#unsignedValues = (intEntries & 4) !== 0;
  }

  override next(): IteratorResult<[K, V], undefined> {
    let i = this.#at;
    const ints = this.#ints;
    if (ints !== undefined) {
      if (i >= ints.count) {
        if (!this.#refill()) return { value: undefined, done: true };
        i = 0;
      }
      this.#at = i + 1;
      const flip = this.#keyFlip;
      const k = flip === 0 ? ints.keys[i] : (ints.keys[i] ^ flip) >>> 0;
      const v = this.#unsignedValues ? ints.values[i] >>> 0 : ints.values[i];
      const kind = this.#kind;
      if (kind === ENTRIES) return { value: [k as K, v as V], done: false };
      return { value: (kind === KEYS ? k : v) as unknown as [K, V], done: false };
    }
    if (i >= this.#keys.length) {
      if (!this.#refill()) return { value: undefined, done: true };
      i = 0;
    }
    this.#at = i + 1;
    const kind = this.#kind;
    if (kind === ENTRIES) return { value: [this.#keys[i], this.#values[i]], done: false };
    return { value: (kind === KEYS ? this.#keys[i] : this.#values[i]) as [K, V], done: false };
  }

  /** Reads the next leaves; false at the end. Fresh arrays each time keep them packed. */
  #refill(): boolean {
    for (;;) {
      if (this.#state.done) return false;
      this.#at = 0;
      const ints = this.#ints;
      if (ints !== undefined) {
        ints.count = 0;
        this.#read(this.#state, this.#keys, this.#values, ints);
        if (ints.count > 0) return true;
        continue;
      }
      this.#keys = [];
      this.#values = [];
      this.#read(this.#state, this.#keys, this.#values);
      if (this.#keys.length > 0) return true;
    }
  }

  override return(): IteratorResult<[K, V], undefined> {
    this.#state.done = true;
    this.#keys = [];
    if (this.#ints !== undefined) this.#ints.count = 0;
    this.#at = 0;
    return { value: undefined, done: true };
  }

  override [Symbol.iterator](): this {
    return this;
  }
}

/** Raw i32 words of a scan batch. */
interface IntBatch {
  readonly keys: Int32Array;
  readonly values: Int32Array;
  count: number;
}

/** What a write returns when there was no value. */
const NONE: unique symbol = Symbol("none");

/**
 * Handle of a {@linkcode BPlusTree}: post it to a worker and attach there.
 *
 * @example
 * ```ts
 * import { BPlusTree, type BPlusTreeHandle, SharedHeap } from "@sabre/sabre";
 * const tree = BPlusTree.create(SharedHeap.create(), { key: "i32", value: "i32" });
 * const handle: BPlusTreeHandle = tree.handle;
 * console.assert(handle.kind === "sabre.BPlusTree");
 * ```
 */
export type BPlusTreeHandle = SharedHandle<"sabre.BPlusTree">;

/**
 * Options of {@linkcode BPlusTree.create}.
 *
 * @example
 * ```ts
 * import { BPlusTree, type BPlusTreeOptions, SharedHeap } from "@sabre/sabre";
 * const options: BPlusTreeOptions = { key: "string", value: "f64", maxKeyBytes: 64 };
 * console.assert(BPlusTree.create(SharedHeap.create(), options).size === 0);
 * ```
 */
export interface BPlusTreeOptions {
  /** Key codec. Strings order by their UTF-8 bytes (code point order). */
  readonly key: CodecName;
  /** Value codec. */
  readonly value: CodecName;
  /** Longest string/bytes key in bytes (default 256, at most 65536). */
  readonly maxKeyBytes?: number;
  /** Longest string/bytes value in bytes (default 256, at most 65536). */
  readonly maxValueBytes?: number;
  /** Entries per leaf, 4 to 1024 (default 128). */
  readonly leafCapacity?: number;
  /** Children per inner node, 4 to 1024 (default 128). */
  readonly innerCapacity?: number;
}

/**
 * Bounds of {@linkcode BPlusTree.range}: at most one lower bound (`gte` or
 * `gt`) and one upper bound (`lte` or `lt`).
 *
 * @example
 * ```ts
 * import { BPlusTree, type RangeOptions, SharedHeap } from "@sabre/sabre";
 * const tree = BPlusTree.create<number, number>(SharedHeap.create(), { key: "i32", value: "i32" });
 * tree.set(1, 1); tree.set(2, 2); tree.set(3, 3);
 * const options: RangeOptions<number> = { gt: 1, reverse: true };
 * console.assert([...tree.range(options)].map(([k]) => k).join() === "3,2");
 * ```
 */
export interface RangeOptions<K> {
  /** Keys ≥ this. */
  readonly gte?: K;
  /** Keys > this. */
  readonly gt?: K;
  /** Keys ≤ this. */
  readonly lte?: K;
  /** Keys < this. */
  readonly lt?: K;
  /** Descending order. */
  readonly reverse?: boolean;
  /** At most this many entries. */
  readonly limit?: number;
}

/** The fields of RangeOptions. */
const RANGE_OPTIONS = ["gte", "gt", "lte", "lt", "reverse", "limit"] as const;

/** maxKeyBytes and maxValueBytes where the options leave them out. */
const DEFAULT_LIMIT_BYTES = 256;

function checkLimit(options: BPlusTreeOptions, field: "maxKeyBytes" | "maxValueBytes"): void {
  const limit: unknown = options[field];
  if (limit === undefined) return;
  if (
    typeof limit !== "number" || !Number.isInteger(limit) || limit < 1 || limit > MAX_LIMIT_BYTES
  ) {
    throw new (typeof limit === "number" ? RangeError : TypeError)(
      `Cannot create BPlusTree as '${field}' must be an integer from 1 to ${MAX_LIMIT_BYTES}: current value is ${
        describeValue(limit)
      }`,
    );
  }
}

function checkCapacity(
  options: BPlusTreeOptions,
  field: "leafCapacity" | "innerCapacity",
): number {
  const value: unknown = options[field];
  if (value === undefined) return DEFAULT_CAPACITY;
  if (
    typeof value !== "number" || !Number.isInteger(value) || value < MIN_CAPACITY ||
    value > MAX_CAPACITY
  ) {
    throw new (typeof value === "number" ? RangeError : TypeError)(
      `Cannot create BPlusTree as '${field}' must be an integer from ${MIN_CAPACITY} to ${MAX_CAPACITY}: current value is ${
        describeValue(value)
      }`,
    );
  }
  return value;
}

/**
 * A concurrent ordered map from keys to values in a {@linkcode SharedHeap},
 * shared by every worker that attaches its handle.
 *
 * Point operations are linearizable. Lookups and scans never write shared
 * memory (apart from the worker's epoch slot) and never wait for writers.
 * Scans are not snapshots: each leaf is read as a snapshot, and a scan is
 * monotonic (strictly ordered, no duplicates; it returns every key present
 * throughout it and no key absent throughout it).
 *
 * @example
 * ```ts
 * import { BPlusTree, SharedHeap } from "@sabre/sabre";
 * const heap = SharedHeap.create();
 * const tree = BPlusTree.create<string, number>(heap, { key: "string", value: "i32" });
 * tree.set("pear", 3); tree.set("apple", 1); tree.set("fig", 2);
 * console.assert(tree.get("fig") === 2);
 * console.assert([...tree.keys()].join() === "apple,fig,pear");
 * // In a worker: BPlusTree.attach(handle) with the handle posted to it.
 * console.assert(tree.handle.kind === "sabre.BPlusTree");
 * ```
 */
export class BPlusTree<K = unknown, V = unknown> implements Iterable<[K, V]> {
  readonly #heap: SharedHeap;
  readonly #placement: Placement;
  readonly #header: number;
  readonly #format: Format<K, V>;
  readonly #keys: Codec<K>;
  readonly #values: Codec<V>;
  readonly #leafCapacity: number;
  readonly #innerCapacity: number;
  readonly #minLeaf: number;
  readonly #minInner: number;

  // The last descent's path, root first.
  readonly #pathNodes = new Int32Array(MAX_HEIGHT);
  readonly #pathVersions = new Int32Array(MAX_HEIGHT);
  readonly #pathContents = new Int32Array(MAX_HEIGHT);
  readonly #pathChild = new Int32Array(MAX_HEIGHT);
  #pathDepth = 0;
  #rootVersion = 0;
  #stripe = 0;
  #timeoutMs = Infinity;
  /** When the current write gives up waiting for a latch. */
  #deadline = Infinity;

  private constructor(heap: SharedHeap, placement: Placement) {
    this.#heap = heap;
    this.#placement = placement;
    this.#header = placement.offset >> 2;
    const words = placement.words;
    this.#keys = codec(codecNameOf(words[H_KEY_CODEC]), {
      role: "key",
      maxBytes: words[H_KEY_MAX],
      limitName: "maxKeyBytes",
    }) as unknown as Codec<K>;
    this.#values = codec(codecNameOf(words[H_VALUE_CODEC]), {
      role: "value",
      maxBytes: words[H_VALUE_MAX],
      limitName: "maxValueBytes",
    }) as unknown as Codec<V>;
    this.#format = new Format(this.#keys, this.#values);
    this.#leafCapacity = words[H_LEAF_CAPACITY];
    this.#innerCapacity = words[H_INNER_CAPACITY];
    this.#minLeaf = Math.max(1, Math.floor((this.#leafCapacity * 2) / 5));
    this.#minInner = Math.max(2, Math.floor((this.#innerCapacity * 2) / 5));
    heap.ensure(placement.offset + HEADER_BYTES);
  }

  /**
   * Creates an empty tree in `heap`, typed by its codecs (`"u32"` keys are
   * numbers, `"string"` values strings). Throws `TypeError`/`RangeError` for
   * bad options and `HeapExhaustedError` when the heap is full.
   *
   * @example
   * ```ts
   * import { BPlusTree, SharedHeap } from "@sabre/sabre";
   * const tree = BPlusTree.create(SharedHeap.create(), {
   *   key: "u32",
   *   value: "string",
   *   leafCapacity: 32,
   * });
   * console.assert(tree.size === 0 && tree.height === 1);
   * const name: string | undefined = tree.get(7);
   * console.assert(name === undefined);
   * ```
   */
  static create<KN extends CodecName, VN extends CodecName>(
    heap: SharedHeap,
    options: BPlusTreeOptions & { readonly key: KN; readonly value: VN },
  ): BPlusTree<CodecValue<KN>, CodecValue<VN>>;
  /**
   * Creates an empty tree in `heap`, with the key and value types given
   * (they must match the codecs).
   *
   * @example
   * ```ts
   * import { BPlusTree, SharedHeap } from "@sabre/sabre";
   * const tree = BPlusTree.create<number, string>(SharedHeap.create(), {
   *   key: "u32",
   *   value: "string",
   * });
   * console.assert(tree.size === 0);
   * ```
   */
  static create<K = unknown, V = unknown>(
    heap: SharedHeap,
    options: BPlusTreeOptions,
  ): BPlusTree<K, V>;
  static create<K = unknown, V = unknown>(
    heap: SharedHeap,
    options: BPlusTreeOptions,
  ): BPlusTree<K, V> {
    checkKeyedOptions("BPlusTree", heap, options, [
      "maxKeyBytes",
      "maxValueBytes",
      "leafCapacity",
      "innerCapacity",
    ]);
    checkLimit(options, "maxKeyBytes");
    checkLimit(options, "maxValueBytes");
    const leafCapacity = checkCapacity(options, "leafCapacity");
    const innerCapacity = checkCapacity(options, "innerCapacity");
    const keys = codec(options.key, {
      role: "key",
      maxBytes: options.maxKeyBytes ?? DEFAULT_LIMIT_BYTES,
    });
    const values = codec(options.value, {
      role: "value",
      maxBytes: options.maxValueBytes ?? DEFAULT_LIMIT_BYTES,
    });
    const placement = placeObject(heap, HEADER_BYTES, 0, "BPlusTree");
    const words = placement.words;
    words[H_KEY_CODEC] = CODEC_IDS[options.key];
    words[H_VALUE_CODEC] = CODEC_IDS[options.value];
    words[H_KEY_MAX] = keys.maxBytes;
    words[H_VALUE_MAX] = values.maxBytes;
    words[H_LEAF_CAPACITY] = leafCapacity;
    words[H_INNER_CAPACITY] = innerCapacity;
    const tree = new BPlusTree<K, V>(heap, placement);
    let root: number;
    try {
      heap.pinForOperation();
      try {
        root = tree.#newNode(tree.#emptyLeaf(), false);
      } finally {
        heap.unpin();
      }
    } catch (e) {
      heap.free(placement.offset);
      throw e;
    }
    Atomics.store(words, H_ROOT, root);
    Atomics.store(words, H_HEIGHT, 1);
    Atomics.store(words, 0, TAG); // publish last
    return tree;
  }

  /**
   * Rebuilds a tree from its handle in any worker.
   *
   * @example
   * ```ts
   * import { BPlusTree, SharedHeap } from "@sabre/sabre";
   * const tree = BPlusTree.create(SharedHeap.create(), { key: "i32", value: "i32" });
   * tree.set(1, 10);
   * console.assert(BPlusTree.attach<number, number>(tree.handle).get(1) === 10);
   * ```
   */
  static attach<K = unknown, V = unknown>(handle: BPlusTreeHandle): BPlusTree<K, V> {
    const placement = attachHeapObject(
      handle,
      KIND,
      LAYOUT_VERSION,
      HEADER_BYTES,
      TAG,
      "BPlusTree",
    );
    return new BPlusTree<K, V>(placement.heap, placement);
  }

  /**
   * The handle to send to other workers.
   *
   * @example
   * ```ts
   * import { BPlusTree, SharedHeap } from "@sabre/sabre";
   * const tree = BPlusTree.create(SharedHeap.create(), { key: "f64", value: "f64" });
   * console.assert(tree.handle.kind === "sabre.BPlusTree");
   * ```
   */
  get handle(): BPlusTreeHandle {
    return objectHandle(KIND, LAYOUT_VERSION, this.#placement);
  }

  /**
   * The heap the tree lives in.
   *
   * @example
   * ```ts
   * import { BPlusTree, SharedHeap } from "@sabre/sabre";
   * const heap = SharedHeap.create();
   * console.assert(BPlusTree.create(heap, { key: "i32", value: "i32" }).heap === heap);
   * ```
   */
  get heap(): SharedHeap {
    return this.#heap;
  }

  /**
   * Entries present now: the sum of per-worker counters, exact when no
   * write is in flight.
   *
   * @example
   * ```ts
   * import { BPlusTree, SharedHeap } from "@sabre/sabre";
   * const tree = BPlusTree.create(SharedHeap.create(), { key: "i32", value: "i32" });
   * tree.set(1, 1); tree.set(2, 2); tree.set(1, 3);
   * console.assert(tree.size === 2);
   * ```
   */
  get size(): number {
    if (this.#unusable !== 0) this.#throwUnusable();
    const i32 = this.#heap.i32;
    let total = 0;
    for (let s = 0; s < STRIPES; s++) {
      total += Atomics.load(i32, this.#header + STRIPES_AT + STRIPE_WORDS * s);
    }
    return total;
  }

  /**
   * Levels of the tree: 1 while the root is a leaf.
   *
   * @example
   * ```ts
   * import { BPlusTree, SharedHeap } from "@sabre/sabre";
   * const tree = BPlusTree.create(SharedHeap.create(), { key: "i32", value: "i32", leafCapacity: 4 });
   * for (let i = 0; i < 5; i++) tree.set(i, i);
   * console.assert(tree.height === 2);
   * ```
   */
  get height(): number {
    if (this.#unusable !== 0) this.#throwUnusable();
    return Atomics.load(this.#heap.i32, this.#header + H_HEIGHT);
  }

  /**
   * How long a write of this worker's instance may wait for a node latch
   * before it throws `TimeoutError`, having changed nothing (default:
   * forever). Writers wait only for a latch that another writer holds for
   * the few hundred nanoseconds of a node rewrite, or forever for one that a
   * worker killed in the middle of a structure change left held; readers
   * never wait.
   *
   * @example
   * ```ts
   * import { BPlusTree, SharedHeap } from "@sabre/sabre";
   * const tree = BPlusTree.create(SharedHeap.create(), { key: "i32", value: "i32" });
   * tree.writeTimeoutMs = 250;
   * console.assert(tree.writeTimeoutMs === 250);
   * ```
   */
  get writeTimeoutMs(): number {
    return this.#timeoutMs;
  }

  set writeTimeoutMs(ms: number) {
    if (typeof ms !== "number" || !(ms >= 0)) {
      throw new RangeError(
        `Cannot set BPlusTree.writeTimeoutMs as it must be a number >= 0: current value is ${
          describeValue(ms)
        }`,
      );
    }
    this.#timeoutMs = ms;
  }

  /**
   * Entries per leaf and children per inner node.
   *
   * @example
   * ```ts
   * import { BPlusTree, SharedHeap } from "@sabre/sabre";
   * const tree = BPlusTree.create(SharedHeap.create(), { key: "i32", value: "i32", leafCapacity: 32 });
   * console.assert(tree.capacities.leaf === 32 && tree.capacities.inner === 128);
   * ```
   */
  get capacities(): { leaf: number; inner: number } {
    return { leaf: this.#leafCapacity, inner: this.#innerCapacity };
  }

  // ---------------------------------------------------------------- reads

  /**
   * The value of `key`, or undefined.
   *
   * @example
   * ```ts
   * import { BPlusTree, SharedHeap } from "@sabre/sabre";
   * const tree = BPlusTree.create<bigint, number>(SharedHeap.create(), { key: "bigint64", value: "f64" });
   * tree.set(-5n, 0.5);
   * console.assert(tree.get(-5n) === 0.5 && tree.get(5n) === undefined);
   * ```
   */
  get(key: K): V | undefined {
    if (this.#unusable !== 0) this.#throwUnusable();
    const format = this.#format;
    format.stageCheckedKey(key, "key");
    const heap = this.#heap;
    heap.pinForOperation();
    try {
      const c = this.#leafFor(TO_KEY);
      const i32 = heap.i32, u8 = heap.u8, w = c >> 2;
      const i = format.lowerBound(i32, u8, w);
      if (i < countOf(i32, w) && format.keyEquals(i32, u8, w, i)) {
        return format.valueAt(i32, u8, w, i);
      }
      return undefined;
    } finally {
      heap.unpin();
    }
  }

  /**
   * Whether `key` is present.
   *
   * @example
   * ```ts
   * import { BPlusTree, SharedHeap } from "@sabre/sabre";
   * const tree = BPlusTree.create<string, number>(SharedHeap.create(), { key: "string", value: "i32" });
   * tree.set("a", 1);
   * console.assert(tree.has("a") && !tree.has("b"));
   * ```
   */
  has(key: K): boolean {
    if (this.#unusable !== 0) this.#throwUnusable();
    const format = this.#format;
    format.stageCheckedKey(key, "key");
    const heap = this.#heap;
    heap.pinForOperation();
    try {
      const c = this.#leafFor(TO_KEY);
      const i32 = heap.i32, u8 = heap.u8, w = c >> 2;
      const i = format.lowerBound(i32, u8, w);
      return i < countOf(i32, w) && format.keyEquals(i32, u8, w, i);
    } finally {
      heap.unpin();
    }
  }

  /**
   * The entry with the smallest key, or undefined when empty.
   *
   * @example
   * ```ts
   * import { BPlusTree, SharedHeap } from "@sabre/sabre";
   * const tree = BPlusTree.create<number, number>(SharedHeap.create(), { key: "i32", value: "i32" });
   * tree.set(5, 50); tree.set(-1, 10);
   * console.assert(tree.first()?.[0] === -1);
   * ```
   */
  first(): [K, V] | undefined {
    return this.#step(false, undefined, false);
  }

  /**
   * The entry with the largest key, or undefined when empty.
   *
   * @example
   * ```ts
   * import { BPlusTree, SharedHeap } from "@sabre/sabre";
   * const tree = BPlusTree.create<number, number>(SharedHeap.create(), { key: "i32", value: "i32" });
   * tree.set(5, 50); tree.set(-1, 10);
   * console.assert(tree.last()?.[1] === 50);
   * ```
   */
  last(): [K, V] | undefined {
    return this.#step(true, undefined, false);
  }

  /** Node of the leaf #leafFor returned last. */
  #lastLeafNode = 0;
  /** Content of that leaf's parent (0 for a root leaf), and the leaf's index in it. */
  #lastParent = 0;
  #lastChild = 0;

  /**
   * The content of the leaf for the staged key (or the edge, or the leaf
   * below the staged key), loaded once and checked by its fences. Pinned.
   */
  #leafFor(mode: number): number {
    const heap = this.#heap, format = this.#format, header = this.#header;
    restart: for (;;) {
      let i32 = heap.i32;
      let node = Atomics.load(i32, header + H_ROOT);
      this.#lastParent = 0;
      for (let depth = 0; depth < MAX_HEIGHT; depth++) {
        if (node + NODE_BYTES > heap.mappedBytes) heap.ensure(node + NODE_BYTES);
        i32 = heap.i32;
        const c = Atomics.load(i32, (node >> 2) + N_CONTENT);
        if (c === 0) continue restart; // removed by a merge
        this.#ensureContent(c);
        i32 = heap.i32;
        const w = c >> 2;
        const u8 = heap.u8;
        const flags = i32[w + C_FLAGS];
        let child: number;
        if (mode === TO_KEY) {
          if (!format.inFences(i32, u8, w)) continue restart;
          if (isLeaf(i32, w)) {
            this.#lastLeafNode = node;
            return c;
          }
          child = format.upperBound(i32, u8, w);
        } else if (mode === TO_MIN) {
          if ((flags & LOW_INF) === 0) continue restart;
          if (isLeaf(i32, w)) {
            this.#lastLeafNode = node;
            return c;
          }
          child = 0;
        } else if (mode === TO_MAX) {
          if ((flags & HIGH_INF) === 0) continue restart;
          if (isLeaf(i32, w)) {
            this.#lastLeafNode = node;
            return c;
          }
          child = countOf(i32, w);
        } else {
          // TO_BELOW: low < key ≤ high.
          if ((flags & LOW_INF) === 0 && format.compareStaged(i32, u8, w, LOW_REF) <= 0) {
            continue restart;
          }
          if ((flags & HIGH_INF) === 0 && format.compareStaged(i32, u8, w, HIGH_REF) > 0) {
            continue restart;
          }
          if (isLeaf(i32, w)) {
            this.#lastLeafNode = node;
            return c;
          }
          child = format.lowerBound(i32, u8, w);
        }
        this.#lastParent = c;
        this.#lastChild = child;
        node = i32[format.childWord(w, countOf(i32, w), child)];
      }
      throw new Error("internal: BPlusTree descent found no leaf");
    }
  }

  // --------------------------------------------------------------- writes

  /**
   * Sets `key` to `value` and returns the previous value, or undefined.
   *
   * @example
   * ```ts
   * import { BPlusTree, SharedHeap } from "@sabre/sabre";
   * const tree = BPlusTree.create<number, string>(SharedHeap.create(), { key: "i32", value: "string" });
   * console.assert(tree.set(1, "a") === undefined);
   * console.assert(tree.set(1, "b") === "a" && tree.get(1) === "b");
   * ```
   */
  set(key: K, value: V): V | undefined {
    if (this.#unusable !== 0) this.#throwUnusable(); // before staging
    const format = this.#format;
    const k = this.#keys.check(key, "key");
    format.stageValue(this.#values.check(value, "value"));
    format.stageKey(k);
    const old = this.#write(W_SET, undefined);
    return old === NONE ? undefined : old as V;
  }

  /**
   * Inserts `key` with `value` if it is absent. Returns true when it
   * inserted, false (changing nothing) when the key was present.
   *
   * @example
   * ```ts
   * import { BPlusTree, SharedHeap } from "@sabre/sabre";
   * const tree = BPlusTree.create<number, number>(SharedHeap.create(), { key: "i32", value: "i32" });
   * console.assert(tree.insert(1, 10) && !tree.insert(1, 20));
   * console.assert(tree.get(1) === 10);
   * ```
   */
  insert(key: K, value: V): boolean {
    if (this.#unusable !== 0) this.#throwUnusable(); // before staging
    const format = this.#format;
    const k = this.#keys.check(key, "key");
    format.stageValue(this.#values.check(value, "value"));
    format.stageKey(k);
    return this.#write(W_INSERT, undefined) === NONE;
  }

  /**
   * The value of `key`, inserting `value` first when the key is absent.
   *
   * @example
   * ```ts
   * import { BPlusTree, SharedHeap } from "@sabre/sabre";
   * const tree = BPlusTree.create<string, number>(SharedHeap.create(), { key: "string", value: "i32" });
   * console.assert(tree.getOrInsert("a", 1) === 1 && tree.getOrInsert("a", 2) === 1);
   * ```
   */
  getOrInsert(key: K, value: V): V {
    if (this.#unusable !== 0) this.#throwUnusable(); // before staging
    const format = this.#format;
    const k = this.#keys.check(key, "key");
    const v = this.#values.check(value, "value");
    format.stageValue(v);
    format.stageKey(k);
    const old = this.#write(W_GET_OR_INSERT, undefined);
    return old === NONE ? v : old as V;
  }

  /**
   * Removes `key` and returns its value, or undefined when it was absent.
   *
   * @example
   * ```ts
   * import { BPlusTree, SharedHeap } from "@sabre/sabre";
   * const tree = BPlusTree.create<number, number>(SharedHeap.create(), { key: "i32", value: "i32" });
   * tree.set(1, 10);
   * console.assert(tree.delete(1) === 10 && tree.delete(1) === undefined);
   * ```
   */
  delete(key: K): V | undefined {
    if (this.#unusable !== 0) this.#throwUnusable(); // before staging
    this.#format.stageCheckedKey(key, "key");
    const old = this.#write(W_DELETE, undefined);
    return old === NONE ? undefined : old as V;
  }

  /**
   * Atomically replaces the value of `key` with `fn(old)` (old is undefined
   * when absent). A result of undefined removes the key (or leaves it
   * absent). Returns the result. `fn` runs once, under the leaf's latch: it
   * must be quick and must not use this tree (a call on this object from
   * `fn` throws `SabreError`, and the update then writes nothing).
   *
   * @example
   * ```ts
   * import { BPlusTree, SharedHeap } from "@sabre/sabre";
   * const tree = BPlusTree.create<string, number>(SharedHeap.create(), { key: "string", value: "i32" });
   * tree.update("hits", (n) => (n ?? 0) + 1);
   * console.assert(tree.update("hits", (n) => (n ?? 0) + 1) === 2);
   * ```
   */
  update(key: K, fn: (old: V | undefined) => V | undefined): V | undefined {
    if (typeof fn !== "function") {
      throw new TypeError(
        `Cannot update BPlusTree entry as 'fn' must be a function: current value is ${
          describeValue(fn)
        }`,
      );
    }
    if (this.#unusable !== 0) this.#throwUnusable(); // before staging
    this.#format.stageCheckedKey(key, "key");
    const result = this.#write(W_UPDATE, fn as (old: unknown) => unknown);
    return result === NONE ? undefined : result as V;
  }

  /**
   * Removes and returns the entry with the smallest key.
   *
   * @example
   * ```ts
   * import { BPlusTree, SharedHeap } from "@sabre/sabre";
   * const tree = BPlusTree.create<number, number>(SharedHeap.create(), { key: "i32", value: "i32" });
   * tree.set(2, 20); tree.set(1, 10);
   * console.assert(tree.popFirst()?.[0] === 1 && tree.size === 1);
   * ```
   */
  popFirst(): [K, V] | undefined {
    return this.#pop(true);
  }

  /**
   * Removes and returns the entry with the largest key.
   *
   * @example
   * ```ts
   * import { BPlusTree, SharedHeap } from "@sabre/sabre";
   * const tree = BPlusTree.create<number, number>(SharedHeap.create(), { key: "i32", value: "i32" });
   * tree.set(2, 20); tree.set(1, 10);
   * console.assert(tree.popLast()?.[1] === 20 && tree.size === 1);
   * ```
   */
  popLast(): [K, V] | undefined {
    return this.#pop(false);
  }

  #pop(first: boolean): [K, V] | undefined {
    const heap = this.#heap, format = this.#format;
    this.#startDeadline();
    if (this.#unusable !== 0) this.#throwUnusable();
    heap.pinForOperation();
    try {
      for (;;) {
        if (!this.#descend(first ? TO_MIN : TO_MAX)) continue;
        const d = this.#pathDepth;
        const node = this.#pathNodes[d], c = this.#pathContents[d];
        let i32 = heap.i32;
        if (!LatchWords.tryUpgrade(i32, (node >> 2) + N_VERSION, this.#pathVersions[d])) continue;
        const w = c >> 2;
        const n = countOf(i32, w);
        if (n === 0) {
          LatchWords.unlock(i32, (node >> 2) + N_VERSION);
          if (d === 0) return undefined;
          this.#pathVersions[d] += 2; // our own unlock, nothing changed
          // An empty edge leaf that a merge has not removed yet: merge it now.
          this.#rebalance(first ? TO_MIN : TO_MAX);
          continue;
        }
        const i = first ? 0 : n - 1;
        let entry: [K, V];
        let fresh: number;
        try {
          const u8 = heap.u8;
          entry = [format.keyAt(i32, u8, w, i), format.valueAt(i32, u8, w, i)];
          format.begin();
          format.piece(c, first ? 1 : 0, first ? n : n - 1);
          fresh = this.#buildWithFencesOf(c, true);
        } catch (e) {
          LatchWords.unlock(heap.i32, (node >> 2) + N_VERSION);
          throw e;
        }
        i32 = heap.i32;
        this.#publish(node, c, fresh);
        LatchWords.unlock(i32, (node >> 2) + N_VERSION);
        this.#count(-1);
        if (n - 1 < this.#minLeaf && d > 0) this.#tryRebalance(first ? TO_MIN : TO_MAX);
        return entry;
      }
    } finally {
      heap.unpin();
    }
  }

  /** INFINITE when content `c` has that fence infinite, else `c`. */
  /** Builds the staged pieces into a new content block with the fences of content `c`. */
  #buildWithFencesOf(c: number, leaf: boolean): number {
    const i32 = this.#heap.i32;
    return this.#format.build(
      this.#heap,
      leaf,
      this.#fenceW(i32, c, LOW_INF),
      LOW_REF,
      this.#fenceW(i32, c, HIGH_INF),
      HIGH_REF,
    );
  }

  #fenceW(i32: Int32Array, c: number, flag: number): number {
    return (i32[(c >> 2) + C_FLAGS] & flag) !== 0 ? INFINITE : c;
  }

  #count(delta: number): void {
    const heap = this.#heap;
    if (this.#stripe === 0) this.#stripe = 1 + (heap.join() % STRIPES);
    Atomics.add(heap.i32, this.#header + STRIPES_AT + STRIPE_WORDS * (this.#stripe - 1), delta);
  }

  /** Points `node` at `fresh` and retires its previous content `old`. */
  #publish(node: number, old: number, fresh: number): void {
    Atomics.store(this.#heap.i32, (node >> 2) + N_CONTENT, fresh);
    this.#heap.retire(old);
  }

  /**
   * One write on the staged key (and value). Returns the old value (or the
   * update's result) or NONE.
   */
  #write(mode: number, fn: ((old: unknown) => unknown) | undefined): unknown {
    // Its callers checked #unusable before they staged the key.
    const heap = this.#heap, format = this.#format;
    this.#startDeadline();
    heap.pinForOperation();
    try {
      for (;;) {
        if (!this.#descend(TO_KEY)) continue;
        const d = this.#pathDepth;
        const node = this.#pathNodes[d], c = this.#pathContents[d];
        let i32 = heap.i32;
        const latch = (node >> 2) + N_VERSION;
        if (!LatchWords.tryUpgrade(i32, latch, this.#pathVersions[d])) continue;
        let u8 = heap.u8;
        const w = c >> 2;
        const n = countOf(i32, w);
        const i = format.lowerBound(i32, u8, w);
        const found = i < n && format.keyEquals(i32, u8, w, i);
        let result: unknown = NONE;
        let fresh = 0;
        let delta = 0;
        let split = false;
        try {
          if (found) result = format.valueAt(i32, u8, w, i);
          let put: boolean; // put the staged value, or remove the key
          switch (mode) {
            case W_SET:
              put = true;
              break;
            case W_INSERT:
            case W_GET_OR_INSERT:
              if (found) {
                LatchWords.unlock(i32, latch);
                return result;
              }
              put = true;
              break;
            case W_DELETE:
              if (!found) {
                LatchWords.unlock(i32, latch);
                return NONE;
              }
              put = false;
              break;
            default: {
              if (!found && n >= this.#leafCapacity) {
                // Split before calling fn, so that fn runs once.
                split = true;
                put = false;
                break;
              }
              let next: unknown;
              this.#unusable = IN_UPDATE_FN;
              try {
                next = fn!(found ? result : undefined);
              } finally {
                this.#unusable = USABLE;
              }
              if (next === undefined) {
                if (!found) {
                  LatchWords.unlock(heap.i32, latch);
                  return NONE;
                }
                put = false;
              } else {
                format.stageValue(this.#values.check(next, "value"));
                put = true;
              }
              result = next === undefined ? NONE : next;
              i32 = heap.i32;
              u8 = heap.u8;
            }
          }
          if (put && !found && n >= this.#leafCapacity) split = true;
          if (!split) {
            format.begin();
            format.piece(c, 0, i);
            if (put) format.piece(STAGED, 0, 0);
            format.piece(c, found ? i + 1 : i, n);
            fresh = this.#buildWithFencesOf(c, true);
            delta = put ? (found ? 0 : 1) : -1;
          }
        } catch (e) {
          LatchWords.unlock(heap.i32, latch);
          throw e;
        }
        if (split) {
          // Outside the try: the split takes its own latches.
          LatchWords.unlock(heap.i32, latch);
          this.#pathVersions[d] += 2; // our own unlock, nothing changed
          this.#split(d);
          continue;
        }
        this.#publish(node, c, fresh);
        LatchWords.unlock(heap.i32, latch);
        if (delta !== 0) this.#count(delta);
        if (delta < 0 && n - 1 < this.#minLeaf && d > 0) this.#tryRebalance(TO_KEY);
        return result;
      }
    } finally {
      heap.unpin();
    }
  }

  /**
   * Descends optimistically to the leaf for the staged key (or an edge),
   * recording the path with versions and contents. Returns false when it
   * must restart. Pinned. Waits (holding nothing) while a node is latched.
   */
  #descend(mode: number): boolean {
    const heap = this.#heap, format = this.#format, header = this.#header;
    let i32 = heap.i32;
    const rv = LatchWords.optimistic(i32, header + H_ROOT_LATCH, this.#deadline);
    if (rv === -1) this.#timedOut(); // an even version is never -1
    let node = Atomics.load(i32, header + H_ROOT);
    if (node + NODE_BYTES > heap.mappedBytes) heap.ensure(node + NODE_BYTES);
    i32 = heap.i32;
    let v = LatchWords.optimistic(i32, (node >> 2) + N_VERSION, this.#deadline);
    if (v === -1) this.#timedOut();
    if (!LatchWords.validate(i32, header + H_ROOT_LATCH, rv)) return false;
    this.#rootVersion = rv;
    for (let depth = 0; depth < MAX_HEIGHT; depth++) {
      i32 = heap.i32;
      const c = Atomics.load(i32, (node >> 2) + N_CONTENT);
      if (c === 0 || !LatchWords.validate(i32, (node >> 2) + N_VERSION, v)) return false;
      this.#ensureContent(c);
      i32 = heap.i32;
      const w = c >> 2;
      this.#pathNodes[depth] = node;
      this.#pathVersions[depth] = v;
      this.#pathContents[depth] = c;
      if (isLeaf(i32, w)) {
        this.#pathDepth = depth;
        return true;
      }
      const n = countOf(i32, w);
      const child = mode === TO_KEY ? format.upperBound(i32, heap.u8, w) : mode === TO_MIN ? 0 : n;
      this.#pathChild[depth] = child;
      const next = i32[format.childWord(w, n, child)];
      if (next + NODE_BYTES > heap.mappedBytes) heap.ensure(next + NODE_BYTES);
      i32 = heap.i32;
      const nv = LatchWords.optimistic(i32, (next >> 2) + N_VERSION, this.#deadline);
      if (nv === -1) this.#timedOut();
      if (!LatchWords.validate(i32, (node >> 2) + N_VERSION, v)) return false;
      node = next;
      v = nv;
    }
    throw new Error("internal: BPlusTree deeper than its height limit");
  }

  /**
   * Maps content block `c` into this worker's views (another worker may
   * have allocated it past them): its header first, for its size.
   */
  #ensureContent(c: number): void {
    const heap = this.#heap;
    if (c + 16 > heap.mappedBytes) heap.ensure(c + 16);
    const end = c + heap.i32[(c >> 2) + C_BYTES];
    if (end > heap.mappedBytes) heap.ensure(end);
  }

  /** A new node header for `content`, latched if `locked`. Pinned. */
  #newNode(content: number, locked: boolean): number {
    const heap = this.#heap;
    let node: number;
    try {
      node = heap.allocate(NODE_BYTES);
    } catch (e) {
      heap.free(content);
      throw e;
    }
    heap.ensure(node + NODE_BYTES);
    const i32 = heap.i32;
    // Versions start from a per-tree counter, so a reused header is unlikely
    // to repeat a version an old cursor remembers.
    const seq = Atomics.add(i32, this.#header + H_NODE_SEQ, 1);
    const w = node >> 2;
    i32[w + N_VERSION] = ((seq << 3) & 0x3ffffff8) | (locked ? 1 : 0);
    i32[w + 1] = 0;
    i32[w + N_CONTENT] = content;
    i32[w + 3] = 0;
    return node;
  }

  #emptyLeaf(): number {
    this.#format.begin();
    return this.#format.build(this.#heap, true, INFINITE, 0, INFINITE, 0);
  }

  /**
   * Splits the node at `depth` of the last descent's path (its parent
   * first, when that is full). Best effort: returns without a change when
   * a latch could not be taken; the caller restarts either way.
   */
  #split(depth: number): void {
    const heap = this.#heap, format = this.#format;
    const node = this.#pathNodes[depth], c = this.#pathContents[depth];
    let i32 = heap.i32;
    const cw = c >> 2;
    const n = countOf(i32, cw);
    const leaf = isLeaf(i32, cw);
    const latch = (node >> 2) + N_VERSION;
    if (depth === 0) {
      const rootLatch = this.#header + H_ROOT_LATCH;
      if (!LatchWords.tryUpgrade(i32, rootLatch, this.#rootVersion)) return;
      if (!LatchWords.tryUpgrade(i32, latch, this.#pathVersions[0])) {
        LatchWords.unlock(i32, rootLatch);
        return;
      }
      let left = 0, right = 0, rightNode = 0, rootNode = 0;
      try {
        const m = n >> 1;
        left = this.#half(c, leaf, n, m, true);
        right = this.#half(c, leaf, n, m, false);
        const r = right;
        right = 0; // #newNode frees it if it fails
        rightNode = this.#newNode(r, true);
        format.begin();
        format.piece(c, m, m + 1);
        format.child(node);
        format.child(rightNode);
        const rc = format.build(heap, false, INFINITE, 0, INFINITE, 0);
        rootNode = this.#newNode(rc, false);
      } catch (e) {
        this.#freeSplit(left, right, rightNode);
        i32 = heap.i32;
        LatchWords.unlock(i32, latch);
        LatchWords.unlock(i32, rootLatch);
        throw e;
      }
      i32 = heap.i32;
      Atomics.store(i32, this.#header + H_ROOT, rootNode);
      crashPoint("btree.root");
      this.#publish(node, c, left);
      LatchWords.unlock(i32, (rightNode >> 2) + N_VERSION);
      Atomics.add(i32, this.#header + H_HEIGHT, 1);
      LatchWords.unlock(i32, latch);
      LatchWords.unlock(i32, rootLatch);
      return;
    }
    const parent = this.#pathNodes[depth - 1], pc = this.#pathContents[depth - 1];
    const pn = countOf(i32, pc >> 2);
    if (pn + 2 > this.#innerCapacity) {
      this.#split(depth - 1);
      return;
    }
    const parentLatch = (parent >> 2) + N_VERSION;
    if (!LatchWords.tryUpgrade(i32, parentLatch, this.#pathVersions[depth - 1])) return;
    if (!LatchWords.tryUpgrade(i32, latch, this.#pathVersions[depth])) {
      LatchWords.unlock(i32, parentLatch);
      return;
    }
    const at = this.#pathChild[depth - 1];
    let left = 0, right = 0, rightNode = 0, parentContent = 0;
    try {
      const m = n >> 1;
      left = this.#half(c, leaf, n, m, true);
      right = this.#half(c, leaf, n, m, false);
      const r = right;
      right = 0; // #newNode frees it if it fails
      rightNode = this.#newNode(r, true);
      i32 = heap.i32;
      format.begin();
      format.piece(pc, 0, at);
      format.piece(c, m, m + 1);
      format.piece(pc, at, pn);
      format.children(pc, 0, at + 1);
      format.child(rightNode);
      format.children(pc, at + 1, pn + 1);
      parentContent = this.#buildWithFencesOf(pc, false);
    } catch (e) {
      this.#freeSplit(left, right, rightNode);
      i32 = heap.i32;
      LatchWords.unlock(i32, latch);
      LatchWords.unlock(i32, parentLatch);
      throw e;
    }
    crashPoint("btree.split");
    this.#publish(parent, pc, parentContent);
    this.#publish(node, c, left);
    i32 = heap.i32;
    LatchWords.unlock(i32, (rightNode >> 2) + N_VERSION);
    LatchWords.unlock(i32, latch);
    LatchWords.unlock(i32, parentLatch);
  }

  /**
   * Frees what a failed split built and never published: the halves (0
   * when not built, or owned by the right node) and the right node with its
   * content.
   */
  #freeSplit(left: number, right: number, rightNode: number): void {
    const heap = this.#heap;
    if (left !== 0) heap.free(left);
    if (right !== 0) heap.free(right);
    if (rightNode !== 0) {
      heap.free(Atomics.load(heap.i32, (rightNode >> 2) + N_CONTENT));
      heap.free(rightNode);
    }
  }

  /**
   * One half of content `c` (n keys) split at `m`: a leaf's entries [0, m)
   * or [m, n); an inner node's separators [0, m) or [m + 1, n) with their
   * children; separator m goes up.
   */
  #half(c: number, leaf: boolean, n: number, m: number, lower: boolean): number {
    const format = this.#format, heap = this.#heap;
    const i32 = heap.i32;
    format.begin();
    if (lower) {
      format.piece(c, 0, m);
      if (!leaf) format.children(c, 0, m + 1);
      return format.build(heap, leaf, this.#fenceW(i32, c, LOW_INF), LOW_REF, c, m);
    }
    format.piece(c, leaf ? m : m + 1, n);
    if (!leaf) format.children(c, m + 1, n + 1);
    return format.build(heap, leaf, c, m, this.#fenceW(i32, c, HIGH_INF), HIGH_REF);
  }

  /**
   * #rebalance after a completed removal: a full heap only postpones the
   * merge, it must not fail the removal.
   */
  #tryRebalance(mode: number): void {
    try {
      this.#rebalance(mode);
    } catch (e) {
      if (!(e instanceof HeapExhaustedError) && !(e instanceof TimeoutError)) throw e;
    }
  }

  #startDeadline(): void {
    this.#deadline = this.#timeoutMs === Infinity ? Infinity : performance.now() + this.#timeoutMs;
  }

  #timedOut(): never {
    throw new TimeoutError("write to BPlusTree", this.#timeoutMs);
  }

  /**
   * Repairs the path to the staged key (or an edge): merges or rebalances
   * its deepest underfull node that has a sibling, descends again and
   * repeats, and shrinks the root while it has one child. Stops when the
   * path has no underfull node left. Rescanning the whole path, rather than
   * walking up from the leaf, also clears what earlier best-effort repairs
   * skipped under contention (an empty leaf, an inner node with one child),
   * so an emptied tree always returns to one leaf. Best effort: gives up
   * after a few latches found taken.
   */
  #rebalance(mode: number): void {
    const heap = this.#heap, format = this.#format;
    // Each change removes a node or leaves the repaired pair above the
    // threshold, so the loop ends once the path is repaired, however much
    // debris it crosses; the bound is only a guard against a livelock.
    for (let failures = 0, changes = 0; failures < 4 && changes < 1 << 16;) {
      if (!this.#descend(mode)) {
        failures++;
        continue;
      }
      let i32 = heap.i32;
      // The deepest underfull node below the root whose parent has another child.
      let depth = this.#pathDepth;
      for (; depth > 0; depth--) {
        const c = this.#pathContents[depth];
        const n = countOf(i32, c >> 2);
        const underfull = isLeaf(i32, c >> 2) ? n < this.#minLeaf : n + 1 < this.#minInner;
        if (underfull && countOf(i32, this.#pathContents[depth - 1] >> 2) > 0) break;
      }
      if (depth === 0) {
        const rc = this.#pathContents[0];
        if (isLeaf(i32, rc >> 2) || countOf(i32, rc >> 2) !== 0) return;
        if (this.#shrinkRoot()) changes++;
        else failures++;
        continue;
      }
      const node = this.#pathNodes[depth], c = this.#pathContents[depth];
      const leaf = isLeaf(i32, c >> 2);
      const parent = this.#pathNodes[depth - 1], pc = this.#pathContents[depth - 1];
      const pn = countOf(i32, pc >> 2);
      const at = this.#pathChild[depth - 1];
      const sepAt = at < pn ? at : at - 1; // separator between the pair
      const sibling = i32[format.childWord(pc >> 2, pn, at < pn ? at + 1 : at - 1)];
      const parentLatch = (parent >> 2) + N_VERSION;
      const latch = (node >> 2) + N_VERSION;
      if (!LatchWords.tryUpgrade(i32, parentLatch, this.#pathVersions[depth - 1])) {
        failures++;
        continue;
      }
      if (!LatchWords.tryUpgrade(i32, latch, this.#pathVersions[depth])) {
        LatchWords.unlock(i32, parentLatch);
        failures++;
        continue;
      }
      if (sibling + NODE_BYTES > heap.mappedBytes) heap.ensure(sibling + NODE_BYTES);
      i32 = heap.i32;
      const siblingLatch = (sibling >> 2) + N_VERSION;
      if (!LatchWords.tryLock(i32, siblingLatch)) {
        LatchWords.unlock(i32, latch);
        LatchWords.unlock(i32, parentLatch);
        failures++;
        continue;
      }
      const sc = Atomics.load(i32, (sibling >> 2) + N_CONTENT);
      this.#ensureContent(sc);
      const leftNode = at < pn ? node : sibling, rightNode = at < pn ? sibling : node;
      const lc = at < pn ? c : sc, rc = at < pn ? sc : c;
      try {
        this.#mergePair(parent, pc, pn, sepAt, leftNode, lc, rightNode, rc, leaf);
      } finally {
        i32 = heap.i32;
        LatchWords.unlock(i32, siblingLatch);
        LatchWords.unlock(i32, latch);
        LatchWords.unlock(i32, parentLatch);
      }
      changes++;
    }
  }

  /**
   * With the parent and both children latched: merges the pair into the
   * left node when it fits, else shares the entries evenly.
   */
  #mergePair(
    parent: number,
    pc: number,
    pn: number,
    sepAt: number,
    leftNode: number,
    lc: number,
    rightNode: number,
    rc: number,
    leaf: boolean,
  ): void {
    const heap = this.#heap, format = this.#format;
    let i32 = heap.i32;
    const ln = countOf(i32, lc >> 2), rn = countOf(i32, rc >> 2);
    const lowW = this.#fenceW(i32, lc, LOW_INF), highW = this.#fenceW(i32, rc, HIGH_INF);
    const fits = leaf ? ln + rn <= this.#leafCapacity : ln + rn + 2 <= this.#innerCapacity;
    if (fits) {
      format.begin();
      format.piece(lc, 0, ln);
      if (!leaf) format.piece(pc, sepAt, sepAt + 1);
      format.piece(rc, 0, rn);
      if (!leaf) {
        format.children(lc, 0, ln + 1);
        format.children(rc, 0, rn + 1);
      }
      const merged = format.build(heap, leaf, lowW, LOW_REF, highW, HIGH_REF);
      let newParent: number;
      try {
        i32 = heap.i32;
        format.begin();
        format.piece(pc, 0, sepAt);
        format.piece(pc, sepAt + 1, pn);
        format.children(pc, 0, sepAt + 1);
        format.children(pc, sepAt + 2, pn + 1);
        newParent = this.#buildWithFencesOf(pc, false);
      } catch (e) {
        heap.free(merged);
        throw e;
      }
      // Left first: both nodes now hold the right's keys, equal while latched.
      this.#publish(leftNode, lc, merged);
      crashPoint("btree.merge");
      this.#publish(parent, pc, newParent);
      this.#publish(rightNode, rc, 0); // removed: readers that reach it restart
      heap.retire(rightNode);
      return;
    }
    // Share evenly. The virtual sequence is left's keys, (the separator for
    // inner nodes), right's keys; its key m goes up (and, for leaves, stays
    // as the right's first key).
    const total = leaf ? ln + rn : ln + 1 + rn;
    const m = total >> 1;
    format.begin();
    this.#sequence(lc, ln, pc, sepAt, rc, leaf, 0, m);
    if (!leaf) this.#childSequence(lc, ln, rc, 0, m + 1);
    const [mw, mi] = this.#sequenceRef(lc, ln, pc, sepAt, rc, leaf, m);
    const newLeft = format.build(heap, leaf, lowW, LOW_REF, mw, mi);
    let newRight = 0, newParent = 0;
    try {
      format.begin();
      this.#sequence(lc, ln, pc, sepAt, rc, leaf, leaf ? m : m + 1, total);
      if (!leaf) this.#childSequence(lc, ln, rc, m + 1, ln + rn + 2);
      newRight = format.build(heap, leaf, mw, mi, highW, HIGH_REF);
      i32 = heap.i32;
      format.begin();
      format.piece(pc, 0, sepAt);
      format.piece(mw, mi, mi + 1);
      format.piece(pc, sepAt + 1, pn);
      format.children(pc, 0, pn + 1);
      newParent = this.#buildWithFencesOf(pc, false);
    } catch (e) {
      heap.free(newLeft);
      if (newRight !== 0) heap.free(newRight);
      throw e;
    }
    // Publish the node that grows first, so that moved keys are always in a
    // node whose fences cover them.
    const leftGrows = m > ln;
    if (leftGrows) {
      this.#publish(leftNode, lc, newLeft);
      this.#publish(parent, pc, newParent);
      crashPoint("btree.share");
      this.#publish(rightNode, rc, newRight);
    } else {
      this.#publish(rightNode, rc, newRight);
      this.#publish(parent, pc, newParent);
      crashPoint("btree.share");
      this.#publish(leftNode, lc, newLeft);
    }
  }

  /** Adds pieces for positions [from, to) of the virtual key sequence. */
  #sequence(
    lc: number,
    ln: number,
    pc: number,
    sepAt: number,
    rc: number,
    leaf: boolean,
    from: number,
    to: number,
  ): void {
    const format = this.#format;
    const mid = leaf ? 0 : 1;
    // Segment 1: left [0, ln); segment 2 (inner): the separator; segment 3: right.
    format.piece(lc, Math.min(from, ln), Math.min(to, ln));
    if (!leaf && from <= ln && to > ln) format.piece(pc, sepAt, sepAt + 1);
    const rFrom = Math.max(0, from - ln - mid), rTo = Math.max(0, to - ln - mid);
    format.piece(rc, rFrom, rTo);
  }

  /** (content, index) of position m of the virtual key sequence. */
  #sequenceRef(
    lc: number,
    ln: number,
    pc: number,
    sepAt: number,
    rc: number,
    leaf: boolean,
    m: number,
  ): [number, number] {
    if (m < ln) return [lc, m];
    if (!leaf && m === ln) return [pc, sepAt];
    return [rc, m - ln - (leaf ? 0 : 1)];
  }

  /** Adds child pieces for positions [from, to) of left's then right's children. */
  #childSequence(lc: number, ln: number, rc: number, from: number, to: number): void {
    const format = this.#format;
    format.children(lc, Math.min(from, ln + 1), Math.min(to, ln + 1));
    format.children(rc, Math.max(0, from - ln - 1), Math.max(0, to - ln - 1));
  }

  /** Hands the root to its only child. Best effort. */
  #shrinkRoot(): boolean {
    const heap = this.#heap;
    if (!this.#descend(TO_MIN)) return false;
    let i32 = heap.i32;
    const root = this.#pathNodes[0], c = this.#pathContents[0];
    if (isLeaf(i32, c >> 2) || countOf(i32, c >> 2) !== 0) return true; // done by another
    const rootLatch = this.#header + H_ROOT_LATCH;
    if (!LatchWords.tryUpgrade(i32, rootLatch, this.#rootVersion)) return false;
    const latch = (root >> 2) + N_VERSION;
    if (!LatchWords.tryUpgrade(i32, latch, this.#pathVersions[0])) {
      LatchWords.unlock(i32, rootLatch);
      return false;
    }
    const child = i32[this.#format.childWord(c >> 2, 0, 0)];
    Atomics.store(i32, this.#header + H_ROOT, child);
    crashPoint("btree.root");
    this.#publish(root, c, 0);
    heap.retire(root);
    i32 = heap.i32;
    Atomics.sub(i32, this.#header + H_HEIGHT, 1);
    LatchWords.unlock(i32, latch);
    LatchWords.unlock(i32, rootLatch);
    return true;
  }

  // ---------------------------------------------------------------- scans

  /**
   * Entries within the bounds, ascending (or descending with `reverse`),
   * at most `limit` of them. The iterator reads one leaf at a time; it is
   * monotonic, not a snapshot (see the class documentation).
   *
   * @example
   * ```ts
   * import { BPlusTree, SharedHeap } from "@sabre/sabre";
   * const tree = BPlusTree.create<number, number>(SharedHeap.create(), { key: "i32", value: "i32" });
   * for (let i = 0; i < 10; i++) tree.set(i, i * i);
   * const keys = [...tree.range({ gte: 3, lt: 7 })].map(([k]) => k);
   * console.assert(keys.join() === "3,4,5,6");
   * console.assert([...tree.range({ lte: 2, reverse: true, limit: 2 })].join(";") === "2,4;1,1");
   * ```
   */
  range(options: RangeOptions<K> = {}): MapIterator<[K, V]> {
    const b = this.#bounds(options);
    return this.#scan(b.lower, b.lowerOpen, b.upper, b.upperOpen, b.reverse, b.limit);
  }

  #bounds(options: RangeOptions<K>): {
    lower: K | undefined;
    lowerOpen: boolean;
    upper: K | undefined;
    upperOpen: boolean;
    reverse: boolean;
    limit: number;
  } {
    checkOptionFields(options, RANGE_OPTIONS, "scan BPlusTree");
    if (options === undefined) {
      throw new TypeError(
        "Cannot scan BPlusTree as 'options' must be an object: current value is undefined",
      );
    }
    const keys = this.#keys;
    if (options.gte !== undefined && options.gt !== undefined) {
      throw new TypeError("Cannot scan BPlusTree as both 'gte' and 'gt' are given");
    }
    if (options.lte !== undefined && options.lt !== undefined) {
      throw new TypeError("Cannot scan BPlusTree as both 'lte' and 'lt' are given");
    }
    const lower = options.gte !== undefined
      ? keys.check(options.gte, "gte")
      : options.gt !== undefined
      ? keys.check(options.gt, "gt")
      : undefined;
    const upper = options.lte !== undefined
      ? keys.check(options.lte, "lte")
      : options.lt !== undefined
      ? keys.check(options.lt, "lt")
      : undefined;
    const limit = options.limit ?? Infinity;
    if (
      typeof limit !== "number" || !(limit >= 0) || (limit !== Infinity && !Number.isInteger(limit))
    ) {
      throw new RangeError(
        `Cannot scan BPlusTree as 'limit' must be an integer >= 0: current value is ${
          describeValue(options.limit)
        }`,
      );
    }
    return {
      lower,
      lowerOpen: options.gt !== undefined,
      upper,
      upperOpen: options.lt !== undefined,
      reverse: options.reverse === true,
      limit,
    };
  }

  #scan(
    lower: K | undefined,
    lowerOpen: boolean,
    upper: K | undefined,
    upperOpen: boolean,
    reverse: boolean,
    limit: number,
    kind: number = ENTRIES,
  ): ScanIterator<K, V> {
    const state = this.#scanState(lower, lowerOpen, upper, upperOpen, reverse, limit);
    return new ScanIterator(
      kind,
      state,
      (st, keys, values, ints) => this.#scanLeaf(st, undefined, keys, values, ints),
      this.#format.intEntries,
      this.#leafCapacity,
    );
  }

  #scanState(
    lower: K | undefined,
    lowerOpen: boolean,
    upper: K | undefined,
    upperOpen: boolean,
    reverse: boolean,
    limit: number,
  ): ScanState<K> {
    const state: ScanState<K> = {
      at: reverse ? upper : lower,
      open: reverse ? upperOpen : lowerOpen,
      stop: reverse ? lower : upper,
      stopOpen: reverse ? lowerOpen : upperOpen,
      reverse,
      left: limit,
      done: limit <= 0,
    };
    if (lower !== undefined && upper !== undefined) {
      const order = this.#keys.compare(lower, upper);
      if (order > 0 || (order === 0 && (lowerOpen || upperOpen))) state.done = true;
    }
    return state;
  }

  /**
   * Emits the entries of one leaf snapshot from the scan's position, and
   * moves the position to the leaf's fence (or ends the scan). `emit`
   * returns false to end the scan.
   */
  #scanLeaf(
    state: ScanState<K>,
    emit: ((key: K, value: V) => unknown) | undefined,
    keysOut?: K[],
    valuesOut?: V[],
    ints?: IntBatch,
  ): void {
    const heap = this.#heap, format = this.#format;
    const reverse = state.reverse;
    if (this.#unusable !== 0) this.#throwUnusable();
    heap.pinForOperation();
    try {
      let at = state.at;
      let open = state.open;
      let c: number;
      if (at === undefined) c = this.#leafFor(reverse ? TO_MAX : TO_MIN);
      else {
        format.stageKey(at);
        c = this.#leafFor(reverse && open ? TO_BELOW : TO_KEY);
      }
      // Up to 8 leaves per pin: the next leaf is the parent's next child
      // when its fence meets this leaf's (checked on its own snapshot), else
      // the leaf found by a descent to the fence.
      for (let leaves = 1;; leaves++) {
        const i32 = heap.i32, u8 = heap.u8, w = c >> 2;
        const n = countOf(i32, w);
        let i: number;
        if (at === undefined) i = reverse ? n - 1 : 0;
        else if (reverse) {
          i = (open ? format.lowerBound(i32, u8, w) : format.upperBound(i32, u8, w)) - 1;
        } else i = open ? format.upperBound(i32, u8, w) : format.lowerBound(i32, u8, w);
        // Where the bound stops the scan within this leaf.
        let end = reverse ? -1 : n;
        let stopped = false;
        if (state.stop !== undefined) {
          format.stageKey(state.stop);
          const bound = reverse
            ? (state.stopOpen ? format.upperBound(i32, u8, w) : format.lowerBound(i32, u8, w)) - 1
            : state.stopOpen
            ? format.lowerBound(i32, u8, w)
            : format.upperBound(i32, u8, w);
          if (reverse ? bound > end : bound < end) {
            end = bound;
            stopped = true;
          }
        }
        let left = state.left;
        if (format.intEntries !== 0) {
          // i32/u32 keys and values: read the words in place.
          const keys = w + C_KEYS, values = format.valueWord(w, n, 0);
          const keyFlip = format.intEntries & 1 ? 0 : SIGN_BIT;
          const unsignedKeys = keyFlip !== 0, unsignedValues = (format.intEntries & 4) !== 0;
          const step = reverse ? -1 : 1;
          if (ints !== undefined) {
            // Raw words; the iterator decodes them.
            const kb = ints.keys, vb = ints.values;
            let at = ints.count;
            for (; (reverse ? i > end : i < end) && left > 0; i += step, left--, at++) {
              kb[at] = i32[keys + i];
              vb[at] = i32[values + i];
            }
            ints.count = at;
          }
          for (; (reverse ? i > end : i < end) && left > 0; i += step, left--) {
            const k = unsignedKeys ? (i32[keys + i] ^ keyFlip) >>> 0 : i32[keys + i];
            const v = unsignedValues ? i32[values + i] >>> 0 : i32[values + i];
            if (emit === undefined) {
              keysOut!.push(k as K);
              valuesOut!.push(v as V);
            } else if (emit(k as K, v as V) === false) {
              left = -1;
              break;
            }
          }
        } else {
          const step = reverse ? -1 : 1;
          for (; (reverse ? i > end : i < end) && left > 0; i += step, left--) {
            const k = format.keyAt(i32, u8, w, i), v = format.valueAt(i32, u8, w, i);
            if (emit === undefined) {
              keysOut!.push(k);
              valuesOut!.push(v);
            } else if (emit(k, v) === false) {
              left = -1;
              break;
            }
          }
        }
        state.left = left;
        const flags = heap.i32[w + C_FLAGS];
        if (left <= 0 || stopped || (flags & (reverse ? LOW_INF : HIGH_INF)) !== 0) {
          state.done = true;
          return;
        }
        const next = leaves < 8 ? this.#sibling(c, reverse) : 0;
        if (next !== 0) {
          c = next;
          at = undefined; // start at the sibling's edge
          continue;
        }
        // Continue from this leaf's fence: the keys ≥ its high fence, or the
        // keys below its low fence.
        format.stageKeyFrom(heap.i32, heap.u8, w, reverse ? LOW_REF : HIGH_REF);
        at = format.stagedKey();
        open = reverse;
        state.at = at;
        state.open = open;
        if (leaves >= 8) return;
        c = this.#leafFor(reverse ? TO_BELOW : TO_KEY);
      }
    } finally {
      heap.unpin();
    }
  }

  /**
   * A cursor move: the first entry with key ≥ `key` (> when `open`; the
   * first of all when undefined), or with `backward` the last ≤ `key` (<
   * when `open`). Linearizable: when it passes leaves with nothing to
   * return, it checks that none of them changed before it answers from a
   * later one (while pinned, an unchanged content pointer means unchanged
   * content), so all of them were current at one instant.
   */
  #step(
    backward: boolean,
    key: K | undefined,
    open: boolean,
    hint?: Int32Array,
  ): [K, V] | undefined {
    const heap = this.#heap, format = this.#format;
    if (this.#unusable !== 0) this.#throwUnusable();
    heap.pinForOperation();
    try {
      restart: for (;;) {
        let c: number;
        if (key === undefined) c = this.#leafFor(backward ? TO_MAX : TO_MIN);
        else {
          format.stageKey(key);
          c = this.#leafFor(backward && open ? TO_BELOW : TO_KEY);
        }
        let passed: number[] | undefined;
        for (let first = true;; first = false) {
          const i32 = heap.i32, u8 = heap.u8, w = c >> 2;
          const n = countOf(i32, w);
          let i: number;
          if (!first) {
            // The staged key is the fence of the last leaf passed (#sibling
            // and the descent below both stage it): start at it, as a leaf
            // found by a descent may still overlap the one passed.
            const at = format.lowerBound(i32, u8, w);
            i = backward ? at - 1 : at;
          } else if (key === undefined) i = backward ? n - 1 : 0;
          else if (backward) {
            i = (open ? format.lowerBound(i32, u8, w) : format.upperBound(i32, u8, w)) - 1;
          } else i = open ? format.upperBound(i32, u8, w) : format.lowerBound(i32, u8, w);
          const found = backward ? i >= 0 : i < n;
          const edge = (i32[w + C_FLAGS] & (backward ? LOW_INF : HIGH_INF)) !== 0;
          if (found || edge) {
            if (passed !== undefined) {
              for (let k = 0; k < passed.length; k += 2) {
                if (Atomics.load(heap.i32, (passed[k] >> 2) + N_CONTENT) !== passed[k + 1]) {
                  continue restart;
                }
              }
            }
            if (!found) return undefined;
            if (hint !== undefined) this.#takeHint(hint, this.#lastLeafNode, c, i);
            return [format.keyAt(i32, u8, w, i), format.valueAt(i32, u8, w, i)];
          }
          (passed ??= []).push(this.#lastLeafNode, c);
          const next = this.#sibling(c, backward);
          if (next !== 0) {
            c = next;
            continue;
          }
          format.stageKeyFrom(i32, u8, w, backward ? LOW_REF : HIGH_REF);
          c = this.#leafFor(backward ? TO_BELOW : TO_KEY);
        }
      }
    } finally {
      heap.unpin();
    }
  }

  /**
   * Remembers, for a cursor, that the entry at `index` of content `c` of
   * leaf `node` was returned: [node, version, c, index, epoch], or node 0
   * when the leaf is latched or already changed. The global epoch is loaded
   * first and the version after `c` was (pinned, so `c` cannot have been
   * reused in between), and `c` is checked again after both: so `c` was the
   * content while the latch had this version, and the node (removed later,
   * if ever) and `c` are retired at this epoch or a later one, so they
   * cannot be freed before the global epoch has moved on by two. Pinned.
   */
  #takeHint(hint: Int32Array, node: number, c: number, index: number): void {
    const i32 = this.#heap.i32;
    const epoch = this.#heap["epochNow"]();
    const version = Atomics.load(i32, (node >> 2) + N_VERSION);
    const same = (version & 1) === 0 && Atomics.load(i32, (node >> 2) + N_CONTENT) === c;
    hint[0] = same ? node : 0;
    hint[1] = version;
    hint[2] = c;
    hint[3] = index;
    hint[4] = epoch;
  }

  /**
   * A cursor move inside the leaf its hint names: the entry at `index` of
   * the hinted content, when the global epoch has not moved since the hint
   * was taken and the leaf's latch still has the hinted version.
   *
   * The epoch check comes first: a header removed after the hint is
   * retired at the hint's epoch or later, and freed only once the epoch
   * has moved on by two; while we are pinned and the epoch we loaded equals
   * the hint's, it can move on by one at most. So the header is still this
   * leaf's, never freed and reused (by this tree, another tree in the heap
   * or any other structure, where the version and content words could
   * repeat the hinted ones by chance). Then an unchanged version means no
   * writer latched the leaf since, so its content is still the hinted
   * block, alive for the same reason. Linearizable at the version load: any
   * key between the cursor's key and the answer would have to be in this
   * leaf. Null when the hint does not hold, or `index` leaves the leaf: the
   * caller takes the full step.
   */
  #stepHinted(hint: Int32Array, index: number): [K, V] | undefined | null {
    const node = hint[0];
    if (node === 0) return null;
    const heap = this.#heap, format = this.#format;
    if (this.#unusable !== 0) this.#throwUnusable();
    heap.pinForOperation();
    try {
      if (node + NODE_BYTES > heap.mappedBytes) heap.ensure(node + NODE_BYTES);
      let i32 = heap.i32;
      const c = hint[2];
      if (
        this.#heap["epochNow"]() !== hint[4] ||
        Atomics.load(i32, (node >> 2) + N_VERSION) !== hint[1] ||
        Atomics.load(i32, (node >> 2) + N_CONTENT) !== c
      ) {
        hint[0] = 0;
        return null;
      }
      this.#ensureContent(c);
      i32 = heap.i32;
      const w = c >> 2;
      if (index < 0 || index >= countOf(i32, w)) return null;
      hint[3] = index;
      const u8 = heap.u8;
      return [format.keyAt(i32, u8, w, index), format.valueAt(i32, u8, w, index)];
    } finally {
      heap.unpin();
    }
  }

  /**
   * The content of the leaf next to `c` (the leaf #leafFor found last, or
   * its sibling found by this), read through the parent snapshot #leafFor
   * passed: when its own snapshot's fence meets `c`'s, it is the truth for
   * the keys right after (or before) `c`'s. 0 when that does not hold.
   * Pinned.
   */
  #sibling(c: number, reverse: boolean): number {
    const pc = this.#lastParent;
    if (pc === 0) return 0;
    const heap = this.#heap, format = this.#format;
    let i32 = heap.i32;
    const pw = pc >> 2;
    const pn = countOf(i32, pw);
    const index = this.#lastChild + (reverse ? -1 : 1);
    if (index < 0 || index > pn) return 0;
    const node = i32[format.childWord(pw, pn, index)];
    if (node + NODE_BYTES > heap.mappedBytes) heap.ensure(node + NODE_BYTES);
    i32 = heap.i32;
    const cc = Atomics.load(i32, (node >> 2) + N_CONTENT);
    if (cc === 0) return 0;
    this.#ensureContent(cc);
    i32 = heap.i32;
    const cw = cc >> 2;
    const u8 = heap.u8;
    if (!isLeaf(i32, cw) || (i32[cw + C_FLAGS] & (reverse ? HIGH_INF : LOW_INF)) !== 0) return 0;
    format.stageKeyFrom(i32, u8, c >> 2, reverse ? LOW_REF : HIGH_REF);
    if (format.compareStaged(i32, u8, cw, reverse ? HIGH_REF : LOW_REF) !== 0) return 0;
    this.#lastChild = index;
    this.#lastLeafNode = node;
    return cc;
  }

  /**
   * Calls `fn(key, value)` for the entries within the bounds, in order,
   * until `fn` returns false: the fastest way to scan, with no entry arrays.
   * `fn` runs with the worker's epoch pinned (up to 8 leaves at a time), so
   * it should be quick; it may use the tree. Same bounds and guarantees as
   * {@linkcode BPlusTree.range}.
   *
   * @example
   * ```ts
   * import { BPlusTree, SharedHeap } from "@sabre/sabre";
   * const tree = BPlusTree.create<number, number>(SharedHeap.create(), { key: "i32", value: "i32" });
   * for (let i = 0; i < 100; i++) tree.set(i, i);
   * let sum = 0;
   * tree.scan({ gte: 10, limit: 5 }, (_, v) => {
   *   sum += v;
   * });
   * console.assert(sum === 10 + 11 + 12 + 13 + 14);
   * ```
   */
  scan(options: RangeOptions<K>, fn: (key: K, value: V) => boolean | void): void {
    if (typeof fn !== "function") {
      throw new TypeError(
        `Cannot scan BPlusTree as 'fn' must be a function: current value is ${describeValue(fn)}`,
      );
    }
    const b = this.#bounds(options);
    const state = this.#scanState(b.lower, b.lowerOpen, b.upper, b.upperOpen, b.reverse, b.limit);
    while (!state.done) this.#scanLeaf(state, fn);
  }

  /**
   * Every key, ascending.
   *
   * @example
   * ```ts
   * import { BPlusTree, SharedHeap } from "@sabre/sabre";
   * const tree = BPlusTree.create<string, number>(SharedHeap.create(), { key: "string", value: "i32" });
   * tree.set("b", 2); tree.set("a", 1);
   * console.assert([...tree.keys()].join() === "a,b");
   * ```
   */
  keys(): MapIterator<K> {
    return this.#scan(
      undefined,
      false,
      undefined,
      false,
      false,
      Infinity,
      KEYS,
    ) as unknown as MapIterator<K>;
  }

  /**
   * Every value, in key order.
   *
   * @example
   * ```ts
   * import { BPlusTree, SharedHeap } from "@sabre/sabre";
   * const tree = BPlusTree.create<string, number>(SharedHeap.create(), { key: "string", value: "i32" });
   * tree.set("b", 2); tree.set("a", 1);
   * console.assert([...tree.values()].join() === "1,2");
   * ```
   */
  values(): MapIterator<V> {
    return this.#scan(
      undefined,
      false,
      undefined,
      false,
      false,
      Infinity,
      VALUES,
    ) as unknown as MapIterator<V>;
  }

  /**
   * Every entry, in key order.
   *
   * @example
   * ```ts
   * import { BPlusTree, SharedHeap } from "@sabre/sabre";
   * const tree = BPlusTree.create<number, number>(SharedHeap.create(), { key: "i32", value: "i32" });
   * tree.set(2, 20); tree.set(1, 10);
   * console.assert([...tree.entries()].join(";") === "1,10;2,20");
   * ```
   */
  entries(): MapIterator<[K, V]> {
    return this.#scan(undefined, false, undefined, false, false, Infinity);
  }

  /**
   * Same as {@linkcode BPlusTree.entries}.
   *
   * @example
   * ```ts
   * import { BPlusTree, SharedHeap } from "@sabre/sabre";
   * const tree = BPlusTree.create<number, number>(SharedHeap.create(), { key: "i32", value: "i32" });
   * tree.set(1, 10);
   * for (const [k, v] of tree) console.assert(k === 1 && v === 10);
   * ```
   */
  [Symbol.iterator](): MapIterator<[K, V]> {
    return this.entries();
  }

  // ---------------------------------------------------------- bulk loading

  /**
   * Fills an empty tree from entries in strictly increasing key order,
   * building full leaves bottom-up. Checks every key and value (and the
   * order) before it writes anything: a `RangeError` for keys out of order,
   * an `Error` when the tree is not empty.
   *
   * @example
   * ```ts
   * import { BPlusTree, SharedHeap } from "@sabre/sabre";
   * const tree = BPlusTree.create<number, number>(SharedHeap.create(), { key: "i32", value: "i32" });
   * tree.bulkLoad(Array.from({ length: 1000 }, (_, i) => [i, -i] as [number, number]));
   * console.assert(tree.size === 1000 && tree.get(999) === -999);
   * ```
   */
  bulkLoad(entries: Iterable<readonly [K, V]>): void {
    const keys = this.#keys, values = this.#values;
    const ks: K[] = [], vs: V[] = [];
    for (const entry of entries) {
      const k = keys.check(entry[0], "key");
      const v = values.check(entry[1], "value");
      if (ks.length > 0 && keys.compare(ks[ks.length - 1], k) >= 0) {
        throw new RangeError(
          `Cannot bulk-load BPlusTree as keys must be strictly increasing: current value is ${
            describeValue(k)
          } after ${describeValue(ks[ks.length - 1])}`,
        );
      }
      ks.push(k);
      vs.push(v);
    }
    if (ks.length === 0) return;
    const heap = this.#heap;
    this.#startDeadline();
    if (this.#unusable !== 0) this.#throwUnusable();
    heap.pinForOperation();
    try {
      // Latch the root pointer and the (empty) root leaf, so that no write
      // can slip into the leaf that the new tree replaces.
      const rootLatch = this.#header + H_ROOT_LATCH;
      let root: number, oldRoot: number;
      let i32 = heap.i32;
      for (;;) {
        if (!this.#descend(TO_MIN)) continue;
        root = this.#pathNodes[0];
        oldRoot = this.#pathContents[0];
        i32 = heap.i32;
        if (this.#pathDepth !== 0 || countOf(i32, oldRoot >> 2) !== 0) {
          throw new SabreError("Cannot bulk-load BPlusTree as it is not empty");
        }
        if (!LatchWords.tryUpgrade(i32, rootLatch, this.#rootVersion)) continue;
        if (LatchWords.tryUpgrade(i32, (root >> 2) + N_VERSION, this.#pathVersions[0])) break;
        LatchWords.unlock(i32, rootLatch);
      }
      const built: number[] = [];
      try {
        // Leaves as full as the capacity allows, in even chunks, then each
        // inner level over the one below, up to a single root.
        let level = this.#bulkLevel(ks, vs, undefined, built);
        let height = 1;
        while (level.nodes.length > 1) {
          level = this.#bulkLevel(ks, undefined, level, built);
          height++;
        }
        i32 = heap.i32;
        Atomics.store(i32, this.#header + H_ROOT, level.nodes[0]);
        Atomics.store(i32, this.#header + H_HEIGHT, height);
        this.#count(ks.length);
        // The old empty root leaf is unreachable now.
        this.#publish(root, oldRoot, 0);
        heap.retire(root);
      } catch (e) {
        for (const p of built) heap.free(p);
        throw e;
      } finally {
        LatchWords.unlock(heap.i32, (root >> 2) + N_VERSION);
        LatchWords.unlock(heap.i32, rootLatch);
      }
    } finally {
      heap.unpin();
    }
  }

  /** Even chunk sizes of `total` items at most `capacity` each. */
  #chunks(total: number, capacity: number): number[] {
    const count = Math.max(1, Math.ceil(total / capacity));
    const sizes: number[] = [];
    for (let i = 0; i < count; i++) {
      sizes.push(Math.floor((total * (i + 1)) / count) - Math.floor((total * i) / count));
    }
    return sizes;
  }

  /**
   * One level of a bulk load: nodes over `count` items (entries for
   * leaves, children for inner nodes) in even chunks. `lows[i]` is the
   * smallest key under item i. Returns the nodes and their smallest keys.
   */
  #bulkLevel(
    ks: K[],
    vs: V[] | undefined,
    below: { nodes: number[]; lows: K[] } | undefined,
    built: number[],
  ): { nodes: number[]; lows: K[] } {
    const heap = this.#heap;
    const leaf = below === undefined;
    const count = leaf ? ks.length : below.nodes.length;
    const lows = leaf ? ks : below.lows;
    const sizes = this.#chunks(count, leaf ? this.#leafCapacity : this.#innerCapacity);
    const nodes: number[] = [], nodeLows: K[] = [];
    let start = 0;
    for (let s = 0; s < sizes.length; s++) {
      const end = start + sizes[s];
      const low = s === 0 ? undefined : lows[start];
      const high = s === sizes.length - 1 ? undefined : lows[end];
      // Leaves hold entries [start, end); inner nodes hold children
      // [start, end) and the separators lows[start + 1 .. end).
      const content = leaf
        ? buildFromArrays(this.#format, heap, ks, start, end, vs, undefined, 0, low, high)
        : buildFromArrays(
          this.#format,
          heap,
          lows,
          start + 1,
          end,
          undefined,
          below.nodes,
          start,
          low,
          high,
        );
      const node = this.#newNode(content, false); // frees content if it fails
      built.push(content, node);
      nodes.push(node);
      nodeLows.push(lows[start]);
      start = end;
    }
    return { nodes, lows: nodeLows };
  }

  /**
   * A cursor over the tree, positioned before the first entry.
   *
   * @example
   * ```ts
   * import { BPlusTree, SharedHeap } from "@sabre/sabre";
   * const tree = BPlusTree.create<number, number>(SharedHeap.create(), { key: "i32", value: "i32" });
   * tree.set(1, 10);
   * tree.set(3, 30);
   * using cursor = tree.cursor();
   * cursor.seek(2);
   * console.assert(cursor.next()?.[0] === 3 && cursor.prev()?.[0] === 3 && cursor.prev()?.[0] === 1);
   * ```
   */
  cursor(): Cursor<K, V> {
    return new Cursor(this);
  }

  /**
   * A cursor that can also insert, remove and replace values.
   *
   * @example
   * ```ts
   * import { BPlusTree, SharedHeap } from "@sabre/sabre";
   * const tree = BPlusTree.create<number, number>(SharedHeap.create(), { key: "i32", value: "i32" });
   * tree.set(1, 10);
   * using cursor = tree.cursorMut();
   * cursor.seekToFirst();
   * cursor.next();
   * cursor.setValue(11);
   * console.assert(tree.get(1) === 11);
   * ```
   */
  cursorMut(): ExclusiveCursor<K, V> {
    return new ExclusiveCursor(this);
  }

  /**
   * Gives all of the tree's memory back to its heap: every node and its
   * content, and the header. No worker may use the tree, or attach its
   * handle, once this starts; delete any named root that names it first.
   * Blocks go back through the heap's epochs (`retire`), so a read that
   * another worker had begun just before is still safe. Every later call on
   * this object throws {@linkcode DestroyedError}, and so does a second
   * `destroy()` of the tree from any worker.
   *
   * @example
   * ```ts
   * import { BPlusTree, SharedHeap } from "@sabre/sabre";
   * const heap = SharedHeap.create();
   * const before = heap.stats().liveBytes;
   * const tree = BPlusTree.create<number, string>(heap, { key: "i32", value: "string" });
   * for (let i = 0; i < 1000; i++) tree.set(i, `value ${i}`);
   * tree.destroy();
   * for (let i = 0; i < 3; i++) heap.collect();
   * console.assert(heap.stats().liveBytes === before);
   * ```
   */
  destroy(): void {
    if (this.#unusable !== 0) this.#throwUnusable();
    const heap = this.#heap, format = this.#format;
    // One CAS on the tag: of two workers that destroy the tree, one wins, and
    // attach() refuses the handle from here on (until the header is reused).
    const won = Atomics.compareExchange(heap.i32, this.#header, TAG, 0) === TAG;
    // This object is done with either way: another destroyed the tree first.
    this.#unusable = DESTROYED;
    if (!won) throw new DestroyedError("BPlusTree", "destroy");
    heap.pinForOperation();
    try {
      // Every node reachable from the root, once each: a writer killed in
      // the middle of a structure change may have left a node linked twice.
      const seen = new Set<number>();
      const pending = [Atomics.load(heap.i32, this.#header + H_ROOT)];
      while (pending.length > 0) {
        const node = pending.pop()!;
        if (node === 0 || seen.has(node)) continue;
        seen.add(node);
        if (node + NODE_BYTES > heap.mappedBytes) heap.ensure(node + NODE_BYTES);
        const c = Atomics.load(heap.i32, (node >> 2) + N_CONTENT);
        if (c !== 0) {
          this.#ensureContent(c);
          const i32 = heap.i32, w = c >> 2;
          if (!isLeaf(i32, w)) {
            const n = countOf(i32, w);
            for (let i = 0; i <= n; i++) pending.push(i32[format.childWord(w, n, i)]);
          }
          heap.retire(c);
        }
        heap.retire(node);
      }
      heap.retire(this.#placement.offset);
    } finally {
      heap.unpin();
    }
  }

  /**
   * USABLE, DESTROYED (by this object: others cannot know), or IN_UPDATE_FN
   * while update() runs its fn under a leaf latch: every call then throws
   * before it stages anything, as a read would overwrite the staged key of
   * the update, and a write would wait for the latch that fn's caller holds.
   */
  #unusable = USABLE;

  #throwUnusable(): never {
    if (this.#unusable === DESTROYED) throw new DestroyedError("BPlusTree");
    throw new SabreError(
      "Cannot use BPlusTree inside the fn of its own update(), which runs under a leaf latch: read what fn needs before the update",
    );
  }

  // ------------------------------------------------------------- internals

  static {
    internalsOf = <K, V>(tree: BPlusTree<K, V>): TreeInternals<K, V> => ({
      step: (backward, key, open, hint) => tree.#step(backward, key, open, hint),
      stepHinted: (hint, index) => tree.#stepHinted(hint, index),
      checkKey: (key) => tree.#keys.check(key, "key"),
      root: () => Atomics.load(tree.#heap.i32, tree.#header + H_ROOT),
      format: tree.#format,
      minFill: { leaf: tree.#minLeaf, inner: tree.#minInner },
    });
  }
}
