// Benchmark output shared by every bench: a text table on stdout and a bar chart image (SVG) in bench/results/.
import { mkdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export interface Series {
  /** what was measured, e.g. "boot to first line" */
  metric: string;
  unit: string;
  /** contender -> value */
  values: Record<string, number>;
}

const resultsDir = fileURLToPath(new URL('./results/', import.meta.url));

/**
 * Where a guest bench ran, for its title: figures from inside the nested-KVM L1 (QEMU TCG with emulated SVM) are
 * slower for every VMM alike, so only their ratios mean anything.
 */
export const benchWhere = process.env.TSBHYVE_IN_L1 === '1' ? 'nested (TCG L1)' : 'this host';

/** Prints the table and writes bench/results/<name>.svg; returns the image path. */
export function report(name: string, title: string, series: Series[]): string {
  title = `${title} [${benchWhere}]`;
  const contenders = [...new Set(series.flatMap((s) => Object.keys(s.values)))];
  const width = Math.max(12, ...contenders.map((c) => c.length + 2));
  console.log(`\n${title}`);
  console.log(`${'metric'.padEnd(28)}${contenders.map((c) => c.padStart(width)).join('')}`);
  for (const s of series) {
    const cells = contenders.map((c) => (s.values[c] === undefined ? '-' : `${fmt(s.values[c]!)} ${s.unit}`).padStart(width));
    console.log(`${s.metric.padEnd(28)}${cells.join('')}`);
  }
  mkdirSync(resultsDir, { recursive: true });
  const path = `${resultsDir}${name}.svg`;
  writeFileSync(path, svg(title, series, contenders));
  console.log(`chart: ${path}`);
  return path;
}

function fmt(v: number): string {
  return v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2);
}

const COLORS = ['#3b6ea5', '#d9822b', '#5a9e4b', '#a44a8f', '#888888'];

/** Horizontal bars, one group per metric, each bar scaled to the largest value of its metric. */
function svg(title: string, series: Series[], contenders: string[]): string {
  const barH = 18;
  const gap = 10;
  const left = 180;
  const chartW = 420;
  const groupH = contenders.length * barH + gap * 2 + 14;
  const height = 60 + series.length * groupH + 20;
  const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${left + chartW + 120}" height="${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="10" y="22" font-size="15" font-weight="bold">${esc(title)}</text>`,
  ];
  contenders.forEach((c, i) => {
    parts.push(`<rect x="${10 + i * 140}" y="34" width="12" height="12" fill="${COLORS[i % COLORS.length]}"/>`);
    parts.push(`<text x="${26 + i * 140}" y="45">${esc(c)}</text>`);
  });
  series.forEach((s, g) => {
    const y0 = 60 + g * groupH;
    const max = Math.max(...Object.values(s.values), 1e-9);
    parts.push(`<text x="10" y="${y0 + 14}" font-weight="bold">${esc(s.metric)} (${esc(s.unit)})</text>`);
    contenders.forEach((c, i) => {
      const v = s.values[c];
      if (v === undefined) return;
      const y = y0 + 20 + i * barH;
      const w = Math.max(1, (v / max) * chartW);
      parts.push(`<rect x="${left}" y="${y}" width="${w.toFixed(1)}" height="${barH - 4}" fill="${COLORS[i % COLORS.length]}"/>`);
      parts.push(`<text x="${left + w + 6}" y="${y + barH - 7}">${fmt(v)}</text>`);
      parts.push(`<text x="${left - 6}" y="${y + barH - 7}" text-anchor="end">${esc(c)}</text>`);
    });
  });
  parts.push('</svg>');
  return parts.join('\n');
}
