/**
 * The fast implementation's front door: `fastRun(op, inputs, profile)` over
 * plain JSON values, with the operation names, input names and output names
 * of the catalogue (src/ops.ts, spec/ops.md), so that a caller switches
 * between the float64 reference and the float32 fast implementation by
 * changing one function. Each op maps its named inputs onto the fast
 * function of its spec section and returns every output as a tensor.
 */
import { VdspecError } from '../errors.js';
import {
  checkOpCall,
  getOp,
  inCatalogueTerms,
  labelsInput,
  sgvbArguments,
  layerCallArguments,
  layerInput,
  resolveNames,
  type OpSpec,
} from '../ops.js';
import { getProfile, type Profile, type ProfileName } from '../profiles.js';
import { scalar, type Tensor } from '../tensor.js';
import { activeBackend, initBackend } from './backend.js';
import {
  fastConv2dEval,
  fastConv2dEvalUnmasked,
  fastConv2dEvalVjp,
  fastConv2dTrain,
  fastConv2dTrainVjp,
  type FastConv2dEvalInputs,
  type FastConv2dOptions,
  type FastConv2dTrainInputs,
} from './conv2d.js';
import {
  fastDenseEval,
  fastDenseEvalUnmasked,
  fastDenseEvalVjp,
  fastDensePredictMc,
  fastDenseTrain,
  fastDenseTrainVjp,
  type FastDenseTrainInputs,
  type FastLayerGradients,
  type FastTrainResult,
} from './dense.js';
import {
  fastDenseAKl,
  fastDenseAKlVjp,
  fastDenseATrain,
  fastDenseATrainVjp,
  type FastDenseAInputs,
} from './denseA.js';
import { fastLayerKl, fastLayerKlVjp } from './kl.js';
import {
  fastCrossEntropy,
  fastKlApprox,
  fastKlWeightSchedule,
  fastSgvbObjective,
} from './objective.js';
import { fastKeepMask, fastLogAlpha } from './weights.js';

export type FastOutputs = Record<string, Tensor>;

/**
 * The operations of the catalogue that the fast implementation does not
 * answer, each with the reason; fastRun rejects them with
 * VdspecError('unsupported', ..., 'op') after checking the call.
 */
export const FAST_UNSUPPORTED_OPS: Readonly<Record<string, string>> = {
  'kl.exact':
    'the exact KL is a float64 series of up to thousands of Poisson-weighted digamma terms, ' +
    'reference-only by design: it exists to measure the approximations against (spec/kl.md#klexact), ' +
    'and no training step needs it',
};

/**
 * The fast functions name some arguments as their own signatures do
 * (`options.stride`, `cotangent.output`, `trainSize`); a caller of fastRun
 * passed them under the catalogue's input names, so errors are reported
 * under those.
 */
function underInputNames<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    throw inCatalogueTerms(e);
  }
}

function train(r: FastTrainResult): FastOutputs {
  return { mean: r.mean, variance: r.variance, output: r.output };
}

function layerCall(op: OpSpec, given: Record<string, unknown>, profile: Profile): FastOutputs {
  const call = layerCallArguments(op, given, profile);
  // The fast functions check every value; the casts only name the fields.
  const inputs = call.inputs as FastDenseTrainInputs & FastConv2dTrainInputs;
  const options = call.options as FastConv2dOptions;
  const cotangent = { output: call.cotangent as Tensor };
  const gradients = (g: FastLayerGradients): FastOutputs => call.gradientOutputs(g);
  const evalInputs: FastConv2dEvalInputs = inputs;
  const kind = call.kind;
  if (op.layer === 'dense') {
    switch (kind) {
      case 'train':
        return train(fastDenseTrain(inputs, profile, options));
      case 'eval':
        return { output: fastDenseEval(evalInputs, profile) };
      case 'eval_unmasked':
        return { output: fastDenseEvalUnmasked(evalInputs, profile) };
      case 'predict_mc': {
        const r = fastDensePredictMc(inputs, profile, options);
        return { mean_output: r.meanOutput, mean_softmax: r.meanSoftmax };
      }
      case 'train_vjp':
        return gradients(fastDenseTrainVjp(inputs, cotangent, profile, options));
      case 'eval_vjp':
        return gradients(fastDenseEvalVjp(evalInputs, cotangent, profile));
    }
  } else {
    switch (kind) {
      case 'train':
        return train(fastConv2dTrain(inputs, profile, options));
      case 'eval':
        return { output: fastConv2dEval(evalInputs, profile, options) };
      case 'eval_unmasked':
        return { output: fastConv2dEvalUnmasked(evalInputs, profile, options) };
      case 'train_vjp':
        return gradients(fastConv2dTrainVjp(inputs, cotangent, profile, options));
      case 'eval_vjp':
        return gradients(fastConv2dEvalVjp(evalInputs, cotangent, profile, options));
    }
  }
  throw new VdspecError('unknown_op', `no fast implementation of ${op.name}`, 'op');
}

function call(op: OpSpec, given: Record<string, unknown>, profile: Profile): FastOutputs {
  if (op.layer !== null) return layerCall(op, given, profile);
  const noise = given[profile.noiseParameter] as Tensor;
  const theta = given['theta'] as Tensor;
  switch (op.name) {
    case 'kl.approx': {
      const r = fastKlApprox(given['log_alpha'] as Tensor, profile);
      return { kl: r.kl, dkl_dlog_alpha: r.derivative };
    }
    case 'svd.log_alpha':
    case 'vd.log_alpha':
      return { log_alpha: fastLogAlpha(theta, noise, profile, layerInput(given['layer'])) };
    case 'svd.mask':
      return { mask: fastKeepMask(theta, noise, profile, layerInput(given['layer'])) };
    case 'kl.layer': {
      const layer = layerInput(given['layer']);
      const kl = fastLayerKl({ theta, noise }, profile, layer);
      const grad = fastLayerKlVjp({ theta, noise }, 1, profile, layer);
      return {
        kl: scalar(kl),
        grad_theta: grad.theta,
        [`grad_${profile.noiseParameter}`]: grad.noise,
      };
    }
    case 'vd.dense_a.train':
    case 'vd.dense_a.train_vjp': {
      // The fast functions check every value; the cast only names the fields.
      const a = {
        x: given['x'],
        theta,
        noise,
        bias: given['bias'],
        eps: given['eps'],
      } as FastDenseAInputs;
      if (op.name === 'vd.dense_a.train') return train(fastDenseATrain(a, profile));
      const g = fastDenseATrainVjp(a, given['cotangent'] as Tensor, profile);
      return {
        grad_x: g.x,
        grad_theta: g.theta,
        [`grad_${profile.noiseParameter}`]: g.noise,
        grad_bias: g.bias,
      };
    }
    case 'vd.dense_a.kl':
      return {
        kl: scalar(fastDenseAKl({ theta, noise }, profile)),
        [`grad_${profile.noiseParameter}`]: fastDenseAKlVjp({ theta, noise }, 1, profile),
      };
    case 'objective.cross_entropy': {
      const ce = fastCrossEntropy(given['logits'] as Tensor, labelsInput(given['labels']));
      return {
        per_example: { shape: [ce.perExample.length], data: ce.perExample },
        mean: scalar(ce.mean),
      };
    }
    case 'objective.sgvb': {
      const r = fastSgvbObjective(sgvbArguments(given));
      return { loss: scalar(r.loss), data_term: scalar(r.dataTerm), kl_term: scalar(r.klTerm) };
    }
    case 'schedule.kl_weight':
      return { kl_weight: scalar(fastKlWeightSchedule(given['epoch'] as number)) };
  }
  throw new VdspecError('unknown_op', `no fast implementation of ${op.name}`, 'op');
}

/**
 * Run operation `opName` of the fast implementation on JSON-able `inputs`
 * under `profile`: the same op names, inputs, outputs and input checks as
 * the reference's `run` (spec/ops.md), computed in float32 with tfjs.
 * Initialises the default backend (initBackend) on first use if none is
 * active. Ops in FAST_UNSUPPORTED_OPS are rejected with
 * VdspecError('unsupported', ..., 'op') once the call itself is valid.
 */
export async function fastRun(
  opName: string,
  inputs: unknown,
  profileIn: Profile | ProfileName | string,
): Promise<FastOutputs> {
  const op = getOp(opName);
  const profile = getProfile(profileIn);
  const given = checkOpCall(op, inputs, profile);
  const unsupported = FAST_UNSUPPORTED_OPS[op.name];
  if (unsupported !== undefined) {
    throw new VdspecError(
      'unsupported',
      `${op.name} has no fast implementation: ${unsupported}; use the reference`,
      'op',
    );
  }
  if (activeBackend() === null) await initBackend();
  const outputs = underInputNames(() => call(op, given, profile));
  // Every catalogue output, in the catalogue's order.
  return Object.fromEntries(resolveNames(op, profile).outputs.map((n) => [n, outputs[n]!]));
}
