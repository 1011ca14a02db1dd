import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import fc from "fast-check";
import {
  type Codec,
  codec,
  CODEC_IDS,
  type CodecName,
  codecNameOf,
  type CodecOptions,
  isCodecName,
} from "./codec.ts";
import { describeValue } from "./errors.ts";

// fast-check prints the seed and the shrunk counterexample when a property
// fails; rerun with `{ seed, path }` in fc.assert to replay it.
const RUNS = { numRuns: 200 };

// ---------------------------------------------------------------------------
// Helpers

/** How the bytes under a target view are held. */
type Backing = "array" | "shared" | "growable" | "grown-fixed";
const BACKINGS: readonly Backing[] = ["array", "shared", "growable", "grown-fixed"];

/** Returns a view of `size` bytes over the given kind of buffer, filled with 0xAA. */
function makeBuffer(backing: Backing, size: number): Uint8Array {
  let view: Uint8Array;
  switch (backing) {
    case "array":
      view = new Uint8Array(size);
      break;
    case "shared":
      view = new Uint8Array(new SharedArrayBuffer(size));
      break;
    case "growable": {
      // A length-tracking view that sees the bytes added by grow().
      const sab = new SharedArrayBuffer(1, { maxByteLength: size + 64 });
      view = new Uint8Array(sab);
      sab.grow(size);
      break;
    }
    case "grown-fixed": {
      // A fixed-length view made after the buffer grew, as the heap makes them.
      const sab = new SharedArrayBuffer(1, { maxByteLength: size + 64 });
      sab.grow(size);
      view = new Uint8Array(sab, 0, size);
      break;
    }
  }
  assert.equal(view.length, size);
  view.fill(0xaa);
  return view;
}

function sgn(x: number): number {
  return x < 0 ? -1 : x > 0 ? 1 : 0;
}

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join(" ");
}

/** Encodes `value` at `offset` in a fresh buffer; checks the length and the bytes around it. */
function encodeAt<T>(
  c: Codec<T>,
  value: T,
  backing: Backing,
  offset: number,
): { buf: Uint8Array; len: number } {
  const len = c.encodedLength(value);
  const buf = makeBuffer(backing, offset + len + 5);
  assert.equal(c.encode(value, buf, offset), len, "encode returns encodedLength");
  for (let i = 0; i < offset; i++) assert.equal(buf[i], 0xaa, `byte ${i} before the span changed`);
  for (let i = offset + len; i < buf.length; i++) {
    assert.equal(buf[i], 0xaa, `byte ${i} after the span changed`);
  }
  return { buf, len };
}

/** The encoding as an independent implementation computes it. */
function referenceBytes(name: CodecName, value: unknown): Uint8Array {
  const out = new Uint8Array(8);
  const view = new DataView(out.buffer);
  switch (name) {
    case "i32":
      view.setInt32(0, value as number, true);
      return out.subarray(0, 4);
    case "u32":
      view.setUint32(0, value as number, true);
      return out.subarray(0, 4);
    case "f64":
      view.setFloat64(0, value as number, true);
      return out;
    case "bigint64":
      view.setBigInt64(0, value as bigint, true);
      return out;
    case "string":
      return new TextEncoder().encode(value as string);
    case "bytes":
      return value as Uint8Array;
  }
}

/** Asserts that `fn` throws exactly `Class`, and that the message contains every fragment. */
function assertThrowsWith(
  fn: () => unknown,
  Class: typeof TypeError | typeof RangeError,
  ...fragments: string[]
): Error {
  let caught: unknown = undefined;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  assert.ok(caught !== undefined, `expected a ${Class.name}, but nothing was thrown`);
  assert.ok(caught instanceof Error, `expected a ${Class.name}, got ${String(caught)}`);
  assert.equal(caught.constructor, Class, `expected a ${Class.name}, got: ${caught}`);
  for (const f of fragments) {
    assert.ok(caught.message.includes(f), `message ${JSON.stringify(caught.message)} lacks ${f}`);
  }
  return caught;
}

/** Asserts that `check` refuses `value` with `Class`, naming `what` and the value. */
function assertRefused(
  c: Codec<unknown>,
  value: unknown,
  what: string,
  Class: typeof TypeError | typeof RangeError,
  ...fragments: string[]
): void {
  const e = assertThrowsWith(() => c.check(value, what), Class, ...fragments);
  assert.ok(
    e.message.startsWith(`Cannot use ${what} as ${c.name} `),
    `message ${JSON.stringify(e.message)} does not name '${what}' and the codec`,
  );
  assert.ok(
    e.message.endsWith(`: current value is ${describeValue(value)}`),
    `message ${JSON.stringify(e.message)} does not show the value`,
  );
}

// ---------------------------------------------------------------------------
// Arbitraries

const I32_MIN = -(2 ** 31);
const I32_MAX = 2 ** 31 - 1;
const U32_MAX = 2 ** 32 - 1;
const I64_MIN = -(2n ** 63n);
const I64_MAX = 2n ** 63n - 1n;

/**
 * Code points chosen where UTF-16 order and code point order disagree (E000-FFFF
 * against astral), at UTF-8 length boundaries, and combining marks and a BOM.
 */
const trickyChars = fc.constantFrom(
  "a",
  "\u007f",
  "\u0080",
  "é",
  "\u0301", // combining acute accent
  "\u07ff",
  "\u0800",
  "\ud7ff",
  "\ue000",
  "\ufeff", // BOM
  "\uffff",
  "😀",
  "\u{10000}",
  "\u{10ffff}",
);
const trickyString = fc.array(trickyChars, { maxLength: 10 }).map((cs) => cs.join(""));

const stringArb = fc.oneof(
  fc.string({ unit: "binary", maxLength: 20 }),
  fc.string({ unit: "grapheme", maxLength: 8 }),
  trickyString,
).filter((s) => Buffer.byteLength(s, "utf8") <= 1024);

/** Pairs with shared prefixes, so that comparisons look past the first code unit. */
function pairs<T>(arb: fc.Arbitrary<T>): fc.Arbitrary<[T, T]> {
  return fc.oneof(
    fc.tuple(arb, arb),
    arb.map((x): [T, T] => [x, x]),
  );
}

const stringPairs: fc.Arbitrary<[string, string]> = fc.oneof(
  pairs(stringArb),
  fc.tuple(trickyString, trickyString, trickyString).map(([p, a, b]): [string, string] => [
    p + a,
    p + b,
  ]),
);

const bytesArb = fc.uint8Array({ maxLength: 40 });
const bytesPairs: fc.Arbitrary<[Uint8Array, Uint8Array]> = fc.oneof(
  pairs(bytesArb),
  fc.tuple(bytesArb, fc.uint8Array({ maxLength: 3 }), fc.uint8Array({ maxLength: 3 })).map((
    [p, a, b],
  ): [Uint8Array, Uint8Array] => [Buffer.concat([p, a]), Buffer.concat([p, b])]),
);

interface Case {
  label: string;
  name: CodecName;
  options?: CodecOptions;
  arb: fc.Arbitrary<unknown>;
  pairs: fc.Arbitrary<[unknown, unknown]>;
  /** The order the codec documents, computed independently of the codec. */
  order: (a: unknown, b: unknown) => number;
}

/** Total order of f64 values: by IEEE 754 bits, sign-magnitude made monotonic, NaN canonical. */
function f64TotalKey(x: number): bigint {
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, Number.isNaN(x) ? NaN : x);
  const bits = view.getBigInt64(0);
  return bits >= 0n ? bits : I64_MIN - 1n - bits;
}

const numericOrder = (a: unknown, b: unknown) => sgn((a as number) - (b as number));
const bytesOrder = (a: unknown, b: unknown) => Buffer.compare(a as Uint8Array, b as Uint8Array);

const doubles = fc.oneof(
  fc.double(),
  fc.constantFrom(0, -0, Infinity, -Infinity, Number.MIN_VALUE, -Number.MAX_VALUE, NaN),
);

const CASES: Case[] = [
  {
    label: "i32",
    name: "i32",
    arb: fc.integer({ min: I32_MIN, max: I32_MAX }),
    pairs: pairs(fc.integer({ min: I32_MIN, max: I32_MAX })),
    order: numericOrder,
  },
  {
    label: "u32",
    name: "u32",
    arb: fc.integer({ min: 0, max: U32_MAX }),
    pairs: pairs(fc.integer({ min: 0, max: U32_MAX })),
    order: numericOrder,
  },
  {
    label: "f64 key",
    name: "f64",
    arb: doubles.filter((x) => !Number.isNaN(x)),
    pairs: pairs(doubles.filter((x) => !Number.isNaN(x))),
    order: numericOrder,
  },
  {
    label: "f64 value",
    name: "f64",
    options: { role: "value" },
    arb: doubles,
    pairs: pairs(doubles),
    order: (a, b) => {
      const x = f64TotalKey(a as number);
      const y = f64TotalKey(b as number);
      return x < y ? -1 : x > y ? 1 : 0;
    },
  },
  {
    label: "bigint64",
    name: "bigint64",
    arb: fc.bigInt({ min: I64_MIN, max: I64_MAX }),
    pairs: pairs(fc.bigInt({ min: I64_MIN, max: I64_MAX })),
    order: (a, b) => ((a as bigint) < (b as bigint) ? -1 : (a as bigint) > (b as bigint) ? 1 : 0),
  },
  {
    label: "string",
    name: "string",
    arb: stringArb,
    pairs: stringPairs,
    order: (a, b) => Buffer.compare(Buffer.from(a as string, "utf8"), Buffer.from(b as string)),
  },
  {
    label: "bytes",
    name: "bytes",
    arb: bytesArb,
    pairs: bytesPairs,
    order: bytesOrder,
  },
];

/** The value `check` should return: -0 becomes +0 except for f64 values. */
function normalized(c: Codec<unknown>, value: unknown): unknown {
  if (value === 0 && !(c.name === "f64" && c.role === "value")) return 0;
  return value;
}

/** Strict sameness of a decoded value and the value that was encoded. */
function same(a: unknown, b: unknown): boolean {
  if (a instanceof Uint8Array && b instanceof Uint8Array) return Buffer.compare(a, b) === 0;
  return Object.is(a, b);
}

// ---------------------------------------------------------------------------
// Round trips

for (const k of CASES) {
  Deno.test(`codec ${k.label}: encode/decode round trip over every backing, at any offset`, () => {
    const c = codec(k.name, k.options) as Codec<unknown>;
    fc.assert(
      fc.property(
        k.arb,
        fc.constantFrom(...BACKINGS),
        fc.nat({ max: 13 }),
        (input, backing, offset) => {
          const value = c.check(input, "value");
          assert.ok(same(value, normalized(c, input)), "check returns the normalized value");
          const { buf, len } = encodeAt(c, value, backing, offset);
          const bytes = buf.slice(offset, offset + len);
          const expected = referenceBytes(k.name, value);
          if (!(k.name === "f64" && Number.isNaN(value))) {
            assert.equal(hex(bytes), hex(expected), "encoding differs from the reference");
          }
          const decoded = c.decode(buf, offset, len);
          assert.ok(same(decoded, value), `decoded ${describeValue(decoded)}`);
          assert.ok(c.equals(decoded, value));
          assert.equal(c.compare(decoded, value), 0);
          assert.equal(c.compareEncoded(buf, offset, len, bytes, 0, len), 0);
          assert.equal(c.hash(buf, offset, len), c.hash(bytes, 0, len));
        },
      ),
      RUNS,
    );
  });

  Deno.test(`codec ${k.label}: compare and compareEncoded agree with the documented order`, () => {
    const c = codec(k.name, k.options) as Codec<unknown>;
    fc.assert(
      fc.property(
        k.pairs,
        fc.constantFrom(...BACKINGS),
        fc.nat({ max: 9 }),
        fc.nat({ max: 9 }),
        ([x, y], backing, offA, offB) => {
          const a = c.check(x, "a");
          const b = c.check(y, "b");
          const ea = encodeAt(c, a, backing, offA);
          const eb = encodeAt(c, b, "array", offB);
          const s = sgn(c.compare(a, b));
          assert.equal(s, sgn(k.order(a, b)), "compare disagrees with the reference order");
          assert.equal(sgn(c.compare(b, a)), -s || 0, "compare is not antisymmetric");
          assert.equal(
            sgn(c.compareEncoded(ea.buf, offA, ea.len, eb.buf, offB, eb.len)),
            s,
            "compareEncoded disagrees with compare",
          );
          assert.equal(c.equals(a, b), s === 0, "equals disagrees with compare");
          if (s === 0) {
            assert.equal(
              c.hash(ea.buf, offA, ea.len),
              c.hash(eb.buf, offB, eb.len),
              "equal values hash differently",
            );
            assert.equal(c.hash(ea.buf, offA, ea.len, 77), c.hash(eb.buf, offB, eb.len, 77));
          }
        },
      ),
      RUNS,
    );
  });
}

Deno.test("codec: properties of each codec", () => {
  const expected: Array<[CodecName, number, number]> = [
    ["i32", 4, 4],
    ["u32", 4, 4],
    ["f64", 8, 8],
    ["bigint64", 8, 8],
    ["string", 0, 1024],
    ["bytes", 0, 1024],
  ];
  for (const [name, fixedBytes, maxBytes] of expected) {
    const c = codec(name);
    assert.equal(c.name, name);
    assert.equal(c.role, "key", "role defaults to key");
    assert.equal(c.fixedBytes, fixedBytes, name);
    assert.equal(c.maxBytes, maxBytes, name);
    assert.equal(codec(name, { role: "value" }).role, "value");
    // maxBytes applies to the variable-size codecs only.
    assert.equal(codec(name, { maxBytes: 10 }).maxBytes, fixedBytes || 10, name);
  }
});

Deno.test("codec: codecNameOf names each CODEC_IDS number and refuses any other", () => {
  for (const [name, id] of Object.entries(CODEC_IDS)) assert.equal(codecNameOf(id), name);
  for (const id of [0, -1, 7, 1.5, NaN]) {
    assertThrowsWith(
      () => codecNameOf(id),
      RangeError,
      "'id'",
      `current value is ${describeValue(id)}`,
    );
  }
});

Deno.test("codec: isCodecName", () => {
  for (const name of ["i32", "u32", "f64", "bigint64", "string", "bytes"]) {
    assert.equal(isCodecName(name), true, name);
  }
  for (const x of ["I32", "int", "", "string ", "bigint", null, undefined, 1, {}, ["i32"]]) {
    assert.equal(isCodecName(x), false, describeValue(x));
  }
});

Deno.test("codec: fixed encodings are little-endian and readable in place by typed arrays", () => {
  const sab = new SharedArrayBuffer(64);
  const bytes = new Uint8Array(sab);
  codec("i32").encode(-123456789, bytes, 8);
  assert.equal(new Int32Array(sab)[2], -123456789);
  codec("u32").encode(0xdeadbeef, bytes, 12);
  assert.equal(new Uint32Array(sab)[3], 0xdeadbeef);
  assert.equal(hex(bytes.subarray(12, 16)), "ef be ad de");
  codec("f64").encode(-1.5e300, bytes, 16);
  assert.equal(new Float64Array(sab)[2], -1.5e300);
  codec("bigint64").encode(-(2n ** 62n) - 3n, bytes, 24);
  assert.equal(new BigInt64Array(sab)[3], -(2n ** 62n) - 3n);
});

// ---------------------------------------------------------------------------
// f64 rules

Deno.test("codec f64 key: -0 becomes +0 in check and in encode", () => {
  const c = codec("f64");
  assert.ok(Object.is(c.check(-0, "key"), 0));
  const neg = new Uint8Array(8);
  const pos = new Uint8Array(8);
  c.encode(-0, neg, 0); // even without check()
  c.encode(0, pos, 0);
  assert.equal(hex(neg), hex(pos));
  assert.ok(Object.is(c.decode(neg, 0, 8), 0));
  assert.equal(c.hash(neg, 0, 8), c.hash(pos, 0, 8));
  assert.equal(c.compare(-0, 0), 0);
  assert.equal(c.equals(-0, 0), true);
  // i32 and u32 cannot store -0 either.
  assert.ok(Object.is(codec("i32").check(-0, "key"), 0));
  assert.ok(Object.is(codec("u32").check(-0, "key"), 0));
});

Deno.test("codec f64 value: -0 round-trips bit for bit and sorts before +0", () => {
  const c = codec("f64", { role: "value" });
  assert.ok(Object.is(c.check(-0, "value"), -0));
  const buf = makeBuffer("shared", 11);
  c.encode(-0, buf, 3);
  assert.equal(hex(buf.subarray(3, 11)), "00 00 00 00 00 00 00 80");
  assert.ok(Object.is(c.decode(buf, 3, 8), -0));
  assert.equal(c.compare(-0, 0), -1);
  assert.equal(c.compare(0, -0), 1);
  assert.equal(c.equals(-0, 0), false);
  assert.equal(c.compare(-Number.MIN_VALUE, -0), -1);
});

Deno.test("codec f64 value: NaN stays NaN, canonical, sorting after +Infinity", () => {
  const c = codec("f64", { role: "value" });
  assert.ok(Number.isNaN(c.check(NaN, "value")));
  // A NaN with a payload, as other code may produce.
  const view = new DataView(new ArrayBuffer(8));
  view.setUint32(0, 0xfff00000);
  view.setUint32(4, 0x00000001);
  const odd = view.getFloat64(0);
  assert.ok(Number.isNaN(odd));
  const a = new Uint8Array(8);
  const b = new Uint8Array(8);
  c.encode(NaN, a, 0);
  c.encode(odd, b, 0);
  assert.equal(hex(a), "00 00 00 00 00 00 f8 7f");
  assert.equal(hex(b), hex(a));
  assert.ok(Number.isNaN(c.decode(a, 0, 8)));
  assert.equal(c.hash(a, 0, 8), c.hash(b, 0, 8));
  assert.equal(c.equals(NaN, odd), true);
  assert.equal(c.compare(NaN, NaN), 0);
  assert.equal(c.compare(NaN, Infinity), 1);
  assert.equal(c.compare(-Infinity, NaN), -1);
});

// ---------------------------------------------------------------------------
// Strings

Deno.test("codec string: edge cases round-trip and match TextEncoder", () => {
  const c = codec("string", { maxBytes: 8192 });
  const samples = [
    "",
    "a",
    "héllo",
    "€",
    "😀",
    "a😀b",
    "e\u0301", // e + combining acute
    "\u{10ffff}",
    "\ufeffstarts with a BOM",
    "\0nul\0",
    "\ufeff" + "é".repeat(300), // long enough for the native paths
    "😀".repeat(100),
    "x".repeat(4096),
    "y".repeat(5000) + "é", // past the decoder's reusable copy
    "abcdefgh" + "é" + "abcdefghijklmnop" + "😀", // ASCII runs between others
  ];
  for (const s of samples) {
    const v = c.check(s, "value");
    for (const backing of BACKINGS) {
      const { buf, len } = encodeAt(c, v, backing, 1);
      assert.equal(hex(buf.subarray(1, 1 + len)), hex(new TextEncoder().encode(s)));
      assert.equal(c.decode(buf, 1, len), s, `${describeValue(s)} over ${backing}`);
    }
  }
});

Deno.test("codec string: long strings round-trip through the native paths", () => {
  const c = codec("string", { maxBytes: 8192 });
  fc.assert(
    fc.property(
      fc.string({ unit: "binary", minLength: 60, maxLength: 400 }),
      fc.constantFrom(...BACKINGS),
      fc.nat({ max: 7 }),
      (s, backing, offset) => {
        const { buf, len } = encodeAt(c, c.check(s, "value"), backing, offset);
        assert.equal(len, Buffer.byteLength(s, "utf8"));
        assert.equal(c.decode(buf, offset, len), s);
      },
    ),
    { numRuns: 100 },
  );
});

Deno.test("codec string: decoding malformed UTF-8 matches TextDecoder", () => {
  const c = codec("string");
  const reference = new TextDecoder("utf-8", { ignoreBOM: true });
  // Bytes that start, continue or break sequences, so that malformed input is
  // common, between runs of ASCII that take the eight-at-a-time path.
  const tricky = fc.constantFrom(
    0x80,
    0x8f,
    0x90,
    0x9f,
    0xa0,
    0xbf,
    0xc0,
    0xc1,
    0xc2,
    0xdf,
    0xe0,
    0xed,
    0xef,
    0xf0,
    0xf4,
    0xf5,
    0xff,
  );
  const chunk = fc.oneof(
    fc.array(fc.integer({ min: 0, max: 0x7f }), { minLength: 1, maxLength: 12 }),
    fc.array(tricky, { minLength: 1, maxLength: 4 }),
    fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 1, maxLength: 4 }),
  );
  // Under 64 bytes, so that the codec's own decoder does the work.
  const input = fc.array(chunk, { maxLength: 8 }).map((cs) => cs.flat().slice(0, 63));
  fc.assert(
    fc.property(input, (arr) => {
      const src = new Uint8Array(new SharedArrayBuffer(arr.length + 2));
      src.set(arr, 1);
      const got = c.decode(src, 1, arr.length);
      const want = reference.decode(new Uint8Array(arr));
      assert.equal(got, want, `bytes ${hex(new Uint8Array(arr))}`);
    }),
    { numRuns: 1000 },
  );
});

Deno.test("codec string: maxBytes counts UTF-8 bytes, inclusive", () => {
  const c = codec("string", { maxBytes: 16 });
  for (const ok of ["a".repeat(16), "😀".repeat(4), "é".repeat(8), "a".repeat(14) + "é", ""]) {
    assert.equal(c.check(ok, "key"), ok);
  }
  for (
    const [bad, n] of [
      ["a".repeat(17), 17],
      ["😀".repeat(4) + "a", 17],
      ["a".repeat(15) + "é", 17],
      ["€".repeat(6), 18],
      ["😀".repeat(5), 20],
    ] as const
  ) {
    assertRefused(c, bad, "key", RangeError, `is ${n} bytes`, "limit of 16", "'maxBytes'");
  }
  const d = codec("string");
  d.check("a".repeat(1024), "value");
  assertRefused(d, "a".repeat(1025), "value", RangeError, "1025 bytes", "limit of 1024");
  assertRefused(d, "é".repeat(513), "value", RangeError, "1026 bytes", "limit of 1024");
  const big = codec("string", { maxBytes: 1 << 20 });
  big.check("z".repeat(1 << 20), "value");
  assertRefused(big, "z".repeat((1 << 20) + 1), "value", RangeError, "limit of 1048576");
});

Deno.test("codec string: lone surrogates are refused with TypeError", () => {
  const c = codec("string");
  const cases: Array<[string, number]> = [
    ["\ud800", 0],
    ["ab\udc00", 2],
    ["x\ud83d", 1], // high surrogate at the end
    ["\ud83d\ud83dx", 0], // two high surrogates
    ["\ude00\ud83d", 0], // a pair in the wrong order
    ["😀\udc00", 2],
  ];
  for (const [s, index] of cases) {
    assertRefused(c, s, "key", TypeError, `lone surrogate at index ${index}`);
  }
});

Deno.test("codec string: unchecked lone surrogates encode as U+FFFD, as TextEncoder does", () => {
  const c = codec("string");
  for (const s of ["\ud800", "a\udc00b", "x\ud83d"]) {
    const n = c.encodedLength(s);
    const buf = new Uint8Array(n);
    assert.equal(c.encode(s, buf, 0), n);
    assert.equal(hex(buf), hex(new TextEncoder().encode(s)));
  }
});

Deno.test("codec string: order is by code point, not by UTF-16 code unit", () => {
  const c = codec("string");
  // JS `<` puts the astral character first; UTF-8 order puts it last.
  assert.ok("😀" < "\uffff");
  assert.equal(c.compare("\uffff", "😀"), -1);
  assert.equal(c.compare("😀", "\uffff"), 1);
  assert.equal(c.compare("\ue000", "\u{10000}"), -1);
  assert.equal(c.compare("\ud7ff", "\ue000"), -1);
  assert.equal(c.compare("😀", "😁"), -1);
  assert.equal(c.compare("ab", "abc"), -1);
  assert.equal(c.compare("", ""), 0);
  assert.equal(c.compare("", "\0"), -1);
});

// ---------------------------------------------------------------------------
// Bytes

Deno.test("codec bytes: decode returns a fresh copy that shares no memory", () => {
  const c = codec("bytes");
  for (const size of [0, 5, 16, 17, 300]) {
    const value = Uint8Array.from({ length: size }, (_, i) => (i * 7) & 0xff);
    const { buf, len } = encodeAt(c, c.check(value, "value"), "growable", 3);
    const out = c.decode(buf, 3, len);
    assert.equal(out.constructor, Uint8Array);
    assert.ok(out.buffer instanceof ArrayBuffer, "decoded bytes sit in a non-shared buffer");
    assert.equal(hex(out), hex(value));
    buf.fill(0);
    assert.equal(hex(out), hex(value), "decoded bytes changed with the source");
  }
});

Deno.test("codec bytes: length limit is inclusive", () => {
  const c = codec("bytes", { maxBytes: 8 });
  c.check(new Uint8Array(8), "value");
  c.check(new Uint8Array(0), "value");
  assertRefused(c, new Uint8Array(9), "value", RangeError, "9 bytes", "limit of 8", "'maxBytes'");
  const d = codec("bytes");
  d.check(new Uint8Array(1024), "key");
  assertRefused(d, new Uint8Array(1025), "key", RangeError, "1025 bytes", "limit of 1024");
  // A Buffer is a Uint8Array, so it is accepted.
  assert.equal(d.check(Buffer.from("hi"), "key").length, 2);
  // A limit given under another option's name is refused under that name.
  const named = codec("bytes", { maxBytes: 8, limitName: "maxKeyBytes" });
  assertRefused(named, new Uint8Array(9), "key", RangeError, "limit of 8", "'maxKeyBytes'");
  const namedString = codec("string", { maxBytes: 2, limitName: "maxValueBytes" });
  assertRefused(namedString, "abc", "value", RangeError, "limit of 2", "'maxValueBytes'");
});

Deno.test("codec bytes: check pins the length of a view that tracks a growable SharedArrayBuffer", () => {
  const c = codec("bytes", { maxBytes: 8 });
  const sab = new SharedArrayBuffer(4, { maxByteLength: 64 });
  const tracking = new Uint8Array(sab, 1); // follows the buffer's length
  const checked = c.check(tracking, "key");
  assert.equal(checked.length, 3);
  // Another thread may grow the buffer after the check: what the caller
  // encodes keeps the checked length, within maxBytes.
  sab.grow(32);
  assert.equal(tracking.length, 31);
  assert.equal(checked.length, 3);
  assert.equal(checked.buffer, sab);
  assert.equal(checked.byteOffset, 1);
  // Views of other buffers come back as they are.
  const plain = new Uint8Array(3);
  assert.equal(c.check(plain, "key"), plain);
});

// ---------------------------------------------------------------------------
// Hash

Deno.test("codec: hash is MurmurHash3 x86_32 (reference vectors)", () => {
  const c = codec("bytes");
  const ascii = (s: string) => new TextEncoder().encode(s);
  const vectors: Array<[Uint8Array, number, number]> = [
    [new Uint8Array([]), 0, 0],
    [new Uint8Array([]), 1, 0x514e28b7],
    [new Uint8Array([]), 0xffffffff, 0x81f16f39],
    [new Uint8Array([0xff, 0xff, 0xff, 0xff]), 0, 0x76293b50],
    [new Uint8Array([0x21, 0x43, 0x65, 0x87]), 0, 0xf55b516b],
    [new Uint8Array([0x21, 0x43, 0x65, 0x87]), 0x5082edee, 0x2362f9de],
    [new Uint8Array([0x21, 0x43, 0x65]), 0, 0x7e4a8634],
    [new Uint8Array([0x21, 0x43]), 0, 0xa0f7b07a],
    [new Uint8Array([0x21]), 0, 0x72661cf4],
    [new Uint8Array([0, 0, 0, 0]), 0, 0x2362f9de],
    [ascii("aaaa"), 0x9747b28c, 0x5a97808a],
    [ascii("aaa"), 0x9747b28c, 0x283e0130],
    [ascii("aa"), 0x9747b28c, 0x5d211726],
    [ascii("a"), 0x9747b28c, 0x7fa09ea6],
    [ascii("abcd"), 0x9747b28c, 0xf0478627],
    [ascii("Hello, world!"), 0x9747b28c, 0x24884cba],
    [ascii("The quick brown fox jumps over the lazy dog"), 0x9747b28c, 0x2fa826cd],
  ];
  for (const [input, seed, want] of vectors) {
    // At an odd offset in shared memory, to exercise unaligned reads.
    const buf = makeBuffer("shared", input.length + 3);
    buf.set(input, 1);
    const got = c.hash(buf, 1, input.length, seed);
    assert.equal(got, want, `hash(${hex(input)}, seed ${seed}) = ${got.toString(16)}`);
  }
});

Deno.test("codec: hash avalanches (each input bit flips about half the output bits)", () => {
  const c = codec("bigint64");
  // A fixed linear congruential sequence keeps the test deterministic.
  let state = 12345;
  const next = () => (state = (Math.imul(state, 1103515245) + 12345) >>> 0);
  const buf = new Uint8Array(8);
  const flips = new Float64Array(32);
  let trials = 0;
  for (let t = 0; t < 200; t++) {
    for (let i = 0; i < 8; i++) buf[i] = next() & 0xff;
    const base = c.hash(buf, 0, 8);
    for (let bit = 0; bit < 64; bit++) {
      buf[bit >> 3] ^= 1 << (bit & 7);
      const diff = base ^ c.hash(buf, 0, 8);
      buf[bit >> 3] ^= 1 << (bit & 7);
      for (let o = 0; o < 32; o++) flips[o] += (diff >>> o) & 1;
      trials++;
    }
  }
  for (let o = 0; o < 32; o++) {
    const p = flips[o] / trials;
    assert.ok(p > 0.45 && p < 0.55, `output bit ${o} flips with probability ${p}`);
  }
});

Deno.test("codec: sequential i32 keys spread evenly over buckets", () => {
  const c = codec("i32");
  const buf = new Uint8Array(4);
  const buckets = new Uint32Array(256);
  for (let k = 0; k < 25600; k++) {
    c.encode(k, buf, 0);
    buckets[c.hash(buf, 0, 4) & 255]++;
  }
  // 100 expected per bucket; a poor mix leaves buckets empty or piles keys up.
  for (const n of buckets) assert.ok(n > 50 && n < 160, `bucket load ${n}`);
});

// ---------------------------------------------------------------------------
// Bad input

Deno.test("codec: i32 and u32 refuse wrong types and out-of-range numbers", () => {
  const i32 = codec("i32") as Codec<unknown>;
  assert.equal(
    assertThrowsWith(() => i32.check(1.5, "key"), RangeError).message,
    "Cannot use key as i32 as it is not an integer in [-2147483648, 2147483647]: current value is 1.5",
  );
  for (const v of ["1", 1n, null, undefined, {}, [1], true, Symbol("s")]) {
    assertRefused(i32, v, "key", TypeError, "not a number");
  }
  for (const v of [1.5, 2 ** 31, -(2 ** 31) - 1, NaN, Infinity, -Infinity, 1e100]) {
    assertRefused(i32, v, "expected", RangeError, "[-2147483648, 2147483647]");
  }
  assert.equal(i32.check(I32_MIN, "key"), I32_MIN);
  assert.equal(i32.check(I32_MAX, "key"), I32_MAX);

  const u32 = codec("u32") as Codec<unknown>;
  for (const v of ["1", 1n, null, new Number(1)]) {
    assertRefused(u32, v, "value", TypeError, "not a number");
  }
  for (const v of [-1, 2 ** 32, 0.5, NaN, Infinity, -(2 ** 31)]) {
    assertRefused(u32, v, "value", RangeError, "[0, 4294967295]");
  }
  assert.equal(u32.check(U32_MAX, "key"), U32_MAX);
});

Deno.test("codec: f64 refuses non-numbers, and NaN as a key", () => {
  const key = codec("f64") as Codec<unknown>;
  const value = codec("f64", { role: "value" }) as Codec<unknown>;
  for (const c of [key, value]) {
    for (const v of ["1.5", 1n, null, undefined, {}, new Number(1)]) {
      assertRefused(c, v, "value", TypeError, "not a number");
    }
  }
  assertRefused(key, NaN, "key", RangeError, "NaN is not allowed as a key");
  assertRefused(key, 0 / 0, "lookup", RangeError, "NaN");
  assert.equal(key.check(Infinity, "key"), Infinity);
});

Deno.test("codec: bigint64 refuses non-bigints and values outside 64 bits", () => {
  const c = codec("bigint64") as Codec<unknown>;
  for (const v of [1, "1", null, 1.5, {}]) {
    assertRefused(c, v, "key", TypeError, "not a bigint");
  }
  for (const v of [I64_MAX + 1n, I64_MIN - 1n, 2n ** 64n, -(2n ** 100n)]) {
    assertRefused(
      c,
      v,
      "key",
      RangeError,
      "[-9223372036854775808, 9223372036854775807]",
      `${v}n`,
    );
  }
  assert.equal(c.check(I64_MAX, "key"), I64_MAX);
  assert.equal(c.check(I64_MIN, "key"), I64_MIN);
});

Deno.test("codec: string and bytes refuse wrong types", () => {
  const s = codec("string") as Codec<unknown>;
  for (const v of [1, null, undefined, new String("x"), ["a"], new Uint8Array(1), 1n]) {
    assertRefused(s, v, "key", TypeError, "not a string");
  }
  const b = codec("bytes") as Codec<unknown>;
  const others = [
    "abc",
    [1, 2],
    new Int8Array(2),
    new Uint8ClampedArray(2),
    new Uint16Array(1),
    new ArrayBuffer(2),
    new DataView(new ArrayBuffer(2)),
    null,
    3,
  ];
  for (const v of others) {
    assertRefused(b, v, "value", TypeError, "not a Uint8Array");
  }
});

Deno.test("codec: bad options are refused, naming the option and the value", () => {
  for (const maxBytes of [0, -1, 1.5, (1 << 20) + 1, NaN, Infinity]) {
    for (const name of ["string", "bytes", "i32"] as const) {
      assertThrowsWith(
        () => codec(name, { maxBytes }),
        RangeError,
        "'maxBytes'",
        `current value is ${describeValue(maxBytes)}`,
      );
    }
  }
  for (const maxBytes of ["10", null, 10n]) {
    assertThrowsWith(
      () => codec("string", { maxBytes } as unknown as CodecOptions),
      TypeError,
      "'maxBytes'",
      `current value is ${describeValue(maxBytes)}`,
    );
  }
  for (const role of ["keys", "", null, 1]) {
    assertThrowsWith(
      () => codec("i32", { role } as unknown as CodecOptions),
      TypeError,
      "'role'",
      `current value is ${describeValue(role)}`,
    );
  }
  for (const name of ["int", "I32", "", undefined, 1]) {
    assertThrowsWith(
      () => codec(name as CodecName),
      TypeError,
      "'name'",
      `current value is ${describeValue(name)}`,
    );
  }
  for (const options of [5, "key", null]) {
    assertThrowsWith(
      () => codec("f64", options as unknown as CodecOptions),
      TypeError,
      "'options'",
      `current value is ${describeValue(options)}`,
    );
  }
  for (const limitName of [1, null]) {
    assertThrowsWith(
      () => codec("string", { limitName } as unknown as CodecOptions),
      TypeError,
      "'limitName'",
      `current value is ${describeValue(limitName)}`,
    );
  }
  assert.equal(codec("string", { maxBytes: 1 }).maxBytes, 1);
  assert.equal(codec("string", { maxBytes: 1 << 20 }).maxBytes, 1 << 20);
});

Deno.test("codec: encode refuses a span outside the target and writes nothing", () => {
  const cases: Array<[Codec<unknown>, unknown]> = [
    [codec("i32") as Codec<unknown>, 7],
    [codec("u32") as Codec<unknown>, 7],
    [codec("f64") as Codec<unknown>, 7.5],
    [codec("f64", { role: "value" }) as Codec<unknown>, NaN],
    [codec("bigint64") as Codec<unknown>, 7n],
    [codec("string") as Codec<unknown>, "héllo"],
    [codec("string") as Codec<unknown>, "x".repeat(100)],
    [codec("bytes") as Codec<unknown>, new Uint8Array(5)],
    [codec("bytes") as Codec<unknown>, new Uint8Array(40)],
  ];
  for (const [c, value] of cases) {
    const n = c.encodedLength(value);
    const target = makeBuffer("growable", n + 2);
    for (const offset of [3, n + 2, -1, 1.5, NaN]) {
      assertThrowsWith(() => c.encode(value, target, offset), RangeError, "'offset'", c.name);
      assert.ok(target.every((b) => b === 0xaa), `${c.name} wrote into the target`);
    }
    // The exact fit works.
    assert.equal(c.encode(value, target, 2), n);
  }
  // A string whose worst case does not fit but whose real length does.
  const s = codec("string");
  const tight = new Uint8Array(5);
  assert.equal(s.encode("hello", tight, 0), 5);
  assert.equal(s.decode(tight, 0, 5), "hello");
});

Deno.test("codec: decode, hash and compareEncoded refuse bad spans and lengths", () => {
  const src = new Uint8Array(new SharedArrayBuffer(16));
  for (const name of ["i32", "u32", "f64", "bigint64"] as const) {
    const c = codec(name);
    const n = c.fixedBytes;
    assertThrowsWith(() => c.decode(src, 0, n + 1), RangeError, "'length'", `${n + 1}`);
    assertThrowsWith(() => c.decode(src, 16 - n + 1, n), RangeError, "'offset'");
    assertThrowsWith(() => c.hash(src, 0, n - 1), RangeError, "'length'");
    assertThrowsWith(() => c.compareEncoded(src, 0, n, src, 0, 2), RangeError, "'bLen'");
    assertThrowsWith(() => c.compareEncoded(src, -4, n, src, 0, n), RangeError, "'aOff'");
  }
  for (const name of ["string", "bytes"] as const) {
    const c = codec(name);
    assertThrowsWith(() => c.decode(src, 10, 7), RangeError, "'offset'", "7 bytes");
    assertThrowsWith(() => c.decode(src, 0, -1), RangeError, "'length'", "-1");
    assertThrowsWith(() => c.hash(src, 0, 17), RangeError, "'offset'");
    assertThrowsWith(() => c.compareEncoded(src, 0, 1, src, 16, 1), RangeError, "'bOff'");
    assertThrowsWith(() => c.compareEncoded(src, 0, 2.5, src, 0, 1), RangeError, "'aLen'");
  }
});

// ---------------------------------------------------------------- encodeChecked

/** What `fn` returns, or the class and message of what it throws. */
function outcome(fn: () => number): { bytes?: number; error?: string } {
  try {
    return { bytes: fn() };
  } catch (e) {
    return { error: `${(e as Error).constructor.name}: ${(e as Error).message}` };
  }
}

Deno.test("codec: encodeChecked writes what encode(check(...)) writes, and throws what check throws", () => {
  const loneSurrogates = fc.constantFrom("\ud800", "\udfff", "a\ud83d", "\ude00b", "\ud83d\ud83d");
  const text = fc.oneof(
    fc.string({ unit: "grapheme", maxLength: 40 }),
    fc.string({ unit: "binary", maxLength: 40 }),
    fc.tuple(fc.string({ maxLength: 10 }), loneSurrogates, fc.string({ maxLength: 10 }))
      .map(([a, b, c]) => a + b + c),
  );
  const anything = fc.oneof(text, fc.integer(), fc.double(), fc.bigInt(), fc.constant(undefined));
  for (const name of ["i32", "u32", "f64", "bigint64", "string", "bytes"] as const) {
    for (const maxBytes of [8, 64]) {
      const c = codec(name, { maxBytes }) as Codec<unknown>;
      const input = name === "bytes"
        ? fc.oneof(fc.uint8Array({ maxLength: 80 }), anything)
        : anything;
      fc.assert(
        fc.property(input, (value) => {
          const one = new Uint8Array(new SharedArrayBuffer(256));
          const two = new Uint8Array(256);
          const got = outcome(() => c.encodeChecked(value, "key", one, 3));
          const want = outcome(() => c.encode(c.check(value, "key"), two, 3));
          assert.deepEqual(got, want);
          if (got.bytes !== undefined) {
            assert.deepEqual(one.slice(3, 3 + got.bytes), two.slice(3, 3 + got.bytes));
          }
        }),
        { numRuns: 300 },
      );
    }
  }
});

Deno.test("codec: encodeChecked of a string that does not fit throws RangeError", () => {
  const c = codec("string", { maxBytes: 64 });
  const target = new Uint8Array(10);
  assert.throws(() => c.encodeChecked("é".repeat(6), "key", target, 0), RangeError);
  assert.equal(c.encodeChecked("é".repeat(5), "key", target, 0), 10);
  assert.equal(new TextDecoder().decode(target), "é".repeat(5));
});
