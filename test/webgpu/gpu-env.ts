/**
 * Finds a WebGPU implementation for the tests, or says why there is none.
 *
 * - Deno / browsers: `navigator.gpu`.
 * - Node (and Bun): the `webgpu` npm package (Dawn). On a machine without a GPU it
 *   needs Chromium's SwiftShader Vulkan driver: `VK_ICD_FILENAMES` is pointed at
 *   `/usr/lib/chromium/vk_swiftshader_icd.json` when that file exists and the variable
 *   is unset (`apt-get install -y chromium`, see .ci/install-system.sh).
 */
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Gpu } from '../../src/webgpu/gpu-types.ts';

import { SWIFTSHADER_ICD } from '../../src/webgpu/find.ts';

export interface GpuEnv {
  gpu: Gpu | null;
  /** Why there is no GPU (printed by the skipping test file). */
  reason: string;
  /** Where the GPU came from. */
  source: string;
}

let cached: Promise<GpuEnv> | undefined;

/** One lookup per process. */
export function gpuEnv(): Promise<GpuEnv> {
  cached ??= find();
  return cached;
}

async function find(): Promise<GpuEnv> {
  const nav = (globalThis as { navigator?: { gpu?: Gpu } }).navigator;
  if (nav?.gpu) {
    const a = await nav.gpu.requestAdapter().catch(() => null);
    if (a) return { gpu: nav.gpu, reason: '', source: 'navigator.gpu' };
    return { gpu: null, reason: 'navigator.gpu has no adapter', source: 'navigator.gpu' };
  }
  if (typeof process !== 'undefined' && process.env) {
    if (!process.env.VK_ICD_FILENAMES && existsSync(SWIFTSHADER_ICD)) process.env.VK_ICD_FILENAMES = SWIFTSHADER_ICD;
    // Dawn's Vulkan loader complains on stderr without it (harmless)
    if (!process.env.XDG_RUNTIME_DIR) process.env.XDG_RUNTIME_DIR = mkdtempSync(join(tmpdir(), 'edgekv-xdg-'));
  }
  let mod: { create: (flags: string[]) => Gpu };
  try {
    const name = 'webgpu';
    mod = (await import(name)) as typeof mod;
  } catch (e) {
    return { gpu: null, reason: `the "webgpu" package does not load here (${(e as Error).message.split('\n')[0]})`, source: 'webgpu' };
  }
  const gpu = mod.create([]);
  const a = await gpu.requestAdapter().catch(() => null);
  if (!a) {
    const icd = existsSync(SWIFTSHADER_ICD) ? `VK_ICD_FILENAMES=${process.env.VK_ICD_FILENAMES ?? ''}` : `${SWIFTSHADER_ICD} is missing (apt-get install -y chromium)`;
    return { gpu: null, reason: `no WebGPU adapter from the "webgpu" package (${icd})`, source: 'webgpu' };
  }
  return { gpu, reason: '', source: 'webgpu (Dawn) + Vulkan' };
}

/** Deterministic uniform(-1, 1) generator. */
export function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13; s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5; s >>>= 0;
    return (s / 2 ** 32) * 2 - 1;
  };
}
