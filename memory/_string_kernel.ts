/**
 * The string kernel: `HashMap.get` of a string key with the key handed to
 * WebAssembly as the JavaScript string itself.
 *
 * Reading a 16-character key with `charCodeAt` in JavaScript took about 2.3
 * times as long as `Map.get` of that key, in cache and over 1M keys alike:
 * each `charCodeAt` looks again at how V8 stores the string. The
 * `wasm:js-string` builtins' `intoCharCodeArray` copies the whole key into a
 * WebAssembly array in one call, and this module encodes and hashes it from
 * there as `encodeAsciiKey` does (the same words, the same hash), writes it
 * to the worker's S_KERNEL_KEY words and calls the kernel's
 * `hashmapGetKeyInSlot`: a get is then one call from JavaScript.
 *
 * The module needs WebAssembly GC (for the array) and the js-string
 * builtins, which `wabt` cannot assemble, so it is written here as
 * instructions and assembled when first used. Where the runtime lacks
 * either, `instantiateStringKernel` answers null and the maps encode keys
 * in JavaScript as before.
 *
 * @module
 */

import { type Kernel, KERNEL_SLOW } from "./_kernel.ts";
import { KERNEL_KEY_WORDS } from "./_layout.ts";

/** The longest key the string kernel takes: S_KERNEL_KEY's bytes. */
export const STRING_KERNEL_MAX_LENGTH = (KERNEL_KEY_WORDS - 2) * 4;

/**
 * The string kernel of one heap in one worker (see the module doc, and
 * stringKernelForRead in memory/_heap_hooks.ts).
 */
export interface StringKernel {
  /**
   * Tells the instance the byte address of the calling worker's S_KERNEL_KEY
   * words, or 0 while the worker has none (it has not joined the heap, or
   * has left it): hashmapGetString then answers KERNEL_SLOW.
   */
  setKeyAt(at: number): void;
  /**
   * `HashMap.get` of `key` in the map whose header is at `header`: encodeKey,
   * then the kernel's hashmapGetKeyInSlot, with
   * `hashmapGetKeyInSlot`'s answers (the value, KERNEL_ABSENT or
   * KERNEL_SLOW). KERNEL_SLOW also for the empty key, a key longer than
   * `maxLength` (at most KERNEL_KEY_BYTES), a key with a code unit of 0x80
   * or above, and while setKeyAt holds 0. Traps, as the kernel does, on
   * memory that this worker's instance has not seen grow yet.
   */
  hashmapGetString(key: string, maxLength: number, header: number): number;
  /**
   * Writes `key` to the worker's S_KERNEL_KEY words as `encodeAsciiKey`
   * lays it out ([hash, length, the key's bytes as little-endian words, the
   * last padded with zero bytes]) and returns its length; or returns 0,
   * having written nothing that counts, for the empty key, a key longer than
   * `maxLength` (at most KERNEL_KEY_BYTES), a key with a code unit of 0x80
   * or above, and while setKeyAt holds 0.
   */
  encodeKey(key: string, maxLength: number): number;
}

// ---- a small assembler for the instructions below ----

function unsignedLeb(value: number): number[] {
  const out: number[] = [];
  do {
    let byte = value & 0x7f;
    value >>>= 7;
    if (value !== 0) byte |= 0x80;
    out.push(byte);
  } while (value !== 0);
  return out;
}

function signedLeb(value: number): number[] {
  const out: number[] = [];
  value |= 0;
  for (;;) {
    const byte = value & 0x7f;
    value >>= 7;
    const done = (value === 0 && (byte & 0x40) === 0) || (value === -1 && (byte & 0x40) !== 0);
    out.push(done ? byte : byte | 0x80);
    if (done) return out;
  }
}

function vector(items: number[][]): number[] {
  return [...unsignedLeb(items.length), ...items.flat()];
}

function name(text: string): number[] {
  return [...unsignedLeb(text.length), ...Array.from(text, (c) => c.charCodeAt(0))];
}

function section(id: number, body: number[]): number[] {
  return [id, ...unsignedLeb(body.length), ...body];
}

const I32 = 0x7f;
const F64 = 0x7c;
const EXTERNREF = 0x6f;
const VOID = 0x40;

// Type indices.
const T_CHARS = 0; // (array (mut i16)): the type intoCharCodeArray fills
const T_INTO = 1; // intoCharCodeArray: (externref, (ref null 0), i32) -> i32
const T_LENGTH = 2; // length: (externref) -> i32
const T_GET_IN_SLOT = 3; // hashmapGetKeyInSlot: (i32) -> f64
const T_SET_KEY_AT = 4; // setKeyAt: (i32) -> ()
const T_ENCODE_KEY = 5; // encodeKey: (externref, i32) -> i32
const T_GET_STRING = 6; // hashmapGetString: (externref, i32, i32) -> f64

// Function indices: the three imports, then the three functions.
const F_INTO = 0;
const F_LENGTH = 1;
const F_GET_IN_SLOT = 2;
const F_SET_KEY_AT = 3;
const F_ENCODE_KEY = 4;
const F_GET_STRING = 5;

// Globals.
const G_KEY_AT = 0; // mut i32: S_KERNEL_KEY's byte address, or 0
const G_CHARS = 1; // (ref $chars) of KERNEL_KEY_BYTES code units

// The parameters and locals of encodeKey and hashmapGetString. Index 2 is
// hashmapGetString's header; encodeKey has no third parameter and declares
// index 2 as a local it leaves alone, so that both share the indices below.
const P_KEY = 0;
const P_MAX_LENGTH = 1;
const P_HEADER = 2;
const L_KEY_AT = 3;
const L_LENGTH = 4;
const L_AT = 5; // index of the next code unit
const L_HASH = 6;
const L_WORD = 7;
const L_UNIT = 8;
const L_UNITS_OR = 9; // every code unit or-ed: 0x80 or above means not ASCII
const LOCALS = 7; // L_KEY_AT to L_UNITS_OR, all i32

// Instructions, as byte lists.
const localGet = (i: number) => [0x20, i];
const localSet = (i: number) => [0x21, i];
const localTee = (i: number) => [0x22, i];
const globalGet = (i: number) => [0x23, i];
const i32Const = (n: number) => [0x41, ...signedLeb(n)];
const call = (f: number) => [0x10, ...unsignedLeb(f)];
const i32Store = (offset: number) => [0x36, 2, ...unsignedLeb(offset)];
const f64Const = (n: number) => [0x44, ...new Uint8Array(new Float64Array([n]).buffer)];
const [BLOCK, LOOP, IF, END, BR, BR_IF, RETURN, DROP] = [2, 3, 4, 0x0b, 0x0c, 0x0d, 0x0f, 0x1a];
const [I32_EQZ, I32_LT_U, I32_GT_U, I32_GE_U] = [0x45, 0x49, 0x4b, 0x4f];
const [I32_ADD, I32_SUB, I32_MUL, I32_OR, I32_XOR, I32_SHL, I32_SHR_U, I32_ROTL] = [
  0x6a,
  0x6b,
  0x6c,
  0x72,
  0x73,
  0x74,
  0x76,
  0x77,
];
const arrayGetUnsigned = (type: number) => [0xfb, 0x0d, ...unsignedLeb(type)];
const arrayNewDefault = (type: number) => [0xfb, 0x07, ...unsignedLeb(type)];

/** The code unit at L_AT + offset, also or-ed into L_UNITS_OR; left on the stack. */
function unitAt(offset: number): number[] {
  return [
    ...globalGet(G_CHARS),
    ...localGet(L_AT),
    ...(offset === 0 ? [] : [...i32Const(offset), I32_ADD]),
    ...arrayGetUnsigned(T_CHARS),
    ...localTee(L_UNIT),
    ...localGet(L_UNITS_OR),
    I32_OR,
    ...localSet(L_UNITS_OR),
    ...localGet(L_UNIT),
  ];
}

/** `then`, where the code unit at L_AT + offset is part of the key. */
function ifUnitLeft(offset: number, then: number[]): number[] {
  return [
    ...localGet(L_AT),
    ...(offset === 0 ? [] : [...i32Const(offset), I32_ADD]),
    ...localGet(L_LENGTH),
    I32_LT_U,
    IF,
    VOID,
    ...then,
    END,
  ];
}

/** L_WORD |= the code unit at L_AT + offset, in its byte of the word. */
function orUnitIntoWord(offset: number): number[] {
  return [
    ...unitAt(offset),
    ...(offset === 0 ? [] : [...i32Const(offset * 8), I32_SHL]),
    ...localGet(L_WORD),
    I32_OR,
    ...localSet(L_WORD),
  ];
}

// MurmurHash3's steps, as _murmur.ts has them, on L_HASH and L_WORD.
const C1 = 0xcc9e2d51;
const C2 = 0x1b873593;
/** L_WORD scrambled (k * C1, rotated 15, * C2), on the stack. */
const scrambledWord = [
  ...localGet(L_WORD),
  ...i32Const(C1),
  I32_MUL,
  ...i32Const(15),
  I32_ROTL,
  ...i32Const(C2),
  I32_MUL,
];
const mixBlock = [
  ...scrambledWord,
  ...localGet(L_HASH),
  I32_XOR,
  ...i32Const(13),
  I32_ROTL,
  ...i32Const(5),
  I32_MUL,
  ...i32Const(0xe6546b64),
  I32_ADD,
  ...localSet(L_HASH),
];
const mixTail = [...scrambledWord, ...localGet(L_HASH), I32_XOR, ...localSet(L_HASH)];
/** h ^= h >>> shift */
const xorShift = (shift: number) => [
  ...localGet(L_HASH),
  ...localGet(L_HASH),
  ...i32Const(shift),
  I32_SHR_U,
  I32_XOR,
  ...localSet(L_HASH),
];
const multiplyHash = (
  by: number,
) => [...localGet(L_HASH), ...i32Const(by), I32_MUL, ...localSet(L_HASH)];
const finish = [
  ...localGet(L_HASH),
  ...localGet(L_LENGTH),
  I32_XOR,
  ...localSet(L_HASH),
  ...xorShift(16),
  ...multiplyHash(0x85ebca6b),
  ...xorShift(13),
  ...multiplyHash(0xc2b2ae35),
  ...xorShift(16),
];

/**
 * encodeKey's body, and hashmapGetString's: `bail` returns where the key
 * cannot be taken, `done` ends the function once the words are written.
 */
function encodeBody(bail: number[], done: number[]): number[] {
  return [
    // No key words yet: nothing to write.
    ...globalGet(G_KEY_AT),
    ...localTee(L_KEY_AT),
    I32_EQZ,
    IF,
    VOID,
    ...bail,
    END,
    // length - 1 >= maxLength (unsigned) catches the empty key too.
    ...localGet(P_KEY),
    ...call(F_LENGTH),
    ...localTee(L_LENGTH),
    ...i32Const(1),
    I32_SUB,
    ...localGet(P_MAX_LENGTH),
    I32_GE_U,
    IF,
    VOID,
    ...bail,
    END,
    ...localGet(P_KEY),
    ...globalGet(G_CHARS),
    ...i32Const(0),
    ...call(F_INTO),
    DROP,
    // Whole words: while at + 4 <= length.
    BLOCK,
    VOID,
    LOOP,
    VOID,
    ...localGet(L_AT),
    ...i32Const(4),
    I32_ADD,
    ...localGet(L_LENGTH),
    I32_GT_U,
    BR_IF,
    1,
    ...unitAt(0),
    ...unitAt(1),
    ...i32Const(8),
    I32_SHL,
    I32_OR,
    ...unitAt(2),
    ...i32Const(16),
    I32_SHL,
    I32_OR,
    ...unitAt(3),
    ...i32Const(24),
    I32_SHL,
    I32_OR,
    ...localSet(L_WORD),
    // The key's bytes from the third word (plain stores: only this worker
    // reads them, in the call below).
    ...localGet(L_KEY_AT),
    ...localGet(L_AT),
    I32_ADD,
    ...localGet(L_WORD),
    ...i32Store(8),
    ...mixBlock,
    ...localGet(L_AT),
    ...i32Const(4),
    I32_ADD,
    ...localSet(L_AT),
    BR,
    0,
    END,
    END,
    // One to three code units left: the last word, zero-padded.
    ...ifUnitLeft(0, [
      ...i32Const(0),
      ...localSet(L_WORD),
      ...orUnitIntoWord(0),
      ...ifUnitLeft(1, [...orUnitIntoWord(1), ...ifUnitLeft(2, orUnitIntoWord(2))]),
      ...localGet(L_KEY_AT),
      ...localGet(L_AT),
      I32_ADD,
      ...localGet(L_WORD),
      ...i32Store(8),
      ...mixTail,
    ]),
    // Not ASCII: the general path encodes it.
    ...localGet(L_UNITS_OR),
    ...i32Const(0x80),
    I32_GE_U,
    IF,
    VOID,
    ...bail,
    END,
    ...finish,
    ...localGet(L_KEY_AT),
    ...localGet(L_HASH),
    ...i32Store(0),
    ...localGet(L_KEY_AT),
    ...localGet(L_LENGTH),
    ...i32Store(4),
    ...done,
    END,
  ];
}

function functionCode(locals: number[][], body: number[]): number[] {
  const code = [...vector(locals), ...body];
  return [...unsignedLeb(code.length), ...code];
}

/** The string kernel's bytes; `slow` is the answer KERNEL_SLOW. */
export function assembleStringKernel(slow: number): Uint8Array {
  const types = vector([
    [0x5e, 0x77, 0x01], // array of mutable i16
    [0x60, 3, EXTERNREF, 0x63, ...signedLeb(T_CHARS), I32, 1, I32],
    [0x60, 1, EXTERNREF, 1, I32],
    [0x60, 1, I32, 1, F64],
    [0x60, 1, I32, 0],
    [0x60, 2, EXTERNREF, I32, 1, I32],
    [0x60, 3, EXTERNREF, I32, I32, 1, F64],
  ]);
  const imports = vector([
    [...name("wasm:js-string"), ...name("intoCharCodeArray"), 0, ...unsignedLeb(T_INTO)],
    [...name("wasm:js-string"), ...name("length"), 0, ...unsignedLeb(T_LENGTH)],
    [...name("sabre"), ...name("hashmapGetKeyInSlot"), 0, ...unsignedLeb(T_GET_IN_SLOT)],
    // As kernel.wat's: shared, 1 to 65536 pages.
    [...name("sabre"), ...name("memory"), 2, 3, ...unsignedLeb(1), ...unsignedLeb(65536)],
  ]);
  const functions = vector([
    unsignedLeb(T_SET_KEY_AT),
    unsignedLeb(T_ENCODE_KEY),
    unsignedLeb(T_GET_STRING),
  ]);
  const globals = vector([
    [I32, 1, ...i32Const(0), END],
    // (ref $chars), immutable, made once per instance.
    [
      0x64,
      ...signedLeb(T_CHARS),
      0,
      ...i32Const(STRING_KERNEL_MAX_LENGTH),
      ...arrayNewDefault(T_CHARS),
      END,
    ],
  ]);
  const exports = vector([
    [...name("setKeyAt"), 0, ...unsignedLeb(F_SET_KEY_AT)],
    [...name("encodeKey"), 0, ...unsignedLeb(F_ENCODE_KEY)],
    [...name("hashmapGetString"), 0, ...unsignedLeb(F_GET_STRING)],
  ]);
  const code = vector([
    functionCode([], [...localGet(0), 0x24, G_KEY_AT, END]),
    functionCode(
      [[LOCALS + 1, I32]],
      encodeBody([...i32Const(0), RETURN], localGet(L_LENGTH)),
    ),
    functionCode(
      [[LOCALS, I32]],
      encodeBody([...f64Const(slow), RETURN], [...localGet(P_HEADER), ...call(F_GET_IN_SLOT)]),
    ),
  ]);
  return new Uint8Array([
    ...[0x00, 0x61, 0x73, 0x6d, 1, 0, 0, 0],
    ...section(1, types),
    ...section(2, imports),
    ...section(3, functions),
    ...section(6, globals),
    ...section(7, exports),
    ...section(10, code),
  ]);
}

let compiled: WebAssembly.Module | null | undefined;
let enabled = true;

/** The compiled string kernel, or null where the runtime cannot compile it. */
function stringKernelModule(): WebAssembly.Module | null {
  if (compiled === undefined) {
    compiled = null;
    try {
      // The second argument is the js-string builtins' compile option, which
      // TypeScript's lib does not know yet.
      const options = { builtins: ["js-string"] };
      const Module = WebAssembly.Module as unknown as new (
        bytes: Uint8Array,
        options: unknown,
      ) => WebAssembly.Module;
      compiled = new Module(assembleStringKernel(KERNEL_SLOW), options);
    } catch {
      // No WebAssembly GC: the JavaScript encoder serves.
    }
  }
  return compiled;
}

/**
 * The string kernel over `memory`, calling `kernel`, or null where the
 * runtime lacks WebAssembly GC or the js-string builtins (a runtime without
 * the builtins asks for them as imports, which are not given: the
 * instantiation fails).
 */
export function instantiateStringKernel(
  memory: WebAssembly.Memory,
  kernel: Kernel,
): StringKernel | null {
  const module = enabled ? stringKernelModule() : null;
  if (module === null) return null;
  try {
    const imports = { sabre: { memory, hashmapGetKeyInSlot: kernel.hashmapGetKeyInSlot } };
    return new WebAssembly.Instance(module, imports).exports as unknown as StringKernel;
  } catch {
    return null;
  }
}

/**
 * Turns the string kernel on or off for heaps created from now on in this
 * worker, and returns the previous setting. For tests of the kernel's gets
 * with keys encoded in JavaScript.
 */
export function setStringKernelEnabled(on: boolean): boolean {
  const was = enabled;
  enabled = on;
  return was;
}
