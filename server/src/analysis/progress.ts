// A one-line progress bar for terminals (stderr, redrawn in place at most 10 times a second).
export class ProgressLine {
  private last = 0;
  private readonly start = Date.now();
  private stageStart = this.start;
  private drawn = false;

  constructor(
    private readonly out: NodeJS.WriteStream,
    private label: string,
    /** What is counted: `done / scale` is printed with this name. */
    private unit = { name: 'M weights', scale: 1e6 },
  ) {}

  /** A new stage of the same job: a new label and unit, the clock keeps running. */
  stage(label: string, unit = this.unit): void {
    this.label = label;
    this.unit = unit;
    this.last = 0;
    this.stageStart = Date.now();
  }

  update(done: number, total: number): void {
    const now = Date.now();
    if (now - this.last < 100 && done < total) return;
    this.last = now;
    const frac = total > 0 ? Math.min(1, done / total) : 1;
    const width = 24;
    const fill = Math.round(frac * width);
    const secs = (now - this.start) / 1000;
    const stageSecs = (now - this.stageStart) / 1000;
    const eta = frac > 0 && frac < 1 ? ` · ETA ${Math.ceil((stageSecs / frac) * (1 - frac))} s` : '';
    const text = `${this.label} ${'█'.repeat(fill)}${'░'.repeat(width - fill)} ${(frac * 100).toFixed(0).padStart(3)}% · ${this.count(done)} / ${this.count(total)} ${this.unit.name} · ${secs.toFixed(1)} s${eta}`;
    this.out.write(`\r${text.slice(0, Math.max(20, (this.out.columns || 100) - 1))}\x1b[K`);
    this.drawn = true;
  }

  private count(n: number): string {
    return this.unit.scale === 1 ? String(n) : (n / this.unit.scale).toFixed(1);
  }

  /** Erase the line. */
  done(): void {
    if (this.drawn) this.out.write('\r\x1b[K');
  }
}
