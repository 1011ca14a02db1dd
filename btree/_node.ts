/**
 * Node content of the B+ tree: layout, key search and copy-on-write
 * builders. Internal.
 *
 * A node is a 16-byte header block that never moves (latch version, waiter
 * count, content pointer) and a content block that never changes once the
 * header points at it (pattern (b)). Content, in Int32 words from its start:
 *
 * ```
 * 0  meta      count << 2 | LEAF
 * 1  flags     LOW_INF | HIGH_INF (fences that are -∞ / +∞)
 * 2  bytes     size of the block
 * 4  low fence (fixed-size keys: 2 words)
 * 6  high fence (fixed-size keys: 2 words)
 * 8  keys      fixed: count × kw words; variable: count + 3 byte offsets
 *              (keys, then low fence, high fence, end), relative to the block
 *    inner:    count + 1 child node pointers
 *    leaf:     fixed values: count × vw words (vw 2 starts even);
 *              variable values: count + 1 byte offsets
 *    bytes     variable keys (keys, low fence, high fence), then values
 * ```
 *
 * A node holds the keys k with low ≤ k < high. In an inner node child i
 * holds the keys from separator i - 1 (or the low fence) up to separator i
 * (or the high fence).
 *
 * Keys are stored so that Int32 comparisons order them: i32 as is; u32 with
 * the top bit flipped; f64 and bigint64 as a pair (high word signed, low word
 * with the top bit flipped) of their order-preserving 64-bit image; strings
 * and bytes as their bytes, compared unsigned.
 *
 * @module
 */

import type { Codec, CodecName, SharedHeap } from "../memory/mod.ts";

export const C_META = 0;
export const C_FLAGS = 1;
export const C_BYTES = 2;
export const C_LOW = 4;
export const C_HIGH = 6;
export const C_KEYS = 8;
export const LEAF = 1;
export const LOW_INF = 1;
export const HIGH_INF = 2;

/** Node header words: latch version, latch waiters, content pointer. */
export const N_VERSION = 0;
export const N_CONTENT = 2;
export const NODE_BYTES = 16;

/** Key kinds: one Int32 word, a pair of words, or bytes. */
export const K_W1 = 1;
export const K_W2 = 2;
export const K_VAR = 3;

/** A piece of a new node: entries [from, to) of content `c`, or the staged entry. */
export const STAGED = -1;
/** A child piece naming one node pointer (in `from`). */
export const CHILD = -2;
/** A fence reference meaning -∞ or +∞. */
export const INFINITE = 0;
/** Fence reference indexes: the low or high fence of a content. */
export const LOW_REF = -1;
export const HIGH_REF = -2;

const SIGN = 0x80000000 | 0;

/** Scratch for turning f64 and bigint64 into words and back. */
const scratch = new ArrayBuffer(8);
const scratchI32 = new Int32Array(scratch);
const scratchF64 = new Float64Array(scratch);
const scratchI64 = new BigInt64Array(scratch);

export function countOf(i32: Int32Array, w: number): number {
  return i32[w + C_META] >> 2;
}

export function isLeaf(i32: Int32Array, w: number): boolean {
  return (i32[w + C_META] & LEAF) !== 0;
}

/**
 * Everything that depends on the key and value codecs: the staged query
 * key and value, search, decoding and building.
 */
export class Format<K, V> {
  readonly keyKind: number;
  /** Key words (fixed kinds). */
  readonly kw: number;
  /** Value words (fixed kinds), 0 for variable values. */
  readonly vw: number;
  /**
   * Nonzero when keys and values are both i32 or u32: bit 0 for i32 keys,
   * bit 1 for u32 keys, bit 2 for u32 values (bit 3 for i32 values).
   */
  readonly intEntries: number;
  readonly keyCodec: Codec<K>;
  readonly valueCodec: Codec<V>;
  readonly #keyName: CodecName;
  readonly #valueName: CodecName;

  // The staged key: q0 (and q1) for fixed kinds, qBytes[0, qLength) otherwise.
  q0 = 0;
  q1 = 0;
  readonly qBytes: Uint8Array;
  qLength = 0;
  // The staged value: vWords for fixed kinds, vBytes[0, vLength) otherwise.
  readonly vWords: Int32Array = new Int32Array(2);
  readonly vBytes: Uint8Array;
  vLength = 0;
  readonly #vView: Uint8Array;

  // A second key slot, to remember a key (a cursor's position) and restage it.
  readonly #saved: Uint8Array;
  #saved0 = 0;
  #saved1 = 0;
  #savedLength = 0;

  constructor(keyCodec: Codec<K>, valueCodec: Codec<V>) {
    this.keyCodec = keyCodec;
    this.valueCodec = valueCodec;
    this.#keyName = keyCodec.name;
    this.#valueName = valueCodec.name;
    this.keyKind = keyCodec.fixedBytes === 4 ? K_W1 : keyCodec.fixedBytes === 8 ? K_W2 : K_VAR;
    this.kw = this.keyKind === K_W1 ? 1 : 2;
    this.vw = valueCodec.fixedBytes === 0 ? 0 : valueCodec.fixedBytes >> 2;
    const keyBits = keyCodec.name === "i32" ? 1 : keyCodec.name === "u32" ? 2 : 0;
    const valueBits = valueCodec.name === "u32" ? 4 : valueCodec.name === "i32" ? 8 : 0;
    this.intEntries = keyBits !== 0 && valueBits !== 0 ? keyBits | valueBits : 0;
    this.qBytes = new Uint8Array(this.keyKind === K_VAR ? keyCodec.maxBytes : 8);
    this.#saved = new Uint8Array(this.qBytes.length);
    this.vBytes = new Uint8Array(Math.max(8, valueCodec.maxBytes));
    this.#vView = new Uint8Array(this.vWords.buffer);
  }

  // ------------------------------------------------------------- staging

  /** Stages a key that `keyCodec.check` returned. */
  stageKey(key: K): void {
    switch (this.#keyName) {
      case "i32":
        this.q0 = key as number;
        return;
      case "u32":
        this.q0 = (key as number) ^ SIGN;
        return;
      case "f64": {
        scratchF64[0] = key as number;
        const lo = scratchI32[0], hi = scratchI32[1];
        if (hi < 0) {
          this.q0 = ~hi ^ SIGN;
          this.q1 = ~lo ^ SIGN;
        } else {
          this.q0 = hi;
          this.q1 = lo ^ SIGN;
        }
        return;
      }
      case "bigint64":
        scratchI64[0] = key as bigint;
        this.q0 = scratchI32[1];
        this.q1 = scratchI32[0] ^ SIGN;
        return;
      default:
        this.qLength = this.keyCodec.encode(key, this.qBytes, 0);
    }
  }

  /** Stages a value that `valueCodec.check` returned. */
  /** stageKey(keyCodec.check(key, what)), in one pass for string keys. */
  stageCheckedKey(key: unknown, what: string): void {
    if (this.keyKind === K_VAR) {
      this.qLength = this.keyCodec.encodeChecked(key, what, this.qBytes, 0);
    } else this.stageKey(this.keyCodec.check(key, what));
  }
  stageValue(value: V): void {
    if (this.vw !== 0) this.valueCodec.encode(value, this.#vView, 0);
    else this.vLength = this.valueCodec.encode(value, this.vBytes, 0);
  }

  /** Stages the key of entry `i` (or a fence ref) of content `w`. */
  stageKeyFrom(i32: Int32Array, u8: Uint8Array, w: number, i: number): void {
    if (this.keyKind !== K_VAR) {
      const at = this.keyWord(i32, w, i);
      this.q0 = i32[at];
      if (this.kw === 2) this.q1 = i32[at + 1];
      return;
    }
    const start = this.keyStart(i32, w, i), end = this.keyEnd(i32, w, i);
    const base = w << 2;
    const q = this.qBytes;
    for (let b = start; b < end; b++) q[b - start] = u8[base + b];
    this.qLength = end - start;
  }

  /** Stages the value of entry `i` of leaf content `w`. */
  stageValueFrom(i32: Int32Array, u8: Uint8Array, w: number, i: number): void {
    const n = countOf(i32, w);
    if (this.vw !== 0) {
      const at = this.valueWord(w, n, i);
      this.vWords[0] = i32[at];
      if (this.vw === 2) this.vWords[1] = i32[at + 1];
      return;
    }
    const offs = this.valueWord(w, n, 0);
    const start = i32[offs + i], end = i32[offs + i + 1];
    const base = w << 2;
    for (let b = start; b < end; b++) this.vBytes[b - start] = u8[base + b];
    this.vLength = end - start;
  }

  /** Remembers the staged key. */
  saveKey(): void {
    this.#saved0 = this.q0;
    this.#saved1 = this.q1;
    if (this.keyKind === K_VAR) {
      this.#saved.set(this.qBytes.subarray(0, this.qLength));
      this.#savedLength = this.qLength;
    }
  }

  /** Stages the remembered key again. */
  restoreKey(): void {
    this.q0 = this.#saved0;
    this.q1 = this.#saved1;
    if (this.keyKind === K_VAR) {
      this.qBytes.set(this.#saved.subarray(0, this.#savedLength));
      this.qLength = this.#savedLength;
    }
  }

  /** The staged key as a JS value. */
  stagedKey(): K {
    switch (this.#keyName) {
      case "i32":
        return this.q0 as K;
      case "u32":
        return ((this.q0 ^ SIGN) >>> 0) as K;
      case "f64":
        return this.#f64Of(this.q0, this.q1) as K;
      case "bigint64":
        scratchI32[1] = this.q0;
        scratchI32[0] = this.q1 ^ SIGN;
        return scratchI64[0] as K;
      default:
        return this.keyCodec.decode(this.qBytes, 0, this.qLength);
    }
  }

  #f64Of(hi: number, lo: number): number {
    if (hi >= 0) {
      scratchI32[1] = hi;
      scratchI32[0] = lo ^ SIGN;
    } else {
      scratchI32[1] = ~(hi ^ SIGN);
      scratchI32[0] = ~(lo ^ SIGN);
    }
    return scratchF64[0];
  }

  // --------------------------------------------------------------- layout

  /** Word index of key `i` (or LOW_REF / HIGH_REF) of fixed-key content `w`. */
  keyWord(_i32: Int32Array, w: number, i: number): number {
    if (i >= 0) return w + C_KEYS + i * this.kw;
    return w + (i === LOW_REF ? C_LOW : C_HIGH);
  }

  /** Byte offset (relative to the content) where variable key `i` starts. */
  keyStart(i32: Int32Array, w: number, i: number): number {
    const n = countOf(i32, w);
    return i32[w + C_KEYS + (i >= 0 ? i : i === LOW_REF ? n : n + 1)];
  }

  /** Byte offset (relative to the content) where variable key `i` ends. */
  keyEnd(i32: Int32Array, w: number, i: number): number {
    const n = countOf(i32, w);
    return i32[w + C_KEYS + (i >= 0 ? i : i === LOW_REF ? n : n + 1) + 1];
  }

  /** Word index just past the keys of content `w` with `n` keys. */
  keysEnd(w: number, n: number): number {
    return w + C_KEYS + (this.keyKind === K_VAR ? n + 3 : n * this.kw);
  }

  /** Word index of child `i` of inner content `w` with `n` separators. */
  childWord(w: number, n: number, i: number): number {
    return this.keysEnd(w, n) + i;
  }

  /**
   * Word index of value `i` of leaf content `w` with `n` keys (fixed
   * values), or of value offset `i` (variable values).
   */
  valueWord(w: number, n: number, i: number): number {
    const end = this.keysEnd(w, n);
    if (this.vw === 2) return ((end + 1) & ~1) + 2 * i;
    return end + i * (this.vw === 0 ? 1 : this.vw);
  }

  // --------------------------------------------------------------- search

  /**
   * Compares the staged key with key `i` (or a fence ref, not infinite) of
   * content `w`: negative, 0 or positive.
   */
  compareStaged(i32: Int32Array, u8: Uint8Array, w: number, i: number): number {
    if (this.keyKind === K_W1) {
      const k = i32[this.keyWord(i32, w, i)];
      return this.q0 < k ? -1 : this.q0 > k ? 1 : 0;
    }
    if (this.keyKind === K_W2) {
      const at = this.keyWord(i32, w, i);
      const h = i32[at];
      if (this.q0 !== h) return this.q0 < h ? -1 : 1;
      const l = i32[at + 1];
      return this.q1 < l ? -1 : this.q1 > l ? 1 : 0;
    }
    const start = this.keyStart(i32, w, i), end = this.keyEnd(i32, w, i);
    return compareBytes(this.qBytes, this.qLength, u8, (w << 2) + start, end - start);
  }

  /** Whether the staged key lies within the fences of content `w`. */
  inFences(i32: Int32Array, u8: Uint8Array, w: number): boolean {
    const flags = i32[w + C_FLAGS];
    if ((flags & LOW_INF) === 0 && this.compareStaged(i32, u8, w, LOW_REF) < 0) return false;
    return (flags & HIGH_INF) !== 0 || this.compareStaged(i32, u8, w, HIGH_REF) < 0;
  }

  /** First index whose key is ≥ the staged key (`n` when none). */
  lowerBound(i32: Int32Array, u8: Uint8Array, w: number): number {
    let lo = 0, hi = countOf(i32, w);
    if (this.keyKind === K_W1) {
      const q = this.q0, base = w + C_KEYS;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (i32[base + mid] < q) lo = mid + 1;
        else hi = mid;
      }
      return lo;
    }
    if (this.keyKind === K_W2) {
      const q0 = this.q0, q1 = this.q1, base = w + C_KEYS;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        const h = i32[base + 2 * mid];
        if (h < q0 || (h === q0 && i32[base + 2 * mid + 1] < q1)) lo = mid + 1;
        else hi = mid;
      }
      return lo;
    }
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.compareStaged(i32, u8, w, mid) > 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** First index whose key is > the staged key: the child to descend into. */
  upperBound(i32: Int32Array, u8: Uint8Array, w: number): number {
    let lo = 0, hi = countOf(i32, w);
    if (this.keyKind === K_W1) {
      const q = this.q0, base = w + C_KEYS;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (i32[base + mid] <= q) lo = mid + 1;
        else hi = mid;
      }
      return lo;
    }
    if (this.keyKind === K_W2) {
      const q0 = this.q0, q1 = this.q1, base = w + C_KEYS;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        const h = i32[base + 2 * mid];
        if (h < q0 || (h === q0 && i32[base + 2 * mid + 1] <= q1)) lo = mid + 1;
        else hi = mid;
      }
      return lo;
    }
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.compareStaged(i32, u8, w, mid) >= 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Whether key `i` of content `w` equals the staged key. */
  keyEquals(i32: Int32Array, u8: Uint8Array, w: number, i: number): boolean {
    if (this.keyKind === K_W1) return i32[w + C_KEYS + i] === this.q0;
    return this.compareStaged(i32, u8, w, i) === 0;
  }

  // ------------------------------------------------------------- decoding

  /** Key `i` of content `w` as a JS value. */
  keyAt(i32: Int32Array, u8: Uint8Array, w: number, i: number): K {
    switch (this.#keyName) {
      case "i32":
        return i32[w + C_KEYS + i] as K;
      case "u32":
        return ((i32[w + C_KEYS + i] ^ SIGN) >>> 0) as K;
      case "f64":
        return this.#f64Of(i32[w + C_KEYS + 2 * i], i32[w + C_KEYS + 2 * i + 1]) as K;
      case "bigint64":
        scratchI32[1] = i32[w + C_KEYS + 2 * i];
        scratchI32[0] = i32[w + C_KEYS + 2 * i + 1] ^ SIGN;
        return scratchI64[0] as K;
      default: {
        const start = i32[w + C_KEYS + i];
        return this.keyCodec.decode(u8, (w << 2) + start, i32[w + C_KEYS + i + 1] - start);
      }
    }
  }

  /** Value `i` of leaf content `w` as a JS value. */
  valueAt(i32: Int32Array, u8: Uint8Array, w: number, i: number): V {
    const n = countOf(i32, w);
    switch (this.#valueName) {
      case "i32":
        return i32[this.valueWord(w, n, i)] as V;
      case "u32":
        return (i32[this.valueWord(w, n, i)] >>> 0) as V;
      case "f64": {
        const at = this.valueWord(w, n, i);
        scratchI32[0] = i32[at];
        scratchI32[1] = i32[at + 1];
        return scratchF64[0] as V;
      }
      case "bigint64": {
        const at = this.valueWord(w, n, i);
        scratchI32[0] = i32[at];
        scratchI32[1] = i32[at + 1];
        return scratchI64[0] as V;
      }
      default: {
        const offs = this.valueWord(w, n, 0);
        const start = i32[offs + i];
        return this.valueCodec.decode(u8, (w << 2) + start, i32[offs + i + 1] - start);
      }
    }
  }

  /** The staged value as a JS value. */
  stagedValue(): V {
    if (this.vw !== 0) return this.valueCodec.decode(this.#vView, 0, this.vw * 4);
    return this.valueCodec.decode(this.vBytes, 0, this.vLength);
  }

  // ------------------------------------------------------------- building

  // A build takes pieces (content, from, to): entries [from, to) of content
  // `content`, or the staged entry when content is STAGED. Inner nodes take
  // child pieces too: children [from, to) of a content, or one pointer
  // (CHILD, pointer). Fences are refs (content, index): INFINITE, STAGED, or
  // a key index / LOW_REF / HIGH_REF of a content.
  readonly #pieces: Int32Array = new Int32Array(3 * 8);
  #pieceCount = 0;
  readonly #children: Int32Array = new Int32Array(3 * 8);
  #childCount = 0;

  /** Starts a new build. */
  begin(): void {
    this.#pieceCount = 0;
    this.#childCount = 0;
  }

  /** Adds entries [from, to) of content `w` (or the staged entry). */
  piece(w: number, from: number, to: number): void {
    if (w !== STAGED && from >= to) return;
    const p = 3 * this.#pieceCount++;
    this.#pieces[p] = w;
    this.#pieces[p + 1] = from;
    this.#pieces[p + 2] = to;
  }

  /** Adds children [from, to) of inner content `w`. */
  children(w: number, from: number, to: number): void {
    if (from >= to) return;
    const p = 3 * this.#childCount++;
    this.#children[p] = w;
    this.#children[p + 1] = from;
    this.#children[p + 2] = to;
  }

  /** Adds one child pointer. */
  child(node: number): void {
    const p = 3 * this.#childCount++;
    this.#children[p] = CHILD;
    this.#children[p + 1] = node;
    this.#children[p + 2] = 0;
  }

  /**
   * Allocates and fills a content block from the pieces, with fences
   * (lowW, lowI) and (highW, highI). Returns its byte pointer. Throws
   * HeapExhaustedError before anything shared is written.
   */
  build(
    heap: SharedHeap,
    leaf: boolean,
    lowW: number,
    lowI: number,
    highW: number,
    highI: number,
  ): number {
    const pieces = this.#pieces, pieceCount = this.#pieceCount;
    let i32 = heap.i32;
    let n = 0;
    let keyBytes = 0, valueBytes = 0;
    const varKeys = this.keyKind === K_VAR, varValues = leaf && this.vw === 0;
    for (let p = 0; p < 3 * pieceCount; p += 3) {
      const w = pieces[p];
      if (w === STAGED) {
        n++;
        if (varKeys) keyBytes += this.qLength;
        if (varValues) valueBytes += this.vLength;
        continue;
      }
      const from = pieces[p + 1], to = pieces[p + 2];
      n += to - from;
      if (varKeys) keyBytes += this.keyStart(i32, w >> 2, to) - this.keyStart(i32, w >> 2, from);
      if (varValues) {
        const offs = this.valueWord(w >> 2, countOf(i32, w >> 2), 0);
        valueBytes += i32[offs + to] - i32[offs + from];
      }
    }
    if (varKeys) {
      keyBytes += this.#refLength(i32, lowW, lowI) + this.#refLength(i32, highW, highI);
    }
    let words: number;
    if (leaf) {
      words = this.valueWord(0, n, 0) + (this.vw === 0 ? n + 1 : n * this.vw);
    } else {
      words = this.childWord(0, n, n + 1);
    }
    const bytes = ((words << 2) + keyBytes + valueBytes + 15) & ~15;
    const ptr = heap.allocate(bytes);
    heap.ensure(ptr + bytes);
    i32 = heap.i32;
    const u8 = heap.u8;
    const w = ptr >> 2;
    i32[w + C_META] = (n << 2) | (leaf ? LEAF : 0);
    i32[w + C_FLAGS] = (lowW === INFINITE ? LOW_INF : 0) | (highW === INFINITE ? HIGH_INF : 0);
    i32[w + C_BYTES] = bytes;
    i32[w + 3] = 0;

    // Keys.
    let k = 0;
    if (!varKeys) {
      const kw = this.kw;
      for (let p = 0; p < 3 * pieceCount; p += 3) {
        const src = pieces[p];
        if (src === STAGED) {
          i32[w + C_KEYS + k * kw] = this.q0;
          if (kw === 2) i32[w + C_KEYS + k * kw + 1] = this.q1;
          k++;
          continue;
        }
        const from = pieces[p + 1], to = pieces[p + 2];
        const s = (src >> 2) + C_KEYS;
        i32.copyWithin(w + C_KEYS + k * kw, s + from * kw, s + to * kw);
        k += to - from;
      }
      this.#writeFixedFence(i32, w + C_LOW, lowW, lowI);
      this.#writeFixedFence(i32, w + C_HIGH, highW, highI);
    } else {
      let at = words << 2; // byte offset relative to the content
      const offs = w + C_KEYS;
      for (let p = 0; p < 3 * pieceCount; p += 3) {
        const src = pieces[p];
        if (src === STAGED) {
          i32[offs + k++] = at;
          u8.set(this.qBytes.subarray(0, this.qLength), ptr + at);
          at += this.qLength;
          continue;
        }
        const from = pieces[p + 1], to = pieces[p + 2];
        at = copyVarRun(i32, u8, src, (src >> 2) + C_KEYS, from, to, ptr, offs + k, at);
        k += to - from;
      }
      i32[offs + n] = at;
      at = this.#writeVarFence(i32, u8, ptr, at, lowW, lowI);
      i32[offs + n + 1] = at;
      at = this.#writeVarFence(i32, u8, ptr, at, highW, highI);
      i32[offs + n + 2] = at;
    }

    if (leaf) this.#writeValues(i32, u8, ptr, n, words, keyBytes);
    else this.#writeChildren(i32, w, n);
    return ptr;
  }

  #refLength(i32: Int32Array, w: number, i: number): number {
    if (w === INFINITE) return 0;
    if (w === STAGED) return this.qLength;
    return this.keyEnd(i32, w >> 2, i) - this.keyStart(i32, w >> 2, i);
  }

  #writeFixedFence(i32: Int32Array, to: number, w: number, i: number): void {
    if (w === INFINITE) {
      i32[to] = 0;
      i32[to + 1] = 0;
    } else if (w === STAGED) {
      i32[to] = this.q0;
      i32[to + 1] = this.q1;
    } else {
      const at = this.keyWord(i32, w >> 2, i);
      i32[to] = i32[at];
      i32[to + 1] = this.kw === 2 ? i32[at + 1] : 0;
    }
  }

  #writeVarFence(
    i32: Int32Array,
    u8: Uint8Array,
    ptr: number,
    at: number,
    w: number,
    i: number,
  ): number {
    if (w === INFINITE) return at;
    if (w === STAGED) {
      u8.set(this.qBytes.subarray(0, this.qLength), ptr + at);
      return at + this.qLength;
    }
    const start = this.keyStart(i32, w >> 2, i), end = this.keyEnd(i32, w >> 2, i);
    u8.copyWithin(ptr + at, w + start, w + end);
    return at + end - start;
  }

  #writeValues(
    i32: Int32Array,
    u8: Uint8Array,
    ptr: number,
    n: number,
    words: number,
    keyBytes: number,
  ): void {
    const pieces = this.#pieces, pieceCount = this.#pieceCount;
    const w = ptr >> 2;
    const vw = this.vw;
    let k = 0;
    if (vw !== 0) {
      const base = this.valueWord(w, n, 0);
      for (let p = 0; p < 3 * pieceCount; p += 3) {
        const src = pieces[p];
        if (src === STAGED) {
          i32[base + k * vw] = this.vWords[0];
          if (vw === 2) i32[base + k * vw + 1] = this.vWords[1];
          k++;
          continue;
        }
        const from = pieces[p + 1], to = pieces[p + 2];
        const sw = src >> 2;
        const s = this.valueWord(sw, countOf(i32, sw), 0);
        i32.copyWithin(base + k * vw, s + from * vw, s + to * vw);
        k += to - from;
      }
      return;
    }
    const offs = this.valueWord(w, n, 0);
    let at = (words << 2) + keyBytes;
    for (let p = 0; p < 3 * pieceCount; p += 3) {
      const src = pieces[p];
      if (src === STAGED) {
        i32[offs + k++] = at;
        u8.set(this.vBytes.subarray(0, this.vLength), ptr + at);
        at += this.vLength;
        continue;
      }
      const from = pieces[p + 1], to = pieces[p + 2];
      const sw = src >> 2;
      at = copyVarRun(
        i32,
        u8,
        src,
        this.valueWord(sw, countOf(i32, sw), 0),
        from,
        to,
        ptr,
        offs + k,
        at,
      );
      k += to - from;
    }
    i32[offs + n] = at;
  }

  #writeChildren(i32: Int32Array, w: number, n: number): void {
    const children = this.#children, childCount = this.#childCount;
    const base = this.childWord(w, n, 0);
    let k = 0;
    for (let p = 0; p < 3 * childCount; p += 3) {
      const src = children[p];
      if (src === CHILD) {
        i32[base + k++] = children[p + 1];
        continue;
      }
      const from = children[p + 1], to = children[p + 2];
      const sw = src >> 2;
      const s = this.childWord(sw, countOf(i32, sw), 0);
      i32.copyWithin(base + k, s + from, s + to);
      k += to - from;
    }
    if (k !== n + 1) throw new Error(`internal: inner node built with ${k} children for ${n} keys`);
  }
}

/**
 * Copies variable-size items [from, to) of content `src` (offsets at word
 * `srcOffsets`, relative to `src`) into the content at `ptr`: their offsets,
 * rebased, from word `offsets` on, and their bytes from byte `at` (relative
 * to `ptr`). Returns the byte offset after them.
 */
function copyVarRun(
  i32: Int32Array,
  u8: Uint8Array,
  src: number,
  srcOffsets: number,
  from: number,
  to: number,
  ptr: number,
  offsets: number,
  at: number,
): number {
  const start = i32[srcOffsets + from], end = i32[srcOffsets + to];
  const shift = at - start;
  for (let e = from; e < to; e++) i32[offsets + e - from] = i32[srcOffsets + e] + shift;
  u8.copyWithin(ptr + at, src + start, src + end);
  return at + end - start;
}

/** Compares a[0, aLength) with b[bAt, bAt + bLength) as unsigned bytes. */
export function compareBytes(
  a: Uint8Array,
  aLength: number,
  b: Uint8Array,
  bAt: number,
  bLength: number,
): number {
  const n = aLength < bLength ? aLength : bLength;
  for (let i = 0; i < n; i++) {
    const d = a[i] - b[bAt + i];
    if (d !== 0) return d;
  }
  return aLength - bLength;
}

/**
 * Builds a node directly from JS keys [from, to) (checked already), with
 * values (leaf) or child pointers (inner: `to - from + 1` of them, from
 * `childFrom`), and fences `low`/`high` (undefined: infinite). For bulk
 * loading.
 */
export function buildFromArrays<K, V>(
  format: Format<K, V>,
  heap: SharedHeap,
  keys: readonly K[],
  from: number,
  to: number,
  values: readonly V[] | undefined,
  children: readonly number[] | undefined,
  childFrom: number,
  low: K | undefined,
  high: K | undefined,
): number {
  const leaf = values !== undefined;
  const n = to - from;
  const varKeys = format.keyKind === K_VAR, varValues = leaf && format.vw === 0;
  let keyBytes = 0, valueBytes = 0;
  if (varKeys) {
    for (let i = from; i < to; i++) {
      format.stageKey(keys[i]);
      keyBytes += format.qLength;
    }
    if (low !== undefined) {
      format.stageKey(low);
      keyBytes += format.qLength;
    }
    if (high !== undefined) {
      format.stageKey(high);
      keyBytes += format.qLength;
    }
  }
  if (varValues) {
    for (let i = from; i < to; i++) {
      format.stageValue(values![i]);
      valueBytes += format.vLength;
    }
  }
  const words = leaf
    ? format.valueWord(0, n, 0) + (format.vw === 0 ? n + 1 : n * format.vw)
    : format.childWord(0, n, n + 1);
  const bytes = ((words << 2) + keyBytes + valueBytes + 15) & ~15;
  const ptr = heap.allocate(bytes);
  heap.ensure(ptr + bytes);
  const i32 = heap.i32, u8 = heap.u8;
  const w = ptr >> 2;
  i32[w + C_META] = (n << 2) | (leaf ? LEAF : 0);
  i32[w + C_FLAGS] = (low === undefined ? LOW_INF : 0) | (high === undefined ? HIGH_INF : 0);
  i32[w + C_BYTES] = bytes;
  i32[w + 3] = 0;
  let at = words << 2;
  const putKey = (slot: number, key: K | undefined, fixedAt: number): void => {
    if (key === undefined) {
      if (varKeys) i32[w + C_KEYS + slot] = at;
      return;
    }
    format.stageKey(key);
    if (!varKeys) {
      i32[fixedAt] = format.q0;
      if (format.kw === 2) i32[fixedAt + 1] = format.q1;
      return;
    }
    i32[w + C_KEYS + slot] = at;
    u8.set(format.qBytes.subarray(0, format.qLength), ptr + at);
    at += format.qLength;
  };
  for (let i = 0; i < n; i++) putKey(i, keys[from + i], w + C_KEYS + i * format.kw);
  putKey(n, low, w + C_LOW);
  putKey(n + 1, high, w + C_HIGH);
  if (varKeys) i32[w + C_KEYS + n + 2] = at;
  if (!leaf) {
    const base = format.childWord(w, n, 0);
    for (let i = 0; i <= n; i++) i32[base + i] = children![childFrom + i];
    return ptr;
  }
  const base = format.valueWord(w, n, 0);
  for (let i = 0; i < n; i++) {
    format.stageValue(values![from + i]);
    if (format.vw !== 0) {
      i32[base + i * format.vw] = format.vWords[0];
      if (format.vw === 2) i32[base + i * format.vw + 1] = format.vWords[1];
    } else {
      i32[base + i] = at;
      u8.set(format.vBytes.subarray(0, format.vLength), ptr + at);
      at += format.vLength;
    }
  }
  if (format.vw === 0) i32[base + n] = at;
  return ptr;
}
