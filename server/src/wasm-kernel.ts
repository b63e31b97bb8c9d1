// WebAssembly SIMD kernels over an imported memory that is replaced, never grown, when more room is needed.
// Growing a memory detaches its old ArrayBuffer, and after the first detach in a thread V8's optimized code checks
// every typed-array access for one: measured here, a JS Cholesky ran 30 % slower for the rest of the process after a
// single memory.grow (the same after one transferred ArrayBuffer), and a fresh memory of the new size costs nothing
// of the kind.

const PAGE = 65536;

export class WasmKernel<E> {
  private memory: WebAssembly.Memory;
  /** The instance's exported functions, for the current memory. */
  exports: E;

  private constructor(private readonly module: WebAssembly.Module) {
    this.memory = new WebAssembly.Memory({ initial: 1 });
    this.exports = this.instantiate();
  }

  /** An instance of the module (base64) for this thread; undefined where WebAssembly SIMD is unavailable. */
  static create<E>(base64: string): WasmKernel<E> | undefined {
    const bytes = Buffer.from(base64, 'base64');
    return WebAssembly.validate(bytes) ? new WasmKernel<E>(new WebAssembly.Module(bytes)) : undefined;
  }

  /** The current memory's bytes. Views of it stay valid; after `reserve` replaces it they see the old memory. */
  get buffer(): ArrayBuffer {
    return this.memory.buffer;
  }

  /**
   * At least `bytes` of memory, replacing the current one when it is smaller (its contents are not carried over);
   * false when the host refuses the allocation.
   */
  reserve(bytes: number): boolean {
    if (bytes <= this.memory.buffer.byteLength) return true;
    try {
      this.memory = new WebAssembly.Memory({ initial: Math.ceil(bytes / PAGE) });
    } catch {
      return false;
    }
    this.exports = this.instantiate();
    return true;
  }

  private instantiate(): E {
    return new WebAssembly.Instance(this.module, { env: { memory: this.memory } }).exports as E;
  }
}
