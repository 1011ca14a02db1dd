/**
 * Heaps with or without sabre's WebAssembly kernel, for tests that run the
 * same checks over the kernel's fast paths and the JavaScript ones.
 *
 * @module
 */

import { SharedHeap, type SharedHeapOptions } from "../memory/mod.ts";
import { setKernelEnabled } from "../memory/_kernel.ts";
import { setStringKernelEnabled } from "../memory/_string_kernel.ts";
import { heapKernel, stringKernelForRead } from "../memory/_heap_hooks.ts";

/**
 * Which of sabre's WebAssembly fast paths a test heap has: both kernels
 * (`true`), the kernel alone, its string gets taking keys that JavaScript
 * encoded (`"no string kernel"`), or neither (`false`).
 */
export type KernelChoice = boolean | "no string kernel";

/**
 * Every KernelChoice, for tests that run the same checks over each.
 *
 * @example
 * ```ts
 * import { KERNEL_CHOICES } from "./kernel.ts";
 * console.assert(KERNEL_CHOICES.length === 3);
 * ```
 */
export const KERNEL_CHOICES: readonly KernelChoice[] = [true, "no string kernel", false];

/**
 * A KernelChoice in a test's name: "" for both kernels.
 *
 * @example
 * ```ts
 * import { kernelLabel } from "./kernel.ts";
 * console.assert(kernelLabel(false) === " (no kernel)");
 * ```
 */
export function kernelLabel(kernel: KernelChoice): string {
  return kernel === true ? "" : kernel === false ? " (no kernel)" : " (no string kernel)";
}

/**
 * A new heap whose structures use both kernels (`kernel` true), the kernel
 * alone (`"no string kernel"`), or only their JavaScript paths (false).
 * Throws where this runtime cannot give the heap what was asked for, so that
 * a test never passes without what it tests.
 *
 * @example
 * ```ts
 * import { heapWithKernel } from "./kernel.ts";
 * import { heapKernel } from "../memory/_heap_hooks.ts";
 * console.assert(heapKernel(heapWithKernel(false)) === null);
 * ```
 */
export function heapWithKernel(kernel: KernelChoice, options?: SharedHeapOptions): SharedHeap {
  const was = setKernelEnabled(kernel !== false);
  const stringsWere = setStringKernelEnabled(kernel === true);
  try {
    const heap = SharedHeap.create(options);
    const strings = stringKernelForRead(heap) !== null;
    SharedHeap.releaseReadPins();
    if ((heapKernel(heap) !== null) !== (kernel !== false) || strings !== (kernel === true)) {
      throw new Error(`Cannot make a heap${kernelLabel(kernel) || " with both kernels"} here`);
    }
    return heap;
  } finally {
    setKernelEnabled(was);
    setStringKernelEnabled(stringsWere);
  }
}
