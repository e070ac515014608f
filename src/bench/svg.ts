/**
 * Hand-written SVG plots for the bench report: grouped horizontal bar charts (one group per
 * mailbox size or concurrency level, one bar per server) with min–max whiskers, on a log
 * scale when the values span more than two decades. No dependencies.
 */

export interface Bar {
  readonly target: string;
  readonly value: number;
  readonly min: number;
  readonly max: number;
}

export interface Chart {
  readonly title: string;
  readonly unit: string;
  readonly better: 'lower' | 'higher';
  readonly groups: readonly { readonly label: string; readonly bars: readonly Bar[] }[];
}

/** One colour per server, stable across plots. */
const COLORS: Readonly<Record<string, string>> = {
  copy: '#9aa5b1', server: '#1f77b4', 'server+hold': '#17becf', dovecot: '#d62728', mailutils: '#ff7f0e', popa3d: '#2ca02c',
};

const W = 760;
const LEFT = 110;
const RIGHT = 90;
const BAR_H = 14;
const GAP = 10;

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

export function fmt(v: number): string {
  if (!Number.isFinite(v)) return '–';
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1000) return v.toFixed(0);
  if (a >= 100) return v.toFixed(1);
  if (a >= 10) return v.toFixed(2);
  if (a >= 1) return v.toFixed(3);
  if (a >= 0.001) return v.toPrecision(3);
  return v.toExponential(2);
}

export function barChart(c: Chart): string {
  const values = c.groups.flatMap((g) => g.bars.flatMap((b) => [b.value, b.max])).filter((v) => Number.isFinite(v) && v > 0);
  const lo = Math.min(...values);
  const hi = Math.max(...values);
  const log = values.length > 0 && hi / lo > 100;
  const plotW = W - LEFT - RIGHT;
  const x = (v: number): number => {
    if (!(v > 0)) return 0;
    if (log) {
      const a = Math.floor(Math.log10(lo));
      const b = Math.ceil(Math.log10(hi));
      return ((Math.log10(v) - a) / Math.max(1, b - a)) * plotW;
    }
    return (v / (hi * 1.05)) * plotW;
  };
  const targets = [...new Set(c.groups.flatMap((g) => g.bars.map((b) => b.target)))];
  const parts: string[] = [];
  let y = 48;
  for (const g of c.groups) {
    parts.push(`<text x="8" y="${y + 11}" font-weight="bold">${esc(g.label)}</text>`);
    for (const b of g.bars) {
      const w = Math.max(1, x(b.value));
      const color = COLORS[b.target] ?? '#7f7f7f';
      parts.push(`<text x="${LEFT - 6}" y="${y + 11}" text-anchor="end" font-size="11">${esc(b.target)}</text>`);
      parts.push(`<rect x="${LEFT}" y="${y}" width="${w.toFixed(1)}" height="${BAR_H}" fill="${color}"><title>${esc(`${b.target}: ${fmt(b.value)} ${c.unit} (min ${fmt(b.min)}, max ${fmt(b.max)})`)}</title></rect>`);
      if (b.max > b.min) {
        const x1 = LEFT + x(b.min);
        const x2 = LEFT + x(b.max);
        parts.push(`<line x1="${x1.toFixed(1)}" x2="${x2.toFixed(1)}" y1="${y + BAR_H / 2}" y2="${y + BAR_H / 2}" stroke="#222" stroke-width="1"/>`);
      }
      parts.push(`<text x="${LEFT + w + 4}" y="${y + 11}" font-size="11">${esc(fmt(b.value))}</text>`);
      y += BAR_H + 3;
    }
    y += GAP;
  }
  // axis ticks
  const ticks: number[] = [];
  if (log) {
    for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++) ticks.push(10 ** e);
  } else {
    const step = niceStep(hi * 1.05 / 5);
    for (let t = 0; t <= hi * 1.05; t += step) ticks.push(t);
  }
  for (const t of ticks) {
    const tx = LEFT + (t === 0 ? 0 : x(t));
    parts.push(`<line x1="${tx.toFixed(1)}" x2="${tx.toFixed(1)}" y1="40" y2="${y}" stroke="#ddd"/>`);
    parts.push(`<text x="${tx.toFixed(1)}" y="${y + 14}" text-anchor="middle" font-size="10">${esc(fmt(t))}</text>`);
  }
  const legend = targets.map((t, i) => `<rect x="${LEFT + i * 105}" y="${y + 24}" width="10" height="10" fill="${COLORS[t] ?? '#7f7f7f'}"/><text x="${LEFT + i * 105 + 14}" y="${y + 33}" font-size="11">${esc(t)}</text>`).join('');
  const h = y + 44;
  const subtitle = `${c.unit}, ${c.better} is better${log ? ', log scale' : ''}; bars are medians, whiskers min–max`;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${h}" viewBox="0 0 ${W} ${h}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="8" y="18" font-size="14" font-weight="bold">${esc(c.title)}</text>
<text x="8" y="34" font-size="11" fill="#555">${esc(subtitle)}</text>
${parts.join('\n')}
${legend}
</svg>
`;
}

function niceStep(raw: number): number {
  if (!(raw > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(raw));
  const m = raw / p;
  return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
}
