/**
 * BalanceKV walk parameters: defaults (the authors' code, github.com/ksheth96/BalanceKV,
 * `run_longbench.py` and `src/balanced_walk.py`), validation, and the resolved form
 * both walk backends (WebAssembly kernel, float64 reference) consume.
 *
 * Paper: Kochetkova, Sheth, Han, Zandieh, Kapralov, "Streaming Attention Approximation
 * via Discrepancy Theory" (BalanceKV), arXiv 2502.07861.
 */
import { EdgeKVError, argError, checkInt, checkKeys, checkNum, checkOneOf } from '../errors.ts';

/** Walk constant gamma of the authors' code (p = 1/2 - gamma*h). */
export const DEFAULT_GAMMA = 4;
/** Kernel temperature of the LongBench runs. */
export const TEMP_LONGBENCH = 1;
/** Kernel temperature of the single-layer study (Fig. 1 notebook). */
export const TEMP_SINGLE_LAYER = 0.1;
/** Tokens per walk block (LongBench default; the single-layer study uses 256). */
export const DEFAULT_BLOCK_SIZE = 128;
/** Largest block the kernel accepts (scratch grows as 2*B*d floats). */
export const MAX_BLOCK_SIZE = 4096;
/** Constant added to the value kernel: 0.025 (balances the denominator) + 1e-8 of the code. */
export const DEFAULT_C0 = 0.025 + 1e-8;
/** Most halvings (levels) supported: 2^-24 compression. */
export const MAX_LEVELS = 24;

/** How keys are centred before the kernel. */
export type CenterMode = 'padded' | 'real' | 'none';
/** Every `CenterMode`, for validation and docs. */
export const CENTER_MODES = ['padded', 'real', 'none'] as const;

/** Options of one discrepancy walk (every field optional; defaults above). */
export interface WalkOptions {
  /** Walk constant gamma >= 0 (0: random signs, the repo's uniform baseline). Default 4. */
  gamma?: number;
  /** Kernel temperature > 0: exp(temp*<k̄,k̄'>/sqrt(d)). Default 1 (0.1 in the single-layer study). */
  temp?: number;
  /**
   * Shift of the kernel's exponent: G = exp(temp*<k̄,k̄'>/sqrt(d) - beta)*(...). A number
   * (default 0, the paper's walk, evaluated without overflow for any key norm), or 'auto':
   * beta = the block's largest diagonal exponent, which normalises the kernel (largest
   * exponential factor 1) and so makes the walk LESS greedy than the paper's: a different
   * walk, kept for study.
   */
  beta?: number | 'auto';
  /** Tokens per block B: an even integer in [2, 4096]. Default 128. */
  blockSize?: number;
  /** Constant c0 >= 0 added to the value kernel <ṽ,ṽ'>. Default 0.025 + 1e-8. */
  c0?: number;
  /**
   * Key centring: 'padded' (default, as the code: mean over the block including the zero
   * pads of the last block), 'real' (mean over real tokens only), 'none'.
   */
  center?: CenterMode;
  /**
   * Rescale the weights kept by each halving so that they sum to the weight they replace
   * (the code's prefix rule loses mass when one sign class never reaches n/2). Default false.
   */
  massCorrection?: boolean;
}

/** Option names of `WalkOptions` (unknown keys are rejected). */
export const WALK_OPTION_KEYS = ['gamma', 'temp', 'beta', 'blockSize', 'c0', 'center', 'massCorrection'] as const;

/** Kernel flag (mirror of assembly/kernels/walk.ts): subtract the block mean from the keys. */
export const WALK_CENTER = 1;
/** Kernel flag: the block mean divides by B (zero pads counted), not by the real token count. */
export const WALK_CENTER_PADDED = 2;
/** Kernel flag: beta = the block's largest diagonal exponent (see `WalkOptions.beta`). */
export const WALK_BETA_AUTO = 4;

/** Validated walk parameters. `logGamma` is ln(gamma) (-Infinity for gamma = 0). */
export interface WalkParams {
  readonly gamma: number;
  readonly logGamma: number;
  readonly temp: number;
  readonly beta: number | 'auto';
  readonly blockSize: number;
  readonly c0: number;
  readonly center: CenterMode;
  readonly massCorrection: boolean;
}

/** Flags word of the kernel for these parameters. */
export function walkFlags(p: Pick<WalkParams, 'center' | 'beta'>): number {
  let f = 0;
  if (p.center !== 'none') f |= WALK_CENTER;
  if (p.center === 'padded') f |= WALK_CENTER_PADDED;
  if (p.beta === 'auto') f |= WALK_BETA_AUTO;
  return f;
}

/** Validate walk options (prefix names the options object in messages) and fill defaults. */
export function resolveWalkParams(o: WalkOptions = {}, prefix = 'options'): WalkParams {
  if (o === null || typeof o !== 'object') throw argError(prefix, o, 'an options object');
  const gamma = checkNum(`${prefix}.gamma`, o.gamma ?? DEFAULT_GAMMA, 0, Number.MAX_VALUE);
  const temp = o.temp ?? TEMP_LONGBENCH;
  if (typeof temp !== 'number' || !Number.isFinite(temp) || temp <= 0) {
    throw argError(`${prefix}.temp`, temp, 'a finite number > 0', `use ${TEMP_LONGBENCH} (LongBench) or ${TEMP_SINGLE_LAYER} (single-layer study)`);
  }
  const beta = o.beta ?? 0;
  if (beta !== 'auto' && (typeof beta !== 'number' || !Number.isFinite(beta))) {
    throw argError(`${prefix}.beta`, beta, `a finite number or "auto"`);
  }
  const blockSize = checkInt(`${prefix}.blockSize`, o.blockSize ?? DEFAULT_BLOCK_SIZE, 2, MAX_BLOCK_SIZE);
  if (blockSize % 2 !== 0) throw argError(`${prefix}.blockSize`, blockSize, `an even integer in [2, ${MAX_BLOCK_SIZE}]`, 'a halving keeps blockSize/2 tokens of a full block');
  const c0 = checkNum(`${prefix}.c0`, o.c0 ?? DEFAULT_C0, 0, Number.MAX_VALUE);
  const center = checkOneOf(`${prefix}.center`, o.center ?? 'padded', CENTER_MODES);
  const massCorrection = o.massCorrection ?? false;
  if (typeof massCorrection !== 'boolean') throw argError(`${prefix}.massCorrection`, massCorrection, 'true or false');
  return { gamma, logGamma: gamma === 0 ? -Infinity : Math.log(gamma), temp, beta, blockSize, c0, center, massCorrection };
}

/** Check an options object for unknown keys among `allowed`. */
export function checkOptionKeys(name: string, o: object, allowed: readonly string[]): void {
  checkKeys(name, o, allowed);
}

/** Number of tokens left after T halvings of n: floor applied T times. */
export function keptAfter(n: number, levels: number): number {
  let m = n;
  for (let t = 0; t < levels; t++) m = Math.floor(m / 2);
  return m;
}

/** Levels T for a compression ratio 2^-T (ratio must be 1/2, 1/4, ..., 2^-24). */
export function levelsForRatio(ratio: number, name = 'ratio'): number {
  if (typeof ratio !== 'number' || !Number.isFinite(ratio) || ratio <= 0 || ratio >= 1) {
    throw argError(name, ratio, 'a power of two 2^-T with T in [1, 24] (0.5, 0.25, 0.125, ...)');
  }
  const T = Math.round(-Math.log2(ratio));
  if (T < 1 || T > MAX_LEVELS || Math.abs(2 ** -T - ratio) > 1e-12 * ratio) {
    throw argError(name, ratio, 'a power of two 2^-T with T in [1, 24] (0.5, 0.25, 0.125, ...)', 'each halving keeps half; use levels for an explicit T');
  }
  return T;
}

/** Reject levels that would leave nothing of a non-empty middle of n tokens. */
export function checkLevelsLeaveTokens(levels: number, n: number, name = 'levels'): void {
  if (n > 0 && keptAfter(n, levels) === 0) {
    const most = Math.floor(Math.log2(n));
    throw new EdgeKVError('E_BUDGET', `${name} = ${levels} would leave 0 of the ${n} compressible tokens; expected at most ${most} halvings for ${n} tokens`, name);
  }
}
