import { strict as assert } from 'node:assert';
import fs from 'node:fs';
import { VARIABLES } from '../../gateway/core/config';
import { fromRoot } from '../../gateway/core/paths';
import { envExample } from '../../gateway/bin/config-doc';

describe('configuration documentation', () => {
  it('.env.example is the one generated from the validated variables', () => {
    assert.equal(fs.readFileSync(fromRoot('.env.example'), 'utf8'), envExample(), 'run: npm run config-doc -- env > .env.example');
  });

  it('README documents every variable and the two commands', () => {
    const readme = fs.readFileSync(fromRoot('README.md'), 'utf8');
    for (const name of Object.keys(VARIABLES)) assert.ok(readme.includes(`| \`${name}\` |`), `README config table lacks ${name} (npm run config-doc -- markdown)`);
    assert.match(readme, /npm start/);
    assert.match(readme, /npm test/);
    assert.match(readme, /docker compose up -d/);
  });

  it('README names the Go release that `npm start` needs to build the embedded store', () => {
    const readme = fs.readFileSync(fromRoot('README.md'), 'utf8');
    const go = /^go (\S+)$/m.exec(fs.readFileSync(fromRoot('tests', 'ferretdb', 'go.mod'), 'utf8'))![1];
    const run = readme.split('\n').find((line) => line.startsWith('| run |')) ?? '';
    assert.ok(run.includes(`Go ${go} or later`), `the npm start row names Go ${go}: ${run}`);
  });
});
