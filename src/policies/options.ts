/** Option declarations shared by policies and stages (validators throw EdgeKVError). */
import { argError, checkInt, checkNum, checkOneOf } from '../errors.ts';
import type { OptionSpec } from './types.ts';

/** An integer option in [lo, hi]. */
export function intOption(def: number, lo: number, hi: number): OptionSpec {
  return { default: def, check: (name, v) => checkInt(name, v, lo, hi) };
}

/** A finite number option in [lo, hi]. */
export function numOption(def: number, lo: number, hi: number): OptionSpec {
  return { default: def, check: (name, v) => checkNum(name, v, lo, hi) };
}

/** One of a list of strings. */
export function oneOfOption<T extends string>(def: T, allowed: readonly T[]): OptionSpec {
  return { default: def, check: (name, v) => checkOneOf(name, v, allowed) };
}

/** An odd integer option in [lo, hi] (pooling kernels). */
export function oddIntOption(def: number, lo: number, hi: number): OptionSpec {
  return {
    default: def,
    check: (name, v) => {
      if (typeof v !== 'number' || !Number.isInteger(v) || v < lo || v > hi || v % 2 === 0) throw argError(name, v, `an odd integer in [${lo}, ${hi}]`);
      return v;
    },
  };
}
