import { round } from './stats';

/**
 * What `npm run bench` prints: a human table, then one JSON line per figure
 * with the stable names other tools read:
 *
 *   {"name":"smtp.ingest.10k","value":412.3,"unit":"msg/s","baseline":530.1,"ratio":0.778}
 *
 * `baseline` is what the figure is compared with (named in `detail`);
 * `ratio` is value/baseline except where the issue defines it otherwise
 * (console pages: page p99 / bare-query p99, lower is better).
 */

export interface Figure {
  name: string;
  value: number;
  unit: string;
  baseline: number | null;
  ratio: number | null;
  /** Goal from the issue, e.g. ">= 0.6" on the ratio; null when it is only reported. */
  goal?: string | null;
  /** true/false when a goal applies and was checked; null when reported only. */
  met?: boolean | null;
  /** Human notes for the table: what the baseline is, p50/p99, RSS… (not in the JSON line). */
  detail?: string;
}

export class Report {
  readonly figures: Figure[] = [];
  readonly notes: string[] = [];

  add(figure: Figure): Figure {
    this.figures.push(figure);
    // Stream each JSON line as soon as it is measured (a later failure keeps what was measured).
    console.log(jsonLine(figure));
    return figure;
  }

  note(line: string): void {
    this.notes.push(line);
    console.log(`# ${line}`);
  }

  table(): string {
    const rows = [['figure', 'value', 'unit', 'baseline', 'ratio', 'goal', '', 'detail']];
    for (const f of this.figures) {
      rows.push([
        f.name,
        String(round(f.value)),
        f.unit,
        f.baseline === null ? '-' : String(round(f.baseline)),
        f.ratio === null ? '-' : String(round(f.ratio)),
        f.goal ?? '-',
        f.met === true ? 'ok' : f.met === false ? 'MISSED' : '',
        f.detail ?? '',
      ]);
    }
    const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => (i === rows[0].length - 1 ? 0 : r[i].length))));
    return rows.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]))).join('  ').trimEnd()).join('\n');
  }
}

export function jsonLine(f: Figure): string {
  return JSON.stringify({
    name: f.name,
    value: round(f.value),
    unit: f.unit,
    baseline: f.baseline === null ? null : round(f.baseline),
    ratio: f.ratio === null ? null : round(f.ratio),
  });
}

/** Evaluate "≥ x" / "≤ x" goals against a number. */
export function checkGoal(value: number | null, goal: string | null | undefined): boolean | null {
  if (!goal || value === null || !Number.isFinite(value)) return null;
  const match = /^(>=|<=)\s*([\d.]+)/.exec(goal);
  if (!match) return null;
  const limit = Number(match[2]);
  return match[1] === '>=' ? value >= limit : value <= limit;
}
