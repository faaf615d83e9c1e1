/**
 * Moved: the fast model is src/fast/fast-model.ts (its layer lists
 * networks.ts, its types model-types.ts). This file re-exports the two
 * types src/train/checkpoint.ts still imports from here; import from the
 * new files (or src/fast/index.ts) instead.
 */
export type { FastModelState, FastStateTensor } from './model-types.js';
