import assert from "node:assert/strict";
import fc from "fast-check";
import { HashMap, SharedHeap } from "../mod.ts";
import { KERNEL_ABSENT, KERNEL_SLOW } from "./_kernel.ts";
import { encodeAsciiKey } from "./_murmur.ts";
import { STRING_KERNEL_MAX_LENGTH, type StringKernel } from "./_string_kernel.ts";
import { heapWithKernel } from "../testing/kernel.ts";
import { epochWordAt, heapKernel, kernelKeyWords, stringKernelForRead } from "./_heap_hooks.ts";
import { H_EPOCH, KERNEL_KEY_WORDS } from "./_layout.ts";

/** A heap with both kernels, a string -> i32 map in it, and its string kernel. */
function setUp(maxKeyBytes = 64) {
  const heap = heapWithKernel(true);
  const map = HashMap.create(heap, { key: "string", value: "i32", maxKeyBytes });
  const strings: StringKernel = stringKernelForRead(heap)!;
  SharedHeap.releaseReadPins();
  return { heap, map, strings, header: map.handle.offset };
}

/**
 * The string kernel, with the read pin allowed: hashmapGetString answers
 * KERNEL_SLOW, without looking, while the worker holds no pin.
 */
function armed(heap: SharedHeap): StringKernel {
  return stringKernelForRead(heap)!;
}

Deno.test("string kernel: with no pin held, hashmapGetString answers KERNEL_SLOW without pinning, and answers once the read pin is allowed", () => {
  const { heap, map, strings, header } = setUp();
  map.set("abc", 7);
  SharedHeap.releaseReadPins();
  const epochWord = epochWordAt(heap) >> 2;
  assert.equal(strings.hashmapGetString("abc", STRING_KERNEL_MAX_LENGTH, header), KERNEL_SLOW);
  assert.equal(Atomics.load(heap.i32, epochWord), 0, "no pin taken");
  assert.equal(armed(heap).hashmapGetString("abc", STRING_KERNEL_MAX_LENGTH, header), 7);
  assert.equal(Atomics.load(heap.i32, epochWord), Atomics.load(heap.i32, H_EPOCH));
  SharedHeap.releaseReadPins();
  // Inside pin(), the worker's own pin serves.
  heap.pin();
  const outer = Atomics.load(heap.i32, epochWord);
  assert.equal(strings.hashmapGetString("abc", STRING_KERNEL_MAX_LENGTH, header), 7);
  assert.equal(Atomics.load(heap.i32, epochWord), outer, "the outer pin left as it was");
  heap.unpin();
  assert.equal(Atomics.load(heap.i32, epochWord), 0);
  // HashMap.get allows the read pin itself.
  assert.equal(map.get("abc"), 7);
  assert.equal(Atomics.load(heap.i32, epochWord), Atomics.load(heap.i32, H_EPOCH));
  SharedHeap.releaseReadPins();
});

Deno.test("string kernel: Deno has it, beside the kernel", () => {
  const heap = SharedHeap.create();
  assert.notEqual(heapKernel(heap), null);
  assert.notEqual(stringKernelForRead(heap), null);
  SharedHeap.releaseReadPins();
  assert.equal(STRING_KERNEL_MAX_LENGTH, (KERNEL_KEY_WORDS - 2) * 4);
});

Deno.test("string kernel: hashmapGetString and encodeKey write each ASCII key as encodeAsciiKey does, and the get answers as the map holds", () => {
  const { heap, map, strings, header } = setUp();
  const model = new Map<string, number>();
  const ascii = fc.string({
    unit: fc.integer({ min: 0, max: 0x7f }).map((c) => String.fromCharCode(c)),
    minLength: 1,
    maxLength: STRING_KERNEL_MAX_LENGTH,
  });
  fc.assert(
    fc.property(ascii, fc.integer(), fc.boolean(), (key, value, store) => {
      if (store) {
        map.set(key, value | 0);
        model.set(key, value | 0);
      }
      const found = armed(heap).hashmapGetString(key, STRING_KERNEL_MAX_LENGTH, header);
      SharedHeap.releaseReadPins();
      assert.equal(found, model.has(key) ? model.get(key) : KERNEL_ABSENT, JSON.stringify(key));
      const expected = new Int32Array(KERNEL_KEY_WORDS);
      assert.equal(encodeAsciiKey(key, expected, 64), key.length);
      // The words past the key's last are not written (the kernel ignores
      // them); compare hash, length and the key's own words, left by the get
      // and then by encodeKey alone.
      const used = 2 + ((key.length + 3) >> 2);
      const written = () => [...kernelKeyWords(heap).subarray(0, used)];
      assert.deepEqual(written(), [...expected.subarray(0, used)], JSON.stringify(key));
      kernelKeyWords(heap).fill(-1);
      assert.equal(strings.encodeKey(key, STRING_KERNEL_MAX_LENGTH), key.length);
      assert.deepEqual(written(), [...expected.subarray(0, used)], JSON.stringify(key));
    }),
    { numRuns: 3000 },
  );
});

Deno.test("string kernel: the empty key, keys over the limit and keys with a code unit of 0x80 or above answer KERNEL_SLOW (encodeKey: 0)", () => {
  const { heap, strings, header, map } = setUp();
  map.set("abc", 1);
  const slow = (key: string, maxLength = STRING_KERNEL_MAX_LENGTH) => {
    assert.equal(
      armed(heap).hashmapGetString(key, maxLength, header),
      KERNEL_SLOW,
      JSON.stringify(key),
    );
    SharedHeap.releaseReadPins();
    assert.equal(strings.encodeKey(key, maxLength), 0, JSON.stringify(key));
  };
  slow("");
  slow("x".repeat(STRING_KERNEL_MAX_LENGTH + 1));
  slow("abcd", 3);
  assert.equal(armed(heap).hashmapGetString("abc", 3, header), 1);
  assert.equal(strings.hashmapGetString("\u007f", 1, header), KERNEL_ABSENT);
  SharedHeap.releaseReadPins();
  // A code unit of 0x80 or above anywhere, in every position of a word and
  // in the last, partial word.
  for (const unit of ["\u0080", "é", "\uffff", "\ud800", "😀"]) {
    for (let length = 1; length <= 9; length++) {
      for (let at = 0; at < length; at++) {
        const key = "a".repeat(at) + unit + "a".repeat(Math.max(0, length - at - unit.length));
        slow(key);
      }
    }
  }
});

Deno.test("string kernel: a worker without slot words gets KERNEL_SLOW, and nothing is written", () => {
  const { heap, strings, header, map } = setUp();
  map.set("abc", 1);
  assert.equal(armed(heap).hashmapGetString("abc", 32, header), 1);
  SharedHeap.releaseReadPins();
  const words = kernelKeyWords(heap);
  const before = [...words];
  heap.close();
  // After close the instance has no key words: it must not write the old
  // slot's (another worker may own that slot by now).
  assert.equal(strings.hashmapGetString("xyz", 32, header), KERNEL_SLOW);
  assert.equal(strings.encodeKey("xyz", 32), 0);
  assert.deepEqual([...words], before);
});

Deno.test("string kernel: HashMap.get takes it and falls back where it cannot answer", () => {
  const { map } = setUp(40);
  const keys = [
    "a",
    "\u007f",
    "\u0000",
    "x".repeat(32),
    "y".repeat(33), // past the string kernel: the JavaScript encoder
    "y".repeat(40), // exactly maxKeyBytes
    "é", // not ASCII: the general path
    "ab\u0080",
    "😀😀",
    "", // the empty key: the JavaScript path
  ];
  keys.forEach((key, i) => map.set(key, i));
  keys.forEach((key, i) => assert.equal(map.get(key), i, JSON.stringify(key)));
  // The same keys with the last code unit changed are absent.
  for (const key of keys) {
    assert.equal(map.get([...key].slice(0, -1).join("") + "-"), undefined, key);
  }
  assert.throws(() => map.get("z".repeat(41)), RangeError);
  assert.throws(() => map.get("é".repeat(21)), RangeError); // 42 bytes
  // A map whose keys are shorter than the string kernel's limit refuses a
  // longer key the string kernel would otherwise take.
  const { map: short } = setUp(8);
  short.set("12345678", 8);
  assert.equal(short.get("12345678"), 8);
  assert.throws(() => short.get("123456789"), RangeError);
});
