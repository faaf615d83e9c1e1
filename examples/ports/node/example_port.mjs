#!/usr/bin/env node
// A tiny Node port on the port kit: two ops of molchanov2017, written from spec/kl.md#klsvd and
// spec/objective.md#schedulekl_weight. Run: vdspec check --port "node examples/ports/node/example_port.mjs"
import { PortError, serve } from '../kit/vdspec_kit.mjs';

const [K1, K2, K3] = [0.63576, 1.8732, 1.48695]; // spec/constants.md
const sigmoid = (z) => 1 / (1 + Math.exp(-z));

/** The sigmoid KL with C = -k1 and its derivative, at one clipped log_alpha. */
function klSvd(la) {
  if (Number.isNaN(la)) throw new PortError('log_alpha: NaN');
  if (la === Infinity) return [0, 0];
  if (la === -Infinity) return [Infinity, -0.5];
  const z = K2 + K3 * la;
  const softplus = Math.max(-la, 0) + Math.log1p(Math.exp(-Math.abs(la)));
  return [
    K1 * sigmoid(-z) + 0.5 * softplus,
    -K1 * K3 * sigmoid(z) * sigmoid(-z) - 0.5 * sigmoid(-la),
  ];
}

const ops = {
  'kl.approx': ({ log_alpha }) => {
    const both = log_alpha.data.map(klSvd);
    return {
      kl: { shape: log_alpha.shape, data: both.map((p) => p[0]) },
      dkl_dlog_alpha: { shape: log_alpha.shape, data: both.map((p) => p[1]) },
    };
  },
  'schedule.kl_weight': ({ epoch }) => {
    if (!Number.isFinite(epoch) || epoch < 0)
      throw new PortError('epoch: expected a finite number >= 0');
    return { kl_weight: epoch < 5 ? 0 : epoch < 20 ? (epoch - 5) / 15 : 1 };
  },
};

await serve({ ops, name: 'node-example', profile: 'molchanov2017', dtype: 'float64' });
