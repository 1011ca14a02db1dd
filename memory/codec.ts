/**
 * Codecs turn keys and values into bytes in shared memory and back.
 *
 * A codec is picked by name when a structure is created:
 *
 * | name       | JS type      | encoding                                        |
 * | ---------- | ------------ | ----------------------------------------------- |
 * | `i32`      | `number`     | 4 bytes, two's complement, little-endian        |
 * | `u32`      | `number`     | 4 bytes, unsigned, little-endian                |
 * | `f64`      | `number`     | 8 bytes, IEEE 754 binary64, little-endian       |
 * | `bigint64` | `bigint`     | 8 bytes, two's complement, little-endian        |
 * | `string`   | `string`     | UTF-8, no terminator, at most `maxBytes` bytes  |
 * | `bytes`    | `Uint8Array` | the bytes as they are, at most `maxBytes` bytes |
 *
 * Fixed-size encodings are little-endian, so an `Int32Array`, `Float64Array` or
 * `BigInt64Array` view can read them in place at an aligned offset; the codecs
 * themselves also read and write at any byte offset. Variable-size encodings
 * carry no length: the structure that stores them keeps the length.
 *
 * **Validation.** `check()` is the only place that accepts untrusted input. It
 * throws a `TypeError` (wrong type, or a string that UTF-8 cannot hold) or a
 * `RangeError` (out of range, too long) before anything is written, and
 * returns the normalized value that `encode()` expects.
 *
 * **Order.** `compare()` and `compareEncoded()` give the same total order:
 * numbers and bigints numerically; strings by their UTF-8 bytes, which is
 * Unicode code point order; byte arrays lexicographically, a proper prefix
 * first. Code point order differs from the order of JS `<` on strings, which
 * compares UTF-16 code units: `"\uFFFF" < "😀"` here, the other way round in JS.
 *
 * **f64 keys.** Keys follow `Map`'s SameValueZero, except that NaN is refused:
 * `-0` becomes `+0`, so both find the same entry, and a NaN key throws a
 * `RangeError`. An f64 codec with `role: "value"` keeps `-0` bit for bit and
 * keeps NaN as NaN (stored as the one canonical quiet NaN); its order puts `-0`
 * before `+0` and NaN after `+Infinity`.
 *
 * @example
 * ```ts
 * import { codec } from "@sabre/sabre";
 *
 * const keys = codec("string", { maxBytes: 64 });
 * const key = keys.check("héllo", "key");
 * const buf = new Uint8Array(new SharedArrayBuffer(64));
 * const n = keys.encode(key, buf, 3);
 * console.assert(n === keys.encodedLength(key) && n === 6);
 * console.assert(keys.decode(buf, 3, n) === "héllo");
 * ```
 *
 * @module
 */

import { describeValue } from "./errors.ts";
import { hashBytes } from "./_murmur.ts";

/**
 * The name of a codec.
 *
 * @example
 * ```ts
 * import { type CodecName, codec } from "@sabre/sabre";
 *
 * const name: CodecName = "u32";
 * console.assert(codec(name).fixedBytes === 4);
 * ```
 */
export type CodecName = "i32" | "u32" | "f64" | "bigint64" | "string" | "bytes";

/**
 * The number that stands for each codec in a structure's shared header
 * (from 1; 0 is never used), so that `attach()` in another worker rebuilds
 * the same codecs. Own properties only: check names with `Object.hasOwn`.
 *
 * @example
 * ```ts
 * import { CODEC_IDS, codecNameOf } from "@sabre/sabre";
 * console.assert(codecNameOf(CODEC_IDS.string) === "string");
 * ```
 */
export const CODEC_IDS: Readonly<Record<CodecName, number>> = Object.freeze({
  i32: 1,
  u32: 2,
  f64: 3,
  bigint64: 4,
  string: 5,
  bytes: 6,
});

// Index 0 is no codec: a zeroed header word must not read as one.
const CODEC_BY_ID: readonly (CodecName | undefined)[] = [
  undefined,
  "i32",
  "u32",
  "f64",
  "bigint64",
  "string",
  "bytes",
];

/**
 * The codec name of a {@linkcode CODEC_IDS} number read from a header.
 *
 * @throws {RangeError} If `id` is no codec's number.
 *
 * @example
 * ```ts
 * import { CODEC_IDS, codecNameOf } from "@sabre/sabre";
 * console.assert(codecNameOf(CODEC_IDS.u32) === "u32");
 * ```
 */
export function codecNameOf(id: number): CodecName {
  const name = Number.isInteger(id) ? CODEC_BY_ID[id] : undefined;
  if (name === undefined) {
    throw new RangeError(
      `Cannot name codec as 'id' must be one of the CODEC_IDS numbers 1 to ${
        CODEC_BY_ID.length - 1
      }: current value is ${describeValue(id)}`,
    );
  }
  return name;
}

/**
 * The JS type of the values a codec of name `N` handles.
 *
 * @example
 * ```ts
 * import type { CodecValue } from "@sabre/sabre";
 *
 * const n: CodecValue<"f64"> = 1.5;
 * const b: CodecValue<"bigint64"> = 7n;
 * const u: CodecValue<"bytes"> = new Uint8Array([1, 2]);
 * console.assert(n === 1.5 && b === 7n && u.length === 2);
 * ```
 */
export type CodecValue<N extends CodecName> = N extends "i32" | "u32" | "f64" ? number
  : N extends "bigint64" ? bigint
  : N extends "string" ? string
  : Uint8Array;

/**
 * Options of {@linkcode codec}.
 *
 * @example
 * ```ts
 * import { codec, type CodecOptions } from "@sabre/sabre";
 *
 * const options: CodecOptions = { role: "value", maxBytes: 4096 };
 * const c = codec("bytes", options);
 * console.assert(c.role === "value" && c.maxBytes === 4096);
 * ```
 */
export interface CodecOptions {
  /**
   * What the codec encodes. It matters only for `f64`: a key refuses NaN and
   * turns `-0` into `+0`; a value keeps both.
   *
   * @default {"key"}
   */
  role?: "key" | "value";
  /**
   * The largest encoded size, in bytes, of a `string` or `bytes` value: an
   * integer from 1 to 1048576. Fixed-size codecs check the option and then
   * ignore it.
   *
   * @default {1024}
   */
  maxBytes?: number;
  /**
   * The name that error messages give the `maxBytes` limit: a structure
   * that takes the limit as an option of its own passes that option's name,
   * such as `"maxKeyBytes"`, so that a refused value points at the option
   * the user set.
   *
   * @default {"maxBytes"}
   */
  limitName?: string;
}

/**
 * Encodes values of type `T` into bytes and back, and compares and hashes the
 * encoded bytes. Get one from {@linkcode codec}.
 *
 * Only `check()` validates its input. The other methods trust that their value
 * went through `check()`; they still refuse a byte span that lies outside its
 * buffer, with a `RangeError`, rather than write or read past its end.
 * `encode`, `encodedLength`, `hash`, `equals`, `compare` and `compareEncoded`
 * allocate nothing for fixed-size codecs and for short strings.
 *
 * @typeParam T The JS type of the values, see {@linkcode CodecValue}.
 *
 * @example
 * ```ts
 * import { type Codec, codec } from "@sabre/sabre";
 *
 * function roundTrip<T>(c: Codec<T>, input: unknown): T {
 *   const value = c.check(input, "value");
 *   const buf = new Uint8Array(c.encodedLength(value));
 *   const n = c.encode(value, buf, 0);
 *   return c.decode(buf, 0, n);
 * }
 * console.assert(roundTrip(codec("i32"), -5) === -5);
 * console.assert(roundTrip(codec("bigint64"), 1n << 62n) === 1n << 62n);
 * ```
 */
export interface Codec<T> {
  /** The codec's name. */
  readonly name: CodecName;
  /** Whether the codec encodes keys or values (see {@linkcode CodecOptions.role}). */
  readonly role: "key" | "value";
  /** The size of every encoding: 4 for `i32` and `u32`, 8 for `f64` and `bigint64`, 0 for `string` and `bytes`, whose size varies. */
  readonly fixedBytes: number;
  /** The size of the largest encoding: `fixedBytes` for fixed-size codecs, the `maxBytes` option otherwise. */
  readonly maxBytes: number;
  /**
   * Validates `value` and returns it normalized (`-0` becomes `+0` for `i32`,
   * `u32` and `f64` keys). Nothing is written.
   *
   * @param value The input to check.
   * @param what The name of the input in error messages, as in `key` or `value`.
   * @throws {TypeError} If `value` has the wrong type, or is a string with a lone surrogate.
   * @throws {RangeError} If `value` is out of range, a NaN key, or longer than `maxBytes` once encoded.
   *
   * @example
   * ```ts
   * import { codec } from "@sabre/sabre";
   * const ids = codec("i32");
   * console.assert(Object.is(ids.check(-0, "id"), 0));
   * let caught: unknown;
   * try {
   *   ids.check(1.5, "id");
   * } catch (e) {
   *   caught = e;
   * }
   * console.assert(caught instanceof RangeError && caught.message.includes("id"));
   * ```
   */
  check(value: unknown, what: string): T;
  /**
   * Returns the exact number of bytes `encode` writes for `value`, without
   * allocating.
   *
   * @example
   * ```ts
   * import { codec } from "@sabre/sabre";
   * const names = codec("string");
   * console.assert(names.encodedLength("é") === 2 && names.encodedLength("😀") === 4);
   * console.assert(codec("f64").encodedLength(1) === 8);
   * ```
   */
  encodedLength(value: T): number;
  /**
   * Writes `value` into `target` at byte `offset`, which need not be aligned,
   * and returns the number of bytes written. `target` may be a view of a
   * (growable) `SharedArrayBuffer`. The writes are plain, not atomic.
   *
   * @throws {RangeError} If the encoding does not fit in `target` at `offset`; nothing is written then.
   *
   * @example
   * ```ts
   * import { codec } from "@sabre/sabre";
   * const ids = codec("u32");
   * const buf = new Uint8Array(new SharedArrayBuffer(8));
   * console.assert(ids.encode(258, buf, 1) === 4); // any offset
   * console.assert(buf[1] === 2 && buf[2] === 1); // little-endian
   * ```
   */
  encode(value: T, target: Uint8Array, offset: number): number;
  /**
   * `encode(check(value, what), target, offset)`, in one pass over a string
   * where the target has room for three bytes per code unit. Unlike
   * `encode`, it may have written into `target` when it throws.
   *
   * @throws {TypeError} As {@linkcode Codec.check}.
   * @throws {RangeError} As {@linkcode Codec.check}, or if the encoding does not fit in `target`.
   *
   * @example
   * ```ts
   * import { codec } from "@sabre/sabre";
   * const names = codec("string", { maxBytes: 8 });
   * const buf = new Uint8Array(24);
   * const n = names.encodeChecked("héllo", "name", buf, 0);
   * console.assert(n === 6 && names.decode(buf, 0, n) === "héllo");
   * ```
   */
  encodeChecked(value: unknown, what: string, target: Uint8Array, offset: number): number;
  /**
   * Reads the value encoded in `length` bytes of `source` at `offset`. A
   * fixed-size codec requires `length === fixedBytes`. `bytes` returns a new
   * array that does not share memory with `source`. A malformed UTF-8 sequence
   * decodes to U+FFFD, as `TextDecoder` does, so torn or foreign bytes never
   * throw.
   *
   * @throws {RangeError} If the span lies outside `source`.
   *
   * @example
   * ```ts
   * import { codec } from "@sabre/sabre";
   * const blobs = codec("bytes");
   * const buf = Uint8Array.of(9, 1, 2, 3);
   * const copy = blobs.decode(buf, 1, 3);
   * buf[1] = 0;
   * console.assert(copy.join() === "1,2,3"); // a copy, not a view of buf
   * ```
   */
  decode(source: Uint8Array, offset: number, length: number): T;
  /**
   * Hashes `length` encoded bytes of `source` at `offset` to an integer in
   * [0, 2^32) (MurmurHash3, x86 32-bit variant). Equal values have equal
   * encodings, hence equal hashes. Not meant to resist chosen-input flooding,
   * though a secret `seed` makes that harder.
   *
   * @param seed Mixed into the hash; defaults to 0.
   * @throws {RangeError} If the span lies outside `source`.
   *
   * @example
   * ```ts
   * import { codec } from "@sabre/sabre";
   * const ids = codec("i32");
   * const a = new Uint8Array(4);
   * const b = new Uint8Array(8);
   * ids.encode(42, a, 0);
   * ids.encode(42, b, 4);
   * const h = ids.hash(a, 0, 4);
   * console.assert(h === ids.hash(b, 4, 4) && h >= 0 && h < 2 ** 32);
   * console.assert(ids.hash(a, 0, 4, 7) !== h); // another seed, another hash
   * ```
   */
  hash(source: Uint8Array, offset: number, length: number, seed?: number): number;
  /**
   * Whether `a` and `b` are the same value: `Object.is` for an `f64` codec
   * with `role: "value"`, content for `bytes`, `===` otherwise.
   *
   * @example
   * ```ts
   * import { codec } from "@sabre/sabre";
   * console.assert(codec("bytes").equals(Uint8Array.of(1, 2), Uint8Array.of(1, 2)));
   * const prices = codec("f64", { role: "value" });
   * console.assert(prices.equals(NaN, NaN) && !prices.equals(0, -0));
   * console.assert(codec("f64").equals(0, -0)); // role "key": ===
   * ```
   */
  equals(a: T, b: T): boolean;
  /**
   * Returns -1, 0 or 1 as `a` sorts before, with, or after `b` (see the
   * module doc for the order).
   *
   * @example
   * ```ts
   * import { codec } from "@sabre/sabre";
   * const names = codec("string");
   * console.assert(names.compare("a", "b") === -1 && names.compare("b", "b") === 0);
   * // code point order, where JS `<` compares UTF-16 code units:
   * console.assert(names.compare("\uFFFF", "😀") === -1 && "\uFFFF" > "😀");
   * ```
   */
  compare(a: T, b: T): number;
  /**
   * Same as {@linkcode Codec.compare} on the decoded values, computed on the encodings.
   *
   * @throws {RangeError} If either span lies outside its buffer.
   *
   * @example
   * ```ts
   * import { codec } from "@sabre/sabre";
   * const ids = codec("i32");
   * const a = new Uint8Array(4);
   * const b = new Uint8Array(4);
   * ids.encode(-1, a, 0);
   * ids.encode(1, b, 0);
   * console.assert(ids.compareEncoded(a, 0, 4, b, 0, 4) === -1 && ids.compare(-1, 1) === -1);
   * ```
   */
  compareEncoded(
    a: Uint8Array,
    aOff: number,
    aLen: number,
    b: Uint8Array,
    bOff: number,
    bLen: number,
  ): number;
}

const CODEC_NAMES: readonly CodecName[] = ["i32", "u32", "f64", "bigint64", "string", "bytes"];
const DEFAULT_MAX_BYTES = 1024;
const MAX_BYTES_LIMIT = 1 << 20;
const I64_MIN = -(1n << 63n);
const I64_MAX = (1n << 63n) - 1n;

/**
 * Whether `x` names a codec.
 *
 * @example
 * ```ts
 * import { isCodecName } from "@sabre/sabre";
 *
 * console.assert(isCodecName("string"));
 * console.assert(!isCodecName("int"));
 * ```
 */
export function isCodecName(x: unknown): x is CodecName {
  return typeof x === "string" && (CODEC_NAMES as readonly string[]).includes(x);
}

/**
 * Returns a codec for the named type.
 *
 * @param name One of `"i32"`, `"u32"`, `"f64"`, `"bigint64"`, `"string"` or `"bytes"`.
 * @param options The role (`"key"` by default) and, for `string` and `bytes`, `maxBytes`.
 * @throws {TypeError} If `name` is not a codec name, `options` is not an object, `role` is
 * not `"key"` or `"value"`, or `maxBytes` is not a number.
 * @throws {RangeError} If `maxBytes` is not an integer from 1 to 1048576.
 *
 * @example
 * ```ts
 * import { codec } from "@sabre/sabre";
 *
 * const keys = codec("f64");
 * console.assert(Object.is(keys.check(-0, "key"), 0));
 * try {
 *   keys.check(NaN, "key");
 * } catch (e) {
 *   console.assert(e instanceof RangeError);
 * }
 *
 * const values = codec("f64", { role: "value" });
 * console.assert(Object.is(values.check(-0, "value"), -0));
 *
 * const names = codec("string", { maxBytes: 32 });
 * console.assert(names.compare("\uFFFF", "😀") < 0); // code point order
 * ```
 */
export function codec<N extends CodecName>(
  name: N,
  options?: CodecOptions,
): Codec<CodecValue<N>> {
  if (!isCodecName(name)) {
    throw new TypeError(
      `Cannot create codec as 'name' must be one of ${
        CODEC_NAMES.map((n) => `"${n}"`).join(", ")
      }` +
        `: current value is ${describeValue(name)}`,
    );
  }
  if (options !== undefined && (options === null || typeof options !== "object")) {
    throw new TypeError(
      `Cannot create ${name} codec as 'options' must be an object: current value is ${
        describeValue(options)
      }`,
    );
  }
  const role = options?.role === undefined ? "key" : options.role;
  if (role !== "key" && role !== "value") {
    throw new TypeError(
      `Cannot create ${name} codec as 'role' must be "key" or "value": current value is ${
        describeValue(role)
      }`,
    );
  }
  const maxBytes = options?.maxBytes === undefined ? DEFAULT_MAX_BYTES : options.maxBytes;
  if (typeof maxBytes !== "number") {
    throw new TypeError(
      `Cannot create ${name} codec as 'maxBytes' must be a number: current value is ${
        describeValue(maxBytes)
      }`,
    );
  }
  if (!Number.isInteger(maxBytes) || maxBytes < 1 || maxBytes > MAX_BYTES_LIMIT) {
    throw new RangeError(
      `Cannot create ${name} codec as 'maxBytes' must be an integer in [1, ${MAX_BYTES_LIMIT}]` +
        `: current value is ${describeValue(maxBytes)}`,
    );
  }
  const limitName = options?.limitName === undefined ? "maxBytes" : options.limitName;
  if (typeof limitName !== "string") {
    throw new TypeError(
      `Cannot create ${name} codec as 'limitName' must be a string: current value is ${
        describeValue(limitName)
      }`,
    );
  }
  let c: Codec<number> | Codec<bigint> | Codec<string> | Codec<Uint8Array>;
  switch (name) {
    case "i32":
      c = new I32Codec(role);
      break;
    case "u32":
      c = new U32Codec(role);
      break;
    case "f64":
      c = new F64Codec(role);
      break;
    case "bigint64":
      c = new BigInt64Codec(role);
      break;
    case "string":
      c = new StringCodec(role, maxBytes, limitName);
      break;
    default:
      c = new BytesCodec(role, maxBytes, limitName);
  }
  return c as unknown as Codec<CodecValue<N>>;
}

// ---------------------------------------------------------------------------
// Shared helpers. Each is small and monomorphic so that V8 inlines it.

/**
 * Scratch space for moving 8-byte numbers between a number or bigint and a
 * byte array at any offset. A worker runs one call at a time, so one scratch
 * area per module instance is enough, and the DataView pins little-endian
 * order whatever the host's byte order.
 */
const scratchBytes = new Uint8Array(8);
const scratchView = new DataView(scratchBytes.buffer);

function spanError(
  op: string,
  name: CodecName,
  buf: Uint8Array,
  offset: number,
  length: number,
  offsetName = "offset",
  lengthName = "length",
): RangeError {
  if (length >>> 0 !== length) {
    return new RangeError(
      `Cannot ${op} ${name} as '${lengthName}' must be a non-negative integer` +
        `: current value is ${describeValue(length)}`,
    );
  }
  if (offset >>> 0 !== offset) {
    return new RangeError(
      `Cannot ${op} ${name} as '${offsetName}' must be a non-negative integer` +
        `: current value is ${describeValue(offset)}`,
    );
  }
  return new RangeError(
    `Cannot ${op} ${name} as ${length} bytes at '${offsetName}' do not fit in a buffer of ` +
      `${buf.length} bytes: current value is ${describeValue(offset)}`,
  );
}

function fixedLengthError(
  op: string,
  name: CodecName,
  fixed: number,
  length: number,
  lengthName = "length",
): RangeError {
  return new RangeError(
    `Cannot ${op} ${name} as '${lengthName}' must be ${fixed}: current value is ${
      describeValue(length)
    }`,
  );
}

/**
 * Whether [offset, offset + length) is a span of whole bytes inside `buf`.
 * `x >>> 0 === x` holds exactly for integers in [0, 2^32), so it also refuses
 * NaN, negative and fractional offsets, which typed arrays would silently
 * ignore on write and read as `undefined`.
 */
function inBounds(buf: Uint8Array, offset: number, length: number): boolean {
  return offset >>> 0 === offset && length >>> 0 === length && offset + length <= buf.length;
}

function readI32(s: Uint8Array, o: number): number {
  return s[o] | (s[o + 1] << 8) | (s[o + 2] << 16) | (s[o + 3] << 24);
}

function writeI32(t: Uint8Array, o: number, v: number): void {
  // Uint8Array stores keep the low 8 bits, so no masking is needed.
  t[o] = v;
  t[o + 1] = v >> 8;
  t[o + 2] = v >> 16;
  t[o + 3] = v >> 24;
}

function writeScratch(t: Uint8Array, o: number): void {
  t[o] = scratchBytes[0];
  t[o + 1] = scratchBytes[1];
  t[o + 2] = scratchBytes[2];
  t[o + 3] = scratchBytes[3];
  t[o + 4] = scratchBytes[4];
  t[o + 5] = scratchBytes[5];
  t[o + 6] = scratchBytes[6];
  t[o + 7] = scratchBytes[7];
}

function readScratch(s: Uint8Array, o: number): void {
  scratchBytes[0] = s[o];
  scratchBytes[1] = s[o + 1];
  scratchBytes[2] = s[o + 2];
  scratchBytes[3] = s[o + 3];
  scratchBytes[4] = s[o + 4];
  scratchBytes[5] = s[o + 5];
  scratchBytes[6] = s[o + 6];
  scratchBytes[7] = s[o + 7];
}

function readF64(s: Uint8Array, o: number): number {
  readScratch(s, o);
  return scratchView.getFloat64(0, true);
}

function sign(a: number, b: number): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Lexicographic byte order; a proper prefix sorts first. */
function compareBytes(
  a: Uint8Array,
  aOff: number,
  aLen: number,
  b: Uint8Array,
  bOff: number,
  bLen: number,
): number {
  const n = aLen < bLen ? aLen : bLen;
  for (let i = 0; i < n; i++) {
    const x = a[aOff + i];
    const y = b[bOff + i];
    if (x !== y) return x < y ? -1 : 1;
  }
  return sign(aLen, bLen);
}

// ---------------------------------------------------------------------------
// Fixed-size codecs.

class I32Codec implements Codec<number> {
  readonly name = "i32" as const;
  readonly fixedBytes = 4;
  readonly maxBytes = 4;
  readonly role: "key" | "value";

  constructor(role: "key" | "value") {
    this.role = role;
  }

  check(value: unknown, what: string): number {
    if (typeof value !== "number") {
      throw new TypeError(
        `Cannot use ${what} as i32 as it is not a number: current value is ${describeValue(value)}`,
      );
    }
    // (x | 0) === x holds for the integers in range, and for -0, which the
    // result turns into +0.
    if ((value | 0) !== value) {
      throw new RangeError(
        `Cannot use ${what} as i32 as it is not an integer in [-2147483648, 2147483647]` +
          `: current value is ${describeValue(value)}`,
      );
    }
    return value | 0;
  }

  encodedLength(_value: number): number {
    return 4;
  }

  encodeChecked(value: unknown, what: string, target: Uint8Array, offset: number): number {
    return this.encode(this.check(value, what), target, offset);
  }

  encode(value: number, target: Uint8Array, offset: number): number {
    if (!inBounds(target, offset, 4)) throw spanError("encode", "i32", target, offset, 4);
    writeI32(target, offset, value);
    return 4;
  }

  decode(source: Uint8Array, offset: number, length: number): number {
    if (length !== 4) throw fixedLengthError("decode", "i32", 4, length);
    if (!inBounds(source, offset, 4)) throw spanError("decode", "i32", source, offset, 4);
    return readI32(source, offset);
  }

  hash(source: Uint8Array, offset: number, length: number, seed = 0): number {
    if (length !== 4) throw fixedLengthError("hash", "i32", 4, length);
    if (!inBounds(source, offset, 4)) throw spanError("hash", "i32", source, offset, 4);
    return hashBytes(source, offset, 4, seed);
  }

  equals(a: number, b: number): boolean {
    return a === b;
  }

  compare(a: number, b: number): number {
    return sign(a, b);
  }

  compareEncoded(
    a: Uint8Array,
    aOff: number,
    aLen: number,
    b: Uint8Array,
    bOff: number,
    bLen: number,
  ): number {
    if (aLen !== 4) throw fixedLengthError("compare", "i32", 4, aLen, "aLen");
    if (bLen !== 4) throw fixedLengthError("compare", "i32", 4, bLen, "bLen");
    if (!inBounds(a, aOff, 4)) throw spanError("compare", "i32", a, aOff, 4, "aOff", "aLen");
    if (!inBounds(b, bOff, 4)) throw spanError("compare", "i32", b, bOff, 4, "bOff", "bLen");
    return sign(readI32(a, aOff), readI32(b, bOff));
  }
}

class U32Codec implements Codec<number> {
  readonly name = "u32" as const;
  readonly fixedBytes = 4;
  readonly maxBytes = 4;
  readonly role: "key" | "value";

  constructor(role: "key" | "value") {
    this.role = role;
  }

  check(value: unknown, what: string): number {
    if (typeof value !== "number") {
      throw new TypeError(
        `Cannot use ${what} as u32 as it is not a number: current value is ${describeValue(value)}`,
      );
    }
    if (value >>> 0 !== value) {
      throw new RangeError(
        `Cannot use ${what} as u32 as it is not an integer in [0, 4294967295]` +
          `: current value is ${describeValue(value)}`,
      );
    }
    return value >>> 0;
  }

  encodedLength(_value: number): number {
    return 4;
  }

  encodeChecked(value: unknown, what: string, target: Uint8Array, offset: number): number {
    return this.encode(this.check(value, what), target, offset);
  }

  encode(value: number, target: Uint8Array, offset: number): number {
    if (!inBounds(target, offset, 4)) throw spanError("encode", "u32", target, offset, 4);
    writeI32(target, offset, value);
    return 4;
  }

  decode(source: Uint8Array, offset: number, length: number): number {
    if (length !== 4) throw fixedLengthError("decode", "u32", 4, length);
    if (!inBounds(source, offset, 4)) throw spanError("decode", "u32", source, offset, 4);
    return readI32(source, offset) >>> 0;
  }

  hash(source: Uint8Array, offset: number, length: number, seed = 0): number {
    if (length !== 4) throw fixedLengthError("hash", "u32", 4, length);
    if (!inBounds(source, offset, 4)) throw spanError("hash", "u32", source, offset, 4);
    return hashBytes(source, offset, 4, seed);
  }

  equals(a: number, b: number): boolean {
    return a === b;
  }

  compare(a: number, b: number): number {
    return sign(a, b);
  }

  compareEncoded(
    a: Uint8Array,
    aOff: number,
    aLen: number,
    b: Uint8Array,
    bOff: number,
    bLen: number,
  ): number {
    if (aLen !== 4) throw fixedLengthError("compare", "u32", 4, aLen, "aLen");
    if (bLen !== 4) throw fixedLengthError("compare", "u32", 4, bLen, "bLen");
    if (!inBounds(a, aOff, 4)) throw spanError("compare", "u32", a, aOff, 4, "aOff", "aLen");
    if (!inBounds(b, bOff, 4)) throw spanError("compare", "u32", b, bOff, 4, "bOff", "bLen");
    return sign(readI32(a, aOff) >>> 0, readI32(b, bOff) >>> 0);
  }
}

/**
 * f64 in both roles. Keys: NaN refused by `check`, `-0` stored as `+0`.
 * Values: `-0` kept; every NaN stored as the canonical quiet NaN
 * (0x7FF8000000000000), so that equal values (by `Object.is`) have equal
 * encodings and hashes whatever NaN payload the engine produced.
 */
class F64Codec implements Codec<number> {
  readonly name = "f64" as const;
  readonly fixedBytes = 8;
  readonly maxBytes = 8;
  readonly role: "key" | "value";
  readonly #key: boolean;

  constructor(role: "key" | "value") {
    this.role = role;
    this.#key = role === "key";
  }

  check(value: unknown, what: string): number {
    if (typeof value !== "number") {
      throw new TypeError(
        `Cannot use ${what} as f64 as it is not a number: current value is ${describeValue(value)}`,
      );
    }
    if (!this.#key) return value;
    if (value !== value) {
      throw new RangeError(
        `Cannot use ${what} as f64 key as NaN is not allowed as a key` +
          `: current value is ${describeValue(value)}`,
      );
    }
    // -0 === 0, so this turns -0 into +0 and keeps every other number.
    return value === 0 ? 0 : value;
  }

  encodedLength(_value: number): number {
    return 8;
  }

  encodeChecked(value: unknown, what: string, target: Uint8Array, offset: number): number {
    return this.encode(this.check(value, what), target, offset);
  }

  encode(value: number, target: Uint8Array, offset: number): number {
    if (!inBounds(target, offset, 8)) throw spanError("encode", "f64", target, offset, 8);
    if (value !== value) {
      // Canonical quiet NaN, little-endian.
      target[offset] = 0;
      target[offset + 1] = 0;
      target[offset + 2] = 0;
      target[offset + 3] = 0;
      target[offset + 4] = 0;
      target[offset + 5] = 0;
      target[offset + 6] = 0xf8;
      target[offset + 7] = 0x7f;
      return 8;
    }
    // A key's -0 is stored as +0 even if the caller skipped check().
    scratchView.setFloat64(0, this.#key && value === 0 ? 0 : value, true);
    writeScratch(target, offset);
    return 8;
  }

  decode(source: Uint8Array, offset: number, length: number): number {
    if (length !== 8) throw fixedLengthError("decode", "f64", 8, length);
    if (!inBounds(source, offset, 8)) throw spanError("decode", "f64", source, offset, 8);
    return readF64(source, offset);
  }

  hash(source: Uint8Array, offset: number, length: number, seed = 0): number {
    if (length !== 8) throw fixedLengthError("hash", "f64", 8, length);
    if (!inBounds(source, offset, 8)) throw spanError("hash", "f64", source, offset, 8);
    return hashBytes(source, offset, 8, seed);
  }

  equals(a: number, b: number): boolean {
    return this.#key ? a === b : Object.is(a, b);
  }

  compare(a: number, b: number): number {
    if (a < b) return -1;
    if (a > b) return 1;
    if (a === b) {
      // Only values tell -0 from +0: 1 / -0 is -Infinity.
      if (a !== 0 || this.#key) return 0;
      return sign(1 / a, 1 / b);
    }
    // At least one NaN; NaN sorts last and equals itself.
    const aNaN = a !== a;
    const bNaN = b !== b;
    return aNaN === bNaN ? 0 : aNaN ? 1 : -1;
  }

  compareEncoded(
    a: Uint8Array,
    aOff: number,
    aLen: number,
    b: Uint8Array,
    bOff: number,
    bLen: number,
  ): number {
    if (aLen !== 8) throw fixedLengthError("compare", "f64", 8, aLen, "aLen");
    if (bLen !== 8) throw fixedLengthError("compare", "f64", 8, bLen, "bLen");
    if (!inBounds(a, aOff, 8)) throw spanError("compare", "f64", a, aOff, 8, "aOff", "aLen");
    if (!inBounds(b, bOff, 8)) throw spanError("compare", "f64", b, bOff, 8, "bOff", "bLen");
    return this.compare(readF64(a, aOff), readF64(b, bOff));
  }
}

class BigInt64Codec implements Codec<bigint> {
  readonly name = "bigint64" as const;
  readonly fixedBytes = 8;
  readonly maxBytes = 8;
  readonly role: "key" | "value";

  constructor(role: "key" | "value") {
    this.role = role;
  }

  check(value: unknown, what: string): bigint {
    if (typeof value !== "bigint") {
      throw new TypeError(
        `Cannot use ${what} as bigint64 as it is not a bigint: current value is ${
          describeValue(value)
        }`,
      );
    }
    if (value < I64_MIN || value > I64_MAX) {
      throw new RangeError(
        `Cannot use ${what} as bigint64 as it is not in [${I64_MIN}, ${I64_MAX}]` +
          `: current value is ${describeValue(value)}`,
      );
    }
    return value;
  }

  encodedLength(_value: bigint): number {
    return 8;
  }

  encodeChecked(value: unknown, what: string, target: Uint8Array, offset: number): number {
    return this.encode(this.check(value, what), target, offset);
  }

  encode(value: bigint, target: Uint8Array, offset: number): number {
    if (!inBounds(target, offset, 8)) throw spanError("encode", "bigint64", target, offset, 8);
    scratchView.setBigInt64(0, value, true);
    writeScratch(target, offset);
    return 8;
  }

  decode(source: Uint8Array, offset: number, length: number): bigint {
    if (length !== 8) throw fixedLengthError("decode", "bigint64", 8, length);
    if (!inBounds(source, offset, 8)) throw spanError("decode", "bigint64", source, offset, 8);
    readScratch(source, offset);
    return scratchView.getBigInt64(0, true);
  }

  hash(source: Uint8Array, offset: number, length: number, seed = 0): number {
    if (length !== 8) throw fixedLengthError("hash", "bigint64", 8, length);
    if (!inBounds(source, offset, 8)) throw spanError("hash", "bigint64", source, offset, 8);
    return hashBytes(source, offset, 8, seed);
  }

  equals(a: bigint, b: bigint): boolean {
    return a === b;
  }

  compare(a: bigint, b: bigint): number {
    return a < b ? -1 : a > b ? 1 : 0;
  }

  compareEncoded(
    a: Uint8Array,
    aOff: number,
    aLen: number,
    b: Uint8Array,
    bOff: number,
    bLen: number,
  ): number {
    if (aLen !== 8) throw fixedLengthError("compare", "bigint64", 8, aLen, "aLen");
    if (bLen !== 8) throw fixedLengthError("compare", "bigint64", 8, bLen, "bLen");
    if (!inBounds(a, aOff, 8)) throw spanError("compare", "bigint64", a, aOff, 8, "aOff", "aLen");
    if (!inBounds(b, bOff, 8)) throw spanError("compare", "bigint64", b, bOff, 8, "bOff", "bLen");
    // Compare without making bigints: the high words as signed, then the low
    // words as unsigned.
    const c = sign(readI32(a, aOff + 4), readI32(b, bOff + 4));
    if (c !== 0) return c;
    return sign(readI32(a, aOff) >>> 0, readI32(b, bOff) >>> 0);
  }
}

// ---------------------------------------------------------------------------
// UTF-8.
//
// The loops below handle short strings, the common case for keys, without
// allocating. Long strings go to the platform's TextEncoder and TextDecoder,
// which are many times faster there. TextEncoder writes straight into the
// target where it accepts views of a SharedArrayBuffer (the WHATWG spec lets
// it refuse; Deno accepts); elsewhere the loop does the work. TextDecoder is
// given a private non-shared copy of the bytes, which works everywhere and,
// in Deno, costs less than decoding from a shared view. Both paths produce the
// same results: the encoders write a lone surrogate (which check() refuses
// anyway) as U+FFFD, and the decoders replace malformed sequences with U+FFFD
// following the WHATWG decoder, byte for byte.

/** Strings with at least this many UTF-16 code units are encoded natively. */
const NATIVE_ENCODE_MIN_UNITS = 64;
/** Encodings with at least this many bytes are decoded natively. */
const NATIVE_DECODE_MIN_BYTES = 64;
/** Longer encodings get a fresh copy instead of the reusable one. */
const DECODE_SCRATCH_BYTES = 4096;

const textEncoder = new TextEncoder();
// ignoreBOM: a leading U+FEFF is part of the string, not a mark to drop.
const textDecoder = new TextDecoder("utf-8", { ignoreBOM: true });
let decodeScratch: Uint8Array | undefined;

function encodeIntoWorksOnShared(): boolean {
  try {
    const shared = new Uint8Array(new SharedArrayBuffer(4));
    return textEncoder.encodeInto("aé", shared).written === 3 && shared[2] === 0xa9;
  } catch {
    return false;
  }
}

const nativeEncodeShared = encodeIntoWorksOnShared();

/** Decodes with TextDecoder from a non-shared copy of the bytes. */
function decodeNative(source: Uint8Array, offset: number, length: number): string {
  let copy: Uint8Array;
  if (length <= DECODE_SCRATCH_BYTES) {
    decodeScratch ??= new Uint8Array(DECODE_SCRATCH_BYTES);
    copy = decodeScratch.subarray(0, length);
  } else {
    copy = new Uint8Array(length);
  }
  copy.set(source.subarray(offset, offset + length));
  return textDecoder.decode(copy);
}

/**
 * UTF-8 length of `s`, or `-1 - i` if `s` has a lone surrogate at index `i`.
 */
function scanUtf8(s: string): number {
  const n = s.length;
  let bytes = n;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) continue;
    if (c < 0x800) {
      bytes += 1;
    } else if (c < 0xd800 || c > 0xdfff) {
      bytes += 2;
    } else {
      const d = c <= 0xdbff && i + 1 < n ? s.charCodeAt(i + 1) : 0;
      if (d < 0xdc00 || d > 0xdfff) return -1 - i;
      // A pair: two code units, four bytes.
      bytes += 2;
      i++;
    }
  }
  return bytes;
}

/** UTF-8 length of `s`, counting a lone surrogate as U+FFFD (3 bytes). */
function utf8Length(s: string): number {
  const n = s.length;
  let bytes = n;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) continue;
    if (c < 0x800) {
      bytes += 1;
    } else {
      bytes += 2;
      if (c >= 0xd800 && c <= 0xdbff && i + 1 < n) {
        const d = s.charCodeAt(i + 1);
        if (d >= 0xdc00 && d <= 0xdfff) i++;
      }
    }
  }
  return bytes;
}

/**
 * Writes `s` as UTF-8 at `t[p]`; the caller has checked that it fits. A lone
 * surrogate becomes U+FFFD, or, when `strict`, stops the write: it returns
 * -1 then (with some bytes written).
 */
function writeUtf8(s: string, t: Uint8Array, p: number, strict = false): number {
  const start = p;
  const n = s.length;
  for (let i = 0; i < n; i++) {
    let c = s.charCodeAt(i);
    if (c < 0x80) {
      t[p++] = c;
    } else if (c < 0x800) {
      t[p++] = 0xc0 | (c >> 6);
      t[p++] = 0x80 | (c & 0x3f);
    } else {
      if (c >= 0xd800 && c <= 0xdfff) {
        const d = c <= 0xdbff && i + 1 < n ? s.charCodeAt(i + 1) : 0;
        if (d >= 0xdc00 && d <= 0xdfff) {
          i++;
          const cp = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
          t[p++] = 0xf0 | (cp >> 18);
          t[p++] = 0x80 | ((cp >> 12) & 0x3f);
          t[p++] = 0x80 | ((cp >> 6) & 0x3f);
          t[p++] = 0x80 | (cp & 0x3f);
          continue;
        }
        if (strict) return -1;
        c = 0xfffd;
      }
      t[p++] = 0xe0 | (c >> 12);
      t[p++] = 0x80 | ((c >> 6) & 0x3f);
      t[p++] = 0x80 | (c & 0x3f);
    }
  }
  return p - start;
}

/**
 * Decodes UTF-8 from `s[i]` up to `s[end]`, following the WHATWG decoder: a
 * byte that cannot start or continue a sequence, or a sequence cut short,
 * becomes one U+FFFD, and decoding resumes at the byte that broke the
 * sequence. Bytes that change under the reader give a wrong string, never an
 * exception or a read outside the span.
 */
function readUtf8(s: Uint8Array, i: number, end: number): string {
  let out = "";
  while (i < end) {
    // Runs of ASCII go eight characters per call, which halves the cost of
    // ASCII keys against one call per character.
    while (i + 8 <= end) {
      const c0 = s[i];
      const c1 = s[i + 1];
      const c2 = s[i + 2];
      const c3 = s[i + 3];
      const c4 = s[i + 4];
      const c5 = s[i + 5];
      const c6 = s[i + 6];
      const c7 = s[i + 7];
      if ((c0 | c1 | c2 | c3 | c4 | c5 | c6 | c7) >= 0x80) break;
      out += String.fromCharCode(c0, c1, c2, c3, c4, c5, c6, c7);
      i += 8;
    }
    if (i >= end) break;
    const b0 = s[i++];
    if (b0 < 0x80) {
      out += String.fromCharCode(b0);
      continue;
    }
    let need: number;
    let cp: number;
    // The range the next byte must fall in; narrower after E0, ED, F0 and F4
    // to refuse overlong forms, surrogates and code points past U+10FFFF.
    let lo = 0x80;
    let hi = 0xbf;
    if (b0 >= 0xc2 && b0 <= 0xdf) {
      need = 1;
      cp = b0 & 0x1f;
    } else if (b0 >= 0xe0 && b0 <= 0xef) {
      need = 2;
      cp = b0 & 0x0f;
      if (b0 === 0xe0) lo = 0xa0;
      else if (b0 === 0xed) hi = 0x9f;
    } else if (b0 >= 0xf0 && b0 <= 0xf4) {
      need = 3;
      cp = b0 & 0x07;
      if (b0 === 0xf0) lo = 0x90;
      else if (b0 === 0xf4) hi = 0x8f;
    } else {
      out += "\uFFFD";
      continue;
    }
    while (need > 0 && i < end) {
      const b = s[i];
      if (b < lo || b > hi) break;
      cp = (cp << 6) | (b & 0x3f);
      lo = 0x80;
      hi = 0xbf;
      i++;
      need--;
    }
    if (need > 0) {
      out += "\uFFFD";
    } else if (cp < 0x10000) {
      out += String.fromCharCode(cp);
    } else {
      cp -= 0x10000;
      out += String.fromCharCode(0xd800 | (cp >> 10), 0xdc00 | (cp & 0x3ff));
    }
  }
  return out;
}

class StringCodec implements Codec<string> {
  readonly name = "string" as const;
  readonly fixedBytes = 0;
  readonly role: "key" | "value";
  readonly maxBytes: number;
  readonly #limitName: string;

  constructor(role: "key" | "value", maxBytes: number, limitName: string) {
    this.role = role;
    this.maxBytes = maxBytes;
    this.#limitName = limitName;
  }

  check(value: unknown, what: string): string {
    if (typeof value !== "string") {
      throw new TypeError(
        `Cannot use ${what} as string as it is not a string: current value is ${
          describeValue(value)
        }`,
      );
    }
    const n = scanUtf8(value);
    if (n < 0) {
      throw new TypeError(
        `Cannot use ${what} as string as it has a lone surrogate at index ${-1 - n}, ` +
          `which UTF-8 cannot encode: current value is ${describeValue(value)}`,
      );
    }
    if (n > this.maxBytes) {
      throw new RangeError(
        `Cannot use ${what} as string as its UTF-8 encoding is ${n} bytes, over the limit of ` +
          `${this.maxBytes} ('${this.#limitName}'): current value is ${describeValue(value)}`,
      );
    }
    return value;
  }

  encodedLength(value: string): number {
    return utf8Length(value);
  }

  encodeChecked(value: unknown, what: string, target: Uint8Array, offset: number): number {
    if (
      typeof value === "string" && value.length < NATIVE_ENCODE_MIN_UNITS &&
      inBounds(target, offset, 3 * value.length)
    ) {
      // One pass instead of check's scan plus encode's: a lone surrogate or
      // an encoding over maxBytes falls through to check, which throws.
      const n = writeUtf8(value, target, offset, true);
      if (n >= 0 && n <= this.maxBytes) return n;
    }
    return this.encode(this.check(value, what), target, offset);
  }

  encode(value: string, target: Uint8Array, offset: number): number {
    // Three bytes per code unit always suffice, which spares a length scan
    // unless the target is tight.
    if (!inBounds(target, offset, 3 * value.length)) {
      const n = utf8Length(value);
      if (!inBounds(target, offset, n)) throw spanError("encode", "string", target, offset, n);
    }
    if (
      value.length >= NATIVE_ENCODE_MIN_UNITS &&
      (nativeEncodeShared || !(target.buffer instanceof SharedArrayBuffer))
    ) {
      return textEncoder.encodeInto(value, target.subarray(offset)).written;
    }
    return writeUtf8(value, target, offset);
  }

  decode(source: Uint8Array, offset: number, length: number): string {
    if (!inBounds(source, offset, length)) {
      throw spanError("decode", "string", source, offset, length);
    }
    if (length >= NATIVE_DECODE_MIN_BYTES) return decodeNative(source, offset, length);
    return readUtf8(source, offset, offset + length);
  }

  hash(source: Uint8Array, offset: number, length: number, seed = 0): number {
    if (!inBounds(source, offset, length)) {
      throw spanError("hash", "string", source, offset, length);
    }
    return hashBytes(source, offset, length, seed);
  }

  equals(a: string, b: string): boolean {
    return a === b;
  }

  compare(a: string, b: string): number {
    const n = a.length < b.length ? a.length : b.length;
    for (let i = 0; i < n; i++) {
      let x = a.charCodeAt(i);
      let y = b.charCodeAt(i);
      if (x === y) continue;
      // UTF-16 code unit order matches code point order except that
      // surrogates (D800-DFFF, which stand for U+10000 and up) must sort
      // after E000-FFFF. Shift both ranges to put them in that order; units
      // below D800 sort below both either way. Well-formed strings that first
      // differ at a low surrogate agree on the high one before it, so
      // comparing the low surrogates is right too.
      if (x >= 0xd800 && y >= 0xd800) {
        x = x >= 0xe000 ? x - 0x800 : x + 0x2000;
        y = y >= 0xe000 ? y - 0x800 : y + 0x2000;
      }
      return x < y ? -1 : 1;
    }
    return sign(a.length, b.length);
  }

  compareEncoded(
    a: Uint8Array,
    aOff: number,
    aLen: number,
    b: Uint8Array,
    bOff: number,
    bLen: number,
  ): number {
    if (!inBounds(a, aOff, aLen)) {
      throw spanError("compare", "string", a, aOff, aLen, "aOff", "aLen");
    }
    if (!inBounds(b, bOff, bLen)) {
      throw spanError("compare", "string", b, bOff, bLen, "bOff", "bLen");
    }
    return compareBytes(a, aOff, aLen, b, bOff, bLen);
  }
}

class BytesCodec implements Codec<Uint8Array> {
  readonly name = "bytes" as const;
  readonly fixedBytes = 0;
  readonly role: "key" | "value";
  readonly maxBytes: number;
  readonly #limitName: string;

  constructor(role: "key" | "value", maxBytes: number, limitName: string) {
    this.role = role;
    this.maxBytes = maxBytes;
    this.#limitName = limitName;
  }

  check(value: unknown, what: string): Uint8Array {
    if (!(value instanceof Uint8Array)) {
      throw new TypeError(
        `Cannot use ${what} as bytes as it is not a Uint8Array: current value is ${
          describeValue(value)
        }`,
      );
    }
    const length = value.length;
    if (length > this.maxBytes) {
      throw new RangeError(
        `Cannot use ${what} as bytes as its length is ${length} bytes, over the limit of ` +
          `${this.maxBytes} ('${this.#limitName}'): current value is ${describeValue(value)}`,
      );
    }
    // A view of a growable SharedArrayBuffer may track its length, which
    // another thread can grow between this check and the encode that sizes
    // a block by it: the caller gets a view of the length checked here.
    const buffer = value.buffer as SharedArrayBuffer;
    if (buffer.growable === true) return new Uint8Array(buffer, value.byteOffset, length);
    return value;
  }

  encodedLength(value: Uint8Array): number {
    return value.length;
  }

  encodeChecked(value: unknown, what: string, target: Uint8Array, offset: number): number {
    return this.encode(this.check(value, what), target, offset);
  }

  encode(value: Uint8Array, target: Uint8Array, offset: number): number {
    const n = value.length;
    if (!inBounds(target, offset, n)) throw spanError("encode", "bytes", target, offset, n);
    if (n <= 16) {
      for (let i = 0; i < n; i++) target[offset + i] = value[i];
    } else {
      target.set(value, offset);
    }
    return n;
  }

  decode(source: Uint8Array, offset: number, length: number): Uint8Array {
    if (!inBounds(source, offset, length)) {
      throw spanError("decode", "bytes", source, offset, length);
    }
    // A plain Uint8Array over a new ArrayBuffer, whatever backs `source`.
    const out = new Uint8Array(length);
    if (length <= 16) {
      for (let i = 0; i < length; i++) out[i] = source[offset + i];
    } else {
      out.set(source.subarray(offset, offset + length));
    }
    return out;
  }

  hash(source: Uint8Array, offset: number, length: number, seed = 0): number {
    if (!inBounds(source, offset, length)) {
      throw spanError("hash", "bytes", source, offset, length);
    }
    return hashBytes(source, offset, length, seed);
  }

  equals(a: Uint8Array, b: Uint8Array): boolean {
    if (a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
    return true;
  }

  compare(a: Uint8Array, b: Uint8Array): number {
    return compareBytes(a, 0, a.length, b, 0, b.length);
  }

  compareEncoded(
    a: Uint8Array,
    aOff: number,
    aLen: number,
    b: Uint8Array,
    bOff: number,
    bLen: number,
  ): number {
    if (!inBounds(a, aOff, aLen)) {
      throw spanError("compare", "bytes", a, aOff, aLen, "aOff", "aLen");
    }
    if (!inBounds(b, bOff, bLen)) {
      throw spanError("compare", "bytes", b, bOff, bLen, "bOff", "bLen");
    }
    return compareBytes(a, aOff, aLen, b, bOff, bLen);
  }
}
