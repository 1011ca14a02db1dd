/**
 * SeqCell: a fixed record of typed number fields that writers publish and
 * any number of readers read as consistent snapshots, without writing shared
 * memory unless they park behind a write.
 *
 * The record sits behind a sequence number exactly as in
 * {@linkcode SeqLock}: writers (serialized by a {@linkcode Mutex}) make the
 * sequence odd, store the fields with `Atomics.store` and make it even again;
 * readers load the sequence, load every field word with `Atomics.load` into
 * private memory, and accept the copy only when the sequence is unchanged
 * and even. An f64 field is two Int32 words; both are covered by the check.
 *
 * The schema (field names and types) is stored after the data, so
 * `attach()` needs only the handle, and a root can name a SeqCell.
 *
 * Words: `[tag, seq, fieldCount, dataWords, mutex (2 words), schemaBytes,
 * parked, data..., schema...]`; `parked` counts the readers parked on the
 * sequence, as in SeqLock, so that writers notify only when someone waits. Memory-model pattern (see DESIGN.md): data words
 * are all-atomic (a); the schema is immutable after publication (b).
 *
 * Reads and full writes go through a `Codec` specialised per
 * schema shape: straight-line code built once with `new Function`, shared
 * by every cell of that shape, with field names only ever inside
 * `JSON.stringify`d string literals. Where code generation is refused
 * (CSP), a generic loop-based codec with the same behaviour is used.
 *
 * @module
 */

import {
  attachObject,
  describeValue,
  DestroyedError,
  HandleError,
  objectHandle,
  type Placement,
  placeObject,
  releaseObject,
  type SharedHandle,
  type SharedHeap,
  tagOf,
  TimeoutError,
} from "../memory/mod.ts";
import { deadlineOf, type LockOptions, Mutex } from "../latch/mod.ts";
import { requireSyncFunction } from "../latch/parking.ts";
import {
  acquireWriters,
  acquireWritersAsync,
  destroySequenced,
  endWrite,
  SEQ,
  waitEvenSequence,
  waitEvenSequenceAsync,
} from "./seqlock.ts";
import { checkOptionFields } from "../memory/_options.ts";

/** Layout version of this object; attach() accepts only this one. */
const LAYOUT_VERSION = 2;
const KIND = "sabre.SeqCell";
const TAG = tagOf("SEQC");
const FIELD_COUNT = 2;
const DATA_WORDS = 3;
const MUTEX_OFFSET = 16;
const SCHEMA_BYTES = 6;
/** Count of readers parked on the sequence (see SeqLock's notes). */
const PARKED = 7;
const DATA = 8;
const MAX_FIELDS = 256;

/**
 * Types a SeqCell field may have: 32-bit signed or unsigned integers, or float64.
 *
 * @example
 * ```ts
 * import { SeqCell, type SeqCellFieldType } from "@sabre/sabre";
 * const type: SeqCellFieldType = "u32";
 * const cell = SeqCell.create({ count: type }, { initial: { count: 2 ** 32 - 1 } });
 * console.assert(cell.get("count") === 4294967295);
 * ```
 */
export type SeqCellFieldType = "i32" | "u32" | "f64";

/**
 * The fields of a SeqCell: names to types.
 *
 * @example
 * ```ts
 * import type { SeqCellSchema } from "@sabre/sabre";
 * const schema: SeqCellSchema = { done: "u32", rate: "f64" };
 * console.assert(schema.done === "u32");
 * ```
 */
export type SeqCellSchema = Readonly<Record<string, SeqCellFieldType>>;

/**
 * A snapshot of a SeqCell with schema `S`: one number per field.
 *
 * @example
 * ```ts
 * import type { SeqCellRecord } from "@sabre/sabre";
 * const r: SeqCellRecord<{ x: "i32" }> = { x: 1 };
 * console.assert(r.x === 1);
 * ```
 */
export type SeqCellRecord<S extends SeqCellSchema> = { [K in keyof S]: number };

/**
 * Handle of a {@linkcode SeqCell}.
 *
 * @example
 * ```ts
 * import { SeqCell, type SeqCellHandle } from "@sabre/sabre";
 * const handle: SeqCellHandle = SeqCell.create({ x: "i32" }).handle;
 * console.assert(handle.kind === "sabre.SeqCell");
 * ```
 */
export type SeqCellHandle = SharedHandle<"sabre.SeqCell">;

/**
 * Options of {@linkcode SeqCell.create}.
 *
 * @example
 * ```ts
 * import { SeqCell, type SeqCellOptions } from "@sabre/sabre";
 * const options: SeqCellOptions<{ x: "i32" }> = { initial: { x: 5 } };
 * console.assert(SeqCell.create({ x: "i32" }, options).read().x === 5);
 * ```
 */
export interface SeqCellOptions<S extends SeqCellSchema> {
  /** Heap to allocate in; a standalone buffer when absent. */
  heap?: SharedHeap;
  /** Initial field values; missing fields start at 0. */
  initial?: Partial<SeqCellRecord<S>>;
}

const TYPE_CODES: Record<SeqCellFieldType, number> = { i32: 1, u32: 2, f64: 3 };
const TYPE_NAMES: SeqCellFieldType[] = ["i32", "i32", "u32", "f64"];
const encoder = new TextEncoder();
// Names round-trip exactly: a leading U+FEFF stays (no BOM stripping), and
// bytes that are not UTF-8 (tampered memory) are refused, not replaced.
const decoder = new TextDecoder("utf-8", { ignoreBOM: true, fatal: true });
const f64Scratch = new Float64Array(1);
const f64Words = new Int32Array(f64Scratch.buffer);

interface Field {
  readonly name: string;
  readonly type: SeqCellFieldType;
  /** Word index of the field inside the data area. */
  readonly word: number;
}

function layoutOf(schema: SeqCellSchema): { fields: Field[]; dataWords: number } {
  if (typeof schema !== "object" || schema === null || Array.isArray(schema)) {
    throw new TypeError(
      `Cannot create SeqCell as 'schema' must be an object of field types: current value is ${
        describeValue(schema)
      }`,
    );
  }
  const names = Object.keys(schema);
  if (names.length === 0 || names.length > MAX_FIELDS) {
    throw new RangeError(
      `Cannot create SeqCell as it must have 1 to ${MAX_FIELDS} fields: current value is ${names.length}`,
    );
  }
  const fields: Field[] = [];
  let word = 0;
  for (const name of names) {
    const type = schema[name];
    if (type !== "i32" && type !== "u32" && type !== "f64") {
      throw new TypeError(
        `Cannot create SeqCell as field '${name}' must be "i32", "u32" or "f64": current value is ${
          describeValue(type)
        }`,
      );
    }
    if (!name.isWellFormed()) {
      // A lone surrogate would come back from attach() as U+FFFD: another name.
      throw new TypeError(
        `Cannot create SeqCell as field names must be well-formed Unicode (no lone surrogates): current value is ${
          describeValue(name)
        }`,
      );
    }
    if (encoder.encode(name).length > 255) {
      throw new RangeError(
        `Cannot create SeqCell as field names must be at most 255 UTF-8 bytes: current value is ${
          describeValue(name)
        }`,
      );
    }
    fields.push({ name, type, word });
    word += type === "f64" ? 2 : 1;
  }
  return { fields, dataWords: word };
}

function encodeSchema(fields: Field[]): Uint8Array {
  const parts: number[] = [];
  for (const field of fields) {
    const name = encoder.encode(field.name);
    parts.push(TYPE_CODES[field.type], name.length, ...name);
  }
  return Uint8Array.from(parts);
}

/**
 * The fields stored in shared memory, checked against the header (which
 * memory, not the caller, vouches for): `HandleError` unless they are
 * exactly what `encodeSchema` writes for a valid schema of `dataWords` words.
 */
function decodeSchema(bytes: Uint8Array, count: number, dataWords: number): Field[] {
  const corrupt = (why: string): never => {
    throw new HandleError(`Cannot attach SeqCell as its stored schema is corrupt: ${why}`);
  };
  const fields: Field[] = [];
  const names = new Set<string>();
  let at = 0;
  let word = 0;
  for (let i = 0; i < count; i++) {
    if (at + 2 > bytes.length) corrupt(`field ${i} lies past the schema's ${bytes.length} bytes`);
    const type = TYPE_NAMES[bytes[at]];
    if (bytes[at] === 0 || type === undefined) corrupt(`field ${i} has type code ${bytes[at]}`);
    const length = bytes[at + 1];
    if (at + 2 + length > bytes.length) corrupt(`field ${i}'s name lies past the schema's end`);
    let name = "";
    try {
      name = decoder.decode(bytes.subarray(at + 2, at + 2 + length));
    } catch {
      corrupt(`field ${i}'s name is not UTF-8`);
    }
    if (names.has(name)) corrupt(`field name ${describeValue(name)} appears twice`);
    names.add(name);
    at += 2 + length;
    fields.push({ name, type, word });
    word += type === "f64" ? 2 : 1;
  }
  if (at !== bytes.length) corrupt(`${bytes.length - at} bytes follow the last field`);
  if (word !== dataWords) {
    corrupt(`the fields take ${word} data words, the header says ${dataWords}`);
  }
  return fields;
}

/** Throws the error `#check` gives for `value` in `field` (not a number, or out of range). */
function badValue(field: Field, value: unknown): never {
  if (typeof value !== "number") {
    throw new TypeError(
      `Cannot write SeqCell field '${field.name}' as it is not a number: current value is ${
        describeValue(value)
      }`,
    );
  }
  const [min, max] = field.type === "i32" ? [-(2 ** 31), 2 ** 31 - 1] : [0, 2 ** 32 - 1];
  throw new RangeError(
    `Cannot write SeqCell field '${field.name}' as it is not an integer in [${min}, ${max}] (${field.type}): current value is ${
      describeValue(value)
    }`,
  );
}

type NumberRecord = Record<string, number>;

/** Whether `value` may be stored in a field of `type`. */
function fits(type: SeqCellFieldType, value: unknown): value is number {
  if (typeof value !== "number") return false;
  if (type === "i32") return (value | 0) === value;
  if (type === "u32") return (value >>> 0) === value;
  return true;
}

/**
 * Stores an own data property. Used for `__proto__`, where a plain `o[k] = v`
 * would call Object.prototype's setter instead of creating the field.
 */
function setOwn(o: NumberRecord, key: string, value: number): void {
  if (Object.hasOwn(o, key)) o[key] = value;
  else {
    Object.defineProperty(o, key, { value, writable: true, enumerable: true, configurable: true });
  }
}

/** `waitEvenSequence` with SeqCell's count of parked readers. */
function waitCell(words: Int32Array, deadline: number, what: string, timeoutMs?: number): number {
  return waitEvenSequence(words, PARKED, TAG, deadline, what, timeoutMs);
}

/** `endWrite` with SeqCell's count of parked readers. */
function endCell(words: Int32Array): void {
  endWrite(words, PARKED);
}

/**
 * Reads and writes the data words of one schema shape. Stateless between
 * calls except `scratch`, which holds encoded words from `encodeAll` until
 * the caller's `publishAll`; a caller that lets user code run in between
 * (a `timeoutMs` getter, an await) publishes a copy instead.
 */
interface Codec {
  /** Waits out writers (as `waitEvenSequence`), then fills `out` with a snapshot. */
  readInto(
    words: Int32Array,
    out: NumberRecord,
    deadline: number,
    timeoutMs?: number,
  ): NumberRecord;
  /** Like `readInto`, into a new object. */
  read(words: Int32Array, deadline: number, timeoutMs?: number): NumberRecord;
  /** One attempt; `undefined` if a write was in progress or intervened. */
  tryRead(words: Int32Array): NumberRecord | undefined;
  /**
   * When `values` has exactly the schema's fields as own keys in schema
   * order: validates them in that order (same errors as `#check`) and
   * encodes all data words into `scratch`. Otherwise returns false and
   * leaves `scratch` alone.
   */
  encodeAll(values: object, scratch: Int32Array): boolean;
  /** Stores all of `scratch` as one write. Caller holds the writer mutex. */
  publishAll(words: Int32Array, scratch: Int32Array): void;
  /** Encoding area for `encodeAll`, shared by the cells of this shape. */
  readonly scratch: Int32Array;
}

/** Codecs by schema shape, so cells of one shape share functions (monomorphic call sites). */
const codecs = new Map<string, Codec>();
/** Bounds `codecs` for programs that make many schemas; cells keep their codec. */
const MAX_CODECS = 1024;

function codecOf(fields: readonly Field[]): Codec {
  const shape = JSON.stringify(fields.map((f) => [f.name, f.type]));
  let codec = codecs.get(shape);
  if (codec === undefined) {
    codec = specialisedCodec(fields) ?? genericCodec(fields);
    if (codecs.size >= MAX_CODECS) codecs.clear();
    codecs.set(shape, codec);
  }
  return codec;
}

/**
 * Generates straight-line code for `fields`: constant word indices, one
 * `Atomics.load` per data word between the two sequence loads, decoding
 * and stores into the result only after the re-check. Field names enter
 * the source only as `JSON.stringify` string literals (a valid, inert JS
 * string literal for any string); `__proto__` goes through `setOwn` or a
 * computed literal key so it defines an own property. Returns undefined
 * where `new Function` is refused.
 */
function specialisedCodec(fields: readonly Field[]): Codec | undefined {
  const n = fields.length;
  const dataWords = fields.reduce((w, f) => w + (f.type === "f64" ? 2 : 1), 0);
  const loads: string[] = [];
  for (let i = 0; i < dataWords; i++) loads.push(`const w${i} = Atomics.load(w, ${DATA + i});`);
  const decode: string[] = [];
  const assign: string[] = [];
  const literal: string[] = [];
  fields.forEach((f, i) => {
    const key = JSON.stringify(f.name);
    const at = f.word;
    if (f.type === "i32") decode.push(`const v${i} = w${at};`);
    else if (f.type === "u32") decode.push(`const v${i} = w${at} >>> 0;`);
    else decode.push(`f64w[0] = w${at}; f64w[1] = w${at + 1}; const v${i} = f64s[0];`);
    if (f.name === "__proto__") {
      assign.push(`setOwn(out, ${key}, v${i});`);
      literal.push(`[${key}]: v${i}`);
    } else {
      assign.push(`out[${key}] = v${i};`);
      literal.push(`${key}: v${i}`);
    }
  });
  const snapshot = `for (;;) {
      let s = Atomics.load(w, ${SEQ});
      if ((s & 1) === 1) s = wait(w, deadline, "SeqCell", timeoutMs);
      ${loads.join("\n      ")}
      if (Atomics.load(w, ${SEQ}) !== s) continue;
      ${decode.join("\n      ")}`;
  // encodeAll: values read (getters run) and checked in key order into
  // locals; scratch is written only after the last user code has run.
  const keyChecks = fields.map((f, i) => `k[${i}] !== ${JSON.stringify(f.name)}`);
  const gets: string[] = [];
  const stores: string[] = [];
  fields.forEach((f, i) => {
    const check = f.type === "i32"
      ? `(x${i} | 0) !== x${i}`
      : f.type === "u32"
      ? `(x${i} >>> 0) !== x${i}`
      : "false";
    gets.push(
      `const x${i} = values[${JSON.stringify(f.name)}];`,
      `if (typeof x${i} !== "number" || ${check}) bad(fields[${i}], x${i});`,
    );
    if (f.type === "f64") {
      stores.push(
        `f64s[0] = x${i}; scratch[${f.word}] = f64w[0]; scratch[${f.word + 1}] = f64w[1];`,
      );
    } else stores.push(`scratch[${f.word}] = x${i} | 0;`);
  });
  const publish: string[] = [];
  for (let i = 0; i < dataWords; i++) publish.push(`Atomics.store(w, ${DATA + i}, scratch[${i}]);`);
  const source = `"use strict";
return {
  readInto(w, out, deadline, timeoutMs) {
    ${snapshot}
      ${assign.join("\n      ")}
      return out;
    }
  },
  read(w, deadline, timeoutMs) {
    ${snapshot}
      return { ${literal.join(", ")} };
    }
  },
  tryRead(w) {
    const s = Atomics.load(w, ${SEQ});
    if ((s & 1) === 1) return undefined;
    ${loads.join("\n    ")}
    if (Atomics.load(w, ${SEQ}) !== s) return undefined;
    ${decode.join("\n    ")}
    return { ${literal.join(", ")} };
  },
  encodeAll(values, scratch) {
    if (typeof values !== "object" || values === null) return false;
    const k = Object.keys(values);
    if (k.length !== ${n} || ${keyChecks.join(" || ")}) return false;
    ${gets.join("\n    ")}
    ${stores.join("\n    ")}
    return true;
  },
  publishAll(w, scratch) {
    Atomics.add(w, ${SEQ}, 1);
    ${publish.join("\n    ")}
    end(w);
  },
};`;
  let make: (...args: unknown[]) => Omit<Codec, "scratch">;
  try {
    make = new Function("wait", "end", "bad", "setOwn", "fields", "f64s", "f64w", source) as never;
  } catch (e) {
    // Code generation refused (CSP, --disallow-code-generation-from-strings)
    // is an EvalError; anything else is a bug in the source built above.
    if (e instanceof EvalError) return undefined;
    throw e;
  }
  const methods = make(waitCell, endCell, badValue, setOwn, fields, f64Scratch, f64Words);
  return { ...methods, scratch: new Int32Array(dataWords) };
}

/** The same behaviour as `specialisedCodec`'s, with loops; `encodeAll` always declines. */
function genericCodec(fields: readonly Field[]): Codec {
  const dataWords = fields.reduce((w, f) => w + (f.type === "f64" ? 2 : 1), 0);
  const copy = new Int32Array(dataWords);
  /** Copies the data words into `copy`; false if the sequence was odd or moved. */
  const attempt = (words: Int32Array, stamp: number): boolean => {
    for (let w = 0; w < dataWords; w++) copy[w] = Atomics.load(words, DATA + w);
    return Atomics.load(words, SEQ) === stamp;
  };
  const snapshot = (words: Int32Array, deadline: number, timeoutMs?: number): void => {
    for (;;) {
      let stamp = Atomics.load(words, SEQ);
      if ((stamp & 1) === 1) stamp = waitCell(words, deadline, "SeqCell", timeoutMs);
      if (attempt(words, stamp)) return;
    }
  };
  const values = new Float64Array(fields.length); // exact for i32, u32 and f64
  let storing = false;
  /**
   * Decodes `copy` fully before storing, so setters on `out` cannot see it
   * half used; a read from such a setter decodes into its own array.
   */
  const decodeInto = (out: NumberRecord): NumberRecord => {
    const decoded = storing ? new Float64Array(fields.length) : values;
    for (let i = 0; i < fields.length; i++) {
      const field = fields[i];
      const low = copy[field.word];
      if (field.type === "i32") decoded[i] = low;
      else if (field.type === "u32") decoded[i] = low >>> 0;
      else {
        f64Words[0] = low;
        f64Words[1] = copy[field.word + 1];
        decoded[i] = f64Scratch[0];
      }
    }
    const outer = storing;
    storing = true;
    try {
      for (let i = 0; i < fields.length; i++) {
        const name = fields[i].name;
        if (name === "__proto__") setOwn(out, name, decoded[i]);
        else out[name] = decoded[i];
      }
    } finally {
      storing = outer;
    }
    return out;
  };
  /** Decodes `copy` into a new object: no user code runs, so straight in. */
  const decodeNew = (): NumberRecord => {
    const out: NumberRecord = {};
    for (const field of fields) {
      const low = copy[field.word];
      let value = low;
      if (field.type === "u32") value = low >>> 0;
      else if (field.type === "f64") {
        f64Words[0] = low;
        f64Words[1] = copy[field.word + 1];
        value = f64Scratch[0];
      }
      if (field.name === "__proto__") setOwn(out, field.name, value);
      else out[field.name] = value;
    }
    return out;
  };
  return {
    readInto(words, out, deadline, timeoutMs) {
      snapshot(words, deadline, timeoutMs);
      return decodeInto(out);
    },
    read(words, deadline, timeoutMs) {
      snapshot(words, deadline, timeoutMs);
      return decodeNew();
    },
    tryRead(words) {
      const stamp = Atomics.load(words, SEQ);
      if ((stamp & 1) === 1 || !attempt(words, stamp)) return undefined;
      return decodeNew();
    },
    encodeAll: () => false,
    publishAll(words, scratch) {
      Atomics.add(words, SEQ, 1);
      for (let w = 0; w < dataWords; w++) Atomics.store(words, DATA + w, scratch[w]);
      endCell(words);
    },
    scratch: new Int32Array(dataWords),
  };
}

/**
 * A record of number fields that any number of workers read as consistent
 * snapshots while writers update it. Readers never block writers and write
 * shared memory only to count themselves when they park; a reader only
 * waits while a write is in progress.
 *
 * @example
 * ```ts
 * import { SeqCell, SharedHeap } from "@sabre/sabre";
 *
 * const heap = SharedHeap.create();
 * const progress = SeqCell.create({ done: "u32", total: "u32", rate: "f64" }, { heap });
 * progress.write({ done: 10, total: 100, rate: 2.5 });
 * progress.update((p) => ({ done: p.done + 1 }));
 * const snapshot = progress.read(); // { done: 11, total: 100, rate: 2.5 }, never torn
 * console.assert(snapshot.done === 11 && snapshot.rate === 2.5);
 * // In another worker: SeqCell.attach(progress.handle).read()
 * ```
 */
export class SeqCell<S extends SeqCellSchema = SeqCellSchema> {
  readonly #placement: Placement;
  readonly #words: Int32Array;
  readonly #writers: Mutex;
  readonly #fields: readonly Field[];
  readonly #byName: ReadonlyMap<string, Field>;
  readonly #codec: Codec;
  /**
   * Set by destroy(): every later call on this object throws rather than
   * touch memory that the heap may have given to something else. Another
   * worker's objects learn it once they wait: destroy() leaves the sequence
   * odd and the writers' mutex locked, with both tags cleared.
   */
  #destroyed = false;

  private constructor(placement: Placement, fields: Field[], init: boolean) {
    this.#placement = placement;
    this.#words = placement.words;
    this.#writers = Mutex.embedded(
      placement.sab,
      placement.offset + MUTEX_OFFSET,
      init,
      "write SeqCell",
    );
    this.#fields = fields;
    this.#byName = new Map(fields.map((f) => [f.name, f]));
    this.#codec = codecOf(fields);
  }

  #checkLive(): void {
    if (this.#destroyed) throw new DestroyedError("SeqCell");
  }

  /**
   * Creates a cell with the given fields (1 to 256), all 0 unless `initial`
   * says otherwise. Throws `TypeError`/`RangeError` for a bad schema or
   * initial value.
   *
   * @example
   * ```ts
   * import { SeqCell } from "@sabre/sabre";
   * const cell = SeqCell.create({ a: "i32", b: "f64" }, { initial: { b: 0.5 } });
   * console.assert(cell.read().a === 0 && cell.read().b === 0.5);
   * ```
   */
  static create<S extends SeqCellSchema>(schema: S, options: SeqCellOptions<S> = {}): SeqCell<S> {
    checkOptionFields(options, ["heap", "initial"], "create SeqCell");
    const { fields, dataWords } = layoutOf(schema);
    const schemaBytes = encodeSchema(fields);
    const bytes = DATA * 4 + dataWords * 4 + schemaBytes.length;
    const placement = placeObject(options.heap, bytes, TAG, "SeqCell");
    const words = placement.words;
    words[FIELD_COUNT] = fields.length;
    words[DATA_WORDS] = dataWords;
    words[SCHEMA_BYTES] = schemaBytes.length;
    new Uint8Array(placement.sab, placement.offset + DATA * 4 + dataWords * 4, schemaBytes.length)
      .set(schemaBytes);
    const cell = new SeqCell<S>(placement, fields, true);
    if (options.initial !== undefined) cell.write(options.initial);
    return cell;
  }

  /**
   * Rebuilds a cell from its handle in any worker, reading the schema from
   * shared memory.
   *
   * @example
   * ```ts
   * import { SeqCell } from "@sabre/sabre";
   * const cell = SeqCell.create({ x: "i32" }, { initial: { x: 3 } });
   * const same = SeqCell.attach<{ x: "i32" }>(structuredClone(cell.handle));
   * console.assert(same.read().x === 3);
   * ```
   */
  static attach<S extends SeqCellSchema = SeqCellSchema>(handle: SeqCellHandle): SeqCell<S> {
    const head = attachObject(handle, KIND, LAYOUT_VERSION, DATA * 4, TAG, "SeqCell");
    const count = Atomics.load(head.words, FIELD_COUNT);
    const dataWords = Atomics.load(head.words, DATA_WORDS);
    const schemaBytes = Atomics.load(head.words, SCHEMA_BYTES);
    if (
      count < 1 || count > MAX_FIELDS || dataWords < count || dataWords > 2 * count ||
      schemaBytes < 2 * count || schemaBytes > 257 * count
    ) {
      throw new HandleError(
        `Cannot attach SeqCell as its header is corrupt: ${count} fields, ${dataWords} data words, ${schemaBytes} schema bytes`,
      );
    }
    const bytes = DATA * 4 + dataWords * 4 + schemaBytes;
    const placement = attachObject(handle, KIND, LAYOUT_VERSION, bytes, TAG, "SeqCell");
    const schema = new Uint8Array(schemaBytes);
    schema.set(
      new Uint8Array(placement.sab, placement.offset + DATA * 4 + dataWords * 4, schemaBytes),
    );
    return new SeqCell<S>(placement, decodeSchema(schema, count, dataWords), false);
  }

  /**
   * The handle to send to other workers.
   *
   * @example
   * ```ts
   * import { SeqCell } from "@sabre/sabre";
   * console.assert(SeqCell.create({ x: "u32" }).handle.kind === "sabre.SeqCell");
   * ```
   */
  get handle(): SeqCellHandle {
    this.#checkLive();
    return objectHandle(KIND, LAYOUT_VERSION, this.#placement);
  }

  /**
   * Field names, in layout order.
   *
   * @example
   * ```ts
   * import { SeqCell } from "@sabre/sabre";
   * console.assert(SeqCell.create({ a: "i32", b: "u32" }).fields.join() === "a,b");
   * ```
   */
  get fields(): readonly string[] {
    this.#checkLive();
    return this.#fields.map((f) => f.name);
  }

  /**
   * How many writes have been published.
   *
   * @example
   * ```ts
   * import { SeqCell } from "@sabre/sabre";
   * const cell = SeqCell.create({ a: "i32" });
   * cell.write({ a: 1 });
   * console.assert(cell.version === 1);
   * ```
   */
  get version(): number {
    this.#checkLive();
    return Atomics.load(this.#words, SEQ) >>> 1;
  }

  /**
   * A consistent snapshot of every field, as a new object. Waits only while
   * a write is in progress; throws {@linkcode TimeoutError} after
   * `timeoutMs`.
   *
   * @example
   * ```ts
   * import { SeqCell } from "@sabre/sabre";
   * const cell = SeqCell.create({ a: "i32", b: "i32" });
   * cell.write({ a: 1, b: -1 });
   * const { a, b } = cell.read();
   * console.assert(a + b === 0);
   * ```
   */
  read(options?: LockOptions): SeqCellRecord<S> {
    this.#checkLive();
    const deadline = options === undefined ? Infinity : deadlineOf(options, "read SeqCell");
    return this.#codec.read(this.#words, deadline, options?.timeoutMs) as SeqCellRecord<S>;
  }

  /**
   * Like `read`, but waits for a write in progress with
   * `Atomics.waitAsync`, so that the thread's event loop keeps running.
   *
   * @example
   * ```ts
   * import { SeqCell } from "@sabre/sabre";
   * const cell = SeqCell.create({ a: "i32", b: "i32" });
   * cell.write({ a: 1, b: -1 });
   * const { a, b } = await cell.readAsync({ timeoutMs: 1000 });
   * console.assert(a + b === 0);
   * ```
   */
  async readAsync(options?: LockOptions): Promise<SeqCellRecord<S>> {
    this.#checkLive();
    const deadline = deadlineOf(options, "read SeqCell");
    const words = this.#words;
    const codec = this.#codec;
    for (;;) {
      const snapshot = codec.tryRead(words);
      if (snapshot !== undefined) return snapshot as SeqCellRecord<S>;
      if ((Atomics.load(words, SEQ) & 1) === 1) {
        await waitEvenSequenceAsync(words, PARKED, TAG, deadline, "SeqCell", options?.timeoutMs);
      } else if (performance.now() >= deadline) {
        throw new TimeoutError("read SeqCell", options?.timeoutMs ?? 0);
      }
    }
  }

  /**
   * Like `read`, but fills `target` instead of allocating, for hot loops.
   *
   * @example
   * ```ts
   * import { SeqCell } from "@sabre/sabre";
   * const cell = SeqCell.create({ a: "i32" });
   * const snapshot = { a: -1 };
   * cell.readInto(snapshot);
   * console.assert(snapshot.a === 0);
   * ```
   */
  readInto<T extends SeqCellRecord<S>>(target: T, options?: LockOptions): T {
    this.#checkLive();
    const deadline = options === undefined ? Infinity : deadlineOf(options, "read SeqCell");
    this.#codec.readInto(this.#words, target, deadline, options?.timeoutMs);
    return target;
  }

  /**
   * One read attempt: a snapshot if no write was in progress or
   * intervened, else `undefined`. Never waits.
   *
   * @example
   * ```ts
   * import { SeqCell } from "@sabre/sabre";
   * console.assert(SeqCell.create({ a: "i32" }).tryRead()?.a === 0);
   * ```
   */
  tryRead(): SeqCellRecord<S> | undefined {
    this.#checkLive();
    return this.#codec.tryRead(this.#words) as SeqCellRecord<S> | undefined;
  }

  /**
   * A consistent read of one field. Waits only while a write is in
   * progress; throws {@linkcode TimeoutError} after `timeoutMs`.
   *
   * @example
   * ```ts
   * import { SeqCell } from "@sabre/sabre";
   * const cell = SeqCell.create({ rate: "f64" }, { initial: { rate: 1.25 } });
   * console.assert(cell.get("rate") === 1.25);
   * ```
   */
  get(name: keyof S & string, options?: LockOptions): number {
    this.#checkLive();
    const field = this.#field(name, "read");
    const deadline = options === undefined ? Infinity : deadlineOf(options, "read SeqCell");
    const words = this.#words;
    for (;;) {
      let stamp = Atomics.load(words, SEQ);
      if ((stamp & 1) === 1) {
        stamp = waitCell(words, deadline, "SeqCell", options?.timeoutMs);
      }
      const low = Atomics.load(words, DATA + field.word);
      const high = field.type === "f64" ? Atomics.load(words, DATA + field.word + 1) : 0;
      if (Atomics.load(words, SEQ) !== stamp) continue;
      if (field.type === "i32") return low;
      if (field.type === "u32") return low >>> 0;
      f64Words[0] = low;
      f64Words[1] = high;
      return f64Scratch[0];
    }
  }

  /**
   * Publishes new values for some or all fields; the others keep theirs.
   * Every value is checked before anything is written (`TypeError` for an
   * unknown field or a non-number, `RangeError` for an i32/u32 value out of
   * range). Blocks while another writer is inside.
   *
   * @example
   * ```ts
   * import { SeqCell } from "@sabre/sabre";
   * const cell = SeqCell.create({ a: "i32", b: "u32" });
   * cell.write({ b: 7 });
   * console.assert(cell.read().b === 7);
   * ```
   */
  write(values: Partial<SeqCellRecord<S>>, options?: LockOptions): void {
    this.#checkLive();
    const codec = this.#codec;
    // Full writes in schema order use the scratch shared by this shape's
    // cells. acquire() runs no user code without options; with them it reads
    // options.timeoutMs, and a getter there could encode another write of
    // this shape into the scratch, so keep a copy then.
    const updates = !codec.encodeAll(values, codec.scratch)
      ? this.#check(values)
      : options === undefined
      ? codec.scratch
      : codec.scratch.slice();
    acquireWriters(this.#writers, options, "SeqCell");
    try {
      this.#publish(updates);
    } finally {
      this.#writers.release();
    }
  }

  /**
   * Like `write`, waiting for other writers with `Atomics.waitAsync`.
   *
   * @example
   * ```ts
   * import { SeqCell } from "@sabre/sabre";
   * const cell = SeqCell.create({ a: "i32" });
   * await cell.writeAsync({ a: 2 });
   * console.assert(cell.get("a") === 2);
   * ```
   */
  async writeAsync(values: Partial<SeqCellRecord<S>>, options?: LockOptions): Promise<void> {
    this.#checkLive();
    const codec = this.#codec;
    // Other code runs while this waits: take the encoded words out of the shared scratch.
    const updates = codec.encodeAll(values, codec.scratch)
      ? codec.scratch.slice()
      : this.#check(values);
    await acquireWritersAsync(this.#writers, options, "SeqCell");
    try {
      this.#publish(updates);
    } finally {
      this.#writers.release();
    }
  }

  /**
   * Publishes `values` if no other writer is inside; returns whether it did.
   *
   * @example
   * ```ts
   * import { SeqCell } from "@sabre/sabre";
   * console.assert(SeqCell.create({ a: "i32" }).tryWrite({ a: 1 }));
   * ```
   */
  tryWrite(values: Partial<SeqCellRecord<S>>): boolean {
    this.#checkLive();
    const codec = this.#codec;
    const updates = codec.encodeAll(values, codec.scratch) ? codec.scratch : this.#check(values);
    if (!this.#writers.tryAcquire()) return false;
    try {
      this.#publish(updates);
    } finally {
      this.#writers.release();
    }
    return true;
  }

  /**
   * Read-modify-write under the writer lock: `fn` gets the current record
   * and returns the fields to change. Other writers wait meanwhile; readers
   * do not.
   *
   * @example
   * ```ts
   * import { SeqCell } from "@sabre/sabre";
   * const cell = SeqCell.create({ n: "u32" });
   * cell.update((r) => ({ n: r.n + 1 }));
   * console.assert(cell.get("n") === 1);
   * ```
   */
  update(fn: (current: SeqCellRecord<S>) => Partial<SeqCellRecord<S>>, options?: LockOptions) {
    this.#checkLive();
    requireSyncFunction(
      fn,
      "SeqCell.update",
      "a write section must be synchronous: await before or after it",
    );
    acquireWriters(this.#writers, options, "SeqCell");
    try {
      // Writers are excluded, so this snapshot cannot be torn.
      const codec = this.#codec;
      const next = fn(codec.read(this.#words, Infinity) as SeqCellRecord<S>);
      this.#publish(codec.encodeAll(next, codec.scratch) ? codec.scratch : this.#check(next));
    } finally {
      this.#writers.release();
    }
  }

  /**
   * Frees the cell's memory in its heap (a standalone cell's buffer is left
   * to the garbage collector). Every later call on this object throws
   * {@linkcode DestroyedError}, and so does a second `destroy()` from any
   * worker, or a wait on the cell that another worker's object would begin.
   * Throws `SabreError` during a write
   * or while a writer waits; readers must be done with it too.
   *
   * @example
   * ```ts
   * import { SeqCell, SharedHeap } from "@sabre/sabre";
   * SeqCell.create({ a: "i32" }, { heap: SharedHeap.create() }).destroy();
   * ```
   */
  destroy(): void {
    if (this.#destroyed) throw new DestroyedError("SeqCell", "destroy");
    try {
      destroySequenced(this.#words, this.#writers, "SeqCell", TAG);
    } catch (e) {
      if (e instanceof DestroyedError) this.#destroyed = true;
      throw e;
    }
    this.#destroyed = true;
    releaseObject(this.#placement, TAG, "SeqCell");
  }

  #field(name: string, what: string): Field {
    const field = this.#byName.get(name);
    if (field === undefined) {
      throw new TypeError(
        `Cannot ${what} SeqCell field as it has no field ${describeValue(name)} (fields: ${
          this.fields.join(", ")
        })`,
      );
    }
    return field;
  }

  /** Validates every value and returns [word, value] pairs to store. */
  #check(values: Partial<SeqCellRecord<S>>): number[] {
    if (typeof values !== "object" || values === null) {
      throw new TypeError(
        `Cannot write SeqCell as 'values' is not an object: current value is ${
          describeValue(values)
        }`,
      );
    }
    const updates: number[] = [];
    for (const [name, value] of Object.entries(values)) {
      const field = this.#field(name, "write");
      if (!fits(field.type, value)) badValue(field, value);
      if (field.type === "f64") {
        f64Scratch[0] = value;
        updates.push(field.word, f64Words[0], field.word + 1, f64Words[1]);
        continue;
      }
      updates.push(field.word, value | 0);
    }
    return updates;
  }

  /**
   * Publishes `updates`: [word, value] pairs from `#check`, or every data
   * word as encoded by `encodeAll`. Caller holds the writer mutex.
   */
  #publish(updates: number[] | Int32Array): void {
    const words = this.#words;
    if (updates instanceof Int32Array) return this.#codec.publishAll(words, updates);
    Atomics.add(words, SEQ, 1);
    for (let i = 0; i < updates.length; i += 2) {
      Atomics.store(words, DATA + updates[i], updates[i + 1]);
    }
    endCell(words);
  }
}
