/**
 * The float64 reference of VD and Sparse VD (spec/README.md): one function
 * per operation of the spec, plus the hand-derived gradients.
 */
export * from './kl.js';
export * from './logAlpha.js';
export * from './dense.js';
export * from './denseA.js';
export * from './conv2d.js';
export * from './objective.js';
export { run, type Outputs } from './run.js';
