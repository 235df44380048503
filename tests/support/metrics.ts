import { metrics } from '../../gateway/core/metrics';

/** The value of one series in a Prometheus scrape (`name{labels}` as written), or undefined when it is not there. */
export function seriesValue(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

/** This (test) process's own count of a series, 0 before anything counted it. */
export async function ownCount(name: string, labels: Record<string, string>): Promise<number> {
  const metric = await metrics().registry.getSingleMetric(name)?.get();
  const match = metric?.values.find((v) => Object.entries(labels).every(([k, l]) => String(v.labels[k]) === l));
  return match?.value ?? 0;
}
