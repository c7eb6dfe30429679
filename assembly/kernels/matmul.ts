// Model-runner kernels (matvec / matmul over f32 and f16 weights, RMSNorm, RoPE,
// SwiGLU, softmax helpers). STUB: owned by the model-runner helper.
export function matmulPlaceholder(): void {}
