/**
 * Cross-profile runs (spec/check.md#cross-profile-runs): a port written after
 * one profile, checked against another profile's golden files, learns its own
 * noise parameter. `deepbayes-pytorch` learns log_sigma where the other SVD
 * profiles learn log_sigma2 = 2 log_sigma. The runner sends each case in the
 * port's parameterization and reads the port's gradient back in the golden
 * one, so that the comparison (and the fingerprint) sees only the differences
 * of convention, never a missing input.
 *
 * Between an SVD profile (log_sigma2, log_sigma) and the VD profile (log_alpha
 * learned) no translation exists: the run is refused.
 */
import { decodeTensor, encodeTensor } from '../golden/encoding.js';
import { isProfileName, PROFILES, type NoiseParameter, type Profile } from '../profiles.js';
import type { Tensor } from '../tensor.js';
import { CheckInfrastructureError } from './errors.js';
import type { PortAnswer, PortCase } from './port.js';

export interface NoiseTranslation {
  /** The noise parameter the golden files name (the checked profile's). */
  readonly golden: NoiseParameter;
  /** The noise parameter the port learns (its declared profile's). */
  readonly port: NoiseParameter;
  /** port value = factor * golden value; the port's gradient times factor is the golden gradient. */
  readonly factor: number;
  /** The input rule, e.g. `log_sigma = log_sigma2 / 2`. */
  readonly input: string;
  /** The output rule, e.g. `grad_log_sigma2 = grad_log_sigma / 2`. */
  readonly output: string;
}

/** `name * k` written the way the spec writes it (k is 2 or 1/2). */
function times(name: string, k: number): string {
  return k === 0.5 ? `${name} / 2` : `${k} * ${name}`;
}

/** log_sigma2 = 2 log_sigma: the factor taking a `from` value to a `to` value. */
function factorBetween(from: NoiseParameter, to: NoiseParameter): number | null {
  if (from === to) return 1;
  if (from === 'log_sigma2' && to === 'log_sigma') return 0.5;
  if (from === 'log_sigma' && to === 'log_sigma2') return 2;
  return null;
}

/**
 * The translation a run needs, or null when the port names the noise
 * parameter as the golden files do (or declares no profile, or one vdspec does
 * not know: then its inputs are taken to be named as the golden files name
 * them, and `notes` says so). Refuses (CheckInfrastructureError, exit 2) a
 * port of the other algorithm.
 */
export function noiseTranslation(
  portProfile: string | null,
  golden: Profile,
): { translation: NoiseTranslation | null; notes: string[] } {
  if (portProfile === null || portProfile === golden.name) return { translation: null, notes: [] };
  if (!isProfileName(portProfile)) {
    return {
      translation: null,
      notes: [
        `the port declares profile "${portProfile}", which vdspec does not know: its inputs are sent as the ${golden.name} golden files name them (${golden.noiseParameter}), untranslated`,
      ],
    };
  }
  const port = PROFILES[portProfile];
  const factor = factorBetween(golden.noiseParameter, port.noiseParameter);
  if (port.algorithm !== golden.algorithm || factor === null) {
    throw new CheckInfrastructureError(
      'usage',
      `the port implements ${port.name} (${port.algorithm.toUpperCase()}, learns ${port.noiseParameter}) and cannot be checked against ${golden.name} (${golden.algorithm.toUpperCase()}, learns ${golden.noiseParameter}): no translation between the two exists; check it against a profile of its own algorithm`,
    );
  }
  if (factor === 1) return { translation: null, notes: [] };
  const translation: NoiseTranslation = {
    golden: golden.noiseParameter,
    port: port.noiseParameter,
    factor,
    input: `${port.noiseParameter} = ${times(golden.noiseParameter, factor)}`,
    output: `grad_${golden.noiseParameter} = ${times(`grad_${port.noiseParameter}`, factor)}`,
  };
  return {
    translation,
    notes: [
      `the port learns ${port.noiseParameter} (${port.name}), the ${golden.name} golden files ${golden.noiseParameter}: every ${golden.noiseParameter} input is sent as ${translation.input}, and the port's grad_${port.noiseParameter} is read back as ${translation.output}`,
    ],
  };
}

function scaled(t: Tensor, k: number): Tensor {
  // k is 2 or 1/2: the product is exact (short of overflow or subnormal results).
  return { shape: t.shape, data: t.data.map((v) => v * k) };
}

/**
 * The case as the port is to receive it: the golden noise input renamed and
 * converted, in both the decoded and the encoded form. `translated` lists what
 * was renamed, for the report (empty when the case has no noise input).
 */
export function translateCase(
  t: NoiseTranslation,
  c: PortCase,
): { portCase: PortCase; translated: string[] } {
  if (!Object.hasOwn(c.inputs, t.golden)) return { portCase: c, translated: [] };
  const value = scaled(c.inputs[t.golden] as Tensor, t.factor);
  const rename = <V>(inputs: Readonly<Record<string, unknown>>, v: V) =>
    Object.fromEntries(
      Object.entries(inputs).map(([name, old]) => (name === t.golden ? [t.port, v] : [name, old])),
    );
  return {
    portCase: {
      ...c,
      inputs: rename(c.inputs, value),
      rawInputs: rename(c.rawInputs, encodeTensor(value)),
    },
    translated: [`input ${t.golden} sent as ${t.input}`],
  };
}

/**
 * The port's answer with its noise gradient converted back to the golden
 * name (outputs stay in the golden encoding). A gradient that does not decode
 * is passed on unconverted under the golden name, so the comparison reports
 * it as malformed; one the port did not give stays missing.
 */
export function translateAnswer(
  t: NoiseTranslation,
  expectedOutputs: readonly string[],
  answer: PortAnswer,
): { answer: PortAnswer; translated: string[] } {
  const goldenName = `grad_${t.golden}`;
  const portName = `grad_${t.port}`;
  if (answer.kind !== 'outputs' || !expectedOutputs.includes(goldenName)) {
    return { answer, translated: [] };
  }
  const translated = [`output grad_${t.port} read as ${t.output}`];
  const outputs = answer.outputs;
  if (typeof outputs !== 'object' || outputs === null || Array.isArray(outputs)) {
    return { answer, translated };
  }
  const given = outputs as Record<string, unknown>;
  if (!Object.hasOwn(given, portName)) return { answer, translated };
  let converted: unknown;
  try {
    converted = encodeTensor(scaled(decodeTensor(given[portName], portName), t.factor));
  } catch {
    converted = given[portName];
  }
  // The port's own name wins over a golden-named output it may also have sent.
  const renamed: Record<string, unknown> = Object.fromEntries(
    Object.entries(given).filter(([name]) => name !== portName && name !== goldenName),
  );
  renamed[goldenName] = converted;
  return { answer: { kind: 'outputs', outputs: renamed }, translated };
}
