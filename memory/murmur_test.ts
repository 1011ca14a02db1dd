import assert from "node:assert/strict";
import fc from "fast-check";
import { encodeAsciiKey, hashBytes } from "./_murmur.ts";
import { codec } from "./codec.ts";

const keys = codec("string", { role: "key", maxBytes: 64 });

/** What the general path stores for `key`: its UTF-8 bytes and their hash. */
function general(key: string): { bytes: Uint8Array; hash: number } {
  const bytes = new Uint8Array(3 * key.length + 8);
  const n = keys.encodeChecked(key, "key", bytes, 0);
  return { bytes: bytes.subarray(0, n), hash: keys.hash(bytes, 0, n) | 0 };
}

Deno.test("encodeAsciiKey: same bytes and hash as the codec's general path, last word zero-padded", () => {
  fc.assert(
    fc.property(
      fc.string({
        unit: fc.integer({ min: 0, max: 0x7f }).map((c) => String.fromCharCode(c)),
        maxLength: 64,
      }),
      (key) => {
        const out = new Int32Array(2 + 16).fill(-1);
        assert.equal(encodeAsciiKey(key, out, 64), key.length);
        const { bytes, hash } = general(key);
        assert.equal(out[0], hash);
        assert.equal(out[1], bytes.length);
        const written = new Uint8Array(out.buffer, 8, (bytes.length + 3) & ~3);
        assert.deepEqual(written.subarray(0, bytes.length), bytes);
        assert.ok(written.subarray(bytes.length).every((b) => b === 0));
      },
    ),
    { numRuns: 2000 },
  );
});

Deno.test("encodeAsciiKey: refuses non-ASCII keys and keys over the limit or the buffer", () => {
  const out = new Int32Array(2 + 4);
  assert.equal(encodeAsciiKey("abc\u0080", out, 16), -1);
  assert.equal(encodeAsciiKey("abcdé", out, 16), -1);
  assert.equal(encodeAsciiKey("😀", out, 16), -1);
  assert.equal(encodeAsciiKey("x".repeat(17), out, 16), -1); // over maxBytes
  assert.equal(encodeAsciiKey("x".repeat(17), out, 64), -1); // over the buffer
  assert.equal(encodeAsciiKey("x".repeat(16), out, 16), 16);
  assert.equal(encodeAsciiKey("", out, 16), 0);
  assert.equal(out[0], hashBytes(new Uint8Array(0), 0, 0, 0) | 0);
});
