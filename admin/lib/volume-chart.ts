import type { VolumeDay } from '../../gateway/accounts';

export const SOURCE_COLORS: Record<string, string> = { forward: '#3b6ef5', mx: '#8b5cf6', imap: '#0f9f6e', sent: '#e08a00' };
export const SOURCE_LABELS: Record<string, string> = { forward: 'Forwarded', mx: 'MX / dropbox', imap: 'IMAP', sent: 'Sent' };

function escapeXml(value: string): string {
  return value.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[c]!);
}

/**
 * Messages per day, stacked by source, as an inline SVG built on the server
 * (no chart library, no script). Colours are presentation attributes, not
 * style attributes, so the strict CSP (no inline styles) allows them.
 */
export function renderVolumeChart(series: VolumeDay[]): string {
  const width = 640;
  const height = 170;
  const left = 34;
  const bottom = 22;
  const top = 8;
  const plotHeight = height - bottom - top;
  const peak = Math.max(2, ...series.map((day) => day.total));
  // An even maximum keeps the middle grid line on a whole number.
  const max = peak % 2 === 0 ? peak : peak + 1;
  const step = (width - left - 4) / Math.max(1, series.length);
  const barWidth = Math.max(2, step * 0.7);
  const kinds = Object.keys(SOURCE_COLORS);
  const parts: string[] = [];
  const total = series.reduce((sum, day) => sum + day.total, 0);
  parts.push(`<svg class="chart" viewBox="0 0 ${width} ${height}" width="100%" role="img" aria-label="Messages per day over the last ${series.length} days: ${total} in total" xmlns="http://www.w3.org/2000/svg">`);
  for (const fraction of [0, 0.5, 1]) {
    const y = top + plotHeight - fraction * plotHeight;
    parts.push(`<line x1="${left}" x2="${width - 2}" y1="${y.toFixed(1)}" y2="${y.toFixed(1)}" stroke="#e4e7eb" stroke-width="1"/>`);
    parts.push(`<text x="${left - 6}" y="${(y + 4).toFixed(1)}" text-anchor="end" font-size="10" fill="#7b8794">${Math.round(max * fraction)}</text>`);
  }
  series.forEach((day, index) => {
    const x = left + index * step + (step - barWidth) / 2;
    let y = top + plotHeight;
    const tooltip = `${day.day}: ${day.total} (${kinds.filter((k) => day.counts[k]).map((k) => `${SOURCE_LABELS[k]} ${day.counts[k]}`).join(', ') || 'none'})`;
    parts.push(`<g><title>${escapeXml(tooltip)}</title>`);
    for (const kind of kinds) {
      const count = day.counts[kind] ?? 0;
      if (count === 0) continue;
      const h = (count / max) * plotHeight;
      y -= h;
      parts.push(`<rect x="${x.toFixed(1)}" y="${y.toFixed(1)}" width="${barWidth.toFixed(1)}" height="${h.toFixed(1)}" fill="${SOURCE_COLORS[kind]}" rx="1"/>`);
    }
    if (day.total === 0) parts.push(`<rect x="${x.toFixed(1)}" y="${(top + plotHeight - 1).toFixed(1)}" width="${barWidth.toFixed(1)}" height="1" fill="#cbd2d9"/>`);
    parts.push('</g>');
    // A label every 7 days, and on the last day unless it would collide with the previous label.
    if (index % 7 === 0 || (index === series.length - 1 && index % 7 >= 3)) {
      parts.push(`<text x="${(x + barWidth / 2).toFixed(1)}" y="${height - 6}" text-anchor="middle" font-size="10" fill="#7b8794">${escapeXml(day.day.slice(5))}</text>`);
    }
  });
  parts.push('</svg>');
  return parts.join('');
}
