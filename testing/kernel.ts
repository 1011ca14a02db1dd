/**
 * Heaps with or without sabre's WebAssembly kernel, for tests that run the
 * same checks over the kernel's fast paths and the JavaScript ones.
 *
 * @module
 */

import { SharedHeap, type SharedHeapOptions } from "../memory/mod.ts";
import { setKernelEnabled } from "../memory/_kernel.ts";

/**
 * A new heap whose structures use the kernel (`kernel` true) or only their
 * JavaScript paths. Throws where the kernel was asked for and this runtime
 * cannot provide it, so that a test never passes without what it tests.
 *
 * @example
 * ```ts
 * import { heapWithKernel } from "./kernel.ts";
 * console.assert(heapWithKernel(false).kernel === null);
 * ```
 */
export function heapWithKernel(kernel: boolean, options?: SharedHeapOptions): SharedHeap {
  const was = setKernelEnabled(kernel);
  try {
    const heap = SharedHeap.create(options);
    if ((heap.kernel !== null) !== kernel) {
      throw new Error(`Cannot make a heap ${kernel ? "with" : "without"} the kernel here`);
    }
    return heap;
  } finally {
    setKernelEnabled(was);
  }
}
