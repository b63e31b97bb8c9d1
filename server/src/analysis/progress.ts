// A one-line progress bar for terminals (stderr, redrawn in place at most 10 times a second).
export class ProgressLine {
  private last = 0;
  private readonly start = Date.now();
  private drawn = false;

  constructor(
    private readonly out: NodeJS.WriteStream,
    private readonly label: string,
  ) {}

  update(done: number, total: number): void {
    const now = Date.now();
    if (now - this.last < 100 && done < total) return;
    this.last = now;
    const frac = total > 0 ? Math.min(1, done / total) : 1;
    const width = 24;
    const fill = Math.round(frac * width);
    const secs = (now - this.start) / 1000;
    const eta = frac > 0 && frac < 1 ? ` · ETA ${Math.ceil((secs / frac) * (1 - frac))} s` : '';
    const text = `${this.label} ${'█'.repeat(fill)}${'░'.repeat(width - fill)} ${(frac * 100).toFixed(0).padStart(3)}% · ${(done / 1e6).toFixed(1)} / ${(total / 1e6).toFixed(1)} M weights · ${secs.toFixed(1)} s${eta}`;
    this.out.write(`\r${text.slice(0, Math.max(20, (this.out.columns || 100) - 1))}\x1b[K`);
    this.drawn = true;
  }

  /** Erase the line. */
  done(): void {
    if (this.drawn) this.out.write('\r\x1b[K');
  }
}
