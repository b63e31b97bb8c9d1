// When the language server dies: restart it, but not forever. A server that crashes again and again (a corrupt
// install, a checkpoint that kills every reader) gets `max` restarts within `windowMs`, then the client gives up
// and says so. Pure logic (no vscode import), so it is unit-tested.

export interface RestartDecision {
  restart: boolean;
  /** Crashes counted inside the window, this one included. */
  crashes: number;
}

export class RestartPolicy {
  private crashes: number[] = [];

  constructor(
    readonly max = 4,
    readonly windowMs = 3 * 60_000,
  ) {}

  /** Record a crash at `now` (ms): restart while fewer than `max` restarts happened in the last `windowMs`. */
  crashed(now: number): RestartDecision {
    this.crashes = this.crashes.filter((t) => now - t < this.windowMs);
    this.crashes.push(now);
    return { restart: this.crashes.length <= this.max, crashes: this.crashes.length };
  }

  /** A restart the user asked for starts a fresh count. */
  reset(): void {
    this.crashes = [];
  }
}
