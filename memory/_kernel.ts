/**
 * The kernel: sabre's hottest paths (reads, and HashMap.set) in WebAssembly,
 * over the heap's own memory (see kernel.wat for why and for each function's
 * contract).
 *
 * A heap is backed by a shared `WebAssembly.Memory` where the runtime
 * supports one with a growable buffer; its structures then call the kernel,
 * and fall back to their JavaScript paths otherwise. Both paths follow the
 * same memory-model patterns and give the same answers.
 *
 * @module
 */

import { KERNEL_BASE64 } from "./_kernel_bytes.ts";
import { H_EPOCH, PAGE_BYTES } from "./_layout.ts";

/**
 * sabre's WebAssembly fast paths, one instance per heap per worker (see
 * heapKernel in memory/_heap_hooks.ts). Each function's contract is in
 * memory/kernel.wat.
 */
export interface Kernel {
  /**
   * Tells this instance the calling worker's epoch word (its byte address),
   * or 0 when the worker leaves the heap: every function below pins through
   * it, and answers its bail-out (KERNEL_SLOW, or 0 for the sets) while it
   * is 0. Called by SharedHeap alone.
   */
  setPinWord(at: number): void;
  /**
   * Lets the gets keep the worker pinned between calls (a read pin), moving
   * the pin to the newest epoch as they go. Called by SharedHeap alone, while
   * the worker holds no pin of its own.
   */
  allowReadPins(): void;
  /**
   * Ends read pins: the gets pin per call again. `unpin` 1 also clears the
   * epoch word; 0 leaves it to the caller. Called by SharedHeap alone.
   */
  endReadPins(unpin: number): void;
  /** The byte address of the global epoch word that the pins read: EPOCH_AT. */
  readonly epochAt: WebAssembly.Global;
  /** Loc.get: the value, or KERNEL_SLOW. */
  locGet(word: number): number;
  /** HashMap.get of an int key: the value, KERNEL_ABSENT or KERNEL_SLOW. */
  hashmapGetInt(header: number, key: number): number;
  /**
   * HashMap.get of an ASCII string key of 1 to 32 bytes, in a map whose
   * values the kernel reads, the key given in the calling worker's
   * S_KERNEL_KEY words (kernelKeyWords in _heap_hooks.ts): the value,
   * KERNEL_ABSENT or KERNEL_SLOW.
   */
  hashmapGetKeyInSlot(header: number): number;
  /**
   * HashMap.set of an int key whose entry the caller built, under a
   * KERNEL_WRITE_* mode: 0 (nothing written, take the general path), 1 (a
   * new key), minus the table's address (a new key, and the table must
   * grow), KERNEL_NOT_WRITTEN (the mode forbade it), or the replaced slot
   * word. Under KERNEL_ADD it first stores the sum in `entry`. With
   * `entry` 0 it deletes the key instead (mode
   * KERNEL_WRITE_IF_EQUAL or KERNEL_WRITE_IF_PRESENT): the slot word gets
   * the DELETED tag, and the answer is the slot word before it. The change
   * in the map's size (+1, -1) goes to the word at byte `stripeAt`.
   */
  hashmapSetInt(
    header: number,
    key: number,
    keyAt: number,
    entry: number,
    mode: number,
    valueAt: number,
    valueKind: number,
    expected: number,
    stripeAt: number,
  ): number;
  /**
   * HashMap.set of an ASCII string key of 1 to 32 bytes, given as in
   * hashmapGetAscii, whose entry the caller built: answers as hashmapSetInt.
   */
  hashmapSetAscii(
    header: number,
    hash: number,
    length: number,
    keyAt: number,
    w0: number,
    w1: number,
    w2: number,
    w3: number,
    w4: number,
    w5: number,
    w6: number,
    w7: number,
    entry: number,
    mode: number,
    valueKind: number,
    expected: number,
    stripeAt: number,
  ): number;
  /**
   * HashMap.get of an ASCII string key of 1 to 32 bytes, given as eight
   * words: the value, KERNEL_ABSENT or KERNEL_SLOW; with valueKind 0, the
   * entry's address, still pinned (release with kernelUnpin in _heap_hooks.ts).
   */
  hashmapGetAscii(
    header: number,
    hash: number,
    length: number,
    keyAt: number,
    w0: number,
    w1: number,
    w2: number,
    w3: number,
    w4: number,
    w5: number,
    w6: number,
    w7: number,
    valueKind: number,
  ): number;
  /**
   * A CAS of the word at byte `at` from `expected` to `replacement` that,
   * when it succeeds, adds `delta` to the word at byte `countAt` in the
   * same call, where a terminated worker cannot stop between the two: the
   * word the CAS saw, as Atomics.compareExchange answers. Traps, having
   * written nothing, on memory this instance has not been told about yet.
   */
  casCounted(
    at: number,
    expected: number,
    replacement: number,
    countAt: number,
    delta: number,
  ): number;
}

/** Kernel answer: take the general path. No integer equals it. */
export const KERNEL_SLOW = 1.5 * 2 ** -1000;
/** Kernel answer: the key is absent. No integer equals it. */
export const KERNEL_ABSENT = 2.5 * 2 ** -1000;
/** Kernel set mode: write whatever the key holds. */
export const KERNEL_WRITE_ALWAYS = 0;
/** Kernel set mode: write only if the key is present with the value `expected`. */
export const KERNEL_WRITE_IF_EQUAL = 1;
/** Kernel set mode: write only if the key is absent. */
export const KERNEL_WRITE_IF_ABSENT = 2;
/** Kernel set mode: write only if the key is present, whatever its value. */
export const KERNEL_WRITE_IF_PRESENT = 3;
/**
 * Kernel set mode: add `expected` (the delta) to the key's value, or to 0
 * where the key is absent; answers 0 where an int sum is out of range.
 */
export const KERNEL_ADD = 4;
/** Kernel set answer: the mode forbade the write; nothing was written. */
export const KERNEL_NOT_WRITTEN = 2;
/** Byte address of the global epoch word, which the kernel's pins read. */
export const EPOCH_AT = H_EPOCH << 2;

let compiled: WebAssembly.Module | null | undefined;
let enabled = true;

/** The compiled kernel, or null where this runtime lacks shared WebAssembly memory. */
function kernelModule(): WebAssembly.Module | null {
  if (compiled === undefined) {
    compiled = null;
    try {
      const binary = atob(KERNEL_BASE64);
      const bytes = new Uint8Array(binary.length);
      for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
      compiled = new WebAssembly.Module(bytes);
    } catch {
      // No WebAssembly, or no threads proposal: the JavaScript paths serve.
    }
  }
  return compiled;
}

/**
 * A shared WebAssembly memory of `initialBytes`, growable to `maxBytes`, and
 * its growable SharedArrayBuffer; null where the runtime cannot make one (or
 * tests turned the kernel off), and the heap then uses a plain growable
 * SharedArrayBuffer.
 */
export function createKernelMemory(
  initialBytes: number,
  maxBytes: number,
): { memory: WebAssembly.Memory; sab: SharedArrayBuffer } | null {
  if (!enabled || kernelModule() === null) return null;
  try {
    const memory = new WebAssembly.Memory({
      initial: initialBytes / PAGE_BYTES,
      maximum: maxBytes / PAGE_BYTES,
      shared: true,
    });
    const toResizable = (memory as { toResizableBuffer?: () => SharedArrayBuffer })
      .toResizableBuffer;
    if (typeof toResizable !== "function") return null;
    const sab = toResizable.call(memory);
    return sab.growable ? { memory, sab } : null;
  } catch {
    return null;
  }
}

/** The kernel over `memory`, or null where it cannot be instantiated. */
export function instantiateKernel(memory: WebAssembly.Memory): Kernel | null {
  const module = kernelModule();
  if (module === null) return null;
  try {
    return new WebAssembly.Instance(module, { sabre: { memory } }).exports as unknown as Kernel;
  } catch {
    return null;
  }
}

/**
 * Turns the kernel on or off for heaps created from now on in this worker,
 * and returns the previous setting. For tests of the JavaScript paths.
 */
export function setKernelEnabled(on: boolean): boolean {
  const was = enabled;
  enabled = on;
  return was;
}
