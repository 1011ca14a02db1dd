/**
 * The check of an options object that every sabre constructor and call that
 * takes one makes: an object (or undefined), with no field it does not
 * know, so that a misspelt option fails rather than leaving its default in
 * force (`{ capcity: 8 }` would give an unbounded queue).
 *
 * @module
 */

import { describeValue } from "./errors.ts";

/**
 * Throws TypeError where `options` is neither undefined nor an object, or
 * names a field outside `allowed`. `what` completes "Cannot ...".
 */
export function checkOptionFields(
  options: unknown,
  allowed: readonly string[],
  what: string,
): void {
  if (options === undefined) return;
  if (typeof options !== "object" || options === null) {
    throw new TypeError(
      `Cannot ${what} as 'options' must be an object: current value is ${describeValue(options)}`,
    );
  }
  for (const field in options) {
    if (!Object.hasOwn(options, field) || allowed.includes(field)) continue;
    throw new TypeError(
      `Cannot ${what} as 'options' has no field '${field}' (it takes ${
        allowed.map((name) => `'${name}'`).join(", ")
      }): current value is ${describeValue((options as Record<string, unknown>)[field])}`,
    );
  }
}
