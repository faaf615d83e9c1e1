/**
 * Seeded standard normals for the training noise: counter-based in chunks,
 * fast, and reproducible from their description (spec/fast.md#noise).
 *
 * Normal number `i` of a tensor drawn with seed `s` lies in chunk
 * `c = floor(i / NOISE_CHUNK)`. The chunk's generator is xoshiro128**
 * (Blackman & Vigna 2018) started from the four words of Philox4x32-10
 * (Salmon et al. 2011) at counter `(c mod 2^32, floor(c / 2^32), 0, 0)` and
 * key `(s mod 2^32, floor(s / 2^32) mod 2^32)` (the seed as a 64-bit two's
 * complement integer); Marsaglia's polar method turns its
 * words into normals, two at a time, until the chunk holds NOISE_CHUNK.
 *
 * So any slice of a tensor can be drawn on its own (a worker draws its rows
 * of the batch and gets the numbers one process drawing them all would), and
 * they cost one logarithm per pair and no trigonometry: several times faster
 * than `tf.randomNormal`, which draws one at a time through a seeded
 * JavaScript generator.
 */

/** Philox4x32's multipliers and key increments (Salmon et al. 2011, table 2 and sec. 4.2). */
export const PHILOX_M0 = 0xd2511f53;
export const PHILOX_M1 = 0xcd9e8d57;
export const PHILOX_W0 = 0x9e3779b9;
export const PHILOX_W1 = 0xbb67ae85;
/** Rounds of Philox4x32 used here (the Random123 default, "Philox4x32-10"). */
export const PHILOX_ROUNDS = 10;
/** Normals per chunk: each chunk has its own generator state. */
export const NOISE_CHUNK = 256;

const TWO_POW_32 = 4294967296;
const INV_TWO_POW_31 = 1 / 2147483648;
// The multipliers split into 16-bit halves: the high word of a 32x32-bit
// product is then summed from four 16x16-bit products in int32 arithmetic.
const M0_HI = PHILOX_M0 >>> 16;
const M0_LO = PHILOX_M0 & 0xffff;
const M1_HI = PHILOX_M1 >>> 16;
const M1_LO = PHILOX_M1 & 0xffff;

/** `value` mod 2^32 in [0, 2^32): with the next word, a seed as a 64-bit two's complement integer. */
function wordOf(value: number): number {
  return ((value % TWO_POW_32) + TWO_POW_32) % TWO_POW_32;
}

function checkSeed(seed: number): void {
  if (!Number.isSafeInteger(seed)) {
    throw new RangeError(`a noise seed must be a safe integer, got ${String(seed)}`);
  }
}

/**
 * One Philox4x32 block: the four output words for a counter and key, all
 * unsigned 32-bit integers. Exported for the known-answer test.
 */
export function philox4x32(
  counter: readonly [number, number, number, number],
  key: readonly [number, number],
  rounds = PHILOX_ROUNDS,
): [number, number, number, number] {
  const out = new Uint32Array(4);
  philoxBlock(
    counter[0] >>> 0,
    counter[1] >>> 0,
    counter[2] >>> 0,
    counter[3] >>> 0,
    key[0] >>> 0,
    key[1] >>> 0,
    rounds,
    out,
  );
  return [out[0]!, out[1]!, out[2]!, out[3]!];
}

function philoxBlock(
  c0: number,
  c1: number,
  c2: number,
  c3: number,
  k0: number,
  k1: number,
  rounds: number,
  out: Uint32Array,
): void {
  for (let r = 0; r < rounds; r++) {
    if (r > 0) {
      k0 = (k0 + PHILOX_W0) | 0;
      k1 = (k1 + PHILOX_W1) | 0;
    }
    let high = c0 >>> 16;
    let low = c0 & 0xffff;
    let lowHigh = M0_LO * high;
    let highLow = M0_HI * low;
    let middle = ((M0_LO * low) >>> 16) + (lowHigh & 0xffff) + (highLow & 0xffff);
    const hi0 = (M0_HI * high + (lowHigh >>> 16) + (highLow >>> 16) + (middle >>> 16)) | 0;
    const lo0 = Math.imul(PHILOX_M0, c0);
    high = c2 >>> 16;
    low = c2 & 0xffff;
    lowHigh = M1_LO * high;
    highLow = M1_HI * low;
    middle = ((M1_LO * low) >>> 16) + (lowHigh & 0xffff) + (highLow & 0xffff);
    const hi1 = (M1_HI * high + (lowHigh >>> 16) + (highLow >>> 16) + (middle >>> 16)) | 0;
    const lo1 = Math.imul(PHILOX_M1, c2);
    c0 = hi1 ^ c1 ^ k0;
    c1 = lo1;
    c2 = hi0 ^ c3 ^ k1;
    c3 = lo0;
  }
  out[0] = c0;
  out[1] = c1;
  out[2] = c2;
  out[3] = c3;
}

/**
 * Writes normals `start .. start + target.length - 1` of the stream of `seed`
 * into `target` (float32). Drawing a tensor in pieces gives the same numbers
 * as drawing it whole.
 */
export function fillNormals(target: Float32Array, seed: number, start = 0): Float32Array {
  checkSeed(seed);
  if (!Number.isSafeInteger(start) || start < 0) {
    throw new RangeError(`the first index must be a safe integer >= 0, got ${String(start)}`);
  }
  const n = target.length;
  if (n === 0) return target;
  const key = [wordOf(seed), wordOf(Math.floor(seed / TWO_POW_32))] as const;
  let chunk = Math.floor(start / NOISE_CHUNK);
  let skip = start - chunk * NOISE_CHUNK;
  let i = 0;
  while (i < n) {
    let [s0, s1, s2, s3] = philox4x32(
      [chunk % TWO_POW_32, Math.floor(chunk / TWO_POW_32), 0, 0],
      key,
    ).map((w) => w | 0) as [number, number, number, number];
    if ((s0 | s1 | s2 | s3) === 0) s0 = 1; // xoshiro's one forbidden state (probability 2^-128)
    // This chunk's normals `skip ..` land at target[i ..]; `made` counts the chunk's normals.
    let made = 0;
    while (made < NOISE_CHUNK && i < n) {
      let scaled = Math.imul(s1, 5);
      const w1 = Math.imul((scaled << 7) | (scaled >>> 25), 9);
      let shifted = s1 << 9;
      s2 ^= s0;
      s3 ^= s1;
      s1 ^= s2;
      s0 ^= s3;
      s2 ^= shifted;
      s3 = (s3 << 11) | (s3 >>> 21);
      scaled = Math.imul(s1, 5);
      const w2 = Math.imul((scaled << 7) | (scaled >>> 25), 9);
      shifted = s1 << 9;
      s2 ^= s0;
      s3 ^= s1;
      s1 ^= s2;
      s0 ^= s3;
      s2 ^= shifted;
      s3 = (s3 << 11) | (s3 >>> 21);
      // The words read as signed 32-bit integers: u, v uniform on [-1, 1).
      const u = w1 * INV_TWO_POW_31;
      const v = w2 * INV_TWO_POW_31;
      const q = u * u + v * v;
      if (q >= 1 || q === 0) continue;
      const f = Math.sqrt((-2 * Math.log(q)) / q);
      if (made >= skip) target[i++] = u * f;
      made++;
      if (made < NOISE_CHUNK && i < n) {
        if (made >= skip) target[i++] = v * f;
        made++;
      }
    }
    skip = 0;
    chunk++;
  }
  return target;
}

/** `count` normals of the stream of `seed`, from index `start`. */
export function seededNormals(count: number, seed: number, start = 0): Float32Array {
  if (!Number.isSafeInteger(count) || count < 0) {
    throw new RangeError(`a count must be a safe integer >= 0, got ${String(count)}`);
  }
  return fillNormals(new Float32Array(count), seed, start);
}
