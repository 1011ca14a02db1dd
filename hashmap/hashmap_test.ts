/**
 * Single-thread tests of HashMap: model-based property tests for every codec
 * pair that matters, codec round trips, validation before any write, handles,
 * heap exhaustion, iteration while the map changes, and replayed
 * interleavings of other workers at precise points of an operation.
 *
 * Multi-worker tests live in hashmap_workers_test.ts.
 */

import assert from "node:assert/strict";
import { DESTROY_SAMPLES, settledUse } from "../testing/destroy.ts";
import fc from "fast-check";
import { HashMap, type HashMapOptions } from "./mod.ts";
import {
  type CodecName,
  faultInjection,
  HandleError,
  HeapExhaustedError,
  SabreError,
  SharedHeap,
  tagOf,
} from "../memory/mod.ts";
import {
  EPOCH_AT,
  instantiateKernel,
  type Kernel,
  KERNEL_ABSENT,
  KERNEL_SLOW,
} from "../memory/_kernel.ts";
import type { StringKernel } from "../memory/_string_kernel.ts";
import { seededRandom } from "../testing/harness.ts";
import {
  heapWithKernel,
  KERNEL_CHOICES,
  type KernelChoice,
  kernelLabel,
} from "../testing/kernel.ts";
import { encodeAsciiKey } from "../memory/_murmur.ts";
import {
  currentHeapHooks,
  epochWordAt,
  heapKernel,
  installHeapHooks,
  kernelForRead,
  kernelKeyWords,
  kernelTrapped,
} from "../memory/_heap_hooks.ts";

const STRESS = Number(Deno.env.get("SABRE_STRESS") ?? "1");

type AnyMap = HashMap<unknown, unknown>;

function createMap(heap: SharedHeap, options: HashMapOptions<CodecName, CodecName>): AnyMap {
  return HashMap.create(heap, options) as unknown as AnyMap;
}

const utf8 = new TextEncoder();

/** Blocks and bytes in use once every retired block that can be freed is. */
function hex(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += b.toString(16).padStart(2, "0");
  return s;
}

// ---------------------------------------------------------------------------
// Model-based property tests

/** How a codec pair is generated, compared and modelled. */
interface PairSpec {
  readonly name: string;
  readonly options: HashMapOptions<CodecName, CodecName>;
  /** Keys drawn for single operations (small pools collide often). */
  readonly key: fc.Arbitrary<unknown>;
  /** The i-th key of bulk inserts: distinct for distinct i. */
  readonly bulkKey: (i: number) => unknown;
  readonly value: fc.Arbitrary<unknown>;
  /** Identity of a key as the map sees it (-0 and 0 are one f64/i32 key). */
  readonly keyId: (key: unknown) => string;
  /** The value codec's equality (what compareAndSet and deleteIf use). */
  readonly eq: (a: unknown, b: unknown) => boolean;
  /** What `get` returns after `set(k, v)`. */
  readonly norm: (value: unknown) => unknown;
  /** A pure function for `update`. */
  readonly next: (current: unknown) => unknown;
  /** For numeric values: deltas, and the sum or undefined when out of range. */
  readonly add?: {
    readonly delta: fc.Arbitrary<unknown>;
    readonly apply: (current: unknown, delta: unknown) => unknown;
  };
}

const numberId = (k: unknown): string => String(k === 0 ? 0 : k);
const I32_MIN = -2147483648;
const I32_MAX = 2147483647;
const U32_MAX = 4294967295;
const I64_MIN = -(2n ** 63n);
const I64_MAX = 2n ** 63n - 1n;

const i32Value = fc.oneof(fc.integer(), fc.constantFrom(-0, I32_MIN, I32_MAX, 0, 1));
const i32Norm = (v: unknown) => (v as number) | 0;
const i32Add = {
  delta: fc.oneof(
    { weight: 4, arbitrary: fc.integer({ min: -1000, max: 1000 }) },
    { weight: 1, arbitrary: fc.constantFrom(I32_MIN, I32_MAX) },
  ),
  apply: (current: unknown, delta: unknown) => {
    const sum = ((current ?? 0) as number) + (delta as number);
    return sum >= I32_MIN && sum <= I32_MAX ? sum | 0 : undefined;
  },
};
const sameNumber = (a: unknown, b: unknown) => a === b;
const f64Value = fc.oneof(
  fc.double(),
  fc.constantFrom(NaN, -0, 0, Infinity, -Infinity, Number.MIN_VALUE, -Number.MAX_VALUE),
  // The kernel's two sentinel answers, which an f64 value may equal.
  fc.constantFrom(KERNEL_SLOW, KERNEL_ABSENT),
);
/** The value side of a PairSpec for f64 values. */
const F64_VALUES = {
  value: f64Value,
  eq: Object.is,
  norm: (v: unknown) => v,
  next: (v: unknown) => v === undefined ? 0.5 : (v as number) * -0.5,
  add: {
    delta: f64Value,
    apply: (current: unknown, delta: unknown) => ((current ?? 0) as number) + (delta as number),
  },
} satisfies Partial<PairSpec>;
const bigintValue = fc.oneof(
  fc.bigInt({ min: I64_MIN, max: I64_MAX }),
  fc.constantFrom(I64_MIN, I64_MAX, 0n, -1n),
);
const utf8Length = (s: string) => utf8.encode(s).length;
const stringKey = (maxBytes: number) =>
  fc.oneof(
    fc.constantFrom("", "a", "é", "e\u0301", "😀", "\u0000", "\uFFFF", "𝔘𝔫𝔦", "key"),
    fc.string({ unit: "binary", maxLength: 6 }),
    fc.string({ unit: "grapheme", maxLength: 3 }),
  ).filter((s) => utf8Length(s) <= maxBytes);
const stringValue = (maxBytes: number) =>
  fc.oneof(
    fc.constantFrom("", "x", "ü", "👩‍👩‍👧"),
    fc.string({ unit: "binary", maxLength: 12 }),
  ).filter((s) => utf8Length(s) <= maxBytes);
const stringNext = (v: unknown) => v === undefined ? "∅" : (v as string).length < 8 ? v + "+" : "↺";

const SPECS: PairSpec[] = [
  {
    name: "i32 -> i32",
    options: { key: "i32", value: "i32" },
    key: fc.oneof(
      fc.integer({ min: -8, max: 8 }),
      fc.constantFrom(I32_MIN, I32_MAX, -0),
      fc.integer(),
      fc.nat(3000).map((i) => Math.imul(i + 1, 0x9e3779b1)),
    ),
    bulkKey: (i) => Math.imul(i + 1, 0x9e3779b1),
    value: i32Value,
    keyId: numberId,
    eq: sameNumber,
    norm: i32Norm,
    next: (v) => v === undefined ? 1 : ((v as number) ^ 0x5a5a5a5a) | 0,
    add: i32Add,
  },
  {
    name: "u32 -> f64",
    options: { key: "u32", value: "f64" },
    key: fc.oneof(
      fc.nat(16),
      fc.constantFrom(0, U32_MAX, 2 ** 31),
      fc.integer().map((x) => x >>> 0),
      fc.nat(3000).map((i) => Math.imul(i + 1, 0x9e3779b1) >>> 0),
    ),
    bulkKey: (i) => Math.imul(i + 1, 0x9e3779b1) >>> 0,
    keyId: numberId,
    ...F64_VALUES,
  },
  {
    name: "f64 -> bigint64",
    options: { key: "f64", value: "bigint64" },
    key: fc.oneof(
      fc.constantFrom(
        0,
        -0,
        1.5,
        -1.5,
        Infinity,
        -Infinity,
        Number.MIN_VALUE,
        -Number.MIN_VALUE,
        Number.MAX_VALUE,
        2 ** 53,
        0.1,
      ),
      fc.integer({ min: -8, max: 8 }),
      fc.double({ noNaN: true }),
      fc.nat(3000).map((i) => i + 0.25),
    ),
    bulkKey: (i) => i + 0.25,
    value: bigintValue,
    keyId: numberId,
    eq: (a, b) => a === b,
    norm: (v) => v,
    next: (v) => v === undefined ? 1n : BigInt.asIntN(64, (v as bigint) * 3n + 1n),
    add: {
      delta: fc.oneof(
        { weight: 4, arbitrary: fc.bigInt({ min: -100n, max: 100n }) },
        { weight: 1, arbitrary: fc.constantFrom(I64_MIN, I64_MAX) },
      ),
      apply: (current, delta) => {
        const sum = ((current ?? 0n) as bigint) + (delta as bigint);
        return sum >= I64_MIN && sum <= I64_MAX ? sum : undefined;
      },
    },
  },
  {
    name: "string -> string",
    options: { key: "string", value: "string", maxKeyBytes: 48, maxValueBytes: 64 },
    key: fc.oneof(stringKey(48), fc.nat(3000).map((i) => `κ${i}`)),
    bulkKey: (i) => `κ${i}`,
    value: stringValue(64),
    keyId: (k) => k as string,
    eq: (a, b) => a === b,
    norm: (v) => v,
    next: stringNext,
  },
  {
    // ASCII keys of up to 32 bytes are read in the kernel, longer ones in
    // JavaScript; a small alphabet makes keys that differ in one byte.
    name: "ASCII string -> f64",
    options: { key: "string", value: "f64", maxKeyBytes: 40 },
    key: fc.oneof(
      fc.constantFrom("a", "\u0000", "abcd-2now", "abcd-3i95", "k".repeat(32), "k".repeat(33)),
      fc.string({ unit: fc.constantFrom("a", "b", "~", "\u0000"), maxLength: 40 }),
      fc.nat(3000).map((i) => asciiBulkKey(i)),
    ),
    bulkKey: (i) => asciiBulkKey(i),
    keyId: (k) => k as string,
    ...F64_VALUES,
  },
  {
    name: "bytes -> i32",
    options: { key: "bytes", value: "i32", maxKeyBytes: 24 },
    key: fc.oneof(
      fc.uint8Array({ maxLength: 24 }),
      fc.constantFrom(new Uint8Array(0), new Uint8Array(24).fill(255)),
      fc.nat(3000).map((i) => bulkBytes(i)),
    ),
    bulkKey: (i) => bulkBytes(i),
    value: i32Value,
    keyId: (k) => hex(k as Uint8Array),
    eq: sameNumber,
    norm: i32Norm,
    next: (v) => v === undefined ? -1 : ((v as number) + 7) | 0,
    add: i32Add,
  },
  {
    name: "bigint64 -> string",
    options: { key: "bigint64", value: "string", maxValueBytes: 64 },
    key: fc.oneof(
      fc.bigInt({ min: -8n, max: 8n }),
      fc.constantFrom(I64_MIN, I64_MAX),
      fc.bigInt({ min: I64_MIN, max: I64_MAX }),
      fc.nat(3000).map((i) => bulkBigint(i)),
    ),
    bulkKey: (i) => bulkBigint(i),
    value: stringValue(64),
    keyId: (k) => String(k),
    eq: (a, b) => a === b,
    norm: (v) => v,
    next: stringNext,
  },
];

/** Distinct for distinct i, 5 to 40 bytes long. */
function asciiBulkKey(i: number): string {
  return `k${i}:`.padEnd(5 + (i % 36), "-");
}

function bulkBytes(i: number): Uint8Array {
  return new Uint8Array([0x0b, i & 255, (i >> 8) & 255, (i >> 16) & 255, 0xff]);
}

function bulkBigint(i: number): bigint {
  return BigInt.asIntN(64, BigInt(i + 1) * 0x9e3779b97f4a7c15n);
}

type Op =
  | { t: "set" | "swap" | "getOrInsert"; k: unknown; v: unknown }
  | { t: "get" | "has" | "delete" | "take" | "update"; k: unknown }
  | { t: "getOrInsertComputed"; k: unknown; v: unknown }
  | { t: "deleteIf"; k: unknown; v: unknown; useCurrent: boolean }
  | { t: "compareAndSet"; k: unknown; v: unknown; expected: unknown; mode: number }
  | { t: "add"; k: unknown; d: unknown }
  | { t: "clear" | "size" | "iterate" }
  | { t: "bulkSet"; start: number; count: number; v: unknown }
  | { t: "bulkDelete"; fraction: number };

function opArbitrary(spec: PairSpec): fc.Arbitrary<Op> {
  const { key: k, value: v } = spec;
  const pick = <T>(weight: number, arbitrary: fc.Arbitrary<T>) => ({ weight, arbitrary });
  const ops: { weight: number; arbitrary: fc.Arbitrary<Op> }[] = [
    pick(6, fc.record({ t: fc.constantFrom("set", "swap", "getOrInsert" as const), k, v })),
    pick(6, fc.record({ t: fc.constantFrom("get", "has", "delete", "update" as const), k })),
    pick(1, fc.record({ t: fc.constant("take" as const), k })),
    pick(1, fc.record({ t: fc.constant("getOrInsertComputed" as const), k, v })),
    pick(2, fc.record({ t: fc.constant("deleteIf" as const), k, v, useCurrent: fc.boolean() })),
    pick(
      3,
      fc.record({
        t: fc.constant("compareAndSet" as const),
        k,
        v,
        expected: v,
        mode: fc.nat(2),
      }),
    ),
    pick(1, fc.record({ t: fc.constantFrom("clear", "size", "iterate" as const) })),
    pick(
      2,
      fc.record({
        t: fc.constant("bulkSet" as const),
        start: fc.nat(2500),
        count: fc.integer({ min: 50, max: 1600 }),
        v,
      }),
    ),
    pick(
      2,
      fc.record({
        t: fc.constant("bulkDelete" as const),
        fraction: fc.oneof(fc.double({ min: 0.2, max: 1 }), fc.double({ min: 0.85, max: 1 })),
      }),
    ),
  ];
  if (spec.add !== undefined) {
    ops.push(pick(2, fc.record({ t: fc.constant("add" as const), k, d: spec.add.delta })));
  }
  return fc.oneof(...ops);
}

/** The model: a JS Map from key identity to [key, value]. */
class Model {
  readonly entries = new Map<string, [unknown, unknown]>();
  constructor(readonly spec: PairSpec) {}
  has(k: unknown): boolean {
    return this.entries.has(this.spec.keyId(k));
  }
  get(k: unknown): unknown {
    return this.entries.get(this.spec.keyId(k))?.[1];
  }
  set(k: unknown, v: unknown): void {
    const id = this.spec.keyId(k);
    const old = this.entries.get(id);
    this.entries.set(id, [old?.[0] ?? k, this.spec.norm(v)]);
  }
  delete(k: unknown): boolean {
    return this.entries.delete(this.spec.keyId(k));
  }
}

interface ResizeStats {
  grows: number;
  shrinks: number;
  maxCapacity: number;
}

/** Compares every entry of the map with the model: iteration, get, has, size. */
function checkWhole(map: AnyMap, model: Model, where: string): void {
  const spec = model.spec;
  assert.equal(map.size, model.entries.size, `${where}: size`);
  const seen = new Set<string>();
  for (const [k, v] of map.entries()) {
    const id = spec.keyId(k);
    assert.ok(!seen.has(id), `${where}: iteration yielded key ${id} twice`);
    seen.add(id);
    const expected = model.entries.get(id);
    assert.ok(expected !== undefined, `${where}: iteration yielded absent key ${id}`);
    assert.ok(spec.eq(v, expected[1]), `${where}: iteration value of ${id}`);
  }
  assert.equal(seen.size, model.entries.size, `${where}: iteration missed keys`);
  for (const [id, [k, v]] of model.entries) {
    assert.ok(map.has(k), `${where}: has(${id})`);
    assert.ok(spec.eq(map.get(k), v), `${where}: get(${id}) = ${map.get(k)}, expected ${v}`);
  }
}

function runOps(spec: PairSpec, ops: Op[], stats: ResizeStats, kernel: KernelChoice = true): void {
  const heap = heapWithKernel(kernel);
  const map = createMap(heap, spec.options);
  const model = new Model(spec);
  let capacity = map.capacity;
  const observe = () => {
    const now = map.capacity;
    if (now > capacity) stats.grows++;
    if (now < capacity) stats.shrinks++;
    stats.maxCapacity = Math.max(stats.maxCapacity, now);
    capacity = now;
  };
  const valueOf = (v: unknown) => v instanceof Uint8Array ? v.slice() : v;
  for (let step = 0; step < ops.length; step++) {
    const op = ops[step];
    const where = `${spec.name} step ${step} ${op.t}`;
    switch (op.t) {
      case "set":
        assert.equal(map.set(op.k, op.v), map);
        model.set(op.k, op.v);
        break;
      case "swap": {
        const previous = model.get(op.k);
        const got = map.swap(op.k, op.v);
        assert.ok(
          previous === undefined ? got === undefined : spec.eq(got, previous),
          `${where}: swap returned ${got}, expected ${previous}`,
        );
        model.set(op.k, op.v);
        break;
      }
      case "getOrInsert": {
        const present = model.has(op.k);
        const got = map.getOrInsert(op.k, op.v);
        const expected = present ? model.get(op.k) : spec.norm(op.v);
        assert.ok(spec.eq(spec.norm(got), expected), `${where}: got ${got}`);
        if (!present) model.set(op.k, op.v);
        break;
      }
      case "getOrInsertComputed": {
        const present = model.has(op.k);
        const calls: unknown[] = [];
        const got = map.getOrInsertComputed(op.k, (key) => {
          calls.push(key);
          return op.v;
        });
        const expected = present ? model.get(op.k) : spec.norm(op.v);
        assert.ok(spec.eq(spec.norm(got), expected), `${where}: got ${got}`);
        assert.deepEqual(calls, present ? [] : [op.k], `${where}: compute's calls`);
        if (!present) model.set(op.k, op.v);
        break;
      }
      case "take": {
        const previous = model.get(op.k);
        const got = map.take(op.k);
        assert.ok(
          previous === undefined ? got === undefined : spec.eq(got, previous),
          `${where}: take returned ${got}, expected ${previous}`,
        );
        model.delete(op.k);
        break;
      }
      case "get": {
        const got = map.get(op.k);
        const expected = model.get(op.k);
        assert.ok(
          expected === undefined ? got === undefined : spec.eq(got, expected),
          `${where}: get returned ${got}, expected ${expected}`,
        );
        break;
      }
      case "has":
        assert.equal(map.has(op.k), model.has(op.k), where);
        break;
      case "delete":
        assert.equal(map.delete(op.k), model.delete(op.k), where);
        break;
      case "update": {
        const nextValue = spec.next(model.get(op.k));
        let calls = 0;
        const got = map.update(op.k, (current) => {
          calls++;
          const expected = model.get(op.k);
          assert.ok(
            expected === undefined ? current === undefined : spec.eq(current, expected),
            `${where}: update saw ${current}`,
          );
          return spec.next(current);
        });
        assert.equal(calls, 1, `${where}: update called fn ${calls} times without contention`);
        assert.ok(spec.eq(got, nextValue), where);
        model.set(op.k, nextValue);
        break;
      }
      case "deleteIf": {
        const present = model.has(op.k);
        const value = op.useCurrent && present ? valueOf(model.get(op.k)) : op.v;
        const expected = present && spec.eq(model.get(op.k), spec.norm(value));
        assert.equal(map.deleteIf(op.k, value), expected, where);
        if (expected) model.delete(op.k);
        break;
      }
      case "compareAndSet": {
        const present = model.has(op.k);
        const expected = op.mode === 0 && present
          ? valueOf(model.get(op.k))
          : op.mode === 1 || (op.mode === 0 && !present)
          ? undefined
          : op.expected;
        const matches = expected === undefined
          ? !present
          : present && spec.eq(model.get(op.k), spec.norm(expected));
        assert.equal(map.compareAndSet(op.k, expected, op.v), matches, where);
        if (matches) model.set(op.k, op.v);
        break;
      }
      case "add": {
        const sum = spec.add!.apply(model.get(op.k), op.d);
        const before = model.get(op.k);
        if (sum === undefined) {
          assert.throws(() => map.add(op.k, op.d as number | bigint), RangeError, where);
          const after = map.get(op.k);
          assert.ok(
            before === undefined ? after === undefined : spec.eq(after, before),
            `${where}: a failed add changed the value`,
          );
        } else {
          assert.ok(spec.eq(map.add(op.k, op.d as number | bigint), sum), where);
          model.set(op.k, sum);
        }
        break;
      }
      case "clear":
        map.clear();
        model.entries.clear();
        assert.equal(map.size, 0, where);
        break;
      case "size":
        assert.equal(map.size, model.entries.size, where);
        break;
      case "iterate":
        checkWhole(map, model, where);
        break;
      case "bulkSet":
        for (let i = op.start; i < op.start + op.count; i++) {
          const k = spec.bulkKey(i);
          map.set(k, op.v);
          model.set(k, op.v);
          // Read back at once: a key written while a resize is under way
          // must be visible to the very next read.
          assert.ok(spec.eq(map.get(k), spec.norm(op.v)), `${where}: get right after set(${i})`);
          observe();
        }
        break;
      case "bulkDelete": {
        const victims = [...model.entries.values()].slice(
          0,
          Math.ceil(model.entries.size * op.fraction),
        );
        for (const [k] of victims) {
          assert.ok(map.delete(k), `${where}: delete of a present key`);
          model.delete(k);
          assert.ok(!map.has(k), `${where}: has after delete`);
          observe();
        }
        break;
      }
    }
    assert.equal(map.size, model.entries.size, `${where}: size after the step`);
    observe();
  }
  checkWhole(map, model, `${spec.name} at the end`);
}

// Int and string keys read through the WebAssembly kernel; the JavaScript
// paths that serve where it is missing get the same test, and so do string
// gets with keys encoded in JavaScript (where the string kernel is missing).
const KERNEL_MODES = (spec: PairSpec): readonly KernelChoice[] =>
  spec.options.key === "string"
    ? KERNEL_CHOICES
    : spec.options.key === "i32" || spec.options.key === "u32"
    ? [true, false]
    : [true];

for (const spec of SPECS) {
  for (const kernel of KERNEL_MODES(spec)) {
    const how = kernel === true
      ? ""
      : kernel === false
      ? ", JavaScript paths only (no kernel)"
      : ", keys encoded in JavaScript (no string kernel)";
    Deno.test(`model: random operations on ${spec.name} match a Map, across many resizes${how}`, () => {
      const stats: ResizeStats = { grows: 0, shrinks: 0, maxCapacity: 0 };
      // The runs must really cross grow and shrink thresholds, and reach
      // tables large enough that a migration spans several operations.
      // fast-check draws a new seed each time, so how many a batch of runs
      // crosses varies (one batch crossed 18 shrinks): batches run until the
      // counts are reached, four at most.
      const covered = () => stats.grows >= 200 && stats.shrinks >= 20 && stats.maxCapacity >= 4096;
      for (let batch = 0; batch < 4 && (batch === 0 || !covered()); batch++) {
        fc.assert(
          fc.property(
            fc.array(opArbitrary(spec), { minLength: 1, maxLength: 40, size: "max" }),
            (ops) => {
              runOps(spec, ops, stats, kernel);
            },
          ),
          { numRuns: 120 * STRESS },
        );
      }
      assert.ok(stats.grows >= 200, `only ${stats.grows} grows`);
      assert.ok(stats.shrinks >= 20, `only ${stats.shrinks} shrinks`);
      assert.ok(stats.maxCapacity >= 4096, `largest table had ${stats.maxCapacity} slots`);
    });
  }
}

// ---------------------------------------------------------------------------
// Resizing

Deno.test("resize: every key written while a migration spans several operations reads back at once", () => {
  const heap = SharedHeap.create();
  const map = createMap(heap, { key: "i32", value: "i32" });
  const n = 40_000;
  for (let k = 0; k < n; k++) {
    map.set(k, ~k);
    assert.equal(map.get(k), ~k, `get(${k}) right after set, capacity ${map.capacity}`);
    if (k % 5 === 4) {
      // Deletes and overwrites of older keys interleave with the helping.
      assert.ok(map.delete(k - 2), `delete(${k - 2})`);
      assert.equal(map.get(k - 2), undefined);
      assert.equal(map.swap(k - 4, k), ~(k - 4));
      assert.equal(map.get(k - 4), k);
    }
  }
  assert.ok(map.capacity >= 32_768, `capacity ${map.capacity}: migrations spanned many chunks`);
  for (let k = 0; k < n; k++) {
    const expected = k % 5 === 2 ? undefined : k % 5 === 0 && k + 4 < n ? k + 4 : ~k;
    assert.equal(map.get(k), expected, `final get(${k})`);
  }
  assert.equal(map.size, n - n / 5);
});

Deno.test("memory: deleting a key whose value is a string or bytes frees the value's bytes at once, before any shrink", () => {
  for (const value of ["string", "bytes"] as const) {
    const heap = SharedHeap.create();
    const map = createMap(heap, { key: "i32", value });
    const valueOf = (k: number) =>
      value === "string" ? "x".repeat(200) + k : new Uint8Array(200).fill(k & 255);
    for (let k = 0; k < 2000; k++) map.set(k, valueOf(k));
    const capacity = map.capacity;
    for (let i = 0; i < 4; i++) heap.collect();
    const before = heap.stats().liveBytes;
    // Each way of removing a key: delete, take, deleteIf.
    for (let k = 0; k < 1200; k++) {
      if (k % 3 === 0) assert.ok(map.delete(k));
      else if (k % 3 === 1) assert.deepEqual(map.take(k), valueOf(k));
      else assert.ok(map.deleteIf(k, valueOf(k)));
    }
    for (let i = 0; i < 4; i++) heap.collect();
    const freed = before - heap.stats().liveBytes;
    assert.equal(map.capacity, capacity, `${value}: the map shrank, which frees entries anyway`);
    assert.ok(freed >= 1200 * 200, `${value}: only ${freed} bytes freed by 1,200 deletes`);
    // The keys are gone, the others intact, and each deleted key can come back.
    assert.equal(map.size, 800);
    for (let k = 0; k < 2000; k++) {
      assert.deepEqual(map.get(k), k < 1200 ? undefined : valueOf(k), `${value}: get(${k})`);
    }
    for (let k = 0; k < 1200; k += 7) map.set(k, valueOf(k + 1));
    for (let k = 0; k < 1200; k += 7) assert.deepEqual(map.get(k), valueOf(k + 1));
    assert.equal(map.size, 800 + Math.ceil(1200 / 7));
    assert.equal(map.delete(0), true);
    assert.equal(map.delete(0), false);
    const live = heap.stats().liveBlocks;
    map.destroy();
    for (let i = 0; i < 4; i++) heap.collect();
    assert.ok(heap.stats().liveBlocks < live, `${value}: destroy freed nothing`);
  }
});

Deno.test("memory: an i32 -> i32 entry costs at most 24 bytes, slots included, once a growth and the old table's retirement are done", () => {
  const heap = SharedHeap.create();
  const empty = settledUse(heap).bytes;
  const capacity = 1 << 16;
  const map = createMap(heap, { key: "i32", value: "i32", capacity });
  const fill = (capacity * 3) / 4 + 1; // one past the growth threshold
  for (let k = 0; k < fill; k++) map.set(k, k);
  let rounds = 0;
  while (map.capacity === capacity) map.set(rounds % fill, rounds++);
  // As many overwrites again retire the old table (as many chunks).
  for (let i = 0; i < rounds + 16; i++) map.set(i % fill, i);
  const perEntry = (settledUse(heap).bytes - empty) / map.size;
  // An 8-byte entry, and 4 bytes a slot at a load of 3/8: 18.7 bytes.
  assert.ok(perEntry <= 24, `${perEntry.toFixed(1)} bytes per entry`);
  assert.ok(perEntry >= 18.6, `${perEntry.toFixed(1)} bytes per entry: not all counted`);
});

Deno.test("resize: finishResize completes a growth that the writes left unfinished, and the old table is reclaimed", () => {
  const heap = SharedHeap.create();
  const empty = settledUse(heap).bytes;
  const capacity = 1 << 16;
  const map = createMap(heap, { key: "i32", value: "i32", capacity });
  const fill = (capacity * 3) / 4 + 1; // one past the growth threshold
  for (let k = 0; k < fill; k++) map.set(k, ~k);
  // The last set started the growth; no write has helped it yet.
  assert.equal(map.capacity, capacity, "the growth finished without help");
  const bothTables = settledUse(heap).bytes - empty;
  assert.equal(map.finishResize(), true);
  assert.equal(map.capacity, 2 * capacity);
  const after = settledUse(heap).bytes - empty;
  assert.ok(
    bothTables - after >= 4 * capacity,
    `${bothTables - after} bytes reclaimed: the old slot array (${4 * capacity}) was not`,
  );
  const perEntry = after / map.size;
  assert.ok(perEntry <= 24, `${perEntry.toFixed(1)} bytes per entry`);
  assert.equal(map.size, fill);
  for (let k = 0; k < fill; k++) assert.equal(map.get(k), ~k, `get(${k})`);
  assert.equal(map.finishResize(), true, "a second call found work left");
  assert.equal(map.capacity, 2 * capacity);
});

for (const kernel of KERNEL_CHOICES) {
  Deno.test(`resize: mid-growth, gets of moved keys find the newest value down the chain of tables${kernelLabel(kernel)}`, () => {
    const heap = heapWithKernel(kernel);
    const capacity = 1 << 16;
    // ASCII keys of 1 to 32 bytes, the kernel's string paths: values it
    // reads (i32), and values JavaScript decodes from the entry (string).
    const stringKey = (k: number) => `${"s".repeat(k % 27)}${k}`;
    const cases = [
      { key: "i32", value: "i32", keyOf: (k: number) => k, valueOf: (v: number) => v },
      { key: "i32", value: "f64", keyOf: (k: number) => k, valueOf: (v: number) => v + 0.5 },
      { key: "string", value: "i32", keyOf: stringKey, valueOf: (v: number) => v },
      { key: "string", value: "string", keyOf: stringKey, valueOf: (v: number) => `v${v}` },
    ] as const;
    for (const { key, value, keyOf, valueOf } of cases) {
      const what = `${key} -> ${value}`;
      const map = createMap(heap, { key, value, capacity });
      const model = new Map<unknown, unknown>();
      const put = (k: number, v: number) => {
        map.set(keyOf(k), valueOf(v));
        model.set(keyOf(k), valueOf(v));
      };
      const fill = (capacity * 3) / 4 + 1; // the last set starts a growth
      for (let k = 0; k < fill; k++) put(k, k);
      // Each write moves two of the 256 chunks: these 90 leave most moved
      // keys in the new table only as COPIED pointers, some overwritten
      // there, some deleted there, and some new keys there alone.
      for (let j = 0; j < 40; j++) put((j * 977) % fill, -1 - j);
      for (let j = 0; j < 30; j++) {
        const k = keyOf((j * 1229 + 5) % fill);
        map.delete(k);
        model.delete(k);
      }
      for (let j = 0; j < 20; j++) put(fill + j, j);
      assert.equal(map.capacity, capacity, `${what}: the growth finished without help`);
      for (let k = 0; k < fill + 20; k++) {
        assert.equal(map.get(keyOf(k)), model.get(keyOf(k)), `${what}: get(${keyOf(k)})`);
        assert.equal(map.has(keyOf(k)), model.has(keyOf(k)), `${what}: has(${keyOf(k)})`);
      }
      assert.equal(map.finishResize(), true);
      for (let k = 0; k < fill + 20; k++) {
        assert.equal(map.get(keyOf(k)), model.get(keyOf(k)), `${what}: get(${keyOf(k)})`);
      }
      map.destroy();
    }
  });
}

Deno.test("resize: finishResize completes a shrink that deletes started", () => {
  const heap = SharedHeap.create();
  const map = createMap(heap, { key: "u32", value: "u32" });
  const n = 40_000;
  for (let k = 0; k < n; k++) map.set(k, k);
  assert.equal(map.finishResize(), true);
  const big = map.capacity;
  assert.equal(big, 65_536);
  // A handle checks for a shrink every 256 deletes; the 32,000th leaves
  // 8,000 keys, under an eighth of the slots, and publishes a 16,384-slot
  // table that no write has helped fill yet.
  for (let k = 0; k < 32_000; k++) assert.equal(map.delete(k), true);
  assert.equal(map.capacity, big, "the shrink finished without help");
  assert.equal(map.finishResize(), true);
  assert.equal(map.capacity, 16_384);
  assert.equal(map.size, n - 32_000);
  for (let k = 0; k < n; k++) assert.equal(map.get(k), k < 32_000 ? undefined : k, `get(${k})`);
});

Deno.test("resize: grows past many thresholds, then shrinks back as keys go", () => {
  const heap = SharedHeap.create();
  const map = createMap(heap, { key: "u32", value: "u32" });
  const capacities = new Set<number>([map.capacity]);
  for (let k = 0; k < 50_000; k++) {
    map.set(k, k * 3);
    capacities.add(map.capacity);
  }
  assert.ok(map.capacity >= 65_536, `capacity ${map.capacity}`);
  assert.ok(capacities.size >= 12, `saw only capacities ${[...capacities]}`);
  for (let k = 0; k < 50_000 - 50; k++) assert.ok(map.delete(k));
  assert.ok(map.capacity <= 1024, `capacity ${map.capacity} after deleting all but 50 keys`);
  for (let k = 50_000 - 50; k < 50_000; k++) assert.equal(map.get(k), k * 3);
  assert.equal(map.size, 50);
  map.clear();
  assert.equal(map.size, 0);
  assert.deepEqual([...map.entries()], []);
});

Deno.test("resize: churning distinct keys at a steady count rehashes in place instead of growing", () => {
  const heap = SharedHeap.create();
  const map = createMap(heap, { key: "i32", value: "i32" });
  const live = 100;
  let largest = 0;
  for (let k = 0; k < 100_000 * STRESS; k++) {
    map.set(k, k);
    if (k >= live) assert.ok(map.delete(k - live));
    largest = Math.max(largest, map.capacity);
  }
  // Every key is new, so every insert claims a slot: without rehashing at
  // the same size when deleted slots dominate, the table would keep growing.
  assert.ok(largest <= 1024, `the table grew to ${largest} slots for ${live} live keys`);
  assert.equal(map.size, live);
  for (let k = 100_000 * STRESS - live; k < 100_000 * STRESS; k++) assert.equal(map.get(k), k);
  for (let i = 0; i < 4; i++) heap.collect();
  // Entries of claimed slots (live or deleted, at most 3/4 of the table),
  // the slot array, the table, the header: no pile of old ones.
  const blocks = heap.stats().liveBlocks;
  assert.ok(blocks <= (largest * 3) / 4 + 16, `${blocks} live blocks for ${live} live keys`);
});

Deno.test("create: capacity is rounded up to a power of two, at least 16", () => {
  const heap = SharedHeap.create();
  assert.equal(createMap(heap, { key: "i32", value: "i32" }).capacity, 16);
  assert.equal(createMap(heap, { key: "i32", value: "i32", capacity: 1 }).capacity, 16);
  assert.equal(createMap(heap, { key: "i32", value: "i32", capacity: 100 }).capacity, 128);
  assert.equal(createMap(heap, { key: "i32", value: "i32", capacity: 1024 }).capacity, 1024);
});

Deno.test("create and attach: maps whose gets the kernel answers have a get of their own per key kind, and all are HashMaps", () => {
  // One get shared by every map let V8 inline the string path into loops
  // over int maps (see the static block in hashmap.ts): the gets must stay
  // apart, whether a map was created or attached.
  const heap = SharedHeap.create();
  const gets = new Map<string, unknown>();
  for (const key of ["i32", "u32", "string", "f64", "bigint64", "bytes"] as const) {
    for (const value of ["i32", "u32", "f64", "bigint64", "string", "bytes"] as const) {
      const created = HashMap.create(heap, { key, value });
      const attached = HashMap.attach(created.handle);
      for (const map of [created, attached]) {
        assert.ok(map instanceof HashMap);
        assert.equal(map.constructor.name, "HashMap");
        assert.equal(Object.getPrototypeOf(map), Object.getPrototypeOf(created));
      }
      gets.set(`${key} ${value}`, created.get);
    }
  }
  const general = HashMap.prototype.get;
  const intGet = gets.get("i32 i32");
  const stringGet = gets.get("string i32");
  assert.notEqual(intGet, general);
  assert.notEqual(stringGet, general);
  assert.notEqual(stringGet, intGet);
  for (const [kinds, get] of gets) {
    const [key, value] = kinds.split(" ");
    const kernelValues = value === "i32" || value === "u32" || value === "f64";
    const expected = !kernelValues
      ? general
      : key === "i32" || key === "u32"
      ? intGet
      : key === "string"
      ? stringGet
      : general;
    assert.equal(get, expected, kinds);
  }
});

// ---------------------------------------------------------------------------
// Interleavings replayed in one thread
//
// Another worker may act between any two steps of an operation. These tests
// make that happen at a chosen point: they wrap `heap.ensure`, which every
// operation calls before it reads a table, and run a second HashMap object
// (attached to the same map, as another worker would be) from inside the
// call. An operation calls `ensure(table + header)` right before it loads the
// table's next-table pointer and again right after, when it starts probing;
// the wrapper acts on the second of two such identical calls in a row, so the
// other "worker" acts after the pointer was read and before the probe.

interface Interleaving {
  readonly fired: boolean;
  restore(): void;
}

function actAfterNextTableRead(heap: SharedHeap, action: () => void): Interleaving {
  const original = heap.ensure;
  let previous = -1;
  const state = { fired: false, restore: () => (heap.ensure = original) };
  heap.ensure = (end: number) => {
    if (!state.fired && end === previous) {
      state.fired = true;
      action();
    }
    previous = end;
    original.call(heap, end);
  };
  return state;
}

/** Inserts new keys through `other` until its table has been replaced. */
function resizeThrough(other: AnyMap, firstKey: number): number {
  const capacity = other.capacity;
  let k = firstKey;
  while (other.capacity === capacity) other.set(k, k), k++;
  return k;
}

Deno.test("interleaving: a write that finds its key frozen by a resize it has not seen yet", () => {
  const heap = SharedHeap.create();
  const map = createMap(heap, { key: "i32", value: "i32" });
  for (let k = 0; k < 10; k++) map.set(k, k);
  const other = HashMap.attach<number, number>(map.handle) as unknown as AnyMap;
  let end = 0;
  const interleaving = actAfterNextTableRead(heap, () => (end = resizeThrough(other, 100)));
  try {
    assert.equal(map.swap(5, 555), 5);
  } finally {
    interleaving.restore();
  }
  assert.ok(interleaving.fired, "the other worker never acted");
  assert.ok(map.capacity > 16, "the table was replaced in the middle of the write");
  assert.equal(map.get(5), 555);
  for (let k = 0; k < 10; k++) if (k !== 5) assert.equal(map.get(k), k);
  for (let k = 100; k < end; k++) assert.equal(map.get(k), k);
  assert.equal(map.size, 10 + end - 100);
});

Deno.test("interleaving: a delete that finds its key frozen by a resize it has not seen yet", () => {
  // The JavaScript path's window: the kernel's delete, which bails out on a
  // resize under way, cannot be stopped in the middle.
  const heap = heapWithKernel(false);
  const map = createMap(heap, { key: "i32", value: "i32" });
  for (let k = 0; k < 10; k++) map.set(k, k);
  const other = HashMap.attach<number, number>(map.handle) as unknown as AnyMap;
  let end = 0;
  const interleaving = actAfterNextTableRead(heap, () => (end = resizeThrough(other, 100)));
  try {
    assert.equal(map.delete(5), true);
  } finally {
    interleaving.restore();
  }
  assert.ok(interleaving.fired, "the other worker never acted");
  assert.equal(map.get(5), undefined);
  for (let k = 0; k < 10; k++) if (k !== 5) assert.equal(map.get(k), k);
  assert.equal(map.size, 9 + end - 100);
  assert.equal(map.delete(5), false);
});

Deno.test("interleaving: a new key inserted by two workers across the start of a resize exists once", () => {
  // The table is one claim short of its resize threshold and spans 16
  // migration chunks. Our writer reads "no resize", then the other worker
  // starts the resize, helps migrate the first chunks and inserts the same
  // key; then our writer goes on. Its write comes last, so it must win, and
  // the key must be counted and iterated once. The JavaScript path's window:
  // the kernel's set, which bails out on a resize under way just the same,
  // cannot be stopped in the middle.
  for (const key of [-11, -22, -33, -44, -55, -66, -77, -88]) {
    const heap = heapWithKernel(false);
    const map = createMap(heap, { key: "i32", value: "i32", capacity: 4096 });
    for (let k = 0; k < 3072; k++) map.set(k, k);
    assert.equal(map.capacity, 4096);
    const other = HashMap.attach<number, number>(map.handle) as unknown as AnyMap;
    const interleaving = actAfterNextTableRead(heap, () => {
      other.set(-1, -1); // the claim that starts the resize
      other.set(key, 2);
    });
    try {
      map.set(key, 1);
    } finally {
      interleaving.restore();
    }
    assert.ok(interleaving.fired, "the other worker never acted");
    const where = `key ${key}`;
    assert.equal(map.get(key), 1, `${where}: the later write must win`);
    assert.equal(map.size, 3074, `${where}: size`);
    // Finish the migration (deletes of absent keys help), then look again.
    for (let i = 0; map.capacity === 4096; i++) {
      assert.ok(i < 100, "the migration never finished");
      map.delete(-1000 - i);
    }
    assert.equal(map.get(key), 1, `${where}: after the migration`);
    assert.equal(map.size, 3074, `${where}: size after the migration`);
    const keys = [...map.keys()];
    assert.equal(keys.length, 3074, `${where}: iteration`);
    assert.equal(new Set(keys).size, 3074, `${where}: iteration yielded a key twice`);
  }
});

// ---------------------------------------------------------------------------
// Iteration

Deno.test("iteration: keys present throughout are seen exactly once while the map changes and resizes", () => {
  const heap = SharedHeap.create();
  const map = createMap(heap, { key: "string", value: "u32" });
  // 3073 distinct keys, none deleted: the 4096-slot table has just passed
  // 3/4 of its slots claimed, so a resize has been published and nothing
  // migrated yet. The iteration starts with two tables, and every step
  // below helps move keys from the first to the second.
  const stable = 3073;
  for (let i = 0; i < stable; i++) map.set(`stable ${i}`, i);
  assert.equal(map.capacity, 4096);
  let churn = 0;
  let oldest = 0;
  const capacityBefore = map.capacity;
  const seen = new Map<string, number>();
  let steps = 0;
  for (const [key, value] of map) {
    seen.set(key as string, (seen.get(key as string) ?? 0) + 1);
    if (typeof key === "string" && key.startsWith("stable ")) {
      assert.equal(value, Number(key.slice(7)), `value of ${key}`);
    }
    // Between two steps: insert new keys, delete old ones (other keys only).
    for (let j = 0; j < 6; j++) map.set(`churn ${churn++}`, churn);
    if (steps++ % 2 === 0) {
      for (let j = 0; j < 4 && oldest < churn; j++) map.delete(`churn ${oldest++}`);
    }
  }
  assert.ok(map.capacity > capacityBefore, "no resize happened during the iteration");
  for (let i = 0; i < stable; i++) {
    assert.equal(seen.get(`stable ${i}`), 1, `stable ${i} seen ${seen.get(`stable ${i}`)} times`);
  }
  for (const [key, count] of seen) assert.equal(count, 1, `${key} seen ${count} times`);
});

Deno.test("iteration: an iterator left unfinished holds its pin only until its task ends, so the heap reclaims and closes", async () => {
  const heap = SharedHeap.create();
  const map = createMap(heap, { key: "i32", value: "string" });
  for (let i = 0; i < 64; i++) map.set(i, `value ${i}`);
  // The idiom for "any key" of a Map, then nothing more of that iterator.
  assert.equal(map.keys().next().done, false);
  assert.ok(heap.isPinned, "no pin within the task");
  await new Promise((resolve) => setTimeout(resolve, 0));
  assert.ok(!heap.isPinned, "the iterator's pin outlived its task");
  // Replaced values go back to the heap: no pin holds them.
  const before = settledUse(heap);
  for (let round = 0; round < 20; round++) {
    for (let i = 0; i < 64; i++) map.set(i, `value ${i} in round ${round}`);
  }
  assert.equal(settledUse(heap).blocks, before.blocks, "replaced values were not reclaimed");
  // releaseReadPins ends it at once; the next step pins again and goes on.
  const entries = map.entries();
  const keys = new Set([entries.next().value![0]]);
  SharedHeap.releaseReadPins();
  assert.ok(!heap.isPinned, "releaseReadPins left the iteration's pin");
  for (const [key] of entries) {
    assert.ok(!keys.has(key), `${key} seen twice`);
    keys.add(key);
  }
  assert.equal(keys.size, 64);
  assert.ok(!heap.isPinned, "a finished iteration left its pin");
  heap.close();
});

/** Codec pairs for the pause test: the n-th key and the value it keeps. */
const PAUSE_SAMPLES: readonly {
  readonly options: HashMapOptions<CodecName, CodecName>;
  readonly key: (n: number) => unknown;
  readonly value: (n: number) => unknown;
}[] = [
  { options: { key: "i32", value: "i32" }, key: (n) => n * 7 - 5_000_000, value: (n) => n },
  {
    options: { key: "string", value: "u32" },
    key: (n) => (n % 3 === 0 ? `ключ ${n}` : `key ${n}`),
    value: (n) => n,
  },
  {
    options: { key: "bytes", value: "string" },
    key: (n) => utf8.encode(`${n}`),
    value: (n) => `v${n}`,
  },
  { options: { key: "f64", value: "f64" }, key: (n) => n / 4, value: (n) => -n },
  { options: { key: "bigint64", value: "i32" }, key: (n) => BigInt(n) << 20n, value: (n) => n },
];

for (const sample of PAUSE_SAMPLES) {
  const name = `${sample.options.key} -> ${sample.options.value}`;
  Deno.test(`iteration: ${name}, steps that resume after a pause while the map is resized see every key present throughout once and no key twice`, async () => {
    const random = seededRandom(0x5eed + name.length);
    const heap = SharedHeap.create();
    const map = createMap(heap, sample.options);
    const idOf = (key: unknown) => key instanceof Uint8Array ? hex(key) : String(key);
    const stable = 300;
    const stableIds = new Map<string, number>();
    for (let n = 0; n < stable; n++) {
      map.set(sample.key(n), sample.value(n));
      stableIds.set(idOf(sample.key(n)), n);
    }
    // Churn keys are numbered from 10^6 on, and none comes back once
    // deleted: any key reported twice is a fault.
    let nextChurn = 1_000_000;
    const churn: number[] = [];
    const seen = new Set<string>();
    let pauses = 0;
    let pausesAcrossResize = 0;
    for (const [key, value] of map) {
      const id = idOf(key);
      assert.ok(!seen.has(id), `${id} reported twice`);
      seen.add(id);
      const n = stableIds.get(id);
      if (n !== undefined) assert.deepEqual(value, sample.value(n), `value of ${id}`);
      if (random() < 0.6) continue;
      // A pause: the end of a task, or releaseReadPins as in a blocking wait.
      const pause = random();
      if (pause < 0.4) await null;
      else if (pause < 0.5) await new Promise((resolve) => setTimeout(resolve, 0));
      else SharedHeap.releaseReadPins();
      assert.ok(!heap.isPinned, "the pause left the iteration pinned");
      pauses++;
      const capacity = map.capacity;
      // Grow with new keys, or shrink by deleting most churn keys.
      if (churn.length < 400 || random() < 0.5) {
        const burst = 100 + Math.floor(random() * 700);
        for (let i = 0; i < burst; i++) {
          map.set(sample.key(nextChurn), sample.value(nextChurn));
          churn.push(nextChurn++);
        }
      } else {
        while (churn.length > 10) map.delete(sample.key(churn.pop()!));
      }
      if (random() < 0.5) map.finishResize();
      // Retired tables get freed, and their blocks reused by the next ones.
      for (let i = 0; i < 3; i++) heap.collect();
      if (map.capacity !== capacity) pausesAcrossResize++;
    }
    for (const [id, n] of stableIds) assert.ok(seen.has(id), `stable key ${n} (${id}) missed`);
    assert.ok(pausesAcrossResize >= 5, `${pausesAcrossResize} of ${pauses} pauses saw a resize`);
    assert.ok(!heap.isPinned);
  });
}

for (const keyCodec of ["i32", "string"] as const) {
  Deno.test(`iteration: ${keyCodec} keys, an iterator that pauses after every step finishes while keys are replaced under it, and sees every untouched key once`, async () => {
    const heap = SharedHeap.create();
    const map = createMap(heap, { key: keyCodec, value: "i32" });
    const keyOf = (n: number) => (keyCodec === "i32" ? n : `k${n}`);
    // 100 keys nobody touches, and 5,000 of which each step replaces the 4
    // oldest with 4 new ones: the deletes keep rebuilding the table at the
    // same capacity while the iteration runs.
    const untouched = 100;
    for (let n = 0; n < untouched; n++) map.set(keyOf(-1 - n), n);
    let oldest = 0;
    let next = 0;
    for (; next < 5_000; next++) map.set(keyOf(next), next);
    const stepLimit = 50_000;
    const seen = new Set<string>();
    let steps = 0;
    for (const [key, value] of map) {
      const id = String(key);
      assert.ok(!seen.has(id), `${id} reported twice`);
      seen.add(id);
      const n = Number(id.replace(/^k/, ""));
      if (n < 0) assert.equal(value, -n - 1, `value of ${id}`);
      if (++steps > stepLimit) break;
      await null;
      assert.ok(!heap.isPinned, "the pause left the iteration pinned");
      for (let i = 0; i < 4; i++) {
        map.set(keyOf(next), next);
        next++;
        assert.ok(map.delete(keyOf(oldest++)));
      }
    }
    assert.ok(steps <= stepLimit, `the iteration had not finished after ${stepLimit} steps`);
    for (let n = 0; n < untouched; n++) {
      assert.ok(seen.has(String(keyOf(-1 - n))), `untouched key ${keyOf(-1 - n)} missed`);
    }
    assert.ok(!heap.isPinned);
  });
}

/** The i32 key whose mix32 hash (the murmur3 finalizer the map uses) is `hash`. */
function keyWithHash(hash: number): number {
  // Each step of the finalizer is invertible: a xor-shift by s >= 16 undoes
  // itself, one by 13 is undone by xoring the shifts by 13 and 26, and an
  // odd multiplier has an inverse mod 2^32 (Newton's iteration).
  const inverse = (odd: number) => {
    let x = odd;
    for (let i = 0; i < 5; i++) x = Math.imul(x, 2 - Math.imul(odd, x));
    return x;
  };
  let x = hash | 0;
  x ^= x >>> 16;
  x = Math.imul(x, inverse(0xc2b2ae35));
  x ^= (x >>> 13) ^ (x >>> 26);
  x = Math.imul(x, inverse(0x85ebca6b));
  return x ^ (x >>> 16);
}

for (const pause of [false, true]) {
  Deno.test(`iteration: keys whose hashes lie on and beside every block boundary are each seen once${pause ? ", pausing after every step while the map grows" : ""}`, async () => {
    const heap = SharedHeap.create();
    const map = createMap(heap, { key: "i32", value: "i32" });
    // A block spans 128 homes of the largest table: 2^(39 - log2 capacity)
    // hashes, so while the table has at most 2^15 slots every block edge is
    // a multiple of 2^24.
    const edgeKeys = new Map<number, number>();
    for (let j = 0; j < 256; j++) {
      for (const hash of [j * 2 ** 24, j * 2 ** 24 - 1, j * 2 ** 24 + 1]) {
        const unsigned = hash >>> 0;
        edgeKeys.set(keyWithHash(unsigned), unsigned);
      }
    }
    const finalizer = (x: number) => {
      x = Math.imul(x ^ (x >>> 16), 0x85ebca6b);
      x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35);
      return (x ^ (x >>> 16)) >>> 0;
    };
    for (const [key, hash] of edgeKeys) assert.equal(finalizer(key), hash);
    for (const key of edgeKeys.keys()) map.set(key, 1);
    for (let n = 0; n < 2_000; n++) map.set(1_000_000 + n, 2);
    const seen = new Map<number, number>();
    let added = 0;
    for (const [key] of map) {
      seen.set(key as number, (seen.get(key as number) ?? 0) + 1);
      if (!pause) continue;
      await null;
      // Grow the map as it goes, so later blocks are read from tables of
      // other capacities.
      if (added < 6_000) { for (let i = 0; i < 8; i++) map.set(-1_000_000 - added++, 3); }
    }
    for (const [key, hash] of edgeKeys) {
      assert.equal(
        seen.get(key),
        1,
        `key ${key}, hash 0x${hash.toString(16)}, seen ${seen.get(key) ?? 0} times`,
      );
    }
    for (let n = 0; n < 2_000; n++) {
      assert.equal(seen.get(1_000_000 + n), 1, `key ${1_000_000 + n}`);
    }
    for (const [key, count] of seen) assert.equal(count, 1, `key ${key} seen ${count} times`);
  });
}

Deno.test("types: a HashMap is a ReadonlyMap, its iterators have the iterator helpers, and add takes numeric deltas only", () => {
  const map = HashMap.create(SharedHeap.create(), { key: "i32", value: "i32" }) as HashMap<
    number,
    number
  >;
  map.set(1, 10).set(2, 20).set(3, 30);
  // Compiles only while the iterators are typed as Map's are.
  const readonly: ReadonlyMap<number, number> = map;
  assert.equal(readonly.get(2), 20);
  assert.deepEqual(map.keys().filter((k) => k > 1).toArray().sort(), [2, 3]);
  assert.deepEqual(map.values().map((v) => v / 10).toArray().sort(), [1, 2, 3]);
  assert.equal(map.entries().take(2).toArray().length, 2);
  assert.equal(map.add(1, 5), 15);
  const strings = HashMap.create(SharedHeap.create(), { key: "i32", value: "string" }) as HashMap<
    number,
    string
  >;
  // @ts-expect-error: a map of strings has no numeric values to add to.
  assert.throws(() => strings.add(1, "x"), TypeError);
  // Attached without its types, add takes a number or a bigint.
  const untyped = HashMap.attach(map.handle);
  assert.equal(untyped.add(1, 1), 16);
});

Deno.test("iteration: entries, keys, values, forEach, Symbol.iterator and new Map agree", () => {
  const heap = SharedHeap.create();
  const map = HashMap.create(heap, { key: "i32", value: "string" });
  for (let k = -50; k < 50; k++) map.set(k, `v${k}`);
  const expected = new Map<number, string>();
  for (let k = -50; k < 50; k++) expected.set(k, `v${k}`);
  const sort = <T>(a: T[]) => a.sort();
  assert.deepEqual(sort([...map.entries()].map(String)), sort([...expected].map(String)));
  assert.deepEqual(sort([...map.keys()]), sort([...expected.keys()]));
  assert.deepEqual(sort([...map.values()]), sort([...expected.values()]));
  const viaForEach: string[] = [];
  map.forEach((value, key, self) => {
    assert.equal(self, map);
    viaForEach.push(`${key},${value}`);
  });
  assert.deepEqual(sort(viaForEach), sort([...expected].map(String)));
  // thisArg, as Map.forEach takes it; a callback that is no function is refused.
  const receiver = { calls: 0 };
  map.forEach(function (this: typeof receiver) {
    this.calls++;
  }, receiver);
  assert.equal(receiver.calls, 100);
  assert.throws(
    () => map.forEach(undefined as never),
    (e) =>
      e instanceof TypeError && /'fn'/.test(e.message) &&
      /current value is undefined/.test(e.message),
  );
  assert.deepEqual(new Map(map), expected);
  // Breaking out of an iteration releases its epoch pin.
  for (const _ of map) break;
  assert.equal(heap.isPinned, false);
});

// ---------------------------------------------------------------------------
// Codec round trips

Deno.test("codecs: strings, empty and unicode, up to exactly maxKeyBytes and maxValueBytes", () => {
  const heap = SharedHeap.create();
  const map = HashMap.create(heap, {
    key: "string",
    value: "string",
    maxKeyBytes: 8,
    maxValueBytes: 12,
  });
  const pairs: [string, string][] = [
    ["", ""],
    ["é", "e\u0301"], // precomposed key, combining value
    ["e\u0301", "é"], // a different key from "é"
    ["😀", "𝔘𝔫𝔦"], // astral (surrogate pairs)
    ["12345678", "123456789012"], // exactly at the limits
    ["😀😀", "😀😀😀"], // 8 and 12 bytes of astral characters
    ["\u0000\uFFFF", "\u0000"],
  ];
  for (const [k, v] of pairs) map.set(k, v);
  for (const [k, v] of pairs) assert.equal(map.get(k), v, JSON.stringify(k));
  assert.equal(map.size, pairs.length);
  assert.deepEqual(new Set(map.keys()), new Set(pairs.map(([k]) => k)));
  assert.throws(() => map.set("123456789", "x"), RangeError); // 9 bytes
  assert.throws(() => map.set("😀😀a", "x"), RangeError);
  assert.throws(() => map.set("k", "1234567890123"), RangeError); // 13 bytes
  assert.throws(() => map.set("k", "😀😀😀a"), RangeError);
  assert.throws(() => map.get("123456789"), RangeError);
  assert.equal(map.size, pairs.length);
});

Deno.test("codecs: ASCII string keys that differ in one byte anywhere are distinct, for every length", () => {
  // get compares ASCII keys a word at a time, the last word masked to the
  // key's length; entries keep the key 8 bytes in (i32 values) or 12 bytes
  // in (string values, after their length word).
  for (const value of ["i32", "string"] as const) {
    const heap = SharedHeap.create();
    const map = HashMap.create(heap, { key: "string", value, maxKeyBytes: 15 });
    const stored = new Map<string, number>();
    for (let length = 0; length <= 13; length++) {
      const base = "abcdefghijklm".slice(0, length);
      stored.set(base, stored.size);
      // Every other key of this length differs from base in one position;
      // half of them are left out, so lookups of absent neighbours too.
      for (let at = 0; at < length; at++) {
        const near = base.slice(0, at) + "Z" + base.slice(at + 1);
        if (at % 2 === 0) stored.set(near, stored.size);
      }
    }
    for (const [k, v] of stored) map.set(k, (value === "i32" ? v : `v${v}`) as never);
    for (let length = 0; length <= 13; length++) {
      const base = "abcdefghijklm".slice(0, length);
      for (let at = -1; at < length; at++) {
        const key = at < 0 ? base : base.slice(0, at) + "Z" + base.slice(at + 1);
        const v = stored.get(key);
        const expected = v === undefined ? undefined : value === "i32" ? v : `v${v}`;
        assert.equal(map.get(key), expected, JSON.stringify(key));
        assert.equal(map.has(key), v !== undefined, JSON.stringify(key));
        // The same key with a non-ASCII character takes the general path.
        assert.equal(map.get(key + "é"), undefined);
      }
    }
    // Two 12-byte keys with the same hash (found by search): only the
    // comparison of their words tells them apart. (Keys of one length that
    // differ in one 4-byte block never share a hash: MurmurHash3 mixes each
    // block bijectively.)
    const [first, second] = ["k000007bxxyz", "k00000smaxyz"];
    map.set(first, (value === "i32" ? -1 : "first") as never);
    assert.equal(map.get(second), undefined);
    assert.equal(map.has(second), false);
    map.set(second, (value === "i32" ? -2 : "second") as never);
    assert.equal(map.get(first), value === "i32" ? -1 : "first");
    assert.equal(map.get(second), value === "i32" ? -2 : "second");
    assert.ok(map.has(first) && map.has(second));
    assert.ok(map.delete(first));
    assert.equal(map.get(first), undefined);
    assert.equal(map.has(first), false);
    assert.equal(map.get(second), value === "i32" ? -2 : "second");
    assert.ok(map.delete(second));
    assert.equal(map.has(second), false);
    // Keys past the length limit are refused, whichever path sees them.
    assert.throws(() => map.get("abcdefghijklmnop"), RangeError);
    assert.throws(() => map.has("abcdefghijklmnop"), RangeError);
    assert.equal(map.size, stored.size);
  }
});

Deno.test("codecs: ASCII keys up to 32 bytes read in the kernel agree with JavaScript, for every value codec", () => {
  // Pairs of keys with one length and one hash (found by search), differing
  // only in their last two words: the kernel must compare every word, and
  // mask only the last one's bytes past the key.
  const collisions = [
    ["abcd-2now", "abcd-3i95"],
    ["k000007bxxyz", "k00000smaxyz"],
    ["abcdefgh--f8u", "abcdefgh--fj1"],
    ["abcdefghijkl----t5d", "abcdefghijkl---3etu"],
    ["abcdefghijklmnopqrstuvwx----le19", "abcdefghijklmnopqrstuvwx---106ar"],
  ];
  const valueOf: Record<string, (i: number) => unknown> = {
    i32: (i) => (i % 2 === 0 ? -i : I32_MAX - i) | 0,
    u32: (i) => U32_MAX - i,
    f64: (i) => i % 3 === 0 ? KERNEL_SLOW : i % 3 === 1 ? KERNEL_ABSENT : i + 0.25,
    bigint64: (i) => BigInt(i) * 0x10000000001n,
    string: (i) => `v${i}`,
    bytes: (i) => new Uint8Array([i & 255, 1, 2]),
  };
  for (const kernel of KERNEL_CHOICES) {
    for (const [value, make] of Object.entries(valueOf)) {
      const heap = heapWithKernel(kernel);
      // Blocks of every entry size, dirtied and freed: entries reuse them, so
      // the bytes after a key that does not fill its last word are not zero.
      const dirty: number[] = [];
      for (let round = 0; round < 64; round++) {
        for (let bytes = 8; bytes <= 64; bytes += 8) {
          const block = heap.allocate(bytes);
          heap.u8.fill(0xa5, block, block + bytes);
          dirty.push(block);
        }
      }
      for (const block of dirty) heap.free(block);
      const map = createMap(heap, {
        key: "string",
        value: value as CodecName,
        maxKeyBytes: 40,
      });
      const where = `${value} values${kernelLabel(kernel) || ", both kernels"}`;
      const stored = new Map<string, unknown>();
      for (let length = 1; length <= 40; length++) {
        const base = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcd".slice(0, length);
        stored.set(base, make(stored.size));
        // The same key with one byte changed at the start, the middle and
        // the end; one of them is left out.
        for (const at of [0, length >> 1, length - 1]) {
          const near = base.slice(0, at) + "~" + base.slice(at + 1);
          if (at !== length >> 1) stored.set(near, make(stored.size));
        }
      }
      for (const pair of collisions) stored.set(pair[0], make(stored.size));
      for (const [k, v] of stored) map.set(k, v);
      const check = (k: string, expected: unknown) => {
        const got = map.get(k);
        if (expected instanceof Uint8Array) {
          assert.ok(got instanceof Uint8Array, `${where}: get(${k})`);
          assert.deepEqual([...got], [...expected], `${where}: get(${k})`);
        } else {
          assert.ok(Object.is(got, expected), `${where}: get(${k}) = ${got}, not ${expected}`);
        }
        assert.equal(map.has(k), expected !== undefined, `${where}: has(${k})`);
      };
      for (let length = 1; length <= 40; length++) {
        const base = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcd".slice(0, length);
        check(base, stored.get(base));
        for (const at of [0, length >> 1, length - 1]) {
          const near = base.slice(0, at) + "~" + base.slice(at + 1);
          check(near, stored.get(near));
        }
      }
      for (const [first, second] of collisions) {
        check(first, stored.get(first));
        check(second, undefined);
        map.set(second, make(1000));
        check(second, make(1000));
        check(first, stored.get(first));
        assert.ok(map.delete(first));
        check(first, undefined);
        check(second, make(1000));
      }
      // The reads above left at most a read pin at the global epoch (values
      // other than numbers are read after the kernel returns, while it
      // holds), which releaseReadPins ends; inside an outer pin, the kernel
      // leaves that pin alone.
      const epochWord = epochWordAt(heap) >> 2;
      const held = Atomics.load(heap.i32, epochWord);
      assert.ok(held === 0 || held === Atomics.load(heap.i32, EPOCH_AT >> 2), `${where}: ${held}`);
      SharedHeap.releaseReadPins();
      assert.equal(Atomics.load(heap.i32, epochWord), 0, `${where}: a get left its pin`);
      heap.pin();
      const pinned = Atomics.load(heap.i32, epochWord);
      assert.ok(pinned !== 0);
      check("ABCDEFGHIJ", stored.get("ABCDEFGHIJ"));
      check("ABCDEFGHI~", stored.get("ABCDEFGHI~"));
      assert.equal(Atomics.load(heap.i32, epochWord), pinned, `${where}: the outer pin`);
      heap.unpin();
      assert.equal(Atomics.load(heap.i32, epochWord), 0);
    }
  }
});

Deno.test("kernel get: with no pin held, hashmapGetInt answers SLOW without pinning, and HashMap.get allows the read pin and answers", () => {
  for (const key of ["i32", "u32"] as const) {
    const heap = heapWithKernel(true);
    const map = createMap(heap, { key, value: "i32" });
    map.set(5, 50);
    const header = map.handle.offset;
    const epochWord = epochWordAt(heap) >> 2;
    const epoch = () => Atomics.load(heap.i32, EPOCH_AT >> 2);
    SharedHeap.releaseReadPins();
    const kernel = heapKernel(heap)!;
    assert.equal(kernel.hashmapGetInt(header, 5), KERNEL_SLOW, `${key}: no pin held`);
    assert.equal(Atomics.load(heap.i32, epochWord), 0, `${key}: and none taken`);
    assert.equal(map.get(5), 50);
    assert.equal(Atomics.load(heap.i32, epochWord), epoch(), `${key}: get left a read pin`);
    assert.equal(kernel.hashmapGetInt(header, 5), 50, `${key}: under the read pin`);
    SharedHeap.releaseReadPins();
    heap.pin();
    const outer = Atomics.load(heap.i32, epochWord);
    assert.equal(kernel.hashmapGetInt(header, 5), 50, `${key}: inside pin()`);
    assert.equal(map.get(5), 50);
    assert.equal(Atomics.load(heap.i32, epochWord), outer, `${key}: the outer pin`);
    heap.unpin();
    assert.equal(Atomics.load(heap.i32, epochWord), 0);
  }
});

Deno.test("kernel get: a string key travels in this worker's registry words, and the kernel answers SLOW for what it does not take", () => {
  const heap = heapWithKernel(true);
  const kernel = heapKernel(heap)!;
  // Before the worker joins, the words are its own scratch, not the heap's.
  assert.notEqual(kernelKeyWords(heap).buffer, heap.sab);
  const map = createMap(heap, { key: "string", value: "f64" });
  map.set("alpha", 1.5);
  map.set("beta-gamma-delta-epsilon-zeta-et", -2); // 32 bytes
  const words = kernelKeyWords(heap);
  const epochWord = epochWordAt(heap);
  assert.equal(words.buffer, heap.sab);
  assert.equal(
    words.byteOffset,
    epochWord + 8,
    "the words after the epoch word, in its cache line",
  );
  assert.equal(words.length, 10);
  assert.equal(map.get("alpha"), 1.5);
  const expected = new Int32Array(10);
  encodeAsciiKey("alpha", expected, 32);
  assert.deepEqual([...words.subarray(0, 4)], [...expected.subarray(0, 4)]);
  assert.equal(map.get("beta-gamma-delta-epsilon-zeta-et"), -2);
  assert.equal(map.get("beta-gamma-delta-epsilon-zeta-eu"), undefined);
  // With no pin held and the read pin not allowed, the get answers SLOW
  // without pinning; allowed (kernelForRead), it answers.
  SharedHeap.releaseReadPins();
  const header = map.handle.offset;
  encodeAsciiKey("alpha", words, 32);
  assert.equal(kernel.hashmapGetKeyInSlot(header), KERNEL_SLOW, "no pin held");
  assert.equal(Atomics.load(heap.i32, epochWord >> 2), 0, "and none taken");
  assert.equal(kernelForRead(heap)!.hashmapGetKeyInSlot(header), 1.5);
  // Lengths it does not take (0, or past 32 bytes) get SLOW, before any pin.
  SharedHeap.releaseReadPins();
  kernelForRead(heap);
  for (const length of [0, 33, -1]) {
    words[1] = length;
    assert.equal(kernel.hashmapGetKeyInSlot(header), KERNEL_SLOW, `length ${length}`);
    assert.equal(Atomics.load(heap.i32, epochWord >> 2), 0);
  }
  SharedHeap.releaseReadPins();
  // The epoch word itself is never written by the key's encoding.
  heap.pin();
  const pinned = Atomics.load(heap.i32, epochWord >> 2);
  assert.equal(map.get("alpha"), 1.5);
  assert.equal(Atomics.load(heap.i32, epochWord >> 2), pinned);
  heap.unpin();
  // An instance of a worker that has not joined: SLOW.
  encodeAsciiKey("alpha", words, 32);
  assert.equal(instantiateKernel(heap.memory!)!.hashmapGetKeyInSlot(header), KERNEL_SLOW);
  heap.close();
  assert.notEqual(kernelKeyWords(heap).buffer, heap.sab, "after close");
  assert.equal(kernel.hashmapGetKeyInSlot(header), KERNEL_SLOW, "after close");
});

Deno.test("kernel trap: gets, has, sets and deletes whose kernel call traps after its pin answer through the JavaScript path, leave no pin and leak no block", () => {
  // A kernel call traps on memory another worker has just grown. Hard to
  // time from one thread, so the heap's kernel is swapped for one whose
  // calls pin (as the real ones do first) and then trap. The sets have
  // built their entry before the call: they must free it.
  const configs = [
    ["i32", "i32"],
    ["string", "f64"],
    ["string", "string"],
    ["u32", "bytes"],
  ] as const;
  for (const [key, value] of configs) {
    const heap = heapWithKernel(true);
    const real = heapKernel(heap)!;
    const map = createMap(heap, { key, value });
    const model = new Map<unknown, unknown>();
    const keyOf = (i: number) => key === "string" ? `key-${i}` : i;
    const valueOf = (i: number) =>
      value === "string"
        ? `v${i}`
        : value === "bytes"
        ? new Uint8Array([i & 255])
        : value === "f64"
        ? i + 0.5
        : i;
    for (let i = 0; i < 40; i++) {
      map.set(keyOf(i), valueOf(i));
      model.set(keyOf(i), valueOf(i));
    }
    const epochWord = epochWordAt(heap) >> 2;
    let traps = 0;
    const trapping: Record<string, unknown> = {};
    for (const name of Object.keys(real)) {
      const fn = (real as unknown as Record<string, unknown>)[name];
      trapping[name] = typeof fn !== "function" || name === "setPinWord" ? fn : () => {
        traps++;
        if (Atomics.load(heap.i32, epochWord) === 0) {
          Atomics.store(heap.i32, epochWord, Atomics.load(heap.i32, EPOCH_AT >> 2));
        }
        throw new WebAssembly.RuntimeError("memory access out of bounds");
      };
    }
    // The string kernel's get traps the same way.
    const trappingStrings = {
      setKeyAt() {},
      hashmapGetString: (trapping as { hashmapGetKeyInSlot: () => number }).hashmapGetKeyInSlot,
    };
    // The gets take the kernel here; without read pins (not allowed by this
    // stand-in), each call must leave no pin behind.
    const hooks = currentHeapHooks();
    installHeapHooks({
      ...hooks,
      heapKernel: (h) => h === heap ? trapping as unknown as Kernel : hooks.heapKernel(h),
      kernelForRead: (h) => h === heap ? trapping as unknown as Kernel : hooks.kernelForRead(h),
      stringKernelForRead: (h) =>
        h === heap ? trappingStrings as unknown as StringKernel : hooks.stringKernelForRead(h),
    });
    SharedHeap.releaseReadPins();
    // A map object made now takes the stand-in as its own kernel (the int
    // get keeps the kernel's function from its first call on), so that its
    // gets trap in the direct call too.
    const madeNow = HashMap.attach<number | string, unknown>(map.handle);
    const where = `${key} -> ${value}`;
    const same = (got: unknown, expected: unknown, what: string) => {
      assert.deepEqual(got, expected, `${where}: ${what}`);
      assert.equal(Atomics.load(heap.i32, epochWord), 0, `${where}: ${what} left its pin`);
    };
    for (let i = 0; i < 48; i++) {
      same(map.get(keyOf(i)), model.get(keyOf(i)), `get(${keyOf(i)})`);
      same(madeNow.get(keyOf(i)), model.get(keyOf(i)), `get(${keyOf(i)}) on a new object`);
      same(map.has(keyOf(i)), model.has(keyOf(i)), `has(${keyOf(i)})`);
    }
    for (let i = 30; i < 50; i++) {
      map.set(keyOf(i), valueOf(i + 100));
      model.set(keyOf(i), valueOf(i + 100));
      same(map.get(keyOf(i)), valueOf(i + 100), `get after set(${keyOf(i)})`);
    }
    for (let i = 0; i < 10; i++) {
      same(map.delete(keyOf(i)), true, `delete(${keyOf(i)})`);
      model.delete(keyOf(i));
    }
    // Inside an outer pin, a trapping call leaves that pin as it was.
    heap.pin();
    const outer = Atomics.load(heap.i32, epochWord);
    assert.deepEqual(map.get(keyOf(20)), model.get(keyOf(20)));
    map.set(keyOf(21), valueOf(7));
    model.set(keyOf(21), valueOf(7));
    assert.equal(Atomics.load(heap.i32, epochWord), outer, `${where}: the outer pin`);
    heap.unpin();
    assert.ok(traps > 0, `${where}: no kernel call was made`);
    // Back on the real kernel, the map holds what the model holds.
    installHeapHooks(hooks);
    assert.equal(heapKernel(heap), real);
    assert.equal(map.size, model.size);
    for (const [k, v] of model) assert.deepEqual(map.get(k), v, `${where}: get(${k}) at the end`);
    // The same contents written on a heap of its own take as many blocks.
    const fresh = heapWithKernel(true);
    const copy = createMap(fresh, { key, value });
    for (let i = 0; i < 50; i++) copy.set(keyOf(i), valueOf(i));
    for (const k of [...copy.keys()]) if (!model.has(k)) copy.delete(k);
    for (const [k, v] of model) copy.set(k, v);
    assert.deepEqual(settledUse(heap), settledUse(fresh), `${where}: blocks in use`);
  }
});

Deno.test("kernel set: hashmapSetInt and hashmapSetAscii claim, replace, delete, undelete and add as the JavaScript path does, and write nothing where they bail out", () => {
  // White-box: the header's word 5 is the root table; a table's words are
  // [capacity, slots, claimed, next, ..., retiring (word 7)]; slot tags are
  // FROZEN 1 (MOVED when alone), DELETED 2, COPIED 4. Entries as #newEntry
  // builds them: [key, i32 value], [value length 0, key], or for a string
  // key [hash, length, key bytes, i32 value].
  const configs = [
    ["i32", "i32", 0],
    ["u32", "string", 4],
    ["string", "i32", 8],
    ["i32", "f64", 0],
  ] as const;
  for (const [key, value, keyAt] of configs) {
    const heap = heapWithKernel(true);
    const kernel = heapKernel(heap)!;
    const map = createMap(heap, { key, value, capacity: 64 });
    const header = map.handle.offset;
    const i32 = heap.i32;
    const table = Atomics.load(i32, (header >> 2) + 5);
    const slots = i32[(table >> 2) + 1] >> 2;
    const where = `${key} -> ${value}`;
    const words = new Int32Array(10);
    const mapKey = (k: number) => key === "string" ? `key ${k}` : k;
    const encode = (k: number) => encodeAsciiKey(`key ${k}`, words, 32);
    const entryOf = (k: number, v = k * 10) => {
      const entry = heap.allocate(key === "string" ? 24 : value === "f64" ? 16 : 8);
      if (value === "f64") {
        i32[entry >> 2] = k;
        new DataView(heap.sab).setFloat64(entry + 8, v, true);
        return entry;
      }
      if (key !== "string") {
        i32[(entry + keyAt) >> 2] = k;
        i32[(entry + 4 - keyAt) >> 2] = keyAt === 0 ? v : 0;
        return entry;
      }
      const length = encode(k);
      i32.set(words.subarray(0, 2 + ((length + 3) >> 2)), entry >> 2);
      i32[(entry + 8 + ((length + 3) & ~3)) >> 2] = v;
      return entry;
    };
    const expected = (k: number) => value === "string" ? "" : k * 10;
    // Modes: 0 always, 1 if the value is `expected`, 2 if absent (the
    // numeric-valued maps only: valueKind 1 is i32, 3 f64 at byte 8).
    const valueKind = value === "i32" ? 1 : value === "f64" ? 3 : 0;
    // The size stripe: a word of its own here, so that each call's change
    // in the size shows (the map's own size stays as the JavaScript calls
    // below leave it).
    const stripeAt = heap.allocate(8);
    i32[stripeAt >> 2] = 0;
    const sizeChange = () => {
      const change = i32[stripeAt >> 2];
      i32[stripeAt >> 2] = 0;
      return change;
    };
    const kernelSet = (k: number, entry: number, mode: number, expected: number) => {
      if (key !== "string") {
        return kernel.hashmapSetInt(
          header,
          k,
          keyAt,
          entry,
          mode,
          value === "f64" ? 8 : 4,
          valueKind,
          expected,
          stripeAt,
        );
      }
      const length = encode(k);
      const [hash, , w0, w1, w2, w3, w4, w5, w6, w7] = words;
      return kernel.hashmapSetAscii(
        header,
        hash,
        length,
        keyAt,
        w0,
        w1,
        w2,
        w3,
        w4,
        w5,
        w6,
        w7,
        entry,
        mode,
        valueKind,
        expected,
        stripeAt,
      );
    };
    // Outside an outer pin, each call starts with no pin (a get may have
    // left a read pin) and must leave none.
    const pinWord = epochWordAt(heap) >> 2;
    const set = (k: number, entry: number, mode = 0, expected = 0) => {
      if (heap.isPinned) return kernelSet(k, entry, mode, expected);
      SharedHeap.releaseReadPins();
      const answer = kernelSet(k, entry, mode, expected);
      assert.equal(Atomics.load(i32, pinWord), 0, `${where}: a set left its pin`);
      return answer;
    };
    const slotWords = () => i32.slice(slots, slots + 64).join();
    const claimed = () => i32[(table >> 2) + 2];
    const holds = (entry: number, k: number) => {
      if (key !== "string") return i32[(entry + keyAt) >> 2] === k;
      encode(k);
      return i32[entry >> 2] === words[0] && i32[(entry + 8) >> 2] === words[2] &&
        i32[(entry + 12) >> 2] === words[3];
    };
    const slotOf = (k: number) => {
      for (let i = 0; i < 64; i++) {
        const word = i32[slots + i];
        if (word > 1 && holds(word & ~7, k)) return slots + i;
      }
      throw new Error(`${where}: key ${k} has no slot`);
    };

    // A new key claims an empty slot; the same key again replaces its entry.
    const first = entryOf(5);
    assert.equal(set(5, first), 1, `${where}: new key`);
    assert.equal(claimed(), 1);
    assert.equal(sizeChange(), 1, `${where}: a new key counts in the size`);
    assert.equal(map.get(mapKey(5)), expected(5));
    const second = entryOf(5);
    assert.equal(set(5, second), first, `${where}: the replaced slot word`);
    assert.equal(i32[slotOf(5)], second);
    assert.equal(claimed(), 1, `${where}: a replacement claims nothing`);
    assert.equal(sizeChange(), 0, `${where}: a replacement leaves the size`);
    // A deleted key's slot is taken back, and the answer carries DELETED.
    assert.ok(map.delete(mapKey(5)));
    let third = entryOf(5);
    assert.equal(set(5, third), second | 2, `${where}: the deleted slot word`);
    assert.equal(sizeChange(), 1, `${where}: a deleted key set again counts`);
    assert.equal(map.get(mapKey(5)), expected(5));

    // Conditional writes: a forbidden one writes nothing and answers 2.
    // A delete passes entry 0.
    const forbidden = (why: string, k: number, mode: number, expectedValue = 0, del = false) => {
      const before = slotWords();
      const claims = claimed();
      const entry = del ? 0 : entryOf(k, 7);
      assert.equal(set(k, entry, mode, expectedValue), 2, `${where}: ${why}`);
      assert.equal(slotWords(), before, `${where}: ${why} wrote a slot`);
      assert.equal(claimed(), claims, `${where}: ${why} claimed`);
      assert.equal(sizeChange(), 0, `${where}: ${why} changed the size`);
      if (entry !== 0) heap.free(entry);
    };
    if (valueKind !== 0) {
      forbidden("another value expected", 5, 1, 49);
      forbidden("a present key, absent expected", 5, 2);
      forbidden("an absent key, a value expected", 60, 1, 0);
      const fourth = entryOf(5, 51);
      assert.equal(set(5, fourth, 1, 50), third, `${where}: the value expected`);
      assert.equal(map.get(mapKey(5)), 51);
      assert.ok(map.delete(mapKey(5)));
      forbidden("a deleted key, a value expected", 5, 1, 51);
      const fifth = entryOf(5, 52);
      assert.equal(set(5, fifth, 2), fourth | 2, `${where}: a deleted key, absent expected`);
      assert.equal(sizeChange(), 1);
      assert.equal(map.get(mapKey(5)), 52);
      assert.equal(set(60, entryOf(60), 2), 1, `${where}: a new key, absent expected`);
      assert.equal(sizeChange(), 1);
      assert.equal(claimed(), 2);
      assert.equal(map.get(mapKey(60)), expected(60));
      if (value === "f64") {
        // The codec's equality: -0 is not 0, and fractions count.
        const zero = entryOf(5, 0);
        assert.equal(set(5, zero), fifth);
        forbidden("f64: -0 is not 0", 5, 1, -0);
        const half = entryOf(5, 0.5);
        assert.equal(set(5, half, 1, 0), zero, `${where}: 0 expected`);
        forbidden("f64: 0.5 is not 0.25", 5, 1, 0.25);
        assert.equal(set(5, entryOf(5, 52), 1, 0.5), half, `${where}: 0.5 expected`);
        assert.equal(map.get(mapKey(5)), 52);
      }
      third = entryOf(5);
      const current = i32[slotOf(5)];
      assert.equal(set(5, third), current);
    }

    // Deletes: entry 0 under mode 3 (present) or 1 (present with a value).
    // The slot keeps its entry, tagged DELETED; nothing is claimed.
    forbidden("a delete of an absent key", 61, 3, 0, true);
    assert.equal(set(5, 0, 3), third, `${where}: a delete answers the slot word`);
    assert.equal(sizeChange(), -1, `${where}: a delete takes the key off the size`);
    assert.equal(i32[slotOf(5)], third | 2, `${where}: the deleted slot word`);
    assert.equal(map.get(mapKey(5)), undefined);
    forbidden("a delete of a deleted key", 5, 3, 0, true);
    const deleted = i32[slotOf(5)];
    third = entryOf(5);
    assert.equal(set(5, third), deleted, `${where}: undeleted`);
    assert.equal(sizeChange(), 1);
    assert.ok((i32[slotOf(5)] & 2) === 0);
    if (valueKind !== 0) {
      forbidden("a delete of another value", 5, 1, 49, true);
      forbidden("a delete of an absent key with a value", 61, 1, 0, true);
      if (value === "f64") {
        const zero = entryOf(5, 0);
        assert.equal(set(5, zero), third);
        forbidden("a delete of f64 -0 where 0 is", 5, 1, -0, true);
        third = entryOf(5);
        assert.equal(set(5, third), zero);
      }
      assert.equal(set(5, 0, 1, 50), third, `${where}: a delete of the value expected`);
      assert.equal(sizeChange(), -1);
      assert.equal(map.get(mapKey(5)), undefined);
      forbidden("a delete of a deleted key with its old value", 5, 1, 50, true);
      const deletedAgain = i32[slotOf(5)];
      third = entryOf(5);
      assert.equal(set(5, third), deletedAgain);
      assert.equal(sizeChange(), 1);
    }
    if (value === "f64") {
      // The gets answer ABSENT only for an absent key: a value equal to a
      // sentinel answers SLOW, and the general path reads it. (kernelForRead
      // allows the read pin, without which hashmapGetInt answers SLOW.)
      const get = (k: number) => kernelForRead(heap)!.hashmapGetInt(header, k);
      assert.equal(get(61), KERNEL_ABSENT, `${where}: an absent key`);
      for (const sentinel of [KERNEL_ABSENT, KERNEL_SLOW]) {
        const entry = entryOf(5, sentinel);
        assert.equal(set(5, entry), third);
        assert.equal(get(5), KERNEL_SLOW, `${where}: the value ${sentinel}`);
        assert.equal(map.get(5), sentinel);
        third = entryOf(5);
        assert.equal(set(5, third), entry);
      }
      assert.equal(get(5), 50);
    }
    assert.equal(claimed(), valueKind !== 0 ? 2 : 1, `${where}: deletes claim nothing`);

    if (valueKind !== 0) {
      // Mode 4 (add), with the delta as `expected`: the kernel stores the
      // key's value plus the delta in the new entry (whatever JavaScript put
      // there), or 0 plus the delta for a deleted or absent key.
      const added = entryOf(5, 999);
      assert.equal(set(5, added, 4, 7), third, `${where}: add to a present key`);
      assert.equal(sizeChange(), 0);
      assert.equal(map.get(mapKey(5)), 57);
      assert.ok(map.delete(mapKey(5)));
      const deletedWord = i32[slotOf(5)];
      third = entryOf(5, 999);
      assert.equal(set(5, third, 4, 8), deletedWord, `${where}: add to a deleted key`);
      assert.equal(sizeChange(), 1);
      assert.equal(map.get(mapKey(5)), 8, `${where}: a deleted key counts as 0`);
      const claims = claimed();
      assert.equal(set(62, entryOf(62, 999), 4, -3), 1, `${where}: add to an absent key`);
      assert.equal(sizeChange(), 1);
      assert.equal(claimed(), claims + 1);
      assert.equal(map.get(mapKey(62)), -3);
      if (value === "i32") {
        // A sum out of the i32 range bails out, writing nothing.
        for (const [start, delta] of [[2147483640, 100], [-2147483640, -100]]) {
          const entry = entryOf(5, start);
          assert.equal(set(5, entry), third);
          third = entry;
          const before = slotWords();
          const tried = entryOf(5, 999);
          assert.equal(set(5, tried, 4, delta), 0, `${where}: ${start} + ${delta}`);
          assert.equal(slotWords(), before, `${where}: ${start} + ${delta} wrote a slot`);
          assert.equal(sizeChange(), 0);
          heap.free(tried);
          assert.equal(map.get(mapKey(5)), start);
        }
      }
      if (value === "f64") {
        // As JavaScript's `+`: 0 + -0 is 0 for an absent key, -0 + -0 is -0.
        assert.equal(set(63, entryOf(63, 999), 4, -0), 1);
        assert.ok(Object.is(map.get(63), 0), `${where}: absent + -0`);
        const negativeZero = entryOf(5, -0);
        assert.equal(set(5, negativeZero), third);
        third = entryOf(5, 999);
        assert.equal(set(5, third, 4, -0), negativeZero);
        assert.ok(Object.is(map.get(5), -0), `${where}: -0 + -0`);
        assert.equal(sizeChange(), 1, `${where}: key 63 is new`);
      }
      const current = entryOf(5);
      assert.equal(set(5, current), third);
      third = current;
      assert.equal(Atomics.load(i32, epochWordAt(heap) >> 2), 0, `${where}: unpinned`);
    }

    // Each bail-out leaves every slot and the claimed count as they were.
    const unchanged = (why: string, k: number, del = false) => {
      const before = slotWords();
      const claims = claimed();
      const entry = del ? 0 : entryOf(k);
      assert.equal(set(k, entry, del ? 3 : 0), 0, `${where}: ${why}`);
      assert.equal(slotWords(), before, `${where}: ${why} wrote a slot`);
      assert.equal(claimed(), claims, `${where}: ${why} claimed`);
      assert.equal(sizeChange(), 0, `${where}: ${why} changed the size`);
      if (entry !== 0) heap.free(entry);
    };
    for (const word of [3, 7]) {
      // A next table or a retirement under way (any nonzero word).
      i32[(table >> 2) + word] = 8;
      unchanged(`table word ${word} set`, 5);
      unchanged(`table word ${word} set, new key`, 6);
      unchanged(`table word ${word} set, a delete`, 5, true);
      i32[(table >> 2) + word] = 0;
    }
    const at = slotOf(5);
    i32[at] |= 1;
    unchanged("a frozen slot", 5);
    unchanged("a delete on a frozen slot", 5, true);
    i32[at] ^= 1 | 4;
    unchanged("a COPIED slot", 5);
    unchanged("a delete on a COPIED slot", 5, true);
    i32[at] &= ~4;
    const empty: number[] = [];
    for (let i = 0; i < 64; i++) if (i32[slots + i] === 0) empty.push(slots + i);
    for (const i of empty) i32[i] = 1;
    unchanged("a probe that meets MOVED", 6);
    unchanged("a delete whose probe meets MOVED", 6, true);
    // A trap (an entry past the memory the instance knows, as memory another
    // worker has just added looks) stops the call before any write.
    const beyond = heap.sab.byteLength + (1 << 16);
    for (const i of empty) i32[i] = beyond;
    const before = slotWords();
    assert.throws(() => set(6, entryOf(6)), WebAssembly.RuntimeError);
    assert.equal(slotWords(), before, `${where}: a trap wrote a slot`);
    kernelTrapped(heap, new WebAssembly.RuntimeError("out of bounds"));
    for (const i of empty) i32[i] = 0;

    // Claims past 3/4 of the capacity answer minus the table. From 7/8 on,
    // which a table reaches only when its growth found no memory, the kernel
    // claims nothing: the general path grows the table or fails.
    for (let k = 100; claimed() < 56; k++) {
      const answer = set(k, entryOf(k));
      assert.equal(answer, claimed() * 4 > 64 * 3 ? -table : 1, `${where}: claim ${claimed()}`);
      assert.equal(sizeChange(), 1);
    }
    unchanged("a claim at 7/8 of the slots", 99);
    // A full probe bails out too (the table filled by hand, claims counted).
    for (let i = 0, k = 200; i < 64; i++) {
      if (i32[slots + i] !== 0) continue;
      i32[slots + i] = entryOf(k++);
      i32[(table >> 2) + 2]++;
    }
    assert.equal(claimed(), 64);
    unchanged("a full probe", 99);
    unchanged("a delete whose probe is full", 99, true);
    // An outer pin is left alone.
    const epochWord = epochWordAt(heap) >> 2;
    heap.pin();
    const pinned = Atomics.load(i32, epochWord);
    assert.ok(pinned !== 0);
    assert.equal(set(5, entryOf(5)), third, `${where}: inside an outer pin`);
    assert.equal(Atomics.load(i32, epochWord), pinned, `${where}: the outer pin`);
    heap.unpin();
    assert.equal(Atomics.load(i32, epochWord), 0);
  }
});

Deno.test("kernel set: a write right after a read of its key encodes it once, and still writes its own key when the read and the write have other keys between them", () => {
  // update's fn and getOrInsertComputed's compute run between the read of
  // their key and its write; here they read and write other keys of the same
  // map (ASCII, non-ASCII, too long for the kernel), whose encodings take
  // the place of the key's.
  const map = createMap(heapWithKernel(true), { key: "string", value: "i32", maxKeyBytes: 64 });
  const others = ["b", "é", "x".repeat(40), ""];
  for (const [i, other] of others.entries()) {
    map.set("a", i);
    assert.equal(
      map.update("a", (v) => {
        map.get(other);
        map.set(other, 100 + i);
        return (v as number) + 10;
      }),
      i + 10,
    );
    assert.equal(map.get("a"), i + 10, `update of "a" around ${JSON.stringify(other)}`);
    assert.equal(map.get(other), 100 + i);
    assert.ok(map.delete("a"));
    map.get("a");
    assert.equal(
      map.getOrInsertComputed("a", () => {
        map.has(other);
        return 7;
      }),
      7,
    );
    assert.equal(map.get("a"), 7);
    assert.equal(map.get(other), 100 + i, `${JSON.stringify(other)} kept its value`);
  }
  assert.equal(map.size, 1 + others.length);
});

Deno.test("kernel set: set, swap, delete, take, deleteIf, compareAndSet, add, update and getOrInsert through the kernel answer and leave maps, sizes and blocks as the JavaScript path does", () => {
  // String keys: ASCII ones of 1 to 32 bytes go to the kernel; longer and
  // non-ASCII ones, and the empty key, take the general path beside them.
  const stringKeyOf = (k: number) =>
    k % 7 === 0 ? `${"long key ".repeat(4)}${k}` : k % 11 === 0 ? `é${k}` : k === 1 ? "" : `k${k}`;
  const specs = [
    ["i32", "i32"],
    ["u32", "f64"],
    ["i32", "string"],
    ["string", "i32"],
    ["string", "string"],
  ] as const;
  for (const [key, value] of specs) {
    const maps = [true, false].map((kernel) => {
      const heap = heapWithKernel(kernel);
      return { heap, map: createMap(heap, { key, value, maxKeyBytes: 64 }) };
    });
    const rng = fc.sample(fc.integer({ min: 0, max: 2 ** 30 }), { seed: 7, numRuns: 6_000 });
    const keyOf = (k: number) => key === "string" ? stringKeyOf(k) : k;
    const valueOf = (n: number) =>
      value === "string" ? `v${n % 97}` : value === "f64" ? n + 0.5 : n | 0;
    const where = `${key} -> ${value}`;
    const numeric = value !== "string";
    // Conditional writes go to the kernel for numeric values only; a map of
    // string values runs them all the same, in JavaScript.
    const step = (map: HashMap<unknown, unknown>, k: unknown, n: number): unknown => {
      const v = valueOf(n);
      switch ((n >> 12) % 11) {
        case 0:
          return n % 2 === 0 ? map.delete(k) : map.take(k);
        case 1:
          return map.compareAndSet(k, map.get(k), v);
        case 2:
          return map.compareAndSet(k, valueOf(n >> 3), v);
        case 3:
          return map.compareAndSet(k, undefined, v);
        case 4:
          return numeric && n % 2 === 0
            ? map.add(k, value === "f64" ? 0.25 : n % 100)
            : map.swap(k, v);
        case 5:
          return map.update(k, (old) => numeric ? ((old as number ?? 0) + 1) : `${old}.`);
        case 6:
          return map.getOrInsert(k, v);
        case 7:
          return map.deleteIf(k, map.get(k) ?? v);
        case 8:
          return map.deleteIf(k, v);
        default:
          map.set(k, v);
      }
    };
    for (let i = 0; i < rng.length; i++) {
      const k = keyOf(rng[i] % 700);
      const answers = maps.map(({ map }) => step(map as HashMap<unknown, unknown>, k, rng[i]));
      assert.equal(answers[0], answers[1], `${where}: step ${i} on ${k}`);
      // Both paths start each resize at the same claim.
      if (maps[0].map.capacity !== maps[1].map.capacity) {
        assert.fail(`${where}: capacity ${maps[0].map.capacity} after step ${i}`);
      }
    }
    const [inKernel, inJavaScript] = maps;
    assert.equal(inKernel.map.size, inJavaScript.map.size, `${where}: size`);
    assert.ok(inKernel.map.capacity > 16 && inKernel.map.size > 300, `${where}: it grew`);
    for (let k = 0; k < 700; k++) {
      const got = inKernel.map.get(keyOf(k));
      assert.equal(got, inJavaScript.map.get(keyOf(k)), `${where}: get(${keyOf(k)})`);
    }
    // Every replaced entry was retired once: after collection both heaps hold
    // the same blocks.
    for (const { heap } of maps) for (let i = 0; i < 4; i++) heap.collect();
    const [a, b] = maps.map(({ heap }) => heap.stats());
    assert.equal(a.retiredBlocks, 0, `${where}: retired blocks left`);
    assert.equal(a.liveBlocks, b.liveBlocks, `${where}: live blocks`);
  }
});

Deno.test("codecs: bytes keys and values, empty and exactly at the limit, copied in and out", () => {
  const heap = SharedHeap.create();
  const map = HashMap.create(heap, {
    key: "bytes",
    value: "bytes",
    maxKeyBytes: 16,
    maxValueBytes: 40_000, // over the largest size class: the entry takes whole pages
  });
  const empty = new Uint8Array(0);
  const full = new Uint8Array(16).map((_, i) => 255 - i);
  const big = new Uint8Array(40_000).map((_, i) => i * 7);
  map.set(empty, full);
  map.set(full, big);
  assert.deepEqual(map.get(new Uint8Array(0)), full);
  const got = map.get(full.slice())!;
  assert.deepEqual(got, big);
  got[0] ^= 1; // the result is a copy
  assert.deepEqual(map.get(full), big);
  const input = new Uint8Array([1, 2, 3]);
  map.set(input, input);
  input[0] = 9; // and so is what was stored
  assert.deepEqual(map.get(new Uint8Array([1, 2, 3])), new Uint8Array([1, 2, 3]));
  assert.equal(map.get(input), undefined);
  assert.throws(() => map.set(new Uint8Array(17), empty), RangeError);
  assert.throws(() => map.set(empty, new Uint8Array(40_001)), RangeError);
  assert.equal(map.size, 3);
});

Deno.test("codecs: f64 keys -0 and 0 are one key, NaN keys are refused, NaN and -0 values kept", () => {
  const heap = SharedHeap.create();
  const map = HashMap.create(heap, { key: "f64", value: "f64" });
  map.set(-0, 1);
  assert.equal(map.get(0), 1);
  assert.ok(map.has(-0) && map.has(0));
  map.set(0, 2);
  assert.equal(map.get(-0), 2);
  assert.equal(map.size, 1);
  assert.ok(Object.is([...map.keys()][0], 0), "the key reads back as +0");
  for (const op of [() => map.set(NaN, 1), () => map.get(NaN), () => map.has(NaN)]) {
    assert.throws(op, (e: Error) => e instanceof RangeError && /NaN/.test(e.message));
  }
  assert.throws(() => map.delete(NaN), RangeError);
  map.set(Infinity, NaN);
  map.set(-Infinity, -0);
  map.set(Number.MIN_VALUE, Number.MAX_VALUE);
  assert.ok(Number.isNaN(map.get(Infinity)));
  assert.ok(Object.is(map.get(-Infinity), -0));
  assert.equal(map.get(Number.MIN_VALUE), Number.MAX_VALUE);
  // Values compare with Object.is: NaN matches NaN, -0 does not match 0.
  assert.ok(map.compareAndSet(Infinity, NaN, 3));
  assert.equal(map.compareAndSet(-Infinity, 0, 4), false);
  assert.ok(map.deleteIf(-Infinity, -0));
  assert.equal(map.size, 3);
});

for (const kernel of KERNEL_CHOICES) {
  Deno.test(`add: negative deltas to u32 values, and deltas past the value range whose sum fits, are taken${kernelLabel(kernel)}`, () => {
    const heap = heapWithKernel(kernel);
    const u32 = HashMap.create(heap, { key: "u32", value: "u32" });
    u32.set(1, 10);
    assert.equal(u32.add(1, -3), 7);
    assert.equal(u32.add(1, -7), 0);
    assert.throws(() => u32.add(1, -1), /sum -1 is outside the u32 range .*current value is 0$/);
    assert.equal(u32.get(1), 0, "a refused add changes nothing");
    assert.equal(u32.add(2, U32_MAX), U32_MAX);
    assert.equal(u32.add(2, -U32_MAX), 0);
    assert.throws(() => u32.add(3, -1), (e) => e instanceof RangeError && /absent/.test(e.message));
    assert.equal(u32.has(3), false, "a refused add to an absent key inserts nothing");
    const i32 = HashMap.create(heap, { key: "i32", value: "i32" });
    i32.set(1, I32_MIN);
    assert.equal(i32.add(1, U32_MAX), I32_MAX);
    assert.equal(i32.add(1, -U32_MAX), I32_MIN);
    const strings = HashMap.create(heap, { key: "string", value: "u32" });
    assert.equal(strings.add("a", 5), 5);
    assert.equal(strings.add("a", -5), 0);
    assert.throws(() => strings.add("b", -5), RangeError);
    assert.equal(strings.size, 1);
    const big = HashMap.create(heap, { key: "bigint64", value: "bigint64" });
    big.set(1n, I64_MIN);
    assert.equal(big.add(1n, 2n ** 64n - 1n), I64_MAX);
    assert.equal(big.add(1n, -(2n ** 64n) + 1n), I64_MIN);
  });
}

Deno.test("codecs: integer and bigint extremes round-trip, one past them is refused", () => {
  const heap = SharedHeap.create();
  const ints = HashMap.create(heap, { key: "i32", value: "u32" });
  ints.set(I32_MIN, U32_MAX).set(I32_MAX, 0).set(-0, 1);
  assert.equal(ints.get(I32_MIN), U32_MAX);
  assert.equal(ints.get(I32_MAX), 0);
  assert.equal(ints.get(0), 1);
  assert.throws(() => ints.set(I32_MAX + 1, 0), RangeError);
  assert.throws(() => ints.set(I32_MIN - 1, 0), RangeError);
  assert.throws(() => ints.set(0, U32_MAX + 1), RangeError);
  assert.throws(() => ints.set(0, -1), RangeError);
  const big = HashMap.create(heap, { key: "bigint64", value: "bigint64" });
  big.set(I64_MIN, I64_MAX).set(I64_MAX, I64_MIN).set(-1n, 0n);
  assert.equal(big.get(I64_MIN), I64_MAX);
  assert.equal(big.get(I64_MAX), I64_MIN);
  assert.equal(big.get(-1n), 0n);
  assert.throws(() => big.set(I64_MAX + 1n, 0n), RangeError);
  assert.throws(() => big.set(0n, I64_MIN - 1n), RangeError);
  assert.throws(() => big.add(I64_MIN, 1n), RangeError); // I64_MAX + 1
  assert.equal(big.add(I64_MAX, 0n), I64_MIN);
  assert.throws(() => big.add(I64_MAX, -1n), RangeError); // I64_MIN - 1
  assert.equal(big.get(I64_MAX), I64_MIN, "a failed add changes nothing");
  const unsigned = HashMap.create(heap, { key: "u32", value: "i32" });
  unsigned.set(U32_MAX, I32_MIN).set(0, I32_MAX);
  assert.equal(unsigned.get(U32_MAX), I32_MIN);
  assert.throws(() => unsigned.add(0, 1), RangeError);
  assert.equal(unsigned.get(0), I32_MAX);
  assert.deepEqual([...unsigned.keys()].sort((a, b) => a - b), [0, U32_MAX]);
});

// ---------------------------------------------------------------------------
// Bad input: refused before anything is written

/** Everything observable about a map and its heap's allocations. */
function snapshot(map: AnyMap, heap: SharedHeap): string {
  const entries = [...map.entries()].map(([k, v]) =>
    `${k instanceof Uint8Array ? hex(k) : String(k)}=${
      v instanceof Uint8Array ? hex(v) : Object.is(v, -0) ? "-0" : String(v)
    }`
  ).sort();
  const stats = heap.stats();
  return JSON.stringify({
    entries,
    size: map.size,
    capacity: map.capacity,
    liveBlocks: stats.liveBlocks,
    liveBytes: stats.liveBytes,
    retiredBlocks: stats.retiredBlocks,
  });
}

type ErrorClass = typeof TypeError | typeof RangeError;

/** [call, error class, parameter named in the message, value as the message shows it] */
type BadCall = [(map: AnyMap) => unknown, ErrorClass, string, string];

function expectRefused(map: AnyMap, heap: SharedHeap, cases: BadCall[]): void {
  for (const [call, errorClass, parameter, shown] of cases) {
    const before = snapshot(map, heap);
    const source = call.toString();
    assert.throws(
      () => call(map),
      (e: Error) => {
        assert.ok(e instanceof errorClass, `${source}: ${e.name} is not a ${errorClass.name}`);
        assert.match(e.message, new RegExp(`\\b${parameter}\\b`), `${source}: ${e.message}`);
        assert.ok(
          e.message.includes(`current value is ${shown}`),
          `${source}: the message should show ${shown}: ${e.message}`,
        );
        return true;
      },
      `${source} did not throw`,
    );
    assert.equal(snapshot(map, heap), before, `${source} changed the map or the heap`);
  }
}

function filled(heap: SharedHeap, options: HashMapOptions<CodecName, CodecName>, entries: [
  unknown,
  unknown,
][]): AnyMap {
  const map = createMap(heap, options);
  for (const [k, v] of entries) map.set(k, v);
  return map;
}

Deno.test("bad input: i32 and u32 keys and values of the wrong type or range are refused", () => {
  const heap = SharedHeap.create();
  const i32 = filled(heap, { key: "i32", value: "i32" }, [[1, 1], [2, 2], [-3, 3]]);
  expectRefused(i32, heap, [
    [(m) => m.set("1", 1), TypeError, "key", '"1"'],
    [(m) => m.set(2 ** 31, 1), RangeError, "key", "2147483648"],
    [(m) => m.set(-(2 ** 31) - 1, 1), RangeError, "key", "-2147483649"],
    [(m) => m.set(1.5, 1), RangeError, "key", "1.5"],
    [(m) => m.set(undefined, 1), TypeError, "key", "undefined"],
    [(m) => m.set(true, 1), TypeError, "key", "true"],
    [(m) => m.set(1, "1"), TypeError, "value", '"1"'],
    [(m) => m.set(1, 2 ** 31), RangeError, "value", "2147483648"],
    [(m) => m.get(NaN), RangeError, "key", "NaN"],
    [(m) => m.has(null), TypeError, "key", "null"],
    [(m) => m.delete(1n), TypeError, "key", "1n"],
    [(m) => m.swap(-1.5, 0), RangeError, "key", "-1.5"],
    [(m) => m.take(0.5), RangeError, "key", "0.5"],
    [(m) => m.getOrInsertComputed(0.5, () => 1), RangeError, "key", "0.5"],
    [(m) => m.getOrInsertComputed(4, () => "4"), TypeError, "value", '"4"'],
    [(m) => m.getOrInsertComputed(4, 4 as never), TypeError, "function", "4"],

    [(m) => m.getOrInsert(4, null), TypeError, "value", "null"],
    // Present keys, which these answer with a read: the value is checked all the same.
    [(m) => m.getOrInsert(1, null), TypeError, "value", "null"],
    [(m) => m.compareAndSet(1, 99, 0.5), RangeError, "value", "0.5"],
    [(m) => m.compareAndSet(1, "x", 2), TypeError, "expected", '"x"'],
    [(m) => m.compareAndSet(1, 1, 0.5), RangeError, "value", "0.5"],
    [(m) => m.compareAndSet("1", 1, 2), TypeError, "key", '"1"'],
    [(m) => m.deleteIf(1, {}), TypeError, "value", "[object Object]"],
    [(m) => m.deleteIf(Infinity, 1), RangeError, "key", "Infinity"],
    [(m) => m.add(1, 1.5), RangeError, "delta", "1.5"],
    [(m) => m.add(1, 2 ** 32), RangeError, "delta", "4294967296"],
    [(m) => m.add(1, -(2 ** 32)), RangeError, "delta", "-4294967296"],
    [(m) => m.add(1, "1" as never), TypeError, "delta", '"1"'],
    // The sum out of range: the message names the key, the delta and the sum,
    // and shows the value it would have changed.
    [(m) => m.add(1, I32_MAX), RangeError, "sum 2147483648", "1"],
    [(m) => m.add(-3, U32_MAX), RangeError, "key -3", "3"],
    [(m) => m.add(7, I32_MIN - 1), RangeError, "delta -2147483649", "absent (counted as 0)"],
    [(m) => m.update(1, 1 as never), TypeError, "function", "1"],
    [(m) => m.update(1, () => "bad"), TypeError, "value", '"bad"'],
    [(m) => m.update("1", (v) => v), TypeError, "key", '"1"'],
  ]);
  // A compute that throws: its error reaches the caller, and nothing is written.
  const before = snapshot(i32, heap);
  const failure = new Error("no value for 4");
  assert.throws(() =>
    i32.getOrInsertComputed(4, () => {
      throw failure;
    }), (e) => e === failure);
  assert.equal(snapshot(i32, heap), before);
  const u32 = filled(heap, { key: "u32", value: "u32" }, [[0, 0], [U32_MAX, 1]]);
  expectRefused(u32, heap, [
    [(m) => m.set(-1, 0), RangeError, "key", "-1"],
    [(m) => m.set(2 ** 32, 0), RangeError, "key", "4294967296"],
    [(m) => m.set(0, -1), RangeError, "value", "-1"],
    [(m) => m.get("0"), TypeError, "key", '"0"'],
    // -1 has the same 32 bits as the stored key U32_MAX.
    [(m) => m.get(-1), RangeError, "key", "-1"],
    [(m) => m.has(-1), RangeError, "key", "-1"],
    [(m) => m.add(U32_MAX, -2), RangeError, "sum -1", "1"],
    [(m) => m.add(5, -1), RangeError, "sum -1", "absent (counted as 0)"],
    [(m) => m.add(U32_MAX, U32_MAX), RangeError, "sum 4294967296", "1"],
    [(m) => m.add(0, -1.5), RangeError, "delta", "-1.5"],
  ]);
});

Deno.test("bad input: NaN f64 keys and non-number f64 keys and values are refused", () => {
  const heap = SharedHeap.create();
  const map = filled(heap, { key: "f64", value: "f64" }, [[0, NaN], [1.5, -0]]);
  expectRefused(map, heap, [
    [(m) => m.set(NaN, 1), RangeError, "key", "NaN"],
    [(m) => m.getOrInsert(NaN, 1), RangeError, "key", "NaN"],
    [(m) => m.delete(NaN), RangeError, "key", "NaN"],
    [(m) => m.set("1", 1), TypeError, "key", '"1"'],
    [(m) => m.set(1, 1n), TypeError, "value", "1n"],
    [(m) => m.add(1.5, "1" as never), TypeError, "delta", '"1"'],
  ]);
});

Deno.test("bad input: oversize, ill-formed or mistyped strings and bytes are refused", () => {
  const heap = SharedHeap.create();
  const strings = filled(
    heap,
    { key: "string", value: "string", maxKeyBytes: 4, maxValueBytes: 4 },
    [["a", "b"], ["😀", "é"]],
  );
  expectRefused(strings, heap, [
    [(m) => m.set("12345", "v"), RangeError, "key", '"12345"'],
    [(m) => m.set("ééé", "v"), RangeError, "key", '"ééé"'],
    [(m) => m.set("\uD800", "v"), TypeError, "key", '"\\ud800"'],
    [(m) => m.set("k", "12345"), RangeError, "value", '"12345"'],
    [(m) => m.set("k", "a\uDC00"), TypeError, "value", '"a\\udc00"'],
    [(m) => m.set(1, "v"), TypeError, "key", "1"],
    [(m) => m.set("k", 1), TypeError, "value", "1"],
    [(m) => m.getOrInsert("k", "12345"), RangeError, "value", '"12345"'],
    [(m) => m.compareAndSet("a", "12345", "c"), RangeError, "expected", '"12345"'],
  ]);
  assert.throws(() => strings.add("a", "b" as never), TypeError);
  const bytes = filled(
    heap,
    { key: "bytes", value: "bytes", maxKeyBytes: 4, maxValueBytes: 4 },
    [[new Uint8Array([1]), new Uint8Array([2])]],
  );
  const u8 = new Uint8Array([1]);
  expectRefused(bytes, heap, [
    [(m) => m.set([1, 2], u8), TypeError, "key", "Array(2)"],
    [(m) => m.set(new Uint8Array(5), u8), RangeError, "key", "Uint8Array(5)"],
    [(m) => m.set(u8, new Uint8Array(5)), RangeError, "value", "Uint8Array(5)"],
    [(m) => m.set(u8, "x"), TypeError, "value", '"x"'],
    [(m) => m.has(new Uint16Array(1)), TypeError, "key", "[object Uint16Array]"],
  ]);
  assert.throws(() => bytes.add(u8, u8 as never), TypeError);
  // The limits are named as the map's options, which is what the user set.
  const limits: [() => unknown, string][] = [
    [() => strings.get("12345"), "'maxKeyBytes'"],
    [() => strings.set("k", "12345"), "'maxValueBytes'"],
    [() => bytes.delete(new Uint8Array(5)), "'maxKeyBytes'"],
    [() => bytes.set(u8, new Uint8Array(5)), "'maxValueBytes'"],
  ];
  for (const [call, option] of limits) {
    assert.throws(call, (e) => e instanceof RangeError && e.message.includes(option), `${call}`);
  }
});

Deno.test("bad input: bigint64 keys and values of the wrong type or out of range are refused", () => {
  const heap = SharedHeap.create();
  const map = filled(heap, { key: "bigint64", value: "bigint64" }, [[0n, 1n], [I64_MAX, I64_MAX]]);
  expectRefused(map, heap, [
    [(m) => m.set(1, 1n), TypeError, "key", "1"],
    [(m) => m.set(2n ** 63n, 0n), RangeError, "key", "9223372036854775808n"],
    [(m) => m.set(0n, 1), TypeError, "value", "1"],
    [(m) => m.set(0n, I64_MIN - 1n), RangeError, "value", "-9223372036854775809n"],
    [(m) => m.add(0n, 1), TypeError, "delta", "1"],
    [(m) => m.add(I64_MAX, 1n), RangeError, "sum 9223372036854775808n", "9223372036854775807n"],
    [(m) => m.add(0n, 2n ** 64n), RangeError, "delta", "18446744073709551616n"],
  ]);
});

Deno.test("bad input: create refuses a non-heap and bad options before allocating", () => {
  const heap = SharedHeap.create();
  const blocks = () => heap.stats().liveBlocks;
  const before = blocks();
  const refuse = (
    call: () => unknown,
    errorClass: ErrorClass | ErrorClass[],
    parameter: string,
    shown: string,
  ) => {
    const classes = Array.isArray(errorClass) ? errorClass : [errorClass];
    assert.throws(call, (e: Error) => {
      assert.ok(classes.some((c) => e instanceof c), `${call}: ${e.name}: ${e.message}`);
      assert.ok(
        e.message.includes(`'${parameter}'`),
        `${call}: names no '${parameter}': ${e.message}`,
      );
      assert.ok(e.message.includes(`current value is ${shown}`), `${call}: ${e.message}`);
      return true;
    }, `${call} did not throw`);
    assert.equal(blocks(), before, `${call} allocated`);
  };
  const create = (options: unknown, ...on: unknown[]) =>
    HashMap.create(
      (on.length > 0 ? on[0] : heap) as SharedHeap,
      options as HashMapOptions<"i32", "i32">,
    );
  refuse(() => create({ key: "i32", value: "i32" }, {}), TypeError, "heap", "[object Object]");
  refuse(() => create({ key: "i32", value: "i32" }, undefined), TypeError, "heap", "undefined");
  refuse(() => create({ key: "i32", value: "i32" }, heap.sab), TypeError, "heap", "[object");
  refuse(() => create(null), TypeError, "options", "null");
  refuse(() => create("i32"), TypeError, "options", '"i32"');
  refuse(() => create({ key: "int", value: "i32" }), TypeError, "key", '"int"');
  refuse(() => create({ key: "i32", value: "float" }), TypeError, "value", '"float"');
  refuse(() => create({ value: "i32" }), TypeError, "key", "undefined");
  refuse(() => create({ key: 1, value: "i32" }), TypeError, "key", "1");
  // Names that an object literal inherits are no codec names either.
  refuse(() => create({ key: "toString", value: "i32" }), TypeError, "key", '"toString"');
  refuse(() => create({ key: "i32", value: "constructor" }), TypeError, "value", '"constructor"');
  for (const capacity of [0, -1, 1.5, 2 ** 28 + 1, NaN, Infinity]) {
    refuse(
      () => create({ key: "i32", value: "i32", capacity }),
      RangeError,
      "capacity",
      Object.is(capacity, NaN) ? "NaN" : String(capacity),
    );
  }
  refuse(() => create({ key: "i32", value: "i32", capacity: "16" }), TypeError, "capacity", '"16"');
  refuse(() => create({ key: "i32", value: "i32", capacity: null }), TypeError, "capacity", "null");
  // A misspelt option is refused rather than ignored.
  refuse(
    () => create({ key: "string", value: "i32", maxKeyByte: 8 }),
    TypeError,
    "maxKeyByte",
    "8",
  );
  refuse(() => create({ key: "i32", value: "i32", Capacity: 64 }), TypeError, "Capacity", "64");
  for (
    const [field, value, errorClass] of [
      ["maxKeyBytes", 0, RangeError],
      ["maxKeyBytes", 2 ** 20 + 1, RangeError],
      ["maxKeyBytes", 1.5, RangeError],
      ["maxKeyBytes", "8", TypeError],
      ["maxValueBytes", -1, RangeError],
      ["maxValueBytes", null, TypeError],
    ] as const
  ) {
    for (const codecs of [{ key: "string", value: "bytes" }, { key: "i32", value: "i32" }]) {
      refuse(
        () => create({ ...codecs, [field]: value }),
        errorClass,
        field,
        typeof value === "string" ? `"${value}"` : String(value),
      );
    }
  }
});

// ---------------------------------------------------------------------------
// Handles

Deno.test("handles: attach refuses wrong kinds, truncated and random handles with HandleError", () => {
  const heap = SharedHeap.create();
  const map = HashMap.create(heap, { key: "i32", value: "i32" });
  map.set(1, 10);
  const good = map.handle;
  assert.equal(HashMap.attach<number, number>(structuredClone(good)).get(1), 10);
  const block = heap.allocateZeroed(8192);
  const plain = new SharedArrayBuffer(8192);
  // A tag like a map's in a buffer that is no heap.
  new Int32Array(plain)[0] = tagOf("HMAP");
  const bad: unknown[] = [
    null,
    undefined,
    "sabre.HashMap",
    {},
    { kind: good.kind, version: good.version, sab: good.sab },
    { kind: good.kind, version: good.version, offset: good.offset },
    { ...good, kind: "sabre.Mutex" },
    { ...good, kind: "sabre.SharedHeap" },
    { ...good, version: good.version + 1 },
    { ...good, version: good.version - 1 },
    { ...good, version: 0 },
    { ...good, sab: new ArrayBuffer(64) },
    { ...good, sab: plain, offset: 64 },
    { ...good, sab: plain, offset: 0 },
    { ...good, offset: 0 },
    { ...good, offset: good.offset + 2 },
    { ...good, offset: -64 },
    { ...good, offset: block },
    { ...good, offset: heap.sab.byteLength - 64 },
    { ...good, offset: heap.sab.byteLength + 64 },
    { ...good, offset: 1.5 },
  ];
  const random = (n: number) => Math.floor(Math.random() * n);
  for (let i = 0; i < 200; i++) {
    const offset = random(heap.sab.byteLength) * 4;
    if (offset !== good.offset) bad.push({ ...good, offset }); // not the map's own
  }
  for (const handle of bad) {
    assert.throws(
      () => HashMap.attach(handle as typeof good),
      HandleError,
      `attach(${Deno.inspect(handle, { depth: 0 })})`,
    );
  }
  assert.equal(map.get(1), 10);
});

// ---------------------------------------------------------------------------
// Heap exhaustion

/** Fills `map` with new keys until the heap is exhausted; returns the model. */
function fillUntilExhausted(
  map: HashMap<number, string>,
  model: Map<number, string>,
  first: number,
  value: (k: number) => string,
): number {
  for (let k = first;; k++) {
    try {
      map.set(k, value(k));
    } catch (e) {
      assert.ok(e instanceof HeapExhaustedError, `set(${k}) threw ${e}`);
      assert.equal(map.has(k), false, `the set(${k}) that failed left the key behind`);
      return k;
    }
    model.set(k, value(k));
  }
}

function assertMatches(map: HashMap<number, string>, model: Map<number, string>, where: string) {
  assert.equal(map.size, model.size, `${where}: size`);
  for (const [k, v] of model) assert.equal(map.get(k), v, `${where}: get(${k})`);
  const keys = [...map.keys()];
  assert.equal(keys.length, model.size, `${where}: iteration`);
  assert.equal(new Set(keys).size, model.size, `${where}: iteration repeats keys`);
}

Deno.test("exhaustion: a full heap fails inserts with HeapExhaustedError and the map stays whole", () => {
  const heap = SharedHeap.create({ initialBytes: 1 << 20, maxBytes: 1 << 20 });
  // Memory the test gives back later, as an application freeing its own:
  // page blocks of 256 KiB, so that a later growth finds a block it fits.
  const ballast = Array.from({ length: 2 }, () => heap.allocate(256 << 10));
  const map = HashMap.create(heap, { key: "u32", value: "string" });
  const model = new Map<number, string>();
  const value = (k: number) => `value ${k} `.padEnd(100, ".");
  const failed = fillUntilExhausted(map, model, 0, value);
  // Inserts stop at 7/8 of a table that cannot grow.
  assert.ok(model.size >= 448, `only ${model.size} keys fit`);
  assertMatches(map, model, "after the first failure");
  // Writes that need memory fail without effect; reads and deletes still work.
  for (let i = 0; i < 50; i++) {
    const k = i * 7;
    for (
      const op of [
        () => map.set(k, "new"),
        () => map.swap(k, "new"),
        () => map.compareAndSet(k, value(k), "new"),
        () => map.getOrInsert(failed + i, "new"),
        () => map.update(k, () => "new"),
      ]
    ) {
      try {
        op();
        model.set(k, map.get(k)!); // it fitted after all
        if (map.has(failed + i)) model.set(failed + i, "new");
      } catch (e) {
        assert.ok(e instanceof HeapExhaustedError, String(e));
      }
    }
  }
  assertMatches(map, model, "after failed writes");
  assert.ok(map.delete(1) && model.delete(1));
  assertMatches(map, model, "after a delete");
  // Free memory: inserts work again, through more resizes.
  for (const block of ballast) heap.free(block);
  for (let k = failed + 1000; k < failed + 1600; k++) {
    map.set(k, value(k));
    model.set(k, value(k));
  }
  assertMatches(map, model, "after freeing memory");
});

/** Allocates small blocks of several sizes until the heap is full; returns them. */
function exhaustSmallBlocks(heap: SharedHeap): number[] {
  const blocks: number[] = [];
  const sizes = [8, 16, 24, 32, 48];
  for (let i = 0;; i++) {
    try {
      blocks.push(heap.allocate(sizes[i % sizes.length]));
    } catch (e) {
      assert.ok(e instanceof HeapExhaustedError, String(e));
      return blocks;
    }
  }
}

for (const kernel of KERNEL_CHOICES) {
  Deno.test(`exhaustion: with no room for a growth a table stops at 7/8 of its slots, and present keys are still answered by getOrInsert and by compareAndSets that fail${kernelLabel(kernel)}`, () => {
    const shapes: [HashMapOptions<CodecName, CodecName>, (i: number) => unknown, unknown][] = [
      [{ key: "i32", value: "i32" }, (i) => i, 7],
      [{ key: "f64", value: "i32" }, (i) => i + 0.5, 7],
      [{ key: "string", value: "u32" }, (i) => `é${i}`, 7],
      [{ key: "string", value: "string" }, (i) => `key ${i}`, "v"],
    ];
    for (const [options, keyOf, value] of shapes) {
      const where = `${options.key} -> ${options.value}`;
      const heap = heapWithKernel(kernel, { initialBytes: 1 << 20, maxBytes: 1 << 20 });
      const map = createMap(heap, { ...options, capacity: 1024 });
      // Below 3/4 while the heap has room; then the heap fills up with small
      // blocks, and every other one is given back: room for entries, none
      // for the 4 KiB slot array of a growth.
      let n = 0;
      for (; n < 760; n++) map.set(keyOf(n), value);
      const ballast = exhaustSmallBlocks(heap);
      for (let i = 0; i < ballast.length; i += 2) heap.free(ballast[i]);
      let failure: unknown = undefined;
      for (; n < 1024; n++) {
        try {
          map.set(keyOf(n), value);
        } catch (e) {
          failure = e;
          break;
        }
      }
      assert.ok(failure instanceof HeapExhaustedError, `${where}: ${failure}`);
      assert.equal(map.capacity, 1024, where);
      assert.equal(map.size, n, where);
      assert.ok(n * 8 <= 1024 * 7 && n * 8 >= 1024 * 7 - 8, `${where}: stopped at ${n} keys`);
      assert.equal(map.has(keyOf(n)), false, where);
      // A miss probes a bounded run of slots, not the whole table.
      for (let i = 0; i < 50; i++) assert.equal(map.get(keyOf(5000 + i)), undefined, where);
      // With the heap full to the last byte, the answers that need no memory.
      exhaustSmallBlocks(heap);
      for (let i = 0; i < 20; i++) {
        const key = keyOf(i * 37);
        assert.equal(map.getOrInsert(key, value), value, `${where}: getOrInsert(${key})`);
        assert.equal(map.compareAndSet(key, undefined, value), false, where);
        assert.equal(map.compareAndSet(keyOf(5000 + i), value, value), false, where);
      }
      assert.throws(() => map.getOrInsert(keyOf(5000), value), HeapExhaustedError);
      assert.throws(() => map.compareAndSet(keyOf(5000), undefined, value), HeapExhaustedError);
      assert.equal(map.size, n, where);
    }
  });
}

Deno.test("exhaustion: deleting most keys of a map that filled the heap lets new keys in", () => {
  const heap = SharedHeap.create({ initialBytes: 1 << 20, maxBytes: 1 << 20 });
  const map = HashMap.create(heap, { key: "u32", value: "string" });
  const model = new Map<number, string>();
  const value = (k: number) => `value ${k} `.padEnd(100, ".");
  const failed = fillUntilExhausted(map, model, 0, value);
  // Each delete puts a copy of the entry without its value in the key's slot
  // (or, while the heap is full, tags the entry itself), so the values'
  // bytes come back at once; the keys' own go when the map shrinks, once
  // fewer than 1/8 of its slots are live.
  for (let k = 0; k < failed * 0.9; k++) {
    assert.ok(map.delete(k));
    model.delete(k);
  }
  for (let i = 0; i < 4; i++) heap.collect();
  for (let k = failed; k < failed + 100; k++) {
    map.set(k, value(k));
    model.set(k, value(k));
  }
  assertMatches(map, model, "after deleting and inserting again");
  // And the cycle repeats: fill up again, empty again.
  fillUntilExhausted(map, model, failed + 100, value);
  assertMatches(map, model, "after filling again");
});

for (const kernel of KERNEL_CHOICES) {
  Deno.test(`exhaustion: a map emptied by clear() on a heap that other blocks fill to the last byte takes new keys again${kernelLabel(kernel)}`, () => {
    const shapes: [HashMapOptions<CodecName, CodecName>, (i: number) => unknown][] = [
      [{ key: "i32", value: "i32" }, (i) => i],
      [{ key: "string", value: "string" }, (i) => `key ${i}`.padEnd(40, "-")],
    ];
    for (const [options, valueOf] of shapes) {
      const where = `${options.key} -> ${options.value}`;
      const keyOf = options.key === "i32" ? (i: number) => i : (i: number) => `k${i}`;
      const heap = heapWithKernel(kernel, { initialBytes: 1 << 20, maxBytes: 1 << 20 });
      const map = createMap(heap, options);
      for (let i = 0; i < 2000; i++) map.set(keyOf(i), valueOf(i));
      // Nothing is left for the map but what its own deleted entries hold:
      // freeing them needs a new table, which only the spare can be.
      for (const size of [4096, 512]) {
        for (;;) {
          try {
            heap.allocate(size);
          } catch {
            break;
          }
        }
      }
      exhaustSmallBlocks(heap);
      for (let cycle = 0, first = 10_000; cycle < 3; cycle++) {
        map.clear();
        assert.equal(map.size, 0, where);
        const model = new Map<unknown, unknown>();
        for (let i = first;; i++) {
          try {
            map.set(keyOf(i), valueOf(i));
          } catch (e) {
            assert.ok(e instanceof HeapExhaustedError, `${where}: ${e}`);
            first = i + 1;
            break;
          }
          model.set(keyOf(i), valueOf(i));
        }
        // At least the spare's 16 slots up to 7/8.
        assert.ok(model.size >= 14, `${where}, cycle ${cycle}: only ${model.size} keys fitted`);
        assert.equal(map.size, model.size, where);
        for (const [k, v] of model) assert.equal(map.get(k), v, `${where}: get(${k})`);
        assert.deepEqual(new Set(map.keys()), new Set(model.keys()), where);
      }
    }
  });
}

Deno.test("exhaustion: delete succeeds when helping a resize runs out of memory", () => {
  const heap = SharedHeap.create();
  const map = HashMap.create(heap, { key: "i32", value: "i32", capacity: 16 });
  // 13 keys pass 3/4 of 16 slots: the last claim publishes a next table.
  for (let k = 0; k < 13; k++) map.set(k, k * 10);
  assert.equal(map.capacity, 16);
  // Copying fails in the middle of the first chunk, as a full heap would make it.
  faultInjection.hook = (site) => {
    if (site === "hashmap.migrate.chunk") throw new HeapExhaustedError(64, heap.maxBytes);
  };
  try {
    assert.equal(map.delete(5), true);
    assert.equal(map.delete(5), false);
    assert.equal(map.deleteIf(6, 60), true);
  } finally {
    faultInjection.hook = undefined;
  }
  // The failed copies gave their chunk back: the next write redoes it.
  map.set(13, 130);
  assert.equal(map.capacity, 32, "the resize did not finish");
  for (let k = 0; k < 14; k++) assert.equal(map.get(k), k === 5 || k === 6 ? undefined : k * 10);
});

Deno.test("exhaustion: create on a full heap throws HeapExhaustedError and leaks nothing", () => {
  const heap = SharedHeap.create({ initialBytes: 1 << 20, maxBytes: 1 << 20 });
  const blocks: number[] = [];
  for (const size of [60_000, 4096, 64]) {
    for (;;) {
      try {
        blocks.push(heap.allocate(size));
      } catch {
        break;
      }
    }
  }
  const before = heap.stats().liveBlocks;
  assert.throws(() => HashMap.create(heap, { key: "i32", value: "i32" }), HeapExhaustedError);
  assert.equal(heap.stats().liveBlocks, before);
  for (const block of blocks) heap.free(block);
  const map = HashMap.create(heap, { key: "i32", value: "i32" });
  map.set(1, 1);
  assert.equal(map.get(1), 1);
});

// ---------------------------------------------------------------------------
// destroy

for (const spec of DESTROY_SAMPLES) {
  Deno.test(`destroy: ${spec.name} gives back every block at each stage of a growth (copying, promoted, retiring old table, done)`, () => {
    // 3/4 of 2048 slots, then one more key: the table grows. The 8 chunks
    // of 256 slots are copied two a write, then the old table is retired
    // two chunks a write, so `extra` writes after the growth stop it at
    // every stage.
    const capacity = 2048;
    const fill = (capacity * 3) / 4 + 1;
    for (let extra = 0; extra <= 12; extra++) {
      const heap = SharedHeap.create();
      const before = settledUse(heap);
      const map = createMap(heap, { ...spec.options, capacity });
      // Deleted keys keep their entries in their slots; overwritten ones
      // were retired already: neither may be missed or given back twice.
      for (let i = 0; i < fill; i++) map.set(spec.key(i), spec.value(i));
      for (let i = 0; i < extra; i++) {
        if (i % 3 === 0) map.delete(spec.key(i));
        else map.set(spec.key(i), spec.value(i + 1));
      }
      assert.ok(settledUse(heap).blocks > before.blocks + fill);
      map.destroy();
      assert.deepEqual(settledUse(heap), before, `after ${extra} writes past the growth`);
    }
  });
}

Deno.test("destroy: gives back every block of a chain of tables whose old table's retirement stalled", () => {
  const heap = SharedHeap.create();
  const before = settledUse(heap);
  const map = createMap(heap, { key: "i32", value: "i32", capacity: 1024 });
  // Grow once; the write that takes the old table's first chunk of
  // retirement stops in it (an exception here, a dead worker in real life),
  // still holding it. The root can then not move on, so later growths
  // chain tables behind it.
  let stalled = false;
  faultInjection.hook = (site) => {
    if (site === "hashmap.retire.chunk" && !stalled) {
      stalled = true;
      throw new Error("stop here");
    }
  };
  let key = 0;
  try {
    while (!stalled) {
      try {
        map.set(key, key);
        key++;
      } catch (e) {
        if (!(e instanceof Error) || e.message !== "stop here") throw e;
      }
    }
  } finally {
    faultInjection.hook = undefined;
  }
  const stalledAt = map.capacity;
  // Overwrites in the root leave the old table the only owner of the entries
  // it has not handed over yet, and retire those it has.
  for (let k = 0; k < key; k += 5) map.set(k, -k);
  for (let i = 0; i < 20_000; i++, key++) map.set(key, key % 5 === 0 ? -key : key);
  for (let k = 0; k < key; k += 7) map.delete(k);
  assert.equal(map.capacity, stalledAt, "the root moved on: no chain was built");
  for (let k = 0; k < key; k++) {
    assert.equal(map.get(k), k % 7 === 0 ? undefined : k % 5 === 0 ? -k : k);
  }
  map.destroy();
  assert.deepEqual(settledUse(heap), before);
});

Deno.test("destroy: a second destroy throws SabreError, attach then refuses the handle, other maps stay whole", () => {
  const heap = SharedHeap.create();
  const kept = createMap(heap, { key: "string", value: "i32" });
  const map = createMap(heap, { key: "string", value: "i32" });
  for (let i = 0; i < 500; i++) {
    kept.set(`k${i}`, i);
    map.set(`k${i}`, -i);
  }
  const handle = map.handle;
  const twin = HashMap.attach(handle);
  map.destroy();
  assert.throws(
    () => twin.destroy(),
    (e) => e instanceof SabreError && /destroyed already/.test(e.message),
  );
  assert.throws(() => map.destroy(), SabreError);
  // The object whose destroy lost knows the map is gone too.
  assert.throws(
    () => twin.get("k1"),
    (e) => e instanceof SabreError && /was destroyed:/.test(e.message),
  );
  assert.throws(() => HashMap.attach(handle), HandleError);
  for (let i = 0; i < 4; i++) heap.collect();
  for (let i = 500; i < 1500; i++) kept.set(`k${i}`, i);
  for (let i = 0; i < 1500; i++) assert.equal(kept.get(`k${i}`), i);
  assert.equal(kept.size, 1500);
});

for (const kernel of KERNEL_CHOICES) {
  Deno.test(`destroy: every later call on the destroyed object throws SabreError, and a map that reuses its blocks is untouched${kernelLabel(kernel)}`, () => {
    const heap = heapWithKernel(kernel);
    const samples: [HashMapOptions<CodecName, CodecName>, unknown, unknown][] = [
      [{ key: "i32", value: "i32" }, 5, 55],
      [{ key: "u32", value: "f64" }, 5, 0.5],
      [{ key: "string", value: "u32" }, "five", 55],
      [{ key: "string", value: "string" }, "five", "fifty"],
      [{ key: "f64", value: "bigint64" }, 0.5, 55n],
      [{ key: "bytes", value: "i32" }, new Uint8Array([5]), 55],
    ];
    for (const [options, key, value] of samples) {
      const map = createMap(heap, options);
      for (let i = 0; i < 3; i++) map.set(key, value);
      map.destroy();
      for (let i = 0; i < 4; i++) heap.collect();
      // The blocks go back to the heap, and a new map may be given them.
      const other = createMap(heap, options);
      const before = snapshot(other, heap);
      const numeric = options.value !== "string";
      const calls: [string, () => unknown][] = [
        ["get", () => map.get(key)],
        ["has", () => map.has(key)],
        ["set", () => map.set(key, value)],
        ["swap", () => map.swap(key, value)],
        ["delete", () => map.delete(key)],
        ["take", () => map.take(key)],
        ["deleteIf", () => map.deleteIf(key, value)],
        ["getOrInsert", () => map.getOrInsert(key, value)],
        ["getOrInsertComputed", () => map.getOrInsertComputed(key, () => value)],
        ["compareAndSet", () => map.compareAndSet(key, undefined, value)],
        ["update", () => map.update(key, () => value)],
        ["size", () => map.size],
        ["capacity", () => map.capacity],
        ["entries", () => [...map.entries()]],
        ["forEach", () => map.forEach(() => {})],
        ["clear", () => map.clear()],
        ["finishResize", () => map.finishResize()],
        ["destroy", () => map.destroy()],
      ];
      if (numeric) calls.push(["add", () => map.add(key, value as number)]);
      for (const [name, call] of calls) {
        assert.throws(
          call,
          (e) => e instanceof SabreError && /destroyed/.test(e.message),
          `${options.key} -> ${options.value}: ${name} after destroy`,
        );
      }
      assert.equal(snapshot(other, heap), before, `${options.key} -> ${options.value}`);
      other.destroy();
    }
  });
}

Deno.test("interleaving: a kernel claim past 3/4 whose table is resized, retired and reused before its caller starts the resize publishes nothing", () => {
  const heap = SharedHeap.create();
  const before = settledUse(heap).blocks;
  const map = createMap(heap, { key: "i32", value: "i32", capacity: 16 });
  const other = HashMap.attach<number, number>(map.handle);
  for (let k = 0; k < 12; k++) map.set(k, k);
  // The 13th claim passes 3/4 of 16 slots. Between the kernel's answer and
  // the resize, another handle grows the map, retires the old table and
  // reclaims it, and the old descriptor's block is handed out zeroed again.
  const fillers: number[] = [];
  let entered = false;
  faultInjection.hook = (site) => {
    if (site !== "hashmap.kernel.claimed" || entered) return;
    entered = true;
    for (let k = 100; k < 140; k++) other.set(k, k);
    assert.ok(map.capacity > 16, "the map did not grow");
    for (let k = 100; k < 140; k++) other.set(k, -k); // retire the old table
    for (let i = 0; i < 4; i++) heap.collect();
    for (let i = 0; i < 64; i++) fillers.push(heap.allocateZeroed(56));
  };
  try {
    map.set(12, 12);
  } finally {
    faultInjection.hook = undefined;
  }
  assert.ok(entered, "no kernel claim passed 3/4");
  for (let k = 0; k < 13; k++) assert.equal(map.get(k), k);
  map.destroy();
  for (const block of fillers) heap.free(block);
  assert.equal(
    settledUse(heap).blocks,
    before,
    "a table was published into a reused block and leaked",
  );
});
