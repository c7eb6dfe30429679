/**
 * What every benchmark JSON records about where it ran: the runtime, the machine and
 * the git revision. Each probe degrades to 'unknown' where the runtime lacks node:os /
 * node:child_process or the package is not a git checkout.
 */

/** `git describe --always --dirty` of the working directory, or 'unknown'. */
export async function revision(): Promise<string> {
  try {
    const cp = (await import('node:child_process')) as typeof import('node:child_process');
    return cp.execSync('git describe --always --dirty', { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
  } catch {
    return 'unknown';
  }
}

/** CPU model, logical core count and architecture. */
export async function machine(): Promise<{ cpu: string; cores: number; arch: string }> {
  try {
    const os = (await import('node:os')) as typeof import('node:os');
    const cpus = os.cpus();
    return { cpu: cpus[0]?.model ?? 'unknown', cores: cpus.length, arch: os.arch() };
  } catch {
    return { cpu: 'unknown', cores: 0, arch: 'unknown' };
  }
}

/** 'node vX (v8 Y)', 'deno X' or 'bun X'. */
export function runtimeName(): string {
  const g = globalThis as unknown as { Deno?: { version: { deno: string } }; Bun?: { version: string }; process?: { version: string; versions: { v8: string } } };
  if (g.Deno) return `deno ${g.Deno.version.deno}`;
  if (g.Bun) return `bun ${g.Bun.version}`;
  if (g.process) return `node ${g.process.version} (v8 ${g.process.versions.v8})`;
  return 'unknown';
}
