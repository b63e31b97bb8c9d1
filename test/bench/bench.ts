// Benchmark placeholder.
export {};
