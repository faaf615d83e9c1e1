/**
 * The float32 fast implementation on TensorFlow.js (spec/fast.md). Same
 * operations, inputs and outputs as the float64 reference, computed with
 * tfjs kernels; call `await initBackend()` once before any operation.
 */
export {
  activeBackend,
  availableBackends,
  BACKEND_ENV_VAR,
  FAST_BACKENDS,
  initBackend,
  type BackendInfo,
  type FastBackend,
  type InitBackendOptions,
} from './backend.js';
export { fastKeepMask, fastLogAlpha, fastWeightVariance } from './weights.js';
export {
  fastKlPerWeight,
  fastKlSum,
  fastLayerKl,
  fastLayerKlVjp,
  type FastLayerKlGradient,
  type FastLayerKlInputs,
} from './kl.js';
export {
  fastDenseEval,
  fastDenseEvalUnmasked,
  fastDenseEvalVjp,
  fastDensePredictMc,
  fastDenseTrain,
  fastDenseTrainVjp,
  type FastCotangent,
  type FastDenseEvalInputs,
  type FastDenseOptions,
  type FastDenseTrainInputs,
  type FastLayerGradients,
  type FastPredictMcResult,
  type FastTrainCotangent,
  type FastTrainResult,
} from './dense.js';
export {
  fastDenseAKl,
  fastDenseAKlVjp,
  fastDenseATrain,
  fastDenseATrainVjp,
  type FastDenseAInputs,
  type FastDenseAKlInputs,
} from './denseA.js';
export {
  fastConv2dEval,
  fastConv2dEvalUnmasked,
  fastConv2dEvalVjp,
  fastConv2dTrain,
  fastConv2dTrainVjp,
  type FastConv2dEvalInputs,
  type FastConv2dOptions,
  type FastConv2dPadding,
  type FastConv2dPath,
  type FastConv2dStride,
  type FastConv2dTrainInputs,
} from './conv2d.js';
export {
  fastCrossEntropy,
  fastKlApprox,
  fastKlWeightSchedule,
  fastSgvbObjective,
  type FastCrossEntropy,
  type FastKlApprox,
  type FastKlWeightScheduleOptions,
  type FastSgvbInputs,
  type FastSgvbObjective,
} from './objective.js';
export { FAST_UNSUPPORTED_OPS, fastRun, type FastOutputs } from './run.js';
export { LENET_300_100, LENET_5_CAFFE, type FastLayerSpec } from './networks.js';
export { adamUpdateTf, createAdamSlots } from './adam.js';
export { createFastModel, type FastModel } from './fast-model.js';
export type {
  FastModelOptions,
  FastModelState,
  FastNetworkLayer,
  FastStateTensor,
} from './model-types.js';
