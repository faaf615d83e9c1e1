/**
 * vdspec: the executable specification of Variational Dropout (Kingma 2015)
 * and Sparse Variational Dropout (Molchanov 2017). The float64 reference is
 * also exported on its own from `vdspec/reference`.
 */
export * from './constants.js';
export * from './errors.js';
export * from './profiles.js';
export * from './tensor.js';
export * from './ops.js';
export * as reference from './reference/index.js';
