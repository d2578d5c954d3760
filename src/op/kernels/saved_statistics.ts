/**
 * The forward statistics a fused backward needs, kept beside the output tensor they belong to:
 * the cpu and wasm kernels record the per-row log-sum-exp (B, U, T) of each output (keyed by the
 * output's data id, so it goes away with the tensor), and the registered gradient reads it instead
 * of recomputing it. O(B·U·T) floats per live output, in JS memory.
 */
const logSumExpByOutput = new WeakMap<object, Float32Array>();

export function recordLogSumExp(outputDataId: object, logSumExp: Float32Array | undefined): void {
  if (logSumExp !== undefined) logSumExpByOutput.set(outputDataId, logSumExp);
}

export function savedLogSumExp(outputDataId: object): Float32Array | undefined {
  return logSumExpByOutput.get(outputDataId);
}
