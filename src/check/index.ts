/**
 * Checking a port against the golden files (spec/check.md). `runCheck` takes
 * any Port: a process (`openProcessPort`), a results file
 * (`openResultsPort`) or a function in this process (`functionPort`), which
 * is how the fast implementation is checked:
 *
 *   const golden = loadGoldenSet('test/golden', 'molchanov2017');
 *   const report = await runCheck(functionPort({ name: 'fast', ops, profile: 'molchanov2017',
 *     dtype: 'float32', run: (op, inputs) => fastRun(op, inputs, 'molchanov2017') }), golden);
 *   report.exitCode; // 0 pass, 1 failures, 2 could not check
 */
export {
  compareOutputs,
  compareTensor,
  type CaseComparison,
  type OutputComparison,
} from './compare.js';
export { CheckInfrastructureError, isCheckInfrastructureError } from './errors.js';
export { fingerprintCandidates, fingerprintCase, type Diagnosis } from './fingerprint.js';
export {
  loadGoldenFile,
  loadGoldenSet,
  opMatcher,
  type Dtype,
  type GoldenCase,
  type GoldenFile,
  type GoldenSet,
  type Tolerance,
} from './golden.js';
export {
  functionPort,
  type FunctionPortSpec,
  type Port,
  type PortAnswer,
  type PortInfo,
} from './port.js';
export { openProcessPort, PROTOCOL, type ProcessPortOptions } from './processPort.js';
export { renderJson, renderJunit, renderText, DEFAULT_MAX_FAILURES } from './report.js';
export { openResultsPort, RESULTS_SCHEMA } from './resultsPort.js';
export { noiseTranslation, type NoiseTranslation } from './translate.js';
export {
  runCheck,
  REPORT_SCHEMA,
  type CaseResult,
  type CheckReport,
  type OpResult,
  type RunCheckOptions,
} from './runner.js';
