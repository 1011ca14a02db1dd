/**
 * HashMap: a concurrent hash map in a SharedHeap, with lock-free reads,
 * lock-free writes and online resizing.
 *
 * ## Layout
 *
 * - **Header** (one block): tag, codec ids, codec limits, the root table
 *   pointer, a promotion lock, a spare table, and 64 size stripes on their
 *   own cache lines.
 * - **Table descriptor** (one block): capacity, slot array, claimed-slot
 *   count, the next table during a resize, and the migration's cursor,
 *   progress and scan hint; on the root, the old table being retired; on
 *   that old table, the same three words for its retirement. Then a holder
 *   word per chunk of 256 slots for the table's migration, and another for
 *   its retirement.
 * - **Slot array**: capacity Int32 words (a power of two), open addressing,
 *   linear probing.
 * - **Entries**: immutable blocks `[hash, (keyLen), (valueLen), key, value]`.
 *   i32 and u32 keys keep no hash word (it is recomputed from the key), so an
 *   entry of an int key and an int value is one 8-byte block.
 *
 * A slot holds 0 (empty) or an entry pointer (8-byte aligned) with tag bits:
 * FROZEN (1: being migrated, no writer may change it), DELETED (2: the key
 * is absent but keeps its slot, so a key never moves within a table), and
 * COPIED (4: the entry is shared with an older table, see below). A frozen
 * empty slot (value 1) is MOVED: nothing can be inserted there any more.
 * A delete tags the entry it finds. Where values have a variable size and
 * the deleted one takes over SHED_VALUE_BYTES, the delete then puts a copy
 * of the entry with an empty value in the slot, tagged DELETED, and retires
 * the old entry like a replaced one (#keyOnlyCopy, #shedValue), so that the
 * value's bytes are reclaimed at once.
 *
 * ## Memory-model patterns
 *
 * - Slot words, root pointer, descriptor counters, NEXT, RETIRING, the
 *   chunk holder words and the promotion lock (0, or a holder's heap
 *   ownerId): (a) all-atomic.
 * - Entries and the capacity/slots fields of a descriptor: (b) written with
 *   plain stores before the CAS or store that publishes them, never changed
 *   afterwards, freed only through epochs. Readers load the pointer with
 *   Atomics and read the entry with plain reads.
 *
 * ## Operations
 *
 * Every operation pins the heap's epoch. Readers write nothing else. A write
 * allocates its new entry first (so a full heap fails before any change),
 * then CASes the key's slot; the entry it replaced is retired. A new key
 * claims an empty slot with a CAS; a claim past 3/4 of the capacity starts a
 * resize (to twice the capacity, or the same capacity when deleted slots
 * are most of it); many deletes start a shrink.
 *
 * ## A full heap
 *
 * Deleted entries are freed only by a resize, which needs a new table. So
 * the map keeps a spare empty table of the smallest size: a shrink to that
 * size takes it when the heap cannot hold a new one, and a retired table of
 * that size becomes the next spare (reused once no pinned worker can read
 * it). A write that finds the heap full, where most claimed slots hold
 * deleted keys, starts that resize itself, finishes it, waits briefly for
 * the blocks to be freed, and tries once more (#reclaimForWrite). A map
 * that filled the heap can then be emptied and filled again; one with more
 * than 8 live keys left needs room for a table of their size. A write made
 * inside the caller's own pin does none of this.
 *
 * ## Resizing
 *
 * A resize publishes a next table. Writers that meet it help: they claim
 * chunks of 256 slots, freeze each slot with a CAS and copy live entries to
 * the next table (as COPIED pointers; the entry itself is not copied). After
 * freezing, the old slot is never written again, so a writer of a frozen key
 * copies it first and then writes in the next table. A reader that meets a
 * frozen key looks in the next table: a value there is newer; no value means
 * the copy has not happened and the frozen one is current (writers copy
 * before they write). When every chunk is done, the root moves to the next
 * table. Writers that meet the new root then retire the old table the same
 * way, chunk by chunk (so no single operation pays for a whole table), and
 * the root moves on again only once that retirement is done. Readers never
 * help, so when writes stop mid-resize both tables stay; `finishResize`
 * claims the chunks left, a few per pin, and never waits for a chunk that a
 * live worker holds.
 *
 * Ownership of shared entries: an entry copied into a newer table is
 * referenced by both. Whoever clears the COPIED bit with a CAS owns it:
 * retiring the old table clears the bit in the newer table's slot (the newer
 * table now owns the entry), or, if a writer already replaced that slot,
 * retires the entry itself. A writer that replaces a COPIED entry leaves it
 * alone. Both sides act on the same slot word with CAS, so an entry is
 * retired exactly once. By the time a table is retired, its predecessor's
 * retirement has cleared every COPIED bit in it, so the retirement reuses
 * the bit on the old table's frozen slots to mark each one done.
 *
 * ## Crashes
 *
 * A worker that dies mid-write leaks at most one entry: its new one before
 * the CAS that publishes it, or the one it replaced after. One that dies in
 * the middle of a resize may leak a whole table: a new one it allocated (or
 * the spare it took) and had not published yet, or the old one whose
 * retirement it had closed (T_RETIRING cleared) and not yet freed. The map stays correct either way. Chunk holder
 * words and the promotion lock hold their holder's heap ownerId: once a
 * worker that died holding one is evicted from the heap (`evictWorker`),
 * the next writer takes the chunk or the lock over and finishes the job
 * (copying is idempotent; a retirement slot the dead holder had marked but
 * not settled leaks its entry). Until then the map keeps working correctly
 * on the chain of tables; only lookups walk the chain. A migration chunk
 * cut short by an error (a full heap) is given back, and the next writer
 * redoes it. The cursors stop at the last chunk, so a table stuck in a
 * chain never wraps them. A holder that dies after marking its chunk done
 * but before counting it needs no eviction: the next writer that finds
 * every chunk marked counts for it, and any writer finishes a retirement
 * whose last counter died before finishing it.
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
  type SharedHandle,
  type SharedHeap,
  tagOf,
} from "../memory/mod.ts";
import { encodeAsciiKey } from "../memory/_murmur.ts";
import { epochsBetween } from "../memory/_epochs.ts";
import {
  type Kernel,
  KERNEL_ABSENT,
  KERNEL_ADD,
  KERNEL_NOT_WRITTEN,
  KERNEL_SLOW,
  KERNEL_WRITE_ALWAYS,
  KERNEL_WRITE_IF_ABSENT,
  KERNEL_WRITE_IF_EQUAL,
  KERNEL_WRITE_IF_PRESENT,
} from "../memory/_kernel.ts";
import {
  endAtTaskEnd,
  heapKernel,
  kernelForRead,
  kernelKeyWords,
  kernelTrapped,
  kernelUnpin,
  stringKernelForRead,
} from "../memory/_heap_hooks.ts";

const KIND = "sabre.HashMap";
const LAYOUT_VERSION = 7;
const TAG = tagOf("HMAP");

// Header words.
const H_KEY_CODEC = 1;
const H_VALUE_CODEC = 2;
const H_KEY_MAX = 3;
const H_VALUE_MAX = 4;
const H_TABLE = 5;
const H_PROMOTING = 6;
/**
 * A spare empty table of MIN_CAPACITY slots, or 0: what a shrink takes when
 * the heap cannot hold a new table (see #startResize).
 */
const H_SPARE = 7;
const STRIPES = 64;
const STRIPE_WORDS = 16;
const HEADER_BYTES = 64 * (STRIPES + 1);

// Table descriptor words.
const T_CAPACITY = 0;
const T_SLOTS = 1;
const T_CLAIMED = 2;
const T_NEXT = 3;
/**
 * A chunked job (a migration, a retirement) keeps three descriptor words:
 * its cursor (chunks handed out), then JOB_DONE (chunks finished), then
 * JOB_LOW (a hint: no chunk below it is unfinished).
 */
const JOB_DONE = 1;
const JOB_LOW = 2;
/** The table's migration into its next table: job words 4, 5, 6. */
const T_MIGRATION = 4;
const T_DONE = T_MIGRATION + JOB_DONE;
/** On the root: the old table whose retirement is under way, else 0. */
const T_RETIRING = 7;
/** On a table being retired: its retirement's job words 8, 9, 10. */
const T_RETIREMENT = 8;
/**
 * On a retired table kept as the spare: the epoch read after its
 * retirement unlinked it (never 0), or 0 on a fresh spare (see #takeSpare).
 */
const T_UNLINKED_AT = 11;
const TABLE_BYTES = 48;
/**
 * After a descriptor's own words: a holder word per chunk of the table's
 * migration, then one per chunk of its retirement. Kept out of the slot
 * array, so that the array is exactly capacity words: a power of two of
 * bytes, which the heap's page blocks (also powers of two) hold without
 * rounding up. With the holders behind it, a 2^21-slot array took a page
 * block of twice its size.
 */
const TABLE_WORDS = TABLE_BYTES >> 2;

// Slot tags.
const FROZEN = 1;
const DELETED = 2;
const COPIED = 4;
const TAGS = 7;
/** Longest string key that the kernel's hashmapGetAscii and hashmapSetAscii take: eight words. */
const KERNEL_KEY_BYTES = 32;
const MOVED = FROZEN;

const CHUNK = 256;
/**
 * Chunks that finishResize works on under one pin (it unpins between, so
 * that reclamation goes on meanwhile).
 */
const FINISH_CHUNKS = 16;
/** A chunk's holder word once the chunk is done (holders are ownerIds, > 0). */
const CHUNK_DONE = -1;
/** What #claimJobChunk returns once every chunk of the job is done. */
const JOB_COMPLETE = -2;
/** Crash points between marking a chunk done and counting it. */
const MIGRATE_COUNT = "hashmap.migrate.count";
const RETIRE_COUNT = "hashmap.retire.count";
const MIN_CAPACITY = 16;
/** The number of hashes, 2^32: iterations go through them in blocks. */
const HASH_SPACE = 2 ** 32;
/**
 * Homes of the chain's largest table that an iteration reads in one block
 * (about 100 keys at the load after growth): enough to make the block's
 * fixed cost small, few enough that the keys a dropped iterator read for
 * nothing cost little.
 */
const BLOCK_HOMES = 128;
/**
 * How long a write that found the heap full waits, twice at most, for other
 * workers to unpin so that the map's deleted entries can be freed
 * (#reclaimForWrite).
 */
const FULL_HEAP_WAIT_MS = 5;
const MAX_CAPACITY = 1 << 28;
/** Largest maxKeyBytes/maxValueBytes: the codecs' own limit. */
const MAX_LIMIT_BYTES = 1 << 20;
/** add's bound on the magnitude of a bigint64 delta (exclusive). */
const BIGINT_DELTA_LIMIT = 2n ** 64n;

/**
 * Handle of a {@linkcode HashMap}.
 *
 * @example
 * ```ts
 * import { HashMap, type HashMapHandle, SharedHeap } from "@sabre/sabre";
 * const handle: HashMapHandle = HashMap.create(SharedHeap.create(), { key: "i32", value: "i32" }).handle;
 * console.assert(handle.kind === "sabre.HashMap");
 * ```
 */
export type HashMapHandle = SharedHandle<"sabre.HashMap">;

/**
 * Options of {@linkcode HashMap.create}.
 *
 * @example
 * ```ts
 * import type { HashMapOptions } from "@sabre/sabre";
 * const options: HashMapOptions<"string", "f64"> = { key: "string", value: "f64", maxKeyBytes: 64 };
 * console.assert(options.key === "string");
 * ```
 */
export interface HashMapOptions<KN extends CodecName, VN extends CodecName> {
  /** Codec of the keys. */
  key: KN;
  /** Codec of the values. */
  value: VN;
  /** Largest encoded key for "string" and "bytes" keys (default 1024). */
  maxKeyBytes?: number;
  /** Largest encoded value for "string" and "bytes" values (default 1024). */
  maxValueBytes?: number;
  /** Slots to start with (rounded up to a power of two, at least 16). Default 16. */
  capacity?: number;
}

/** 32-bit integer mix (murmur3 finalizer). */
function mix32(x: number): number {
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b);
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35);
  return x ^ (x >>> 16);
}

/**
 * The home slot of `hash` in a table of `mask + 1` slots: the hash's top
 * bits. So slot order is hash order in every table, whatever its capacity
 * (a key whose home is h has home 2h or 2h + 1 in a table twice the size),
 * which lets an iteration resume by hash across resizes (#readBlock).
 * The kernel computes the same (kernel.wat: `i32.shr_u` by `i32.clz`).
 * Capacities are powers of two of at least MIN_CAPACITY, so the shift is
 * below 32.
 */
function homeSlot(hash: number, mask: number): number {
  return hash >>> Math.clz32(mask);
}

function nextPowerOfTwo(n: number): number {
  return n <= MIN_CAPACITY ? MIN_CAPACITY : 2 ** Math.ceil(Math.log2(n));
}

const f64Scratch = new Float64Array(1);
const f64Words = new Int32Array(f64Scratch.buffer);
const i64Scratch = new BigInt64Array(f64Scratch.buffer);

/** The value codec id where the kernel reads such values itself (i32, u32, f64), else 0. */
function kernelValueKindOf(valueKind: number): number {
  return valueKind === CODEC_IDS.i32 || valueKind === CODEC_IDS.u32 ||
      valueKind === CODEC_IDS.f64
    ? valueKind
    : 0;
}

/** A new HashMap object for a placed map: see the static block of the class. */
let newHashMap: <K, V>(heap: SharedHeap, placement: Placement) => HashMap<K, V>;

/**
 * A concurrent hash map in shared memory, used at the same time from many
 * workers.
 *
 * Reads (`get`, `has`, iteration) never block and write nothing to shared
 * memory but the worker's epoch slot; writers never take a global lock; the
 * table grows and shrinks online while both go on. Keys and values are
 * typed by codecs: `"i32"`, `"u32"`, `"f64"`, `"bigint64"`, `"string"`
 * (UTF-8) or `"bytes"`.
 *
 * f64 keys follow Map's SameValueZero, except that NaN is refused: `-0` and
 * `0` are the same key. Strings must be well-formed UTF-16.
 *
 * Unlike `Map`, every method checks its key with the key codec, reads
 * included: `get(1.5)` on an i32 map, `has(NaN)` on an f64 map, or a string
 * over `maxKeyBytes`, throws the codec's `TypeError` or `RangeError` rather
 * than answer `undefined` or `false`, since no such key can be stored.
 *
 * Iteration follows the table's slots (hash order), not insertion order.
 * An iterator keeps no pin past the end of its task, so one that is dropped
 * unfinished (`map.keys().next().value`) costs the heap nothing.
 *
 * The conditional writes (`compareAndSet`, `deleteIf`, `update`) compare
 * values as the value codec does: strings and bytes by content, and f64
 * values as `Object.is` does, so `-0` differs from `0` and `NaN` equals
 * `NaN`.
 *
 * @example
 * ```ts
 * import { HashMap, SharedHeap } from "@sabre/sabre";
 *
 * const heap = SharedHeap.create();
 * const counts = HashMap.create(heap, { key: "string", value: "u32" });
 * counts.set("apple", 1);
 * counts.add("apple", 2);
 * console.assert(counts.get("apple") === 3);
 * // In a worker: HashMap.attach(handle) with handle = counts.handle
 * ```
 */
export class HashMap<K, V> {
  readonly #heap: SharedHeap;
  readonly #placement: Placement;
  readonly #header: number; // Int32 index of the header
  readonly #headerAt: number; // its byte address, for the kernel
  readonly #keys: Codec<K>;
  readonly #values: Codec<V>;
  readonly #keyKind: number;
  readonly #valueKind: number;
  // Entry layout.
  readonly #keyLenAt: number; // byte offset of the key length word, -1 when fixed
  readonly #valueLenAt: number;
  readonly #keyAt: number; // byte offset of the key (after the length words)
  readonly #valueAlign: number;
  readonly #fixedValueAt: number; // byte offset of a fixed value after a fixed key, else -1
  // Entries of i32/u32 keys keep no hash word (mix32 of the key is cheaper
  // than the load), so an int -> int entry is one 8-byte block.
  readonly #storesHash: boolean;
  readonly #entryMinBytes: number; // smallest entry: readable after ensure(entry + this)
  // Per-worker scratch for encoding keys: the key's bytes, at byte 8 of
  // #keyWords, whose words 0 and 1 hold an ASCII string key's hash and
  // length (the layout of a string entry's first words; see encodeAsciiKey).
  readonly #keyWords: Int32Array;
  readonly #scratch: Uint8Array;
  #scratchLength = 0;
  // The string key whose encodeAsciiKey answer (#asciiLength) #keyWords
  // holds, or undefined: every writer of #keyWords and #scratch sets it, so
  // that a write right after a read of the same key (add, compareAndSet,
  // getOrInsert, update) does not encode the key again.
  #asciiKey: string | undefined = undefined;
  #asciiLength = -1;
  // The prepared key's two Int32 words, for f64 and bigint64 keys.
  #keyLow = 0;
  #keyHigh = 0;
  #deletesSinceCheck = 0;

  private constructor(heap: SharedHeap, placement: Placement) {
    this.#heap = heap;
    this.#placement = placement;
    this.#header = placement.offset >> 2;
    this.#headerAt = placement.offset;
    const words = placement.words;
    const keyName = codecNameOf(words[H_KEY_CODEC]);
    const valueName = codecNameOf(words[H_VALUE_CODEC]);
    this.#keyKind = words[H_KEY_CODEC];
    this.#valueKind = words[H_VALUE_CODEC];
    this.#keys = codec(keyName, {
      role: "key",
      maxBytes: words[H_KEY_MAX],
      limitName: "maxKeyBytes",
    }) as unknown as Codec<K>;
    this.#values = codec(valueName, {
      role: "value",
      maxBytes: words[H_VALUE_MAX],
      limitName: "maxValueBytes",
    }) as unknown as Codec<V>;
    this.#storesHash = this.#keys.fixedBytes !== 4;
    this.#entryMinBytes = this.#storesHash ? 16 : 8;
    let at = this.#storesHash ? 4 : 0;
    this.#keyLenAt = this.#keys.fixedBytes === 0 ? (at += 4) - 4 : -1;
    this.#valueLenAt = this.#values.fixedBytes === 0 ? (at += 4) - 4 : -1;
    if (this.#keys.fixedBytes === 8) at = (at + 7) & ~7;
    this.#keyAt = at;
    this.#valueAlign = this.#values.fixedBytes === 0 ? 1 : this.#values.fixedBytes;
    this.#fixedValueAt = this.#keys.fixedBytes === 0
      ? -1
      : align(at + this.#keys.fixedBytes, this.#valueAlign);
    // At least KERNEL_KEY_BYTES, so that the kernel calls read eight words.
    const scratchBytes = Math.max(KERNEL_KEY_BYTES, this.#keys.maxBytes);
    this.#keyWords = new Int32Array(2 + ((scratchBytes + 3) >> 2));
    this.#scratch = new Uint8Array(this.#keyWords.buffer, 8, scratchBytes);
    this.#stringKeys = this.#keyKind === CODEC_IDS.string;
    this.#u32KeyBit = this.#keyKind === CODEC_IDS.u32 ? 1 : 0;
    this.#int32Keys = (this.#keyKind === CODEC_IDS.i32 || this.#keyKind === CODEC_IDS.u32) &&
      this.#values.fixedBytes !== 0;
    this.#setInKernel = this.#keyKind === CODEC_IDS.i32 || this.#keyKind === CODEC_IDS.u32 ||
      this.#stringKeys;
    this.#shedsValues = this.#values.fixedBytes === 0 && this.#values.maxBytes > SHED_VALUE_BYTES;
    this.#kernelValueKind = kernelValueKindOf(this.#valueKind);
    this.#kernelIntGets = this.#int32Keys && this.#kernelValueKind !== 0;
    this.#kernelStringGets = this.#stringKeys && this.#kernelValueKind !== 0;
    this.#stringKernelMaxLength = Math.min(KERNEL_KEY_BYTES, this.#keys.maxBytes);
    // The heap may have grown past this worker's views since it attached.
    heap.ensure(placement.offset + HEADER_BYTES);
  }

  /**
   * Creates an empty map in `heap`. Throws `TypeError`/`RangeError` for bad
   * options and {@linkcode HeapExhaustedError} when the heap is full.
   *
   * @example
   * ```ts
   * import { HashMap, SharedHeap } from "@sabre/sabre";
   * const map = HashMap.create(SharedHeap.create(), { key: "i32", value: "f64", capacity: 1024 });
   * console.assert(map.size === 0);
   * ```
   */
  static create<KN extends CodecName, VN extends CodecName>(
    heap: SharedHeap,
    options: HashMapOptions<KN, VN>,
  ): HashMap<CodecValue<KN>, CodecValue<VN>> {
    checkKeyedOptions("HashMap", heap, options, ["maxKeyBytes", "maxValueBytes", "capacity"]);
    // The codecs check the limits too, but their messages name the codec,
    // not the map.
    for (const field of ["maxKeyBytes", "maxValueBytes"] as const) {
      const limit: unknown = options[field];
      if (limit === undefined) continue;
      if (typeof limit !== "number") {
        throw new TypeError(
          `Cannot create HashMap as '${field}' must be a number: current value is ${
            describeValue(limit)
          }`,
        );
      }
      if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIMIT_BYTES) {
        throw new RangeError(
          `Cannot create HashMap as '${field}' must be an integer from 1 to ${MAX_LIMIT_BYTES}: current value is ${
            describeValue(limit)
          }`,
        );
      }
    }
    const keys = codec(options.key, { role: "key", maxBytes: options.maxKeyBytes });
    const values = codec(options.value, { role: "value", maxBytes: options.maxValueBytes });
    const capacity: unknown = options.capacity === undefined ? MIN_CAPACITY : options.capacity;
    if (
      typeof capacity !== "number" || !Number.isInteger(capacity) || capacity < 1 ||
      capacity > MAX_CAPACITY
    ) {
      throw new (typeof capacity === "number" ? RangeError : TypeError)(
        `Cannot create HashMap as 'capacity' must be an integer from 1 to ${MAX_CAPACITY}: current value is ${
          describeValue(capacity)
        }`,
      );
    }
    const placement = placeObject(heap, HEADER_BYTES, 0, "HashMap");
    const words = placement.words;
    words[H_KEY_CODEC] = CODEC_IDS[options.key];
    words[H_VALUE_CODEC] = CODEC_IDS[options.value];
    words[H_KEY_MAX] = keys.maxBytes;
    words[H_VALUE_MAX] = values.maxBytes;
    let table = 0;
    let spare: number;
    try {
      table = newTable(heap, nextPowerOfTwo(capacity));
      spare = newTable(heap, MIN_CAPACITY);
    } catch (e) {
      if (table !== 0) freeTable(heap, table);
      heap.free(placement.offset);
      throw e;
    }
    Atomics.store(words, H_TABLE, table);
    Atomics.store(words, H_SPARE, spare);
    Atomics.store(words, 0, TAG); // publish last
    return newHashMap(heap, placement);
  }

  /**
   * Rebuilds a map from its handle in any worker.
   *
   * @example
   * ```ts
   * import { HashMap, SharedHeap } from "@sabre/sabre";
   * const map = HashMap.create(SharedHeap.create(), { key: "i32", value: "i32" });
   * map.set(1, 10);
   * console.assert(HashMap.attach<number, number>(map.handle).get(1) === 10);
   * ```
   */
  static attach<K = unknown, V = unknown>(handle: HashMapHandle): HashMap<K, V> {
    const placement = attachHeapObject(handle, KIND, LAYOUT_VERSION, HEADER_BYTES, TAG, "HashMap");
    return newHashMap<K, V>(placement.heap, placement);
  }

  /**
   * The handle to send to other workers.
   *
   * @example
   * ```ts
   * import { HashMap, SharedHeap } from "@sabre/sabre";
   * const map = HashMap.create(SharedHeap.create(), { key: "i32", value: "i32" });
   * console.assert(map.handle.kind === "sabre.HashMap");
   * ```
   */
  get handle(): HashMapHandle {
    return objectHandle(KIND, LAYOUT_VERSION, this.#placement);
  }

  /**
   * Entries present now: the sum of per-worker counters, exact when no write
   * is in flight. While other workers write, the counters are read one after
   * another, so the sum may include some of their writes and miss others: an
   * estimate then, never below 0.
   *
   * @example
   * ```ts
   * import { HashMap, SharedHeap } from "@sabre/sabre";
   * const map = HashMap.create(SharedHeap.create(), { key: "u32", value: "u32" });
   * map.set(1, 1).set(2, 2);
   * console.assert(map.size === 2);
   * ```
   */
  get size(): number {
    if (this.#destroyed) this.#throwDestroyed();
    const i32 = this.#heap.i32;
    let total = 0;
    for (let s = 0; s < STRIPES; s++) {
      total += Atomics.load(i32, this.#header + STRIPE_WORDS * (s + 1));
    }
    // A stripe can be negative (its worker deleted keys that others added),
    // and so can a sum whose stripes were read at different moments.
    return total < 0 ? 0 : total;
  }

  /**
   * Slots of the current table (for statistics).
   *
   * @example
   * ```ts
   * import { HashMap, SharedHeap } from "@sabre/sabre";
   * const map = HashMap.create(SharedHeap.create(), { key: "u32", value: "u32" });
   * console.assert(map.capacity === 16);
   * ```
   */
  get capacity(): number {
    if (this.#destroyed) this.#throwDestroyed();
    const heap = this.#heap;
    heap.pinForOperation();
    try {
      const table = this.#root();
      heap.ensure(table + TABLE_BYTES);
      return heap.i32[(table >> 2) + T_CAPACITY];
    } finally {
      heap.unpin();
    }
  }

  // ------------------------------------------------------------------- reads

  /**
   * The value of `key`, or `undefined`. Never blocks. Throws the key
   * codec's `TypeError` or `RangeError` for a key that no entry of this map
   * could have (see the class notes).
   *
   * @example
   * ```ts
   * import { HashMap, SharedHeap } from "@sabre/sabre";
   * const map = HashMap.create(SharedHeap.create(), { key: "i32", value: "string" });
   * map.set(7, "seven");
   * console.assert(map.get(7) === "seven" && map.get(8) === undefined);
   * ```
   */
  get(key: K): V | undefined {
    // Maps whose gets the kernel answers are instances of the subclasses
    // below, whose gets write their hot case out and fall back to this one,
    // which serves every other map.
    const answer = this.#getFastPath(key);
    return answer !== FALL_BACK ? answer : this.#getSlowly(key);
  }

  // A get per kind of map. V8 keeps one record of what a function has met
  // (its feedback) for all the objects it runs on, and inlines into each
  // caller what that record names: with one get for every map, a loop over
  // an int map inlined the string path too, once any string map had been
  // read, and its gets over 1M keys took 1.3 times as long (medians of
  // bench/get_interleaved.ts: 1.66-1.71x Map.get's time against 1.29-1.33x).
  // Maps of int keys and of string keys whose values the kernel reads (i32,
  // u32, f64) get a subclass each, whose get holds that kind's hot path
  // alone, and no other map's path, general or not, reaches that get's
  // feedback. The subclasses are declared in this block so that they can
  // read the private fields, and are named HashMap too, which is what a
  // debugger shows; every other map is a plain HashMap.
  static {
    const Base = HashMap;
    const IntKeyedHashMap = class HashMap<K, V> extends Base<K, V> {
      override get(key: K): V | undefined {
        // Written out so that the kernel's answer is returned as it is. At
        // 1M keys every instruction here showed, far beyond its own cost
        // (each one leaves less room to overlap this get's cache misses with
        // the next get's): one shared tail for this and the string case made
        // the int get about 1.5 times as slow, and so did reading the heap's
        // pin state per get (kernelForRead) and testing a boolean field,
        // which V8 compiles to a chain of compares. Hence the kernel's own
        // function in a field (#intGet), a small integer for the u32 test
        // (#isInt32Key), and no pin state: the kernel answers KERNEL_SLOW
        // when this worker holds no pin or read pin, and super.get arms the
        // read pin and asks it again.
        if (typeof key === "number" && this.#isInt32Key(key)) {
          const intGet = this.#intGet;
          if (intGet !== null) {
            let found: number;
            try {
              found = intGet(this.#headerAt, key);
            } catch (e) {
              kernelTrapped(this.#heap, e);
              found = KERNEL_SLOW;
            }
            // An int32 answer is a value (neither sentinel is an integer).
            // Testing that first lets V8 return it as a small integer: with
            // the sentinel tests first, the f64 answer went through V8's
            // number boxing, and a get over 1M keys took 25-30% longer.
            if ((found | 0) === found) return found as V;
            if (found === KERNEL_ABSENT) return undefined;
            if (found !== KERNEL_SLOW) return found as V;
          }
        }
        return super.get(key);
      }
    };
    const StringKeyedHashMap = class HashMap<K, V> extends Base<K, V> {
      override get(key: K): V | undefined {
        if (typeof key === "string" && this.#kernelStringGets) return this.#getStringKey(key);
        return super.get(key);
      }
    };
    newHashMap = <K, V>(heap: SharedHeap, placement: Placement): HashMap<K, V> => {
      const keyKind = placement.words[H_KEY_CODEC];
      if (kernelValueKindOf(placement.words[H_VALUE_CODEC]) !== 0) {
        if (keyKind === CODEC_IDS.i32 || keyKind === CODEC_IDS.u32) {
          return new IntKeyedHashMap<K, V>(heap, placement);
        }
        if (keyKind === CODEC_IDS.string) return new StringKeyedHashMap<K, V>(heap, placement);
      }
      return new Base<K, V>(heap, placement);
    };
  }

  /** `get` of a string key in a map whose values the kernel reads. */
  #getStringKey(key: K & string): V | undefined {
    const heap = this.#heap;
    // The string kernel reads the key itself (see memory/_string_kernel.ts).
    const strings = stringKernelForRead(heap);
    if (strings !== null) {
      let found: number;
      try {
        found = strings.hashmapGetString(key, this.#stringKernelMaxLength, this.#headerAt);
      } catch (e) {
        kernelTrapped(heap, e);
        found = KERNEL_SLOW;
      }
      // As in get.
      if ((found | 0) === found) return found as V;
      if (found === KERNEL_ABSENT) return undefined;
      if (found !== KERNEL_SLOW) return found as V;
      // For a key of a length it takes, KERNEL_SLOW means a non-ASCII key, a
      // frozen slot, a trap or no slot yet: the paths below would only read
      // the key again to reach the general path. The empty key and longer
      // keys go on to them.
      if (key.length !== 0 && key.length <= this.#stringKernelMaxLength) {
        return this.#getSlowly(key);
      }
    }
    const kernel = key.length <= KERNEL_KEY_BYTES ? kernelForRead(heap) : null;
    if (kernel !== null) {
      // The key goes to the kernel in this worker's registry words rather
      // than as parameters (see kernel.wat, hashmapGetKeyInSlot). A
      // non-ASCII key, or one over maxKeyBytes, takes the general path,
      // which refuses the latter.
      const length = encodeAsciiKey(key, kernelKeyWords(heap), this.#keys.maxBytes);
      if (length > 0) {
        let found: number;
        try {
          found = kernel.hashmapGetKeyInSlot(this.#headerAt);
        } catch (e) {
          kernelTrapped(heap, e);
          found = KERNEL_SLOW;
        }
        // As in get.
        if ((found | 0) === found) return found as V;
        if (found === KERNEL_ABSENT) return undefined;
        return found !== KERNEL_SLOW ? found as V : this.#getSlowly(key);
      }
      if (length < 0) return this.#getSlowly(key);
    }
    // No kernel, the empty key, or a key over KERNEL_KEY_BYTES: the
    // lookup in JavaScript.
    const answer = this.#getAsciiKey(key);
    return answer !== FALL_BACK ? answer : this.#getSlowly(key);
  }

  /** `get` through the general path: every codec, and any state of the table. */
  #getSlowly(key: K): V | undefined {
    const hash = this.#prepareKey(key, "key");
    const heap = this.#heap;
    heap.pinForOperation();
    try {
      const entry = this.#find(key, hash);
      return entry === 0 ? undefined : this.#readValue(entry);
    } finally {
      heap.unpin();
    }
  }

  /**
   * `get` through its fast path for int keys or ASCII string keys, or
   * FALL_BACK where the general path must answer.
   */
  #getFastPath(key: K): V | undefined | typeof FALL_BACK {
    if (this.#int32Keys && typeof key === "number" && this.#isInt32Key(key)) {
      const heap = this.#heap;
      const kernel = this.#kernelValueKind === 0 ? null : kernelForRead(heap);
      if (kernel === null) return this.#getInt32Key(key);
      // The int get's kernel function, taken here, where the first get of
      // each task comes (see IntKeyedHashMap): so also once a heap attached
      // without its memory has gained the kernel.
      if (this.#intGet === null && this.#kernelIntGets) this.#intGet = kernel.hashmapGetInt;
      return this.#kernelValue(this.#getIntInKernel(kernel, key));
    }
    if (this.#stringKeys && typeof key === "string") return this.#getAsciiKey(key);
    return FALL_BACK;
  }

  /**
   * Whether a number is a key that the int fast paths take: an int32, and
   * not negative unless the keys are i32. (key | 0) === key admits negative
   * numbers, which are no u32 key: those take the general path, which
   * refuses them. The sign bit is tested against a small integer, not a
   * boolean field, for the int get (see IntKeyedHashMap).
   */
  #isInt32Key(key: number): boolean {
    return (key | 0) === key && ((key >>> 31) & this.#u32KeyBit) === 0;
  }

  /**
   * kernel.hashmapGetInt for an int32 key of a map whose values the kernel
   * reads: the value, KERNEL_ABSENT, or KERNEL_SLOW (also when the call
   * trapped; its pin is then undone).
   */
  #getIntInKernel(kernel: Kernel, key: number): number {
    try {
      return kernel.hashmapGetInt(this.#headerAt, key);
    } catch (e) {
      kernelTrapped(this.#heap, e);
      return KERNEL_SLOW;
    }
  }

  /** A kernel get's answer for a map whose values the kernel reads itself. */
  #kernelValue(found: number): V | undefined | typeof FALL_BACK {
    // An f64 value equal to a sentinel comes back as KERNEL_SLOW.
    if (found === KERNEL_ABSENT) return undefined;
    return found === KERNEL_SLOW ? FALL_BACK : found as V;
  }

  // The five flags below choose the fast paths; destroy() clears them all,
  // so that every operation reaches a path that checks #destroyed (the hot
  // gets pay nothing for that check).
  /** i32 keys (and u32 keys below 2^31) with fixed-size values. */
  #int32Keys: boolean;
  /**
   * The value codec's id where the kernel's gets can read its values
   * (CODEC_IDS i32 1, u32 2, f64 3, the numbers kernel.wat tests), else 0:
   * hashmapGetInt is then not used, and hashmapGetAscii answers the entry.
   */
  readonly #kernelValueKind: number;
  /** Maps whose int-key gets the kernel answers (it reads their values). */
  #kernelIntGets: boolean;
  /**
   * For those maps, the kernel's hashmapGetInt once a get has taken the
   * general path with the kernel (#getFastPath), else null (and null once
   * destroyed): what their get calls.
   */
  #intGet: Kernel["hashmapGetInt"] | null = null;
  /** 1 for u32 keys, whose negative int32s take the general path (which refuses them), else 0. */
  readonly #u32KeyBit: number;
  /** Maps whose ASCII-key gets the kernel answers (it reads their values). */
  #kernelStringGets: boolean;

  /**
   * `get` for an int key, small enough to inline. A live slot that is not
   * frozen holds the current entry, and an empty one that is not frozen
   * means absent, even while a resize is under way (a key enters the next
   * table only where its old slot is frozen, or the old table is full), so
   * the next-table word need not be read. Anything unusual (a frozen or
   * moved slot, a full probe) returns FALL_BACK for the general path.
   */
  #getInt32Key(key: number): V | undefined | typeof FALL_BACK {
    const heap = this.#heap;
    const hash = mix32(key);
    heap.pinForOperation();
    try {
      const slots = this.#rootSlots();
      const capacity = this.#mappedCapacity;
      let i32 = heap.i32;
      const mask = capacity - 1;
      const keyWord = this.#keyAt >> 2;
      for (let n = 0, i = homeSlot(hash, mask); n < capacity; n++, i = (i + 1) & mask) {
        const value = Atomics.load(i32, slots + i);
        if (value === 0) return undefined;
        if ((value & FROZEN) !== 0) return FALL_BACK;
        const entry = value & ~TAGS;
        heap.ensure(entry + 8);
        i32 = heap.i32;
        if (i32[(entry >> 2) + keyWord] === key) {
          return (value & DELETED) !== 0 ? undefined : this.#readValue(entry);
        }
      }
      return FALL_BACK;
    } finally {
      heap.unpin();
    }
  }

  /** #mapSlots for the root table. Caller is pinned. */
  #rootSlots(): number {
    return this.#mapSlots(Atomics.load(this.#heap.i32, this.#header + H_TABLE));
  }

  /**
   * Int32 index of `table`'s slot array, with the table's descriptor and
   * slots mapped in this worker's views (another worker may have allocated
   * them past those); the capacity goes to #mappedCapacity. Caller is
   * pinned. Descriptor words 0 and 1 never change, so plain reads.
   */
  #mapSlots(table: number): number {
    const heap = this.#heap;
    heap.ensure(table + TABLE_BYTES);
    const capacity = heap.i32[(table >> 2) + T_CAPACITY];
    const slots = heap.i32[(table >> 2) + T_SLOTS] >> 2;
    heap.ensure((slots + capacity) * 4);
    this.#mappedCapacity = capacity;
    return slots;
  }

  /** Capacity of the table that the last #mapSlots call mapped. */
  #mappedCapacity = 0;

  /** String keys. */
  #stringKeys: boolean;
  // The longest key that the string kernel's gets take: the keys' maximum,
  // or the kernel's own limit.
  readonly #stringKernelMaxLength: number;

  /**
   * `get` for a string key of ASCII characters: one pass encodes and hashes
   * it (encodeAsciiKey), and entries are compared a word at a time, in the
   * kernel or in JavaScript. Keys with other characters, and anything
   * unusual in the table (as in #getInt32Key), return FALL_BACK for the
   * general path. Small, so that it inlines into the caller's loop.
   */
  #getAsciiKey(key: string): V | undefined | typeof FALL_BACK {
    const length = this.#encodeAscii(key);
    if (length < 0) return FALL_BACK;
    const kernel = length !== 0 && length <= KERNEL_KEY_BYTES ? kernelForRead(this.#heap) : null;
    return kernel !== null
      ? this.#getAsciiKeyInKernel(kernel, length)
      : this.#getAsciiKeyInJavaScript(length);
  }

  /**
   * #getAsciiKey's lookup in JavaScript, for the key that encodeAsciiKey has
   * just left in #keyWords.
   */
  #getAsciiKeyInJavaScript(length: number): V | undefined | typeof FALL_BACK {
    const words = this.#keyWords;
    const hash = words[0];
    const fullWords = length >> 2;
    const tailMask = (length & 3) === 0 ? 0 : (1 << ((length & 3) << 3)) - 1;
    const keyWord = this.#keyAt >> 2;
    const heap = this.#heap;
    heap.pinForOperation();
    try {
      const slots = this.#rootSlots();
      const capacity = this.#mappedCapacity;
      let i32 = heap.i32;
      const mask = capacity - 1;
      probe: for (let n = 0, i = homeSlot(hash, mask); n < capacity; n++, i = (i + 1) & mask) {
        const value = Atomics.load(i32, slots + i);
        if (value === 0) return undefined;
        if ((value & FROZEN) !== 0) return FALL_BACK;
        const entry = value & ~TAGS;
        // Hash and length first; the key's words only when both match.
        heap.ensure(entry + 8);
        i32 = heap.i32;
        const base = entry >> 2;
        if (i32[base] !== hash || i32[base + 1] !== length) continue;
        heap.ensure(entry + this.#keyAt + ((length + 3) & ~3));
        i32 = heap.i32;
        const at = base + keyWord;
        for (let w = 0; w < fullWords; w++) {
          if (i32[at + w] !== words[2 + w]) continue probe;
        }
        if (tailMask !== 0 && (i32[at + fullWords] & tailMask) !== words[2 + fullWords]) {
          continue;
        }
        return (value & DELETED) !== 0 ? undefined : this.#readValue(entry);
      }
      return FALL_BACK;
    } finally {
      heap.unpin();
    }
  }

  /**
   * #getAsciiKey's lookup in the kernel, for the key that encodeAsciiKey has
   * just left in #keyWords (1 to KERNEL_KEY_BYTES bytes). Fixed-size values
   * come back read; for others the kernel answers the entry, still pinned,
   * and the value is decoded here before the pin ends.
   */
  #getAsciiKeyInKernel(kernel: Kernel, length: number): V | undefined | typeof FALL_BACK {
    const heap = this.#heap;
    const valueKind = this.#kernelValueKind;
    const found = this.#lookUpAsciiKey(kernel, length, valueKind);
    if (valueKind !== 0) return this.#kernelValue(found);
    if (found === KERNEL_SLOW) return FALL_BACK;
    if (found === KERNEL_ABSENT) return undefined;
    try {
      heap.ensure(found + this.#entryMinBytes);
      return this.#readValue(found);
    } finally {
      kernelUnpin(heap);
    }
  }

  /**
   * kernel.hashmapGetAscii for the key in #keyWords: the value (valueKind
   * 1 to 3) or the entry, still pinned (0); KERNEL_ABSENT; or KERNEL_SLOW,
   * also when the call trapped (its pin is then undone).
   */
  #lookUpAsciiKey(kernel: Kernel, length: number, valueKind: number): number {
    const words = this.#keyWords;
    try {
      return kernel.hashmapGetAscii(
        this.#headerAt,
        words[0],
        length,
        this.#keyAt,
        words[2],
        words[3],
        words[4],
        words[5],
        words[6],
        words[7],
        words[8],
        words[9],
        valueKind,
      );
    } catch (e) {
      kernelTrapped(this.#heap, e);
      return KERNEL_SLOW;
    }
  }

  /**
   * `has` for an ASCII string key of a map with variable-size values: the
   * kernel finds the entry, and nothing is decoded. FALL_BACK where the
   * kernel cannot answer (no kernel, a key it does not take, a frozen slot).
   */
  #hasAsciiKey(key: string): boolean | typeof FALL_BACK {
    const length = this.#encodeAscii(key);
    if (length <= 0 || length > KERNEL_KEY_BYTES) return FALL_BACK;
    const heap = this.#heap;
    const kernel = kernelForRead(heap);
    if (kernel === null) return FALL_BACK;
    const found = this.#lookUpAsciiKey(kernel, length, 0);
    if (found === KERNEL_SLOW) return FALL_BACK;
    if (found === KERNEL_ABSENT) return false;
    kernelUnpin(heap);
    return true;
  }

  /**
   * Whether `key` is present. Never blocks. Throws for a key that the key
   * codec refuses, as `get` does.
   *
   * @example
   * ```ts
   * import { HashMap, SharedHeap } from "@sabre/sabre";
   * const map = HashMap.create(SharedHeap.create(), { key: "string", value: "i32" });
   * map.set("a", 1);
   * console.assert(map.has("a") && !map.has("b"));
   * ```
   */
  has(key: K): boolean {
    // With fixed-size values, get answers as cheaply as a presence test
    // would: no codec stores undefined, so a value means present. Variable-
    // size values would be decoded for nothing: those maps look ASCII keys
    // up in the kernel without decoding, and take the general path otherwise.
    if (this.#values.fixedBytes !== 0) return this.get(key) !== undefined;
    if (this.#stringKeys && typeof key === "string") {
      const found = this.#hasAsciiKey(key);
      if (found !== FALL_BACK) return found;
    }
    const hash = this.#prepareKey(key, "key");
    const heap = this.#heap;
    heap.pinForOperation();
    try {
      return this.#find(key, hash) !== 0;
    } finally {
      heap.unpin();
    }
  }

  /**
   * Entry pointer of the live `key`, 0 when absent. Caller is pinned and has
   * prepared the key. Follows the table chain as described in the module doc.
   */
  #find(key: K, hash: number): number {
    const entry = this.#findFrom(this.#root(), key, hash, 0);
    return entry === NOT_FOUND ? 0 : entry;
  }

  /**
   * Entry pointer of the live key that `entry` holds (an entry of that key
   * in any table of the chain), 0 when absent. Caller is pinned.
   */
  #findEntry(entry: number): number {
    const live = this.#findFrom(this.#root(), undefined as K, 0, entry);
    return live === NOT_FOUND ? 0 : live;
  }

  /**
   * Entry of the live `key`, searching from `table` down the chain of
   * tables: 0 when the key is deleted, NOT_FOUND when no table from there
   * has a slot for it. Caller is pinned and has prepared the key; or, with
   * `entry` nonzero, looks for the key that `entry` holds instead (key and
   * hash unused).
   */
  #findFrom(table: number, key: K, hash: number, entry: number): number {
    const slot = entry === 0 ? this.#probe(table, key, hash) : this.#probeEntry(table, entry);
    if (slot < 0) {
      if (slot !== PROBE_EMPTY) {
        const next = this.#next(table);
        if (next !== 0) return this.#findFrom(next, key, hash, entry);
      }
      return NOT_FOUND;
    }
    const value = this.#probed;
    if ((value & FROZEN) !== 0) {
      const next = this.#next(table);
      if (next !== 0) {
        const newer = this.#findFrom(next, key, hash, entry);
        if (newer !== NOT_FOUND) return newer;
      }
    }
    return (value & DELETED) !== 0 ? 0 : value & ~TAGS;
  }

  /**
   * Int32 index of the slot holding `key` in `table`, or PROBE_EMPTY (key
   * absent from this table, stopped at an empty slot), PROBE_MOVED (stopped
   * at a MOVED slot: look in the next table) or PROBE_FULL.
   */
  #probe(table: number, key: K, hash: number): number {
    const heap = this.#heap;
    const slots = this.#mapSlots(table);
    const capacity = this.#mappedCapacity;
    const mask = capacity - 1;
    let i = homeSlot(hash, mask);
    for (let n = 0; n < capacity; n++, i = (i + 1) & mask) {
      const value = Atomics.load(heap.i32, slots + i);
      if (value === 0) return PROBE_EMPTY;
      if (value === MOVED) return PROBE_MOVED;
      if (this.#matches(value & ~TAGS, key, hash)) {
        this.#probed = value;
        return slots + i;
      }
    }
    return PROBE_FULL;
  }

  /** The slot word that the last successful #probe or #probeEntry matched. */
  #probed = 0;

  // ------------------------------------------------------------------ writes

  /**
   * Sets `key` to `value` and returns the map (like `Map.set`). Both are
   * checked before anything is written. Throws
   * {@linkcode HeapExhaustedError}, leaving the map unchanged, when the heap
   * is full. Use `swap` to get the previous value.
   *
   * @example
   * ```ts
   * import { HashMap, SharedHeap } from "@sabre/sabre";
   * const map = HashMap.create(SharedHeap.create(), { key: "string", value: "string" });
   * map.set("k", "v").set("k2", "v2");
   * console.assert(map.get("k") === "v");
   * ```
   */
  set(key: K, value: V): this {
    if (
      !this.#setInKernel ||
      this.#writeInKernel(key, value, KERNEL_WRITE_ALWAYS, 0) === IN_GENERAL_PATH
    ) {
      this.#write(key, value, WRITE_ALWAYS, undefined, false);
    }
    return this;
  }

  /**
   * A write in the kernel, for an int key or an ASCII string key of 1 to
   * KERNEL_KEY_BYTES bytes, under a KERNEL_WRITE_* mode (with its
   * `expected` value for KERNEL_WRITE_IF_EQUAL, a number and not NaN;
   * KERNEL_WRITE_IF_EQUAL and KERNEL_WRITE_IF_PRESENT need
   * #kernelValueKind): WRITTEN, NOT_WRITTEN (the mode forbade it), or
   * IN_GENERAL_PATH with nothing written, where the general path must do it
   * (another key, a resize under way, a trap). With `wantPrevious`, a
   * replaced value waits in #previous for #takePrevious. The entry is built
   * before the kernel pins: a fresh block that no other worker can see until
   * the kernel's CAS publishes it (pattern b).
   */
  #writeInKernel(
    key: K,
    value: V,
    mode: number,
    expected: number,
    wantPrevious = false,
  ): number {
    // The conditional modes come right after a read of the same key.
    const length = this.#kernelKeyLength(key, mode !== KERNEL_WRITE_ALWAYS);
    if (length < 0) return IN_GENERAL_PATH;
    const heap = this.#heap;
    // Checked per call: a worker that attached from a handle without the
    // memory gains the kernel later.
    const kernel = heapKernel(heap);
    if (kernel === null) return IN_GENERAL_PATH;
    const checked = this.#values.check(value, "value");
    // The allocation joins this worker to the heap (or throws on a closed
    // one), so the kernel can pin.
    const entry = this.#newEntry(key, this.#keyWords[0], checked);
    const seen = this.#setInKernelCall(kernel, key, length, entry, mode, expected);
    if (seen === 0 || seen === KERNEL_NOT_WRITTEN) {
      heap.free(entry); // never published
      return seen === 0 ? IN_GENERAL_PATH : NOT_WRITTEN;
    }
    // The kernel has counted the key in the size already.
    if (seen === 1 || seen < 0) {
      if (seen < 0) this.#resizeAfterKernelClaim(-seen);
      return WRITTEN;
    }
    // Unpinned, and yet safe: the kernel never answers a COPIED entry, so
    // the replaced one is this worker's alone until it retires it here.
    const old = seen & ~TAGS;
    if (wantPrevious && (seen & DELETED) === 0) {
      heap.ensure(old + this.#entryMinBytes);
      this.#previous = this.#readValue(old);
    }
    heap.retire(old);
    return WRITTEN;
  }

  /**
   * A delete in the kernel, for the keys #writeInKernel takes, under
   * KERNEL_WRITE_IF_PRESENT or KERNEL_WRITE_IF_EQUAL (with `expected` as
   * there): WRITTEN (the key was deleted), NOT_WRITTEN (absent, or another
   * value), or IN_GENERAL_PATH with nothing written. No entry is built: the
   * deleted key's entry stays in its slot, tagged DELETED.
   */
  #deleteInKernel(key: K, mode: number, expected: number): number {
    const length = this.#kernelKeyLength(key, false);
    if (length < 0) return IN_GENERAL_PATH;
    const heap = this.#heap;
    const kernel = heapKernel(heap);
    if (kernel === null) return IN_GENERAL_PATH;
    // Values of variable size: pinned, so that the deleted entry can be read
    // (and its value shed) after the call.
    const shed = this.#shedsValues;
    if (shed) heap.pinForOperation();
    try {
      const seen = this.#setInKernelCall(kernel, key, length, 0, mode, expected);
      if (seen === 0) return IN_GENERAL_PATH;
      if (seen === KERNEL_NOT_WRITTEN) return NOT_WRITTEN;
      if (shed) this.#shedValue(seen & ~TAGS);
    } finally {
      if (shed) heap.unpin();
    }
    this.#deletesCounted(0); // the kernel has taken the key off the size
    return WRITTEN;
  }

  /**
   * add() in the kernel, for i32, u32 and f64 values: one call reads the
   * key's value, stores the sum in a new entry and publishes it, retrying
   * inside the kernel when another write came first. Returns the new value,
   * or FALL_BACK with nothing written (a key or a state the kernel does not
   * take, or a sum out of the codec's range, which the general path then
   * refuses).
   */
  #addInKernel(key: K, delta: number): number | typeof FALL_BACK {
    const length = this.#kernelKeyLength(key, false);
    if (length < 0) return FALL_BACK;
    const heap = this.#heap;
    const kernel = heapKernel(heap);
    if (kernel === null) return FALL_BACK;
    // Filled with the sum for an absent key; the kernel rewrites the value
    // before each CAS, and bails out on a sum out of range (a negative delta
    // to an absent u32 value), which the JavaScript loop then refuses.
    const first = 0 + delta;
    const entry = this.#newEntry(key, this.#keyWords[0], first as V);
    const seen = this.#setInKernelCall(kernel, key, length, entry, KERNEL_ADD, delta);
    if (seen === 0) {
      heap.free(entry); // never published
      return FALL_BACK;
    }
    // The kernel has counted a new key in the size already.
    if (seen === 1 || seen < 0) {
      if (seen < 0) this.#resizeAfterKernelClaim(-seen);
      return first;
    }
    // The replaced entry is this worker's alone, as in #writeInKernel: the
    // kernel summed its value (or 0 where it was DELETED), and the same sum
    // in JavaScript is the answer.
    const old = seen & ~TAGS;
    let sum = first;
    if ((seen & DELETED) === 0) {
      heap.ensure(old + this.#entryMinBytes);
      sum = (this.#readValue(old) as number) + delta;
    }
    heap.retire(old);
    return sum;
  }

  /**
   * take() in the kernel: #deleteInKernel's unconditional delete, which
   * also leaves the deleted value in #previous. The deleted entry stays in
   * its slot, where a set of the key may replace and retire it at once, so
   * the call runs under an outer pin that keeps the entry from being freed
   * until its value is read.
   */
  #takeInKernel(key: K): number {
    const length = this.#kernelKeyLength(key, false);
    if (length < 0) return IN_GENERAL_PATH;
    const heap = this.#heap;
    const kernel = heapKernel(heap);
    if (kernel === null) return IN_GENERAL_PATH;
    heap.pinForOperation();
    try {
      // The kernel leaves this worker's pin as it finds it.
      const seen = this.#setInKernelCall(kernel, key, length, 0, KERNEL_WRITE_IF_PRESENT, 0);
      if (seen === 0) return IN_GENERAL_PATH;
      if (seen === KERNEL_NOT_WRITTEN) return NOT_WRITTEN;
      const old = seen & ~TAGS;
      heap.ensure(old + this.#entryMinBytes);
      this.#previous = this.#readValue(old);
      if (this.#shedsValues) this.#shedValue(old);
    } finally {
      heap.unpin();
    }
    this.#deletesCounted(0); // the kernel has taken the key off the size
    return WRITTEN;
  }

  /**
   * For the kernel's writes: 0 for an int key, the byte length (1 to
   * KERNEL_KEY_BYTES) of an ASCII string key, which encodeAsciiKey leaves in
   * #keyWords, or -1 where the general path must take the key (another kind
   * of key, a longer or non-ASCII string, a bad key). `afterRead`: the
   * caller has just read this key, so #keyWords may hold it encoded already
   * (#asciiKey), which spares a second encodeAsciiKey.
   */
  #kernelKeyLength(key: K, afterRead: boolean): number {
    if (typeof key === "number") {
      return this.#stringKeys || !this.#isInt32Key(key) ? -1 : 0;
    }
    if (typeof key !== "string" || !this.#stringKeys) return -1;
    const length = afterRead && key === this.#asciiKey ? this.#asciiLength : this.#encodeAscii(key);
    if (length <= 0 || length > KERNEL_KEY_BYTES) return -1;
    this.#scratchLength = length;
    return length;
  }

  /** encodeAsciiKey into #keyWords, remembered in #asciiKey. */
  #encodeAscii(key: string): number {
    const length = encodeAsciiKey(key, this.#keyWords, this.#keys.maxBytes);
    this.#asciiKey = key;
    this.#asciiLength = length;
    return length;
  }

  /**
   * kernel.hashmapSetInt (`length` 0) or kernel.hashmapSetAscii for the key
   * #kernelKeyLength prepared, with `entry` (0 for a delete): the kernel's
   * answer, or 0 when the call trapped (its pin is then undone).
   */
  #setInKernelCall(
    kernel: Kernel,
    key: K,
    length: number,
    entry: number,
    mode: number,
    expected: number,
  ): number {
    const words = this.#keyWords;
    const header = this.#headerAt;
    const stripeAt = this.#stripeAt();
    try {
      return length === 0
        ? kernel.hashmapSetInt(
          header,
          key as number,
          this.#keyAt,
          entry,
          mode,
          this.#fixedValueAt,
          this.#kernelValueKind,
          expected,
          stripeAt,
        )
        : kernel.hashmapSetAscii(
          header,
          words[0],
          length,
          this.#keyAt,
          words[2],
          words[3],
          words[4],
          words[5],
          words[6],
          words[7],
          words[8],
          words[9],
          entry,
          mode,
          this.#kernelValueKind,
          expected,
          stripeAt,
        );
    } catch (e) {
      kernelTrapped(this.#heap, e);
      return 0;
    }
  }

  /**
   * A conditional write (KERNEL_WRITE_IF_EQUAL with `expected`, or
   * KERNEL_WRITE_IF_ABSENT where `expected` is undefined) in the kernel
   * where it can take it (numeric values, not a NaN `expected`), else
   * through #write. Returns whether it wrote.
   */
  #writeIf(key: K, value: V, expected: V | undefined): boolean {
    if (this.#setInKernel && this.#kernelValueKind !== 0 && expected === expected) {
      const done = expected === undefined
        ? this.#writeInKernel(key, value, KERNEL_WRITE_IF_ABSENT, 0)
        : this.#writeInKernel(key, value, KERNEL_WRITE_IF_EQUAL, expected as number);
      if (done !== IN_GENERAL_PATH) return done === WRITTEN;
    }
    return this.#write(key, value, WRITE_IF_EQUAL, expected, false);
  }

  /** Whether `set` can run in the kernel, where there is one: int or string keys. */
  #setInKernel: boolean;

  /**
   * Whether deletes may shed values (#shedValue): values of variable size
   * that may take over SHED_VALUE_BYTES (`maxValueBytes`).
   */
  readonly #shedsValues: boolean;

  /**
   * Sets `key` to `value` and returns the previous value, or `undefined`.
   *
   * @example
   * ```ts
   * import { HashMap, SharedHeap } from "@sabre/sabre";
   * const map = HashMap.create(SharedHeap.create(), { key: "i32", value: "i32" });
   * console.assert(map.swap(1, 5) === undefined && map.swap(1, 6) === 5);
   * ```
   */
  swap(key: K, value: V): V | undefined {
    if (
      !this.#setInKernel ||
      this.#writeInKernel(key, value, KERNEL_WRITE_ALWAYS, 0, true) === IN_GENERAL_PATH
    ) {
      this.#write(key, value, WRITE_ALWAYS, undefined, true);
    }
    return this.#takePrevious();
  }

  /**
   * Returns the value of `key`, inserting `value` first if the key is absent.
   *
   * @example
   * ```ts
   * import { HashMap, SharedHeap } from "@sabre/sabre";
   * const map = HashMap.create(SharedHeap.create(), { key: "i32", value: "i32" });
   * console.assert(map.getOrInsert(1, 10) === 10 && map.getOrInsert(1, 20) === 10);
   * ```
   */
  getOrInsert(key: K, value: V): V {
    // A key that the fast path finds present is answered by that read, as
    // `get` would: nothing is allocated for it. Other keys go to the write,
    // which answers a present key's value too. The value is checked all the
    // same.
    this.#values.check(value, "value");
    const found = this.#getFastPath(key);
    if (found !== FALL_BACK && found !== undefined) return found;
    return this.#insertIfAbsent(key, value, found === undefined);
  }

  /**
   * The insert of getOrInsert and getOrInsertComputed, after a read that
   * found `key` absent (`readAbsent`) or could not tell: in the kernel where
   * it can, only if still absent (a mode that reads no value). A key
   * inserted meanwhile goes to the general path, which answers its value.
   */
  #insertIfAbsent(key: K, value: V, readAbsent: boolean): V {
    try {
      if (
        readAbsent && this.#setInKernel &&
        this.#writeInKernel(key, value, KERNEL_WRITE_IF_ABSENT, 0) === WRITTEN
      ) {
        return value;
      }
      if (this.#write(key, value, WRITE_IF_ABSENT, undefined, true)) return value;
    } catch (e) {
      // The write builds its entry before it looks: with the heap full, a
      // key that is present (or arrived meanwhile) is still answered.
      if (!(e instanceof HeapExhaustedError)) throw e;
      const found = this.#getSlowly(key);
      if (found === undefined) throw e;
      return found;
    }
    return this.#takePrevious() as V;
  }

  /**
   * Returns the value of `key`, inserting `compute(key)` first if the key is
   * absent (the `Map.prototype.getOrInsertComputed` of the TC39 upsert
   * proposal). `compute` runs only when the key was found absent. If another
   * worker inserts the key between that read and this insert, its value
   * wins and is returned, and the computed one is dropped, so `compute` must
   * have no effect that needs its value kept. What it returns is checked
   * like any value; if it throws, nothing is written.
   *
   * @example
   * ```ts
   * import { HashMap, SharedHeap } from "@sabre/sabre";
   * const map = HashMap.create(SharedHeap.create(), { key: "string", value: "u32" });
   * console.assert(map.getOrInsertComputed("abc", (k) => k.length) === 3);
   * console.assert(map.getOrInsertComputed("abc", () => 99) === 3);
   * ```
   */
  getOrInsertComputed(key: K, compute: (key: K) => V): V {
    if (typeof compute !== "function") {
      throw new TypeError(
        `Cannot compute a HashMap value as 'compute' must be a function: current value is ${
          describeValue(compute)
        }`,
      );
    }
    const found = this.get(key);
    return found !== undefined ? found : this.#insertIfAbsent(key, compute(key), true);
  }

  /**
   * Sets `key` to `next` only if its value now equals `expected`
   * (`undefined` meaning absent); returns whether it did.
   *
   * @example
   * ```ts
   * import { HashMap, SharedHeap } from "@sabre/sabre";
   * const map = HashMap.create(SharedHeap.create(), { key: "i32", value: "i32" });
   * console.assert(map.compareAndSet(1, undefined, 5) && !map.compareAndSet(1, 4, 6));
   * console.assert(map.compareAndSet(1, 5, 6) && map.get(1) === 6);
   * ```
   */
  compareAndSet(key: K, expected: V | undefined, next: V): boolean {
    if (expected !== undefined) this.#values.check(expected, "expected");
    if (this.#values.fixedBytes !== 0) {
      // A read that finds another value is a failed compare on its own: no
      // entry is allocated for it. (Variable-size values would be decoded
      // once more on success, and keys that the fast path does not take
      // would be looked up twice, so those go straight to the write.)
      this.#values.check(next, "value");
      const found = this.#getFastPath(key);
      if (found !== FALL_BACK && !this.#sameValue(found, expected)) return false;
    }
    try {
      return this.#writeIf(key, next, expected);
    } catch (e) {
      // The write builds its entry before it compares: with the heap full, a
      // compare that fails is still answered.
      if (!(e instanceof HeapExhaustedError)) throw e;
      if (!this.#sameValue(this.#getSlowly(key), expected)) return false;
      throw e;
    }
  }

  /** Whether two values (undefined: absent) are equal under the value codec. */
  #sameValue(a: V | undefined, b: V | undefined): boolean {
    return a === undefined || b === undefined ? a === b : this.#values.equals(a, b);
  }

  /**
   * Atomically replaces the value of `key` with `fn(current)` (current is
   * `undefined` when absent) and returns the new value. `fn` may run more
   * than once under contention, so it must be pure.
   *
   * @example
   * ```ts
   * import { HashMap, SharedHeap } from "@sabre/sabre";
   * const map = HashMap.create(SharedHeap.create(), { key: "string", value: "string" });
   * map.update("log", (s) => (s ?? "") + "a");
   * console.assert(map.update("log", (s) => (s ?? "") + "b") === "ab");
   * ```
   */
  update(key: K, fn: (current: V | undefined) => V): V {
    if (typeof fn !== "function") {
      throw new TypeError(
        `Cannot update a HashMap value as 'fn' must be a function: current value is ${
          describeValue(fn)
        }`,
      );
    }
    for (;;) {
      const current = this.get(key);
      const next = fn(current);
      if (this.#writeIf(key, next, current)) return next;
    }
  }

  /**
   * Adds `delta` to a numeric value (absent counts as 0) and returns the new
   * value. For i32, u32 and bigint64 values, `delta` may be any integer of
   * magnitude below 2^32 (2^64 for bigint64), negative ones included, but
   * the sum must stay in the codec's range: else `RangeError`, naming the
   * key, the delta, the sum and the value, and nothing changes.
   *
   * @example
   * ```ts
   * import { HashMap, SharedHeap } from "@sabre/sabre";
   * const map = HashMap.create(SharedHeap.create(), { key: "string", value: "f64" });
   * map.add("x", 1.5);
   * console.assert(map.add("x", 1) === 2.5);
   * ```
   */
  add(key: K, delta: V & (number | bigint)): V {
    const kind = this.#valueKind;
    if (kind === CODEC_IDS.string || kind === CODEC_IDS.bytes) {
      throw new TypeError(
        `Cannot add to HashMap values as they are ${codecNameOf(kind)}, not numbers`,
      );
    }
    this.#checkDelta(delta);
    if (this.#setInKernel && this.#kernelValueKind !== 0) {
      const sum = this.#addInKernel(key, delta as number);
      if (sum !== FALL_BACK) return sum as V;
    }
    const zero = (kind === CODEC_IDS.bigint64 ? 0n : 0) as number;
    for (;;) {
      const current = this.get(key);
      const next = ((current ?? zero) as number) + (delta as number) as V;
      this.#checkSum(key, delta, current, next);
      if (this.#writeIf(key, next, current)) return next;
    }
  }

  /** add's check of `delta` (the value kinds are numeric). */
  #checkDelta(delta: V): void {
    const kind = this.#valueKind;
    if (kind === CODEC_IDS.f64) {
      this.#values.check(delta, "delta");
      return;
    }
    const big = kind === CODEC_IDS.bigint64;
    if (big ? typeof delta !== "bigint" : typeof delta !== "number") {
      throw new TypeError(
        `Cannot add to HashMap value as 'delta' must be ${big ? "a bigint" : "a number"}: ` +
          `current value is ${describeValue(delta)}`,
      );
    }
    const inRange = big
      ? (delta as bigint) > -BIGINT_DELTA_LIMIT && (delta as bigint) < BIGINT_DELTA_LIMIT
      : Number.isInteger(delta) && Math.abs(delta as number) <= 0xffffffff;
    if (!inRange) {
      throw new RangeError(
        `Cannot add to HashMap value as 'delta' must be an integer of magnitude below ${
          big ? "2^64" : "2^32"
        }: current value is ${describeValue(delta)}`,
      );
    }
  }

  /** add's check that `sum` fits the value codec (f64 sums always do). */
  #checkSum(key: K, delta: V, current: V | undefined, sum: V): void {
    const kind = this.#valueKind;
    // The codecs' own range tests.
    if (
      kind === CODEC_IDS.f64 ||
      (kind === CODEC_IDS.i32 && ((sum as number) | 0) === sum) ||
      (kind === CODEC_IDS.u32 && (sum as number) >>> 0 === sum) ||
      (kind === CODEC_IDS.bigint64 && BigInt.asIntN(64, sum as bigint) === sum)
    ) {
      return;
    }
    const low = kind === CODEC_IDS.i32 ? -0x80000000 : kind === CODEC_IDS.u32 ? 0 : -(2n ** 63n);
    const high = kind === CODEC_IDS.i32
      ? 0x7fffffff
      : kind === CODEC_IDS.u32
      ? 0xffffffff
      : 2n ** 63n - 1n;
    throw new RangeError(
      `Cannot add delta ${describeValue(delta)} to the value of key ${describeValue(key)} as ` +
        `the sum ${describeValue(sum)} is outside the ${codecNameOf(kind)} range ` +
        `${describeValue(low)} to ${describeValue(high)}: the key's current value is ${
          current === undefined ? "absent (counted as 0)" : describeValue(current)
        }`,
    );
  }

  /**
   * Removes `key`; returns whether it was present. Throws for a key that
   * the key codec refuses, as `get` does. Allocates nothing: with
   * the heap full it still succeeds, unless a resize has frozen the key's
   * slot and the table it must be copied into is full too (then
   * {@linkcode HeapExhaustedError}, leaving the map unchanged).
   *
   * @example
   * ```ts
   * import { HashMap, SharedHeap } from "@sabre/sabre";
   * const map = HashMap.create(SharedHeap.create(), { key: "i32", value: "i32" });
   * map.set(1, 1);
   * console.assert(map.delete(1) && !map.delete(1));
   * ```
   */
  delete(key: K): boolean {
    if (this.#setInKernel) {
      const done = this.#deleteInKernel(key, KERNEL_WRITE_IF_PRESENT, 0);
      if (done !== IN_GENERAL_PATH) return done === WRITTEN;
    }
    return this.#remove(key, false, undefined) !== NOT_FOUND;
  }

  /**
   * Removes `key` and returns the value it had, or `undefined` if it was
   * absent: one atomic step, so of two workers that take the same key, only
   * one gets its value.
   *
   * @example
   * ```ts
   * import { HashMap, SharedHeap } from "@sabre/sabre";
   * const map = HashMap.create(SharedHeap.create(), { key: "i32", value: "string" });
   * map.set(1, "job");
   * console.assert(map.take(1) === "job" && map.take(1) === undefined && !map.has(1));
   * ```
   */
  take(key: K): V | undefined {
    if (!this.#setInKernel || this.#takeInKernel(key) === IN_GENERAL_PATH) {
      this.#remove(key, false, undefined, true);
    }
    return this.#takePrevious();
  }

  /**
   * Removes `key` only if its value equals `value`; returns whether it did.
   *
   * @example
   * ```ts
   * import { HashMap, SharedHeap } from "@sabre/sabre";
   * const map = HashMap.create(SharedHeap.create(), { key: "i32", value: "i32" });
   * map.set(1, 1);
   * console.assert(!map.deleteIf(1, 2) && map.deleteIf(1, 1));
   * ```
   */
  deleteIf(key: K, value: V): boolean {
    this.#values.check(value, "value");
    // As in #writeIf: numeric values the kernel compares, and not a NaN.
    if (this.#setInKernel && this.#kernelValueKind !== 0 && value === value) {
      const done = this.#deleteInKernel(key, KERNEL_WRITE_IF_EQUAL, value as number);
      if (done !== IN_GENERAL_PATH) return done === WRITTEN;
    }
    return this.#remove(key, true, value) !== NOT_FOUND;
  }

  /**
   * Removes every key present when each is reached. Keys written
   * concurrently may survive; each removal is atomic on its own. A map
   * that filled its heap takes new keys again after `clear()`: the
   * deleted entries are freed by a shrink into a spare table that the map
   * keeps for this.
   *
   * @example
   * ```ts
   * import { HashMap, SharedHeap } from "@sabre/sabre";
   * const map = HashMap.create(SharedHeap.create(), { key: "i32", value: "i32" });
   * map.set(1, 1).set(2, 2);
   * map.clear();
   * console.assert(map.size === 0);
   * ```
   */
  clear(): void {
    for (const key of [...this.keys()]) this.delete(key);
  }

  /**
   * Finishes the resize under way, if any: copies the chunks of the old
   * table that no worker holds, moves the root to the new table, and retires
   * the old one. Writers do this work a few chunks at a time, and reads never
   * do it, so a map whose writes stop in the middle of a resize (a bulk load
   * that ends just past a growth) keeps both tables, and its reads of moved
   * keys look in both (through the slower general path where the heap has
   * no kernel), until more writes come. Call this after such a load. It
   * never waits: chunks that other live workers hold stay theirs (those of a
   * dead worker's are taken over once it is evicted). Throws
   * {@linkcode HeapExhaustedError} when the copy needs a further growth that
   * the heap cannot hold; what was done stays done.
   *
   * @returns true when no resize is under way any more; false when what is
   * left is in other workers' hands (they finish it with their next writes,
   * or call this again later).
   *
   * @example
   * ```ts
   * import { HashMap, SharedHeap } from "@sabre/sabre";
   * const heap = SharedHeap.create();
   * const map = HashMap.create(heap, { key: "i32", value: "i32", capacity: 4096 });
   * // 3,073 keys: the last one passes 3/4 of the 4,096 slots, and a growth starts.
   * for (let i = 0; i <= 3072; i++) map.set(i, i);
   * console.assert(map.finishResize() && map.capacity === 8192);
   * ```
   */
  finishResize(): boolean {
    if (this.#destroyed) this.#throwDestroyed();
    const heap = this.#heap;
    for (;;) {
      let progressed: boolean;
      heap.pinForOperation();
      try {
        const table = this.#root();
        heap.ensure(table + TABLE_BYTES);
        const next = this.#next(table);
        const retiring = Atomics.load(heap.i32, (table >> 2) + T_RETIRING);
        if (next === 0 && retiring === 0) return true;
        let chunks = 0;
        if (retiring !== 0) chunks += this.#helpRetire(table, retiring, FINISH_CHUNKS);
        if (next !== 0) chunks += this.#helpMigrate(table, next, FINISH_CHUNKS);
        // A promotion, or a retirement finished without a chunk of its own
        // (its last counter died before it finished), is progress too.
        progressed = chunks > 0 || this.#root() !== table ||
          Atomics.load(heap.i32, (table >> 2) + T_RETIRING) !== retiring;
      } finally {
        heap.unpin();
      }
      if (!progressed) return false;
    }
  }

  /**
   * Gives all of the map's memory back to its heap: its entries, its tables
   * (also those of a resize under way) and its header. No worker may use the
   * map, or attach its handle, once this starts; delete any named root that
   * names it first. Blocks go back through the heap's epochs (`retire`), so
   * an operation that another worker had begun just before is still safe.
   * Every later call on this object throws {@linkcode DestroyedError}, and
   * so does a second `destroy()` of the map from any worker.
   *
   * @example
   * ```ts
   * import { HashMap, SharedHeap } from "@sabre/sabre";
   * const heap = SharedHeap.create();
   * const before = heap.stats().liveBytes;
   * const map = HashMap.create(heap, { key: "string", value: "i32" });
   * for (let i = 0; i < 100; i++) map.set(`key ${i}`, i);
   * map.destroy();
   * for (let i = 0; i < 3; i++) heap.collect();
   * console.assert(heap.stats().liveBytes === before);
   * ```
   */
  destroy(): void {
    const heap = this.#heap;
    if (this.#destroyed) this.#throwDestroyed();
    // One CAS on the tag: of two workers that destroy the map, one wins, and
    // attach() refuses the handle from here on (until the header is reused).
    const won = Atomics.compareExchange(heap.i32, this.#header, TAG, 0) === TAG;
    // This object is done with either way: another destroyed the map first.
    this.#destroyed = true;
    this.#int32Keys = false;
    this.#kernelIntGets = false;
    this.#intGet = null;
    this.#kernelStringGets = false;
    this.#stringKeys = false;
    this.#setInKernel = false;
    if (!won) throw new DestroyedError("HashMap", "destroy");
    heap.pinForOperation();
    try {
      const root = this.#root();
      heap.ensure(root + TABLE_BYTES);
      const retiring = Atomics.load(heap.i32, (root >> 2) + T_RETIRING);
      const tables: number[] = [];
      for (let t = root; t !== 0; t = this.#next(t)) tables.push(t);
      // An entry can sit in several tables of a resize (COPIED pointers), so
      // each is retired once. In the table under retirement, a slot marked
      // COPIED is settled: its entry was handed over to a newer table (found
      // there) or retired already.
      const entries = new Set<number>();
      if (retiring !== 0) this.#collectEntries(retiring, COPIED, entries);
      for (const table of tables) this.#collectEntries(table, 0, entries);
      for (const entry of entries) heap.retire(entry);
      if (retiring !== 0) tables.push(retiring);
      const spare = Atomics.exchange(heap.i32, this.#header + H_SPARE, 0);
      if (spare !== 0) {
        heap.ensure(spare + TABLE_BYTES); // allocated by any worker
        tables.push(spare);
      }
      for (const table of tables) {
        heap.retire(heap.i32[(table >> 2) + T_SLOTS]);
        heap.retire(table);
      }
      heap.retire(this.#placement.offset);
    } finally {
      heap.unpin();
    }
  }

  /**
   * Set by destroy(): every later call on this object throws rather than
   * read or write blocks that the heap may have given to something else.
   */
  #destroyed = false;

  #throwDestroyed(): never {
    throw new DestroyedError("HashMap");
  }

  /** Adds the entry pointers of `table`'s slots to `into`, except slots with a bit of `skip`. */
  #collectEntries(table: number, skip: number, into: Set<number>): void {
    const heap = this.#heap;
    const slots = this.#mapSlots(table);
    const capacity = this.#mappedCapacity;
    for (let i = 0; i < capacity; i++) {
      const seen = Atomics.load(heap.i32, slots + i);
      const entry = seen & ~TAGS;
      if (entry !== 0 && (seen & skip) === 0) into.add(entry);
    }
  }

  // -------------------------------------------------------------- iteration

  /**
   * The entries, weakly consistent: every key present for the whole
   * iteration is seen exactly once; keys added or removed meanwhile may or
   * may not be. Each value is the key's value when the iteration reached
   * it.
   *
   * The iteration goes in hash order, a block of the hash space at a time:
   * it reads the entries of a block from the tables in one step, then
   * reports the keys still present one by one, looking each up again for
   * its value.
   * It holds an epoch pin from one step to the next only within a task: the
   * pin ends at the end of the task, or earlier in
   * `SharedHeap.releaseReadPins()` (and so in every blocking wait of
   * sabre), and the next step takes it again. So an iterator that is
   * dropped unfinished, or one that awaits between steps, does not hold
   * back the reclamation of the heap, and a resize between two steps costs
   * it nothing: the next block is read from the tables as they are then.
   * A step after a pause is a new operation on the map, so it must not come
   * after `destroy()`, from this handle or from any other.
   *
   * @example
   * ```ts
   * import { HashMap, SharedHeap } from "@sabre/sabre";
   * const map = HashMap.create(SharedHeap.create(), { key: "i32", value: "i32" });
   * map.set(1, 10);
   * console.assert([...map.entries()][0][1] === 10);
   * const anyKey = map.keys().next().value; // no pin outlives this task
   * console.assert(anyKey === 1);
   * ```
   */
  *entries(): MapIterator<[K, V]> {
    const scan = new Scan<K, V>();
    try {
      for (;;) {
        if (!scan.pinned) this.#pinScan(scan);
        if (!this.#scanStep(scan)) return;
        yield [scan.key as K, scan.value as V];
      }
    } finally {
      scan.finished = true;
      if (scan.pinned) {
        scan.pinned = false;
        this.#heap.unpin();
      }
    }
  }

  /**
   * Pins for the next step, until the end of the task (or an earlier
   * `releaseReadPins()`), when the heap runs the scan's end.
   */
  #pinScan(scan: Scan<K, V>): void {
    if (this.#destroyed) this.#throwDestroyed();
    this.#heap.pinForOperation();
    scan.pinned = true;
    endAtTaskEnd(scan.end ??= () => this.#pauseScan(scan));
  }

  /**
   * Ends the scan's pin between two steps. The entries of the block left
   * to report may be freed once it ends, so their keys are decoded first,
   * still pinned: the steps after the pause look those up.
   */
  #pauseScan(scan: Scan<K, V>): void {
    if (!scan.pinned || scan.finished) return;
    try {
      if (!scan.decoded) {
        const entries = scan.entries;
        const keys = scan.keys;
        keys.length = 0;
        for (let i = scan.at; i < entries.length; i++) keys.push(this.#readKey(entries[i]));
        entries.length = 0;
        scan.at = 0;
        scan.decoded = true;
      }
    } finally {
      scan.pinned = false;
      this.#heap.unpin();
    }
  }

  /**
   * Finds the next key of the block read last that is still present, or
   * reads the next block, and leaves the key and its current value in
   * `scan`; false at the end. Pinned.
   */
  #scanStep(scan: Scan<K, V>): boolean {
    for (;;) {
      if (scan.decoded) {
        const keys = scan.keys;
        while (scan.at < keys.length) {
          const key = keys[scan.at++];
          const live = this.#find(key, this.#prepareKey(key, "key"));
          if (live !== 0) {
            scan.key = key;
            scan.value = this.#readValue(live);
            return true;
          }
        }
      } else {
        // Read under this pin: no entry here has been freed.
        const entries = scan.entries;
        while (scan.at < entries.length) {
          const live = this.#findEntry(entries[scan.at++]);
          if (live !== 0) {
            scan.key = this.#readKey(live);
            scan.value = this.#readValue(live);
            return true;
          }
        }
      }
      if (scan.from === HASH_SPACE) {
        scan.key = scan.value = undefined;
        return false;
      }
      this.#readBlock(scan);
    }
  }

  /**
   * Reads into `scan.entries` the entries of every table of the chain whose hash
   * lies in the next block: from `scan.from` on, over BLOCK_HOMES homes of
   * the largest table. Pinned, so the tables stay allocated while it reads
   * them, and a key present throughout has a slot in one of them.
   *
   * A table's slots are in hash order (homeSlot), so the block's keys lie
   * from the home of its first hash on, up to the first empty slot past
   * the home of its last (linear probing puts a key after its home, with no
   * empty slot between, and a slot never empties). Keys seen there that
   * hash outside the block belong to the blocks beside it. A key is read
   * from the oldest table that has a slot for it, so a resize under way
   * gives it once. The blocks split the hash space, so a key present for
   * the whole iteration is read in exactly one block, whatever resizes
   * came between them.
   */
  #readBlock(scan: Scan<K, V>): void {
    const heap = this.#heap;
    const entries = scan.entries;
    const tables = scan.tables;
    entries.length = 0;
    scan.keys.length = 0;
    scan.decoded = false;
    scan.at = 0;
    tables.length = 0;
    let largest = 0;
    for (let t = this.#root(); t !== 0; t = this.#next(t)) {
      tables.push(t);
      this.#mapSlots(t);
      largest = Math.max(largest, this.#mappedCapacity);
    }
    const from = scan.from;
    const to = largest <= BLOCK_HOMES
      ? HASH_SPACE
      : Math.min(HASH_SPACE, from + (HASH_SPACE / largest) * BLOCK_HOMES);
    for (let k = 0; k < tables.length; k++) {
      const slots = this.#mapSlots(tables[k]);
      const capacity = this.#mappedCapacity;
      const mask = capacity - 1;
      const first = homeSlot(from, mask);
      const homes = ((homeSlot(to - 1, mask) - first) & mask) + 1;
      for (let n = 0, i = first; n < capacity; n++, i = (i + 1) & mask) {
        const entry = Atomics.load(heap.i32, slots + i) & ~TAGS; // MOVED: 0
        if (entry === 0) {
          if (n >= homes) break;
          continue;
        }
        const hash = this.#entryHash(entry) >>> 0;
        if (hash < from || hash >= to) continue;
        let older = false;
        for (let o = 0; o < k && !older; o++) {
          older = this.#probeEntry(tables[o], entry) >= 0;
        }
        if (!older) entries.push(entry);
      }
    }
    tables.length = 0;
    scan.from = to;
  }

  /**
   * The keys, weakly consistent like `entries()`.
   *
   * @example
   * ```ts
   * import { HashMap, SharedHeap } from "@sabre/sabre";
   * const map = HashMap.create(SharedHeap.create(), { key: "string", value: "i32" });
   * map.set("a", 1);
   * console.assert([...map.keys()].join() === "a");
   * ```
   */
  *keys(): MapIterator<K> {
    for (const [key] of this.entries()) yield key;
  }

  /**
   * The values, weakly consistent like `entries()`.
   *
   * @example
   * ```ts
   * import { HashMap, SharedHeap } from "@sabre/sabre";
   * const map = HashMap.create(SharedHeap.create(), { key: "string", value: "i32" });
   * map.set("a", 1);
   * console.assert([...map.values()][0] === 1);
   * ```
   */
  *values(): MapIterator<V> {
    for (const [, value] of this.entries()) yield value;
  }

  /**
   * Calls `fn(value, key, map)` for each entry, with `this` set to
   * `thisArg`, like `Map.forEach`; weakly consistent like `entries()`.
   *
   * @example
   * ```ts
   * import { HashMap, SharedHeap } from "@sabre/sabre";
   * const map = HashMap.create(SharedHeap.create(), { key: "i32", value: "i32" });
   * map.set(1, 2);
   * let sum = 0;
   * map.forEach((v, k) => (sum += v + k));
   * console.assert(sum === 3);
   * ```
   */
  forEach(fn: (value: V, key: K, map: this) => void, thisArg?: unknown): void {
    if (typeof fn !== "function") {
      throw new TypeError(
        `Cannot run forEach over a HashMap as 'fn' must be a function: current value is ${
          describeValue(fn)
        }`,
      );
    }
    for (const [key, value] of this.entries()) fn.call(thisArg, value, key, this);
  }

  /**
   * Same as `entries()`.
   *
   * @example
   * ```ts
   * import { HashMap, SharedHeap } from "@sabre/sabre";
   * const map = HashMap.create(SharedHeap.create(), { key: "i32", value: "i32" });
   * map.set(1, 2);
   * console.assert(new Map(map).get(1) === 2);
   * ```
   */
  [Symbol.iterator](): MapIterator<[K, V]> {
    return this.entries();
  }

  // -------------------------------------------------------------- internals

  #root(): number {
    return Atomics.load(this.#heap.i32, this.#header + H_TABLE);
  }

  #next(table: number): number {
    // Tables are allocated by any worker, possibly past this one's views.
    this.#heap.ensure(table + TABLE_BYTES);
    return Atomics.load(this.#heap.i32, (table >> 2) + T_NEXT);
  }

  /** Validates `key`, encodes it into the scratch buffer if variable, returns its hash. */
  #prepareKey(key: K, what: string): number {
    if (this.#destroyed) this.#throwDestroyed();
    const keys = this.#keys;
    switch (this.#keyKind) {
      case 1: // i32
        if (typeof key !== "number" || (key | 0) !== key) keys.check(key, what);
        return mix32(key as number);
      case 2: // u32
        if (typeof key !== "number" || (key >>> 0) !== key) keys.check(key, what);
        return mix32((key as number) | 0);
      case 3: // f64 (-0 normalized by check)
        f64Scratch[0] = keys.check(key, what) as number;
        this.#keyLow = f64Words[0];
        this.#keyHigh = f64Words[1];
        return mix32(this.#keyLow ^ mix32(this.#keyHigh));
      case 4: // bigint64
        i64Scratch[0] = keys.check(key, what) as bigint;
        this.#keyLow = f64Words[0];
        this.#keyHigh = f64Words[1];
        return mix32(this.#keyLow ^ mix32(this.#keyHigh));
      case 5: // string: ASCII keys in one pass (same bytes and hash)
        if (typeof key === "string") {
          const length = this.#encodeAscii(key);
          if (length >= 0) {
            this.#scratchLength = length;
            return this.#keyWords[0];
          }
        }
      // falls through
      default:
        this.#asciiKey = undefined; // #scratch is about to change
        this.#scratchLength = keys.encodeChecked(key, what, this.#scratch, 0);
        return keys.hash(this.#scratch, 0, this.#scratchLength) | 0;
    }
  }

  /** Whether entry `entry` holds `key` (prepared: scratch holds variable keys). */
  #matches(entry: number, key: K, hash: number): boolean {
    const heap = this.#heap;
    heap.ensure(entry + this.#entryMinBytes);
    const i32 = heap.i32;
    const base = entry >> 2;
    if (this.#storesHash && i32[base] !== hash) return false;
    switch (this.#keyKind) {
      case 1:
      case 2:
        return i32[base + (this.#keyAt >> 2)] === ((key as number) | 0);
      case 3:
      case 4: {
        const at = base + (this.#keyAt >> 2);
        return i32[at] === this.#keyLow && i32[at + 1] === this.#keyHigh;
      }
      default: {
        const length = i32[base + (this.#keyLenAt >> 2)];
        if (length !== this.#scratchLength) return false;
        heap.ensure(entry + this.#keyAt + length);
        const u8 = heap.u8;
        const scratch = this.#scratch;
        const start = entry + this.#keyAt;
        for (let b = 0; b < length; b++) if (u8[start + b] !== scratch[b]) return false;
        return true;
      }
    }
  }

  /** Whether entries `a` and `b` hold the same key (both immutable). */
  #sameKey(a: number, b: number): boolean {
    const heap = this.#heap;
    heap.ensure(Math.max(a, b) + this.#entryMinBytes);
    const i32 = heap.i32;
    if (this.#storesHash && i32[a >> 2] !== i32[b >> 2]) return false;
    if (this.#keyLenAt < 0) {
      const at = this.#keyAt >> 2;
      if (i32[(a >> 2) + at] !== i32[(b >> 2) + at]) return false;
      return this.#keys.fixedBytes === 4 || i32[(a >> 2) + at + 1] === i32[(b >> 2) + at + 1];
    }
    const length = i32[(a + this.#keyLenAt) >> 2];
    if (length !== i32[(b + this.#keyLenAt) >> 2]) return false;
    heap.ensure(Math.max(a, b) + this.#keyAt + length);
    const u8 = heap.u8;
    for (let i = 0; i < length; i++) {
      if (u8[a + this.#keyAt + i] !== u8[b + this.#keyAt + i]) return false;
    }
    return true;
  }

  /** Like #probe, for the key of entry `entry`. */
  #probeEntry(table: number, entry: number): number {
    const heap = this.#heap;
    const slots = this.#mapSlots(table);
    const capacity = this.#mappedCapacity;
    const mask = capacity - 1;
    let i = homeSlot(this.#entryHash(entry), mask);
    for (let n = 0; n < capacity; n++, i = (i + 1) & mask) {
      const value = Atomics.load(heap.i32, slots + i);
      if (value === 0) return PROBE_EMPTY;
      if (value === MOVED) return PROBE_MOVED;
      if (this.#sameKey(value & ~TAGS, entry)) {
        this.#probed = value;
        return slots + i;
      }
    }
    return PROBE_FULL;
  }

  #entryHash(entry: number): number {
    // Past this worker's views, the plain read would give undefined (and a
    // probe from slot 0): map the entry first.
    this.#heap.ensure(entry + this.#entryMinBytes);
    return this.#storesHash
      ? this.#heap.i32[entry >> 2]
      : mix32(this.#heap.i32[(entry + this.#keyAt) >> 2]);
  }

  #valueAt(entry: number): number {
    if (this.#fixedValueAt >= 0) return entry + this.#fixedValueAt;
    const keyLength = this.#heap.i32[(entry + this.#keyLenAt) >> 2];
    return align(entry + this.#keyAt + keyLength, this.#valueAlign);
  }

  #readKey(entry: number): K {
    const heap = this.#heap;
    heap.ensure(entry + this.#entryMinBytes);
    const length = this.#keyLenAt < 0
      ? this.#keys.fixedBytes
      : heap.i32[(entry + this.#keyLenAt) >> 2];
    heap.ensure(entry + this.#keyAt + length);
    return this.#keys.decode(heap.u8, entry + this.#keyAt, length);
  }

  #readValue(entry: number): V {
    const heap = this.#heap;
    const at = this.#valueAt(entry);
    switch (this.#valueKind) {
      // The value may lie past the part of the entry that the caller ensured.
      case 1:
        heap.ensure(at + 4);
        return heap.i32[at >> 2] as V;
      case 2:
        heap.ensure(at + 4);
        return (heap.i32[at >> 2] >>> 0) as V;
      case 3:
        heap.ensure(at + 8);
        return heap.f64[at >> 3] as V;
      case 4:
        heap.ensure(at + 8);
        return heap.i64[at >> 3] as V;
      default: {
        const length = heap.i32[(entry + this.#valueLenAt) >> 2];
        heap.ensure(at + length);
        return this.#values.decode(heap.u8, at, length);
      }
    }
  }

  /** Allocates and fills an entry for a prepared key. */
  #newEntry(key: K, hash: number, value: V): number {
    const heap = this.#heap;
    const keys = this.#keys;
    const values = this.#values;
    const keyLength = this.#keyLenAt < 0 ? keys.fixedBytes : this.#scratchLength;
    const valueLength = values.fixedBytes !== 0 ? values.fixedBytes : values.encodedLength(value);
    const valueAt = this.#fixedValueAt >= 0
      ? this.#fixedValueAt
      : align(this.#keyAt + keyLength, this.#valueAlign);
    const size = Math.max(this.#entryMinBytes, valueAt + valueLength);
    let entry: number;
    try {
      entry = heap.allocate(size);
    } catch (e) {
      if (!this.#reclaimForWrite(e)) throw e;
      entry = heap.allocate(size);
    }
    const i32 = heap.i32;
    if (this.#storesHash) i32[entry >> 2] = hash;
    if (this.#keyLenAt >= 0) i32[(entry + this.#keyLenAt) >> 2] = keyLength;
    if (this.#valueLenAt >= 0) i32[(entry + this.#valueLenAt) >> 2] = valueLength;
    const u8 = heap.u8;
    switch (this.#keyKind) {
      case 1:
      case 2:
        i32[(entry + this.#keyAt) >> 2] = (key as number) | 0;
        break;
      case 3:
      case 4:
        i32[(entry + this.#keyAt) >> 2] = this.#keyLow;
        i32[(entry + this.#keyAt + 4) >> 2] = this.#keyHigh;
        break;
      default: {
        // #scratch is #keyWords from byte 8, and keyAt is a multiple of 4:
        // copy whole words (no subarray to allocate). The last word's bytes
        // past the key land in padding, or where the value goes next.
        const words = this.#keyWords;
        const at = (entry + this.#keyAt) >> 2;
        for (let w = 0, n = (keyLength + 3) >> 2; w < n; w++) i32[at + w] = words[2 + w];
      }
    }
    switch (this.#valueKind) {
      case 1:
      case 2:
        i32[(entry + valueAt) >> 2] = (value as number) | 0;
        break;
      case 3:
        heap.f64[(entry + valueAt) >> 3] = value as number;
        break;
      case 4:
        heap.i64[(entry + valueAt) >> 3] = value as bigint;
        break;
      default:
        values.encode(value, u8, entry + valueAt);
    }
    return entry;
  }

  /**
   * After a write found the heap full (`error`), unpinned and with nothing
   * written: frees what the map's own deleted entries hold, where that can
   * be done, and answers whether to try once more. Deleted entries stay in
   * their slots until a resize moves the live keys to a new table (a key
   * never moves within a table), so a map that filled the heap and was then
   * emptied would refuse every new key. Where most claimed slots hold
   * deleted keys, or a resize is under way, this worker waits (briefly, see
   * FULL_HEAP_WAIT_MS) for what was retired before to be freed and for a
   * recycled spare to ripen, starts the resize (a shrink to the smallest
   * table takes the spare if need be), finishes it, and waits again for
   * what it retired. Otherwise it only collects. Touches none of the key
   * scratch that #newEntry and #tryWrite read.
   */
  #reclaimForWrite(error: unknown): boolean {
    if (!(error instanceof HeapExhaustedError)) return false;
    const heap = this.#heap;
    // Inside the caller's own pin (a write from forEach, or in heap.pin()),
    // nothing retired from here on can be freed before it ends.
    if (heap.isPinned) return false;
    if (!this.#hasDeletedToReclaim()) {
      // Blocks retired anywhere (this map's, or others') may be freed soon.
      if (heap.stats().retiredBlocks === 0) return false;
      return heap["awaitReclamation"](2, FULL_HEAP_WAIT_MS) > 0;
    }
    heap["awaitReclamation"](2, FULL_HEAP_WAIT_MS);
    heap.pinForOperation();
    try {
      const root = this.#root();
      heap.ensure(root + TABLE_BYTES);
      if (this.#next(root) === 0 && Atomics.load(heap.i32, (root >> 2) + T_RETIRING) === 0) {
        this.#startResize(root, false);
      }
    } finally {
      heap.unpin();
    }
    try {
      this.finishResize();
    } catch (e) {
      if (!(e instanceof HeapExhaustedError)) throw e;
    }
    heap["awaitReclamation"](2, FULL_HEAP_WAIT_MS);
    return true;
  }

  /**
   * Whether a resize is under way, or most claimed slots of the root hold
   * deleted keys: what #reclaimForWrite can turn into free memory.
   */
  #hasDeletedToReclaim(): boolean {
    const heap = this.#heap;
    heap.pinForOperation();
    try {
      const root = this.#root();
      heap.ensure(root + TABLE_BYTES);
      const i32 = heap.i32;
      if (this.#next(root) !== 0 || Atomics.load(i32, (root >> 2) + T_RETIRING) !== 0) return true;
      return this.#liveKeys() * 2 < Atomics.load(i32, (root >> 2) + T_CLAIMED);
    } finally {
      heap.unpin();
    }
  }

  #valueEquals(entry: number, expected: V): boolean {
    return this.#values.equals(this.#readValue(entry), expected);
  }

  /** Byte address of this worker's size stripe. */
  #stripeAt(): number {
    const stripe = this.#heap.slot & (STRIPES - 1);
    return (this.#header + STRIPE_WORDS * (stripe + 1)) << 2;
  }

  /**
   * The CAS of the slot word at int index `slot` from `seen` to
   * `replacement` for a write that changes the map's size by `delta`, and
   * that change, added to this worker's size stripe when the CAS succeeds:
   * the word the CAS saw. In the kernel where there is one, because a Node
   * worker terminated between two `Atomics` calls can stop there (each call
   * is a point where V8 takes the termination), which left the size one off
   * in 4 of about 1,700 kills of the Node random-kill test; in WebAssembly
   * there is no such point between the two. Without the kernel, or when its
   * call traps (memory it has not been told about yet, before it writes
   * anything), JavaScript does both, and a kill between them leaves the size
   * one off.
   */
  #casCounted(slot: number, seen: number, replacement: number, delta: number): number {
    const heap = this.#heap;
    const countAt = this.#stripeAt();
    const kernel = heapKernel(heap);
    if (kernel !== null) {
      try {
        return kernel.casCounted(slot << 2, seen, replacement, countAt, delta);
      } catch (e) {
        if (!(e instanceof WebAssembly.RuntimeError)) throw e;
      }
    }
    const was = Atomics.compareExchange(heap.i32, slot, seen, replacement);
    if (was === seen) Atomics.add(heap.i32, countAt >> 2, delta);
    return was;
  }

  /**
   * The write loop shared by set, swap, getOrInsert, compareAndSet, update
   * and add. Returns whether it wrote; with `wantPrevious`, the previous
   * value (undefined: absent) waits in #previous for #takePrevious.
   */
  #write(
    key: K,
    value: V,
    mode: number,
    expected: V | undefined,
    wantPrevious: boolean,
  ): boolean {
    const hash = this.#prepareKey(key, "key");
    const checked = this.#values.check(value, "value");
    const heap = this.#heap;
    // Built unpinned, as in #writeInKernel: on a full heap, #newEntry may
    // first need this worker to reclaim the map's deleted entries.
    const entry = this.#newEntry(key, hash, checked);
    for (let attempt = 0;; attempt++) {
      let failure: unknown;
      heap.pinForOperation();
      try {
        for (;;) {
          const outcome = this.#tryWrite(
            this.#root(),
            key,
            hash,
            entry,
            mode,
            expected,
            wantPrevious,
          );
          if (outcome !== RETRY) {
            if (outcome === NOT_WRITTEN) heap.free(entry); // never published
            return outcome === WRITTEN;
          }
        }
      } catch (e) {
        if (this.#published) throw e;
        failure = e;
      } finally {
        this.#published = false;
        heap.unpin();
      }
      // Nothing written. A growth the heap could not hold: once more after
      // reclaiming, unpinned.
      let retry = false;
      try {
        retry = attempt === 0 && this.#reclaimForWrite(failure);
      } finally {
        if (!retry) heap.free(entry);
      }
      if (!retry) throw failure;
    }
  }

  #published = false;

  /** The previous value that the last #write with `wantPrevious` saw. */
  #previous: V | undefined = undefined;

  /** #previous, which it clears so that the map holds no stale value. */
  #takePrevious(): V | undefined {
    const previous = this.#previous;
    this.#previous = undefined;
    return previous;
  }

  /**
   * One attempt through the table chain starting at `table`: WRITTEN,
   * NOT_WRITTEN (the mode's condition failed) or RETRY.
   */
  #tryWrite(
    table: number,
    key: K,
    hash: number,
    entry: number,
    mode: number,
    expected: V | undefined,
    wantPrevious: boolean,
  ): number {
    const heap = this.#heap;
    for (;;) {
      heap.ensure(table + TABLE_BYTES);
      const next = this.#next(table);
      if (next !== 0) this.#helpMigrate(table, next);
      const retiring = Atomics.load(heap.i32, (table >> 2) + T_RETIRING);
      if (retiring !== 0) this.#helpRetire(table, retiring);
      const slot = this.#probe(table, key, hash);
      // A key absent from this table is claimed here even while a resize is
      // under way, unless its probe sequence reached a MOVED slot: readers
      // stop at the first empty slot of the oldest table, and a key put in
      // the next table behind an empty, unfrozen slot would be invisible to
      // them (and could be claimed here a second time by a writer that has
      // not seen the resize yet). Migration copies it later like any other.
      if (slot === PROBE_MOVED) {
        table = this.#next(table);
        continue;
      }
      if (slot === PROBE_FULL) {
        this.#startResize(table, true);
        table = this.#next(table) || table;
        continue;
      }
      if (slot === PROBE_EMPTY) {
        // A new key: claim the first empty slot of its probe sequence.
        const claimed = this.#claim(table, hash, key, entry, mode, expected);
        if (claimed === RETRY) continue;
        return claimed;
      }
      const seen = Atomics.load(heap.i32, slot);
      if ((seen & FROZEN) !== 0) {
        // Migrating: copy it across (if nobody has), then write over there.
        // `next` was read before the probe, and the resize that froze the
        // slot may have started since: a frozen slot implies a next table.
        const after = next || this.#next(table);
        this.#copySlot(slot, after);
        table = after;
        continue;
      }
      const old = seen & ~TAGS;
      const present = (seen & DELETED) === 0;
      if (mode === WRITE_IF_ABSENT && present) {
        this.#previous = this.#readValue(old);
        return NOT_WRITTEN;
      }
      if (mode === WRITE_IF_EQUAL) {
        const ok = expected === undefined ? !present : present && this.#valueEquals(old, expected);
        if (!ok) return NOT_WRITTEN;
      }
      // Decoded only when the caller uses it (set() does not): for string
      // values that is an allocation per write.
      const previous = present && wantPrevious ? this.#readValue(old) : undefined;
      this.#published = true;
      // A write over a DELETED slot adds the key to the size.
      const was = present
        ? Atomics.compareExchange(heap.i32, slot, seen, entry)
        : this.#casCounted(slot, seen, entry, 1);
      if (was !== seen) {
        this.#published = false;
        continue; // the slot changed: look again
      }
      if ((seen & COPIED) === 0) heap.retire(old);
      this.#previous = previous;
      return WRITTEN;
    }
  }

  /** Claims an empty slot for a new key in `table` (no resize in progress). */
  #claim(
    table: number,
    hash: number,
    key: K,
    entry: number,
    mode: number,
    expected: V | undefined,
  ): number {
    if (mode === WRITE_IF_EQUAL && expected !== undefined) return NOT_WRITTEN;
    const heap = this.#heap;
    const i32 = heap.i32;
    const capacity = i32[(table >> 2) + T_CAPACITY];
    const slots = i32[(table >> 2) + T_SLOTS] >> 2;
    const mask = capacity - 1;
    let i = homeSlot(hash, mask);
    for (let n = 0; n < capacity; n++, i = (i + 1) & mask) {
      const seen = Atomics.load(i32, slots + i);
      if (seen === 0) {
        // Claims reach 7/8 of a table only when the heap could not hold the
        // growth that 3/4 started: grow now (or fail with nothing written)
        // rather than fill the table, where each miss would probe it all.
        // The kernel's sets send such claims here (kernel.wat $nearlyFull).
        if (
          Atomics.load(i32, (table >> 2) + T_CLAIMED) * 8 >= capacity * 7 &&
          this.#next(table) === 0
        ) {
          this.#startResize(table, true);
          return RETRY;
        }
        this.#published = true;
        if (this.#casCounted(slots + i, 0, entry, 1) === 0) {
          const claimed = Atomics.add(i32, (table >> 2) + T_CLAIMED, 1) + 1;
          if (claimed * 4 > capacity * 3) this.#startResize(table, false);
          this.#previous = undefined;
          return WRITTEN;
        }
        this.#published = false;
        return RETRY; // someone claimed it: maybe for our key
      }
      if (seen === MOVED) return RETRY;
      if (this.#matches(seen & ~TAGS, key, hash)) return RETRY;
    }
    this.#startResize(table, true);
    return RETRY;
  }

  /**
   * Delete loop; returns the removed entry or NOT_FOUND. With
   * `wantPrevious`, the removed value waits in #previous for #takePrevious.
   */
  #remove(
    key: K,
    conditional: boolean,
    expected: V | undefined,
    wantPrevious = false,
  ): number {
    const hash = this.#prepareKey(key, "key");
    const heap = this.#heap;
    heap.pinForOperation();
    // Values of variable size: the entry copied without its value, built at
    // the first attempt and kept for the next ones (it holds only the key).
    let stub = 0;
    try {
      let table = this.#root();
      for (;;) {
        heap.ensure(table + TABLE_BYTES);
        const next = this.#next(table);
        if (next !== 0) {
          // Helping is optional: a delete must not fail because a copy
          // found the heap full (nor because its stub could not be had).
          try {
            this.#helpMigrate(table, next);
          } catch (e) {
            if (!(e instanceof HeapExhaustedError)) throw e;
          }
        }
        const retiring = Atomics.load(heap.i32, (table >> 2) + T_RETIRING);
        if (retiring !== 0) this.#helpRetire(table, retiring);
        const slot = this.#probe(table, key, hash);
        if (slot === PROBE_MOVED) {
          table = next || this.#next(table);
          if (table === 0) return NOT_FOUND;
          continue;
        }
        if (slot < 0) {
          if (next === 0) return NOT_FOUND;
          table = next;
          continue;
        }
        const seen = Atomics.load(heap.i32, slot);
        if ((seen & FROZEN) !== 0) {
          // As in #tryWrite: `next` may predate the resize that froze it.
          const after = next || this.#next(table);
          this.#copySlot(slot, after);
          table = after;
          continue;
        }
        if ((seen & DELETED) !== 0) return NOT_FOUND;
        const old = seen & ~TAGS;
        if (conditional && !this.#valueEquals(old, expected as V)) return NOT_FOUND;
        if (stub === 0 && this.#shedsValues) stub = this.#keyOnlyCopy(old);
        // The key keeps its slot either way (see the module doc).
        const deleted = stub !== 0 ? stub | DELETED : seen | DELETED;
        if (this.#casCounted(slot, seen, deleted, -1) !== seen) continue;
        if (stub !== 0) {
          stub = 0; // published
          // As a set that replaces an entry: one that a retiring older
          // table still shares (COPIED) is retired by that retirement.
          if ((seen & COPIED) === 0) heap.retire(old);
        }
        this.#deletesCounted(table);
        // Still pinned: a set of the key may already have replaced the
        // DELETED entry and retired it, but cannot free it before the unpin.
        if (wantPrevious) this.#previous = this.#readValue(old);
        return old;
      }
    } finally {
      if (stub !== 0) heap.free(stub); // never published
      heap.unpin();
    }
  }

  /**
   * After a kernel delete in a map of variable-size values, pinned: puts a
   * key-only copy of the deleted entry `old` (#keyOnlyCopy) in its DELETED
   * slot and retires `old`, so that its value is reclaimed at once. Leaves
   * it where the slot changed meanwhile: a set of the key replaced `old`
   * (and retires it), or a resize froze the slot (the table's retirement
   * retires DELETED entries, which migration leaves behind).
   */
  #shedValue(old: number): void {
    const stub = this.#keyOnlyCopy(old);
    if (stub === 0) return;
    const heap = this.#heap;
    const root = this.#root();
    heap.ensure(root + TABLE_BYTES);
    const slot = this.#probeEntry(root, old);
    if (
      slot >= 0 && Atomics.compareExchange(heap.i32, slot, old | DELETED, stub | DELETED) ===
        (old | DELETED)
    ) {
      heap.retire(old);
      return;
    }
    heap.free(stub); // never published
  }

  /**
   * For a delete in a map of variable-size values: a copy of entry `old`
   * (pinned) with an empty value, to stand in the DELETED slot, so that the
   * deleted value's bytes are reclaimed now rather than when the key is set
   * again or the table is resized. 0 where the value takes at most
   * SHED_VALUE_BYTES (a copy would cost the delete more than it gives back)
   * or the heap is full: the delete then tags `old` itself.
   */
  #keyOnlyCopy(old: number): number {
    const heap = this.#heap;
    heap.ensure(old + this.#entryMinBytes);
    if (heap.i32[(old + this.#valueLenAt) >> 2] <= SHED_VALUE_BYTES) return 0;
    const valueAt = this.#valueAt(old) - old; // the key ends before it
    let stub: number;
    try {
      stub = heap.allocate(Math.max(this.#entryMinBytes, valueAt));
    } catch (e) {
      if (e instanceof HeapExhaustedError) return 0;
      throw e;
    }
    // Plain reads of an entry published before this worker found it
    // (pattern b), into a block no other worker can see yet.
    heap.ensure(old + valueAt);
    heap.u8.copyWithin(stub, old, old + valueAt);
    heap.i32[(stub + this.#valueLenAt) >> 2] = 0;
    return stub;
  }

  // --------------------------------------------------------------- resizing

  /**
   * After a delete that the size counts already: every 256 deletes, looks
   * whether the root table should shrink (`table`, pinned, or 0 after a
   * delete in the kernel, unpinned).
   */
  #deletesCounted(table: number): void {
    if (++this.#deletesSinceCheck >= 256) {
      this.#deletesSinceCheck = 0;
      if (table !== 0) {
        this.#maybeShrink(table);
        return;
      }
      // After a delete in the kernel, which has unpinned: the root table
      // is read again, pinned, as a table may be freed once unreachable.
      const heap = this.#heap;
      heap.pinForOperation();
      try {
        const root = this.#root();
        heap.ensure(root + TABLE_BYTES);
        this.#maybeShrink(root);
      } finally {
        heap.unpin();
      }
    }
  }

  /**
   * After a kernel set whose claim passed 3/4 of `table`: starts its resize
   * if `table` is still the root, read pinned. The kernel has unpinned, so
   * meanwhile other writers may have resized, retired and freed `table`, and
   * its block may hold something else by now: a resize published there
   * would leak its new table, and write into that block. A root read pinned
   * stays allocated until the unpin; a root that moved on means the resize
   * happened anyway.
   */
  #resizeAfterKernelClaim(table: number): void {
    crashPoint("hashmap.kernel.claimed");
    const heap = this.#heap;
    heap.pinForOperation();
    try {
      if (this.#root() === table) this.#startResize(table, false);
    } finally {
      heap.unpin();
    }
  }

  #maybeShrink(table: number): void {
    const capacity = this.#heap.i32[(table >> 2) + T_CAPACITY];
    if (capacity > MIN_CAPACITY * 4 && this.#liveKeys() * 8 < capacity) {
      this.#startResize(table, false);
    }
  }

  /**
   * The key count that sizes a resize: the larger of two reads of `size`.
   * One read can come out far too low (a worker descheduled between the
   * stripes while others add and delete), which would start a shrink to a
   * table the keys overflow, then growths to undo it; two such reads in a
   * row are unlikely, and a count too high only delays a shrink.
   */
  #liveKeys(): number {
    const first = this.size;
    const second = this.size;
    return first > second ? first : second;
  }

  /** Publishes a next table for `table` unless one exists. */
  #startResize(table: number, urgent: boolean): void {
    const heap = this.#heap;
    heap.ensure(table + TABLE_BYTES); // another worker may have allocated it
    const i32 = heap.i32;
    if (Atomics.load(i32, (table >> 2) + T_NEXT) !== 0) return;
    const capacity = i32[(table >> 2) + T_CAPACITY];
    const live = Math.max(this.#liveKeys(), 1);
    let target = nextPowerOfTwo(live * 2);
    if (target < capacity && !urgent && live * 8 >= capacity) target = capacity;
    if (target > MAX_CAPACITY) target = MAX_CAPACITY;
    let next: number;
    try {
      next = newTable(heap, target);
      this.#refillSpare();
    } catch (e) {
      // Out of memory. A shrink to the smallest table takes the spare: the
      // map that filled the heap and was then emptied (clear()) can only
      // free its deleted entries by moving to a new table. Otherwise keep
      // using this table while it has room.
      next = target === MIN_CAPACITY ? this.#takeSpare() : 0;
      if (next === 0) {
        if (urgent) throw e;
        return;
      }
    }
    crashPoint("hashmap.resize.publish");
    if (Atomics.compareExchange(heap.i32, (table >> 2) + T_NEXT, 0, next) !== 0) {
      this.#keepOrFreeTable(next); // lost the race; never published
    }
  }

  /**
   * Allocates a spare table if the map has none (after a shrink took it),
   * while allocations succeed: called where a resize has just allocated.
   */
  #refillSpare(): void {
    const heap = this.#heap;
    if (Atomics.load(heap.i32, this.#header + H_SPARE) !== 0) return;
    let spare: number;
    try {
      spare = newTable(heap, MIN_CAPACITY);
    } catch {
      return; // the next resize tries again
    }
    this.#keepOrFreeTable(spare);
  }

  /**
   * Takes the spare table, clean, or answers 0: when there is none, or when
   * it is a retired table that a worker pinned since before its retirement
   * may still read (it then stays the spare).
   */
  #takeSpare(): number {
    const heap = this.#heap;
    const spare = Atomics.exchange(heap.i32, this.#header + H_SPARE, 0);
    if (spare === 0) return 0;
    heap.ensure(spare + TABLE_BYTES); // allocated by any worker
    const unlinkedAt = Atomics.load(heap.i32, (spare >> 2) + T_UNLINKED_AT);
    if (unlinkedAt === 0) return spare;
    // The rule of the heap's retire lists: unreachable for every pinned
    // worker once the epoch has advanced twice past the unlink.
    // The epoch never falls behind unlinkedAt: a negative distance has
    // wrapped past 2^31 advances, and is long ripe.
    const distance = epochsBetween(unlinkedAt, heap["advanceEpoch"]());
    if (distance >= 0 && distance < 2) {
      this.#keepOrFreeTable(spare);
      return 0;
    }
    const words = spare >> 2;
    const slots = heap.i32[words + T_SLOTS] >> 2;
    heap.ensure((slots + MIN_CAPACITY) * 4);
    heap.ensure((words + TABLE_WORDS + 2 * chunksOf(MIN_CAPACITY)) * 4);
    const i32 = heap.i32;
    i32.fill(0, slots, slots + MIN_CAPACITY);
    // Every descriptor word but capacity and slots, and both holder words.
    i32.fill(0, words + T_CLAIMED, words + TABLE_WORDS + 2 * chunksOf(MIN_CAPACITY));
    return spare;
  }

  /**
   * Disposes of `old`, a table whose retirement has just unlinked it: it
   * becomes the spare if it has the spare's size and the map has none (to
   * be cleaned once no pinned worker can read it, #takeSpare), else it is
   * retired. So a map that keeps being emptied on a full heap gets back the
   * table it moves away from.
   */
  #disposeRetiredTable(old: number): void {
    const heap = this.#heap;
    const i32 = heap.i32;
    if (
      i32[(old >> 2) + T_CAPACITY] === MIN_CAPACITY &&
      Atomics.load(i32, this.#header + H_SPARE) === 0
    ) {
      // Read after the unlink (the CAS on T_RETIRING), so no later than it.
      Atomics.store(i32, (old >> 2) + T_UNLINKED_AT, heap["epochNow"]());
      if (Atomics.compareExchange(i32, this.#header + H_SPARE, 0, old) === 0) return;
    }
    heap.retire(i32[(old >> 2) + T_SLOTS]);
    heap.retire(old);
  }

  /**
   * Disposes of a table that was never published (its slots are all empty,
   * its counters 0), or of a recycled spare put back unripe: it becomes the
   * spare if it has the spare's size and the map has none, else it goes
   * back to the heap.
   */
  #keepOrFreeTable(table: number): void {
    const heap = this.#heap;
    if (
      heap.i32[(table >> 2) + T_CAPACITY] !== MIN_CAPACITY ||
      Atomics.compareExchange(heap.i32, this.#header + H_SPARE, 0, table) !== 0
    ) {
      // A recycled spare that no longer fits: other workers may still read it.
      if (Atomics.load(heap.i32, (table >> 2) + T_UNLINKED_AT) !== 0) {
        heap.retire(heap.i32[(table >> 2) + T_SLOTS]);
        heap.retire(table);
      } else {
        freeTable(heap, table);
      }
    }
  }

  /**
   * Migrates up to `rounds` chunks of `table` into `next` (a write helps
   * with two), then tries to promote; answers how many it migrated.
   */
  #helpMigrate(table: number, next: number, rounds = 2): number {
    const heap = this.#heap;
    // The slots and the holder words: allocated by any worker, maybe past
    // this one's views.
    const slots = this.#mapSlots(table);
    const capacity = this.#mappedCapacity;
    const chunks = chunksOf(capacity);
    const holders = (table >> 2) + TABLE_WORDS;
    heap.ensure((holders + 2 * chunks) * 4);
    const me = heap.ownerId();
    let round = 0;
    for (; round < rounds; round++) {
      const chunk = this.#claimJobChunk((table >> 2) + T_MIGRATION, holders, chunks, me);
      if (chunk < 0) break;
      try {
        for (let i = chunk * CHUNK, end = Math.min(capacity, i + CHUNK); i < end; i++) {
          this.#freeze(slots + i);
          this.#copySlot(slots + i, next);
          if (i === chunk * CHUNK + 1) crashPoint("hashmap.migrate.chunk");
        }
      } catch (e) {
        // Give the chunk back (a full heap while copying): freezing and
        // copying are idempotent, so the next writer simply redoes it.
        Atomics.compareExchange(heap.i32, holders + chunk, me, 0);
        throw e;
      }
      this.#finishJobChunk((table >> 2) + T_MIGRATION, holders, chunk, chunks, me, MIGRATE_COUNT);
    }
    this.#tryPromote();
    return round;
  }

  /**
   * A chunk of a chunked job (a migration, or a retirement) for this worker
   * (`me`, its ownerId), JOB_COMPLETE once every chunk is done, or -1 while
   * the chunks left are held by live workers. The job's three
   * descriptor words start at Int32 index `job`: cursor, finished count,
   * and a scan hint below which every chunk is done. Each chunk has a holder
   * word (from `holders`): 0, its holder's ownerId, or CHUNK_DONE; the CAS
   * on it decides who holds a chunk. The cursor hands chunks out in order
   * and stops at `chunks` (so a table stuck in a chain never wraps it).
   * Once it is spent, a chunk is taken over if its word is 0 (given back
   * after an error, or its claimer has not written its id yet) or names a
   * holder that has left the heap (it died, and was evicted). A holder that
   * is only slow keeps its chunk: a retirement must not end before every
   * one of its slots is settled (see #retireSlot).
   *
   * When every holder word says done but the count falls short, a holder
   * died between marking its chunk and counting it (or is about to count
   * it): this worker raises the count to `chunks` itself. Every holder word
   * is marked only after its chunk is settled, so the job is really over; a
   * late count only takes the total past `chunks`, and no later
   * `=== chunks` test fires again.
   */
  #claimJobChunk(job: number, holders: number, chunks: number, me: number): number {
    const heap = this.#heap;
    while (Atomics.load(heap.i32, job) < chunks) {
      const chunk = Atomics.add(heap.i32, job, 1);
      if (chunk >= chunks) break;
      if (Atomics.compareExchange(heap.i32, holders + chunk, 0, me) === 0) return chunk;
    }
    if (Atomics.load(heap.i32, job + JOB_DONE) >= chunks) return JOB_COMPLETE;
    // From the first chunk not known to be done: usually a few at the end.
    const seenLow = Atomics.load(heap.i32, job + JOB_LOW);
    let low = seenLow;
    while (low < chunks && Atomics.load(heap.i32, holders + low) === CHUNK_DONE) low++;
    if (low > seenLow) Atomics.compareExchange(heap.i32, job + JOB_LOW, seenLow, low);
    if (low === chunks) {
      for (;;) {
        const done = Atomics.load(heap.i32, job + JOB_DONE);
        if (done >= chunks) return JOB_COMPLETE;
        if (Atomics.compareExchange(heap.i32, job + JOB_DONE, done, chunks) === done) {
          return JOB_COMPLETE;
        }
      }
    }
    for (let chunk = low; chunk < chunks; chunk++) {
      const holder = Atomics.load(heap.i32, holders + chunk);
      if (holder === CHUNK_DONE || (holder !== 0 && !heap.ownerLeft(holder))) continue;
      if (Atomics.compareExchange(heap.i32, holders + chunk, holder, me) === holder) return chunk;
    }
    return -1;
  }

  /**
   * Marks `chunk` of the job at `job` done, if this worker still holds it,
   * and counts it; true for the worker that counted the last chunk.
   * (`countSite` names the crash point between the two steps.)
   */
  #finishJobChunk(
    job: number,
    holders: number,
    chunk: number,
    chunks: number,
    me: number,
    countSite: string,
  ): boolean {
    const heap = this.#heap;
    if (Atomics.compareExchange(heap.i32, holders + chunk, me, CHUNK_DONE) !== me) return false;
    crashPoint(countSite);
    return Atomics.add(heap.i32, job + JOB_DONE, 1) + 1 === chunks;
  }

  #freeze(slot: number): void {
    const i32 = this.#heap.i32;
    for (;;) {
      const seen = Atomics.load(i32, slot);
      if ((seen & FROZEN) !== 0) return;
      if (Atomics.compareExchange(i32, slot, seen, seen | FROZEN) === seen) return;
    }
  }

  /** Copies the frozen live entry in `slot` into `next`, unless its key is there. */
  #copySlot(slot: number, next: number): void {
    const heap = this.#heap;
    const seen = Atomics.load(heap.i32, slot);
    const entry = seen & ~TAGS;
    if (entry === 0 || (seen & DELETED) !== 0) return;
    this.#insertCopy(next, entry);
  }

  #insertCopy(table: number, entry: number): void {
    const heap = this.#heap;
    const slots = this.#mapSlots(table);
    const capacity = this.#mappedCapacity;
    const mask = capacity - 1;
    const hash = this.#entryHash(entry);
    let i = homeSlot(hash, mask);
    for (let n = 0; n < capacity; n++, i = (i + 1) & mask) {
      const seen = Atomics.load(heap.i32, slots + i);
      if (seen === 0) {
        if (Atomics.compareExchange(heap.i32, slots + i, 0, entry | COPIED) === 0) {
          Atomics.add(heap.i32, (table >> 2) + T_CLAIMED, 1);
          return;
        }
        i = (i - 1) & mask; // look at this slot again
        n--;
        continue;
      }
      if (seen === MOVED) {
        // The next table is itself migrating: copy into its successor.
        const further = this.#next(table);
        if (further !== 0) this.#insertCopy(further, entry);
        return;
      }
      if (this.#sameKey(seen & ~TAGS, entry)) return; // copied, or newer
    }
    // The next table is full; resize it first.
    this.#startResize(table, true);
    const further = this.#next(table);
    if (further !== 0) this.#insertCopy(further, entry);
  }

  /**
   * Moves the root past fully migrated tables, retiring them. The promotion
   * lock holds the promoter's ownerId; it is taken over from a promoter that
   * has left the registry. A worker that finishes the last chunk while
   * another holds the lock leaves the promotion to it: the holder looks again
   * after releasing the lock (Atomics are sequentially consistent, so it sees
   * that chunk done), and no promotion is lost.
   */
  #tryPromote(): void {
    const heap = this.#heap;
    const lock = this.#header + H_PROMOTING;
    while (this.#promotable()) {
      if (!this.#takeLock(lock)) return;
      try {
        while (this.#promotable()) {
          const table = Atomics.load(heap.i32, this.#header + H_TABLE);
          const next = this.#next(table);
          // The new root names the old table before the root moves, so that
          // no promotion can skip its retirement (a promoter that dies in
          // between is followed by one that stores both again); writers
          // help retire it only once `next` is the root. Another worker may
          // have allocated `next` past this one's views.
          heap.ensure(next + TABLE_BYTES);
          Atomics.store(heap.i32, (next >> 2) + T_RETIRING, table);
          Atomics.store(heap.i32, this.#header + H_TABLE, next);
          crashPoint("hashmap.promote");
        }
      } finally {
        Atomics.store(heap.i32, lock, 0);
      }
    }
  }

  /**
   * Whether the root table has a next table, every chunk of it is copied,
   * and the root's own predecessor is fully retired (its retirement reads
   * the root's slots, so the root must outlive it). Caller is pinned.
   */
  #promotable(): boolean {
    const heap = this.#heap;
    const table = Atomics.load(heap.i32, this.#header + H_TABLE);
    heap.ensure(table + TABLE_BYTES);
    if (this.#next(table) === 0) return false;
    if (Atomics.load(heap.i32, (table >> 2) + T_RETIRING) !== 0) return false;
    const capacity = heap.i32[(table >> 2) + T_CAPACITY];
    return Atomics.load(heap.i32, (table >> 2) + T_DONE) >= chunksOf(capacity);
  }

  /**
   * Takes the lock word at Int32 index `word` (0 when free, else its
   * holder's ownerId), also from a holder that has left the registry: one
   * that died holding it, and was evicted. False while a joined worker holds
   * it.
   */
  #takeLock(word: number): boolean {
    const heap = this.#heap;
    const mine = heap.ownerId();
    const seen = Atomics.compareExchange(heap.i32, word, 0, mine);
    if (seen === 0) return true;
    return heap.ownerLeft(seen) && Atomics.compareExchange(heap.i32, word, seen, mine) === seen;
  }

  /**
   * Retires up to `rounds` chunks of `old` (a write retires two), the table
   * that `table` (the root) replaced: the entries only `old` owns, and hands
   * the others over to the newer tables (see "Ownership" in the module doc).
   * The worker that finishes the last chunk retires `old` itself and clears
   * T_RETIRING. Answers how many chunks it retired.
   */
  #helpRetire(table: number, old: number, rounds = 2): number {
    const heap = this.#heap;
    // Only once `table` is the root (the promoter names `old` on it just
    // before moving the root): `old` must be out of new readers' reach.
    if (Atomics.load(heap.i32, this.#header + H_TABLE) !== table) return 0;
    const slots = this.#mapSlots(old);
    const capacity = this.#mappedCapacity;
    const chunks = chunksOf(capacity);
    const holders = (old >> 2) + TABLE_WORDS + chunks;
    heap.ensure((holders + chunks) * 4);
    const me = heap.ownerId();
    const job = (old >> 2) + T_RETIREMENT;
    for (let round = 0; round < rounds; round++) {
      const chunk = this.#claimJobChunk(job, holders, chunks, me);
      if (chunk < 0) {
        // Also where the worker that counted the last chunk died before it
        // finished the retirement: #finishRetire runs once, whoever calls.
        if (chunk === JOB_COMPLETE) this.#finishRetire(table, old);
        return round;
      }
      for (let i = chunk * CHUNK, end = Math.min(capacity, i + CHUNK); i < end; i++) {
        this.#retireSlot(slots + i, table);
        if (i === chunk * CHUNK + 1) crashPoint("hashmap.retire.chunk");
      }
      // Counted once, by its holder, after every slot of it is settled.
      if (this.#finishJobChunk(job, holders, chunk, chunks, me, RETIRE_COUNT)) {
        this.#finishRetire(table, old);
        return round + 1;
      }
    }
    return rounds;
  }

  /**
   * Retires the entry of one frozen slot of a table being retired, or hands
   * it over to `table` and its successors. The slot's COPIED bit marks it
   * done: no slot of a table being retired still carries COPIED in its
   * first sense, since its predecessor's retirement (which ended before it
   * could be promoted) handed every shared entry over to it, and nothing
   * copies into a table once it is the root. Frozen slots change no other
   * way, so one CAS decides who retires the entry. (Only a chunk taken over
   * from a dead holder can break the first premise: an entry that holder
   * had marked but not settled then leaks.)
   */
  #retireSlot(slot: number, table: number): void {
    const heap = this.#heap;
    for (;;) {
      const seen = Atomics.load(heap.i32, slot);
      const entry = seen & ~TAGS;
      if (entry === 0 || (seen & COPIED) !== 0) return;
      if (Atomics.compareExchange(heap.i32, slot, seen, seen | COPIED) !== seen) continue;
      crashPoint("hashmap.retire.slot");
      if ((seen & DELETED) !== 0 || !this.#handOver(table, entry)) heap.retire(entry);
      return;
    }
  }

  /** Retires `old`'s slot array and descriptor, once, and lets `table` be promoted. */
  #finishRetire(table: number, old: number): void {
    crashPoint("hashmap.retire.finish");
    const heap = this.#heap;
    if (Atomics.compareExchange(heap.i32, (table >> 2) + T_RETIRING, old, 0) !== old) return;
    this.#disposeRetiredTable(old);
    this.#tryPromote();
  }

  /**
   * Clears COPIED on `entry` in the table chain from `table`; false when no
   * table references it any more (a writer replaced it there).
   */
  #handOver(table: number, entry: number): boolean {
    const heap = this.#heap;
    for (let t = table; t !== 0; t = this.#next(t)) {
      const slot = this.#probeEntry(t, entry);
      if (slot < 0) continue;
      for (;;) {
        const seen = Atomics.load(heap.i32, slot);
        if ((seen & ~TAGS) !== entry) break;
        if ((seen & COPIED) === 0) return true;
        if (Atomics.compareExchange(heap.i32, slot, seen, seen & ~COPIED) === seen) return true;
      }
    }
    return false;
  }
}

const WRITE_ALWAYS = 0;
const WRITE_IF_ABSENT = 1;
const WRITE_IF_EQUAL = 2;
// #tryWrite's and #claim's answers.
const NOT_WRITTEN = 0;
const WRITTEN = 1;
const RETRY = 2;
/** #writeInKernel's answer where the general path must write. */
const IN_GENERAL_PATH = -1;
const FALL_BACK: unique symbol = Symbol("fall back");
const NOT_FOUND = -1;
/**
 * Deleted values of more bytes are shed at once (#keyOnlyCopy); smaller ones
 * stay in the key's slot until it is set again or the table is resized.
 */
const SHED_VALUE_BYTES = 64;
const PROBE_EMPTY = -1;
const PROBE_MOVED = -2;
const PROBE_FULL = -3;

function align(n: number, to: number): number {
  return to <= 1 ? n : Math.ceil(n / to) * to;
}

/**
 * Chunks of a table of `capacity` slots. After its descriptor's words come
 * a holder word per chunk for its migration, then one per chunk for its
 * retirement.
 */
function chunksOf(capacity: number): number {
  return Math.ceil(capacity / CHUNK);
}

/** Allocates an empty table; throws HeapExhaustedError with nothing allocated. */
function newTable(heap: SharedHeap, capacity: number): number {
  const slots = heap.allocateZeroed(capacity * 4);
  let table: number;
  try {
    table = heap.allocateZeroed(TABLE_BYTES + 2 * chunksOf(capacity) * 4);
  } catch (e) {
    heap.free(slots);
    throw e;
  }
  heap.i32[(table >> 2) + T_CAPACITY] = capacity;
  heap.i32[(table >> 2) + T_SLOTS] = slots;
  return table;
}

function freeTable(heap: SharedHeap, table: number): void {
  heap.free(heap.i32[(table >> 2) + T_SLOTS]);
  heap.free(table);
}

/**
 * Where a HashMap iteration stands: the hash where its next block starts,
 * and the keys of the block it read last. It keeps no address in the heap
 * from one step to the next, so a step after a pause needs no checks.
 */
class Scan<K, V> {
  /** The first hash of the next block (0 to 2^32; HASH_SPACE: no more). */
  from = 0;
  /**
   * The entries of the block read last, while the pin it was read under
   * lasts; after a pause, the keys of those left to report (`decoded`).
   * `at`: the next one to look up.
   */
  entries: number[] = [];
  keys: K[] = [];
  decoded = false;
  at = 0;
  /** The chain of tables, while a block is being read (#readBlock). */
  tables: number[] = [];
  /** Whether the iteration holds a pin (pinForOperation). */
  pinned = false;
  /** Set when the generator has ended: a late end of the pin does nothing. */
  finished = false;
  /** The entry found by the last step. */
  key: K | undefined = undefined;
  value: V | undefined = undefined;
  /** Ends the pin: made once, registered with the heap each time it pins. */
  end: (() => void) | null = null;
}
