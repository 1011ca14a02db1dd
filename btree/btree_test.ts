/**
 * Single-thread tests of BPlusTree: every operation on small and default
 * node capacities, every key and value codec (order, extremes, normalization),
 * bad input refused before anything is written, bulkLoad, heap exhaustion,
 * and a differential fuzz against a sorted model (fast-check) that forces
 * deep trees, splits, merges, root growth and shrinking, and drains the
 * tree back to one empty leaf.
 *
 * Cursor and range semantics: cursor_test.ts. Multi-worker tests:
 * btree_workers_test.ts.
 */

import assert from "node:assert/strict";
import { DESTROY_SAMPLES, type DestroySample, settledUse } from "../testing/destroy.ts";
import fc from "fast-check";
import { BPlusTree, type BPlusTreeOptions } from "./mod.ts";
import { checkTree } from "./_invariants.ts";
import { treeInternals } from "./btree.ts";
import {
  type CodecName,
  HandleError,
  HeapExhaustedError,
  SabreError,
  SharedHeap,
  TimeoutError,
} from "../memory/mod.ts";
import { LatchWords } from "../latch/mod.ts";
import { countOf, isLeaf, N_CONTENT, N_VERSION } from "./_node.ts";
import {
  comparatorOf,
  compareBytes,
  compareCodePoints,
  compareNumbers,
  type RangeOptions,
  show,
  SortedModel,
} from "./_btree_test_workers.ts";
import { seededRandom } from "../testing/harness.ts";

const STRESS = Number(Deno.env.get("SABRE_STRESS") ?? "1");
const MiB = 1 << 20;

type AnyTree = BPlusTree<unknown, unknown>;

function createTree(
  heap: SharedHeap,
  options: BPlusTreeOptions | Record<string, unknown>,
): AnyTree {
  return BPlusTree.create(heap, options as BPlusTreeOptions) as unknown as AnyTree;
}

/** Asserts that the tree holds exactly the model's entries, in order, and passes checkTree. */
function assertSame(tree: AnyTree, model: SortedModel, where: string, strictFill = true): void {
  const shape = checkTree(tree as never, { strictFill });
  assert.equal(tree.size, model.size, `${where}: size`);
  assert.equal(shape.size, model.size, `${where}: checkTree size`);
  assert.equal(shape.height, tree.height, `${where}: checkTree height`);
  const entries = [...tree.entries()];
  assert.equal(entries.length, model.size, `${where}: entries() length`);
  for (let i = 0; i < entries.length; i++) {
    assert.deepEqual(entries[i], [model.keys[i], model.values[i]], `${where}: entry ${i}`);
  }
}

const I32_MIN = -2147483648;
const I32_MAX = 2147483647;
const U32_MAX = 4294967295;
const I64_MIN = -(2n ** 63n);
const I64_MAX = 2n ** 63n - 1n;

// ---------------------------------------------------------------------------
// Every operation, small and default capacities

for (const capacities of [{ leafCapacity: 4, innerCapacity: 4 }, {}]) {
  const label = capacities.leafCapacity ? "capacities 4/4" : "default capacities";

  Deno.test(`operations (${label}): set/get/has/insert/delete/getOrInsert/update return what they should`, () => {
    const heap = SharedHeap.create();
    const tree = BPlusTree.create<number, number>(heap, {
      key: "i32",
      value: "i32",
      ...capacities,
    });
    assert.equal(tree.size, 0);
    assert.equal(tree.height, 1);
    assert.equal(tree.get(1), undefined);
    assert.equal(tree.has(1), false);
    assert.equal(tree.first(), undefined);
    assert.equal(tree.last(), undefined);
    assert.equal(tree.popFirst(), undefined);
    assert.equal(tree.popLast(), undefined);
    assert.equal(tree.delete(1), undefined);
    assert.deepEqual([...tree], []);

    assert.equal(tree.set(5, 50), undefined);
    assert.equal(tree.set(5, 51), 50);
    assert.equal(tree.get(5), 51);
    assert.equal(tree.has(5), true);
    assert.equal(tree.insert(5, 52), false);
    assert.equal(tree.get(5), 51, "insert of a present key changes nothing");
    assert.equal(tree.insert(6, 60), true);
    assert.equal(tree.getOrInsert(6, 61), 60);
    assert.equal(tree.getOrInsert(7, 70), 70);
    assert.equal(tree.get(7), 70);
    assert.equal(tree.size, 3);

    // update: fn sees the old value; its result is stored; undefined deletes.
    const seen: (number | undefined)[] = [];
    assert.equal(tree.update(7, (old) => (seen.push(old), (old ?? 0) + 1)), 71);
    assert.equal(tree.get(7), 71);
    assert.equal(tree.update(8, (old) => (seen.push(old), 80)), 80);
    assert.equal(tree.get(8), 80);
    assert.equal(tree.update(8, (old) => (seen.push(old), undefined)), undefined);
    assert.equal(tree.has(8), false);
    assert.equal(tree.update(9, (old) => (seen.push(old), undefined)), undefined);
    assert.equal(tree.has(9), false, "update returning undefined on an absent key stays absent");
    assert.deepEqual(seen, [70, undefined, 80, undefined]);
    assert.equal(tree.size, 3);

    assert.equal(tree.delete(6), 60);
    assert.equal(tree.delete(6), undefined);
    assert.equal(tree.size, 2);
    assert.deepEqual(tree.first(), [5, 51]);
    assert.deepEqual(tree.last(), [7, 71]);
    assert.deepEqual(tree.popFirst(), [5, 51]);
    assert.deepEqual(tree.popLast(), [7, 71]);
    assert.equal(tree.size, 0);
    assert.equal(tree.popFirst(), undefined);
    checkTree(tree);
  });

  Deno.test(`operations (${label}): 20k keys in shuffled order, then every read form, then all deleted`, () => {
    const heap = SharedHeap.create({ maxBytes: 256 * MiB });
    const tree = BPlusTree.create<number, number>(heap, {
      key: "i32",
      value: "i32",
      ...capacities,
    });
    const n = 20_000;
    const order = Array.from({ length: n }, (_, i) => i);
    const random = seededRandom(42);
    for (let i = n - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [order[i], order[j]] = [order[j], order[i]];
    }
    for (const i of order) assert.equal(tree.set(i * 3, ~i), undefined);
    assert.equal(tree.size, n);
    assert.ok(tree.height >= (capacities.leafCapacity ? 6 : 2), `height ${tree.height}`);
    const shape = checkTree(tree);
    assert.equal(shape.size, n);
    assert.equal(shape.height, tree.height);
    for (let i = 0; i < n; i++) {
      assert.equal(tree.get(i * 3), ~i);
      assert.equal(tree.get(i * 3 + 1), undefined);
    }
    let expect = 0;
    for (const [k, v] of tree) {
      assert.equal(k, expect * 3);
      assert.equal(v, ~expect);
      expect++;
    }
    assert.equal(expect, n);
    assert.deepEqual([...tree.keys()].slice(0, 3), [0, 3, 6]);
    assert.deepEqual([...tree.values()].slice(-2), [~(n - 2), ~(n - 1)]);
    assert.deepEqual([...tree.entries()].length, n);
    assert.deepEqual(tree.first(), [0, ~0]);
    assert.deepEqual(tree.last(), [(n - 1) * 3, ~(n - 1)]);
    // Delete in another shuffled order: merges all the way down to one leaf.
    for (let i = n - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [order[i], order[j]] = [order[j], order[i]];
    }
    for (let x = 0; x < n; x++) {
      const i = order[x];
      assert.equal(tree.delete(i * 3), ~i);
      if (x % 4999 === 0) checkTree(tree);
    }
    assert.equal(tree.size, 0);
    assert.equal(tree.height, 1);
    const empty = checkTree(tree);
    assert.equal(empty.size, 0);
    assert.equal(empty.height, 1);
    assert.equal(empty.leaves, 1);
    assert.equal(empty.innerNodes, 0);
  });

  Deno.test(`operations (${label}): popFirst and popLast drain the tree in order`, () => {
    const heap = SharedHeap.create();
    const tree = BPlusTree.create<number, number>(heap, {
      key: "i32",
      value: "i32",
      ...capacities,
    });
    const n = 3000;
    for (let i = 0; i < n; i++) tree.set(i, i);
    let lo = 0;
    let hi = n - 1;
    for (let i = 0; i < n; i++) {
      if (i % 3 === 0) assert.deepEqual(tree.popLast(), [hi, hi--]);
      else assert.deepEqual(tree.popFirst(), [lo, lo++]);
      if (tree.size > 0) {
        assert.deepEqual(tree.first(), [lo, lo]);
        assert.deepEqual(tree.last(), [hi, hi]);
      }
    }
    assert.equal(tree.size, 0);
    assert.equal(tree.height, 1);
    checkTree(tree);
  });
}

Deno.test("create: capacities from 4 to 1024 work; outside that range, RangeError", () => {
  const heap = SharedHeap.create({ maxBytes: 128 * MiB });
  for (const [leafCapacity, innerCapacity] of [[4, 1024], [1024, 4], [5, 7], [1024, 1024]]) {
    const tree = BPlusTree.create(heap, { key: "u32", value: "u32", leafCapacity, innerCapacity });
    for (let i = 0; i < 5000; i++) tree.set((i * 7919) % 5000, i);
    const shape = checkTree(tree);
    assert.equal(shape.size, 5000);
    for (let i = 0; i < 5000; i += 7) tree.delete(i);
    checkTree(tree);
  }
  for (const bad of [3, 1025, 0, -4, 4.5, NaN]) {
    assert.throws(
      () => BPlusTree.create(heap, { key: "i32", value: "i32", leafCapacity: bad }),
      RangeError,
      `leafCapacity ${bad}`,
    );
    assert.throws(
      () => BPlusTree.create(heap, { key: "i32", value: "i32", innerCapacity: bad }),
      RangeError,
      `innerCapacity ${bad}`,
    );
  }
  assert.throws(
    () => createTree(heap, { key: "int", value: "i32" }),
    TypeError,
  );
  assert.throws(
    () => createTree(heap, { key: "i32", value: "float" }),
    TypeError,
  );
  // A misspelt option is refused, naming it, rather than ignored.
  assert.throws(
    () => createTree(heap, { key: "i32", value: "i32", leafCapacty: 8 }),
    (e) => e instanceof TypeError && /'leafCapacty'/.test(e.message),
  );
  // Limits are named as the tree's options in the errors of later calls too.
  const tree = BPlusTree.create(heap, { key: "string", value: "i32", maxKeyBytes: 4 });
  assert.throws(
    () => tree.set("12345", 1),
    (e) => e instanceof RangeError && /'maxKeyBytes'/.test(e.message),
  );
});

Deno.test("handles: attach gives a second view of the same tree; the handle survives structuredClone", () => {
  const heap = SharedHeap.create();
  const tree = BPlusTree.create(heap, { key: "string", value: "i32", leafCapacity: 4 });
  for (let i = 0; i < 100; i++) tree.set(`k${i}`, i);
  const other = BPlusTree.attach<string, number>(structuredClone(tree.handle));
  assert.equal(other.size, 100);
  assert.equal(other.get("k42"), 42);
  other.set("new", -1);
  assert.equal(tree.get("new"), -1);
  assert.equal(tree.size, 101);
  assert.equal(other.height, tree.height);
});

// ---------------------------------------------------------------------------
// Key codecs: order, extremes, normalization

interface KeyCase {
  readonly codec: CodecName;
  readonly keys: unknown[];
  readonly compare: (a: unknown, b: unknown) => number;
  readonly options?: Record<string, unknown>;
}

const PREFIX = "p".repeat(200);
const BYTE_PREFIX = new Uint8Array(180).fill(7);

function withPrefix(suffix: number[]): Uint8Array {
  const out = new Uint8Array(BYTE_PREFIX.length + suffix.length);
  out.set(BYTE_PREFIX);
  out.set(suffix, BYTE_PREFIX.length);
  return out;
}

const KEY_CASES: KeyCase[] = [
  {
    codec: "i32",
    keys: [
      I32_MIN,
      I32_MIN + 1,
      -65536,
      -2,
      -1,
      0,
      1,
      2,
      255,
      256,
      65535,
      65536,
      I32_MAX - 1,
      I32_MAX,
    ],
    compare: compareNumbers,
  },
  {
    codec: "u32",
    keys: [0, 1, 2, 255, 256, 2 ** 31 - 1, 2 ** 31, 2 ** 31 + 1, U32_MAX - 1, U32_MAX],
    compare: compareNumbers,
  },
  {
    codec: "f64",
    keys: [
      -Infinity,
      -Number.MAX_VALUE,
      -1e300,
      -2.5,
      -1,
      -Number.MIN_VALUE,
      0,
      Number.MIN_VALUE,
      1e-300,
      0.1,
      1,
      1.0000000000000002,
      2 ** 53,
      Number.MAX_VALUE,
      Infinity,
    ],
    compare: compareNumbers,
  },
  {
    codec: "bigint64",
    keys: [
      I64_MIN,
      I64_MIN + 1n,
      -(2n ** 32n),
      -1n,
      0n,
      1n,
      2n ** 31n,
      2n ** 32n,
      I64_MAX - 1n,
      I64_MAX,
    ],
    compare: compareNumbers,
  },
  {
    codec: "string",
    keys: [
      "",
      "\u0000",
      "\u0001",
      "A",
      "a",
      "ab",
      "abc",
      "b",
      "é",
      "\u07ff",
      "\u0800",
      "\uD7FF",
      "\uE000",
      "\uFFFF",
      "😀", // U+1F600: after U+FFFF in code point order, before it in JS "<"
      "😀a",
      "𝔘𝔫𝔦",
      PREFIX,
      PREFIX + "\u0000",
      PREFIX + "a",
      PREFIX + "aa",
      PREFIX + "b",
      PREFIX + "\uFFFF",
      PREFIX + "😀",
      PREFIX + "😀😀",
    ],
    compare: compareCodePoints,
    options: { maxKeyBytes: 256 },
  },
  {
    codec: "bytes",
    keys: [
      new Uint8Array([]),
      new Uint8Array([0]),
      new Uint8Array([0, 0]),
      new Uint8Array([0, 255]),
      new Uint8Array([1]),
      new Uint8Array([1, 0]),
      new Uint8Array([127]),
      new Uint8Array([128]),
      new Uint8Array([255]),
      new Uint8Array([255, 255, 255]),
      BYTE_PREFIX,
      withPrefix([0]),
      withPrefix([0, 0]),
      withPrefix([1]),
      withPrefix([255]),
      withPrefix([255, 0]),
    ],
    compare: compareBytes,
    options: { maxKeyBytes: 256 },
  },
];

for (const { codec, keys: listed, compare, options } of KEY_CASES) {
  Deno.test(`key codec ${codec}: extremes and neighbours in order, in trees of every height`, () => {
    // In the reference order (written independently of the library), all distinct.
    const keys = [...listed].sort(compare);
    for (let i = 1; i < keys.length; i++) {
      assert.ok(compare(keys[i - 1], keys[i]) < 0, `${show(keys[i - 1])} < ${show(keys[i])}`);
    }
    const random = seededRandom(7);
    for (const leafCapacity of [4, 64]) {
      const heap = SharedHeap.create();
      const tree = createTree(heap, {
        key: codec,
        value: "u32",
        leafCapacity,
        innerCapacity: 4,
        ...options,
      });
      // Shuffled, and padded with many keys in between for deep trees.
      const order = keys.map((_, i) => i).sort(() => random() - 0.5);
      for (const i of order) assert.equal(tree.set(keys[i], i), undefined, `set ${show(keys[i])}`);
      assert.equal(tree.size, keys.length);
      assert.deepEqual([...tree.keys()], keys, "ascending iteration");
      assert.deepEqual([...tree.range({ reverse: true })].map(([k]) => k), [...keys].reverse());
      for (let i = 0; i < keys.length; i++) {
        assert.equal(tree.get(keys[i]), i, `get ${show(keys[i])}`);
        assert.deepEqual(
          [...tree.range({ gt: keys[i], limit: 1 })],
          i + 1 < keys.length ? [[keys[i + 1], i + 1]] : [],
          `successor of ${show(keys[i])}`,
        );
        assert.deepEqual(
          [...tree.range({ lt: keys[i], reverse: true, limit: 1 })],
          i > 0 ? [[keys[i - 1], i - 1]] : [],
          `predecessor of ${show(keys[i])}`,
        );
      }
      assert.deepEqual(tree.first(), [keys[0], 0]);
      assert.deepEqual(tree.last(), [keys[keys.length - 1], keys.length - 1]);
      checkTree(tree as never);
      for (const i of order) assert.equal(tree.delete(keys[i]), i);
      assert.equal(tree.size, 0);
      checkTree(tree as never);
    }
  });
}

Deno.test("key codec string: many keys sharing a 200-byte prefix, with astral suffixes, match a code point sort", () => {
  const heap = SharedHeap.create({ maxBytes: 128 * MiB });
  const tree = BPlusTree.create<string, number>(heap, {
    key: "string",
    value: "i32",
    maxKeyBytes: 256,
    leafCapacity: 8,
    innerCapacity: 4,
  });
  const model = new SortedModel<string, number>(compareCodePoints);
  const alphabet = ["a", "b", "z", "é", "\uFFFF", "😀", "𝔘", "\u0000", "~"];
  const random = seededRandom(3);
  for (let i = 0; i < 4000; i++) {
    let suffix = "";
    const len = Math.floor(random() * 6);
    for (let j = 0; j < len; j++) suffix += alphabet[Math.floor(random() * alphabet.length)];
    const key = (random() < 0.8 ? PREFIX : PREFIX.slice(0, Math.floor(random() * 200))) + suffix;
    assert.equal(tree.set(key, i), model.set(key, i));
  }
  assertSame(tree as unknown as AnyTree, model as unknown as SortedModel, "after inserts");
  // JS "<" disagrees with this order for astral vs high-BMP characters: both are present.
  assert.ok(tree.has(PREFIX + "😀") || model.has(PREFIX + "😀") === false);
  for (let i = 0; i < model.keys.length; i += 2) {
    assert.equal(tree.delete(model.keys[i]), model.values[i]);
  }
  const kept = model.keys.filter((_, i) => i % 2 === 1);
  assert.deepEqual([...tree.keys()], kept);
  checkTree(tree);
});

Deno.test("key codec string: code point order, not UTF-16 order, for astral against high-BMP characters", () => {
  const heap = SharedHeap.create();
  const tree = BPlusTree.create(heap, { key: "string", value: "i32" });
  tree.set("\uFFFF", 1);
  tree.set("😀", 2);
  tree.set("\uE000", 3);
  assert.ok("😀" < "\uFFFF", "JS < puts the astral character first");
  assert.deepEqual([...tree.keys()], ["\uE000", "\uFFFF", "😀"]);
  assert.deepEqual([...tree.range({ gt: "\uFFFF" })], [["😀", 2]]);
});

Deno.test("key codec f64: -0 and +0 are one key; NaN keys throw RangeError everywhere", () => {
  const heap = SharedHeap.create();
  const tree = BPlusTree.create<number, number>(heap, {
    key: "f64",
    value: "f64",
    leafCapacity: 4,
  });
  assert.equal(tree.set(-0, 1), undefined);
  assert.equal(tree.get(0), 1);
  assert.equal(tree.has(-0), true);
  assert.equal(tree.set(0, 2), 1);
  assert.equal(tree.insert(-0, 3), false);
  assert.equal(tree.size, 1);
  assert.ok(Object.is(tree.first()![0], 0), "the key reads back as +0");
  assert.deepEqual([...tree.range({ gte: -0, lte: -0 })], [[0, 2]]);
  assert.deepEqual([...tree.range({ gt: -0 })], []);
  assert.deepEqual([...tree.range({ lt: 0 })], []);
  tree.set(-Infinity, -1);
  tree.set(Infinity, 5);
  tree.set(-Number.MIN_VALUE, -2);
  tree.set(Number.MIN_VALUE, 4);
  assert.deepEqual([...tree.keys()], [-Infinity, -Number.MIN_VALUE, 0, Number.MIN_VALUE, Infinity]);
  for (
    const op of [
      () => tree.set(NaN, 1),
      () => tree.insert(NaN, 1),
      () => tree.get(NaN),
      () => tree.has(NaN),
      () => tree.delete(NaN),
      () => tree.getOrInsert(NaN, 1),
      () => tree.update(NaN, () => 1),
      () => [...tree.range({ gte: NaN })],
      () => [...tree.range({ lt: NaN })],
    ]
  ) {
    assert.throws(op, RangeError, String(op));
  }
  assert.equal(tree.delete(-0), 2);
  assert.equal(tree.size, 4);
  checkTree(tree);
});

Deno.test("value codecs: each of the six round-trips its edge values, f64 keeps -0 and NaN", () => {
  const heap = SharedHeap.create();
  const cases: [CodecName, unknown[]][] = [
    ["i32", [I32_MIN, -1, 0, 1, I32_MAX]],
    ["u32", [0, 1, 2 ** 31, U32_MAX]],
    ["f64", [-0, 0, NaN, Infinity, -Infinity, Number.MIN_VALUE, -Number.MAX_VALUE, 0.1]],
    ["bigint64", [I64_MIN, -1n, 0n, I64_MAX]],
    ["string", ["", "a", "é", "😀", "\u0000", "x".repeat(300)]],
    ["bytes", [new Uint8Array(0), new Uint8Array([0]), new Uint8Array(300).fill(255)]],
  ];
  for (const [codec, values] of cases) {
    const tree = createTree(heap, {
      key: "i32",
      value: codec,
      leafCapacity: 4,
      maxValueBytes: 512,
    });
    // Several times each, so that they spread over many leaves that split and merge.
    const n = values.length * 20;
    for (let i = 0; i < n; i++) tree.set(i, values[i % values.length]);
    for (let i = 0; i < n; i++) {
      const got = tree.get(i);
      const want = values[i % values.length];
      assert.ok(
        codec === "f64"
          ? Object.is(got, want)
          : codec === "bytes"
          ? compareBytes(got, want) === 0
          : got === want,
        `${codec} value ${show(want)} read back as ${show(got)}`,
      );
    }
    for (let i = 0; i < n; i += 3) tree.delete(i);
    for (let i = 1; i < n; i += 3) {
      const got = tree.get(i);
      const want = values[i % values.length];
      assert.ok(
        codec === "f64"
          ? Object.is(got, want)
          : codec === "bytes"
          ? compareBytes(got, want) === 0
          : got === want,
        `${codec} after merges: ${show(want)} read back as ${show(got)}`,
      );
    }
    checkTree(tree as never);
  }
  // bytes values are copies both ways.
  const bytes = BPlusTree.create<Uint8Array, Uint8Array>(heap, { key: "bytes", value: "bytes" });
  const input = new Uint8Array([1, 2, 3]);
  bytes.set(input, input);
  input[0] = 9;
  assert.deepEqual(bytes.get(new Uint8Array([1, 2, 3])), new Uint8Array([1, 2, 3]));
  const out = bytes.get(new Uint8Array([1, 2, 3]))!;
  out[1] = 0;
  assert.deepEqual(bytes.get(new Uint8Array([1, 2, 3])), new Uint8Array([1, 2, 3]));
  assert.equal(bytes.get(input), undefined);
});

// ---------------------------------------------------------------------------
// Bad input: refused before anything is written

function snapshot(tree: AnyTree): string {
  return JSON.stringify({
    size: tree.size,
    height: tree.height,
    entries: [...tree.entries()].map(([k, v]) => `${show(k)}=${show(v)}`),
  });
}

type BadCall = [string, (tree: AnyTree) => unknown, typeof TypeError | typeof RangeError];

function expectRefused(tree: AnyTree, cases: BadCall[]): void {
  for (const [what, call, errorClass] of cases) {
    const before = snapshot(tree);
    assert.throws(
      () => call(tree),
      (e: Error) => {
        assert.ok(
          e instanceof errorClass,
          `${what}: ${e.name} (${e.message}) is not a ${errorClass.name}`,
        );
        return true;
      },
      `${what} did not throw`,
    );
    assert.equal(snapshot(tree), before, `${what} changed the tree`);
  }
  checkTree(tree as never);
}

function filled(
  heap: SharedHeap,
  options: Record<string, unknown>,
  entries: [unknown, unknown][],
): AnyTree {
  const tree = createTree(heap, { leafCapacity: 4, ...options });
  for (const [k, v] of entries) tree.set(k, v);
  return tree;
}

/** Bad keys for every operation that takes a key. */
function keyCalls(
  label: string,
  key: unknown,
  errorClass: typeof TypeError | typeof RangeError,
  value: unknown,
): BadCall[] {
  return [
    [`set(${label})`, (t) => t.set(key, value), errorClass],
    [`insert(${label})`, (t) => t.insert(key, value), errorClass],
    [`getOrInsert(${label})`, (t) => t.getOrInsert(key, value), errorClass],
    [`update(${label})`, (t) => t.update(key, () => value), errorClass],
    [`get(${label})`, (t) => t.get(key), errorClass],
    [`has(${label})`, (t) => t.has(key), errorClass],
    [`delete(${label})`, (t) => t.delete(key), errorClass],
    // An undefined bound means no bound.
    ...(key === undefined ? [] : [
      [`range({ gte: ${label} })`, (t: AnyTree) => [...t.range({ gte: key })], errorClass],
      [`range({ lt: ${label} })`, (t: AnyTree) => [...t.range({ lt: key })], errorClass],
    ] as BadCall[]),
    [`cursor().seek(${label})`, (t) => {
      using c = t.cursor();
      return c.seek(key);
    }, errorClass],
    [`cursorMut().insert(${label})`, (t) => {
      using c = t.cursorMut();
      return c.insert(key, value);
    }, errorClass],
  ];
}

/** Bad values for every operation that takes a value. */
function valueCalls(
  label: string,
  key: unknown,
  value: unknown,
  errorClass: typeof TypeError | typeof RangeError,
): BadCall[] {
  return [
    [`set(k, ${label})`, (t) => t.set(key, value), errorClass],
    [`insert(new k, ${label})`, (t) => t.insert(key, value), errorClass],
    [`getOrInsert(new k, ${label})`, (t) => t.getOrInsert(key, value), errorClass],
    [`update(k, () => ${label})`, (t) => t.update(key, () => value), errorClass],
    [`cursorMut().insert(k, ${label})`, (t) => {
      using c = t.cursorMut();
      return c.insert(key, value);
    }, errorClass],
  ];
}

Deno.test("bad input: integer keys and values of the wrong type or out of range", () => {
  const heap = SharedHeap.create();
  const i32 = filled(
    heap,
    { key: "i32", value: "i32" },
    Array.from({ length: 30 }, (_, i) => [i, i]),
  );
  expectRefused(i32, [
    ...keyCalls('"1"', "1", TypeError, 1),
    ...keyCalls("1n", 1n, TypeError, 1),
    ...keyCalls("undefined", undefined, TypeError, 1),
    ...keyCalls("null", null, TypeError, 1),
    ...keyCalls("2^31", 2 ** 31, RangeError, 1),
    ...keyCalls("-2^31 - 1", -(2 ** 31) - 1, RangeError, 1),
    ...keyCalls("1.5", 1.5, RangeError, 1),
    ...keyCalls("NaN", NaN, RangeError, 1),
    ...keyCalls("Infinity", Infinity, RangeError, 1),
    ...valueCalls('"1"', 100, "1", TypeError),
    ...valueCalls("2^31", 100, 2 ** 31, RangeError),
    ...valueCalls("0.5", 100, 0.5, RangeError),
    ...valueCalls("null", 100, null, TypeError),
    ...valueCalls('"1" on a present key', 3, "1", TypeError),
  ]);
  const u32 = filled(heap, { key: "u32", value: "u32" }, [[0, 0], [U32_MAX, 1]]);
  expectRefused(u32, [
    ...keyCalls("-1", -1, RangeError, 0),
    ...keyCalls("2^32", 2 ** 32, RangeError, 0),
    ...valueCalls("-1", 5, -1, RangeError),
    ...valueCalls("2^32", 5, 2 ** 32, RangeError),
  ]);
});

Deno.test("bad input: f64 and bigint64 keys and values", () => {
  const heap = SharedHeap.create();
  const f64 = filled(heap, { key: "f64", value: "f64" }, [[0, NaN], [1.5, -0], [-Infinity, 1]]);
  expectRefused(f64, [
    ...keyCalls("NaN", NaN, RangeError, 1),
    ...keyCalls('"1"', "1", TypeError, 1),
    ...keyCalls("1n", 1n, TypeError, 1),
    ...valueCalls("1n", 2, 1n, TypeError),
    ...valueCalls('"x"', 2, "x", TypeError),
  ]);
  const big = filled(heap, { key: "bigint64", value: "bigint64" }, [[0n, 1n], [I64_MAX, I64_MIN]]);
  expectRefused(big, [
    ...keyCalls("1", 1, TypeError, 1n),
    ...keyCalls("2^63", 2n ** 63n, RangeError, 1n),
    ...keyCalls("-2^63 - 1", I64_MIN - 1n, RangeError, 1n),
    ...valueCalls("1", 5n, 1, TypeError),
    ...valueCalls("2^63", 5n, 2n ** 63n, RangeError),
  ]);
});

Deno.test("bad input: strings and bytes over maxKeyBytes / maxValueBytes, ill-formed or mistyped", () => {
  const heap = SharedHeap.create();
  const strings = filled(
    heap,
    { key: "string", value: "string", maxKeyBytes: 8, maxValueBytes: 8 },
    Array.from({ length: 20 }, (_, i) => [`k${i}`, `v${i}`]),
  );
  expectRefused(strings, [
    ...keyCalls("9 bytes", "123456789", RangeError, "v"),
    ...keyCalls("9 bytes of é", "éééé\u0301", RangeError, "v"),
    ...keyCalls("😀😀a", "😀😀a", RangeError, "v"),
    ...keyCalls("lone surrogate", "\uD800", TypeError, "v"),
    ...keyCalls("1", 1, TypeError, "v"),
    ...keyCalls("bytes", new Uint8Array(1), TypeError, "v"),
    ...valueCalls("9 bytes", "new", "123456789", RangeError),
    ...valueCalls("9 bytes on a present key", "k1", "123456789", RangeError),
    ...valueCalls("1", "new", 1, TypeError),
    ...valueCalls("lone surrogate", "new", "a\uDC00", TypeError),
  ]);
  // Exactly at the limit is fine.
  strings.set("12345678", "😀😀");
  assert.equal(strings.get("12345678"), "😀😀");
  const bytes = filled(
    heap,
    { key: "bytes", value: "bytes", maxKeyBytes: 4, maxValueBytes: 4 },
    [[new Uint8Array([1]), new Uint8Array([2])], [new Uint8Array([]), new Uint8Array([])]],
  );
  const u8 = new Uint8Array([1]);
  expectRefused(bytes, [
    ...keyCalls("Uint8Array(5)", new Uint8Array(5), RangeError, u8),
    ...keyCalls("[1, 2]", [1, 2], TypeError, u8),
    ...keyCalls('"x"', "x", TypeError, u8),
    ...keyCalls("Uint16Array(1)", new Uint16Array(1), TypeError, u8),
    ...valueCalls("Uint8Array(5)", new Uint8Array([9]), new Uint8Array(5), RangeError),
    ...valueCalls('"x"', new Uint8Array([9]), "x", TypeError),
  ]);
});

Deno.test("bad input: a throwing update function leaves the key as it was", () => {
  const heap = SharedHeap.create();
  const tree = BPlusTree.create(heap, { key: "i32", value: "i32", leafCapacity: 4 });
  for (let i = 0; i < 50; i++) tree.set(i, i);
  const boom = new Error("boom");
  assert.throws(() =>
    tree.update(7, () => {
      throw boom;
    }), (e) => e === boom);
  assert.throws(() =>
    tree.update(100, () => {
      throw boom;
    }), (e) => e === boom);
  assert.equal(tree.get(7), 7);
  assert.equal(tree.has(100), false);
  assert.equal(tree.size, 50);
  // And the leaf latch was released: writes to the same leaf go through.
  tree.set(7, 70);
  tree.set(100, 100);
  assert.equal(tree.get(7), 70);
  checkTree(tree);
});

Deno.test("bad input: string keys and values default to at most 256 bytes, as documented", () => {
  const tree = BPlusTree.create<string, string>(SharedHeap.create(), {
    key: "string",
    value: "string",
  });
  tree.set("k".repeat(256), "v".repeat(256));
  assert.equal(tree.get("k".repeat(256)), "v".repeat(256));
  assert.throws(() => tree.set("k".repeat(257), "v"), RangeError);
  assert.throws(() => tree.set("k", "v".repeat(257)), RangeError);
  assert.equal(tree.size, 1);
  // Attached elsewhere, the tree keeps the same limits.
  const attached = BPlusTree.attach<string, string>(tree.handle);
  assert.throws(() => attached.set("k".repeat(257), "v"), RangeError);
});

Deno.test("bad input: a call on the tree from inside update's fn throws, and the update writes nothing", () => {
  // A read from fn would overwrite the key that the update has staged (it
  // wrote the read's key, with fn's result, in place of its own), and a write
  // would wait for the leaf latch that the update holds.
  const heap = SharedHeap.create();
  const tree = BPlusTree.create<string, number>(heap, {
    key: "string",
    value: "i32",
    leafCapacity: 4,
  });
  for (let i = 0; i < 20; i++) tree.set(`k${i}`, i);
  const calls: [string, () => unknown][] = [
    ["get", () => tree.get("zz")],
    ["has", () => tree.has("k1")],
    ["set", () => tree.set("k2", 0)],
    ["insert", () => tree.insert("new", 0)],
    ["getOrInsert", () => tree.getOrInsert("new", 0)],
    ["delete", () => tree.delete("k3")],
    ["update", () => tree.update("k4", () => 0)],
    ["size", () => tree.size],
    ["first", () => tree.first()],
    ["range", () => [...tree.range({ gte: "k1" })]],
    ["iteration", () => [...tree]],
    ["destroy", () => tree.destroy()],
  ];
  for (const [what, call] of calls) {
    for (const key of ["k5", "absent"]) {
      assert.throws(
        () =>
          tree.update(key, (old) => {
            call();
            return (old ?? 0) + 100;
          }),
        (e) => e instanceof SabreError && /inside the fn of its own update/.test(e.message),
        `${what} from fn (update of ${key})`,
      );
    }
  }
  // Nothing was written, and the tree is usable again.
  assert.equal(tree.size, 20);
  assert.equal(tree.get("k5"), 5);
  assert.equal(tree.has("absent"), false);
  assert.equal(tree.has("zz"), false);
  assert.equal(tree.update("k5", (old) => (old ?? 0) + 1), 6);
  assert.deepEqual([...tree].map(([k]) => k), [...Array(20).keys()].map((i) => `k${i}`).sort());
  checkTree(tree);
});

// ---------------------------------------------------------------------------
// bulkLoad

Deno.test("bulkLoad: 100k sorted entries build a valid tree that then takes every operation", () => {
  const heap = SharedHeap.create({ maxBytes: 256 * MiB });
  for (
    const capacities of [{ leafCapacity: 4, innerCapacity: 4 }, {}, {
      leafCapacity: 7,
      innerCapacity: 5,
    }]
  ) {
    const tree = BPlusTree.create<number, number>(heap, {
      key: "i32",
      value: "i32",
      ...capacities,
    });
    const n = 100_000;
    tree.bulkLoad((function* () {
      for (let i = 0; i < n; i++) yield [i * 2, i] as [number, number];
    })());
    assert.equal(tree.size, n);
    const shape = checkTree(tree);
    assert.equal(shape.size, n);
    assert.equal(shape.height, tree.height);
    for (let i = 0; i < n; i += 97) assert.equal(tree.get(i * 2), i);
    assert.deepEqual(tree.first(), [0, 0]);
    assert.deepEqual(tree.last(), [(n - 1) * 2, n - 1]);
    // The loaded nodes split and merge like any others.
    for (let i = 0; i < 3000; i++) tree.set(i * 2 + 1, -i);
    for (let i = 0; i < n; i += 2) tree.delete(i * 2);
    checkTree(tree);
    assert.equal(tree.size, n / 2 + 3000);
  }
  // Small counts: 0, 1, one full leaf, one past it.
  for (const n of [0, 1, 4, 5, 17]) {
    const tree = BPlusTree.create(heap, {
      key: "i32",
      value: "i32",
      leafCapacity: 4,
      innerCapacity: 4,
    });
    tree.bulkLoad(Array.from({ length: n }, (_, i) => [i, i] as [number, number]));
    assert.equal(tree.size, n);
    assert.deepEqual([...tree.keys()], Array.from({ length: n }, (_, i) => i));
    checkTree(tree);
  }
});

Deno.test("bulkLoad: unsorted, duplicate or -0/+0 keys throw RangeError and write nothing; a non-empty tree throws Error", () => {
  const heap = SharedHeap.create();
  const tree = BPlusTree.create(heap, { key: "f64", value: "i32", leafCapacity: 4 });
  const liveBefore = heap.stats().liveBlocks;
  for (
    const entries of [
      [[1, 1], [3, 3], [2, 2]],
      [[1, 1], [1, 2]],
      [[-0, 1], [0, 2]],
      Array.from({ length: 1000 }, (_, i) => [i === 900 ? 5 : i, i]),
    ] as [number, number][][]
  ) {
    assert.throws(() => tree.bulkLoad(entries), RangeError);
    assert.equal(tree.size, 0);
    assert.deepEqual([...tree], []);
    checkTree(tree);
  }
  assert.throws(() => tree.bulkLoad([[1, 1], [NaN, 2]]), RangeError);
  assert.throws(() => tree.bulkLoad([[1, 1], ["2" as unknown as number, 2]]), TypeError);
  assert.throws(() => tree.bulkLoad([[1, 1], [2, "x" as unknown as number]]), TypeError);
  assert.equal(tree.size, 0);
  assert.deepEqual([...tree], []);
  assert.ok(heap.stats().liveBlocks <= liveBefore + 2, "a refused bulkLoad kept memory");
  // Still empty and usable: a valid load goes through.
  tree.bulkLoad([[-1, 1], [-0, 0], [1, 1]]);
  assert.deepEqual([...tree.keys()], [-1, 0, 1]);
  assert.throws(
    () => tree.bulkLoad([[5, 5]]),
    (e: Error) => e instanceof Error && !(e instanceof RangeError) && !(e instanceof TypeError),
  );
  assert.equal(tree.size, 3);
  const other = BPlusTree.create(heap, { key: "i32", value: "i32" });
  other.set(1, 1);
  assert.throws(() => other.bulkLoad([[2, 2]]), Error);
  assert.deepEqual([...other], [[1, 1]]);
  checkTree(tree);
});

Deno.test("bulkLoad: string keys in code point order (not JS order) are accepted", () => {
  const heap = SharedHeap.create();
  const tree = BPlusTree.create(heap, { key: "string", value: "i32", leafCapacity: 4 });
  const keys = ["", "a", "\uFFFF", "😀", "😀a"];
  tree.bulkLoad(keys.map((k, i) => [k, i] as [string, number]));
  assert.deepEqual([...tree.keys()], keys);
  const bad = BPlusTree.create(heap, { key: "string", value: "i32" });
  assert.throws(() => bad.bulkLoad([["😀", 0], ["\uFFFF", 1]]), RangeError);
  assert.equal(bad.size, 0);
});

// ---------------------------------------------------------------------------
// Heap exhaustion

Deno.test("exhaustion: a tree whose writes rewrite large leaves fits a heap many times its data", () => {
  // Each set copies its whole leaf (up to 128 entries of 100-byte values,
  // about 14 KiB), and retires the old copy. 3,000 sets hold about 330 KiB
  // of data; the retired copies and the pages of the leaves' many size
  // classes once filled the 2 MiB heap after 104 sets.
  const heap = SharedHeap.create({ initialBytes: MiB, maxBytes: 2 * MiB });
  const tree = BPlusTree.create<number, string>(heap, { key: "i32", value: "string" });
  for (let k = 0; k < 3000; k++) tree.set(k, "x".repeat(100));
  assert.equal(tree.size, 3000);
  assert.equal(tree.get(2999), "x".repeat(100));
  checkTree(tree);
});

Deno.test("exhaustion: a full heap fails writes with HeapExhaustedError; the tree stays whole and usable", () => {
  const heap = SharedHeap.create({ initialBytes: MiB, maxBytes: MiB });
  const ballast = Array.from({ length: 2 }, () => heap.allocate(60_000));
  const tree = BPlusTree.create<number, string>(heap, {
    key: "u32",
    value: "string",
    leafCapacity: 8,
    innerCapacity: 4,
  });
  const model = new SortedModel<number, string>(compareNumbers);
  const value = (k: number) => `value ${k} `.padEnd(60, ".");
  let failures = 0;
  let k = 0;
  for (; failures < 20; k++) {
    const key = (k * 2654435761) % 1_000_003;
    try {
      tree.set(key, value(k));
      model.set(key, value(k));
    } catch (e) {
      assert.ok(e instanceof HeapExhaustedError, `set threw ${e}`);
      assert.equal(tree.get(key), model.get(key), "a failed set left its key changed");
      // Checked at once, before any further write: a latch left held would
      // make the next write to that node wait forever.
      assertSame(
        tree as unknown as AnyTree,
        model as unknown as SortedModel,
        `after failure ${failures}`,
        false,
      );
      failures++;
    }
  }
  assert.ok(model.size > 200, `only ${model.size} keys fit`);
  assertSame(
    tree as unknown as AnyTree,
    model as unknown as SortedModel,
    "after failed inserts",
    false,
  );
  // Other writes fail the same way or succeed; reads and deletes work.
  for (let i = 0; i < 200; i++) {
    const key = model.keys[(i * 37) % model.size];
    for (
      const op of [
        () => tree.set(key, "x".repeat(50)),
        () => tree.update(key, (v) => `${v}!`),
        () => tree.getOrInsert(key + 1, "new"),
        () => tree.insert(key + 2, "new"),
      ]
    ) {
      try {
        op();
      } catch (e) {
        assert.ok(e instanceof HeapExhaustedError, String(e));
        checkTree(tree, { strictFill: false });
      }
    }
    for (const kk of [key, key + 1, key + 2]) {
      const got = tree.get(kk);
      if (got === undefined) model.delete(kk);
      else model.set(kk, got);
    }
  }
  assertSame(
    tree as unknown as AnyTree,
    model as unknown as SortedModel,
    "after mixed failed writes",
    false,
  );
  // Delete half: deletes need memory too (copy-on-write leaves) and may fail
  // cleanly. A full heap postpones merges (by design), so fill factors are
  // not checked in this test.
  for (let i = 0; i < model.keys.length; i += 2) {
    const key = model.keys[i];
    try {
      assert.equal(tree.delete(key), model.get(key));
    } catch (e) {
      assert.ok(e instanceof HeapExhaustedError, String(e));
      assert.equal(tree.get(key), model.get(key));
      checkTree(tree, { strictFill: false });
    }
  }
  const m2 = new SortedModel<number, string>(compareNumbers);
  for (const [kk, v] of tree) m2.set(kk, v);
  for (let i = 0; i < model.keys.length; i++) {
    if (i % 2 === 1) {
      assert.equal(m2.get(model.keys[i]), model.values[i], `kept key ${model.keys[i]}`);
    }
  }
  assertSame(tree as unknown as AnyTree, m2 as unknown as SortedModel, "after deletes", false);
  // Free memory: writes work again.
  for (const block of ballast) heap.free(block);
  for (let i = 0; i < 5; i++) heap.collect();
  for (let j = 0; j < 300; j++) {
    tree.set(2_000_000 + j, value(j));
    m2.set(2_000_000 + j, value(j));
  }
  assertSame(
    tree as unknown as AnyTree,
    m2 as unknown as SortedModel,
    "after freeing memory",
    false,
  );
});

Deno.test("exhaustion: a tree that filled the heap can delete every key", () => {
  // Each delete copies its leaf a little smaller (about 10 to 16 KiB here),
  // often into a size class that has no page left. Such deletes once failed
  // from the 15th on, and a second pass after collecting deleted none.
  const heap = SharedHeap.create({ initialBytes: 2 * MiB, maxBytes: 2 * MiB });
  const tree = BPlusTree.create<number, string>(heap, { key: "i32", value: "string" });
  const value = "x".repeat(200);
  let count = 0;
  try {
    for (;; count++) tree.set(count, value);
  } catch (e) {
    assert.ok(e instanceof HeapExhaustedError, String(e));
  }
  assert.ok(count > 1000, `only ${count} keys fit`);
  for (let k = 0; k < count; k++) assert.equal(tree.delete(k), value, `delete ${k}`);
  assert.equal(tree.size, 0);
  checkTree(tree);
  for (let i = 0; i < 3; i++) heap.collect();
  // The room came back: the tree fills again.
  for (let k = 0; k < count / 2; k++) tree.set(k, value);
  assert.equal(tree.size, Math.floor((count + 1) / 2));
});

Deno.test("exhaustion: bulkLoad that runs out of memory throws HeapExhaustedError and leaves a valid tree", () => {
  const heap = SharedHeap.create({ initialBytes: MiB, maxBytes: MiB });
  const tree = BPlusTree.create(heap, { key: "i32", value: "string", leafCapacity: 16 });
  assert.throws(
    () =>
      tree.bulkLoad(
        Array.from({ length: 50_000 }, (_, i) => [i, "v".repeat(40)] as [number, string]),
      ),
    HeapExhaustedError,
  );
  const shape = checkTree(tree);
  assert.equal(shape.size, tree.size);
  let n = 0;
  for (const [k, v] of tree) {
    assert.equal(k, n++);
    assert.equal(v, "v".repeat(40));
  }
  // Whatever it kept, it can be emptied and reused.
  while (tree.popFirst() !== undefined);
  assert.equal(tree.size, 0);
  checkTree(tree);
  for (let i = 0; i < 100; i++) tree.set(i, "again");
  assert.equal(tree.size, 100);
});

// ---------------------------------------------------------------------------
// Differential fuzz against a sorted model

/** Order-preserving maps from integers (within ±2^30) to keys of each codec, and back. */
const KEY_MAPS: Record<CodecName, { enc: (i: number) => unknown; dec: (k: unknown) => number }> = {
  i32: { enc: (i) => i, dec: (k) => k as number },
  u32: { enc: (i) => i + 2 ** 31, dec: (k) => (k as number) - 2 ** 31 },
  f64: { enc: (i) => i * 0.25 - 0.125, dec: (k) => ((k as number) + 0.125) * 4 },
  bigint64: { enc: (i) => BigInt(i) << 32n, dec: (k) => Number((k as bigint) >> 32n) },
  string: {
    // A shared prefix, then fixed-width base-36 digits: string order = numeric order.
    enc: (i) => "shared prefix 😀 ".repeat(3) + (i + 2 ** 30).toString(36).padStart(7, "0"),
    dec: (k) => parseInt((k as string).slice(-7), 36) - 2 ** 30,
  },
  bytes: {
    enc: (i) => {
      const out = new Uint8Array(24).fill(0xab);
      new DataView(out.buffer).setUint32(20, i + 2 ** 30);
      return out;
    },
    dec: (k) => {
      const b = k as Uint8Array;
      return new DataView(b.buffer, b.byteOffset, b.byteLength).getUint32(20) - 2 ** 30;
    },
  },
};

/** The tree seen through integer keys: every key goes through the codec's map. */
function integerView(tree: BPlusTree<unknown, number>, codec: CodecName) {
  const { enc, dec } = KEY_MAPS[codec];
  const entry = (e: [unknown, number] | undefined): [number, number] | undefined =>
    e === undefined ? undefined : [dec(e[0]), e[1]];
  const bound = (b: number | undefined) => (b === undefined ? undefined : enc(b));
  return {
    get size() {
      return tree.size;
    },
    get height() {
      return tree.height;
    },
    set: (k: number, v: number) => tree.set(enc(k), v),
    insert: (k: number, v: number) => tree.insert(enc(k), v),
    getOrInsert: (k: number, v: number) => tree.getOrInsert(enc(k), v),
    update: (k: number, fn: (old: number | undefined) => number | undefined) =>
      tree.update(enc(k), fn),
    delete: (k: number) => tree.delete(enc(k)),
    get: (k: number) => tree.get(enc(k)),
    has: (k: number) => tree.has(enc(k)),
    first: () => entry(tree.first()),
    last: () => entry(tree.last()),
    popFirst: () => entry(tree.popFirst()),
    popLast: () => entry(tree.popLast()),
    range: (o: RangeOptions<number>) =>
      [
        ...tree.range({
          gte: bound(o.gte),
          gt: bound(o.gt),
          lte: bound(o.lte),
          lt: bound(o.lt),
          reverse: o.reverse,
          limit: o.limit,
        }),
      ].map((e) => entry(e)!),
    keys: () => [...tree.keys()].map(dec),
    entries: () => [...tree.entries()].map((e) => entry(e)!),
    [Symbol.iterator]: () => [...tree.entries()].map((e) => entry(e)!)[Symbol.iterator](),
  };
}

interface FuzzParams {
  /** Key codec; keys are integers mapped to it by an order-preserving map. */
  readonly codec?: CodecName;
  readonly seed: number;
  readonly leafCapacity: number;
  readonly innerCapacity: number;
  /** Keys are drawn from 0 .. keySpace - 1 (times a spread factor). */
  readonly keySpace: number;
  readonly ops: number;
}

/**
 * Runs `ops` random operations on an i32 → i32 tree and the model, checking
 * every result; phases alternate between growth (mostly inserts, some in
 * increasing or decreasing runs) and shrinking (mostly deletes and pops), so
 * the tree grows and shrinks its root many times. Ends by draining the tree
 * to empty. Throws with the op number and the op on the first mismatch.
 */
function fuzzRun(p: FuzzParams): void {
  const random = seededRandom(p.seed);
  const int = (n: number) => Math.floor(random() * n);
  const heap = SharedHeap.create({ maxBytes: 256 * MiB });
  const codecName = p.codec ?? "i32";
  const real = createTree(heap, {
    key: codecName,
    value: "i32",
    maxKeyBytes: 128,
    leafCapacity: p.leafCapacity,
    innerCapacity: p.innerCapacity,
  }) as BPlusTree<unknown, number>;
  const tree = integerView(real, codecName);
  const model = new SortedModel<number, number>(compareNumbers);
  // Spread keys out (negative ones too) so that gaps exist for gt/lt bounds.
  const keyOf = (i: number) => (i - (p.keySpace >> 2)) * 3;
  let op = 0;
  let what = "";
  const fail = (message: string): never => {
    throw new Error(
      `op #${op} ${what}: ${message} (${codecName} keys, seed ${p.seed}, leafCapacity ${p.leafCapacity}, ` +
        `innerCapacity ${p.innerCapacity}, keySpace ${p.keySpace}, size ${model.size})`,
    );
  };
  const eq = (got: unknown, want: unknown) => {
    try {
      assert.deepEqual(got, want);
    } catch {
      fail(`returned ${show(got)}, expected ${show(want)}`);
    }
  };
  let run = 0; // remaining ops of an increasing (>0) or decreasing (<0) run
  let runKey = 0;
  let maxHeight = 1;
  let check = 0;
  for (op = 0; op < p.ops; op++) {
    const growing = Math.floor(op / 5000) % 2 === 0;
    let k: number;
    if (run !== 0) {
      runKey += run > 0 ? 1 : -1;
      run += run > 0 ? -1 : 1;
      k = keyOf(((runKey % p.keySpace) + p.keySpace) % p.keySpace);
    } else {
      if (random() < 0.002) {
        run = (random() < 0.5 ? 1 : -1) * (20 + int(200));
        runKey = int(p.keySpace);
      }
      k = keyOf(int(p.keySpace));
      if (random() < 0.05) k += 1; // a key never stored: between the others
    }
    const v = op | 0;
    const r = random();
    const writeBias = growing ? 0.55 : 0.2;
    if (r < writeBias) {
      const which = int(4);
      if (which === 0) {
        what = `set(${k}, ${v})`;
        eq(tree.set(k, v), model.set(k, v));
      } else if (which === 1) {
        what = `insert(${k}, ${v})`;
        const had = model.has(k);
        eq(tree.insert(k, v), !had);
        if (!had) model.set(k, v);
      } else if (which === 2) {
        what = `getOrInsert(${k}, ${v})`;
        const had = model.get(k);
        eq(tree.getOrInsert(k, v), had ?? v);
        if (had === undefined) model.set(k, v);
      } else {
        what = `update(${k}, +1 or insert)`;
        const old = model.get(k);
        let seen: unknown = "not called";
        const result = tree.update(k, (o) => {
          seen = o;
          return o === undefined ? v : (o + 1) | 0;
        });
        eq(seen, old);
        const next = old === undefined ? v : (old + 1) | 0;
        eq(result, next);
        model.set(k, next);
      }
    } else if (r < (growing ? 0.75 : 0.75)) {
      const which = int(growing ? 3 : 5);
      if (which === 0) {
        what = `delete(${k})`;
        eq(tree.delete(k), model.delete(k));
      } else if (which === 1) {
        what = `update(${k}, delete)`;
        const old = model.get(k);
        eq(tree.update(k, () => undefined), undefined);
        if (old !== undefined) model.delete(k);
      } else if (which === 2) {
        what = `update(${k}, keep or delete)`;
        const old = model.get(k);
        const next = old !== undefined && old % 2 === 0 ? old : undefined;
        eq(tree.update(k, (o) => (o !== undefined && o % 2 === 0 ? o : undefined)), next);
        if (next === undefined) model.delete(k);
      } else if (which === 3) {
        what = "popFirst()";
        const want = model.entry(0);
        if (want) model.delete(want[0]);
        eq(tree.popFirst(), want);
      } else {
        what = "popLast()";
        const want = model.entry(model.size - 1);
        if (want) model.delete(want[0]);
        eq(tree.popLast(), want);
      }
    } else if (r < 0.9) {
      const which = int(4);
      if (which === 0) {
        what = `get(${k})`;
        eq(tree.get(k), model.get(k));
      } else if (which === 1) {
        what = `has(${k})`;
        eq(tree.has(k), model.has(k));
      } else if (which === 2) {
        what = "first()";
        eq(tree.first(), model.entry(0));
      } else {
        what = "last()";
        eq(tree.last(), model.entry(model.size - 1));
      }
    } else {
      // A range with random bounds, direction and a small limit.
      const options: RangeOptions<number> = {};
      const a = keyOf(int(p.keySpace)) + int(3) - 1;
      const b = keyOf(int(p.keySpace)) + int(3) - 1;
      const lo = Math.min(a, b);
      const hi = Math.max(a, b);
      const lk = int(3);
      const hk = int(3);
      if (lk === 1) options.gte = lo;
      else if (lk === 2) options.gt = lo;
      if (hk === 1) options.lte = hi;
      else if (hk === 2) options.lt = hi;
      if (random() < 0.5) options.reverse = true;
      options.limit = int(3) === 0 ? int(4) : 1 + int(40);
      what = `range(${JSON.stringify(options)})`;
      eq([...tree.range(options)], model.range(options));
    }
    if (tree.size !== model.size) fail(`size ${tree.size}, expected ${model.size}`);
    maxHeight = Math.max(maxHeight, tree.height);
    if (++check === 7919) {
      check = 0;
      what = "checkTree";
      let shape;
      try {
        shape = checkTree(real);
      } catch (e) {
        fail(`checkTree: ${(e as Error).message}`);
      }
      if (shape!.size !== model.size) fail(`checkTree size ${shape!.size}`);
      if (shape!.height !== tree.height) {
        fail(`checkTree height ${shape!.height}, tree.height ${tree.height}`);
      }
      what = "entries()";
      eq([...tree.keys()], model.keys);
    }
  }
  what = "checkTree before draining";
  try {
    checkTree(real);
  } catch (e) {
    fail(`checkTree: ${(e as Error).message}`);
  }
  eq([...tree.entries()], model.keys.map((key, i) => [key, model.values[i]]));
  // Drain: random deletes of present keys, then pops.
  const left = [...model.keys];
  for (let i = left.length - 1; i > 0; i--) {
    const j = int(i + 1);
    [left[i], left[j]] = [left[j], left[i]];
  }
  for (let i = 0; i < left.length; i++) {
    op++;
    const key = left[i];
    if (i % 10 === 9) {
      what = "popLast() while draining";
      const want = model.entry(model.size - 1);
      if (want) model.delete(want[0]);
      eq(tree.popLast(), want);
    }
    if (model.has(key)) {
      what = `delete(${key}) while draining`;
      eq(tree.delete(key), model.delete(key));
    }
    if (i % 1999 === 0) {
      try {
        checkTree(real);
      } catch (e) {
        fail(`checkTree while draining: ${(e as Error).message}`);
      }
    }
  }
  what = "after draining";
  eq(tree.size, 0);
  eq(tree.first(), undefined);
  eq([...tree], []);
  eq(tree.height, 1);
  const shape = checkTree(real);
  eq([shape.size, shape.height, shape.leaves, shape.innerNodes], [0, 1, 1, 0]);
  if (p.keySpace >= 2048 && maxHeight < 4) fail(`the tree only reached height ${maxHeight}`);
}

Deno.test(`fuzz: ${6 * STRESS} runs of 100k random operations on capacities 4-8 match a sorted model, then drain to empty`, () => {
  fc.assert(
    fc.property(
      fc.record({
        seed: fc.integer({ min: 0, max: 0x7fffffff }),
        leafCapacity: fc.integer({ min: 4, max: 8 }),
        innerCapacity: fc.integer({ min: 4, max: 8 }),
        keySpace: fc.constantFrom(300, 3000, 20_000),
        ops: fc.constant(100_000),
      }),
      (params) => fuzzRun(params),
    ),
    { numRuns: 6 * STRESS, endOnFailure: true },
  );
});

Deno.test("fuzz: 100k random operations for each of the other key codecs (two-word, unsigned, variable-size keys)", () => {
  for (const codec of ["u32", "f64", "bigint64", "string", "bytes"] as const) {
    fc.assert(
      fc.property(
        fc.record({
          codec: fc.constant(codec),
          seed: fc.integer({ min: 0, max: 0x7fffffff }),
          leafCapacity: fc.integer({ min: 4, max: 8 }),
          innerCapacity: fc.integer({ min: 4, max: 8 }),
          keySpace: fc.constant(3000),
          ops: fc.constant(100_000),
        }),
        (params) => fuzzRun(params),
      ),
      { numRuns: STRESS, endOnFailure: true },
    );
  }
});

/** A shrinkable form: short explicit op lists (fast-check finds the smallest failing list). */
type SmallOp =
  | { t: "set" | "insert" | "getOrInsert"; k: number; v: number }
  | { t: "delete" | "get" | "updateInc" | "updateDel"; k: number }
  | { t: "popFirst" | "popLast" | "first" | "last" }
  | { t: "range"; lo: number; hi: number; kinds: number; reverse: boolean; limit: number };

const smallKey = fc.integer({ min: -40, max: 40 });
const smallOp: fc.Arbitrary<SmallOp> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      t: fc.constantFrom("set", "insert", "getOrInsert" as const),
      k: smallKey,
      v: fc.integer(),
    }),
  },
  {
    weight: 4,
    arbitrary: fc.record({
      t: fc.constantFrom("delete", "get", "updateInc", "updateDel" as const),
      k: smallKey,
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ t: fc.constantFrom("popFirst", "popLast", "first", "last" as const) }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      t: fc.constant("range" as const),
      lo: smallKey,
      hi: smallKey,
      kinds: fc.nat(8),
      reverse: fc.boolean(),
      limit: fc.integer({ min: -1, max: 10 }),
    }),
  },
);

Deno.test("fuzz: short shrinkable operation lists on capacity 4 trees match the model", () => {
  fc.assert(
    fc.property(
      fc.array(smallOp, { maxLength: 300, size: "max" }),
      fc.integer({ min: 4, max: 6 }),
      (ops, capacity) => {
        const heap = SharedHeap.create();
        const tree = BPlusTree.create<number, number>(heap, {
          key: "i32",
          value: "i32",
          leafCapacity: capacity,
          innerCapacity: 4,
        });
        const model = new SortedModel<number, number>(compareNumbers);
        for (const o of ops) {
          switch (o.t) {
            case "set":
              assert.equal(tree.set(o.k, o.v), model.set(o.k, o.v));
              break;
            case "insert":
              assert.equal(tree.insert(o.k, o.v), !model.has(o.k));
              if (!model.has(o.k)) model.set(o.k, o.v);
              break;
            case "getOrInsert": {
              const had = model.get(o.k);
              assert.equal(tree.getOrInsert(o.k, o.v), had ?? o.v);
              if (had === undefined) model.set(o.k, o.v);
              break;
            }
            case "delete":
              assert.equal(tree.delete(o.k), model.delete(o.k));
              break;
            case "get":
              assert.equal(tree.get(o.k), model.get(o.k));
              break;
            case "updateInc": {
              const next = ((model.get(o.k) ?? 0) + 1) | 0;
              assert.equal(tree.update(o.k, (v) => ((v ?? 0) + 1) | 0), next);
              model.set(o.k, next);
              break;
            }
            case "updateDel":
              assert.equal(tree.update(o.k, () => undefined), undefined);
              model.delete(o.k);
              break;
            case "popFirst":
            case "popLast": {
              const want = model.entry(o.t === "popFirst" ? 0 : model.size - 1);
              if (want) model.delete(want[0]);
              assert.deepEqual(tree[o.t](), want);
              break;
            }
            case "first":
            case "last":
              assert.deepEqual(tree[o.t](), model.entry(o.t === "first" ? 0 : model.size - 1));
              break;
            case "range": {
              const options: RangeOptions<number> = { reverse: o.reverse };
              const lk = o.kinds % 3;
              const hk = Math.floor(o.kinds / 3);
              if (lk === 1) options.gte = o.lo;
              if (lk === 2) options.gt = o.lo;
              if (hk === 1) options.lte = o.hi;
              if (hk === 2) options.lt = o.hi;
              if (o.limit >= 0) options.limit = o.limit;
              assert.deepEqual([...tree.range(options)], model.range(options));
              break;
            }
          }
          assert.equal(tree.size, model.size);
        }
        const shape = checkTree(tree);
        assert.equal(shape.size, model.size);
        assert.deepEqual([...tree.keys()], model.keys);
      },
    ),
    { numRuns: 150 * STRESS },
  );
});

Deno.test("fuzz: string and bytes keys with shared prefixes against the model", () => {
  for (const codec of ["string", "bytes"] as const) {
    const compare = comparatorOf(codec);
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            del: fc.boolean(),
            prefix: fc.nat(4),
            tail: codec === "string"
              ? fc.string({
                unit: fc.constantFrom("a", "b", "é", "\uFFFF", "😀", "\u0000"),
                maxLength: 5,
              })
              : fc.uint8Array({ maxLength: 5 }),
          }),
          { maxLength: 400, size: "max" },
        ),
        (ops) => {
          const heap = SharedHeap.create();
          const tree = createTree(heap, {
            key: codec,
            value: "i32",
            maxKeyBytes: 200,
            leafCapacity: 4,
            innerCapacity: 4,
          });
          const model = new SortedModel(compare);
          const prefixes = codec === "string"
            ? ["", "x".repeat(150), "x".repeat(149) + "y", "😀".repeat(30), "x".repeat(75)]
            : [
              new Uint8Array(0),
              new Uint8Array(150),
              new Uint8Array(149).fill(1),
              new Uint8Array(1).fill(255),
              new Uint8Array(75),
            ];
          let i = 0;
          for (const o of ops) {
            const key = codec === "string"
              ? (prefixes[o.prefix] as string) + (o.tail as string)
              : new Uint8Array([...(prefixes[o.prefix] as Uint8Array), ...(o.tail as Uint8Array)]);
            if (o.del) assert.deepEqual(tree.delete(key), model.delete(key));
            else assert.deepEqual(tree.set(key, i), model.set(key, i));
            i++;
          }
          checkTree(tree as never);
          assert.deepEqual([...tree.entries()], model.keys.map((k, j) => [k, model.values[j]]));
        },
      ),
      { numRuns: 40 * STRESS },
    );
  }
});

// ---------------------------------------------------------------------------
// Merges skipped under contention

/** Every node below the root, found by walking the tree; call it with no other writer. */
function nodesBelowRoot(tree: AnyTree): number[] {
  const heap = tree.heap, internals = treeInternals(tree);
  const found: number[] = [];
  const visit = (node: number, isRoot: boolean) => {
    if (!isRoot) found.push(node);
    const w = Atomics.load(heap.i32, (node >> 2) + N_CONTENT) >> 2;
    if (isLeaf(heap.i32, w)) return;
    const n = countOf(heap.i32, w);
    for (let i = 0; i <= n; i++) visit(heap.i32[internals.format.childWord(w, n, i)], false);
  };
  visit(internals.root(), true);
  return found;
}

for (const order of ["ascending", "descending", "shuffled"] as const) {
  Deno.test(`merges skipped under contention leave no debris: afterwards, draining the tree (${order}) returns it to one leaf`, () => {
    for (let seed = 1; seed <= 12 * STRESS; seed++) {
      const random = seededRandom(seed);
      const heap = SharedHeap.create();
      const tree = createTree(heap, {
        key: "i32",
        value: "i32",
        leafCapacity: 4,
        innerCapacity: 4,
      });
      const keys = 300 + Math.floor(random() * 600);
      for (let k = 0; k < keys; k++) tree.set(k, k);
      const present = new Set<number>(Array.from({ length: keys }, (_, k) => k));
      // Delete most keys while a random quarter of the nodes is latched, as
      // other writers would hold them: a delete whose path is latched times
      // out having changed nothing, and a merge that needs a latched
      // sibling is skipped, leaving empty leaves and one-child inner nodes.
      tree.writeTimeoutMs = 0;
      const i32 = heap.i32;
      for (let step = 0; step < 8 * keys && present.size > keys / 10; step++) {
        const held = nodesBelowRoot(tree).filter(() => random() < 0.25);
        for (const node of held) assert.ok(LatchWords.tryLock(i32, (node >> 2) + N_VERSION));
        const k = Math.floor(random() * keys);
        try {
          assert.equal(tree.delete(k), present.has(k) ? k : undefined);
          present.delete(k);
        } catch (e) {
          if (!(e instanceof TimeoutError)) throw e;
        }
        for (const node of held) LatchWords.unlock(i32, (node >> 2) + N_VERSION);
      }
      const where = `seed ${seed}, ${keys} keys`;
      const shape = checkTree(tree as never, { strictFill: false });
      assert.equal(shape.size, present.size, where);
      tree.writeTimeoutMs = Infinity;
      const rest = [...present].sort((a, b) => a - b);
      if (order === "descending") rest.reverse();
      if (order === "shuffled") {
        for (let i = rest.length - 1; i > 0; i--) {
          const j = Math.floor(random() * (i + 1));
          [rest[i], rest[j]] = [rest[j], rest[i]];
        }
      }
      for (const k of rest) assert.equal(tree.delete(k), k, where);
      assert.equal(tree.height, 1, `${where}: height after draining from height ${shape.height}`);
      checkTree(tree as never);
    }
  });
}

// ---------------------------------------------------------------------------
// destroy

const DESTROY_SPECS: readonly DestroySample[] = [
  ...DESTROY_SAMPLES,
  {
    name: "bigint64 -> u32",
    options: { key: "bigint64", value: "u32" },
    key: (i) => BigInt(i) * -7n,
    value: (i) => i,
  },
];

for (const spec of DESTROY_SPECS) {
  Deno.test(`destroy: ${spec.name} gives back every node and content, after inserts, overwrites, deletes, pops and a bulk load`, () => {
    for (
      const [shape, count] of [["a root leaf", 3], ["three levels", 600], ["emptied", 600]] as const
    ) {
      const heap = SharedHeap.create();
      const before = settledUse(heap);
      const tree = createTree(heap, { ...spec.options, leafCapacity: 4, innerCapacity: 4 });
      for (let i = 0; i < count; i++) tree.set(spec.key(i), spec.value(i));
      for (let i = 0; i < count; i += 3) tree.set(spec.key(i), spec.value(i + 1));
      if (shape === "emptied") {
        for (let i = 0; i < count; i++) tree.delete(spec.key(i));
        assert.equal(tree.size, 0);
      } else {
        for (let i = 1; i < count; i += 5) tree.delete(spec.key(i));
        tree.popFirst();
        tree.popLast();
      }
      checkTree(tree);
      assert.ok(settledUse(heap).blocks > before.blocks, shape);
      tree.destroy();
      assert.deepEqual(settledUse(heap), before, `${shape}: a block was kept or given twice`);
    }
    // A bulk-loaded tree: its nodes were built level by level.
    const heap = SharedHeap.create();
    const before = settledUse(heap);
    const tree = createTree(heap, { ...spec.options, leafCapacity: 8, innerCapacity: 4 });
    const entries = Array.from({ length: 500 }, (_, i) => [spec.key(i), spec.value(i)] as const);
    const compare = comparatorOf(spec.options.key);
    entries.sort((a, b) => compare(a[0], b[0]));
    tree.bulkLoad(entries);
    assert.ok(tree.height >= 3);
    tree.destroy();
    assert.deepEqual(settledUse(heap), before, "bulk load");
  });
}

Deno.test("destroy: every later call throws SabreError, a second destroy and attach are refused, a tree that reuses the blocks is untouched", () => {
  const heap = SharedHeap.create();
  const kept = BPlusTree.create<string, number>(heap, { key: "string", value: "i32" });
  const tree = BPlusTree.create<string, number>(heap, {
    key: "string",
    value: "i32",
    leafCapacity: 4,
  });
  for (let i = 0; i < 200; i++) {
    kept.set(`k${i}`, i);
    tree.set(`k${i}`, -i);
  }
  const handle = tree.handle;
  const twin = BPlusTree.attach<string, number>(handle);
  const cursor = tree.cursor();
  cursor.seek("k1");
  assert.deepEqual(cursor.next(), ["k1", -1]);
  tree.destroy();
  assert.throws(
    () => twin.destroy(),
    (e) => e instanceof SabreError && /destroyed already/.test(e.message),
  );
  assert.throws(() => BPlusTree.attach(handle), HandleError);
  for (let i = 0; i < 4; i++) heap.collect();
  // The blocks go back to the heap, and a new tree may be given them.
  const other = BPlusTree.create<string, number>(heap, { key: "string", value: "i32" });
  for (let i = 0; i < 300; i++) other.set(`k${i}`, i * 2);
  const calls: [string, () => unknown][] = [
    ["get", () => tree.get("k1")],
    ["has", () => tree.has("k1")],
    ["first", () => tree.first()],
    ["last", () => tree.last()],
    ["size", () => tree.size],
    ["height", () => tree.height],
    ["set", () => tree.set("k1", 1)],
    ["insert", () => tree.insert("new", 1)],
    ["getOrInsert", () => tree.getOrInsert("k1", 1)],
    ["delete", () => tree.delete("k1")],
    ["update", () => tree.update("k1", () => 1)],
    ["popFirst", () => tree.popFirst()],
    ["popLast", () => tree.popLast()],
    ["range", () => [...tree.range({ gte: "k" })]],
    ["scan", () => tree.scan({}, () => {})],
    ["keys", () => [...tree.keys()]],
    ["values", () => [...tree.values()]],
    ["entries", () => [...tree.entries()]],
    ["iterator", () => [...tree]],
    ["bulkLoad", () => tree.bulkLoad([["a", 1]])],
    ["cursor next", () => cursor.next()],
    ["new cursor", () => tree.cursor().next()],
    ["cursorMut insert", () => tree.cursorMut().insert("z", 1)],
    ["destroy", () => tree.destroy()],
    ["twin get", () => twin.get("k1")],
  ];
  for (const [name, call] of calls) {
    assert.throws(
      call,
      (e) => e instanceof SabreError && /destroyed/.test(e.message),
      `${name} after destroy`,
    );
  }
  for (let i = 0; i < 300; i++) assert.equal(other.get(`k${i}`), i * 2);
  for (let i = 0; i < 200; i++) assert.equal(kept.get(`k${i}`), i);
  assert.equal(other.size, 300);
  checkTree(other);
  checkTree(kept);
});

// ---------------------------------------------------------------------------
// Regressions

Deno.test("regression: a node whose latch version wrapped past 2^31 still takes writes", () => {
  const heap = SharedHeap.create();
  const tree = BPlusTree.create<number, number>(heap, { key: "i32", value: "i32" });
  tree.set(1, 1);
  const root = treeInternals(tree).root();
  // The version is a counter that every write moves on by 2: pretend ~2^30 writes happened.
  Atomics.store(heap.i32, root >> 2, 0x7ffffffe);
  assert.equal(tree.set(2, 2), undefined); // unlocking wraps the version to -2^31
  assert.ok(Atomics.load(heap.i32, root >> 2) < 0);
  assert.equal(tree.set(3, 3), undefined);
  assert.equal(tree.get(3), 3);
  checkTree(tree);
});

Deno.test("regression: bulkLoad failing on a node header frees the leaf content once", () => {
  const heap = SharedHeap.create({ initialBytes: MiB, maxBytes: MiB });
  const tree = BPlusTree.create<number, number>(heap, { key: "i32", value: "i32" });
  // One free block, in the class of a one-entry leaf's content (40 bytes),
  // and no room for a 16-byte header: the 16-byte requests that fill the
  // heap also take whatever room larger classes had.
  const spare = [heap.allocate(40)];
  const smalls: number[] = [];
  try {
    for (;;) smalls.push(heap.allocate(16));
  } catch (e) {
    if (!(e instanceof HeapExhaustedError)) throw e;
  }
  for (const p of spare) heap.free(p);
  const before = heap.stats().liveBlocks;
  assert.throws(() => tree.bulkLoad([[1, 1]]), HeapExhaustedError);
  assert.equal(heap.stats().liveBlocks, before, "a block was freed twice (or leaked)");
  // The content went back once: one block of its class, not two.
  const blocks = [heap.allocate(40)];
  assert.throws(() => blocks.push(heap.allocate(40)), HeapExhaustedError, `${blocks}`);
  for (const p of [...blocks, ...smalls]) heap.free(p);
  tree.set(1, 1);
  checkTree(tree);
});

Deno.test("bad input: a misspelt range option throws TypeError naming it", () => {
  const tree = BPlusTree.create<number, number>(SharedHeap.create(), { key: "i32", value: "i32" });
  tree.set(1, 1);
  const misspelt = (e: unknown) => e instanceof TypeError && /no field 'from'/.test(e.message);
  assert.throws(() => [...tree.range({ from: 5 } as never)], misspelt);
  assert.throws(() => tree.scan({ from: 5 } as never, () => {}), misspelt);
  assert.deepEqual([...tree.range({ gte: 1 })], [[1, 1]]);
  assert.deepEqual([...tree.range()], [[1, 1]]);
});
