/**
 * The SharedHeap's hooks for sabre's own structures: its WebAssembly kernels,
 * the pins their calls take, and this worker's key and epoch words. They are
 * not part of the public API, since a call at the wrong moment (an unpin in
 * the middle of a lookup, a kernel function given a stray offset) breaks the
 * heap's reclamation or its memory. SharedHeap's static block installs them;
 * until then each one throws.
 *
 * @module
 */

import type { SharedHeap } from "./heap.ts";
import type { Kernel } from "./_kernel.ts";
import type { StringKernel } from "./_string_kernel.ts";

/** What SharedHeap gives installHeapHooks. */
export interface HeapHooks {
  heapKernel(heap: SharedHeap): Kernel | null;
  kernelForRead(heap: SharedHeap): Kernel | null;
  stringKernelForRead(heap: SharedHeap): StringKernel | null;
  kernelTrapped(heap: SharedHeap, error: unknown): void;
  kernelUnpin(heap: SharedHeap): void;
  kernelKeyWords(heap: SharedHeap): Int32Array<ArrayBufferLike>;
  epochWordAt(heap: SharedHeap): number;
  endAtTaskEnd(end: () => void): void;
}

function notInstalled(): never {
  throw new Error("sabre: the SharedHeap hooks are used before memory/heap.ts was loaded");
}

/**
 * The kernel (sabre's WebAssembly fast paths over this heap in this worker),
 * or null where the runtime gave the heap a plain growable SharedArrayBuffer
 * (`heap.memory` is null then). Each function's contract is in
 * memory/kernel.wat.
 */
export let heapKernel: HeapHooks["heapKernel"] = notInstalled;

/**
 * The kernel, for a get: its gets may then leave this worker pinned (a read
 * pin) until the end of the current task, so that a run of gets pays for one
 * pin instead of a pin and an unpin each. A get moves the read pin to the
 * newest epoch, so the epoch keeps advancing while the worker reads. The read
 * pin ends in a microtask queued here, before the worker blocks in sabre, and
 * on `collect()`, `close()`, `pin()` and `SharedHeap.releaseReadPins()`.
 * Inside `pin()` the gets leave the outer pin alone.
 */
export let kernelForRead: HeapHooks["kernelForRead"] = notInstalled;

/**
 * The string kernel (see memory/_string_kernel.ts) for a get, as
 * kernelForRead gives the kernel; null where the runtime cannot run it.
 */
export let stringKernelForRead: HeapHooks["stringKernelForRead"] = notInstalled;

/**
 * For a kernel call that threw: undoes the pin the call may have taken, then,
 * unless `error` is a WebAssembly trap, rethrows it. After a trap the caller
 * takes its JavaScript path. A kernel function traps only on memory that
 * another worker has just added and this worker's instance has not seen yet;
 * anything else (a stack overflow at one of its calls) reaches the caller's
 * caller, with no pin left behind.
 */
export let kernelTrapped: HeapHooks["kernelTrapped"] = notInstalled;

/**
 * Ends the pin that a kernel call kept on returning. A kernel call pins only
 * a worker that holds no pin of its own, so this leaves the epoch word alone
 * inside `pin()`, and a read pin as it is.
 */
export let kernelUnpin: HeapHooks["kernelUnpin"] = notInstalled;

/**
 * Where a kernel string get takes its key (kernel.hashmapGetKeyInSlot): this
 * worker's S_KERNEL_KEY words in the registry, [hash, length, the key's bytes
 * as eight words], which the caller writes just before the call; before the
 * worker joins, scratch words of its own (the call then answers KERNEL_SLOW).
 */
export let kernelKeyWords: HeapHooks["kernelKeyWords"] = notInstalled;

/**
 * Byte address of this worker's epoch word in the heap's registry: the word
 * that `pin()` and the kernel's calls set to the epoch they pin at, and back
 * to 0. Joins the registry on first use; throws after `close()`, like
 * `pin()`.
 */
export let epochWordAt: HeapHooks["epochWordAt"] = notInstalled;

/**
 * Registers `end`, which ends a pin that a structure keeps across its
 * caller's code (a HashMap iteration between two yields), to run once: at
 * the end of the current task, or earlier in `SharedHeap.releaseReadPins()`,
 * which every blocking wait in sabre calls. Register again after each run
 * where the pin is taken again. `end` must not throw.
 */
export let endAtTaskEnd: HeapHooks["endAtTaskEnd"] = notInstalled;

/** The hooks in use; a test that swaps a heap's kernel restores them after. */
export function currentHeapHooks(): HeapHooks {
  return {
    heapKernel,
    kernelForRead,
    stringKernelForRead,
    kernelTrapped,
    kernelUnpin,
    kernelKeyWords,
    epochWordAt,
    endAtTaskEnd,
  };
}

/** Called by SharedHeap's static block, and by tests that swap a heap's kernel. */
export function installHeapHooks(hooks: HeapHooks): void {
  heapKernel = hooks.heapKernel;
  kernelForRead = hooks.kernelForRead;
  stringKernelForRead = hooks.stringKernelForRead;
  kernelTrapped = hooks.kernelTrapped;
  kernelUnpin = hooks.kernelUnpin;
  kernelKeyWords = hooks.kernelKeyWords;
  epochWordAt = hooks.epochWordAt;
  endAtTaskEnd = hooks.endAtTaskEnd;
}
