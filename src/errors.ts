/**
 * Typed errors. Every check at the library's boundary throws an `EdgeKVError`
 * whose message names the argument, the value it got, the allowed range and the
 * fix; `code` is stable and machine-readable. A call that throws changes nothing.
 */

/** Stable error codes. */
export type EdgeKVErrorCode =
  | 'E_ARG'          // an argument is out of range or of the wrong type
  | 'E_SHAPE'        // lengths / shapes do not match
  | 'E_NONFINITE'    // NaN or Infinity where only finite values are allowed
  | 'E_UNSUPPORTED'  // a head dim / format / option the library does not support
  | 'E_BUDGET'       // a budget that cannot be met
  | 'E_STATE'        // the object is disposed or in the wrong state
  | 'E_SNAPSHOT'     // a snapshot is truncated, altered or foreign
  | 'E_MODEL'        // a model file is missing or damaged
  | 'E_BACKEND'      // no backend could be created
  | 'E_OOM';         // WebAssembly memory could not grow

export class EdgeKVError extends Error {
  readonly code: EdgeKVErrorCode;
  /** The argument / option / file the error is about, when there is one. */
  readonly argument?: string;
  constructor(code: EdgeKVErrorCode, message: string, argument?: string) {
    super(message);
    this.name = 'EdgeKVError';
    this.code = code;
    this.argument = argument;
  }
}

/** Throw `E_ARG` naming `name`, its `value` and the allowed range. */
export function argError(name: string, value: unknown, allowed: string, fix?: string): EdgeKVError {
  return new EdgeKVError('E_ARG', `${name} = ${fmt(value)} is not allowed: expected ${allowed}${fix ? `. ${fix}` : ''}`, name);
}

export function shapeError(name: string, got: unknown, expected: string): EdgeKVError {
  return new EdgeKVError('E_SHAPE', `${name} has ${fmt(got)}; expected ${expected}`, name);
}

export function fmt(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'number' || typeof v === 'bigint' || typeof v === 'boolean' || v == null) return String(v);
  if (ArrayBuffer.isView(v)) return `${v.constructor.name}(${(v as unknown as ArrayLike<number>).length})`;
  try { return JSON.stringify(v)?.slice(0, 80) ?? String(v); } catch { return String(v); }
}

/** Require an integer in [lo, hi]. */
export function checkInt(name: string, v: unknown, lo: number, hi: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < lo || v > hi) {
    throw argError(name, v, `an integer in [${lo}, ${hi}]`);
  }
  return v;
}

/** Require a finite number in [lo, hi]. */
export function checkNum(name: string, v: unknown, lo: number, hi: number): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < lo || v > hi) {
    throw argError(name, v, `a finite number in [${lo}, ${hi}]`);
  }
  return v;
}

/** Require one of `allowed`. */
export function checkOneOf<T extends string | number>(name: string, v: unknown, allowed: readonly T[]): T {
  if (!allowed.includes(v as T)) throw argError(name, v, `one of ${allowed.map((a) => JSON.stringify(a)).join(', ')}`);
  return v as T;
}

/** Require a Float32Array of exactly `len` elements, all finite. */
export function checkF32(name: string, v: unknown, len: number, finite = true): Float32Array {
  if (!(v instanceof Float32Array)) throw argError(name, v, `a Float32Array of length ${len}`);
  if (v.length !== len) throw shapeError(name, `length ${v.length}`, `length ${len}`);
  if (finite) {
    for (let i = 0; i < v.length; i++) {
      if (!Number.isFinite(v[i])) {
        throw new EdgeKVError('E_NONFINITE', `${name}[${i}] = ${v[i]} is not finite; keys, values and queries must be finite numbers`, name);
      }
    }
  }
  return v;
}

/** Reject unknown keys in an options object (typos must not pass silently). */
export function checkKeys(name: string, obj: object, allowed: readonly string[]): void {
  for (const k of Object.keys(obj)) {
    if (!allowed.includes(k)) {
      throw new EdgeKVError('E_ARG', `${name}.${k} is not a known option; known options: ${allowed.join(', ')}`, `${name}.${k}`);
    }
  }
}
