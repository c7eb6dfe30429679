/**
 * Counter-based random numbers of the BalanceKV walk, identical in the WebAssembly
 * kernel (assembly/kernels/walk.ts) and in this TypeScript host: the uniform of a
 * token is a pure function of (key, index), so a walk is reproducible from its seed,
 * independent of how many numbers were drawn before, and the float64 reference draws
 * exactly the numbers the kernel draws.
 *
 * - `mix32`: a 32-bit integer finaliser (xor-shift / multiply, two multiplies).
 * - `walkKey(seed, stream, a, b)`: folds a seed, a stream (e.g. one per lane) and two
 *   counters (halving iteration, or merge-and-reduce level and merge count) into one
 *   32-bit key.
 * - `walkUniform(key, index)`: `mix32(mix32(index ^ key) + GOLDEN) >>> 8` times 2^-24,
 *   a multiple of 2^-24 in [0, 1): exactly representable in f32 and f64.
 */

/** 2^32 divided by the golden ratio (odd): added between hash rounds. */
export const GOLDEN = 0x9e3779b9;
/** Salt folded into the seed so that seed 0 does not start from key 0. */
const SEED_SALT = 0x85ebca6b;
/** Bits of a hash kept for a uniform (exact in f32). */
const UNIFORM_BITS = 24;
const UNIFORM_SCALE = 2 ** -UNIFORM_BITS;

/** One round of the 32-bit finaliser; input and output are uint32 bit patterns. */
export function mix32(x: number): number {
  x ^= x >>> 16;
  x = Math.imul(x, 0x7feb352d);
  x ^= x >>> 15;
  x = Math.imul(x, 0x846ca68b);
  x ^= x >>> 16;
  return x >>> 0;
}

/** The key of one walk: seed, stream and two counters folded into a uint32. */
export function walkKey(seed: number, stream: number, a: number, b: number): number {
  let k = mix32((seed ^ SEED_SALT) >>> 0);
  k = mix32(((k ^ stream) + GOLDEN) >>> 0);
  k = mix32(((k ^ a) + GOLDEN) >>> 0);
  k = mix32(((k ^ b) + GOLDEN) >>> 0);
  return k;
}

/** The uniform in [0, 1) of counter `index` under `key` (same bits as the kernel's). */
export function walkUniform(key: number, index: number): number {
  const x = mix32((mix32((index ^ key) >>> 0) + GOLDEN) >>> 0);
  return (x >>> (32 - UNIFORM_BITS)) * UNIFORM_SCALE;
}

/** A small seeded generator for tests, baselines and synthetic data (not the walk's). */
export class SplitRng {
  private key: number;
  private counter = 0;
  constructor(seed: number, stream = 0) { this.key = walkKey(seed, stream, 0x5eed, 0); }
  /** Uniform in [0, 1) with 24 random bits. */
  next(): number { return walkUniform(this.key, this.counter++); }
  /** Uniform integer in [0, n). */
  below(n: number): number { return Math.min(n - 1, Math.floor(this.next() * n)); }
  /** Standard normal (Box-Muller). */
  normal(): number {
    const u = 1 - this.next();
    const v = this.next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }
}
