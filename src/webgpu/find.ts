/**
 * The runtime's WebGPU entry point: `navigator.gpu` (browsers, Deno), else in Node the
 * optional `webgpu` package (Dawn), which edgekv does not depend on at run time: install it
 * (`npm install webgpu`) to use a GPU from Node. On a machine without a GPU, Dawn needs a
 * software Vulkan driver: Chromium's SwiftShader ICD is used when installed and
 * `VK_ICD_FILENAMES` is unset.
 */
import type { Gpu } from './gpu-types.ts';
import { EdgeKVError } from '../errors.ts';

/** Chromium's SwiftShader Vulkan ICD on Debian (`apt-get install chromium`). */
export const SWIFTSHADER_ICD = '/usr/lib/chromium/vk_swiftshader_icd.json';

/** Find a `GPU` object, or throw `E_BACKEND` saying what is missing. */
export async function findGpu(): Promise<Gpu> {
  const nav = (globalThis as { navigator?: { gpu?: Gpu } }).navigator;
  if (nav?.gpu) return nav.gpu;
  const proc = (globalThis as { process?: { env: Record<string, string | undefined> } }).process;
  if (proc?.env && !proc.env.VK_ICD_FILENAMES) {
    const fs = await import('node:fs');
    if (fs.existsSync(SWIFTSHADER_ICD)) proc.env.VK_ICD_FILENAMES = SWIFTSHADER_ICD;
  }
  try {
    const name = 'webgpu';
    const m = (await import(name)) as { create: (flags: string[]) => Gpu };
    return m.create([]);
  } catch (e) {
    throw new EdgeKVError('E_BACKEND', `no WebGPU here: navigator.gpu is undefined and the optional "webgpu" package does not load (${(e as Error).message.split('\n')[0]}); npm install webgpu, or run under Deno / a browser`, 'gpu');
  }
}
