import { strict as assert } from 'node:assert';
import fs from 'node:fs';
import type { Router } from 'express';
import request from 'supertest';
import { fromRoot } from '../../gateway/core/paths';
import { apiRouter } from '../../admin/routes/api';
import { buildApp } from './fixtures';
import { openTestStore } from '../support/store';

type Layer = { route?: { path: string; methods: Record<string, boolean> }; handle?: { stack?: Layer[] } };

/** Every METHOD path the Express API router serves, with :params written as OpenAPI {params}. */
function expressRoutes(router: Router): string[] {
  const found: string[] = [];
  const walk = (stack: Layer[]) => {
    for (const layer of stack) {
      if (layer.route) {
        for (const [method, on] of Object.entries(layer.route.methods)) {
          if (on && method !== '_all') found.push(`${method.toUpperCase()} ${layer.route.path.replace(/:(\w+)/g, '{$1}')}`);
        }
      } else if (layer.handle?.stack) {
        walk(layer.handle.stack);
      }
    }
  };
  walk((router as unknown as { stack: Layer[] }).stack);
  return found.sort();
}

describe('admin: the OpenAPI document matches the /api/v1 routes', () => {
  it('documents every Express route and documents no route that does not exist', async () => {
    const store = await openTestStore('admin_openapi');
    try {
      const { app } = buildApp(store);
      const routes = expressRoutes(apiRouter(app.locals.deps));
      assert.ok(routes.length >= 10, `found only ${routes.length} routes: the walk is broken`);
      const doc = JSON.parse(fs.readFileSync(fromRoot('admin', 'openapi.json'), 'utf8')) as { openapi: string; servers: Array<{ url: string }>; paths: Record<string, Record<string, unknown>> };
      assert.match(doc.openapi, /^3\.1\./);
      assert.equal(doc.servers[0].url, '/api/v1');
      const methods = ['get', 'post', 'put', 'patch', 'delete'];
      const documented = Object.entries(doc.paths)
        .flatMap(([path, item]) => Object.keys(item).filter((key) => methods.includes(key)).map((method) => `${method.toUpperCase()} ${path}`))
        .sort();
      assert.deepEqual(routes.filter((r) => !documented.includes(r)), [], 'routes missing from admin/openapi.json');
      assert.deepEqual(documented.filter((r) => !routes.includes(r)), [], 'documented routes that do not exist');
    } finally {
      await store.drop();
    }
  });

  it('is served at /api/v1/openapi.json without a token, as the file is', async () => {
    const store = await openTestStore('admin_openapi_served');
    try {
      const res = await request(buildApp(store).app).get('/api/v1/openapi.json').expect(200).expect('Content-Type', /^application\/json/);
      assert.deepEqual(res.body, JSON.parse(fs.readFileSync(fromRoot('admin', 'openapi.json'), 'utf8')));
    } finally {
      await store.drop();
    }
  });

  it('has every $ref resolve and every operation an operationId and a documented error shape', () => {
    const doc = JSON.parse(fs.readFileSync(fromRoot('admin', 'openapi.json'), 'utf8'));
    const text = JSON.stringify(doc);
    for (const [, name] of text.matchAll(/"\$ref":"#\/components\/schemas\/(\w+)"/g)) assert.ok(doc.components.schemas[name], `dangling $ref ${name}`);
    const ids = new Set<string>();
    for (const item of Object.values(doc.paths) as Array<Record<string, { operationId?: string; responses?: Record<string, unknown> }>>) {
      for (const [method, op] of Object.entries(item)) {
        if (method === 'parameters') continue;
        assert.ok(op.operationId && !ids.has(op.operationId), `operationId missing or repeated for ${method}`);
        ids.add(op.operationId);
        assert.ok(op.responses?.['401'], `${op.operationId} documents 401`);
      }
    }
  });
});
