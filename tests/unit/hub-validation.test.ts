// The hub's validator policy (services/hub/validation.ts): bodies strict, text parts coerced.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Type } from '@sinclair/typebox';
import Fastify from 'fastify';
import { hubValidatorCompiler } from '../../services/hub/validation.ts';

async function app() {
  const a = Fastify({ logger: false });
  a.setValidatorCompiler(hubValidatorCompiler());
  a.post(
    '/b/:n',
    {
      schema: {
        body: Type.Object(
          { id: Type.String(), tags: Type.Array(Type.String()) },
          { additionalProperties: false },
        ),
        params: Type.Object({ n: Type.Integer({ minimum: 1 }) }),
        querystring: Type.Object({ limit: Type.Integer({ minimum: 1, maximum: 10, default: 5 }) }),
      },
    },
    async (req) => ({ body: req.body, params: req.params, query: req.query }),
  );
  await a.ready();
  return a;
}

test('hub bodies are checked strictly: a number, a boolean or a lone string is never turned into a string or an array', async () => {
  const a = await app();
  for (const body of [
    { id: 12345, tags: [] },
    { id: true, tags: [] },
    { id: 'x', tags: 'solo' },
    { id: 'x', tags: [7] },
    { id: null, tags: [] },
    { id: 'x', tags: [], extra: 1 },
  ]) {
    const res = await a.inject({ method: 'POST', url: '/b/1', payload: body });
    assert.equal(res.statusCode, 400, JSON.stringify(body));
  }
  const ok = await a.inject({ method: 'POST', url: '/b/1', payload: { id: 'x', tags: ['a'] } });
  assert.equal(ok.statusCode, 200);
  assert.deepEqual(ok.json().body, { id: 'x', tags: ['a'] });
  await a.close();
});

test('hub querystring and params, which arrive as text, are coerced to the schema and defaults are filled in', async () => {
  const a = await app();
  const res = await a.inject({ method: 'POST', url: '/b/3?limit=7', payload: { id: 'x', tags: [] } });
  assert.equal(res.statusCode, 200);
  assert.deepEqual(res.json().params, { n: 3 });
  assert.deepEqual(res.json().query, { limit: 7 });
  const dflt = await a.inject({ method: 'POST', url: '/b/3', payload: { id: 'x', tags: [] } });
  assert.deepEqual(dflt.json().query, { limit: 5 });
  for (const url of ['/b/0', '/b/x', '/b/3?limit=11', '/b/3?limit=abc']) {
    const bad = await a.inject({ method: 'POST', url, payload: { id: 'x', tags: [] } });
    assert.equal(bad.statusCode, 400, url);
  }
  await a.close();
});
