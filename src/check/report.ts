/**
 * Rendering a CheckReport (spec/check.md#report): the table for people,
 * JSON for programs (`--json`), JUnit XML for CI dashboards (`--junit FILE`).
 */
import { encodeNumber } from '../golden/encoding.js';
import { counted, formatNumber, formatShort } from './format.js';
import type { CaseResult, CheckReport, OpResult } from './runner.js';

/** Failed cases shown in detail by default (`--max-failures`). */
export const DEFAULT_MAX_FAILURES = 5;

const STATUS_WORD: Record<OpResult['status'], string> = {
  passed: 'pass',
  failed: 'FAIL',
  skipped: 'skipped',
  not_run: 'not run',
  empty: 'no cases',
};

function pad(cells: string[], widths: number[], rightAligned: boolean[]): string {
  return cells
    .map((c, i) => (rightAligned[i] ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)))
    .join('  ')
    .trimEnd();
}

function table(rows: string[][], rightAligned: boolean[]): string[] {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => pad(r, widths, rightAligned));
}

function describeFailure(r: CaseResult): string[] {
  if (r.noAnswer !== null) return [`no answer: ${r.noAnswer}`];
  if (r.portError !== null) return [`the port answered with an error: ${r.portError}`];
  const lines: string[] = [];
  for (const o of r.comparison?.outputs ?? []) {
    if (o.ok) continue;
    if (o.problem !== null) {
      lines.push(`output "${o.name}": ${o.problem}`);
      continue;
    }
    const m = o.firstMismatch!;
    lines.push(
      `output "${o.name}": ${o.mismatches} of ${o.size} elements differ; first at index ${m.index} [${m.position.join(', ')}]: expected ${formatNumber(m.expected)}, got ${formatNumber(m.actual)} (|error| ${formatShort(m.error)} > allowed ${formatShort(m.allowed)})`,
    );
  }
  return lines;
}

/** Which names a cross-profile run translated in this case (null: none). */
function translationLine(r: CaseResult): string | null {
  if (r.translated === null || r.translated.length === 0) return null;
  return `translated: ${r.translated.join('; ')}`;
}

/** `1 answer for a case` / `3 answers for cases` the golden set does not have. */
function unknownCount(n: number): string {
  return n === 1 ? '1 answer for a case' : `${n} answers for cases`;
}

function headline(report: CheckReport): string {
  const t = report.totals;
  if (report.infrastructureError !== null && t.passed + t.failed + t.notRun === 0) {
    return `Result: ERROR: no case was checked (${t.skipped} skipped) (exit 2)`;
  }
  if (report.infrastructureError !== null) {
    return `Result: ERROR: the check could not be completed (${t.notRun} cases not run) (exit 2)`;
  }
  const unknown = t.unknown === 0 ? '' : `${unknownCount(t.unknown)} the golden set does not have`;
  if (t.failed > 0) {
    const opsFailed = report.ops.filter((o) => o.status === 'failed').length;
    return `Result: FAIL: ${t.failed} of ${t.passed + t.failed} checked cases failed, in ${opsFailed} op${opsFailed === 1 ? '' : 's'}${unknown === '' ? '' : `; ${unknown}`} (exit 1)`;
  }
  if (t.unknown > 0) {
    return `Result: FAIL: ${t.passed} cases passed, but the results file has ${unknown} (exit 1)`;
  }
  return `Result: PASS: ${t.passed} cases passed, ${t.skipped} skipped (exit 0)`;
}

/** The human-readable report. */
export function renderText(report: CheckReport, maxFailures = DEFAULT_MAX_FAILURES): string {
  const lines: string[] = [];
  const p = report.port;
  const g = report.golden.generator;
  lines.push(
    `vdspec check: port "${p.name}" (${p.kind === 'process' ? `command: ${p.source}` : p.source}), dtype ${p.dtype}`,
  );
  lines.push(
    `profile ${report.profile}; golden files ${report.golden.dir}${g === null ? '' : ` (${g.name} ${g.version}${g.seed === null ? '' : `, seed ${g.seed}`})`}`,
  );
  lines.push('');
  const header = [
    'op',
    'status',
    'cases',
    'passed',
    'failed',
    'skipped',
    'not run',
    'worst err/tol',
    'worst |err|',
  ];
  const rows = report.ops.map((o) => [
    o.op,
    STATUS_WORD[o.status],
    String(o.cases),
    String(o.passed),
    String(o.failed),
    String(o.skipped),
    String(o.notRun),
    formatShort(o.worstRatio),
    formatShort(o.worstAbsError),
  ]);
  const t = report.totals;
  rows.push([
    'total',
    '',
    String(t.cases),
    String(t.passed),
    String(t.failed),
    String(t.skipped),
    String(t.notRun),
    '',
    '',
  ]);
  lines.push(...table([header, ...rows], [false, false, true, true, true, true, true, true, true]));
  lines.push(
    '(skipped: ops the port does not declare; err/tol: worst error as a fraction of the allowed error, <= 1 passes)',
  );

  const failures = report.cases.filter((c) => c.status === 'failed');
  if (failures.length > 0) {
    const shown = failures.slice(0, Math.max(0, maxFailures));
    lines.push('');
    lines.push(
      shown.length === failures.length
        ? `Failures (${failures.length}):`
        : `Failures (first ${shown.length} of ${failures.length}; --max-failures N shows more):`,
    );
    const sections = new Map(report.ops.map((o) => [o.op, o.section]));
    shown.forEach((r, i) => {
      lines.push('');
      lines.push(`${i + 1}) ${r.op} case ${r.caseId} (${sections.get(r.op) ?? ''})`);
      if (r.comment !== '') lines.push(`   comment: ${r.comment}`);
      if (r.flags.length > 0) lines.push(`   flags: ${r.flags.join(', ')}`);
      for (const input of r.inputs ?? []) lines.push(`   input ${input}`);
      const translated = translationLine(r);
      if (translated !== null) lines.push(`   ${translated}`);
      for (const d of describeFailure(r)) lines.push(`   ${d}`);
      if (r.fingerprint !== null) {
        if (r.fingerprint.length === 0) lines.push('   matches: no known convention or bug');
        for (const d of r.fingerprint) lines.push(`   matches: ${d.text}`);
      }
    });
  }

  if (report.unknownResults.length > 0) {
    lines.push('');
    lines.push(
      `The results file has ${unknownCount(report.unknownResults.length)} the golden set does not have ` +
        '(each fails the check; were the results written for other golden files?):',
    );
    const byOp = new Map<string, string[]>();
    for (const u of report.unknownResults) byOp.set(u.op, [...(byOp.get(u.op) ?? []), u.caseId]);
    for (const [op, ids] of byOp) lines.push(`  ${op}: case ${ids.join(', ')}`);
  }

  const fingerprinted = report.ops.filter((o) => o.fingerprintChecked > 0);
  if (fingerprinted.length > 0) {
    lines.push('');
    lines.push('Fingerprint (what the failed answers match instead of the golden values):');
    for (const o of fingerprinted) {
      if (o.fingerprint.length === 0) {
        lines.push(
          `  ${o.op}: no known convention or bug matches (${counted(o.fingerprintChecked, 'failed case')} checked)`,
        );
        continue;
      }
      for (const f of o.fingerprint) {
        const against =
          f.contradicted === 0
            ? ''
            : ` [contradicted by ${counted(f.contradicted, 'passed case')} of ${f.contradictedIn.join(', ')}]`;
        lines.push(
          `  ${o.op}: ${f.matched} of ${counted(f.checked, 'failed case')}: ${f.text}${against}`,
        );
      }
    }
  }

  if (report.infrastructureError !== null) {
    lines.push('');
    lines.push(`Error: ${report.infrastructureError}`);
  }
  if (report.notes.length > 0) {
    lines.push('');
    for (const n of report.notes) lines.push(`Note: ${n}`);
  }
  if (report.stderr.length > 0) {
    lines.push('');
    lines.push(`Port stderr (last ${report.stderr.length} lines):`);
    for (const s of report.stderr) lines.push(`  ${s}`);
  }
  lines.push('');
  lines.push(headline(report));
  return lines.join('\n');
}

/** The report as JSON; non-finite numbers and -0 use the golden encoding ("NaN", "Infinity", ...). */
export function renderJson(report: CheckReport): string {
  return JSON.stringify(
    report,
    (_key, value: unknown) => (typeof value === 'number' ? encodeNumber(value) : value),
    2,
  );
}

/** XML 1.0 text: the five escapes, and no characters XML forbids. */
export function escapeXml(s: string): string {
  return s
    .replace(/[^\t\n\r\x20-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/gu, '?')
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&apos;');
}

/** A testsuite of one testcase with an `error`: a run's failure that no case carries. */
function errorSuite(suite: string, command: string, message: string): string[] {
  return [
    `  <testsuite name="${escapeXml(suite)}" tests="1" failures="0" errors="1" skipped="0">`,
    `    <testcase classname="vdspec.${command}" name="${escapeXml(`vdspec ${command}`)}">`,
    // The first line as the message; all of it (a port's stderr tail) as the body, when there is more.
    message.includes('\n')
      ? `      <error message="${escapeXml(message.split('\n')[0]!)}">${escapeXml(message)}</error>`
      : `      <error message="${escapeXml(message)}"/>`,
    '    </testcase>',
    '  </testsuite>',
  ];
}

/**
 * JUnit XML for a check or fuzz run that ended without a report (usage,
 * handshake, golden files): one error, so CI shows the failure instead of an
 * earlier run's file.
 */
export function renderErrorJunit(command: 'check' | 'fuzz', message: string): string {
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<testsuites name="vdspec ${command}" tests="1" failures="0" errors="1" skipped="0">`,
    ...errorSuite(`vdspec ${command}`, command, message),
    '</testsuites>',
    '',
  ].join('\n');
}

/** JUnit XML: one testsuite per op, one testcase per golden case. */
export function renderJunit(report: CheckReport): string {
  const t = report.totals;
  // An error no case carries (nothing was checked) gets a testcase of its own, or CI would show only skips.
  const loose = report.infrastructureError !== null && t.notRun === 0 ? 1 : 0;
  const out: string[] = ['<?xml version="1.0" encoding="UTF-8"?>'];
  out.push(
    `<testsuites name="vdspec check ${escapeXml(report.port.name)}" tests="${t.cases + t.unknown + loose}" failures="${t.failed + t.unknown}" errors="${t.notRun + loose}" skipped="${t.skipped}">`,
  );
  if (loose === 1)
    out.push(...errorSuite(`${report.profile}/check`, 'check', report.infrastructureError!));
  for (const o of report.ops) {
    const suite = `${report.profile}/${o.op}`;
    out.push(
      `  <testsuite name="${escapeXml(suite)}" tests="${o.cases}" failures="${o.failed}" errors="${o.notRun}" skipped="${o.skipped}">`,
    );
    for (const r of report.cases.filter((c) => c.op === o.op)) {
      const name = `case ${r.caseId}${r.comment === '' ? '' : `: ${r.comment}`}`;
      const open = `    <testcase classname="${escapeXml(`vdspec.${report.profile}.${o.op}`)}" name="${escapeXml(name)}"`;
      if (r.status === 'passed') {
        out.push(`${open}/>`);
      } else if (r.status === 'skipped') {
        out.push(
          `${open}>`,
          `      <skipped message="op not declared by the port"/>`,
          '    </testcase>',
        );
      } else if (r.status === 'not_run') {
        const message = `not run: ${report.infrastructureError ?? 'the check stopped'}`;
        out.push(`${open}>`, `      <error message="${escapeXml(message)}"/>`, '    </testcase>');
      } else {
        const translated = translationLine(r);
        const details = [
          ...describeFailure(r),
          ...(r.inputs ?? []).map((i) => `input ${i}`),
          ...(translated === null ? [] : [translated]),
          ...(r.fingerprint ?? []).map((d) => `matches: ${d.text}`),
        ];
        out.push(
          `${open}>`,
          `      <failure message="${escapeXml(details[0] ?? 'failed')}">${escapeXml(details.join('\n'))}</failure>`,
          '    </testcase>',
        );
      }
    }
    out.push('  </testsuite>');
  }
  if (report.unknownResults.length > 0) {
    const n = report.unknownResults.length;
    out.push(
      `  <testsuite name="${escapeXml(`${report.profile}/unknown case ids`)}" tests="${n}" failures="${n}" errors="0" skipped="0">`,
    );
    for (const u of report.unknownResults) {
      out.push(
        `    <testcase classname="${escapeXml(`vdspec.${report.profile}.${u.op}`)}" name="${escapeXml(`case ${u.caseId}: not in the golden set`)}">`,
        `      <failure message="the results file has an answer for a case the golden set does not have"/>`,
        '    </testcase>',
      );
    }
    out.push('  </testsuite>');
  }
  out.push('</testsuites>');
  return `${out.join('\n')}\n`;
}
