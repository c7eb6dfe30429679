/** Seeded random data for the kernel tests: deterministic inputs on every run. */
export { mulberry32 as rng } from '../../src/model/sampling.ts';

/** `n` Gaussian samples (Box-Muller) drawn from `r`. */
export function gauss(r: () => number, n: number, sd = 1, mean = 0): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const u = Math.max(r(), 1e-12), v = r();
    out[i] = mean + sd * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }
  return out;
}
