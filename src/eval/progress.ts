/**
 * Progress reporting for long runs, on stderr only (stdout stays clean for --json).
 * On a TTY: one redrawn bar; elsewhere: a line every few seconds.
 */
export class Progress {
  private done = 0;
  private readonly start = Date.now();
  private lastLine = 0;
  private readonly tty: boolean;
  constructor(private readonly total: number, private readonly label: string, private readonly enabled = true) {
    this.tty = typeof process !== 'undefined' && !!process.stderr?.isTTY;
  }
  tick(note = ''): void {
    this.done++;
    if (!this.enabled) return;
    const now = Date.now();
    const el = (now - this.start) / 1000;
    const eta = this.done > 0 ? (el / this.done) * (this.total - this.done) : 0;
    const frac = this.total ? this.done / this.total : 1;
    if (this.tty) {
      const w = 24, f = Math.round(frac * w);
      process.stderr.write(`\r${this.label} [${'#'.repeat(f)}${'.'.repeat(w - f)}] ${this.done}/${this.total} ${el.toFixed(0)}s eta ${eta.toFixed(0)}s ${note.slice(0, 40).padEnd(40)}`);
      if (this.done >= this.total) process.stderr.write('\n');
    } else if (now - this.lastLine > 5000 || this.done >= this.total) {
      this.lastLine = now;
      process.stderr.write(`${this.label}: ${this.done}/${this.total} (${(frac * 100).toFixed(0)}%, ${el.toFixed(0)}s, eta ${eta.toFixed(0)}s) ${note}\n`);
    }
  }
}
