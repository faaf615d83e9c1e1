/**
 * The catalogue table of spec/ops.md, generated from src/ops.ts so that the
 * page cannot drift from the data (test/properties/run.test.ts checks it).
 */
import { OPS, type OpInput } from '../ops.js';

function inputCell(input: OpInput): string {
  const name = input.name === '$noise' ? '`<noise>`' : `\`${input.name}\``;
  const kind = input.kind === 'tensor' ? '' : ` (${input.kind})`;
  return `${name}${kind}${input.optional ? '?' : ''}`;
}

export function opsTableMarkdown(): string {
  const rows = OPS.map((op) => {
    const outputs = op.outputs.map((o) => `\`${o.replace('$noise', '<noise>')}\``).join(', ');
    const profiles = op.algorithm === null ? 'any' : op.algorithm.toUpperCase();
    const section = `[${op.section.replace('spec/', '')}](${op.section.replace('spec/', '')})`;
    return `| \`${op.name}\` | ${profiles} | ${op.inputs.map(inputCell).join(', ')} | ${outputs} | ${section} |`;
  });
  return [
    '| operation | profiles | inputs | outputs | defined in |',
    '| --- | --- | --- | --- | --- |',
    ...rows,
  ].join('\n');
}
