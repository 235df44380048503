import fs from 'node:fs';
import path from 'node:path';

/**
 * The project root (the folder holding package.json). Code runs both from
 * source (tsx, tests) and from dist/ (npm start, Haraka), so relative paths
 * from __dirname differ; walking up to package.json works for both.
 */
function findRoot(start: string): string {
  let dir = start;
  for (;;) {
    const candidate = path.join(dir, 'package.json');
    if (fs.existsSync(candidate)) {
      const pkg = JSON.parse(fs.readFileSync(candidate, 'utf8')) as { name?: string };
      if (pkg.name === 'postroom') return dir;
    }
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error(`postroom package.json not found above ${start}`);
    dir = parent;
  }
}

export const projectRoot = findRoot(__dirname);

export function fromRoot(...parts: string[]): string {
  return path.join(projectRoot, ...parts);
}
