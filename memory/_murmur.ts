/**
 * MurmurHash3 (x86, 32-bit) as sabre's structures hash bytes, and a fused
 * encoder for ASCII string keys. Internal: the hash of a key is stored in
 * shared entries, so both functions here must keep giving the same value for
 * the same bytes (a change is a layout change of every structure that stores
 * hashes).
 *
 * @module
 */

const C1 = 0xcc9e2d51;
const C2 = 0x1b873593;

function mixBlock(h: number, k: number): number {
  k = Math.imul(k, C1);
  k = (k << 15) | (k >>> 17);
  h ^= Math.imul(k, C2);
  h = (h << 13) | (h >>> 19);
  return (Math.imul(h, 5) + 0xe6546b64) | 0;
}

function mixTail(h: number, k: number): number {
  k = Math.imul(k, C1);
  k = (k << 15) | (k >>> 17);
  return h ^ Math.imul(k, C2);
}

function finish(h: number, length: number): number {
  h ^= length;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * MurmurHash3 of `len` bytes of `s` at `off`, read as little-endian 32-bit
 * blocks; every input bit affects every output bit through the final mix.
 */
export function hashBytes(s: Uint8Array, off: number, len: number, seed: number): number {
  let h = seed | 0;
  const blocksEnd = off + (len & ~3);
  let i = off;
  for (; i < blocksEnd; i += 4) {
    h = mixBlock(h, s[i] | (s[i + 1] << 8) | (s[i + 2] << 16) | (s[i + 3] << 24));
  }
  const rest = len & 3;
  if (rest !== 0) {
    let k = s[i];
    if (rest >= 2) k |= s[i + 1] << 8;
    if (rest === 3) k |= s[i + 2] << 16;
    h = mixTail(h, k);
  }
  return finish(h, len);
}

/**
 * Encodes an ASCII key in one pass over its code units, laid out as an
 * entry that stores its hash: `out[0]` = `hashBytes` of its bytes (seed 0,
 * as an Int32), `out[1]` = its length, then its bytes as little-endian
 * words from `out[2]`, the last word padded with zero bytes. Returns the
 * length, or -1 (with `out` partly written) when `key` has a code unit of
 * 0x80 or above, or is longer than `maxBytes` or than `out` can hold: such
 * keys take the codec's general path.
 */
export function encodeAsciiKey(key: string, out: Int32Array, maxBytes: number): number {
  const length = key.length;
  if (length > maxBytes || (length + 3 >> 2) + 2 > out.length) return -1;
  let h = 0;
  let at = 2;
  let i = 0;
  for (const blocksEnd = length & ~3; i < blocksEnd; i += 4) {
    const c0 = key.charCodeAt(i);
    const c1 = key.charCodeAt(i + 1);
    const c2 = key.charCodeAt(i + 2);
    const c3 = key.charCodeAt(i + 3);
    if ((c0 | c1 | c2 | c3) >= 0x80) return -1;
    const k = c0 | (c1 << 8) | (c2 << 16) | (c3 << 24);
    out[at++] = k;
    h = mixBlock(h, k);
  }
  if (i < length) {
    let k = 0;
    for (let shift = 0; i < length; i++, shift += 8) {
      const c = key.charCodeAt(i);
      if (c >= 0x80) return -1;
      k |= c << shift;
    }
    out[at] = k;
    h = mixTail(h, k);
  }
  out[0] = finish(h, length);
  out[1] = length;
  return length;
}
