// node-postgres against a Quiver server (QUIVER_HOST, QUIVER_PORT): connect,
// parameterized queries, prepared statements, types as node-postgres maps
// PostgreSQL's, errors with their SQLSTATE, transactions.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import pg from 'pg';

const client = new pg.Client({
  host: process.env.QUIVER_HOST ?? '127.0.0.1',
  port: Number(process.env.QUIVER_PORT ?? 5433),
  user: 'quiver',
  database: 'quiver',
});
const table = `node_${process.pid}_${Date.now()}`;

before(async () => {
  await client.connect();
});

after(async () => {
  await client.query(`DROP TABLE IF EXISTS ${table}`);
  await client.end();
});

test('connects to a PostgreSQL-compatible server', async () => {
  const { rows } = await client.query('SELECT version() AS v');
  assert.match(rows[0].v, /^PostgreSQL \d+/);
});

test('parameterized queries and integer types', async () => {
  await client.query(`CREATE TABLE ${table} (id INT, big BIGINT, small SMALLINT, name TEXT, score DOUBLE PRECISION, ok BOOLEAN)`);
  for (let i = 1; i <= 3; i++) {
    await client.query(`INSERT INTO ${table} VALUES ($1, $2, $3, $4, $5, $6)`, [i, i * 1000, i, `n${i}`, i / 2, i % 2 === 1]);
  }
  const { rows } = await client.query(`SELECT id, big, small, name, score, ok FROM ${table} WHERE id >= $1 ORDER BY id`, [2]);
  // int2 and int4 come back as numbers, int8 as a string: as from PostgreSQL.
  assert.deepEqual(rows, [
    { id: 2, big: '2000', small: 2, name: 'n2', score: 1, ok: false },
    { id: 3, big: '3000', small: 3, name: 'n3', score: 1.5, ok: true },
  ]);
  // Integer literals are int4 and count(*) is int8, as in PostgreSQL.
  const literals = await client.query('SELECT 1 AS one, 2 + 3 AS five, 5000000000 AS big, count(*) AS c FROM (VALUES (1), (2)) v(x)');
  assert.deepEqual(literals.rows, [{ one: 1, five: 5, big: '5000000000', c: '2' }]);
  const sum = await client.query('SELECT $1::int + 1 AS n', [41]);
  assert.deepEqual(sum.rows, [{ n: 42 }]);
  // int4 arithmetic out of range is an error, not a wrapped number.
  await assert.rejects(client.query('SELECT $1::int * 2 AS n', [2000000000]), { code: '22003', message: 'integer out of range' });
});

test('named prepared statements', async () => {
  const byId = { name: 'by-id', text: `SELECT name FROM ${table} WHERE id = $1` };
  for (const id of [1, 2, 3]) {
    const { rows } = await client.query({ ...byId, values: [id] });
    assert.deepEqual(rows, [{ name: `n${id}` }]);
  }
});

test('errors carry their SQLSTATE', async () => {
  await assert.rejects(client.query('SELECT * FROM no_such_table'), { code: '42P01' });
  await assert.rejects(client.query('SELEC 1'), { code: '42601' });
  await assert.rejects(client.query('SELECT 1 / 0'), { code: '22012' });
  const { rows } = await client.query('SELECT 1 AS one');
  assert.deepEqual(rows, [{ one: 1 }]);
});

test('transactions roll back', async () => {
  await client.query('BEGIN');
  await client.query(`INSERT INTO ${table} (id, name) VALUES (99, 'gone')`);
  await assert.rejects(client.query('SELECT * FROM missing'), { code: '42P01' });
  await assert.rejects(client.query('SELECT 1'), { code: '25P02' });
  await client.query('ROLLBACK');
  const { rows } = await client.query(`SELECT count(*) AS c FROM ${table}`);
  assert.deepEqual(rows, [{ c: '3' }]);
});
