/**
 * The reference's front door: `run(op, inputs, profile)` over plain JSON
 * values (src/ops.ts, spec/ops.md). Each op maps its named inputs onto the
 * reference function of its spec section and returns every output as a tensor.
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
import { checkTensor, scalar, type Tensor } from '../tensor.js';
import {
  conv2dEval,
  conv2dEvalUnmasked,
  conv2dEvalVjp,
  conv2dTrain,
  conv2dTrainVjp,
  type Conv2dOptions,
  type Conv2dTrainInputs,
} from './conv2d.js';
import {
  denseEval,
  denseEvalUnmasked,
  denseEvalVjp,
  densePredictMc,
  denseTrain,
  denseTrainVjp,
  type DenseGradients,
  type DenseTrainInputs,
} from './dense.js';
import {
  denseAKl,
  denseAKlVjp,
  denseATrain,
  denseATrainVjp,
  type DenseATrainInputs,
} from './denseA.js';
import { klApprox, klApproxDerivative, klExact, klExactDerivative } from './kl.js';
import { keepMask, logAlpha } from './logAlpha.js';
import { crossEntropy, klWeightSchedule, layerKl, layerKlVjp, sgvbObjective } from './objective.js';

export type Outputs = Record<string, Tensor>;

function elementwise(t: Tensor, f: (v: number) => number): Tensor {
  return { shape: t.shape, data: t.data.map(f) };
}

function layerCall(op: OpSpec, given: Record<string, unknown>, profile: Profile): Outputs {
  const call = layerCallArguments(op, given, profile);
  // The reference functions check every value; the casts only name the fields.
  const inputs = call.inputs as DenseTrainInputs & Conv2dTrainInputs;
  const options = call.options as Conv2dOptions;
  const cotangent = call.cotangent as Tensor;
  const gradients = (g: DenseGradients): Outputs => call.gradientOutputs(g);
  const kind = call.kind;
  if (op.layer === 'dense') {
    switch (kind) {
      case 'train': {
        const r = denseTrain(inputs, profile, options);
        return { mean: r.mean, variance: r.variance, output: r.output };
      }
      case 'eval':
        return { output: denseEval(inputs, profile) };
      case 'eval_unmasked':
        return { output: denseEvalUnmasked(inputs, profile) };
      case 'predict_mc': {
        const r = densePredictMc(inputs, profile, options);
        return { mean_output: r.meanOutput, mean_softmax: r.meanSoftmax };
      }
      case 'train_vjp':
        return gradients(denseTrainVjp(inputs, { output: cotangent }, profile, options));
      case 'eval_vjp':
        return gradients(denseEvalVjp(inputs, cotangent, profile));
    }
  } else {
    switch (kind) {
      case 'train': {
        const r = conv2dTrain(inputs, profile, options);
        return { mean: r.mean, variance: r.variance, output: r.output };
      }
      case 'eval':
        return { output: conv2dEval(inputs, profile, options) };
      case 'eval_unmasked':
        return { output: conv2dEvalUnmasked(inputs, profile, options) };
      case 'train_vjp':
        return gradients(conv2dTrainVjp(inputs, { output: cotangent }, profile, options));
      case 'eval_vjp':
        return gradients(conv2dEvalVjp(inputs, cotangent, profile, options));
    }
  }
  throw new VdspecError('unknown_op', `no reference for ${op.name}`, 'op');
}

/** The catalogue inputs of a variant-A op under the reference's field names (values unchecked). */
function denseAInputs(given: Record<string, unknown>, noise: unknown): DenseATrainInputs {
  // The reference function checks every value; the cast only names the fields.
  return {
    x: given['x'],
    theta: given['theta'],
    noise,
    bias: given['bias'],
    eps: given['eps'],
  } as DenseATrainInputs;
}

/**
 * Run operation `opName` of the reference on JSON-able `inputs` under
 * `profile`. Returns the op's outputs by name, each a tensor.
 */
export function run(
  opName: string,
  inputs: unknown,
  profileIn: Profile | ProfileName | string,
): Outputs {
  try {
    return runInReferenceTerms(opName, inputs, profileIn);
  } catch (e) {
    throw inCatalogueTerms(e);
  }
}

function runInReferenceTerms(
  opName: string,
  inputs: unknown,
  profileIn: Profile | ProfileName | string,
): Outputs {
  const op = getOp(opName);
  const profile = getProfile(profileIn);
  const given = checkOpCall(op, inputs, profile);
  const noise = given[profile.noiseParameter];
  const noiseOut = resolveNames(op, profile).outputs;

  if (op.layer !== null) return layerCall(op, given, profile);

  switch (op.name) {
    case 'kl.exact': {
      const la = checkTensor('log_alpha', given['log_alpha'], { allow: 'infinity' });
      return { kl: elementwise(la, klExact), dkl_dlog_alpha: elementwise(la, klExactDerivative) };
    }
    case 'kl.approx': {
      const la = checkTensor('log_alpha', given['log_alpha'], { allow: 'infinity' });
      return {
        kl: elementwise(la, (v) => klApprox(v, profile)),
        dkl_dlog_alpha: elementwise(la, (v) => klApproxDerivative(v, profile)),
      };
    }
    case 'svd.log_alpha':
    case 'vd.log_alpha':
      return { log_alpha: logAlpha(given['theta'], noise, profile, layerInput(given['layer'])) };
    case 'svd.mask':
      return { mask: keepMask(given['theta'], noise, profile, layerInput(given['layer'])) };
    case 'kl.layer': {
      const layer = layerInput(given['layer']);
      const weights = { theta: given['theta'] as Tensor, noise: noise as Tensor };
      const grad = layerKlVjp(weights, 1, profile, layer);
      return {
        kl: scalar(layerKl(weights, profile, layer)),
        grad_theta: grad.theta,
        [noiseOut[2]!]: grad.noise,
      };
    }
    case 'vd.dense_a.train':
    case 'vd.dense_a.train_vjp': {
      const a = denseAInputs(given, noise);
      if (op.name === 'vd.dense_a.train') {
        const r = denseATrain(a, profile);
        return { mean: r.mean, variance: r.variance, output: r.output };
      }
      const g = denseATrainVjp(a, given['cotangent'] as Tensor, profile);
      return {
        grad_x: g.x,
        grad_theta: g.theta,
        [noiseOut[2]!]: g.noise,
        grad_bias: g.bias,
      };
    }
    case 'vd.dense_a.kl': {
      const weights = { theta: given['theta'] as Tensor, noise: noise as Tensor };
      return {
        kl: scalar(denseAKl(weights, profile)),
        [noiseOut[1]!]: denseAKlVjp(weights, 1, profile),
      };
    }
    case 'objective.cross_entropy': {
      const ce = crossEntropy(given['logits'] as Tensor, labelsInput(given['labels']));
      return {
        per_example: { shape: [ce.perExample.length], data: ce.perExample },
        mean: scalar(ce.mean),
      };
    }
    case 'objective.sgvb': {
      const r = sgvbObjective(sgvbArguments(given));
      return { loss: scalar(r.loss), data_term: scalar(r.dataTerm), kl_term: scalar(r.klTerm) };
    }
    case 'schedule.kl_weight':
      return { kl_weight: scalar(klWeightSchedule(given['epoch'] as number)) };
  }
  throw new VdspecError('unknown_op', `no reference for ${op.name}`, 'op');
}
