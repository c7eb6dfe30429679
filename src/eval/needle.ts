/**
 * Needle retrieval prompts in mix-27m's trained format: a line `[ref NAME = VALUE]`
 * is inserted at a chosen depth of a haystack (validation text), and the prompt ends
 * with `[ask NAME] =`; the model must continue with ` VALUE` (greedy, exact match).
 * Format from ../shared/models/mix-27m/reference.json (`needle_format`).
 */
import { SplitMix } from './rng.ts';

export interface Needle { name: string; value: string }

/** A fresh needle: NAME like `kx_4821`, VALUE a 5-8 digit number (seeded). */
export function makeNeedle(rng: SplitMix): Needle {
  const letters = 'abcdefghijklmnopqrstuvwxyz';
  const name = letters[rng.int(26)] + letters[rng.int(26)] + '_' + String(1000 + rng.int(9000));
  const digits = 5 + rng.int(4);
  let value = String(1 + rng.int(9));
  for (let i = 1; i < digits; i++) value += String(rng.int(10));
  return { name, value };
}

/**
 * Build the prompt text: `haystack` cut at a line boundary near `depth` (0..1),
 * the ref line inserted there, and the question at the end.
 */
export function needlePrompt(haystack: string, needle: Needle, depth: number): string {
  let at = Math.floor(haystack.length * depth);
  const nl = haystack.lastIndexOf('\n', at);
  at = nl < 0 ? 0 : nl + 1;
  const ref = `[ref ${needle.name} = ${needle.value}]\n`;
  const ask = `\n[ask ${needle.name}] =`;
  const body = haystack.slice(0, at) + ref + haystack.slice(at);
  return body.replace(/\s+$/, '') + ask;
}

/** Did the greedy continuation retrieve the value? (leading space, then the digits, then a non-digit or end) */
export function needleHit(continuation: string, needle: Needle): boolean {
  const t = continuation.replace(/^ /, '');
  if (!t.startsWith(needle.value)) return false;
  const next = t.charAt(needle.value.length);
  return next === '' || !/[0-9A-Za-z_]/.test(next);
}
