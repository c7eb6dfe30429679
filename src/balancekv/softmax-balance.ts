/**
 * SoftmaxBalance, the theoretical halving of BalanceKV (arXiv 2502.07861, Alg. 2), for
 * study: the Alweiss-Liu-Sawhney self-balancing walk kernelised through
 * kappa((k,v),(k',v')) = exp(temp*<k,k'>/sqrt(d)) * (<v,v'> + c0), with
 *   p_i = 1/2 - h_i / (2 c R^2),   FAIL if |h_i| > c R^2,
 *   R = exp(temp * r_key^2 / (2 sqrt(d))) * sqrt(r_value^2 + c0)   (max RKHS norm),
 *   c = 30 ln(n/delta),
 * output: the smaller sign class with weight 2 (`smallerClassHalving`).
 *
 * It runs on the same kernel as the practical walk with gamma = 1/(2cR^2) passed as its
 * logarithm (it underflows float32 for real key norms) and no key centring; the FAIL
 * event is exactly a saturated probability (|gamma*h| > 1/2), which the kernel counts.
 * Differences from the paper: the walk runs per block of B tokens (n = B in c), not over
 * the whole set; the numerator and denominator share one walk through c0 (the paper runs
 * a second instance on (k, 1)); radii are the measured maxima of the pass unless given.
 * With these constants gamma ~ 1e-12 for key norm 15: the walk is uniform random halving.
 */
import type { WalkParams } from './params.ts';

/** Default failure probability delta of SoftmaxBalance. */
export const DEFAULT_DELTA = 0.01;
/** The constant of c = 30 ln(n/delta). */
const C_FACTOR = 30;

/** ln(gamma) of SoftmaxBalance: -ln(2c) - 2 ln R. */
export function softmaxBalanceLogGamma(rKey: number, rValue: number, n: number, d: number, temp: number, c0: number, delta: number): number {
  const c = C_FACTOR * Math.log(Math.max(n, 2) / delta);
  const lnR = (temp * rKey * rKey) / (2 * Math.sqrt(d)) + 0.5 * Math.log(rValue * rValue + c0);
  return -Math.log(2 * c) - 2 * lnR;
}

/** Largest key norm and weighted value norm over the rows `order` (`[tokens][d]` arrays). */
export function radii(keys: Float32Array, values: Float32Array, d: number, order: Int32Array, weights: Float64Array | null): { rKey: number; rValue: number } {
  let rk = 0, rv = 0;
  for (let r = 0; r < order.length; r++) {
    const o = order[r] * d;
    let sk = 0, sv = 0;
    for (let c = 0; c < d; c++) { sk += keys[o + c] ** 2; sv += values[o + c] ** 2; }
    const w = weights ? weights[r] : 1;
    rk = Math.max(rk, Math.sqrt(sk));
    rv = Math.max(rv, Math.sqrt(sv) * w);
  }
  return { rKey: rk, rValue: rv };
}

/** Walk parameters of one SoftmaxBalance pass (uncentred keys, theoretical gamma). */
export function softmaxBalanceParams(base: WalkParams, rKey: number, rValue: number, d: number, delta: number): WalkParams {
  const logGamma = softmaxBalanceLogGamma(rKey, rValue, base.blockSize, d, base.temp, base.c0, delta);
  return { ...base, center: 'none', beta: 0, logGamma, gamma: Math.exp(logGamma) };
}
